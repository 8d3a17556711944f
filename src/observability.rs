//! Metrics in Prometheus format. Counters and histograms are recorded where things happen
//! (HTTP requests, charges, terminal events, callbacks, database commits); gauges that describe
//! the present (payments by state, outbox age, terminals) are read from the source at scrape
//! time, so they can never drift.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once); later calls return the same handle.
pub fn install() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            PrometheusBuilder::new()
                .set_buckets(&buckets)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
        })
        .as_ref()
}

/// Renders everything recorded so far.
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}

/// Tower middleware: requests by route template and status, with latency.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("posbridge_http_requests_total", "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("posbridge_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

pub fn charge_started(terminal: &str) {
    metrics::counter!("posbridge_charges_started_total", "terminal" => terminal.to_string())
        .increment(1);
}

pub fn terminal_event(terminal: &str) {
    metrics::counter!("posbridge_terminal_events_total", "terminal" => terminal.to_string())
        .increment(1);
}

/// A lane could not store what the terminal said and retries (disk full, I/O error).
pub fn commit_retry(terminal: &str) {
    metrics::counter!("posbridge_commit_retries_total", "terminal" => terminal.to_string())
        .increment(1);
}

pub fn payment_result(state: &str) {
    metrics::counter!("posbridge_payment_results_total", "state" => state.to_string()).increment(1);
}

/// One callback attempt: `delivered`, `retry` or `given_up`.
pub fn callback_attempt(outcome: &'static str) {
    metrics::counter!("posbridge_callback_attempts_total", "outcome" => outcome).increment(1);
}

pub fn database_commit(seconds: f64, transactions: usize) {
    metrics::histogram!("posbridge_db_commit_duration_seconds").record(seconds);
    #[allow(clippy::cast_precision_loss)]
    metrics::histogram!("posbridge_db_commits_per_fsync").record(transactions as f64);
}

/// Sets a gauge read at scrape time.
pub fn gauge(name: &'static str, labels: &[(&'static str, String)], value: f64) {
    let labels: Vec<metrics::Label> = labels
        .iter()
        .map(|(k, v)| metrics::Label::new(*k, v.clone()))
        .collect();
    metrics::gauge!(name, labels).set(value);
}
