/*
 * The variadic functions of brisk.h (brisk_commandf and its relatives), which Rust cannot
 * define. Each walks nothing itself: it hands the arguments, as a va_list, to the Rust side
 * (brisk_shim_run_format, src/capi/commandf.rs), which parses the format, takes one value per
 * conversion through brisk_shim_arg_string / brisk_shim_arg_binary, and runs the command. The
 * exported names are Rust trampolines that jump here (commandf.rs says why).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "brisk.h"

#define BRISK_SHIM __attribute__((visibility("hidden")))

/* What the format's command is for; the numbers are commandf.rs's `Target`. */
enum { TARGET_CLIENT = 0, TARGET_PIPELINE = 1, TARGET_SESSION = 2 };

BRISK_SHIM brisk_status brisk_shim_run_format(void *target, uint32_t kind, brisk_reply **reply,
                                              const char *format, va_list *ap);

BRISK_SHIM const char *brisk_shim_arg_string(va_list *ap) { return va_arg(*ap, const char *); }

BRISK_SHIM const void *brisk_shim_arg_binary(va_list *ap, size_t *len) {
  const void *data = va_arg(*ap, const void *);
  *len = va_arg(*ap, size_t);
  return data;
}

/* Each definition must have its public declaration's type exactly: declaring it with
 * __typeof__ first makes a mismatch a compile error. */
BRISK_SHIM __typeof__(brisk_commandf) brisk_shim_commandf;
BRISK_SHIM __typeof__(brisk_vcommandf) brisk_shim_vcommandf;
BRISK_SHIM __typeof__(brisk_pipeline_appendf) brisk_shim_pipeline_appendf;
BRISK_SHIM __typeof__(brisk_pipeline_vappendf) brisk_shim_pipeline_vappendf;
BRISK_SHIM __typeof__(brisk_session_commandf) brisk_shim_session_commandf;
BRISK_SHIM __typeof__(brisk_session_vcommandf) brisk_shim_session_vcommandf;

/* A va_list parameter may be an array type decayed to a pointer: &ap would then not be a
 * va_list *. A local copy always is. */
static brisk_status run_copy(void *target, uint32_t kind, brisk_reply **reply,
                             const char *format, va_list ap) {
  va_list copy;
  va_copy(copy, ap);
  brisk_status status = brisk_shim_run_format(target, kind, reply, format, &copy);
  va_end(copy);
  return status;
}

brisk_status brisk_shim_commandf(brisk_client *client, brisk_reply **reply, const char *format,
                                 ...) {
  va_list ap;
  va_start(ap, format);
  brisk_status status = brisk_shim_run_format(client, TARGET_CLIENT, reply, format, &ap);
  va_end(ap);
  return status;
}

brisk_status brisk_shim_vcommandf(brisk_client *client, brisk_reply **reply, const char *format,
                                  va_list ap) {
  return run_copy(client, TARGET_CLIENT, reply, format, ap);
}

brisk_status brisk_shim_pipeline_appendf(brisk_pipeline *p, const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  brisk_status status = brisk_shim_run_format(p, TARGET_PIPELINE, NULL, format, &ap);
  va_end(ap);
  return status;
}

brisk_status brisk_shim_pipeline_vappendf(brisk_pipeline *p, const char *format, va_list ap) {
  return run_copy(p, TARGET_PIPELINE, NULL, format, ap);
}

brisk_status brisk_shim_session_commandf(brisk_session *s, brisk_reply **reply,
                                         const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  brisk_status status = brisk_shim_run_format(s, TARGET_SESSION, reply, format, &ap);
  va_end(ap);
  return status;
}

brisk_status brisk_shim_session_vcommandf(brisk_session *s, brisk_reply **reply,
                                          const char *format, va_list ap) {
  return run_copy(s, TARGET_SESSION, reply, format, ap);
}
