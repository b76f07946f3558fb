//! Retry policy arithmetic and decisions, without a clock or a random source of its own:
//! callers pass the attempt number, the previous delay and a random number.
//!
//! The semantics follow the redis-py, go-redis and Jedis production guides (see API.md,
//! "Retry policy"): a default of 3 retries with full jitter from 10 ms capped at 1 s on the
//! retryable statuses; `retry_on_timeout` / `retry_on_errors` narrow the statuses and, without an
//! explicit policy, mean one immediate retry; SAFE mode never replays a write that may have
//! reached the server.

use super::error::Error;
use super::status::Status;

/// How the delay between attempts grows. The numbers are the C API's `brisk_backoff` values.
///
/// cbindgen:ignore
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backoff {
    /// Retry at once.
    None = 0,
    /// `base` every time.
    Constant = 1,
    /// `min(cap, base * 2^attempt)`.
    Exponential = 2,
    /// `uniform(0, min(cap, base * 2^attempt))`.
    FullJitter = 3,
    /// `t/2 + uniform(0, t/2)` with `t = min(cap, base * 2^attempt)`.
    EqualJitter = 4,
    /// `min(cap, uniform(base, previous * 3))`.
    DecorrelatedJitter = 5,
}

impl Backoff {
    pub fn from_u32(n: u32) -> Option<Backoff> {
        Some(match n {
            0 => Backoff::None,
            1 => Backoff::Constant,
            2 => Backoff::Exponential,
            3 => Backoff::FullJitter,
            4 => Backoff::EqualJitter,
            5 => Backoff::DecorrelatedJitter,
            _ => return None,
        })
    }
}

/// cbindgen:ignore
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    pub base_ms: u32,
    pub cap_ms: u32,
    /// Retries after the first attempt (so `retries + 1` attempts at most).
    pub retries: u32,
}

/// A uniform draw from `lo..=hi` using 64 random bits.
fn uniform(lo: u64, hi: u64, random: u64) -> u64 {
    if hi <= lo {
        return lo;
    }
    let span = hi - lo + 1;
    lo + ((u128::from(random) * u128::from(span)) >> 64) as u64
}

impl RetryPolicy {
    /// redis-py 8 / go-redis 9.22 defaults: full jitter from 10 ms, capped at 1 s, 3 retries.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        backoff: Backoff::FullJitter,
        base_ms: 10,
        cap_ms: 1000,
        retries: 3,
    };

    /// One immediate retry: what `retry_on_timeout`/`retry_on_errors` imply without a policy
    /// (redis-py's `Retry(NoBackoff(), 1)`).
    pub const ONCE: RetryPolicy = RetryPolicy {
        backoff: Backoff::None,
        base_ms: 0,
        cap_ms: 0,
        retries: 1,
    };

    /// No retries at all.
    pub const NEVER: RetryPolicy = RetryPolicy {
        backoff: Backoff::None,
        base_ms: 0,
        cap_ms: 0,
        retries: 0,
    };

    /// `min(cap, base * 2^attempt)`, without overflow.
    fn exponential(&self, attempt: u32) -> u64 {
        let cap = u64::from(self.cap_ms);
        let factor = 1u64.checked_shl(attempt.min(63)).unwrap_or(u64::MAX);
        u64::from(self.base_ms).saturating_mul(factor).min(cap)
    }

    /// The delay before retry number `attempt` (0-based), in ms. `previous_ms` is the delay used
    /// before the previous retry (decorrelated jitter grows from it; pass `base` for the first),
    /// `random` is 64 uniformly random bits (ignored by the deterministic kinds).
    pub fn delay_ms(&self, attempt: u32, previous_ms: u32, random: u64) -> u32 {
        let cap = u64::from(self.cap_ms);
        let delay = match self.backoff {
            Backoff::None => 0,
            Backoff::Constant => u64::from(self.base_ms),
            Backoff::Exponential => self.exponential(attempt),
            Backoff::FullJitter => uniform(0, self.exponential(attempt), random),
            Backoff::EqualJitter => {
                let t = self.exponential(attempt);
                t / 2 + uniform(0, t - t / 2, random)
            }
            Backoff::DecorrelatedJitter => {
                let base = u64::from(self.base_ms);
                let upper = u64::from(previous_ms.max(self.base_ms)).saturating_mul(3);
                uniform(base, upper, random).min(cap)
            }
        };
        delay.min(u64::from(u32::MAX)) as u32
    }

    /// The delay before retry `attempt` when no previous delay is known: decorrelated jitter
    /// takes its largest possible previous delay, `min(cap, base * 3^attempt)`, so the result
    /// stays within `[min(base, cap), min(cap, base * 3^(attempt+1))]`.
    pub fn delay_without_history_ms(&self, attempt: u32, random: u64) -> u32 {
        let previous = (0..attempt).fold(u64::from(self.base_ms), |p, _| {
            p.saturating_mul(3).min(u64::from(self.cap_ms).max(1))
        });
        self.delay_ms(attempt, previous.min(u64::from(u32::MAX)) as u32, random)
    }
}

/// Whether a command whose request may already have reached the server is retried.
/// The numbers are the C API's `brisk_retry_writes` values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RetryWrites {
    /// Only read-only commands are retried after their request was written.
    #[default]
    Safe = 0,
    /// Every command is retried (at-least-once).
    Always = 1,
}

/// The settings a user gives, before defaults and precedence are applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetrySettings {
    /// An explicit `brisk_retry`.
    pub policy: Option<RetryPolicy>,
    pub on_timeout: bool,
    /// `retry_on_errors`: exactly these statuses.
    pub on_errors: Option<Vec<Status>>,
    pub writes: RetryWrites,
    /// `max_retries` from a URL: overrides the number of retries of whatever policy applies.
    pub max_retries: Option<u32>,
}

/// The rules a client applies, with defaults and precedence resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryRules {
    pub policy: RetryPolicy,
    /// Bit `n` set: status number `n` is retried.
    retry_on: u32,
    pub writes: RetryWrites,
}

fn bit(status: Status) -> u32 {
    1 << (status as u32)
}

/// What a command is, as far as retrying it goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandNature {
    /// Running it twice changes nothing (GET, MGET, ...).
    pub read_only: bool,
    /// It blocks on the server (BLPOP, XREAD BLOCK, WAIT, ...): never replayed once sent.
    pub blocking: bool,
    /// A script (EVAL, EVALSHA, FCALL): fewer error replies prove it did not run.
    pub script: bool,
}

/// Why a failed attempt is not retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Retry,
    /// The status is not one the rules retry.
    NotRetryable,
    /// The retries are spent.
    Exhausted,
    /// The request was written and the command is a write (SAFE mode): it may have been applied.
    MayHaveBeenApplied,
    /// A blocking command was sent: replaying it could consume twice.
    BlockingSent,
}

impl RetrySettings {
    /// Whether the user chose a policy or a number of retries (cluster mode's per-node default
    /// of no retries gives way to that).
    pub fn is_explicit(&self) -> bool {
        self.policy.is_some() || self.max_retries.is_some()
    }

    pub fn resolve(&self) -> RetryRules {
        let narrowed = self.on_timeout || self.on_errors.is_some();
        let mut policy = match self.policy {
            Some(p) => p,
            None if narrowed => RetryPolicy::ONCE,
            None => RetryPolicy::DEFAULT,
        };
        if let Some(n) = self.max_retries {
            policy.retries = n;
        }
        let retry_on = if narrowed {
            let listed = self
                .on_errors
                .iter()
                .flatten()
                .fold(0, |acc, s| acc | bit(*s));
            listed
                | if self.on_timeout {
                    bit(Status::Timeout)
                } else {
                    0
                }
        } else {
            Status::ALL
                .iter()
                .filter(|s| s.is_retryable())
                .fold(0, |acc, s| acc | bit(*s))
        };
        RetryRules {
            policy,
            retry_on,
            writes: self.writes,
        }
    }
}

impl RetryRules {
    pub fn retries(&self, status: Status) -> bool {
        self.retry_on & bit(status) != 0
    }

    /// Whether attempt number `attempt` (0-based), which failed with `error`, is retried.
    pub fn verdict(&self, error: &Error, attempt: u32, nature: CommandNature) -> Verdict {
        if !self.retries(error.status()) {
            return Verdict::NotRetryable;
        }
        if error.may_have_been_applied(nature.script) {
            if nature.blocking {
                return Verdict::BlockingSent;
            }
            if !nature.read_only && self.writes == RetryWrites::Safe {
                return Verdict::MayHaveBeenApplied;
            }
        }
        if attempt >= self.policy.retries {
            return Verdict::Exhausted;
        }
        Verdict::Retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff, base: u32, cap: u32) -> RetryPolicy {
        RetryPolicy {
            backoff,
            base_ms: base,
            cap_ms: cap,
            retries: 5,
        }
    }

    #[test]
    fn deterministic_kinds_are_exact() {
        let none = policy(Backoff::None, 10, 100);
        let constant = policy(Backoff::Constant, 10, 100);
        let exp = policy(Backoff::Exponential, 8, 512);
        for attempt in 0..10 {
            assert_eq!(none.delay_ms(attempt, 0, u64::MAX), 0);
            assert_eq!(constant.delay_ms(attempt, 0, 12345), 10);
        }
        let expected = [8, 16, 32, 64, 128, 256, 512, 512, 512];
        for (attempt, want) in expected.iter().enumerate() {
            assert_eq!(exp.delay_ms(attempt as u32, 0, 7), *want);
        }
        assert_eq!(
            exp.delay_ms(200, 0, 0),
            512,
            "no overflow for large attempts"
        );
    }

    #[test]
    fn jittered_kinds_stay_within_their_bounds() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let full = policy(Backoff::FullJitter, 10, 1000);
        let equal = policy(Backoff::EqualJitter, 10, 1000);
        let decorrelated = policy(Backoff::DecorrelatedJitter, 10, 1000);
        let mut previous = 10;
        let mut saw_low = false;
        let mut saw_high = false;
        for round in 0..20_000u32 {
            let attempt = round % 12;
            let t = u32::min(1000, 10u32.saturating_mul(1 << attempt.min(20)));
            let d = full.delay_ms(attempt, 0, next());
            assert!(d <= t);
            saw_low |= d < t / 4;
            saw_high |= d > t * 3 / 4 && t >= 1000;
            let d = equal.delay_ms(attempt, 0, next());
            assert!(
                d >= t / 2 && d <= t,
                "equal jitter {d} outside [{}, {t}]",
                t / 2
            );
            let d = decorrelated.delay_ms(attempt, previous, next());
            assert!((10..=1000).contains(&d) && d <= previous * 3);
            previous = d;
        }
        assert!(saw_low && saw_high, "full jitter covers its range");
        assert_eq!(full.delay_ms(3, 0, 0), 0);
        assert_eq!(full.delay_ms(3, 0, u64::MAX), 80);
    }

    #[test]
    fn decorrelated_without_history_has_documented_bounds() {
        let p = policy(Backoff::DecorrelatedJitter, 10, 1000);
        assert_eq!(p.delay_without_history_ms(0, 0), 10);
        assert_eq!(p.delay_without_history_ms(0, u64::MAX), 30);
        assert_eq!(p.delay_without_history_ms(1, u64::MAX), 90);
        assert_eq!(p.delay_without_history_ms(9, u64::MAX), 1000);
    }

    #[test]
    fn defaults_and_precedence() {
        let default = RetrySettings::default().resolve();
        assert_eq!(default.policy, RetryPolicy::DEFAULT);
        for s in Status::ALL {
            assert_eq!(default.retries(s), s.is_retryable(), "{s:?}");
        }

        let on_timeout = RetrySettings {
            on_timeout: true,
            ..Default::default()
        }
        .resolve();
        assert_eq!(on_timeout.policy, RetryPolicy::ONCE);
        assert!(on_timeout.retries(Status::Timeout));
        assert!(!on_timeout.retries(Status::Connection));

        let on_errors = RetrySettings {
            on_errors: Some(vec![Status::Server, Status::Connection]),
            policy: Some(RetryPolicy {
                retries: 7,
                ..RetryPolicy::DEFAULT
            }),
            ..Default::default()
        }
        .resolve();
        assert_eq!(on_errors.policy.retries, 7);
        assert!(on_errors.retries(Status::Server) && on_errors.retries(Status::Connection));
        assert!(!on_errors.retries(Status::Timeout));

        let capped = RetrySettings {
            max_retries: Some(0),
            ..Default::default()
        }
        .resolve();
        assert_eq!(capped.policy.retries, 0);
    }

    #[test]
    fn safe_mode_never_replays_a_sent_write() {
        let rules = RetrySettings::default().resolve();
        let before = Error::new(Status::Connection, "refused");
        let after = Error::new(Status::Timeout, "read timed out").sent(true);
        let write = CommandNature::default();
        let read = CommandNature {
            read_only: true,
            ..Default::default()
        };
        let blocking = CommandNature {
            blocking: true,
            ..Default::default()
        };
        assert_eq!(rules.verdict(&before, 0, write), Verdict::Retry);
        assert_eq!(rules.verdict(&after, 0, write), Verdict::MayHaveBeenApplied);
        assert_eq!(rules.verdict(&after, 0, read), Verdict::Retry);
        assert_eq!(rules.verdict(&after, 3, read), Verdict::Exhausted);
        assert_eq!(rules.verdict(&after, 0, blocking), Verdict::BlockingSent);
        let server = Error::from_reply(b"WRONGTYPE x");
        assert_eq!(rules.verdict(&server, 0, read), Verdict::NotRetryable);
        // A refusal proves the write did not run: retried, blocking or not.
        let loading = Error::from_reply(b"LOADING Redis is loading the dataset in memory");
        assert_eq!(rules.verdict(&loading, 0, write), Verdict::Retry);
        assert_eq!(rules.verdict(&loading, 0, blocking), Verdict::Retry);
        assert_eq!(rules.verdict(&loading, 3, write), Verdict::Exhausted);
        let readonly = Error::from_reply(b"READONLY You can't write against a read only replica.");
        assert_eq!(rules.verdict(&readonly, 0, write), Verdict::Retry);
        let script = CommandNature {
            script: true,
            ..Default::default()
        };
        assert_eq!(
            rules.verdict(&readonly, 0, script),
            Verdict::MayHaveBeenApplied,
            "a script may have written before its READONLY"
        );

        let always = RetrySettings {
            writes: RetryWrites::Always,
            ..Default::default()
        }
        .resolve();
        assert_eq!(always.verdict(&after, 0, write), Verdict::Retry);
        assert_eq!(always.verdict(&after, 0, blocking), Verdict::BlockingSent);
    }
}
