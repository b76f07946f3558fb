/*
 * test_tls: TLS against the fixture's TLS-only server (certificates made by servers.sh: a CA,
 * a server certificate for 127.0.0.1 and localhost, a client certificate).
 */
#include "brisk_test.h"

/* A config for the TLS server at 127.0.0.1 with TLS on (and nothing else). */
static brisk_config *tls_config(void) {
  brisk_config *cfg = bt_config_at(bt_env_port("TLS_PORT"));
  REQUIRE_OK(brisk_config_set_tls(cfg, true));
  return cfg;
}

/* A few commands over one client: a round trip, and pooled reuse of the TLS connection. */
static void exercise(brisk_client *c, const char *name) {
  const char *key = bt_key("tls", name);
  int i;
  CHECK_OK(brisk_ping(c));
  CHECK_OK(BT_CMD(c, NULL, "SET", key, "over-tls"));
  for (i = 0; i < 3; i++) CHECK_CMD_REPLY(c, "over-tls", "GET", key);
  CHECK_OK(BT_CMD(c, NULL, "DEL", key));
}

static void with_ca_file(void) {
  brisk_config *cfg = tls_config();
  brisk_client *c;
  CHECK_OK(brisk_config_set_tls_ca_file(cfg, bt_env("CA_FILE")));
  c = bt_client_from(cfg);
  exercise(c, "ca");
  brisk_client_free(c);

  /* RESP2 over TLS too. */
  cfg = tls_config();
  CHECK_OK(brisk_config_set_tls_ca_file(cfg, bt_env("CA_FILE")));
  CHECK_OK(brisk_config_set_protocol(cfg, 2));
  c = bt_client_from(cfg);
  exercise(c, "ca-resp2");
  brisk_client_free(c);
}

static void large_value_over_tls(void) {
  /* More than one TLS record and more than one read window. */
  const size_t size = 1u << 20;
  char *value = malloc(size);
  brisk_config *cfg = tls_config();
  brisk_client *c;
  brisk_reply *r = NULL;
  const char *key = bt_key("tls", "large");
  size_t i, len = 0;
  const char *got;
  REQUIRE(value != NULL);
  for (i = 0; i < size; i++) value[i] = (char)(i * 31 + 7);
  CHECK_OK(brisk_config_set_tls_ca_file(cfg, bt_env("CA_FILE")));
  c = bt_client_from(cfg);
  {
    const char *argv[] = {"SET", key, value};
    const size_t lens[] = {3, strlen(key), size};
    CHECK_OK(brisk_command(c, 3, argv, lens, NULL));
  }
  CHECK_OK(BT_CMD(c, &r, "GET", key));
  got = brisk_reply_string(r, &len);
  CHECK(got != NULL && len == size && memcmp(got, value, size) == 0);
  brisk_reply_free(r);
  CHECK_OK(BT_CMD(c, NULL, "DEL", key));
  brisk_client_free(c);
  free(value);
}

/* A pooled TLS connection the server closed is replaced before the next command. */
static void reconnects_after_client_kill(void) {
  brisk_config *cfg = tls_config();
  brisk_client *victim;
  brisk_client *killer;
  brisk_reply *r = NULL;
  long long id;
  char id_text[32];
  CHECK_OK(brisk_config_set_tls_ca_file(cfg, bt_env("CA_FILE")));
  CHECK_OK(brisk_config_set_pool_size(cfg, 1));
  victim = bt_client_from(cfg);
  cfg = tls_config();
  CHECK_OK(brisk_config_set_tls_ca_file(cfg, bt_env("CA_FILE")));
  killer = bt_client_from(cfg);
  REQUIRE_OK(BT_CMD(victim, &r, "CLIENT", "ID"));
  id = (long long)brisk_reply_integer(r);
  brisk_reply_free(r);
  r = NULL;
  snprintf(id_text, sizeof id_text, "%lld", id);
  CHECK_OK(BT_CMD(killer, NULL, "CLIENT", "KILL", "ID", id_text));
  CHECK_OK(BT_CMD(victim, &r, "CLIENT", "ID"));
  CHECK(brisk_reply_integer(r) > 0 && brisk_reply_integer(r) != id);
  brisk_reply_free(r);
  brisk_client_free(victim);
  brisk_client_free(killer);
}

static void system_roots_do_not_trust_the_test_ca(void) {
  brisk_config *cfg = tls_config();
  brisk_client *c = NULL;
  brisk_status st = brisk_client_new(cfg, &c);
  brisk_config_free(cfg);
  /* With an empty system store brisk_client_new fails already; otherwise the handshake does. */
  if (st == BRISK_ERR_TLS) {
    CHECK(c == NULL);
    return;
  }
  REQUIRE(bt_check_status(__FILE__, __LINE__, "brisk_client_new (system roots)", st, BRISK_OK));
  CHECK_STATUS(brisk_ping(c), BRISK_ERR_TLS);
  CHECK(strlen(brisk_last_error_message()) > 0);
  CHECK(brisk_status_category(BRISK_ERR_TLS) == BRISK_CATEGORY_CONNECTION);
  brisk_client_free(c);
}

static void insecure_skip_verify(void) {
  brisk_config *cfg = tls_config();
  brisk_client *c;
  char url[160];
  CHECK_OK(brisk_config_set_tls_insecure_skip_verify(cfg, true));
  c = bt_client_from(cfg);
  exercise(c, "insecure");
  brisk_client_free(c);

  /* Even with a wrong server name. */
  cfg = tls_config();
  CHECK_OK(brisk_config_set_tls_insecure_skip_verify(cfg, true));
  CHECK_OK(brisk_config_set_tls_server_name(cfg, "wrong.example"));
  c = bt_client_from(cfg);
  CHECK_OK(brisk_ping(c));
  brisk_client_free(c);

  /* And from the URL. */
  cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  snprintf(url, sizeof url, "rediss://127.0.0.1:%s?tls_insecure_skip_verify=true",
           bt_env("TLS_PORT"));
  CHECK_OK(brisk_config_set_url(cfg, url));
  c = bt_client_from(cfg);
  CHECK_OK(brisk_ping(c));
  brisk_client_free(c);
}

static void server_name(void) {
  brisk_config *cfg = tls_config();
  brisk_client *c;
  /* The certificate names localhost (DNS) and 127.0.0.1 (IP). */
  CHECK_OK(brisk_config_set_tls_ca_file(cfg, bt_env("CA_FILE")));
  CHECK_OK(brisk_config_set_tls_server_name(cfg, "localhost"));
  c = bt_client_from(cfg);
  CHECK_OK(brisk_ping(c));
  brisk_client_free(c);

  cfg = tls_config();
  CHECK_OK(brisk_config_set_tls_ca_file(cfg, bt_env("CA_FILE")));
  CHECK_OK(brisk_config_set_tls_server_name(cfg, "wrong.example"));
  c = bt_client_from(cfg);
  CHECK_STATUS(brisk_ping(c), BRISK_ERR_TLS);
  CHECK(strlen(brisk_last_error_message()) > 0);
  brisk_client_free(c);
}

static void client_certificate(void) {
  brisk_config *cfg = tls_config();
  brisk_client *c;
  CHECK_OK(brisk_config_set_tls_ca_file(cfg, bt_env("CA_FILE")));
  CHECK_OK(brisk_config_set_tls_client_cert(cfg, bt_env("CLIENT_CERT"), bt_env("CLIENT_KEY")));
  c = bt_client_from(cfg);
  exercise(c, "client-cert");
  brisk_client_free(c);

  /* Unusable client certificate files fail at brisk_client_new. */
  cfg = tls_config();
  CHECK_OK(brisk_config_set_tls_ca_file(cfg, bt_env("CA_FILE")));
  CHECK_OK(brisk_config_set_tls_client_cert(cfg, "/nonexistent/client.crt", bt_env("CLIENT_KEY")));
  c = (brisk_client *)&cfg;
  CHECK_STATUS(brisk_client_new(cfg, &c), BRISK_ERR_TLS);
  CHECK(c == NULL);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "/nonexistent/client.crt");
  brisk_config_free(cfg);

  cfg = tls_config();
  CHECK_OK(brisk_config_set_tls_ca_file(cfg, bt_env("CA_FILE")));
  /* A certificate where the key should be. */
  CHECK_OK(brisk_config_set_tls_client_cert(cfg, bt_env("CLIENT_CERT"), bt_env("CLIENT_CERT")));
  c = (brisk_client *)&cfg;
  CHECK_STATUS(brisk_client_new(cfg, &c), BRISK_ERR_TLS);
  CHECK(c == NULL);
  brisk_config_free(cfg);
}

static void rediss_url(void) {
  char url[160];
  brisk_config *cfg = brisk_config_new();
  brisk_client *c;
  REQUIRE(cfg != NULL);
  snprintf(url, sizeof url, "rediss://127.0.0.1:%s/2?client_name=brisk-tls", bt_env("TLS_PORT"));
  CHECK_OK(brisk_config_set_url(cfg, url));
  CHECK_OK(brisk_config_set_tls_ca_file(cfg, bt_env("CA_FILE")));
  c = bt_client_from(cfg);
  exercise(c, "rediss");
  CHECK_CMD_REPLY(c, "brisk-tls", "CLIENT", "GETNAME");
  brisk_client_free(c);

  /* localhost, checked against the certificate's DNS name. */
  cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  snprintf(url, sizeof url, "rediss://localhost:%s", bt_env("TLS_PORT"));
  CHECK_OK(brisk_config_set_url(cfg, url));
  CHECK_OK(brisk_config_set_tls_ca_file(cfg, bt_env("CA_FILE")));
  c = bt_client_from(cfg);
  CHECK_OK(brisk_ping(c));
  brisk_client_free(c);

  /* Plain redis:// to the TLS port: the server never answers a plaintext HELLO properly. */
  cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  snprintf(url, sizeof url, "redis://127.0.0.1:%s?read_timeout=1000", bt_env("TLS_PORT"));
  CHECK_OK(brisk_config_set_url(cfg, url));
  c = bt_client_from(cfg);
  {
    brisk_status st = brisk_ping(c);
    CHECK(st == BRISK_ERR_CONNECTION || st == BRISK_ERR_TIMEOUT || st == BRISK_ERR_PROTOCOL);
  }
  brisk_client_free(c);
}

static void missing_ca_file(void) {
  brisk_config *cfg = tls_config();
  brisk_client *c = (brisk_client *)&cfg;
  CHECK_OK(brisk_config_set_tls_ca_file(cfg, "/nonexistent/brisk-ca.pem"));
  CHECK_STATUS(brisk_client_new(cfg, &c), BRISK_ERR_TLS);
  CHECK(c == NULL);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "/nonexistent/brisk-ca.pem");
  CHECK_STR_CONTAINS(brisk_last_error_message(), "CA");
  brisk_config_free(cfg);

  /* A file that holds no certificate. */
  cfg = tls_config();
  c = (brisk_client *)&cfg;
  CHECK_OK(brisk_config_set_tls_ca_file(cfg, bt_env("CLIENT_KEY")));
  CHECK_STATUS(brisk_client_new(cfg, &c), BRISK_ERR_TLS);
  CHECK(c == NULL);
  brisk_config_free(cfg);
}

int main(int argc, char **argv) {
  bt_init(argc, argv);
  RUN(with_ca_file);
  RUN(large_value_over_tls);
  RUN(reconnects_after_client_kill);
  RUN(system_roots_do_not_trust_the_test_ca);
  RUN(insecure_skip_verify);
  RUN(server_name);
  RUN(client_certificate);
  RUN(rediss_url);
  RUN(missing_ca_file);
  return bt_finish();
}
