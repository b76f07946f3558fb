//! Per-repeat figures, medians and the Markdown table, as bench.c prints them.

use std::time::Instant;

/// CPU time (user + system) of this process, all threads, in seconds.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// What one measurement gives: operations per second and client CPU per operation (us).
#[derive(Clone, Copy)]
pub struct Figures {
    pub rate: f64,
    pub cpu_us: f64,
}

impl Figures {
    /// From `ops` operations that took the wall time since `start` and the CPU since `cpu0`.
    pub fn since(ops: u64, start: Instant, cpu0: f64) -> Figures {
        let elapsed = start.elapsed().as_secs_f64();
        Figures {
            rate: ops as f64 / elapsed,
            cpu_us: (cpu_seconds() - cpu0) * 1e6 / ops as f64,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Rate,
    Micros,
}

pub struct Row {
    name: String,
    unit: Unit,
    brisk: Vec<f64>,
    peer: Vec<f64>,
}

pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn format(v: f64, unit: Unit) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    match unit {
        Unit::Rate if v >= 1e6 => format!("{:.2}M/s", v / 1e6),
        Unit::Rate if v >= 1e3 => format!("{:.1}k/s", v / 1e3),
        Unit::Rate => format!("{v:.0}/s"),
        Unit::Micros if v < 10.0 => format!("{v:.2} us"),
        Unit::Micros => format!("{v:.1} us"),
    }
}

#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    /// A new row; returns its index.
    pub fn row(&mut self, name: &str, unit: Unit) -> usize {
        self.rows.push(Row {
            name: name.into(),
            unit,
            brisk: Vec::new(),
            peer: Vec::new(),
        });
        self.rows.len() - 1
    }

    /// One repeat's figures of a row, also shown as progress on stderr.
    pub fn add(&mut self, row: usize, repeat: usize, brisk: f64, peer: f64) {
        let r = &mut self.rows[row];
        r.brisk.push(brisk);
        r.peer.push(peer);
        eprintln!(
            "  {:<44} #{}  brisk {:<10} redis-rs {}",
            r.name,
            repeat + 1,
            format(brisk, r.unit),
            format(peer, r.unit)
        );
    }

    pub fn print(&self) {
        println!("| workload | brisk (Rust API) | redis-rs | brisk/redis-rs |");
        println!("|---|---:|---:|---:|");
        for r in &self.rows {
            let ratios: Vec<f64> = r.brisk.iter().zip(&r.peer).map(|(b, p)| b / p).collect();
            let ratio = median(&ratios);
            let ratio = if ratio.is_finite() {
                format!("{ratio:.2}x")
            } else {
                "-".into()
            };
            println!(
                "| {} | {} | {} | {} |",
                r.name,
                format(median(&r.brisk), r.unit),
                format(median(&r.peer), r.unit),
                ratio
            );
        }
    }
}
