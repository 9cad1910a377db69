//! Prometheus metrics (`/metrics`, text format 0.0.4) and structured access logs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    /// (route, method, status) → count.
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    uploads_completed: AtomicU64,
    connections_open: AtomicU64,
    refused_global: AtomicU64,
    refused_per_ip: AtomicU64,
    timeouts_header: AtomicU64,
    timeouts_idle: AtomicU64,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Global,
    PerIp,
}

/// Which timeout closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    Header,
    Idle,
}

impl Metrics {
    pub fn record(&self, route: &'static str, method: &str, status: u16, elapsed: Duration, sent: u64) {
        *self
            .requests
            .lock()
            .expect("metrics")
            .entry((route, method.to_string(), status))
            .or_default() += 1;
        let secs = elapsed.as_secs_f64();
        let mut l = self.latency.lock().expect("metrics");
        let h = l.entry(route).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
        self.bytes_sent.fetch_add(sent, Ordering::Relaxed);
    }

    pub fn received(&self, n: u64) {
        self.bytes_received.fetch_add(n, Ordering::Relaxed);
    }

    pub fn upload_completed(&self) {
        self.uploads_completed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn connection_refused(&self, why: Refusal) {
        match why {
            Refusal::Global => &self.refused_global,
            Refusal::PerIp => &self.refused_per_ip,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_timed_out(&self, which: Timeout) {
        match which {
            Timeout::Header => &self.timeouts_header,
            Timeout::Idle => &self.timeouts_idle,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP registry_http_requests_total HTTP requests by route, method and status.\n");
        out.push_str("# TYPE registry_http_requests_total counter\n");
        for ((route, method, status), n) in self.requests.lock().expect("metrics").iter() {
            let _ = writeln!(
                out,
                "registry_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP registry_http_request_duration_seconds Request latency by route.\n");
        out.push_str("# TYPE registry_http_request_duration_seconds histogram\n");
        for (route, h) in self.latency.lock().expect("metrics").iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "registry_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "registry_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "registry_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "registry_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        for (name, help, v) in [
            (
                "registry_http_received_bytes_total",
                "Request body bytes received for blobs.",
                &self.bytes_received,
            ),
            (
                "registry_http_sent_bytes_total",
                "Response body bytes sent (by Content-Length).",
                &self.bytes_sent,
            ),
            (
                "registry_uploads_completed_total",
                "Blob uploads completed.",
                &self.uploads_completed,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP registry_connections_open Client connections open.\n# TYPE registry_connections_open gauge\nregistry_connections_open {}",
            load(&self.connections_open)
        );
        let _ = writeln!(
            out,
            "# HELP registry_connections_refused_total Connections refused by the global or per-address cap.\n# TYPE registry_connections_refused_total counter\nregistry_connections_refused_total{{reason=\"global\"}} {}\nregistry_connections_refused_total{{reason=\"per_ip\"}} {}",
            load(&self.refused_global),
            load(&self.refused_per_ip)
        );
        let _ = writeln!(
            out,
            "# HELP registry_connections_timed_out_total Connections closed by the header or idle timeout.\n# TYPE registry_connections_timed_out_total counter\nregistry_connections_timed_out_total{{kind=\"header\"}} {}\nregistry_connections_timed_out_total{{kind=\"idle\"}} {}",
            load(&self.timeouts_header),
            load(&self.timeouts_idle)
        );
        out
    }
}

/// One access-log line as JSON, on stderr.
#[allow(clippy::too_many_arguments)]
pub fn access_log(
    remote: &str,
    user: Option<&str>,
    method: &str,
    path: &str,
    status: u16,
    sent: u64,
    elapsed: Duration,
    user_agent: &str,
) {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let line = serde_json::json!({
        "ts": (ts * 1000.0).round() / 1000.0,
        "remote": remote,
        "user": user,
        "method": method,
        "path": path,
        "status": status,
        "bytes": sent,
        "ms": (elapsed.as_secs_f64() * 1e6).round() / 1e3,
        "agent": user_agent,
    });
    eprintln!("{line}");
}
