
/*
 * Printf-style commands (declared by hand: cbindgen cannot express C variadic functions, which
 * Rust cannot define; src/capi/commandf.c implements them, core/format.rs parses the formats).
 */

/**
 * Runs one command written as a format, as hiredis's `redisCommand()` does:
 * `brisk_commandf(client, &reply, "SET %s %b", key, value, value_len)`.
 *
 * A space separates arguments (several count as one); nothing else does, so an interpolated
 * value is one argument (or part of one, as in `"user:%s:name"`) whatever bytes it holds. `%s`
 * takes a NUL-terminated string (`const char *`), `%b` binary data as a `const void *` and a
 * `size_t` length, `%%` is a literal `%`. The format is checked before any argument is read:
 * any other conversion (`%d`, ...), or a `%` ending the format, is `BRISK_ERR_INVALID_ARGUMENT`
 * naming it, never a crash. A NULL `%s` value, or a NULL `%b` pointer with a nonzero length, is
 * INVALID_ARGUMENT too. Everything else is as for `brisk_command()`: on `BRISK_OK`, `*reply`
 * is the reply (free it with `brisk_reply_free()`; `reply` may be NULL to discard it); same
 * statuses, retries and thread safety (any thread, the client is shared). The arguments are
 * copied once into one buffer; `brisk_command()` with `argv`/`argvlen` copies nothing.
 */
brisk_status brisk_commandf(brisk_client *client, brisk_reply **reply, const char *format, ...);

/**
 * `brisk_commandf()` with the arguments as a `va_list` (for wrappers with their own `...`).
 * `ap` is used through a copy (`va_copy`): the caller still owns it and calls `va_end` on it.
 */
brisk_status brisk_vcommandf(brisk_client *client,
                             brisk_reply **reply,
                             const char *format,
                             va_list ap);

/**
 * Appends a command written as a format (see `brisk_commandf()`) to a pipeline or transaction,
 * as `brisk_pipeline_append()` does. Not thread-safe, like the pipeline.
 */
brisk_status brisk_pipeline_appendf(brisk_pipeline *p, const char *format, ...);

/** `brisk_pipeline_appendf()` with a `va_list` (used through a copy, as in `brisk_vcommandf()`). */
brisk_status brisk_pipeline_vappendf(brisk_pipeline *p, const char *format, va_list ap);

/**
 * Runs a command written as a format (see `brisk_commandf()`) on a session's connection, as
 * `brisk_session_command()` does. Not thread-safe, like the session.
 */
brisk_status brisk_session_commandf(brisk_session *s,
                                    brisk_reply **reply,
                                    const char *format,
                                    ...);

/** `brisk_session_commandf()` with a `va_list` (used through a copy, as in `brisk_vcommandf()`). */
brisk_status brisk_session_vcommandf(brisk_session *s,
                                     brisk_reply **reply,
                                     const char *format,
                                     va_list ap);
