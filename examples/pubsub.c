/*
 * pubsub: Pub/Sub with brisk, in both styles.
 *
 *   pubsub [redis://host:port]
 *
 * 1. Callback style: the subscriber calls a function for each message, on its own thread.
 * 2. Pull style (for event loops and FFI callers): no callback; poll() the subscriber's
 *    descriptor, which is readable while messages wait, and take them with
 *    brisk_subscriber_try_next().
 *
 * Subscriptions survive reconnects by themselves (brisk subscribes again after a lost
 * connection); delivery is at most once.
 */
#define _POSIX_C_SOURCE 200809L
#include <brisk.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int fail(const char *what, brisk_status status) {
  fprintf(stderr, "%s failed: %s: %s\n", what, brisk_status_name(status),
          brisk_last_error_message());
  return 1;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* PUBLISH through the client's pool; how many subscribers got it. */
static long long publish(brisk_client *client, const char *channel, const char *message) {
  const char *argv[] = {"PUBLISH", channel, message};
  brisk_reply *reply = NULL;
  long long receivers = -1;
  if (brisk_command(client, 3, argv, NULL, &reply) == BRISK_OK) {
    receivers = brisk_reply_integer(reply);
  }
  brisk_reply_free(reply);
  return receivers;
}

/* ---- 1. callback style -------------------------------------------------------------------- */

static atomic_int received;

/* Runs on the subscriber's own thread, one message at a time, in arrival order. The strings
 * are valid during the call only; they are binary safe (use the lengths). */
static void on_message(void *userdata, const char *channel, size_t channel_len,
                       const char *pattern, size_t pattern_len, const char *payload,
                       size_t payload_len) {
  (void)userdata;
  if (pattern != NULL) {
    printf("  callback: [%.*s] via pattern %.*s: %.*s\n", (int)channel_len, channel,
           (int)pattern_len, pattern, (int)payload_len, payload);
  } else {
    printf("  callback: [%.*s] %.*s\n", (int)channel_len, channel, (int)payload_len, payload);
  }
  atomic_fetch_add(&received, 1);
}

static int callback_style(brisk_client *client) {
  printf("callback style\n");
  brisk_subscriber *sub = NULL;
  brisk_status st = brisk_subscriber_new(client, on_message, NULL, &sub);
  if (st != BRISK_OK) return fail("brisk_subscriber_new", st);
  /* Each call returns once the server confirmed the subscription. */
  if ((st = brisk_subscribe(sub, "brisk:example:news")) != BRISK_OK ||
      (st = brisk_psubscribe(sub, "brisk:example:alerts:*")) != BRISK_OK) {
    brisk_subscriber_free(sub);
    return fail("subscribe", st);
  }
  publish(client, "brisk:example:news", "hello");
  publish(client, "brisk:example:alerts:disk", "90% full");
  /* Wait (with a deadline) for the callback to have seen both. */
  long long deadline = now_ms() + 10000;
  while (atomic_load(&received) < 2 && now_ms() < deadline) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  /* No callback runs after brisk_subscriber_free returns. */
  brisk_subscriber_free(sub);
  if (atomic_load(&received) != 2) {
    printf("MISMATCH: the callback saw %d messages, not 2\n", atomic_load(&received));
    return 1;
  }
  return 0;
}

/* ---- 2. pull style ------------------------------------------------------------------------ */

static int pull_style(brisk_client *client) {
  printf("pull style\n");
  brisk_subscriber *sub = NULL;
  brisk_status st = brisk_subscriber_new(client, NULL, NULL, &sub);
  if (st != BRISK_OK) return fail("brisk_subscriber_new", st);
  if ((st = brisk_subscribe(sub, "brisk:example:jobs")) != BRISK_OK) {
    brisk_subscriber_free(sub);
    return fail("brisk_subscribe", st);
  }
  /* Binary payloads: pass lengths. */
  const char job[] = {'j', 'o', 'b', '\0', '1'};
  const char *argv[] = {"PUBLISH", "brisk:example:jobs", job};
  const size_t lens[] = {7, 18, sizeof job};
  brisk_command(client, 3, argv, lens, NULL);
  publish(client, "brisk:example:jobs", "job 2");

  /* An event loop waits on the descriptor with everything else it watches. */
  struct pollfd watched = {.fd = brisk_subscriber_fd(sub), .events = POLLIN, .revents = 0};
  int taken = 0;
  long long deadline = now_ms() + 10000;
  while (taken < 2 && now_ms() < deadline) {
    if (poll(&watched, 1, 100) <= 0) continue;
    brisk_message *m = NULL;
    while (brisk_subscriber_try_next(sub, &m) == BRISK_OK) {
      size_t channel_len = 0, payload_len = 0;
      const char *channel = brisk_message_channel(m, &channel_len);
      const char *payload = brisk_message_payload(m, &payload_len);
      printf("  pulled: [%.*s] %zu bytes: ", (int)channel_len, channel, payload_len);
      for (size_t i = 0; i < payload_len; i++) { /* binary safe: NULs shown as \0 */
        if (payload[i] == '\0') {
          fputs("\\0", stdout);
        } else {
          putchar(payload[i]);
        }
      }
      putchar('\n');
      brisk_message_free(m);
      taken++;
    }
  }
  printf("  received %llu, dropped %llu\n",
         (unsigned long long)brisk_subscriber_stat(sub, BRISK_STAT_PUBSUB_MESSAGES),
         (unsigned long long)brisk_subscriber_stat(sub, BRISK_STAT_PUBSUB_DROPPED));
  brisk_subscriber_free(sub);
  if (taken != 2) {
    printf("MISMATCH: pulled %d messages, not 2\n", taken);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "redis://127.0.0.1:6379";
  brisk_config *cfg = brisk_config_new();
  brisk_status st = brisk_config_set_url(cfg, url);
  if (st != BRISK_OK) {
    brisk_config_free(cfg);
    return fail("brisk_config_set_url", st);
  }
  /* Optional: the queue between the connection and the consumer (default 10000 messages,
   * dropping the oldest when full; every drop is counted). */
  brisk_config_set_pubsub_queue(cfg, 10000, BRISK_OVERFLOW_DROP_OLDEST);
  brisk_client *client = NULL;
  st = brisk_client_new(cfg, &client);
  brisk_config_free(cfg);
  if (st != BRISK_OK) return fail("brisk_client_new", st);

  int failed = callback_style(client) || pull_style(client);
  brisk_client_free(client);
  if (!failed) printf("done\n");
  return failed;
}
