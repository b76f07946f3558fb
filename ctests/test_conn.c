/*
 * test_conn: connecting and what a connection carries. TCP, Unix socket, ACL users and bad
 * credentials, db selection, client name, RESP2 vs RESP3, refused and silent ports, reconnect
 * after CLIENT KILL, commands the pooled path refuses, bad arguments, the pool limit, and one
 * client shared by several threads. Needs the fixture servers (servers.env).
 */
#include "brisk_test.h"

#include <pthread.h>

#define PREFIX "conn"

static brisk_config *tcp_config(void) { return bt_config_at(bt_env_port("STANDALONE_PORT")); }

static brisk_client *client_from_url(const char *url) { return bt_client_from(bt_config_url(url)); }

/* CLIENT INFO of the connection the command ran on, copied into buf ("" on failure). */
static const char *client_info(brisk_client *c, char *buf, size_t size) {
  brisk_reply *r = NULL;
  size_t len = 0;
  const char *s;
  buf[0] = '\0';
  if (!CHECK_OK(BT_CMD(c, &r, "CLIENT", "INFO"))) return buf;
  s = brisk_reply_string(r, &len);
  CHECK(s != NULL);
  if (s != NULL) snprintf(buf, size, "%.*s", (int)len, s);
  brisk_reply_free(r);
  return buf;
}

static long long client_id(brisk_client *c) {
  brisk_reply *r = NULL;
  long long id = -1;
  if (CHECK_OK(BT_CMD(c, &r, "CLIENT", "ID"))) {
    CHECK(brisk_reply_type_of(r) == BRISK_REPLY_INTEGER);
    id = (long long)brisk_reply_integer(r);
  }
  brisk_reply_free(r);
  return id;
}

static void tcp_by_address(void) {
  brisk_client *c = bt_client_from(tcp_config());
  brisk_reply *r = NULL;
  const char *key = bt_key(PREFIX, "tcp");
  CHECK_OK(brisk_ping(c));
  CHECK(strcmp(brisk_last_error_message(), "") == 0);
  CHECK_OK(BT_CMD(c, &r, "SET", key, "v1"));
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_STATUS);
  CHECK_REPLY_STR(r, "OK");
  brisk_reply_free(r);
  CHECK_CMD_REPLY(c, "v1", "GET", key);
  CHECK_OK(BT_CMD(c, NULL, "DEL", key)); /* reply discarded */
  brisk_client_free(c);
}

static void tcp_by_url(void) {
  char url[128];
  char info[1024];
  brisk_client *c;
  snprintf(url, sizeof url, "redis://127.0.0.1:%s", bt_env("STANDALONE_PORT"));
  c = client_from_url(url);
  CHECK_OK(brisk_ping(c));
  brisk_client_free(c);

  /* db and client name from the URL reach the connection. */
  snprintf(url, sizeof url, "redis://127.0.0.1:%s/7?client_name=brisk-url&read_timeout=2000",
           bt_env("STANDALONE_PORT"));
  c = client_from_url(url);
  client_info(c, info, sizeof info);
  CHECK_STR_CONTAINS(info, " db=7 ");
  CHECK_STR_CONTAINS(info, " name=brisk-url ");
  brisk_client_free(c);
}

static void unix_socket(void) {
  char info[1024];
  char url[600];
  brisk_config *cfg = brisk_config_new();
  brisk_client *c;
  REQUIRE(cfg != NULL);
  CHECK_OK(brisk_config_set_unix_path(cfg, bt_env("UNIX_SOCKET")));
  c = bt_client_from(cfg);
  CHECK_OK(brisk_ping(c));
  client_info(c, info, sizeof info);
  CHECK_STR_CONTAINS(info, "flags=U"); /* a Unix-socket client */
  CHECK_STR_CONTAINS(info, bt_env("UNIX_SOCKET"));
  brisk_client_free(c);

  snprintf(url, sizeof url, "unix://%s?db=3", bt_env("UNIX_SOCKET"));
  c = client_from_url(url);
  client_info(c, info, sizeof info);
  CHECK_STR_CONTAINS(info, "flags=U");
  CHECK_STR_CONTAINS(info, " db=3 ");
  brisk_client_free(c);
}

static void acl_user(void) {
  char url[160];
  brisk_config *cfg = tcp_config();
  brisk_client *c;
  CHECK_OK(brisk_config_set_username(cfg, "app"));
  CHECK_OK(brisk_config_set_password(cfg, "app-secret"));
  c = bt_client_from(cfg);
  CHECK_CMD_REPLY(c, "app", "ACL", "WHOAMI");
  CHECK_OK(BT_CMD(c, NULL, "SET", bt_key(PREFIX, "acl"), "x"));
  CHECK_OK(BT_CMD(c, NULL, "DEL", bt_key(PREFIX, "acl")));
  brisk_client_free(c);

  snprintf(url, sizeof url, "redis://app:app-secret@127.0.0.1:%s", bt_env("STANDALONE_PORT"));
  c = client_from_url(url);
  CHECK_CMD_REPLY(c, "app", "ACL", "WHOAMI");
  brisk_client_free(c);

  /* RESP2 authenticates with AUTH instead of HELLO ... AUTH. */
  cfg = tcp_config();
  CHECK_OK(brisk_config_set_protocol(cfg, 2));
  CHECK_OK(brisk_config_set_username(cfg, "app"));
  CHECK_OK(brisk_config_set_password(cfg, "app-secret"));
  c = bt_client_from(cfg);
  CHECK_CMD_REPLY(c, "app", "ACL", "WHOAMI");
  brisk_client_free(c);
}

static void wrong_password(void) {
  BT_FOR_EACH_PROTOCOL(protocol) {
    brisk_config *cfg = tcp_config();
    brisk_client *c;
    brisk_reply *r = (brisk_reply *)&cfg;
    const char *msg;
    CHECK_OK(brisk_config_set_protocol(cfg, protocol));
    CHECK_OK(brisk_config_set_username(cfg, "app"));
    CHECK_OK(brisk_config_set_password(cfg, "Wr0ngPassw0rd"));
    c = bt_client_from(cfg); /* nothing is sent yet */
    CHECK_STATUS(brisk_command(c, 1, (const char *const[]){"PING"}, NULL, &r), BRISK_ERR_AUTH);
    CHECK(r == NULL);
    msg = brisk_last_error_message();
    CHECK_STR_CONTAINS(msg, "WRONGPASS");
    CHECK_STR_LACKS(msg, "Wr0ngPassw0rd");
    CHECK(brisk_status_category(BRISK_ERR_AUTH) == BRISK_CATEGORY_ACCESS_CONTROL);
    CHECK_STATUS(brisk_ping(c), BRISK_ERR_AUTH);
    brisk_client_free(c);
  }

  /* An unknown user fails the same way. */
  {
    char url[160];
    brisk_client *c;
    snprintf(url, sizeof url, "redis://nobody:Wr0ngPassw0rd@127.0.0.1:%s",
             bt_env("STANDALONE_PORT"));
    c = client_from_url(url);
    CHECK_STATUS(brisk_ping(c), BRISK_ERR_AUTH);
    CHECK_STR_LACKS(brisk_last_error_message(), "Wr0ngPassw0rd");
    brisk_client_free(c);
  }
}

static void limited_user_cannot_set(void) {
  brisk_reply *r = NULL;
  brisk_config *cfg = tcp_config();
  brisk_client *c;
  const char *key = bt_key(PREFIX, "limited");
  CHECK_OK(brisk_config_set_username(cfg, "limited"));
  CHECK_OK(brisk_config_set_password(cfg, "limited-secret"));
  c = bt_client_from(cfg);
  CHECK_STATUS(BT_CMD(c, &r, "SET", key, "x"), BRISK_ERR_AUTH);
  CHECK(r == NULL);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "NOPERM");
  /* Reads are allowed, and the connection is still good after the denial. */
  CHECK_OK(BT_CMD(c, &r, "GET", key));
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_NIL);
  brisk_reply_free(r);
  CHECK_CMD_REPLY(c, "limited", "ACL", "WHOAMI");
  brisk_client_free(c);
}

static void db_selection(void) {
  char info[1024];
  brisk_reply *r = NULL;
  brisk_config *cfg = tcp_config();
  brisk_client *db5;
  brisk_client *db0;
  const char *key = bt_key(PREFIX, "db");
  CHECK_OK(brisk_config_set_db(cfg, 5));
  db5 = bt_client_from(cfg);
  client_info(db5, info, sizeof info);
  CHECK_STR_CONTAINS(info, " db=5 ");
  CHECK_OK(BT_CMD(db5, NULL, "SET", key, "in-db-5"));

  db0 = bt_client_from(tcp_config());
  client_info(db0, info, sizeof info);
  CHECK_STR_CONTAINS(info, " db=0 ");
  CHECK_OK(BT_CMD(db0, &r, "GET", key));
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_NIL);
  brisk_reply_free(r);
  CHECK_CMD_REPLY(db5, "in-db-5", "GET", key);
  CHECK_OK(BT_CMD(db5, NULL, "DEL", key));
  brisk_client_free(db5);
  brisk_client_free(db0);

  /* RESP2 selects the db with SELECT. */
  cfg = tcp_config();
  CHECK_OK(brisk_config_set_protocol(cfg, 2));
  CHECK_OK(brisk_config_set_db(cfg, 9));
  db5 = bt_client_from(cfg);
  client_info(db5, info, sizeof info);
  CHECK_STR_CONTAINS(info, " db=9 ");
  brisk_client_free(db5);

  /* A db the server does not have fails at the first command. */
  cfg = tcp_config();
  CHECK_OK(brisk_config_set_db(cfg, 999));
  db5 = bt_client_from(cfg);
  CHECK_STATUS(brisk_ping(db5), BRISK_ERR_SERVER);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "DB index is out of range");
  brisk_client_free(db5);
}

static void client_name(void) {
  BT_FOR_EACH_PROTOCOL(protocol) {
    brisk_config *cfg = tcp_config();
    brisk_client *c;
    CHECK_OK(brisk_config_set_protocol(cfg, protocol));
    CHECK_OK(brisk_config_set_client_name(cfg, "brisk-ctest-conn"));
    c = bt_client_from(cfg);
    CHECK_CMD_REPLY(c, "brisk-ctest-conn", "CLIENT", "GETNAME");
    brisk_client_free(c);
  }
  /* Without a name: nil. */
  {
    brisk_reply *r = NULL;
    brisk_client *c = bt_client_from(tcp_config());
    CHECK_OK(BT_CMD(c, &r, "CLIENT", "GETNAME"));
    CHECK(brisk_reply_type_of(r) == BRISK_REPLY_NIL);
    brisk_reply_free(r);
    brisk_client_free(c);
  }
}

static void resp2_and_resp3(void) {
  char info[1024];
  brisk_config *cfg = tcp_config();
  brisk_client *c;
  CHECK_OK(brisk_config_set_protocol(cfg, 2));
  c = bt_client_from(cfg);
  client_info(c, info, sizeof info);
  CHECK_STR_CONTAINS(info, " resp=2");
  brisk_client_free(c);

  c = bt_client_from(tcp_config()); /* default: RESP3 */
  client_info(c, info, sizeof info);
  CHECK_STR_CONTAINS(info, " resp=3");
  brisk_client_free(c);

  cfg = tcp_config();
  CHECK_OK(brisk_config_set_protocol(cfg, 3));
  c = bt_client_from(cfg);
  client_info(c, info, sizeof info);
  CHECK_STR_CONTAINS(info, " resp=3");
  brisk_client_free(c);
}

static void closed_port_is_connection_error(void) {
  brisk_config *cfg = bt_config_at(bt_env_port("CLOSED_PORT"));
  brisk_client *c;
  brisk_reply *r = (brisk_reply *)&cfg;
  CHECK_OK(brisk_config_set_connect_timeout_ms(cfg, 2000));
  c = bt_client_from(cfg);
  CHECK_STATUS(brisk_command(c, 1, (const char *const[]){"PING"}, NULL, &r),
               BRISK_ERR_CONNECTION);
  CHECK(r == NULL);
  CHECK_STR_CONTAINS(brisk_last_error_message(), bt_env("CLOSED_PORT"));
  CHECK(brisk_status_is_retryable(BRISK_ERR_CONNECTION));
  CHECK_STATUS(brisk_ping(c), BRISK_ERR_CONNECTION); /* and again: the pool is not stuck */
  brisk_client_free(c);

  /* A Unix socket path where nothing listens. */
  cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  CHECK_OK(brisk_config_set_unix_path(cfg, "/nonexistent/brisk-ctest.sock"));
  c = bt_client_from(cfg);
  CHECK_STATUS(brisk_ping(c), BRISK_ERR_CONNECTION);
  brisk_client_free(c);
}

static void silent_server_times_out(void) {
  BT_FOR_EACH_PROTOCOL(protocol) {
    brisk_config *cfg = bt_config_at(bt_env_port("SILENT_PORT"));
    brisk_client *c;
    int64_t started, elapsed;
    brisk_status st;
    CHECK_OK(brisk_config_set_read_timeout_ms(cfg, 300));
    CHECK_OK(brisk_config_set_write_timeout_ms(cfg, 300));
    CHECK_OK(brisk_config_set_protocol(cfg, protocol));
    if (protocol == 2) /* so that RESP2 has a handshake to wait for too */
      CHECK_OK(brisk_config_set_client_name(cfg, "silent"));
    c = bt_client_from(cfg);
    started = bt_now_ms();
    st = BT_CMD(c, NULL, "GET", "k");
    elapsed = bt_now_ms() - started;
    bt_check_status(__FILE__, __LINE__, "GET on the silent port", st, BRISK_ERR_TIMEOUT);
    CHECK(brisk_status_category(st) == BRISK_CATEGORY_CONNECTION);
    /* At least the read timeout; well under any "hangs" bound (generous for retries a default
     * policy may add). */
    CHECK_BETWEEN(elapsed, 250, 3000);
    brisk_client_free(c);
  }
}

static void reconnects_after_client_kill(void) {
  brisk_reply *r = NULL;
  char id_text[32];
  long long before, after;
  brisk_config *cfg = tcp_config();
  brisk_client *victim;
  brisk_client *killer;
  const char *key = bt_key(PREFIX, "kill");
  CHECK_OK(brisk_config_set_pool_size(cfg, 1)); /* one connection: the one we kill */
  victim = bt_client_from(cfg);
  killer = bt_client_from(tcp_config());

  CHECK_OK(BT_CMD(victim, NULL, "SET", key, "before"));
  before = client_id(victim);
  REQUIRE(before > 0);
  snprintf(id_text, sizeof id_text, "%lld", before);
  CHECK_OK(BT_CMD(killer, &r, "CLIENT", "KILL", "ID", id_text));
  CHECK(brisk_reply_integer(r) == 1);
  brisk_reply_free(r);

  /* The pooled connection is dead; the next command must get a new one, not an error. */
  CHECK_CMD_REPLY(victim, "before", "GET", key);
  after = client_id(victim);
  CHECK(after > 0 && after != before);

  /* Twice in a row, and through PING. */
  snprintf(id_text, sizeof id_text, "%lld", after);
  CHECK_OK(BT_CMD(killer, NULL, "CLIENT", "KILL", "ID", id_text));
  CHECK_OK(brisk_ping(victim));
  CHECK(client_id(victim) != after);

  CHECK_OK(BT_CMD(victim, NULL, "DEL", key));
  brisk_client_free(victim);
  brisk_client_free(killer);
}

static void pooled_path_rejects_connection_state(void) {
  static const char *const rejected[][4] = {
      {"MULTI"},           {"EXEC"},           {"DISCARD"},
      {"WATCH", "k"},      {"UNWATCH"},        {"SELECT", "1"},
      {"AUTH", "x"},       {"HELLO", "2"},     {"SUBSCRIBE", "ch"},
      {"PSUBSCRIBE", "c*"}, {"MONITOR"},        {"CLIENT", "SETNAME", "x"},
      {"CLIENT", "REPLY", "OFF"}, {"multi"},   {"select", "2"},
  };
  static const size_t argcs[] = {1, 1, 1, 2, 1, 2, 2, 2, 2, 2, 1, 3, 3, 1, 2};
  size_t i;
  brisk_client *c = bt_client_from(tcp_config());
  for (i = 0; i < sizeof argcs / sizeof argcs[0]; i++) {
    brisk_reply *r = (brisk_reply *)&c;
    brisk_status st = brisk_command(c, argcs[i], rejected[i], NULL, &r);
    if (st != BRISK_ERR_INVALID_ARGUMENT)
      bt_fail(__FILE__, __LINE__, "%s on the pooled path: %s, expected INVALID_ARGUMENT: %s",
              rejected[i][0], brisk_status_name(st), brisk_last_error_message());
    CHECK(r == NULL);
  }
  CHECK_STATUS(BT_CMD(c, NULL, "MULTI"), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "MULTI");
  /* Plain HELLO (no version) only reports; CLIENT INFO/ID are fine. */
  CHECK_OK(BT_CMD(c, NULL, "HELLO"));
  CHECK_OK(BT_CMD(c, NULL, "CLIENT", "ID"));
  CHECK_OK(brisk_ping(c));
  brisk_client_free(c);
}

static void bad_arguments(void) {
  const char *argv[] = {"SET", NULL, "v"};
  const char *ping[] = {"PING"};
  brisk_client *c = bt_client_from(tcp_config());
  brisk_reply *r = (brisk_reply *)&c;
  CHECK_STATUS(brisk_command(c, 0, ping, NULL, &r), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "argc");
  CHECK(r == NULL);
  r = (brisk_reply *)&c;
  CHECK_STATUS(brisk_command(c, 1, NULL, NULL, &r), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "argv");
  CHECK(r == NULL);
  CHECK_STATUS(brisk_command(c, 0, NULL, NULL, NULL), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_command(c, 3, argv, NULL, NULL), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "argv[1]");
  /* The client is fine afterwards. */
  CHECK_OK(brisk_command(c, 1, ping, NULL, NULL));
  brisk_client_free(c);
}

static void server_errors_map_to_statuses(void) {
  brisk_reply *r = (brisk_reply *)&r;
  brisk_client *c = bt_client_from(tcp_config());
  const char *key = bt_key(PREFIX, "errors");
  CHECK_OK(BT_CMD(c, NULL, "SET", key, "text"));
  CHECK_STATUS(BT_CMD(c, &r, "LPUSH", key, "x"), BRISK_ERR_SERVER);
  CHECK(r == NULL);
  CHECK(strncmp(brisk_last_error_message(), "WRONGTYPE", 9) == 0);
  CHECK_STATUS(BT_CMD(c, NULL, "NOSUCHCOMMAND", "a"), BRISK_ERR_SERVER);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "unknown command");
  CHECK_STATUS(BT_CMD(c, NULL, "GET"), BRISK_ERR_SERVER); /* wrong arity */
  CHECK_STR_CONTAINS(brisk_last_error_message(), "wrong number of arguments");
  CHECK(brisk_status_category(BRISK_ERR_SERVER) == BRISK_CATEGORY_DATA);
  /* Error replies leave the connection usable. */
  CHECK_OK(brisk_ping(c));
  CHECK_OK(BT_CMD(c, NULL, "DEL", key));
  brisk_client_free(c);
}

static void failed_setter_leaves_config_unchanged(void) {
  char url[160];
  brisk_config *cfg = tcp_config();
  brisk_client *c;
  snprintf(url, sizeof url, "redis://127.0.0.1:%s/4?bogus=1", bt_env("CLOSED_PORT"));
  CHECK_STATUS(brisk_config_set_url(cfg, url), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_config_set_address(cfg, "", 1), BRISK_ERR_INVALID_ARGUMENT);
  c = bt_client_from(cfg);
  CHECK_OK(brisk_ping(c)); /* still the standalone server, not the closed port */
  {
    char info[1024];
    client_info(c, info, sizeof info);
    CHECK_STR_CONTAINS(info, " db=0 ");
  }
  brisk_client_free(c);
}

static void pool_exhausted(void) {
  brisk_config *cfg = tcp_config();
  brisk_client *c;
  brisk_session *s = NULL;
  int64_t started, elapsed;
  CHECK_OK(brisk_config_set_pool_size(cfg, 1));
  CHECK_OK(brisk_config_set_pool_max_wait_ms(cfg, 200));
  c = bt_client_from(cfg);
  REQUIRE_OK(brisk_session_new(c, &s)); /* holds the only connection */
  started = bt_now_ms();
  CHECK_STATUS(brisk_ping(c), BRISK_ERR_POOL_EXHAUSTED);
  elapsed = bt_now_ms() - started;
  CHECK_STR_CONTAINS(brisk_last_error_message(), "1 open");
  CHECK_BETWEEN(elapsed, 150, 3000);
  brisk_session_free(s);
  CHECK_OK(brisk_ping(c)); /* given back */
  brisk_client_free(c);
}

struct worker {
  brisk_client *client;
  const char *key;
  int failures;
};

#define THREADS 4
#define INCRS_PER_THREAD 200

static void *incr_worker(void *arg) {
  struct worker *w = arg;
  int i;
  for (i = 0; i < INCRS_PER_THREAD; i++) {
    const char *argv[] = {"INCR", w->key};
    brisk_reply *r = NULL;
    if (brisk_command(w->client, 2, argv, NULL, &r) != BRISK_OK ||
        brisk_reply_type_of(r) != BRISK_REPLY_INTEGER)
      w->failures++;
    brisk_reply_free(r);
  }
  return NULL;
}

static void one_client_many_threads(void) {
  pthread_t threads[THREADS];
  struct worker workers[THREADS];
  brisk_config *cfg = tcp_config();
  brisk_client *c;
  const char *key = bt_key(PREFIX, "threads");
  int i;
  CHECK_OK(brisk_config_set_pool_size(cfg, 2)); /* fewer connections than threads */
  c = bt_client_from(cfg);
  CHECK_OK(BT_CMD(c, NULL, "DEL", key));
  for (i = 0; i < THREADS; i++) {
    workers[i].client = c;
    workers[i].key = key;
    workers[i].failures = 0;
    REQUIRE(pthread_create(&threads[i], NULL, incr_worker, &workers[i]) == 0);
  }
  for (i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    CHECK(workers[i].failures == 0);
  }
  CHECK_CMD_REPLY(c, "800", "GET", key);
  CHECK_OK(BT_CMD(c, NULL, "DEL", key));
  brisk_client_free(c);
}

int main(int argc, char **argv) {
  bt_init(argc, argv);
  RUN(tcp_by_address);
  RUN(tcp_by_url);
  RUN(unix_socket);
  RUN(acl_user);
  RUN(wrong_password);
  RUN(limited_user_cannot_set);
  RUN(db_selection);
  RUN(client_name);
  RUN(resp2_and_resp3);
  RUN(closed_port_is_connection_error);
  RUN(silent_server_times_out);
  RUN(reconnects_after_client_kill);
  RUN(pooled_path_rejects_connection_state);
  RUN(bad_arguments);
  RUN(server_errors_map_to_statuses);
  RUN(failed_setter_leaves_config_unchanged);
  RUN(pool_exhausted);
  RUN(one_client_many_threads);
  return bt_finish();
}
