/* C helpers of the Go binding: see bg.h. */
#include "bg.h"

#include <string.h>

#include "_cgo_export.h"

/* The message of the call that just failed on this thread, copied (NULL on success). */
static brisk_status take(brisk_status status, char **err) {
  *err = status == BRISK_OK ? NULL : strdup(brisk_last_error_message());
  return status;
}

brisk_status bg_set_str(bg_str_setter fn, brisk_config *cfg, const char *v, char **err) {
  return take(fn(cfg, v), err);
}

brisk_status bg_set_u32(bg_u32_setter fn, brisk_config *cfg, uint32_t v, char **err) {
  return take(fn(cfg, v), err);
}

brisk_status bg_set_bool(bg_bool_setter fn, brisk_config *cfg, bool v, char **err) {
  return take(fn(cfg, v), err);
}

brisk_status bg_set_size(bg_size_setter fn, brisk_config *cfg, size_t v, char **err) {
  return take(fn(cfg, v), err);
}

brisk_status bg_set_host_port(bg_host_port_setter fn, brisk_config *cfg, const char *host,
                              uint16_t port, char **err) {
  return take(fn(cfg, host, port), err);
}

brisk_status bg_set_tcp_keepalive(brisk_config *cfg, uint32_t idle_s, uint32_t interval_s,
                                  uint32_t probes, char **err) {
  return take(brisk_config_set_tcp_keepalive(cfg, idle_s, interval_s, probes), err);
}

brisk_status bg_set_str2(bg_str2_setter fn, brisk_config *cfg, const char *a, const char *b,
                         char **err) {
  return take(fn(cfg, a, b), err);
}

brisk_status bg_set_double(bg_double_setter fn, brisk_config *cfg, double v, char **err) {
  return take(fn(cfg, v), err);
}

brisk_status bg_set_u32x2(bg_u32x2_setter fn, brisk_config *cfg, uint32_t a, uint32_t b,
                          char **err) {
  return take(fn(cfg, a, b), err);
}

brisk_status bg_set_u64(bg_u64_setter fn, brisk_config *cfg, uint64_t v, char **err) {
  return take(fn(cfg, v), err);
}

brisk_status bg_set_retry(brisk_config *cfg, brisk_backoff backoff, uint32_t base_ms,
                          uint32_t cap_ms, uint32_t retries, char **err) {
  brisk_retry *retry = NULL;
  brisk_status st = brisk_retry_new(backoff, base_ms, cap_ms, retries, &retry);
  if (st == BRISK_OK)
    st = brisk_config_set_retry(cfg, retry);
  take(st, err);
  brisk_retry_free(retry);
  return st;
}

brisk_status bg_set_retry_on_errors(brisk_config *cfg, const brisk_status *codes, size_t n,
                                    char **err) {
  return take(brisk_config_set_retry_on_errors(cfg, codes, n), err);
}

static void on_event(void *userdata, const brisk_event *e) {
  bg_event ev;
  ev.kind = brisk_event_kind_of(e);
  ev.status = brisk_event_status(e);
  ev.command = brisk_event_command_name(e, &ev.command_len);
  ev.duration_us = brisk_event_duration_us(e);
  ev.attempt = brisk_event_attempt(e);
  ev.server_address = brisk_event_server_address(e);
  ev.error_type = brisk_event_error_type(e);
  ev.batch_size = brisk_event_batch_size(e);
  ev.db = brisk_event_db(e);
  ev.cache_reason = brisk_event_cache_reason(e);
  briskGoOnEvent((uintptr_t)userdata, &ev);
}

brisk_status bg_set_event_callback(brisk_config *cfg, uintptr_t handle, char **err) {
  return take(brisk_config_set_event_callback(cfg, handle ? on_event : NULL, (void *)handle),
              err);
}

brisk_status bg_client_new(const brisk_config *cfg, brisk_client **out, char **err) {
  return take(brisk_client_new(cfg, out), err);
}

brisk_status bg_ping(brisk_client *c, char **err) { return take(brisk_ping(c), err); }

#define SMALL_ARGC 16

/* argv from the packed buffer: on the stack for short commands. */
#define WITH_ARGV(argc, buf, lens, argv, body)                                                   \
  do {                                                                                            \
    const char *small_[SMALL_ARGC];                                                               \
    const char **argv = (argc) <= SMALL_ARGC ? small_ : malloc((argc) * sizeof(char *));          \
    size_t off_ = 0, i_;                                                                          \
    if (argv == NULL) {                                                                           \
      *err = strdup("brisk (Go): out of memory for the arguments");                               \
      return BRISK_ERR_INTERNAL;                                                                  \
    }                                                                                             \
    for (i_ = 0; i_ < (argc); i_++) {                                                             \
      argv[i_] = (buf) + off_;                                                                    \
      off_ += (lens)[i_];                                                                         \
    }                                                                                             \
    body;                                                                                         \
    if (argv != small_)                                                                           \
      free((void *)argv);                                                                         \
  } while (0)

brisk_status bg_command(brisk_client *c, const char *buf, const size_t *lens, size_t argc,
                        brisk_reply **out, char **err) {
  brisk_status st = BRISK_OK;
  WITH_ARGV(argc, buf, lens, argv, st = take(brisk_command(c, argc, argv, lens, out), err));
  return st;
}

static void on_reply(void *userdata, brisk_status status, const char *message,
                     brisk_reply *reply) {
  briskGoOnReply((uintptr_t)userdata, status, (char *)message, reply);
}

brisk_status bg_command_async(brisk_client *c, const char *buf, const size_t *lens, size_t argc,
                              const char *traceparent, uintptr_t handle, char **err) {
  brisk_status st = BRISK_OK;
  /* The parent is set inside WITH_ARGV's body, so that no early return leaves it set. */
  WITH_ARGV(argc, buf, lens, argv, {
    if (traceparent != NULL && take(brisk_trace_parent_set(traceparent), err) != BRISK_OK) {
      st = BRISK_ERR_INVALID_ARGUMENT;
    } else {
      st = take(brisk_command_async(c, argc, argv, lens, on_reply, (void *)handle), err);
      if (traceparent != NULL)
        brisk_trace_parent_set(NULL); /* after take(): it clears the thread's last message */
    }
  });
  return st;
}

brisk_status bg_pipeline_new(brisk_client *c, int transaction, brisk_pipeline **out, char **err) {
  return take(transaction ? brisk_transaction_new(c, out) : brisk_pipeline_new(c, out), err);
}

brisk_status bg_pipeline_append(brisk_pipeline *p, const char *buf, const size_t *lens,
                                size_t argc, char **err) {
  brisk_status st = BRISK_OK;
  WITH_ARGV(argc, buf, lens, argv, st = take(brisk_pipeline_append(p, argc, argv, lens), err));
  return st;
}

brisk_status bg_pipeline_exec(brisk_pipeline *p, brisk_reply **out, char **err) {
  return take(brisk_pipeline_exec(p, out), err);
}

brisk_status bg_session_new(brisk_client *c, brisk_session **out, char **err) {
  return take(brisk_session_new(c, out), err);
}

brisk_status bg_session_command(brisk_session *s, const char *buf, const size_t *lens,
                                size_t argc, brisk_reply **out, char **err) {
  brisk_status st = BRISK_OK;
  WITH_ARGV(argc, buf, lens, argv, st = take(brisk_session_command(s, argc, argv, lens, out), err));
  return st;
}

brisk_status bg_flush_telemetry(brisk_client *c, uint32_t timeout_ms, char **err) {
  return take(brisk_client_flush_telemetry(c, timeout_ms), err);
}

brisk_status bg_cache_flush(brisk_client *c, char **err) {
  return take(brisk_client_cache_flush(c), err);
}

brisk_status bg_subscriber_new(brisk_client *c, brisk_subscriber **out, char **err) {
  return take(brisk_subscriber_new(c, NULL, NULL, out), err);
}

brisk_status bg_subscriber_change(brisk_subscriber *s, int subscribe, brisk_subscription kind,
                                  const char *buf, const size_t *lens, size_t count, char **err) {
  brisk_status st = BRISK_OK;
  WITH_ARGV(count, buf, lens, names, {
    st = take(subscribe ? brisk_subscriber_subscribe(s, kind, count, names, lens)
                        : brisk_subscriber_unsubscribe(s, kind, count, names, lens),
              err);
  });
  return st;
}

brisk_status bg_subscriber_next(brisk_subscriber *s, uint32_t timeout_ms, bg_message *out,
                                char **err) {
  brisk_message *m = NULL;
  brisk_status st = take(timeout_ms == 0 ? brisk_subscriber_try_next(s, &m)
                                         : brisk_subscriber_next(s, timeout_ms, &m),
                         err);
  memset(out, 0, sizeof *out);
  if (st != BRISK_OK)
    return st;
  out->m = m;
  out->kind = brisk_message_kind(m);
  out->channel = brisk_message_channel(m, &out->channel_len);
  out->pattern = brisk_message_pattern(m, &out->pattern_len);
  out->payload = brisk_message_payload(m, &out->payload_len);
  return st;
}

uint32_t bg_retry_backoff_ms(brisk_backoff backoff, uint32_t base_ms, uint32_t cap_ms,
                             uint32_t retries, uint32_t attempt, char **err) {
  brisk_retry *retry = NULL;
  uint32_t ms = 0;
  if (take(brisk_retry_new(backoff, base_ms, cap_ms, retries, &retry), err) == BRISK_OK)
    ms = brisk_retry_backoff_ms(retry, attempt);
  brisk_retry_free(retry);
  return ms;
}

void bg_describe(const brisk_reply *r, brisk_reply_item *out) {
  out->kind = brisk_reply_type_of(r);
  out->str = brisk_reply_string(r, &out->len);
  if (out->str == NULL)
    out->len = brisk_reply_length(r);
  out->integer = brisk_reply_integer(r);
  out->number = brisk_reply_double(r);
  out->reply = r;
}
