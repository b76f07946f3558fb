"""A small ctypes binding for libbrisk, proving the C API works from any language with an FFI.

    client = brisk.Client("redis://127.0.0.1:6379")
    client.command("SET", "k", b"v\x00binary")
    assert client.command("GET", "k") == b"v\x00binary"

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
