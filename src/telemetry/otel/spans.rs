//! Spans: one CLIENT span per finished command (per pipeline or transaction), following the
//! OpenTelemetry database-client conventions.
//!
//! The caller's thread only decides (sampling) and notes what the span needs in a
//! [`SpanRecord`] (shared values, no text built); the exporter thread makes the SDK's
//! `SpanData` of it. Records wait in the exporter's bounded queue (`exporter::Channel`).

use super::attrs::{self, Server};
use super::context::{self, RetryNote};
use crate::telemetry::events::Event;
use opentelemetry::trace::{
    Event as SpanEvent, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample, SpanData, SpanEvents,
    SpanLinks,
};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

/// What a span is made of, noted on the caller's thread.
pub struct SpanRecord {
    name: StringValue,
    context: SpanContext,
    parent: Option<(SpanId, bool)>,
    start: SystemTime,
    end: SystemTime,
    server: Arc<Server>,
    batch_size: u32,
    attempts: u32,
    error_type: Option<StringValue>,
    retries: Vec<RetryNote>,
}

/// Samples and notes spans.
pub struct SpanMaker {
    sampler: Sampler,
    ids: RandomIdGenerator,
}

impl SpanMaker {
    pub fn new(sampler: Sampler) -> SpanMaker {
        SpanMaker {
            sampler,
            ids: RandomIdGenerator::default(),
        }
    }

    /// The span of a finished command (`None` when it is not sampled). The thread's retries
    /// are taken whether it is or not.
    pub fn command(&self, event: &Event<'_>) -> Option<SpanRecord> {
        let retries = context::take_retries();
        let (context, parent) = context::with_parent(|parent| {
            let trace_id = parent.map_or_else(|| self.ids.new_trace_id(), |p| p.span.trace_id());
            let result = self.sampler.should_sample(
                parent.map(|p| &p.context),
                trace_id,
                "",
                &SpanKind::Client,
                &[],
                &[],
            );
            if result.decision != SamplingDecision::RecordAndSample {
                return None;
            }
            let context = SpanContext::new(
                trace_id,
                self.ids.new_span_id(),
                TraceFlags::SAMPLED,
                false,
                parent.map_or_else(TraceState::default, |p| p.span.trace_state().clone()),
            );
            Some((
                context,
                parent.map(|p| (p.span.span_id(), p.span.is_remote())),
            ))
        })?;
        let end = SystemTime::now();
        Some(SpanRecord {
            name: attrs::operation_name(event.command),
            context,
            parent,
            start: end.checked_sub(event.duration).unwrap_or(end),
            end,
            server: attrs::server(event.address.to_bytes()),
            batch_size: event.batch_size,
            attempts: event.attempt,
            error_type: event.error_type.map(attrs::text),
            retries,
        })
    }
}

/// The SDK's span of a record, with the conventions' attributes: never an argument or value.
pub fn span_data(record: SpanRecord, db: &StringValue, scope: &InstrumentationScope) -> SpanData {
    let server = &record.server;
    let mut attributes = vec![
        attrs::static_kv(attrs::DB_SYSTEM_NAME, attrs::REDIS),
        attrs::string_kv(attrs::DB_OPERATION_NAME, &record.name),
        attrs::string_kv(attrs::DB_NAMESPACE, db),
        attrs::string_kv(attrs::SERVER_ADDRESS, &server.address),
        KeyValue::new(
            attrs::RETRY_ATTEMPTS,
            i64::from(record.attempts.saturating_sub(1)),
        ),
    ];
    if let Some(port) = server.port {
        attributes.push(KeyValue::new(attrs::SERVER_PORT, port));
    }
    if record.batch_size >= 2 {
        attributes.push(KeyValue::new(
            attrs::DB_OPERATION_BATCH_SIZE,
            i64::from(record.batch_size),
        ));
    }
    let status = match &record.error_type {
        None => Status::Unset,
        Some(error_type) => {
            attributes.push(attrs::string_kv(attrs::ERROR_TYPE, error_type));
            if attrs::is_server_code(error_type.as_str()) {
                attributes.push(attrs::string_kv(attrs::DB_RESPONSE_STATUS_CODE, error_type));
            }
            Status::error(error_type.as_str().to_owned())
        }
    };
    let mut events = SpanEvents::default();
    events.events = record
        .retries
        .into_iter()
        .map(|retry| {
            SpanEvent::new(
                "brisk.retry",
                retry.at,
                vec![
                    KeyValue::new("brisk.attempt", i64::from(retry.attempt)),
                    KeyValue::new(attrs::ERROR_TYPE, Value::String(retry.error_type)),
                ],
                0,
            )
        })
        .collect();
    let (parent_span_id, parent_span_is_remote) = record.parent.unwrap_or((SpanId::INVALID, false));
    SpanData {
        span_context: record.context,
        parent_span_id,
        parent_span_is_remote,
        span_kind: SpanKind::Client,
        name: Cow::Owned(record.name.as_str().to_owned()),
        start_time: record.start,
        end_time: record.end,
        attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}
