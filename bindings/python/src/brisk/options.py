"""Client options: keyword arguments to ``brisk_config_set_*`` calls.

Each option has one canonical name (the C setter's, without ``_ms``) and, where redis-py has
another name for the same thing, that name as an alias. Durations are seconds (int or float),
as everywhere in Python; ``None`` means no limit (the C API's 0).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Mapping, Tuple, Union

from . import _native
from .constants import CacheMode, Mode, Overflow, ReadFrom, RetryWrites
from .retry import Retry, statuses_of

Setter = Callable[[_native.Config, Any], None]


def seconds_to_ms(name: str, value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} is in seconds (a number or None), got {value!r}")
    if value < 0:
        raise ValueError(f"{name} cannot be negative")
    ms = int(round(value * 1000))
    return 1 if ms == 0 and value > 0 else ms  # a tiny positive time is not "no limit"


def _duration(c_name: str) -> Setter:
    return lambda cfg, v: cfg.set(c_name, seconds_to_ms(c_name[: -len("_ms")], v))


def _plain(c_name: str) -> Setter:
    return lambda cfg, v: cfg.set(c_name, v)


def _enum_value(name: str, enum: Any, value: Any) -> int:
    """An enum member's number from the member, its number or its (case-insensitive) name."""
    if isinstance(value, str):
        try:
            value = enum[value.upper()]
        except KeyError:
            names = ", ".join(repr(m.name.lower()) for m in enum)
            raise ValueError(f"{name} must be one of {names}, got {value!r}") from None
    return int(enum(value))


def _enum(c_name: str, enum: Any) -> Setter:
    return lambda cfg, v: cfg.set(c_name, _enum_value(c_name, enum, v))


def _socket_timeout(cfg: _native.Config, value: Any) -> None:
    ms = seconds_to_ms("socket_timeout", value)
    cfg.set("read_timeout_ms", ms)
    cfg.set("write_timeout_ms", ms)


def _keepalive(cfg: _native.Config, value: Any) -> None:
    if value is None or value is False:
        cfg.set("tcp_keepalive", 0, 0, 0)
        return
    idle, interval, probes = value
    cfg.set("tcp_keepalive", int(idle), int(interval), int(probes))


def _client_cert(cfg: _native.Config, value: Any) -> None:
    cert, key = value
    cfg.set("tls_client_cert", str(cert), str(key))


def _cert_reqs(cfg: _native.Config, value: Any) -> None:
    # redis-py's ssl_cert_reqs: "none" (or ssl.CERT_NONE, 0) turns verification off.
    cfg.set("tls_insecure_skip_verify", value in ("none", None, 0))


def _retry(cfg: _native.Config, value: Retry) -> None:
    if not isinstance(value, Retry):
        raise TypeError(f"retry must be a brisk.Retry, got {value!r}")
    cfg.set_retry(*value._c_args())
    if value.supported_errors is not None:
        cfg.set_retry_on_errors(statuses_of(value.supported_errors))


def _retry_on_error(cfg: _native.Config, value: Iterable[Any]) -> None:
    cfg.set_retry_on_errors(statuses_of(value))


def _sentinel_auth(cfg: _native.Config, value: Any) -> None:
    username, password = value
    cfg.set("sentinel_auth", username, password)


# The C API's defaults (brisk.h) for the half of a paired setting that an option leaves out.
_CLIENT_CACHE_DEFAULT_TTL = 300.0  # brisk_config_set_client_cache: "5 minutes unless set"


def _client_cache(cfg: _native.Config, value: Any) -> None:
    # max_entries, or (max_entries, ttl in seconds; None: no TTL); None or 0: off.
    if value is None or value is False:
        cfg.set("client_cache", 0, 0)
        return
    if isinstance(value, tuple):
        entries, ttl = value
    else:
        entries, ttl = value, _CLIENT_CACHE_DEFAULT_TTL
    cfg.set("client_cache", int(entries), seconds_to_ms("client_cache ttl", ttl))


def _client_cache_prefixes(cfg: _native.Config, value: Iterable[str]) -> None:
    if isinstance(value, (str, bytes)):
        raise TypeError("client_cache_prefixes is a list of prefixes, not one string")
    for prefix in value:
        cfg.set("add_client_cache_prefix", str(prefix))


def _pubsub_queue(cfg: _native.Config, value: Any) -> None:
    # max_messages, or (max_messages, overflow); the overflow defaults to drop_oldest.
    if isinstance(value, tuple):
        size, overflow = value
    else:
        size, overflow = value, Overflow.DROP_OLDEST
    cfg.set("pubsub_queue", int(size), _enum_value("pubsub_queue overflow", Overflow, overflow))


def _pubsub_health_check(cfg: _native.Config, value: Any) -> None:
    # (interval, timeout) in seconds; None: no PINGs.
    if value is None or value is False:
        cfg.set("pubsub_health_check", 0, 0)
        return
    interval, timeout = value
    cfg.set("pubsub_health_check", seconds_to_ms("pubsub_health_check interval", interval),
            seconds_to_ms("pubsub_health_check timeout", timeout))


def _async_dispatch(cfg: _native.Config, value: Any) -> None:
    # The binding runs its async callbacks on brisk's runtime threads (it never dispatches them
    # itself), so only the C default is accepted: "caller" would leave them waiting for ever.
    if value != "runtime":
        raise ValueError(
            f"async_dispatch must be 'runtime' (the binding runs its callbacks on brisk's "
            f"threads), not {value!r}"
        )
    cfg.set("async_dispatch", 0)


def _event_callback(cfg: _native.Config, value: Any) -> None:
    cfg.set_event_callback(value)


Node = Union[str, Tuple[str, int]]


def parse_node(node: Node) -> Tuple[str, int]:
    """``("host", port)`` from a tuple, a ``{"host": ..., "port": ...}`` dict or "host:port"."""
    if isinstance(node, str):
        host, sep, port_text = node.rpartition(":")
        if not sep:
            raise ValueError(f"node {node!r} is not host:port")
        return host.strip("[]"), int(port_text)
    if isinstance(node, Mapping):
        return str(node["host"]), int(node["port"])
    host, port = node
    return str(host), int(port)


def _nodes(cfg: _native.Config, value: Iterable[Node]) -> None:
    for node in value:
        host, port = parse_node(node)
        cfg.set("add_node", host, port)


# canonical name -> (setter, redis-py alias or None)
OPTIONS: Dict[str, Tuple[Setter, Union[str, None]]] = {
    "unix_socket_path": (_plain("unix_path"), None),
    "username": (_plain("username"), None),
    "password": (_plain("password"), None),
    "db": (_plain("db"), None),
    "client_name": (_plain("client_name"), None),
    "protocol": (_plain("protocol"), None),
    "connect_timeout": (_duration("connect_timeout_ms"), "socket_connect_timeout"),
    "socket_timeout": (_socket_timeout, None),
    "read_timeout": (_duration("read_timeout_ms"), None),
    "write_timeout": (_duration("write_timeout_ms"), None),
    "tcp_keepalive": (_keepalive, None),
    "command_deadline": (_duration("command_deadline_ms"), None),
    "max_reply_bytes": (_plain("max_reply_bytes"), None),
    "pool_size": (_plain("pool_size"), "max_connections"),
    "pool_max_wait": (_duration("pool_max_wait_ms"), "pool_timeout"),
    "pool_min_idle": (_plain("pool_min_idle"), None),
    "pool_idle_timeout": (_duration("pool_idle_timeout_ms"), None),
    "pool_max_lifetime": (_duration("pool_max_lifetime_ms"), None),
    "health_check_interval": (_duration("health_check_interval_ms"), None),
    "tls": (_plain("tls"), "ssl"),
    "tls_ca_file": (_plain("tls_ca_file"), "ssl_ca_certs"),
    "tls_client_cert": (_client_cert, None),
    "tls_server_name": (_plain("tls_server_name"), None),
    "tls_insecure_skip_verify": (_plain("tls_insecure_skip_verify"), None),
    "ssl_cert_reqs": (_cert_reqs, None),
    "retry": (_retry, None),
    "retry_on_timeout": (_plain("retry_on_timeout"), None),
    "retry_on_error": (_retry_on_error, None),
    "retry_writes": (_enum("retry_writes", RetryWrites), None),
    "event_callback": (_event_callback, None),
    "mode": (_enum("mode", Mode), None),
    "nodes": (_nodes, "startup_nodes"),
    "cluster_error_retry_attempts": (_plain("cluster_error_retry_attempts"), None),
    "cluster_refresh_interval": (_duration("cluster_refresh_interval_ms"), None),
    "read_from": (_enum("read_from", ReadFrom), None),
    # Sentinel (mode="sentinel", nodes = the sentinels).
    "sentinel_master": (_plain("sentinel_master"), "service_name"),
    "sentinel_auth": (_sentinel_auth, None),
    "sentinel_timeout": (_duration("sentinel_timeout_ms"), None),
    # OpenTelemetry (an endpoint turns it on; None: $OTEL_EXPORTER_OTLP_ENDPOINT).
    "otel_endpoint": (_plain("otel_endpoint"), None),
    "otel_traces_sample_ratio": (_plain("otel_traces_sample_ratio"), None),
    "otel_export_interval": (_duration("otel_export_interval_ms"), None),
    "otel_export_timeout": (_duration("otel_export_timeout_ms"), None),
    # Client-side caching (off unless client_cache is set).
    "client_cache": (_client_cache, None),
    "client_cache_max_bytes": (_plain("client_cache_max_bytes"), None),
    "client_cache_mode": (_enum("client_cache_mode", CacheMode), None),
    "client_cache_prefixes": (_client_cache_prefixes, None),
    # Pub/Sub subscribers (Client.pubsub()).
    "pubsub_queue": (_pubsub_queue, None),
    "pubsub_health_check": (_pubsub_health_check, None),
    # Which thread runs async callbacks: only "runtime" (brisk's threads) in this binding.
    "async_dispatch": (_async_dispatch, None),
}

ALIASES = {alias: name for name, (_, alias) in OPTIONS.items() if alias}

# Options handled by the Python layer, not the config.
CODEC_OPTIONS = ("decode_responses", "encoding", "encoding_errors")


def canonical(options: Mapping[str, Any]) -> Dict[str, Any]:
    """The options under their canonical names; unknown names and doubles are TypeError."""
    out: Dict[str, Any] = {}
    for key, value in options.items():
        name = ALIASES.get(key, key)
        if name not in OPTIONS:
            raise TypeError(f"unknown brisk option {key!r}")
        if name in out:
            raise TypeError(f"option {name!r} given twice (as {name!r} and its alias)")
        out[name] = value
    return out


def split_client_cert(options: Dict[str, Any]) -> Dict[str, Any]:
    """redis-py's ``ssl_certfile`` + ``ssl_keyfile`` become ``tls_client_cert``."""
    cert = options.pop("ssl_certfile", None)
    key = options.pop("ssl_keyfile", None)
    if cert is not None or key is not None:
        if cert is None or key is None:
            raise TypeError("ssl_certfile and ssl_keyfile go together")
        if "tls_client_cert" in options:
            raise TypeError("tls_client_cert given twice (and as ssl_certfile/ssl_keyfile)")
        options["tls_client_cert"] = (cert, key)
    return options


def build_config(
    url: Union[str, None],
    host: Union[str, None],
    port: Union[int, None],
    options: Mapping[str, Any],
) -> _native.Config:
    """A config from a URL (optional), an address (optional) and options, in that order."""
    cfg = _native.Config()
    if url is not None:
        cfg.set("url", url)
    if host is not None or port is not None:
        cfg.set("address", host if host is not None else "localhost", 6379 if port is None else port)
    for name, value in canonical(split_client_cert(dict(options))).items():
        setter, _ = OPTIONS[name]
        setter(cfg, value)
    return cfg


def option_names() -> List[str]:
    """Every option name accepted, aliases included."""
    return sorted(list(OPTIONS) + list(ALIASES) + list(CODEC_OPTIONS) + ["ssl_certfile", "ssl_keyfile"])
