//! OpenTelemetry, exported by brisk itself: a CLIENT span per command and the database-client
//! metrics, sent over OTLP/HTTP (protobuf) to a collector from the client's own exporter
//! thread.
//!
//! - [`settings`]: the config's part, completed by the standard `OTEL_*` environment.
//! - [`context`]: the application's span (a W3C `traceparent`, per thread) and async capture.
//! - [`spans`], [`metrics`], [`attrs`]: what a command becomes, by the conventions.
//! - `exporter`: the thread, its bounded queue, flushes; `traces`: spans as OTLP messages;
//!   [`http`]: the exporter's small HTTP client.
//!
//! Crates: `opentelemetry` (API types), `opentelemetry_sdk` (sampler, id generator, resource
//! detection, metric aggregation), `opentelemetry-otlp` (the metrics' OTLP encoding and export,
//! with brisk's HTTP client plugged in through `opentelemetry-http`'s trait),
//! `opentelemetry-proto` (the OTLP messages spans are written into, encoded by prost).
//!
//! The client sees it only through the event observer (`telemetry::events::Observer`): the
//! events a client emits anyway become spans and measurements here. A client without
//! OpenTelemetry has no `Otel` and pays nothing.

pub mod attrs;
pub mod context;
mod exporter;
pub mod http;
pub mod metrics;
pub mod settings;
pub mod spans;
mod traces;

pub use context::Scope;
pub use metrics::{PoolState, Source};
pub use settings::OtelSettings;

use crate::core::{Error, Result, Status};
use crate::telemetry::events::{Event, EventKind};
use exporter::{Channel, Exporters, SharedReader};
use metrics::{Metrics, SourceSlot};
use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider, Temporality};
use spans::SpanMaker;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

/// How long closing a client waits for its last export (at most; less if the export timeout
/// is shorter).
pub(crate) const CLOSE_FLUSH_WAIT: Duration = Duration::from_millis(2000);

/// One client's OpenTelemetry: what turns its events into telemetry, and its exporter.
pub struct Otel {
    spans: Option<SpanMaker>,
    metrics: Metrics,
    channel: Arc<Channel>,
    source: SourceSlot,
    close_wait: Duration,
    closed: AtomicBool,
}

impl Drop for Otel {
    /// A client that was never closed (its creation failed after its telemetry started) still
    /// ends its exporter thread.
    fn drop(&mut self) {
        self.channel.stop();
    }
}

fn build_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid_argument(format!("OpenTelemetry {what}: {e}"))
}

impl Otel {
    /// Starts a client's exporter: `None` when OpenTelemetry is off (by the config or by
    /// `OTEL_SDK_DISABLED=true`).
    pub fn start(settings: &OtelSettings, db: u32) -> Result<Option<Arc<Otel>>> {
        if !settings.active() {
            return Ok(None);
        }
        let timeout = Duration::from_millis(u64::from(settings.export_timeout_ms));
        let http = || http::BlockingHttp { timeout };
        // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES and the SDK's own attributes.
        let resource = Resource::builder().build();
        let scope = InstrumentationScope::builder("brisk")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();

        let db = attrs::shared(&db.to_string());
        let traces = traces::TraceExporter::new(
            traces::url(settings.signal_url("/v1/traces")),
            traces::headers_from_env(),
            timeout,
            db.clone(),
            &resource,
            &scope,
        );

        let mut metrics = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_http_client(http())
            .with_timeout(timeout)
            .with_temporality(Temporality::Cumulative);
        if let Some(url) = settings.signal_url("/v1/metrics") {
            metrics = metrics.with_endpoint(url);
        }
        let metrics = metrics
            .build()
            .map_err(|e| build_error("metrics exporter", e))?;

        let reader = SharedReader(Arc::new(
            ManualReader::builder()
                .with_temporality(Temporality::Cumulative)
                .build(),
        ));
        let provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader.clone())
            .build();
        let meter = opentelemetry::metrics::MeterProvider::meter_with_scope(&provider, scope);
        let channel = exporter::start(Exporters {
            traces,
            metrics,
            reader,
            provider,
            interval: Duration::from_millis(u64::from(settings.export_interval_ms)),
        })
        .map_err(|e| {
            Error::new(
                Status::Internal,
                format!("could not start the OpenTelemetry exporter thread: {e}"),
            )
        })?;
        let source = SourceSlot::default();
        Ok(Some(Arc::new(Otel {
            spans: settings
                .traces_on()
                .then(|| SpanMaker::new(settings.sampler(), settings.roots_always_sampled())),
            metrics: Metrics::new(&meter, db, source.clone(), channel.clone()),
            channel,
            source,
            close_wait: CLOSE_FLUSH_WAIT.min(timeout),
            closed: AtomicBool::new(false),
        })))
    }

    /// Tells the exporter where to read the client's counters and pools (once).
    pub fn attach(&self, source: Box<dyn Source>) {
        let _ = self.source.set(source);
    }

    /// Whether spans are made at all (ratio above 0).
    pub fn traces_on(&self) -> bool {
        self.spans.is_some()
    }

    /// An event the client emitted: a span and measurements.
    pub fn on_event(&self, event: &Event<'_>) {
        match event.kind {
            EventKind::Command => {
                self.metrics.command(event);
                if let Some(span) = self.spans.as_ref().and_then(|s| s.command(event)) {
                    self.channel.push(span);
                }
            }
            EventKind::Retry => {
                self.metrics.retry(event);
                if let (true, Some(error_type)) = (self.traces_on(), event.error_type) {
                    context::note_retry(context::RetryNote {
                        at: SystemTime::now(),
                        attempt: event.attempt,
                        error_type: attrs::text(error_type),
                    });
                }
            }
            EventKind::Connect => self.metrics.connected(event),
            EventKind::Disconnect => self.metrics.disconnected(event),
            EventKind::PoolWait => self.metrics.pool_wait(event),
            EventKind::HealthCheck
            | EventKind::Topology
            | EventKind::CacheInvalidate
            | EventKind::Resubscribe => {}
        }
    }

    /// Exports what is buffered now; false when `timeout` passed first.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.channel.flush(timeout, false)
    }

    /// The last export, waited for a bounded time; the exporter thread ends after it. Only
    /// the first call waits.
    pub fn close(&self) {
        if !self.closed.swap(true, Relaxed) {
            self.channel.flush(self.close_wait, true);
        }
    }

    /// Spans dropped so far (queue full, or export failed).
    pub fn dropped_spans(&self) -> u64 {
        self.channel.dropped()
    }

    /// Exports (of spans or metrics) that failed so far.
    pub fn failed_exports(&self) -> u64 {
        self.channel.exports_failed()
    }
}
