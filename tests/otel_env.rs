//! What is process-wide, in a test binary of its own (one test, so nothing else runs at the
//! same time): OpenTelemetry's standard environment (OTEL_EXPORTER_OTLP_ENDPOINT when the
//! endpoint is NULL, OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES in the resource,
//! OTEL_TRACES_SAMPLER, OTEL_SDK_DISABLED), and exporter threads: none outlives its client,
//! not even one whose creation failed after its telemetry had started.

mod support;

use brisk::{Args, Client, Config};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use std::time::Duration;
use support::{OtlpReceiver, RedisServer, wait_until};

/// The `brisk-otel` threads of this process now.
fn exporter_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "brisk-otel")
        .count()
}

fn set_env(name: &str, value: Option<&str>) {
    // SAFETY: this binary has one test and it runs alone; brisk reads the environment only
    // while a client is being made, which happens on this thread.
    unsafe {
        match value {
            Some(v) => std::env::set_var(name, v),
            None => std::env::remove_var(name),
        }
    }
}

/// A client with OpenTelemetry on and the endpoint left to the environment; three PINGs and a
/// flush.
fn ping_three_times(server: &RedisServer) -> Client {
    let mut config: Config = server.config();
    config.otel.set_endpoint(None).unwrap();
    config.otel.set_export_interval_ms(600_000).unwrap();
    let client = Client::new(&config).unwrap();
    for _ in 0..3 {
        client
            .command(&Args::from_slices(&[b"PING".as_slice()]))
            .unwrap();
    }
    assert!(client.flush_telemetry(Duration::from_secs(30)));
    client
}

fn resource_and_span_count(receiver: &OtlpReceiver) -> (Vec<(String, String)>, usize) {
    let mut resource = Vec::new();
    let mut spans = 0;
    for posted in receiver.bodies("/v1/traces") {
        let request = ExportTraceServiceRequest::decode(posted.body.as_slice()).unwrap();
        for rs in request.resource_spans {
            for kv in rs.resource.map(|r| r.attributes).unwrap_or_default() {
                if let Some(any_value::Value::StringValue(s)) = kv.value.and_then(|v| v.value) {
                    resource.push((kv.key, s));
                }
            }
            spans += rs.scope_spans.iter().map(|s| s.spans.len()).sum::<usize>();
        }
    }
    (resource, spans)
}

#[test]
fn the_standard_environment_is_honoured() {
    let server = RedisServer::start();

    // The endpoint, the service name and resource attributes from the environment.
    let receiver = OtlpReceiver::start();
    set_env("OTEL_EXPORTER_OTLP_ENDPOINT", Some(&receiver.url()));
    set_env("OTEL_SERVICE_NAME", Some("checkout"));
    set_env(
        "OTEL_RESOURCE_ATTRIBUTES",
        Some("deployment.environment=test,team=payments"),
    );
    let first = ping_three_times(&server);
    assert_eq!(
        exporter_threads(),
        1,
        "a client with OpenTelemetry has its exporter thread"
    );
    drop(first);
    let (resource, spans) = resource_and_span_count(&receiver);
    assert_eq!(spans, 3);
    for (key, value) in [
        ("service.name", "checkout"),
        ("deployment.environment", "test"),
        ("team", "payments"),
        ("telemetry.sdk.language", "rust"),
    ] {
        assert!(
            resource.iter().any(|(k, v)| k == key && v == value),
            "{key}={value} not in {resource:?}"
        );
    }
    assert!(!receiver.bodies("/v1/metrics").is_empty());

    // OTEL_TRACES_SAMPLER=always_off: metrics only.
    let receiver = OtlpReceiver::start();
    set_env("OTEL_EXPORTER_OTLP_ENDPOINT", Some(&receiver.url()));
    set_env("OTEL_TRACES_SAMPLER", Some("always_off"));
    drop(ping_three_times(&server));
    assert_eq!(resource_and_span_count(&receiver).1, 0);
    assert!(!receiver.bodies("/v1/metrics").is_empty());
    set_env("OTEL_TRACES_SAMPLER", None);

    // OTEL_SDK_DISABLED=true: nothing at all, whatever the program set.
    let receiver = OtlpReceiver::start();
    set_env("OTEL_EXPORTER_OTLP_ENDPOINT", Some(&receiver.url()));
    set_env("OTEL_SDK_DISABLED", Some("true"));
    let client = ping_three_times(&server);
    drop(client);
    assert!(receiver.all().is_empty(), "{:?}", receiver.all());
    set_env("OTEL_SDK_DISABLED", None);
    set_env("OTEL_EXPORTER_OTLP_ENDPOINT", None);

    // A client whose creation fails after its exporter started (an unreadable CA file) leaves
    // no exporter thread behind; nor do the clients above.
    let mut config = server.config();
    config.otel.set_endpoint(Some(&receiver.url())).unwrap();
    config.tls.enabled = true;
    config.tls.ca_file = Some("/nonexistent/brisk-test-ca.pem".into());
    assert!(Client::new(&config).is_err());
    assert!(
        wait_until(Duration::from_secs(30), || exporter_threads() == 0),
        "{} exporter threads left",
        exporter_threads()
    );
}
