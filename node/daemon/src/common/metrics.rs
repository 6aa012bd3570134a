//! Metrics: the global `metrics` recorder (Prometheus text via
//! `metrics-exporter-prometheus`, rendered on demand at `GET /metrics` of the HTTP API),
//! the descriptions of every metric, and the HTTP request middleware. It imports no other
//! module of the daemon: the gauges of the node's state are sampled at scrape time by
//! the HTTP layer (`http/api.rs`), which holds the node.
//! Every name starts with `lf_` and is documented in `node/daemon/METRICS.md`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ::metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram};
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds), shared by every `_seconds` histogram: 50 µs (a cached
/// FUSE getattr) to 10 min (proof of work at a high difficulty).
const BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the global recorder once (later calls return the same handle). `None` if
/// another recorder was installed first (then `/metrics` says so).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .expect("non-empty bucket list")
                .build_recorder();
            let handle = recorder.handle();
            match ::metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!("metrics disabled: {e}");
                    None
                }
            }
        })
        .as_ref()
}

/// Drains histogram samples into their buckets every few seconds so memory stays
/// bounded when nobody scrapes. Runs until the runtime stops.
pub async fn upkeep() {
    let Some(h) = install() else { return };
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        h.run_upkeep();
    }
}

fn describe() {
    describe_gauge!("lf_build_info", "Always 1; the version is a label");
    describe_gauge!(
        "lf_uptime_seconds",
        Unit::Seconds,
        "Seconds since the node started"
    );
    describe_gauge!("lf_records", "Records stored");
    describe_gauge!(
        "lf_records_synchronized",
        "Records whose links are all stored"
    );
    describe_gauge!("lf_records_wanted", "Hashes linked to but not stored yet");
    describe_gauge!("lf_data_bytes", Unit::Bytes, "Bytes of stored records");
    describe_gauge!(
        "lf_fully_synchronized",
        "1 when no linked record is missing, else 0"
    );
    describe_gauge!("lf_peers", "Connected P2P peers");
    describe_gauge!("lf_mounts", "LFFS mounts up");
    describe_gauge!(
        "lf_collisions_open",
        "Selector sets under which records of several owners compete here (capped at 100,000)"
    );
    describe_gauge!(
        "lf_commit_queue_records",
        "LFFS changes durable in the journal, not yet published as records"
    );
    describe_gauge!(
        "lf_commit_queue_bytes",
        Unit::Bytes,
        "Value bytes of those changes (bounded by lf node-start -lffs-queue-mib)"
    );
    describe_gauge!(
        "lf_commit_queue_oldest_age_seconds",
        Unit::Seconds,
        "Age of the oldest unpublished LFFS change"
    );
    describe_counter!(
        "lf_records_added_total",
        "Records added to the store, from every origin (LFFS, clients, the oracle, peers, limbo)"
    );
    describe_gauge!(
        "lf_watchers",
        "Watchers open (/watch long-polls and streams), at most -watch-max"
    );
    describe_counter!(
        "lf_watch_lagged_total",
        "Stretches of new records a slow watcher missed from the broadcast and read from the store"
    );
    describe_counter!(
        "lf_commit_queue_published_total",
        "LFFS journal batches published and marked done in the journal"
    );
    describe_counter!(
        "lf_commit_journal_syncs_total",
        "fdatasyncs of the LFFS journal (concurrent writers share one)"
    );
    describe_histogram!(
        "lf_commit_queue_publish_delay_seconds",
        Unit::Seconds,
        "Time from an LFFS write being acknowledged to its records being in the store"
    );
    describe_histogram!(
        "lf_pow_duration_seconds",
        Unit::Seconds,
        "Proof of work paid by the node (makerecord and LFFS publications)"
    );
    describe_counter!(
        "lf_http_requests_total",
        "HTTP API requests by endpoint and status code"
    );
    describe_histogram!(
        "lf_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP API request latency by endpoint (queries are endpoint=\"/query\")"
    );
    describe_counter!(
        "lf_fuse_errors_total",
        "FUSE requests answered with an error, by operation and errno"
    );
    describe_histogram!(
        "lf_fuse_op_duration_seconds",
        Unit::Seconds,
        "FUSE request latency by operation (its _count is operations by type)"
    );
    describe_counter!("lf_errors_total", "Errors by kind");
}

/// Counts an error of `kind` (`lf_errors_total{kind}`).
pub fn error(kind: &'static str) {
    counter!("lf_errors_total", "kind" => kind).increment(1);
}

/// Renders the Prometheus text (`None` if metrics are disabled). Gauges of the node's
/// state are set by the caller just before (the HTTP layer samples them at scrape).
pub fn render() -> Option<String> {
    Some(install()?.render())
}

/// Axum middleware: counts and times each request by its route (not its raw path, so
/// hashes in URLs do not make new series).
pub async fn track_http(req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    ::metrics::histogram!("lf_http_request_duration_seconds", "endpoint" => endpoint.clone())
        .record(start.elapsed().as_secs_f64());
    counter!("lf_http_requests_total", "endpoint" => endpoint, "code" => status).increment(1);
    resp
}
