/*
 * C helpers of the Go binding (compiled by cgo with the package).
 *
 * brisk_last_error_message() is per OS thread, and Go may move a goroutine to another thread
 * between two C calls: reading the message in a second cgo call can read another thread's (or
 * nothing). So every helper that wraps a status-returning call reads the message in the same C
 * call and hands it back through `err`: a malloc'd copy on failure (the caller frees it), NULL
 * on success.
 *
 * Command arguments come from Go as one byte buffer and their lengths (Go memory without Go
 * pointers, which cgo allows C to read); the helpers build argv on their own side.
 */
#ifndef BRISK_GO_BG_H
#define BRISK_GO_BG_H

#include <brisk.h>
#include <stdint.h>
#include <stdlib.h>

typedef brisk_status (*bg_str_setter)(brisk_config *, const char *);
typedef brisk_status (*bg_u32_setter)(brisk_config *, uint32_t);
typedef brisk_status (*bg_bool_setter)(brisk_config *, bool);
typedef brisk_status (*bg_size_setter)(brisk_config *, size_t);
typedef brisk_status (*bg_host_port_setter)(brisk_config *, const char *, uint16_t);
typedef brisk_status (*bg_str2_setter)(brisk_config *, const char *, const char *);
typedef brisk_status (*bg_double_setter)(brisk_config *, double);
typedef brisk_status (*bg_u32x2_setter)(brisk_config *, uint32_t, uint32_t);
typedef brisk_status (*bg_u64_setter)(brisk_config *, uint64_t);

brisk_status bg_set_str(bg_str_setter fn, brisk_config *cfg, const char *v, char **err);
brisk_status bg_set_u32(bg_u32_setter fn, brisk_config *cfg, uint32_t v, char **err);
brisk_status bg_set_bool(bg_bool_setter fn, brisk_config *cfg, bool v, char **err);
brisk_status bg_set_size(bg_size_setter fn, brisk_config *cfg, size_t v, char **err);
brisk_status bg_set_host_port(bg_host_port_setter fn, brisk_config *cfg, const char *host,
                              uint16_t port, char **err);
brisk_status bg_set_tcp_keepalive(brisk_config *cfg, uint32_t idle_s, uint32_t interval_s,
                                  uint32_t probes, char **err);
brisk_status bg_set_str2(bg_str2_setter fn, brisk_config *cfg, const char *a, const char *b,
                         char **err);
brisk_status bg_set_double(bg_double_setter fn, brisk_config *cfg, double v, char **err);
brisk_status bg_set_u32x2(bg_u32x2_setter fn, brisk_config *cfg, uint32_t a, uint32_t b,
                          char **err);
brisk_status bg_set_u64(bg_u64_setter fn, brisk_config *cfg, uint64_t v, char **err);
brisk_status bg_set_retry(brisk_config *cfg, brisk_backoff backoff, uint32_t base_ms,
                          uint32_t cap_ms, uint32_t retries, char **err);
brisk_status bg_set_retry_on_errors(brisk_config *cfg, const brisk_status *codes, size_t n,
                                    char **err);
/* handle 0 removes the callback; otherwise events go to briskGoOnEvent(handle, ...). */
brisk_status bg_set_event_callback(brisk_config *cfg, uintptr_t handle, char **err);

brisk_status bg_client_new(const brisk_config *cfg, brisk_client **out, char **err);
brisk_status bg_ping(brisk_client *c, char **err);
brisk_status bg_command(brisk_client *c, const char *buf, const size_t *lens, size_t argc,
                        brisk_reply **out, char **err);
/* The outcome goes to briskGoOnReply(handle, ...) on a brisk thread. A non-NULL traceparent
 * is the command's span parent: set on this thread just before the command starts and cleared
 * right after, in this one C call, since a goroutine may run its next call on another thread
 * (INVALID_ARGUMENT for a malformed one, and the command is not started). */
brisk_status bg_command_async(brisk_client *c, const char *buf, const size_t *lens, size_t argc,
                              const char *traceparent, uintptr_t handle, char **err);
brisk_status bg_pipeline_new(brisk_client *c, int transaction, brisk_pipeline **out, char **err);
brisk_status bg_pipeline_append(brisk_pipeline *p, const char *buf, const size_t *lens,
                                size_t argc, char **err);
brisk_status bg_pipeline_exec(brisk_pipeline *p, brisk_reply **out, char **err);
brisk_status bg_session_new(brisk_client *c, brisk_session **out, char **err);
brisk_status bg_session_command(brisk_session *s, const char *buf, const size_t *lens,
                                size_t argc, brisk_reply **out, char **err);
brisk_status bg_flush_telemetry(brisk_client *c, uint32_t timeout_ms, char **err);
brisk_status bg_cache_flush(brisk_client *c, char **err);

/* A pull-style subscriber (no callback): Go takes its messages with bg_subscriber_next. */
brisk_status bg_subscriber_new(brisk_client *c, brisk_subscriber **out, char **err);
/* brisk_subscriber_subscribe (subscribe != 0) or _unsubscribe of `count` names packed in buf. */
brisk_status bg_subscriber_change(brisk_subscriber *s, int subscribe, brisk_subscription kind,
                                  const char *buf, const size_t *lens, size_t count, char **err);

/* A message's fields, read in C in the same call that took it. The strings belong to `m`:
 * copy them, then brisk_message_free(m). */
typedef struct {
  brisk_message *m;
  uint32_t kind;
  const char *channel;
  size_t channel_len;
  const char *pattern; /* NULL unless a pattern subscription delivered it */
  size_t pattern_len;
  const char *payload;
  size_t payload_len;
} bg_message;

/* brisk_subscriber_next (timeout_ms 0: brisk_subscriber_try_next, no wait). */
brisk_status bg_subscriber_next(brisk_subscriber *s, uint32_t timeout_ms, bg_message *out,
                                char **err);
uint32_t bg_retry_backoff_ms(brisk_backoff backoff, uint32_t base_ms, uint32_t cap_ms,
                             uint32_t retries, uint32_t attempt, char **err);

/* One reply node described in one call (the top of a reply; elements come from
 * brisk_reply_elements). */
void bg_describe(const brisk_reply *r, brisk_reply_item *out);

/* An event's fields, read in C before calling into Go once. */
typedef struct {
  uint32_t kind;
  uint32_t status;
  const char *command;
  size_t command_len;
  uint64_t duration_us;
  uint32_t attempt;
  const char *server_address;
  const char *error_type;
  uint32_t batch_size;
  uint32_t db;
  uint32_t cache_reason;
} bg_event;

#endif
