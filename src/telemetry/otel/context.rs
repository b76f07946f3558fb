//! Trace context: the application's span that brisk's spans hang under (a W3C `traceparent`
//! set per thread), and the retries of the command running on a thread, which become events of
//! its span.
//!
//! A blocking command reads its thread's context when it finishes. An async command captures
//! the context when it is submitted ([`Scope::capture`]) and carries it to the runtime thread
//! that finishes it, which [`Scope::enter`]s it around its reports.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, trace::TraceContextExt};
use std::cell::RefCell;
use std::time::SystemTime;

/// A parsed `traceparent`, and the SDK context made of it once (for the sampler).
#[derive(Clone, Debug)]
pub struct Parent {
    pub span: SpanContext,
    pub context: Context,
}

/// Parses a W3C `traceparent` header value: `00-<32 hex>-<16 hex>-<2 hex>` (lower-case hex;
/// all-zero ids and version `ff` are invalid; a later version may append `-` and more).
pub fn parse_traceparent(text: &str) -> Option<Parent> {
    let bytes = text.as_bytes();
    if bytes.len() < 55 || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let version = hex_u8(&text[0..2])?;
    if version == 0xff || (version == 0 && bytes.len() != 55) {
        return None;
    }
    if bytes.len() > 55 && bytes[55] != b'-' {
        return None;
    }
    let trace_id = u128::from_str_radix(lower_hex(&text[3..35])?, 16).ok()?;
    let span_id = u64::from_str_radix(lower_hex(&text[36..52])?, 16).ok()?;
    let flags = hex_u8(&text[53..55])?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    let span = SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        TraceFlags::new(flags & TraceFlags::SAMPLED.to_u8()),
        true,
        TraceState::default(),
    );
    let context = Context::new().with_remote_span_context(span.clone());
    Some(Parent { span, context })
}

fn lower_hex(text: &str) -> Option<&str> {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        .then_some(text)
}

fn hex_u8(text: &str) -> Option<u8> {
    u8::from_str_radix(lower_hex(text)?, 16).ok()
}

/// A failed try that was retried, for its command's span.
#[derive(Clone, Debug)]
pub struct RetryNote {
    pub at: SystemTime,
    /// The number of the try that failed (1-based).
    pub attempt: u32,
    pub error_type: opentelemetry::StringValue,
}

/// At most this many retries are kept for one span (the attempt count says how many there
/// were): a thread whose retries no command collects cannot grow it.
const MAX_RETRY_NOTES: usize = 16;

/// What a thread (or an async command) carries.
#[derive(Debug, Default)]
pub struct ThreadTrace {
    pub parent: Option<Parent>,
    pub retries: Vec<RetryNote>,
}

thread_local! {
    static CURRENT: RefCell<ThreadTrace> = RefCell::default();
}

/// Sets (or with `None` clears) the parent of the spans of the commands this thread runs next.
pub fn set_parent(parent: Option<Parent>) {
    CURRENT.with(|c| c.borrow_mut().parent = parent);
}

/// The thread's parent now.
pub fn parent() -> Option<Parent> {
    CURRENT.with(|c| c.borrow().parent.clone())
}

/// Runs `f` with the thread's parent, without copying it.
pub fn with_parent<R>(f: impl FnOnce(Option<&Parent>) -> R) -> R {
    CURRENT.with(|c| f(c.borrow().parent.as_ref()))
}

/// Notes a retried try for the span of the command this thread finishes next.
pub fn note_retry(note: RetryNote) {
    CURRENT.with(|c| {
        let mut state = c.borrow_mut();
        if state.retries.len() < MAX_RETRY_NOTES {
            state.retries.push(note);
        }
    });
}

/// The retries noted since the last finished command (and forgets them).
pub fn take_retries() -> Vec<RetryNote> {
    CURRENT.with(|c| std::mem::take(&mut c.borrow_mut().retries))
}

/// An async command's trace context, from its submission to its end. Empty (one null
/// pointer, no work) when OpenTelemetry is off.
#[derive(Debug, Default)]
pub struct Scope(Option<Box<ThreadTrace>>);

impl Scope {
    /// The submitting thread's parent, for a command that will finish elsewhere.
    pub fn capture() -> Scope {
        Scope(Some(Box::new(ThreadTrace {
            parent: parent(),
            retries: Vec::new(),
        })))
    }

    /// Makes this scope the thread's context until the guard is dropped or left.
    pub fn enter(self) -> Entered {
        Entered {
            previous: self.0.map(|mut state| {
                CURRENT.with(|c| std::mem::swap(&mut *c.borrow_mut(), &mut state));
                state
            }),
        }
    }
}

/// The thread's context while a [`Scope`] is entered; restores the thread's own on drop.
pub struct Entered {
    previous: Option<Box<ThreadTrace>>,
}

impl Entered {
    /// Restores the thread's context and gives the scope back (with what was noted meanwhile).
    pub fn leave(mut self) -> Scope {
        Scope(self.restore())
    }

    fn restore(&mut self) -> Option<Box<ThreadTrace>> {
        let mut state = self.previous.take()?;
        CURRENT.with(|c| std::mem::swap(&mut *c.borrow_mut(), &mut state));
        Some(state)
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_w3c_example() {
        let parent = parse_traceparent(GOOD).unwrap();
        assert_eq!(
            parent.span.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parent.span.span_id().to_string(), "00f067aa0ba902b7");
        assert!(parent.span.is_sampled());
        assert!(parent.span.is_remote());
        let unsampled = parse_traceparent(&GOOD.replace("-01", "-00")).unwrap();
        assert!(!unsampled.span.is_sampled());
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        // A later version may carry more fields.
        assert!(parse_traceparent(&format!("01{}-later", &GOOD[2..])).is_some());
    }

    #[test]
    fn a_scope_carries_the_parent_to_another_thread_and_restores_that_threads_own() {
        set_parent(parse_traceparent(GOOD));
        let scope = Scope::capture();
        set_parent(None);
        std::thread::spawn(move || {
            let own = "00-11111111111111111111111111111111-2222222222222222-01";
            set_parent(parse_traceparent(own));
            let entered = scope.enter();
            assert_eq!(
                parent().unwrap().span.span_id().to_string(),
                "00f067aa0ba902b7"
            );
            note_retry(RetryNote {
                at: SystemTime::now(),
                attempt: 1,
                error_type: "BRISK_ERR_TIMEOUT".into(),
            });
            let scope = entered.leave();
            assert_eq!(
                parent().unwrap().span.span_id().to_string(),
                "2222222222222222"
            );
            assert!(take_retries().is_empty(), "the retry went with the scope");
            let _entered = scope.enter();
            assert_eq!(take_retries().len(), 1);
        })
        .join()
        .unwrap();
        assert!(parent().is_none());
    }
}
