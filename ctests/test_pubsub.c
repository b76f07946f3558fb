/*
 * test_pubsub: Pub/Sub through the C API.
 *
 *   channel, pattern and shard messages reach the callback on the subscriber's own thread with
 *     their fields (a binary payload intact); unsubscribing stops delivery (PUBLISH counts 0)
 *   binary channel names and many names in one call (brisk_subscriber_subscribe)
 *   keyspace notifications arrive as pattern messages
 *   the pull API from a poll() loop: the descriptor is readable exactly while messages wait
 *   brisk_subscriber_free while messages flow: prompt, no callback afterwards; also from the
 *     callback itself
 *   brisk_client_free first: the subscriber's calls fail with CLOSED, queued messages are still
 *     taken, its descriptor wakes the loop
 *   a 100,000-message burst (10,000 under valgrind): a fast consumer gets it whole and in
 *     order; a consumer stuck in its callback gets, for each policy, delivered + dropped ==
 *     published, in order (DROP_OLDEST keeps the newest, DROP_NEWEST the oldest, BLOCK all)
 *   CLIENT KILL TYPE pubsub, a restart, SIGSTOP/SIGCONT: back within a bounded time, subscribed
 *     to its channel, pattern and shard channel (the server says so), a RESUBSCRIBE event,
 *     messages published afterwards arrive
 *   NULL and bad arguments are INVALID_ARGUMENT
 *
 * Faults go to a private redis-server (bt_server.h); the rest uses the fixture server. Every
 * wait has a deadline. Counts shrink under valgrind; the shape of each scenario stays.
 */
#include "brisk_test.h"
#include "bt_server.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#define PREFIX "pubsub"

static bt_server srv;

static int64_t bound(int64_t ms) { return bt_under_valgrind() ? ms * 5 : ms; }

#define CHECK_EQ_U(a, b)                                                                    \
  do {                                                                                      \
    unsigned long long bt_a_ = (unsigned long long)(a), bt_b_ = (unsigned long long)(b);    \
    if (bt_a_ != bt_b_)                                                                     \
      bt_fail(__FILE__, __LINE__, "%s == %s: %llu != %llu", #a, #b, bt_a_, bt_b_);          \
  } while (0)

/* ---- an inbox: what the callback received ------------------------------------------------ */

typedef struct received {
  char channel[128];
  size_t channel_len;
  char pattern[128];
  size_t pattern_len;
  int has_pattern;
  char payload[512];
  size_t payload_len;
} received;

typedef struct inbox {
  pthread_mutex_t lock;
  pthread_cond_t arrived;
  received *items;
  size_t capacity;
  atomic_size_t count;
  atomic_size_t calls;
  atomic_int on_caller_thread;
  atomic_int slow_us; /* sleep this long in each call (a slow consumer) */
  pthread_t caller;
} inbox;

static void inbox_init(inbox *in, size_t capacity) {
  memset(in, 0, sizeof *in);
  pthread_mutex_init(&in->lock, NULL);
  pthread_cond_init(&in->arrived, NULL);
  in->items = calloc(capacity ? capacity : 1, sizeof(received));
  REQUIRE(in->items != NULL);
  in->capacity = capacity;
  in->caller = pthread_self();
}

static void inbox_destroy(inbox *in) {
  free(in->items);
  pthread_mutex_destroy(&in->lock);
  pthread_cond_destroy(&in->arrived);
}

static void copy_text(char *to, size_t room, size_t *to_len, const char *from, size_t len) {
  size_t n = len < room ? len : room;
  if (n) memcpy(to, from, n);
  *to_len = len;
}

static void on_message(void *userdata, const char *channel, size_t channel_len,
                       const char *pattern, size_t pattern_len, const char *payload,
                       size_t payload_len) {
  inbox *in = userdata;
  if (pthread_equal(pthread_self(), in->caller)) atomic_fetch_add(&in->on_caller_thread, 1);
  atomic_fetch_add(&in->calls, 1);
  pthread_mutex_lock(&in->lock);
  size_t i = atomic_load(&in->count);
  if (i < in->capacity) {
    received *r = &in->items[i];
    copy_text(r->channel, sizeof r->channel, &r->channel_len, channel, channel_len);
    r->has_pattern = pattern != NULL;
    copy_text(r->pattern, sizeof r->pattern, &r->pattern_len, pattern, pattern_len);
    copy_text(r->payload, sizeof r->payload, &r->payload_len, payload, payload_len);
    atomic_store(&in->count, i + 1);
  }
  pthread_cond_broadcast(&in->arrived);
  pthread_mutex_unlock(&in->lock);
  int slow = atomic_load(&in->slow_us);
  if (slow > 0) {
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)slow * 1000L};
    nanosleep(&ts, NULL);
  }
}

/* Waits until `n` messages arrived (deadline `ms`); whether they did. */
static int inbox_wait(inbox *in, size_t n, int64_t ms) {
  int held;
  BT_WAIT_UNTIL(held, atomic_load(&in->count) >= n, ms);
  return held;
}

static int text_is(const char *got, size_t got_len, const char *want, size_t want_len) {
  return got_len == want_len && memcmp(got, want, want_len) == 0;
}

/* ---- helpers ----------------------------------------------------------------------------- */

/* PUBLISH (or SPUBLISH) with a binary payload; the server's receiver count, -1 on failure. */
static long long publish(brisk_client *c, const char *command, const char *channel,
                         const char *payload, size_t payload_len) {
  const char *argv[] = {command, channel, payload};
  size_t lens[] = {strlen(command), strlen(channel), payload_len};
  brisk_reply *r = NULL;
  long long n = -1;
  if (brisk_command(c, 3, argv, lens, &r) == BRISK_OK) n = brisk_reply_integer(r);
  brisk_reply_free(r);
  return n;
}

static brisk_client *fixture_client(uint32_t protocol) { return bt_client_tcp(protocol); }

static brisk_client *srv_client(void) {
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  REQUIRE_OK(brisk_config_set_address(cfg, "127.0.0.1", srv.port));
  return bt_client_from(cfg);
}

static int readable(int fd, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
  return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

/* ---- messages and their fields ----------------------------------------------------------- */

static void messages_arrive_with_their_fields(void) {
  uint32_t protocols[] = {3, 2};
  for (size_t p = 0; p < 2; p++) {
    brisk_client *c = fixture_client(protocols[p]);
    inbox in;
    inbox_init(&in, 16);
    brisk_subscriber *s = NULL;
    REQUIRE_OK(brisk_subscriber_new(c, on_message, &in, &s));
    char channel[100], pattern[100], shard[100], other[100];
    snprintf(channel, sizeof channel, "%s", bt_key(PREFIX, "news"));
    snprintf(pattern, sizeof pattern, "%s*", bt_key(PREFIX, "n"));
    snprintf(shard, sizeof shard, "%s", bt_key(PREFIX, "orders"));
    snprintf(other, sizeof other, "%s", bt_key(PREFIX, "nothing"));
    CHECK_OK(brisk_subscribe(s, channel));
    CHECK_OK(brisk_psubscribe(s, pattern));
    CHECK_OK(brisk_ssubscribe(s, shard));

    const char binary[] = {'\0', '\r', '\n', '$', '5', '\r', 'x', '\0'};
    CHECK(publish(c, "PUBLISH", channel, "hello", 5) == 2); /* channel + pattern */
    CHECK(publish(c, "SPUBLISH", shard, binary, sizeof binary) == 1);
    REQUIRE(inbox_wait(&in, 3, bound(30000)));
    received *r = in.items;
    CHECK(text_is(r[0].channel, r[0].channel_len, channel, strlen(channel)));
    CHECK(!r[0].has_pattern && r[0].pattern_len == 0);
    CHECK(text_is(r[0].payload, r[0].payload_len, "hello", 5));
    CHECK(text_is(r[1].channel, r[1].channel_len, channel, strlen(channel)));
    CHECK(r[1].has_pattern && text_is(r[1].pattern, r[1].pattern_len, pattern, strlen(pattern)));
    CHECK(text_is(r[2].channel, r[2].channel_len, shard, strlen(shard)));
    CHECK(!r[2].has_pattern);
    CHECK(text_is(r[2].payload, r[2].payload_len, binary, sizeof binary));
    CHECK(atomic_load(&in.on_caller_thread) == 0);

    CHECK_OK(brisk_unsubscribe(s, channel));
    CHECK_OK(brisk_punsubscribe(s, pattern));
    CHECK_OK(brisk_sunsubscribe(s, shard));
    CHECK(publish(c, "PUBLISH", channel, "late", 4) == 0);
    CHECK(publish(c, "SPUBLISH", shard, "late", 4) == 0);
    CHECK(publish(c, "PUBLISH", other, "late", 4) == 0);
    CHECK_EQ_U(brisk_subscriber_stat(s, BRISK_STAT_PUBSUB_MESSAGES), 3);
    CHECK_EQ_U(brisk_subscriber_stat(s, BRISK_STAT_PUBSUB_DROPPED), 0);
    CHECK_EQ_U(brisk_client_stat(c, BRISK_STAT_PUBSUB_MESSAGES), 3);
    brisk_subscriber_free(s);
    CHECK_EQ_U(atomic_load(&in.count), 3);
    inbox_destroy(&in);
    brisk_client_free(c);
  }
}

static void binary_names_and_many_at_once(void) {
  brisk_client *c = fixture_client(3);
  inbox in;
  inbox_init(&in, 4);
  brisk_subscriber *s = NULL;
  REQUIRE_OK(brisk_subscriber_new(c, on_message, &in, &s));
  enum { N = 300 };
  char names[N][64];
  const char *ptrs[N];
  size_t lens[N];
  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "%s", bt_key(PREFIX, "many"));
    size_t n = strlen(names[i]);
    names[i][n] = '\0'; /* a NUL inside the name: binary */
    n += 1 + (size_t)snprintf(names[i] + n + 1, sizeof names[i] - n - 1, "%d", i);
    ptrs[i] = names[i];
    lens[i] = n;
  }
  CHECK_OK(brisk_subscriber_subscribe(s, BRISK_SUBSCRIPTION_CHANNEL, N, ptrs, lens));
  {
    const char *argv[] = {"PUBLISH", names[N - 1], "to-the-last"};
    size_t argl[] = {7, lens[N - 1], 11};
    brisk_reply *r = NULL;
    CHECK_OK(brisk_command(c, 3, argv, argl, &r));
    CHECK(brisk_reply_integer(r) == 1);
    brisk_reply_free(r);
  }
  REQUIRE(inbox_wait(&in, 1, bound(30000)));
  CHECK(text_is(in.items[0].channel, in.items[0].channel_len, names[N - 1], lens[N - 1]));
  CHECK_OK(brisk_subscriber_unsubscribe(s, BRISK_SUBSCRIPTION_CHANNEL, N, ptrs, lens));
  {
    const char *argv[] = {"PUBLISH", names[0], "x"};
    size_t argl[] = {7, lens[0], 1};
    brisk_reply *r = NULL;
    CHECK_OK(brisk_command(c, 3, argv, argl, &r));
    CHECK(brisk_reply_integer(r) == 0);
    brisk_reply_free(r);
  }
  brisk_subscriber_free(s);
  inbox_destroy(&in);
  brisk_client_free(c);
}

static void keyspace_notifications_are_pattern_messages(void) {
  brisk_client *c = srv_client();
  brisk_reply *r = NULL;
  CHECK_OK(BT_CMD(c, &r, "CONFIG", "SET", "notify-keyspace-events", "KEA"));
  brisk_reply_free(r);
  inbox in;
  inbox_init(&in, 4);
  brisk_subscriber *s = NULL;
  REQUIRE_OK(brisk_subscriber_new(c, on_message, &in, &s));
  CHECK_OK(brisk_psubscribe(s, "__keyspace@0__:watched*"));
  CHECK_OK(BT_CMD(c, NULL, "SET", "watched:1", "v"));
  REQUIRE(inbox_wait(&in, 1, bound(30000)));
  received *got = &in.items[0];
  CHECK(text_is(got->channel, got->channel_len, "__keyspace@0__:watched:1", 24));
  CHECK(got->has_pattern && text_is(got->pattern, got->pattern_len, "__keyspace@0__:watched*", 23));
  CHECK(text_is(got->payload, got->payload_len, "set", 3));
  brisk_subscriber_free(s);
  inbox_destroy(&in);
  brisk_client_free(c);
}

/* ---- the pull API ------------------------------------------------------------------------ */

typedef struct numbered_publisher {
  brisk_client *client;
  const char *channel;
  int from, to;
} numbered_publisher;

static void *publish_numbers(void *arg) {
  numbered_publisher *p = arg;
  char payload[32];
  for (int i = p->from; i < p->to; i++) {
    int len = snprintf(payload, sizeof payload, "%d", i);
    publish(p->client, "PUBLISH", p->channel, payload, (size_t)len);
  }
  return NULL;
}

/* Takes one message without waiting; checks it is number `expected` of `channel`. */
static int take_number(brisk_subscriber *s, const char *channel, int expected) {
  brisk_message *m = NULL;
  if (brisk_subscriber_try_next(s, &m) != BRISK_OK) return 0;
  char want[32];
  int want_len = snprintf(want, sizeof want, "%d", expected);
  size_t len = 0;
  const char *p = brisk_message_payload(m, &len);
  CHECK(text_is(p, len, want, (size_t)want_len));
  CHECK(brisk_message_kind(m) == BRISK_SUBSCRIPTION_CHANNEL);
  CHECK(brisk_message_pattern(m, &len) == NULL && len == 0);
  const char *ch = brisk_message_channel(m, &len);
  CHECK(text_is(ch, len, channel, strlen(channel)));
  brisk_message_free(m);
  return 1;
}

static void pull_from_a_poll_loop(void) {
  brisk_client *c = fixture_client(3);
  brisk_subscriber *s = NULL;
  REQUIRE_OK(brisk_subscriber_new(c, NULL, NULL, &s));
  int fd = brisk_subscriber_fd(s);
  REQUIRE(fd >= 0);
  CHECK(brisk_subscriber_fd(s) == fd);
  CHECK(!readable(fd, 0));
  brisk_message *m = (brisk_message *)&m;
  CHECK_STATUS(brisk_subscriber_next(s, 20, &m), BRISK_ERR_TIMEOUT);
  CHECK(m == NULL);
  CHECK_STATUS(brisk_subscriber_try_next(s, &m), BRISK_ERR_TIMEOUT);
  const char *channel = bt_key(PREFIX, "pull");
  CHECK_OK(brisk_subscribe(s, channel));
  CHECK(!readable(fd, 0)); /* a confirmation is not a message */

  /* Live: messages arrive while the loop polls. Readable always means one waits (this loop is
   * the only consumer), and they come in order. */
  int n = bt_under_valgrind() ? 100 : 1000;
  numbered_publisher p = {.client = c, .channel = channel, .from = 0, .to = n};
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, publish_numbers, &p) == 0);
  int got = 0, readable_but_empty = 0;
  int64_t deadline = bt_now_ms() + bound(30000);
  while (got < n && bt_now_ms() < deadline) {
    if (!readable(fd, 100)) continue;
    int drained = 0;
    while (got < n && take_number(s, channel, got)) got++, drained++;
    if (drained == 0) readable_but_empty++;
  }
  pthread_join(t, NULL);
  CHECK(got == n);
  CHECK(readable_but_empty == 0);

  /* Quiet: every message received first, then readable exactly until the last is taken. */
  p.from = n;
  p.to = 2 * n;
  publish_numbers(&p);
  int held;
  BT_WAIT_UNTIL(held, brisk_subscriber_stat(s, BRISK_STAT_PUBSUB_MESSAGES) == (uint64_t)(2 * n),
                bound(30000));
  CHECK(held);
  int exact = 1;
  for (int i = n; i < 2 * n; i++) {
    if (!readable(fd, 0)) exact = 0;
    if (!take_number(s, channel, i)) exact = 0;
  }
  CHECK(exact);
  CHECK(!readable(fd, 0));
  CHECK_STATUS(brisk_subscriber_try_next(s, &m), BRISK_ERR_TIMEOUT);
  brisk_subscriber_free(s);
  brisk_client_free(c);
}

/* ---- freeing ----------------------------------------------------------------------------- */

typedef struct publisher {
  brisk_client *client;
  const char *channel;
  atomic_int stop;
  atomic_long sent;
} publisher;

static void *publish_loop(void *arg) {
  publisher *p = arg;
  while (!atomic_load(&p->stop) && atomic_load(&p->sent) < 5000000) {
    if (publish(p->client, "PUBLISH", p->channel, "tick", 4) < 0) break;
    atomic_fetch_add(&p->sent, 1);
  }
  return NULL;
}

static void free_while_messages_flow(void) {
  brisk_client *c = fixture_client(3);
  inbox in;
  inbox_init(&in, 0);
  atomic_store(&in.slow_us, 100);
  brisk_subscriber *s = NULL;
  REQUIRE_OK(brisk_subscriber_new(c, on_message, &in, &s));
  const char *channel = bt_key(PREFIX, "flow");
  CHECK_OK(brisk_subscribe(s, channel));
  publisher p = {.client = c, .channel = channel};
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, publish_loop, &p) == 0);
  int held;
  BT_WAIT_UNTIL(held, atomic_load(&in.calls) > 100, bound(30000));
  CHECK(held);
  int64_t started = bt_now_ms();
  brisk_subscriber_free(s);
  int64_t took = bt_now_ms() - started;
  size_t after = atomic_load(&in.calls);
  /* Traffic goes on (a thousand more publishes): no callback may come of it. */
  long sent_at_free = atomic_load(&p.sent);
  BT_WAIT_UNTIL(held, atomic_load(&p.sent) >= sent_at_free + 1000, bound(30000));
  CHECK(held);
  atomic_store(&p.stop, 1);
  pthread_join(t, NULL);
  CHECK_EQ_U(atomic_load(&in.calls), after);
  CHECK_AT_MOST(took, bound(5000));
  BT_WAIT_UNTIL(held, publish(c, "PUBLISH", channel, "x", 1) == 0, bound(30000));
  CHECK(held); /* its connection is closed */
  inbox_destroy(&in);
  brisk_client_free(c);
}

/* The callback frees its own subscriber: no further callback, nothing leaks (valgrind). */
typedef struct self_freeing {
  brisk_subscriber *s;
  atomic_int calls;
  atomic_int freed;
} self_freeing;

static void free_myself(void *userdata, const char *channel, size_t channel_len,
                        const char *pattern, size_t pattern_len, const char *payload,
                        size_t payload_len) {
  (void)channel, (void)channel_len, (void)pattern, (void)pattern_len, (void)payload;
  (void)payload_len;
  self_freeing *sf = userdata;
  if (atomic_fetch_add(&sf->calls, 1) == 0) {
    brisk_subscriber_free(sf->s);
    atomic_store(&sf->freed, 1);
  }
}

static void free_from_the_callback(void) {
  brisk_client *c = fixture_client(3);
  self_freeing sf = {0};
  REQUIRE_OK(brisk_subscriber_new(c, free_myself, &sf, &sf.s));
  const char *channel = bt_key(PREFIX, "self");
  CHECK_OK(brisk_subscribe(sf.s, channel));
  for (int i = 0; i < 100; i++) publish(c, "PUBLISH", channel, "x", 1);
  int held;
  BT_WAIT_UNTIL(held, atomic_load(&sf.freed) == 1, bound(30000));
  CHECK(held);
  BT_WAIT_UNTIL(held, publish(c, "PUBLISH", channel, "x", 1) == 0, bound(30000));
  CHECK(held); /* its connection closed */
  CHECK(atomic_load(&sf.calls) == 1);
  brisk_client_free(c);
}

static void free_the_client_first(void) {
  brisk_client *c = fixture_client(3);
  brisk_client *pub = fixture_client(3);
  brisk_subscriber *s = NULL;
  REQUIRE_OK(brisk_subscriber_new(c, NULL, NULL, &s));
  const char *channel = bt_key(PREFIX, "first");
  CHECK_OK(brisk_subscribe(s, channel));
  CHECK(publish(pub, "PUBLISH", channel, "queued", 6) == 1);
  int fd = brisk_subscriber_fd(s);
  REQUIRE(fd >= 0);
  CHECK(readable(fd, (int)bound(30000)));
  brisk_client_free(c);
  brisk_message *m = NULL;
  CHECK_OK(brisk_subscriber_next(s, 30000, &m));
  size_t len = 0;
  const char *payload = brisk_message_payload(m, &len);
  CHECK(text_is(payload, len, "queued", 6));
  brisk_message_free(m);
  CHECK(readable(fd, (int)bound(30000))); /* closed: wakes the loop */
  CHECK_STATUS(brisk_subscriber_next(s, 30000, &m), BRISK_ERR_CLOSED);
  CHECK_STATUS(brisk_subscribe(s, "more"), BRISK_ERR_CLOSED);
  int held;
  BT_WAIT_UNTIL(held, publish(pub, "PUBLISH", channel, "x", 1) == 0, bound(30000));
  CHECK(held);
  brisk_subscriber_free(s);
  brisk_client_free(pub);
}

/* ---- faults: the subscriber comes back, subscribed to everything ------------------------- */

static atomic_int resubscribe_events;
static atomic_int resubscribe_batch;

static void on_event(void *userdata, const brisk_event *e) {
  (void)userdata;
  if (brisk_event_kind_of(e) == BRISK_EVENT_RESUBSCRIBE) {
    atomic_fetch_add(&resubscribe_events, 1);
    atomic_store(&resubscribe_batch, (int)brisk_event_batch_size(e));
  }
}

/* The second element of a reply like PUBSUB NUMSUB's ([name, count]); -1 on failure. */
static long long numsub(brisk_client *c, const char *sub, const char *name) {
  brisk_reply *r = NULL;
  long long n = -1;
  if (BT_CMD(c, &r, "PUBSUB", sub, name) == BRISK_OK && brisk_reply_length(r) == 2)
    n = brisk_reply_integer(brisk_reply_element(r, 1));
  brisk_reply_free(r);
  return n;
}

static int subscribed_to_everything(brisk_client *c) {
  brisk_reply *r = NULL;
  long long numpat = -1;
  if (BT_CMD(c, &r, "PUBSUB", "NUMPAT") == BRISK_OK) numpat = brisk_reply_integer(r);
  brisk_reply_free(r);
  return numsub(c, "NUMSUB", "chan") == 1 && numsub(c, "SHARDNUMSUB", "shard") == 1 &&
         numpat == 1;
}

enum fault { CLIENT_KILL, RESTART, SIGSTOP_SIGCONT };

static void comes_back_after(enum fault fault) {
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  REQUIRE_OK(brisk_config_set_address(cfg, "127.0.0.1", srv.port));
  /* A frozen server is found within a second (the default: PING after 3 s, 5 s to answer). */
  REQUIRE_OK(brisk_config_set_pubsub_health_check(cfg, 200, (uint32_t)bound(600)));
  REQUIRE_OK(brisk_config_set_read_timeout_ms(cfg, (uint32_t)bound(1000)));
  REQUIRE_OK(brisk_config_set_event_callback(cfg, on_event, NULL));
  brisk_client *c = bt_client_from(cfg);
  atomic_store(&resubscribe_events, 0);
  inbox in;
  inbox_init(&in, 16);
  brisk_subscriber *s = NULL;
  REQUIRE_OK(brisk_subscriber_new(c, on_message, &in, &s));
  CHECK_OK(brisk_subscribe(s, "chan"));
  CHECK_OK(brisk_psubscribe(s, "pat*"));
  CHECK_OK(brisk_ssubscribe(s, "shard"));
  CHECK(publish(c, "PUBLISH", "chan", "before", 6) == 1);
  REQUIRE(inbox_wait(&in, 1, bound(30000)));

  int held;
  switch (fault) {
    case CLIENT_KILL: {
      brisk_reply *r = NULL;
      CHECK_OK(BT_CMD(c, &r, "CLIENT", "KILL", "TYPE", "pubsub"));
      CHECK(brisk_reply_integer(r) == 1);
      brisk_reply_free(r);
      break;
    }
    case RESTART:
      bt_server_kill(&srv);
      bt_sleep_ms(1000); /* down for a while: reconnects are refused */
      REQUIRE(bt_server_restart(&srv));
      break;
    case SIGSTOP_SIGCONT:
      bt_server_pause(&srv);
      /* Until the unanswered PING gave the connection up. */
      BT_WAIT_UNTIL(held, brisk_client_stat(c, BRISK_STAT_HEALTH_CHECK_FAILURES) >= 1,
                    bound(30000));
      CHECK(held);
      bt_server_resume(&srv);
      break;
  }
  int64_t started = bt_now_ms();
  BT_WAIT_UNTIL(held,
                brisk_subscriber_stat(s, BRISK_STAT_PUBSUB_RESUBSCRIBES) >= 1 &&
                    subscribed_to_everything(c),
                bound(60000));
  CHECK(held);
  fprintf(stderr, "  resubscribed %lld ms after the fault\n", (long long)(bt_now_ms() - started));
  CHECK(atomic_load(&resubscribe_events) >= 1);
  CHECK(atomic_load(&resubscribe_batch) == 3);
  CHECK(brisk_client_stat(c, BRISK_STAT_PUBSUB_RESUBSCRIBES) >= 1);
  CHECK(publish(c, "PUBLISH", "chan", "after", 5) == 1);
  CHECK(publish(c, "PUBLISH", "pat1", "after", 5) == 1);
  CHECK(publish(c, "SPUBLISH", "shard", "after", 5) == 1);
  CHECK(inbox_wait(&in, 4, bound(30000)));
  brisk_subscriber_free(s);
  inbox_destroy(&in);
  brisk_client_free(c);
}

static void comes_back_after_client_kill(void) { comes_back_after(CLIENT_KILL); }
static void comes_back_after_a_restart(void) { comes_back_after(RESTART); }
static void comes_back_after_sigstop_sigcont(void) { comes_back_after(SIGSTOP_SIGCONT); }

/* ---- bursts: the queue's policies -------------------------------------------------------- */

/* Publishes 0..n-1 to `channel` in pipelines of 1000; the summed receiver counts. */
static long long publish_burst(brisk_client *c, const char *channel, int n) {
  long long reached = 0;
  char payload[32];
  for (int next = 0; next < n;) {
    brisk_pipeline *p = NULL;
    REQUIRE_OK(brisk_pipeline_new(c, &p));
    int end = next + 1000 < n ? next + 1000 : n;
    for (int i = next; i < end; i++) {
      snprintf(payload, sizeof payload, "%d", i);
      const char *argv[] = {"PUBLISH", channel, payload};
      REQUIRE_OK(brisk_pipeline_append(p, 3, argv, NULL));
    }
    brisk_reply *replies = NULL;
    REQUIRE_OK(brisk_pipeline_exec(p, &replies));
    for (size_t i = 0; i < brisk_reply_length(replies); i++)
      reached += brisk_reply_integer(brisk_reply_element(replies, i));
    brisk_reply_free(replies);
    brisk_pipeline_free(p);
    next = end;
  }
  return reached;
}

/* A consumer that records the numbers it gets and can be held in its callback. */
typedef struct tally {
  pthread_mutex_t lock;
  pthread_cond_t opened;
  int gate_open;
  int *numbers;
  atomic_int count;
  int capacity;
  int out_of_order;
} tally;

static void on_number(void *userdata, const char *channel, size_t channel_len,
                      const char *pattern, size_t pattern_len, const char *payload,
                      size_t payload_len) {
  (void)channel, (void)channel_len, (void)pattern, (void)pattern_len;
  tally *t = userdata;
  char text[32];
  size_t n = payload_len < sizeof text - 1 ? payload_len : sizeof text - 1;
  memcpy(text, payload, n);
  text[n] = '\0';
  int number = atoi(text);
  int i = atomic_load(&t->count);
  if (i > 0 && t->numbers[i - 1] >= number) t->out_of_order++;
  if (i < t->capacity) t->numbers[i] = number;
  atomic_store(&t->count, i + 1);
  pthread_mutex_lock(&t->lock);
  int64_t deadline = bt_now_ms() + 120000;
  while (!t->gate_open && bt_now_ms() < deadline) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&t->opened, &t->lock, &ts);
  }
  pthread_mutex_unlock(&t->lock);
}

static void open_gate(tally *t) {
  pthread_mutex_lock(&t->lock);
  t->gate_open = 1;
  pthread_cond_broadcast(&t->opened);
  pthread_mutex_unlock(&t->lock);
}

static void burst_per_policy(brisk_overflow policy, int gated) {
  int n = bt_under_valgrind() ? 10000 : 100000;
  uint32_t capacity = 1000;
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);
  REQUIRE_OK(brisk_config_set_address(cfg, "127.0.0.1", srv.port));
  REQUIRE_OK(brisk_config_set_pubsub_queue(cfg, gated ? capacity : (uint32_t)n, policy));
  brisk_client *c = bt_client_from(cfg);
  tally t;
  memset(&t, 0, sizeof t);
  pthread_mutex_init(&t.lock, NULL);
  pthread_cond_init(&t.opened, NULL);
  t.capacity = n;
  t.numbers = calloc((size_t)n, sizeof(int));
  REQUIRE(t.numbers != NULL);
  t.gate_open = !gated;
  brisk_subscriber *s = NULL;
  REQUIRE_OK(brisk_subscriber_new(c, on_number, &t, &s));
  CHECK_OK(brisk_subscribe(s, "burst"));
  int64_t started = bt_now_ms();
  CHECK(publish_burst(c, "burst", n) == n);
  int held;
  if (gated && policy != BRISK_OVERFLOW_BLOCK) {
    /* The reader goes on reading and dropping. */
    BT_WAIT_UNTIL(held, brisk_subscriber_stat(s, BRISK_STAT_PUBSUB_MESSAGES) == (uint64_t)n,
                  bound(120000));
    CHECK(held);
  } else if (gated) {
    /* The reader stopped reading: nothing dropped, the server holds the rest. */
    CHECK(brisk_subscriber_stat(s, BRISK_STAT_PUBSUB_MESSAGES) < (uint64_t)n);
    CHECK(brisk_subscriber_stat(s, BRISK_STAT_PUBSUB_DROPPED) == 0);
  }
  open_gate(&t);
  BT_WAIT_UNTIL(held,
                (uint64_t)atomic_load(&t.count) + brisk_subscriber_stat(s, BRISK_STAT_PUBSUB_DROPPED) ==
                    (uint64_t)n,
                bound(120000));
  CHECK(held);
  int delivered = atomic_load(&t.count);
  uint64_t dropped = brisk_subscriber_stat(s, BRISK_STAT_PUBSUB_DROPPED);
  CHECK_EQ_U((uint64_t)delivered + dropped, n);
  CHECK_EQ_U(brisk_subscriber_stat(s, BRISK_STAT_PUBSUB_MESSAGES), n);
  CHECK(t.out_of_order == 0);
  if (!gated || policy == BRISK_OVERFLOW_BLOCK) {
    CHECK_EQ_U(delivered, n);
    CHECK_EQ_U(dropped, 0);
  } else {
    CHECK_EQ_U(delivered, capacity + 1); /* one in the stuck callback, a full queue behind */
    if (policy == BRISK_OVERFLOW_DROP_OLDEST) CHECK(t.numbers[delivered - 1] == n - 1);
    if (policy == BRISK_OVERFLOW_DROP_NEWEST) { /* the first `capacity` always find room */
      int oldest_kept = 1;
      for (uint32_t i = 0; i < capacity; i++)
        if (t.numbers[i] != (int)i) oldest_kept = 0;
      CHECK(oldest_kept);
    }
  }
  fprintf(stderr, "  policy %u, %s consumer: %d delivered + %llu dropped = %d (%lld ms)\n",
          (unsigned)policy, gated ? "stuck" : "fast", delivered, (unsigned long long)dropped, n,
          (long long)(bt_now_ms() - started));
  brisk_subscriber_free(s);
  free(t.numbers);
  pthread_mutex_destroy(&t.lock);
  pthread_cond_destroy(&t.opened);
  brisk_client_free(c);
}

static void a_burst_to_a_fast_consumer_arrives_whole(void) {
  burst_per_policy(BRISK_OVERFLOW_DROP_OLDEST, 0);
  burst_per_policy(BRISK_OVERFLOW_BLOCK, 0);
}

static void a_burst_to_a_slow_consumer_per_policy(void) {
  burst_per_policy(BRISK_OVERFLOW_DROP_OLDEST, 1);
  burst_per_policy(BRISK_OVERFLOW_DROP_NEWEST, 1);
  burst_per_policy(BRISK_OVERFLOW_BLOCK, 1);
}

/* ---- arguments --------------------------------------------------------------------------- */

static void bad_arguments(void) {
  brisk_client *c = fixture_client(3);
  inbox in;
  inbox_init(&in, 1);
  brisk_subscriber *s = (brisk_subscriber *)&s;
  CHECK_STATUS(brisk_subscriber_new(NULL, on_message, &in, &s), BRISK_ERR_INVALID_ARGUMENT);
  CHECK(s == NULL);
  CHECK_STATUS(brisk_subscriber_new(c, NULL, NULL, NULL), BRISK_ERR_INVALID_ARGUMENT);
  REQUIRE_OK(brisk_subscriber_new(c, on_message, &in, &s));
  CHECK_STATUS(brisk_subscribe(s, NULL), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_subscribe(NULL, "x"), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_subscriber_subscribe(s, 7, 1, (const char *[]){"x"}, NULL),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_subscriber_subscribe(s, BRISK_SUBSCRIPTION_CHANNEL, 0, NULL, NULL),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_subscriber_subscribe(s, BRISK_SUBSCRIPTION_CHANNEL, 1,
                                          (const char *[]){NULL}, NULL),
               BRISK_ERR_INVALID_ARGUMENT);
  /* A callback subscriber has no pull API. */
  brisk_message *m = NULL;
  CHECK_STATUS(brisk_subscriber_next(s, 1, &m), BRISK_ERR_INVALID_ARGUMENT);
  CHECK(brisk_subscriber_fd(s) == -1);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "callback");
  CHECK(brisk_message_payload(NULL, NULL) == NULL);
  CHECK(brisk_subscriber_stat(NULL, BRISK_STAT_PUBSUB_MESSAGES) == 0);
  brisk_config *cfg = brisk_config_new();
  CHECK_STATUS(brisk_config_set_pubsub_queue(cfg, 0, BRISK_OVERFLOW_DROP_OLDEST),
               BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(brisk_config_set_pubsub_queue(cfg, 10, 3), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_OK(brisk_config_set_pubsub_queue(cfg, 10, BRISK_OVERFLOW_BLOCK));
  CHECK_STATUS(brisk_config_set_pubsub_health_check(cfg, 1000, 0), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_OK(brisk_config_set_pubsub_health_check(cfg, 0, 0));
  brisk_config_free(cfg);
  brisk_subscriber_free(s);
  brisk_subscriber_free(NULL);
  brisk_message_free(NULL);
  inbox_destroy(&in);
  brisk_client_free(c);
}

int main(int argc, char **argv) {
  bt_init(argc, argv);
  REQUIRE(bt_server_start(&srv));
  RUN(messages_arrive_with_their_fields);
  RUN(binary_names_and_many_at_once);
  RUN(keyspace_notifications_are_pattern_messages);
  RUN(pull_from_a_poll_loop);
  RUN(free_while_messages_flow);
  RUN(free_the_client_first);
  RUN(free_from_the_callback);
  RUN(a_burst_to_a_fast_consumer_arrives_whole);
  RUN(a_burst_to_a_slow_consumer_per_policy);
  RUN(comes_back_after_client_kill);
  RUN(comes_back_after_a_restart);
  RUN(comes_back_after_sigstop_sigcont);
  RUN(bad_arguments);
  bt_server_cleanup(&srv);
  return bt_finish();
}
