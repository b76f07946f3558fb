/*
 * test_production: the "production core" issue through the C API only, against a private
 * redis-server (bt_server.h) that this program kills, restarts and stalls.
 *
 *   one client of 8 connections shared by 32 threads: no error, never more than 8 connections
 *     (pool gauge and the server's CLIENT LIST), the counters add up
 *   connections killed (CLIENT KILL TYPE normal) between commands: replaced, counted; and
 *     ten times under a read load: no read fails
 *   the server restarted on the same port: commands during the outage succeed once it is back,
 *     or fail with CONNECTION after the retry budget
 *   the server stalled (SIGSTOP): reads time out and are retried; a sent INCR is never replayed
 *     in SAFE mode and is replayed in ALWAYS mode
 *   pool exhaustion after the max wait, with the diagnostic numbers
 *   health checks before a command on an idle connection; a dead idle connection replaced
 *   BLPOP with its own timeout beyond the read timeout
 *   events: command names, statuses, attempts; never a value
 *
 * Timing bounds are generous: a lower bound says "it really waited", an upper bound "it did not
 * wait for something else" (widened on a loaded machine and under valgrind: CHECK_BETWEEN in
 * brisk_test.h). Under valgrind the waits are longer and the load shrinks.
 */
#include "brisk_test.h"
#include "bt_server.h"

#include <pthread.h>
#include <stdatomic.h>

static bt_server srv;

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t stat_of(const brisk_client *c, brisk_stat which) {
  return brisk_client_stat(c, which);
}

static brisk_config *srv_config(void) { return bt_server_config(&srv); }

/* "redis://127.0.0.1:<port><suffix>" */
static brisk_config *srv_url_config(const char *suffix) {
  char url[256];
  snprintf(url, sizeof url, "redis://127.0.0.1:%u%s", (unsigned)srv.port, suffix);
  return bt_config_url(url);
}

/* A separate client for looking at the server (INFO, CLIENT LIST, CLIENT KILL): one
 * connection, its own retries, never part of what is measured. */
static brisk_client *admin_client(void) {
  brisk_config *cfg = srv_config();
  REQUIRE_OK(brisk_config_set_pool_size(cfg, 1));
  bt_set_constant_retry(cfg, 50, 40);
  return bt_client_from(cfg);
}

/* The integer value of `key` (0 when missing, -1 on failure). */
static long long counter(brisk_client *c, const char *key) {
  brisk_reply *r = NULL;
  long long v = -1;
  if (CHECK_OK(BT_CMD(c, &r, "GET", key))) {
    const char *s = brisk_reply_string(r, NULL);
    v = brisk_reply_type_of(r) == BRISK_REPLY_NIL ? 0 : (s ? atoll(s) : -1);
  }
  brisk_reply_free(r);
  return v;
}

/* `calls` of one command in INFO commandstats (0 when never called). */
static long long cmdstat_calls(brisk_client *admin, const char *command) {
  brisk_reply *r = NULL;
  long long v = -1;
  char needle[128];
  snprintf(needle, sizeof needle, "cmdstat_%s:calls=", command);
  if (CHECK_OK(BT_CMD(admin, &r, "INFO", "commandstats"))) {
    const char *s = brisk_reply_string(r, NULL);
    const char *at = s ? strstr(s, needle) : NULL;
    v = at ? atoll(at + strlen(needle)) : 0;
  }
  brisk_reply_free(r);
  return v;
}

/* Normal clients the server has, the admin's own connection not counted (CLIENT LIST). */
static long long server_clients(brisk_client *admin) {
  long long all = bt_normal_clients(admin);
  return all < 0 ? -1 : all - 1;
}

/* CLIENT KILL TYPE normal from the admin connection (which the server skips): the count. */
static long long kill_normal_clients(brisk_client *admin) {
  brisk_reply *r = NULL;
  long long n = -1;
  if (CHECK_OK(BT_CMD(admin, &r, "CLIENT", "KILL", "TYPE", "normal")))
    n = (long long)brisk_reply_integer(r);
  brisk_reply_free(r);
  return n;
}

/* Waits (deadline) until the server has exactly n normal clients besides the admin: closes
 * of clients freed earlier reach it asynchronously. */
static void wait_server_clients(brisk_client *admin, long long n) {
  int held;
  BT_WAIT_UNTIL(held, server_clients(admin) == n, bt_scaled_ms(5000));
  if (!held)
    bt_fail(__FILE__, __LINE__, "the server has %lld normal clients, expected %lld",
            server_clients(admin), n);
}

/* Opens n connections at once (sessions held together), then gives them back. */
static void fill_pool(brisk_client *c, int n) {
  brisk_session *s[16];
  int i;
  REQUIRE(n <= 16);
  for (i = 0; i < n; i++) {
    brisk_reply *r = NULL;
    REQUIRE_OK(brisk_session_new(c, &s[i]));
    CHECK_OK(brisk_session_command(s[i], 1, (const char *const[]){"PING"}, NULL, &r));
    CHECK_REPLY_STR(r, "PONG");
    brisk_reply_free(r);
  }
  for (i = 0; i < n; i++) brisk_session_free(s[i]);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_POOL_OPEN), n);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_POOL_IDLE), n);
}

/* Failures seen on worker threads (bt_fail is for the main thread). */
static atomic_int thread_failures;
static pthread_mutex_t thread_fail_mu = PTHREAD_MUTEX_INITIALIZER;

static void tfail(const char *fmt, ...) {
  va_list ap;
  int n = atomic_fetch_add(&thread_failures, 1);
  if (n >= 20) return; /* the first few are enough */
  pthread_mutex_lock(&thread_fail_mu);
  fprintf(stderr, "  worker failure in %s: ", bt_case);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  pthread_mutex_unlock(&thread_fail_mu);
}

#define CHECK_NO_THREAD_FAILURES()                                                      \
  do {                                                                                  \
    int bt_n_ = atomic_exchange(&thread_failures, 0);                                   \
    if (bt_n_ != 0) bt_fail(__FILE__, __LINE__, "%d failure(s) on worker threads", bt_n_); \
  } while (0)

/* ---- events ----------------------------------------------------------------------------- */

#define REC_MAX 2048

typedef struct seen {
  brisk_event_kind kind;
  brisk_status status;
  char name[64];
  uint64_t duration_us;
  uint32_t attempt;
  char address[128];
  char error_type[64]; /* "" when NULL */
  int has_error_type;
  uint32_t batch_size;
  uint32_t db;
} seen;

typedef struct recorder {
  pthread_mutex_t mu;
  seen ev[REC_MAX];
  size_t n;
  size_t dropped;
  pid_t resume_on_failed_check; /* SIGCONT to it when a health check fails (0: none) */
  atomic_int bad_name_len;      /* brisk_event_command_name's len disagreed with strlen */
} recorder;

static recorder rec = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0, 0, 0, 0};

static void on_event(void *userdata, const brisk_event *e) {
  recorder *r = (recorder *)userdata;
  seen s;
  size_t name_len = 12345;
  const char *name = brisk_event_command_name(e, &name_len);
  const char *addr = brisk_event_server_address(e);
  const char *et = brisk_event_error_type(e);
  memset(&s, 0, sizeof s);
  if (name == NULL || strlen(name) != name_len) atomic_fetch_add(&r->bad_name_len, 1);
  s.kind = brisk_event_kind_of(e);
  s.status = brisk_event_status(e);
  snprintf(s.name, sizeof s.name, "%s", name ? name : "");
  s.duration_us = brisk_event_duration_us(e);
  s.attempt = brisk_event_attempt(e);
  snprintf(s.address, sizeof s.address, "%s", addr ? addr : "");
  s.has_error_type = et != NULL;
  snprintf(s.error_type, sizeof s.error_type, "%s", et ? et : "");
  s.batch_size = brisk_event_batch_size(e);
  s.db = brisk_event_db(e);
  if (s.kind == BRISK_EVENT_HEALTH_CHECK && s.status != BRISK_OK && r->resume_on_failed_check > 0)
    kill(r->resume_on_failed_check, SIGCONT);
  pthread_mutex_lock(&r->mu);
  if (r->n < REC_MAX)
    r->ev[r->n++] = s;
  else
    r->dropped++;
  pthread_mutex_unlock(&r->mu);
}

static void rec_clear(void) {
  CHECK_EQ_U(atomic_exchange(&rec.bad_name_len, 0), 0);
  pthread_mutex_lock(&rec.mu);
  rec.n = 0;
  rec.dropped = 0;
  pthread_mutex_unlock(&rec.mu);
}

/* Copies the events of `kind` (all when kind < 0) into out; returns how many. */
static size_t rec_of(int kind, seen *out, size_t max) {
  size_t i, k = 0;
  pthread_mutex_lock(&rec.mu);
  for (i = 0; i < rec.n && k < max; i++)
    if (kind < 0 || rec.ev[i].kind == (brisk_event_kind)kind) out[k++] = rec.ev[i];
  pthread_mutex_unlock(&rec.mu);
  return k;
}

static void install_recorder(brisk_config *cfg) {
  rec_clear();
  rec.resume_on_failed_check = 0;
  REQUIRE_OK(brisk_config_set_event_callback(cfg, on_event, &rec));
}

static seen scratch[REC_MAX];

/* ---- a command on another thread ---------------------------------------------------------- */

typedef struct job {
  brisk_client *c;
  const char *argv[8];
  size_t argc;
  brisk_status status;
  char message[512];
  brisk_reply *reply;
  int64_t took_ms;
  pthread_t thread;
} job;

static void *job_run(void *arg) {
  job *j = (job *)arg;
  int64_t started = bt_now_ms();
  j->status = brisk_command(j->c, j->argc, j->argv, NULL, &j->reply);
  j->took_ms = bt_now_ms() - started;
  snprintf(j->message, sizeof j->message, "%s", brisk_last_error_message());
  return NULL;
}

static void job_start(job *j, brisk_client *c, const char *a0, const char *a1, const char *a2) {
  memset(j, 0, sizeof *j);
  j->c = c;
  j->argv[j->argc++] = a0;
  if (a1) j->argv[j->argc++] = a1;
  if (a2) j->argv[j->argc++] = a2;
  REQUIRE(pthread_create(&j->thread, NULL, job_run, j) == 0);
}

static void job_join(job *j) { pthread_join(j->thread, NULL); }

/* ---- 1. load: 32 threads, one client, 8 connections --------------------------------------- */

#define POOL_SIZE 8

typedef struct load_worker {
  brisk_client *c;
  int t;
  long per_thread;
  long commands; /* issued, a pipeline counting its commands */
  long incrs;
  pthread_t thread;
} load_worker;

static int reply_is_int(const brisk_reply *r, long long want) {
  return brisk_reply_type_of(r) == BRISK_REPLY_INTEGER && brisk_reply_integer(r) == want;
}

static void *load_run(void *arg) {
  load_worker *w = (load_worker *)arg;
  char key[64], hash[64], list[64], value[64] = "", field[16], num[32];
  long fields[16];
  long pushes = 0, i = 0;
  int f;
  snprintf(key, sizeof key, "load:%d:s", w->t);
  snprintf(hash, sizeof hash, "load:%d:h", w->t);
  snprintf(list, sizeof list, "load:%d:l", w->t);
  for (f = 0; f < 16; f++) fields[f] = -1;
  while (w->commands < w->per_thread) {
    brisk_reply *r = NULL;
    brisk_status st;
    long left = w->per_thread - w->commands;
    i++;
    snprintf(field, sizeof field, "f%ld", i % 16);
    snprintf(num, sizeof num, "%ld", i);
    switch (i % 8) {
      case 0:
        snprintf(value, sizeof value, "%d:%ld", w->t, i);
        st = BT_CMD(w->c, &r, "SET", key, value);
        if (st != BRISK_OK || !bt_reply_is(r, "OK")) tfail("SET: %s", brisk_status_name(st));
        break;
      case 1:
      case 6:
        st = BT_CMD(w->c, &r, "GET", key);
        if (st != BRISK_OK)
          tfail("GET: %s %s", brisk_status_name(st), brisk_last_error_message());
        else if (value[0] ? !bt_reply_is(r, value) : brisk_reply_type_of(r) != BRISK_REPLY_NIL)
          tfail("GET %s: not %s", key, value);
        break;
      case 2:
        st = BT_CMD(w->c, &r, "INCR", "load:counter");
        if (st != BRISK_OK || brisk_reply_integer(r) <= 0) tfail("INCR: %s", brisk_status_name(st));
        w->incrs++;
        break;
      case 3:
        st = BT_CMD(w->c, &r, "HSET", hash, field, num);
        if (st != BRISK_OK || !reply_is_int(r, fields[i % 16] < 0 ? 1 : 0))
          tfail("HSET: %s", brisk_status_name(st));
        fields[i % 16] = i;
        break;
      case 4:
        pushes++;
        st = BT_CMD(w->c, &r, "LPUSH", list, num);
        if (st != BRISK_OK || !reply_is_int(r, pushes)) tfail("LPUSH: %s", brisk_status_name(st));
        break;
      case 5:
        if (left >= 4) {
          brisk_pipeline *p = NULL;
          snprintf(value, sizeof value, "%d:%ld:p", w->t, i);
          if (brisk_pipeline_new(w->c, &p) != BRISK_OK) {
            tfail("pipeline_new");
            break;
          }
          brisk_pipeline_append(p, 3, (const char *const[]){"SET", key, value}, NULL);
          brisk_pipeline_append(p, 2, (const char *const[]){"GET", key}, NULL);
          brisk_pipeline_append(p, 2, (const char *const[]){"INCR", "load:counter"}, NULL);
          brisk_pipeline_append(p, 2, (const char *const[]){"LLEN", list}, NULL);
          st = brisk_pipeline_exec(p, &r);
          if (st != BRISK_OK || brisk_reply_length(r) != 4 ||
              !bt_reply_is(brisk_reply_element(r, 0), "OK") ||
              !bt_reply_is(brisk_reply_element(r, 1), value) ||
              brisk_reply_integer(brisk_reply_element(r, 2)) <= 0 ||
              !reply_is_int(brisk_reply_element(r, 3), pushes))
            tfail("pipeline: %s %s", brisk_status_name(st), brisk_last_error_message());
          brisk_pipeline_free(p);
          w->incrs++;
          w->commands += 3; /* and one more below */
          break;
        }
        /* too few commands left for a pipeline: an HGET instead */
        /* fall through */
      default:
        st = BT_CMD(w->c, &r, "HGET", hash, field);
        if (st != BRISK_OK) {
          tfail("HGET: %s", brisk_status_name(st));
        } else if (fields[i % 16] < 0) {
          if (brisk_reply_type_of(r) != BRISK_REPLY_NIL) tfail("HGET: not nil");
        } else {
          snprintf(num, sizeof num, "%ld", fields[i % 16]);
          if (!bt_reply_is(r, num)) tfail("HGET: not %s", num);
        }
        break;
    }
    brisk_reply_free(r);
    w->commands++;
  }
  return NULL;
}

typedef struct monitor {
  brisk_client *c, *admin;
  atomic_int done;
  uint64_t max_open;
  long long max_server;
  long samples, server_samples;
  pthread_t thread;
} monitor;

static void *monitor_run(void *arg) {
  monitor *m = (monitor *)arg;
  int64_t last_server_look = 0;
  while (!atomic_load(&m->done)) {
    uint64_t open = stat_of(m->c, BRISK_STAT_POOL_OPEN);
    if (open > m->max_open) m->max_open = open;
    m->samples++;
    if (bt_now_ms() - last_server_look >= 200) {
      long long n = server_clients(m->admin);
      if (n > m->max_server) m->max_server = n;
      m->server_samples++;
      last_server_look = bt_now_ms();
    }
    bt_sleep_ms(1); /* sampling interval */
  }
  return NULL;
}

static void thirty_two_threads_share_one_client_of_eight_connections(void) {
  int threads = 32;
  long per_thread = bt_under_valgrind() ? 100 : 5000; /* valgrind: 32 x 100 */
  load_worker w[32];
  monitor m;
  brisk_client *admin = admin_client();
  brisk_config *cfg = srv_config();
  brisk_client *c;
  long total = 0, incrs = 0;
  int64_t started, took;
  int i;
  REQUIRE_OK(brisk_config_set_pool_size(cfg, POOL_SIZE));
  c = bt_client_from(cfg);
  CHECK_OK(BT_CMD(admin, NULL, "DEL", "load:counter"));
  long long incr_calls_before = cmdstat_calls(admin, "incr");

  memset(&m, 0, sizeof m);
  m.c = c;
  m.admin = admin;
  atomic_init(&m.done, 0);
  REQUIRE(pthread_create(&m.thread, NULL, monitor_run, &m) == 0);
  started = bt_now_ms();
  for (i = 0; i < threads; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].c = c;
    w[i].t = i;
    w[i].per_thread = per_thread;
    REQUIRE(pthread_create(&w[i].thread, NULL, load_run, &w[i]) == 0);
  }
  for (i = 0; i < threads; i++) {
    pthread_join(w[i].thread, NULL);
    total += w[i].commands;
    incrs += w[i].incrs;
  }
  took = bt_now_ms() - started;
  atomic_store(&m.done, 1);
  pthread_join(m.thread, NULL);

  fprintf(stderr,
          "  load: %ld commands from %d threads in %lld ms (%.0f/s); pool open max %llu over %ld "
          "samples, server clients max %lld over %ld samples; pool waits %llu, connects %llu\n",
          total, threads, (long long)took, took > 0 ? total * 1000.0 / (double)took : 0.0,
          (unsigned long long)m.max_open, m.samples, m.max_server, m.server_samples,
          (unsigned long long)stat_of(c, BRISK_STAT_POOL_WAITS),
          (unsigned long long)stat_of(c, BRISK_STAT_CONNECTS));
  CHECK_NO_THREAD_FAILURES();
  CHECK_EQ_U(total, (long)threads * per_thread);
  CHECK(m.samples >= 10);
  CHECK(m.server_samples >= 1);
  CHECK(m.max_open >= 1 && m.max_open <= POOL_SIZE);
  CHECK(m.max_server <= POOL_SIZE);
  CHECK(stat_of(c, BRISK_STAT_POOL_OPEN) <= POOL_SIZE);
  CHECK(server_clients(admin) <= POOL_SIZE);
  /* The counters add up. */
  CHECK_EQ_U(stat_of(c, BRISK_STAT_COMMANDS), total);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_ERRORS), 0);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_RETRIES), 0);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_TIMEOUTS), 0);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_POOL_EXHAUSTED), 0);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_RECONNECTS), 0);
  CHECK(stat_of(c, BRISK_STAT_CONNECTS) >= 1 && stat_of(c, BRISK_STAT_CONNECTS) <= POOL_SIZE);
  /* More threads than connections: some had to queue. */
  CHECK(stat_of(c, BRISK_STAT_POOL_WAITS) > 0);
  /* The server agrees about the work done. */
  CHECK_EQ_U(counter(c, "load:counter"), incrs);
  CHECK_EQ_U(cmdstat_calls(admin, "incr") - incr_calls_before, incrs);
  brisk_client_free(c);
  brisk_client_free(admin);
}

/* ---- 2. connections killed between commands ---------------------------------------------- */

typedef struct kill_worker {
  brisk_client *c;
  int t, round;
  pthread_t thread;
} kill_worker;

static void *kill_worker_run(void *arg) {
  kill_worker *w = (kill_worker *)arg;
  char key[64], value[64], round_key[64];
  int i;
  snprintf(key, sizeof key, "kill:%d", w->t);
  snprintf(round_key, sizeof round_key, "kill:round:%d", w->round);
  for (i = 0; i < 50; i++) {
    brisk_reply *r = NULL;
    brisk_status st;
    snprintf(value, sizeof value, "%d:%d", w->round, i);
    st = BT_CMD(w->c, NULL, "SET", key, value);
    if (st != BRISK_OK) tfail("SET: %s: %s", brisk_status_name(st), brisk_last_error_message());
    st = BT_CMD(w->c, &r, "GET", key);
    if (st != BRISK_OK || !bt_reply_is(r, value))
      tfail("GET: %s: %s", brisk_status_name(st), brisk_last_error_message());
    brisk_reply_free(r);
    st = BT_CMD(w->c, NULL, "INCR", round_key);
    if (st != BRISK_OK) tfail("INCR: %s: %s", brisk_status_name(st), brisk_last_error_message());
  }
  return NULL;
}

static void connections_killed_between_commands_are_replaced(void) {
  brisk_client *admin = admin_client();
  brisk_config *cfg = srv_config();
  brisk_client *c;
  uint64_t reconnects = 0;
  size_t n, i, lost = 0;
  int round;
  REQUIRE_OK(brisk_config_set_pool_size(cfg, 4));
  install_recorder(cfg);
  c = bt_client_from(cfg);
  for (round = 0; round < 3; round++) {
    kill_worker w[4];
    char round_key[64];
    int t;
    fill_pool(c, 4);
    wait_server_clients(admin, 4);
    CHECK_EQ_U(kill_normal_clients(admin), 4); /* all four pooled connections */
    for (t = 0; t < 4; t++) {
      w[t].c = c;
      w[t].t = t;
      w[t].round = round;
      REQUIRE(pthread_create(&w[t].thread, NULL, kill_worker_run, &w[t]) == 0);
    }
    for (t = 0; t < 4; t++) pthread_join(w[t].thread, NULL);
    CHECK_NO_THREAD_FAILURES();
    snprintf(round_key, sizeof round_key, "kill:round:%d", round);
    CHECK_EQ_U(counter(c, round_key), 200);
    CHECK(stat_of(c, BRISK_STAT_RECONNECTS) > reconnects);
    reconnects = stat_of(c, BRISK_STAT_RECONNECTS);
  }
  CHECK_EQ_U(stat_of(c, BRISK_STAT_ERRORS), 0);
  CHECK(stat_of(c, BRISK_STAT_POOL_OPEN) <= 4);
  n = rec_of(BRISK_EVENT_DISCONNECT, scratch, REC_MAX);
  for (i = 0; i < n; i++)
    if (scratch[i].status == BRISK_ERR_CONNECTION) lost++;
  if (lost < 12) fprintf(stderr, "  %zu DISCONNECT events for lost connections\n", lost);
  CHECK(lost >= 12);
  brisk_client_free(c);
  brisk_client_free(admin);
}

/* Readers loop on GET while the admin kills every normal connection, ten times. Between two
 * kills every reader completes reads of its own, so no read is in flight through more than one
 * kill (however slowly a loaded machine runs one reader): the default retries always suffice. */
typedef struct reader {
  brisk_client *c;
  atomic_int *stop;
  atomic_long reads;
  pthread_t thread;
} reader;

static void *reader_run(void *arg) {
  reader *rd = (reader *)arg;
  while (!atomic_load(rd->stop)) {
    brisk_reply *r = NULL;
    brisk_status st = BT_CMD(rd->c, &r, "GET", "rk");
    if (st != BRISK_OK || !bt_reply_is(r, "v"))
      tfail("GET: %s: %s", brisk_status_name(st), brisk_last_error_message());
    brisk_reply_free(r);
    atomic_fetch_add(&rd->reads, 1);
  }
  return NULL;
}

/* Whether each of the 4 readers completed `n` more reads within 10 s. */
static int every_reader_read(reader *rd, long n) {
  long before[4];
  int i, held;
  for (i = 0; i < 4; i++) before[i] = atomic_load(&rd[i].reads);
  BT_WAIT_UNTIL(held,
                atomic_load(&rd[0].reads) >= before[0] + n &&
                    atomic_load(&rd[1].reads) >= before[1] + n &&
                    atomic_load(&rd[2].reads) >= before[2] + n &&
                    atomic_load(&rd[3].reads) >= before[3] + n,
                bt_scaled_ms(10000));
  return held;
}

static void connections_killed_under_read_load_never_fail_a_read(void) {
  brisk_client *admin = admin_client();
  brisk_config *cfg = srv_config();
  brisk_client *c;
  atomic_int stop;
  reader rd[4];
  long long kills = 0, k;
  long total = 0;
  int i, ok = 1;
  REQUIRE_OK(brisk_config_set_pool_size(cfg, 4));
  c = bt_client_from(cfg);
  REQUIRE_OK(BT_CMD(c, NULL, "SET", "rk", "v"));
  atomic_init(&stop, 0);
  for (i = 0; i < 4; i++) {
    rd[i].c = c;
    rd[i].stop = &stop;
    atomic_init(&rd[i].reads, 0);
    REQUIRE(pthread_create(&rd[i].thread, NULL, reader_run, &rd[i]) == 0);
  }
  for (i = 0; i < 10; i++) {
    ok &= every_reader_read(rd, 12);
    k = kill_normal_clients(admin);
    if (k > 0) kills += k;
  }
  ok &= every_reader_read(rd, 12);
  atomic_store(&stop, 1);
  for (i = 0; i < 4; i++) {
    pthread_join(rd[i].thread, NULL);
    total += atomic_load(&rd[i].reads);
  }
  fprintf(stderr, "  read load: %ld GETs, %lld connections killed, %llu reconnects, %llu retries\n",
          total, kills, (unsigned long long)stat_of(c, BRISK_STAT_RECONNECTS),
          (unsigned long long)stat_of(c, BRISK_STAT_RETRIES));
  CHECK(ok); /* reads went on between and after the kills */
  CHECK_NO_THREAD_FAILURES();
  CHECK(kills >= 10); /* every kill found at least one connection */
  CHECK(stat_of(c, BRISK_STAT_RECONNECTS) >= 10);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_ERRORS), 0);
  brisk_client_free(c);
  brisk_client_free(admin);
}

/* ---- 3. the server restarted on the same port ------------------------------------------- */

typedef struct restart_loader {
  brisk_client *c;
  int t;
  atomic_int *stop;
  atomic_long *ops;
  int write_failures;
  pthread_t thread;
} restart_loader;

static void *restart_loader_run(void *arg) {
  restart_loader *l = (restart_loader *)arg;
  long i = 0;
  while (!atomic_load(l->stop)) {
    char key[64];
    brisk_status st;
    i++;
    snprintf(key, sizeof key, "restart:%d:%ld", l->t, i % 10);
    if (i % 2 == 0) {
      st = BT_CMD(l->c, NULL, "SET", key, "x");
      if (st != BRISK_OK) {
        const char *msg = brisk_last_error_message();
        l->write_failures++;
        if (st != BRISK_ERR_CONNECTION || strstr(msg, "may have been applied") == NULL)
          tfail("SET failed otherwise: %s: %s", brisk_status_name(st), msg);
      }
    } else {
      st = BT_CMD(l->c, NULL, "GET", key);
      if (st != BRISK_OK)
        tfail("GET failed: %s: %s", brisk_status_name(st), brisk_last_error_message());
    }
    atomic_fetch_add(l->ops, 1);
  }
  return NULL;
}

static int progressed(atomic_long *ops, long n) {
  long before = atomic_load(ops);
  int held;
  BT_WAIT_UNTIL(held, atomic_load(ops) >= before + n, bt_scaled_ms(10000));
  return held;
}

static void server_restarted_on_the_same_port(void) {
  uint16_t port = srv.port;
  brisk_config *cfg = srv_config();
  brisk_client *c, *c2;
  job j;
  int held, t;
  size_t n, i;
  brisk_reply *r = NULL;
  bt_set_constant_retry(cfg, 50, 100); /* a 5 s budget */
  REQUIRE_OK(brisk_config_set_connect_timeout_ms(cfg, 1000));
  REQUIRE_OK(brisk_config_set_read_timeout_ms(cfg, 1000));
  install_recorder(cfg);
  c = bt_client_from(cfg);
  REQUIRE_OK(BT_CMD(c, NULL, "SET", "before", "1"));

  /* Down, and back once the client has been seen retrying: the command issued during the
   * outage succeeds. */
  bt_server_kill(&srv);
  job_start(&j, c, "SET", "during", "1");
  BT_WAIT_UNTIL(held, stat_of(c, BRISK_STAT_RETRIES) >= 3, bt_scaled_ms(10000));
  CHECK(held); /* the client retried while the server was down */
  REQUIRE(bt_server_start_on(&srv, port));
  job_join(&j);
  if (!CHECK_STATUS(j.status, BRISK_OK)) fprintf(stderr, "  SET during: %s\n", j.message);
  brisk_reply_free(j.reply);
  CHECK(j.took_ms >= 100);
  CHECK_EQ_U(srv.port, port);
  /* A real restart: the old data set is gone, the new write is there. */
  if (CHECK_OK(BT_CMD(c, &r, "GET", "before"))) CHECK(brisk_reply_type_of(r) == BRISK_REPLY_NIL);
  brisk_reply_free(r);
  CHECK_CMD_REPLY(c, "1", "GET", "during");
  CHECK(stat_of(c, BRISK_STAT_RECONNECTS) >= 1);
  n = rec_of(BRISK_EVENT_RETRY, scratch, REC_MAX);
  CHECK(n >= 3);
  for (i = 0; i < n; i++) {
    CHECK(scratch[i].status == BRISK_ERR_CONNECTION);
    CHECK(strcmp(scratch[i].name, "SET") == 0);
  }
  CHECK_EQ_U(stat_of(c, BRISK_STAT_ERRORS), 0);

  /* Killed and restarted under load: reads all succeed; a write in flight at the kill may be
   * reported as "may have been applied" (CONNECTION), nothing else fails. */
  {
    atomic_int stop;
    atomic_long ops;
    restart_loader l[2];
    uint64_t retries_before = stat_of(c, BRISK_STAT_RETRIES);
    atomic_init(&stop, 0);
    atomic_init(&ops, 0);
    for (t = 0; t < 2; t++) {
      memset(&l[t], 0, sizeof l[t]);
      l[t].c = c;
      l[t].t = t;
      l[t].stop = &stop;
      l[t].ops = &ops;
      REQUIRE(pthread_create(&l[t].thread, NULL, restart_loader_run, &l[t]) == 0);
    }
    CHECK(progressed(&ops, 100));
    bt_server_kill(&srv);
    BT_WAIT_UNTIL(held, stat_of(c, BRISK_STAT_RETRIES) >= retries_before + 2, bt_scaled_ms(10000));
    CHECK(held); /* somebody retried during the outage */
    REQUIRE(bt_server_start_on(&srv, port));
    CHECK(progressed(&ops, 100));
    atomic_store(&stop, 1);
    for (t = 0; t < 2; t++) {
      pthread_join(l[t].thread, NULL);
      CHECK(l[t].write_failures <= 1);
    }
    CHECK_NO_THREAD_FAILURES();
  }
  brisk_client_free(c);

  /* Down for longer than the retry budget: CONNECTION, naming the attempts. */
  cfg = srv_config();
  bt_set_constant_retry(cfg, 50, 4);
  c2 = bt_client_from(cfg);
  CHECK_OK(brisk_ping(c2));
  bt_server_kill(&srv);
  {
    int64_t started = bt_now_ms(), took;
    CHECK_STATUS(BT_CMD(c2, NULL, "GET", "k"), BRISK_ERR_CONNECTION);
    took = bt_now_ms() - started;
    CHECK_STR_CONTAINS(brisk_last_error_message(), "after 5 attempts");
    CHECK_STR_CONTAINS(brisk_last_error_message(), "refused");
    CHECK_BETWEEN(took, 150, 3000);
  }
  REQUIRE(bt_server_start_on(&srv, port));
  CHECK_OK(brisk_ping(c2));
  CHECK_EQ_U(stat_of(c2, BRISK_STAT_RETRIES), 4);
  CHECK_EQ_U(stat_of(c2, BRISK_STAT_ERRORS), 1);
  brisk_client_free(c2);
}

/* ---- 4. a stalled server (SIGSTOP) ------------------------------------------------------- */

static void reads_on_a_stalled_server_time_out_and_are_retried(void) {
  brisk_config *cfg = srv_config();
  brisk_client *c;
  job j;
  int held;
  size_t n;
  REQUIRE_OK(brisk_config_set_read_timeout_ms(cfg, 300));
  bt_set_constant_retry(cfg, 20, 5);
  install_recorder(cfg);
  c = bt_client_from(cfg);
  REQUIRE_OK(BT_CMD(c, NULL, "SET", "k", "v"));
  rec_clear();

  bt_server_pause(&srv);
  job_start(&j, c, "GET", "k", NULL);
  BT_WAIT_UNTIL(held, stat_of(c, BRISK_STAT_TIMEOUTS) >= 1, bt_scaled_ms(10000));
  bt_server_resume(&srv);
  CHECK(held); /* the read timed out */
  job_join(&j);
  if (!CHECK_STATUS(j.status, BRISK_OK)) fprintf(stderr, "  GET: %s\n", j.message);
  CHECK_REPLY_STR(j.reply, "v");
  brisk_reply_free(j.reply);
  CHECK_BETWEEN(j.took_ms, 250, 3000); /* one read timeout, then a retry */
  CHECK(stat_of(c, BRISK_STAT_TIMEOUTS) >= 1);
  CHECK(stat_of(c, BRISK_STAT_RETRIES) >= 1);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_ERRORS), 0);

  /* The first attempt timed out within its bound and was retried. */
  n = rec_of(BRISK_EVENT_RETRY, scratch, REC_MAX);
  REQUIRE(n >= 1);
  CHECK(strcmp(scratch[0].name, "GET") == 0);
  CHECK_STATUS(scratch[0].status, BRISK_ERR_TIMEOUT);
  CHECK_EQ_U(scratch[0].attempt, 1);
  CHECK_BETWEEN((int64_t)(scratch[0].duration_us / 1000), 250, 2000);
  CHECK(strcmp(scratch[0].error_type, "BRISK_ERR_TIMEOUT") == 0);
  n = rec_of(BRISK_EVENT_COMMAND, scratch, REC_MAX);
  REQUIRE(n >= 1);
  CHECK(strcmp(scratch[n - 1].name, "GET") == 0);
  CHECK_STATUS(scratch[n - 1].status, BRISK_OK);
  CHECK_EQ_U(scratch[n - 1].attempt, stat_of(c, BRISK_STAT_RETRIES) + 1);
  brisk_client_free(c);
}

/* How the INCRs of a loop ended, as the caller sees them. */
typedef struct incr_loop {
  brisk_client *c;
  const char *key;
  atomic_int stop;
  atomic_long succeeded;
  long maybe_applied; /* failed after sending: "may have been applied" (SAFE mode) */
  long other;         /* TIMEOUT/CONNECTION without that note */
  pthread_t thread;
} incr_loop;

static void *incr_loop_run(void *arg) {
  incr_loop *l = (incr_loop *)arg;
  while (!atomic_load(&l->stop)) {
    brisk_reply *r = NULL;
    brisk_status st = BT_CMD(l->c, &r, "INCR", l->key);
    if (st == BRISK_OK) {
      if (brisk_reply_integer(r) <= 0) tfail("INCR gave %lld", (long long)brisk_reply_integer(r));
      atomic_fetch_add(&l->succeeded, 1);
    } else if (strstr(brisk_last_error_message(), "may have been applied") != NULL) {
      l->maybe_applied++;
    } else if (st == BRISK_ERR_TIMEOUT || st == BRISK_ERR_CONNECTION) {
      l->other++;
    } else {
      tfail("INCR: %s: %s", brisk_status_name(st), brisk_last_error_message());
    }
    brisk_reply_free(r);
  }
  return NULL;
}

/* INCRs in a loop on one thread while the server is stalled `cycles` times (each stall lasts
 * until a read has timed out). Fills `l`; returns the final counter. */
static long long incr_loop_under_stalls(brisk_client *c, const char *key, int cycles,
                                        incr_loop *l) {
  int k, held, ok = 1;
  memset(l, 0, sizeof *l);
  l->c = c;
  l->key = key;
  atomic_init(&l->stop, 0);
  atomic_init(&l->succeeded, 0);
  REQUIRE(pthread_create(&l->thread, NULL, incr_loop_run, l) == 0);
  for (k = 0; k < cycles; k++) {
    long before = atomic_load(&l->succeeded);
    uint64_t timeouts;
    BT_WAIT_UNTIL(held, atomic_load(&l->succeeded) >= before + 20, bt_scaled_ms(10000));
    ok &= held;
    timeouts = stat_of(c, BRISK_STAT_TIMEOUTS);
    bt_server_pause(&srv);
    BT_WAIT_UNTIL(held, stat_of(c, BRISK_STAT_TIMEOUTS) > timeouts, bt_scaled_ms(10000));
    bt_server_resume(&srv);
    ok &= held;
  }
  /* Progress after the last stall also means the server has worked through whatever the
   * stalled connections had sent. */
  {
    long before = atomic_load(&l->succeeded);
    BT_WAIT_UNTIL(held, atomic_load(&l->succeeded) >= before + 20, bt_scaled_ms(10000));
    ok &= held;
  }
  atomic_store(&l->stop, 1);
  pthread_join(l->thread, NULL);
  CHECK(ok); /* every stall and the progress after it happened */
  CHECK_NO_THREAD_FAILURES();
  return counter(c, key);
}

static void safe_mode_never_replays_an_incr_that_timed_out_after_sending(void) {
  brisk_config *cfg = srv_config();
  brisk_client *c;
  incr_loop l;
  long long value;
  long succeeded;
  REQUIRE_OK(brisk_config_set_read_timeout_ms(cfg, 300));
  bt_set_constant_retry(cfg, 50, 3);
  REQUIRE_OK(brisk_config_set_retry_writes(cfg, BRISK_RETRY_WRITES_SAFE));
  c = bt_client_from(cfg);
  REQUIRE_OK(brisk_ping(c));
  value = incr_loop_under_stalls(c, "safe:n", 3, &l);
  succeeded = atomic_load(&l.succeeded);
  fprintf(stderr,
          "  SAFE: %ld succeeded, %ld may have been applied, %ld other failures; counter %lld\n",
          succeeded, l.maybe_applied, l.other, value);
  /* Never past what the caller believes succeeded plus what it was told may have been applied,
   * never below what succeeded. */
  CHECK(value >= succeeded);
  CHECK(value <= succeeded + l.maybe_applied); /* else a write was replayed */
  CHECK(l.maybe_applied >= 3);                 /* every stall caught a sent INCR */
  CHECK(stat_of(c, BRISK_STAT_TIMEOUTS) >= 3);
  brisk_client_free(c);
}

static void always_mode_replays_an_incr_that_timed_out_after_sending(void) {
  brisk_config *cfg = srv_config();
  brisk_client *c;
  incr_loop l;
  long long value;
  long succeeded;
  uint64_t retries;
  size_t n, i, incr_retries = 0;
  REQUIRE_OK(brisk_config_set_read_timeout_ms(cfg, 300));
  bt_set_constant_retry(cfg, 50, 3);
  REQUIRE_OK(brisk_config_set_retry_writes(cfg, BRISK_RETRY_WRITES_ALWAYS));
  install_recorder(cfg);
  c = bt_client_from(cfg);
  REQUIRE_OK(brisk_ping(c));
  value = incr_loop_under_stalls(c, "always:n", 3, &l);
  succeeded = atomic_load(&l.succeeded);
  retries = stat_of(c, BRISK_STAT_RETRIES);
  fprintf(stderr,
          "  ALWAYS: %ld succeeded, %ld may have been applied, %ld other failures; counter %lld, "
          "%llu retries\n",
          succeeded, l.maybe_applied, l.other, value, (unsigned long long)retries);
  CHECK_EQ_U(l.maybe_applied, 0); /* ALWAYS never gives up on a sent write for that reason */
  n = rec_of(BRISK_EVENT_RETRY, scratch, REC_MAX);
  for (i = 0; i < n; i++)
    if (strcmp(scratch[i].name, "INCR") == 0 && scratch[i].status == BRISK_ERR_TIMEOUT)
      incr_retries++;
  CHECK(incr_retries >= 3); /* INCRs that timed out were replayed */
  /* At least once: never fewer than succeeded, at most one extra per failed attempt. */
  CHECK(value >= succeeded);
  CHECK(value <= succeeded + (long long)retries + l.other);
  brisk_client_free(c);
}

/* One INCR, the server stalled until the client has seen it time out. */
static void incr_across_one_stall(brisk_client *c, const char *key, job *j) {
  int held;
  bt_server_pause(&srv);
  job_start(j, c, "INCR", key, NULL);
  BT_WAIT_UNTIL(held, stat_of(c, BRISK_STAT_TIMEOUTS) >= 1, bt_scaled_ms(10000));
  bt_server_resume(&srv);
  CHECK(held);
  job_join(j);
}

static void one_incr_across_a_stall_safe_versus_always(void) {
  brisk_config *cfg = srv_config();
  brisk_client *safe, *always;
  job j;
  int held;
  size_t n;
  REQUIRE_OK(brisk_config_set_read_timeout_ms(cfg, 300));
  bt_set_constant_retry(cfg, 20, 3);
  REQUIRE_OK(brisk_client_new(cfg, &safe));
  REQUIRE_OK(brisk_ping(safe));
  CHECK_OK(BT_CMD(safe, NULL, "DEL", "one:safe", "one:always"));

  /* SAFE: reported, not replayed, and the server applied it exactly once. */
  incr_across_one_stall(safe, "one:safe", &j);
  CHECK_STATUS(j.status, BRISK_ERR_TIMEOUT);
  CHECK(j.reply == NULL);
  CHECK_STR_CONTAINS(j.message, "may have been applied");
  CHECK_STR_CONTAINS(j.message, "not retried");
  CHECK_EQ_U(stat_of(safe, BRISK_STAT_RETRIES), 0);
  BT_WAIT_UNTIL(held, counter(safe, "one:safe") == 1, bt_scaled_ms(5000));
  CHECK(held); /* the stalled INCR was applied once the server resumed */

  /* ALWAYS: the caller sees one success, the server applied it twice. */
  REQUIRE_OK(brisk_config_set_retry_writes(cfg, BRISK_RETRY_WRITES_ALWAYS));
  install_recorder(cfg);
  always = bt_client_from(cfg);
  REQUIRE_OK(brisk_ping(always));
  incr_across_one_stall(always, "one:always", &j);
  if (!CHECK_STATUS(j.status, BRISK_OK)) fprintf(stderr, "  INCR: %s\n", j.message);
  CHECK(brisk_reply_type_of(j.reply) == BRISK_REPLY_INTEGER);
  CHECK(brisk_reply_integer(j.reply) >= 1 && brisk_reply_integer(j.reply) <= 2);
  brisk_reply_free(j.reply);
  CHECK(stat_of(always, BRISK_STAT_RETRIES) >= 1);
  n = rec_of(BRISK_EVENT_RETRY, scratch, REC_MAX);
  REQUIRE(n >= 1);
  CHECK(strcmp(scratch[0].name, "INCR") == 0);
  CHECK_STATUS(scratch[0].status, BRISK_ERR_TIMEOUT);
  CHECK_EQ_U(scratch[0].attempt, 1);
  BT_WAIT_UNTIL(held, counter(always, "one:always") == 2, bt_scaled_ms(5000));
  CHECK(held); /* at least once: the stalled INCR and its replay were both applied */
  CHECK_EQ_U(counter(safe, "one:safe"), 1);
  brisk_client_free(safe);
  brisk_client_free(always);
}

/* ---- 5. pool exhaustion ------------------------------------------------------------------ */

typedef struct waiter {
  brisk_client *c;
  brisk_status status;
  char message[512];
  pthread_t thread;
} waiter;

static void *waiter_run(void *arg) {
  waiter *w = (waiter *)arg;
  w->status = brisk_ping(w->c);
  snprintf(w->message, sizeof w->message, "%s", brisk_last_error_message());
  return NULL;
}

static void pool_exhausted_after_the_max_wait(void) {
  brisk_config *cfg = srv_url_config("?pool_size=1&pool_max_wait=200");
  brisk_client *c;
  brisk_session *s = NULL;
  brisk_reply *r = NULL;
  char address[64];
  const char *msg, *at;
  int64_t started, took;
  long waited;
  size_t n;
  int i;
  install_recorder(cfg);
  c = bt_client_from(cfg);
  REQUIRE_OK(brisk_session_new(c, &s));
  CHECK_OK(brisk_session_command(s, 1, (const char *const[]){"PING"}, NULL, &r));
  brisk_reply_free(r);
  rec_clear();

  started = bt_now_ms();
  CHECK_STATUS(brisk_ping(c), BRISK_ERR_POOL_EXHAUSTED);
  took = bt_now_ms() - started;
  msg = brisk_last_error_message();
  fprintf(stderr, "  POOL_EXHAUSTED after %lld ms: %s\n", (long long)took, msg);
  CHECK_BETWEEN(took, 180, 3000);
  CHECK_STR_CONTAINS(msg, "max wait of 200 ms");
  CHECK_STR_CONTAINS(msg, "1 open (pool size 1)");
  CHECK_STR_CONTAINS(msg, "1 busy");
  CHECK_STR_CONTAINS(msg, "0 other callers waiting");
  CHECK_STR_CONTAINS(msg, "this one waited");
  at = strstr(msg, "this one waited ");
  waited = at ? atol(at + strlen("this one waited ")) : -1;
  CHECK_BETWEEN(waited, 180, 3000);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_POOL_WAITS), 1);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_POOL_EXHAUSTED), 1);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_ERRORS), 1);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_RETRIES), 0); /* POOL_EXHAUSTED is not retried */

  n = rec_of(BRISK_EVENT_POOL_WAIT, scratch, REC_MAX);
  CHECK_EQ_U(n, 1);
  if (n >= 1) {
    snprintf(address, sizeof address, "127.0.0.1:%u", (unsigned)srv.port);
    CHECK_STATUS(scratch[0].status, BRISK_ERR_POOL_EXHAUSTED);
    CHECK_BETWEEN((int64_t)(scratch[0].duration_us / 1000), 180, 3000);
    CHECK(strcmp(scratch[0].address, address) == 0);
  }
  n = rec_of(BRISK_EVENT_COMMAND, scratch, REC_MAX);
  CHECK_EQ_U(n, 1);
  if (n >= 1) {
    CHECK(strcmp(scratch[0].name, "PING") == 0);
    CHECK_STATUS(scratch[0].status, BRISK_ERR_POOL_EXHAUSTED);
    CHECK(strcmp(scratch[0].error_type, "BRISK_ERR_POOL_EXHAUSTED") == 0);
  }

  /* Three callers waiting at once: each gives up, each is counted. */
  {
    waiter w[3];
    for (i = 0; i < 3; i++) {
      w[i].c = c;
      REQUIRE(pthread_create(&w[i].thread, NULL, waiter_run, &w[i]) == 0);
    }
    for (i = 0; i < 3; i++) {
      pthread_join(w[i].thread, NULL);
      CHECK_STATUS(w[i].status, BRISK_ERR_POOL_EXHAUSTED);
      CHECK_STR_CONTAINS(w[i].message, "other callers waiting");
    }
  }
  CHECK_EQ_U(stat_of(c, BRISK_STAT_POOL_WAITS), 4);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_POOL_EXHAUSTED), 4);

  brisk_session_free(s);
  CHECK_OK(brisk_ping(c));
  CHECK_EQ_U(stat_of(c, BRISK_STAT_POOL_WAITS), 4); /* a free connection needs no wait */
  brisk_client_free(c);
}

/* ---- 6. health checks -------------------------------------------------------------------- */

static void an_idle_connection_is_pinged_before_the_next_command(void) {
  brisk_client *admin = admin_client();
  brisk_config *cfg = srv_config();
  brisk_client *c;
  long long pings_before;
  size_t n, i, check = REC_MAX, command = REC_MAX;
  char address[64];
  /* An interval far above the gap between two commands, even on a loaded machine. */
  REQUIRE_OK(brisk_config_set_health_check_interval_ms(cfg, 500));
  install_recorder(cfg);
  c = bt_client_from(cfg);
  CHECK_OK(BT_CMD(c, NULL, "SET", "k", "v"));
  CHECK_OK(BT_CMD(c, NULL, "GET", "k"));
  CHECK_EQ_U(stat_of(c, BRISK_STAT_HEALTH_CHECKS), 0); /* used within the interval */
  pings_before = cmdstat_calls(admin, "ping");
  rec_clear();

  bt_sleep_ms(700); /* idle beyond the interval: the passing of time is the condition */
  CHECK_CMD_REPLY(c, "v", "GET", "k");
  CHECK_EQ_U(stat_of(c, BRISK_STAT_HEALTH_CHECKS), 1);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_HEALTH_CHECK_FAILURES), 0);
  CHECK_EQ_U(cmdstat_calls(admin, "ping"), pings_before + 1); /* the server saw the PING */
  n = rec_of(-1, scratch, REC_MAX);
  for (i = 0; i < n; i++) {
    if (scratch[i].kind == BRISK_EVENT_HEALTH_CHECK && check == REC_MAX) check = i;
    if (scratch[i].kind == BRISK_EVENT_COMMAND && command == REC_MAX) command = i;
  }
  CHECK(check < REC_MAX);
  CHECK(command < REC_MAX);
  CHECK(check < command); /* the PING precedes the command */
  if (check < REC_MAX) {
    snprintf(address, sizeof address, "127.0.0.1:%u", (unsigned)srv.port);
    CHECK_STATUS(scratch[check].status, BRISK_OK);
    CHECK(strcmp(scratch[check].address, address) == 0);
  }
  /* Right after, no second check. */
  CHECK_OK(BT_CMD(c, NULL, "GET", "k"));
  CHECK_EQ_U(stat_of(c, BRISK_STAT_HEALTH_CHECKS), 1);
  CHECK_EQ_U(cmdstat_calls(admin, "ping"), pings_before + 1);
  brisk_client_free(c);
  brisk_client_free(admin);
}

static void an_idle_connection_killed_is_replaced(void) {
  brisk_client *admin = admin_client();
  brisk_config *cfg = srv_config();
  brisk_client *c;
  REQUIRE_OK(brisk_config_set_health_check_interval_ms(cfg, 200));
  c = bt_client_from(cfg);
  CHECK_OK(BT_CMD(c, NULL, "SET", "k", "v"));
  wait_server_clients(admin, 1);
  CHECK_EQ_U(kill_normal_clients(admin), 1);
  bt_sleep_ms(350); /* idle beyond the interval */
  CHECK_CMD_REPLY(c, "v", "GET", "k");
  /* The pool's non-blocking peek saw the close first: replaced, counted, no error. */
  CHECK_EQ_U(stat_of(c, BRISK_STAT_RECONNECTS), 1);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_ERRORS), 0);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_HEALTH_CHECK_FAILURES) + stat_of(c, BRISK_STAT_HEALTH_CHECKS),
             0); /* no PING wasted on it */
  brisk_client_free(c);
  brisk_client_free(admin);
}

/* The health-check PING itself fails (the server is stalled; the peek sees nothing wrong): the
 * connection is replaced and the command still succeeds, the failure counted. The event
 * callback resumes the server when it sees the failed check. */
static void a_health_check_that_times_out_replaces_the_connection(void) {
  brisk_config *cfg = srv_url_config("?max_retries=0");
  brisk_client *c;
  int64_t started, took;
  size_t n;
  static const brisk_event_kind want[] = {BRISK_EVENT_HEALTH_CHECK, BRISK_EVENT_DISCONNECT,
                                          BRISK_EVENT_CONNECT, BRISK_EVENT_COMMAND};
  size_t i;
  REQUIRE_OK(brisk_config_set_health_check_interval_ms(cfg, 200));
  REQUIRE_OK(brisk_config_set_read_timeout_ms(cfg, 300));
  install_recorder(cfg);
  c = bt_client_from(cfg);
  CHECK_OK(BT_CMD(c, NULL, "SET", "k", "v"));
  rec_clear();
  bt_sleep_ms(350); /* idle beyond the interval */
  rec.resume_on_failed_check = srv.pid;
  bt_server_pause(&srv);
  started = bt_now_ms();
  CHECK_CMD_REPLY(c, "v", "GET", "k");
  took = bt_now_ms() - started;
  bt_server_resume(&srv); /* the callback did; this keeps srv's state straight */
  rec.resume_on_failed_check = 0;
  CHECK_BETWEEN(took, 250, 3000);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_HEALTH_CHECKS), 1);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_HEALTH_CHECK_FAILURES), 1);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_ERRORS), 0);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_RETRIES), 0);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_RECONNECTS), 1);
  n = rec_of(-1, scratch, REC_MAX);
  CHECK_EQ_U(n, 4);
  for (i = 0; i < n && i < 4; i++) {
    if (scratch[i].kind != want[i])
      bt_fail(__FILE__, __LINE__, "event %zu is kind %u, expected %u", i,
              (unsigned)scratch[i].kind, (unsigned)want[i]);
  }
  if (n >= 4) {
    CHECK_STATUS(scratch[0].status, BRISK_ERR_TIMEOUT);
    CHECK_BETWEEN((int64_t)(scratch[0].duration_us / 1000), 250, 2000);
    CHECK_STATUS(scratch[3].status, BRISK_OK);
    CHECK_EQ_U(scratch[3].attempt, 1);
  }
  brisk_client_free(c);
}

/* ---- 7. BLPOP beyond the read timeout ---------------------------------------------------- */

static void blpop_waits_for_its_own_timeout_not_the_read_timeout(void) {
  brisk_config *cfg = srv_url_config("?read_timeout=500");
  brisk_client *c;
  brisk_reply *r = NULL;
  int64_t started, took;
  size_t n;
  install_recorder(cfg);
  c = bt_client_from(cfg);
  REQUIRE_OK(brisk_ping(c));
  started = bt_now_ms();
  if (CHECK_OK(BT_CMD(c, &r, "BLPOP", "empty", "2")))
    CHECK(brisk_reply_type_of(r) == BRISK_REPLY_NIL);
  took = bt_now_ms() - started;
  brisk_reply_free(r);
  CHECK_BETWEEN(took, 1900, 4500); /* BLPOP's own 2 s */
  CHECK_EQ_U(stat_of(c, BRISK_STAT_TIMEOUTS), 0);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_RETRIES), 0);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_ERRORS), 0);
  n = rec_of(BRISK_EVENT_COMMAND, scratch, REC_MAX);
  REQUIRE(n >= 1);
  CHECK(strcmp(scratch[n - 1].name, "BLPOP") == 0);
  CHECK_STATUS(scratch[n - 1].status, BRISK_OK);
  CHECK_EQ_U(scratch[n - 1].attempt, 1);
  /* The normal read timeout is back afterwards. */
  CHECK_OK(brisk_ping(c));
  CHECK_EQ_U(stat_of(c, BRISK_STAT_POOL_OPEN), 1);
  brisk_client_free(c);
}

/* ---- 8. events --------------------------------------------------------------------------- */

#define SECRET "s3cr3t-Value-Q9"

typedef struct expected_event {
  const char *name;
  brisk_status status;
  const char *error_type; /* NULL: none */
  uint32_t batch_size;
} expected_event;

static void command_events_describe_the_work_and_never_carry_values(void) {
  brisk_config *cfg = srv_url_config("/2");
  brisk_client *c;
  brisk_pipeline *p = NULL;
  brisk_session *s = NULL;
  char address[64];
  const char *secret_key = "key-" SECRET;
  size_t n, i, connect = REC_MAX, first_command = REC_MAX;
  static const expected_event expected[] = {
      {"SET", BRISK_OK, NULL, 1},
      {"GET", BRISK_OK, NULL, 1},
      {"HSET", BRISK_OK, NULL, 1},
      {"LPUSH", BRISK_ERR_SERVER, "WRONGTYPE", 1},
      {"NOSUCHCOMMAND", BRISK_ERR_SERVER, "ERR", 1},
      {"PIPELINE", BRISK_OK, NULL, 3},
      {"MULTI", BRISK_OK, NULL, 2},
      {"GET", BRISK_OK, NULL, 1},
  };
  const size_t n_expected = sizeof expected / sizeof expected[0];
  install_recorder(cfg);
  c = bt_client_from(cfg);
  snprintf(address, sizeof address, "127.0.0.1:%u", (unsigned)srv.port);

  CHECK_OK(BT_CMD(c, NULL, "SET", secret_key, SECRET));
  CHECK_CMD_REPLY(c, SECRET, "GET", secret_key);
  CHECK_OK(BT_CMD(c, NULL, "HSET", "h", "field", SECRET));
  CHECK_STATUS(BT_CMD(c, NULL, "LPUSH", secret_key, SECRET), BRISK_ERR_SERVER);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "WRONGTYPE");
  /* An error whose text quotes the arguments. */
  CHECK_STATUS(BT_CMD(c, NULL, "NOSUCHCOMMAND", SECRET), BRISK_ERR_SERVER);
  CHECK_STR_CONTAINS(brisk_last_error_message(), SECRET);
  REQUIRE_OK(brisk_pipeline_new(c, &p));
  CHECK_OK(brisk_pipeline_append(p, 3, (const char *const[]){"SET", "p1", SECRET}, NULL));
  CHECK_OK(brisk_pipeline_append(p, 2, (const char *const[]){"GET", "p1"}, NULL));
  CHECK_OK(brisk_pipeline_append(p, 2, (const char *const[]){"ECHO", SECRET}, NULL));
  CHECK_OK(brisk_pipeline_exec(p, NULL));
  brisk_pipeline_free(p);
  REQUIRE_OK(brisk_transaction_new(c, &p));
  CHECK_OK(brisk_pipeline_append(p, 2, (const char *const[]){"INCR", "t1"}, NULL));
  CHECK_OK(brisk_pipeline_append(p, 3, (const char *const[]){"SET", "t2", SECRET}, NULL));
  CHECK_OK(brisk_pipeline_exec(p, NULL));
  brisk_pipeline_free(p);
  REQUIRE_OK(brisk_session_new(c, &s));
  CHECK_OK(brisk_session_command(s, 2, (const char *const[]){"GET", secret_key}, NULL, NULL));
  brisk_session_free(s);

  n = rec_of(-1, scratch, REC_MAX);
  CHECK(n > 0);
  for (i = 0; i < n; i++) {
    seen *e = &scratch[i];
    CHECK(strstr(e->name, "s3cr3t") == NULL);
    CHECK(strstr(e->address, "s3cr3t") == NULL);
    CHECK(strstr(e->error_type, "s3cr3t") == NULL);
    CHECK(strcmp(e->address, address) == 0);
    CHECK_EQ_U(e->db, 2);
    if (e->kind == BRISK_EVENT_CONNECT && connect == REC_MAX) connect = i;
    if (e->kind == BRISK_EVENT_COMMAND && first_command == REC_MAX) first_command = i;
    if (e->kind == BRISK_EVENT_COMMAND)
      CHECK(e->duration_us > 0 && e->duration_us < 5000000ULL * (bt_under_valgrind() ? 5 : 1));
  }
  CHECK(connect < REC_MAX);
  if (connect < REC_MAX) CHECK_STATUS(scratch[connect].status, BRISK_OK);
  CHECK(connect < first_command);

  n = rec_of(BRISK_EVENT_COMMAND, scratch, REC_MAX);
  CHECK_EQ_U(n, n_expected);
  for (i = 0; i < n && i < n_expected; i++) {
    seen *e = &scratch[i];
    const expected_event *x = &expected[i];
    int ok = strcmp(e->name, x->name) == 0 && e->status == x->status && e->attempt == 1 &&
             e->batch_size == x->batch_size &&
             (x->error_type ? e->has_error_type && strcmp(e->error_type, x->error_type) == 0
                            : !e->has_error_type);
    if (!ok)
      bt_fail(__FILE__, __LINE__,
              "COMMAND event %zu: got (%s, %s, attempt %u, %s, batch %u), expected (%s, %s, 1, "
              "%s, batch %u)",
              i, e->name, brisk_status_name(e->status), e->attempt,
              e->has_error_type ? e->error_type : "NULL", e->batch_size, x->name,
              brisk_status_name(x->status), x->error_type ? x->error_type : "NULL",
              x->batch_size);
  }
  /* COMMANDS counts what a pipeline or transaction carries. */
  CHECK_EQ_U(stat_of(c, BRISK_STAT_COMMANDS), 5 + 3 + 2 + 1);
  CHECK_EQ_U(stat_of(c, BRISK_STAT_ERRORS), 2);
  brisk_client_free(c);
}

int main(int argc, char **argv) {
  bt_init(argc, argv);
  bt_server_start_or_exit(&srv);
  RUN(thirty_two_threads_share_one_client_of_eight_connections);
  RUN(connections_killed_between_commands_are_replaced);
  RUN(connections_killed_under_read_load_never_fail_a_read);
  RUN(server_restarted_on_the_same_port);
  RUN(reads_on_a_stalled_server_time_out_and_are_retried);
  RUN(safe_mode_never_replays_an_incr_that_timed_out_after_sending);
  RUN(always_mode_replays_an_incr_that_timed_out_after_sending);
  RUN(one_incr_across_a_stall_safe_versus_always);
  RUN(pool_exhausted_after_the_max_wait);
  RUN(an_idle_connection_is_pinged_before_the_next_command);
  RUN(an_idle_connection_killed_is_replaced);
  RUN(a_health_check_that_times_out_replaces_the_connection);
  RUN(blpop_waits_for_its_own_timeout_not_the_read_timeout);
  RUN(command_events_describe_the_work_and_never_carry_values);
  bt_server_cleanup(&srv);
  return bt_finish();
}
