"""OpenTelemetry: spans and metrics reach a real OTLP/HTTP receiver, and trace parents count."""

from __future__ import annotations

from typing import Iterator

import pytest

import brisk
from servers import OtlpBodyRecorder, OtlpReceiver, otlp_receiver_script

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SAMPLED_PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
UNSAMPLED_PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-00"
# Nothing is exported on its own during a test: only flush_telemetry sends.
QUIET = {"otel_export_interval": 600, "otel_export_timeout": 30}


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    script = otlp_receiver_script()
    if script is None:
        pytest.skip("needs the repository's ctests/otlp_receiver.py")
    r = OtlpReceiver(script)
    yield r
    r.stop()


@pytest.fixture
def no_trace_parent() -> Iterator[None]:
    """The thread's trace parent is cleared after the test, whatever it set."""
    yield
    brisk.set_trace_parent(None)


def paths(receiver: OtlpReceiver) -> list:
    return [path for path, _, _ in receiver.requests()]


def test_commands_are_exported_to_the_collector_on_flush(server, key, receiver):
    k = key()
    with brisk.Client("127.0.0.1", server.port, otel_endpoint=receiver.url,
                      otel_traces_sample_ratio=1.0, **QUIET) as c:
        c.execute_command("SET", k, "v")
        assert c.execute_command("GET", k) == b"v"
        assert receiver.requests() == []  # buffered until the flush
        assert c.flush_telemetry(30) is True
        requests = receiver.requests()  # the receiver logs a request before answering it
        assert "/v1/traces" in paths(receiver) and "/v1/metrics" in paths(receiver), requests
        assert all(ctype == "application/x-protobuf" and size > 0 for _, ctype, size in requests)
        assert c.telemetry_dropped() == 0


def test_without_an_endpoint_nothing_is_exported(server, key):
    with brisk.Client("127.0.0.1", server.port) as c:
        c.execute_command("SET", key(), "v")
        assert c.flush_telemetry(1) is True  # off: nothing to wait for
        assert c.telemetry_dropped() == 0


def test_bad_telemetry_settings_are_invalid_arguments():
    for bad in ("https://127.0.0.1:4318", "not a url", "127.0.0.1:4318"):
        with pytest.raises(brisk.DataError) as e:
            brisk.Client(otel_endpoint=bad)
        assert e.value.status == brisk.Status.INVALID_ARGUMENT, bad
    with pytest.raises(brisk.DataError):
        brisk.Client(otel_traces_sample_ratio=1.5)
    with pytest.raises(brisk.DataError):
        brisk.Client(otel_export_interval=None)  # 0 ms
    with pytest.raises(TypeError):
        brisk.Client(otel_traces_sample_ratio="all")
    with pytest.raises(brisk.DataError):
        brisk.set_trace_parent("00-not-a-traceparent-01")
    with pytest.raises(TypeError):
        brisk.set_trace_parent(b"00-" + TRACE_ID.encode())  # type: ignore[arg-type]


def test_the_trace_parents_sampled_flag_decides(server, key, receiver, no_trace_parent):
    with brisk.Client("127.0.0.1", server.port, otel_endpoint=receiver.url, **QUIET) as c:
        brisk.set_trace_parent(UNSAMPLED_PARENT)
        c.execute_command("SET", key(), "not traced")
        assert c.flush_telemetry(30) is True
        assert "/v1/metrics" in paths(receiver) and "/v1/traces" not in paths(receiver)
        brisk.set_trace_parent(SAMPLED_PARENT)
        c.execute_command("SET", key(), "traced")
        assert c.flush_telemetry(30) is True
        assert "/v1/traces" in paths(receiver)


def test_spans_carry_the_trace_parents_trace_id(server, key, no_trace_parent):
    recorder = OtlpBodyRecorder()
    try:
        with brisk.Client("127.0.0.1", server.port, otel_endpoint=recorder.url, **QUIET) as c:
            c.execute_command("SET", key(), "own trace")
            assert c.flush_telemetry(30) is True
            before = recorder.bodies("/v1/traces")
            assert before and not any(bytes.fromhex(TRACE_ID) in b for b in before)
            brisk.set_trace_parent(SAMPLED_PARENT)
            c.execute_command("SET", key(), "child span")
            assert c.flush_telemetry(30) is True
            after = recorder.bodies("/v1/traces")[len(before):]
            assert any(bytes.fromhex(TRACE_ID) in b for b in after), after
    finally:
        recorder.stop()
