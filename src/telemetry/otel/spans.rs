//! Spans: one CLIENT span per finished command (per pipeline or transaction), following the
//! OpenTelemetry database-client conventions.
//!
//! The caller's thread only decides (the SDK's sampler) and notes what the span needs in a
//! [`SpanRecord`] (shared values, no text built); the exporter thread writes it into an OTLP
//! `Span` message (`traces.rs`). Records wait in the exporter's bounded queue
//! (`exporter::Channel`).

use super::attrs::{self, Server};
use super::context::{self, RetryNote};
use crate::telemetry::events::Event;
use opentelemetry::StringValue;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::trace::{IdGenerator, Sampler, SamplingDecision, ShouldSample};
use std::sync::Arc;
use std::time::SystemTime;

/// What a span is made of, noted on the caller's thread.
pub struct SpanRecord {
    pub name: StringValue,
    pub context: SpanContext,
    /// The parent span, and whether it is remote (the application's).
    pub parent: Option<(SpanId, bool)>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub server: Arc<Server>,
    pub batch_size: u32,
    pub attempts: u32,
    pub error_type: Option<StringValue>,
    pub retries: Vec<RetryNote>,
}

/// Random trace and span ids from the thread's fast generator (wyrand, randomly seeded per
/// thread): the SDK's `RandomIdGenerator` draws from a cryptographic generator, several times
/// the cost, which ids do not need.
#[derive(Debug, Default)]
struct FastIds;

impl IdGenerator for FastIds {
    fn new_trace_id(&self) -> TraceId {
        TraceId::from(fastrand::u128(1..))
    }

    fn new_span_id(&self) -> SpanId {
        SpanId::from(fastrand::u64(1..))
    }
}

/// Samples and notes spans.
pub struct SpanMaker {
    sampler: Sampler,
    /// The sampler records every span without a parent (parent-based always-on, the default):
    /// no need to ask it for those.
    roots_always: bool,
    ids: FastIds,
}

impl SpanMaker {
    /// `roots_always`: the sampler records every span that has no parent.
    pub fn new(sampler: Sampler, roots_always: bool) -> SpanMaker {
        SpanMaker {
            roots_always,
            sampler,
            ids: FastIds,
        }
    }

    /// The span of a finished command (`None` when it is not sampled). The thread's retries
    /// are taken whether it is or not.
    pub fn command(&self, event: &Event<'_>) -> Option<SpanRecord> {
        let retries = context::take_retries();
        let (context, parent) = context::with_parent(|parent| {
            let trace_id = parent.map_or_else(|| self.ids.new_trace_id(), |p| p.span.trace_id());
            if parent.is_some() || !self.roots_always {
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
