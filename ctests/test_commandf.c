/*
 * test_commandf: printf-style commands (brisk_commandf, brisk_vcommandf, brisk_pipeline_appendf,
 * brisk_session_commandf) and WATCH transactions (brisk_session_exec, brisk_transaction_run),
 * against the fixture's standalone server.
 */
#include "brisk_test.h"

#include <stdarg.h>

#define PREFIX "fmt"

static brisk_client *client;

static void set_and_get_binary_values(void) {
  const char *key = bt_key(PREFIX, "bin key");  /* a space inside a value: one argument */
  const char value[] = {'a', '\0', 'b', ' ', '\r', '\n', 'c'};
  brisk_reply *r = NULL;
  size_t len = 0;
  const char *got;
  REQUIRE_OK(brisk_commandf(client, NULL, "SET %s %b", key, value, sizeof value));
  REQUIRE_OK(brisk_commandf(client, &r, "GET %s", key));
  got = brisk_reply_string(r, &len);
  CHECK(got != NULL && len == sizeof value && memcmp(got, value, sizeof value) == 0);
  brisk_reply_free(r);
  /* Several spaces are one separator; %% is a literal %; a conversion inside an argument. */
  REQUIRE_OK(brisk_commandf(client, NULL, "SET   %s:%s   100%%", key, "suffix"));
  r = NULL;
  REQUIRE_OK(brisk_commandf(client, &r, "GET %s:suffix", key));
  CHECK_REPLY_STR(r, "100%");
  brisk_reply_free(r);
  /* Empty values are empty arguments (%b with NULL and 0 too). */
  REQUIRE_OK(brisk_commandf(client, NULL, "SET %s %b", key, (const void *)NULL, (size_t)0));
  r = NULL;
  REQUIRE_OK(brisk_commandf(client, &r, "STRLEN %s", key));
  CHECK(brisk_reply_integer(r) == 0);
  brisk_reply_free(r);
  CHECK_OK(brisk_commandf(client, NULL, "DEL %s %s:suffix", key, key));
}

static void bad_formats_are_errors_not_crashes(void) {
  brisk_reply *r = (brisk_reply *)&client; /* must come back NULL */
  /* %d would read an int that is not there in a printf-style API: refused before reading. */
  CHECK_STATUS(brisk_commandf(client, &r, "INCRBY %s %d", "k"), BRISK_ERR_INVALID_ARGUMENT);
  CHECK(r == NULL);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "unknown conversion %d");
  CHECK_STATUS(brisk_commandf(client, NULL, "SET k %n"), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_commandf(client, NULL, "SET k 100%"), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "lone '%'");
  CHECK_STATUS(brisk_commandf(client, NULL, "   "), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_commandf(client, NULL, NULL), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_commandf(client, NULL, "GET %s", (const char *)NULL),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "is NULL");
  CHECK_STATUS(brisk_commandf(client, NULL, "GET %b", (const void *)NULL, (size_t)3),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_commandf(NULL, NULL, "PING"), BRISK_ERR_INVALID_ARGUMENT);
  /* A server error is reported as for brisk_command. */
  CHECK_STATUS(brisk_commandf(client, NULL, "NOSUCHCOMMAND %s", "x"), BRISK_ERR_SERVER);
  /* And the client still works. */
  CHECK_OK(brisk_commandf(client, NULL, "PING"));
}

/* A wrapper with its own `...`, as brisk_vcommandf is for. */
static brisk_status my_command(brisk_reply **reply, const char *format, ...) {
  va_list ap;
  brisk_status st;
  va_start(ap, format);
  st = brisk_vcommandf(client, reply, format, ap);
  va_end(ap);
  return st;
}

static void va_list_forms(void) {
  const char *key = bt_key(PREFIX, "va");
  brisk_reply *r = NULL;
  REQUIRE_OK(my_command(NULL, "RPUSH %s %s %b %s", key, "one", "two!", (size_t)3, "three"));
  REQUIRE_OK(my_command(&r, "LRANGE %s 0 -1", key));
  REQUIRE(brisk_reply_length(r) == 3);
  CHECK_REPLY_STR(brisk_reply_element(r, 0), "one");
  CHECK_REPLY_STR(brisk_reply_element(r, 1), "two");
  CHECK_REPLY_STR(brisk_reply_element(r, 2), "three");
  brisk_reply_free(r);
  CHECK_STATUS(my_command(NULL, "GET %x", key), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_OK(my_command(NULL, "DEL %s", key));
}

static void pipelines_and_sessions_take_formats(void) {
  const char *key = bt_key(PREFIX, "pipe");
  brisk_pipeline *p = NULL;
  brisk_session *s = NULL;
  brisk_reply *r = NULL;
  REQUIRE_OK(brisk_pipeline_new(client, &p));
  CHECK_OK(brisk_pipeline_appendf(p, "SET %s %b", key, "12345", (size_t)2));
  CHECK_OK(brisk_pipeline_appendf(p, "INCRBY %s %s", key, "30"));
  CHECK_STATUS(brisk_pipeline_appendf(p, "GET %i", key), BRISK_ERR_INVALID_ARGUMENT);
  REQUIRE_OK(brisk_pipeline_exec(p, &r));
  REQUIRE(brisk_reply_length(r) == 2); /* the refused append queued nothing */
  CHECK(brisk_reply_integer(brisk_reply_element(r, 1)) == 42);
  brisk_reply_free(r);
  brisk_pipeline_free(p);

  REQUIRE_OK(brisk_session_new(client, &s));
  r = NULL;
  REQUIRE_OK(brisk_session_commandf(s, &r, "GET %s", key));
  CHECK_REPLY_STR(r, "42");
  brisk_reply_free(r);
  CHECK_STATUS(brisk_session_commandf(s, NULL, "GET %"), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_OK(brisk_session_commandf(s, NULL, "DEL %s", key));
  brisk_session_free(s);
}

/* ---- WATCH transactions ------------------------------------------------------------------ */

static void session_exec_runs_a_watched_transaction_in_one_round_trip(void) {
  const char *key = bt_key(PREFIX, "sx");
  brisk_client *other = bt_client_tcp(3);
  brisk_session *s = NULL;
  brisk_pipeline *tx = NULL;
  brisk_reply *r = NULL;
  REQUIRE_OK(brisk_commandf(client, NULL, "SET %s 1", key));
  REQUIRE_OK(brisk_session_new(client, &s));
  REQUIRE_OK(brisk_transaction_new(client, &tx));

  /* Unchanged: applied. */
  REQUIRE_OK(brisk_session_commandf(s, NULL, "WATCH %s", key));
  CHECK_OK(brisk_pipeline_appendf(tx, "INCR %s", key));
  CHECK_OK(brisk_pipeline_appendf(tx, "INCR %s", key));
  REQUIRE_OK(brisk_session_exec(s, tx, &r));
  REQUIRE(brisk_reply_length(r) == 2);
  CHECK(brisk_reply_integer(brisk_reply_element(r, 1)) == 3);
  brisk_reply_free(r);

  /* Changed by another client between WATCH and EXEC: nothing applied, WATCH, tx empty. */
  REQUIRE_OK(brisk_session_commandf(s, NULL, "WATCH %s", key));
  CHECK_OK(brisk_pipeline_appendf(tx, "SET %s mine", key));
  REQUIRE_OK(brisk_commandf(other, NULL, "SET %s theirs", key));
  r = (brisk_reply *)&tx;
  CHECK_STATUS(brisk_session_exec(s, tx, &r), BRISK_ERR_WATCH);
  CHECK(r == NULL);
  r = NULL;
  REQUIRE_OK(brisk_commandf(other, &r, "GET %s", key));
  CHECK_REPLY_STR(r, "theirs");
  brisk_reply_free(r);

  /* EXEC ended the WATCH: the same transaction now goes through. */
  CHECK_OK(brisk_pipeline_appendf(tx, "SET %s mine", key));
  REQUIRE_OK(brisk_commandf(other, NULL, "SET %s theirs-again", key));
  CHECK_OK(brisk_session_exec(s, tx, NULL));
  r = NULL;
  REQUIRE_OK(brisk_commandf(other, &r, "GET %s", key));
  CHECK_REPLY_STR(r, "mine");
  brisk_reply_free(r);

  /* A plain pipeline is no transaction; NULL handles are refused. */
  {
    brisk_pipeline *plain = NULL;
    REQUIRE_OK(brisk_pipeline_new(client, &plain));
    CHECK_OK(brisk_pipeline_appendf(plain, "GET %s", key));
    CHECK_STATUS(brisk_session_exec(s, plain, NULL), BRISK_ERR_INVALID_ARGUMENT);
    CHECK_STR_CONTAINS(brisk_last_error_message(), "brisk_transaction_new");
    brisk_pipeline_free(plain);
  }
  CHECK_STATUS(brisk_session_exec(s, NULL, NULL), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_session_exec(NULL, tx, NULL), BRISK_ERR_INVALID_ARGUMENT);

  CHECK_OK(brisk_commandf(other, NULL, "DEL %s", key));
  brisk_pipeline_free(tx);
  brisk_session_free(s);
  brisk_client_free(other);
}

/* The body of an INCR-by-GET-and-SET transaction; `interfere` other-client writes happen
 * between its read and its EXEC, one per attempt, until none are left. */
struct incr_state {
  const char *key;
  brisk_client *other;
  int interfere;
  int calls;
};

static brisk_status incr_body(brisk_session *s, brisk_pipeline *tx, void *userdata) {
  struct incr_state *st = userdata;
  brisk_reply *r = NULL;
  char next[32];
  brisk_status status;
  st->calls++;
  status = brisk_session_commandf(s, &r, "GET %s", st->key);
  if (status != BRISK_OK) return status;
  snprintf(next, sizeof next, "%lld", atoll(brisk_reply_string(r, NULL)) + 1);
  brisk_reply_free(r);
  if (st->interfere > 0) {
    st->interfere--;
    status = brisk_commandf(st->other, NULL, "INCRBY %s 100", st->key);
    if (status != BRISK_OK) return status;
  }
  return brisk_pipeline_appendf(tx, "SET %s %s", st->key, next);
}

static void transaction_run_retries_while_a_watched_key_changes(void) {
  const char *key = bt_key(PREFIX, "run");
  struct incr_state st = {key, bt_client_tcp(3), 2, 0};
  const char *keys[] = {key};
  brisk_reply *r = NULL;
  REQUIRE_OK(brisk_commandf(client, NULL, "SET %s 5", key));
  /* Two interfering writes (+200), then the third attempt applies: 205 + 1. */
  REQUIRE_OK(brisk_transaction_run(client, 1, keys, NULL, incr_body, &st, 5, &r));
  CHECK(st.calls == 3);
  REQUIRE(brisk_reply_length(r) == 1);
  CHECK_REPLY_STR(brisk_reply_element(r, 0), "OK");
  brisk_reply_free(r);
  r = NULL;
  REQUIRE_OK(brisk_commandf(client, &r, "GET %s", key));
  CHECK_REPLY_STR(r, "206");
  brisk_reply_free(r);

  /* Interference on every attempt: WATCH after max_attempts, nothing applied by the body. */
  st.interfere = 10;
  st.calls = 0;
  r = (brisk_reply *)&st;
  CHECK_STATUS(brisk_transaction_run(client, 1, keys, NULL, incr_body, &st, 3, &r),
               BRISK_ERR_WATCH);
  CHECK(r == NULL && st.calls == 3);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "aborted 3 times");
  r = NULL;
  REQUIRE_OK(brisk_commandf(client, &r, "GET %s", key));
  CHECK_REPLY_STR(r, "506"); /* 206 + 3 x 100 from the other client only */
  brisk_reply_free(r);

  /* Keys with lengths (binary safe), and bad arguments. */
  {
    const size_t lens[] = {strlen(key)};
    st.interfere = 0;
    CHECK_OK(brisk_transaction_run(client, 1, keys, lens, incr_body, &st, 1, NULL));
  }
  CHECK_STATUS(brisk_transaction_run(client, 1, keys, NULL, incr_body, &st, 0, NULL),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_transaction_run(client, 1, keys, NULL, NULL, &st, 1, NULL),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_transaction_run(client, 1, NULL, NULL, incr_body, &st, 1, NULL),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_OK(brisk_commandf(client, NULL, "DEL %s", key));
  brisk_client_free(st.other);
}

static brisk_status failing_body(brisk_session *s, brisk_pipeline *tx, void *userdata) {
  (void)tx;
  (void)userdata;
  /* A failed brisk call leaves its message; the body gives up with its status. */
  return brisk_session_commandf(s, NULL, "NOSUCHCOMMAND");
}

static void a_failing_body_ends_the_run_and_leaves_no_watch(void) {
  const char *key = bt_key(PREFIX, "fail");
  const char *keys[] = {key};
  brisk_client *other = bt_client_tcp(3);
  brisk_session *s = NULL;
  brisk_reply *r = NULL;
  CHECK_STATUS(brisk_transaction_run(client, 1, keys, NULL, failing_body, NULL, 3, NULL),
               BRISK_ERR_SERVER);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "transaction body returned BRISK_ERR_SERVER");
  CHECK_STR_CONTAINS(brisk_last_error_message(), "unknown command");
  /* The run's connection went back unwatched: on it (the pool has one), a MULTI/EXEC is not
   * aborted by a write to the key from elsewhere. */
  REQUIRE_OK(brisk_commandf(other, NULL, "SET %s changed", key));
  REQUIRE_OK(brisk_session_new(client, &s));
  REQUIRE_OK(brisk_session_commandf(s, NULL, "MULTI"));
  REQUIRE_OK(brisk_session_commandf(s, NULL, "SET %s x", key));
  REQUIRE_OK(brisk_session_commandf(s, &r, "EXEC"));
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_ARRAY);
  brisk_reply_free(r);
  brisk_session_free(s);
  CHECK_OK(brisk_commandf(client, NULL, "DEL %s", key));
  brisk_client_free(other);
}

int main(int argc, char **argv) {
  brisk_config *cfg;
  bt_init(argc, argv);
  cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  REQUIRE_OK(brisk_config_set_address(cfg, "127.0.0.1", bt_env_port("STANDALONE_PORT")));
  REQUIRE_OK(brisk_config_set_pool_size(cfg, 1)); /* sessions and commands share one connection */
  client = bt_client_from(cfg);
  RUN(set_and_get_binary_values);
  RUN(bad_formats_are_errors_not_crashes);
  RUN(va_list_forms);
  RUN(pipelines_and_sessions_take_formats);
  RUN(session_exec_runs_a_watched_transaction_in_one_round_trip);
  RUN(transaction_run_retries_while_a_watched_key_changes);
  RUN(a_failing_body_ends_the_run_and_leaves_no_watch);
  brisk_client_free(client);
  return bt_finish();
}
