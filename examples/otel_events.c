/*
 * otel_events: turn brisk's events into OpenTelemetry-style metrics.
 *
 *   otel_events [redis://host:port]
 *
 * Installs an event callback, runs a small mixed workload from a few threads, and prints the
 * `db.client.operation.duration` histogram (seconds, with the bucket boundaries the
 * OpenTelemetry database semantic conventions recommend), one series per
 * (db.operation.name, error.type), plus counts of the other events. A real program would hand
 * the same attributes to its OpenTelemetry SDK instead of printing them.
 */
#include <brisk.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define MAX_SERIES 32
#define BUCKETS 11

/* Boundaries in seconds, from the semantic conventions for db.client.operation.duration. */
static const double bounds[BUCKETS] = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05,
                                       0.1,    0.5,    1.0,   5.0,   10.0};

struct series {
  char operation[64];  /* db.operation.name */
  char error_type[64]; /* error.type, "" when the operation succeeded */
  char address[128];   /* server.address:server.port */
  unsigned db;         /* db.namespace */
  unsigned long count, batch_total;
  double sum;
  unsigned long buckets[BUCKETS + 1]; /* the last one is +Inf */
};

struct metrics {
  pthread_mutex_t lock; /* the callback runs on many threads at once */
  struct series series[MAX_SERIES];
  int n_series;
  unsigned long by_kind[8];
};

static struct series *find_series(struct metrics *m, const char *op, const char *err) {
  for (int i = 0; i < m->n_series; i++)
    if (strcmp(m->series[i].operation, op) == 0 && strcmp(m->series[i].error_type, err) == 0)
      return &m->series[i];
  if (m->n_series == MAX_SERIES) return NULL;
  struct series *s = &m->series[m->n_series++];
  memset(s, 0, sizeof *s);
  snprintf(s->operation, sizeof s->operation, "%s", op);
  snprintf(s->error_type, sizeof s->error_type, "%s", err);
  return s;
}

/* Called synchronously by brisk; keep it short and never block for long. */
static void on_event(void *userdata, const brisk_event *e) {
  struct metrics *m = userdata;
  brisk_event_kind kind = brisk_event_kind_of(e);
  pthread_mutex_lock(&m->lock);
  if (kind < 8) m->by_kind[kind]++;
  if (kind == BRISK_EVENT_COMMAND) {
    const char *err = brisk_event_error_type(e);
    struct series *s = find_series(m, brisk_event_command_name(e, NULL), err ? err : "");
    if (s) {
      double seconds = (double)brisk_event_duration_us(e) / 1e6;
      int b = 0;
      while (b < BUCKETS && seconds > bounds[b]) b++;
      s->buckets[b]++;
      s->count++;
      s->sum += seconds;
      s->batch_total += brisk_event_batch_size(e);
      s->db = brisk_event_db(e);
      snprintf(s->address, sizeof s->address, "%s", brisk_event_server_address(e));
    }
  }
  pthread_mutex_unlock(&m->lock);
}

static void *workload(void *arg) {
  brisk_client *client = arg;
  char key[32], value[32];
  for (int i = 0; i < 200; i++) {
    snprintf(key, sizeof key, "otel:%d", i % 20);
    snprintf(value, sizeof value, "%d", i);
    const char *set[] = {"SET", key, value};
    const char *get[] = {"GET", key};
    const char *bad[] = {"LPUSH", key, "x"}; /* WRONGTYPE: shows up with error.type */
    brisk_command(client, 3, set, NULL, NULL);
    brisk_command(client, 2, get, NULL, NULL);
    if (i % 50 == 0) brisk_command(client, 3, bad, NULL, NULL);
  }
  brisk_pipeline *p = NULL;
  if (brisk_pipeline_new(client, &p) == BRISK_OK) {
    const char *incr[] = {"INCR", "otel:counter"};
    for (int i = 0; i < 10; i++) brisk_pipeline_append(p, 2, incr, NULL);
    brisk_pipeline_exec(p, NULL);
    brisk_pipeline_free(p);
  }
  return NULL;
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "redis://127.0.0.1:6379";
  static struct metrics m = {.lock = PTHREAD_MUTEX_INITIALIZER};

  brisk_config *cfg = brisk_config_new();
  if (brisk_config_set_url(cfg, url) != BRISK_OK) {
    fprintf(stderr, "bad url: %s\n", brisk_last_error_message());
    brisk_config_free(cfg);
    return 1;
  }
  brisk_config_set_event_callback(cfg, on_event, &m);
  brisk_client *client = NULL;
  brisk_status st = brisk_client_new(cfg, &client);
  brisk_config_free(cfg);
  if (st != BRISK_OK) {
    fprintf(stderr, "%s: %s\n", brisk_status_name(st), brisk_last_error_message());
    return 1;
  }

  pthread_t threads[4];
  for (int i = 0; i < 4; i++) pthread_create(&threads[i], NULL, workload, client);
  for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);
  const char *del[] = {"DEL", "otel:counter"};
  brisk_command(client, 2, del, NULL, NULL);
  brisk_client_free(client);

  printf("db.client.operation.duration (s), db.system.name=redis\n");
  for (int i = 0; i < m.n_series; i++) {
    struct series *s = &m.series[i];
    printf("  db.operation.name=%s%s%s server=%s db.namespace=%u count=%lu mean=%.6f",
           s->operation, s->error_type[0] ? " error.type=" : "", s->error_type, s->address,
           s->db, s->count, s->count ? s->sum / (double)s->count : 0.0);
    if (s->batch_total != s->count) printf(" db.operation.batch.size=%lu", s->batch_total / s->count);
    printf("\n    buckets:");
    for (int b = 0; b <= BUCKETS; b++) {
      if (!s->buckets[b]) continue;
      if (b < BUCKETS)
        printf(" <=%g:%lu", bounds[b], s->buckets[b]);
      else
        printf(" +Inf:%lu", s->buckets[b]);
    }
    printf("\n");
  }
  static const char *names[8] = {"command", "retry",     "connect",  "disconnect",
                                 "health_check", "pool_wait", "topology", "cache_invalidate"};
  printf("events:");
  for (int k = 0; k < 8; k++)
    if (m.by_kind[k]) printf(" %s=%lu", names[k], m.by_kind[k]);
  printf("\n");
  return m.by_kind[BRISK_EVENT_COMMAND] > 0 ? 0 : 1;
}
