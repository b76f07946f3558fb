/*
 * test_status: version, status names, categories, retryability, the last-error message.
 * No server needed.
 */
#include "brisk_test.h"

#include <limits.h>
#include <pthread.h>

static void version_matches_header(void) {
  char from_macros[32];
  const char *v = brisk_version();
  REQUIRE(v != NULL);
  CHECK(strcmp(v, BRISK_VERSION) == 0);
  snprintf(from_macros, sizeof from_macros, "%d.%d.%d", BRISK_VERSION_MAJOR, BRISK_VERSION_MINOR,
           BRISK_VERSION_PATCH);
  CHECK(strcmp(from_macros, BRISK_VERSION) == 0);
  /* Static storage: the same pointer every time. */
  CHECK(brisk_version() == v);
}

static const struct {
  brisk_status status;
  const char *name;
  brisk_category category;
  bool retryable;
} STATUSES[] = {
    {BRISK_OK, "BRISK_OK", BRISK_CATEGORY_NONE, false},
    {BRISK_ERR_INVALID_ARGUMENT, "BRISK_ERR_INVALID_ARGUMENT", BRISK_CATEGORY_GENERIC, false},
    {BRISK_ERR_CONNECTION, "BRISK_ERR_CONNECTION", BRISK_CATEGORY_CONNECTION, true},
    {BRISK_ERR_TIMEOUT, "BRISK_ERR_TIMEOUT", BRISK_CATEGORY_CONNECTION, true},
    {BRISK_ERR_AUTH, "BRISK_ERR_AUTH", BRISK_CATEGORY_ACCESS_CONTROL, false},
    {BRISK_ERR_SERVER, "BRISK_ERR_SERVER", BRISK_CATEGORY_DATA, false},
    {BRISK_ERR_BUSY_LOADING, "BRISK_ERR_BUSY_LOADING", BRISK_CATEGORY_CONNECTION, true},
    {BRISK_ERR_CLUSTER_DOWN, "BRISK_ERR_CLUSTER_DOWN", BRISK_CATEGORY_CONNECTION, true},
    {BRISK_ERR_READONLY, "BRISK_ERR_READONLY", BRISK_CATEGORY_DATA, true},
    {BRISK_ERR_WATCH, "BRISK_ERR_WATCH", BRISK_CATEGORY_DATA, false},
    {BRISK_ERR_POOL_EXHAUSTED, "BRISK_ERR_POOL_EXHAUSTED", BRISK_CATEGORY_GENERIC, false},
    {BRISK_ERR_PROTOCOL, "BRISK_ERR_PROTOCOL", BRISK_CATEGORY_GENERIC, false},
    {BRISK_ERR_TLS, "BRISK_ERR_TLS", BRISK_CATEGORY_CONNECTION, false},
    {BRISK_ERR_SENTINEL, "BRISK_ERR_SENTINEL", BRISK_CATEGORY_GENERIC, false},
    {BRISK_ERR_CLOSED, "BRISK_ERR_CLOSED", BRISK_CATEGORY_GENERIC, false},
    {BRISK_ERR_INTERNAL, "BRISK_ERR_INTERNAL", BRISK_CATEGORY_GENERIC, false},
};
#define N_STATUSES (sizeof STATUSES / sizeof STATUSES[0])

static void numbers_are_the_documented_ones(void) {
  /* API.md fixes the numbers: programs outside this repository depend on them. */
  size_t i;
  for (i = 0; i < N_STATUSES; i++) CHECK(STATUSES[i].status == (brisk_status)i);
  CHECK(BRISK_CATEGORY_NONE == 0 && BRISK_CATEGORY_CONNECTION == 1 &&
        BRISK_CATEGORY_ACCESS_CONTROL == 2 && BRISK_CATEGORY_DATA == 3 &&
        BRISK_CATEGORY_GENERIC == 4);
}

static void every_status_has_its_name(void) {
  size_t i;
  for (i = 0; i < N_STATUSES; i++) {
    const char *name = brisk_status_name(STATUSES[i].status);
    if (name == NULL || strcmp(name, STATUSES[i].name) != 0)
      bt_fail(__FILE__, __LINE__, "brisk_status_name(%u) = \"%s\", expected \"%s\"",
              (unsigned)STATUSES[i].status, name ? name : "(null)", STATUSES[i].name);
  }
}

static void every_status_has_its_category(void) {
  size_t i;
  for (i = 0; i < N_STATUSES; i++) {
    brisk_category c = brisk_status_category(STATUSES[i].status);
    if (c != STATUSES[i].category)
      bt_fail(__FILE__, __LINE__, "brisk_status_category(%s) = %u, expected %u",
              STATUSES[i].name, (unsigned)c, (unsigned)STATUSES[i].category);
  }
}

static void retryable_statuses(void) {
  size_t i;
  for (i = 0; i < N_STATUSES; i++) {
    bool r = brisk_status_is_retryable(STATUSES[i].status);
    if (r != STATUSES[i].retryable)
      bt_fail(__FILE__, __LINE__, "brisk_status_is_retryable(%s) = %d, expected %d",
              STATUSES[i].name, (int)r, (int)STATUSES[i].retryable);
  }
}

static void unknown_numbers_are_handled(void) {
  const brisk_status unknown[] = {16, 17, 99, 1000, 0x7fffffffu, UINT32_MAX};
  size_t i;
  for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *name = brisk_status_name(unknown[i]);
    CHECK(name != NULL && strcmp(name, "BRISK_ERR_UNKNOWN") == 0);
    CHECK(brisk_status_category(unknown[i]) == BRISK_CATEGORY_GENERIC);
    CHECK(!brisk_status_is_retryable(unknown[i]));
  }
}

static void last_error_message_lifecycle(void) {
  brisk_config *cfg = brisk_config_new();
  REQUIRE(cfg != NULL);

  /* Nothing has failed on a fresh thread. */
  CHECK(brisk_last_error_message() != NULL);

  CHECK_STATUS(brisk_config_set_url(cfg, "nonsense"), BRISK_ERR_INVALID_ARGUMENT);
  CHECK(strlen(brisk_last_error_message()) > 0);

  /* Functions that do not return a status leave the message alone. */
  (void)brisk_status_name(BRISK_ERR_TIMEOUT);
  (void)brisk_status_category(BRISK_ERR_TIMEOUT);
  (void)brisk_status_is_retryable(BRISK_ERR_TIMEOUT);
  (void)brisk_version();
  brisk_reply_free(NULL);
  CHECK(strlen(brisk_last_error_message()) > 0);

  /* A successful status-returning call clears it. */
  CHECK_OK(brisk_config_set_db(cfg, 3));
  CHECK(brisk_last_error_message() != NULL && strcmp(brisk_last_error_message(), "") == 0);

  /* Fails again, then succeeds through another function. */
  CHECK_STATUS(brisk_config_set_protocol(cfg, 7), BRISK_ERR_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "protocol");
  CHECK_OK(brisk_config_set_url(cfg, "redis://127.0.0.1:6379"));
  CHECK(strcmp(brisk_last_error_message(), "") == 0);

  brisk_config_free(cfg);
}

/* The message is per thread: one thread's failure neither shows on nor is cleared by another
   thread's calls, and each thread's own successful call clears its own. */
struct error_thread {
  brisk_config *cfg;
  int fail;    /* 1: fail a call; 0: make a successful one */
  char seen[128]; /* the thread's message after its call */
};

static void *error_thread_main(void *arg) {
  struct error_thread *t = arg;
  if (t->fail)
    (void)brisk_config_set_protocol(t->cfg, 9);
  else
    (void)brisk_config_set_db(t->cfg, 1);
  snprintf(t->seen, sizeof t->seen, "%s", brisk_last_error_message());
  return NULL;
}

static void run_error_thread(struct error_thread *t) {
  pthread_t th;
  REQUIRE(pthread_create(&th, NULL, error_thread_main, t) == 0);
  REQUIRE(pthread_join(th, NULL) == 0);
}

static void last_error_message_is_per_thread(void) {
  brisk_config *cfg = brisk_config_new();
  struct error_thread failing = {cfg, 1, ""}, succeeding = {cfg, 0, ""};
  REQUIRE(cfg != NULL);

  CHECK_STATUS(brisk_config_set_url(cfg, "nonsense"), BRISK_ERR_INVALID_ARGUMENT);
  /* Another thread's success leaves this thread's message; its own message is empty. */
  run_error_thread(&succeeding);
  CHECK(strcmp(succeeding.seen, "") == 0);
  CHECK_STR_CONTAINS(brisk_last_error_message(), "url");
  /* Another thread's failure is its own. */
  run_error_thread(&failing);
  CHECK_STR_CONTAINS(failing.seen, "protocol");
  CHECK_STR_CONTAINS(brisk_last_error_message(), "url");
  /* This thread's success clears this thread's message. */
  CHECK_OK(brisk_config_set_db(cfg, 2));
  CHECK(strcmp(brisk_last_error_message(), "") == 0);
  /* And a thread that failed then succeeds sees its own message cleared. */
  run_error_thread(&failing);
  CHECK_STR_CONTAINS(failing.seen, "protocol");
  CHECK(strcmp(brisk_last_error_message(), "") == 0);
  brisk_config_free(cfg);
}

int main(int argc, char **argv) {
  bt_init(argc, argv);
  RUN(version_matches_header);
  RUN(numbers_are_the_documented_ones);
  RUN(every_status_has_its_name);
  RUN(every_status_has_its_category);
  RUN(retryable_statuses);
  RUN(unknown_numbers_are_handled);
  RUN(last_error_message_lifecycle);
  RUN(last_error_message_is_per_thread);
  return bt_finish();
}
