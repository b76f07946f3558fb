/*
 * brisk._native: the CPython extension under the `brisk` package.
 *
 * It holds everything whose speed matters: encoding command arguments, calling libbrisk with the
 * GIL released, and turning reply trees into Python objects (a whole aggregate's elements come
 * from one brisk_reply_elements() call per 32 elements). The Pythonic surface (options, context
 * managers, asyncio, exceptions) is written in Python on top of these types, which it subclasses.
 *
 * Threads: the GIL is released around every call that may wait (commands, pipelines, sessions,
 * creating and freeing clients), so other Python threads run meanwhile and brisk's own threads
 * (events, async completions) never wait for a Python thread that waits for them. The error
 * message of a failed call is read inside the same released section, on the same OS thread,
 * before anything else can touch that thread's brisk_last_error_message().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <brisk.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#if PY_VERSION_HEX >= 0x030D0000
#define BRISK_PY_FINALIZING() Py_IsFinalizing()
#else
#define BRISK_PY_FINALIZING() _Py_IsFinalizing()
#endif

/* --- hooks installed by brisk/__init__.py ----------------------------------------------------- */

/* exceptions._from_status(status, message) -> exception instance */
static PyObject *from_status;
/* exceptions._from_reply(text) -> exception instance, for error elements */
static PyObject *from_reply;
/* exceptions._annotate(exception, index) -> None, for a pipeline's first error */
static PyObject *annotate;
/* exceptions.DataError, for arguments of a type Redis has no encoding for */
static PyObject *data_error;

/* A failed call's exception, not raised (NULL with an exception set if even that failed). */
static PyObject *status_exception(brisk_status status, const char *message) {
  PyObject *text, *exc;
  if (from_status == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "brisk._native used before brisk was imported");
    return NULL;
  }
  text = PyUnicode_DecodeUTF8(message ? message : "", message ? (Py_ssize_t)strlen(message) : 0,
                              "replace");
  if (text == NULL)
    return NULL;
  exc = PyObject_CallFunction(from_status, "IO", (unsigned)status, text);
  Py_DECREF(text);
  return exc;
}

/* Raises the exception of a failed call; always returns NULL. */
static PyObject *raise_status(brisk_status status, const char *message) {
  PyObject *exc = status_exception(status, message);
  if (exc != NULL) {
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
  }
  return NULL;
}

/* --- text encoding and decoding --------------------------------------------------------------- */

/* How str arguments are encoded and replies decoded (redis-py's encoding, encoding_errors and
 * decode_responses). `encoding` and `errors` point into str objects the owner keeps alive. */
typedef struct {
  int decode;
  int utf8;
  const char *encoding;
  const char *errors;
} Codec;

static PyObject *text_value(const char *s, size_t n, const Codec *c) {
  if (!c->decode)
    return PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
  if (c->utf8)
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, c->errors);
  return PyUnicode_Decode(s, (Py_ssize_t)n, c->encoding, c->errors);
}

/* Fills `c` from Python arguments, keeping references to the strings in enc_ref and err_ref. */
static int codec_init(Codec *c, PyObject **enc_ref, PyObject **err_ref, int decode,
                      PyObject *encoding, PyObject *errors) {
  const char *e, *r;
  if (!PyUnicode_Check(encoding) || !PyUnicode_Check(errors)) {
    PyErr_SetString(PyExc_TypeError, "encoding and encoding_errors must be str");
    return -1;
  }
  e = PyUnicode_AsUTF8(encoding);
  r = PyUnicode_AsUTF8(errors);
  if (e == NULL || r == NULL)
    return -1;
  Py_INCREF(encoding);
  Py_INCREF(errors);
  Py_XSETREF(*enc_ref, encoding);
  Py_XSETREF(*err_ref, errors);
  c->decode = decode;
  c->utf8 = strcmp(e, "utf-8") == 0 || strcmp(e, "utf8") == 0 || strcmp(e, "UTF-8") == 0;
  c->encoding = e;
  c->errors = r;
  return 0;
}

/* --- command arguments ------------------------------------------------------------------------ */

#define SMALL_ARGC 8
#define NUMBER_ROOM 24 /* "-9223372036854775808" and its NUL */

/* A command's arguments as brisk wants them (argv, lengths), viewing Python objects in place
 * where possible: bytes and UTF-8 str without a copy, ints formatted into `numbers`. */
typedef struct {
  size_t n;
  const char **argv;
  size_t *lens;
  char *numbers;
  PyObject **temps; /* objects made for the encoding (non-UTF-8 str, big ints, floats) */
  size_t ntemps;
  Py_buffer *buffers; /* views of bytearray, memoryview, ... */
  size_t nbuffers;
  void *heap; /* the arrays, when there are more than SMALL_ARGC arguments */
  const char *argv_small[SMALL_ARGC];
  size_t lens_small[SMALL_ARGC];
  char numbers_small[SMALL_ARGC * NUMBER_ROOM];
  PyObject *temps_small[SMALL_ARGC];
} Args;

static void args_release(Args *a) {
  size_t i;
  for (i = 0; i < a->ntemps; i++)
    Py_DECREF(a->temps[i]);
  for (i = 0; i < a->nbuffers; i++)
    PyBuffer_Release(&a->buffers[i]);
  PyMem_Free(a->buffers);
  PyMem_Free(a->heap);
}

static int args_keep(Args *a, PyObject *temp, size_t i) {
  Py_ssize_t len;
  char *p;
  if (temp == NULL)
    return -1;
  a->temps[a->ntemps++] = temp;
  if (PyBytes_AsStringAndSize(temp, &p, &len) < 0)
    return -1;
  a->argv[i] = p;
  a->lens[i] = (size_t)len;
  return 0;
}

static int args_encode_one(Args *a, size_t i, PyObject *o, const Codec *c) {
  if (PyBytes_Check(o)) {
    a->argv[i] = PyBytes_AS_STRING(o);
    a->lens[i] = (size_t)PyBytes_GET_SIZE(o);
    return 0;
  }
  if (PyUnicode_Check(o)) {
    Py_ssize_t len;
    if (!c->utf8)
      return args_keep(a, PyUnicode_AsEncodedString(o, c->encoding, c->errors), i);
    a->argv[i] = PyUnicode_AsUTF8AndSize(o, &len);
    if (a->argv[i] == NULL)
      return -1;
    a->lens[i] = (size_t)len;
    return 0;
  }
  if (PyLong_Check(o) && !PyBool_Check(o)) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred())
      return -1;
    if (!overflow) {
      char *room = a->numbers + i * NUMBER_ROOM;
      a->argv[i] = room;
      a->lens[i] = (size_t)snprintf(room, NUMBER_ROOM, "%lld", v);
      return 0;
    }
    {
      PyObject *text = PyObject_Str(o);
      PyObject *bytes = text ? PyUnicode_AsUTF8String(text) : NULL;
      Py_XDECREF(text);
      return args_keep(a, bytes, i);
    }
  }
  if (PyFloat_Check(o)) {
    char *repr = PyOS_double_to_string(PyFloat_AS_DOUBLE(o), 'r', 0, 0, NULL);
    PyObject *bytes;
    if (repr == NULL)
      return -1;
    bytes = PyBytes_FromString(repr);
    PyMem_Free(repr);
    return args_keep(a, bytes, i);
  }
  if (!PyBool_Check(o) && PyObject_CheckBuffer(o)) {
    Py_buffer *view = &a->buffers[a->nbuffers];
    if (PyObject_GetBuffer(o, view, PyBUF_SIMPLE) < 0)
      return -1;
    a->nbuffers++;
    a->argv[i] = view->buf;
    a->lens[i] = (size_t)view->len;
    return 0;
  }
  PyErr_Format(data_error ? data_error : PyExc_TypeError,
               "Invalid input of type: '%s'. Convert to a bytes, string, int or float first.",
               Py_TYPE(o)->tp_name);
  return -1;
}

/* Encodes `n` arguments; on failure everything is released and an exception is set. */
static int args_encode(Args *a, PyObject *const *items, Py_ssize_t n, const Codec *c) {
  size_t i, count = (size_t)n;
  memset(a, 0, offsetof(Args, argv_small));
  a->n = count;
  if (count <= SMALL_ARGC) {
    a->argv = a->argv_small;
    a->lens = a->lens_small;
    a->numbers = a->numbers_small;
    a->temps = a->temps_small;
  } else {
    size_t each = sizeof(char *) + sizeof(size_t) + NUMBER_ROOM + sizeof(PyObject *);
    char *block = PyMem_Malloc(count * each);
    if (block == NULL) {
      PyErr_NoMemory();
      return -1;
    }
    a->heap = block;
    a->argv = (const char **)block;
    a->lens = (size_t *)(block + count * sizeof(char *));
    a->temps = (PyObject **)(block + count * (sizeof(char *) + sizeof(size_t)));
    a->numbers = block + count * (sizeof(char *) + sizeof(size_t) + sizeof(PyObject *));
  }
  for (i = 0; i < count; i++) {
    PyObject *o = items[i];
    if (a->buffers == NULL && !PyBytes_Check(o) && !PyUnicode_Check(o) && !PyLong_Check(o) &&
        !PyFloat_Check(o)) {
      a->buffers = PyMem_Calloc(count, sizeof(Py_buffer));
      if (a->buffers == NULL) {
        PyErr_NoMemory();
        args_release(a);
        return -1;
      }
    }
    if (args_encode_one(a, i, o, c) < 0) {
      args_release(a);
      return -1;
    }
  }
  return 0;
}

/* --- replies ---------------------------------------------------------------------------------- */

/* Elements read per brisk_reply_elements() call. Even, so that a map's key and value always
 * arrive in the same chunk; small, since each nesting level keeps a chunk on the C stack (brisk
 * limits nesting to 64 levels). */
#define CHUNK 32

static PyObject *item_value(const brisk_reply_item *it, const Codec *c, int as_key);

/* An element of an aggregate that is a key of a map or a member of a set must be hashable:
 * arrays become tuples, sets frozensets and maps tuples of (key, value) pairs there. */
static PyObject *aggregate_value(const brisk_reply *r, brisk_reply_type kind, size_t len,
                                 const Codec *c, int as_key) {
  brisk_reply_item items[CHUNK];
  PyObject *result;
  size_t done = 0, n, i;
  int is_list = kind == BRISK_REPLY_ARRAY || kind == BRISK_REPLY_PUSH;
  int pairs_tuple = kind == BRISK_REPLY_MAP && as_key;
  if (Py_EnterRecursiveCall(" while converting a reply"))
    return NULL;
  if (is_list)
    result = as_key ? PyTuple_New((Py_ssize_t)len) : PyList_New((Py_ssize_t)len);
  else if (kind == BRISK_REPLY_SET)
    result = as_key ? PyFrozenSet_New(NULL) : PySet_New(NULL);
  else if (pairs_tuple)
    result = PyTuple_New((Py_ssize_t)(len / 2));
  else
    result = PyDict_New();
  if (result == NULL)
    goto out;
  if (is_list && !as_key) {
    /* The common case (LRANGE, MGET, ...) in a loop of its own: a list of strings costs a
     * compare per element on top of making its bytes. */
    while (done < len && (n = brisk_reply_elements(r, done, items, CHUNK)) > 0) {
      for (i = 0; i < n; i++) {
        PyObject *v = items[i].kind == BRISK_REPLY_STRING && !c->decode
                          ? PyBytes_FromStringAndSize(items[i].str, (Py_ssize_t)items[i].len)
                          : item_value(&items[i], c, 0);
        if (v == NULL)
          goto fail;
        PyList_SET_ITEM(result, (Py_ssize_t)(done + i), v);
      }
      done += n;
    }
  }
  while (done < len && (n = brisk_reply_elements(r, done, items, CHUNK)) > 0) {
    for (i = 0; i < n; i++) {
      PyObject *v;
      if (kind == BRISK_REPLY_MAP) {
        PyObject *k;
        if (i + 1 >= n)
          break; /* a map has an even length; never a lone key */
        k = item_value(&items[i], c, 1);
        v = k ? item_value(&items[i + 1], c, as_key) : NULL;
        if (v == NULL) {
          Py_XDECREF(k);
          goto fail;
        }
        if (pairs_tuple) {
          PyObject *pair = PyTuple_Pack(2, k, v);
          Py_DECREF(k);
          Py_DECREF(v);
          if (pair == NULL)
            goto fail;
          PyTuple_SET_ITEM(result, (Py_ssize_t)((done + i) / 2), pair);
        } else {
          int failed = PyDict_SetItem(result, k, v) < 0;
          Py_DECREF(k);
          Py_DECREF(v);
          if (failed)
            goto fail;
        }
        i++;
        continue;
      }
      v = item_value(&items[i], c, as_key || kind == BRISK_REPLY_SET);
      if (v == NULL)
        goto fail;
      if (is_list) {
        if (as_key)
          PyTuple_SET_ITEM(result, (Py_ssize_t)(done + i), v);
        else
          PyList_SET_ITEM(result, (Py_ssize_t)(done + i), v);
      } else {
        int failed = PySet_Add(result, v) < 0;
        Py_DECREF(v);
        if (failed)
          goto fail;
      }
    }
    done += n;
  }
  if (done != len) {
    PyErr_SetString(PyExc_RuntimeError, "brisk: an aggregate shorter than its length");
    goto fail;
  }
out:
  Py_LeaveRecursiveCall();
  return result;
fail:
  Py_CLEAR(result);
  goto out;
}

static PyObject *error_element(const char *text, size_t len) {
  PyObject *msg, *exc;
  if (from_reply == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "brisk._native used before brisk was imported");
    return NULL;
  }
  msg = PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, "replace");
  if (msg == NULL)
    return NULL;
  exc = PyObject_CallOneArg(from_reply, msg);
  Py_DECREF(msg);
  return exc;
}

static PyObject *item_value(const brisk_reply_item *it, const Codec *c, int as_key) {
  switch (it->kind) {
  case BRISK_REPLY_NIL:
    Py_RETURN_NONE;
  case BRISK_REPLY_STRING:
  case BRISK_REPLY_STATUS:
  case BRISK_REPLY_VERBATIM:
    return text_value(it->str, it->len, c);
  case BRISK_REPLY_ERROR:
    return error_element(it->str, it->len);
  case BRISK_REPLY_INTEGER:
    return PyLong_FromLongLong(it->integer);
  case BRISK_REPLY_DOUBLE:
    return PyFloat_FromDouble(it->number);
  case BRISK_REPLY_BOOL:
    return PyBool_FromLong(it->integer != 0);
  case BRISK_REPLY_BIGNUM:
    return PyLong_FromString(it->str, NULL, 10);
  case BRISK_REPLY_ARRAY:
  case BRISK_REPLY_MAP:
  case BRISK_REPLY_SET:
  case BRISK_REPLY_PUSH:
    return aggregate_value(it->reply, it->kind, it->len, c, as_key);
  default:
    PyErr_Format(PyExc_RuntimeError, "brisk: unknown reply type %u", (unsigned)it->kind);
    return NULL;
  }
}

/* A top-level reply (or any one node) as a Python object. */
static PyObject *reply_value(const brisk_reply *r, const Codec *c) {
  brisk_reply_item it;
  it.kind = brisk_reply_type_of(r);
  it.str = brisk_reply_string(r, &it.len);
  if (it.str == NULL)
    it.len = brisk_reply_length(r);
  it.integer = brisk_reply_integer(r);
  it.number = it.kind == BRISK_REPLY_DOUBLE ? brisk_reply_double(r) : 0.0;
  it.reply = r;
  return item_value(&it, c, 0);
}

/* --- events ----------------------------------------------------------------------------------- */

static PyTypeObject EventType;

static PyStructSequence_Field event_fields[] = {
    {"kind", "what happened (brisk.EventKind)"},
    {"status", "BRISK_OK (0) or the failure's status (brisk.Status)"},
    {"command", "the command name (\"GET\", \"PIPELINE\", \"MULTI\"), \"\" for other events"},
    {"duration_us", "how long it took, in microseconds"},
    {"attempt", "COMMAND: attempts made; RETRY: the attempt that failed"},
    {"server_address", "host:port or the Unix socket path"},
    {"error_type", "the server's error code or the status name; None on success"},
    {"batch_size", "commands in a pipeline or transaction; 1 otherwise"},
    {"db", "the database number"},
    {"cache_reason", "why client-side cache entries were dropped (brisk.CacheReason); NONE for "
                     "other events"},
    {NULL, NULL}};

static PyStructSequence_Desc event_desc = {
    "brisk.Event",
    "One finished piece of work, passed to the event_callback (never arguments or values).",
    event_fields, 10};

static PyObject *text_or_none(const char *s) {
  if (s == NULL)
    Py_RETURN_NONE;
  return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* brisk_event_fn: called on the thread that did the work (a command's caller, which released
 * the GIL, or a brisk-runtime thread); takes the GIL for the Python callable. */
static void on_event(void *userdata, const brisk_event *e) {
  PyGILState_STATE gil;
  PyObject *ev, *result = NULL;
  if (BRISK_PY_FINALIZING())
    return;
  gil = PyGILState_Ensure();
  ev = PyStructSequence_New(&EventType);
  if (ev != NULL) {
    size_t len = 0;
    const char *name = brisk_event_command_name(e, &len);
    PyObject *fields[10] = {
        PyLong_FromUnsignedLong(brisk_event_kind_of(e)),
        PyLong_FromUnsignedLong(brisk_event_status(e)),
        PyUnicode_DecodeUTF8(name ? name : "", name ? (Py_ssize_t)len : 0, "replace"),
        PyLong_FromUnsignedLongLong(brisk_event_duration_us(e)),
        PyLong_FromUnsignedLong(brisk_event_attempt(e)),
        text_or_none(brisk_event_server_address(e)),
        text_or_none(brisk_event_error_type(e)),
        PyLong_FromUnsignedLong(brisk_event_batch_size(e)),
        PyLong_FromUnsignedLong(brisk_event_db(e)),
        PyLong_FromUnsignedLong(brisk_event_cache_reason(e)),
    };
    int i, ok = 1;
    for (i = 0; i < 10; i++) {
      if (fields[i] == NULL)
        ok = 0;
      PyStructSequence_SET_ITEM(ev, i, fields[i] ? fields[i] : Py_NewRef(Py_None));
    }
    if (ok)
      result = PyObject_CallOneArg((PyObject *)userdata, ev);
    Py_DECREF(ev);
  }
  if (result == NULL)
    PyErr_WriteUnraisable((PyObject *)userdata);
  Py_XDECREF(result);
  PyGILState_Release(gil);
}

/* --- Config ----------------------------------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  brisk_config *cfg;
  PyObject *event_callback;
} ConfigObject;

typedef enum { SIG_STR, SIG_OPT_STR, SIG_U32, SIG_BOOL, SIG_SIZE, SIG_HOST_PORT, SIG_U32X3,
               SIG_STR2, SIG_OPT_STR2, SIG_DOUBLE, SIG_U32X2, SIG_U64 } Signature;

/* Every brisk_config_set_* / brisk_config_add_* function taking plain values, by the name after
 * that prefix. The test suite checks this table against brisk.h, so a setter added to the C API
 * and not here fails it. */
static const struct setter {
  const char *name;
  Signature sig;
  void (*fn)(void);
} SETTERS[] = {
#define SETTER(name, sig, fn) {name, sig, (void (*)(void))fn}
    SETTER("url", SIG_STR, brisk_config_set_url),
    SETTER("address", SIG_HOST_PORT, brisk_config_set_address),
    SETTER("unix_path", SIG_STR, brisk_config_set_unix_path),
    SETTER("username", SIG_OPT_STR, brisk_config_set_username),
    SETTER("password", SIG_OPT_STR, brisk_config_set_password),
    SETTER("db", SIG_U32, brisk_config_set_db),
    SETTER("client_name", SIG_OPT_STR, brisk_config_set_client_name),
    SETTER("protocol", SIG_U32, brisk_config_set_protocol),
    SETTER("connect_timeout_ms", SIG_U32, brisk_config_set_connect_timeout_ms),
    SETTER("read_timeout_ms", SIG_U32, brisk_config_set_read_timeout_ms),
    SETTER("write_timeout_ms", SIG_U32, brisk_config_set_write_timeout_ms),
    SETTER("tcp_keepalive", SIG_U32X3, brisk_config_set_tcp_keepalive),
    SETTER("command_deadline_ms", SIG_U32, brisk_config_set_command_deadline_ms),
    SETTER("max_reply_bytes", SIG_SIZE, brisk_config_set_max_reply_bytes),
    SETTER("pool_size", SIG_U32, brisk_config_set_pool_size),
    SETTER("pool_max_wait_ms", SIG_U32, brisk_config_set_pool_max_wait_ms),
    SETTER("pool_min_idle", SIG_U32, brisk_config_set_pool_min_idle),
    SETTER("pool_idle_timeout_ms", SIG_U32, brisk_config_set_pool_idle_timeout_ms),
    SETTER("pool_max_lifetime_ms", SIG_U32, brisk_config_set_pool_max_lifetime_ms),
    SETTER("health_check_interval_ms", SIG_U32, brisk_config_set_health_check_interval_ms),
    SETTER("tls", SIG_BOOL, brisk_config_set_tls),
    SETTER("tls_ca_file", SIG_STR, brisk_config_set_tls_ca_file),
    SETTER("tls_client_cert", SIG_STR2, brisk_config_set_tls_client_cert),
    SETTER("tls_server_name", SIG_OPT_STR, brisk_config_set_tls_server_name),
    SETTER("tls_insecure_skip_verify", SIG_BOOL, brisk_config_set_tls_insecure_skip_verify),
    SETTER("retry_on_timeout", SIG_BOOL, brisk_config_set_retry_on_timeout),
    SETTER("retry_writes", SIG_U32, brisk_config_set_retry_writes),
    SETTER("mode", SIG_U32, brisk_config_set_mode),
    SETTER("add_node", SIG_HOST_PORT, brisk_config_add_node),
    SETTER("cluster_error_retry_attempts", SIG_U32, brisk_config_set_cluster_error_retry_attempts),
    SETTER("cluster_refresh_interval_ms", SIG_U32, brisk_config_set_cluster_refresh_interval_ms),
    SETTER("read_from", SIG_U32, brisk_config_set_read_from),
    SETTER("sentinel_master", SIG_STR, brisk_config_set_sentinel_master),
    SETTER("sentinel_auth", SIG_OPT_STR2, brisk_config_set_sentinel_auth),
    SETTER("sentinel_timeout_ms", SIG_U32, brisk_config_set_sentinel_timeout_ms),
    SETTER("otel_endpoint", SIG_OPT_STR, brisk_config_set_otel_endpoint),
    SETTER("otel_traces_sample_ratio", SIG_DOUBLE, brisk_config_set_otel_traces_sample_ratio),
    SETTER("otel_export_interval_ms", SIG_U32, brisk_config_set_otel_export_interval_ms),
    SETTER("otel_export_timeout_ms", SIG_U32, brisk_config_set_otel_export_timeout_ms),
    SETTER("pubsub_queue", SIG_U32X2, brisk_config_set_pubsub_queue),
    SETTER("pubsub_health_check", SIG_U32X2, brisk_config_set_pubsub_health_check),
    SETTER("client_cache", SIG_U32X2, brisk_config_set_client_cache),
    SETTER("client_cache_max_bytes", SIG_U64, brisk_config_set_client_cache_max_bytes),
    SETTER("client_cache_mode", SIG_U32, brisk_config_set_client_cache_mode),
    SETTER("add_client_cache_prefix", SIG_STR, brisk_config_add_client_cache_prefix),
    SETTER("async_dispatch", SIG_U32, brisk_config_set_async_dispatch),
#undef SETTER
};

static const char *const SIG_ARGS[] = {"(str)", "(str or None)", "(int)", "(bool)", "(int)",
                                       "(host: str, port: int)", "(int, int, int)",
                                       "(str, str)", "(str or None, str or None)", "(float)",
                                       "(int, int)", "(int)"};

static int config_init(ConfigObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {NULL};
  if (!PyArg_ParseTupleAndKeywords(args, kwds, ":Config", kwlist))
    return -1;
  if (self->cfg == NULL) {
    self->cfg = brisk_config_new();
    if (self->cfg == NULL) {
      PyErr_NoMemory();
      return -1;
    }
  }
  return 0;
}

static int config_traverse(ConfigObject *self, visitproc visit, void *arg) {
  Py_VISIT(self->event_callback);
  return 0;
}

static int config_clear(ConfigObject *self) {
  /* A config only hands the callable to clients, which keep their own reference. */
  if (self->cfg != NULL)
    brisk_config_set_event_callback(self->cfg, NULL, NULL);
  Py_CLEAR(self->event_callback);
  return 0;
}

static void config_dealloc(ConfigObject *self) {
  PyObject_GC_UnTrack(self);
  config_clear(self);
  brisk_config_free(self->cfg);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static int config_live(ConfigObject *self) {
  if (self->cfg == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "Config.__init__ was not called");
    return -1;
  }
  return 0;
}

static int as_u32(PyObject *o, uint32_t *out) {
  unsigned long long v;
  if (PyBool_Check(o) || !PyLong_Check(o)) {
    PyErr_Format(PyExc_TypeError, "expected an int, got %s", Py_TYPE(o)->tp_name);
    return -1;
  }
  v = PyLong_AsUnsignedLongLong(o);
  if (v == (unsigned long long)-1 && PyErr_Occurred())
    return -1;
  if (v > UINT32_MAX) {
    PyErr_Format(PyExc_OverflowError, "%llu does not fit in 32 bits", v);
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

/* Config.set(name, *values): calls brisk_config_set_<name> (or brisk_config_add_node). */
static PyObject *config_set(ConfigObject *self, PyObject *const *args, Py_ssize_t nargs) {
  const struct setter *s = NULL;
  const char *name, *a = NULL, *b = NULL;
  uint32_t u[3] = {0, 0, 0};
  unsigned long long size = 0;
  double number = 0;
  Py_ssize_t want, i;
  brisk_status st;
  size_t k;
  if (config_live(self) < 0)
    return NULL;
  if (nargs < 1 || !PyUnicode_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "Config.set(name: str, *values)");
    return NULL;
  }
  name = PyUnicode_AsUTF8(args[0]);
  if (name == NULL)
    return NULL;
  for (k = 0; k < sizeof SETTERS / sizeof SETTERS[0]; k++)
    if (strcmp(SETTERS[k].name, name) == 0)
      s = &SETTERS[k];
  if (s == NULL) {
    /* Options the Python layer already has for settings a newer libbrisk adds (Sentinel). */
    PyErr_Format(data_error ? data_error : PyExc_ValueError,
                 "this libbrisk (%s) has no brisk_config_set_%s", brisk_version(), name);
    return NULL;
  }
  want = s->sig == SIG_U32X3 ? 3
         : (s->sig == SIG_HOST_PORT || s->sig == SIG_STR2 || s->sig == SIG_OPT_STR2 ||
            s->sig == SIG_U32X2)
             ? 2
             : 1;
  if (nargs - 1 != want) {
    PyErr_Format(PyExc_TypeError, "Config.set(%R, ...) takes %s", args[0], SIG_ARGS[s->sig]);
    return NULL;
  }
  args++;
  switch (s->sig) {
  case SIG_OPT_STR:
    if (args[0] == Py_None)
      break;
    /* fall through */
  case SIG_STR:
  case SIG_STR2:
  case SIG_OPT_STR2:
    for (i = 0; i < want; i++) {
      const char *t;
      if (s->sig == SIG_OPT_STR2 && args[i] == Py_None)
        continue;
      if (!PyUnicode_Check(args[i])) {
        PyErr_Format(PyExc_TypeError, "Config.set(%s, ...) takes %s", name, SIG_ARGS[s->sig]);
        return NULL;
      }
      t = PyUnicode_AsUTF8(args[i]);
      if (t == NULL)
        return NULL;
      if (i == 0)
        a = t;
      else
        b = t;
    }
    break;
  case SIG_HOST_PORT:
    if (!PyUnicode_Check(args[0]) || (a = PyUnicode_AsUTF8(args[0])) == NULL ||
        as_u32(args[1], &u[0]) < 0) {
      if (!PyErr_Occurred())
        PyErr_Format(PyExc_TypeError, "Config.set(%s, ...) takes %s", name, SIG_ARGS[s->sig]);
      return NULL;
    }
    if (u[0] > UINT16_MAX) {
      PyErr_Format(PyExc_ValueError, "port %u is out of range", (unsigned)u[0]);
      return NULL;
    }
    break;
  case SIG_U32:
  case SIG_U32X2:
  case SIG_U32X3:
    for (i = 0; i < want; i++)
      if (as_u32(args[i], &u[i]) < 0)
        return NULL;
    break;
  case SIG_BOOL:
    u[0] = (uint32_t)PyObject_IsTrue(args[0]);
    if (u[0] == (uint32_t)-1)
      return NULL;
    break;
  case SIG_DOUBLE:
    if (PyBool_Check(args[0]) || !(PyFloat_Check(args[0]) || PyLong_Check(args[0]))) {
      PyErr_Format(PyExc_TypeError, "Config.set(%s, ...) takes %s", name, SIG_ARGS[s->sig]);
      return NULL;
    }
    number = PyFloat_AsDouble(args[0]);
    if (number == -1.0 && PyErr_Occurred())
      return NULL;
    break;
  case SIG_SIZE:
  case SIG_U64:
    if (PyBool_Check(args[0]) || !PyLong_Check(args[0])) {
      PyErr_SetString(PyExc_TypeError, "expected an int");
      return NULL;
    }
    size = PyLong_AsUnsignedLongLong(args[0]);
    if (size == (unsigned long long)-1 && PyErr_Occurred())
      return NULL;
    if (s->sig == SIG_SIZE && size > SIZE_MAX) {
      PyErr_SetString(PyExc_OverflowError, "too large for size_t");
      return NULL;
    }
    break;
  }
  switch (s->sig) {
  case SIG_STR:
  case SIG_OPT_STR:
    st = ((brisk_status(*)(brisk_config *, const char *))s->fn)(self->cfg, a);
    break;
  case SIG_STR2:
  case SIG_OPT_STR2:
    st = ((brisk_status(*)(brisk_config *, const char *, const char *))s->fn)(self->cfg, a, b);
    break;
  case SIG_HOST_PORT:
    st = ((brisk_status(*)(brisk_config *, const char *, uint16_t))s->fn)(self->cfg, a,
                                                                           (uint16_t)u[0]);
    break;
  case SIG_U32:
    st = ((brisk_status(*)(brisk_config *, uint32_t))s->fn)(self->cfg, u[0]);
    break;
  case SIG_U32X2:
    st = ((brisk_status(*)(brisk_config *, uint32_t, uint32_t))s->fn)(self->cfg, u[0], u[1]);
    break;
  case SIG_U32X3:
    st = ((brisk_status(*)(brisk_config *, uint32_t, uint32_t, uint32_t))s->fn)(self->cfg, u[0],
                                                                                u[1], u[2]);
    break;
  case SIG_U64:
    st = ((brisk_status(*)(brisk_config *, uint64_t))s->fn)(self->cfg, (uint64_t)size);
    break;
  case SIG_BOOL:
    st = ((brisk_status(*)(brisk_config *, bool))s->fn)(self->cfg, u[0] != 0);
    break;
  case SIG_DOUBLE:
    st = ((brisk_status(*)(brisk_config *, double))s->fn)(self->cfg, number);
    break;
  case SIG_SIZE:
  default:
    st = ((brisk_status(*)(brisk_config *, size_t))s->fn)(self->cfg, (size_t)size);
    break;
  }
  if (st != BRISK_OK)
    return raise_status(st, brisk_last_error_message());
  Py_RETURN_NONE;
}

static PyObject *config_setters(PyObject *cls, PyObject *unused) {
  PyObject *names = PyList_New(0);
  size_t k;
  (void)cls;
  (void)unused;
  if (names == NULL)
    return NULL;
  for (k = 0; k < sizeof SETTERS / sizeof SETTERS[0]; k++) {
    PyObject *n = PyUnicode_FromString(SETTERS[k].name);
    if (n == NULL || PyList_Append(names, n) < 0) {
      Py_XDECREF(n);
      Py_DECREF(names);
      return NULL;
    }
    Py_DECREF(n);
  }
  return names;
}

static PyObject *config_set_event_callback(ConfigObject *self, PyObject *fn) {
  brisk_status st;
  if (config_live(self) < 0)
    return NULL;
  if (fn != Py_None && !PyCallable_Check(fn)) {
    PyErr_SetString(PyExc_TypeError, "event_callback must be callable or None");
    return NULL;
  }
  st = brisk_config_set_event_callback(self->cfg, fn == Py_None ? NULL : on_event,
                                       fn == Py_None ? NULL : fn);
  if (st != BRISK_OK)
    return raise_status(st, brisk_last_error_message());
  if (fn == Py_None)
    Py_CLEAR(self->event_callback);
  else
    Py_XSETREF(self->event_callback, Py_NewRef(fn));
  Py_RETURN_NONE;
}

/* Config.set_retry(backoff, base_ms, cap_ms, retries) */
static PyObject *config_set_retry(ConfigObject *self, PyObject *args) {
  unsigned int backoff, base, cap, retries;
  brisk_retry *retry = NULL;
  brisk_status st;
  if (config_live(self) < 0 || !PyArg_ParseTuple(args, "IIII", &backoff, &base, &cap, &retries))
    return NULL;
  st = brisk_retry_new(backoff, base, cap, retries, &retry);
  if (st == BRISK_OK)
    st = brisk_config_set_retry(self->cfg, retry);
  if (st != BRISK_OK) {
    PyObject *r = raise_status(st, brisk_last_error_message());
    brisk_retry_free(retry);
    return r;
  }
  brisk_retry_free(retry);
  Py_RETURN_NONE;
}

/* Config.set_retry_on_errors(statuses: iterable of int) */
static PyObject *config_set_retry_on_errors(ConfigObject *self, PyObject *iterable) {
  PyObject *seq;
  brisk_status *codes;
  Py_ssize_t n, i;
  brisk_status st;
  if (config_live(self) < 0)
    return NULL;
  seq = PySequence_Fast(iterable, "retry_on_error must be iterable");
  if (seq == NULL)
    return NULL;
  n = PySequence_Fast_GET_SIZE(seq);
  codes = PyMem_Calloc((size_t)n + 1, sizeof *codes);
  if (codes == NULL) {
    Py_DECREF(seq);
    return PyErr_NoMemory();
  }
  for (i = 0; i < n; i++) {
    uint32_t v;
    if (as_u32(PySequence_Fast_GET_ITEM(seq, i), &v) < 0) {
      PyMem_Free(codes);
      Py_DECREF(seq);
      return NULL;
    }
    codes[i] = v;
  }
  Py_DECREF(seq);
  st = brisk_config_set_retry_on_errors(self->cfg, n ? codes : NULL, (size_t)n);
  PyMem_Free(codes);
  if (st != BRISK_OK)
    return raise_status(st, brisk_last_error_message());
  Py_RETURN_NONE;
}

static PyMethodDef config_methods[] = {
    {"set", (PyCFunction)(void (*)(void))config_set, METH_FASTCALL,
     "set(name, *values): brisk_config_set_<name>(cfg, values...); brisk errors raise."},
    {"setters", config_setters, METH_NOARGS | METH_CLASS,
     "The names set() accepts (the C setters taking plain values)."},
    {"set_event_callback", (PyCFunction)config_set_event_callback, METH_O,
     "set_event_callback(fn or None): fn(event) for every event of clients made from this config."},
    {"set_retry", (PyCFunction)config_set_retry, METH_VARARGS,
     "set_retry(backoff, base_ms, cap_ms, retries): brisk_retry_new + brisk_config_set_retry."},
    {"set_retry_on_errors", (PyCFunction)config_set_retry_on_errors, METH_O,
     "set_retry_on_errors(statuses): brisk_config_set_retry_on_errors."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject ConfigType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "brisk._native.Config",
    .tp_basicsize = sizeof(ConfigObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A brisk_config: settings for a client (see brisk.h's brisk_config_set_*).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)config_init,
    .tp_dealloc = (destructor)config_dealloc,
    .tp_traverse = (traverseproc)config_traverse,
    .tp_clear = (inquiry)config_clear,
    .tp_methods = config_methods,
};

/* --- async completions ------------------------------------------------------------------------ */

struct Bridge;

/* One async command: made before brisk_command_async, filled in by its callback. */
typedef struct Completion {
  struct Completion *next;
  struct Bridge *bridge;
  PyObject *token;
  brisk_status status;
  char *message;
  brisk_reply *reply;
} Completion;

/* Where async completions wait for the event loop: a list the callbacks append to (on brisk's
 * threads, without the GIL) and an eventfd that wakes the loop when the list stops being empty. */
typedef struct Bridge {
  PyObject_HEAD
  pthread_mutex_t lock;
  Completion *head, *tail;
  int fd;
  Codec codec;
  PyObject *encoding, *errors;
} BridgeObject;

/* brisk_reply_fn: never touches Python (no GIL here). */
static void on_async_reply(void *userdata, brisk_status status, const char *message,
                           brisk_reply *reply) {
  Completion *c = userdata;
  BridgeObject *b = c->bridge;
  int was_empty;
  uint64_t one = 1;
  c->status = status;
  c->reply = reply;
  c->message = status != BRISK_OK ? strdup(message ? message : "") : NULL;
  c->next = NULL;
  pthread_mutex_lock(&b->lock);
  was_empty = b->head == NULL;
  if (b->tail != NULL)
    b->tail->next = c;
  else
    b->head = c;
  b->tail = c;
  pthread_mutex_unlock(&b->lock);
  if (was_empty) {
    ssize_t w;
    do
      w = write(b->fd, &one, sizeof one);
    while (w < 0 && errno == EINTR);
  }
}

static void completion_free(Completion *c) {
  Py_XDECREF(c->token);
  free(c->message);
  brisk_reply_free(c->reply);
  PyMem_RawFree(c);
}

static Completion *bridge_take(BridgeObject *b) {
  uint64_t count;
  Completion *list;
  ssize_t r;
  /* Read the wakeup first, then take the list: a completion appended after the take writes a
   * new wakeup, so none is ever left behind without one. */
  do
    r = read(b->fd, &count, sizeof count);
  while (r < 0 && errno == EINTR);
  pthread_mutex_lock(&b->lock);
  list = b->head;
  b->head = b->tail = NULL;
  pthread_mutex_unlock(&b->lock);
  return list;
}

static PyObject *current_exception(void) {
#if PY_VERSION_HEX >= 0x030C0000
  return PyErr_GetRaisedException();
#else
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb != NULL && value != NULL)
    PyException_SetTraceback(value, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  return value;
#endif
}

/* drain() -> [(token, ok, value_or_exception), ...]: the completions that arrived. */
static PyObject *bridge_drain(BridgeObject *self, PyObject *unused) {
  Completion *c = bridge_take(self), *next;
  PyObject *out = PyList_New(0);
  (void)unused;
  for (; c != NULL; c = next) {
    PyObject *value, *entry;
    int ok = c->status == BRISK_OK;
    next = c->next;
    if (out == NULL) {
      completion_free(c);
      continue;
    }
    value = ok ? reply_value(c->reply, &self->codec) : status_exception(c->status, c->message);
    if (value == NULL) {
      ok = 0;
      value = current_exception();
    }
    entry = value ? Py_BuildValue("(OOO)", c->token, ok ? Py_True : Py_False, value) : NULL;
    Py_XDECREF(value);
    if (entry == NULL || PyList_Append(out, entry) < 0)
      Py_CLEAR(out);
    Py_XDECREF(entry);
    completion_free(c);
  }
  return out;
}

static PyObject *bridge_fileno(BridgeObject *self, PyObject *unused) {
  (void)unused;
  return PyLong_FromLong(self->fd);
}

static int bridge_init(BridgeObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"decode_responses", "encoding", "encoding_errors", NULL};
  int decode = 0;
  PyObject *encoding = NULL, *errors = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|pUU:AsyncBridge", kwlist, &decode, &encoding,
                                   &errors))
    return -1;
  if (self->fd >= 0) {
    PyErr_SetString(PyExc_RuntimeError, "AsyncBridge is already initialised");
    return -1;
  }
  if (encoding == NULL)
    encoding = PyUnicode_FromString("utf-8");
  else
    Py_INCREF(encoding);
  if (errors == NULL)
    errors = PyUnicode_FromString("strict");
  else
    Py_INCREF(errors);
  if (encoding == NULL || errors == NULL ||
      codec_init(&self->codec, &self->encoding, &self->errors, decode, encoding, errors) < 0) {
    Py_XDECREF(encoding);
    Py_XDECREF(errors);
    return -1;
  }
  Py_DECREF(encoding);
  Py_DECREF(errors);
  self->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (self->fd < 0) {
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
  }
  return 0;
}

static PyObject *bridge_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
  BridgeObject *self = (BridgeObject *)type->tp_alloc(type, 0);
  (void)args;
  (void)kwds;
  if (self == NULL)
    return NULL;
  pthread_mutex_init(&self->lock, NULL);
  self->fd = -1;
  return (PyObject *)self;
}

static void bridge_dealloc(BridgeObject *self) {
  /* Every client that started commands here holds a reference to this bridge until it is
   * freed, and brisk_client_free completes every pending callback: nothing can still arrive. */
  Completion *c = self->head, *next;
  for (; c != NULL; c = next) {
    next = c->next;
    completion_free(c);
  }
  if (self->fd >= 0)
    close(self->fd);
  pthread_mutex_destroy(&self->lock);
  Py_XDECREF(self->encoding);
  Py_XDECREF(self->errors);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef bridge_methods[] = {
    {"drain", (PyCFunction)bridge_drain, METH_NOARGS,
     "drain() -> list of (token, ok, value): the async commands that finished since the last "
     "call; value is the reply, or the exception when ok is False."},
    {"fileno", (PyCFunction)bridge_fileno, METH_NOARGS,
     "The eventfd that becomes readable when completions wait (for loop.add_reader)."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject BridgeType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "brisk._native.AsyncBridge",
    .tp_basicsize = sizeof(BridgeObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Async completions handed from brisk's threads to an event loop.",
    .tp_new = bridge_new,
    .tp_init = (initproc)bridge_init,
    .tp_dealloc = (destructor)bridge_dealloc,
    .tp_methods = bridge_methods,
};

/* --- in-flight guard ------------------------------------------------------------------------- */

/* Counts the calls that hold a brisk object with the GIL released, so that closing it waits for
 * them (brisk's *_free functions must not race a call on another thread). */
typedef struct {
  atomic_long users;
  atomic_int closed;
  pthread_mutex_t lock;
  pthread_cond_t idle;
} Guard;

static void guard_init(Guard *g) {
  atomic_init(&g->users, 0);
  atomic_init(&g->closed, 0);
  pthread_mutex_init(&g->lock, NULL);
  pthread_cond_init(&g->idle, NULL);
}

static void guard_destroy(Guard *g) {
  pthread_cond_destroy(&g->idle);
  pthread_mutex_destroy(&g->lock);
}

static void guard_leave(Guard *g) {
  if (atomic_fetch_sub(&g->users, 1) == 1 && atomic_load(&g->closed)) {
    pthread_mutex_lock(&g->lock);
    pthread_cond_broadcast(&g->idle);
    pthread_mutex_unlock(&g->lock);
  }
}

/* Marks a call in flight; 0, or -1 (nothing marked) when the object is closed. With the GIL held,
 * as is the closer's check-and-clear, so a call either sees it closed or is waited for. */
static int guard_enter(Guard *g) {
  atomic_fetch_add(&g->users, 1);
  if (atomic_load(&g->closed)) {
    guard_leave(g);
    return -1;
  }
  return 0;
}

/* Marks the object closed and waits for the calls in flight. Call without the GIL. */
static void guard_close_and_wait(Guard *g) {
  atomic_store(&g->closed, 1);
  pthread_mutex_lock(&g->lock);
  while (atomic_load(&g->users) > 0)
    pthread_cond_wait(&g->idle, &g->lock);
  pthread_mutex_unlock(&g->lock);
}

/* --- Client ----------------------------------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  brisk_client *client;
  Guard guard; /* calls in flight hold the client with the GIL released; close() waits */
  PyObject *event_callback;
  PyObject *bridges; /* list: bridges this client's async commands report to */
  PyObject *encoding, *errors;
  Codec codec;
} ClientObject;

static PyTypeObject ClientType;

static void client_leave(ClientObject *self) { guard_leave(&self->guard); }

/* Marks a call in flight and returns the client to use, or NULL (CLOSED raised). */
static brisk_client *client_enter(ClientObject *self) {
  if (guard_enter(&self->guard) < 0) {
    raise_status(BRISK_ERR_CLOSED, "the client is closed");
    return NULL;
  }
  if (self->client == NULL) {
    client_leave(self);
    raise_status(BRISK_ERR_CLOSED, "Client.__init__ was not called");
    return NULL;
  }
  return self->client;
}

/* Frees the brisk client once the calls in flight on other threads are done. */
static void client_close_now(ClientObject *self) {
  brisk_client *c = self->client;
  if (c == NULL)
    return;
  self->client = NULL;
  Py_BEGIN_ALLOW_THREADS
  guard_close_and_wait(&self->guard);
  brisk_client_free(c);
  Py_END_ALLOW_THREADS
}

static PyObject *client_new_obj(PyTypeObject *type, PyObject *args, PyObject *kwds) {
  ClientObject *self = (ClientObject *)type->tp_alloc(type, 0);
  (void)args;
  (void)kwds;
  if (self == NULL)
    return NULL;
  guard_init(&self->guard);
  self->bridges = PyList_New(0);
  if (self->bridges == NULL) {
    Py_DECREF(self);
    return NULL;
  }
  return (PyObject *)self;
}

static int client_init(ClientObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"config", "decode_responses", "encoding", "encoding_errors", NULL};
  ConfigObject *config;
  int decode = 0;
  PyObject *encoding = NULL, *errors = NULL, *owned_enc, *owned_err;
  brisk_client *client = NULL;
  brisk_status st;
  const char *msg = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!|pUU:Client", kwlist, &ConfigType, &config,
                                   &decode, &encoding, &errors))
    return -1;
  if (self->client != NULL || atomic_load(&self->guard.closed)) {
    PyErr_SetString(PyExc_RuntimeError, "Client.__init__ called twice");
    return -1;
  }
  if (config_live(config) < 0)
    return -1;
  owned_enc = encoding ? Py_NewRef(encoding) : PyUnicode_FromString("utf-8");
  owned_err = errors ? Py_NewRef(errors) : PyUnicode_FromString("strict");
  if (owned_enc == NULL || owned_err == NULL ||
      codec_init(&self->codec, &self->encoding, &self->errors, decode, owned_enc, owned_err) < 0) {
    Py_XDECREF(owned_enc);
    Py_XDECREF(owned_err);
    return -1;
  }
  Py_DECREF(owned_enc);
  Py_DECREF(owned_err);
  Py_BEGIN_ALLOW_THREADS
  st = brisk_client_new(config->cfg, &client);
  if (st != BRISK_OK)
    msg = brisk_last_error_message();
  Py_END_ALLOW_THREADS
  if (st != BRISK_OK) {
    raise_status(st, msg);
    return -1;
  }
  self->client = client;
  /* The client calls the config's callable from now on: keep it alive as long as the client. */
  Py_XINCREF(config->event_callback);
  Py_XSETREF(self->event_callback, config->event_callback);
  return 0;
}

static int client_traverse(ClientObject *self, visitproc visit, void *arg) {
  Py_VISIT(self->event_callback);
  Py_VISIT(self->bridges);
  return 0;
}

static int client_clear(ClientObject *self) {
  /* The brisk client may call the event callable and report to the bridges until it is freed. */
  client_close_now(self);
  Py_CLEAR(self->event_callback);
  Py_CLEAR(self->bridges);
  return 0;
}

static void client_dealloc(ClientObject *self) {
  PyObject_GC_UnTrack(self);
  client_clear(self);
  Py_CLEAR(self->encoding);
  Py_CLEAR(self->errors);
  guard_destroy(&self->guard);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *client_execute_command(ClientObject *self, PyObject *const *args,
                                        Py_ssize_t nargs) {
  Args a;
  brisk_client *c;
  brisk_reply *reply = NULL;
  brisk_status st;
  const char *msg = NULL;
  PyObject *value;
  if (args_encode(&a, args, nargs, &self->codec) < 0)
    return NULL;
  c = client_enter(self);
  if (c == NULL) {
    args_release(&a);
    return NULL;
  }
  Py_BEGIN_ALLOW_THREADS
  st = brisk_command(c, a.n, a.argv, a.lens, &reply);
  if (st != BRISK_OK)
    msg = brisk_last_error_message();
  Py_END_ALLOW_THREADS
  client_leave(self);
  args_release(&a);
  if (st != BRISK_OK)
    return raise_status(st, msg);
  value = reply_value(reply, &self->codec);
  brisk_reply_free(reply);
  return value;
}

static PyObject *client_ping(ClientObject *self, PyObject *unused) {
  brisk_client *c = client_enter(self);
  brisk_status st;
  const char *msg = NULL;
  (void)unused;
  if (c == NULL)
    return NULL;
  Py_BEGIN_ALLOW_THREADS
  st = brisk_ping(c);
  if (st != BRISK_OK)
    msg = brisk_last_error_message();
  Py_END_ALLOW_THREADS
  client_leave(self);
  if (st != BRISK_OK)
    return raise_status(st, msg);
  Py_RETURN_TRUE;
}

/* _command_async(bridge, token, *args): starts a command; its outcome reaches bridge.drain(). */
static PyObject *client_command_async(ClientObject *self, PyObject *const *args,
                                      Py_ssize_t nargs) {
  BridgeObject *bridge;
  Completion *done;
  brisk_client *c;
  brisk_status st;
  const char *msg = NULL;
  Args a;
  Py_ssize_t i, n;
  int known = 0;
  if (nargs < 2 || !PyObject_TypeCheck(args[0], &BridgeType)) {
    PyErr_SetString(PyExc_TypeError, "_command_async(bridge, token, *args)");
    return NULL;
  }
  bridge = (BridgeObject *)args[0];
  if (bridge->fd < 0) {
    PyErr_SetString(PyExc_RuntimeError, "AsyncBridge.__init__ was not called");
    return NULL;
  }
  /* Keep the bridge alive until this client is freed (after the last callback). */
  if (self->bridges == NULL)
    return raise_status(BRISK_ERR_CLOSED, "the client is closed");
  n = PyList_GET_SIZE(self->bridges);
  for (i = 0; i < n && !known; i++)
    known = PyList_GET_ITEM(self->bridges, i) == (PyObject *)bridge;
  if (!known && PyList_Append(self->bridges, (PyObject *)bridge) < 0)
    return NULL;
  if (args_encode(&a, args + 2, nargs - 2, &self->codec) < 0)
    return NULL;
  done = PyMem_RawCalloc(1, sizeof *done);
  if (done == NULL) {
    args_release(&a);
    return PyErr_NoMemory();
  }
  done->bridge = bridge;
  done->token = Py_NewRef(args[1]);
  c = client_enter(self);
  if (c == NULL) {
    args_release(&a);
    completion_free(done);
    return NULL;
  }
  Py_BEGIN_ALLOW_THREADS
  st = brisk_command_async(c, a.n, a.argv, a.lens, on_async_reply, done);
  if (st != BRISK_OK)
    msg = brisk_last_error_message();
  Py_END_ALLOW_THREADS
  client_leave(self);
  args_release(&a);
  if (st != BRISK_OK) {
    completion_free(done); /* the callback is never called after a failed start */
    return raise_status(st, msg);
  }
  Py_RETURN_NONE;
}

static PyObject *client_stat(ClientObject *self, PyObject *which) {
  uint32_t w;
  uint64_t v;
  brisk_client *c;
  if (as_u32(which, &w) < 0)
    return NULL;
  c = client_enter(self);
  if (c == NULL)
    return NULL;
  v = brisk_client_stat(c, w);
  client_leave(self);
  return PyLong_FromUnsignedLongLong(v);
}

/* _flush_telemetry(timeout_ms) -> bool: brisk_client_flush_telemetry; False when the time ran
 * out (the export goes on in the background), other failures raise. */
static PyObject *client_flush_telemetry(ClientObject *self, PyObject *timeout_ms) {
  uint32_t ms;
  brisk_client *c;
  brisk_status st;
  const char *msg = NULL;
  if (as_u32(timeout_ms, &ms) < 0)
    return NULL;
  c = client_enter(self);
  if (c == NULL)
    return NULL;
  Py_BEGIN_ALLOW_THREADS
  st = brisk_client_flush_telemetry(c, ms);
  if (st != BRISK_OK)
    msg = brisk_last_error_message();
  Py_END_ALLOW_THREADS
  client_leave(self);
  if (st == BRISK_ERR_TIMEOUT)
    Py_RETURN_FALSE;
  if (st != BRISK_OK)
    return raise_status(st, msg);
  Py_RETURN_TRUE;
}

static PyObject *client_telemetry_dropped(ClientObject *self, PyObject *unused) {
  uint64_t v;
  brisk_client *c = client_enter(self);
  (void)unused;
  if (c == NULL)
    return NULL;
  v = brisk_client_telemetry_dropped(c);
  client_leave(self);
  return PyLong_FromUnsignedLongLong(v);
}

/* cache_flush(): brisk_client_cache_flush (a no-op when the cache is off). */
static PyObject *client_cache_flush(ClientObject *self, PyObject *unused) {
  brisk_client *c = client_enter(self);
  brisk_status st;
  const char *msg = NULL;
  (void)unused;
  if (c == NULL)
    return NULL;
  Py_BEGIN_ALLOW_THREADS
  st = brisk_client_cache_flush(c);
  if (st != BRISK_OK)
    msg = brisk_last_error_message();
  Py_END_ALLOW_THREADS
  client_leave(self);
  if (st != BRISK_OK)
    return raise_status(st, msg);
  Py_RETURN_NONE;
}

static PyObject *client_close(ClientObject *self, PyObject *unused) {
  (void)unused;
  client_close_now(self);
  Py_RETURN_NONE;
}

static PyObject *client_get_closed(ClientObject *self, void *unused) {
  (void)unused;
  return PyBool_FromLong(self->client == NULL);
}

static PyMethodDef client_methods[] = {
    {"execute_command", (PyCFunction)(void (*)(void))client_execute_command, METH_FASTCALL,
     "execute_command(*args): runs one command and returns its reply (raises on failure)."},
    {"ping", (PyCFunction)client_ping, METH_NOARGS, "ping() -> True: brisk_ping."},
    {"_command_async", (PyCFunction)(void (*)(void))client_command_async, METH_FASTCALL,
     "_command_async(bridge, token, *args): brisk_command_async reporting to bridge."},
    {"stat", (PyCFunction)client_stat, METH_O, "stat(which) -> int: brisk_client_stat."},
    {"_flush_telemetry", (PyCFunction)client_flush_telemetry, METH_O,
     "_flush_telemetry(timeout_ms) -> bool: brisk_client_flush_telemetry (False: timed out)."},
    {"telemetry_dropped", (PyCFunction)client_telemetry_dropped, METH_NOARGS,
     "telemetry_dropped() -> int: spans dropped so far (brisk_client_telemetry_dropped)."},
    {"cache_flush", (PyCFunction)client_cache_flush, METH_NOARGS,
     "cache_flush(): drops every client-side cache entry now (brisk_client_cache_flush)."},
    {"close", (PyCFunction)client_close, METH_NOARGS,
     "close(): waits for calls in flight on other threads, then frees the client."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef client_getset[] = {
    {"closed", (getter)client_get_closed, NULL, "Whether close() was called.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject ClientType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "brisk._native.Client",
    .tp_basicsize = sizeof(ClientObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A brisk_client: Client(config, decode_responses=False, encoding='utf-8', "
              "encoding_errors='strict').",
    .tp_new = client_new_obj,
    .tp_init = (initproc)client_init,
    .tp_dealloc = (destructor)client_dealloc,
    .tp_traverse = (traverseproc)client_traverse,
    .tp_clear = (inquiry)client_clear,
    .tp_methods = client_methods,
    .tp_getset = client_getset,
};

/* --- Pipeline --------------------------------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  ClientObject *owner;
  brisk_pipeline *p;
  int transaction;
  int busy; /* an exec runs on some thread (the GIL is released meanwhile) */
  Py_ssize_t queued;
} PipelineObject;

static int pipeline_make(PipelineObject *self) {
  brisk_client *c = client_enter(self->owner);
  brisk_status st;
  if (c == NULL)
    return -1;
  st = self->transaction ? brisk_transaction_new(c, &self->p) : brisk_pipeline_new(c, &self->p);
  client_leave(self->owner);
  if (st != BRISK_OK) {
    raise_status(st, brisk_last_error_message());
    return -1;
  }
  return 0;
}

static int pipeline_init(PipelineObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"client", "transaction", NULL};
  ClientObject *owner;
  int transaction = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!|p:Pipeline", kwlist, &ClientType, &owner,
                                   &transaction))
    return -1;
  if (self->owner != NULL) {
    PyErr_SetString(PyExc_RuntimeError, "Pipeline.__init__ called twice");
    return -1;
  }
  self->owner = (ClientObject *)Py_NewRef(owner);
  self->transaction = transaction;
  return pipeline_make(self);
}

static int pipeline_traverse(PipelineObject *self, visitproc visit, void *arg) {
  Py_VISIT(self->owner);
  return 0;
}

static void pipeline_dealloc(PipelineObject *self) {
  PyObject_GC_UnTrack(self);
  brisk_pipeline_free(self->p);
  Py_CLEAR(self->owner);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static int pipeline_usable(PipelineObject *self) {
  if (self->busy) {
    PyErr_SetString(PyExc_RuntimeError,
                    "this pipeline is executing on another thread (use one per thread)");
    return -1;
  }
  if (self->p == NULL) {
    raise_status(BRISK_ERR_CLOSED, self->owner ? "the pipeline is closed"
                                               : "Pipeline.__init__ was not called");
    return -1;
  }
  return 0;
}

/* execute_command(*args) -> self: queues a command. */
static PyObject *pipeline_execute_command(PipelineObject *self, PyObject *const *args,
                                          Py_ssize_t nargs) {
  Args a;
  brisk_status st;
  if (pipeline_usable(self) < 0 || args_encode(&a, args, nargs, &self->owner->codec) < 0)
    return NULL;
  st = brisk_pipeline_append(self->p, a.n, a.argv, a.lens);
  args_release(&a);
  if (st != BRISK_OK)
    return raise_status(st, brisk_last_error_message());
  self->queued++;
  return Py_NewRef((PyObject *)self);
}

/* _execute(raise_on_error) -> list: sends every queued command; error elements are exception
 * objects, and with raise_on_error the first of them is raised (annotated with its index). */
static PyObject *pipeline_execute(PipelineObject *self, PyObject *arg) {
  int raise_on_error = PyObject_IsTrue(arg);
  brisk_client *c;
  brisk_reply *replies = NULL;
  brisk_status st;
  const char *msg = NULL;
  PyObject *results;
  Py_ssize_t i, n;
  if (raise_on_error < 0 || pipeline_usable(self) < 0)
    return NULL;
  if (self->queued == 0)
    return PyList_New(0);
  c = client_enter(self->owner);
  if (c == NULL)
    return NULL;
  self->busy = 1;
  Py_BEGIN_ALLOW_THREADS
  st = brisk_pipeline_exec(self->p, &replies);
  if (st != BRISK_OK)
    msg = brisk_last_error_message();
  Py_END_ALLOW_THREADS
  self->busy = 0;
  self->queued = 0;
  client_leave(self->owner);
  if (st != BRISK_OK)
    return raise_status(st, msg);
  results = reply_value(replies, &self->owner->codec);
  brisk_reply_free(replies);
  if (results == NULL || !raise_on_error || !PyList_Check(results))
    return results;
  n = PyList_GET_SIZE(results);
  for (i = 0; i < n; i++) {
    PyObject *item = PyList_GET_ITEM(results, i);
    if (PyExceptionInstance_Check(item)) {
      PyObject *r = PyObject_CallFunction(annotate, "On", item, i + 1);
      if (r != NULL) {
        Py_DECREF(r);
        PyErr_SetObject((PyObject *)Py_TYPE(item), item);
      }
      Py_DECREF(results);
      return NULL;
    }
  }
  return results;
}

/* reset(): drops the queued commands. */
static PyObject *pipeline_reset(PipelineObject *self, PyObject *unused) {
  (void)unused;
  if (pipeline_usable(self) < 0)
    return NULL;
  if (self->queued == 0)
    Py_RETURN_NONE;
  brisk_pipeline_free(self->p);
  self->p = NULL;
  self->queued = 0;
  if (pipeline_make(self) < 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *pipeline_close(PipelineObject *self, PyObject *unused) {
  (void)unused;
  if (self->busy) {
    PyErr_SetString(PyExc_RuntimeError, "this pipeline is executing on another thread");
    return NULL;
  }
  brisk_pipeline_free(self->p);
  self->p = NULL;
  self->queued = 0;
  Py_RETURN_NONE;
}

static Py_ssize_t pipeline_len(PipelineObject *self) { return self->queued; }

static PyMethodDef pipeline_methods[] = {
    {"execute_command", (PyCFunction)(void (*)(void))pipeline_execute_command, METH_FASTCALL,
     "execute_command(*args) -> self: queues a command (nothing is sent until execute())."},
    {"_execute", (PyCFunction)pipeline_execute, METH_O,
     "_execute(raise_on_error) -> list: brisk_pipeline_exec."},
    {"reset", (PyCFunction)pipeline_reset, METH_NOARGS, "reset(): drops the queued commands."},
    {"close", (PyCFunction)pipeline_close, METH_NOARGS, "close(): frees the pipeline."},
    {NULL, NULL, 0, NULL}};

static PySequenceMethods pipeline_as_sequence = {.sq_length = (lenfunc)pipeline_len};

static PyTypeObject PipelineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "brisk._native.Pipeline",
    .tp_basicsize = sizeof(PipelineObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A brisk_pipeline: Pipeline(client, transaction=False).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)pipeline_init,
    .tp_dealloc = (destructor)pipeline_dealloc,
    .tp_traverse = (traverseproc)pipeline_traverse,
    .tp_methods = pipeline_methods,
    .tp_as_sequence = &pipeline_as_sequence,
};

/* --- Session ---------------------------------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  ClientObject *owner;
  brisk_session *s;
  int busy;
} SessionObject;

static int session_init(SessionObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"client", NULL};
  ClientObject *owner;
  brisk_client *c;
  brisk_session *s = NULL;
  brisk_status st;
  const char *msg = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!:Session", kwlist, &ClientType, &owner))
    return -1;
  if (self->owner != NULL) {
    PyErr_SetString(PyExc_RuntimeError, "Session.__init__ called twice");
    return -1;
  }
  self->owner = (ClientObject *)Py_NewRef(owner);
  c = client_enter(owner);
  if (c == NULL)
    return -1;
  Py_BEGIN_ALLOW_THREADS
  st = brisk_session_new(c, &s);
  if (st != BRISK_OK)
    msg = brisk_last_error_message();
  Py_END_ALLOW_THREADS
  client_leave(owner);
  if (st != BRISK_OK) {
    raise_status(st, msg);
    return -1;
  }
  self->s = s;
  return 0;
}

static void session_free_now(SessionObject *self) {
  brisk_session *s = self->s;
  if (s == NULL)
    return;
  self->s = NULL;
  /* Giving the connection back may send DISCARD/UNWATCH: without the GIL. */
  Py_BEGIN_ALLOW_THREADS
  brisk_session_free(s);
  Py_END_ALLOW_THREADS
}

static int session_traverse(SessionObject *self, visitproc visit, void *arg) {
  Py_VISIT(self->owner);
  return 0;
}

static void session_dealloc(SessionObject *self) {
  PyObject_GC_UnTrack(self);
  session_free_now(self);
  Py_CLEAR(self->owner);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *session_execute_command(SessionObject *self, PyObject *const *args,
                                         Py_ssize_t nargs) {
  Args a;
  brisk_client *c;
  brisk_session *s = self->s;
  brisk_reply *reply = NULL;
  brisk_status st;
  const char *msg = NULL;
  PyObject *value;
  if (self->busy) {
    PyErr_SetString(PyExc_RuntimeError,
                    "this session is running a command on another thread (use one per thread)");
    return NULL;
  }
  if (s == NULL)
    return raise_status(BRISK_ERR_CLOSED, self->owner ? "the session is closed"
                                                      : "Session.__init__ was not called");
  if (args_encode(&a, args, nargs, &self->owner->codec) < 0)
    return NULL;
  c = client_enter(self->owner);
  if (c == NULL) {
    args_release(&a);
    return NULL;
  }
  self->busy = 1;
  Py_BEGIN_ALLOW_THREADS
  st = brisk_session_command(s, a.n, a.argv, a.lens, &reply);
  if (st != BRISK_OK)
    msg = brisk_last_error_message();
  Py_END_ALLOW_THREADS
  self->busy = 0;
  client_leave(self->owner);
  args_release(&a);
  if (st != BRISK_OK)
    return raise_status(st, msg);
  value = reply_value(reply, &self->owner->codec);
  brisk_reply_free(reply);
  return value;
}

static PyObject *session_close(SessionObject *self, PyObject *unused) {
  (void)unused;
  if (self->busy) {
    PyErr_SetString(PyExc_RuntimeError, "this session is running a command on another thread");
    return NULL;
  }
  session_free_now(self);
  Py_RETURN_NONE;
}

static PyMethodDef session_methods[] = {
    {"execute_command", (PyCFunction)(void (*)(void))session_execute_command, METH_FASTCALL,
     "execute_command(*args): runs one command on the session's connection."},
    {"close", (PyCFunction)session_close, METH_NOARGS,
     "close(): gives the connection back (an open MULTI or WATCH is reset first)."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject SessionType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "brisk._native.Session",
    .tp_basicsize = sizeof(SessionObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A brisk_session: Session(client), one pooled connection pinned.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)session_init,
    .tp_dealloc = (destructor)session_dealloc,
    .tp_traverse = (traverseproc)session_traverse,
    .tp_methods = session_methods,
};

/* --- Subscriber ------------------------------------------------------------------------------- */

static PyTypeObject MessageType;

static PyStructSequence_Field message_fields[] = {
    {"kind", "the subscription that delivered it (brisk.Subscription: CHANNEL, PATTERN, SHARD)"},
    {"channel", "the channel it was published to"},
    {"pattern", "the pattern that matched (a PATTERN subscription); None otherwise"},
    {"payload", "the message"},
    {NULL, NULL}};

static PyStructSequence_Desc message_desc = {
    "brisk.Message",
    "One Pub/Sub message: bytes (str with decode_responses), copied out of libbrisk.",
    message_fields, 4};

/* A pull-style brisk_subscriber (no callback): messages wait in brisk's queue until taken. */
typedef struct {
  PyObject_HEAD
  ClientObject *owner; /* its codec encodes names and decodes messages */
  brisk_subscriber *s;
  Guard guard; /* calls in flight hold the subscriber with the GIL released; close() waits */
} SubscriberObject;

/* How long one wait for a message holds the subscriber without the GIL: a longer wait is made
 * of such slices, so that close() on another thread waits at most this long and Ctrl-C is seen
 * between them. */
#define NEXT_SLICE_MS 100

static brisk_subscriber *subscriber_enter(SubscriberObject *self) {
  if (self->s == NULL || guard_enter(&self->guard) < 0) {
    raise_status(BRISK_ERR_CLOSED, self->owner ? "the subscriber is closed"
                                               : "Subscriber.__init__ was not called");
    return NULL;
  }
  return self->s;
}

static int subscriber_init(SubscriberObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"client", NULL};
  ClientObject *owner;
  brisk_client *c;
  brisk_subscriber *s = NULL;
  brisk_status st;
  const char *msg = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!:Subscriber", kwlist, &ClientType, &owner))
    return -1;
  if (self->owner != NULL) {
    PyErr_SetString(PyExc_RuntimeError, "Subscriber.__init__ called twice");
    return -1;
  }
  self->owner = (ClientObject *)Py_NewRef(owner);
  c = client_enter(owner);
  if (c == NULL)
    return -1;
  Py_BEGIN_ALLOW_THREADS
  st = brisk_subscriber_new(c, NULL, NULL, &s);
  if (st != BRISK_OK)
    msg = brisk_last_error_message();
  Py_END_ALLOW_THREADS
  client_leave(owner);
  if (st != BRISK_OK) {
    raise_status(st, msg);
    return -1;
  }
  self->s = s;
  return 0;
}

static PyObject *subscriber_new_obj(PyTypeObject *type, PyObject *args, PyObject *kwds) {
  SubscriberObject *self = (SubscriberObject *)type->tp_alloc(type, 0);
  (void)args;
  (void)kwds;
  if (self != NULL)
    guard_init(&self->guard);
  return (PyObject *)self;
}

static void subscriber_close_now(SubscriberObject *self) {
  brisk_subscriber *s = self->s;
  if (s == NULL)
    return;
  self->s = NULL;
  Py_BEGIN_ALLOW_THREADS
  guard_close_and_wait(&self->guard);
  brisk_subscriber_free(s);
  Py_END_ALLOW_THREADS
}

static int subscriber_traverse(SubscriberObject *self, visitproc visit, void *arg) {
  Py_VISIT(self->owner);
  return 0;
}

static void subscriber_dealloc(SubscriberObject *self) {
  PyObject_GC_UnTrack(self);
  subscriber_close_now(self);
  Py_CLEAR(self->owner);
  guard_destroy(&self->guard);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

/* _change(subscribe: bool, kind: int, *names): brisk_subscriber_subscribe or _unsubscribe, binary
 * safe, all names in one call (one round trip per node). */
static PyObject *subscriber_change(SubscriberObject *self, PyObject *const *args,
                                   Py_ssize_t nargs) {
  brisk_subscriber *s;
  brisk_status st;
  const char *msg = NULL;
  uint32_t kind;
  int subscribe;
  Args a;
  if (nargs < 3) {
    PyErr_SetString(PyExc_TypeError, "_change(subscribe, kind, *names) needs at least one name");
    return NULL;
  }
  if ((subscribe = PyObject_IsTrue(args[0])) < 0 || as_u32(args[1], &kind) < 0)
    return NULL;
  if (self->owner == NULL)
    return raise_status(BRISK_ERR_CLOSED, "Subscriber.__init__ was not called");
  if (args_encode(&a, args + 2, nargs - 2, &self->owner->codec) < 0)
    return NULL;
  s = subscriber_enter(self);
  if (s == NULL) {
    args_release(&a);
    return NULL;
  }
  Py_BEGIN_ALLOW_THREADS
  st = subscribe ? brisk_subscriber_subscribe(s, kind, a.n, a.argv, a.lens)
                 : brisk_subscriber_unsubscribe(s, kind, a.n, a.argv, a.lens);
  if (st != BRISK_OK)
    msg = brisk_last_error_message();
  Py_END_ALLOW_THREADS
  guard_leave(&self->guard);
  args_release(&a);
  if (st != BRISK_OK)
    return raise_status(st, msg);
  Py_RETURN_NONE;
}

static PyObject *message_value(const brisk_message *m, const Codec *c) {
  PyObject *msg = PyStructSequence_New(&MessageType);
  size_t len = 0;
  const char *text;
  PyObject *fields[4];
  int i, ok = 1;
  if (msg == NULL)
    return NULL;
  fields[0] = PyLong_FromUnsignedLong(brisk_message_kind(m));
  text = brisk_message_channel(m, &len);
  fields[1] = text_value(text ? text : "", text ? len : 0, c);
  text = brisk_message_pattern(m, &len);
  fields[2] = text ? text_value(text, len, c) : Py_NewRef(Py_None);
  text = brisk_message_payload(m, &len);
  fields[3] = text_value(text ? text : "", text ? len : 0, c);
  for (i = 0; i < 4; i++) {
    if (fields[i] == NULL)
      ok = 0;
    PyStructSequence_SET_ITEM(msg, i, fields[i] ? fields[i] : Py_NewRef(Py_None));
  }
  if (!ok)
    Py_CLEAR(msg); /* the failed conversion's exception is set */
  return msg;
}

static int64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* _next(timeout_ms) -> Message or None: the next message, waiting up to timeout_ms (0: not at
 * all; negative: without limit) in slices of NEXT_SLICE_MS. None when none came in time;
 * ClientClosedError once the client was closed and the queue is empty. */
static PyObject *subscriber_next(SubscriberObject *self, PyObject *timeout) {
  long long want = PyLong_AsLongLong(timeout);
  int64_t deadline;
  if (want == -1 && PyErr_Occurred())
    return NULL;
  deadline = want > 0 ? monotonic_ms() + want : 0;
  for (;;) {
    brisk_subscriber *s = subscriber_enter(self);
    brisk_message *m = NULL;
    brisk_status st;
    const char *msg = NULL;
    uint32_t slice = NEXT_SLICE_MS;
    PyObject *value;
    if (s == NULL)
      return NULL;
    if (want > 0) {
      int64_t left = deadline - monotonic_ms();
      slice = left <= 0 ? 0 : left < NEXT_SLICE_MS ? (uint32_t)left : NEXT_SLICE_MS;
    }
    if (want == 0 || slice == 0) {
      st = brisk_subscriber_try_next(s, &m);
      if (st != BRISK_OK)
        msg = brisk_last_error_message();
    } else {
      Py_BEGIN_ALLOW_THREADS
      st = brisk_subscriber_next(s, slice, &m);
      if (st != BRISK_OK)
        msg = brisk_last_error_message();
      Py_END_ALLOW_THREADS
    }
    guard_leave(&self->guard);
    if (st == BRISK_OK) {
      value = message_value(m, &self->owner->codec);
      brisk_message_free(m);
      return value;
    }
    if (st != BRISK_ERR_TIMEOUT)
      return raise_status(st, msg);
    if (want == 0 || (want > 0 && monotonic_ms() >= deadline))
      Py_RETURN_NONE;
    if (PyErr_CheckSignals() < 0)
      return NULL;
  }
}

static PyObject *subscriber_fileno(SubscriberObject *self, PyObject *unused) {
  brisk_subscriber *s = subscriber_enter(self);
  int fd;
  (void)unused;
  if (s == NULL)
    return NULL;
  fd = brisk_subscriber_fd(s);
  guard_leave(&self->guard);
  if (fd < 0)
    return raise_status(BRISK_ERR_INTERNAL, brisk_last_error_message());
  return PyLong_FromLong(fd);
}

static PyObject *subscriber_stat(SubscriberObject *self, PyObject *which) {
  brisk_subscriber *s;
  uint32_t w;
  uint64_t v;
  if (as_u32(which, &w) < 0 || (s = subscriber_enter(self)) == NULL)
    return NULL;
  v = brisk_subscriber_stat(s, w);
  guard_leave(&self->guard);
  return PyLong_FromUnsignedLongLong(v);
}

static PyObject *subscriber_close(SubscriberObject *self, PyObject *unused) {
  (void)unused;
  subscriber_close_now(self);
  Py_RETURN_NONE;
}

static PyObject *subscriber_get_closed(SubscriberObject *self, void *unused) {
  (void)unused;
  return PyBool_FromLong(self->s == NULL);
}

static PyMethodDef subscriber_methods[] = {
    {"_change", (PyCFunction)(void (*)(void))subscriber_change, METH_FASTCALL,
     "_change(subscribe, kind, *names): brisk_subscriber_subscribe / _unsubscribe."},
    {"_next", (PyCFunction)subscriber_next, METH_O,
     "_next(timeout_ms) -> Message or None (0: no wait; negative: no limit)."},
    {"fileno", (PyCFunction)subscriber_fileno, METH_NOARGS,
     "A descriptor readable exactly while messages wait (brisk_subscriber_fd); never read or "
     "close it."},
    {"stat", (PyCFunction)subscriber_stat, METH_O,
     "stat(which) -> int: this subscriber's share of the PUBSUB_* stats."},
    {"close", (PyCFunction)subscriber_close, METH_NOARGS,
     "close(): waits for calls in flight on other threads, then frees the subscriber."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef subscriber_getset[] = {
    {"closed", (getter)subscriber_get_closed, NULL, "Whether close() was called.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject SubscriberType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "brisk._native.Subscriber",
    .tp_basicsize = sizeof(SubscriberObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A pull-style brisk_subscriber: Subscriber(client).",
    .tp_new = subscriber_new_obj,
    .tp_init = (initproc)subscriber_init,
    .tp_dealloc = (destructor)subscriber_dealloc,
    .tp_traverse = (traverseproc)subscriber_traverse,
    .tp_methods = subscriber_methods,
    .tp_getset = subscriber_getset,
};

/* --- module functions ------------------------------------------------------------------------- */

static PyObject *mod_install(PyObject *mod, PyObject *args) {
  PyObject *fs, *fr, *an, *de;
  (void)mod;
  if (!PyArg_ParseTuple(args, "OOOO:_install", &fs, &fr, &an, &de))
    return NULL;
  Py_XSETREF(from_status, Py_NewRef(fs));
  Py_XSETREF(from_reply, Py_NewRef(fr));
  Py_XSETREF(annotate, Py_NewRef(an));
  Py_XSETREF(data_error, Py_NewRef(de));
  Py_RETURN_NONE;
}

static PyObject *mod_version(PyObject *mod, PyObject *unused) {
  (void)mod;
  (void)unused;
  return PyUnicode_FromString(brisk_version());
}

static PyObject *mod_status_name(PyObject *mod, PyObject *arg) {
  uint32_t s;
  (void)mod;
  if (as_u32(arg, &s) < 0)
    return NULL;
  return PyUnicode_FromString(brisk_status_name(s));
}

static PyObject *mod_status_category(PyObject *mod, PyObject *arg) {
  uint32_t s;
  (void)mod;
  if (as_u32(arg, &s) < 0)
    return NULL;
  return PyLong_FromUnsignedLong(brisk_status_category(s));
}

static PyObject *mod_status_is_retryable(PyObject *mod, PyObject *arg) {
  uint32_t s;
  (void)mod;
  if (as_u32(arg, &s) < 0)
    return NULL;
  return PyBool_FromLong(brisk_status_is_retryable(s));
}

/* retry_backoff_ms(backoff, base_ms, cap_ms, retries, attempt) -> int */
static PyObject *mod_retry_backoff_ms(PyObject *mod, PyObject *args) {
  unsigned int backoff, base, cap, retries, attempt;
  brisk_retry *retry = NULL;
  brisk_status st;
  uint32_t ms;
  (void)mod;
  if (!PyArg_ParseTuple(args, "IIIII", &backoff, &base, &cap, &retries, &attempt))
    return NULL;
  st = brisk_retry_new(backoff, base, cap, retries, &retry);
  if (st != BRISK_OK)
    return raise_status(st, brisk_last_error_message());
  ms = brisk_retry_backoff_ms(retry, attempt);
  brisk_retry_free(retry);
  return PyLong_FromUnsignedLong(ms);
}

/* set_trace_parent(traceparent or None): brisk_trace_parent_set, for the calling thread. */
static PyObject *mod_set_trace_parent(PyObject *mod, PyObject *arg) {
  const char *tp = NULL;
  brisk_status st;
  (void)mod;
  if (arg != Py_None) {
    if (!PyUnicode_Check(arg)) {
      PyErr_Format(PyExc_TypeError, "set_trace_parent takes a str or None, got %s",
                   Py_TYPE(arg)->tp_name);
      return NULL;
    }
    tp = PyUnicode_AsUTF8(arg);
    if (tp == NULL)
      return NULL;
  }
  st = brisk_trace_parent_set(tp);
  if (st != BRISK_OK)
    return raise_status(st, brisk_last_error_message());
  Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"_install", mod_install, METH_VARARGS,
     "_install(from_status, from_reply, annotate, DataError): brisk's exception hooks."},
    {"version", mod_version, METH_NOARGS, "libbrisk's version at run time (brisk_version)."},
    {"set_trace_parent", mod_set_trace_parent, METH_O,
     "set_trace_parent(traceparent or None): brisk_trace_parent_set for this thread."},
    {"status_name", mod_status_name, METH_O, "brisk_status_name"},
    {"status_category", mod_status_category, METH_O, "brisk_status_category"},
    {"status_is_retryable", mod_status_is_retryable, METH_O, "brisk_status_is_retryable"},
    {"retry_backoff_ms", mod_retry_backoff_ms, METH_VARARGS,
     "retry_backoff_ms(backoff, base_ms, cap_ms, retries, attempt): brisk_retry_backoff_ms"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef native_module = {PyModuleDef_HEAD_INIT, "brisk._native",
                                           "The compiled core of the brisk package.", -1,
                                           module_methods, NULL, NULL, NULL, NULL};

static int add_constants(PyObject *m) {
  static const struct {
    const char *name;
    long value;
  } constants[] = {
#define C(x) {#x, (long)(x)}
      C(BRISK_OK), C(BRISK_ERR_INVALID_ARGUMENT), C(BRISK_ERR_CONNECTION), C(BRISK_ERR_TIMEOUT),
      C(BRISK_ERR_AUTH), C(BRISK_ERR_SERVER), C(BRISK_ERR_BUSY_LOADING),
      C(BRISK_ERR_CLUSTER_DOWN), C(BRISK_ERR_READONLY), C(BRISK_ERR_WATCH),
      C(BRISK_ERR_POOL_EXHAUSTED), C(BRISK_ERR_PROTOCOL), C(BRISK_ERR_TLS),
      C(BRISK_ERR_SENTINEL), C(BRISK_ERR_CLOSED), C(BRISK_ERR_INTERNAL),
      C(BRISK_CATEGORY_NONE), C(BRISK_CATEGORY_CONNECTION), C(BRISK_CATEGORY_ACCESS_CONTROL),
      C(BRISK_CATEGORY_DATA), C(BRISK_CATEGORY_GENERIC),
      C(BRISK_STAT_COMMANDS), C(BRISK_STAT_ERRORS), C(BRISK_STAT_RETRIES),
      C(BRISK_STAT_TIMEOUTS), C(BRISK_STAT_CONNECTS), C(BRISK_STAT_RECONNECTS),
      C(BRISK_STAT_HEALTH_CHECKS), C(BRISK_STAT_HEALTH_CHECK_FAILURES), C(BRISK_STAT_POOL_WAITS),
      C(BRISK_STAT_POOL_EXHAUSTED), C(BRISK_STAT_POOL_OPEN), C(BRISK_STAT_POOL_IDLE),
      C(BRISK_STAT_CACHE_HITS), C(BRISK_STAT_CACHE_MISSES), C(BRISK_STAT_CACHE_INVALIDATIONS),
      C(BRISK_STAT_TOPOLOGY_REFRESHES), C(BRISK_STAT_REDIRECTS), C(BRISK_STAT_CACHE_ENTRIES),
      C(BRISK_STAT_CACHE_BYTES), C(BRISK_STAT_CACHE_EVICTIONS), C(BRISK_STAT_PUBSUB_MESSAGES),
      C(BRISK_STAT_PUBSUB_DROPPED), C(BRISK_STAT_PUBSUB_RESUBSCRIBES),
      C(BRISK_EVENT_COMMAND), C(BRISK_EVENT_RETRY), C(BRISK_EVENT_CONNECT),
      C(BRISK_EVENT_DISCONNECT), C(BRISK_EVENT_HEALTH_CHECK), C(BRISK_EVENT_POOL_WAIT),
      C(BRISK_EVENT_TOPOLOGY), C(BRISK_EVENT_CACHE_INVALIDATE), C(BRISK_EVENT_RESUBSCRIBE),
      C(BRISK_CACHE_REASON_NONE), C(BRISK_CACHE_REASON_INVALIDATION), C(BRISK_CACHE_REASON_FLUSH),
      C(BRISK_CACHE_REASON_CONNECTION_LOST), C(BRISK_CACHE_REASON_TOPOLOGY),
      C(BRISK_CACHE_DEFAULT), C(BRISK_CACHE_BROADCAST), C(BRISK_CACHE_OPTIN),
      C(BRISK_OVERFLOW_DROP_OLDEST), C(BRISK_OVERFLOW_DROP_NEWEST), C(BRISK_OVERFLOW_BLOCK),
      C(BRISK_SUBSCRIPTION_CHANNEL), C(BRISK_SUBSCRIPTION_PATTERN), C(BRISK_SUBSCRIPTION_SHARD),
      C(BRISK_MODE_STANDALONE), C(BRISK_MODE_CLUSTER), C(BRISK_MODE_SENTINEL),
      C(BRISK_READ_PRIMARY), C(BRISK_READ_REPLICA_PREFERRED), C(BRISK_READ_ANY),
      C(BRISK_RETRY_WRITES_SAFE), C(BRISK_RETRY_WRITES_ALWAYS),
      C(BRISK_BACKOFF_NONE), C(BRISK_BACKOFF_CONSTANT), C(BRISK_BACKOFF_EXPONENTIAL),
      C(BRISK_BACKOFF_FULL_JITTER), C(BRISK_BACKOFF_EQUAL_JITTER),
      C(BRISK_BACKOFF_DECORRELATED_JITTER),
#undef C
  };
  size_t i;
  for (i = 0; i < sizeof constants / sizeof constants[0]; i++)
    if (PyModule_AddIntConstant(m, constants[i].name + strlen("BRISK_"), constants[i].value) < 0)
      return -1;
  return PyModule_AddStringConstant(m, "HEADER_VERSION", BRISK_VERSION);
}

PyMODINIT_FUNC PyInit__native(void) {
  PyObject *m;
  PyTypeObject *types[] = {&ConfigType, &ClientType,  &PipelineType,
                           &SessionType, &BridgeType, &SubscriberType};
  const char *names[] = {"Config", "Client", "Pipeline", "Session", "AsyncBridge", "Subscriber"};
  size_t i;
  if (EventType.tp_name == NULL && PyStructSequence_InitType2(&EventType, &event_desc) < 0)
    return NULL;
  if (MessageType.tp_name == NULL &&
      PyStructSequence_InitType2(&MessageType, &message_desc) < 0)
    return NULL;
  for (i = 0; i < sizeof types / sizeof types[0]; i++)
    if (PyType_Ready(types[i]) < 0)
      return NULL;
  m = PyModule_Create(&native_module);
  if (m == NULL)
    return NULL;
  for (i = 0; i < sizeof types / sizeof types[0]; i++)
    if (PyModule_AddObjectRef(m, names[i], (PyObject *)types[i]) < 0)
      goto fail;
  if (PyModule_AddObjectRef(m, "Event", (PyObject *)&EventType) < 0 ||
      PyModule_AddObjectRef(m, "Message", (PyObject *)&MessageType) < 0 || add_constants(m) < 0)
    goto fail;
  return m;
fail:
  Py_DECREF(m);
  return NULL;
}
