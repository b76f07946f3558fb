"""A small ctypes binding for libbrisk, proving the C API works from any language with an FFI.

    client = brisk.Client("redis://127.0.0.1:6379")
    client.command("SET", "k", b"v\x00binary")
    assert client.command("GET", "k") == b"v\x00binary"

    sub = brisk.Subscriber(client)             # pull style: poll sub.fileno(), then sub.take()
    sub.subscribe(b"news")                     # returns once the server confirmed
    loop.add_reader(sub.fileno(), lambda: handle(sub.take()))   # asyncio, or select/poll

Replies become Python values: strings -> bytes, integers -> int, doubles -> float, nil -> None,
arrays/sets -> list, maps -> dict. Failures raise BriskError with the status name and message.
The library is found through $BRISK_LIBRARY, else the system's libbrisk.so.0.
"""

import ctypes
import os
from ctypes import POINTER, c_bool, c_char_p, c_double, c_int64, c_size_t, c_uint32, c_void_p

_lib = ctypes.CDLL(os.environ.get("BRISK_LIBRARY", "libbrisk.so.0"))


def _fn(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_version = _fn("brisk_version", c_char_p)
_status_name = _fn("brisk_status_name", c_char_p, c_uint32)
_last_error = _fn("brisk_last_error_message", c_char_p)
_config_new = _fn("brisk_config_new", c_void_p)
_config_free = _fn("brisk_config_free", None, c_void_p)
_config_set_url = _fn("brisk_config_set_url", c_uint32, c_void_p, c_char_p)
_client_new = _fn("brisk_client_new", c_uint32, c_void_p, POINTER(c_void_p))
_client_free = _fn("brisk_client_free", None, c_void_p)
_command = _fn(
    "brisk_command", c_uint32, c_void_p, c_size_t, POINTER(c_char_p), POINTER(c_size_t), POINTER(c_void_p)
)
_reply_free = _fn("brisk_reply_free", None, c_void_p)
_reply_type = _fn("brisk_reply_type_of", c_uint32, c_void_p)
_reply_string = _fn("brisk_reply_string", c_void_p, c_void_p, POINTER(c_size_t))
_reply_integer = _fn("brisk_reply_integer", c_int64, c_void_p)
_reply_double = _fn("brisk_reply_double", c_double, c_void_p)
_reply_length = _fn("brisk_reply_length", c_size_t, c_void_p)
_reply_element = _fn("brisk_reply_element", c_void_p, c_void_p, c_size_t)

_subscriber_new = _fn("brisk_subscriber_new", c_uint32, c_void_p, c_void_p, c_void_p, POINTER(c_void_p))
_subscriber_free = _fn("brisk_subscriber_free", None, c_void_p)
_subscriber_change = {
    verb: _fn(
        f"brisk_subscriber_{verb}",
        c_uint32, c_void_p, c_uint32, c_size_t, POINTER(c_char_p), POINTER(c_size_t),
    )
    for verb in ("subscribe", "unsubscribe")
}
_subscriber_try_next = _fn("brisk_subscriber_try_next", c_uint32, c_void_p, POINTER(c_void_p))
_subscriber_fd = _fn("brisk_subscriber_fd", ctypes.c_int, c_void_p)
_message_free = _fn("brisk_message_free", None, c_void_p)
_message_part = {
    part: _fn(f"brisk_message_{part}", c_void_p, c_void_p, POINTER(c_size_t))
    for part in ("channel", "pattern", "payload")
}
_message_kind = _fn("brisk_message_kind", c_uint32, c_void_p)

CHANNEL, PATTERN, SHARD = range(3)
_TIMEOUT = 3

NIL, STRING, STATUS, ERROR, INTEGER, DOUBLE, BOOL, BIGNUM, VERBATIM, ARRAY, MAP, SET, PUSH = range(13)


def version():
    return _version().decode()


class BriskError(Exception):
    def __init__(self, status):
        self.status = status
        self.name = _status_name(status).decode()
        self.message = _last_error().decode(errors="replace")
        super().__init__(f"{self.name}: {self.message}")


def _check(status):
    if status != 0:
        raise BriskError(status)


def _to_python(r):
    kind = _reply_type(r)
    if kind == NIL:
        return None
    if kind in (STRING, STATUS, ERROR, VERBATIM, BIGNUM):
        n = c_size_t(0)
        p = _reply_string(r, ctypes.byref(n))
        data = ctypes.string_at(p, n.value)
        return int(data) if kind == BIGNUM else data
    if kind in (INTEGER, BOOL):
        v = _reply_integer(r)
        return bool(v) if kind == BOOL else v
    if kind == DOUBLE:
        return _reply_double(r)
    items = [_to_python(_reply_element(r, i)) for i in range(_reply_length(r))]
    if kind == MAP:
        return dict(zip(items[0::2], items[1::2]))
    return items


class Client:
    def __init__(self, url):
        self._handle = None
        cfg = _config_new()
        try:
            _check(_config_set_url(cfg, url.encode()))
            handle = c_void_p()
            _check(_client_new(cfg, ctypes.byref(handle)))
        finally:
            _config_free(cfg)
        self._handle = handle

    def command(self, *args):
        encoded = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        argv = (c_char_p * len(encoded))(*encoded)
        lens = (c_size_t * len(encoded))(*[len(a) for a in encoded])
        reply = c_void_p()
        _check(_command(self._handle, len(encoded), argv, lens, ctypes.byref(reply)))
        try:
            return _to_python(reply)
        finally:
            _reply_free(reply)

    def close(self):
        if self._handle:
            _client_free(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


class Message:
    """One Pub/Sub message, copied out of the library: kind (CHANNEL, PATTERN, SHARD), channel,
    pattern (None unless a pattern matched) and payload, as bytes."""

    def __init__(self, m):
        def part(name):
            n = c_size_t(0)
            p = _message_part[name](m, ctypes.byref(n))
            return None if p is None else ctypes.string_at(p, n.value)

        self.kind = _message_kind(m)
        self.channel = part("channel")
        self.pattern = part("pattern")
        self.payload = part("payload")

    def __repr__(self):
        return f"Message({self.kind}, {self.channel!r}, {self.pattern!r}, {self.payload!r})"


class Subscriber:
    """A pull-style subscriber: its own connection(s), resubscribed after every loss. fileno() is
    readable exactly while messages wait, so select/poll/asyncio can wait on it; take() returns
    the next message or None. Calls that wait (subscribe, unsubscribe) block until the server
    confirmed: from asyncio, run them in an executor."""

    def __init__(self, client):
        self._handle = None
        handle = c_void_p()
        _check(_subscriber_new(client._handle, None, None, ctypes.byref(handle)))
        self._handle = handle
        self._client = client  # freed after this subscriber

    def _change(self, verb, kind, names):
        encoded = [n if isinstance(n, bytes) else str(n).encode() for n in names]
        argv = (c_char_p * len(encoded))(*encoded)
        lens = (c_size_t * len(encoded))(*[len(n) for n in encoded])
        _check(_subscriber_change[verb](self._handle, kind, len(encoded), argv, lens))

    def subscribe(self, *channels, kind=CHANNEL):
        self._change("subscribe", kind, channels)

    def unsubscribe(self, *channels, kind=CHANNEL):
        self._change("unsubscribe", kind, channels)

    def fileno(self):
        return _subscriber_fd(self._handle)

    def take(self):
        m = c_void_p()
        status = _subscriber_try_next(self._handle, ctypes.byref(m))
        if status == _TIMEOUT:
            return None
        _check(status)
        try:
            return Message(m)
        finally:
            _message_free(m)

    def close(self):
        if self._handle:
            _subscriber_free(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()
