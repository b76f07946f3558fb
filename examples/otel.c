/*
 * otel: OpenTelemetry with one setting.
 *
 *   otel [redis://host:port] [http://collector:4318]
 *
 * Points brisk at an OTLP/HTTP collector (the second argument; without it
 * OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318), makes this program's "request" the
 * parent of brisk's spans with a W3C traceparent, runs a few commands (one of them fails on
 * purpose, one is a pipeline, one is async), flushes and exits. The collector receives a CLIENT
 * span per command (GET, SET, PIPELINE, ...; children of the request's span) and the
 * database-client metrics (db.client.operation.duration, db.client.connection.count, ...).
 * OTEL_SERVICE_NAME names this program in the collector. See the README, "OpenTelemetry".
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <brisk.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int check(brisk_status st, const char *what) {
  if (st != BRISK_OK)
    fprintf(stderr, "%s: %s: %s\n", what, brisk_status_name(st), brisk_last_error_message());
  return st == BRISK_OK;
}

/* Set by the async callback (on a brisk thread); main polls it with a short sleep. */
static atomic_int async_done;

static void on_reply(void *userdata, brisk_status status, const char *message,
                     brisk_reply *reply) {
  (void)userdata;
  if (status != BRISK_OK) fprintf(stderr, "async GET: %s\n", message);
  brisk_reply_free(reply);
  atomic_store(&async_done, 1);
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "redis://127.0.0.1:6379";
  const char *collector = argc > 2 ? argv[2] : NULL;

  brisk_config *cfg = brisk_config_new();
  if (!cfg || !check(brisk_config_set_url(cfg, url), "set_url") ||
      /* The one setting: traces and metrics go to this collector. */
      !check(brisk_config_set_otel_endpoint(cfg, collector), "set_otel_endpoint") ||
      !check(brisk_config_set_otel_traces_sample_ratio(cfg, 1.0), "set_otel_traces_sample_ratio"))
    return 1;
  brisk_client *client = NULL;
  int ok = check(brisk_client_new(cfg, &client), "client_new");
  brisk_config_free(cfg);
  if (!ok) return 1;

  /* The application's own span, as its tracer would propagate it: brisk's spans become its
     children. Here a fixed one; a real program passes its current span's traceparent. */
  check(brisk_trace_parent_set("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        "trace_parent_set");

  const char *set[3] = {"SET", "otel:example", "42"};
  const char *get[2] = {"GET", "otel:example"};
  const char *wrong[3] = {"LPUSH", "otel:example", "x"};
  brisk_reply *reply = NULL;
  ok = check(brisk_command(client, 3, set, NULL, &reply), "SET");
  brisk_reply_free(reply);
  ok = ok && check(brisk_command(client, 2, get, NULL, &reply), "GET");
  brisk_reply_free(reply);
  /* Fails with WRONGTYPE: its span has error.type WRONGTYPE and status ERROR. */
  if (brisk_command(client, 3, wrong, NULL, NULL) == BRISK_OK) ok = 0;

  brisk_pipeline *pipeline = NULL;
  ok = ok && check(brisk_pipeline_new(client, &pipeline), "pipeline_new");
  if (pipeline) {
    brisk_pipeline_append(pipeline, 3, set, NULL);
    brisk_pipeline_append(pipeline, 2, get, NULL);
    ok = check(brisk_pipeline_exec(pipeline, &reply), "pipeline") && ok; /* one PIPELINE span */
    brisk_reply_free(reply);
    brisk_pipeline_free(pipeline);
  }

  /* An async command keeps the parent of the thread that submitted it. */
  ok = check(brisk_command_async(client, 2, get, NULL, on_reply, NULL), "GET async") && ok;
  for (int i = 0; i < 5000 && !atomic_load(&async_done); i++) {
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
  brisk_trace_parent_set(NULL);

  /* Send now rather than at the next export interval. A missing collector is not an error
     for the commands: telemetry is dropped and counted. */
  brisk_status flushed = brisk_client_flush_telemetry(client, 5000);
  printf("commands %s; telemetry flushed: %s; spans dropped: %llu\n", ok ? "ok" : "FAILED",
         brisk_status_name(flushed),
         (unsigned long long)brisk_client_telemetry_dropped(client));
  brisk_client_free(client); /* flushes again, waiting at most 2 s */
  return ok && atomic_load(&async_done) ? 0 : 1;
}
