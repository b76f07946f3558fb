//! The trace export: span records written into the OTLP proto messages (`opentelemetry-proto`'s
//! types, encoded by prost) and posted to `/v1/traces`.
//!
//! The messages of one export are kept for the next: their strings, byte vectors and attribute
//! lists are overwritten in place, so a steady stream of spans allocates nothing here (the
//! SDK's `SpanData` route allocates a dozen times per span, several times what the command
//! itself costs).

use super::attrs;
use super::http::post_body;
use super::spans::SpanRecord;
use opentelemetry::StringValue;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status::StatusCode,
};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use prost::Message;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The span flags' bits that say whether the parent is remote (OTLP `SpanFlags`).
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

pub struct TraceExporter {
    uri: Option<http::Uri>,
    headers: http::HeaderMap,
    timeout: Duration,
    db: StringValue,
    request: ExportTraceServiceRequest,
    /// Span messages not used by the current export, kept for the next.
    spare: Vec<Span>,
    body: Vec<u8>,
}

impl TraceExporter {
    pub fn new(
        url: String,
        headers: Vec<(String, String)>,
        timeout: Duration,
        db: StringValue,
        resource: &opentelemetry_sdk::Resource,
        scope: &opentelemetry::InstrumentationScope,
    ) -> TraceExporter {
        let resource = ResourceAttributesWithSchema::from(resource);
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: resource.attributes.0,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: scope.name().to_owned(),
                        version: scope.version().unwrap_or_default().to_owned(),
                        ..Default::default()
                    }),
                    spans: Vec::new(),
                    schema_url: String::new(),
                }],
                schema_url: resource.schema_url.unwrap_or_default(),
            }],
        };
        let mut header_map = http::HeaderMap::new();
        header_map.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        for (name, value) in &headers {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                header_map.insert(name, value);
            }
        }
        TraceExporter {
            uri: url.parse().ok(),
            headers: header_map,
            timeout,
            db,
            request,
            spare: Vec::new(),
            body: Vec::new(),
        }
    }

    fn spans(&mut self) -> &mut Vec<Span> {
        &mut self.request.resource_spans[0].scope_spans[0].spans
    }

    /// Encodes `records` (emptied) into one request and posts it; false when the collector
    /// did not take it.
    pub fn export(&mut self, records: &mut Vec<SpanRecord>) -> bool {
        let db = self.db.clone();
        // The messages stay where they are (a span message is large: moving it costs); only
        // the count changes, the extra ones kept aside for a later, larger export.
        let wanted = records.len();
        let mut spans = std::mem::take(self.spans());
        if spans.len() > wanted {
            self.spare.extend(spans.drain(wanted..));
        }
        while spans.len() < wanted {
            spans.push(self.spare.pop().unwrap_or_default());
        }
        for (span, record) in spans.iter_mut().zip(records.drain(..)) {
            fill(span, record, &db);
        }
        *self.spans() = spans;
        self.body.clear();
        // A Vec grows as needed: no need for `encode`'s size check (a walk over every span).
        self.request.encode_raw(&mut self.body);
        let Some(uri) = &self.uri else {
            return false; // an endpoint that is no URL: every export fails (and is counted)
        };
        let deadline = Instant::now() + self.timeout;
        match post_body(uri, &self.headers, &self.body, deadline) {
            Ok(status) => (200..300).contains(&status),
            Err(_) => false,
        }
    }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn set_bytes(into: &mut Vec<u8>, bytes: &[u8]) {
    into.clear();
    into.extend_from_slice(bytes);
}

fn set_text(into: &mut String, text: &str) {
    into.clear();
    into.push_str(text);
}

/// Writes attributes over an existing list, reusing its entries.
struct Attributes<'a> {
    list: &'a mut Vec<KeyValue>,
    used: usize,
}

impl Attributes<'_> {
    fn slot(&mut self, key: &str) -> &mut Option<any_value::Value> {
        if self.used == self.list.len() {
            self.list.push(KeyValue::default());
        }
        let kv = &mut self.list[self.used];
        self.used += 1;
        if kv.key != key {
            set_text(&mut kv.key, key);
        }
        &mut kv.value.get_or_insert_with(AnyValue::default).value
    }

    fn text(&mut self, key: &str, value: &str) {
        match self.slot(key) {
            Some(any_value::Value::StringValue(s)) => set_text(s, value),
            other => *other = Some(any_value::Value::StringValue(value.to_owned())),
        }
    }

    fn int(&mut self, key: &str, value: i64) {
        *self.slot(key) = Some(any_value::Value::IntValue(value));
    }

    fn finish(self) {
        self.list.truncate(self.used);
    }
}

/// A span record as an OTLP span, with the conventions' attributes: never an argument or
/// value.
fn fill(span: &mut Span, record: SpanRecord, db: &StringValue) {
    let context = &record.context;
    set_bytes(&mut span.trace_id, &context.trace_id().to_bytes());
    set_bytes(&mut span.span_id, &context.span_id().to_bytes());
    // brisk_trace_parent_set takes no tracestate: there is none to pass on.
    span.trace_state.clear();
    let flags = u32::from(context.trace_flags().to_u8());
    match record.parent {
        Some((parent, remote)) => {
            set_bytes(&mut span.parent_span_id, &parent.to_bytes());
            span.flags = flags | HAS_IS_REMOTE | if remote { IS_REMOTE } else { 0 };
        }
        None => {
            span.parent_span_id.clear();
            span.flags = flags | HAS_IS_REMOTE;
        }
    }
    set_text(&mut span.name, record.name.as_str());
    span.kind = span::SpanKind::Client as i32;
    span.start_time_unix_nano = nanos(record.start);
    span.end_time_unix_nano = nanos(record.end);

    let server = &record.server;
    let mut attributes = Attributes {
        list: &mut span.attributes,
        used: 0,
    };
    attributes.text("db.system.name", attrs::REDIS);
    attributes.text("db.operation.name", record.name.as_str());
    attributes.text("db.namespace", db.as_str());
    attributes.text("server.address", server.address.as_str());
    if let Some(port) = server.port {
        attributes.int("server.port", port);
    }
    // Retries are the exception: the attribute (and an event per retry) only when there were.
    if record.attempts > 1 {
        attributes.int(
            "redis.client.operation.retry_attempts",
            i64::from(record.attempts - 1),
        );
    }
    if record.batch_size >= 2 {
        attributes.int("db.operation.batch.size", i64::from(record.batch_size));
    }
    match &record.error_type {
        None => span.status = None,
        Some(error_type) => {
            let error_type = error_type.as_str();
            attributes.text("error.type", error_type);
            if attrs::is_server_code(error_type) {
                attributes.text("db.response.status_code", error_type);
            }
            let status = span.status.get_or_insert_with(Status::default);
            status.code = StatusCode::Error as i32;
            set_text(&mut status.message, error_type);
        }
    }
    attributes.finish();

    span.events.clear();
    for retry in &record.retries {
        span.events.push(span::Event {
            time_unix_nano: nanos(retry.at),
            name: "brisk.retry".to_owned(),
            attributes: vec![
                KeyValue {
                    key: "brisk.attempt".to_owned(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(i64::from(retry.attempt))),
                    }),
                    ..Default::default()
                },
                KeyValue {
                    key: "error.type".to_owned(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(
                            retry.error_type.as_str().to_owned(),
                        )),
                    }),
                    ..Default::default()
                },
            ],
            dropped_attributes_count: 0,
        });
    }
}

/// `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (else `OTEL_EXPORTER_OTLP_HEADERS`): `k=v,k2=v2`, values
/// percent-decoded.
pub fn headers_from_env() -> Vec<(String, String)> {
    let text = std::env::var("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_HEADERS"))
        .unwrap_or_default();
    text.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let value = percent_encoding::percent_decode_str(value.trim())
                .decode_utf8()
                .ok()?;
            let key = key.trim();
            (!key.is_empty()).then(|| (key.to_owned(), value.into_owned()))
        })
        .collect()
}

/// The traces URL: the configured endpoint's, else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as
/// is), else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`, else the local collector's.
pub fn url(configured: Option<String>) -> String {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    configured
        .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        .or_else(|| {
            env("OTEL_EXPORTER_OTLP_ENDPOINT")
                .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
        })
        .unwrap_or_else(|| "http://localhost:4318/v1/traces".to_owned())
}
