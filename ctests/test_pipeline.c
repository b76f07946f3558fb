/*
 * test_pipeline: big commands, pipelines, transactions and sessions (WATCH/MULTI/EXEC), and
 * what a session leaves behind on the pooled connection.
 */
#include "brisk_test.h"

#define PREFIX "pipe"

static brisk_client *client;

static brisk_client *client_with_pool(uint32_t size) {
  brisk_config *cfg = bt_config_at(bt_env_port("STANDALONE_PORT"));
  REQUIRE_OK(brisk_config_set_pool_size(cfg, size));
  return bt_client_from(cfg);
}

#define APPEND(p, ...) append_words(__LINE__, (p), (const char *const[]){__VA_ARGS__, NULL})

static void append_words(int line, brisk_pipeline *p, const char *const *words) {
  size_t argc = 0;
  brisk_status st;
  while (words[argc] != NULL) argc++;
  st = brisk_pipeline_append(p, argc, words, NULL);
  if (st != BRISK_OK)
    bt_fail(__FILE__, line, "append %s: %s: %s", words[0], brisk_status_name(st),
            brisk_last_error_message());
}

/* Session command by words. */
#define S_CMD(s, reply, ...) s_cmdv((s), (reply), (const char *const[]){__VA_ARGS__, NULL})

static brisk_status s_cmdv(brisk_session *s, brisk_reply **reply, const char *const *words) {
  size_t argc = 0;
  while (words[argc] != NULL) argc++;
  return brisk_session_command(s, argc, words, NULL, reply);
}

static void mset_20000_pairs(void) {
  enum { PAIRS = 20000 };
  const size_t argc = 1 + 2 * PAIRS;
  const char **argv = malloc(argc * sizeof *argv);
  const char **mget = malloc((1 + PAIRS) * sizeof *mget);
  char *text = malloc((size_t)PAIRS * 2 * 48);
  brisk_reply *r = NULL;
  size_t i;
  REQUIRE(argv != NULL && mget != NULL && text != NULL);
  argv[0] = "MSET";
  mget[0] = "MGET";
  for (i = 0; i < PAIRS; i++) {
    char *key = text + i * 96;
    char *value = key + 48;
    snprintf(key, 48, "ct:%s:%ld:mset:%zu", PREFIX, (long)getpid(), i);
    snprintf(value, 48, "value-%zu", i * 7);
    argv[1 + 2 * i] = key;
    argv[2 + 2 * i] = value;
    mget[1 + i] = key;
  }
  CHECK_OK(brisk_command(client, argc, argv, NULL, &r));
  CHECK_REPLY_STR(r, "OK");
  brisk_reply_free(r);
  r = NULL;

  CHECK_OK(brisk_command(client, 1 + PAIRS, mget, NULL, &r));
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_ARRAY);
  CHECK(brisk_reply_length(r) == PAIRS);
  if (brisk_reply_length(r) == PAIRS) {
    size_t bad = 0;
    for (i = 0; i < PAIRS; i++)
      if (!bt_reply_is(brisk_reply_element(r, i), argv[2 + 2 * i])) bad++;
    CHECK(bad == 0);
  }
  brisk_reply_free(r);
  r = NULL;

  mget[0] = "DEL";
  CHECK_OK(brisk_command(client, 1 + PAIRS, mget, NULL, &r));
  CHECK(brisk_reply_integer(r) == PAIRS);
  brisk_reply_free(r);
  free(text);
  free(mget);
  free(argv);
}

static void pipeline_of_1000_with_an_error(void) {
  enum { N = 1000, BAD = 500 };
  const char *counter = bt_key(PREFIX, "counter");
  const char *text = bt_key(PREFIX, "text");
  brisk_pipeline *p = NULL;
  brisk_reply *r = NULL;
  size_t i;
  CHECK_OK(BT_CMD(client, NULL, "DEL", counter));
  CHECK_OK(BT_CMD(client, NULL, "SET", text, "not a list"));
  REQUIRE_OK(brisk_pipeline_new(client, &p));
  for (i = 0; i < N; i++) {
    if (i == BAD)
      APPEND(p, "LPUSH", text, "x"); /* WRONGTYPE */
    else
      APPEND(p, "INCR", counter);
  }
  CHECK_OK(brisk_pipeline_exec(p, &r));
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_ARRAY);
  CHECK(brisk_reply_length(r) == N);
  if (brisk_reply_length(r) == N) {
    int64_t expect = 1;
    size_t bad = 0;
    for (i = 0; i < N; i++) {
      const brisk_reply *e = brisk_reply_element(r, i);
      if (i == BAD) {
        CHECK(brisk_reply_type_of(e) == BRISK_REPLY_ERROR);
        CHECK(strncmp(brisk_reply_string(e, NULL), "WRONGTYPE", 9) == 0);
        continue;
      }
      if (brisk_reply_type_of(e) != BRISK_REPLY_INTEGER || brisk_reply_integer(e) != expect)
        bad++;
      expect++;
    }
    CHECK(bad == 0);
  }
  brisk_reply_free(r);
  r = NULL;

  /* The pipeline is empty again and can be reused. */
  APPEND(p, "GET", counter);
  APPEND(p, "DEL", counter, text);
  APPEND(p, "EXISTS", counter);
  CHECK_OK(brisk_pipeline_exec(p, &r));
  CHECK(brisk_reply_length(r) == 3);
  CHECK_REPLY_STR(brisk_reply_element(r, 0), "999");
  CHECK(brisk_reply_integer(brisk_reply_element(r, 1)) == 2);
  CHECK(brisk_reply_integer(brisk_reply_element(r, 2)) == 0);
  brisk_reply_free(r);
  r = NULL;

  /* An empty pipeline gives an empty array; NULL discards the replies. */
  CHECK_OK(brisk_pipeline_exec(p, &r));
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_ARRAY && brisk_reply_length(r) == 0);
  brisk_reply_free(r);
  APPEND(p, "PING");
  CHECK_OK(brisk_pipeline_exec(p, NULL));
  brisk_pipeline_free(p);
}

static void pipeline_refuses_bad_commands(void) {
  brisk_pipeline *p = NULL;
  brisk_reply *r = NULL;
  const char *ping[] = {"PING"};
  REQUIRE_OK(brisk_pipeline_new(client, &p));
  CHECK_STATUS(brisk_pipeline_append(p, 1, (const char *const[]){"MULTI"}, NULL),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_pipeline_append(p, 2, (const char *const[]){"WATCH", "k"}, NULL),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_pipeline_append(p, 2, (const char *const[]){"SELECT", "1"}, NULL),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_pipeline_append(p, 2, (const char *const[]){"SUBSCRIBE", "c"}, NULL),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_pipeline_append(p, 0, ping, NULL), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_pipeline_append(p, 1, NULL, NULL), BRISK_ERR_INVALID_ARGUMENT);
  /* The same with the lengths given (the fast path's checks), a NULL entry anywhere. */
  const size_t lens[3] = {3, 1, 1};
  CHECK_STATUS(brisk_pipeline_append(p, 0, ping, lens), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "argc");
  CHECK_STATUS(brisk_pipeline_append(p, 1, NULL, lens), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "argv: NULL");
  CHECK_STATUS(brisk_pipeline_append(NULL, 3, (const char *const[]){"SET", "k", "v"}, lens),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "p: NULL brisk_pipeline pointer");
  CHECK_STATUS(brisk_pipeline_append(p, 3, (const char *const[]){NULL, "k", "v"}, lens),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "argv[0]: NULL");
  CHECK_STATUS(brisk_pipeline_append(p, 3, (const char *const[]){"SET", NULL, "v"}, lens),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "argv[1]: NULL");
  CHECK_STATUS(brisk_pipeline_append(p, 3, (const char *const[]){"SET", "k", NULL}, lens),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "argv[2]: NULL");
  /* None of those was queued. */
  APPEND(p, "PING");
  CHECK_OK(brisk_pipeline_exec(p, &r));
  CHECK(brisk_reply_length(r) == 1);
  CHECK_REPLY_STR(brisk_reply_element(r, 0), "PONG");
  brisk_reply_free(r);
  brisk_pipeline_free(p);
}

static void binary_arguments_in_a_pipeline(void) {
  static const char value[] = {'x', '\0', 'y'};
  const char *key = bt_key(PREFIX, "bin");
  const char *argv[] = {"SET", key, value};
  const size_t lens[] = {3, strlen(key), sizeof value};
  brisk_pipeline *p = NULL;
  brisk_reply *r = NULL;
  size_t len = 0;
  const char *got;
  REQUIRE_OK(brisk_pipeline_new(client, &p));
  CHECK_OK(brisk_pipeline_append(p, 3, argv, lens));
  APPEND(p, "GET", key);
  APPEND(p, "DEL", key);
  CHECK_OK(brisk_pipeline_exec(p, &r));
  got = brisk_reply_string(brisk_reply_element(r, 1), &len);
  CHECK(got != NULL && len == sizeof value && memcmp(got, value, len) == 0);
  brisk_reply_free(r);
  brisk_pipeline_free(p);
}

static void transaction_results(void) {
  const char *key = bt_key(PREFIX, "tx");
  const char *num = bt_key(PREFIX, "txnum");
  brisk_pipeline *t = NULL;
  brisk_reply *r = NULL;
  REQUIRE_OK(brisk_transaction_new(client, &t));
  APPEND(t, "SET", key, "v");
  APPEND(t, "SET", num, "10");
  APPEND(t, "INCRBY", num, "5");
  APPEND(t, "GET", key);
  APPEND(t, "LPUSH", key, "x"); /* fails at EXEC time: an ERROR element, the rest applies */
  APPEND(t, "GET", num);
  CHECK_OK(brisk_pipeline_exec(t, &r));
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_ARRAY);
  CHECK(brisk_reply_length(r) == 6); /* EXEC's results only: no MULTI/QUEUED noise */
  CHECK_REPLY_STR(brisk_reply_element(r, 0), "OK");
  CHECK_REPLY_STR(brisk_reply_element(r, 1), "OK");
  CHECK(brisk_reply_integer(brisk_reply_element(r, 2)) == 15);
  CHECK_REPLY_STR(brisk_reply_element(r, 3), "v");
  CHECK(brisk_reply_type_of(brisk_reply_element(r, 4)) == BRISK_REPLY_ERROR);
  CHECK_REPLY_STR(brisk_reply_element(r, 5), "15");
  brisk_reply_free(r);
  r = NULL;

  /* Reused: empty again. */
  APPEND(t, "DEL", key, num);
  CHECK_OK(brisk_pipeline_exec(t, &r));
  CHECK(brisk_reply_length(r) == 1);
  CHECK(brisk_reply_integer(brisk_reply_element(r, 0)) == 2);
  brisk_reply_free(r);
  brisk_pipeline_free(t);
}

static void transaction_execabort(void) {
  const char *key = bt_key(PREFIX, "abort");
  brisk_pipeline *t = NULL;
  brisk_reply *r = (brisk_reply *)&t;
  REQUIRE_OK(brisk_transaction_new(client, &t));
  APPEND(t, "SET", key, "must-not-be-applied");
  APPEND(t, "NOSUCHCOMMAND", "x"); /* rejected when queued: EXEC answers EXECABORT */
  APPEND(t, "INCR", key);
  CHECK_STATUS(brisk_pipeline_exec(t, &r), BRISK_ERR_SERVER);
  CHECK(r == NULL);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "EXECABORT");
  /* Nothing was applied. */
  r = NULL;
  CHECK_OK(BT_CMD(client, &r, "EXISTS", key));
  CHECK(brisk_reply_integer(r) == 0);
  brisk_reply_free(r);
  r = NULL;

  /* Wrong arity is rejected at queue time too. */
  APPEND(t, "SET", key, "v");
  APPEND(t, "GET");
  CHECK_STATUS(brisk_pipeline_exec(t, NULL), BRISK_ERR_SERVER);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "EXECABORT");

  /* The transaction (and the connection under it) still works afterwards. */
  APPEND(t, "SET", key, "v2");
  APPEND(t, "GET", key);
  APPEND(t, "DEL", key);
  CHECK_OK(brisk_pipeline_exec(t, &r));
  CHECK(brisk_reply_length(r) == 3);
  CHECK_REPLY_STR(brisk_reply_element(r, 1), "v2");
  brisk_reply_free(r);
  brisk_pipeline_free(t);
  CHECK_OK(brisk_ping(client));
}

static void session_watch_aborted_by_another_client(void) {
  const char *key = bt_key(PREFIX, "watched");
  brisk_client *other = bt_client_tcp(3);
  brisk_session *s = NULL;
  brisk_reply *r = NULL;
  CHECK_OK(BT_CMD(client, NULL, "SET", key, "1"));
  REQUIRE_OK(brisk_session_new(client, &s));
  CHECK_OK(S_CMD(s, NULL, "WATCH", key));
  CHECK_OK(S_CMD(s, &r, "GET", key));
  CHECK_REPLY_STR(r, "1");
  brisk_reply_free(r);
  r = NULL;
  /* Someone else changes the key between WATCH and EXEC. */
  CHECK_OK(BT_CMD(other, NULL, "SET", key, "changed"));
  CHECK_OK(S_CMD(s, &r, "MULTI"));
  CHECK_REPLY_STR(r, "OK");
  brisk_reply_free(r);
  r = NULL;
  CHECK_OK(S_CMD(s, &r, "SET", key, "2"));
  CHECK_REPLY_STR(r, "QUEUED");
  brisk_reply_free(r);
  r = (brisk_reply *)&s;
  CHECK_STATUS(S_CMD(s, &r, "EXEC"), BRISK_ERR_WATCH);
  CHECK(r == NULL);
  CHECK(brisk_status_category(BRISK_ERR_WATCH) == BRISK_CATEGORY_DATA);
  r = NULL;
  CHECK_OK(BT_CMD(client, &r, "GET", key));
  CHECK_REPLY_STR(r, "changed"); /* the transaction did not apply */
  brisk_reply_free(r);
  r = NULL;

  /* The same session, again, with nobody interfering: it commits. */
  CHECK_OK(S_CMD(s, NULL, "WATCH", key));
  CHECK_OK(S_CMD(s, NULL, "MULTI"));
  CHECK_OK(S_CMD(s, NULL, "SET", key, "3"));
  CHECK_OK(S_CMD(s, NULL, "INCR", key));
  CHECK_OK(S_CMD(s, &r, "EXEC"));
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_ARRAY);
  CHECK(brisk_reply_length(r) == 2);
  CHECK_REPLY_STR(brisk_reply_element(r, 0), "OK");
  CHECK(brisk_reply_integer(brisk_reply_element(r, 1)) == 4);
  brisk_reply_free(r);
  r = NULL;
  brisk_session_free(s);

  CHECK_CMD_REPLY(other, "4", "GET", key);
  CHECK_OK(BT_CMD(other, NULL, "DEL", key));
  brisk_client_free(other);
}

static void session_commands_and_arguments(void) {
  brisk_session *s = NULL;
  brisk_reply *r = (brisk_reply *)&s;
  const char *ping[] = {"PING"};
  REQUIRE_OK(brisk_session_new(client, &s));
  CHECK_STATUS(brisk_session_command(s, 0, ping, NULL, &r), BRISK_ERR_INVALID_ARGUMENT);
  CHECK(r == NULL);
  CHECK_STATUS(brisk_session_command(s, 1, NULL, NULL, NULL), BRISK_ERR_INVALID_ARGUMENT);
  /* Streaming commands are refused even in a session. */
  CHECK_STATUS(S_CMD(s, NULL, "SUBSCRIBE", "ch"), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(S_CMD(s, NULL, "MONITOR"), BRISK_ERR_INVALID_ARGUMENT);
  /* Server errors in a session are failed calls with the server's text. */
  CHECK_STATUS(S_CMD(s, NULL, "NOSUCHCOMMAND"), BRISK_ERR_SERVER);
  CHECK_STATUS(S_CMD(s, NULL, "EXEC"), BRISK_ERR_SERVER); /* EXEC without MULTI */
  CHECK_STR_CONTAINS(brisk_last_error_message(), "EXEC without MULTI");
  CHECK_OK(S_CMD(s, NULL, "PING"));
  brisk_session_free(s);
}

/* CLIENT INFO of the (only) pooled connection, copied. */
static void pooled_info(brisk_client *c, char *buf, size_t size) {
  brisk_reply *r = NULL;
  size_t len = 0;
  const char *s;
  buf[0] = '\0';
  if (!CHECK_OK(BT_CMD(c, &r, "CLIENT", "INFO"))) return;
  s = brisk_reply_string(r, &len);
  if (s != NULL) snprintf(buf, size, "%.*s", (int)len, s);
  brisk_reply_free(r);
}

static long long pooled_id(brisk_client *c) {
  brisk_reply *r = NULL;
  long long id = -1;
  if (CHECK_OK(BT_CMD(c, &r, "CLIENT", "ID"))) id = (long long)brisk_reply_integer(r);
  brisk_reply_free(r);
  return id;
}

static void session_freed_with_open_multi(void) {
  /* Pool of one: the command after the session runs on the session's connection. */
  brisk_client *c = client_with_pool(1);
  const char *key = bt_key(PREFIX, "leftover");
  brisk_session *s = NULL;
  brisk_reply *r = NULL;
  char info[1024];
  long long id_before;

  CHECK_OK(BT_CMD(c, NULL, "DEL", key));
  id_before = pooled_id(c);
  REQUIRE_OK(brisk_session_new(c, &s));
  CHECK_OK(S_CMD(s, NULL, "MULTI"));
  CHECK_OK(S_CMD(s, &r, "SET", key, "queued-then-dropped"));
  CHECK_REPLY_STR(r, "QUEUED");
  brisk_reply_free(r);
  r = NULL;
  brisk_session_free(s); /* with MULTI open */

  /* The next pooled command runs normally: a real reply, not QUEUED. */
  CHECK_CMD_REPLY(c, "OK", "SET", key, "direct");
  r = NULL;
  CHECK_CMD_REPLY(c, "direct", "GET", key);
  pooled_info(c, info, sizeof info);
  CHECK_STR_CONTAINS(info, " multi=-1 "); /* no transaction open on the connection */
  /* It was reset (DISCARD), not closed: the same connection. */
  CHECK(pooled_id(c) == id_before);

  /* The same with a WATCH left open: a later transaction must not be aborted by it. */
  REQUIRE_OK(brisk_session_new(c, &s));
  CHECK_OK(S_CMD(s, NULL, "WATCH", key));
  brisk_session_free(s);
  CHECK_OK(BT_CMD(c, NULL, "SET", key, "touched")); /* would trip a leftover WATCH */
  REQUIRE_OK(brisk_session_new(c, &s));
  CHECK_OK(S_CMD(s, NULL, "MULTI"));
  CHECK_OK(S_CMD(s, NULL, "GET", key));
  r = NULL;
  CHECK_OK(S_CMD(s, &r, "EXEC"));
  CHECK(brisk_reply_length(r) == 1);
  CHECK_REPLY_STR(brisk_reply_element(r, 0), "touched");
  brisk_reply_free(r);
  brisk_session_free(s);

  /* A session that SELECTs another db gives back a connection on the configured db. */
  REQUIRE_OK(brisk_session_new(c, &s));
  CHECK_OK(S_CMD(s, NULL, "SELECT", "4"));
  brisk_session_free(s);
  pooled_info(c, info, sizeof info);
  CHECK_STR_CONTAINS(info, " db=0 ");
  CHECK_STR_CONTAINS(info, " multi=-1 ");

  CHECK_OK(BT_CMD(c, NULL, "DEL", key));
  brisk_client_free(c);
}

/* Kills the session's connection from another client. */
static void kill_session_connection(brisk_session *s, brisk_client *killer) {
  brisk_reply *r = NULL;
  char id_text[32];
  if (!CHECK_OK(S_CMD(s, &r, "CLIENT", "ID"))) return;
  snprintf(id_text, sizeof id_text, "%lld", (long long)brisk_reply_integer(r));
  brisk_reply_free(r);
  r = NULL;
  CHECK_OK(BT_CMD(killer, &r, "CLIENT", "KILL", "ID", id_text));
  CHECK(brisk_reply_integer(r) == 1);
  brisk_reply_free(r);
}

static void session_recovers_after_client_kill(void) {
  brisk_client *c = client_with_pool(2);
  brisk_client *killer = bt_client_tcp(3);
  brisk_session *s = NULL;
  brisk_status st;
  int attempts;
  REQUIRE_OK(brisk_session_new(c, &s));

  /* No transaction open: the session goes on, on a new connection. (Whether the first
   * command after the kill may fail is covered by the known issue below.) */
  kill_session_connection(s, killer);
  st = S_CMD(s, NULL, "PING");
  CHECK(st == BRISK_OK || st == BRISK_ERR_CONNECTION);
  CHECK_OK(S_CMD(s, NULL, "PING"));

  /* WATCH open: losing the connection must be reported, never papered over (a silently
   * dropped WATCH would let EXEC succeed when it must not). */
  CHECK_OK(S_CMD(s, NULL, "WATCH", bt_key(PREFIX, "lost")));
  kill_session_connection(s, killer);
  CHECK_STATUS(S_CMD(s, NULL, "MULTI"), BRISK_ERR_CONNECTION);
  /* Starting over works (within two tries; see the known issue below). */
  for (attempts = 0; attempts < 2; attempts++)
    if (S_CMD(s, NULL, "WATCH", bt_key(PREFIX, "lost")) == BRISK_OK) break;
  CHECK(attempts < 2);
  CHECK_OK(S_CMD(s, NULL, "MULTI"));
  CHECK_OK(S_CMD(s, NULL, "PING"));
  {
    brisk_reply *r = NULL;
    CHECK_OK(S_CMD(s, &r, "EXEC"));
    CHECK(brisk_reply_length(r) == 1);
    brisk_reply_free(r);
  }
  brisk_session_free(s);
  CHECK_OK(brisk_ping(c));
  brisk_client_free(killer);
  brisk_client_free(c);
}

/*
 * KNOWN LIBRARY ISSUE 1: a session does not notice that the server closed its connection.
 * brisk.h (brisk_session_command): "If the connection is lost, the next command uses a new
 * one, unless a WATCH or MULTI was open". Pooled commands get this right (the pool peeks at a
 * connection before lending it), but a session writes to its dead connection: the first
 * command after a CLIENT KILL fails with BRISK_ERR_CONNECTION ("connection to ... closed by
 * the server") although no transaction state was open; only the command after it works.
 */
static void session_uses_new_connection_after_kill(void) {
  brisk_client *c = client_with_pool(2);
  brisk_client *killer = bt_client_tcp(3);
  brisk_session *s = NULL;
  REQUIRE_OK(brisk_session_new(c, &s));
  kill_session_connection(s, killer);
  CHECK_OK(S_CMD(s, NULL, "PING"));
  brisk_session_free(s);
  brisk_client_free(killer);
  brisk_client_free(c);
}

/*
 * KNOWN LIBRARY ISSUE 2: a lost transaction is reported twice. With a WATCH open, the command
 * that finds the connection dead (MULTI here) fails with BRISK_ERR_CONNECTION, which is right.
 * Doing what the message says, starting over with WATCH, then fails AGAIN with
 * BRISK_ERR_CONNECTION ("the session's connection was lost with a WATCH or MULTI open; that
 * transaction is gone (start it again)"): the session still holds the transaction flag of
 * the connection whose loss it already reported. A caller that retries once gives up.
 */
static void session_reports_lost_transaction_once(void) {
  brisk_client *c = client_with_pool(2);
  brisk_client *killer = bt_client_tcp(3);
  brisk_session *s = NULL;
  REQUIRE_OK(brisk_session_new(c, &s));
  CHECK_OK(S_CMD(s, NULL, "WATCH", bt_key(PREFIX, "twice")));
  kill_session_connection(s, killer);
  CHECK_STATUS(S_CMD(s, NULL, "MULTI"), BRISK_ERR_CONNECTION);
  CHECK_OK(S_CMD(s, NULL, "WATCH", bt_key(PREFIX, "twice"))); /* starting over */
  brisk_session_free(s);
  brisk_client_free(killer);
  brisk_client_free(c);
}

/* brisk.h (brisk_client_free): "Pipelines and sessions made from it stay valid objects (free
 * them as usual) but their calls fail with CLOSED." */
static void pipelines_outlive_their_client(void) {
  brisk_client *c = bt_client_tcp(3);
  brisk_pipeline *p = NULL;
  brisk_pipeline *t = NULL;
  brisk_reply *kept = NULL;
  brisk_reply *r = (brisk_reply *)&p;
  REQUIRE_OK(brisk_pipeline_new(c, &p));
  REQUIRE_OK(brisk_transaction_new(c, &t));
  APPEND(p, "PING");
  CHECK_OK(brisk_pipeline_exec(p, &kept));
  brisk_client_free(c);

  APPEND(p, "PING");
  CHECK_STATUS(brisk_pipeline_exec(p, &r), BRISK_ERR_CLOSED);
  CHECK(r == NULL);
  APPEND(t, "PING");
  r = (brisk_reply *)&p;
  CHECK_STATUS(brisk_pipeline_exec(t, &r), BRISK_ERR_CLOSED);
  CHECK(r == NULL);
  /* A reply from before is still readable. */
  CHECK_REPLY_STR(brisk_reply_element(kept, 0), "PONG");
  brisk_reply_free(kept);
  brisk_pipeline_free(p);
  brisk_pipeline_free(t);
}

/*
 * KNOWN LIBRARY ISSUE 3: a session keeps working after its client was freed. brisk.h
 * (brisk_client_free): "Pipelines and sessions made from it stay valid objects (free them as
 * usual) but their calls fail with CLOSED." Pipelines do fail with BRISK_ERR_CLOSED, but
 * brisk_session_command on a session made before brisk_client_free returns BRISK_OK (PING
 * answers PONG): the session still uses the connection it pinned.
 */
static void session_fails_closed_after_client_free(void) {
  brisk_client *c = bt_client_tcp(3);
  brisk_session *s = NULL;
  brisk_reply *r = NULL;
  REQUIRE_OK(brisk_session_new(c, &s));
  CHECK_OK(S_CMD(s, NULL, "PING"));
  brisk_client_free(c);
  CHECK_STATUS(S_CMD(s, &r, "PING"), BRISK_ERR_CLOSED);
  brisk_reply_free(r);
  brisk_session_free(s);
}

int main(int argc, char **argv) {
  bt_init(argc, argv);
  client = bt_client_tcp(3);
  RUN(mset_20000_pairs);
  RUN(pipeline_of_1000_with_an_error);
  RUN(pipeline_refuses_bad_commands);
  RUN(binary_arguments_in_a_pipeline);
  RUN(transaction_results);
  RUN(transaction_execabort);
  RUN(session_watch_aborted_by_another_client);
  RUN(session_commands_and_arguments);
  RUN(session_freed_with_open_multi);
  RUN(session_recovers_after_client_kill);
  RUN(pipelines_outlive_their_client);
  RUN(session_uses_new_connection_after_kill);
  RUN(session_reports_lost_transaction_once);
  RUN(session_fails_closed_after_client_free);
  brisk_client_free(client);
  return bt_finish();
}
