/* brisk vs hiredis, side by side, against one redis-server.
 *
 *   bench [--quick] [--repeats N] [--duration SECONDS] [--only LIST] [--heap-conns N]
 *         [--redis-benchmark PATH|none] --host HOST --port PORT
 *   bench callgrind-sync|callgrind-pipeline|callgrind-lrange brisk|hiredis N --host H --port P
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
 * The async workload needs brisk_command_async; it is compiled only with -DBRISK_HAVE_ASYNC
 * (benches/run.sh defines it when include/brisk.h declares the function).
 *
 * This is a benchmark, not a test: it never judges the numbers. It exits non-zero only when a
 * command fails.
 */
#define _GNU_SOURCE
#include <brisk.h>
#include <hiredis/hiredis.h>

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
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

enum lib { BRISK = 0, HIREDIS = 1, BARE = 2 /* pipeline workload only */ };

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

/* One batch of PIPE_BATCH SETs (get = false) or GETs; every reply is looked at. */
static void brisk_pipe_batch(brisk_pipeline *p, bool get, int *k) {
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
  for (size_t i = 0; i < n; i++) {
    const brisk_reply *e = brisk_reply_element(r, i);
    size_t l = 0;
    const char *s = brisk_reply_string(e, &l);
    if (!s || (get && l != VALUE_LEN)) die("brisk pipeline: unexpected reply %zu", i);
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
  brisk_pipe_batch(st->p, get, &st->k);
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

#ifdef BRISK_HAVE_ASYNC
/* ASYNC_IN_FLIGHT commands (SET and GET alternating) kept in flight on one client through
   brisk_command_async; the callback hands its slot back. */
static sem_t g_async_slots;
static atomic_uint_fast64_t g_async_done, g_async_failed;

static void async_done(void *userdata, brisk_status status, const char *error_message,
                       brisk_reply *reply) {
  (void)userdata;
  (void)error_message;
  if (status != BRISK_OK) atomic_fetch_add(&g_async_failed, 1);
  brisk_reply_free(reply);
  atomic_fetch_add_explicit(&g_async_done, 1, memory_order_relaxed);
  sem_post(&g_async_slots);
}

static double wl_async(void) {
  static const char *const set_argv[3] = {"SET", "bench:async", VALUE};
  static const char *const get_argv[2] = {"GET", "bench:async"};
  static const size_t set_len[3] = {3, 11, VALUE_LEN}, get_len[2] = {3, 11};
  brisk_client *c = brisk_open(0, 0);
  brisk_warm(c);
  sem_init(&g_async_slots, 0, ASYNC_IN_FLIGHT);
  atomic_store(&g_async_done, 0);
  atomic_store(&g_async_failed, 0);
  uint64_t start = now_ns(), end = start + dur_ns(), issued = 0;
  while (now_ns() < end) {
    while (sem_wait(&g_async_slots) != 0 && errno == EINTR) {}
    bool get = issued++ & 1;
    brisk_status st = get ? brisk_command_async(c, 2, get_argv, get_len, async_done, NULL)
                          : brisk_command_async(c, 3, set_argv, set_len, async_done, NULL);
    brisk_check(st, "command_async");
  }
  uint64_t done_at_end = atomic_load(&g_async_done);
  uint64_t t = now_ns();
  for (int i = 0; i < ASYNC_IN_FLIGHT; i++)
    while (sem_wait(&g_async_slots) != 0 && errno == EINTR) {}
  if (atomic_load(&g_async_failed)) die("async: %lu commands failed",
                                        (unsigned long)atomic_load(&g_async_failed));
  brisk_client_free(c);
  sem_destroy(&g_async_slots);
  return done_at_end / ((t - start) / 1e9);
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

static void print_table(void) {
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
  print_ceiling_table();
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

/* CPU time of the calling thread only. */
static double thread_cpu_seconds(void) { return cpu_seconds(RUSAGE_THREAD); }

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
static double get_loop(brisk_client *c, int first, int count, double *cpu_ns) {
  uint64_t ops = 0, start = now_ns(), end = start + dur_ns(), t;
  double cpu = thread_cpu_seconds();
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
  return ops / ((t - start) / 1e9);
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
    double on_rate, on_cpu, off_rate, off_cpu, miss_rate, miss_cpu;
    uint64_t misses = brisk_client_stat(missing, BRISK_STAT_CACHE_MISSES);
    if (i % 2 == 0) {
      on_rate = get_loop(on, 0, CACHE_KEYS, &on_cpu);
      off_rate = get_loop(off, 0, CACHE_KEYS, &off_cpu);
      miss_rate = get_loop(missing, 0, CACHE_KEYS, &miss_cpu);
    } else {
      miss_rate = get_loop(missing, 0, CACHE_KEYS, &miss_cpu);
      off_rate = get_loop(off, 0, CACHE_KEYS, &off_cpu);
      on_rate = get_loop(on, 0, CACHE_KEYS, &on_cpu);
    }
    if (brisk_client_stat(missing, BRISK_STAT_CACHE_HITS) != 0 ||
        brisk_client_stat(missing, BRISK_STAT_CACHE_MISSES) == misses)
      die("cache: the missing client hit");
    row_add(rate, on_rate, off_rate, NAN);
    row_add(cpu, on_cpu, off_cpu, NAN);
    row_add(mrate, miss_rate, off_rate, NAN);
    row_add(mcpu, miss_cpu, off_cpu, NAN);
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
         "calling thread's (RUSAGE_THREAD), C API call and brisk_reply_free included. The thread "
         "rows share one client; each thread reads its own run of keys. Ratios are medians of "
         "per-repeat ratios.\n",
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
  if (selected("async")) {
    struct row *row = row_new("async, 50 in flight, SET/GET (redis-benchmark -c 50)", OPS, false);
#ifdef BRISK_HAVE_ASYNC
    fprintf(stderr, "async, %d in flight\n", ASYNC_IN_FLIGHT);
    for (int i = 0; i < R; i++) {
      double b = wl_async();
      double c = rb_set_get("-c 50 -P 1", rb_count(b, 0.5), NULL);
      row_add(row, b, NAN, c);
      progress(row->name, i, b, NAN, c, OPS);
    }
#else
    row->note = "n/a (not built yet: brisk_command_async is not in brisk.h)";
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
     callgrind-lrange brisk|hiredis N    N x LRANGE of the 1,000-element list: N replies
     callgrind-cachehit brisk N          N x a GET answered by the client-side cache
     callgrind-cachemiss brisk N         N x a GET that misses the cache (and is kept)
     callgrind-get brisk N               N x a GET with the cache off (what a miss compares to)
   Run each with two values of N and subtract, so that setup and teardown cancel out. */
static int profile_target(const char *mode, const char *which, long n) {
  enum { SYNC, PIPELINE, LRANGE, CACHEHIT, CACHEMISS, GET } m;
  if (strcmp(mode, "callgrind-sync") == 0) m = SYNC;
  else if (strcmp(mode, "callgrind-get") == 0) m = GET;
#ifdef BRISK_HAVE_CACHE
  else if (strcmp(mode, "callgrind-cachehit") == 0) m = CACHEHIT;
  else if (strcmp(mode, "callgrind-cachemiss") == 0) m = CACHEMISS;
#endif
  else if (strcmp(mode, "callgrind-pipeline") == 0) m = PIPELINE;
  else if (strcmp(mode, "callgrind-lrange") == 0) m = LRANGE;
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
      } else if (m == PIPELINE) {
        brisk_pipe_batch(p, false, &k);
        brisk_pipe_batch(p, true, &k);
      } else {
        sum += brisk_lrange(c);
      }
    }
    brisk_pipeline_free(p);
    brisk_client_free(c);
  } else if (strcmp(which, "hiredis") == 0) {
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
          "       bench callgrind-sync|callgrind-pipeline|callgrind-lrange|callgrind-cachehit\n"
          "             brisk|hiredis N\n"
          "             --host HOST --port PORT\n"
          "LIST: comma-separated from sync,pipeline,threads,lrange,async,cache,heap\n");
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

  if (npos == 3 && strncmp(positional[0], "callgrind-", 10) == 0)
    return profile_target(positional[0], positional[1], atol(positional[2]));
  if (npos != 0) usage();

  fprintf(stderr, "brisk %s vs hiredis %d.%d.%d on %s:%d%s\n", brisk_version(), HIREDIS_MAJOR,
          HIREDIS_MINOR, HIREDIS_PATCH, g_host, g_port, g_quick ? " (quick)" : "");
  loadavg(g_load_start, sizeof g_load_start);
  run_all();
  return 0;
}
