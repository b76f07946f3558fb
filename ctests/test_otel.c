/*
 * test_otel: OpenTelemetry through the C API (run under valgrind by scripts/test).
 *
 *   the setters check their arguments (https, no host, ratio outside 0..1, interval 0) and
 *     leave the config unchanged; brisk_trace_parent_set takes a W3C traceparent or NULL and
 *     refuses malformed ones
 *   a dead collector (a closed port) and a stalled one (a listener that never accepts, so
 *     connections sit in its backlog and no answer ever comes) under 2,000 sync commands and
 *     200 async ones, with a parent set: every command succeeds, none takes anywhere near the
 *     export timeout (20 s: a command that waited for an export would), flushing is bounded
 *     by its timeout, brisk_client_free returns in bounded time, and dropped spans are counted
 *   brisk_client_flush_telemetry: NULL client INVALID_ARGUMENT; OTel off: OK at once
 *
 * Uses the fixture server. Every wait has a deadline.
 */
#include "brisk_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#define PREFIX "otel"
#define COMMANDS 2000
#define ASYNC_COMMANDS 200
/* Each export may take this long: a command that waited for one would take at least this. */
#define EXPORT_TIMEOUT_MS 20000
/* The slowest command allowed: far below the export timeout, generous for a loaded machine
 * and valgrind. */
#define SLOWEST_MS 8000

static const char *const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/* A loopback port with a socket bound to it but not listening (connections are refused), or
 * listening with a backlog nobody accepts from (connections hang). Returns the fd. */
static int loopback_socket(int listening, uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
  if (listening) REQUIRE(listen(fd, 128) == 0);
  REQUIRE(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
  *port = ntohs(a.sin_port);
  return fd;
}

static void setters_check_their_arguments(void) {
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  CHECK_STATUS(brisk_config_set_otel_endpoint(cfg, "https://collector:4318"),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "http://");
  CHECK_STATUS(brisk_config_set_otel_endpoint(cfg, "http://"), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_config_set_otel_traces_sample_ratio(cfg, 1.5), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_config_set_otel_traces_sample_ratio(cfg, -0.5), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_config_set_otel_export_interval_ms(cfg, 0), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_config_set_otel_export_timeout_ms(cfg, 0), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_OK(brisk_config_set_otel_traces_sample_ratio(cfg, 0.25));
  CHECK_OK(brisk_config_set_otel_export_interval_ms(cfg, 500));
  CHECK_OK(brisk_config_set_otel_endpoint(cfg, "http://127.0.0.1:4318"));
  CHECK_OK(brisk_config_set_otel_endpoint(cfg, NULL));
  CHECK_STATUS(brisk_config_set_otel_endpoint(NULL, "http://127.0.0.1:4318"),
               BRISK_ERR_INVALID_ARGUMENT);
  brisk_config_free(cfg);

  CHECK_OK(brisk_trace_parent_set(TRACEPARENT));
  CHECK_STATUS(brisk_trace_parent_set("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_trace_parent_set("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_OK(brisk_trace_parent_set(NULL));
}

static void flush_without_otel_and_on_null(void) {
  CHECK_STATUS(brisk_client_flush_telemetry(NULL, 100), BRISK_ERR_INVALID_ARGUMENT);
  CHECK(brisk_client_telemetry_dropped(NULL) == 0);
  brisk_client *c = bt_client_tcp(3);
  CHECK_OK(brisk_client_flush_telemetry(c, 0));
  CHECK(brisk_client_telemetry_dropped(c) == 0);
  brisk_client_free(c);
}

struct async_count {
  atomic_int done, failed;
};

static void on_reply(void *userdata, brisk_status status, const char *message, brisk_reply *r) {
  struct async_count *count = userdata;
  (void)message;
  if (status != BRISK_OK) atomic_fetch_add(&count->failed, 1);
  brisk_reply_free(r);
  atomic_fetch_add(&count->done, 1);
}

/* 2,000 sync and 200 async commands through a client whose collector is at `port`. */
static void commands_cost_nothing(uint16_t port, const char *what) {
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)port);
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  REQUIRE_OK(brisk_config_set_address(cfg, "127.0.0.1", bt_env_port("STANDALONE_PORT")));
  REQUIRE_OK(brisk_config_set_otel_endpoint(cfg, url));
  REQUIRE_OK(brisk_config_set_otel_export_interval_ms(cfg, 20));
  REQUIRE_OK(brisk_config_set_otel_export_timeout_ms(cfg, EXPORT_TIMEOUT_MS));
  brisk_client *c = bt_client_from(cfg);
  REQUIRE_OK(brisk_trace_parent_set(TRACEPARENT));

  const char *key = bt_key(PREFIX, what);
  int failed = 0;
  int64_t slowest = 0;
  for (int i = 0; i < COMMANDS; i++) {
    brisk_reply *r = NULL;
    int64_t started = bt_now_ms();
    brisk_status st = i % 2 ? BT_CMD(c, &r, "GET", key) : BT_CMD(c, &r, "SET", key, "v");
    int64_t took = bt_now_ms() - started;
    if (took > slowest) slowest = took;
    if (st != BRISK_OK) failed++;
    brisk_reply_free(r);
  }
  struct async_count count = {0, 0};
  const char *argv[2] = {"GET", key};
  for (int i = 0; i < ASYNC_COMMANDS; i++)
    CHECK_OK(brisk_command_async(c, 2, argv, NULL, on_reply, &count));
  int held = 0;
  BT_WAIT_UNTIL(held, atomic_load(&count.done) == ASYNC_COMMANDS, 60000);
  CHECK(held);
  CHECK(failed == 0);
  CHECK(atomic_load(&count.failed) == 0);
  if (slowest >= SLOWEST_MS) bt_fail(__FILE__, __LINE__, "%s: a command took %lld ms", what,
                                     (long long)slowest);
  REQUIRE_OK(brisk_trace_parent_set(NULL));

  /* A flush is bounded by its timeout whatever the collector does. */
  int64_t started = bt_now_ms();
  brisk_status flushed = brisk_client_flush_telemetry(c, 300);
  CHECK(flushed == BRISK_OK || flushed == BRISK_ERR_TIMEOUT);
  CHECK(bt_now_ms() - started < 5000);

  /* The dead collector fails every export at once: spans are dropped, and counted. */
  if (strcmp(what, "dead") == 0) {
    BT_WAIT_UNTIL(held, brisk_client_telemetry_dropped(c) > 0, 30000);
    CHECK(held);
  }
  started = bt_now_ms();
  brisk_client_free(c);
  int64_t took = bt_now_ms() - started;
  if (took >= 15000) bt_fail(__FILE__, __LINE__, "%s: free took %lld ms", what, (long long)took);
}

static void dead_collector_costs_commands_nothing(void) {
  uint16_t port = 0;
  int fd = loopback_socket(0, &port);
  commands_cost_nothing(port, "dead");
  close(fd);
}

static void stalled_collector_costs_commands_nothing(void) {
  uint16_t port = 0;
  int fd = loopback_socket(1, &port);
  commands_cost_nothing(port, "stalled");
  close(fd);
}

int main(int argc, char **argv) {
  bt_init(argc, argv);
  RUN(setters_check_their_arguments);
  RUN(flush_without_otel_and_on_null);
  RUN(dead_collector_costs_commands_nothing);
  RUN(stalled_collector_costs_commands_nothing);
  return bt_finish();
}
