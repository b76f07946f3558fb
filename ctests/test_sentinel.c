/*
 * test_sentinel: Sentinel mode through the C API, against a real deployment (a master, a
 * replica and three sentinels started by ctests/sentinel.sh, which runs this program; their
 * ports are in $BRISK_TEST_DIR/servers.env).
 *
 *   - the config is checked: Sentinel mode without sentinels or without a master name is
 *     INVALID_ARGUMENT at brisk_client_new; bad setter and URL arguments are INVALID_ARGUMENT;
 *   - through a redis+sentinel:// URL, commands go to the master the sentinels name (its
 *     TOPOLOGY event names it, BRISK_STAT_TOPOLOGY_REFRESHES counts the resolution);
 *   - a master name no sentinel knows is BRISK_ERR_SENTINEL naming the name; sentinels that are
 *     all down are BRISK_ERR_CONNECTION naming each one tried; both promptly;
 *   - async commands, pipelines, transactions and sessions run on the master;
 *   - with read_from REPLICA_PREFERRED reads are served by the replica (its INFO
 *     commandstats), writes by the master;
 *   - SENTINEL FAILOVER under a thread running INCR: the client switches to the new master
 *     (TOPOLOGY event) within seconds of the sentinels naming it, writes go on there, and the
 *     counter never exceeds acknowledged + "may have been applied".
 *
 * Per-node admin commands go through `redis-cli -p PORT` ($BRISK_TEST_CLI). Every wait has a
 * deadline, stretched under valgrind.
 */
#include "brisk_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

static int64_t bound(int64_t ms) { return bt_under_valgrind() ? ms * 5 : ms; }

/* ---- redis-cli ---------------------------------------------------------------------------- */

/* Runs `timeout 10 redis-cli -h 127.0.0.1 -p PORT <args>`; returns its output, malloc'd. */
static char *cli(uint16_t port, const char *args) {
  char cmd[1200];
  char *buf;
  size_t len = 0, cap = 4096, n;
  FILE *f;
  const char *program = bt_cli_program();
  REQUIRE(strchr(program, '\'') == NULL && strlen(program) < 600);
  snprintf(cmd, sizeof cmd, "timeout 10 '%s' -h 127.0.0.1 -p %u %s 2>&1", program,
           (unsigned)port, args);
  buf = malloc(cap);
  REQUIRE(buf != NULL);
  f = popen(cmd, "r");
  REQUIRE(f != NULL);
  while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (cap - len < 2) {
      cap *= 2;
      buf = realloc(buf, cap);
      REQUIRE(buf != NULL);
    }
  }
  buf[len] = '\0';
  pclose(f);
  return buf;
}

/* The number after `<prefix>` in the output of `redis-cli -p PORT <args>`, or -1. */
static long long cli_number_after(uint16_t port, const char *args, const char *prefix) {
  char *out = cli(port, args);
  const char *at = strstr(out, prefix);
  long long value = at != NULL ? atoll(at + strlen(prefix)) : -1;
  free(out);
  return value;
}

/* The master's port as sentinel `port` names it (0 when it names none). */
static unsigned master_named_by(uint16_t port) {
  char *out = cli(port, "SENTINEL get-master-addr-by-name mymaster");
  const char *newline = strchr(out, '\n');
  unsigned named = newline != NULL ? (unsigned)atoi(newline + 1) : 0;
  free(out);
  return named;
}

/* ---- clients and events -------------------------------------------------------------------- */

/* TOPOLOGY events seen (on brisk's threads). */
static pthread_mutex_t events_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_master[128];
static int topology_events = 0;
static int64_t last_topology_ms = 0;

static void on_event(void *userdata, const brisk_event *e) {
  (void)userdata;
  if (brisk_event_kind_of(e) != BRISK_EVENT_TOPOLOGY) return;
  pthread_mutex_lock(&events_lock);
  snprintf(last_master, sizeof last_master, "%s", brisk_event_server_address(e));
  topology_events++;
  last_topology_ms = bt_now_ms();
  pthread_mutex_unlock(&events_lock);
}

/* Whether the last TOPOLOGY event named 127.0.0.1:<port>; its time in *at. */
static int switched_to(unsigned port, int64_t *at) {
  char want[64];
  int yes;
  snprintf(want, sizeof want, "127.0.0.1:%u", port);
  pthread_mutex_lock(&events_lock);
  yes = strcmp(last_master, want) == 0;
  if (at != NULL) *at = last_topology_ms;
  pthread_mutex_unlock(&events_lock);
  return yes;
}

static const char *sentinel_url(char *buf, size_t size, const char *master_name) {
  snprintf(buf, size, "redis+sentinel://127.0.0.1:%u,127.0.0.1:%u,127.0.0.1:%u/%s",
           (unsigned)bt_env_port("SENTINEL_PORT_1"), (unsigned)bt_env_port("SENTINEL_PORT_2"),
           (unsigned)bt_env_port("SENTINEL_PORT_3"), master_name);
  return buf;
}

/* A Sentinel client for the deployment, reporting events, with `read_from`. */
static brisk_client *sentinel_client(brisk_read_from read_from) {
  char url[256];
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  REQUIRE_OK(brisk_config_set_url(cfg, sentinel_url(url, sizeof url, "mymaster")));
  REQUIRE_OK(brisk_config_set_read_from(cfg, read_from));
  REQUIRE_OK(brisk_config_set_event_callback(cfg, on_event, NULL));
  return bt_client_from(cfg);
}

/* ---- cases --------------------------------------------------------------------------------- */

static void sentinel_config_is_checked(void) {
  brisk_config *cfg = brisk_config_new();
  brisk_client *c = NULL;
  REQUIRE(cfg != NULL);
  CHECK_OK(brisk_config_set_mode(cfg, BRISK_MODE_SENTINEL));
  CHECK_OK(brisk_config_set_sentinel_master(cfg, "mymaster"));
  /* No sentinels. */
  CHECK_STATUS(brisk_client_new(cfg, &c), BRISK_ERR_INVALID_ARGUMENT);
  CHECK(c == NULL);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "node");
  brisk_config_free(cfg);

  /* Sentinels, but no master name. */
  cfg = brisk_config_new();
  CHECK_OK(brisk_config_set_mode(cfg, BRISK_MODE_SENTINEL));
  CHECK_OK(brisk_config_add_node(cfg, "127.0.0.1", bt_env_port("SENTINEL_PORT_1")));
  CHECK_STATUS(brisk_client_new(cfg, &c), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "master");

  CHECK_STATUS(brisk_config_set_sentinel_master(cfg, ""), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_config_set_sentinel_master(cfg, "has space"), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_config_set_sentinel_master(cfg, NULL), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_config_set_sentinel_master(NULL, "m"), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_OK(brisk_config_set_sentinel_auth(cfg, "sentinel-user", "sentinel-secret"));
  CHECK_OK(brisk_config_set_sentinel_auth(cfg, NULL, NULL));
  CHECK_STATUS(brisk_config_set_sentinel_auth(NULL, NULL, "x"), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_OK(brisk_config_set_sentinel_timeout_ms(cfg, 250));
  CHECK_STATUS(brisk_config_set_url(cfg, "redis+sentinel://127.0.0.1:26379"),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "master name");
  CHECK_STATUS(brisk_config_set_url(cfg, "redis://h?sentinel_password=x"),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_LACKS(brisk_last_error_message(), "=x");
  brisk_config_free(cfg);
}

static void commands_go_to_the_master(void) {
  unsigned master = bt_env_port("MASTER_PORT");
  brisk_client *c = sentinel_client(BRISK_READ_PRIMARY);
  brisk_reply *r = NULL;
  char *out;
  CHECK_OK(BT_CMD(c, NULL, "SET", bt_key("sentinel", "k"), "v"));
  CHECK_OK(BT_CMD(c, &r, "GET", bt_key("sentinel", "k")));
  CHECK_REPLY_STR(r, "v");
  brisk_reply_free(r);
  CHECK(switched_to(master, NULL));
  CHECK(brisk_client_stat(c, BRISK_STAT_TOPOLOGY_REFRESHES) >= 1);
  {
    char args[200];
    snprintf(args, sizeof args, "GET %s", bt_key("sentinel", "k"));
    out = cli((uint16_t)master, args);
    CHECK_STR_CONTAINS(out, "v");
    free(out);
  }
  brisk_client_free(c);
}

static void unknown_master_and_unreachable_sentinels(void) {
  char url[256];
  brisk_config *cfg = brisk_config_new();
  brisk_client *c;
  int64_t started, took;
  brisk_status st;
  REQUIRE_OK(brisk_config_set_url(cfg, sentinel_url(url, sizeof url, "no-such-master")));
  c = bt_client_from(cfg);
  started = bt_now_ms();
  st = brisk_ping(c);
  took = bt_now_ms() - started;
  CHECK(st == BRISK_ERR_SENTINEL);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "no-such-master");
  CHECK(took < bound(5000));
  fprintf(stderr, "  unknown master: %s in %lld ms: %s\n", brisk_status_name(st),
          (long long)took, brisk_last_error_message());
  brisk_client_free(c);

  cfg = brisk_config_new();
  REQUIRE_OK(brisk_config_set_mode(cfg, BRISK_MODE_SENTINEL));
  REQUIRE_OK(brisk_config_set_sentinel_master(cfg, "mymaster"));
  REQUIRE_OK(brisk_config_add_node(cfg, "127.0.0.1", bt_env_port("CLOSED_PORT")));
  c = bt_client_from(cfg);
  started = bt_now_ms();
  st = brisk_ping(c);
  took = bt_now_ms() - started;
  CHECK(st == BRISK_ERR_CONNECTION);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "no sentinel answered");
  {
    char closed[64];
    snprintf(closed, sizeof closed, "127.0.0.1:%u", (unsigned)bt_env_port("CLOSED_PORT"));
    CHECK_STR_CONTAINS(brisk_last_error_message(), closed);
  }
  CHECK(took < bound(5000));
  fprintf(stderr, "  no sentinel reachable: %s in %lld ms: %s\n", brisk_status_name(st),
          (long long)took, brisk_last_error_message());
  brisk_client_free(c);
}

struct async_done {
  atomic_int done;
  atomic_int status;
};

static void on_reply(void *userdata, brisk_status status, const char *message, brisk_reply *reply) {
  struct async_done *d = userdata;
  (void)message;
  brisk_reply_free(reply);
  atomic_store(&d->status, (int)status);
  atomic_store(&d->done, 1);
}

static void every_api_runs_on_the_master(void) {
  unsigned master = bt_env_port("MASTER_PORT");
  brisk_client *c = sentinel_client(BRISK_READ_PRIMARY);
  brisk_pipeline *p = NULL;
  brisk_session *s = NULL;
  brisk_reply *r = NULL;
  struct async_done d;
  const char *set_async[] = {"SET", bt_key("sentinel", "async"), "1"};
  int held;
  char args[200];

  atomic_init(&d.done, 0);
  atomic_init(&d.status, -1);
  CHECK_OK(brisk_command_async(c, 3, set_async, NULL, on_reply, &d));
  BT_WAIT_UNTIL(held, atomic_load(&d.done), bound(10000));
  CHECK(held && atomic_load(&d.status) == BRISK_OK);

  REQUIRE_OK(brisk_pipeline_new(c, &p));
  {
    const char *set[] = {"SET", bt_key("sentinel", "pipe"), "1"};
    const char *get[] = {"GET", bt_key("sentinel", "pipe")};
    CHECK_OK(brisk_pipeline_append(p, 3, set, NULL));
    CHECK_OK(brisk_pipeline_append(p, 2, get, NULL));
    CHECK_OK(brisk_pipeline_exec(p, &r));
    CHECK(brisk_reply_length(r) == 2);
    CHECK_REPLY_STR(brisk_reply_element(r, 1), "1");
    brisk_reply_free(r);
    r = NULL;
  }
  brisk_pipeline_free(p);

  REQUIRE_OK(brisk_transaction_new(c, &p));
  {
    const char *incr[] = {"INCR", bt_key("sentinel", "tx")};
    CHECK_OK(brisk_pipeline_append(p, 2, incr, NULL));
    CHECK_OK(brisk_pipeline_append(p, 2, incr, NULL));
    CHECK_OK(brisk_pipeline_exec(p, &r));
    CHECK(brisk_reply_length(r) == 2 && brisk_reply_integer(brisk_reply_element(r, 1)) == 2);
    brisk_reply_free(r);
    r = NULL;
  }
  brisk_pipeline_free(p);

  REQUIRE_OK(brisk_session_new(c, &s));
  {
    const char *watch[] = {"WATCH", bt_key("sentinel", "session")};
    const char *multi[] = {"MULTI"};
    const char *set[] = {"SET", bt_key("sentinel", "session"), "1"};
    const char *exec[] = {"EXEC"};
    CHECK_OK(brisk_session_command(s, 2, watch, NULL, NULL));
    CHECK_OK(brisk_session_command(s, 1, multi, NULL, NULL));
    CHECK_OK(brisk_session_command(s, 3, set, NULL, NULL));
    CHECK_OK(brisk_session_command(s, 1, exec, NULL, NULL));
  }
  brisk_session_free(s);

  snprintf(args, sizeof args, "MGET %s %s %s %s", bt_key("sentinel", "async"),
           bt_key("sentinel", "pipe"), bt_key("sentinel", "tx"), bt_key("sentinel", "session"));
  {
    char *out = cli((uint16_t)master, args);
    CHECK(strcmp(out, "1\n1\n2\n1\n") == 0);
    free(out);
  }
  brisk_client_free(c);
}

static void replica_reads_go_to_the_replica(void) {
  unsigned master = bt_env_port("MASTER_PORT"), replica = bt_env_port("REPLICA_PORT");
  brisk_client *c = sentinel_client(BRISK_READ_REPLICA_PREFERRED);
  brisk_reply *r = NULL;
  int i, reads = bt_under_valgrind() ? 20 : 100;
  long long on_replica, on_master;
  CHECK_OK(BT_CMD(c, NULL, "SET", bt_key("sentinel", "read"), "v"));
  CHECK_OK(BT_CMD(c, NULL, "WAIT", "1", "5000"));
  free(cli((uint16_t)replica, "CONFIG RESETSTAT"));
  free(cli((uint16_t)master, "CONFIG RESETSTAT"));
  for (i = 0; i < reads; i++) {
    CHECK_OK(BT_CMD(c, &r, "GET", bt_key("sentinel", "read")));
    CHECK_REPLY_STR(r, "v");
    brisk_reply_free(r);
    r = NULL;
  }
  CHECK_OK(BT_CMD(c, NULL, "SET", bt_key("sentinel", "read"), "w"));
  on_replica = cli_number_after((uint16_t)replica, "INFO commandstats", "cmdstat_get:calls=");
  on_master = cli_number_after((uint16_t)master, "INFO commandstats", "cmdstat_get:calls=");
  fprintf(stderr, "  replica reads: GET served %lld times by the replica, %lld by the master\n",
          on_replica, on_master);
  CHECK(on_replica == reads);
  CHECK(on_master == -1);
  CHECK(cli_number_after((uint16_t)master, "INFO commandstats", "cmdstat_set:calls=") == 1);
  brisk_client_free(c);
}

struct writer {
  brisk_client *client;
  char key[160]; /* bt_key's buffers are not for two threads */
  atomic_int stop;
  atomic_llong acknowledged, uncertain, errors;
};

static void *writer_main(void *arg) {
  struct writer *w = arg;
  while (!atomic_load(&w->stop)) {
    brisk_status st = BT_CMD(w->client, NULL, "INCR", w->key);
    if (st == BRISK_OK) {
      atomic_fetch_add(&w->acknowledged, 1);
    } else {
      atomic_fetch_add(&w->errors, 1);
      if (strstr(brisk_last_error_message(), "may have been applied") != NULL)
        atomic_fetch_add(&w->uncertain, 1);
    }
  }
  return NULL;
}

static int wait_acknowledged(struct writer *w, long long more, int64_t ms) {
  long long from = atomic_load(&w->acknowledged);
  int held;
  BT_WAIT_UNTIL(held, atomic_load(&w->acknowledged) >= from + more, ms);
  return held;
}

static void failover_under_a_writer(void) {
  unsigned old = bt_env_port("MASTER_PORT"), new_master = bt_env_port("REPLICA_PORT");
  uint16_t sentinel = bt_env_port("SENTINEL_PORT_1");
  struct writer w;
  pthread_t thread;
  int held, asked = 0;
  int64_t deadline, named_at, switched_at = 0;
  long long counter;
  char args[200];

  w.client = sentinel_client(BRISK_READ_PRIMARY);
  snprintf(w.key, sizeof w.key, "%s", bt_key("sentinel", "counter"));
  atomic_init(&w.stop, 0);
  atomic_init(&w.acknowledged, 0);
  atomic_init(&w.uncertain, 0);
  atomic_init(&w.errors, 0);
  REQUIRE(pthread_create(&thread, NULL, writer_main, &w) == 0);
  CHECK(wait_acknowledged(&w, 50, bound(20000)));

  /* The sentinel may not find the replica good enough for a moment: ask until it agrees. */
  deadline = bt_now_ms() + bound(60000);
  while (!asked && bt_now_ms() < deadline) {
    char *out = cli(sentinel, "SENTINEL FAILOVER mymaster");
    asked = strncmp(out, "OK", 2) == 0;
    free(out);
    if (!asked) bt_sleep_ms(100);
  }
  CHECK(asked);
  BT_WAIT_UNTIL(held, master_named_by(sentinel) == new_master, bound(60000));
  REQUIRE(held);
  named_at = bt_now_ms();
  BT_WAIT_UNTIL(held, switched_to(new_master, &switched_at), bound(10000));
  CHECK(held);
  CHECK(wait_acknowledged(&w, 200, bound(30000)));
  atomic_store(&w.stop, 1);
  pthread_join(thread, NULL);

  snprintf(args, sizeof args, "GET %s", w.key);
  {
    char *out = cli((uint16_t)new_master, args);
    counter = atoll(out);
    free(out);
  }
  fprintf(stderr,
          "  failover: the client switched from %u to %u %lld ms after the test saw the "
          "sentinel name it; %lld INCRs acknowledged, %lld errors (%lld may have been applied), "
          "counter on the new master %lld (acknowledged but lost in the failover window: %lld)\n",
          old, new_master, (long long)(switched_at - named_at), (long long)w.acknowledged,
          (long long)w.errors, (long long)w.uncertain, counter,
          (long long)w.acknowledged - counter > 0 ? (long long)w.acknowledged - counter : 0);
  CHECK(switched_at - named_at < bound(5000));
  CHECK(counter > 0 && counter <= atomic_load(&w.acknowledged) + atomic_load(&w.uncertain));
  brisk_client_free(w.client);
}

int main(int argc, char **argv) {
  bt_init(argc, argv);
  fprintf(stderr, "sentinels on %s, %s, %s; master %s, replica %s\n", bt_env("SENTINEL_PORT_1"),
          bt_env("SENTINEL_PORT_2"), bt_env("SENTINEL_PORT_3"), bt_env("MASTER_PORT"),
          bt_env("REPLICA_PORT"));
  RUN(sentinel_config_is_checked);
  RUN(commands_go_to_the_master);
  RUN(unknown_master_and_unreachable_sentinels);
  RUN(every_api_runs_on_the_master);
  RUN(replica_reads_go_to_the_replica);
  /* Last: it moves the master. */
  RUN(failover_under_a_writer);
  return bt_finish();
}
