/*
 * test_cluster.c: cluster mode through the C API, against a real Redis Cluster this program
 * starts itself (3 primaries, 3 replicas, on free loopback ports; no shared fixture).
 *
 *   - 10,000 keys written across slots through one client and read back (GET and split MGET),
 *     spread over all three primaries; a split MGET keeps its order; a cross-slot SUNION is
 *     refused with INVALID_ARGUMENT naming CROSSSLOT;
 *   - a slot (300 keys under one hash tag) migrated to another primary (SETSLOT IMPORTING /
 *     MIGRATING, MIGRATE ... KEYS in batches, SETSLOT NODE) while a thread GETs them: no error
 *     and no wrong value surfaces, BRISK_STAT_REDIRECTS grows, every key is readable after;
 *   - the same with another slot under a window of 20 async GETs (brisk_command_async), each
 *     callback starting the next: the async path follows ASK and MOVED, no error, no wrong value;
 *   - 10,000 async SETs (300 in flight) then 10,000 async GETs (all at once) on a fresh client:
 *     every callback exactly once, off the caller's thread, with the right value; the keys
 *     landed on all three primaries (DBSIZE), with no redirect and at most 5 connections (one
 *     multiplexed connection per primary and the topology read); an async MGET over 50 keys in
 *     several slots keeps their order; an async SUNION across slots gets INVALID_ARGUMENT naming
 *     CROSSSLOT in its callback; WRONGTYPE comes back as BRISK_ERR_SERVER with the server's text;
 *   - brisk_client_free right after starting 4,000 async commands over all slots (some of them
 *     split MGETs, on threads of their own), on a fresh client and on one with its node
 *     connections up: it returns after every callback ran exactly once, with OK or CLOSED;
 *   - a new client seeded with all six nodes, then five of them killed and restarted on new
 *     ports (same nodes.conf): once the cluster settled, SETs on every shard succeed again within
 *     30 s through the one seed left, with at least two topology refreshes;
 *   - a manual CLUSTER FAILOVER under a running write loop (SET + INCR in a thread): no error
 *     surfaces, every acknowledged SET is there, the counter equals the acknowledged INCRs;
 *   - a primary killed with SIGKILL under the same loop: its replica is promoted, INCRs on the
 *     shard resume within 10 s of the promotion, only connection-family errors surface (and only
 *     after the kill), and the counter never exceeds acknowledged + "may have been applied";
 *   - a cluster that is down (a primary killed, its replica not allowed to take over) gives a
 *     command on a healthy shard BRISK_ERR_CLUSTER_DOWN with the server's CLUSTERDOWN text;
 *   - Pub/Sub: 50 shard channels over all three primaries, a channel and a pattern on one
 *     subscriber; SPUBLISH reaches each; after CLUSTER SETSLOT moves one channel's slot and after
 *     a CLUSTER FAILOVER the subscriber is subscribed at each slot's owner and a round arrives.
 *
 * Servers are started with fork/exec (each child gets PR_SET_PDEATHSIG so it dies with this
 * program even if it is killed), in a fresh mkdtemp directory removed at exit. Per-node admin
 * commands go through `redis-cli -p PORT` (brisk_command routes by key in cluster mode). Every
 * wait has a deadline. Under valgrind the loads are scaled down and the deadlines stretched.
 */
#define _GNU_SOURCE
#include "brisk_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#define NODES 6

static int under_valgrind = 0;
static char cluster_dir[256];
static pid_t node_pid[NODES];
static uint16_t node_port[NODES];
static brisk_client *client = NULL;

/* ---- processes and redis-cli -------------------------------------------------------------- */

static uint16_t free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  uint16_t port;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
  REQUIRE(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
  port = ntohs(a.sin_port);
  close(fd);
  return port;
}

/* The cli program (bt_cli_program(): redis-cli or $BRISK_TEST_CLI) quoted for sh -c. */
static const char *cli_quoted(void) {
  static char quoted[600];
  const char *program = bt_cli_program();
  REQUIRE(strchr(program, '\'') == NULL && strlen(program) < sizeof quoted - 3);
  snprintf(quoted, sizeof quoted, "'%s'", program);
  return quoted;
}

/* Runs `timeout 10 redis-cli -p PORT <args>`; returns its output (stdout+stderr), malloc'd. */
static char *cli(uint16_t port, const char *args) {
  char cmd[1700];
  char *buf;
  size_t len = 0, cap = 4096;
  size_t n;
  FILE *f;
  snprintf(cmd, sizeof cmd, "timeout 10 %s -h 127.0.0.1 -p %u %s 2>&1", cli_quoted(),
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

/* Whether the output of `redis-cli -p PORT <args>` contains `needle`. */
static int cli_has(uint16_t port, const char *args, const char *needle) {
  char *out = cli(port, args);
  int has = strstr(out, needle) != NULL;
  free(out);
  return has;
}

static void sleep_ms(int ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int alive(int i) {
  if (node_pid[i] <= 0) return 0;
  if (waitpid(node_pid[i], NULL, WNOHANG) == node_pid[i]) {
    node_pid[i] = 0;
    return 0;
  }
  return 1;
}

static void kill_node(int i, int sig) {
  if (node_pid[i] <= 0) return;
  kill(node_pid[i], sig);
  waitpid(node_pid[i], NULL, 0);
  node_pid[i] = 0;
}

static void stop_cluster(void) {
  int i;
  char cmd[400];
  for (i = 0; i < NODES; i++)
    if (node_pid[i] > 0) kill(node_pid[i], SIGKILL);
  for (i = 0; i < NODES; i++)
    if (node_pid[i] > 0) waitpid(node_pid[i], NULL, 0);
  memset(node_pid, 0, sizeof node_pid);
  if (cluster_dir[0] != '\0') {
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cluster_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", cluster_dir);
    cluster_dir[0] = '\0';
  }
}

static pid_t spawn_node(int i, uint16_t port, uint16_t bus_port) {
  char dir[300], log[340], port_s[16], bus_s[16];
  const char *server = bt_server_program(); /* before fork: getenv is not async-signal-safe */
  pid_t pid;
  snprintf(dir, sizeof dir, "%s/n%d", cluster_dir, i);
  snprintf(log, sizeof log, "%s/redis.log", dir);
  snprintf(port_s, sizeof port_s, "%u", (unsigned)port);
  snprintf(bus_s, sizeof bus_s, "%u", (unsigned)bus_port);
  mkdir(dir, 0700);
  pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execlp(server, server, "--bind", "127.0.0.1", "--port", port_s,
           "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
           "--cluster-node-timeout", "1000", "--cluster-port", bus_s,
           "--cluster-replica-validity-factor", "0", "--cluster-allow-replica-migration", "no",
           "--dir", dir, "--logfile", log, "--save", "", "--appendonly", "no",
           "--daemonize", "no", (char *)NULL);
    _exit(127);
  }
  return pid;
}

/* Every node says cluster_state:ok, knows all six, and every replica's link is up. */
static int cluster_healthy(void) {
  int i;
  for (i = 0; i < NODES; i++) {
    char *info, *repl;
    int ok;
    if (!alive(i)) return 0;
    info = cli(node_port[i], "CLUSTER INFO");
    repl = cli(node_port[i], "INFO replication");
    ok = strstr(info, "cluster_state:ok") != NULL &&
         strstr(info, "cluster_known_nodes:6") != NULL &&
         (strstr(repl, "role:master") != NULL || strstr(repl, "master_link_status:up") != NULL);
    free(info);
    free(repl);
    if (!ok) return 0;
  }
  return 1;
}

static int64_t scaled(int64_t ms) { return under_valgrind ? ms * 3 : ms; }

static void describe_cluster(void) {
  int i;
  for (i = 0; i < NODES; i++) {
    char *out = cli(node_port[i], "CLUSTER NODES");
    fprintf(stderr, "--- node %d (port %u, pid %ld):\n%s", i, (unsigned)node_port[i],
            (long)node_pid[i], out);
    free(out);
  }
}

static void wait_healthy(void) {
  int64_t deadline = bt_now_ms() + scaled(60000);
  while (!cluster_healthy()) {
    if (bt_now_ms() > deadline) {
      describe_cluster();
      bt_fail(__FILE__, __LINE__, "the cluster did not become healthy within the deadline");
      exit(1);
    }
    sleep_ms(100);
  }
}

static int start_cluster_once(void) {
  int i;
  int64_t deadline;
  char create[1700];
  size_t off;
  int rc;
  for (i = 0; i < NODES; i++) {
    node_port[i] = free_port();
    node_pid[i] = spawn_node(i, node_port[i], free_port());
  }
  deadline = bt_now_ms() + 20000;
  for (i = 0; i < NODES; i++) {
    while (!cli_has(node_port[i], "PING", "PONG")) {
      if (!alive(i) || bt_now_ms() > deadline) {
        fprintf(stderr, "node %d (port %u) did not answer PING (port taken?)\n", i,
                (unsigned)node_port[i]);
        return 0;
      }
      sleep_ms(50);
    }
  }
  off = (size_t)snprintf(create, sizeof create, "timeout 60 %s --cluster create", cli_quoted());
  for (i = 0; i < NODES; i++)
    off += (size_t)snprintf(create + off, sizeof create - off, " 127.0.0.1:%u",
                            (unsigned)node_port[i]);
  snprintf(create + off, sizeof create - off,
           " --cluster-replicas 1 --cluster-yes >'%s/create.log' 2>&1", cluster_dir);
  rc = system(create);
  if (rc != 0) {
    char cat[400];
    fprintf(stderr, "%s --cluster create failed (%d):\n", bt_cli_program(), rc);
    snprintf(cat, sizeof cat, "cat '%s/create.log' >&2", cluster_dir);
    if (system(cat) != 0) fprintf(stderr, "(no log)\n");
    return 0;
  }
  return 1;
}

static void start_cluster(void) {
  int attempt;
  int64_t t0 = bt_now_ms();
  snprintf(cluster_dir, sizeof cluster_dir, "/tmp/brisk-ccluster-XXXXXX");
  REQUIRE(mkdtemp(cluster_dir) != NULL);
  atexit(stop_cluster);
  for (attempt = 0; attempt < 3; attempt++) {
    int i;
    if (start_cluster_once()) break;
    for (i = 0; i < NODES; i++) kill_node(i, SIGKILL);
  }
  REQUIRE(attempt < 3);
  wait_healthy();
  fprintf(stderr, "cluster up in %lld ms, ports %u %u %u %u %u %u, dir %s\n",
          (long long)(bt_now_ms() - t0), node_port[0], node_port[1], node_port[2], node_port[3],
          node_port[4], node_port[5], cluster_dir);
}

/* ---- topology through redis-cli ------------------------------------------------------------ */

static int index_of_port(unsigned port) {
  int i;
  for (i = 0; i < NODES; i++)
    if (node_port[i] == port) return i;
  return -1;
}

static int is_primary(int i) { return alive(i) && cli_has(node_port[i], "INFO replication", "role:master"); }

/* The node (index) that node `from` says serves `slot` as primary. */
static int primary_of_slot(int from, long slot) {
  char *out = cli(node_port[from], "CLUSTER NODES");
  char *save = NULL;
  char *line;
  int found = -1;
  for (line = strtok_r(out, "\n", &save); line != NULL && found < 0;
       line = strtok_r(NULL, "\n", &save)) {
    char *fsave = NULL;
    char *field;
    int n = 0, port = -1, master = 0;
    for (field = strtok_r(line, " \r", &fsave); field != NULL;
         field = strtok_r(NULL, " \r", &fsave), n++) {
      if (n == 1) {
        char *colon = strrchr(field, ':');
        port = colon ? atoi(colon + 1) : -1; /* atoi stops at '@' */
      } else if (n == 2) {
        master = strstr(field, "master") != NULL && strstr(field, "fail") == NULL;
      } else if (n >= 8 && master && field[0] != '[') {
        long a = strtol(field, NULL, 10);
        char *dash = strchr(field, '-');
        long b = dash ? strtol(dash + 1, NULL, 10) : a;
        if (a <= slot && slot <= b) {
          found = index_of_port((unsigned)port);
          break;
        }
      }
    }
  }
  free(out);
  return found;
}

/* A replica (index) of the primary at index `primary` with its link up, asked to the replicas
   themselves (INFO replication); -1 when none is there yet. */
static int replica_of(int primary) {
  char want[64];
  int i;
  snprintf(want, sizeof want, "master_port:%u\r", (unsigned)node_port[primary]);
  for (i = 0; i < NODES; i++) {
    char *out;
    int match;
    if (i == primary || !alive(i)) continue;
    out = cli(node_port[i], "INFO replication");
    match = strstr(out, "role:slave") != NULL && strstr(out, want) != NULL &&
            strstr(out, "master_link_status:up") != NULL;
    free(out);
    if (match) return i;
  }
  return -1;
}

static long key_slot(const char *key) {
  char args[200];
  char *out;
  long slot;
  snprintf(args, sizeof args, "CLUSTER KEYSLOT '%.180s'", key);
  out = cli(node_port[0], args);
  slot = strtol(out, NULL, 10);
  free(out);
  return slot;
}

/* The primary serving `key`'s slot and a replica of it, once every view agrees (deadline). */
static void find_shard(const char *key, long *slot, int *primary, int *replica) {
  int64_t deadline = bt_now_ms() + scaled(30000);
  *slot = key_slot(key);
  for (;;) {
    *primary = primary_of_slot(0, *slot);
    *replica = -1;
    if (*primary >= 0 && is_primary(*primary)) *replica = replica_of(*primary);
    if (*replica >= 0) return;
    if (bt_now_ms() > deadline) {
      describe_cluster();
      bt_fail(__FILE__, __LINE__, "no primary with a linked replica for slot %ld", *slot);
      exit(1);
    }
    sleep_ms(100);
  }
}

/* ---- the client --------------------------------------------------------------------------- */

static brisk_client *cluster_client(void) {
  brisk_config *cfg = brisk_config_new();
  brisk_client *c = NULL;
  int i;
  REQUIRE(cfg != NULL);
  REQUIRE_OK(brisk_config_set_mode(cfg, BRISK_MODE_CLUSTER));
  for (i = 0; i < NODES; i++) REQUIRE_OK(brisk_config_add_node(cfg, "127.0.0.1", node_port[i]));
  REQUIRE_OK(brisk_config_set_cluster_error_retry_attempts(cfg, 3));
  REQUIRE_OK(brisk_config_set_read_from(cfg, BRISK_READ_PRIMARY));
  REQUIRE_OK(brisk_client_new(cfg, &c));
  brisk_config_free(cfg);
  return c;
}

/* ---- 1. many keys, split MGET, CROSSSLOT --------------------------------------------------- */

static void keys_across_slots_are_written_and_read_back(void) {
  int n = under_valgrind ? 1000 : 10000;
  int i, bad_set = 0, bad_get = 0, bad_mget = 0;
  long total = 0;
  int primaries = 0;
  int64_t t0 = bt_now_ms();
  char key[64], val[64];
  for (i = 0; i < n; i++) {
    snprintf(key, sizeof key, "bulk:%d", i);
    snprintf(val, sizeof val, "v%d", i);
    if (BT_CMD(client, NULL, "SET", key, val) != BRISK_OK && bad_set++ < 5)
      bt_fail(__FILE__, __LINE__, "SET %s: %s", key, brisk_last_error_message());
  }
  CHECK(bad_set == 0);
  for (i = 0; i < n; i++) {
    brisk_reply *r = NULL;
    snprintf(key, sizeof key, "bulk:%d", i);
    snprintf(val, sizeof val, "v%d", i);
    if (BT_CMD(client, &r, "GET", key) != BRISK_OK || !bt_reply_is(r, val)) {
      if (bad_get++ < 5)
        bt_fail(__FILE__, __LINE__, "GET %s: type %u, \"%s\"", key,
                (unsigned)brisk_reply_type_of(r), brisk_last_error_message());
    }
    brisk_reply_free(r);
  }
  CHECK(bad_get == 0);
  /* MGET in chunks of 100 keys (all over the slots), values in the order of the keys. */
  for (i = 0; i < n; i += 100) {
    const char *argv[101];
    char keys[100][32];
    brisk_reply *r = NULL;
    int j, m = n - i < 100 ? n - i : 100;
    argv[0] = "MGET";
    for (j = 0; j < m; j++) {
      snprintf(keys[j], sizeof keys[j], "bulk:%d", i + j);
      argv[1 + j] = keys[j];
    }
    if (!CHECK_OK(brisk_command(client, (size_t)m + 1, argv, NULL, &r))) {
      bad_mget++;
      continue;
    }
    if (brisk_reply_type_of(r) != BRISK_REPLY_ARRAY || brisk_reply_length(r) != (size_t)m) {
      bad_mget++;
    } else {
      for (j = 0; j < m; j++) {
        snprintf(val, sizeof val, "v%d", i + j);
        if (!bt_reply_is(brisk_reply_element(r, (size_t)j), val)) bad_mget++;
      }
    }
    brisk_reply_free(r);
  }
  CHECK(bad_mget == 0);
  /* The keys landed on all three primaries, and nowhere twice. */
  for (i = 0; i < NODES; i++) {
    if (is_primary(i)) {
      char *out = cli(node_port[i], "DBSIZE");
      long size = strtol(out, NULL, 10);
      free(out);
      primaries++;
      CHECK(size > n / 10);
      total += size;
    }
  }
  CHECK(primaries == 3);
  CHECK(total == n);
  fprintf(stderr, "  %d keys: SET, GET and MGET in %lld ms; redirects %llu\n", n,
          (long long)(bt_now_ms() - t0),
          (unsigned long long)brisk_client_stat(client, BRISK_STAT_REDIRECTS));
}

static void split_mget_keeps_order_and_nils(void) {
  /* Keys in different slots (checked), one of them missing. */
  const char *keys[] = {"order:a", "order:b", "order:missing", "order:c", "order:d"};
  const char *vals[] = {"1", "2", NULL, "3", "4"};
  const char *argv[6];
  brisk_reply *r = NULL;
  size_t i;
  long s0 = key_slot(keys[0]);
  int distinct = 0;
  for (i = 0; i < 5; i++) {
    if (key_slot(keys[i]) != s0) distinct++;
    if (vals[i]) CHECK_OK(BT_CMD(client, NULL, "SET", keys[i], vals[i]));
  }
  CHECK(distinct > 0);
  argv[0] = "MGET";
  for (i = 0; i < 5; i++) argv[1 + i] = keys[i];
  if (CHECK_OK(brisk_command(client, 6, argv, NULL, &r))) {
    CHECK(brisk_reply_type_of(r) == BRISK_REPLY_ARRAY);
    CHECK(brisk_reply_length(r) == 5);
    for (i = 0; i < 5; i++) {
      const brisk_reply *e = brisk_reply_element(r, i);
      if (vals[i])
        CHECK_REPLY_STR(e, vals[i]);
      else
        CHECK(e != NULL && brisk_reply_type_of(e) == BRISK_REPLY_NIL);
    }
  }
  brisk_reply_free(r);
}

static void cross_slot_command_is_refused(void) {
  brisk_reply *r = (brisk_reply *)&r; /* must come back NULL */
  CHECK(key_slot("a") != key_slot("b"));
  CHECK_STATUS(BT_CMD(client, &r, "SUNION", "a", "b"), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "CROSSSLOT");
  CHECK(r == NULL);
  /* The same keys under one hash tag are fine. */
  CHECK_OK(BT_CMD(client, NULL, "SADD", "{t}a", "x"));
  CHECK_OK(BT_CMD(client, NULL, "SADD", "{t}b", "y"));
  r = NULL;
  if (CHECK_OK(BT_CMD(client, &r, "SUNION", "{t}a", "{t}b"))) CHECK(brisk_reply_length(r) == 2);
  brisk_reply_free(r);
}

/* A WATCH transaction in cluster mode: the session stays on the slot of its first key, the
 * transaction runs there in one round trip, and keys of another slot are refused. */
static brisk_status wt_body(brisk_session *s, brisk_pipeline *tx, void *userdata) {
  brisk_status st = brisk_session_commandf(s, NULL, "GET %s", "{wt}balance");
  (void)userdata;
  if (st != BRISK_OK) return st;
  st = brisk_pipeline_appendf(tx, "INCRBY %s %s", "{wt}balance", "10");
  if (st != BRISK_OK) return st;
  return brisk_pipeline_appendf(tx, "RPUSH %s %s", "{wt}log", "+10");
}

static void watch_transactions_stay_on_one_slot(void) {
  const char *keys[] = {"{wt}balance", "{wt}log"};
  brisk_session *s = NULL;
  brisk_pipeline *tx = NULL;
  brisk_reply *r = NULL;
  CHECK_OK(brisk_commandf(client, NULL, "SET %s 5", "{wt}balance"));
  if (CHECK_OK(brisk_transaction_run(client, 2, keys, NULL, wt_body, NULL, 3, &r))) {
    CHECK(brisk_reply_length(r) == 2);
    CHECK(brisk_reply_integer(brisk_reply_element(r, 0)) == 15);
  }
  brisk_reply_free(r);
  REQUIRE_OK(brisk_session_new(client, &s));
  REQUIRE_OK(brisk_transaction_new(client, &tx));
  CHECK_OK(brisk_session_commandf(s, NULL, "WATCH %s", "{wt}balance"));
  CHECK_OK(brisk_pipeline_appendf(tx, "SET %s %s", "a", "other-slot"));
  CHECK(key_slot("a") != key_slot("{wt}balance"));
  CHECK_STATUS(brisk_session_exec(s, tx, NULL), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "stays on one slot");
  CHECK_OK(brisk_pipeline_appendf(tx, "DEL %s %s", "{wt}balance", "{wt}log"));
  r = NULL;
  if (CHECK_OK(brisk_session_exec(s, tx, &r)))
    CHECK(brisk_reply_integer(brisk_reply_element(r, 0)) == 2);
  brisk_reply_free(r);
  brisk_pipeline_free(tx);
  brisk_session_free(s);
}

/* ---- slot migration under load ------------------------------------------------------------ */

#define MIG_KEYS 300

struct reader {
  pthread_t thread;
  atomic_int stop;
  atomic_llong reads;
  long long errors, wrong;
  char first_error[240];
};

static void *reader_main(void *arg) {
  struct reader *rd = arg;
  long long n = 0;
  char key[64], val[32];
  while (!atomic_load(&rd->stop)) {
    brisk_reply *r = NULL;
    int i = (int)(n % MIG_KEYS);
    brisk_status st;
    snprintf(key, sizeof key, "{mig}:%d", i);
    snprintf(val, sizeof val, "%d", i);
    st = BT_CMD(client, &r, "GET", key);
    if (st != BRISK_OK) {
      if (rd->errors++ == 0)
        snprintf(rd->first_error, sizeof rd->first_error, "GET %s: %s: %s", key,
                 brisk_status_name(st), brisk_last_error_message());
    } else if (!bt_reply_is(r, val)) {
      if (rd->wrong++ == 0 && rd->errors == 0)
        snprintf(rd->first_error, sizeof rd->first_error, "GET %s: reply type %u, not \"%s\"",
                 key, (unsigned)brisk_reply_type_of(r), val);
    }
    brisk_reply_free(r);
    n++;
    atomic_store(&rd->reads, n);
  }
  return NULL;
}

/* Waits until the reader made `more` more GETs; returns whether it did before the deadline. */
static int wait_reads(struct reader *rd, long long more, int64_t ms) {
  long long target = atomic_load(&rd->reads) + more;
  int64_t deadline = bt_now_ms() + scaled(ms);
  while (atomic_load(&rd->reads) < target) {
    if (bt_now_ms() > deadline) return 0;
    sleep_ms(1);
  }
  return 1;
}

/* Node `i`'s CLUSTER MYID (40 hex characters), into `id`. */
static void node_id(int i, char id[41]) {
  char *out = cli(node_port[i], "CLUSTER MYID");
  size_t n = strspn(out, "0123456789abcdef");
  if (n != 40) {
    bt_fail(__FILE__, __LINE__, "CLUSTER MYID on port %u: %s", (unsigned)node_port[i], out);
    free(out);
    exit(1);
  }
  memcpy(id, out, 40);
  id[40] = '\0';
  free(out);
}

/*
 * Moves `slot` from primary `from` to primary `to` the way redis-cli --cluster reshard does:
 * SETSLOT IMPORTING on the target, MIGRATING on the source, MIGRATE ... KEYS in batches of
 * `batch` (waiting for `reads_between` more reads of `rd` after each batch, so the reader really
 * runs into the half-migrated slot), then SETSLOT NODE on the target, the source and every other
 * primary. Returns the number of MIGRATE batches.
 */
static int migrate_slot(long slot, int from, int to, int batch, struct reader *rd,
                        long long reads_between) {
  char from_id[41], to_id[41], args[4096];
  char *out;
  int batches = 0, i;
  int64_t deadline = bt_now_ms() + scaled(60000);
  node_id(from, from_id);
  node_id(to, to_id);
  snprintf(args, sizeof args, "CLUSTER SETSLOT %ld IMPORTING %s", slot, from_id);
  out = cli(node_port[to], args);
  CHECK_STR_CONTAINS(out, "OK");
  free(out);
  snprintf(args, sizeof args, "CLUSTER SETSLOT %ld MIGRATING %s", slot, to_id);
  out = cli(node_port[from], args);
  CHECK_STR_CONTAINS(out, "OK");
  free(out);
  for (;;) {
    char *keys, *save = NULL, *line;
    size_t off;
    int n = 0;
    snprintf(args, sizeof args, "CLUSTER GETKEYSINSLOT %ld %d", slot, batch);
    keys = cli(node_port[from], args);
    off = (size_t)snprintf(args, sizeof args, "MIGRATE 127.0.0.1 %u '' 0 5000 KEYS",
                           (unsigned)node_port[to]);
    for (line = strtok_r(keys, "\r\n", &save); line != NULL; line = strtok_r(NULL, "\r\n", &save)) {
      if (line[0] == '\0') continue;
      REQUIRE(strchr(line, '\'') == NULL && off + strlen(line) + 4 < sizeof args);
      off += (size_t)snprintf(args + off, sizeof args - off, " '%s'", line);
      n++;
    }
    free(keys);
    if (n == 0) break;
    out = cli(node_port[from], args);
    if (strstr(out, "OK") == NULL) {
      bt_fail(__FILE__, __LINE__, "MIGRATE failed: %s", out);
      free(out);
      break;
    }
    free(out);
    batches++;
    if (rd != NULL && !wait_reads(rd, reads_between, 10000))
      bt_fail(__FILE__, __LINE__, "the reader made no progress after MIGRATE batch %d", batches);
    if (bt_now_ms() > deadline) {
      bt_fail(__FILE__, __LINE__, "the slot did not empty within the deadline");
      break;
    }
  }
  /* The target first, then the source, then the other primaries (as redis-cli does). */
  snprintf(args, sizeof args, "CLUSTER SETSLOT %ld NODE %s", slot, to_id);
  out = cli(node_port[to], args);
  CHECK_STR_CONTAINS(out, "OK");
  free(out);
  out = cli(node_port[from], args);
  CHECK_STR_CONTAINS(out, "OK");
  free(out);
  for (i = 0; i < NODES; i++) {
    if (i == to || i == from || !is_primary(i)) continue;
    out = cli(node_port[i], args);
    CHECK_STR_CONTAINS(out, "OK");
    free(out);
  }
  return batches;
}

/* Writes MIG_KEYS keys "<tag>:<i>" = i (all in `slot`) and picks the primary that holds the slot
   (*from) and another primary to move it to (*to). */
static void prepare_migration(const char *tag, long slot, int *from, int *to) {
  char key[64], val[32];
  int i;
  for (i = 0; i < MIG_KEYS; i++) {
    snprintf(key, sizeof key, "%s:%d", tag, i);
    snprintf(val, sizeof val, "%d", i);
    REQUIRE_OK(BT_CMD(client, NULL, "SET", key, val));
  }
  *from = primary_of_slot(0, slot);
  *to = -1;
  REQUIRE(*from >= 0);
  for (i = 0; i < NODES && *to < 0; i++)
    if (i != *from && is_primary(i)) *to = i;
  REQUIRE(*to >= 0);
}

/* After a migration: every node agrees that node `to` owns `slot`, every key of
   prepare_migration(tag) reads back its value through brisk, and `to` holds all of them. */
static void check_slot_moved(const char *tag, long slot, int to) {
  char key[64], val[32];
  int i, bad = 0;
  int64_t deadline = bt_now_ms() + scaled(20000);
  for (;;) {
    int agree = 1;
    for (i = 0; i < NODES; i++)
      if (primary_of_slot(i, slot) != to) agree = 0;
    if (agree) break;
    if (bt_now_ms() > deadline) {
      bt_fail(__FILE__, __LINE__, "the nodes do not agree that slot %ld moved", slot);
      describe_cluster();
      break;
    }
    sleep_ms(50);
  }
  for (i = 0; i < MIG_KEYS; i++) {
    brisk_reply *r = NULL;
    snprintf(key, sizeof key, "%s:%d", tag, i);
    snprintf(val, sizeof val, "%d", i);
    if ((BT_CMD(client, &r, "GET", key) != BRISK_OK || !bt_reply_is(r, val)) && bad++ < 5)
      bt_fail(__FILE__, __LINE__, "GET %s after the move: %s", key, brisk_last_error_message());
    brisk_reply_free(r);
  }
  CHECK(bad == 0);
  {
    char *out;
    snprintf(key, sizeof key, "CLUSTER COUNTKEYSINSLOT %ld", slot);
    out = cli(node_port[to], key);
    CHECK(strtol(out, NULL, 10) == MIG_KEYS);
    free(out);
  }
}

static void slot_migration_under_load_follows_ask_without_errors(void) {
  long slot = key_slot("{mig}");
  int from, to, batches;
  struct reader rd;
  uint64_t redirects_before, redirects;
  int64_t t0 = bt_now_ms();
  prepare_migration("{mig}", slot, &from, &to);
  fprintf(stderr, "  slot %ld: moving %d keys from port %u to port %u\n", slot, MIG_KEYS,
          (unsigned)node_port[from], (unsigned)node_port[to]);
  redirects_before = brisk_client_stat(client, BRISK_STAT_REDIRECTS);

  memset(&rd, 0, sizeof rd);
  atomic_init(&rd.stop, 0);
  atomic_init(&rd.reads, 0);
  REQUIRE(pthread_create(&rd.thread, NULL, reader_main, &rd) == 0);
  CHECK(wait_reads(&rd, under_valgrind ? 50 : 300, 10000));
  batches = migrate_slot(slot, from, to, 25, &rd, under_valgrind ? 10 : 50);
  /* Reads go on after the move, until they are served by the new owner (MOVED). */
  CHECK(wait_reads(&rd, under_valgrind ? 100 : 1000, 10000));
  atomic_store(&rd.stop, 1);
  pthread_join(rd.thread, NULL);
  redirects = brisk_client_stat(client, BRISK_STAT_REDIRECTS) - redirects_before;

  if (rd.errors || rd.wrong)
    bt_fail(__FILE__, __LINE__, "%lld errors and %lld wrong values in %lld reads; first: %s",
            rd.errors, rd.wrong, (long long)atomic_load(&rd.reads), rd.first_error);
  CHECK(rd.errors == 0);
  CHECK(rd.wrong == 0);
  CHECK(redirects > 0);
  CHECK(brisk_client_stat(client, BRISK_STAT_REDIRECTS) > 0);
  /* Every node agrees on the new owner; every key is readable through brisk. */
  check_slot_moved("{mig}", slot, to);
  fprintf(stderr,
          "  slot migration: %d MIGRATE batches, %lld reads, %lld errors, %llu redirects, "
          "%lld ms\n",
          batches, (long long)atomic_load(&rd.reads), rd.errors, (unsigned long long)redirects,
          (long long)(bt_now_ms() - t0));
}

/* ---- async commands ------------------------------------------------------------------------ */

static pthread_t caller_thread; /* main's thread: no callback may run on it */

/* One command of a batch: what its callback must see. */
struct acall {
  struct abatch *b;
  size_t index;
  char want[32]; /* the reply's text on OK; "" for any reply */
};

/* What every callback of a batch of async commands did. */
struct abatch {
  size_t n, cap;
  struct acall *calls;
  atomic_int *count; /* per command: callbacks received */
  atomic_long done, ok, closed, failed, wrong, on_caller_thread;
  atomic_int first_taken;
  char first_bad[300];
};

static void abatch_init(struct abatch *b, size_t cap) {
  size_t i;
  memset(b, 0, sizeof *b);
  b->cap = cap;
  b->calls = calloc(cap, sizeof *b->calls);
  b->count = calloc(cap, sizeof *b->count);
  REQUIRE(b->calls != NULL && b->count != NULL);
  for (i = 0; i < cap; i++) atomic_init(&b->count[i], 0);
  atomic_init(&b->done, 0);
  atomic_init(&b->ok, 0);
  atomic_init(&b->closed, 0);
  atomic_init(&b->failed, 0);
  atomic_init(&b->wrong, 0);
  atomic_init(&b->on_caller_thread, 0);
  atomic_init(&b->first_taken, 0);
}

static void abatch_free(struct abatch *b) {
  free(b->calls);
  free((void *)b->count);
}

static void abatch_note(struct abatch *b, const struct acall *a, const char *what,
                        const char *detail) {
  if (atomic_exchange(&b->first_taken, 1) == 0)
    snprintf(b->first_bad, sizeof b->first_bad, "command %zu: %s: %s", a->index, what,
             detail ? detail : "(null)");
}

static void abatch_on_reply(void *userdata, brisk_status status, const char *message,
                            brisk_reply *reply) {
  struct acall *a = userdata;
  struct abatch *b = a->b;
  if (pthread_equal(pthread_self(), caller_thread)) atomic_fetch_add(&b->on_caller_thread, 1);
  atomic_fetch_add(&b->count[a->index], 1);
  if (status == BRISK_OK) {
    atomic_fetch_add(&b->ok, 1);
    if (reply == NULL || (a->want[0] != '\0' && !bt_reply_is(reply, a->want))) {
      const char *got = brisk_reply_string(reply, NULL);
      atomic_fetch_add(&b->wrong, 1);
      abatch_note(b, a, a->want, got ? got : "(not a string)");
    }
  } else if (status == BRISK_ERR_CLOSED) {
    atomic_fetch_add(&b->closed, 1);
  } else {
    atomic_fetch_add(&b->failed, 1);
    abatch_note(b, a, brisk_status_name(status), message);
  }
  brisk_reply_free(reply); /* the callback owns it */
  atomic_fetch_add(&b->done, 1);
}

/* Starts one command of the batch, whose OK reply must read `want` ("" for any). */
static brisk_status abatch_start(struct abatch *b, brisk_client *c, const char *want,
                                 const char *const *words) {
  struct acall *a;
  size_t argc = 0;
  brisk_status st;
  REQUIRE(b->n < b->cap);
  while (words[argc] != NULL) argc++;
  a = &b->calls[b->n];
  a->b = b;
  a->index = b->n;
  snprintf(a->want, sizeof a->want, "%.31s", want); /* values here are short */
  st = brisk_command_async(c, argc, words, NULL, abatch_on_reply, a);
  if (st == BRISK_OK) b->n++;
  return st;
}

#define ABATCH_START(b, c, want, ...) \
  abatch_start((b), (c), (want), (const char *const[]){__VA_ARGS__, NULL})

/* Waits (deadline) until at most `in_flight` commands of the batch are still out. */
static int abatch_wait(struct abatch *b, size_t in_flight, int64_t ms) {
  int held;
  BT_WAIT_UNTIL(held, b->n - (size_t)atomic_load(&b->done) <= in_flight, scaled(ms));
  return held;
}

/* Every command started got exactly one callback, none on the caller's thread. */
static void abatch_check_once(struct abatch *b, const char *what) {
  size_t i, zero = 0, more = 0;
  for (i = 0; i < b->n; i++) {
    int k = atomic_load(&b->count[i]);
    if (k == 0) zero++;
    if (k > 1) more++;
  }
  if (zero || more || (size_t)atomic_load(&b->done) != b->n)
    bt_fail(__FILE__, __LINE__, "%s: of %zu commands, %zu got no callback, %zu more than one",
            what, b->n, zero, more);
  if (atomic_load(&b->on_caller_thread) != 0)
    bt_fail(__FILE__, __LINE__, "%s: %ld callbacks ran on the caller's thread", what,
            atomic_load(&b->on_caller_thread));
}

/* The outcome of one async command, kept for the caller (who frees the reply). */
struct aone {
  atomic_int calls;
  brisk_status status;
  char message[300];
  brisk_reply *reply;
  int on_caller_thread;
};

static void aone_on_reply(void *userdata, brisk_status status, const char *message,
                          brisk_reply *reply) {
  struct aone *o = userdata;
  o->status = status;
  snprintf(o->message, sizeof o->message, "%s", message ? message : "(null)");
  o->reply = reply;
  o->on_caller_thread = pthread_equal(pthread_self(), caller_thread);
  atomic_fetch_add(&o->calls, 1); /* last: publishes the fields above */
}

/* Runs one async command and waits for its callback (deadline). Returns the status of the
   brisk_command_async call itself; on OK, `o` holds the callback's outcome. */
static brisk_status aone_run(struct aone *o, brisk_client *c, size_t argc,
                             const char *const *argv) {
  brisk_status st;
  int held;
  memset(o, 0, sizeof *o);
  atomic_init(&o->calls, 0);
  st = brisk_command_async(c, argc, argv, NULL, aone_on_reply, o);
  if (st != BRISK_OK) return st;
  BT_WAIT_UNTIL(held, atomic_load(&o->calls) > 0, scaled(20000));
  REQUIRE(held); /* the callback never came */
  CHECK(!o->on_caller_thread);
  return st;
}

static long dbsize(int i) {
  char *out = cli(node_port[i], "DBSIZE");
  long size = strtol(out, NULL, 10);
  free(out);
  return size;
}

/* ---- 1. async commands routed by slot, pipelined ------------------------------------------ */

/*
 * SETs with at most 300 in flight, then every GET at once, on a fresh client: each lands on the
 * primary of its slot straight from the slot map (no redirect), over one multiplexed
 * connection per primary (plus the connection that read the topology).
 */
static void async_commands_route_by_slot(void) {
  size_t n = under_valgrind ? 1000 : 10000, i;
  brisk_client *c = cluster_client();
  struct abatch b;
  struct aone o;
  long before[NODES];
  long total = 0;
  int primaries = 0;
  uint64_t connects, redirects;
  int64_t t0 = bt_now_ms(), t_set, t_get;
  char key[64], val[64];

  for (i = 0; i < NODES; i++) before[i] = is_primary(i) ? dbsize((int)i) : -1;

  abatch_init(&b, n);
  for (i = 0; i < n; i++) {
    if (b.n - (size_t)atomic_load(&b.done) >= 300 && !abatch_wait(&b, 299, 30000)) {
      bt_fail(__FILE__, __LINE__, "SETs: no callback within the deadline (%zu started, %ld done)",
              b.n, atomic_load(&b.done));
      break;
    }
    snprintf(key, sizeof key, "ak:%zu", i);
    snprintf(val, sizeof val, "av%zu", i);
    CHECK_OK(ABATCH_START(&b, c, "OK", "SET", key, val));
  }
  CHECK(abatch_wait(&b, 0, 60000));
  t_set = bt_now_ms() - t0;
  abatch_check_once(&b, "SET");
  CHECK(b.n == n);
  CHECK(atomic_load(&b.ok) == (long)n);
  if (atomic_load(&b.failed) || atomic_load(&b.wrong) || atomic_load(&b.closed))
    bt_fail(__FILE__, __LINE__, "SETs: %ld failed, %ld wrong, %ld closed; first: %s",
            atomic_load(&b.failed), atomic_load(&b.wrong), atomic_load(&b.closed), b.first_bad);
  abatch_free(&b);

  /* Every GET at once. */
  t0 = bt_now_ms();
  abatch_init(&b, n);
  for (i = 0; i < n; i++) {
    snprintf(key, sizeof key, "ak:%zu", i);
    snprintf(val, sizeof val, "av%zu", i);
    CHECK_OK(ABATCH_START(&b, c, val, "GET", key));
  }
  CHECK(abatch_wait(&b, 0, 60000));
  t_get = bt_now_ms() - t0;
  abatch_check_once(&b, "GET");
  CHECK(b.n == n);
  CHECK(atomic_load(&b.ok) == (long)n);
  if (atomic_load(&b.failed) || atomic_load(&b.wrong) || atomic_load(&b.closed))
    bt_fail(__FILE__, __LINE__, "GETs: %ld failed, %ld wrong, %ld closed; first: %s",
            atomic_load(&b.failed), atomic_load(&b.wrong), atomic_load(&b.closed), b.first_bad);
  abatch_free(&b);

  /* The keys landed on all three primaries (nothing else writes now), and nowhere twice. */
  for (i = 0; i < NODES; i++) {
    long delta;
    if (before[i] < 0) continue;
    CHECK(is_primary((int)i));
    delta = dbsize((int)i) - before[i];
    primaries++;
    total += delta;
    fprintf(stderr, "  primary port %u: %ld new keys\n", (unsigned)node_port[i], delta);
    CHECK(delta > (long)n / 10);
  }
  CHECK(primaries == 3);
  CHECK(total == (long)n);
  /* Routed by the slot map from the start (no MOVED), over one connection per primary and
     the one that read the topology: not one per command in flight. */
  redirects = brisk_client_stat(c, BRISK_STAT_REDIRECTS);
  connects = brisk_client_stat(c, BRISK_STAT_CONNECTS);
  CHECK(redirects == 0);
  if (connects > 5)
    bt_fail(__FILE__, __LINE__, "%llu connections for %zu async commands (want <= 5)",
            (unsigned long long)connects, 2 * n);

  /* MGET over 50 keys in several slots: split, merged, in the order of the keys. */
  {
    const char *argv[51];
    char keys[50][32];
    long s0 = -1;
    int distinct = 0, j;
    argv[0] = "MGET";
    for (j = 0; j < 50; j++) {
      snprintf(keys[j], sizeof keys[j], "ak:%d", j);
      argv[1 + j] = keys[j];
    }
    for (j = 0; j < 5; j++) {
      long s = key_slot(keys[j]);
      if (j == 0) s0 = s;
      else if (s != s0) distinct++;
    }
    CHECK(distinct > 0);
    if (CHECK_OK(aone_run(&o, c, 51, argv))) {
      if (o.status != BRISK_OK) {
        bt_fail(__FILE__, __LINE__, "async MGET of 50 keys: %s: %s",
                brisk_status_name(o.status), o.message);
      } else if (brisk_reply_type_of(o.reply) != BRISK_REPLY_ARRAY ||
                 brisk_reply_length(o.reply) != 50) {
        bt_fail(__FILE__, __LINE__, "async MGET of 50 keys: reply type %u, length %zu",
                (unsigned)brisk_reply_type_of(o.reply), brisk_reply_length(o.reply));
      } else {
        int bad = 0;
        for (j = 0; j < 50; j++) {
          snprintf(val, sizeof val, "av%d", j);
          if (!bt_reply_is(brisk_reply_element(o.reply, (size_t)j), val) && bad++ < 3)
            bt_fail(__FILE__, __LINE__, "async MGET element %d is not \"%s\"", j, val);
        }
        CHECK(bad == 0);
      }
      brisk_reply_free(o.reply);
    }
  }

  /* A command that cannot be split is refused, naming CROSSSLOT: through its callback (the
     contract allows the call itself to refuse it too; either way, INVALID_ARGUMENT). */
  {
    brisk_status st;
    CHECK(key_slot("a") != key_slot("b"));
    st = aone_run(&o, c, 3, (const char *const[]){"SUNION", "a", "b"});
    if (st == BRISK_OK) {
      fprintf(stderr, "  async SUNION a b: callback %s: %s\n", brisk_status_name(o.status),
              o.message);
      CHECK(o.status == BRISK_ERR_INVALID_ARGUMENT);
      CHECK_STR_CONTAINS(o.message, "CROSSSLOT");
      CHECK(o.reply == NULL);
      brisk_reply_free(o.reply);
    } else {
      fprintf(stderr, "  async SUNION a b: the call returned %s: %s\n", brisk_status_name(st),
              brisk_last_error_message());
      CHECK(st == BRISK_ERR_INVALID_ARGUMENT);
      CHECK_STR_CONTAINS(brisk_last_error_message(), "CROSSSLOT");
    }
  }

  /* An error reply keeps its status and the server's text. */
  if (CHECK_OK(aone_run(&o, c, 3, (const char *const[]){"LPUSH", "ak:1", "x"}))) {
    CHECK(o.status == BRISK_ERR_SERVER);
    CHECK_STR_CONTAINS(o.message, "WRONGTYPE");
    CHECK(o.reply == NULL);
    brisk_reply_free(o.reply);
  }
  /* A keyless command goes to some primary. */
  if (CHECK_OK(aone_run(&o, c, 1, (const char *const[]){"PING"}))) {
    CHECK(o.status == BRISK_OK);
    CHECK_REPLY_STR(o.reply, "PONG");
    brisk_reply_free(o.reply);
  }
  fprintf(stderr,
          "  %zu async SETs in %lld ms (300 in flight), %zu GETs in %lld ms (all at once); "
          "redirects %llu, connects %llu\n",
          n, (long long)t_set, n, (long long)t_get, (unsigned long long)redirects,
          (unsigned long long)connects);
  brisk_client_free(c);
}

/* ---- 2. async reads during a slot migration ----------------------------------------------- */

#define AREAD_WINDOW 20

/* A window of async GETs, each callback starting the next one until told to stop. */
struct areader {
  struct reader base; /* base.reads: GETs completed (what migrate_slot and wait_reads watch) */
  brisk_client *c;
  atomic_int stop;
  atomic_long next;      /* the next key index */
  atomic_int in_flight;
  atomic_long errors, wrong, on_caller_thread;
  atomic_int first_taken;
  char first_error[300];
};

struct aget {
  struct areader *ar;
  long i;
};

static void areader_note(struct areader *ar, const char *fmt, ...) {
  va_list ap;
  if (atomic_exchange(&ar->first_taken, 1) != 0) return;
  va_start(ap, fmt);
  vsnprintf(ar->first_error, sizeof ar->first_error, fmt, ap);
  va_end(ap);
}

static void areader_on_reply(void *userdata, brisk_status status, const char *message,
                             brisk_reply *reply);

static void areader_issue(struct areader *ar) {
  struct aget *g = malloc(sizeof *g);
  char key[64];
  brisk_status st;
  REQUIRE(g != NULL);
  g->ar = ar;
  g->i = atomic_fetch_add(&ar->next, 1) % MIG_KEYS;
  snprintf(key, sizeof key, "{amig}:%ld", g->i);
  atomic_fetch_add(&ar->in_flight, 1);
  st = brisk_command_async(ar->c, 2, (const char *const[]){"GET", key}, NULL, areader_on_reply,
                           g);
  if (st != BRISK_OK) {
    atomic_fetch_add(&ar->errors, 1);
    areader_note(ar, "starting GET %s: %s: %s", key, brisk_status_name(st),
                 brisk_last_error_message());
    free(g);
    atomic_fetch_sub(&ar->in_flight, 1);
  }
}

static void areader_on_reply(void *userdata, brisk_status status, const char *message,
                             brisk_reply *reply) {
  struct aget *g = userdata;
  struct areader *ar = g->ar;
  char val[32];
  if (pthread_equal(pthread_self(), caller_thread)) atomic_fetch_add(&ar->on_caller_thread, 1);
  snprintf(val, sizeof val, "%ld", g->i);
  if (status != BRISK_OK) {
    atomic_fetch_add(&ar->errors, 1);
    areader_note(ar, "GET {amig}:%ld: %s: %s", g->i, brisk_status_name(status),
                 message ? message : "(null)");
  } else if (!bt_reply_is(reply, val)) {
    atomic_fetch_add(&ar->wrong, 1);
    areader_note(ar, "GET {amig}:%ld: reply type %u, not \"%s\"", g->i,
                 (unsigned)brisk_reply_type_of(reply), val);
  }
  brisk_reply_free(reply);
  free(g);
  atomic_fetch_add(&ar->base.reads, 1);
  /* The next one before this one leaves the window, so the window only drains on stop. */
  if (!atomic_load(&ar->stop)) areader_issue(ar);
  atomic_fetch_sub(&ar->in_flight, 1);
}

/*
 * 300 keys under one hash tag moved to another primary (IMPORTING/MIGRATING, MIGRATE in
 * batches of 25, SETSLOT NODE) while a window of 20 async GETs on a fresh client reads them:
 * the async path follows ASK and MOVED, so no error and no wrong value surfaces.
 */
static void async_reads_follow_slot_migration(void) {
  long slot = key_slot("{amig}");
  int from, to, i, batches, held;
  struct areader ar;
  brisk_client *c = cluster_client();
  uint64_t redirects;
  int64_t t0 = bt_now_ms();
  REQUIRE(slot != key_slot("{mig}"));
  prepare_migration("{amig}", slot, &from, &to);
  fprintf(stderr, "  slot %ld: moving %d keys from port %u to port %u under async GETs\n", slot,
          MIG_KEYS, (unsigned)node_port[from], (unsigned)node_port[to]);

  memset(&ar, 0, sizeof ar);
  atomic_init(&ar.base.stop, 0);
  atomic_init(&ar.base.reads, 0);
  ar.c = c;
  atomic_init(&ar.stop, 0);
  atomic_init(&ar.next, 0);
  atomic_init(&ar.in_flight, 0);
  atomic_init(&ar.errors, 0);
  atomic_init(&ar.wrong, 0);
  atomic_init(&ar.on_caller_thread, 0);
  atomic_init(&ar.first_taken, 0);
  for (i = 0; i < AREAD_WINDOW; i++) areader_issue(&ar);
  CHECK(wait_reads(&ar.base, under_valgrind ? 50 : 300, 10000));
  batches = migrate_slot(slot, from, to, 25, &ar.base, under_valgrind ? 10 : 50);
  /* Reads go on after the move, until they are served by the new owner (MOVED). */
  CHECK(wait_reads(&ar.base, under_valgrind ? 100 : 1000, 10000));
  atomic_store(&ar.stop, 1);
  BT_WAIT_UNTIL(held, atomic_load(&ar.in_flight) == 0, scaled(20000));
  REQUIRE(held); /* the window did not drain: a callback is missing */
  redirects = brisk_client_stat(c, BRISK_STAT_REDIRECTS);

  if (atomic_load(&ar.errors) || atomic_load(&ar.wrong))
    bt_fail(__FILE__, __LINE__, "%ld errors and %ld wrong values in %lld async reads; first: %s",
            atomic_load(&ar.errors), atomic_load(&ar.wrong),
            (long long)atomic_load(&ar.base.reads), ar.first_error);
  CHECK(atomic_load(&ar.errors) == 0);
  CHECK(atomic_load(&ar.wrong) == 0);
  CHECK(atomic_load(&ar.on_caller_thread) == 0);
  CHECK(atomic_load(&ar.base.reads) == atomic_load(&ar.next)); /* every GET called back once */
  CHECK(redirects > 0);
  check_slot_moved("{amig}", slot, to);
  fprintf(stderr,
          "  async slot migration: %d MIGRATE batches, %lld async reads (%d in flight), %ld "
          "errors, %llu redirects, %lld ms\n",
          batches, (long long)atomic_load(&ar.base.reads), AREAD_WINDOW,
          atomic_load(&ar.errors), (unsigned long long)redirects,
          (long long)(bt_now_ms() - t0));
  brisk_client_free(c);
}

/* ---- 3. brisk_client_free with async commands in flight on every node ----------------------- */

struct afreer {
  brisk_client *c;
  struct abatch *b;
  atomic_int returned;
  long done_when_returned;
  pthread_t thread;
};

static void *afreer_run(void *arg) {
  struct afreer *f = arg;
  brisk_client_free(f->c);
  f->done_when_returned = atomic_load(&f->b->done);
  atomic_store(&f->returned, 1);
  return NULL;
}

/* Starts `n` commands over all slots (SETs, with every 50th a MGET of three keys in different
   slots, which runs on a thread of its own), frees the client at once (on another thread, with
   a deadline), and checks that free returned only after every callback ran, once. */
static void free_with_commands_in_flight(brisk_client *c, size_t n, const char *prefix) {
  struct abatch b;
  struct afreer f;
  size_t i;
  int held;
  char key[64], k2[64], k3[64];
  abatch_init(&b, n);
  for (i = 0; i < n; i++) {
    snprintf(key, sizeof key, "%s:%zu", prefix, i);
    if (i % 50 == 49) {
      snprintf(k2, sizeof k2, "%s:%zu", prefix, i + 1);
      snprintf(k3, sizeof k3, "%s:%zu", prefix, i + 2);
      CHECK_OK(ABATCH_START(&b, c, "", "MGET", key, k2, k3));
    } else {
      CHECK_OK(ABATCH_START(&b, c, "OK", "SET", key, "x"));
    }
  }
  f.c = c;
  f.b = &b;
  f.done_when_returned = -1;
  atomic_init(&f.returned, 0);
  REQUIRE(pthread_create(&f.thread, NULL, afreer_run, &f) == 0);
  BT_WAIT_UNTIL(held, atomic_load(&f.returned), scaled(30000));
  REQUIRE(held); /* brisk_client_free hung */
  pthread_join(f.thread, NULL);
  fprintf(stderr, "  %s: %zu commands started, freed: %ld OK, %ld CLOSED, %ld other\n", prefix,
          b.n, atomic_load(&b.ok), atomic_load(&b.closed), atomic_load(&b.failed));
  CHECK(b.n == n);
  if (f.done_when_returned != (long)b.n)
    bt_fail(__FILE__, __LINE__, "brisk_client_free returned with %ld of %zu callbacks done",
            f.done_when_returned, b.n);
  abatch_check_once(&b, prefix);
  CHECK(atomic_load(&b.ok) + atomic_load(&b.closed) == (long)b.n);
  if (atomic_load(&b.failed) || atomic_load(&b.wrong))
    bt_fail(__FILE__, __LINE__, "%ld failed (not CLOSED), %ld wrong; first: %s",
            atomic_load(&b.failed), atomic_load(&b.wrong), b.first_bad);
  abatch_free(&b);
}

static void async_client_freed_mid_stream_on_cluster(void) {
  size_t n = under_valgrind ? 1000 : 4000;
  brisk_client *c;
  struct abatch warm;
  /* A client that has not sent anything yet: its node connections are still being made. */
  free_with_commands_in_flight(cluster_client(), n, "afree-cold");
  /* One whose connection to every primary is up. */
  c = cluster_client();
  {
    size_t i;
    char key[64];
    abatch_init(&warm, 300);
    for (i = 0; i < 300; i++) {
      snprintf(key, sizeof key, "afree-warm:%zu", i);
      CHECK_OK(ABATCH_START(&warm, c, "OK", "SET", key, "w"));
    }
    CHECK(abatch_wait(&warm, 0, 20000));
    abatch_check_once(&warm, "warm-up");
    CHECK(atomic_load(&warm.ok) == 300);
    abatch_free(&warm);
  }
  free_with_commands_in_flight(c, n, "afree-warm");
  /* The cluster serves the shared client as before. */
  CHECK_OK(BT_CMD(client, NULL, "SET", "afree:after", "1"));
}

/* ---- seeds moved ------------------------------------------------------------------------ */

/* Every port node `from`'s CLUSTER NODES names is a port of a live node of ours. */
static int nodes_list_only_live_ports(int from) {
  char *out = cli(node_port[from], "CLUSTER NODES");
  char *save = NULL, *line;
  int ok = 1, lines = 0;
  for (line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    char *sp = strchr(line, ' '), *colon;
    int i;
    if (sp == NULL) continue;
    colon = strchr(sp + 1, ':');
    if (colon == NULL) {
      ok = 0;
      break;
    }
    lines++;
    i = index_of_port((unsigned)atoi(colon + 1));
    if (i < 0 || !alive(i)) ok = 0;
  }
  free(out);
  return ok && lines == NODES;
}

static int cluster_settled_everywhere(void) {
  int i;
  for (i = 0; i < NODES; i++)
    if (!alive(i) || !nodes_list_only_live_ports(i)) return 0;
  return cluster_healthy();
}

/* Kills node `i` and starts it again on new ports (client and bus), same dir and nodes.conf. */
static void move_node_to_new_port(int i) {
  int64_t deadline;
  uint16_t old = node_port[i];
  int attempt;
  kill_node(i, SIGKILL);
  for (attempt = 0;; attempt++) {
    node_port[i] = free_port();
    node_pid[i] = spawn_node(i, node_port[i], free_port());
    deadline = bt_now_ms() + 20000;
    while (alive(i) && !cli_has(node_port[i], "PING", "PONG") && bt_now_ms() <= deadline)
      sleep_ms(20);
    if (alive(i) && bt_now_ms() <= deadline) break;
    kill_node(i, SIGKILL);
    REQUIRE(attempt < 3); /* a port taken in between; anything else is fatal */
  }
  fprintf(stderr, "  node %d moved from port %u to port %u\n", i, (unsigned)old,
          (unsigned)node_port[i]);
}

static void recovers_from_the_one_seed_left_when_every_other_node_moved(void) {
  int n = 200, i, rounds = 0, bad = 0;
  brisk_client *c = cluster_client(); /* seeded with all six current ports */
  char key[64], val[32];
  int64_t t0, deadline, recovered_after = -1;
  brisk_status last_st = BRISK_OK;
  char last_err[240] = "";
  for (i = 0; i < n; i++) {
    snprintf(key, sizeof key, "seed:%d", i);
    snprintf(val, sizeof val, "%d", i);
    REQUIRE_OK(BT_CMD(c, NULL, "SET", key, val));
  }
  /* Every node but the first comes back on a new port, one after the other; the client's seeds
     and its slot map now name five dead addresses. */
  t0 = bt_now_ms();
  for (i = 1; i < NODES; i++) move_node_to_new_port(i);
  deadline = bt_now_ms() + scaled(90000);
  while (!cluster_settled_everywhere()) {
    if (bt_now_ms() > deadline) {
      describe_cluster();
      bt_fail(__FILE__, __LINE__, "the cluster did not settle on the new ports");
      exit(1);
    }
    sleep_ms(100);
  }
  fprintf(stderr, "  cluster settled on ports %u %u %u %u %u %u, %lld ms after the first kill\n",
          node_port[0], node_port[1], node_port[2], node_port[3], node_port[4], node_port[5],
          (long long)(bt_now_ms() - t0));
  /* The client must reach every shard again through the one seed that did not move. */
  t0 = bt_now_ms();
  deadline = t0 + scaled(30000);
  for (;;) {
    int failed = 0;
    rounds++;
    for (i = 0; i < n; i++) {
      brisk_status st;
      snprintf(key, sizeof key, "seed:%d", i);
      st = BT_CMD(c, NULL, "SET", key, "again");
      if (st != BRISK_OK) {
        failed++;
        last_st = st;
        snprintf(last_err, sizeof last_err, "SET %s: %s", key, brisk_last_error_message());
      }
    }
    if (failed == 0) {
      recovered_after = bt_now_ms() - t0;
      break;
    }
    if (bt_now_ms() > deadline) break;
    sleep_ms(100);
  }
  if (recovered_after < 0)
    bt_fail(__FILE__, __LINE__, "the client did not recover within %lld ms; last error %s: %s",
            (long long)scaled(30000), brisk_status_name(last_st), last_err);
  CHECK(recovered_after >= 0);
  for (i = 0; i < n; i++) {
    brisk_reply *r = NULL;
    snprintf(key, sizeof key, "seed:%d", i);
    if ((BT_CMD(c, &r, "GET", key) != BRISK_OK || !bt_reply_is(r, "again")) && bad++ < 5)
      bt_fail(__FILE__, __LINE__, "GET %s: %s", key, brisk_last_error_message());
    brisk_reply_free(r);
  }
  CHECK(bad == 0);
  CHECK(brisk_client_stat(c, BRISK_STAT_TOPOLOGY_REFRESHES) >= 2);
  fprintf(stderr,
          "  seeds moved: SETs on all shards succeeded %lld ms after the cluster settled (%d "
          "rounds); topology refreshes %llu, reconnects %llu, errors %llu\n",
          (long long)recovered_after, rounds,
          (unsigned long long)brisk_client_stat(c, BRISK_STAT_TOPOLOGY_REFRESHES),
          (unsigned long long)brisk_client_stat(c, BRISK_STAT_RECONNECTS),
          (unsigned long long)brisk_client_stat(c, BRISK_STAT_ERRORS));
  brisk_client_free(c);
  /* The shared client's seeds are stale too; the cases after this one start from a fresh one. */
  brisk_client_free(client);
  client = cluster_client();
}

/* ---- the write loop ----------------------------------------------------------------------- */

struct err_rec {
  int64_t at;
  brisk_status status;
  char cmd[80]; /* "SET key" or "INCR key" */
  char msg[200];
};

struct writer {
  pthread_t thread;
  const char *prefix;
  const char *counter;
  atomic_int stop;
  atomic_llong ops;
  long *acked_sets; /* indexes i of acknowledged "prefix:i" */
  size_t n_sets, cap_sets;
  int64_t *incr_times; /* when each acknowledged INCR came back */
  size_t n_incrs, cap_incrs;
  long long uncertain_incrs; /* INCR failures reported as "may have been applied" */
  struct err_rec *errs;
  size_t n_errs, cap_errs;
};

static void *grow(void *p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return p;
  *cap = *cap ? *cap * 2 : 1024;
  p = realloc(p, *cap * elem);
  if (p == NULL) abort();
  return p;
}

static void record_error(struct writer *w, brisk_status st, const char *cmd, const char *key) {
  struct err_rec *e;
  w->errs = grow(w->errs, &w->cap_errs, w->n_errs + 1, sizeof *w->errs);
  e = &w->errs[w->n_errs++];
  e->at = bt_now_ms();
  e->status = st;
  snprintf(e->cmd, sizeof e->cmd, "%s %s", cmd, key);
  snprintf(e->msg, sizeof e->msg, "%s", brisk_last_error_message());
}

static void *writer_main(void *arg) {
  struct writer *w = arg;
  long i = 0;
  char key[64];
  while (!atomic_load(&w->stop)) {
    brisk_status st;
    snprintf(key, sizeof key, "%s:%ld", w->prefix, i);
    st = BT_CMD(client, NULL, "SET", key, "x");
    if (st == BRISK_OK) {
      w->acked_sets = grow(w->acked_sets, &w->cap_sets, w->n_sets + 1, sizeof(long));
      w->acked_sets[w->n_sets++] = i;
    } else {
      record_error(w, st, "SET", key);
    }
    i++;
    st = BT_CMD(client, NULL, "INCR", w->counter);
    if (st == BRISK_OK) {
      w->incr_times = grow(w->incr_times, &w->cap_incrs, w->n_incrs + 1, sizeof(int64_t));
      w->incr_times[w->n_incrs++] = bt_now_ms();
    } else {
      if (strstr(brisk_last_error_message(), "may have been applied") != NULL)
        w->uncertain_incrs++;
      record_error(w, st, "INCR", w->counter);
    }
    atomic_fetch_add(&w->ops, 2);
  }
  return NULL;
}

static void writer_start(struct writer *w, const char *prefix, const char *counter) {
  memset(w, 0, sizeof *w);
  w->prefix = prefix;
  w->counter = counter;
  atomic_init(&w->stop, 0);
  atomic_init(&w->ops, 0);
  REQUIRE(pthread_create(&w->thread, NULL, writer_main, w) == 0);
}

static void writer_finish(struct writer *w) {
  atomic_store(&w->stop, 1);
  pthread_join(w->thread, NULL);
}

static void writer_free(struct writer *w) {
  free(w->acked_sets);
  free(w->incr_times);
  free(w->errs);
}

/* Waits until the writer made `more` more commands; returns whether it did before the deadline. */
static int wait_ops(struct writer *w, long long more, int64_t ms) {
  long long target = atomic_load(&w->ops) + more;
  int64_t deadline = bt_now_ms() + scaled(ms);
  while (atomic_load(&w->ops) < target) {
    if (bt_now_ms() > deadline) return 0;
    sleep_ms(10);
  }
  return 1;
}

/* How many acknowledged SETs are missing now (MGET in chunks of 200, split by the client). */
static size_t missing_sets(const struct writer *w) {
  size_t missing = 0, i;
  for (i = 0; i < w->n_sets; i += 200) {
    const char *argv[201];
    static char keys[200][64];
    size_t j, m = w->n_sets - i < 200 ? w->n_sets - i : 200;
    brisk_reply *r = NULL;
    argv[0] = "MGET";
    for (j = 0; j < m; j++) {
      snprintf(keys[j], sizeof keys[j], "%s:%ld", w->prefix, w->acked_sets[i + j]);
      argv[1 + j] = keys[j];
    }
    if (!CHECK_OK(brisk_command(client, m + 1, argv, NULL, &r))) {
      missing += m;
      continue;
    }
    for (j = 0; j < m; j++)
      if (brisk_reply_type_of(brisk_reply_element(r, j)) != BRISK_REPLY_STRING) missing++;
    brisk_reply_free(r);
  }
  return missing;
}

static long long get_counter(const char *counter) {
  brisk_reply *r = NULL;
  long long v = -1;
  if (CHECK_OK(BT_CMD(client, &r, "GET", counter))) {
    const char *s = brisk_reply_string(r, NULL);
    v = s ? strtoll(s, NULL, 10) : 0;
  }
  brisk_reply_free(r);
  return v;
}

static void print_errors(const struct writer *w, size_t max) {
  size_t i;
  for (i = 0; i < w->n_errs && i < max; i++)
    fprintf(stderr, "    error at +%lld ms: %s: %s: %s\n",
            (long long)(w->errs[i].at - w->errs[0].at), w->errs[i].cmd,
            brisk_status_name(w->errs[i].status), w->errs[i].msg);
}

/* ---- 2. manual failover ------------------------------------------------------------------- */

static void manual_failover_under_load_loses_nothing(void) {
  const char *counter = "{counter}:failover";
  long slot;
  int primary, replica;
  struct writer w;
  char *out;
  int64_t deadline, t_failover;
  size_t missing;
  long long value;
  find_shard(counter, &slot, &primary, &replica);
  fprintf(stderr, "  counter slot %ld: primary port %u, replica port %u\n", slot,
          (unsigned)node_port[primary], (unsigned)node_port[replica]);

  writer_start(&w, "fo", counter);
  CHECK(wait_ops(&w, under_valgrind ? 100 : 400, 10000));
  t_failover = bt_now_ms();
  out = cli(node_port[replica], "CLUSTER FAILOVER");
  CHECK_STR_CONTAINS(out, "OK");
  free(out);
  deadline = bt_now_ms() + scaled(30000);
  while (!(is_primary(replica) && !is_primary(primary))) {
    if (bt_now_ms() > deadline) {
      bt_fail(__FILE__, __LINE__, "the replica did not take over within 30 s");
      describe_cluster();
      break;
    }
    sleep_ms(50);
  }
  fprintf(stderr, "  failover done in %lld ms\n", (long long)(bt_now_ms() - t_failover));
  CHECK(wait_ops(&w, under_valgrind ? 200 : 1000, 10000));
  writer_finish(&w);

  CHECK(w.n_errs == 0);
  if (w.n_errs) {
    fprintf(stderr, "  %zu errors surfaced during a manual failover:\n", w.n_errs);
    print_errors(&w, 10);
  }
  missing = missing_sets(&w);
  CHECK(missing == 0);
  value = get_counter(counter);
  CHECK(value == (long long)w.n_incrs);
  fprintf(stderr,
          "  manual failover: %zu SETs and %zu INCRs acknowledged, %zu errors, %zu missing, "
          "counter %lld; redirects %llu, topology refreshes %llu\n",
          w.n_sets, w.n_incrs, w.n_errs, missing, value,
          (unsigned long long)brisk_client_stat(client, BRISK_STAT_REDIRECTS),
          (unsigned long long)brisk_client_stat(client, BRISK_STAT_TOPOLOGY_REFRESHES));
  writer_free(&w);
}

/* ---- Pub/Sub: shard channels follow their slots -------------------------------------------- */

#define PS_SHARDS 50

struct ps_inbox {
  pthread_mutex_t lock;
  char round[48];
  int shard_got[PS_SHARDS];
  int channel_got, pattern_got;
};

static void ps_on_message(void *userdata, const char *channel, size_t channel_len,
                          const char *pattern, size_t pattern_len, const char *payload,
                          size_t payload_len) {
  struct ps_inbox *in = userdata;
  (void)pattern_len;
  pthread_mutex_lock(&in->lock);
  if (payload_len == strlen(in->round) && memcmp(payload, in->round, payload_len) == 0) {
    if (channel_len > 9 && memcmp(channel, "ps:shard:", 9) == 0) {
      int i = atoi(channel + 9); /* the channel is NUL-terminated in place */
      if (i >= 0 && i < PS_SHARDS) in->shard_got[i]++;
    } else if (pattern != NULL) {
      in->pattern_got++;
    } else {
      in->channel_got++;
    }
  }
  pthread_mutex_unlock(&in->lock);
}

static int ps_round_whole(struct ps_inbox *in) {
  int whole;
  pthread_mutex_lock(&in->lock);
  whole = in->channel_got == 1 && in->pattern_got == 1;
  for (int i = 0; i < PS_SHARDS; i++)
    if (in->shard_got[i] != 1) whole = 0;
  pthread_mutex_unlock(&in->lock);
  return whole;
}

/* SPUBLISH `tag` to every shard channel (through the client: routed to the slot's owner) and
 * PUBLISH it to the plain channel, again every few seconds, until one round arrives whole
 * (messages published while a subscription moves may be lost: delivery is at most once). */
static int ps_round(struct ps_inbox *in, const char *tag) {
  int64_t deadline = bt_now_ms() + scaled(60000);
  for (int attempt = 0; bt_now_ms() < deadline; attempt++) {
    char name[32];
    pthread_mutex_lock(&in->lock);
    snprintf(in->round, sizeof in->round, "%s#%d", tag, attempt);
    memset(in->shard_got, 0, sizeof in->shard_got);
    in->channel_got = in->pattern_got = 0;
    pthread_mutex_unlock(&in->lock);
    for (int i = 0; i < PS_SHARDS; i++) {
      snprintf(name, sizeof name, "ps:shard:%d", i);
      CHECK_OK(BT_CMD(client, NULL, "SPUBLISH", name, in->round));
    }
    CHECK_OK(BT_CMD(client, NULL, "PUBLISH", "ps:everyone", in->round));
    int64_t until = bt_now_ms() + scaled(3000);
    while (bt_now_ms() < until) {
      if (ps_round_whole(in)) return 1;
      sleep_ms(10);
    }
  }
  return 0;
}

/* Every shard channel is subscribed at the primary that owns its slot now (PUBSUB SHARDNUMSUB
 * asked there). */
static int ps_subscribed_at_the_owners(void) {
  for (int i = 0; i < PS_SHARDS; i++) {
    char name[32], args[64];
    snprintf(name, sizeof name, "ps:shard:%d", i);
    int owner = primary_of_slot(0, key_slot(name));
    if (owner < 0) return 0;
    snprintf(args, sizeof args, "PUBSUB SHARDNUMSUB %s", name);
    char *out = cli(node_port[owner], args);
    char *count = strchr(out, '\n');
    int ok = count != NULL && atoi(count + 1) == 1;
    free(out);
    if (!ok) return 0;
  }
  return 1;
}

static int ps_wait_at_the_owners(brisk_subscriber *s, uint64_t resubscribes_before) {
  int64_t deadline = bt_now_ms() + scaled(60000);
  while (bt_now_ms() < deadline) {
    if (brisk_subscriber_stat(s, BRISK_STAT_PUBSUB_RESUBSCRIBES) > resubscribes_before &&
        ps_subscribed_at_the_owners())
      return 1;
    sleep_ms(50);
  }
  describe_cluster();
  return 0;
}

/* 50 shard channels over all three primaries (one brisk_subscriber_subscribe call; each
 * SSUBSCRIBE goes to its slot's owner), a channel and a pattern; SPUBLISH through the client
 * reaches each. CLUSTER SETSLOT moves one channel's slot and a primary fails over (CLUSTER
 * FAILOVER): each time the subscriber resubscribes at the new owner and a round arrives whole. */
static void pubsub_shard_channels_follow_a_slot_move_and_a_failover(void) {
  struct ps_inbox in;
  memset(&in, 0, sizeof in);
  pthread_mutex_init(&in.lock, NULL);
  brisk_subscriber *s = NULL;
  REQUIRE_OK(brisk_subscriber_new(client, ps_on_message, &in, &s));
  char names[PS_SHARDS][32];
  const char *ptrs[PS_SHARDS];
  int owners[NODES] = {0}, distinct = 0;
  for (int i = 0; i < PS_SHARDS; i++) {
    snprintf(names[i], sizeof names[i], "ps:shard:%d", i);
    ptrs[i] = names[i];
    int owner = primary_of_slot(0, key_slot(names[i]));
    REQUIRE(owner >= 0);
    if (owners[owner]++ == 0) distinct++;
  }
  CHECK(distinct == 3);
  CHECK_OK(brisk_subscriber_subscribe(s, BRISK_SUBSCRIPTION_SHARD, PS_SHARDS, ptrs, NULL));
  CHECK_OK(brisk_subscribe(s, "ps:everyone"));
  CHECK_OK(brisk_psubscribe(s, "ps:every*"));
  CHECK(ps_subscribed_at_the_owners());
  CHECK(ps_round(&in, "start"));

  /* A slot moves: the old owner unsubscribes its channels on its own. */
  long slot = key_slot(names[0]);
  int from = primary_of_slot(0, slot), to = -1;
  for (int i = 0; i < NODES && to < 0; i++)
    if (i != from && is_primary(i)) to = i;
  REQUIRE(to >= 0);
  uint64_t before = brisk_subscriber_stat(s, BRISK_STAT_PUBSUB_RESUBSCRIBES);
  int64_t t0 = bt_now_ms();
  migrate_slot(slot, from, to, 100, NULL, 0);
  CHECK(ps_wait_at_the_owners(s, before));
  fprintf(stderr, "  slot %ld moved: resubscribed at the new owner in %lld ms\n", slot,
          (long long)(bt_now_ms() - t0));
  CHECK(ps_round(&in, "after-move"));

  /* A primary fails over: the demoted node keeps its subscribers, the subscriber moves. */
  long slot1;
  int primary, replica;
  find_shard(names[1], &slot1, &primary, &replica);
  before = brisk_subscriber_stat(s, BRISK_STAT_PUBSUB_RESUBSCRIBES);
  t0 = bt_now_ms();
  char *out = cli(node_port[replica], "CLUSTER FAILOVER");
  CHECK_STR_CONTAINS(out, "OK");
  free(out);
  int64_t deadline = bt_now_ms() + scaled(30000);
  while (!(is_primary(replica) && !is_primary(primary)) && bt_now_ms() < deadline) sleep_ms(50);
  CHECK(is_primary(replica));
  CHECK(ps_wait_at_the_owners(s, before));
  fprintf(stderr, "  failover: resubscribed at the new primary %lld ms after CLUSTER FAILOVER\n",
          (long long)(bt_now_ms() - t0));
  CHECK(ps_round(&in, "after-failover"));
  fprintf(stderr, "  pubsub: %llu messages, %llu resubscriptions\n",
          (unsigned long long)brisk_subscriber_stat(s, BRISK_STAT_PUBSUB_MESSAGES),
          (unsigned long long)brisk_subscriber_stat(s, BRISK_STAT_PUBSUB_RESUBSCRIBES));
  brisk_subscriber_free(s);
  pthread_mutex_destroy(&in.lock);
}

/* ---- 3. a primary killed ------------------------------------------------------------------ */

static void killed_primary_recovers_and_never_double_applies(void) {
  const char *counter = "{counter}:kill";
  long slot;
  int primary, replica;
  struct writer w;
  int64_t deadline, killed, promoted = 0, resumed = -1;
  long long value;
  size_t i, lost_sets;
  wait_healthy(); /* the previous case's old primary must be a synced replica again */
  find_shard(counter, &slot, &primary, &replica);
  fprintf(stderr, "  counter slot %ld: killing primary port %u, replica port %u\n", slot,
          (unsigned)node_port[primary], (unsigned)node_port[replica]);

  writer_start(&w, "kill", counter);
  CHECK(wait_ops(&w, under_valgrind ? 100 : 400, 10000));
  killed = bt_now_ms();
  kill_node(primary, SIGKILL);
  deadline = bt_now_ms() + scaled(30000);
  while (!is_primary(replica)) {
    if (bt_now_ms() > deadline) {
      bt_fail(__FILE__, __LINE__, "the replica was not promoted within 30 s");
      describe_cluster();
      break;
    }
    sleep_ms(20);
  }
  promoted = bt_now_ms();
  /* Let the loop run on well past the promotion. */
  CHECK(wait_ops(&w, under_valgrind ? 200 : 1000, 20000));
  writer_finish(&w);

  for (i = 0; i < w.n_incrs; i++)
    if (w.incr_times[i] > promoted) {
      resumed = w.incr_times[i] - promoted;
      break;
    }
  CHECK(resumed >= 0);
  CHECK(resumed < 10000);
  for (i = 0; i < w.n_errs; i++) {
    brisk_status st = w.errs[i].status;
    if (!(st == BRISK_ERR_CONNECTION || st == BRISK_ERR_TIMEOUT || st == BRISK_ERR_CLUSTER_DOWN))
      bt_fail(__FILE__, __LINE__, "unexpected error %s: %s", brisk_status_name(st),
              w.errs[i].msg);
    if (w.errs[i].at < killed)
      bt_fail(__FILE__, __LINE__, "an error before the kill: %s", w.errs[i].msg);
  }
  value = get_counter(counter);
  /* SAFE retry_writes: never more than acknowledged + reported as possibly applied; it may be
     less by what asynchronous replication lost in the kill. */
  CHECK(value >= 0);
  CHECK(value <= (long long)w.n_incrs + w.uncertain_incrs);
  lost_sets = missing_sets(&w);
  fprintf(stderr,
          "  primary killed: promoted %lld ms after the kill, INCRs resumed %lld ms after the "
          "promotion; %zu errors (%lld may have been applied); counter %lld vs %zu acknowledged; "
          "%zu of %zu acknowledged SETs lost to async replication\n",
          (long long)(promoted - killed), (long long)resumed, w.n_errs, w.uncertain_incrs, value,
          w.n_incrs, lost_sets, w.n_sets);
  if (w.n_errs) print_errors(&w, 8);
  /* Errors on keys served by the shards that lost nothing (diagnostic: see the report). */
  {
    size_t other = 0;
    for (i = 0; i < w.n_errs && i < 50; i++) {
      const char *key = strchr(w.errs[i].cmd, ' ') + 1;
      if (primary_of_slot(0, key_slot(key)) != replica) {
        other++;
        fprintf(stderr, "    error on a healthy shard: %s: %s\n", w.errs[i].cmd, w.errs[i].msg);
      }
    }
    fprintf(stderr, "  %zu of %zu errors were on keys of the two healthy shards\n", other,
            w.n_errs);
  }
  writer_free(&w);
}

/* ---- a cluster that is down ------------------------------------------------------------- */

/*
 * A primary killed and its replica not allowed to take over: every node answers CLUSTERDOWN,
 * which API.md maps to BRISK_ERR_CLUSTER_DOWN (after brisk re-read the topology and tried
 * again). Runs last: it leaves the cluster down.
 */
static void clusterdown_reply_is_reported_as_cluster_down(void) {
  long slot, other_slot = -1;
  int primary, replica, i;
  char healthy[64], *out;
  int64_t deadline;
  brisk_status st;
  find_shard("{down}:x", &slot, &primary, &replica);
  for (i = 0; i < 1000 && other_slot < 0; i++) {
    snprintf(healthy, sizeof healthy, "healthy:%d", i);
    if (primary_of_slot(0, key_slot(healthy)) != primary) other_slot = key_slot(healthy);
  }
  REQUIRE(other_slot >= 0);
  out = cli(node_port[replica], "CONFIG SET cluster-replica-no-failover yes");
  CHECK_STR_CONTAINS(out, "OK");
  free(out);
  CHECK_OK(BT_CMD(client, NULL, "SET", healthy, "before"));
  kill_node(primary, SIGKILL);
  deadline = bt_now_ms() + scaled(20000);
  for (;;) {
    int down = 1;
    for (i = 0; i < NODES; i++)
      if (alive(i) && !cli_has(node_port[i], "CLUSTER INFO", "cluster_state:fail")) down = 0;
    if (down) break;
    if (bt_now_ms() > deadline) {
      bt_fail(__FILE__, __LINE__, "the cluster did not go down within 20 s");
      describe_cluster();
      return;
    }
    sleep_ms(50);
  }
  st = BT_CMD(client, NULL, "SET", healthy, "during");
  fprintf(stderr, "  SET on a healthy shard while the cluster is down: %s: %s\n",
          brisk_status_name(st), brisk_last_error_message());
  CHECK(st == BRISK_ERR_CLUSTER_DOWN);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "CLUSTERDOWN");
}

int main(int argc, char **argv) {
  const char *preload = getenv("LD_PRELOAD");
  const char *env = getenv("BRISK_TEST_VALGRIND");
  int64_t t0 = bt_now_ms();
  bt_init(argc, argv);
  under_valgrind = (env != NULL && *env != '\0' && strcmp(env, "0") != 0) ||
                   (preload != NULL && strstr(preload, "vgpreload") != NULL);
  signal(SIGPIPE, SIG_IGN);
  caller_thread = pthread_self();
  start_cluster();
  client = cluster_client();

  RUN(keys_across_slots_are_written_and_read_back);
  RUN(split_mget_keeps_order_and_nils);
  RUN(cross_slot_command_is_refused);
  RUN(watch_transactions_stay_on_one_slot);
  RUN(slot_migration_under_load_follows_ask_without_errors);
  RUN(async_reads_follow_slot_migration);
  /* After the migrations: its "ak:" keys may share a slot with "{mig}" and would be counted in
     that slot's COUNTKEYSINSLOT. */
  RUN(async_commands_route_by_slot);
  RUN(async_client_freed_mid_stream_on_cluster);
  RUN(pubsub_shard_channels_follow_a_slot_move_and_a_failover);
  RUN(recovers_from_the_one_seed_left_when_every_other_node_moved);
  RUN(manual_failover_under_load_loses_nothing);
  RUN(killed_primary_recovers_and_never_double_applies);
  RUN(clusterdown_reply_is_reported_as_cluster_down);

  brisk_client_free(client);
  client = NULL;
  stop_cluster();
  fprintf(stderr, "total %lld ms%s\n", (long long)(bt_now_ms() - t0),
          under_valgrind ? " (under valgrind)" : "");
  return bt_finish();
}
