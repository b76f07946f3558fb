"""Options: every C config setter is reachable, and the options do what they say."""

from __future__ import annotations

import re
import time

import pytest

import brisk
from brisk import _native
from brisk.options import OPTIONS
import servers
from servers import Server, SilentServer, header_path

# Setters that take more than plain values and have their own Config method.
SPECIAL = {"event_callback", "retry", "retry_on_errors"}

# Setters the binding leaves unbound on purpose, and why.
NOT_BOUND = {
    # A C hook for programs that hand completions to their own thread: the binding's bridge
    # already wakes the event loop once per batch (its eventfd is written only when its list of
    # completions stops being empty).
    "async_batch_end",
}


@pytest.mark.skipif(header_path() is None, reason="needs the repository's include/brisk.h")
def test_every_config_setter_in_the_header_is_bound():
    header = open(header_path()).read()
    in_header = set(re.findall(r"brisk_status brisk_config_(?:set_)?(\w+)\(", header))
    bound = set(_native.Config.setters()) | SPECIAL | NOT_BOUND
    assert in_header == bound, (in_header - bound, bound - in_header)


def test_every_setter_is_used_by_an_option():
    source = open(brisk.options.__file__).read()
    for name in _native.Config.setters():
        if name in ("url", "address"):
            continue  # Client.from_url and Client(host, port)
        assert f'"{name}"' in source, name


def test_address_db_name_and_protocol(server, key):
    k = key()
    with brisk.Client("127.0.0.1", server.port, db=3, client_name="py-opts", protocol=2) as c:
        c.execute_command("SET", k, "in three")
        assert c.execute_command("CLIENT", "GETNAME") == b"py-opts"
    with brisk.Client.from_url(f"{server.url}/3") as c:
        assert c.execute_command("GET", k) == b"in three"
    with brisk.Client.from_url(server.url, db=3) as c:  # options override the URL
        assert c.execute_command("GET", k) == b"in three"


def test_read_timeout_is_in_seconds():
    silent = SilentServer()
    try:
        with brisk.Client("127.0.0.1", silent.port, read_timeout=0.3, connect_timeout=5,
                          retry=brisk.Retry(brisk.ConstantBackoff(0.01), 0)) as c:
            started = time.monotonic()
            with pytest.raises(brisk.TimeoutError):
                c.execute_command("PING")
            elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 10, elapsed
    finally:
        silent.stop()


def test_retry_on_timeout_retries(key):
    silent = SilentServer()
    try:
        with brisk.Client("127.0.0.1", silent.port, socket_timeout=0.1,
                          retry=brisk.Retry(brisk.NoBackoff(), 2,
                                            supported_errors=(brisk.TimeoutError,))) as c:
            with pytest.raises(brisk.TimeoutError):
                c.execute_command("GET", key())
            assert c.stat(brisk.Stat.RETRIES) == 2
    finally:
        silent.stop()


def test_retry_delays_stay_in_bounds():
    r = brisk.Retry(brisk.ExponentialBackoff(cap=0.5, base=0.01), 3)
    assert [r.delay(i) for i in range(7)] == [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.5]
    j = brisk.Retry(brisk.FullJitterBackoff(cap=0.5, base=0.01), 3)
    assert all(0 <= j.delay(i) <= 0.5 for i in range(20))
    assert brisk.Retry(brisk.ConstantBackoff(0.25), 1).delay(5) == 0.25
    with pytest.raises(ValueError):
        brisk.Retry(brisk.NoBackoff(), -1)


def test_every_option_is_accepted(server, tmp_path):
    values = {
        "unix_socket_path": None,  # tested below: it replaces the address
        "username": None, "password": None, "db": 0, "client_name": "all-options", "protocol": 3,
        "connect_timeout": 2, "socket_timeout": 2.5, "read_timeout": 3, "write_timeout": None,
        "tcp_keepalive": (10, 2, 3), "command_deadline": 30, "max_reply_bytes": 1 << 20,
        "pool_size": 4, "pool_max_wait": 1, "pool_min_idle": 1, "pool_idle_timeout": 60,
        "pool_max_lifetime": None, "health_check_interval": 0.5, "tls": False,
        "tls_ca_file": None, "tls_client_cert": None, "tls_server_name": None,
        "tls_insecure_skip_verify": False, "ssl_cert_reqs": "required",
        "retry": brisk.Retry(brisk.EqualJitterBackoff(), 2), "retry_on_timeout": True,
        "retry_on_error": [brisk.ConnectionError, brisk.Status.BUSY_LOADING],
        "retry_writes": "always", "event_callback": None, "mode": "standalone", "nodes": None,
        "cluster_error_retry_attempts": 2, "cluster_refresh_interval": 10,
        "read_from": "primary",
        # Sentinel settings are kept (and unused) in standalone mode.
        "sentinel_master": "mymaster", "sentinel_auth": (None, "sentinel-secret"),
        "sentinel_timeout": 0.25,
        # OpenTelemetry settings are kept (and unused) without an endpoint.
        "otel_endpoint": None, "otel_traces_sample_ratio": 0.5, "otel_export_interval": 5,
        "otel_export_timeout": 2,
        "client_cache": None, "client_cache_max_bytes": 1 << 20, "client_cache_mode": "optin",
        "client_cache_prefixes": ["py:"], "pubsub_queue": (100, brisk.Overflow.BLOCK),
        "pubsub_health_check": (2, 4), "async_dispatch": "runtime",
    }
    assert set(values) == set(OPTIONS)
    given = {k: v for k, v in values.items()
             if v is not None or k in ("write_timeout", "pool_max_lifetime", "event_callback")}
    with brisk.Client("127.0.0.1", server.port, **given) as c:
        assert c.execute_command("CLIENT", "GETNAME") == b"all-options"


def test_async_dispatch_is_runtime_only():
    # The binding never dispatches callbacks itself: caller dispatch would strand them.
    with pytest.raises(ValueError, match="runtime"):
        brisk.Client("127.0.0.1", 1, async_dispatch="caller")


def test_unix_socket(tmp_path, key):
    path = str(tmp_path / "redis.sock")
    unix = Server(["--unixsocket", path, "--unixsocketperm", "700"])
    try:
        with brisk.Client(unix_socket_path=path) as c:
            c.execute_command("SET", key(), "over the socket")
            assert c.execute_command("DBSIZE") == 1
        with brisk.Client.from_url(f"unix://{path}") as c:
            assert c.execute_command("DBSIZE") == 1
    finally:
        unix.stop()
    with brisk.Client(unix_socket_path=str(tmp_path / "nothing.sock"),
                      retry=brisk.Retry(brisk.NoBackoff(), 0)) as c:
        with pytest.raises(brisk.ConnectionError):
            c.execute_command("PING")


def test_bad_values():
    with pytest.raises(ValueError, match="retry_writes"):
        brisk.Client(retry_writes="sometimes")
    with pytest.raises(TypeError, match="seconds"):
        brisk.Client(read_timeout="5s")
    with pytest.raises(ValueError, match="negative"):
        brisk.Client(read_timeout=-1)
    with pytest.raises(brisk.DataError):
        brisk.Client(pool_size=0)
    with pytest.raises(brisk.DataError):
        brisk.Client(protocol=4)
    with pytest.raises(TypeError, match="ssl_keyfile"):
        brisk.Client(ssl_certfile="c.pem")


def test_unusable_tls_files_fail_at_creation(tmp_path):
    with pytest.raises(brisk.TLSError) as e:
        brisk.Client("127.0.0.1", 6379, ssl=True, ssl_ca_certs=str(tmp_path / "missing.pem"))
    assert e.value.category is brisk.Category.CONNECTION


def test_sentinel_mode_checks_its_settings_and_names_the_sentinels_tried():
    port = servers.free_port()
    # Without a master name the config is refused; with one, an unreachable sentinel is a
    # ConnectionError naming it (a real deployment is tested by the C and Rust suites).
    with pytest.raises(brisk.DataError, match="(?i)master"):
        brisk.Client(mode="sentinel", nodes=[f"127.0.0.1:{port}"])
    with pytest.raises(brisk.ConnectionError, match=f"127.0.0.1:{port}"):
        with brisk.Client(mode="sentinel", nodes=[f"127.0.0.1:{port}"],
                          service_name="mymaster", sentinel_auth=("sam", "secret"),
                          sentinel_timeout=0.2, connect_timeout=0.5) as c:
            c.execute_command("PING")


def test_cluster_needs_nodes():
    with pytest.raises(brisk.DataError):
        brisk.Client(mode="cluster")
