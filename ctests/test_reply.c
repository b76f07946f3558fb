/*
 * test_reply: every reply type, from a real server, under RESP3 and RESP2, and the accessors'
 * behaviour on the wrong type, on NULL and out of range.
 */
#include "brisk_test.h"

#include <math.h>

#define PREFIX "reply"

static brisk_client *resp3;
static brisk_client *resp2;

/* Runs a command, requiring success; the caller frees the reply. */
#define MUST(client, ...) must_cmdv(__LINE__, (client), (const char *const[]){__VA_ARGS__, NULL})

static brisk_reply *must_cmdv(int line, brisk_client *c, const char *const *words) {
  brisk_reply *r = NULL;
  brisk_status st = bt_cmdv(c, &r, words);
  if (st != BRISK_OK)
    bt_fail(__FILE__, line, "%s: %s: %s", words[0], brisk_status_name(st),
            brisk_last_error_message());
  else if (r == NULL)
    bt_fail(__FILE__, line, "%s: BRISK_OK but no reply", words[0]);
  return r;
}

static void strings_with_nuls(void) {
  static const char value[] = {'a', '\0', 'b', '\0', '\0', '\xff', '\r', '\n', 'z'};
  char key[64];
  const char *argv[3];
  size_t lens[3];
  brisk_reply *r = NULL;
  size_t len = 0;
  const char *got;
  /* The key holds a NUL too. */
  int klen = snprintf(key, sizeof key, "ct:" PREFIX ":%ld:nul", (long)getpid());
  key[klen++] = '\0';
  key[klen++] = 'k';
  argv[0] = "SET";
  lens[0] = 3;
  argv[1] = key;
  lens[1] = (size_t)klen;
  argv[2] = value;
  lens[2] = sizeof value;
  CHECK_OK(brisk_command(resp3, 3, argv, lens, NULL));
  argv[0] = "GET";
  lens[0] = 3;
  CHECK_OK(brisk_command(resp3, 2, argv, lens, &r));
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_STRING);
  got = brisk_reply_string(r, &len);
  CHECK(got != NULL && len == sizeof value && memcmp(got, value, len) == 0);
  CHECK(got != NULL && got[len] == '\0'); /* NUL-terminated for convenience */
  brisk_reply_free(r);
  /* STRLEN counts the NULs. */
  argv[0] = "STRLEN";
  lens[0] = 6;
  CHECK_OK(brisk_command(resp2, 2, argv, lens, &r));
  CHECK(brisk_reply_integer(r) == (int64_t)sizeof value);
  brisk_reply_free(r);
  /* The key without its tail is another key. */
  r = MUST(resp3, "EXISTS", key);
  CHECK(brisk_reply_integer(r) == 0);
  brisk_reply_free(r);
  argv[0] = "DEL";
  lens[0] = 3;
  CHECK_OK(brisk_command(resp3, 2, argv, lens, NULL));

  /* The empty string is a STRING of length 0, not NIL. */
  r = MUST(resp3, "SET", bt_key(PREFIX, "empty"), "");
  brisk_reply_free(r);
  r = MUST(resp3, "GET", bt_key(PREFIX, "empty"));
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_STRING);
  got = brisk_reply_string(r, &len);
  CHECK(got != NULL && len == 0 && got[0] == '\0');
  brisk_reply_free(r);
  brisk_reply_free(MUST(resp3, "DEL", bt_key(PREFIX, "empty")));
}

static void large_value_round_trip(void) {
  const size_t size = 8u << 20; /* 8 MiB */
  char *value = malloc(size);
  const char *key = bt_key(PREFIX, "large");
  brisk_reply *r = NULL;
  size_t i, len = 0;
  const char *got;
  REQUIRE(value != NULL);
  for (i = 0; i < size; i++) value[i] = (char)((i * 2654435761u) >> 13);
  {
    const char *argv[] = {"SET", key, value};
    const size_t lens[] = {3, strlen(key), size};
    CHECK_OK(brisk_command(resp3, 3, argv, lens, NULL));
  }
  CHECK_OK(BT_CMD(resp3, &r, "GET", key));
  got = brisk_reply_string(r, &len);
  CHECK(len == size);
  CHECK(got != NULL && len == size && memcmp(got, value, size) == 0);
  brisk_reply_free(r);
  r = MUST(resp2, "STRLEN", key);
  CHECK(brisk_reply_integer(r) == (int64_t)size);
  brisk_reply_free(r);
  /* And read back over RESP2. */
  CHECK_OK(BT_CMD(resp2, &r, "GET", key));
  got = brisk_reply_string(r, &len);
  CHECK(got != NULL && len == size && memcmp(got, value, size) == 0);
  brisk_reply_free(r);
  brisk_reply_free(MUST(resp3, "DEL", key));
  free(value);
}

static void integers(void) {
  const char *key = bt_key(PREFIX, "int");
  brisk_reply *r;
  brisk_reply_free(MUST(resp3, "SET", key, "41"));
  r = MUST(resp3, "INCR", key);
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_INTEGER);
  CHECK(brisk_reply_integer(r) == 42);
  CHECK(brisk_reply_string(r, NULL) == NULL);
  brisk_reply_free(r);
  r = MUST(resp2, "DECRBY", key, "100");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_INTEGER);
  CHECK(brisk_reply_integer(r) == -58);
  brisk_reply_free(r);
  /* The int64 extremes. */
  brisk_reply_free(MUST(resp3, "SET", key, "9223372036854775807"));
  r = MUST(resp3, "INCRBY", key, "0");
  CHECK(brisk_reply_integer(r) == INT64_MAX);
  brisk_reply_free(r);
  brisk_reply_free(MUST(resp3, "SET", key, "-9223372036854775808"));
  r = MUST(resp2, "INCRBY", key, "0");
  CHECK(brisk_reply_integer(r) == INT64_MIN);
  brisk_reply_free(r);
  brisk_reply_free(MUST(resp3, "DEL", key));
}

static void nil_and_status(void) {
  brisk_reply *r;
  size_t len = 99;
  /* Missing key: RESP3 null, RESP2 null bulk. */
  r = MUST(resp3, "GET", bt_key(PREFIX, "missing"));
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_NIL);
  CHECK(brisk_reply_string(r, &len) == NULL && len == 0);
  brisk_reply_free(r);
  r = MUST(resp2, "GET", bt_key(PREFIX, "missing"));
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_NIL);
  brisk_reply_free(r);
  /* RESP2 null array. */
  r = MUST(resp2, "BLPOP", bt_key(PREFIX, "missing-list"), "0.01");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_NIL);
  CHECK(brisk_reply_length(r) == 0);
  brisk_reply_free(r);
  /* Simple strings. */
  r = MUST(resp3, "PING");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_STATUS);
  CHECK_REPLY_STR(r, "PONG");
  brisk_reply_free(r);
  r = MUST(resp2, "PING");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_STATUS);
  CHECK_REPLY_STR(r, "PONG");
  brisk_reply_free(r);
  /* PING with an argument is a bulk string. */
  r = MUST(resp3, "PING", "hello");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_STRING);
  CHECK_REPLY_STR(r, "hello");
  brisk_reply_free(r);
}

static void arrays(void) {
  const char *key = bt_key(PREFIX, "list");
  brisk_reply *r;
  brisk_reply_free(MUST(resp3, "DEL", key));
  brisk_reply_free(MUST(resp3, "RPUSH", key, "a", "bb", "", "dddd"));
  r = MUST(resp3, "LRANGE", key, "0", "-1");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_ARRAY);
  CHECK(brisk_reply_length(r) == 4);
  CHECK_REPLY_STR(brisk_reply_element(r, 0), "a");
  CHECK_REPLY_STR(brisk_reply_element(r, 1), "bb");
  CHECK_REPLY_STR(brisk_reply_element(r, 2), "");
  CHECK_REPLY_STR(brisk_reply_element(r, 3), "dddd");
  CHECK(brisk_reply_element(r, 4) == NULL);
  CHECK(brisk_reply_element(r, (size_t)-1) == NULL);
  brisk_reply_free(r);
  /* Empty array. */
  r = MUST(resp2, "LRANGE", bt_key(PREFIX, "nolist"), "0", "-1");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_ARRAY);
  CHECK(brisk_reply_length(r) == 0);
  CHECK(brisk_reply_element(r, 0) == NULL);
  brisk_reply_free(r);
  brisk_reply_free(MUST(resp3, "DEL", key));

  /* Nested arrays with mixed types from a script. */
  r = MUST(resp3, "EVAL", "return {1, {2, 'x', {}}, 'y', -7}", "0");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_ARRAY);
  CHECK(brisk_reply_length(r) == 4);
  CHECK(brisk_reply_integer(brisk_reply_element(r, 0)) == 1);
  {
    const brisk_reply *inner = brisk_reply_element(r, 1);
    CHECK(brisk_reply_type_of(inner) == BRISK_REPLY_ARRAY);
    CHECK(brisk_reply_length(inner) == 3);
    CHECK(brisk_reply_integer(brisk_reply_element(inner, 0)) == 2);
    CHECK_REPLY_STR(brisk_reply_element(inner, 1), "x");
    CHECK(brisk_reply_type_of(brisk_reply_element(inner, 2)) == BRISK_REPLY_ARRAY);
    CHECK(brisk_reply_length(brisk_reply_element(inner, 2)) == 0);
    CHECK(brisk_reply_element(inner, 3) == NULL);
  }
  CHECK_REPLY_STR(brisk_reply_element(r, 2), "y");
  CHECK(brisk_reply_integer(brisk_reply_element(r, 3)) == -7);
  brisk_reply_free(r);
}

static void maps(void) {
  const char *key = bt_key(PREFIX, "hash");
  brisk_reply *r;
  size_t i;
  int seen_f1 = 0, seen_f2 = 0;
  brisk_reply_free(MUST(resp3, "DEL", key));
  brisk_reply_free(MUST(resp3, "HSET", key, "f1", "v1", "f2", "v2"));
  r = MUST(resp3, "HGETALL", key);
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_MAP);
  CHECK(brisk_reply_length(r) == 4); /* 2 x pairs */
  for (i = 0; i + 1 < brisk_reply_length(r); i += 2) {
    const brisk_reply *k = brisk_reply_element(r, i);
    const brisk_reply *v = brisk_reply_element(r, i + 1);
    if (bt_reply_is(k, "f1")) {
      seen_f1++;
      CHECK_REPLY_STR(v, "v1");
    } else if (bt_reply_is(k, "f2")) {
      seen_f2++;
      CHECK_REPLY_STR(v, "v2");
    } else {
      bt_fail(__FILE__, __LINE__, "unexpected field in HGETALL");
    }
  }
  CHECK(seen_f1 == 1 && seen_f2 == 1);
  CHECK(brisk_reply_element(r, 4) == NULL);
  brisk_reply_free(r);

  /* RESP2: a flat array of the same 4 strings. */
  r = MUST(resp2, "HGETALL", key);
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_ARRAY);
  CHECK(brisk_reply_length(r) == 4);
  brisk_reply_free(r);

  /* An empty map. */
  r = MUST(resp3, "HGETALL", bt_key(PREFIX, "nohash"));
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_MAP);
  CHECK(brisk_reply_length(r) == 0);
  brisk_reply_free(r);

  /* HELLO's answer is a map with nested values. */
  r = MUST(resp3, "HELLO");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_MAP);
  CHECK(brisk_reply_length(r) >= 14);
  CHECK_REPLY_STR(brisk_reply_element(r, 0), "server");
  brisk_reply_free(r);
  brisk_reply_free(MUST(resp3, "DEL", key));
}

static void sets(void) {
  const char *key = bt_key(PREFIX, "set");
  brisk_reply *r;
  size_t i;
  int mask = 0;
  brisk_reply_free(MUST(resp3, "DEL", key));
  brisk_reply_free(MUST(resp3, "SADD", key, "a", "b", "c"));
  r = MUST(resp3, "SMEMBERS", key);
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_SET);
  CHECK(brisk_reply_length(r) == 3);
  for (i = 0; i < brisk_reply_length(r); i++) {
    const brisk_reply *e = brisk_reply_element(r, i);
    if (bt_reply_is(e, "a")) mask |= 1;
    if (bt_reply_is(e, "b")) mask |= 2;
    if (bt_reply_is(e, "c")) mask |= 4;
  }
  CHECK(mask == 7);
  brisk_reply_free(r);
  r = MUST(resp2, "SMEMBERS", key);
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_ARRAY);
  CHECK(brisk_reply_length(r) == 3);
  brisk_reply_free(r);
  brisk_reply_free(MUST(resp3, "DEL", key));
}

static void doubles(void) {
  const char *key = bt_key(PREFIX, "zset");
  brisk_reply *r;
  brisk_reply_free(MUST(resp3, "DEL", key));
  brisk_reply_free(MUST(resp3, "ZADD", key, "1.5", "m1", "+inf", "top", "-inf", "bottom",
                        "-0.25", "neg"));
  r = MUST(resp3, "ZSCORE", key, "m1");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_DOUBLE);
  CHECK(brisk_reply_double(r) == 1.5);
  CHECK_REPLY_STR(r, "1.5"); /* the server's text */
  CHECK(brisk_reply_integer(r) == 0);
  brisk_reply_free(r);
  r = MUST(resp3, "ZSCORE", key, "top");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_DOUBLE);
  CHECK(isinf(brisk_reply_double(r)) && brisk_reply_double(r) > 0);
  CHECK_REPLY_STR(r, "inf");
  brisk_reply_free(r);
  r = MUST(resp3, "ZSCORE", key, "bottom");
  CHECK(isinf(brisk_reply_double(r)) && brisk_reply_double(r) < 0);
  CHECK_REPLY_STR(r, "-inf");
  brisk_reply_free(r);
  r = MUST(resp3, "ZSCORE", key, "neg");
  CHECK(brisk_reply_double(r) == -0.25);
  brisk_reply_free(r);
  /* Missing member: null. */
  r = MUST(resp3, "ZSCORE", key, "nobody");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_NIL);
  CHECK(brisk_reply_double(r) == 0.0);
  brisk_reply_free(r);
  /* WITHSCORES under RESP3: pairs [member, double]. */
  r = MUST(resp3, "ZRANGE", key, "0", "-1", "WITHSCORES");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_ARRAY);
  CHECK(brisk_reply_length(r) == 4);
  {
    const brisk_reply *first = brisk_reply_element(r, 0);
    CHECK(brisk_reply_type_of(first) == BRISK_REPLY_ARRAY);
    CHECK_REPLY_STR(brisk_reply_element(first, 0), "bottom");
    CHECK(brisk_reply_type_of(brisk_reply_element(first, 1)) == BRISK_REPLY_DOUBLE);
  }
  brisk_reply_free(r);
  /* RESP2: the score is a bulk string; brisk_reply_double does not parse strings. */
  r = MUST(resp2, "ZSCORE", key, "m1");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_STRING);
  CHECK_REPLY_STR(r, "1.5");
  CHECK(brisk_reply_double(r) == 0.0);
  brisk_reply_free(r);
  r = MUST(resp2, "ZSCORE", key, "top");
  CHECK_REPLY_STR(r, "inf");
  brisk_reply_free(r);
  /* A script's double. */
  r = MUST(resp3, "EVAL", "redis.setresp(3); return {double=3.25}", "0");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_DOUBLE);
  CHECK(brisk_reply_double(r) == 3.25);
  brisk_reply_free(r);
  brisk_reply_free(MUST(resp3, "DEL", key));
}

static void booleans(void) {
  brisk_reply *r;
  r = MUST(resp3, "EVAL", "redis.setresp(3); return true", "0");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_BOOL);
  CHECK(brisk_reply_integer(r) == 1);
  CHECK(brisk_reply_string(r, NULL) == NULL);
  brisk_reply_free(r);
  r = MUST(resp3, "EVAL", "redis.setresp(3); return false", "0");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_BOOL);
  CHECK(brisk_reply_integer(r) == 0);
  brisk_reply_free(r);
  /* RESP2: the server turns RESP3 booleans into the integers 1 and 0 ... */
  r = MUST(resp2, "EVAL", "redis.setresp(3); return true", "0");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_INTEGER);
  CHECK(brisk_reply_integer(r) == 1);
  brisk_reply_free(r);
  r = MUST(resp2, "EVAL", "redis.setresp(3); return false", "0");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_INTEGER);
  CHECK(brisk_reply_integer(r) == 0);
  brisk_reply_free(r);
  /* ... while a RESP2 script's false is nil. */
  r = MUST(resp2, "EVAL", "return false", "0");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_NIL);
  brisk_reply_free(r);
}

static void verbatim(void) {
  brisk_reply *r;
  char format[4] = "xyz";
  size_t len = 0;
  const char *text;
  r = MUST(resp3, "CLIENT", "INFO");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_VERBATIM);
  CHECK(brisk_reply_verbatim_format(r, format));
  CHECK(strcmp(format, "txt") == 0);
  text = brisk_reply_string(r, &len);
  /* The text without its "txt:" prefix. */
  CHECK(text != NULL && strncmp(text, "id=", 3) == 0);
  CHECK(text != NULL && strlen(text) == len);
  brisk_reply_free(r);

  r = MUST(resp3, "LOLWUT", "VERSION", "5", "1", "1", "1");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_VERBATIM);
  CHECK(brisk_reply_verbatim_format(r, format) && strcmp(format, "txt") == 0);
  CHECK(brisk_reply_string(r, &len) != NULL && len > 0);
  brisk_reply_free(r);

  /* RESP2: a plain bulk string, and no verbatim format. */
  r = MUST(resp2, "CLIENT", "INFO");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_STRING);
  CHECK(!brisk_reply_verbatim_format(r, format));
  CHECK(format[0] == '\0');
  text = brisk_reply_string(r, NULL);
  CHECK(text != NULL && strncmp(text, "id=", 3) == 0);
  brisk_reply_free(r);
}

static void big_numbers(void) {
  static const char big[] = "1234567890123456789012345678901234567890";
  brisk_reply *r;
  r = MUST(resp3, "EVAL",
           "redis.setresp(3); return {big_number='1234567890123456789012345678901234567890'}",
           "0");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_BIGNUM);
  CHECK_REPLY_STR(r, big);
  CHECK(brisk_reply_integer(r) == 0);
  brisk_reply_free(r);
  r = MUST(resp3, "EVAL", "redis.setresp(3); return {big_number='-42'}", "0");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_BIGNUM);
  CHECK_REPLY_STR(r, "-42");
  brisk_reply_free(r);
  /* RESP2: a bulk string with the digits. */
  r = MUST(resp2, "EVAL",
           "redis.setresp(3); return {big_number='1234567890123456789012345678901234567890'}",
           "0");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_STRING);
  CHECK_REPLY_STR(r, big);
  brisk_reply_free(r);
}

static void error_elements(void) {
  /* A script returning an error reply fails the call with the server's text. */
  brisk_reply *r = (brisk_reply *)&r;
  CHECK_STATUS(BT_CMD(resp3, &r, "EVAL", "return redis.error_reply('MYERR custom text')", "0"),
               BRISK_ERR_SERVER);
  CHECK(r == NULL);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "MYERR custom text");
  /* Inside an array (a script's nested error table) it is an ERROR element. */
  r = MUST(resp3, "EVAL", "return {1, redis.error_reply('INNER failure')}", "0");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_ARRAY);
  CHECK(brisk_reply_length(r) == 2);
  CHECK(brisk_reply_type_of(brisk_reply_element(r, 1)) == BRISK_REPLY_ERROR);
  CHECK_STR_CONTAINS(brisk_reply_string(brisk_reply_element(r, 1), NULL), "INNER failure");
  brisk_reply_free(r);
}

static void accessors_on_wrong_types(void) {
  brisk_reply *str = MUST(resp3, "PING", "text");
  brisk_reply *num = MUST(resp3, "STRLEN", bt_key(PREFIX, "none"));
  brisk_reply *arr = MUST(resp3, "EVAL", "return {'a'}", "0");
  char format[4] = "xyz";
  size_t len = 99;

  /* STRING: no integer, double, length, elements, verbatim format. */
  CHECK(brisk_reply_integer(str) == 0);
  CHECK(brisk_reply_double(str) == 0.0);
  CHECK(brisk_reply_length(str) == 0);
  CHECK(brisk_reply_element(str, 0) == NULL);
  CHECK(!brisk_reply_verbatim_format(str, format) && format[0] == '\0');
  CHECK(!brisk_reply_verbatim_format(str, NULL));
  /* INTEGER: no string. */
  CHECK(brisk_reply_type_of(num) == BRISK_REPLY_INTEGER);
  CHECK(brisk_reply_string(num, &len) == NULL && len == 0);
  CHECK(brisk_reply_string(num, NULL) == NULL);
  CHECK(brisk_reply_double(num) == 0.0);
  CHECK(brisk_reply_length(num) == 0);
  CHECK(brisk_reply_element(num, 0) == NULL);
  /* ARRAY: no string, integer, double. */
  len = 99;
  CHECK(brisk_reply_string(arr, &len) == NULL && len == 0);
  CHECK(brisk_reply_integer(arr) == 0);
  CHECK(brisk_reply_double(arr) == 0.0);
  CHECK(brisk_reply_length(arr) == 1);
  brisk_reply_free(str);
  brisk_reply_free(num);
  brisk_reply_free(arr);
}

static void null_reply(void) {
  char format[4] = "xyz";
  size_t len = 99;
  CHECK(brisk_reply_type_of(NULL) == BRISK_REPLY_NIL);
  CHECK(brisk_reply_string(NULL, &len) == NULL && len == 0);
  CHECK(brisk_reply_string(NULL, NULL) == NULL);
  CHECK(brisk_reply_integer(NULL) == 0);
  CHECK(brisk_reply_double(NULL) == 0.0);
  CHECK(brisk_reply_length(NULL) == 0);
  CHECK(brisk_reply_element(NULL, 0) == NULL);
  CHECK(!brisk_reply_verbatim_format(NULL, format) && format[0] == '\0');
  CHECK(!brisk_reply_verbatim_format(NULL, NULL));
  brisk_reply_free(NULL);
}

/* RESP3 push frames (here: client-side-caching invalidations) arrive between replies; they
 * must never be handed to a caller as the reply to its command. */
static void push_frames_are_not_replies(void) {
  const char *key = bt_key(PREFIX, "tracked");
  brisk_session *s = NULL;
  brisk_reply *r = NULL;
  int i;
  REQUIRE_OK(brisk_session_new(resp3, &s));
  CHECK_OK(brisk_session_command(s, 3, (const char *const[]){"CLIENT", "TRACKING", "ON"}, NULL,
                                 NULL));
  CHECK_OK(BT_CMD(resp3, NULL, "SET", key, "1"));
  for (i = 0; i < 3; i++) {
    char value[8];
    snprintf(value, sizeof value, "%d", i + 2);
    /* Read the key on the tracking connection, then change it from another one: the server
     * pushes an invalidation to the tracking connection. */
    CHECK_OK(brisk_session_command(s, 2, (const char *const[]){"GET", key}, NULL, NULL));
    CHECK_OK(BT_CMD(resp2, NULL, "SET", key, value));
    CHECK_OK(brisk_session_command(s, 1, (const char *const[]){"PING"}, NULL, &r));
    CHECK(brisk_reply_type_of(r) == BRISK_REPLY_STATUS);
    CHECK_REPLY_STR(r, "PONG");
    brisk_reply_free(r);
    r = NULL;
    CHECK_OK(brisk_session_command(s, 2, (const char *const[]){"GET", key}, NULL, &r));
    CHECK_REPLY_STR(r, value);
    brisk_reply_free(r);
    r = NULL;
  }
  brisk_session_free(s);
  CHECK_OK(BT_CMD(resp3, NULL, "DEL", key));
}

static void replies_outlive_their_client(void) {
  /* A reply is independent of the client that produced it. */
  brisk_client *c = bt_client_tcp(3);
  brisk_reply *r = MUST(c, "EVAL", "return {'kept', {'nested'}}", "0");
  brisk_client_free(c);
  CHECK(brisk_reply_length(r) == 2);
  CHECK_REPLY_STR(brisk_reply_element(r, 0), "kept");
  CHECK_REPLY_STR(brisk_reply_element(brisk_reply_element(r, 1), 0), "nested");
  brisk_reply_free(r);
}

/* brisk_reply_elements: every type described in one call, the same as the one-value accessors
 * say, in chunks, and nothing for what is not an aggregate. */
static void elements_in_one_call(void) {
  const char *key = bt_key(PREFIX, "elements");
  brisk_reply_item items[16];
  brisk_reply_item chunk[7];
  brisk_reply *r;
  size_t i, n, total;
  r = MUST(resp3, "EVAL",
           "redis.setresp(3); return {7, 'str', {double=2.5}, true, {big_number='123'},"
           " redis.status_reply('FINE'), {map={a=1}}, {set={'x'}}, redis.error_reply('MYERR boom'),"
           " {}, {verbatim_string={format='txt', string='hi'}}, false}",
           "0");
  CHECK(brisk_reply_type_of(r) == BRISK_REPLY_ARRAY);
  n = brisk_reply_elements(r, 0, items, 16);
  CHECK(n == 12 && n == brisk_reply_length(r));
  for (i = 0; i < n; i++) {
    size_t len = 0;
    const char *text = brisk_reply_string(items[i].reply, &len);
    CHECK(items[i].reply == brisk_reply_element(r, i));
    CHECK(items[i].kind == brisk_reply_type_of(items[i].reply));
    CHECK(items[i].str == text);
    CHECK(items[i].integer == brisk_reply_integer(items[i].reply));
    CHECK(items[i].number == brisk_reply_double(items[i].reply));
    CHECK(items[i].len == (text != NULL ? len : brisk_reply_length(items[i].reply)));
  }
  CHECK(items[0].kind == BRISK_REPLY_INTEGER && items[0].integer == 7 && items[0].str == NULL);
  CHECK(items[1].kind == BRISK_REPLY_STRING && items[1].len == 3);
  CHECK(items[1].str != NULL && memcmp(items[1].str, "str", 4) == 0);
  CHECK(items[2].kind == BRISK_REPLY_DOUBLE && items[2].number == 2.5);
  CHECK(items[2].str != NULL && strcmp(items[2].str, "2.5") == 0);
  CHECK(items[3].kind == BRISK_REPLY_BOOL && items[3].integer == 1);
  CHECK(items[4].kind == BRISK_REPLY_BIGNUM && items[4].len == 3);
  CHECK(items[5].kind == BRISK_REPLY_STATUS && items[5].str && strcmp(items[5].str, "FINE") == 0);
  CHECK(items[6].kind == BRISK_REPLY_MAP && items[6].len == 2 && items[6].str == NULL);
  CHECK(items[7].kind == BRISK_REPLY_SET && items[7].len == 1);
  CHECK(items[8].kind == BRISK_REPLY_ERROR && items[8].str != NULL &&
        strcmp(items[8].str, "MYERR boom") == 0);
  CHECK(items[9].kind == BRISK_REPLY_ARRAY && items[9].len == 0);
  CHECK(items[10].kind == BRISK_REPLY_VERBATIM && items[10].len == 2);
  CHECK(items[10].str != NULL && strcmp(items[10].str, "hi") == 0);
  CHECK(items[11].kind == BRISK_REPLY_BOOL && items[11].integer == 0);
  /* Descending into a nested aggregate: the map's key and value. */
  CHECK(brisk_reply_elements(items[6].reply, 0, chunk, 7) == 2);
  CHECK(chunk[0].kind == BRISK_REPLY_STRING && strcmp(chunk[0].str, "a") == 0);
  CHECK(chunk[1].kind == BRISK_REPLY_INTEGER && chunk[1].integer == 1);
  /* Chunks: the last one is short; past the end is nothing; so are scalars, NULL and cap 0. */
  CHECK(brisk_reply_elements(r, 10, chunk, 7) == 2);
  CHECK(chunk[0].reply == items[10].reply && chunk[1].reply == items[11].reply);
  CHECK(brisk_reply_elements(r, 12, chunk, 7) == 0);
  CHECK(brisk_reply_elements(r, (size_t)-1, chunk, 7) == 0);
  CHECK(brisk_reply_elements(r, 0, chunk, 0) == 0);
  CHECK(brisk_reply_elements(r, 0, NULL, 7) == 0);
  CHECK(brisk_reply_elements(items[1].reply, 0, chunk, 7) == 0);
  CHECK(brisk_reply_elements(NULL, 0, chunk, 7) == 0);
  brisk_reply_free(r);

  /* A long list read in chunks sees every element once, in order. */
  brisk_reply_free(MUST(resp3, "DEL", key));
  for (i = 0; i < 100; i++) {
    char value[16];
    snprintf(value, sizeof value, "v%zu", i);
    brisk_reply_free(MUST(resp3, "RPUSH", key, value));
  }
  r = MUST(resp2, "LRANGE", key, "0", "-1");
  total = 0;
  while ((n = brisk_reply_elements(r, total, chunk, 7)) > 0) {
    for (i = 0; i < n; i++) {
      char want[16];
      snprintf(want, sizeof want, "v%zu", total + i);
      CHECK(chunk[i].kind == BRISK_REPLY_STRING && strcmp(chunk[i].str, want) == 0);
      CHECK(chunk[i].len == strlen(want));
    }
    total += n;
  }
  CHECK(total == 100);
  brisk_reply_free(r);
  brisk_reply_free(MUST(resp3, "DEL", key));
}

/* brisk_reply_strings: a run of elements' strings in one call, as brisk_reply_string gives
   them one by one; the end of the aggregate, non-text elements and NULL outputs. */
static void strings_in_bulk(void) {
  const char *key = bt_key(PREFIX, "bulk");
  const char *strs[8];
  size_t lens[8];
  brisk_reply *r;
  brisk_reply_free(MUST(resp3, "DEL", key));
  brisk_reply_free(MUST(resp3, "RPUSH", key, "a", "bb", "", "dddd"));
  r = MUST(resp3, "LRANGE", key, "0", "-1");
  CHECK(brisk_reply_strings(r, 0, 8, strs, lens) == 4);
  for (size_t i = 0; i < 4; i++) {
    size_t one_len = 99;
    const char *one = brisk_reply_string(brisk_reply_element(r, i), &one_len);
    CHECK(strs[i] == one);
    CHECK(lens[i] == one_len);
  }
  CHECK(brisk_reply_strings(r, 1, 2, strs, lens) == 2);
  CHECK(lens[0] == 2 && memcmp(strs[0], "bb", 2) == 0);
  CHECK(lens[1] == 0 && strs[1] != NULL && strs[1][0] == '\0');
  CHECK(brisk_reply_strings(r, 3, 8, strs, NULL) == 1);
  CHECK(strcmp(strs[0], "dddd") == 0);
  CHECK(brisk_reply_strings(r, 2, 8, NULL, lens) == 2);
  CHECK(lens[0] == 0 && lens[1] == 4);
  CHECK(brisk_reply_strings(r, 4, 8, strs, lens) == 0);
  CHECK(brisk_reply_strings(r, (size_t)-1, 8, strs, lens) == 0);
  CHECK(brisk_reply_strings(r, 0, 0, strs, lens) == 0);
  /* Not an aggregate, or NULL: nothing read. */
  CHECK(brisk_reply_strings(brisk_reply_element(r, 0), 0, 8, strs, lens) == 0);
  CHECK(brisk_reply_strings(NULL, 0, 8, strs, lens) == 0);
  brisk_reply_free(r);
  brisk_reply_free(MUST(resp3, "DEL", key));
  /* Elements without text: NULL and 0. */
  r = MUST(resp3, "EVAL", "return {1, 'x', {}}", "0");
  strs[0] = strs[2] = "sentinel";
  CHECK(brisk_reply_strings(r, 0, 8, strs, lens) == 3);
  CHECK(strs[0] == NULL && lens[0] == 0);
  CHECK(lens[1] == 1 && strcmp(strs[1], "x") == 0);
  CHECK(strs[2] == NULL && lens[2] == 0);
  brisk_reply_free(r);
}

/* brisk_config_set_max_reply_bytes: a reply larger than the limit fails with PROTOCOL naming
   the limit, whatever the protocol; the connection it was read on is dropped (never reused half
   read), and the next command works. Argument checks. */
static void a_reply_over_max_reply_bytes_fails_and_the_next_command_works(void) {
  const char *key = bt_key(PREFIX, "limit");
  const char *list = bt_key(PREFIX, "limitlist");
  char value[4096];
  memset(value, 'v', sizeof value);
  {
    const char *argv[] = {"SET", key, value};
    const size_t lens[] = {3, strlen(key), sizeof value};
    CHECK_OK(brisk_command(resp3, 3, argv, lens, NULL));
  }
  brisk_reply_free(MUST(resp3, "DEL", list));
  for (int i = 0; i < 200; i++) brisk_reply_free(MUST(resp3, "RPUSH", list, "0123456789"));
  CHECK_STATUS(brisk_config_set_max_reply_bytes(NULL, 1024), BRISK_ERR_INVALID_ARGUMENT);
  BT_FOR_EACH_PROTOCOL(protocol) {
    brisk_config *cfg = bt_config_at(bt_env_port("STANDALONE_PORT"));
    REQUIRE_OK(brisk_config_set_protocol(cfg, protocol));
    CHECK_OK(brisk_config_set_max_reply_bytes(cfg, 1024));
    brisk_client *c = bt_client_from(cfg);
    brisk_reply *r = (brisk_reply *)0x1;
    /* One string over the limit, then an aggregate whose elements are each small. */
    CHECK_STATUS(BT_CMD(c, &r, "GET", key), BRISK_ERR_PROTOCOL);
    CHECK(r == NULL);
    CHECK_STR_CONTAINS(brisk_last_error_message(), "max_reply_bytes");
    CHECK_CMD_REPLY(c, "PONG", "PING");
    CHECK_STATUS(BT_CMD(c, &r, "LRANGE", list, "0", "-1"), BRISK_ERR_PROTOCOL);
    CHECK_STR_CONTAINS(brisk_last_error_message(), "max_reply_bytes");
    CHECK_CMD_REPLY(c, "0123456789", "LINDEX", list, "0");
    /* Under the limit: whole. */
    r = MUST(c, "LRANGE", list, "0", "9");
    CHECK(brisk_reply_length(r) == 10);
    brisk_reply_free(r);
    brisk_client_free(c);
  }
  brisk_reply_free(MUST(resp3, "DEL", key, list));
}

int main(int argc, char **argv) {
  bt_init(argc, argv);
  resp3 = bt_client_tcp(3);
  resp2 = bt_client_tcp(2);
  RUN(strings_with_nuls);
  RUN(large_value_round_trip);
  RUN(integers);
  RUN(nil_and_status);
  RUN(arrays);
  RUN(strings_in_bulk);
  RUN(maps);
  RUN(sets);
  RUN(doubles);
  RUN(booleans);
  RUN(verbatim);
  RUN(big_numbers);
  RUN(error_elements);
  RUN(elements_in_one_call);
  RUN(accessors_on_wrong_types);
  RUN(null_reply);
  RUN(push_frames_are_not_replies);
  RUN(replies_outlive_their_client);
  RUN(a_reply_over_max_reply_bytes_fails_and_the_next_command_works);
  brisk_client_free(resp3);
  brisk_client_free(resp2);
  return bt_finish();
}
