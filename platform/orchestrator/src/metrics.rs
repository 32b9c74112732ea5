//! Prometheus metrics, rendered in the text exposition format. Gauges that describe shared
//! state (workflows by state, stream backlogs, agents) are read at scrape time.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use platform_core::Stage;

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    /// Sum in microseconds (atomics have no f64 add).
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct Metrics {
    pub dispatched: Counter,
    pub results_ok: Counter,
    pub results_failed: Counter,
    pub results_ignored: Counter,
    pub stage_durations: [Histogram; 5],
}

impl Metrics {
    pub fn observe_stage(&self, stage: Stage, secs: f64) {
        let i = Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0);
        self.stage_durations[i].observe(secs);
    }

    pub fn render_local(&self, out: &mut String) {
        let c = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        c(
            out,
            "platform_tasks_dispatched_total",
            "Task envelopes published to the bus.",
            self.dispatched.get(),
        );
        let _ = writeln!(
            out,
            "# HELP platform_results_total Results consumed, by what they did.\n# TYPE platform_results_total counter"
        );
        let _ = writeln!(
            out,
            "platform_results_total{{outcome=\"succeeded\"}} {}",
            self.results_ok.get()
        );
        let _ = writeln!(
            out,
            "platform_results_total{{outcome=\"failed\"}} {}",
            self.results_failed.get()
        );
        let _ = writeln!(
            out,
            "platform_results_total{{outcome=\"ignored\"}} {}",
            self.results_ignored.get()
        );
        let name = "platform_stage_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Stage work time reported by agents.\n# TYPE {name} histogram"
        );
        for (stage, h) in Stage::ALL.iter().zip(&self.stage_durations) {
            for (b, n) in BUCKETS.iter().zip(&h.buckets) {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{stage=\"{stage}\",le=\"{b}\"}} {}",
                    n.load(Ordering::Relaxed)
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{stage=\"{stage}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "{name}_sum{{stage=\"{stage}\"}} {}",
                h.sum_us.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(out, "{name}_count{{stage=\"{stage}\"}} {count}");
        }
    }
}
