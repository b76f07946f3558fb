//! OpenTelemetry: what brisk exports, read by an OTLP/HTTP receiver inside the test and decoded
//! with the OpenTelemetry proto definitions (`opentelemetry-proto`'s prost types, not brisk's
//! encoder); and what a dead, stalled or failing collector costs the commands (nothing).

mod support;

use brisk::{Args, Client, Config, Status};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use prost::Message;
use std::collections::HashMap;
use std::ffi::CString;
use std::time::{Duration, Instant};
use support::{OtlpReceiver, RedisServer, SilentServer, call_async, closed_port, wait_until};

/// Bytes put into arguments and values: they must never appear in anything exported.
const SECRET: &str = "ARGSENTINEL-7f3a";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const ASYNC_PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const UNSAMPLED_PARENT: &str = "00-11111111111111111111111111111111-2222222222222222-00";

fn otel_config(server_config: Config, collector: &str) -> Config {
    let mut config = server_config;
    config.otel.set_endpoint(Some(collector)).unwrap();
    // Only flushes export (and closing), so the test sees one picture.
    config.otel.set_export_interval_ms(600_000).unwrap();
    config
}

fn run(client: &Client, args: &[&str]) -> brisk::Result<brisk::Reply> {
    let words: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    client.command(&Args::from_slices(&words))
}

fn set_parent(traceparent: Option<&str>) {
    let text = traceparent.map(|t| CString::new(t).unwrap());
    let ptr = text.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
    // SAFETY: NULL or a NUL-terminated string that outlives the call.
    let status = unsafe { brisk::capi::trace::brisk_trace_parent_set(ptr) };
    assert_eq!(status, 0, "brisk_trace_parent_set({traceparent:?})");
}

fn spans_of(receiver: &OtlpReceiver) -> Vec<Span> {
    receiver
        .bodies("/v1/traces")
        .iter()
        .flat_map(|posted| {
            assert_eq!(posted.content_type, "application/x-protobuf");
            ExportTraceServiceRequest::decode(posted.body.as_slice())
                .expect("a trace request")
                .resource_spans
        })
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect()
}

fn value(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(kv: &[KeyValue]) -> HashMap<String, String> {
    kv.iter()
        .map(|kv| (kv.key.clone(), value(&kv.value)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn one_span<'a>(
    spans: &'a [Span],
    name: &str,
    what: impl Fn(&HashMap<String, String>) -> bool,
) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == name && what(&attributes(&s.attributes)))
        .collect();
    assert_eq!(found.len(), 1, "one {name} span expected, got {found:#?}");
    found[0]
}

#[test]
fn spans_and_metrics_follow_the_database_client_conventions() {
    let server = RedisServer::start();
    let receiver = OtlpReceiver::start();
    let client = Client::new(&otel_config(server.config(), &receiver.url())).unwrap();
    let key = format!("{SECRET}-key");
    let value = format!("{SECRET}-value");

    run(&client, &["SET", &key, &value]).unwrap();
    set_parent(Some(PARENT));
    run(&client, &["get", &key]).unwrap();
    set_parent(Some(UNSAMPLED_PARENT));
    run(&client, &["STRLEN", &key]).unwrap();
    set_parent(None);
    let wrongtype = run(&client, &["LPUSH", &key, &value]).unwrap_err();
    assert_eq!(wrongtype.status(), Status::Server);

    let mut pipeline = client.pipeline();
    for args in [
        ["SET", &key, &value],
        ["GET", &key, ""],
        ["INCR", &format!("{SECRET}-n"), ""],
    ] {
        let words: Vec<&[u8]> = args
            .iter()
            .filter(|a| !a.is_empty())
            .map(|a| a.as_bytes())
            .collect();
        pipeline.append(&Args::from_slices(&words)).unwrap();
    }
    pipeline.exec().unwrap();
    let mut transaction = client.transaction();
    transaction
        .append(&Args::from_slices(&[b"GET".as_slice(), key.as_bytes()]))
        .unwrap();
    transaction
        .append(&Args::from_slices(&[b"PING".as_slice()]))
        .unwrap();
    transaction.exec().unwrap();

    // An async command takes the parent of the thread that submits it, even if that thread
    // changes it before the reply comes.
    set_parent(Some(ASYNC_PARENT));
    let (tx, rx) = std::sync::mpsc::channel();
    let echo_args = [b"ECHO".as_slice(), value.as_bytes()];
    client
        .command_async(
            &Args::from_slices(&echo_args),
            Box::new(move |outcome| {
                let _ = tx.send(outcome.is_ok());
            }),
        )
        .unwrap();
    set_parent(None);
    let reply = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the callback");
    assert!(reply);

    // A client-side failure with retries: nothing listens where this client connects.
    let closed = closed_port();
    let dead_receiver = OtlpReceiver::start();
    let mut dead_config = otel_config(Config::default(), &dead_receiver.url());
    dead_config.set_address("127.0.0.1", closed.port()).unwrap();
    let dead = Client::new(&dead_config).unwrap();
    let refused = run(&dead, &["GET", &key]).unwrap_err();
    assert_eq!(refused.status(), Status::Connection);

    assert!(client.flush_telemetry(Duration::from_secs(30)));
    assert!(dead.flush_telemetry(Duration::from_secs(30)));
    let mut spans = spans_of(&receiver);
    spans.extend(spans_of(&dead_receiver));

    // One CLIENT span per command; none for the command under an unsampled parent.
    assert!(
        spans.iter().all(|s| s.kind == SpanKind::Client as i32),
        "{spans:#?}"
    );
    assert!(
        !spans.iter().any(|s| s.name == "STRLEN"),
        "unsampled parent: no span"
    );
    let port = server.port().to_string();
    let set = one_span(&spans, "SET", |a| {
        !a.contains_key("db.operation.batch.size")
    });
    let a = attributes(&set.attributes);
    assert_eq!(a["db.system.name"], "redis");
    assert_eq!(a["db.operation.name"], "SET");
    assert_eq!(a["db.namespace"], "0");
    assert_eq!(a["server.address"], "127.0.0.1");
    assert_eq!(a["server.port"], port);
    assert!(
        !a.contains_key("redis.client.operation.retry_attempts"),
        "no retries, no attribute"
    );
    assert!(!a.contains_key("error.type") && !a.contains_key("db.query.text"));
    assert_ne!(
        set.status.as_ref().map_or(0, |s| s.code),
        StatusCode::Error as i32
    );
    assert!(set.end_time_unix_nano >= set.start_time_unix_nano && set.start_time_unix_nano > 0);

    // The application's span is the parent (the command name was sent lower case).
    let get = one_span(&spans, "GET", |a| {
        !a.contains_key("db.operation.batch.size") && a["server.port"] == port
    });
    assert_eq!(hex(&get.trace_id), &PARENT[3..35]);
    assert_eq!(hex(&get.parent_span_id), &PARENT[36..52]);
    assert_ne!(hex(&get.span_id), &PARENT[36..52]);
    assert_eq!(attributes(&get.attributes)["db.operation.name"], "GET");
    // A span without a parent starts its own trace.
    assert!(set.parent_span_id.is_empty() && set.trace_id != get.trace_id);

    let echo = one_span(&spans, "ECHO", |_| true);
    assert_eq!(
        hex(&echo.trace_id),
        &ASYNC_PARENT[3..35],
        "async: the submitter's parent"
    );
    assert_eq!(hex(&echo.parent_span_id), &ASYNC_PARENT[36..52]);

    // A server error: the error code, and status ERROR.
    let lpush = one_span(&spans, "LPUSH", |_| true);
    let a = attributes(&lpush.attributes);
    assert_eq!(a["error.type"], "WRONGTYPE");
    assert_eq!(a["db.response.status_code"], "WRONGTYPE");
    assert_eq!(
        lpush.status.as_ref().unwrap().code,
        StatusCode::Error as i32
    );

    // The batches: one span each, with their size.
    let pipeline_span = one_span(&spans, "PIPELINE", |_| true);
    assert_eq!(
        attributes(&pipeline_span.attributes)["db.operation.batch.size"],
        "3"
    );
    let multi = one_span(&spans, "MULTI", |_| true);
    assert_eq!(
        attributes(&multi.attributes)["db.operation.batch.size"],
        "2"
    );

    // A client-side failure: the status name, the retries as events and an attribute.
    let failed = one_span(&spans, "GET", |a| a.contains_key("error.type"));
    let a = attributes(&failed.attributes);
    assert_eq!(a["error.type"], "BRISK_ERR_CONNECTION");
    assert!(!a.contains_key("db.response.status_code"));
    assert_eq!(a["server.port"], closed.port().to_string());
    assert_eq!(
        failed.status.as_ref().unwrap().code,
        StatusCode::Error as i32
    );
    let retries = a["redis.client.operation.retry_attempts"]
        .parse::<usize>()
        .unwrap();
    assert!(
        retries >= 1,
        "the default policy retries a refused connection"
    );
    assert_eq!(failed.events.len(), retries, "{:#?}", failed.events);
    for (i, event) in failed.events.iter().enumerate() {
        let e = attributes(&event.attributes);
        assert_eq!(event.name, "brisk.retry");
        assert_eq!(e["error.type"], "BRISK_ERR_CONNECTION");
        assert_eq!(e["brisk.attempt"], (i + 1).to_string());
    }

    // Metrics.
    let metrics = last_metrics(&receiver);
    let duration = metric(&metrics, "db.client.operation.duration");
    assert_eq!(duration.unit, "s");
    let Some(metric::Data::Histogram(histogram)) = &duration.data else {
        panic!("db.client.operation.duration is not a histogram: {duration:#?}")
    };
    let get_points: Vec<_> = histogram
        .data_points
        .iter()
        .filter(|p| {
            let a = attributes(&p.attributes);
            a["db.operation.name"] == "GET"
                && !a.contains_key("error.type")
                && !a.contains_key("db.operation.batch.size")
        })
        .collect();
    assert_eq!(get_points.len(), 1, "{get_points:#?}");
    let point = get_points[0];
    assert_eq!(
        point.explicit_bounds,
        [
            0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0
        ]
    );
    assert_eq!(point.count, 1, "one successful GET");
    assert_eq!(point.bucket_counts.iter().sum::<u64>(), 1);
    let a = attributes(&point.attributes);
    assert_eq!(a["db.system.name"], "redis");
    assert_eq!(a["db.namespace"], "0");
    assert_eq!(a["server.address"], "127.0.0.1");
    assert_eq!(a["server.port"], port);
    assert!(a["redis.client.library"].starts_with("brisk:"));
    let all_commands: u64 = histogram.data_points.iter().map(|p| p.count).sum();
    // SET, GET, STRLEN, LPUSH, PIPELINE, MULTI, ECHO: metrics see every command, sampled or
    // not.
    assert_eq!(all_commands, 7, "{:#?}", histogram.data_points);
    let wrong = histogram
        .data_points
        .iter()
        .find(|p| {
            attributes(&p.attributes)
                .get("error.type")
                .map(String::as_str)
                == Some("WRONGTYPE")
        })
        .expect("the WRONGTYPE command's point");
    assert_eq!(
        attributes(&wrong.attributes)["db.response.status_code"],
        "WRONGTYPE"
    );

    let count = metric(&metrics, "db.client.connection.count");
    assert_eq!(count.unit, "{connection}");
    let Some(metric::Data::Gauge(gauge)) = &count.data else {
        panic!("{count:#?}")
    };
    let states: Vec<String> = gauge
        .data_points
        .iter()
        .map(|p| attributes(&p.attributes)["db.client.connection.state"].clone())
        .collect();
    assert!(
        states.contains(&"idle".into()) && states.contains(&"used".into()),
        "{states:?}"
    );
    let pool = attributes(&gauge.data_points[0].attributes);
    assert_eq!(
        pool["db.client.connection.pool.name"],
        format!("127.0.0.1:{port}/0")
    );
    for name in [
        "db.client.connection.create_time",
        "db.client.connection.pending_requests",
        "redis.client.errors",
        "brisk.client.reconnects",
        "brisk.client.redirects",
        "brisk.client.telemetry.dropped_spans",
        "redis.client.csc.requests",
    ] {
        metric(&metrics, name);
    }

    // Never an argument or value, in anything exported.
    for posted in receiver.all().into_iter().chain(dead_receiver.all()) {
        assert!(
            !posted
                .body
                .windows(SECRET.len())
                .any(|w| w == SECRET.as_bytes()),
            "argument bytes in {}",
            posted.path
        );
    }
    drop(dead);
    drop(client);
}

fn last_metrics(receiver: &OtlpReceiver) -> Vec<Metric> {
    let bodies = receiver.bodies("/v1/metrics");
    let last = bodies.last().expect("a metrics export");
    ExportMetricsServiceRequest::decode(last.body.as_slice())
        .expect("a metrics request")
        .resource_metrics
        .into_iter()
        .flat_map(|r| r.scope_metrics)
        .flat_map(|s| s.metrics)
        .collect()
}

fn metric<'a>(metrics: &'a [Metric], name: &str) -> &'a Metric {
    metrics.iter().find(|m| m.name == name).unwrap_or_else(|| {
        panic!(
            "no {name} in {:?}",
            metrics.iter().map(|m| &m.name).collect::<Vec<_>>()
        )
    })
}

#[test]
fn ratio_zero_exports_metrics_and_no_spans() {
    let server = RedisServer::start();
    let receiver = OtlpReceiver::start();
    let mut config = otel_config(server.config(), &receiver.url());
    config.otel.set_traces_sample_ratio(0.0).unwrap();
    let client = Client::new(&config).unwrap();
    set_parent(Some(PARENT));
    for _ in 0..10 {
        run(&client, &["PING"]).unwrap();
    }
    set_parent(None);
    assert!(client.flush_telemetry(Duration::from_secs(30)));
    assert!(
        spans_of(&receiver).is_empty(),
        "ratio 0: not even under a sampled parent"
    );
    let metrics = last_metrics(&receiver);
    let Some(metric::Data::Histogram(h)) = &metric(&metrics, "db.client.operation.duration").data
    else {
        panic!()
    };
    assert_eq!(h.data_points.iter().map(|p| p.count).sum::<u64>(), 10);
}

/// The slowest of `n` sync GETs, and how many failed.
fn timed_gets(client: &Client, n: usize) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(n);
    let mut failed = 0;
    for i in 0..n {
        let key = format!("k{}", i % 16);
        let started = Instant::now();
        if run(client, &["GET", &key]).is_err() {
            failed += 1;
        }
        times.push(started.elapsed());
    }
    times.sort();
    (times[n / 2], times[n - 1], failed)
}

/// Every command of a client whose collector is `collector` against one without telemetry, in
/// the same run: none fails, none is held up by the exporter, and freeing the client is
/// bounded.
fn collector_costs_commands_nothing(collector: &str, what: &str) {
    let server = RedisServer::start();
    let plain = Client::new(&server.config()).unwrap();
    let mut config = server.config();
    config.otel.set_endpoint(Some(collector)).unwrap();
    // Export as often as possible, each export allowed 10 s: a stalled collector keeps the
    // exporter busy for the whole run.
    config.otel.set_export_interval_ms(20).unwrap();
    config.otel.set_export_timeout_ms(10_000).unwrap();
    let client = Client::new(&config).unwrap();
    let (plain_median, _, _) = timed_gets(&plain, 200);
    let (median, slowest, failed) = timed_gets(&client, 2000);
    let async_failed = (0..200)
        .filter(|_| call_async(&client, &["GET", "k"]).is_err())
        .count();
    assert_eq!(failed + async_failed, 0, "{what}: commands failed");
    // A command that waited for an export would take the export timeout (10 s): a loaded
    // machine stretches commands, but not to that.
    assert!(
        slowest < Duration::from_millis(1500),
        "{what}: a command took {slowest:?}"
    );
    assert!(
        median < plain_median * 5 + Duration::from_millis(2),
        "{what}: median {median:?} against {plain_median:?} without telemetry"
    );
    // The exporter has failed at least once by now: what it held is dropped and counted.
    assert!(
        wait_until(Duration::from_secs(30), || client.telemetry_dropped_spans()
            > 0),
        "{what}: dropped spans are counted"
    );
    let started = Instant::now();
    drop(client);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "{what}: free took {took:?}");
}

#[test]
fn a_dead_collector_costs_commands_nothing() {
    let closed = closed_port();
    collector_costs_commands_nothing(
        &format!("http://127.0.0.1:{}", closed.port()),
        "closed port",
    );
}

#[test]
fn a_stalled_collector_costs_commands_nothing() {
    let silent = SilentServer::start();
    collector_costs_commands_nothing(&format!("http://127.0.0.1:{}", silent.port()), "stalled");
}

#[test]
fn a_failing_collector_costs_commands_nothing() {
    let failing = OtlpReceiver::failing();
    collector_costs_commands_nothing(&failing.url(), "answers 500");
}

#[test]
fn a_malformed_traceparent_is_refused_and_changes_nothing() {
    let text = CString::new("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7").unwrap();
    // SAFETY: a NUL-terminated string.
    let status = unsafe { brisk::capi::trace::brisk_trace_parent_set(text.as_ptr()) };
    assert_eq!(status, Status::InvalidArgument as u32);
}

#[test]
fn cluster_spans_carry_the_node_that_answered() {
    let cluster = support::RedisCluster::start();
    let receiver = OtlpReceiver::start();
    let client = Client::new(&otel_config(cluster.config(), &receiver.url())).unwrap();
    // One trace per key, so that each span says which key it was for.
    let keys = ["a", "b", "c"];
    let mut owners = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let traceparent = format!("00-{:032x}-00f067aa0ba902b7-01", i + 1);
        set_parent(Some(&traceparent));
        run(&client, &["SET", key, SECRET]).unwrap();
        set_parent(None);
        let slot = match run(&client, &["CLUSTER", "KEYSLOT", key])
            .unwrap()
            .as_integer()
        {
            Some(slot) => slot as u16,
            None => panic!("CLUSTER KEYSLOT answers an integer"),
        };
        owners.push(cluster.nodes[cluster.primary_of_slot(0, slot)].port());
    }
    assert!(client.flush_telemetry(Duration::from_secs(30)));
    let spans = spans_of(&receiver);
    for (i, owner) in owners.iter().enumerate() {
        let trace_id = format!("{:032x}", i + 1);
        let span = spans
            .iter()
            .find(|s| s.name == "SET" && hex(&s.trace_id) == trace_id)
            .unwrap_or_else(|| panic!("the SET of {}: {spans:#?}", keys[i]));
        let a = attributes(&span.attributes);
        assert_eq!(a["server.port"], owner.to_string(), "key {}", keys[i]);
        assert_eq!(a["server.address"], "127.0.0.1");
    }
    let distinct: std::collections::HashSet<_> = owners.iter().collect();
    assert!(
        distinct.len() >= 2,
        "the keys live on several nodes: {owners:?}"
    );
}
