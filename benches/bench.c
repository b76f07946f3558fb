/* brisk vs hiredis, side by side, against one redis-server.
 *
 *   bench [--quick] [--repeats N] [--duration SECONDS] [--only LIST] [--heap-conns N]
 *         [--redis-benchmark PATH|none] --host HOST --port PORT
 *   bench callgrind-MODE brisk|hiredis N --host H --port P
 *         (MODE: sync, pipeline, lrange, async, async-cb; brisk only: pipeline-bulk,
 *         pipeline-items, lrange-bulk, ...: see profile_target)
 *
 * The first form runs every workload through brisk and through hiredis, alternating the two
 * clients (brisk then hiredis on even repeats, hiredis then brisk on odd ones, `--repeats`
 * times), and runs redis-benchmark in
 * the same mode as the ceiling. It prints a Markdown table on stdout (progress on stderr).
 * The ratio columns are the median of the per-repeat ratios (each repeat pairs runs made
 * seconds apart, which cancels most drift of a shared VM).
 *
 * The pipeline workload also runs a third client, a bare socket (see bare_open): the same
 * batches of the same commands on the same keys, encoded once at setup, one send() per batch,
 * and a scan that only counts the replies. No client library can do less work per batch, so its
 * rate is the ceiling for this workload on this machine (server and kernel); it is printed in a
 * second table, "Pipelined ceiling on the same workload". The three clients run in rotating
 * order (brisk, hiredis, bare; then hiredis, bare, brisk; then bare, brisk, hiredis; ...).
 *
 * The second form is a callgrind/strace target: it connects, warms up, then runs N iterations
 * of one loop on one client and exits (see profile_target). benches/run.sh runs callgrind-sync
 * with two values of N and subtracts, so connection setup and teardown cancel out.
 *
 * The async workloads (see async_drive) run brisk_command_async against hiredis's async API on
 * libevent, in two harness styles and with 1, 2 and 8 submitting threads, and print a third
 * table. brisk's side is compiled only with -DBRISK_HAVE_ASYNC (benches/run.sh defines it when
 * include/brisk.h declares the function), hiredis's only with -DBENCH_HAVE_LIBEVENT (run.sh
 * defines it when libevent's headers are there); a side left out is reported as not measured.
 * The pubsub workload (messages/s delivered to one subscriber, callback and pull, beside a
 * hiredis subscriber and redis-benchmark's PUBLISH rate) needs -DBRISK_HAVE_PUBSUB (run.sh
 * defines it when include/brisk.h declares brisk_subscriber_new).
 *
 * This is a benchmark, not a test: it never judges the numbers. It exits non-zero only when a
 * command fails.
 */
#define _GNU_SOURCE
#include <brisk.h>
#include <hiredis/hiredis.h>
#ifdef BENCH_HAVE_LIBEVENT
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#endif

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Options and small helpers                                                                  */

static const char *g_host = "127.0.0.1";
static int g_port = 6379;
static bool g_quick = false;
static int g_repeats = 11;
static double g_duration = 0.3; /* seconds per measurement */
static int g_heap_conns = 1000;
static const char *g_redis_benchmark = "redis-benchmark";
static const char *g_only = NULL; /* comma-separated workload names, NULL = all */

#define VALUE_LEN 16
static const char VALUE[VALUE_LEN + 1] = "0123456789abcdef";
#define NKEYS 1000
#define KEY_LEN 12 /* "bench:k:0000" */
static char g_keys[NKEYS][KEY_LEN + 1];
#define PIPE_BATCH 100
#define LRANGE_LEN 1000
static const char LIST_KEY[] = "bench:list";
#define ASYNC_IN_FLIGHT 50
#define MAX_THREADS 8

static void usage(void);

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "bench: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t dur_ns(void) { return (uint64_t)(g_duration * 1e9); }

/* CPU time (user + system) of this process, all threads, or of its waited-for children. */
static double cpu_seconds(int who) {
  struct rusage ru;
  getrusage(who, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* CPU time of the calling thread only. */
static double thread_cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* p99 latency (us) of redis-benchmark's last SET/GET run; per test of its last run. */
static double g_rb_p99_us = NAN, g_rb_p99[8];

/* Client CPU per operation (us) of the last workload run; redis-benchmark's of the last run. */
static double g_cpu_us_per_op, g_rb_cpu_s, g_rb_cpu_us_per_op = NAN;

static bool selected(const char *name) {
  if (!g_only) return true;
  size_t n = strlen(name);
  for (const char *p = g_only; *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && strncmp(p, name, n) == 0) return true;
    if (!end) break;
    p = end + 1;
  }
  return false;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median of the finite values among v[0..n); NAN when none. */
static double median(const double *v, int n) {
  double tmp[64];
  int m = 0;
  for (int i = 0; i < n && m < 64; i++)
    if (isfinite(v[i])) tmp[m++] = v[i];
  if (m == 0) return NAN;
  qsort(tmp, (size_t)m, sizeof tmp[0], cmp_double);
  return m % 2 ? tmp[m / 2] : (tmp[m / 2 - 1] + tmp[m / 2]) / 2;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* Latency samples of one sync run, in nanoseconds. */
static uint32_t *g_lat;
static size_t g_lat_len, g_lat_cap;

static void lat_reset(void) { g_lat_len = 0; }
static void lat_push(uint64_t ns) {
  if (g_lat_len == g_lat_cap) {
    g_lat_cap = g_lat_cap ? g_lat_cap * 2 : (1u << 20);
    g_lat = realloc(g_lat, g_lat_cap * sizeof *g_lat);
    if (!g_lat) die("out of memory");
  }
  g_lat[g_lat_len++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}
static double g_lat_p99_us = NAN; /* of the last sync run, next to lat_p50_us's answer */
static double lat_p50_us(void) {
  if (g_lat_len == 0) return NAN;
  qsort(g_lat, g_lat_len, sizeof *g_lat, cmp_u32);
  g_lat_p99_us = g_lat[g_lat_len - 1 - g_lat_len / 100] / 1000.0;
  return g_lat[g_lat_len / 2] / 1000.0;
}

/* Heap in use according to glibc (all arenas, mmapped chunks included). Rust's System allocator
   is malloc, so brisk's allocations show up here as well as hiredis's. */
static size_t heap_in_use(void) {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

/* ------------------------------------------------------------------------------------------ */
/* brisk helpers                                                                              */

static void brisk_check(brisk_status st, const char *what) {
  if (st != BRISK_OK)
    die("brisk %s: %s: %s", what, brisk_status_name(st), brisk_last_error_message());
}

/* A client as a user gets it by default (pool, retry policy, stats, RESP3), on host:port. */
static brisk_client *brisk_open(uint32_t pool_size, uint32_t min_idle) {
  brisk_config *cfg = brisk_config_new();
  if (!cfg) die("brisk_config_new: out of memory");
  brisk_check(brisk_config_set_address(cfg, g_host, (uint16_t)g_port), "set_address");
  if (pool_size) brisk_check(brisk_config_set_pool_size(cfg, pool_size), "set_pool_size");
  if (min_idle) brisk_check(brisk_config_set_pool_min_idle(cfg, min_idle), "set_pool_min_idle");
  brisk_client *c = NULL;
  brisk_check(brisk_client_new(cfg, &c), "client_new");
  brisk_config_free(cfg);
  return c;
}

static inline void brisk_set(brisk_client *c, int k) {
  const char *argv[3] = {"SET", g_keys[k], VALUE};
  const size_t len[3] = {3, KEY_LEN, VALUE_LEN};
  brisk_reply *r = NULL;
  brisk_check(brisk_command(c, 3, argv, len, &r), "SET");
  if (brisk_reply_type_of(r) != BRISK_REPLY_STATUS) die("brisk SET: unexpected reply type");
  brisk_reply_free(r);
}

static inline void brisk_get(brisk_client *c, int k) {
  const char *argv[2] = {"GET", g_keys[k]};
  const size_t len[2] = {3, KEY_LEN};
  brisk_reply *r = NULL;
  brisk_check(brisk_command(c, 2, argv, len, &r), "GET");
  size_t n = 0;
  const char *s = brisk_reply_string(r, &n);
  if (!s || n != VALUE_LEN || s[0] != VALUE[0]) die("brisk GET: unexpected reply");
  brisk_reply_free(r);
}

/* Runs a few commands so the first-use work (connecting, the COMMAND table) is not timed. */
static void brisk_warm(brisk_client *c) {
  for (int i = 0; i < 50; i++) {
    brisk_set(c, i);
    brisk_get(c, i);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* OpenTelemetry cost: the same sync GET loop with OpenTelemetry off, on with metrics only
   (ratio 0) and on with a span per command (ratio 1), exporting every 100 ms to a collector
   that answers every export (a child process, so its CPU is not the client's).              */

#ifdef BRISK_HAVE_OTEL
static int g_otlp_port;
static pid_t g_otlp_pid;

/* The child: answers every HTTP request with 200 and an empty body, until killed. Only
   system calls and a static buffer: it is forked from a process with threads. */
static void otlp_serve(int listener) {
  static char buf[1 << 16];
  static const char ok[] =
      "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n"
      "Connection: close\r\n\r\n";
  for (;;) {
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) continue;
    size_t have = 0, need = (size_t)-1;
    while (have < need) {
      ssize_t n = read(fd, buf + (have % (sizeof buf / 2)), sizeof buf / 2);
      if (n <= 0) break;
      have += (size_t)n;
      if (need == (size_t)-1) {
        /* The head fits in the first read; the body may not. */
        char *end = memmem(buf, (size_t)n, "\r\n\r\n", 4);
        char *cl = memmem(buf, (size_t)n, "Content-Length:", 15);
        if (!cl) cl = memmem(buf, (size_t)n, "content-length:", 15);
        if (end && cl) need = (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10);
      }
    }
    ssize_t w = write(fd, ok, sizeof ok - 1);
    (void)w;
    close(fd);
  }
}

static void otlp_start(void) {
  if (g_otlp_pid) return;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0)
    die("collector socket: %s", strerror(errno));
  g_otlp_port = ntohs(a.sin_port);
  g_otlp_pid = fork();
  if (g_otlp_pid < 0) die("fork: %s", strerror(errno));
  if (g_otlp_pid == 0) otlp_serve(fd);
  close(fd);
}

static void otlp_stop(void) {
  if (!g_otlp_pid) return;
  kill(g_otlp_pid, SIGKILL);
  waitpid(g_otlp_pid, NULL, 0);
  g_otlp_pid = 0;
}

enum otel_mode { OTEL_OFF = 0, OTEL_METRICS = 1, OTEL_TRACES = 2 };

static brisk_client *brisk_open_otel(enum otel_mode mode, uint32_t interval_ms) {
  brisk_config *cfg = brisk_config_new();
  if (!cfg) die("brisk_config_new: out of memory");
  brisk_check(brisk_config_set_address(cfg, g_host, (uint16_t)g_port), "set_address");
  if (mode != OTEL_OFF) {
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", g_otlp_port);
    brisk_check(brisk_config_set_otel_endpoint(cfg, url), "set_otel_endpoint");
    brisk_check(brisk_config_set_otel_traces_sample_ratio(cfg, mode == OTEL_TRACES ? 1.0 : 0.0),
                "set_otel_traces_sample_ratio");
    brisk_check(brisk_config_set_otel_export_interval_ms(cfg, interval_ms),
                "set_otel_export_interval_ms");
  }
  brisk_client *c = NULL;
  brisk_check(brisk_client_new(cfg, &c), "client_new");
  brisk_config_free(cfg);
  return c;
}

/* Sync GETs for one measurement duration; returns the client CPU per GET (us). The exporter's
   work (building spans, encoding, posting) runs on the client's own thread: it is counted. */
static double wl_otel(enum otel_mode mode) {
  brisk_client *c = brisk_open_otel(mode, 100);
  brisk_warm(c);
  uint64_t ops = 0, start = now_ns(), end = start + dur_ns(), t;
  int k = 0;
  double cpu = cpu_seconds(RUSAGE_SELF);
  do {
    brisk_get(c, k);
    ops++;
    if (++k == NKEYS) k = 0;
    t = now_ns();
  } while (t < end);
  cpu = cpu_seconds(RUSAGE_SELF) - cpu;
  brisk_client_free(c);
  return cpu * 1e6 / ops;
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* hiredis helpers                                                                            */

static redisContext *hi_open(void) {
  redisContext *c = redisConnect(g_host, g_port);
  if (!c) die("hiredis: cannot allocate a context");
  if (c->err) die("hiredis connect: %s", c->errstr);
  return c;
}

static inline void hi_set(redisContext *c, int k) {
  const char *argv[3] = {"SET", g_keys[k], VALUE};
  const size_t len[3] = {3, KEY_LEN, VALUE_LEN};
  redisReply *r = redisCommandArgv(c, 3, argv, len);
  if (!r) die("hiredis SET: %s", c->errstr);
  if (r->type != REDIS_REPLY_STATUS) die("hiredis SET: unexpected reply type %d", r->type);
  freeReplyObject(r);
}

static inline void hi_get(redisContext *c, int k) {
  const char *argv[2] = {"GET", g_keys[k]};
  const size_t len[2] = {3, KEY_LEN};
  redisReply *r = redisCommandArgv(c, 2, argv, len);
  if (!r) die("hiredis GET: %s", c->errstr);
  if (r->type != REDIS_REPLY_STRING || r->len != VALUE_LEN || r->str[0] != VALUE[0])
    die("hiredis GET: unexpected reply");
  freeReplyObject(r);
}

static void hi_warm(redisContext *c) {
  for (int i = 0; i < 50; i++) {
    hi_set(c, i);
    hi_get(c, i);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Workloads. Each returns ops (or replies) per second; clients are set up before the clock.  */

enum lib {
  BRISK = 0,
  HIREDIS = 1,
  BARE = 2,          /* pipeline workload only */
  BRISK_DISPATCH = 3, /* async workload only: brisk with BRISK_ASYNC_DISPATCH_CALLER */
  BRISK_BATCH = 4     /* async workload only: runtime dispatch woken by the batch-end hook */
};

/* A client's SET or GET of key k (void * so that one timed loop serves both libraries; the
   indirect call is a nanosecond against a round trip of tens of microseconds). */
typedef void (*key_op)(void *client, int k);
static void brisk_set_op(void *c, int k) { brisk_set(c, k); }
static void brisk_get_op(void *c, int k) { brisk_get(c, k); }
static void hi_set_op(void *c, int k) { hi_set(c, k); }
static void hi_get_op(void *c, int k) { hi_get(c, k); }

/* SET then GET in turn for one measurement duration, every command timed for the p50; returns
   the commands run, with the process CPU seconds and the wall time they took. */
static uint64_t sync_loop(void *c, key_op set, key_op get, double *cpu, uint64_t *elapsed_ns) {
  uint64_t ops = 0, start, end, t, prev;
  int k = 0;
  *cpu = cpu_seconds(RUSAGE_SELF);
  start = prev = now_ns();
  end = start + dur_ns();
  do {
    set(c, k);
    t = now_ns();
    lat_push(t - prev);
    prev = t;
    get(c, k);
    t = now_ns();
    lat_push(t - prev);
    prev = t;
    ops += 2;
    if (++k == NKEYS) k = 0;
  } while (t < end);
  *cpu = cpu_seconds(RUSAGE_SELF) - *cpu;
  *elapsed_ns = t - start;
  return ops;
}

/* Sync SET then GET on one client; every command timed for the p50. */
static double wl_sync(enum lib lib, double *p50_us) {
  lat_reset();
  uint64_t ops, elapsed;
  double cpu;
  if (lib == BRISK) {
    brisk_client *c = brisk_open(0, 0);
    brisk_warm(c);
    ops = sync_loop(c, brisk_set_op, brisk_get_op, &cpu, &elapsed);
    brisk_client_free(c);
  } else {
    redisContext *c = hi_open();
    hi_warm(c);
    ops = sync_loop(c, hi_set_op, hi_get_op, &cpu, &elapsed);
    redisFree(c);
  }
  *p50_us = lat_p50_us();
  g_cpu_us_per_op = cpu * 1e6 / ops;
  return ops / (elapsed / 1e9);
}

/* How brisk_pipe_batch reads a batch's replies: two calls per reply (brisk_reply_element and
   brisk_reply_string: the callgrind-pipeline target and the timed workload), or one call per
   batch: their strings with brisk_reply_strings (callgrind-pipeline-bulk), or each reply's
   type, text and length with brisk_reply_elements (callgrind-pipeline-items). */
enum pipe_walk { PIPE_WALK_CALLS, PIPE_WALK_STRINGS, PIPE_WALK_ITEMS };

/* One batch of PIPE_BATCH SETs (get = false) or GETs; every reply is looked at (it has text;
   a GET's is VALUE_LEN bytes). */
static void brisk_pipe_batch(brisk_pipeline *p, bool get, int *k, enum pipe_walk walk) {
  const char *argv[3] = {get ? "GET" : "SET", NULL, VALUE};
  const size_t len[3] = {3, KEY_LEN, VALUE_LEN};
  size_t argc = get ? 2 : 3;
  for (int i = 0; i < PIPE_BATCH; i++) {
    argv[1] = g_keys[*k];
    if (++*k == NKEYS) *k = 0;
    brisk_check(brisk_pipeline_append(p, argc, argv, len), "pipeline_append");
  }
  brisk_reply *r = NULL;
  brisk_check(brisk_pipeline_exec(p, &r), "pipeline_exec");
  size_t n = brisk_reply_length(r);
  if (n != PIPE_BATCH) die("brisk pipeline: %zu replies", n);
  if (walk == PIPE_WALK_CALLS) {
    for (size_t i = 0; i < n; i++) {
      const brisk_reply *e = brisk_reply_element(r, i);
      size_t l = 0;
      const char *s = brisk_reply_string(e, &l);
      if (!s || (get && l != VALUE_LEN)) die("brisk pipeline: unexpected reply %zu", i);
    }
  } else if (walk == PIPE_WALK_ITEMS) {
    brisk_reply_item it[PIPE_BATCH];
    if (brisk_reply_elements(r, 0, it, PIPE_BATCH) != n) die("brisk pipeline: elements");
    for (size_t i = 0; i < n; i++)
      if (!it[i].str || (get && it[i].len != VALUE_LEN))
        die("brisk pipeline: unexpected reply %zu", i);
  } else {
    const char *strs[PIPE_BATCH];
    size_t lens[PIPE_BATCH];
    if (brisk_reply_strings(r, 0, PIPE_BATCH, strs, lens) != n) die("brisk pipeline: strings");
    for (size_t i = 0; i < n; i++)
      if (!strs[i] || (get && lens[i] != VALUE_LEN))
        die("brisk pipeline: unexpected reply %zu", i);
  }
  brisk_reply_free(r);
}

static void hi_pipe_batch(redisContext *c, bool get, int *k) {
  const char *argv[3] = {get ? "GET" : "SET", NULL, VALUE};
  const size_t len[3] = {3, KEY_LEN, VALUE_LEN};
  int argc = get ? 2 : 3;
  for (int i = 0; i < PIPE_BATCH; i++) {
    argv[1] = g_keys[*k];
    if (++*k == NKEYS) *k = 0;
    if (redisAppendCommandArgv(c, argc, argv, len) != REDIS_OK)
      die("hiredis append: %s", c->errstr);
  }
  for (int i = 0; i < PIPE_BATCH; i++) {
    void *v = NULL;
    if (redisGetReply(c, &v) != REDIS_OK || !v) die("hiredis pipeline: %s", c->errstr);
    redisReply *r = v;
    if (!r->str || (get && r->len != VALUE_LEN)) die("hiredis pipeline: unexpected reply");
    freeReplyObject(r);
  }
}

/* The bare socket: the floor under any client on the pipeline workload. A blocking TCP socket
   (TCP_NODELAY, like brisk and hiredis) that sends each batch's RESP bytes, encoded once at
   setup, with one send(), then recv()s until it has counted PIPE_BATCH complete replies: "+OK\r\n"
   for SET, "$16\r\n" + 16 bytes + "\r\n" for GET, anything else is fatal. Nothing is encoded,
   allocated or built per batch. Batch b holds keys b * PIPE_BATCH .. b * PIPE_BATCH + 99, so
   running the batches 0, 1, ..., BARE_NBATCH - 1, 0, ... rotates the keys exactly as the k of
   brisk_pipe_batch and hi_pipe_batch does. A 5 s send and receive timeout turns a short read
   or a silent server into an error instead of a hang. */
#define BARE_NBATCH (NKEYS / PIPE_BATCH)
_Static_assert(NKEYS % PIPE_BATCH == 0, "the bare socket's batches must tile the keys");
#define BARE_CMD_MAX 64 /* bytes of one encoded SET (55) or GET (32), rounded up */
#define BARE_TIMEOUT_S 5
static char g_bare_out[2][BARE_NBATCH][PIPE_BATCH * BARE_CMD_MAX]; /* [get][batch] */
static size_t g_bare_out_len[2][BARE_NBATCH];
static char g_bare_in[64 * 1024];
static bool g_bare_encoded;

/* RESP encoding of one command (an array of bulk strings) at out; returns its length. */
static size_t resp_encode(char *out, size_t room, int argc, const char *const *argv,
                          const size_t *len) {
  size_t n = (size_t)snprintf(out, room, "*%d\r\n", argc);
  for (int i = 0; i < argc; i++) {
    n += (size_t)snprintf(out + n, room - n, "$%zu\r\n", len[i]);
    if (n + len[i] + 2 > room) die("bare socket: encoded command too long");
    memcpy(out + n, argv[i], len[i]);
    memcpy(out + n + len[i], "\r\n", 2);
    n += len[i] + 2;
  }
  return n;
}

static void bare_encode(void) {
  if (g_bare_encoded) return;
  for (int get = 0; get < 2; get++) {
    const char *argv[3] = {get ? "GET" : "SET", NULL, VALUE};
    const size_t len[3] = {3, KEY_LEN, VALUE_LEN};
    for (int b = 0; b < BARE_NBATCH; b++) {
      size_t n = 0;
      for (int i = 0; i < PIPE_BATCH; i++) {
        argv[1] = g_keys[b * PIPE_BATCH + i];
        n += resp_encode(g_bare_out[get][b] + n, sizeof g_bare_out[get][b] - n, get ? 2 : 3, argv,
                         len);
      }
      g_bare_out_len[get][b] = n;
    }
  }
  g_bare_encoded = true;
}

static int bare_open(void) {
  char port[16];
  snprintf(port, sizeof port, "%d", g_port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
  int rc = getaddrinfo(g_host, port, &hints, &res);
  if (rc != 0) die("bare socket: %s:%s: %s", g_host, port, gai_strerror(rc));
  int fd = -1, err = 0;
  for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) die("bare socket: connect to %s:%s: %s", g_host, port, strerror(err));
  int one = 1;
  struct timeval tv = {.tv_sec = BARE_TIMEOUT_S};
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
    die("bare socket: setsockopt: %s", strerror(errno));
  return fd;
}

/* A reply the scan did not expect, shown escaped, and the end of the run. */
static void bare_unexpected(bool get, int index, const char *p, size_t n) {
  char shown[128];
  size_t m = 0;
  for (size_t i = 0; i < n && i < 24 && m + 5 < sizeof shown; i++) {
    unsigned char ch = (unsigned char)p[i];
    if (ch == '\r') m += (size_t)snprintf(shown + m, sizeof shown - m, "\\r");
    else if (ch == '\n') m += (size_t)snprintf(shown + m, sizeof shown - m, "\\n");
    else if (ch < 0x20 || ch >= 0x7f) m += (size_t)snprintf(shown + m, sizeof shown - m, "\\x%02x", ch);
    else shown[m++] = (char)ch;
  }
  shown[m] = 0;
  die("bare socket %s: unexpected reply %d of %d: \"%s%s\" (expected %s)", get ? "GET" : "SET",
      index + 1, PIPE_BATCH, shown, n > 24 ? "..." : "",
      get ? "\"$16\\r\\n\" + 16 bytes + \"\\r\\n\"" : "\"+OK\\r\\n\"");
}

/* Sends batch b of SETs (get = false) or GETs and counts its PIPE_BATCH replies. */
static void bare_batch(int fd, bool get, int b) {
  const char *out = g_bare_out[get][b];
  size_t len = g_bare_out_len[get][b], off = 0;
  while (off < len) { /* one send() unless the kernel takes less */
    ssize_t n = send(fd, out + off, len - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      die("bare socket: send blocked for %d s", BARE_TIMEOUT_S);
    if (n < 0) die("bare socket: send: %s", strerror(errno));
    off += (size_t)n;
  }
  /* SET: "+OK\r\n"; GET: "$16\r\n" + VALUE_LEN bytes + "\r\n". */
  const char *head = get ? "$16\r\n" : "+OK\r\n";
  const size_t head_len = 5, reply_len = get ? head_len + VALUE_LEN + 2 : head_len;
  size_t have = 0, pos = 0;
  int count = 0;
  while (count < PIPE_BATCH) {
    if (have == sizeof g_bare_in) die("bare socket: receive buffer full");
    ssize_t n = recv(fd, g_bare_in + have, sizeof g_bare_in - have, 0);
    if (n == 0)
      die("bare socket: server closed the connection after %d of %d replies", count, PIPE_BATCH);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      die("bare socket: short read, %d of %d replies (%zu bytes) after %d s", count, PIPE_BATCH,
          have, BARE_TIMEOUT_S);
    if (n < 0) die("bare socket: recv: %s", strerror(errno));
    have += (size_t)n;
    for (; count < PIPE_BATCH && have - pos >= reply_len; count++, pos += reply_len) {
      const char *r = g_bare_in + pos;
      if (memcmp(r, head, head_len) != 0 ||
          (get && memcmp(r + head_len + VALUE_LEN, "\r\n", 2) != 0))
        bare_unexpected(get, count, r, have - pos);
    }
    /* The start of an incomplete reply is checked too, so that an error reply fails at once
       rather than after the timeout. */
    size_t part = have - pos;
    if (count < PIPE_BATCH && part > 0 &&
        memcmp(g_bare_in + pos, head, part < head_len ? part : head_len) != 0)
      bare_unexpected(get, count, g_bare_in + pos, part);
  }
  if (have != pos)
    die("bare socket %s: %zu unexpected bytes after reply %d of %d", get ? "GET" : "SET",
        have - pos, PIPE_BATCH, PIPE_BATCH);
}

/* Each client's pipeline state, keys rotating through g_keys the same way (the bare socket's
   batch b covers keys b * PIPE_BATCH..). */
struct brisk_pipe { brisk_pipeline *p; int k; };
struct hi_pipe { redisContext *c; int k; };
struct bare_pipe { int fd; int b; };
static void brisk_pipe_op(void *s, bool get) {
  struct brisk_pipe *st = s;
  brisk_pipe_batch(st->p, get, &st->k, PIPE_WALK_CALLS);
}
static void hi_pipe_op(void *s, bool get) {
  struct hi_pipe *st = s;
  hi_pipe_batch(st->c, get, &st->k);
}
static void bare_pipe_op(void *s, bool get) {
  struct bare_pipe *st = s;
  bare_batch(st->fd, get, st->b);
  if (++st->b == BARE_NBATCH) st->b = 0;
}

/* Batches for one measurement duration; returns the commands run, with the process CPU seconds
   and the wall time they took. */
static uint64_t pipe_loop(void *state, void (*batch)(void *, bool), bool get, double *cpu,
                          uint64_t *elapsed_ns) {
  uint64_t ops = 0, start, t;
  *cpu = cpu_seconds(RUSAGE_SELF);
  start = now_ns();
  uint64_t end = start + dur_ns();
  do {
    batch(state, get);
    ops += PIPE_BATCH;
    t = now_ns();
  } while (t < end);
  *cpu = cpu_seconds(RUSAGE_SELF) - *cpu;
  *elapsed_ns = t - start;
  return ops;
}

/* Pipelined SET (get = false) or GET in batches of PIPE_BATCH. */
static double wl_pipeline(enum lib lib, bool get) {
  uint64_t ops, elapsed;
  double cpu;
  if (lib == BRISK) {
    brisk_client *c = brisk_open(0, 0);
    brisk_warm(c);
    struct brisk_pipe state = {.k = 0};
    brisk_check(brisk_pipeline_new(c, &state.p), "pipeline_new");
    ops = pipe_loop(&state, brisk_pipe_op, get, &cpu, &elapsed);
    brisk_pipeline_free(state.p);
    brisk_client_free(c);
  } else if (lib == BARE) {
    bare_encode();
    struct bare_pipe state = {.fd = bare_open(), .b = 0};
    bare_batch(state.fd, false, 0); /* warm-up, untimed: one batch of each kind */
    bare_batch(state.fd, true, 0);
    ops = pipe_loop(&state, bare_pipe_op, get, &cpu, &elapsed);
    close(state.fd);
  } else {
    struct hi_pipe state = {.c = hi_open(), .k = 0};
    hi_warm(state.c);
    ops = pipe_loop(&state, hi_pipe_op, get, &cpu, &elapsed);
    redisFree(state.c);
  }
  g_cpu_us_per_op = cpu * 1e6 / ops;
  return ops / (elapsed / 1e9);
}

/* T threads doing sync SET/GET: sharing one brisk client, or one hiredis context each. */
struct thread_arg {
  enum lib lib;
  brisk_client *shared;
  int index;
  pthread_barrier_t *ready;
  redisContext *ctx;
  uint64_t ops;
  double rate;
};

static void *thread_main(void *p) {
  struct thread_arg *a = p;
  int k = (a->index * 97) % NKEYS;
  if (a->lib == HIREDIS) {
    a->ctx = hi_open();
    hi_warm(a->ctx);
  }
  pthread_barrier_wait(a->ready);
  uint64_t start = now_ns(), end = start + dur_ns(), t, ops = 0;
  do {
    if (a->lib == BRISK) {
      brisk_set(a->shared, k);
      brisk_get(a->shared, k);
    } else {
      hi_set(a->ctx, k);
      hi_get(a->ctx, k);
    }
    ops += 2;
    if (++k == NKEYS) k = 0;
    t = now_ns();
  } while (t < end);
  a->ops = ops;
  a->rate = ops / ((t - start) / 1e9);
  if (a->ctx) redisFree(a->ctx);
  return NULL;
}

static double wl_threads(enum lib lib, int nthreads) {
  brisk_client *shared = NULL;
  if (lib == BRISK) {
    shared = brisk_open(0, 0);
    brisk_warm(shared);
  }
  pthread_barrier_t ready;
  pthread_barrier_init(&ready, NULL, (unsigned)nthreads);
  pthread_t th[MAX_THREADS];
  struct thread_arg args[MAX_THREADS];
  for (int i = 0; i < nthreads; i++) {
    args[i] = (struct thread_arg){.lib = lib, .shared = shared, .index = i, .ready = &ready};
    if (pthread_create(&th[i], NULL, thread_main, &args[i])) die("pthread_create failed");
  }
  double total = 0;
  for (int i = 0; i < nthreads; i++) {
    pthread_join(th[i], NULL);
    total += args[i].rate;
  }
  pthread_barrier_destroy(&ready);
  brisk_client_free(shared);
  return total;
}

/* LRANGE of the whole LRANGE_LEN-element list; every element's bytes are touched. */
static const char *const LRANGE_ARGV[4] = {"LRANGE", LIST_KEY, "0", "-1"};
static const size_t LRANGE_ARGVLEN[4] = {6, sizeof LIST_KEY - 1, 1, 2};

static uint64_t brisk_lrange(brisk_client *c) {
  uint64_t sum = 0;
  brisk_reply *r = NULL;
  brisk_check(brisk_command(c, 4, LRANGE_ARGV, LRANGE_ARGVLEN, &r), "LRANGE");
  size_t n = brisk_reply_length(r);
  if (n != LRANGE_LEN) die("brisk LRANGE: %zu elements", n);
  for (size_t i = 0; i < n; i++) {
    size_t l = 0;
    const char *s = brisk_reply_string(brisk_reply_element(r, i), &l);
    if (!s || l != VALUE_LEN) die("brisk LRANGE: element %zu", i);
    sum += (unsigned char)s[l - 1];
  }
  brisk_reply_free(r);
  return sum;
}

/* The same walk with brisk_reply_strings: the elements' strings 64 at a time, one call per 64
   elements instead of two per element (the callgrind-lrange-bulk target). */
static uint64_t brisk_lrange_bulk(brisk_client *c) {
  enum { CHUNK = 64 };
  uint64_t sum = 0;
  const char *strs[CHUNK];
  size_t lens[CHUNK];
  brisk_reply *r = NULL;
  brisk_check(brisk_command(c, 4, LRANGE_ARGV, LRANGE_ARGVLEN, &r), "LRANGE");
  size_t n = brisk_reply_length(r);
  if (n != LRANGE_LEN) die("brisk LRANGE: %zu elements", n);
  for (size_t at = 0; at < n;) {
    size_t got = brisk_reply_strings(r, at, CHUNK, strs, lens);
    if (got == 0) die("brisk LRANGE: no elements from %zu", at);
    for (size_t i = 0; i < got; i++) {
      if (!strs[i] || lens[i] != VALUE_LEN) die("brisk LRANGE: element %zu", at + i);
      sum += (unsigned char)strs[i][lens[i] - 1];
    }
    at += got;
  }
  brisk_reply_free(r);
  return sum;
}

static uint64_t hi_lrange(redisContext *c) {
  uint64_t sum = 0;
  redisReply *r = redisCommandArgv(c, 4, (const char **)LRANGE_ARGV, LRANGE_ARGVLEN);
  if (!r) die("hiredis LRANGE: %s", c->errstr);
  if (r->type != REDIS_REPLY_ARRAY || r->elements != LRANGE_LEN)
    die("hiredis LRANGE: unexpected reply");
  for (size_t i = 0; i < r->elements; i++) {
    const redisReply *e = r->element[i];
    if (!e->str || e->len != VALUE_LEN) die("hiredis LRANGE: element %zu", i);
    sum += (unsigned char)e->str[e->len - 1];
  }
  freeReplyObject(r);
  return sum;
}

static double wl_lrange(enum lib lib) {
  uint64_t replies = 0, start, t, sum = 0;
  double cpu;
  if (lib == BRISK) {
    brisk_client *c = brisk_open(0, 0);
    brisk_warm(c);
    cpu = cpu_seconds(RUSAGE_SELF);
    start = now_ns();
    uint64_t end = start + dur_ns();
    do {
      sum += brisk_lrange(c);
      replies++;
      t = now_ns();
    } while (t < end);
    cpu = cpu_seconds(RUSAGE_SELF) - cpu;
    brisk_client_free(c);
  } else {
    redisContext *c = hi_open();
    hi_warm(c);
    cpu = cpu_seconds(RUSAGE_SELF);
    start = now_ns();
    uint64_t end = start + dur_ns();
    do {
      sum += hi_lrange(c);
      replies++;
      t = now_ns();
    } while (t < end);
    cpu = cpu_seconds(RUSAGE_SELF) - cpu;
    redisFree(c);
  }
  g_cpu_us_per_op = cpu * 1e6 / replies;
  if (sum == 0) die("LRANGE: no bytes seen"); /* keeps the walk from being optimised away */
  return replies / ((t - start) / 1e9);
}

/* ------------------------------------------------------------------------------------------ */
/* Async: brisk_command_async against hiredis's async API on libevent                         */

/* Two harness styles, one driver each, shared by both libraries through struct async_lib:
     ASYNC_CALLER    the submitting thread keeps ASYNC_IN_FLIGHT commands in flight: it issues
                     until that many are outstanding, waits until some complete, tops up again;
     ASYNC_CALLBACK  the submitting thread starts ASYNC_IN_FLIGHT chains; each completion's
                     callback issues the chain's next command, until the run's budget is spent.
   Command i is a SET (i even) or a GET (i odd) of key (i / 2) % NKEYS, keys setup_data wrote,
   so every GET answers a 16-byte string. Every reply is checked.
   The libraries differ in where the callbacks run, which the harness cannot change:
     brisk    callbacks run on brisk's runtime threads; the submitting thread sleeps on a
              semaphore the callbacks post (ASYNC_CALLER: once per completion; ASYNC_CALLBACK:
              once per chain that ends). T submitting threads share one client.
     brisk, caller dispatch (BRISK_ASYNC_DISPATCH_CALLER; both styles)
              each submitting thread has a client of its own (as hiredis has a context each),
              polls its brisk_client_async_fd() and runs the waiting callbacks itself with
              brisk_client_async_dispatch(): callbacks run on the submitting thread, as
              hiredis's do, and it tops up once per wake-up.
     hiredis  a context is single-threaded: the submitting thread runs its own libevent loop
              (event_base_loop(EVLOOP_ONCE) is the wait) and its callbacks run there. T submitting
              threads have one context, one connection and one event loop each. */
enum async_style { ASYNC_CALLER = 0, ASYNC_CALLBACK = 1 };

struct async_state;
struct async_lib {
  const char *name;
  void *(*open)(void *shared, struct async_state *s); /* per submitting thread, before the clock */
  void (*close)(void *conn);
  void (*issue)(struct async_state *s, uint64_t index);
  /* Blocks until at least one signal (brisk) or for one loop turn (hiredis); returns how many
     signals it consumed. */
  uint64_t (*wait)(struct async_state *s);
  /* From a callback, as its last touch of the state: one completion (ASYNC_CALLER) or one
     ended chain (ASYNC_CALLBACK). The driver counts these, not the atomic counters, so that it
     never returns while a callback may still touch the state. */
  void (*signal)(struct async_state *s);
};

/* One submitting thread's run. Counters are atomic: brisk's callbacks run on other threads. */
struct async_state {
  const struct async_lib *lib;
  void *conn;
  enum async_style style;
  uint64_t end_ns;   /* no command is started at or after this time ... */
  uint64_t max_cmds; /* ... nor more than this many (the callgrind targets' bound) */
  atomic_uint_fast64_t claimed; /* command indexes handed out (may pass max_cmds) */
  atomic_uint_fast64_t done, failed; /* completions, failures */
  /* Callbacks inside issue() (ASYNC_CALLBACK): the driver returns only when none is, so that
     the client is never freed while a callback is still in brisk_command_async. */
  atomic_uint_fast64_t busy;
  sem_t wake;      /* brisk's signal */
  atomic_uint_fast64_t handed; /* completions the batch-end hook handed over (BRISK_BATCH) */
  uint64_t events; /* hiredis's signal (callbacks run on the submitting thread) */
  char first_error[160];
  atomic_flag error_set;
};

static void async_record_failure(struct async_state *s, const char *what) {
  if (!atomic_flag_test_and_set(&s->error_set))
    snprintf(s->first_error, sizeof s->first_error, "%s", what);
  atomic_fetch_add(&s->failed, 1);
}

/* Claims the index of the next command, or returns false when the run's budget is spent. */
static bool async_claim(struct async_state *s, uint64_t *index) {
  if (s->end_ns != UINT64_MAX && now_ns() >= s->end_ns) return false;
  uint64_t i = atomic_fetch_add_explicit(&s->claimed, 1, memory_order_relaxed);
  if (i >= s->max_cmds) return false;
  *index = i;
  return true;
}

/* What a callback does after it checked its reply: counts it and, in the callback style,
   issues the chain's next command or ends the chain. */
static void async_completed(struct async_state *s) {
  atomic_fetch_add_explicit(&s->done, 1, memory_order_release);
  if (s->style == ASYNC_CALLER) {
    s->lib->signal(s);
    return;
  }
  uint64_t i;
  if (atomic_load_explicit(&s->failed, memory_order_relaxed) == 0 && async_claim(s, &i)) {
    atomic_fetch_add(&s->busy, 1); /* before the next command can complete and end its chain */
    s->lib->issue(s, i);
    atomic_fetch_sub_explicit(&s->busy, 1, memory_order_release); /* the last touch of s */
  } else {
    s->lib->signal(s);
  }
}

/* The driver of one submitting thread: returns when every command it started has completed. */
static void async_drive(struct async_state *s) {
  uint64_t i, issued = 0;
  if (s->style == ASYNC_CALLER) {
    uint64_t completed = 0;
    bool more = true;
    for (;;) {
      while (more && issued - completed < ASYNC_IN_FLIGHT) {
        more = async_claim(s, &i);
        if (more) {
          s->lib->issue(s, i);
          issued++;
        }
      }
      if (!more || atomic_load(&s->failed)) break;
      completed += s->lib->wait(s);
    }
    while (completed < issued) completed += s->lib->wait(s);
  } else {
    uint64_t chains = 0, ended = 0;
    while (chains < ASYNC_IN_FLIGHT && async_claim(s, &i)) {
      chains++;
      s->lib->issue(s, i);
    }
    while (ended < chains) ended += s->lib->wait(s);
    /* A callback that issued a chain's last command may not have returned from issue() yet. */
    while (atomic_load_explicit(&s->busy, memory_order_acquire) != 0) sched_yield();
  }
}

static void async_state_reset(struct async_state *s, uint64_t end_ns, uint64_t max_cmds) {
  s->end_ns = end_ns;
  s->max_cmds = max_cmds;
  atomic_store(&s->claimed, 0);
  atomic_store(&s->done, 0);
  /* failed and first_error are kept: a failure in the warm-up fails the run too */
}

static void async_args(uint64_t index, const char **argv, size_t *len, size_t *argc) {
  argv[0] = index & 1 ? "GET" : "SET";
  argv[1] = g_keys[(index / 2) % NKEYS];
  argv[2] = VALUE;
  len[0] = 3;
  len[1] = KEY_LEN;
  len[2] = VALUE_LEN;
  *argc = index & 1 ? 2 : 3;
}

/* A semaphore wait that EINTR does not cut short. */
static void sem_wait_fully(sem_t *sem) {
  while (sem_wait(sem) != 0 && errno == EINTR) {}
}

#ifdef BRISK_HAVE_ASYNC
static void *brisk_async_open(void *shared, struct async_state *s) {
  (void)s;
  return shared;
}
static void brisk_async_close(void *conn) { (void)conn; }

static void brisk_async_done(void *userdata, brisk_status status, const char *error_message,
                             brisk_reply *reply) {
  struct async_state *s = userdata;
  if (status != BRISK_OK) {
    char what[160];
    snprintf(what, sizeof what, "%s: %s", brisk_status_name(status), error_message);
    async_record_failure(s, what);
  } else {
    size_t n = 0;
    uint32_t type = brisk_reply_type_of(reply);
    const char *str = brisk_reply_string(reply, &n);
    if (!(type == BRISK_REPLY_STATUS || (type == BRISK_REPLY_STRING && str && n == VALUE_LEN)))
      async_record_failure(s, "unexpected reply");
  }
  brisk_reply_free(reply);
  async_completed(s);
}

static void brisk_async_issue(struct async_state *s, uint64_t index) {
  const char *argv[3];
  size_t len[3], argc;
  async_args(index, argv, len, &argc);
  brisk_check(brisk_command_async(s->conn, argc, argv, len, brisk_async_done, s), "command_async");
}

/* Sleeps until a completion is signalled, then takes every other one already signalled (as
   hiredis's wait takes every reply one read brought): the caller tops up once per wake-up. */
static uint64_t brisk_async_wait(struct async_state *s) {
  uint64_t n = 1;
  sem_wait_fully(&s->wake);
  while (sem_trywait(&s->wake) == 0) n++;
  return n;
}
static void brisk_async_signal(struct async_state *s) { sem_post(&s->wake); }

static const struct async_lib BRISK_ASYNC = {"brisk", brisk_async_open, brisk_async_close,
                                             brisk_async_issue, brisk_async_wait,
                                             brisk_async_signal};
#define BRISK_ASYNC_LIB (&BRISK_ASYNC)
#else
#define BRISK_ASYNC_LIB NULL
#endif

#ifdef BRISK_HAVE_ASYNC_DISPATCH
/* A client of its own per submitting thread, whose callbacks that thread runs. */
static void *brisk_dispatch_open(void *shared, struct async_state *s) {
  (void)shared;
  (void)s;
  brisk_config *cfg = brisk_config_new();
  if (!cfg) die("brisk_config_new: out of memory");
  brisk_check(brisk_config_set_address(cfg, g_host, (uint16_t)g_port), "set_address");
  brisk_check(brisk_config_set_async_dispatch(cfg, BRISK_ASYNC_DISPATCH_CALLER),
              "set_async_dispatch");
  brisk_client *c = NULL;
  brisk_check(brisk_client_new(cfg, &c), "client_new");
  brisk_config_free(cfg);
  brisk_warm(c);
  return c;
}

static void brisk_dispatch_close(void *conn) { brisk_client_free(conn); }

/* Sleeps until callbacks wait, then runs all of them here (as one libevent turn runs every
   reply one read brought). */
static uint64_t brisk_dispatch_wait(struct async_state *s) {
  uint64_t before = s->events;
  struct pollfd p = {.fd = brisk_client_async_fd(s->conn), .events = POLLIN};
  if (p.fd < 0) die("brisk_client_async_fd: %s", brisk_last_error_message());
  while (poll(&p, 1, -1) < 0 && errno == EINTR) {}
  brisk_client_async_dispatch(s->conn, 0);
  return s->events - before;
}

/* Callbacks run on the submitting thread: a plain count, as hiredis's. */
static void brisk_dispatch_signal(struct async_state *s) { s->events++; }

static const struct async_lib BRISK_DISPATCH_ASYNC = {
    "brisk (caller dispatch)", brisk_dispatch_open, brisk_dispatch_close,
    brisk_async_issue,         brisk_dispatch_wait, brisk_dispatch_signal};
#define BRISK_DISPATCH_LIB (&BRISK_DISPATCH_ASYNC)
#else
#define BRISK_DISPATCH_LIB NULL
#endif

#ifdef BRISK_HAVE_ASYNC_BATCH_END
/* Runtime dispatch with a client per submitting thread whose batch-end hook wakes it: the
   callbacks only count; the hook hands the count over and posts the semaphore, once per batch
   of callbacks rather than once per callback. */
struct batch_conn {
  brisk_client *c;
  struct async_state *s;
  atomic_uint_fast64_t counted; /* completions not handed over yet */
};

static void brisk_batch_hook(void *userdata) {
  struct batch_conn *b = userdata;
  uint64_t n = atomic_exchange(&b->counted, 0);
  if (n == 0) return;
  atomic_fetch_add(&b->s->handed, n);
  sem_post(&b->s->wake);
}

static void *brisk_batch_open(void *shared, struct async_state *s) {
  (void)shared;
  struct batch_conn *b = calloc(1, sizeof *b);
  if (!b) die("out of memory");
  b->s = s;
  brisk_config *cfg = brisk_config_new();
  if (!cfg) die("brisk_config_new: out of memory");
  brisk_check(brisk_config_set_address(cfg, g_host, (uint16_t)g_port), "set_address");
  brisk_check(brisk_config_set_async_batch_end(cfg, brisk_batch_hook, b), "set_async_batch_end");
  brisk_check(brisk_client_new(cfg, &b->c), "client_new");
  brisk_config_free(cfg);
  brisk_warm(b->c);
  return b;
}

/* brisk_client_free returns after the last hook call: the state is not touched after it. */
static void brisk_batch_close(void *conn) {
  struct batch_conn *b = conn;
  brisk_client_free(b->c);
  free(b);
}

static void brisk_batch_issue(struct async_state *s, uint64_t index) {
  const char *argv[3];
  size_t len[3], argc;
  struct batch_conn *b = s->conn;
  async_args(index, argv, len, &argc);
  brisk_check(brisk_command_async(b->c, argc, argv, len, brisk_async_done, s), "command_async");
}

/* Sleeps until the hook posts, then takes what it handed over (0 when a later batch's post
   finds its count taken already). */
static uint64_t brisk_batch_wait(struct async_state *s) {
  sem_wait_fully(&s->wake);
  while (sem_trywait(&s->wake) == 0) {}
  return atomic_exchange(&s->handed, 0);
}

static void brisk_batch_signal(struct async_state *s) {
  struct batch_conn *b = s->conn;
  atomic_fetch_add(&b->counted, 1);
}

static const struct async_lib BRISK_BATCH_ASYNC = {
    "brisk (batch-end hook)", brisk_batch_open, brisk_batch_close,
    brisk_batch_issue,        brisk_batch_wait, brisk_batch_signal};
#define BRISK_BATCH_LIB (&BRISK_BATCH_ASYNC)
#else
#define BRISK_BATCH_LIB NULL
#endif

#ifdef BENCH_HAVE_LIBEVENT
struct hi_async {
  struct event_base *base;
  redisAsyncContext *ac;
};

static void *hi_async_open(void *shared, struct async_state *s) {
  (void)s;
  (void)shared;
  struct hi_async *h = calloc(1, sizeof *h);
  if (!h) die("out of memory");
  h->base = event_base_new();
  if (!h->base) die("libevent: event_base_new failed");
  h->ac = redisAsyncConnect(g_host, g_port);
  if (!h->ac) die("hiredis async: cannot allocate a context");
  if (h->ac->err) die("hiredis async connect: %s", h->ac->errstr);
  if (redisLibeventAttach(h->ac, h->base) != REDIS_OK) die("hiredis async: libevent attach failed");
  return h;
}

static void hi_async_close(void *conn) {
  struct hi_async *h = conn;
  redisAsyncFree(h->ac); /* nothing is pending: every driver waits for its last reply */
  event_base_free(h->base);
  free(h);
}

static void hi_async_done(redisAsyncContext *ac, void *reply, void *privdata) {
  struct async_state *s = privdata;
  redisReply *r = reply;
  if (!r) {
    char what[160];
    snprintf(what, sizeof what, "no reply: %s", ac->errstr[0] ? ac->errstr : "disconnected");
    async_record_failure(s, what);
  } else if (!(r->type == REDIS_REPLY_STATUS ||
               (r->type == REDIS_REPLY_STRING && r->len == VALUE_LEN))) {
    async_record_failure(s, "unexpected reply");
  }
  /* hiredis frees the reply when the callback returns */
  async_completed(s);
}

static void hi_async_issue(struct async_state *s, uint64_t index) {
  const char *argv[3];
  size_t len[3], argc;
  async_args(index, argv, len, &argc);
  struct hi_async *h = s->conn;
  if (redisAsyncCommandArgv(h->ac, hi_async_done, s, (int)argc, argv, len) != REDIS_OK)
    die("hiredis async: command refused (%s)",
        h->ac->errstr[0] ? h->ac->errstr : "the connection is closing or closed");
}

/* One turn of the event loop: writes what is queued, reads and calls back what has arrived. */
static uint64_t hi_async_wait(struct async_state *s) {
  struct hi_async *h = s->conn;
  uint64_t before = s->events;
  if (event_base_loop(h->base, EVLOOP_ONCE) < 0) die("libevent: event_base_loop failed");
  return s->events - before;
}

static void hi_async_signal(struct async_state *s) { s->events++; }

static const struct async_lib HI_ASYNC = {"hiredis", hi_async_open, hi_async_close,
                                          hi_async_issue, hi_async_wait, hi_async_signal};
#define HI_ASYNC_LIB (&HI_ASYNC)
#else
#define HI_ASYNC_LIB NULL
#endif

static const struct async_lib *async_lib(enum lib lib) {
  switch (lib) {
  case BRISK: return BRISK_ASYNC_LIB;
  case BRISK_DISPATCH: return BRISK_DISPATCH_LIB;
  case BRISK_BATCH: return BRISK_BATCH_LIB;
  default: return HI_ASYNC_LIB;
  }
}

/* One submitting thread: connects and warms up (two rounds of ASYNC_IN_FLIGHT commands,
   untimed), runs between the two barriers, then disconnects. */
struct async_thread {
  struct async_state s;
  void *shared;
  uint64_t max_cmds; /* UINT64_MAX: a timed run */
  pthread_barrier_t *ready, *finished;
};

static void *async_thread_main(void *p) {
  struct async_thread *a = p;
  struct async_state *s = &a->s;
  s->conn = s->lib->open(a->shared, s);
  async_state_reset(s, UINT64_MAX, 2 * ASYNC_IN_FLIGHT);
  async_drive(s);
  async_state_reset(s, UINT64_MAX, a->max_cmds);
  pthread_barrier_wait(a->ready);
  if (a->max_cmds == UINT64_MAX) s->end_ns = now_ns() + dur_ns();
  async_drive(s);
  pthread_barrier_wait(a->finished);
  s->lib->close(s->conn);
  return NULL;
}

/* T submitting threads in one style; returns ops/s over the run (from the moment every thread
   is ready until every thread has its last reply), g_cpu_us_per_op its process CPU per command
   (all threads: the submitting threads, brisk's runtime threads). max_cmds bounds each thread's
   commands (the callgrind targets), UINT64_MAX runs for the measurement duration. NAN when the
   library's async API is not built in. */
static double wl_async(enum lib lib, enum async_style style, int nthreads, uint64_t max_cmds) {
  const struct async_lib *al = async_lib(lib);
  g_cpu_us_per_op = NAN;
  if (!al) return NAN;
  brisk_client *shared = NULL;
  if (lib == BRISK) {
    shared = brisk_open(0, 0);
    brisk_warm(shared);
  }
  pthread_barrier_t ready, finished;
  pthread_barrier_init(&ready, NULL, (unsigned)nthreads + 1);
  pthread_barrier_init(&finished, NULL, (unsigned)nthreads + 1);
  pthread_t th[MAX_THREADS];
  struct async_thread *args = calloc((size_t)nthreads, sizeof *args);
  if (!args) die("out of memory");
  for (int i = 0; i < nthreads; i++) {
    struct async_thread *a = &args[i];
    a->s.lib = al;
    a->s.style = style;
    atomic_flag_clear(&a->s.error_set);
    if (sem_init(&a->s.wake, 0, 0) != 0) die("sem_init: %s", strerror(errno));
    a->shared = shared;
    a->max_cmds = max_cmds;
    a->ready = &ready;
    a->finished = &finished;
    if (pthread_create(&th[i], NULL, async_thread_main, a)) die("pthread_create failed");
  }
  pthread_barrier_wait(&ready);
  double cpu = cpu_seconds(RUSAGE_SELF);
  uint64_t start = now_ns();
  pthread_barrier_wait(&finished);
  uint64_t t = now_ns();
  cpu = cpu_seconds(RUSAGE_SELF) - cpu;
  uint64_t ops = 0, failed = 0;
  const char *error = "";
  for (int i = 0; i < nthreads; i++) {
    pthread_join(th[i], NULL);
    ops += atomic_load(&args[i].s.done);
    if (atomic_load(&args[i].s.failed) && !failed) error = args[i].s.first_error;
    failed += atomic_load(&args[i].s.failed);
  }
  if (failed)
    die("%s async: %lu of %lu commands failed (first: %s)", al->name, (unsigned long)failed,
        (unsigned long)ops, error);
  if (ops == 0) die("%s async: no command completed", al->name);
  for (int i = 0; i < nthreads; i++) sem_destroy(&args[i].s.wake);
  free(args);
  pthread_barrier_destroy(&ready);
  pthread_barrier_destroy(&finished);
  brisk_client_free(shared);
  g_cpu_us_per_op = cpu * 1e6 / ops;
  return ops / ((t - start) / 1e9);
}

#ifdef BRISK_HAVE_PUBSUB
/* Pub/Sub: messages delivered to one subscriber. A hiredis publisher thread sends PS_COUNT
   PUBLISHes (16-byte payloads) to one channel in pipelines of 100, as fast as the server takes
   them; the rate is PS_COUNT over the time from the first PUBLISH to the last message received.
   brisk's subscriber uses the BLOCK policy (lossless: its reader stops reading rather than drop),
   so every message is delivered and counted; hiredis reads its subscribed context with
   redisGetReply in a loop. Client CPU per message is the process's CPU time over the run less
   the publisher thread's, over the messages. */
#define PS_CHANNEL "bench:ps"
static long ps_count(void) { return g_quick ? 20000 : 200000; }

/* CPU time of the publisher thread of the last run (it runs in this process). */
static double g_ps_publisher_cpu;

static void *ps_publish(void *arg) {
  long n = *(long *)arg;
  double cpu = thread_cpu_seconds();
  redisContext *c = hi_open();
  for (long sent = 0; sent < n;) {
    long batch = n - sent < 100 ? n - sent : 100;
    for (long i = 0; i < batch; i++)
      redisAppendCommand(c, "PUBLISH %s %b", PS_CHANNEL, VALUE, (size_t)VALUE_LEN);
    for (long i = 0; i < batch; i++) {
      redisReply *r;
      if (redisGetReply(c, (void **)&r) != REDIS_OK) die("hiredis PUBLISH: %s", c->errstr);
      if (r->type != REDIS_REPLY_INTEGER || r->integer != 1)
        die("PUBLISH reached %lld subscribers, not 1", r->integer);
      freeReplyObject(r);
    }
    sent += batch;
  }
  redisFree(c);
  g_ps_publisher_cpu = thread_cpu_seconds() - cpu;
  return NULL;
}

static atomic_long g_ps_received;

static void ps_on_message(void *userdata, const char *channel, size_t channel_len,
                          const char *pattern, size_t pattern_len, const char *payload,
                          size_t payload_len) {
  (void)userdata, (void)channel, (void)channel_len, (void)pattern, (void)pattern_len;
  (void)payload;
  if (payload_len != VALUE_LEN) die("a message of %zu bytes", payload_len);
  atomic_fetch_add_explicit(&g_ps_received, 1, memory_order_relaxed);
}

enum ps_style { PS_CALLBACK, PS_PULL };

static double wl_pubsub(enum lib lib, enum ps_style style) {
  long n = ps_count();
  brisk_client *bc = NULL;
  brisk_subscriber *bs = NULL;
  redisContext *hc = NULL;
  if (lib == BRISK) {
    brisk_config *cfg = brisk_config_new();
    brisk_check(brisk_config_set_address(cfg, g_host, (uint16_t)g_port), "set_address");
    brisk_check(brisk_config_set_pubsub_queue(cfg, 10000, BRISK_OVERFLOW_BLOCK), "pubsub_queue");
    brisk_check(brisk_client_new(cfg, &bc), "client_new");
    brisk_config_free(cfg);
    atomic_store(&g_ps_received, 0);
    brisk_check(brisk_subscriber_new(bc, style == PS_CALLBACK ? ps_on_message : NULL, NULL, &bs),
                "subscriber_new");
    brisk_check(brisk_subscribe(bs, PS_CHANNEL), "subscribe");
  } else {
    hc = hi_open();
    redisReply *r = redisCommand(hc, "SUBSCRIBE %s", PS_CHANNEL);
    if (!r) die("hiredis SUBSCRIBE: %s", hc->errstr);
    freeReplyObject(r);
  }
  pthread_t publisher;
  double cpu = cpu_seconds(RUSAGE_SELF);
  uint64_t start = now_ns();
  if (pthread_create(&publisher, NULL, ps_publish, &n) != 0) die("pthread_create");
  uint64_t deadline = start + 120ull * 1000000000u;
  long received = 0;
  if (lib == HIREDIS) {
    for (; received < n; received++) {
      redisReply *r;
      if (redisGetReply(hc, (void **)&r) != REDIS_OK) die("hiredis read: %s", hc->errstr);
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[2]->len != VALUE_LEN)
        die("hiredis: not a message");
      freeReplyObject(r);
    }
  } else if (style == PS_PULL) {
    while (received < n) {
      brisk_message *m = NULL;
      brisk_status st = brisk_subscriber_next(bs, 1000, &m);
      if (st == BRISK_ERR_TIMEOUT && now_ns() < deadline) continue;
      brisk_check(st, "subscriber_next");
      size_t len = 0;
      brisk_message_payload(m, &len);
      if (len != VALUE_LEN) die("a message of %zu bytes", len);
      brisk_message_free(m);
      received++;
    }
  } else {
    while ((received = atomic_load(&g_ps_received)) < n) {
      if (now_ns() > deadline) die("pubsub: %ld of %ld messages in 120 s", received, n);
      usleep(1000);
    }
  }
  uint64_t elapsed = now_ns() - start;
  pthread_join(publisher, NULL);
  /* The subscribing client's CPU: the process's, less the publisher thread's. */
  g_cpu_us_per_op = (cpu_seconds(RUSAGE_SELF) - cpu - g_ps_publisher_cpu) * 1e6 / n;
  if (lib == BRISK) {
    if (brisk_subscriber_stat(bs, BRISK_STAT_PUBSUB_DROPPED) != 0) die("pubsub: messages dropped");
    brisk_subscriber_free(bs);
    brisk_client_free(bc);
  } else {
    redisFree(hc);
  }
  return n / (elapsed / 1e9);
}
#endif

/* Heap growth per idle connection, in bytes, over g_heap_conns connections. */
static double heap_hiredis(void) {
  redisContext **ctx = calloc((size_t)g_heap_conns, sizeof *ctx);
  if (!ctx) die("out of memory");
  redisFree(hi_open()); /* resolver and first-use allocations out of the way */
  size_t before = heap_in_use();
  for (int i = 0; i < g_heap_conns; i++) ctx[i] = hi_open();
  size_t after = heap_in_use();
  for (int i = 0; i < g_heap_conns; i++) redisFree(ctx[i]);
  free(ctx);
  /* 0 means mallinfo2 does not see the allocations (a sanitizer's allocator, say). */
  return after == before ? NAN : ((double)after - (double)before) / g_heap_conns;
}

static double heap_brisk(void) {
  /* The shared runtime and first-use allocations out of the way. */
  brisk_client *warm = brisk_open(0, 0);
  brisk_check(brisk_ping(warm), "PING");
  brisk_client_free(warm);

  size_t before = heap_in_use();
  brisk_client *c = brisk_open((uint32_t)g_heap_conns, (uint32_t)g_heap_conns);
  uint64_t deadline = now_ns() + 60ull * 1000000000u;
  while (brisk_client_stat(c, BRISK_STAT_POOL_IDLE) < (uint64_t)g_heap_conns) {
    if (now_ns() > deadline)
      die("brisk: only %lu of %d connections idle after 60 s",
          (unsigned long)brisk_client_stat(c, BRISK_STAT_POOL_IDLE), g_heap_conns);
    usleep(10000);
  }
  size_t after = heap_in_use();
  brisk_client_free(c);
  /* 0 means mallinfo2 does not see the allocations (a sanitizer's allocator, say). */
  return after == before ? NAN : ((double)after - (double)before) / g_heap_conns;
}

/* ------------------------------------------------------------------------------------------ */
/* redis-benchmark, the ceiling                                                               */

/* Runs redis-benchmark with `args` (plus host, port, --csv); stores each test's rps and p50
   (us) and returns how many tests it reported, 0 when it could not run. */
static int rb_run(const char *args, double *rps, double *p50, int max) {
  if (!g_redis_benchmark || strcmp(g_redis_benchmark, "none") == 0) return 0;
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s -h %s -p %d --csv %s 2>/dev/null", g_redis_benchmark, g_host,
           g_port, args);
  double cpu = cpu_seconds(RUSAGE_CHILDREN);
  FILE *f = popen(cmd, "r");
  if (!f) return 0;
  char line[512];
  int n = 0;
  while (fgets(line, sizeof line, f) && n < max) {
    /* "SET","28571.43","0.032","0.016","0.031",... */
    if (strncmp(line, "\"test\"", 6) == 0 || line[0] != '"') continue;
    double field[6];
    int nf = 0;
    char *p = line;
    while (nf < 6 && (p = strstr(p, "\",\"")) != NULL) {
      p += 3;
      field[nf++] = strtod(p, NULL);
    }
    if (nf < 4) continue;
    rps[n] = field[0];
    p50[n] = field[3] * 1000.0;
    g_rb_p99[n] = nf >= 6 ? field[5] * 1000.0 : NAN;
    n++;
  }
  pclose(f);
  g_rb_cpu_s = cpu_seconds(RUSAGE_CHILDREN) - cpu;
  return n;
}

/* SET and GET measured separately, combined as the rate of doing both in turn. */
static double rb_set_get(const char *mode, long n, double *p50_us) {
  double rps[2], p50[2];
  char args[256];
  snprintf(args, sizeof args, "%s -t set,get -d %d -n %ld", mode, VALUE_LEN, n);
  g_rb_cpu_us_per_op = NAN;
  g_rb_p99_us = NAN;
  if (rb_run(args, rps, p50, 2) != 2) return NAN;
  if (p50_us) *p50_us = (p50[0] + p50[1]) / 2;
  g_rb_p99_us = (g_rb_p99[0] + g_rb_p99[1]) / 2;
  g_rb_cpu_us_per_op = g_rb_cpu_s * 1e6 / (2.0 * n);
  return 2 / (1 / rps[0] + 1 / rps[1]);
}

static double rb_one(const char *args_fmt, long n) {
  double rps[1], p50[1];
  char args[256];
  snprintf(args, sizeof args, args_fmt, n);
  g_rb_cpu_us_per_op = NAN;
  if (rb_run(args, rps, p50, 1) != 1) return NAN;
  g_rb_cpu_us_per_op = g_rb_cpu_s * 1e6 / n;
  return rps[0];
}

/* A request count that makes redis-benchmark run for about one measurement duration. */
static long rb_count(double est_rate, double share) {
  double n = (isfinite(est_rate) ? est_rate : 20000) * g_duration * share;
  return n < 1000 ? 1000 : (long)n;
}

/* ------------------------------------------------------------------------------------------ */
/* The table                                                                                  */

enum unit { OPS, US, NS, BYTES, NONE };

struct row {
  char name[96];
  enum unit unit;
  bool lower_is_better;
  double b[64], h[64], c[64]; /* per repeat: brisk, hiredis, ceiling */
  int n;
  const char *note; /* replaces the figures when set */
};

#define MAX_ROWS 24
static struct row g_rows[MAX_ROWS];
static int g_nrows;

/* A new row at the end of `rows` (holding *n of max). */
static struct row *row_in(struct row *rows, int *n, int max, const char *name, enum unit unit,
                          bool lower_is_better) {
  if (*n == max) die("too many rows");
  struct row *r = &rows[(*n)++];
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", name);
  r->unit = unit;
  r->lower_is_better = lower_is_better;
  return r;
}

static struct row *row_new(const char *name, enum unit unit, bool lower_is_better) {
  return row_in(g_rows, &g_nrows, MAX_ROWS, name, unit, lower_is_better);
}

static void row_add(struct row *r, double b, double h, double c) {
  if (r->n == 64) return;
  r->b[r->n] = b;
  r->h[r->n] = h;
  r->c[r->n] = c;
  r->n++;
}

static void fmt(char *out, size_t size, double v, enum unit unit) {
  if (!isfinite(v)) {
    snprintf(out, size, "-");
    return;
  }
  switch (unit) {
  case OPS:
    if (v >= 1e6) snprintf(out, size, "%.2fM/s", v / 1e6);
    else if (v >= 1e3) snprintf(out, size, "%.1fk/s", v / 1e3);
    else snprintf(out, size, "%.0f/s", v);
    break;
  case US: snprintf(out, size, v < 10 ? "%.2f us" : "%.1f us", v); break;
  case NS: snprintf(out, size, "%.0f ns", v); break;
  case BYTES:
    if (v >= 1024) snprintf(out, size, "%.2f KB", v / 1024);
    else snprintf(out, size, "%.0f B", v);
    break;
  case NONE: snprintf(out, size, "%.0f", v); break;
  }
}

static double ratio_median(const double *x, const double *y, int n) {
  double r[64];
  for (int i = 0; i < n; i++) r[i] = x[i] / y[i];
  return median(r, n);
}

static void loadavg(char *out, size_t size) {
  FILE *f = fopen("/proc/loadavg", "r");
  out[0] = 0;
  if (f) {
    double a = 0, b = 0, c = 0;
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3) snprintf(out, size, "%.2f %.2f %.2f", a, b, c);
    fclose(f);
  }
}

/* Prints "| name | x | y | x/y | z | brisk/ceiling |" from a row's per-repeat figures: medians,
   and ratios as medians of per-repeat ratios. */
static void print_row(const struct row *r, const double *x, const double *y, const double *z) {
  char sx[32], sy[32], sz[32], xy[32] = "-", bc[32] = "-";
  fmt(sx, sizeof sx, median(x, r->n), r->unit);
  fmt(sy, sizeof sy, median(y, r->n), r->unit);
  fmt(sz, sizeof sz, median(z, r->n), r->unit);
  double a = ratio_median(x, y, r->n), b = ratio_median(r->b, r->c, r->n);
  if (isfinite(a)) snprintf(xy, sizeof xy, "%.2fx", a);
  if (isfinite(b)) snprintf(bc, sizeof bc, "%.2fx", b);
  printf("| %s | %s | %s | %s | %s | %s |\n", r->name, sx, sy, xy, sz, bc);
}

/* The second table: the bare socket against hiredis and brisk on the pipeline workload, as rows
   whose ceiling column (c) holds the bare socket's figures. */
static struct row g_ceil[4];
static int g_nceil;

static struct row *ceil_row_new(const char *name, enum unit unit) {
  return row_in(g_ceil, &g_nceil, (int)(sizeof g_ceil / sizeof g_ceil[0]), name, unit,
                unit != OPS);
}

static void print_ceiling_table(void) {
  if (g_nceil == 0) return;
  printf("\nPipelined ceiling on the same workload\n\n");
  printf("| workload | bare socket | hiredis | bare/hiredis | brisk | brisk/bare |\n");
  printf("|---|---:|---:|---:|---:|---:|\n");
  /* Throughput rows first, then the CPU-per-command rows. */
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < g_nceil; i++) {
      struct row *r = &g_ceil[i];
      if ((r->unit == OPS) != (pass == 0)) continue;
      print_row(r, r->c, r->h, r->b); /* bare, hiredis, bare/hiredis, brisk, brisk/bare */
    }
  }
  printf("\nThe bare socket sends the same batches (the same %d SETs or GETs on the same keys, in "
         "the same rotation), encoded once at setup, with one send() per batch, and only counts "
         "the replies: no encoding, no reply objects, no allocation. Its rate is what the server "
         "and the kernel allow, so bare/hiredis is the most any client can gain over hiredis on "
         "this machine for this workload, and brisk/bare is the share of that ceiling brisk "
         "reaches. The three clients run in rotating order, the same duration each; ratios are "
         "medians of per-repeat ratios (for CPU per command, lower is better).\n",
         PIPE_BATCH);
}

static void progress_bare(const char *name, int rep, double s, enum unit unit) {
  char ss[32];
  fmt(ss, sizeof ss, s, unit);
  fprintf(stderr, "  %-34s #%d  bare socket %s\n", name, rep + 1, ss);
}

static char g_load_start[64];

#ifdef BRISK_HAVE_OTEL
/* The OpenTelemetry table: b = off, h = metrics only (ratio 0), c = traces (ratio 1). */
static struct row g_otel_rows[1];
static int g_notel;
static struct row *g_otel;

static void print_otel_table(void) {
  if (!g_otel || g_otel->n == 0) return;
  struct row *r = g_otel;
  char off[32], metrics[32], traces[32];
  fmt(off, sizeof off, median(r->b, r->n), US);
  fmt(metrics, sizeof metrics, median(r->h, r->n), US);
  fmt(traces, sizeof traces, median(r->c, r->n), US);
  printf("\nOpenTelemetry cost, one run\n\n");
  printf("| workload | OTel off | metrics only (ratio 0) | +%% | traces (ratio 1.0) | +%% |\n");
  printf("|---|---:|---:|---:|---:|---:|\n");
  printf("| %s | %s | %s | %+.1f%% | %s | %+.1f%% |\n", r->name, off, metrics,
         (ratio_median(r->h, r->b, r->n) - 1) * 100, traces,
         (ratio_median(r->c, r->b, r->n) - 1) * 100);
  printf("\nThe same sync GET loop through three clients in rotating order, the same duration "
         "each: OpenTelemetry off, on with metrics only, and on with a span for every command; "
         "both export every 100 ms to a local OTLP/HTTP receiver (a child process). Client CPU is "
         "the process's user + system time, so the exporter thread's work is counted. Percentages "
         "are medians of per-repeat ratios.\n");
}
#endif

static void print_async_table(void);

static void print_main_table(void) {
  printf("| workload | brisk | hiredis | brisk/hiredis | redis-benchmark | brisk/redis-benchmark |\n");
  printf("|---|---:|---:|---:|---:|---:|\n");
  for (int i = 0; i < g_nrows; i++) {
    struct row *r = &g_rows[i];
    if (r->note) {
      printf("| %s | %s | | | | |\n", r->name, r->note);
      continue;
    }
    print_row(r, r->b, r->h, r->c); /* brisk, hiredis, brisk/hiredis, ceiling, brisk/ceiling */
  }
  char load_end[64];
  loadavg(load_end, sizeof load_end);
  printf("\n%d repeat(s) of %.2f s per client and workload, alternating brisk and hiredis; "
         "figures are medians, ratios are medians of per-repeat ratios (for latency, CPU and heap, "
         "lower is better; for the rest, higher is better). Load average before: %s, after: %s.\n",
         g_repeats, g_duration, g_load_start, load_end);
}

static void print_table(void) {
  if (g_nrows > 0) print_main_table(); /* none with --only otel */
  print_ceiling_table();
  print_async_table();
#ifdef BRISK_HAVE_OTEL
  print_otel_table();
#endif
}

static void progress(const char *name, int rep, double b, double h, double c, enum unit unit) {
  char sb[32], sh[32], sc[32];
  fmt(sb, sizeof sb, b, unit);
  fmt(sh, sizeof sh, h, unit);
  fmt(sc, sizeof sc, c, unit);
  fprintf(stderr, "  %-34s #%d  brisk %-10s hiredis %-10s redis-benchmark %s\n", name, rep + 1,
          sb, sh, sc);
}

/* ------------------------------------------------------------------------------------------ */

#ifdef BRISK_HAVE_CACHE
/* ------------------------------------------------------------------------------------------ */
/* Client-side cache (brisk only): cached GETs against the same GETs with the cache off.      */

#define CACHE_KEYS 1000 /* the hit workloads cycle over the first CACHE_KEYS keys */
#define CACHE_MEMORY_MAX 100000
/* Entries for the memory figure (fewer in --quick runs: filling takes two round trips each). */
static int cache_memory_entries(void) { return g_quick ? 10000 : CACHE_MEMORY_MAX; }

/* A client with the cache on: `entries` entries, the default TTL. */
static brisk_client *brisk_open_cached(uint32_t entries) {
  brisk_config *cfg = brisk_config_new();
  if (!cfg) die("brisk_config_new: out of memory");
  brisk_check(brisk_config_set_address(cfg, g_host, (uint16_t)g_port), "set_address");
  brisk_check(brisk_config_set_client_cache(cfg, entries, 300000), "set_client_cache");
  brisk_check(brisk_config_set_client_cache_max_bytes(cfg, 0), "set_client_cache_max_bytes");
  brisk_client *c = NULL;
  brisk_check(brisk_client_new(cfg, &c), "client_new (cached)");
  brisk_config_free(cfg);
  return c;
}

/* GETs of keys first..first+count-1 in turn for one duration; the calling thread's CPU per
   GET in *cpu_ns. Returns GETs per second. */
/* The process CPU per call of the last get_loop (every thread: a cached client's invalidation
   thread, its lease PINGs included; meaningful only when one get_loop runs at a time). */
static double g_loop_process_cpu_ns;

static double get_loop(brisk_client *c, int first, int count, double *cpu_ns) {
  uint64_t ops = 0, start = now_ns(), end = start + dur_ns(), t;
  double cpu = thread_cpu_seconds(), process_cpu = cpu_seconds(RUSAGE_SELF);
  int k = 0;
  do {
    for (int i = 0; i < 64; i++) {
      brisk_get(c, first + k);
      if (++k == count) k = 0;
    }
    ops += 64;
    t = now_ns();
  } while (t < end);
  *cpu_ns = (thread_cpu_seconds() - cpu) * 1e9 / ops;
  g_loop_process_cpu_ns = (cpu_seconds(RUSAGE_SELF) - process_cpu) * 1e9 / ops;
  return ops / ((t - start) / 1e9);
}

/* Waits until no cached client's invalidation thread still keeps its leases fresh for hits
   that ended (it PINGs every ~250 us for 200 ms after the last hit): each loop is measured
   without the PINGs of the loop before it. */
static void cache_quiet(void) {
  struct timespec pause = {0, 300 * 1000000L};
  nanosleep(&pause, NULL);
}

/* get_loop after cache_quiet(); the process CPU per call in *process_cpu_ns. */
static double quiet_get_loop(brisk_client *c, double *cpu_ns, double *process_cpu_ns) {
  cache_quiet();
  double rate = get_loop(c, 0, CACHE_KEYS, cpu_ns);
  *process_cpu_ns = g_loop_process_cpu_ns;
  return rate;
}

/* Reads every key once and again until the second round is all hits (the invalidation thread
   has its lease: see brisk_config_set_client_cache). */
static void cache_warm(brisk_client *c, int first, int count) {
  uint64_t deadline = now_ns() + 30ull * 1000000000u;
  for (;;) {
    uint64_t before = brisk_client_stat(c, BRISK_STAT_CACHE_HITS);
    for (int k = 0; k < count; k++) brisk_get(c, first + k);
    if (brisk_client_stat(c, BRISK_STAT_CACHE_HITS) - before == (uint64_t)count) return;
    if (now_ns() > deadline) die("cache: reads never became hits");
  }
}

struct hit_arg {
  brisk_client *c;
  int index;
  pthread_barrier_t *ready;
  double rate, cpu_ns;
};

static void *hit_thread(void *p) {
  struct hit_arg *a = p;
  pthread_barrier_wait(a->ready);
  /* Each thread starts at its own place in the keys (the shards differ, as in real use). */
  a->rate = get_loop(a->c, (a->index * 97) % (CACHE_KEYS / 2), CACHE_KEYS / 2, &a->cpu_ns);
  return NULL;
}

/* The mean thread CPU per hit of the last cache_hits_threads run: if hits serialised on
   something shared, it would grow with the threads (a core waiting for a cache line counts as
   busy), whatever the machine's other load does to throughput. */
static double g_hit_cpu_ns;

/* Hits per second with `n` threads on one shared cached client. */
static double cache_hits_threads(brisk_client *c, int n) {
  pthread_barrier_t ready;
  pthread_t th[MAX_THREADS];
  struct hit_arg args[MAX_THREADS];
  pthread_barrier_init(&ready, NULL, (unsigned)n);
  for (int i = 0; i < n; i++) {
    args[i] = (struct hit_arg){.c = c, .index = i, .ready = &ready};
    if (pthread_create(&th[i], NULL, hit_thread, &args[i])) die("pthread_create failed");
  }
  double total = 0, cpu = 0;
  for (int i = 0; i < n; i++) {
    pthread_join(th[i], NULL);
    total += args[i].rate;
    cpu += args[i].cpu_ns;
  }
  pthread_barrier_destroy(&ready);
  g_hit_cpu_ns = cpu / n;
  return total;
}

/* Heap growth per cached GET of a 16-byte value, over cache_memory_entries() entries, and what
   is left after brisk_client_cache_flush (bytes). */
static double cache_memory(double *left_after_flush) {
  const int entries = cache_memory_entries();
  brisk_client *c = brisk_open_cached((uint32_t)entries * 2);
  char key[32];
  const char *argv[2] = {"GET", key};
  size_t len[2] = {3, 0};
  /* Fill once and flush, so that what is allocated once (tables' first growth, buffers) is in
     the baseline. */
  for (int round = 0; round < 2; round++) {
    size_t before = heap_in_use();
    for (int i = 0; i < entries; i++) {
      brisk_reply *r = NULL;
      len[1] = (size_t)snprintf(key, sizeof key, "bench:c:%06d", i);
      brisk_check(brisk_command(c, 2, argv, len, &r), "GET");
      brisk_reply_free(r);
    }
    if (brisk_client_stat(c, BRISK_STAT_CACHE_ENTRIES) != (uint64_t)entries)
      die("cache memory: %lu entries", (unsigned long)brisk_client_stat(c, BRISK_STAT_CACHE_ENTRIES));
    size_t filled = heap_in_use();
    brisk_check(brisk_client_cache_flush(c), "cache_flush");
    if (round == 1) {
      *left_after_flush = (double)heap_in_use() - (double)before;
      brisk_client_free(c);
      return ((double)filled - (double)before) / entries;
    }
  }
  return NAN;
}

static void setup_cache_data(void) {
  redisContext *c = hi_open();
  char key[32];
  for (int i = 0; i < cache_memory_entries(); i++) {
    snprintf(key, sizeof key, "bench:c:%06d", i);
    redisAppendCommand(c, "SET %s %b", key, VALUE, (size_t)VALUE_LEN);
  }
  for (int i = 0; i < cache_memory_entries(); i++) {
    void *v;
    if (redisGetReply(c, &v) != REDIS_OK) die("hiredis SET: %s", c->errstr);
    freeReplyObject(v);
  }
  redisFree(c);
}

/* The cache table: | workload | cache on | cache off | on/off |. */
static struct row g_cache_rows[16];
static int g_ncache;

static struct row *cache_row_new(const char *name, enum unit unit, bool lower_is_better) {
  return row_in(g_cache_rows, &g_ncache, (int)(sizeof g_cache_rows / sizeof g_cache_rows[0]),
                name, unit, lower_is_better);
}

static void run_cache(int R) {
  fprintf(stderr, "client-side cache: hits and misses against the cache off\n");
  setup_cache_data();
  struct row *rate = cache_row_new("GET, 1 thread (ops/s): hit vs cache off", OPS, false);
  struct row *cpu = cache_row_new("GET, client CPU per call (calling thread): hit vs cache off",
                                  NS, true);
  struct row *mrate = cache_row_new("GET that misses (ops/s) vs cache off", OPS, false);
  struct row *mcpu = cache_row_new("GET that misses, client CPU per call vs cache off", NS, true);
  struct row *pcpu = cache_row_new(
      "GET, process CPU per call (every thread: lease PINGs included): hit vs cache off", NS,
      true);
  struct row *mpcpu =
      cache_row_new("GET that misses, process CPU per call (every thread) vs cache off", NS, true);
  struct row *t1 = cache_row_new("hits, 1 thread, one shared client (ops/s)", OPS, false);
  struct row *t2 = cache_row_new("hits, 2 threads, one shared client (ops/s) vs 1 thread", OPS,
                                 false);
  struct row *t8 = cache_row_new("hits, 8 threads, one shared client (ops/s) vs 1 thread", OPS,
                                 false);
  struct row *c2 = cache_row_new("thread CPU per hit, 2 threads vs 1 thread", NS, true);
  struct row *c8 = cache_row_new("thread CPU per hit, 8 threads vs 1 thread", NS, true);
  brisk_client *off = brisk_open(0, 0);
  brisk_client *on = brisk_open_cached(100000);
  /* Every GET misses: one entry, the keys in turn (each fill evicts the one before). */
  brisk_client *missing = brisk_open_cached(1);
  brisk_warm(off);
  cache_warm(on, 0, CACHE_KEYS);
  for (int k = 0; k < 50; k++) brisk_get(missing, k);
  for (int i = 0; i < R; i++) {
    double on_rate, on_cpu, off_rate, off_cpu, miss_rate, miss_cpu, on_pcpu, off_pcpu, miss_pcpu;
    uint64_t misses = brisk_client_stat(missing, BRISK_STAT_CACHE_MISSES);
    if (i % 2 == 0) {
      on_rate = quiet_get_loop(on, &on_cpu, &on_pcpu);
      off_rate = quiet_get_loop(off, &off_cpu, &off_pcpu);
      miss_rate = quiet_get_loop(missing, &miss_cpu, &miss_pcpu);
    } else {
      miss_rate = quiet_get_loop(missing, &miss_cpu, &miss_pcpu);
      off_rate = quiet_get_loop(off, &off_cpu, &off_pcpu);
      on_rate = quiet_get_loop(on, &on_cpu, &on_pcpu);
    }
    if (brisk_client_stat(missing, BRISK_STAT_CACHE_HITS) != 0 ||
        brisk_client_stat(missing, BRISK_STAT_CACHE_MISSES) == misses)
      die("cache: the missing client hit");
    row_add(rate, on_rate, off_rate, NAN);
    row_add(cpu, on_cpu, off_cpu, NAN);
    row_add(mrate, miss_rate, off_rate, NAN);
    row_add(mcpu, miss_cpu, off_cpu, NAN);
    row_add(pcpu, on_pcpu, off_pcpu, NAN);
    row_add(mpcpu, miss_pcpu, off_pcpu, NAN);
    double h1 = cache_hits_threads(on, 1), cpu1 = g_hit_cpu_ns;
    double h2 = cache_hits_threads(on, 2), cpu2 = g_hit_cpu_ns;
    double h8 = cache_hits_threads(on, 8), cpu8 = g_hit_cpu_ns;
    row_add(t1, h1, NAN, NAN);
    row_add(t2, h2, h1, NAN);
    row_add(t8, h8, h1, NAN);
    row_add(c2, cpu2, cpu1, NAN);
    row_add(c8, cpu8, cpu1, NAN);
    fprintf(stderr, "  #%d  hit %.0f/s (%.0f ns)  off %.0f/s (%.0f ns)  miss %.0f/s (%.0f ns)  "
                    "threads 1: %.0f/s 2: %.0f/s 8: %.0f/s (cpu/hit %.0f %.0f %.0f ns)\n",
            i + 1, on_rate, on_cpu, off_rate, off_cpu, miss_rate, miss_cpu, h1, h2, h8, cpu1, cpu2,
            cpu8);
  }
  fprintf(stderr, "  cache: hits %lu, misses %lu, entries %lu\n",
          (unsigned long)brisk_client_stat(on, BRISK_STAT_CACHE_HITS),
          (unsigned long)brisk_client_stat(on, BRISK_STAT_CACHE_MISSES),
          (unsigned long)brisk_client_stat(on, BRISK_STAT_CACHE_ENTRIES));
  brisk_client_free(missing);
  brisk_client_free(on);
  brisk_client_free(off);
  double left = NAN;
  char mem_name[96];
  snprintf(mem_name, sizeof mem_name, "heap per cached GET of a 16-byte value (%d entries)",
           cache_memory_entries());
  struct row *mem = cache_row_new(mem_name, BYTES, true);
  row_add(mem, cache_memory(&left), NAN, NAN);
  struct row *after = cache_row_new("heap left after brisk_client_cache_flush", BYTES, true);
  row_add(after, left, NAN, NAN);
}

static void print_cache_table(void) {
  if (g_ncache == 0) return;
  printf("\nClient-side cache (brisk only): the same GETs with the cache on and off\n\n");
  printf("| workload | cache on | cache off / 1 thread | ratio |\n");
  printf("|---|---:|---:|---:|\n");
  for (int i = 0; i < g_ncache; i++) {
    struct row *r = &g_cache_rows[i];
    char sb[32], sh[32], ratio[32] = "-";
    fmt(sb, sizeof sb, median(r->b, r->n), r->unit);
    fmt(sh, sizeof sh, median(r->h, r->n), r->unit);
    double q = ratio_median(r->b, r->h, r->n);
    if (isfinite(q)) snprintf(ratio, sizeof ratio, "%.2fx", q);
    printf("| %s | %s | %s | %s |\n", r->name, sb, sh, ratio);
  }
  printf("\nHits are GETs of %d keys (16-byte values) answered from the cache; \"cache off\" is "
         "the same GETs on a client without it; misses are GETs on a client whose cache keeps "
         "one entry (every GET misses, is kept, and evicts the one before). CPU per call is the "
         "calling thread's (RUSAGE_THREAD), C API call and brisk_reply_free included; process CPU "
         "is every thread's (RUSAGE_SELF: the invalidation thread's lease PINGs, sent while "
         "hits go on, included). Each one-thread loop starts 300 ms after the loop before, when "
         "no lease PINGs for earlier hits are left. The thread rows share one client; each "
         "thread reads its own run of keys. Ratios are medians of per-repeat ratios.\n",
         CACHE_KEYS);
}
#endif

static void make_keys(void) {
  for (unsigned i = 0; i < NKEYS; i++)
    snprintf(g_keys[i], sizeof g_keys[i], "bench:k:%04u", i % 10000u);
}

static void setup_data(void) {
  make_keys();
  redisContext *c = hi_open();
  redisReply *r = redisCommand(c, "DEL %s", LIST_KEY);
  if (!r) die("hiredis DEL: %s", c->errstr);
  freeReplyObject(r);
  for (int i = 0; i < LRANGE_LEN; i++) {
    char v[VALUE_LEN + 1];
    snprintf(v, sizeof v, "v%015d", i);
    redisAppendCommand(c, "RPUSH %s %b", LIST_KEY, v, (size_t)VALUE_LEN);
  }
  for (int i = 0; i < LRANGE_LEN; i++) {
    void *v;
    if (redisGetReply(c, &v) != REDIS_OK) die("hiredis RPUSH: %s", c->errstr);
    freeReplyObject(v);
  }
  for (int i = 0; i < NKEYS; i++) hi_set(c, i);
  redisFree(c);
}

static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* The async table: per harness style and number of submitting threads, ops/s and client CPU
   per command of brisk and hiredis side by side (rows in pairs: ops, then CPU). */
static struct row g_async_rows[12];
static int g_nasync;
static const char *g_async_missing; /* why a column is empty, when it is */
/* The caller harness with brisk's caller dispatch, printed after the rows above. */
static struct row g_dispatch_rows[12];
static int g_ndispatch;
static struct row g_batch_rows[12];
static int g_nbatch;

/* brisk's other async modes, each a table part of its own, measured against the same hiredis
   runs as brisk's default mode. */
#define ASYNC_VARIANTS 2
static const struct {
  enum lib lib;
  const char *label;
  struct row *rows;
  int *n;
} g_variants[ASYNC_VARIANTS] = {
    {BRISK_DISPATCH, "brisk caller dispatch", g_dispatch_rows, &g_ndispatch},
    {BRISK_BATCH, "brisk batch-end hook", g_batch_rows, &g_nbatch},
};

static void print_async_rows(const struct row *rows, int n) {
  for (int i = 0; i + 1 < n; i += 2) {
    const struct row *ops = &rows[i], *cpu = &rows[i + 1];
    char b[32], h[32], bc[32], hc[32], r[32] = "-", rc[32] = "-";
    fmt(b, sizeof b, median(ops->b, ops->n), OPS);
    fmt(h, sizeof h, median(ops->h, ops->n), OPS);
    fmt(bc, sizeof bc, median(cpu->b, cpu->n), US);
    fmt(hc, sizeof hc, median(cpu->h, cpu->n), US);
    double x = ratio_median(ops->b, ops->h, ops->n), y = ratio_median(cpu->b, cpu->h, cpu->n);
    if (isfinite(x)) snprintf(r, sizeof r, "%.2fx", x);
    if (isfinite(y)) snprintf(rc, sizeof rc, "%.2fx", y);
    printf("| %s | %s | %s | %s | %s | %s | %s |\n", ops->name, b, h, r, bc, hc, rc);
  }
}

static void print_async_table(void) {
  if (g_nasync == 0) return;
  printf("\nAsync: brisk_command_async against hiredis's async API (libevent), SET and GET "
         "alternating, %d commands in flight per submitting thread\n\n", ASYNC_IN_FLIGHT);
  printf("| harness | threads | brisk | hiredis | brisk/hiredis | brisk CPU per command | "
         "hiredis CPU per command | brisk/hiredis CPU |\n");
  printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
  print_async_rows(g_async_rows, g_nasync);
  print_async_rows(g_dispatch_rows, g_ndispatch);
  print_async_rows(g_batch_rows, g_nbatch);
  if (g_async_missing) printf("\n**Not measured: %s.**\n", g_async_missing);
  printf("\n\"caller keeps %d in flight\": each submitting thread issues until %d commands are "
         "outstanding, waits for completions, tops up. \"next command from the callback\": each "
         "submitting thread starts %d chains and every callback issues its chain's next command. "
         "brisk: the threads share one client (its multiplexed connection); callbacks run on "
         "brisk's runtime threads and wake the submitting thread through a semaphore (once per "
         "completion, or once per ended chain). hiredis: an async context is single-threaded, so "
         "each submitting thread has its own context, connection and libevent loop, and runs "
         "the loop itself (its callbacks run there; hiredis's best case). \"brisk caller dispatch\": "
         "brisk with BRISK_ASYNC_DISPATCH_CALLER, a client per submitting thread (as hiredis), "
         "which polls brisk_client_async_fd() and runs its callbacks itself with "
         "brisk_client_async_dispatch() (topping up once per wake-up in the caller harness; "
         "in the callback harness the callbacks issue the next commands, written once per "
         "dispatch); its hiredis column is the same hiredis run as the rows above it. \"brisk "
         "batch-end hook\": brisk's default runtime dispatch with a client per submitting "
         "thread whose callbacks only count and whose brisk_config_set_async_batch_end() hook "
         "posts the semaphore, once per batch of callbacks. ops/s "
         "count every "
         "command from the moment all threads are connected and warmed up until the last reply; "
         "CPU per command is the whole process's user + system time (getrusage RUSAGE_SELF: "
         "submitting threads, brisk's runtime threads) over the same window, divided by the "
         "commands. Ratios are medians of per-repeat ratios (for CPU, lower is better).\n",
         ASYNC_IN_FLIGHT, ASYNC_IN_FLIGHT, ASYNC_IN_FLIGHT);
}

static void run_async(int R) {
  static const int counts[] = {1, 2, 8};
  struct row *main_row =
      row_new("async, 50 in flight, SET/GET (hiredis: async, libevent; redis-benchmark -c 50)", OPS,
              false);
  if (!async_lib(BRISK) || !async_lib(HIREDIS)) {
    g_async_missing = !async_lib(BRISK)
                          ? "brisk async (brisk_command_async is not in brisk.h)"
                          : "hiredis async (built without libevent: install Debian's libevent-dev)";
    fprintf(stderr, "async: NOT MEASURED for %s\n", g_async_missing);
  }
  for (int style = 0; style < 2; style++) {
    for (int t = 0; t < 3; t++) {
      int T = counts[t];
      char name[96];
      snprintf(name, sizeof name, "%s | %d",
               style == ASYNC_CALLER ? "caller keeps 50 in flight" : "next command from the callback",
               T);
      struct row *ops = row_in(g_async_rows, &g_nasync, 12, name, OPS, false);
      struct row *cpu = row_in(g_async_rows, &g_nasync, 12, name, US, true);
      /* Both harnesses also run brisk's other async modes, against the same hiredis run. */
      struct row *vops[ASYNC_VARIANTS] = {NULL}, *vcpu[ASYNC_VARIANTS] = {NULL};
      for (int v = 0; v < ASYNC_VARIANTS; v++) {
        if (!async_lib(g_variants[v].lib)) continue;
        snprintf(name, sizeof name, "%s, %s | %d",
                 style == ASYNC_CALLER ? "caller keeps 50 in flight" : "next command from the callback",
                 g_variants[v].label, T);
        vops[v] = row_in(g_variants[v].rows, g_variants[v].n, 12, name, OPS, false);
        vcpu[v] = row_in(g_variants[v].rows, g_variants[v].n, 12, name, US, true);
      }
      fprintf(stderr, "async, %s, %d submitting thread%s\n",
              style == ASYNC_CALLER ? "the caller keeps 50 in flight" : "the next command from the callback",
              T, T > 1 ? "s" : "");
      for (int i = 0; i < R; i++) {
        double b = NAN, bc = NAN, h = NAN, hc = NAN, d[ASYNC_VARIANTS], dc[ASYNC_VARIANTS];
        if (i % 2 == 0) b = wl_async(BRISK, style, T, UINT64_MAX), bc = g_cpu_us_per_op;
        else h = wl_async(HIREDIS, style, T, UINT64_MAX), hc = g_cpu_us_per_op;
        for (int v = 0; v < ASYNC_VARIANTS; v++) {
          d[v] = dc[v] = NAN;
          if (vops[v]) d[v] = wl_async(g_variants[v].lib, style, T, UINT64_MAX), dc[v] = g_cpu_us_per_op;
        }
        if (i % 2 == 0) h = wl_async(HIREDIS, style, T, UINT64_MAX), hc = g_cpu_us_per_op;
        else b = wl_async(BRISK, style, T, UINT64_MAX), bc = g_cpu_us_per_op;
        row_add(ops, b, h, NAN);
        row_add(cpu, bc, hc, NAN);
        for (int v = 0; v < ASYNC_VARIANTS; v++) {
          if (!vops[v]) continue;
          row_add(vops[v], d[v], h, NAN);
          row_add(vcpu[v], dc[v], hc, NAN);
          char dl[128];
          snprintf(dl, sizeof dl, "async %s %s, %d thr",
                   style == ASYNC_CALLER ? "caller" : "callback", g_variants[v].label, T);
          progress(dl, i, d[v], h, NAN, OPS);
          snprintf(dl, sizeof dl, "async %s %s, %d thr, CPU/cmd",
                   style == ASYNC_CALLER ? "caller" : "callback", g_variants[v].label, T);
          progress(dl, i, dc[v], hc, NAN, US);
        }
        double c = NAN;
        if (style == ASYNC_CALLER && T == 1) {
          c = rb_set_get("-c 50 -P 1", rb_count(b, 0.5), NULL);
          row_add(main_row, b, h, c);
        }
        char label[128];
        snprintf(label, sizeof label, "async %s, %d thr", style == ASYNC_CALLER ? "caller" : "callback", T);
        progress(label, i, b, h, c, OPS);
        snprintf(label, sizeof label, "async %s, %d thr, CPU/cmd", style == ASYNC_CALLER ? "caller" : "callback", T);
        progress(label, i, bc, hc, NAN, US);
      }
    }
  }
}

static void run_all(void) {
  int R = g_repeats;
  setup_data();

  if (selected("sync")) {
    fprintf(stderr, "sync SET+GET, one client\n");
    struct row *ops = row_new("sync SET+GET, 1 client (ops/s)", OPS, false);
    struct row *lat = row_new("sync SET+GET, p50 latency", US, true);
    struct row *p99 = row_new("sync SET+GET, p99 latency", US, true);
    struct row *cpu = row_new("sync SET+GET, client CPU per command", US, true);
    for (int i = 0; i < R; i++) {
      double bl, hl, cl = NAN;
      double b, bc, b99, h, hc, h99;
      if (i % 2 == 0) {
        b = wl_sync(BRISK, &bl), bc = g_cpu_us_per_op, b99 = g_lat_p99_us;
        h = wl_sync(HIREDIS, &hl), hc = g_cpu_us_per_op, h99 = g_lat_p99_us;
      } else {
        h = wl_sync(HIREDIS, &hl), hc = g_cpu_us_per_op, h99 = g_lat_p99_us;
        b = wl_sync(BRISK, &bl), bc = g_cpu_us_per_op, b99 = g_lat_p99_us;
      }
      double c = rb_set_get("-c 1 -P 1", rb_count(h, 0.5), &cl), cc = g_rb_cpu_us_per_op;
      double c99 = g_rb_p99_us;
      row_add(ops, b, h, c);
      row_add(lat, bl, hl, cl);
      row_add(p99, b99, h99, c99);
      row_add(cpu, bc, hc, cc);
      progress(ops->name, i, b, h, c, OPS);
      progress(lat->name, i, bl, hl, cl, US);
      progress(p99->name, i, b99, h99, c99, US);
      progress(cpu->name, i, bc, hc, cc, US);
    }
  }
  if (selected("pipeline")) {
    fprintf(stderr, "pipelined, batches of %d\n", PIPE_BATCH);
    for (int get = 0; get < 2; get++) {
      struct row *row = row_new(get ? "pipelined GET, batches of 100" : "pipelined SET, batches of 100",
                                OPS, false);
      struct row *cpu = row_new(get ? "pipelined GET, client CPU per command"
                                    : "pipelined SET, client CPU per command", US, true);
      struct row *crow = ceil_row_new(row->name, OPS);
      struct row *ccpu = ceil_row_new(cpu->name, US);
      for (int i = 0; i < R; i++) {
        /* The three clients in rotating order: brisk, hiredis, bare on repeat 0; hiredis, bare,
           brisk on repeat 1; bare, brisk, hiredis on repeat 2; ... */
        double b = NAN, bc = NAN, h = NAN, hc = NAN, s = NAN, sc = NAN;
        for (int j = 0; j < 3; j++) {
          switch ((i + j) % 3) {
          case 0: b = wl_pipeline(BRISK, get), bc = g_cpu_us_per_op; break;
          case 1: h = wl_pipeline(HIREDIS, get), hc = g_cpu_us_per_op; break;
          default: s = wl_pipeline(BARE, get), sc = g_cpu_us_per_op; break;
          }
        }
        double c = rb_one(get ? "-c 1 -P 100 -t get -d 16 -n %ld" : "-c 1 -P 100 -t set -d 16 -n %ld",
                          rb_count(h, 1));
        double cc = g_rb_cpu_us_per_op;
        row_add(row, b, h, c);
        row_add(cpu, bc, hc, cc);
        row_add(crow, b, h, s);
        row_add(ccpu, bc, hc, sc);
        progress(row->name, i, b, h, c, OPS);
        progress_bare(row->name, i, s, OPS);
        progress(cpu->name, i, bc, hc, cc, US);
        progress_bare(cpu->name, i, sc, US);
      }
    }
  }
  if (selected("threads")) {
    static const int counts[] = {1, 2, 4, 8};
    fprintf(stderr, "threads: one shared brisk client vs one hiredis context per thread\n");
    for (int t = 0; t < 4; t++) {
      char name[96];
      snprintf(name, sizeof name, "%d thread%s sync SET+GET (brisk: 1 shared client)", counts[t],
               counts[t] > 1 ? "s" : "");
      struct row *row = row_new(name, OPS, false);
      char mode[32];
      snprintf(mode, sizeof mode, "-c %d -P 1", counts[t]);
      for (int i = 0; i < R; i++) {
        double b, h;
        if (i % 2 == 0) {
          b = wl_threads(BRISK, counts[t]);
          h = wl_threads(HIREDIS, counts[t]);
        } else {
          h = wl_threads(HIREDIS, counts[t]);
          b = wl_threads(BRISK, counts[t]);
        }
        double c = rb_set_get(mode, rb_count(h, 0.5), NULL);
        row_add(row, b, h, c);
        progress(row->name, i, b, h, c, OPS);
      }
    }
  }
  if (selected("lrange")) {
    fprintf(stderr, "LRANGE of %d x %d-byte values\n", LRANGE_LEN, VALUE_LEN);
    struct row *row = row_new("LRANGE 1,000 x 16 B (replies/s)", OPS, false);
    struct row *cpu = row_new("LRANGE 1,000 x 16 B, client CPU per reply", US, true);
    for (int i = 0; i < R; i++) {
      double b, bc, h, hc;
      if (i % 2 == 0) {
        b = wl_lrange(BRISK), bc = g_cpu_us_per_op;
        h = wl_lrange(HIREDIS), hc = g_cpu_us_per_op;
      } else {
        h = wl_lrange(HIREDIS), hc = g_cpu_us_per_op;
        b = wl_lrange(BRISK), bc = g_cpu_us_per_op;
      }
      double c = rb_one("-c 1 -n %ld lrange bench:list 0 -1", rb_count(h, 1));
      double cc = g_rb_cpu_us_per_op;
      row_add(row, b, h, c);
      row_add(cpu, bc, hc, cc);
      progress(row->name, i, b, h, c, OPS);
      progress(cpu->name, i, bc, hc, cc, US);
    }
  }
  if (selected("async")) run_async(R);
  if (selected("otel")) {
#ifdef BRISK_HAVE_OTEL
    fprintf(stderr, "OpenTelemetry cost, sync GET\n");
    otlp_start();
    g_otel = row_in(g_otel_rows, &g_notel, 1, "sync GET, client CPU per command", US, true);
    for (int i = 0; i < R; i++) {
      double x[3];
      for (int j = 0; j < 3; j++) { /* rotating order: off, metrics, traces; then shifted */
        int m = (i + j) % 3;
        x[m] = wl_otel((enum otel_mode)m);
      }
      row_add(g_otel, x[OTEL_OFF], x[OTEL_METRICS], x[OTEL_TRACES]);
      fprintf(stderr, "  %-34s #%d  off %.2f us  metrics only %.2f us  traces 1.0 %.2f us\n",
              g_otel->name, i + 1, x[0], x[1], x[2]);
    }
    otlp_stop();
#else
    fprintf(stderr, "OpenTelemetry cost: skipped (brisk_config_set_otel_endpoint is not in brisk.h)\n");
#endif
  }
  if (selected("pubsub")) {
    struct row *cb = row_new("Pub/Sub to 1 subscriber, callback (messages/s; ceiling: PUBLISH rate)",
                             OPS, false);
    struct row *cb_cpu = row_new("Pub/Sub, callback: client CPU per message", US, true);
    struct row *pull = row_new("Pub/Sub to 1 subscriber, pull (messages/s; ceiling: PUBLISH rate)",
                               OPS, false);
    struct row *pull_cpu = row_new("Pub/Sub, pull: client CPU per message", US, true);
#ifdef BRISK_HAVE_PUBSUB
    fprintf(stderr, "Pub/Sub: %ld PUBLISHes (pipelines of 100) to one subscriber\n", ps_count());
    for (int i = 0; i < R; i++) {
      double b, bc, p, pc, h, hc;
      if (i % 2 == 0) {
        b = wl_pubsub(BRISK, PS_CALLBACK), bc = g_cpu_us_per_op;
        p = wl_pubsub(BRISK, PS_PULL), pc = g_cpu_us_per_op;
        h = wl_pubsub(HIREDIS, PS_CALLBACK), hc = g_cpu_us_per_op;
      } else {
        h = wl_pubsub(HIREDIS, PS_CALLBACK), hc = g_cpu_us_per_op;
        p = wl_pubsub(BRISK, PS_PULL), pc = g_cpu_us_per_op;
        b = wl_pubsub(BRISK, PS_CALLBACK), bc = g_cpu_us_per_op;
      }
      double c = rb_one("-c 1 -P 100 -n %ld PUBLISH bench:ps:nobody 0123456789abcdef", ps_count());
      row_add(cb, b, h, c);
      row_add(cb_cpu, bc, hc, NAN);
      row_add(pull, p, h, c);
      row_add(pull_cpu, pc, hc, NAN);
      progress(cb->name, i, b, h, c, OPS);
      progress(cb_cpu->name, i, bc, hc, NAN, US);
      progress(pull->name, i, p, h, c, OPS);
      progress(pull_cpu->name, i, pc, hc, NAN, US);
    }
#else
    cb->note = pull->note = cb_cpu->note = pull_cpu->note =
        "n/a (not built yet: brisk_subscriber_new is not in brisk.h)";
#endif
  }
  if (selected("cache")) {
#ifdef BRISK_HAVE_CACHE
    run_cache(R);
#else
    row_new("client-side cache", NONE, false)->note =
        "n/a (not built yet: brisk_client_cache_flush is not in brisk.h)";
#endif
  }
  if (selected("heap")) {
    char name[96];
    snprintf(name, sizeof name, "heap per idle connection (%d connections)", g_heap_conns);
    fprintf(stderr, "heap per idle connection, %d connections\n", g_heap_conns);
    struct row *row = row_new(name, BYTES, true);
    double b = heap_brisk(), h = heap_hiredis();
    row_add(row, b, h, NAN);
    progress(row->name, 0, b, h, NAN, BYTES);
  }
  print_table();
#ifdef BRISK_HAVE_CACHE
  print_cache_table();
#endif
}

/* The profiling targets (run under callgrind or strace by benches/run.sh):
     callgrind-sync brisk|hiredis N      warm up, then N x (SET + GET): 2N commands
     callgrind-pipeline brisk|hiredis N  N x (a batch of 100 SETs, a batch of 100 GETs): 200N
     callgrind-pipeline-bulk brisk N     the same, brisk reading each batch's replies with one
                                         brisk_reply_strings call instead of two calls per reply
     callgrind-pipeline-items brisk N    the same with one brisk_reply_elements call (typed items)
     callgrind-lrange brisk|hiredis N    N x LRANGE of the 1,000-element list: N replies
     callgrind-lrange-bulk brisk N       the same, brisk walking each reply with
                                         brisk_reply_strings (64 elements per call)
     callgrind-async brisk|hiredis N     N async SET/GET, one thread keeping 50 in flight
     callgrind-async-cb brisk|hiredis N  N async SET/GET, each callback issuing the next (50
                                         chains)
     callgrind-async-dispatch brisk|hiredis N
                                         callgrind-async with brisk's caller dispatch (the
                                         thread runs its callbacks); for hiredis the same as
                                         callgrind-async
     callgrind-async-dispatch-cb brisk|hiredis N
                                         callgrind-async-cb with brisk's caller dispatch; for
                                         hiredis the same as callgrind-async-cb
     callgrind-cachehit brisk N          N x a GET answered by the client-side cache
     callgrind-cachemiss brisk N         N x a GET that misses the cache (and is kept)
     callgrind-get brisk N               N x a GET with the cache off (what a miss compares to)
   Run each with two values of N and subtract, so that setup and teardown cancel out. */
static int profile_target(const char *mode, const char *which, long n) {
  enum { SYNC, PIPELINE, PIPELINE_BULK, PIPELINE_ITEMS, LRANGE, LRANGE_BULK, CACHEHIT, CACHEMISS,
         GET } m;
  if (strcmp(mode, "callgrind-async") == 0 || strcmp(mode, "callgrind-async-cb") == 0) {
    enum lib lib = strcmp(which, "brisk") == 0 ? BRISK : HIREDIS;
    if (lib == HIREDIS && strcmp(which, "hiredis") != 0)
      die("%s: brisk or hiredis, not %s", mode, which);
    if (!async_lib(lib)) die("%s: %s's async API is not built in", mode, which);
    setup_data();
    wl_async(lib, strcmp(mode, "callgrind-async") == 0 ? ASYNC_CALLER : ASYNC_CALLBACK, 1,
             (uint64_t)n);
    return 0;
  }
  if (strcmp(mode, "callgrind-async-dispatch") == 0 ||
      strcmp(mode, "callgrind-async-dispatch-cb") == 0) {
    /* hiredis has no other mode: its callbacks always run on the loop's thread. */
    enum lib lib = strcmp(which, "brisk") == 0 ? BRISK_DISPATCH : HIREDIS;
    if (lib == HIREDIS && strcmp(which, "hiredis") != 0)
      die("%s: brisk or hiredis, not %s", mode, which);
    if (!async_lib(lib)) die("%s: %s's async API (or caller dispatch) is not built in", mode, which);
    setup_data();
    wl_async(lib, strcmp(mode, "callgrind-async-dispatch") == 0 ? ASYNC_CALLER : ASYNC_CALLBACK,
             1, (uint64_t)n);
    return 0;
  }
  if (strcmp(mode, "callgrind-sync") == 0) m = SYNC;
  else if (strcmp(mode, "callgrind-get") == 0) m = GET;
#ifdef BRISK_HAVE_CACHE
  else if (strcmp(mode, "callgrind-cachehit") == 0) m = CACHEHIT;
  else if (strcmp(mode, "callgrind-cachemiss") == 0) m = CACHEMISS;
#endif
  else if (strcmp(mode, "callgrind-pipeline") == 0) m = PIPELINE;
  else if (strcmp(mode, "callgrind-pipeline-bulk") == 0) m = PIPELINE_BULK;
  else if (strcmp(mode, "callgrind-pipeline-items") == 0) m = PIPELINE_ITEMS;
  else if (strcmp(mode, "callgrind-lrange") == 0) m = LRANGE;
  else if (strcmp(mode, "callgrind-lrange-bulk") == 0) m = LRANGE_BULK;
  else usage();
  setup_data(); /* through hiredis (keys, list); the same cost in both runs */
  int k = 0;
  uint64_t sum = 0;
#ifdef BRISK_HAVE_CACHE
  if (m == CACHEHIT) {
    /* Hits only: a lease refused under callgrind (slow) sends the read to the server, which
       would count a round trip as a hit's cost; such reads are counted and reported. */
    brisk_client *c = brisk_open_cached(1000);
    cache_warm(c, 0, 100);
    uint64_t misses = brisk_client_stat(c, BRISK_STAT_CACHE_MISSES);
    for (long i = 0; i < n; i++) brisk_get(c, (int)(i % 100));
    fprintf(stderr, "cachehit: %lu of %ld reads went to the server\n",
            (unsigned long)(brisk_client_stat(c, BRISK_STAT_CACHE_MISSES) - misses), n);
    brisk_client_free(c);
    return 0;
  }
  if (m == CACHEMISS) {
    brisk_client *c = brisk_open_cached(1);
    for (int i = 0; i < 50; i++) brisk_get(c, i);
    for (long i = 0; i < n; i++) brisk_get(c, (int)(i % NKEYS));
    if (brisk_client_stat(c, BRISK_STAT_CACHE_HITS) != 0) die("cachemiss: a hit");
    brisk_client_free(c);
    return 0;
  }
#else
  (void)CACHEHIT;
  (void)CACHEMISS;
#endif
  if (m == GET) {
    brisk_client *c = brisk_open(0, 0);
    brisk_warm(c);
    for (long i = 0; i < n; i++) brisk_get(c, (int)(i % NKEYS));
    brisk_client_free(c);
    return 0;
  }
  if (strcmp(which, "brisk") == 0) {
    brisk_client *c = brisk_open(0, 0);
    brisk_pipeline *p = NULL;
    brisk_warm(c);
    brisk_check(brisk_pipeline_new(c, &p), "pipeline_new");
    for (long i = 0; i < n; i++) {
      if (m == SYNC) {
        brisk_set(c, (int)(i % NKEYS));
        brisk_get(c, (int)(i % NKEYS));
      } else if (m == PIPELINE || m == PIPELINE_BULK || m == PIPELINE_ITEMS) {
        enum pipe_walk walk = m == PIPELINE        ? PIPE_WALK_CALLS
                              : m == PIPELINE_BULK ? PIPE_WALK_STRINGS
                                                   : PIPE_WALK_ITEMS;
        brisk_pipe_batch(p, false, &k, walk);
        brisk_pipe_batch(p, true, &k, walk);
      } else if (m == LRANGE) {
        sum += brisk_lrange(c);
      } else {
        sum += brisk_lrange_bulk(c);
      }
    }
    brisk_pipeline_free(p);
    brisk_client_free(c);
  } else if (strcmp(which, "hiredis") == 0 && m != LRANGE_BULK && m != PIPELINE_BULK &&
             m != PIPELINE_ITEMS) {
    redisContext *c = hi_open();
    hi_warm(c);
    for (long i = 0; i < n; i++) {
      if (m == SYNC) {
        hi_set(c, (int)(i % NKEYS));
        hi_get(c, (int)(i % NKEYS));
      } else if (m == PIPELINE) {
        hi_pipe_batch(c, false, &k);
        hi_pipe_batch(c, true, &k);
      } else {
        sum += hi_lrange(c);
      }
    }
    redisFree(c);
  } else {
    die("%s: brisk or hiredis, not %s", mode, which);
  }
  return sum == 1 ? 1 : 0; /* uses sum */
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench [--quick] [--repeats N] [--duration S] [--only LIST] [--heap-conns N]\n"
          "             [--redis-benchmark PATH|none] --host HOST --port PORT\n"
          "       bench callgrind-sync|callgrind-pipeline|callgrind-pipeline-bulk|\n"
          "             callgrind-pipeline-items|callgrind-lrange|callgrind-lrange-bulk|callgrind-async|\n"
          "             callgrind-async-cb|callgrind-async-dispatch|callgrind-cachehit|\n"
          "             callgrind-cachemiss|callgrind-get\n"
          "             brisk|hiredis N\n"
          "             --host HOST --port PORT\n"
          "LIST: comma-separated from sync,pipeline,threads,lrange,async,otel,pubsub,cache,heap\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *positional[3] = {0};
  int npos = 0;
  bool repeats_set = false, duration_set = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV() do { if (!v) usage(); i++; } while (0)
    if (strcmp(a, "--quick") == 0) g_quick = true;
    else if (strcmp(a, "--host") == 0) { NEEDV(); g_host = v; }
    else if (strcmp(a, "--port") == 0) { NEEDV(); g_port = atoi(v); }
    else if (strcmp(a, "--repeats") == 0) { NEEDV(); g_repeats = atoi(v); repeats_set = true; }
    else if (strcmp(a, "--duration") == 0) { NEEDV(); g_duration = atof(v); duration_set = true; }
    else if (strcmp(a, "--only") == 0) { NEEDV(); g_only = v; }
    else if (strcmp(a, "--heap-conns") == 0) { NEEDV(); g_heap_conns = atoi(v); }
    else if (strcmp(a, "--redis-benchmark") == 0) { NEEDV(); g_redis_benchmark = v; }
    else if (a[0] == '-') usage();
    else if (npos < 3) positional[npos++] = a;
    else usage();
#undef NEEDV
  }
  if (g_quick) {
    if (!repeats_set) g_repeats = 1;
    if (!duration_set) g_duration = 0.1;
  }
  if (g_repeats < 1 || g_repeats > 64 || g_duration <= 0 || g_port <= 0 || g_heap_conns < 1)
    usage();
  raise_fd_limit();

#ifdef BRISK_HAVE_OTEL
  /* callgrind-otel off|metrics|traces N: N sync GETs (run twice and subtract, as above), with
     the default export interval, so that the figure is the work per command (spans still go
     in batches of 512), not exports per second of a program slowed down by callgrind. */
  if (npos == 3 && strcmp(positional[0], "callgrind-otel") == 0) {
    enum otel_mode m = strcmp(positional[1], "traces") == 0    ? OTEL_TRACES
                       : strcmp(positional[1], "metrics") == 0 ? OTEL_METRICS
                                                               : OTEL_OFF;
    setup_data();
    otlp_start();
    brisk_client *c = brisk_open_otel(m, 10000);
    brisk_warm(c);
    for (long i = 0, n = atol(positional[2]); i < n; i++) brisk_get(c, (int)(i % NKEYS));
    brisk_client_free(c);
    otlp_stop();
    return 0;
  }
#endif
  if (npos == 3 && strncmp(positional[0], "callgrind-", 10) == 0)
    return profile_target(positional[0], positional[1], atol(positional[2]));
  if (npos != 0) usage();

  fprintf(stderr, "brisk %s vs hiredis %d.%d.%d on %s:%d%s\n", brisk_version(), HIREDIS_MAJOR,
          HIREDIS_MINOR, HIREDIS_PATCH, g_host, g_port, g_quick ? " (quick)" : "");
  loadavg(g_load_start, sizeof g_load_start);
  run_all();
  return 0;
}
