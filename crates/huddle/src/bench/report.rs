//! What the bench reports: latency summaries (hdrhistogram, microseconds), error tallies,
//! the server's resident memory, and the two renderings (human text, one JSON object).

use std::collections::HashMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Most distinct error texts kept; the rest are counted under one "other" entry.
const MAX_DISTINCT_ERRORS: usize = 20;

/// A latency histogram in microseconds, 1 µs .. 10 min, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds are valid")
}

/// Records a duration, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    record_us(h, u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
}

pub fn record_us(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.max(1));
}

/// The figures of one latency distribution, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency {
                count: 0,
                p50_us: 0,
                p90_us: 0,
                p99_us: 0,
                p999_us: 0,
                max_us: 0,
                mean_us: 0.0,
            };
        }
        Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: (h.mean() * 10.0).round() / 10.0,
        }
    }

    /// `p50 0.412 ms  p90 ...  p99 ...  max ...`
    pub fn human(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            ms(self.p50_us),
            ms(self.p90_us),
            ms(self.p99_us),
            ms(self.p999_us),
            ms(self.max_us)
        )
    }
}

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

/// Errors counted by text (`<kind>: <message>`), so the report shows what the server said.
#[derive(Debug, Default, Clone)]
pub struct ErrorTally {
    counts: HashMap<String, u64>,
}

impl ErrorTally {
    pub fn add_text(&mut self, text: String) {
        if self.counts.len() >= MAX_DISTINCT_ERRORS && !self.counts.contains_key(&text) {
            *self.counts.entry("(other errors)".into()).or_default() += 1;
        } else {
            *self.counts.entry(text).or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: ErrorTally) {
        for (text, n) in other.counts {
            if self.counts.len() >= MAX_DISTINCT_ERRORS && !self.counts.contains_key(&text) {
                *self.counts.entry("(other errors)".into()).or_default() += n;
            } else {
                *self.counts.entry(text).or_default() += n;
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Most frequent first.
    pub fn entries(&self) -> Vec<ErrorCount> {
        let mut v: Vec<ErrorCount> = self
            .counts
            .iter()
            .map(|(t, n)| ErrorCount {
                error: t.clone(),
                count: *n,
            })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.error.cmp(&b.error)));
        v
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorCount {
    pub error: String,
    pub count: u64,
}

/// A process's memory, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Memory {
    /// Resident now (VmRSS), KiB.
    pub rss_kib: u64,
    /// Peak resident (VmHWM), KiB.
    pub peak_rss_kib: u64,
}

impl Memory {
    /// `None` when the process is gone or /proc is not there.
    pub fn of_pid(pid: u32) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        };
        Some(Memory {
            rss_kib: field("VmRSS:")?,
            peak_rss_kib: field("VmHWM:")?,
        })
    }

    pub fn human(&self) -> String {
        format!(
            "{:.1} MiB resident (peak {:.1} MiB)",
            self.rss_kib as f64 / 1024.0,
            self.peak_rss_kib as f64 / 1024.0
        )
    }
}

/// Prints `report` as one JSON object on stdout.
pub fn print_json<T: Serialize>(report: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(report)?);
    Ok(())
}

/// Rounds a rate for display and JSON (one decimal).
pub fn rate(count: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    (count as f64 / secs * 10.0).round() / 10.0
}
