/*
 * test_cache: client-side caching (issue 10) through the C API only, against a private
 * redis-server (bt_server.h) that this program flushes, kills connections of and restarts.
 * Each case names the guarantee it shows (the numbers of brisk_config_set_client_cache()):
 *
 *   caches_reads_by_the_whole_command     what is cached: HGET h f1 / f2 apart; TIME never
 *   own_writes_are_read_back              1: command, async, pipeline, transaction, session,
 *                                         a script's undeclared key, SORT ... STORE
 *   other_writes_seen_a_millisecond_later 2: another client's write, read 1 ms after its ack
 *   async_reads_are_cached_and_never_stale 2 through brisk_command_async: hits, and the same
 *                                         1 ms rule
 *   eight_readers_two_writers             2: the stress: no read older than what was
 *                                         acknowledged more than 1 ms before it began
 *   in_flight_read_is_answered_not_kept   3: a slow reply (through a delaying proxy) whose key
 *                                         is invalidated on the way
 *   doubt_drops_everything                4: CLIENT KILL of the invalidation connection, a
 *                                         FLUSHALL by another client, a server restart
 *   bounds_and_flush                      5: entries and bytes bounded, flush to zero
 *   other_db_invalidates                  6: a write in DB 3 drops what DB 0 read
 *   modes_and_resp2                       BROADCAST, OPTIN, RESP2 (URL options)
 *   events_stats_and_setters              the event's reason, the stats, bad arguments
 *   refused_without_tracking              a user without CLIENT cannot make a cached client
 *
 * Under valgrind (everything ~30x slower) hits are rare: a hit needs the invalidation thread
 * to have had a PING answered within the last 0.9 ms. Cases then check correctness only (no
 * stale value, own writes read back) and scale their load down.
 */
#include "brisk_test.h"
#include "bt_server.h"

#include <pthread.h>
#include <stdatomic.h>

static bt_server srv;

/* ---- helpers ---------------------------------------------------------------------------- */

static brisk_config *cached_config(uint32_t entries) {
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  REQUIRE_OK(brisk_config_set_address(cfg, "127.0.0.1", srv.port));
  REQUIRE_OK(brisk_config_set_client_cache(cfg, entries, 60000));
  return cfg;
}

static brisk_client *cached_client(uint32_t entries) {
  brisk_client *c = NULL;
  brisk_config *cfg = cached_config(entries);
  REQUIRE_OK(brisk_client_new(cfg, &c));
  brisk_config_free(cfg);
  return c;
}

static brisk_client *plain_client(void) {
  brisk_client *c = NULL;
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  REQUIRE_OK(brisk_config_set_address(cfg, "127.0.0.1", srv.port));
  REQUIRE_OK(brisk_client_new(cfg, &c));
  brisk_config_free(cfg);
  return c;
}

/* Runs a command given as NUL-terminated words (NULL-terminated list); the reply or NULL. */
static brisk_status vcmd(brisk_client *c, brisk_reply **reply, const char *const *words) {
  size_t argc = 0;
  while (words[argc] != NULL) argc++;
  return brisk_command(c, argc, words, NULL, reply);
}

#define CMD(c, reply, ...) vcmd((c), (reply), (const char *const[]){__VA_ARGS__, NULL})

static void ok(brisk_client *c, const char *const *words) {
  brisk_reply *r = NULL;
  CHECK_OK(vcmd(c, &r, words));
  brisk_reply_free(r);
}

#define OK(c, ...) ok((c), (const char *const[]){__VA_ARGS__, NULL})

/* GET key into `out` (size `size`); 1 for a string, 0 for nil, -1 on failure. */
static int get(brisk_client *c, const char *key, char *out, size_t size) {
  brisk_reply *r = NULL;
  size_t len = 0;
  const char *s;
  int found;
  if (CMD(c, &r, "GET", key) != BRISK_OK) return -1;
  s = brisk_reply_string(r, &len);
  found = s != NULL;
  if (found) snprintf(out, size, "%.*s", (int)len, s);
  brisk_reply_free(r);
  return found;
}

/* Whether LINDEX key 0 is `expected`. */
static int lindex0_is(brisk_client *c, const char *key, const char *expected) {
  brisk_reply *r = NULL;
  size_t len = 0;
  const char *s;
  int same;
  if (CMD(c, &r, "LINDEX", key, "0") != BRISK_OK) return 0;
  s = brisk_reply_string(r, &len);
  same = s != NULL && len == strlen(expected) && memcmp(s, expected, len) == 0;
  brisk_reply_free(r);
  return same;
}

static int get_is(brisk_client *c, const char *key, const char *expected) {
  char value[256];
  int found = get(c, key, value, sizeof value);
  if (expected == NULL) return found == 0;
  return found == 1 && strcmp(value, expected) == 0;
}

static uint64_t stat_of(brisk_client *c, brisk_stat which) { return brisk_client_stat(c, which); }

/* Reads `key` until a read is a hit (the first fills the entry); 1 when one was. Under
 * valgrind a hit may never come (see the top): it gives up after a while there. */
static int warm(brisk_client *c, const char *key) {
  int64_t deadline = bt_now_ms() + (bt_under_valgrind() ? 2000 : 10000);
  char value[256];
  uint64_t before = stat_of(c, BRISK_STAT_CACHE_HITS);
  while (bt_now_ms() < deadline) {
    (void)get(c, key, value, sizeof value);
    if (stat_of(c, BRISK_STAT_CACHE_HITS) > before) return 1;
    before = stat_of(c, BRISK_STAT_CACHE_HITS);
  }
  return 0;
}

#define CHECK_WARM(c, key)                                                                 \
  do {                                                                                     \
    if (!warm((c), (key)) && !bt_under_valgrind())                                         \
      bt_fail(__FILE__, __LINE__, "%s was never answered from the cache", (key));          \
  } while (0)

/* Waits 1 ms (the rule of guarantee 2: a read that starts 1 ms after a write's
 * acknowledgement never returns the old value). Time itself is what matters here. */
static void one_millisecond(void) {
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  do {
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 1000000L);
}

/* ---- what is cached --------------------------------------------------------------------- */

static void caches_reads_by_the_whole_command(void) {
  brisk_client *c = cached_client(1000);
  brisk_reply *r = NULL;
  int i;
  OK(c, "FLUSHALL");
  OK(c, "HSET", "h", "f1", "one", "f2", "two");
  CHECK_WARM(c, "h-missing");
  for (i = 0; i < 50; i++) {
    CHECK_OK(CMD(c, &r, "HGET", "h", "f1"));
    CHECK_REPLY_STR(r, "one");
    brisk_reply_free(r);
    CHECK_OK(CMD(c, &r, "HGET", "h", "f2"));
    CHECK_REPLY_STR(r, "two");
    brisk_reply_free(r);
  }
  CHECK(stat_of(c, BRISK_STAT_CACHE_ENTRIES) == 3);
  CHECK(stat_of(c, BRISK_STAT_CACHE_BYTES) > 0);
  {
    /* TIME is never cached: every call goes to the server. */
    uint64_t entries = stat_of(c, BRISK_STAT_CACHE_ENTRIES);
    uint64_t hits = stat_of(c, BRISK_STAT_CACHE_HITS);
    for (i = 0; i < 20; i++) OK(c, "TIME");
    CHECK(stat_of(c, BRISK_STAT_CACHE_ENTRIES) == entries);
    CHECK(stat_of(c, BRISK_STAT_CACHE_HITS) == hits);
  }
  brisk_client_free(c);
}

/* ---- 1: read-your-own-writes ------------------------------------------------------------ */

struct async_done {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int done;
  brisk_status status;
};

static void on_async(void *userdata, brisk_status status, const char *message, brisk_reply *reply) {
  struct async_done *d = userdata;
  (void)message;
  brisk_reply_free(reply);
  pthread_mutex_lock(&d->lock);
  d->done = 1;
  d->status = status;
  pthread_cond_signal(&d->cond);
  pthread_mutex_unlock(&d->lock);
}

/* Runs a command through brisk_command_async() and waits for `fn` (which ends by calling
   on_async(d, ...)); its status. */
static brisk_status async_run(brisk_client *c, size_t argc, const char *const *argv,
                              brisk_reply_fn fn, void *userdata, struct async_done *d) {
  brisk_status st;
  pthread_mutex_init(&d->lock, NULL);
  pthread_cond_init(&d->cond, NULL);
  d->done = 0;
  d->status = BRISK_OK;
  st = brisk_command_async(c, argc, argv, NULL, fn, userdata);
  if (st == BRISK_OK) {
    pthread_mutex_lock(&d->lock);
    while (!d->done) pthread_cond_wait(&d->cond, &d->lock);
    pthread_mutex_unlock(&d->lock);
    st = d->status;
  }
  pthread_mutex_destroy(&d->lock);
  pthread_cond_destroy(&d->cond);
  return st;
}

static brisk_status async_set(brisk_client *c, const char *key, const char *value) {
  struct async_done d;
  const char *argv[] = {"SET", key, value};
  return async_run(c, 3, argv, on_async, &d, &d);
}

/* An async GET's outcome: the string (found 1), nil (found 0). */
struct async_get {
  struct async_done done;
  int found;
  char value[256];
};

static void on_async_get(void *userdata, brisk_status status, const char *message,
                         brisk_reply *reply) {
  struct async_get *g = userdata;
  size_t len = 0;
  const char *s = reply != NULL ? brisk_reply_string(reply, &len) : NULL;
  g->found = s != NULL;
  if (s != NULL) snprintf(g->value, sizeof g->value, "%.*s", (int)len, s);
  on_async(&g->done, status, message, reply);
}

/* get_is() through brisk_command_async(). */
static int async_get_is(brisk_client *c, const char *key, const char *expected) {
  struct async_get g;
  const char *argv[] = {"GET", key};
  g.found = -1;
  if (async_run(c, 2, argv, on_async_get, &g, &g.done) != BRISK_OK) return 0;
  if (expected == NULL) return g.found == 0;
  return g.found == 1 && strcmp(g.value, expected) == 0;
}

static void own_writes_are_read_back(void) {
  brisk_client *c = cached_client(1000);
  int round, rounds = bt_under_valgrind() ? 20 : 200;
  for (round = 0; round < rounds; round++) {
    char v[32];
    snprintf(v, sizeof v, "%d", round);
    (void)warm(c, "own");
    switch (round % 7) {
    case 0:
      OK(c, "SET", "own", v);
      break;
    case 5:
      /* A script writing a key it does not declare: only the server names it. */
      OK(c, "EVAL", "redis.call('SET', 'own', ARGV[1])", "0", v);
      break;
    case 6: {
      /* SORT ... STORE: the server's table cannot point at the STORE key. */
      int64_t deadline = bt_now_ms() + (bt_under_valgrind() ? 200 : 10000);
      uint64_t hits;
      OK(c, "DEL", "own:src");
      OK(c, "RPUSH", "own:src", v);
      do { /* LINDEX own:list 0 answered from the cache (under valgrind, maybe not) */
        hits = stat_of(c, BRISK_STAT_CACHE_HITS);
        OK(c, "LINDEX", "own:list", "0");
      } while (stat_of(c, BRISK_STAT_CACHE_HITS) == hits && bt_now_ms() < deadline);
      OK(c, "SORT", "own:src", "ALPHA", "STORE", "own:list");
      if (!lindex0_is(c, "own:list", v))
        bt_fail(__FILE__, __LINE__, "round %d: SORT STORE not read back", round);
      OK(c, "SET", "own", v);
      break;
    }
    case 1:
      CHECK_OK(async_set(c, "own", v));
      break;
    case 2: {
      brisk_pipeline *p = NULL;
      brisk_reply *r = NULL;
      const char *argv[] = {"SET", "own", v};
      REQUIRE_OK(brisk_pipeline_new(c, &p));
      CHECK_OK(brisk_pipeline_append(p, 3, argv, NULL));
      CHECK_OK(brisk_pipeline_exec(p, &r));
      brisk_reply_free(r);
      brisk_pipeline_free(p);
      break;
    }
    case 3: {
      brisk_pipeline *t = NULL;
      brisk_reply *r = NULL;
      const char *argv[] = {"SET", "own", v};
      REQUIRE_OK(brisk_transaction_new(c, &t));
      CHECK_OK(brisk_pipeline_append(t, 3, argv, NULL));
      CHECK_OK(brisk_pipeline_exec(t, &r));
      brisk_reply_free(r);
      brisk_pipeline_free(t);
      break;
    }
    default: {
      brisk_session *s = NULL;
      brisk_reply *r = NULL;
      const char *argv[] = {"SET", "own", v};
      REQUIRE_OK(brisk_session_new(c, &s));
      CHECK_OK(brisk_session_command(s, 3, argv, NULL, &r));
      brisk_reply_free(r);
      brisk_session_free(s);
      break;
    }
    }
    if (!get_is(c, "own", v)) bt_fail(__FILE__, __LINE__, "round %d: not %s", round, v);
  }
  /* This client's FLUSHALL empties the cache. */
  (void)warm(c, "own");
  OK(c, "FLUSHALL");
  CHECK(stat_of(c, BRISK_STAT_CACHE_ENTRIES) == 0);
  CHECK(get_is(c, "own", NULL));
  brisk_client_free(c);
}

/* ---- 2: other clients' writes ----------------------------------------------------------- */

static void other_writes_seen_a_millisecond_later(void) {
  brisk_client *c = cached_client(1000);
  brisk_client *w = plain_client();
  int round, rounds = bt_under_valgrind() ? 50 : 1000;
  for (round = 0; round < rounds; round++) {
    char v[32];
    snprintf(v, sizeof v, "v%d", round);
    (void)warm(c, "theirs");
    OK(w, "SET", "theirs", v);
    one_millisecond();
    if (!get_is(c, "theirs", v)) bt_fail(__FILE__, __LINE__, "round %d: stale", round);
  }
  CHECK(stat_of(c, BRISK_STAT_CACHE_INVALIDATIONS) > 0);
  brisk_client_free(w);
  brisk_client_free(c);
}

/* 2 through brisk_command_async(): async reads are answered from the cache (filled by an async
   read, over the multiplexed connection), and another client's write is seen by an async read
   that starts 1 ms after its acknowledgement. */
static void async_reads_are_cached_and_never_stale(void) {
  brisk_client *c = cached_client(1000);
  brisk_client *w = plain_client();
  int round, rounds = bt_under_valgrind() ? 30 : 500, hit_rounds = 0;
  for (round = 0; round < rounds; round++) {
    char v[32];
    int64_t deadline = bt_now_ms() + (bt_under_valgrind() ? 200 : 10000);
    snprintf(v, sizeof v, "a%d", round);
    OK(w, "SET", "async", v);
    one_millisecond();
    if (!async_get_is(c, "async", v)) bt_fail(__FILE__, __LINE__, "round %d: stale", round);
    /* The entry that read filled is hit by the next async reads (under valgrind, maybe not). */
    for (;;) {
      uint64_t hits = stat_of(c, BRISK_STAT_CACHE_HITS);
      CHECK(async_get_is(c, "async", v));
      if (stat_of(c, BRISK_STAT_CACHE_HITS) > hits) {
        hit_rounds++;
        break;
      }
      if (bt_now_ms() > deadline) break;
    }
  }
  if (!bt_under_valgrind()) CHECK(hit_rounds == rounds);
  CHECK(stat_of(c, BRISK_STAT_CACHE_INVALIDATIONS) > 0);
  brisk_client_free(w);
  brisk_client_free(c);
}

#define KEYS 4
#define ACKS 4096

/* Per key, the writers' acknowledgements (time in ns, value), newest last. */
struct acks {
  pthread_mutex_t lock;
  int64_t at[ACKS];
  long long value[ACKS];
  int count;
};

struct stress {
  brisk_client *cached, *writer;
  struct acks acks[KEYS];
  atomic_int stop;
  atomic_llong reads, stale;
};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *stress_writer(void *arg) {
  struct stress *s = arg;
  char key[32];
  long long i = 0;
  while (!atomic_load(&s->stop)) {
    brisk_reply *r = NULL;
    int k = (int)(i++ % KEYS);
    snprintf(key, sizeof key, "counter:%d", k);
    if (CMD(s->writer, &r, "INCR", key) == BRISK_OK) {
      struct acks *a = &s->acks[k];
      long long v = (long long)brisk_reply_integer(r);
      int64_t at = now_ns();
      pthread_mutex_lock(&a->lock);
      if (a->count == ACKS) {
        memmove(a->at, a->at + ACKS / 2, sizeof a->at[0] * (ACKS / 2));
        memmove(a->value, a->value + ACKS / 2, sizeof a->value[0] * (ACKS / 2));
        a->count = ACKS / 2;
      }
      a->at[a->count] = at;
      a->value[a->count] = v;
      a->count++;
      pthread_mutex_unlock(&a->lock);
    }
    brisk_reply_free(r);
  }
  return NULL;
}

static void *stress_reader(void *arg) {
  struct stress *s = arg;
  char key[32], value[64];
  long long i = 0;
  while (!atomic_load(&s->stop)) {
    int k = (int)(i++ % KEYS);
    int64_t started = now_ns();
    long long seen, floor = 0;
    int n;
    snprintf(key, sizeof key, "counter:%d", k);
    if (get(s->cached, key, value, sizeof value) != 1) continue;
    seen = atoll(value);
    pthread_mutex_lock(&s->acks[k].lock);
    for (n = s->acks[k].count - 1; n >= 0; n--)
      if (s->acks[k].at[n] + 1000000 < started) {
        floor = s->acks[k].value[n];
        break;
      }
    pthread_mutex_unlock(&s->acks[k].lock);
    if (seen < floor) atomic_fetch_add(&s->stale, 1);
    atomic_fetch_add(&s->reads, 1);
  }
  return NULL;
}

static void eight_readers_two_writers(void) {
  static struct stress s;
  pthread_t readers[8], writers[2];
  long long wanted = bt_under_valgrind() ? 5000 : 100000;
  int64_t deadline = bt_now_ms() + 240000;
  int i;
  memset(&s, 0, sizeof s);
  s.cached = cached_client(10000);
  s.writer = plain_client();
  for (i = 0; i < KEYS; i++) {
    char key[32];
    pthread_mutex_init(&s.acks[i].lock, NULL);
    snprintf(key, sizeof key, "counter:%d", i);
    OK(s.writer, "SET", key, "0");
  }
  for (i = 0; i < 2; i++) pthread_create(&writers[i], NULL, stress_writer, &s);
  for (i = 0; i < 8; i++) pthread_create(&readers[i], NULL, stress_reader, &s);
  while (atomic_load(&s.reads) < wanted && bt_now_ms() < deadline) bt_sleep_ms(20);
  atomic_store(&s.stop, 1);
  for (i = 0; i < 8; i++) pthread_join(readers[i], NULL);
  for (i = 0; i < 2; i++) pthread_join(writers[i], NULL);
  fprintf(stderr, "  %lld reads, %llu hits, %llu misses, %llu invalidations, %lld stale\n",
          (long long)atomic_load(&s.reads),
          (unsigned long long)stat_of(s.cached, BRISK_STAT_CACHE_HITS),
          (unsigned long long)stat_of(s.cached, BRISK_STAT_CACHE_MISSES),
          (unsigned long long)stat_of(s.cached, BRISK_STAT_CACHE_INVALIDATIONS),
          (long long)atomic_load(&s.stale));
  CHECK(atomic_load(&s.reads) >= wanted);
  CHECK(atomic_load(&s.stale) == 0);
  if (!bt_under_valgrind()) CHECK(stat_of(s.cached, BRISK_STAT_CACHE_HITS) > 0);
  for (i = 0; i < KEYS; i++) pthread_mutex_destroy(&s.acks[i].lock);
  brisk_client_free(s.writer);
  brisk_client_free(s.cached);
}

/* ---- 3: the in-flight race, through a delaying proxy ------------------------------------ */

/* A TCP proxy to the server that can hold every chunk (both directions) `delay_ms` before
 * forwarding it: a 2 MB reply then takes a while, a small invalidation does not. */
struct proxy {
  int listener;
  uint16_t port;
  atomic_int delay_ms, stop;
  pthread_t acceptor;
  pthread_t pumps[32];
  atomic_int npumps;
};

struct pump {
  struct proxy *proxy;
  int from, to;
};

static void *pump_run(void *arg) {
  struct pump *p = arg;
  char buf[65536];
  while (!atomic_load(&p->proxy->stop)) {
    struct pollfd pfd = {p->from, POLLIN, 0};
    ssize_t n, off = 0;
    if (poll(&pfd, 1, 20) <= 0) continue;
    n = read(p->from, buf, sizeof buf);
    if (n <= 0) break;
    if (atomic_load(&p->proxy->delay_ms) > 0) bt_sleep_ms(atomic_load(&p->proxy->delay_ms));
    while (off < n) {
      ssize_t w = write(p->to, buf + off, (size_t)(n - off));
      if (w <= 0) goto done;
      off += w;
    }
  }
done:
  shutdown(p->to, SHUT_WR);
  free(p);
  return NULL;
}

static void *proxy_accept(void *arg) {
  struct proxy *px = arg;
  while (!atomic_load(&px->stop)) {
    struct pollfd pfd = {px->listener, POLLIN, 0};
    struct sockaddr_in a;
    int client, server, i;
    if (poll(&pfd, 1, 20) <= 0) continue;
    client = accept(px->listener, NULL, NULL);
    if (client < 0) continue;
    server = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(srv.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (server < 0 || connect(server, (struct sockaddr *)&a, sizeof a) != 0 ||
        atomic_load(&px->npumps) + 2 > 32) {
      close(client);
      if (server >= 0) close(server);
      continue;
    }
    for (i = 0; i < 2; i++) {
      struct pump *p = malloc(sizeof *p);
      REQUIRE(p != NULL);
      p->proxy = px;
      p->from = i == 0 ? client : server;
      p->to = i == 0 ? server : client;
      pthread_create(&px->pumps[atomic_fetch_add(&px->npumps, 1)], NULL, pump_run, p);
    }
  }
  return NULL;
}

static void proxy_start(struct proxy *px) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  memset(px, 0, sizeof *px);
  px->listener = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(px->listener >= 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(px->listener, (struct sockaddr *)&a, sizeof a) == 0);
  REQUIRE(listen(px->listener, 16) == 0);
  REQUIRE(getsockname(px->listener, (struct sockaddr *)&a, &len) == 0);
  px->port = ntohs(a.sin_port);
  pthread_create(&px->acceptor, NULL, proxy_accept, px);
}

/* Stops forwarding and joins every thread; the sockets close (the client sees them go). */
static void proxy_stop(struct proxy *px) {
  int i;
  atomic_store(&px->stop, 1);
  pthread_join(px->acceptor, NULL);
  for (i = 0; i < atomic_load(&px->npumps); i++) pthread_join(px->pumps[i], NULL);
  close(px->listener);
}

/* Whether the server's CLIENT LIST shows a connection of client `name` whose last command was
 * `command`. */
static int server_ran(brisk_client *w, const char *name, const char *command) {
  brisk_reply *r = NULL;
  char needle_name[64], needle_cmd[64];
  const char *list;
  int found = 0;
  if (CMD(w, &r, "CLIENT", "LIST") != BRISK_OK) return 0;
  list = brisk_reply_string(r, NULL);
  snprintf(needle_name, sizeof needle_name, "name=%s ", name);
  snprintf(needle_cmd, sizeof needle_cmd, "cmd=%s ", command);
  while (list != NULL && *list != '\0') {
    const char *end = strchr(list, '\n');
    size_t n = end ? (size_t)(end - list) : strlen(list);
    char line[2048];
    snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line - 1 ? n : sizeof line - 1), list);
    if (strstr(line, needle_name) && strstr(line, needle_cmd)) found = 1;
    list = end ? end + 1 : NULL;
  }
  brisk_reply_free(r);
  return found;
}

struct slow_read {
  brisk_client *c;
  size_t len;
  brisk_status status;
};

static void *slow_read_run(void *arg) {
  struct slow_read *sr = arg;
  brisk_reply *r = NULL;
  sr->status = CMD(sr->c, &r, "GETRANGE", "big", "0", "-1");
  sr->len = 0;
  (void)brisk_reply_string(r, &sr->len);
  brisk_reply_free(r);
  return NULL;
}

static void in_flight_read_is_answered_not_kept(void) {
  struct proxy px;
  brisk_client *c = NULL, *w = plain_client();
  brisk_config *cfg;
  struct slow_read sr;
  pthread_t reader;
  char url[128], *big;
  size_t big_len = 2u << 20;
  uint64_t invalidations;
  int ran;
  proxy_start(&px);
  cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  snprintf(url, sizeof url, "redis://127.0.0.1:%u?client_name=slow&read_timeout=60000",
           (unsigned)px.port);
  REQUIRE_OK(brisk_config_set_url(cfg, url));
  REQUIRE_OK(brisk_config_set_client_cache(cfg, 100, 60000));
  REQUIRE_OK(brisk_client_new(cfg, &c));
  brisk_config_free(cfg);
  big = malloc(big_len + 1);
  REQUIRE(big != NULL);
  memset(big, 'o', big_len);
  big[big_len] = '\0';
  OK(w, "SET", "big", big);
  /* The data connection is tracked; the connection's last command is not GETRANGE. */
  CHECK_WARM(c, "big");
  OK(w, "SET", "big", big);
  {
    int held;
    BT_WAIT_UNTIL(held, stat_of(c, BRISK_STAT_CACHE_ENTRIES) == 0, 10000);
    CHECK(held);
  }
  invalidations = stat_of(c, BRISK_STAT_CACHE_INVALIDATIONS);
  atomic_store(&px.delay_ms, 5);
  sr.c = c;
  pthread_create(&reader, NULL, slow_read_run, &sr);
  BT_WAIT_UNTIL(ran, server_ran(w, "slow", "getrange"), bt_under_valgrind() ? 60000 : 20000);
  CHECK(ran);
  OK(w, "SET", "big", "new");
  pthread_join(reader, NULL);
  atomic_store(&px.delay_ms, 0);
  CHECK_OK(sr.status);
  /* Answered with what the server read, not kept (no entry ever filled), and the next read
   * is the new value. */
  CHECK(sr.len == big_len);
  CHECK(stat_of(c, BRISK_STAT_CACHE_ENTRIES) == 0);
  CHECK(stat_of(c, BRISK_STAT_CACHE_INVALIDATIONS) == invalidations);
  CHECK(get_is(c, "big", "new"));
  brisk_client_free(c);
  brisk_client_free(w);
  proxy_stop(&px);
  free(big);
}

/* ---- 4: flush on doubt ------------------------------------------------------------------ */

/* The `redir=` of the first connection of client `name` that redirects: the id of its
 * invalidation connection, or 0. */
static long long listener_id(brisk_client *w, const char *name) {
  brisk_reply *r = NULL;
  char needle[64];
  const char *list, *line;
  long long id = 0;
  if (CMD(w, &r, "CLIENT", "LIST") != BRISK_OK) return 0;
  list = brisk_reply_string(r, NULL);
  snprintf(needle, sizeof needle, "name=%s ", name);
  for (line = list; line != NULL && *line != '\0';) {
    const char *end = strchr(line, '\n');
    const char *name_at = strstr(line, needle);
    const char *redir = strstr(line, "redir=");
    if (name_at && redir && (!end || (name_at < end && redir < end)) && redir[6] != '-') {
      id = atoll(redir + 6);
      break;
    }
    line = end ? end + 1 : NULL;
  }
  brisk_reply_free(r);
  return id;
}

static void doubt_drops_everything(void) {
  brisk_config *cfg = cached_config(1000);
  brisk_client *c = NULL, *w = plain_client();
  char id[32];
  long long killed;
  int held;
  REQUIRE_OK(brisk_config_set_client_name(cfg, "doubt"));
  REQUIRE_OK(brisk_config_set_connect_timeout_ms(cfg, 500));
  REQUIRE_OK(brisk_client_new(cfg, &c));
  brisk_config_free(cfg);

  /* CLIENT KILL of the invalidation connection: everything goes before the next hit. */
  OK(w, "SET", "d", "old");
  CHECK_WARM(c, "d");
  CHECK(get_is(c, "d", "old"));
  killed = listener_id(w, "doubt");
  REQUIRE(killed > 0);
  snprintf(id, sizeof id, "%lld", killed);
  OK(w, "CLIENT", "KILL", "ID", id);
  BT_WAIT_UNTIL(held, stat_of(c, BRISK_STAT_CACHE_ENTRIES) == 0, 10000);
  CHECK(held);
  OK(w, "SET", "d", "new"); /* nobody tracks for `c` now */
  CHECK(get_is(c, "d", "new"));
  /* Tracking set up again: another write is seen 1 ms later. */
  BT_WAIT_UNTIL(held, get_is(c, "d", "new") && listener_id(w, "doubt") != killed, 20000);
  CHECK(held);
  CHECK_WARM(c, "d");
  OK(w, "SET", "d", "newer");
  one_millisecond();
  CHECK(get_is(c, "d", "newer"));

  /* FLUSHALL by another client: a null invalidation. */
  CHECK_WARM(c, "d");
  OK(w, "FLUSHALL");
  BT_WAIT_UNTIL(held, stat_of(c, BRISK_STAT_CACHE_ENTRIES) == 0, 10000);
  CHECK(held);
  CHECK(get_is(c, "d", NULL));

  /* A server restart: every connection lost, everything dropped, tracking set up again. */
  brisk_client_free(w);
  OK(c, "SET", "d", "before");
  CHECK_WARM(c, "d");
  REQUIRE(bt_server_restart(&srv));
  w = plain_client();
  OK(w, "SET", "d", "after restart");
  BT_WAIT_UNTIL(held, get_is(c, "d", "after restart"), 20000);
  CHECK(held);
  CHECK_WARM(c, "d");
  OK(w, "SET", "d", "after again");
  one_millisecond();
  CHECK(get_is(c, "d", "after again"));
  brisk_client_free(w);
  brisk_client_free(c);
}

/* ---- 5: bounds -------------------------------------------------------------------------- */

static void bounds_and_flush(void) {
  brisk_config *cfg = cached_config(50);
  brisk_client *c = NULL;
  int i, n = bt_under_valgrind() ? 200 : 1000;
  REQUIRE_OK(brisk_config_set_client_cache_max_bytes(cfg, 20000));
  REQUIRE_OK(brisk_client_new(cfg, &c));
  brisk_config_free(cfg);
  for (i = 0; i < n; i++) {
    char key[32];
    snprintf(key, sizeof key, "bound:%d", i);
    OK(c, "SET", key, "0123456789abcdef");
    OK(c, "GET", key);
    CHECK(stat_of(c, BRISK_STAT_CACHE_ENTRIES) <= 50);
    CHECK(stat_of(c, BRISK_STAT_CACHE_BYTES) <= 20000);
  }
  CHECK(stat_of(c, BRISK_STAT_CACHE_EVICTIONS) > 0);
  CHECK_OK(brisk_client_cache_flush(c));
  CHECK(stat_of(c, BRISK_STAT_CACHE_ENTRIES) == 0);
  CHECK(stat_of(c, BRISK_STAT_CACHE_BYTES) == 0);
  brisk_client_free(c);
}

/* ---- 6: not per DB ---------------------------------------------------------------------- */

static void other_db_invalidates(void) {
  brisk_client *c = cached_client(1000);
  brisk_client *other = NULL;
  brisk_config *cfg = brisk_config_new();
  int held;
  REQUIRE(cfg != NULL);
  REQUIRE_OK(brisk_config_set_address(cfg, "127.0.0.1", srv.port));
  REQUIRE_OK(brisk_config_set_db(cfg, 3));
  REQUIRE_OK(brisk_client_new(cfg, &other));
  brisk_config_free(cfg);
  OK(c, "SET", "db-key", "db0");
  CHECK_WARM(c, "db-key");
  OK(other, "SET", "db-key", "db3");
  BT_WAIT_UNTIL(held, stat_of(c, BRISK_STAT_CACHE_ENTRIES) == 0, 10000);
  CHECK(held);
  CHECK(get_is(c, "db-key", "db0"));
  brisk_client_free(other);
  brisk_client_free(c);
}

/* ---- modes and protocols ---------------------------------------------------------------- */

static void basics(brisk_client *c, brisk_client *w, const char *key) {
  int round;
  OK(c, "SET", key, "mine");
  CHECK(get_is(c, key, "mine"));
  for (round = 0; round < 20; round++) {
    char v[32];
    snprintf(v, sizeof v, "theirs %d", round);
    (void)warm(c, key);
    OK(w, "SET", key, v);
    one_millisecond();
    if (!get_is(c, key, v)) bt_fail(__FILE__, __LINE__, "%s: round %d stale", key, round);
  }
}

static void modes_and_resp2(void) {
  brisk_client *w = plain_client();
  const char *urls[] = {
      "redis://127.0.0.1:%u?client_cache=100&protocol=2",
      "redis://127.0.0.1:%u?client_cache=100&client_cache_mode=broadcast"
      "&client_cache_prefix=user:",
      "redis://127.0.0.1:%u?client_cache=100&client_cache_mode=optin&client_cache_prefix=user:",
      "redis://127.0.0.1:%u?client_cache=100&client_cache_mode=broadcast&protocol=2",
  };
  size_t i;
  for (i = 0; i < sizeof urls / sizeof urls[0]; i++) {
    brisk_config *cfg = brisk_config_new();
    brisk_client *c = NULL;
    char url[256];
    REQUIRE(cfg != NULL);
    snprintf(url, sizeof url, urls[i], (unsigned)srv.port);
    REQUIRE_OK(brisk_config_set_url(cfg, url));
    REQUIRE_OK(brisk_client_new(cfg, &c));
    brisk_config_free(cfg);
    basics(c, w, "user:1");
    if (strstr(url, "prefix=user:") != NULL) {
      /* Outside the prefix: never kept. */
      int k;
      OK(w, "SET", "plain", "x");
      for (k = 0; k < 10; k++) CHECK(get_is(c, "plain", "x"));
      CHECK(stat_of(c, BRISK_STAT_CACHE_ENTRIES) <= 1);
    }
    brisk_client_free(c);
  }
  brisk_client_free(w);
}

/* ---- events, stats, setters ------------------------------------------------------------- */

struct seen {
  pthread_mutex_t lock;
  int flushes, invalidations;
  uint32_t last_keys;
};

static void on_event(void *userdata, const brisk_event *e) {
  struct seen *s = userdata;
  if (brisk_event_kind_of(e) != BRISK_EVENT_CACHE_INVALIDATE) {
    if (brisk_event_cache_reason(e) != BRISK_CACHE_REASON_NONE) s->flushes = -1000;
    return;
  }
  pthread_mutex_lock(&s->lock);
  switch (brisk_event_cache_reason(e)) {
  case BRISK_CACHE_REASON_FLUSH:
    s->flushes++;
    break;
  case BRISK_CACHE_REASON_INVALIDATION:
    s->invalidations++;
    s->last_keys = brisk_event_batch_size(e);
    break;
  default:
    break;
  }
  pthread_mutex_unlock(&s->lock);
}

static void events_stats_and_setters(void) {
  static struct seen seen;
  brisk_config *cfg = cached_config(100);
  brisk_client *c = NULL, *w = plain_client();
  int held;
  pthread_mutex_init(&seen.lock, NULL);
  REQUIRE_OK(brisk_config_set_event_callback(cfg, on_event, &seen));
  CHECK_STATUS(brisk_config_set_client_cache_mode(cfg, 7), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_config_add_client_cache_prefix(cfg, ""), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_config_add_client_cache_prefix(cfg, NULL), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_OK(brisk_config_set_client_cache_mode(cfg, BRISK_CACHE_DEFAULT));
  REQUIRE_OK(brisk_client_new(cfg, &c));
  brisk_config_free(cfg);
  CHECK_STATUS(brisk_client_cache_flush(NULL), BRISK_ERR_INVALID_ARGUMENT);
  OK(w, "SET", "ev", "1");
  CHECK_WARM(c, "ev");
  OK(w, "SET", "ev", "2");
  BT_WAIT_UNTIL(held, seen.invalidations > 0, 10000);
  CHECK(held);
  CHECK(seen.last_keys == 1);
  CHECK_OK(brisk_client_cache_flush(c));
  CHECK(seen.flushes == 1);
  CHECK(stat_of(c, BRISK_STAT_CACHE_ENTRIES) == 0);
  CHECK(stat_of(c, 1000) == 0);
  brisk_client_free(c);
  brisk_client_free(w);
  pthread_mutex_destroy(&seen.lock);
  {
    /* Without the cache the stats are 0 and the flush a no-op. */
    brisk_client *p = plain_client();
    CHECK_OK(brisk_client_cache_flush(p));
    CHECK(stat_of(p, BRISK_STAT_CACHE_ENTRIES) == 0);
    CHECK(stat_of(p, BRISK_STAT_CACHE_BYTES) == 0);
    CHECK(stat_of(p, BRISK_STAT_CACHE_EVICTIONS) == 0);
    brisk_client_free(p);
  }
}

/* ---- a user who cannot track ------------------------------------------------------------ */

static void refused_without_tracking(void) {
  brisk_client *w = plain_client(), *c = NULL;
  brisk_config *cfg = cached_config(100);
  OK(w, "ACL", "SETUSER", "noclient", "on", ">pw", "~*", "&*", "+@all", "-client");
  REQUIRE_OK(brisk_config_set_username(cfg, "noclient"));
  REQUIRE_OK(brisk_config_set_password(cfg, "pw"));
  CHECK_STATUS(brisk_client_new(cfg, &c), BRISK_ERR_AUTH);
  CHECK(c == NULL);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "CLIENT TRACKING");
  brisk_config_free(cfg);
  brisk_client_free(w);
}

int main(int argc, char **argv) {
  bt_init(argc, argv);
  REQUIRE(bt_server_start(&srv));
  RUN(caches_reads_by_the_whole_command);
  RUN(own_writes_are_read_back);
  RUN(other_writes_seen_a_millisecond_later);
  RUN(async_reads_are_cached_and_never_stale);
  RUN(eight_readers_two_writers);
  RUN(in_flight_read_is_answered_not_kept);
  RUN(bounds_and_flush);
  RUN(other_db_invalidates);
  RUN(modes_and_resp2);
  RUN(events_stats_and_setters);
  RUN(refused_without_tracking);
  RUN(doubt_drops_everything);
  bt_server_cleanup(&srv);
  return bt_finish();
}
