//! The exporter thread (`brisk-otel`, one per client with OpenTelemetry on): it sends the
//! queued spans when a batch is ready or the interval is up, collects and sends the metrics
//! every interval, and answers flush requests. Every export is bounded by the export timeout,
//! so a slow or dead collector holds up only this thread: commands only ever append to the
//! bounded queue (or drop, and count, when it is full).

use super::spans::SpanRecord;
use super::traces::TraceExporter;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The most spans waiting for export (the SDK's batch processor default); past it new spans
/// are dropped.
pub(crate) const MAX_QUEUED_SPANS: usize = 2048;
/// Spans per export request, and the queue length that starts one before the interval is up.
pub(crate) const EXPORT_BATCH: usize = 512;

struct Pending {
    spans: Vec<SpanRecord>,
    /// Flushes asked for, and done (the exporter has sent everything queued before each).
    flush_asked: u64,
    flush_done: u64,
    closing: bool,
    /// The thread has ended (or never started).
    gone: bool,
}

/// Between the threads that make spans and the exporter thread.
pub struct Channel {
    pending: Mutex<Pending>,
    wake: Condvar,
    finished: Condvar,
    dropped: AtomicU64,
    exports_failed: AtomicU64,
}

impl Channel {
    fn new() -> Channel {
        Channel {
            pending: Mutex::new(Pending {
                spans: Vec::new(),
                flush_asked: 0,
                flush_done: 0,
                closing: false,
                gone: false,
            }),
            wake: Condvar::new(),
            finished: Condvar::new(),
            dropped: AtomicU64::new(0),
            exports_failed: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a span, or drops it (counted) when the queue is full.
    pub fn push(&self, span: SpanRecord) {
        let mut pending = self.lock();
        if pending.spans.len() >= MAX_QUEUED_SPANS || pending.gone {
            drop(pending);
            self.dropped.fetch_add(1, Relaxed);
            return;
        }
        pending.spans.push(span);
        if pending.spans.len() == EXPORT_BATCH {
            self.wake.notify_one();
        }
    }

    /// Spans dropped: the queue was full, or their export failed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Exports (of spans or metrics) that failed.
    pub fn exports_failed(&self) -> u64 {
        self.exports_failed.load(Relaxed)
    }

    /// Tells the exporter to stop after one last export, without waiting for it.
    pub fn stop(&self) {
        let mut pending = self.lock();
        if !pending.closing {
            pending.closing = true;
            pending.flush_asked += 1;
            self.wake.notify_one();
        }
    }

    /// Asks for everything queued now to be exported and waits for it at most `timeout`;
    /// false when that was not long enough. With `close`, the exporter stops after it.
    pub fn flush(&self, timeout: Duration, close: bool) -> bool {
        let until = Instant::now() + timeout;
        let mut pending = self.lock();
        if pending.gone {
            return pending.spans.is_empty();
        }
        pending.flush_asked += 1;
        pending.closing |= close;
        let ticket = pending.flush_asked;
        self.wake.notify_one();
        while pending.flush_done < ticket && !pending.gone {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            pending = self
                .finished
                .wait_timeout(pending, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        pending.flush_done >= ticket
    }
}

/// A `ManualReader` the exporter keeps a handle on after giving it to the meter provider.
#[derive(Debug, Clone)]
pub struct SharedReader(pub Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<opentelemetry_sdk::metrics::Pipeline>) {
        self.0.register_pipeline(pipeline)
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(
        &self,
        kind: opentelemetry_sdk::metrics::InstrumentKind,
    ) -> opentelemetry_sdk::metrics::Temporality {
        self.0.temporality(kind)
    }
}

/// What the exporter thread owns.
pub struct Exporters {
    pub traces: TraceExporter,
    pub metrics: opentelemetry_otlp::MetricExporter,
    pub reader: SharedReader,
    /// Kept alive here: it owns the metric pipeline the reader collects from.
    pub provider: SdkMeterProvider,
    pub interval: Duration,
}

/// Starts the exporter thread; the channel is how the client talks to it.
pub fn start(exporters: Exporters) -> std::io::Result<Arc<Channel>> {
    let channel = Arc::new(Channel::new());
    let worker = channel.clone();
    std::thread::Builder::new()
        .name("brisk-otel".into())
        .spawn(move || {
            run(&worker, exporters);
            let mut pending = worker.lock();
            pending.gone = true;
            let unsent = std::mem::take(&mut pending.spans).len();
            drop(pending);
            worker.dropped.fetch_add(unsent as u64, Relaxed);
            worker.finished.notify_all();
        })?;
    Ok(channel)
}

fn run(channel: &Channel, mut ex: Exporters) {
    let mut batch: Vec<SpanRecord> = Vec::new();
    let mut next_metrics = Instant::now() + ex.interval;
    loop {
        let (ticket, closing) = {
            let mut pending = channel.lock();
            loop {
                let now = Instant::now();
                if pending.closing
                    || pending.flush_asked > pending.flush_done
                    || pending.spans.len() >= EXPORT_BATCH
                    || now >= next_metrics
                {
                    break;
                }
                pending = channel
                    .wake
                    .wait_timeout(pending, next_metrics - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            std::mem::swap(&mut pending.spans, &mut batch);
            (pending.flush_asked, pending.closing)
        };
        send_spans(channel, &mut ex, &mut batch);
        let flushing = ticket > channel.lock().flush_done;
        if flushing || closing || Instant::now() >= next_metrics {
            send_metrics(channel, &mut ex);
            next_metrics = Instant::now() + ex.interval;
        }
        let mut pending = channel.lock();
        pending.flush_done = pending.flush_done.max(ticket);
        drop(pending);
        channel.finished.notify_all();
        if closing {
            let _ = ex.provider.shutdown_with_timeout(Duration::from_millis(10));
            return;
        }
    }
}

fn send_spans(channel: &Channel, ex: &mut Exporters, batch: &mut Vec<SpanRecord>) {
    let mut chunk = Vec::with_capacity(EXPORT_BATCH.min(batch.len()));
    while !batch.is_empty() {
        let take = batch.len().min(EXPORT_BATCH);
        chunk.extend(batch.drain(..take));
        if !ex.traces.export(&mut chunk) {
            channel.dropped.fetch_add(take as u64, Relaxed);
            channel.exports_failed.fetch_add(1, Relaxed);
        }
    }
}

fn send_metrics(channel: &Channel, ex: &mut Exporters) {
    let mut metrics = ResourceMetrics::default();
    if ex.reader.collect(&mut metrics).is_err() {
        return;
    }
    if futures_executor::block_on(ex.metrics.export(&metrics)).is_err() {
        channel.exports_failed.fetch_add(1, Relaxed);
    }
}
