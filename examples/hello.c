/*
 * hello: the smallest useful brisk program.
 *
 *   hello [redis://host:port]
 *
 * Connects (default redis://127.0.0.1:6379), writes a binary-safe value, reads it back, runs a
 * pipeline and a transaction, and shows how a failure is reported.
 */
#include <brisk.h>
#include <stdio.h>
#include <string.h>

/* Prints why a call failed: the status name and the thread's last error message. */
static int fail(const char *what, brisk_status status) {
  fprintf(stderr, "%s failed: %s: %s\n", what, brisk_status_name(status),
          brisk_last_error_message());
  return 1;
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "redis://127.0.0.1:6379";
  printf("brisk %s (header %s), connecting to %s\n", brisk_version(), BRISK_VERSION, url);

  brisk_config *cfg = brisk_config_new();
  brisk_status st = brisk_config_set_url(cfg, url);
  if (st != BRISK_OK) {
    brisk_config_free(cfg);
    return fail("brisk_config_set_url", st);
  }
  brisk_config_set_client_name(cfg, "brisk-hello");

  brisk_client *client = NULL;
  st = brisk_client_new(cfg, &client);
  brisk_config_free(cfg); /* the client keeps its own copy */
  if (st != BRISK_OK) return fail("brisk_client_new", st);

  if ((st = brisk_ping(client)) != BRISK_OK) {
    brisk_client_free(client);
    return fail("brisk_ping", st);
  }

  /* Binary-safe SET: the value contains a NUL byte, so pass lengths. */
  const char value[] = {'h', 'i', '\0', '!'};
  const char *set_argv[] = {"SET", "brisk:hello", value};
  const size_t set_lens[] = {3, 11, sizeof value};
  if ((st = brisk_command(client, 3, set_argv, set_lens, NULL)) != BRISK_OK) {
    brisk_client_free(client);
    return fail("SET", st);
  }

  /* NUL-terminated arguments: argvlen may be NULL. */
  const char *get_argv[] = {"GET", "brisk:hello"};
  brisk_reply *reply = NULL;
  if ((st = brisk_command(client, 2, get_argv, NULL, &reply)) != BRISK_OK) {
    brisk_client_free(client);
    return fail("GET", st);
  }
  size_t len = 0;
  const char *got = brisk_reply_string(reply, &len);
  printf("GET brisk:hello -> %zu bytes, %s\n", len,
         len == sizeof value && memcmp(got, value, len) == 0 ? "round-tripped intact" : "MISMATCH");
  brisk_reply_free(reply);

  /* A pipeline: three commands, one round trip, replies in order. */
  brisk_pipeline *pipe = NULL;
  if ((st = brisk_pipeline_new(client, &pipe)) != BRISK_OK) {
    brisk_client_free(client);
    return fail("brisk_pipeline_new", st);
  }
  const char *incr[] = {"INCR", "brisk:hello:counter"};
  const char *wrong[] = {"LPUSH", "brisk:hello", "x"}; /* WRONGTYPE: an error element */
  brisk_pipeline_append(pipe, 2, incr, NULL);
  brisk_pipeline_append(pipe, 3, wrong, NULL);
  brisk_pipeline_append(pipe, 2, incr, NULL);
  if ((st = brisk_pipeline_exec(pipe, &reply)) != BRISK_OK) {
    brisk_pipeline_free(pipe);
    brisk_client_free(client);
    return fail("pipeline", st);
  }
  for (size_t i = 0; i < brisk_reply_length(reply); i++) {
    const brisk_reply *el = brisk_reply_element(reply, i);
    if (brisk_reply_type_of(el) == BRISK_REPLY_ERROR)
      printf("  pipeline[%zu]: error %s\n", i, brisk_reply_string(el, NULL));
    else
      printf("  pipeline[%zu]: %lld\n", i, (long long)brisk_reply_integer(el));
  }
  brisk_reply_free(reply);
  brisk_pipeline_free(pipe);

  /* A failing command: the status says what kind of failure, the message says what. */
  st = brisk_command(client, 3, wrong, NULL, NULL);
  printf("LPUSH on a string -> %s (category %u): %s\n", brisk_status_name(st),
         (unsigned)brisk_status_category(st), brisk_last_error_message());

  const char *del[] = {"DEL", "brisk:hello", "brisk:hello:counter"};
  brisk_command(client, 3, del, NULL, NULL);
  brisk_client_free(client);
  printf("ok\n");
  return 0;
}
