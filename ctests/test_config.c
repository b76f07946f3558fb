/*
 * test_config: the config builder from C. NULL handling for every setter, URL parsing (good
 * and bad), out-pointers on failure, *_free(NULL). No server needed: nothing here connects.
 */
#include "brisk_test.h"

/* The status is INVALID_ARGUMENT and the message names `arg`. */
#define CHECK_INVALID(call, arg)                                                 \
  do {                                                                           \
    if (CHECK_STATUS(call, BRISK_ERR_INVALID_ARGUMENT))                          \
      CHECK_STR_CONTAINS(brisk_last_error_message(), arg);                       \
  } while (0)

static void null_config_is_invalid_for_every_setter(void) {
  CHECK_INVALID(brisk_config_set_url(NULL, "redis://127.0.0.1"), "cfg");
  CHECK_INVALID(brisk_config_set_address(NULL, "127.0.0.1", 6379), "cfg");
  CHECK_INVALID(brisk_config_set_unix_path(NULL, "/tmp/x.sock"), "cfg");
  CHECK_INVALID(brisk_config_set_username(NULL, "u"), "cfg");
  CHECK_INVALID(brisk_config_set_password(NULL, "p"), "cfg");
  CHECK_INVALID(brisk_config_set_db(NULL, 1), "cfg");
  CHECK_INVALID(brisk_config_set_client_name(NULL, "n"), "cfg");
  CHECK_INVALID(brisk_config_set_protocol(NULL, 3), "cfg");
  CHECK_INVALID(brisk_config_set_connect_timeout_ms(NULL, 1), "cfg");
  CHECK_INVALID(brisk_config_set_read_timeout_ms(NULL, 1), "cfg");
  CHECK_INVALID(brisk_config_set_write_timeout_ms(NULL, 1), "cfg");
  CHECK_INVALID(brisk_config_set_tcp_keepalive(NULL, 30, 5, 3), "cfg");
  CHECK_INVALID(brisk_config_set_pool_size(NULL, 4), "cfg");
  CHECK_INVALID(brisk_config_set_pool_max_wait_ms(NULL, 100), "cfg");
  CHECK_INVALID(brisk_config_set_tls(NULL, true), "cfg");
  CHECK_INVALID(brisk_config_set_tls_ca_file(NULL, "/tmp/ca.pem"), "cfg");
  CHECK_INVALID(brisk_config_set_tls_client_cert(NULL, "/tmp/c.pem", "/tmp/k.pem"), "cfg");
  CHECK_INVALID(brisk_config_set_tls_server_name(NULL, "localhost"), "cfg");
  CHECK_INVALID(brisk_config_set_tls_insecure_skip_verify(NULL, true), "cfg");
}

static void null_string_arguments(void) {
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  /* Required strings: INVALID_ARGUMENT naming the parameter. */
  CHECK_INVALID(brisk_config_set_url(cfg, NULL), "url");
  CHECK_INVALID(brisk_config_set_address(cfg, NULL, 6379), "host");
  CHECK_INVALID(brisk_config_set_unix_path(cfg, NULL), "path");
  CHECK_INVALID(brisk_config_set_tls_ca_file(cfg, NULL), "pem_path");
  CHECK_INVALID(brisk_config_set_tls_client_cert(cfg, NULL, "/tmp/k.pem"), "cert_pem_path");
  CHECK_INVALID(brisk_config_set_tls_client_cert(cfg, "/tmp/c.pem", NULL), "key_pem_path");
  CHECK_INVALID(brisk_config_set_tls_server_name(cfg, NULL), "name");
  /* Documented as "NULL clears it". */
  CHECK_OK(brisk_config_set_username(cfg, NULL));
  CHECK_OK(brisk_config_set_password(cfg, NULL));
  CHECK_OK(brisk_config_set_client_name(cfg, NULL));
  CHECK_OK(brisk_config_set_username(cfg, ""));
  CHECK_OK(brisk_config_set_client_name(cfg, ""));
  brisk_config_free(cfg);
}

static void bad_values(void) {
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  CHECK_INVALID(brisk_config_set_address(cfg, "", 6379), "host");
  CHECK_INVALID(brisk_config_set_address(cfg, "127.0.0.1", 0), "port");
  CHECK_INVALID(brisk_config_set_unix_path(cfg, ""), "path");
  CHECK_INVALID(brisk_config_set_protocol(cfg, 0), "protocol");
  CHECK_INVALID(brisk_config_set_protocol(cfg, 1), "protocol");
  CHECK_INVALID(brisk_config_set_protocol(cfg, 4), "protocol");
  CHECK_INVALID(brisk_config_set_pool_size(cfg, 0), "pool_size");
  CHECK_INVALID(brisk_config_set_tcp_keepalive(cfg, 30, 0, 3), "interval");
  CHECK_INVALID(brisk_config_set_tcp_keepalive(cfg, 30, 5, 0), "probes");
  CHECK_INVALID(brisk_config_set_client_name(cfg, "has space"), "client_name");
  CHECK_INVALID(brisk_config_set_client_name(cfg, "new\nline"), "client_name");
  /* Non-UTF-8 host. */
  CHECK_INVALID(brisk_config_set_address(cfg, "\xff\xfe", 6379), "host");

  /* The good ones. */
  CHECK_OK(brisk_config_set_address(cfg, "127.0.0.1", 6379));
  CHECK_OK(brisk_config_set_address(cfg, "::1", 6379));
  CHECK_OK(brisk_config_set_address(cfg, "[::1]", 6379));
  CHECK_OK(brisk_config_set_address(cfg, "localhost", 65535));
  CHECK_OK(brisk_config_set_unix_path(cfg, "/tmp/redis.sock"));
  CHECK_OK(brisk_config_set_protocol(cfg, 2));
  CHECK_OK(brisk_config_set_protocol(cfg, 3));
  CHECK_OK(brisk_config_set_db(cfg, 15));
  CHECK_OK(brisk_config_set_client_name(cfg, "brisk-ctest"));
  CHECK_OK(brisk_config_set_connect_timeout_ms(cfg, 0));
  CHECK_OK(brisk_config_set_read_timeout_ms(cfg, 0));
  CHECK_OK(brisk_config_set_write_timeout_ms(cfg, UINT32_MAX));
  CHECK_OK(brisk_config_set_tcp_keepalive(cfg, 0, 0, 0)); /* off */
  CHECK_OK(brisk_config_set_tcp_keepalive(cfg, 60, 10, 5));
  CHECK_OK(brisk_config_set_pool_size(cfg, 1));
  CHECK_OK(brisk_config_set_pool_max_wait_ms(cfg, 0));
  CHECK_OK(brisk_config_set_tls(cfg, false));
  CHECK_OK(brisk_config_set_tls_insecure_skip_verify(cfg, false));
  brisk_config_free(cfg);
}

static void good_urls(void) {
  static const char *const urls[] = {
      "redis://127.0.0.1",
      "redis://127.0.0.1:6379",
      "redis://localhost:6380/2",
      "redis://:pass@127.0.0.1:6379",
      "redis://user:pass@127.0.0.1:6379/15",
      "redis://us%40er:p%3Ass%2F@127.0.0.1:6379",
      "redis://[::1]:6379",
      "redis://[::1]",
      "REDIS://127.0.0.1:6379",
      "rediss://127.0.0.1:6380",
      "rediss://localhost:6380?tls_insecure_skip_verify=true&tls_server_name=redis.test",
      "unix:///tmp/redis.sock",
      "unix:///tmp/redis.sock?db=3",
      "unix:///tmp/dir%20with%20space/redis.sock",
      "redis://127.0.0.1:6379?connect_timeout=100&read_timeout=200&write_timeout=300",
      "redis://127.0.0.1:6379?pool_size=4&pool_min_idle=1&pool_max_wait=50",
      "redis://127.0.0.1:6379?pool_idle_timeout=1000&pool_max_lifetime=0",
      "redis://127.0.0.1:6379?health_check_interval=1000&command_deadline=2000",
      "redis://127.0.0.1:6379?client_name=brisk-ctest&protocol=2&max_retries=0",
      "redis://127.0.0.1:6379?db=4",
      "redis://127.0.0.1:6379/4?db=4",
      "redis://127.0.0.1:6379?",
  };
  size_t i;
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  for (i = 0; i < sizeof urls / sizeof urls[0]; i++) {
    brisk_status st = brisk_config_set_url(cfg, urls[i]);
    if (st != BRISK_OK)
      bt_fail(__FILE__, __LINE__, "brisk_config_set_url(\"%s\") = %s: %s", urls[i],
              brisk_status_name(st), brisk_last_error_message());
  }
  brisk_config_free(cfg);
}

static void bad_urls(void) {
  static const struct {
    const char *url;
    const char *named; /* the message must name the part at fault */
  } cases[] = {
      {"", "scheme"},
      {"127.0.0.1:6379", "scheme"},
      {"http://127.0.0.1:6379", "scheme"},
      {"redis://127.0.0.1:notaport", "port"},
      {"redis://127.0.0.1:70000", "port"},
      {"redis://127.0.0.1:0", "port"},
      {"redis://127.0.0.1:-1", "port"},
      {"redis://127.0.0.1:6379/notadb", "db"},
      {"redis://127.0.0.1:6379?bogus_option=1", "bogus_option"},
      {"redis://127.0.0.1:6379?read_timeout=soon", "read_timeout"},
      {"redis://127.0.0.1:6379?connect_timeout=-5", "connect_timeout"},
      {"redis://127.0.0.1:6379?protocol=4", "protocol"},
      {"redis://127.0.0.1:6379?pool_size=0", "pool_size"},
      {"redis://127.0.0.1:6379?tls_insecure_skip_verify=maybe", "tls_insecure_skip_verify"},
      {"redis://127.0.0.1:6379?read_timeout", "read_timeout"},
      {"redis://127.0.0.1:6379/1?db=2", "db"},
      {"redis://[::1:6379", "host"},
      {"redis://::1:6379", "host"},
      {"unix://", "path"},
      {"unix://host/tmp/x.sock", "host"},
      {"redis://127.0.0.1:6379#frag", "fragment"},
  };
  size_t i;
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    brisk_status st = brisk_config_set_url(cfg, cases[i].url);
    const char *msg = brisk_last_error_message();
    if (st != BRISK_ERR_INVALID_ARGUMENT)
      bt_fail(__FILE__, __LINE__, "brisk_config_set_url(\"%s\") = %s, expected INVALID_ARGUMENT",
              cases[i].url, brisk_status_name(st));
    else if (strstr(msg, cases[i].named) == NULL)
      bt_fail(__FILE__, __LINE__, "brisk_config_set_url(\"%s\"): message \"%s\" does not name %s",
              cases[i].url, msg, cases[i].named);
  }
  brisk_config_free(cfg);
}

/* No message ever contains the password, whatever part of the URL is wrong. */
static void password_never_in_messages(void) {
  static const char *const urls[] = {
      "redis://user:Sup3rS3cretPw@127.0.0.1:notaport",
      "redis://user:Sup3rS3cretPw@127.0.0.1:6379?unknown=1",
      "redis://user:Sup3rS3cretPw@127.0.0.1:6379/x",
      "redis://:Sup3rS3cretPw@127.0.0.1:0",
      "redis://user:Sup3rS3cretPw@[::1:6379",
      "redis://user:Sup3rS3cretPw%FF@127.0.0.1:6379",
      "bogus://user:Sup3rS3cretPw@127.0.0.1:6379",
      "rediss://user:Sup3rS3cretPw@127.0.0.1:6379?read_timeout=x",
      "redis://user:Sup3rS3cretPw@127.0.0.1:6379/1?db=2",
  };
  size_t i;
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  for (i = 0; i < sizeof urls / sizeof urls[0]; i++) {
    brisk_status st = brisk_config_set_url(cfg, urls[i]);
    const char *msg = brisk_last_error_message();
    CHECK(st == BRISK_ERR_INVALID_ARGUMENT);
    if (strstr(msg, "Sup3rS3cretPw") != NULL)
      bt_fail(__FILE__, __LINE__, "message for \"%s\" shows the password: \"%s\"", urls[i], msg);
  }
  brisk_config_free(cfg);
}

static void out_pointers_are_null_on_failure(void) {
  int dummy;
  brisk_client *client = (brisk_client *)&dummy;
  brisk_pipeline *pipe = (brisk_pipeline *)&dummy;
  brisk_session *session = (brisk_session *)&dummy;
  brisk_reply *reply = (brisk_reply *)&dummy;
  brisk_config *cfg;
  const char *argv[] = {"PING"};

  CHECK_INVALID(brisk_client_new(NULL, &client), "cfg");
  CHECK(client == NULL);

  cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  CHECK_INVALID(brisk_client_new(cfg, NULL), "out");

  /* An inconsistent config (TLS over a Unix socket) fails at brisk_client_new. */
  client = (brisk_client *)&dummy;
  CHECK_OK(brisk_config_set_unix_path(cfg, "/tmp/brisk-no-such.sock"));
  CHECK_OK(brisk_config_set_tls(cfg, true));
  CHECK_STATUS(brisk_client_new(cfg, &client), BRISK_ERR_INVALID_ARGUMENT);
  CHECK(client == NULL);

  /* An unreadable CA file fails at brisk_client_new too. */
  client = (brisk_client *)&dummy;
  CHECK_OK(brisk_config_set_address(cfg, "127.0.0.1", 6379));
  CHECK_OK(brisk_config_set_tls_ca_file(cfg, "/nonexistent/brisk-ca.pem"));
  CHECK_STATUS(brisk_client_new(cfg, &client), BRISK_ERR_TLS);
  CHECK(client == NULL);
  brisk_config_free(cfg);

  CHECK_INVALID(brisk_pipeline_new(NULL, &pipe), "client");
  CHECK(pipe == NULL);
  pipe = (brisk_pipeline *)&dummy;
  CHECK_INVALID(brisk_transaction_new(NULL, &pipe), "client");
  CHECK(pipe == NULL);
  CHECK_INVALID(brisk_session_new(NULL, &session), "client");
  CHECK(session == NULL);
  CHECK_INVALID(brisk_command(NULL, 1, argv, NULL, &reply), "client");
  CHECK(reply == NULL);
  reply = (brisk_reply *)&dummy;
  CHECK_INVALID(brisk_pipeline_exec(NULL, &reply), "p");
  CHECK(reply == NULL);
  reply = (brisk_reply *)&dummy;
  CHECK_INVALID(brisk_session_command(NULL, 1, argv, NULL, &reply), "s");
  CHECK(reply == NULL);
  CHECK_INVALID(brisk_pipeline_append(NULL, 1, argv, NULL), "p");
  CHECK_INVALID(brisk_ping(NULL), "client");
}

/* A setter that fails leaves the config as it was (checked by connecting in test_conn); here:
 * a config survives any number of failed calls and is still usable. */
static void failed_setters_leave_config_usable(void) {
  brisk_client *client = NULL;
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  CHECK_OK(brisk_config_set_url(cfg, "redis://127.0.0.1:6379/2"));
  CHECK_STATUS(brisk_config_set_url(cfg, "redis://127.0.0.1:6379?nope=1"),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_config_set_url(cfg, "rediss://127.0.0.1:1/x"), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_config_set_protocol(cfg, 9), BRISK_ERR_INVALID_ARGUMENT);
  /* The failed rediss:// must not have switched TLS on: a plain client builds without any
   * certificate store. */
  CHECK_OK(brisk_client_new(cfg, &client));
  CHECK(client != NULL);
  brisk_client_free(client);
  brisk_config_free(cfg);
}

static void free_null_is_a_no_op(void) {
  brisk_config_free(NULL);
  brisk_client_free(NULL);
  brisk_reply_free(NULL);
  brisk_pipeline_free(NULL);
  brisk_session_free(NULL);
  CHECK(1);
}

static void config_is_copied_by_client_new(void) {
  brisk_client *a = NULL;
  brisk_client *b = NULL;
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  CHECK_OK(brisk_config_set_address(cfg, "127.0.0.1", 6379));
  CHECK_OK(brisk_client_new(cfg, &a));
  CHECK_OK(brisk_client_new(cfg, &b)); /* reused */
  brisk_config_free(cfg);                /* freed while the clients live */
  CHECK(a != NULL && b != NULL && a != b);
  brisk_client_free(a);
  brisk_client_free(b);
}

int main(int argc, char **argv) {
  bt_init(argc, argv);
  RUN(null_config_is_invalid_for_every_setter);
  RUN(null_string_arguments);
  RUN(bad_values);
  RUN(good_urls);
  RUN(bad_urls);
  RUN(password_never_in_messages);
  RUN(out_pointers_are_null_on_failure);
  RUN(failed_setters_leave_config_usable);
  RUN(free_null_is_a_no_op);
  RUN(config_is_copied_by_client_new);
  return bt_finish();
}
