/*
 * test_async: brisk_command_async through the C API.
 *
 *   10,000 commands in flight at once (the private server stalled while they are issued):
 *     every callback exactly once, on a thread other than the caller's, the INCR replies are
 *     1..10,000 each once and the counter ends at 10,000; the same from 4 threads at once
 *   the server SIGKILLed with thousands in flight: every callback exactly once, failures are
 *     CONNECTION or TIMEOUT with a message, no hang; the client recovers once the server is back
 *   the server stalled: every callback TIMEOUT; sent INCRs reported "may have been applied",
 *     never replayed (the counter never exceeds them)
 *   brisk_client_free with commands in flight returns only after every callback ran; those
 *     not completed got BRISK_ERR_CLOSED; also with a BLPOP ... 0 in flight and with commands
 *     waiting in a 60 s retry backoff (free returns at once)
 *   callbacks that start more commands (chains), also while the client is freed
 *   replies (binary string, nil, array, integer) read and freed by the callback; an error reply
 *     is the mapped status with the server's text; NULL/bad arguments are INVALID_ARGUMENT and
 *     the callback is never called
 *   caller dispatch (BRISK_ASYNC_DISPATCH_CALLER): callbacks run only on the thread that calls
 *     brisk_client_async_dispatch, in completion order, exactly once, from a poll() loop on
 *     brisk_client_async_fd (level-triggered, readable while callbacks wait); errors
 *     and the command deadline; brisk_client_free runs every owed callback itself (finished
 *     ones with their outcome, the rest CLOSED); a dispatcher thread other than the submitter
 *   the batch-end hook (brisk_config_set_async_batch_end): after replies that arrive together
 *     one call (not one per callback), each callback followed by a call on its thread, none
 *     after brisk_client_free returned; never in caller dispatch; NULL removes it
 *
 * Faults go to a private redis-server (bt_server.h); the rest uses the fixture server. Every
 * wait has a deadline. Counts shrink under valgrind; the shape of each scenario stays.
 */
#include "brisk_test.h"
#include "bt_server.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#define PREFIX "async"

static bt_server srv;
static pthread_t caller_thread;


/* A client of the private server with this read timeout. */
static brisk_client *srv_client(uint32_t read_timeout_ms) {
  brisk_config *cfg = bt_server_config(&srv);
  REQUIRE_OK(brisk_config_set_read_timeout_ms(cfg, read_timeout_ms));
  return bt_client_from(cfg);
}

/* ---- a tracker: what every callback of a batch did ---------------------------------------- */

enum { KIND_INCR = 1, KIND_SET = 2, KIND_PING = 3, KIND_GET = 4 };

typedef struct tracker tracker;

typedef struct slot {
  tracker *t;
  size_t index;
  int kind;
} slot;

struct tracker {
  size_t n;           /* commands started */
  size_t incr_max;    /* INCR replies must be within 1..incr_max */
  slot *slots;
  atomic_int *calls;  /* per command: callbacks received */
  atomic_uint *status;
  atomic_int *incr_seen; /* per INCR value: how often a reply carried it */
  atomic_long done;
  atomic_long on_caller_thread;
  atomic_long bad;    /* a reply or message that does not fit its status */
  atomic_long ok;
  atomic_long by_status[16];
  atomic_long incr_maybe_applied; /* INCRs failed with "may have been applied" */
};

static void tracker_init(tracker *t, size_t capacity, size_t incr_max) {
  size_t i;
  memset(t, 0, sizeof *t);
  t->incr_max = incr_max;
  t->slots = calloc(capacity, sizeof *t->slots);
  t->calls = calloc(capacity, sizeof *t->calls);
  t->status = calloc(capacity, sizeof *t->status);
  t->incr_seen = calloc(incr_max + 1, sizeof *t->incr_seen);
  REQUIRE(t->slots && t->calls && t->status && t->incr_seen);
  for (i = 0; i < capacity; i++) {
    atomic_init(&t->calls[i], 0);
    atomic_init(&t->status[i], 0);
  }
  for (i = 0; i <= incr_max; i++) atomic_init(&t->incr_seen[i], 0);
  atomic_init(&t->done, 0);
  atomic_init(&t->on_caller_thread, 0);
  atomic_init(&t->bad, 0);
  atomic_init(&t->ok, 0);
  atomic_init(&t->incr_maybe_applied, 0);
  for (i = 0; i < 16; i++) atomic_init(&t->by_status[i], 0);
}

static void tracker_free(tracker *t) {
  free(t->slots);
  free((void *)t->calls);
  free((void *)t->status);
  free((void *)t->incr_seen);
}

static void on_reply(void *userdata, brisk_status status, const char *message,
                     brisk_reply *reply) {
  slot *s = (slot *)userdata;
  tracker *t = s->t;
  int bad = 0;
  if (pthread_equal(pthread_self(), caller_thread)) atomic_fetch_add(&t->on_caller_thread, 1);
  atomic_fetch_add(&t->calls[s->index], 1);
  atomic_store(&t->status[s->index], status);
  atomic_fetch_add(&t->by_status[status < 16 ? status : 15], 1);
  if (message == NULL) bad = 1;
  if (status == BRISK_OK) {
    atomic_fetch_add(&t->ok, 1);
    if (reply == NULL || (message != NULL && message[0] != '\0')) bad = 1;
    if (s->kind == KIND_INCR) {
      int64_t v = brisk_reply_integer(reply);
      if (brisk_reply_type_of(reply) != BRISK_REPLY_INTEGER || v < 1 || (size_t)v > t->incr_max)
        bad = 1;
      else
        atomic_fetch_add(&t->incr_seen[v], 1);
    } else if (s->kind == KIND_SET) {
      if (!bt_reply_is(reply, "OK")) bad = 1;
    } else if (s->kind == KIND_PING) {
      if (!bt_reply_is(reply, "PONG")) bad = 1;
    } else if (s->kind == KIND_GET) {
      brisk_reply_type ty = brisk_reply_type_of(reply);
      if (ty != BRISK_REPLY_STRING && ty != BRISK_REPLY_NIL) bad = 1;
    }
  } else {
    if (reply != NULL || message == NULL || message[0] == '\0') bad = 1;
    if (s->kind == KIND_INCR && message != NULL && strstr(message, "may have been applied"))
      atomic_fetch_add(&t->incr_maybe_applied, 1);
  }
  if (bad) atomic_fetch_add(&t->bad, 1);
  brisk_reply_free(reply); /* the callback owns it */
  atomic_fetch_add(&t->done, 1);
}

/* Starts one command of the batch; returns its status (the slot only counts on OK). */
static brisk_status tracker_start(tracker *t, brisk_client *c, int kind, size_t argc,
                                  const char *const *argv) {
  slot *s = &t->slots[t->n];
  brisk_status st;
  s->t = t;
  s->index = t->n;
  s->kind = kind;
  st = brisk_command_async(c, argc, argv, NULL, on_reply, s);
  if (st == BRISK_OK) t->n++;
  return st;
}

/* Every started command got exactly one callback. */
static void check_exactly_once(tracker *t) {
  size_t i, zero = 0, more = 0;
  for (i = 0; i < t->n; i++) {
    int k = atomic_load(&t->calls[i]);
    if (k == 0) zero++;
    if (k > 1) more++;
  }
  if (zero || more)
    bt_fail(__FILE__, __LINE__, "of %zu commands, %zu got no callback, %zu more than one", t->n,
            zero, more);
  CHECK_EQ_U(atomic_load(&t->done), t->n);
}

static void print_statuses(const char *what, tracker *t) {
  int s;
  fprintf(stderr, "  %s: %zu commands:", what, t->n);
  for (s = 0; s < 16; s++) {
    long k = atomic_load(&t->by_status[s]);
    if (k) fprintf(stderr, " %s=%ld", brisk_status_name((brisk_status)s), k);
  }
  fputc('\n', stderr);
}

/* One async PING, waited for: starts the client's multiplexed connection. */
static void warm_up(brisk_client *c) {
  tracker t;
  int held;
  tracker_init(&t, 1, 1);
  REQUIRE_OK(tracker_start(&t, c, KIND_PING, 1, (const char *const[]){"PING"}));
  BT_WAIT_UNTIL(held, atomic_load(&t.done) == 1, bt_scaled_ms(10000));
  REQUIRE(held);
  CHECK_EQ_U(atomic_load(&t.ok), 1);
  tracker_free(&t);
}

/* ---- 1. 10,000 in flight ------------------------------------------------------------------ */

static void ten_thousand_in_flight_at_once(void) {
  size_t incrs = 10000; /* also under valgrind: cheap enough */
  size_t sets = incrs / 5, i, once = 0;
  const char *key = "async:counter";
  brisk_client *c = srv_client(bt_under_valgrind() ? 120000 : 60000);
  brisk_reply *r = NULL;
  tracker t;
  int held;
  int64_t started;
  tracker_init(&t, incrs + sets, incrs);
  warm_up(c);
  REQUIRE_OK(BT_CMD(c, NULL, "DEL", key));

  /* Stalled: nothing can complete while they are issued, so all of them are in flight. */
  bt_server_pause(&srv);
  started = bt_now_ms();
  for (i = 0; i < incrs; i++) {
    REQUIRE_OK(tracker_start(&t, c, KIND_INCR, 2, (const char *const[]){"INCR", key}));
    if (i % 5 == 0) {
      char k[64], v[32];
      snprintf(k, sizeof k, "async:s:%zu", i);
      snprintf(v, sizeof v, "%zu", i);
      REQUIRE_OK(tracker_start(&t, c, KIND_SET, 3, (const char *const[]){"SET", k, v}));
    }
  }
  fprintf(stderr, "  %zu commands started in %lld ms\n", t.n, (long long)(bt_now_ms() - started));
  CHECK_EQ_U(t.n, incrs + sets);
  CHECK_EQ_U(atomic_load(&t.done), 0); /* all in flight at once */
  bt_server_resume(&srv);
  started = bt_now_ms();
  BT_WAIT_UNTIL(held, (size_t)atomic_load(&t.done) >= t.n, bt_scaled_ms(60000));
  CHECK(held);
  fprintf(stderr, "  all completed %lld ms after the server resumed\n",
          (long long)(bt_now_ms() - started));
  check_exactly_once(&t);
  CHECK_EQ_U(atomic_load(&t.ok), t.n);
  CHECK_EQ_U(atomic_load(&t.bad), 0);
  CHECK_EQ_U(atomic_load(&t.on_caller_thread), 0);
  for (i = 1; i <= incrs; i++)
    if (atomic_load(&t.incr_seen[i]) == 1) once++;
  CHECK_EQ_U(once, incrs); /* the INCR replies are 1..N, each exactly once */
  if (CHECK_OK(BT_CMD(c, &r, "GET", key))) {
    char want[32];
    snprintf(want, sizeof want, "%zu", incrs);
    CHECK_REPLY_STR(r, want);
  }
  brisk_reply_free(r);
  CHECK_CMD_REPLY(c, "0", "GET", "async:s:0");
  CHECK(brisk_client_stat(c, BRISK_STAT_COMMANDS) >= t.n);
  CHECK_EQ_U(brisk_client_stat(c, BRISK_STAT_ERRORS), 0);
  brisk_client_free(c);
  check_exactly_once(&t); /* and no late second call */
  tracker_free(&t);
}

/* The same load started from 4 threads at once, against the fixture server. */
typedef struct starter {
  brisk_client *c;
  tracker *t;
  const char *key;
  size_t count;
  size_t failed_starts;
  pthread_t thread;
} starter;

static void *starter_run(void *arg) {
  starter *s = (starter *)arg;
  size_t i;
  for (i = 0; i < s->count; i++)
    if (tracker_start(s->t, s->c, KIND_INCR, 2, (const char *const[]){"INCR", s->key}) !=
        BRISK_OK)
      s->failed_starts++;
  return NULL;
}

static void four_threads_start_async_commands_at_once(void) {
  size_t per = bt_under_valgrind() ? 1000 : 2500, i, once = 0;
  const char *key = bt_key(PREFIX, "threads");
  brisk_client *c = bt_client_tcp(3);
  brisk_reply *r = NULL;
  tracker t[4];
  starter s[4];
  size_t total = 0;
  long long last = 0;
  int held;
  REQUIRE_OK(BT_CMD(c, NULL, "DEL", key));
  for (i = 0; i < 4; i++) {
    tracker_init(&t[i], per, per * 4);
    s[i].c = c;
    s[i].t = &t[i];
    s[i].key = key;
    s[i].count = per;
    s[i].failed_starts = 0;
    REQUIRE(pthread_create(&s[i].thread, NULL, starter_run, &s[i]) == 0);
  }
  for (i = 0; i < 4; i++) {
    pthread_join(s[i].thread, NULL);
    CHECK_EQ_U(s[i].failed_starts, 0);
  }
  BT_WAIT_UNTIL(held,
                (size_t)(atomic_load(&t[0].done) + atomic_load(&t[1].done) +
                         atomic_load(&t[2].done) + atomic_load(&t[3].done)) >= 4 * per,
                bt_scaled_ms(60000));
  CHECK(held);
  for (i = 0; i < 4; i++) {
    check_exactly_once(&t[i]);
    total += t[i].n;
    CHECK_EQ_U(atomic_load(&t[i].ok), per);
    CHECK_EQ_U(atomic_load(&t[i].bad), 0);
    CHECK_EQ_U(atomic_load(&t[i].on_caller_thread), 0);
  }
  /* Across the four batches, every value 1..4N came back exactly once. */
  for (i = 1; i <= 4 * per; i++) {
    int k = atomic_load(&t[0].incr_seen[i]) + atomic_load(&t[1].incr_seen[i]) +
            atomic_load(&t[2].incr_seen[i]) + atomic_load(&t[3].incr_seen[i]);
    if (k == 1) once++;
  }
  CHECK_EQ_U(once, 4 * per);
  CHECK_EQ_U(total, 4 * per);
  if (CHECK_OK(BT_CMD(c, &r, "GET", key))) last = atoll(brisk_reply_string(r, NULL));
  brisk_reply_free(r);
  CHECK_EQ_U(last, 4 * per);
  CHECK_OK(BT_CMD(c, NULL, "DEL", key));
  brisk_client_free(c);
  for (i = 0; i < 4; i++) {
    check_exactly_once(&t[i]);
    tracker_free(&t[i]);
  }
}

/* ---- 2. the server killed with thousands in flight ---------------------------------------- */

static void server_killed_with_thousands_in_flight(void) {
  size_t n = bt_under_valgrind() ? 2000 : 5000, i, failures, in_flight;
  brisk_client *c = srv_client(1000);
  tracker t, after;
  int held;
  long done_at_kill;
  int64_t killed_at, took;
  tracker_init(&t, n, n);
  warm_up(c);
  REQUIRE_OK(BT_CMD(c, NULL, "DEL", "async:killed"));

  /* The first half streams to a live server; then it stalls, the second half queues up behind
   * whatever is still unanswered, and the server is killed. */
  for (i = 0; i < n / 2; i++)
    REQUIRE_OK(tracker_start(&t, c, KIND_INCR, 2, (const char *const[]){"INCR", "async:killed"}));
  BT_WAIT_UNTIL(held, (size_t)atomic_load(&t.done) >= n / 8, bt_scaled_ms(10000));
  CHECK(held); /* replies were flowing */
  bt_server_pause(&srv);
  for (; i < n; i++)
    REQUIRE_OK(tracker_start(&t, c, KIND_INCR, 2, (const char *const[]){"INCR", "async:killed"}));
  done_at_kill = atomic_load(&t.done);
  in_flight = t.n - (size_t)done_at_kill;
  bt_server_kill(&srv);
  killed_at = bt_now_ms();
  fprintf(stderr, "  killed with %zu of %zu in flight\n", in_flight, t.n);
  CHECK(in_flight >= n / 2); /* thousands (hundreds under valgrind) */

  BT_WAIT_UNTIL(held, (size_t)atomic_load(&t.done) >= t.n, bt_scaled_ms(30000));
  took = bt_now_ms() - killed_at;
  CHECK(held); /* no hang */
  fprintf(stderr, "  all callbacks %lld ms after the kill\n", (long long)took);
  print_statuses("after the kill", &t);
  check_exactly_once(&t);
  CHECK_EQ_U(atomic_load(&t.bad), 0); /* every failure has a message, no reply */
  CHECK_EQ_U(atomic_load(&t.on_caller_thread), 0);
  /* Those started after the stall could never be answered (replies already on their way
   * before it could still arrive for the first half). */
  failures = t.n - (size_t)atomic_load(&t.ok);
  CHECK(failures >= n - n / 2);
  CHECK_EQ_U(failures, (size_t)(atomic_load(&t.by_status[BRISK_ERR_CONNECTION]) +
                                atomic_load(&t.by_status[BRISK_ERR_TIMEOUT])));

  /* Back on the same port: async commands work again. */
  REQUIRE(bt_server_start_on(&srv, srv.port));
  tracker_init(&after, 1, 1);
  REQUIRE_OK(tracker_start(&after, c, KIND_PING, 1, (const char *const[]){"PING"}));
  BT_WAIT_UNTIL(held, atomic_load(&after.done) == 1, bt_scaled_ms(20000));
  CHECK(held);
  CHECK_EQ_U(atomic_load(&after.ok), 1);
  brisk_client_free(c);
  check_exactly_once(&t);
  check_exactly_once(&after);
  tracker_free(&t);
  tracker_free(&after);
}

/* ---- 2b. a stalled server: every callback times out --------------------------------------- */

static long long get_counter(brisk_client *c, const char *key) {
  brisk_reply *r = NULL;
  long long v = -1;
  if (BT_CMD(c, &r, "GET", key) == BRISK_OK)
    v = brisk_reply_type_of(r) == BRISK_REPLY_NIL ? 0 : atoll(brisk_reply_string(r, NULL));
  brisk_reply_free(r);
  return v;
}

static void stalled_server_times_out_every_callback(void) {
  size_t n = bt_under_valgrind() ? 500 : 2000, i;
  brisk_config *cfg = bt_server_config(&srv);
  brisk_client *c;
  tracker t, after;
  int held;
  int64_t paused_at, took;
  long maybe;
  long long counter;
  REQUIRE_OK(brisk_config_set_read_timeout_ms(cfg, 300));
  REQUIRE_OK(brisk_config_set_connect_timeout_ms(cfg, 500));
  c = bt_client_from(cfg);
  tracker_init(&t, n, n);
  warm_up(c);
  REQUIRE_OK(BT_CMD(c, NULL, "DEL", "async:stall"));

  bt_server_pause(&srv);
  paused_at = bt_now_ms();
  for (i = 0; i < n; i++) {
    if (i % 2 == 0)
      REQUIRE_OK(tracker_start(&t, c, KIND_INCR, 2, (const char *const[]){"INCR", "async:stall"}));
    else
      REQUIRE_OK(tracker_start(&t, c, KIND_GET, 2, (const char *const[]){"GET", "async:stall"}));
  }
  BT_WAIT_UNTIL(held, (size_t)atomic_load(&t.done) >= t.n, bt_scaled_ms(30000));
  took = bt_now_ms() - paused_at;
  bt_server_resume(&srv);
  CHECK(held); /* no hang */
  fprintf(stderr, "  all callbacks %lld ms after the stall began\n", (long long)took);
  print_statuses("stalled", &t);
  check_exactly_once(&t);
  CHECK(took >= 250); /* not before the read timeout */
  CHECK_EQ_U(atomic_load(&t.ok), 0);
  CHECK_EQ_U(atomic_load(&t.bad), 0);
  CHECK_EQ_U(atomic_load(&t.on_caller_thread), 0);
  CHECK_EQ_U(atomic_load(&t.by_status[BRISK_ERR_TIMEOUT]) +
                 atomic_load(&t.by_status[BRISK_ERR_CONNECTION]),
             n);
  CHECK(atomic_load(&t.by_status[BRISK_ERR_TIMEOUT]) >= 1);
  CHECK(brisk_client_stat(c, BRISK_STAT_TIMEOUTS) >= 1);
  /* SAFE mode: a sent INCR that timed out is reported ("may have been applied"), never
   * replayed. Once the server resumes it applies what it had received of them, until it meets
   * the closed connections (whose RST can discard the rest): wait until it has dropped every
   * connection but the one asking, then the counter is final. */
  maybe = atomic_load(&t.incr_maybe_applied);
  CHECK(maybe >= 1);
  BT_WAIT_UNTIL(held, bt_normal_clients(c) == 1, bt_scaled_ms(10000));
  CHECK(held);
  counter = get_counter(c, "async:stall");
  fprintf(stderr, "  %ld INCRs reported as maybe applied, %lld applied\n", maybe, counter);
  CHECK(counter >= 1);
  CHECK(counter <= maybe); /* else an INCR was replayed */

  /* And async commands work again. */
  tracker_init(&after, 1, 1);
  REQUIRE_OK(tracker_start(&after, c, KIND_PING, 1, (const char *const[]){"PING"}));
  BT_WAIT_UNTIL(held, atomic_load(&after.done) == 1, bt_scaled_ms(10000));
  CHECK(held);
  CHECK_EQ_U(atomic_load(&after.ok), 1);
  brisk_client_free(c);
  check_exactly_once(&t);
  tracker_free(&t);
  tracker_free(&after);
}

/* ---- 3. brisk_client_free with commands in flight ----------------------------------------- */

typedef struct freer {
  brisk_client *c;
  tracker *t;
  atomic_int returned;
  long done_when_returned;
  pthread_t thread;
} freer;

static void *freer_run(void *arg) {
  freer *f = (freer *)arg;
  brisk_client_free(f->c);
  f->done_when_returned = atomic_load(&f->t->done);
  atomic_store(&f->returned, 1);
  return NULL;
}

/* Frees c on another thread, with a deadline; returns the callbacks done when it returned. */
static long free_with_deadline(brisk_client *c, tracker *t) {
  freer f;
  int held;
  f.c = c;
  f.t = t;
  f.done_when_returned = -1;
  atomic_init(&f.returned, 0);
  REQUIRE(pthread_create(&f.thread, NULL, freer_run, &f) == 0);
  BT_WAIT_UNTIL(held, atomic_load(&f.returned), bt_scaled_ms(20000));
  if (!held) {
    bt_server_resume(&srv);
    REQUIRE(held); /* brisk_client_free hung */
  }
  pthread_join(f.thread, NULL);
  return f.done_when_returned;
}

static void client_free_completes_every_callback(void) {
  size_t n = bt_under_valgrind() ? 1000 : 2000, i;
  brisk_client *c = srv_client(60000);
  tracker t;
  long done_when_returned;
  tracker_init(&t, n, n);
  warm_up(c);

  /* Stalled: none of them can be answered, so every one must end CLOSED. */
  bt_server_pause(&srv);
  for (i = 0; i < n; i++)
    REQUIRE_OK(tracker_start(&t, c, KIND_INCR, 2, (const char *const[]){"INCR", "async:free"}));
  CHECK_EQ_U(atomic_load(&t.done), 0);
  done_when_returned = free_with_deadline(c, &t);
  bt_server_resume(&srv);
  CHECK_EQ_U(done_when_returned, n); /* it returned only after every callback ran */
  check_exactly_once(&t);
  CHECK_EQ_U(atomic_load(&t.by_status[BRISK_ERR_CLOSED]), n);
  CHECK_EQ_U(atomic_load(&t.bad), 0);
  CHECK_EQ_U(atomic_load(&t.on_caller_thread), 0);
  tracker_free(&t);

  /* A live server: freed right after starting them; each completed OK or CLOSED. */
  c = srv_client(60000);
  tracker_init(&t, n, n);
  warm_up(c);
  for (i = 0; i < n; i++)
    REQUIRE_OK(tracker_start(&t, c, KIND_INCR, 2, (const char *const[]){"INCR", "async:free2"}));
  done_when_returned = free_with_deadline(c, &t);
  print_statuses("freed while running", &t);
  CHECK_EQ_U(done_when_returned, n);
  check_exactly_once(&t);
  CHECK_EQ_U(atomic_load(&t.ok) + atomic_load(&t.by_status[BRISK_ERR_CLOSED]), n);
  CHECK_EQ_U(atomic_load(&t.bad), 0);
  tracker_free(&t);

  /* A freed client took no new command: nothing to check through the API (the pointer is
   * gone); a NULL client is INVALID_ARGUMENT, below. */
}

/* A blocking command waiting forever (BLPOP ... 0) when the client is freed: free must not
 * wait for it, and its callback still runs exactly once, with CLOSED. */
static long long info_field(brisk_client *c, const char *section, const char *field) {
  brisk_reply *r = NULL;
  long long v = -1;
  char needle[128];
  snprintf(needle, sizeof needle, "\n%s:", field);
  if (BT_CMD(c, &r, "INFO", section) == BRISK_OK) {
    const char *s = brisk_reply_string(r, NULL);
    const char *at = s ? strstr(s, needle) : NULL;
    if (at != NULL) v = atoll(at + strlen(needle));
  }
  brisk_reply_free(r);
  return v;
}

static void client_free_ends_a_blocking_command_in_flight(void) {
  brisk_client *c = srv_client(5000);
  brisk_client *observer = srv_client(5000);
  tracker t;
  int held;
  long done_when_returned;
  tracker_init(&t, 1, 1);
  REQUIRE_OK(tracker_start(&t, c, KIND_GET, 3,
                           (const char *const[]){"BLPOP", "async:never", "0"}));
  BT_WAIT_UNTIL(held, info_field(observer, "clients", "blocked_clients") == 1, bt_scaled_ms(10000));
  CHECK(held); /* the BLPOP reached the server and blocks there */
  CHECK_EQ_U(atomic_load(&t.done), 0);
  done_when_returned = free_with_deadline(c, &t);
  CHECK_EQ_U(done_when_returned, 1);
  check_exactly_once(&t);
  CHECK_EQ_U(atomic_load(&t.by_status[BRISK_ERR_CLOSED]), 1);
  CHECK_EQ_U(atomic_load(&t.bad), 0);
  BT_WAIT_UNTIL(held, info_field(observer, "clients", "blocked_clients") == 0, bt_scaled_ms(10000));
  CHECK(held); /* its connection was closed */
  brisk_client_free(observer);
  tracker_free(&t);
}

/* The server down and every command waiting in a long retry backoff: free wakes them all. */
static void client_free_ends_retry_backoffs(void) {
  size_t n = 200, i;
  brisk_config *cfg = bt_server_config(&srv);
  brisk_client *c;
  tracker t;
  int held;
  int64_t started;
  long done_when_returned;
  bt_set_constant_retry(cfg, 60000, 10);
  c = bt_client_from(cfg);
  tracker_init(&t, n, n);
  warm_up(c);
  bt_server_kill(&srv);
  for (i = 0; i < n; i++)
    REQUIRE_OK(tracker_start(&t, c, KIND_GET, 2, (const char *const[]){"GET", "async:k"}));
  /* Each has failed once (refused, or its connection lost) and waits 60 s for its retry. */
  BT_WAIT_UNTIL(held, brisk_client_stat(c, BRISK_STAT_RETRIES) >= n, bt_scaled_ms(10000));
  CHECK(held);
  CHECK_EQ_U(atomic_load(&t.done), 0);
  started = bt_now_ms();
  done_when_returned = free_with_deadline(c, &t);
  fprintf(stderr, "  freed in %lld ms\n", (long long)(bt_now_ms() - started));
  CHECK_AT_MOST(bt_now_ms() - started, 4000); /* well before the first backoff ends */
  CHECK_EQ_U(done_when_returned, n);
  check_exactly_once(&t);
  CHECK_EQ_U(atomic_load(&t.by_status[BRISK_ERR_CLOSED]), n);
  CHECK_EQ_U(atomic_load(&t.bad), 0);
  tracker_free(&t);
  REQUIRE(bt_server_start_on(&srv, srv.port));
}

/* ---- 3b. callbacks that start more commands ---------------------------------------------- */

typedef struct chain {
  brisk_client *c;
  const char *key;
  long target;             /* commands to run one after another */
  atomic_long started;
  atomic_long completed;
  atomic_long failed;      /* callbacks with a status other than OK */
  atomic_long refused;     /* starts refused from a callback */
  atomic_long refused_other; /* ... with a status other than CLOSED */
} chain;

static void chain_next(void *userdata, brisk_status status, const char *message,
                       brisk_reply *reply) {
  chain *ch = (chain *)userdata;
  (void)message;
  brisk_reply_free(reply);
  if (status != BRISK_OK) atomic_fetch_add(&ch->failed, 1);
  if (status == BRISK_OK && atomic_load(&ch->started) < ch->target) {
    brisk_status st;
    atomic_fetch_add(&ch->started, 1);
    st = brisk_command_async(ch->c, 2, (const char *const[]){"INCR", ch->key}, NULL, chain_next,
                             ch);
    if (st != BRISK_OK) {
      atomic_fetch_sub(&ch->started, 1);
      atomic_fetch_add(&ch->refused, 1);
      if (st != BRISK_ERR_CLOSED) atomic_fetch_add(&ch->refused_other, 1);
    }
  }
  atomic_fetch_add(&ch->completed, 1); /* last: the chain's state is final once counted */
}

static void chain_init(chain *ch, brisk_client *c, const char *key, long target) {
  ch->c = c;
  ch->key = key;
  ch->target = target;
  atomic_init(&ch->started, 1);
  atomic_init(&ch->completed, 0);
  atomic_init(&ch->failed, 0);
  atomic_init(&ch->refused, 0);
  atomic_init(&ch->refused_other, 0);
  REQUIRE_OK(brisk_command_async(c, 2, (const char *const[]){"INCR", key}, NULL, chain_next, ch));
}

static void callbacks_may_start_more_commands(void) {
  long per = bt_under_valgrind() ? 200 : 1000;
  brisk_client *c = srv_client(5000);
  chain ch[4];
  brisk_reply *r = NULL;
  int i, held;
  long total = 0;
  REQUIRE_OK(BT_CMD(c, NULL, "DEL", "async:chain", "async:chain2"));
  for (i = 0; i < 4; i++) chain_init(&ch[i], c, "async:chain", per);
  BT_WAIT_UNTIL(held,
                atomic_load(&ch[0].completed) + atomic_load(&ch[1].completed) +
                        atomic_load(&ch[2].completed) + atomic_load(&ch[3].completed) >=
                    4 * per,
                bt_scaled_ms(60000));
  CHECK(held);
  for (i = 0; i < 4; i++) {
    CHECK_EQ_U(atomic_load(&ch[i].completed), per);
    CHECK_EQ_U(atomic_load(&ch[i].started), per);
    CHECK_EQ_U(atomic_load(&ch[i].failed) + atomic_load(&ch[i].refused), 0);
  }
  if (CHECK_OK(BT_CMD(c, &r, "GET", "async:chain"))) total = atol(brisk_reply_string(r, NULL));
  brisk_reply_free(r);
  CHECK_EQ_U(total, 4 * per);

  /* Endless chains, and the client freed under them: free returns, every command started got
   * its callback, and the starts that came too late were refused with CLOSED. */
  for (i = 0; i < 4; i++) chain_init(&ch[i], c, "async:chain2", 1L << 40);
  BT_WAIT_UNTIL(held, atomic_load(&ch[0].completed) >= 100, bt_scaled_ms(10000));
  CHECK(held);
  {
    tracker none; /* free_with_deadline reads a tracker's count; this one stays at 0 */
    tracker_init(&none, 1, 1);
    free_with_deadline(c, &none);
    tracker_free(&none);
  }
  for (i = 0; i < 4; i++) {
    long started = atomic_load(&ch[i].started), completed = atomic_load(&ch[i].completed);
    if (started != completed)
      bt_fail(__FILE__, __LINE__, "chain %d: %ld started, %ld completed after free returned", i,
              started, completed);
    CHECK_EQ_U(atomic_load(&ch[i].refused_other), 0);
  }
}

/* ---- 4. replies in callbacks; bad arguments ---------------------------------------------- */

typedef struct capture {
  atomic_int calls;
  brisk_status status;
  char message[256];
  brisk_reply_type type;
  char text[64];
  size_t len;
  int64_t integer;
  size_t elements;
  char joined[64]; /* an array's string elements, joined by ',' */
  int reply_was_null;
  int on_caller_thread;
} capture;

static void capture_reply(void *userdata, brisk_status status, const char *message,
                          brisk_reply *reply) {
  capture *cap = (capture *)userdata;
  size_t len = 0, i;
  const char *s;
  cap->status = status;
  snprintf(cap->message, sizeof cap->message, "%s", message ? message : "(null)");
  cap->reply_was_null = reply == NULL;
  cap->on_caller_thread = pthread_equal(pthread_self(), caller_thread);
  cap->type = brisk_reply_type_of(reply);
  s = brisk_reply_string(reply, &len);
  if (s != NULL && len < sizeof cap->text) {
    memcpy(cap->text, s, len);
    cap->len = len;
  }
  cap->integer = brisk_reply_integer(reply);
  cap->elements = brisk_reply_length(reply);
  cap->joined[0] = '\0';
  for (i = 0; i < cap->elements; i++) {
    const char *e = brisk_reply_string(brisk_reply_element(reply, i), NULL);
    size_t used = strlen(cap->joined);
    snprintf(cap->joined + used, sizeof cap->joined - used, "%s%s", i ? "," : "", e ? e : "?");
  }
  brisk_reply_free(reply); /* the callback owns and frees it */
  atomic_fetch_add(&cap->calls, 1);
}

/* Runs one async command and waits (with a deadline) for its callback. */
static int run_async(brisk_client *c, capture *cap, size_t argc, const char *const *argv,
                     const size_t *argvlen) {
  int held;
  memset(cap, 0, sizeof *cap);
  atomic_init(&cap->calls, 0);
  if (!CHECK_OK(brisk_command_async(c, argc, argv, argvlen, capture_reply, cap))) return 0;
  BT_WAIT_UNTIL(held, atomic_load(&cap->calls) >= 1, bt_scaled_ms(10000));
  CHECK(held);
  CHECK(!cap->on_caller_thread);
  return held;
}

static atomic_int never_calls;

static void must_not_be_called(void *userdata, brisk_status status, const char *message,
                               brisk_reply *reply) {
  (void)userdata;
  (void)status;
  (void)message;
  brisk_reply_free(reply);
  atomic_fetch_add(&never_calls, 1);
}

static void callbacks_read_and_free_replies(void) {
  brisk_client *c = bt_client_tcp(3);
  const char *key = bt_key(PREFIX, "bin");
  const char *list = bt_key(PREFIX, "list");
  const char *missing = bt_key(PREFIX, "missing");
  const char *n = bt_key(PREFIX, "n");
  static const char value[] = "hel\0lo";
  capture cap;
  int64_t started;

  /* A binary-safe SET, then GET: the callback sees all 6 bytes. */
  {
    const char *argv[3] = {"SET", key, value};
    size_t argvlen[3] = {3, strlen(key), 6};
    if (run_async(c, &cap, 3, argv, argvlen)) {
      CHECK_STATUS(cap.status, BRISK_OK);
      CHECK(cap.type == BRISK_REPLY_STATUS);
      CHECK(cap.len == 2 && memcmp(cap.text, "OK", 2) == 0);
      CHECK(strcmp(cap.message, "") == 0);
    }
  }
  if (run_async(c, &cap, 2, (const char *const[]){"GET", key}, NULL)) {
    CHECK_STATUS(cap.status, BRISK_OK);
    CHECK(cap.type == BRISK_REPLY_STRING);
    CHECK(cap.len == 6 && memcmp(cap.text, value, 6) == 0);
  }
  /* Nil. */
  if (run_async(c, &cap, 2, (const char *const[]){"GET", missing}, NULL)) {
    CHECK_STATUS(cap.status, BRISK_OK);
    CHECK(cap.type == BRISK_REPLY_NIL);
  }
  /* Integer and array. */
  CHECK_OK(BT_CMD(c, NULL, "DEL", list, n));
  if (run_async(c, &cap, 5, (const char *const[]){"RPUSH", list, "a", "b", "c"}, NULL)) {
    CHECK_STATUS(cap.status, BRISK_OK);
    CHECK(cap.type == BRISK_REPLY_INTEGER);
    CHECK(cap.integer == 3);
  }
  if (run_async(c, &cap, 4, (const char *const[]){"LRANGE", list, "0", "-1"}, NULL)) {
    CHECK_STATUS(cap.status, BRISK_OK);
    CHECK(cap.type == BRISK_REPLY_ARRAY);
    CHECK(cap.elements == 3);
    CHECK(strcmp(cap.joined, "a,b,c") == 0);
  }
  /* An error reply: the mapped status, the server's text, no reply. */
  if (run_async(c, &cap, 3, (const char *const[]){"LPUSH", key, "x"}, NULL)) {
    CHECK_STATUS(cap.status, BRISK_ERR_SERVER);
    CHECK(cap.reply_was_null);
    CHECK(strncmp(cap.message, "WRONGTYPE", 9) == 0);
  }
  /* A blocking command runs on a pooled connection of its own and still calls back once. */
  started = bt_now_ms();
  if (run_async(c, &cap, 3, (const char *const[]){"BLPOP", missing, "1"}, NULL)) {
    CHECK_STATUS(cap.status, BRISK_OK);
    CHECK(cap.type == BRISK_REPLY_NIL);
    CHECK(bt_now_ms() - started >= 900);
  }
  CHECK_OK(BT_CMD(c, NULL, "DEL", key, list));
  brisk_client_free(c);
}

static void bad_arguments_never_call_back(void) {
  brisk_client *c = bt_client_tcp(3);
  const char *argv[2] = {"GET", "k"};
  const char *null_arg[2] = {"GET", NULL};
  capture cap;
  atomic_init(&never_calls, 0);

  CHECK_STATUS(brisk_command_async(NULL, 2, argv, NULL, must_not_be_called, NULL),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "client");
  CHECK_STATUS(brisk_command_async(c, 2, argv, NULL, NULL, NULL), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "fn");
  CHECK_STATUS(brisk_command_async(c, 0, argv, NULL, must_not_be_called, NULL),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK(strcmp(brisk_last_error_message(), "") != 0);
  CHECK_STATUS(brisk_command_async(c, 2, NULL, NULL, must_not_be_called, NULL),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "argv");
  CHECK_STATUS(brisk_command_async(c, 2, null_arg, NULL, must_not_be_called, NULL),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK(strcmp(brisk_last_error_message(), "") != 0);
  /* Commands that change a shared connection's state are refused, as for brisk_command. */
  CHECK_STATUS(brisk_command_async(c, 1, (const char *const[]){"MULTI"}, NULL,
                                   must_not_be_called, NULL),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_command_async(c, 2, (const char *const[]){"SELECT", "1"}, NULL,
                                   must_not_be_called, NULL),
               BRISK_ERR_INVALID_ARGUMENT);

  /* A valid command after them completes; the refused ones were never queued. */
  if (run_async(c, &cap, 1, (const char *const[]){"PING"}, NULL)) {
    CHECK_STATUS(cap.status, BRISK_OK);
    CHECK(cap.len == 4 && memcmp(cap.text, "PONG", 4) == 0);
  }
  CHECK_EQ_U(atomic_load(&never_calls), 0);
  brisk_client_free(c); /* completes everything owed: still nothing for them */
  CHECK_EQ_U(atomic_load(&never_calls), 0);
}

/* ---- 11. caller dispatch: callbacks on the application's thread ---------------------------- */

/* What the callbacks of one caller-dispatch scenario saw, in the order they ran (they never run
   concurrently: dispatchers take turns). */
#define CD_MAX 2000
typedef struct cd_log {
  size_t ran;                 /* callbacks run, in order */
  size_t index[CD_MAX];       /* which command each was */
  long long value[CD_MAX];    /* its INCR reply, or -1 */
  brisk_status status[CD_MAX];
  int calls[CD_MAX];          /* per command: callbacks received */
  int on_wrong_thread;        /* ran on a thread other than `dispatcher` */
  pthread_t dispatcher;
  int bad;                    /* a failure without a message, a success with a reply missing */
} cd_log;

typedef struct cd_slot {
  cd_log *log;
  size_t index;
} cd_slot;

static cd_slot cd_slots[CD_MAX];

static void cd_on_reply(void *userdata, brisk_status status, const char *message,
                        brisk_reply *reply) {
  cd_slot *s = (cd_slot *)userdata;
  cd_log *log = s->log;
  size_t at = log->ran++;
  if (!pthread_equal(pthread_self(), log->dispatcher)) log->on_wrong_thread++;
  log->calls[s->index]++;
  log->index[at] = s->index;
  log->status[at] = status;
  log->value[at] = -1;
  if (status == BRISK_OK) {
    if (reply == NULL) log->bad++;
    else if (brisk_reply_type_of(reply) == BRISK_REPLY_INTEGER)
      log->value[at] = brisk_reply_integer(reply);
  } else if (reply != NULL || message == NULL || message[0] == '\0') {
    log->bad++;
  }
  brisk_reply_free(reply);
}

static void cd_start(brisk_client *c, cd_log *log, size_t index, size_t argc,
                     const char *const *argv) {
  REQUIRE(index < CD_MAX);
  cd_slots[index].log = log;
  cd_slots[index].index = index;
  REQUIRE_OK(brisk_command_async(c, argc, argv, NULL, cd_on_reply, &cd_slots[index]));
}

static brisk_client *cd_client(brisk_config *cfg) {
  REQUIRE_OK(brisk_config_set_async_dispatch(cfg, BRISK_ASYNC_DISPATCH_CALLER));
  return bt_client_from(cfg);
}

static int fd_readable(int fd, int wait_ms) {
  struct pollfd p;
  p.fd = fd;
  p.events = POLLIN;
  p.revents = 0;
  return poll(&p, 1, wait_ms) == 1 && (p.revents & POLLIN) != 0;
}

/* The poll loop of an application: waits on the descriptor, dispatches what waits, until
   `done` callbacks ran; returns whether they did within the deadline. */
static int cd_loop(brisk_client *c, cd_log *log, size_t done, int64_t deadline_ms) {
  int fd = brisk_client_async_fd(c);
  int64_t deadline = bt_now_ms() + deadline_ms;
  if (fd < 0) return 0;
  while (log->ran < done) {
    if (bt_now_ms() > deadline) return 0;
    if (fd_readable(fd, 100)) brisk_client_async_dispatch(c, 0);
  }
  return 1;
}

static void cd_check_once(cd_log *log, size_t n) {
  size_t i, wrong = 0;
  for (i = 0; i < n; i++)
    if (log->calls[i] != 1) wrong++;
  CHECK_EQ_U(wrong, 0);
  CHECK_EQ_U(log->ran, n);
  CHECK_EQ_U(log->on_wrong_thread, 0);
  CHECK_EQ_U(log->bad, 0);
}

static cd_log cd;

static void caller_dispatch_runs_callbacks_in_order_from_a_poll_loop(void) {
  size_t n = bt_under_valgrind() ? 300 : CD_MAX, i, out_of_order = 0;
  brisk_client *c = cd_client(bt_server_config(&srv));
  int fd = brisk_client_async_fd(c);
  REQUIRE(fd >= 0);
  CHECK(!fd_readable(fd, 0));
  CHECK_EQ_U(brisk_client_async_dispatch(c, 0), 0);
  REQUIRE_OK(BT_CMD(c, NULL, "DEL", "async:cd:order"));
  memset(&cd, 0, sizeof cd);
  cd.dispatcher = pthread_self();
  for (i = 0; i < n; i++) cd_start(c, &cd, i, 2, (const char *const[]){"INCR", "async:cd:order"});
  CHECK(cd_loop(c, &cd, n, bt_scaled_ms(20000)));
  cd_check_once(&cd, n);
  /* One connection, replies in order: the callbacks ran in INCR's order. */
  for (i = 0; i < cd.ran; i++)
    if (cd.status[i] != BRISK_OK || cd.value[i] != (long long)i + 1) out_of_order++;
  CHECK_EQ_U(out_of_order, 0);
  CHECK(!fd_readable(fd, 0));
  brisk_client_free(c);
  CHECK_EQ_U(cd.ran, n);
}

static void caller_dispatch_descriptor_is_level_triggered(void) {
  brisk_client *c = cd_client(bt_server_config(&srv));
  int fd = brisk_client_async_fd(c), held;
  uint64_t before = brisk_client_stat(c, BRISK_STAT_COMMANDS);
  size_t i;
  REQUIRE(fd >= 0);
  memset(&cd, 0, sizeof cd);
  cd.dispatcher = pthread_self();
  for (i = 0; i < 50; i++) cd_start(c, &cd, i, 1, (const char *const[]){"PING"});
  /* Finished (counted when the outcome is known), and not one callback ran on its own. */
  BT_WAIT_UNTIL(held, brisk_client_stat(c, BRISK_STAT_COMMANDS) >= before + 50,
                bt_scaled_ms(10000));
  REQUIRE(held);
  CHECK_EQ_U(cd.ran, 0);
  CHECK(fd_readable(fd, 0));
  CHECK(fd_readable(fd, 0)); /* still: level-triggered */
  CHECK_EQ_U(brisk_client_async_dispatch(c, 1), 1);
  CHECK(fd_readable(fd, 0)); /* 49 wait */
  CHECK_EQ_U(brisk_client_async_dispatch(c, 0), 49);
  CHECK(!fd_readable(fd, 0));
  cd_check_once(&cd, 50);
  brisk_client_free(c);
}

/* A command started on another thread, so that nothing is held for this thread's next dispatch
   (a thread that dispatched is the client's event loop: what it sends waits for that). */
typedef struct {
  brisk_client *c;
  size_t index;
} cd_remote_start;

static void *cd_start_elsewhere(void *arg) {
  cd_remote_start *r = arg;
  cd_start(r->c, &cd, r->index, 2, (const char *const[]){"INCR", "async:cd:here"});
  return NULL;
}

/* The connection's socket is in the descriptor: the reply makes it readable, and the dispatch
   that follows reads the reply and runs its callback then and there (a runtime thread only
   reads, every 50 ms, what nobody dispatched). */
static void caller_dispatch_reads_the_reply_that_made_the_descriptor_readable(void) {
  brisk_client *c = cd_client(bt_server_config(&srv));
  int fd = brisk_client_async_fd(c);
  size_t i, wrong = 0;
  REQUIRE(fd >= 0);
  REQUIRE_OK(BT_CMD(c, NULL, "DEL", "async:cd:here"));
  memset(&cd, 0, sizeof cd);
  cd.dispatcher = pthread_self();
  for (i = 0; i < 20; i++) {
    cd_remote_start r = {c, i};
    pthread_t thread;
    REQUIRE(pthread_create(&thread, NULL, cd_start_elsewhere, &r) == 0);
    REQUIRE(pthread_join(thread, NULL) == 0);
    CHECK(fd_readable(fd, (int)bt_scaled_ms(5000)));
    CHECK_EQ_U(brisk_client_async_dispatch(c, 0), 1);
    CHECK(!fd_readable(fd, 0));
  }
  cd_check_once(&cd, 20);
  for (i = 0; i < cd.ran; i++)
    if (cd.value[i] != (long long)i + 1) wrong++;
  CHECK_EQ_U(wrong, 0);
  brisk_client_free(c);
}

static void caller_dispatch_errors_and_deadline(void) {
  brisk_config *cfg = bt_server_config(&srv);
  brisk_client *c;
  int64_t started;
  REQUIRE_OK(brisk_config_set_command_deadline_ms(cfg, 300));
  c = cd_client(cfg);
  REQUIRE_OK(BT_CMD(c, NULL, "SET", "async:cd:text", "abc"));
  memset(&cd, 0, sizeof cd);
  cd.dispatcher = pthread_self();
  cd_start(c, &cd, 0, 2, (const char *const[]){"INCR", "async:cd:text"});
  CHECK(cd_loop(c, &cd, 1, bt_scaled_ms(10000)));
  CHECK_EQ_U(cd.status[0], BRISK_ERR_SERVER);

  bt_server_pause(&srv);
  started = bt_now_ms();
  cd_start(c, &cd, 1, 2, (const char *const[]){"GET", "async:cd:text"});
  CHECK(cd_loop(c, &cd, 2, bt_scaled_ms(10000)));
  bt_server_resume(&srv);
  CHECK_EQ_U(cd.status[1], BRISK_ERR_TIMEOUT);
  CHECK(bt_now_ms() - started >= 300);
  cd_check_once(&cd, 2);
  brisk_client_free(c);
}

static void caller_dispatch_free_runs_every_owed_callback(void) {
  brisk_client *c = cd_client(bt_server_config(&srv));
  uint64_t before;
  size_t i, wrong = 0;
  int held;
  memset(&cd, 0, sizeof cd);
  cd.dispatcher = pthread_self();
  REQUIRE_OK(BT_CMD(c, NULL, "DEL", "async:cd:owed"));
  before = brisk_client_stat(c, BRISK_STAT_COMMANDS);
  for (i = 0; i < 20; i++) cd_start(c, &cd, i, 2, (const char *const[]){"INCR", "async:cd:owed"});
  BT_WAIT_UNTIL(held, brisk_client_stat(c, BRISK_STAT_COMMANDS) >= before + 20,
                bt_scaled_ms(10000));
  REQUIRE(held);
  /* 20 more stuck in a stopped server; none of the 40 dispatched. */
  bt_server_pause(&srv);
  for (i = 20; i < 40; i++) cd_start(c, &cd, i, 2, (const char *const[]){"INCR", "async:cd:owed"});
  CHECK_EQ_U(cd.ran, 0);
  brisk_client_free(c); /* runs all 40 here, on this thread */
  bt_server_resume(&srv);
  cd_check_once(&cd, 40);
  for (i = 0; i < cd.ran; i++) {
    size_t k = cd.index[i];
    if (k < 20 && (cd.status[i] != BRISK_OK || cd.value[i] != (long long)k + 1)) wrong++;
    if (k >= 20 && cd.status[i] != BRISK_ERR_CLOSED) wrong++;
  }
  CHECK_EQ_U(wrong, 0);
}

typedef struct cd_dispatcher {
  brisk_client *c;
  size_t n;
  int finished;
} cd_dispatcher;

static void *cd_dispatcher_run(void *arg) {
  cd_dispatcher *d = (cd_dispatcher *)arg;
  d->finished = cd_loop(d->c, &cd, d->n, bt_scaled_ms(20000));
  return NULL;
}

static void caller_dispatch_from_another_thread(void) {
  size_t n = bt_under_valgrind() ? 200 : 1000, i, out_of_order = 0;
  cd_dispatcher d;
  pthread_t thread;
  memset(&cd, 0, sizeof cd);
  d.c = cd_client(bt_server_config(&srv));
  d.n = n;
  d.finished = 0;
  REQUIRE_OK(BT_CMD(d.c, NULL, "DEL", "async:cd:other"));
  REQUIRE(pthread_create(&thread, NULL, cd_dispatcher_run, &d) == 0);
  cd.dispatcher = thread;
  for (i = 0; i < n; i++) cd_start(d.c, &cd, i, 2, (const char *const[]){"INCR", "async:cd:other"});
  REQUIRE(pthread_join(thread, NULL) == 0);
  CHECK(d.finished);
  cd_check_once(&cd, n);
  for (i = 0; i < cd.ran; i++)
    if (cd.value[i] != (long long)i + 1) out_of_order++;
  CHECK_EQ_U(out_of_order, 0);
  brisk_client_free(d.c);
}

static void runtime_dispatch_has_no_descriptor(void) {
  brisk_config *cfg = bt_server_config(&srv);
  brisk_client *c;
  CHECK_STATUS(brisk_config_set_async_dispatch(cfg, 2), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_config_set_async_dispatch(NULL, BRISK_ASYNC_DISPATCH_CALLER),
               BRISK_ERR_INVALID_ARGUMENT);
  c = bt_client_from(cfg);
  CHECK(brisk_client_async_fd(c) == -1);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "async_dispatch");
  CHECK_EQ_U(brisk_client_async_dispatch(c, 0), 0);
  CHECK(brisk_client_async_fd(NULL) == -1);
  CHECK_EQ_U(brisk_client_async_dispatch(NULL, 0), 0);
  brisk_client_free(c);
}

/* ---- the batch-end hook of runtime dispatch ------------------------------------------------ */

typedef struct batch_seen {
  atomic_size_t done, failed, hooks;
  atomic_size_t covered; /* the most callbacks done that a hook call has seen */
  atomic_int freed;      /* brisk_client_free returned */
  atomic_size_t late;    /* calls after that */
} batch_seen;

static void batch_on_reply(void *userdata, brisk_status status, const char *error_message,
                           brisk_reply *reply) {
  batch_seen *s = (batch_seen *)userdata;
  (void)error_message;
  if (status != BRISK_OK) atomic_fetch_add(&s->failed, 1);
  brisk_reply_free(reply);
  atomic_fetch_add(&s->done, 1);
}

static void batch_on_end(void *userdata) {
  batch_seen *s = (batch_seen *)userdata;
  size_t done = atomic_load(&s->done), covered = atomic_load(&s->covered);
  if (atomic_load(&s->freed)) atomic_fetch_add(&s->late, 1);
  atomic_fetch_add(&s->hooks, 1);
  while (covered < done && !atomic_compare_exchange_weak(&s->covered, &covered, done)) {}
}

static brisk_client *batch_client(batch_seen *s, uint32_t dispatch) {
  brisk_config *cfg = bt_server_config(&srv);
  memset(s, 0, sizeof *s);
  REQUIRE_OK(brisk_config_set_async_dispatch(cfg, dispatch));
  REQUIRE_OK(brisk_config_set_async_batch_end(cfg, batch_on_end, s));
  return bt_client_from(cfg);
}

static void batch_send(brisk_client *c, batch_seen *s, const char *key) {
  const char *argv[2] = {"GET", key};
  size_t len[2] = {3, strlen(key)};
  REQUIRE_OK(brisk_command_async(c, 2, argv, len, batch_on_reply, s));
}

static void batch_end_hook_runs_once_per_batch(void) {
  size_t n = 200, i, hooks_before, hooks;
  batch_seen s;
  int held;
  brisk_client *c = batch_client(&s, BRISK_ASYNC_DISPATCH_RUNTIME);
  batch_send(c, &s, "async:batch:warm");
  BT_WAIT_UNTIL(held, atomic_load(&s.covered) == 1, bt_scaled_ms(10000));
  REQUIRE(held);
  hooks_before = atomic_load(&s.hooks);
  /* Stalled while they are issued: their replies leave the server together. */
  bt_server_pause(&srv);
  for (i = 0; i < n; i++) batch_send(c, &s, "async:batch:k");
  bt_server_resume(&srv);
  BT_WAIT_UNTIL(held, atomic_load(&s.covered) == n + 1, bt_scaled_ms(20000));
  CHECK(held);
  hooks = atomic_load(&s.hooks) - hooks_before;
  fprintf(stderr, "  %zu hook calls for %zu replies\n", hooks, n);
  CHECK(hooks >= 1 && hooks <= n / 10);
  CHECK_EQ_U(atomic_load(&s.failed), 0);
  /* A failure's callback is followed by a call too. */
  bt_server_kill(&srv);
  batch_send(c, &s, "async:batch:k");
  BT_WAIT_UNTIL(held, atomic_load(&s.covered) == n + 2, bt_scaled_ms(20000));
  CHECK(held);
  CHECK_EQ_U(atomic_load(&s.failed), 1);
  REQUIRE(bt_server_restart(&srv));
  brisk_client_free(c);
  atomic_store(&s.freed, 1);
  CHECK_EQ_U(atomic_load(&s.late), 0);
}

static void batch_end_hook_and_client_free(void) {
  size_t n = bt_under_valgrind() ? 100 : 1000, i;
  batch_seen s;
  brisk_client *c = batch_client(&s, BRISK_ASYNC_DISPATCH_RUNTIME);
  for (i = 0; i < n; i++) batch_send(c, &s, "async:batch:k");
  brisk_client_free(c);
  atomic_store(&s.freed, 1);
  /* Every callback ran, and the call after the last one, before the free returned. */
  CHECK_EQ_U(atomic_load(&s.done), n);
  CHECK_EQ_U(atomic_load(&s.covered), n);
  CHECK_EQ_U(atomic_load(&s.late), 0);
}

static void batch_end_hook_never_in_caller_dispatch(void) {
  batch_seen s;
  int held;
  brisk_config *cfg;
  brisk_client *c = batch_client(&s, BRISK_ASYNC_DISPATCH_CALLER);
  batch_send(c, &s, "async:batch:k");
  BT_WAIT_UNTIL(held, (brisk_client_async_dispatch(c, 0), atomic_load(&s.done) == 1),
                bt_scaled_ms(10000));
  CHECK(held);
  CHECK_EQ_U(atomic_load(&s.hooks), 0);
  brisk_client_free(c);
  /* NULL removes the hook; a NULL config is refused. */
  cfg = bt_server_config(&srv);
  REQUIRE_OK(brisk_config_set_async_batch_end(cfg, batch_on_end, &s));
  REQUIRE_OK(brisk_config_set_async_batch_end(cfg, NULL, NULL));
  c = bt_client_from(cfg);
  memset(&s, 0, sizeof s);
  batch_send(c, &s, "async:batch:k");
  BT_WAIT_UNTIL(held, atomic_load(&s.done) == 1, bt_scaled_ms(10000));
  CHECK(held);
  brisk_client_free(c);
  CHECK_EQ_U(atomic_load(&s.hooks), 0);
  CHECK_STATUS(brisk_config_set_async_batch_end(NULL, batch_on_end, NULL),
               BRISK_ERR_INVALID_ARGUMENT);
}

int main(int argc, char **argv) {
  bt_init(argc, argv);
  caller_thread = pthread_self();
  bt_server_start_or_exit(&srv);
  RUN(ten_thousand_in_flight_at_once);
  RUN(four_threads_start_async_commands_at_once);
  RUN(server_killed_with_thousands_in_flight);
  RUN(stalled_server_times_out_every_callback);
  RUN(client_free_completes_every_callback);
  RUN(client_free_ends_a_blocking_command_in_flight);
  RUN(client_free_ends_retry_backoffs);
  RUN(callbacks_may_start_more_commands);
  RUN(callbacks_read_and_free_replies);
  RUN(bad_arguments_never_call_back);
  RUN(caller_dispatch_runs_callbacks_in_order_from_a_poll_loop);
  RUN(caller_dispatch_descriptor_is_level_triggered);
  RUN(caller_dispatch_reads_the_reply_that_made_the_descriptor_readable);
  RUN(caller_dispatch_errors_and_deadline);
  RUN(caller_dispatch_free_runs_every_owed_callback);
  RUN(caller_dispatch_from_another_thread);
  RUN(runtime_dispatch_has_no_descriptor);
  RUN(batch_end_hook_runs_once_per_batch);
  RUN(batch_end_hook_and_client_free);
  RUN(batch_end_hook_never_in_caller_dispatch);
  bt_server_cleanup(&srv);
  return bt_finish();
}
