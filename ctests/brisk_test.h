/*
 * brisk_test.h: the tiny assert header shared by the C tests.
 *
 *   CHECK(cond)                    records a failure (file:line and the condition), goes on
 *   REQUIRE(cond)                  the same, then stops the whole test program
 *   CHECK_STATUS(call, expected)   runs `call` (a brisk_status expression) once; on a mismatch
 *                                  prints both status names and brisk_last_error_message()
 *   CHECK_OK(call)                 CHECK_STATUS(call, BRISK_OK)
 *   REQUIRE_OK(call)               CHECK_OK, stopping on failure
 *   CHECK_STR_CONTAINS(s, needle)  s is non-NULL and contains needle
 *   CHECK_REPLY_STR(reply, text)   a STRING/STATUS/... reply whose bytes equal text
 *   CHECK_EQ_U(a, b)               equal as unsigned integers, both printed on a mismatch
 *   CHECK_BETWEEN(took, low, high) an elapsed time (ms) in low..=high, high widened on a loaded
 *                                  machine and under valgrind (see "time bounds" below)
 *   CHECK_AT_MOST(took, high)      the same without a lower bound
 *   bt_scaled_ms(ms)               a wait's deadline, longer under valgrind
 *   CHECK_CMD_REPLY(c, text, words...)  runs the command: OK, and a reply whose text is text
 *   BT_FOR_EACH_PROTOCOL(p) { }     the block once with p = 3, once with p = 2
 *   bt_config_at(port), bt_config_url(url), bt_set_constant_retry(cfg, ms, n), bt_client_from(cfg)
 *                                  configs and clients, failing the program when refused
 *   bt_init(argc, argv)            first thing in main
 *   RUN(fn)                        runs `static void fn(void)` as a named case
 *   RUN_KNOWN_ISSUE(fn)            a case that shows a library bug (see below)
 *   bt_finish()                    prints the summary; its value is main's exit status
 *
 * Servers come from the CTest fixture: `ctests/servers.sh start $BRISK_TEST_DIR` writes
 * $BRISK_TEST_DIR/servers.env (KEY=VALUE lines); bt_env("STANDALONE_PORT") reads it.
 * bt_key() makes a key name unique to this process, so tests can run in parallel against the
 * shared servers.
 *
 * The server flavour: tests that start servers themselves run bt_server_program()
 * ($BRISK_TEST_SERVER, default redis-server) and bt_cli_program() ($BRISK_TEST_CLI, default
 * redis-cli), each a name looked up in PATH or a path, e.g. valkey-server and valkey-cli.
 */
#ifndef BRISK_TEST_H
#define BRISK_TEST_H

#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <brisk.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int bt_failures = 0;      /* failed checks in the whole program */
static int bt_case_failures = 0; /* failed checks in the running case */
static const char *bt_case = "";

static inline void bt_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s:%d: FAILED in %s: ", file, line, bt_case);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
  bt_failures++;
  bt_case_failures++;
}

#define CHECK(cond)                                        \
  do {                                                     \
    if (!(cond)) bt_fail(__FILE__, __LINE__, "%s", #cond); \
  } while (0)

#define REQUIRE(cond)                                                 \
  do {                                                                \
    if (!(cond)) {                                                    \
      bt_fail(__FILE__, __LINE__, "%s (required; stopping)", #cond); \
      exit(1);                                                        \
    }                                                                 \
  } while (0)

/* Evaluates `call` once; returns whether it matched, so callers can skip what depends on it. */
static inline int bt_check_status(const char *file, int line, const char *expr, brisk_status got,
                                  brisk_status expected) {
  if (got == expected) return 1;
  bt_fail(file, line, "%s: expected %s, got %s (%u): \"%s\"", expr, brisk_status_name(expected),
          brisk_status_name(got), (unsigned)got, brisk_last_error_message());
  return 0;
}

#define CHECK_STATUS(call, expected) \
  bt_check_status(__FILE__, __LINE__, #call, (call), (expected))
#define CHECK_OK(call) bt_check_status(__FILE__, __LINE__, #call, (call), BRISK_OK)
#define REQUIRE_OK(call)                                         \
  do {                                                           \
    if (!bt_check_status(__FILE__, __LINE__, #call, (call), BRISK_OK)) exit(1); \
  } while (0)

#define CHECK_STR_CONTAINS(s, needle)                                                       \
  do {                                                                                      \
    const char *bt_s_ = (s);                                                                \
    const char *bt_n_ = (needle);                                                           \
    if (bt_s_ == NULL || strstr(bt_s_, bt_n_) == NULL)                                      \
      bt_fail(__FILE__, __LINE__, "%s = \"%s\" does not contain \"%s\"", #s,                \
              bt_s_ ? bt_s_ : "(null)", bt_n_);                                             \
  } while (0)

#define CHECK_STR_LACKS(s, needle)                                                          \
  do {                                                                                      \
    const char *bt_s_ = (s);                                                                \
    const char *bt_n_ = (needle);                                                           \
    if (bt_s_ == NULL || strstr(bt_s_, bt_n_) != NULL)                                      \
      bt_fail(__FILE__, __LINE__, "%s = \"%s\" contains \"%s\" (must not)", #s,             \
              bt_s_ ? bt_s_ : "(null)", bt_n_);                                             \
  } while (0)

/* The reply's text (STRING, STATUS, ERROR, VERBATIM, BIGNUM, DOUBLE) equals `text`. */
static inline int bt_reply_is(const brisk_reply *r, const char *text) {
  size_t len = 0;
  const char *s = brisk_reply_string(r, &len);
  return s != NULL && len == strlen(text) && memcmp(s, text, len) == 0;
}

#define CHECK_REPLY_STR(reply, text)                                                          \
  do {                                                                                        \
    const brisk_reply *bt_r_ = (reply);                                                       \
    const char *bt_t_ = (text);                                                               \
    if (!bt_reply_is(bt_r_, bt_t_)) {                                                         \
      const char *bt_got_ = brisk_reply_string(bt_r_, NULL);                                  \
      bt_fail(__FILE__, __LINE__, "%s: expected \"%s\", got type %u \"%s\"", #reply, bt_t_,   \
              (unsigned)brisk_reply_type_of(bt_r_), bt_got_ ? bt_got_ : "(null)");            \
    }                                                                                         \
  } while (0)

/*
 * Known library issues. A case that shows a bug in the library (which this suite must not
 * paper over, and whose fix belongs to src/) is run with RUN_KNOWN_ISSUE instead of RUN. Such
 * cases only run when the program gets `--known-issues` (and then only they run); CTest
 * registers that as a separate test `c_<area>_known_issues`, labelled known_issue, with
 * WILL_FAIL: it passes while the bug reproduces and fails once the library is fixed, as a
 * reminder to turn the case into a plain RUN.
 */
static int bt_known_issues_mode = 0;
static int bt_ran = 0;

static inline void bt_init(int argc, char **argv) {
  int i;
  for (i = 1; i < argc; i++)
    if (strcmp(argv[i], "--known-issues") == 0) bt_known_issues_mode = 1;
  setvbuf(stdout, NULL, _IONBF, 0);
}

#define BT_RUN_CASE(fn, known)                                                 \
  do {                                                                         \
    if (bt_known_issues_mode == (known)) {                                     \
      bt_case = #fn;                                                           \
      bt_case_failures = 0;                                                    \
      bt_ran++;                                                                \
      fprintf(stderr, "[ RUN  ] %s%s\n", #fn, (known) ? " (known library issue)" : ""); \
      fn();                                                                    \
      fprintf(stderr, "[ %s ] %s\n", bt_case_failures ? "FAIL" : " OK ", #fn); \
    }                                                                          \
  } while (0)

#define RUN(fn) BT_RUN_CASE(fn, 0)
#define RUN_KNOWN_ISSUE(fn) BT_RUN_CASE(fn, 1)

static inline int bt_finish(void) {
  if (bt_known_issues_mode) {
    if (bt_failures) {
      fprintf(stderr, "%d check(s) failed: the known library issue(s) above still reproduce\n",
              bt_failures);
      return 1;
    }
    fprintf(stderr, "%d known-issue case(s) now PASS: the library was fixed; turn them into "
                    "plain RUN cases\n", bt_ran);
    return 0;
  }
  if (bt_failures) {
    fprintf(stderr, "%d check(s) failed\n", bt_failures);
    return 1;
  }
  fprintf(stderr, "all checks passed (%d cases)\n", bt_ran);
  return 0;
}

/* Milliseconds on a monotonic clock, for deadlines and elapsed-time bounds. */
static inline int64_t bt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Pauses the calling thread. Never a way to wait for something to happen: poll for it with a
 * deadline (BT_WAIT_UNTIL) instead; this is the interval between polls, or the idle time a
 * scenario needs (a health-check interval passing). */
static inline void bt_sleep_ms(int64_t ms) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* Polls `cond` (an expression) every millisecond until it holds or `ms` have passed, and sets
 * the int `held` to whether it held. */
#define BT_WAIT_UNTIL(held, cond, ms)                          \
  do {                                                         \
    int64_t bt_deadline_ = bt_now_ms() + (ms);                 \
    (held) = 0;                                                \
    for (;;) {                                                 \
      if (cond) {                                              \
        (held) = 1;                                            \
        break;                                                 \
      }                                                        \
      if (bt_now_ms() > bt_deadline_) break;                   \
      bt_sleep_ms(1);                                          \
    }                                                          \
  } while (0)

/* Whether the program runs under valgrind, where everything is about 30x slower: tests scale
 * their load down then. The CMake valgrind mode (BRISK_VALGRIND=ON) sets BRISK_TEST_VALGRIND=1
 * in the environment of every test; valgrind's own RUNNING_ON_VALGRIND also answers when its
 * header is installed. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define BT_HAVE_VALGRIND_H 1
#endif
#endif

static inline int bt_under_valgrind(void) {
  const char *env = getenv("BRISK_TEST_VALGRIND");
  if (env != NULL && strcmp(env, "1") == 0) return 1;
#ifdef BT_HAVE_VALGRIND_H
  if (RUNNING_ON_VALGRIND) return 1;
#endif
  return 0;
}

/* A wait's deadline (BT_WAIT_UNTIL and the like): `ms`, five times longer under valgrind. */
static inline int64_t bt_scaled_ms(int64_t ms) { return bt_under_valgrind() ? ms * 5 : ms; }

/* ---- time bounds on a loaded machine ---------------------------------------------------- */

/*
 * The same rule as tests/support/timing.rs. A lower bound ("it really waited") is strict. An
 * upper bound ("it did not wait for something else") is widened by the load when it is
 * checked: runnable threads per CPU (the 1-minute load average, or the run queue now when that
 * is longer), at least 1, at most BT_MAX_WIDENING; and five times under valgrind. Each test
 * keeps `high * BT_MAX_WIDENING` short of what the failure it guards against would take, so a
 * hang still fails. BRISK_TEST_TIME_FACTOR=<f> fixes the factor; BRISK_TEST_TIMING_LOG=<file>
 * appends every checked bound to `file`.
 *
 *   CHECK_BETWEEN(took, low, high)   took (ms) in low..=high, high widened
 *   CHECK_AT_MOST(took, high)        took (ms) at most high, widened
 */
#define BT_MAX_WIDENING 2.0

/* Runnable threads on the machine, less the one asking; 0 when /proc/loadavg cannot be read. */
static inline double bt_runnable_threads(void) {
  double one_minute = 0, five, fifteen;
  long running = 0, total;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f == NULL) return 0;
  if (fscanf(f, "%lf %lf %lf %ld/%ld", &one_minute, &five, &fifteen, &running, &total) < 4)
    running = 0;
  fclose(f);
  return one_minute > (double)(running - 1) ? one_minute : (double)(running - 1);
}

/* The factor upper bounds are widened by now (valgrind aside); `why` (may be NULL, at least 96
 * bytes) says where it came from. */
static inline double bt_time_factor(char *why) {
  const char *fixed = getenv("BRISK_TEST_TIME_FACTOR");
  double factor, load;
  long cpus;
  if (fixed != NULL && *fixed != '\0' && atof(fixed) > 0) {
    if (why) snprintf(why, 96, "x%.2f from BRISK_TEST_TIME_FACTOR", atof(fixed));
    return atof(fixed);
  }
  cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 1) cpus = 1;
  load = bt_runnable_threads();
  factor = load / (double)cpus;
  if (factor < 1) factor = 1;
  if (factor > BT_MAX_WIDENING) factor = BT_MAX_WIDENING;
  if (why) snprintf(why, 96, "x%.2f for %.1f runnable threads on %ld CPUs", factor, load, cpus);
  return factor;
}

static inline int bt_check_between(const char *file, int line, const char *expr, int64_t took,
                                   int64_t low, int64_t high) {
  char why[96];
  double factor = bt_time_factor(why);
  int64_t widened = (int64_t)((double)high * factor) * (bt_under_valgrind() ? 5 : 1);
  const char *log = getenv("BRISK_TEST_TIMING_LOG");
  if (log != NULL && *log != '\0') {
    FILE *f = fopen(log, "a");
    if (f != NULL) {
      fprintf(f, "c:%s\t%lld\t%lld\t%lld\t%lld\t%.2f\t%s\n", bt_case, (long long)took,
              (long long)low, (long long)high, (long long)widened, factor, expr);
      fclose(f);
    }
  }
  if (took >= low && took <= widened) return 1;
  bt_fail(file, line, "%s = %lld ms, expected %lld..=%lld ms, up to %lld ms now (%s%s)", expr,
          (long long)took, (long long)low, (long long)high, (long long)widened, why,
          bt_under_valgrind() ? ", x5 under valgrind" : "");
  return 0;
}

#define CHECK_BETWEEN(took, low, high) \
  bt_check_between(__FILE__, __LINE__, #took, (took), (low), (high))
#define CHECK_AT_MOST(took, high) bt_check_between(__FILE__, __LINE__, #took, (took), 0, (high))

/* a == b as unsigned integers, both printed on a mismatch. */
#define CHECK_EQ_U(a, b)                                                                    \
  do {                                                                                      \
    unsigned long long bt_a_ = (unsigned long long)(a), bt_b_ = (unsigned long long)(b);    \
    if (bt_a_ != bt_b_)                                                                     \
      bt_fail(__FILE__, __LINE__, "%s == %s: %llu != %llu", #a, #b, bt_a_, bt_b_);          \
  } while (0)

/* ---- the server flavour ------------------------------------------------------------------ */

/* The value of environment variable `name`, or `fallback` when it is unset or empty. */
static inline const char *bt_env_or(const char *name, const char *fallback) {
  const char *value = getenv(name);
  return value != NULL && *value != '\0' ? value : fallback;
}

/* The server program tests start: $BRISK_TEST_SERVER (a name in PATH or a path) or redis-server. */
static inline const char *bt_server_program(void) {
  return bt_env_or("BRISK_TEST_SERVER", "redis-server");
}

/* The matching command-line client: $BRISK_TEST_CLI, or redis-cli. */
static inline const char *bt_cli_program(void) { return bt_env_or("BRISK_TEST_CLI", "redis-cli"); }

/* ---- the fixture's servers.env ---------------------------------------------------------- */

#define BT_ENV_MAX 32
static char bt_env_keys[BT_ENV_MAX][64];
static char bt_env_values[BT_ENV_MAX][512];
static int bt_env_count = -1;

static inline void bt_env_load(void) {
  const char *dir = getenv("BRISK_TEST_DIR");
  char path[1024];
  char line[640];
  FILE *f;
  bt_env_count = 0;
  if (dir == NULL || *dir == '\0') {
    fprintf(stderr, "BRISK_TEST_DIR is not set: run this test through ctest (it starts the "
                    "servers) or start them with `ctests/servers.sh start DIR`\n");
    exit(1);
  }
  snprintf(path, sizeof path, "%s/servers.env", dir);
  f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "cannot open %s: are the fixture servers running?\n", path);
    exit(1);
  }
  while (fgets(line, sizeof line, f) != NULL && bt_env_count < BT_ENV_MAX) {
    char *eq = strchr(line, '=');
    size_t n;
    if (eq == NULL) continue;
    *eq = '\0';
    n = strcspn(eq + 1, "\r\n");
    eq[1 + n] = '\0';
    snprintf(bt_env_keys[bt_env_count], sizeof bt_env_keys[0], "%.63s", line);
    snprintf(bt_env_values[bt_env_count], sizeof bt_env_values[0], "%.511s", eq + 1);
    bt_env_count++;
  }
  fclose(f);
}

/* A value from servers.env; stops the program when it is missing. */
static inline const char *bt_env(const char *key) {
  int i;
  if (bt_env_count < 0) bt_env_load();
  for (i = 0; i < bt_env_count; i++)
    if (strcmp(bt_env_keys[i], key) == 0) return bt_env_values[i];
  fprintf(stderr, "servers.env has no %s\n", key);
  exit(1);
}

static inline uint16_t bt_env_port(const char *key) {
  return (uint16_t)atoi(bt_env(key));
}

/* ---- keys and commands ---------------------------------------------------------------- */

/* "ct:<prefix>:<pid>:<name>" in a static ring of buffers (valid for the next 15 calls). */
static inline const char *bt_key(const char *prefix, const char *name) {
  static char ring[16][160];
  static int next = 0;
  char *buf = ring[next++ % 16];
  snprintf(buf, sizeof ring[0], "ct:%s:%ld:%s", prefix, (long)getpid(), name);
  return buf;
}

/* Runs a command given as NUL-terminated words (NULL-terminated list); returns the status. */
static inline brisk_status bt_cmdv(brisk_client *c, brisk_reply **reply, const char *const *words) {
  size_t argc = 0;
  while (words[argc] != NULL) argc++;
  return brisk_command(c, argc, words, NULL, reply);
}

#define BT_CMD(client, reply, ...) \
  bt_cmdv((client), (reply), (const char *const[]){__VA_ARGS__, NULL})

/* Runs a command given as NUL-terminated words (NULL-terminated list) and checks that it
 * succeeds with a text reply equal to `expected`; returns whether it did. */
static inline int bt_check_cmd_reply(const char *file, int line, brisk_client *c,
                                     const char *expected, const char *const *words) {
  brisk_reply *r = NULL;
  int fits = 0;
  brisk_status st = bt_cmdv(c, &r, words);
  const char *what = words[1] != NULL ? words[1] : "";
  if (st != BRISK_OK) {
    bt_fail(file, line, "%s %s: expected OK, got %s (%u): \"%s\"", words[0], what,
            brisk_status_name(st), (unsigned)st, brisk_last_error_message());
  } else if (!bt_reply_is(r, expected)) {
    const char *got = brisk_reply_string(r, NULL);
    bt_fail(file, line, "%s %s: expected \"%s\", got type %u \"%s\"", words[0], what, expected,
            (unsigned)brisk_reply_type_of(r), got ? got : "(null)");
  } else {
    fits = 1;
  }
  brisk_reply_free(r);
  return fits;
}

#define CHECK_CMD_REPLY(client, expected, ...)                  \
  bt_check_cmd_reply(__FILE__, __LINE__, (client), (expected), \
                     (const char *const[]){__VA_ARGS__, NULL})

/* A new config for the server at 127.0.0.1:`port` (stops the program if it cannot be made). */
static inline brisk_config *bt_config_at(uint16_t port) {
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  REQUIRE_OK(brisk_config_set_address(cfg, "127.0.0.1", port));
  return cfg;
}

/* A new config from `url` (stops the program if it is refused). */
static inline brisk_config *bt_config_url(const char *url) {
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  REQUIRE_OK(brisk_config_set_url(cfg, url));
  return cfg;
}

/* Sets a constant-delay retry policy on `cfg`: `retries` retries, `delay_ms` apart. */
static inline void bt_set_constant_retry(brisk_config *cfg, uint32_t delay_ms, uint32_t retries) {
  brisk_retry *r = NULL;
  REQUIRE_OK(brisk_retry_new(BRISK_BACKOFF_CONSTANT, delay_ms, delay_ms, retries, &r));
  REQUIRE_OK(brisk_config_set_retry(cfg, r));
  brisk_retry_free(r);
}

/* A client made from `cfg`, which it frees. */
static inline brisk_client *bt_client_from(brisk_config *cfg) {
  brisk_client *c = NULL;
  REQUIRE_OK(brisk_client_new(cfg, &c));
  REQUIRE(c != NULL);
  brisk_config_free(cfg);
  return c;
}

/* A client for the fixture's standalone server over TCP with the given protocol (2 or 3). */
static inline brisk_client *bt_client_tcp(uint32_t protocol) {
  brisk_config *cfg = bt_config_at(bt_env_port("STANDALONE_PORT"));
  REQUIRE_OK(brisk_config_set_protocol(cfg, protocol));
  return bt_client_from(cfg);
}

/* Runs the statement or block after it once per protocol, RESP3 then RESP2, with the
 * uint32_t `protocol` set. */
#define BT_FOR_EACH_PROTOCOL(protocol) for (uint32_t protocol = 3; protocol >= 2; protocol--)

/* The server's normal clients (CLIENT LIST TYPE normal, the asking connection included);
 * -1 when the command fails. */
static inline long long bt_normal_clients(brisk_client *c) {
  brisk_reply *r = NULL;
  long long lines = -1;
  if (BT_CMD(c, &r, "CLIENT", "LIST", "TYPE", "normal") == BRISK_OK) {
    const char *s = brisk_reply_string(r, NULL);
    lines = 0;
    for (; s && *s; s++)
      if (*s == '\n') lines++;
  }
  brisk_reply_free(r);
  return lines;
}

#endif /* BRISK_TEST_H */
