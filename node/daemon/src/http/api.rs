//! The HTTP API (secondary interface; JSON shapes in `common/api_json.rs`, reference in
//! `API.md`). Bound to 127.0.0.1. Every error is JSON `{"Code", "Message"}` naming the
//! problem; privileged endpoints need `Authorization: Bearer <authtoken.secret>`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query as UrlQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use lf_record::{Owner, Record, RecordHash, RecordType, SelectorKey, SelectorName};
use lf_store::{KeyRange, PutOutcome, SortOrder};

use crate::common::api_json::{self as json, ApiError};
use crate::lffs_glue::commit_queue::CommitQueue;
use crate::lffs_glue::mount_manager::MountManager;
use crate::node::{AcceptError, Node, now};

mod watching;

/// What the HTTP layer serves from, built at boot (`daemon.rs`): the node, and the
/// layers above it that `/status`, `/metrics`, `/connect` and the status page report on.
#[derive(Clone)]
pub struct AppState {
    /// The node.
    pub node: Arc<Node>,
    /// LFFS, once started.
    pub lffs: Option<Arc<LffsHandles>>,
    /// The P2P node, once started.
    pub p2p: Option<lf_p2p::P2pNode>,
    /// Watching (`/watch`, `/history`, `/restore`).
    pub watch: Option<Arc<crate::watch::WatchHub>>,
    /// The background workers (their states for `/status`).
    pub workers: crate::common::workers::Workers,
}

/// What the status page and metrics need from LFFS.
pub struct LffsHandles {
    /// Commit queue.
    pub queue: Arc<CommitQueue>,
    /// Mount manager.
    pub mounts: Arc<MountManager>,
}

impl axum::extract::FromRef<AppState> for Arc<Node> {
    fn from_ref(state: &AppState) -> Self {
        state.node.clone()
    }
}

/// Largest request body: a record is at most 64 KiB.
const BODY_LIMIT: usize = 128 * 1024;

/// An API error: status and message.
pub struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        // Every refusal is logged once, with its cause (500s are logged at error
        // where they are made, with the failure behind them).
        if self.0.is_client_error() {
            tracing::info!(status = self.0.as_u16(), "api: {}", self.1);
        }
        let body = ApiError {
            code: self.0.as_u16(),
            message: self.1,
        };
        (self.0, axum::Json(body)).into_response()
    }
}

fn bad(msg: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, msg.into())
}

/// A failure of the node's own storage: 507 when the disk is full (the operator must
/// make room; logged at error), else 500.
fn storage(e: anyhow::Error) -> Failure {
    if crate::common::home::is_disk_full(&e) {
        crate::common::metrics::error("disk_full");
        tracing::error!("api: the node's disk is full: {e:#}");
        return Failure(
            StatusCode::INSUFFICIENT_STORAGE,
            format!("the node's disk is full, nothing was stored: {e:#}"),
        );
    }
    internal(e)
}

fn internal(e: impl std::fmt::Display) -> Failure {
    crate::common::metrics::error("api_internal");
    tracing::error!("api: {e:#}");
    Failure(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
}

type ApiResult<T> = Result<T, Failure>;

/// Builds the router; requests naming a `Host` outside `hosts` are refused.
pub fn router(state: AppState, hosts: crate::http::server::AllowedHosts) -> Router {
    Router::new()
        .route("/query", post(query))
        .route("/post", post(post_record))
        .route("/makerecord", post(make_record))
        .route("/status", get(status))
        .route("/connect", post(connect))
        .route("/links", get(links))
        .route("/owner/{owner}", get(owner))
        .route("/record/{hash}", get(record))
        .route("/record/raw/{hash}", get(record_raw))
        .route("/metrics", get(metrics))
        .route("/watch", post(watching::watch))
        .route("/history", post(watching::history))
        .route("/restore", post(watching::restore))
        .route("/", get(status_page))
        .route_layer(axum::middleware::from_fn(
            crate::common::metrics::track_http,
        ))
        .fallback(|| async { Failure(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(hosts),
            check_host,
        ))
        .layer(axum::middleware::map_response(common_headers))
        .with_state(state)
}

/// Refuses a request whose `Host` is not one of ours (a page that rebound its domain to
/// 127.0.0.1 would otherwise read the API with the user's browser).
async fn check_host(
    State(hosts): State<Arc<crate::http::server::AllowedHosts>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or("?"));
    if hosts.allows(host) {
        return next.run(req).await;
    }
    Failure(
        StatusCode::FORBIDDEN,
        format!(
            "Host {:?} is not served here (allowed: 127.0.0.1, localhost, [::1] and \
             -http-allow-host values)",
            host.unwrap_or_default()
        ),
    )
    .into_response()
}

async fn common_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(
        "X-LF-Version",
        HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
    );
    h.insert("X-LF-APIVersion", HeaderValue::from(json::API_VERSION));
    r
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(internal)?
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

fn hex_key(s: &str) -> ApiResult<SelectorKey> {
    let b = hex::decode(s).map_err(|_| bad(format!("KeyRange entry {s:?} is not hex")))?;
    let a: [u8; 32] = b
        .try_into()
        .map_err(|_| bad(format!("KeyRange entry {s:?} is not 32 bytes")))?;
    Ok(SelectorKey(a))
}

fn parse_owner(s: &str) -> ApiResult<Owner> {
    s.parse::<Owner>().map_err(|e| bad(format!("{e}")))
}

/// Most ranges of a query (a record has at most this many selectors).
const MAX_RANGES: usize = lf_record::MAX_SELECTORS;
/// Most owners, and most oracles, a query may name.
const MAX_QUERY_OWNERS: usize = 64;
/// Result sets per answer, at most and by default; more come with a cursor.
const MAX_PAGE_SETS: usize = 1000;
/// Records one page may match before anything is read (400 past it).
const MAX_PAGE_ROWS: usize = 20_000;
/// JSON bytes of one answer, about: past it the page ends early, with a cursor.
const MAX_ANSWER_BYTES: usize = 8 << 20;

/// Converts a JSON query into a store query and the masking key to unmask with.
fn to_store_query(q: json::QueryRequest) -> ApiResult<(lf_store::Query, Option<Vec<u8>>)> {
    if q.ranges.is_empty() {
        return Err(bad("Ranges must hold at least one range"));
    }
    if q.ranges.len() > MAX_RANGES {
        return Err(bad(format!(
            "Ranges holds {} ranges; the limit is {MAX_RANGES} (a record has at most \
             {MAX_RANGES} selectors)",
            q.ranges.len()
        )));
    }
    if q.owners.len() > MAX_QUERY_OWNERS || q.oracles.len() > MAX_QUERY_OWNERS {
        return Err(bad(format!(
            "Owners and Oracles may hold at most {MAX_QUERY_OWNERS} entries each"
        )));
    }
    let page = match q.page_size {
        None => MAX_PAGE_SETS,
        Some(n) if (1..=MAX_PAGE_SETS).contains(&n) => n,
        Some(n) => {
            return Err(bad(format!(
                "PageSize {n} is out of range: 1 to {MAX_PAGE_SETS}"
            )));
        }
    };
    let start_after = match &q.cursor {
        None => None,
        Some(c) => Some(
            hex_key(c).map_err(|_| bad(format!("Cursor {c:?} is not a cursor (64 hex digits)")))?,
        ),
    };
    let mut ranges = Vec::new();
    for (i, r) in q.ranges.iter().enumerate() {
        let (start, end) = if let Some(k) = &r.key_range {
            match k.as_slice() {
                [one] => (hex_key(one)?, hex_key(one)?),
                [a, b] => (hex_key(a)?, hex_key(b)?),
                _ => return Err(bad(format!("Ranges[{i}].KeyRange must hold 1 or 2 keys"))),
            }
        } else if let Some(name) = &r.name {
            let n = SelectorName::new(name.as_bytes());
            let (a, b) = match r.range.as_deref().unwrap_or(&[]) {
                [] => (0, 0),
                [v] => (*v, *v),
                [a, b] => (*a, *b),
                _ => {
                    return Err(bad(format!(
                        "Ranges[{i}].Range must hold 0, 1 or 2 ordinals"
                    )));
                }
            };
            if a > b {
                return Err(bad(format!("Ranges[{i}].Range starts after it ends")));
            }
            n.key_range(a, b)
        } else {
            return Err(bad(format!("Ranges[{i}] needs Name or KeyRange")));
        };
        ranges.push(KeyRange { start, end });
    }
    let time_range = match q.time_range.as_deref() {
        None => None,
        Some([s]) => Some((*s, u64::MAX)),
        Some([s, e]) => Some((*s, *e)),
        Some(_) => return Err(bad("TimeRange must hold 1 or 2 timestamps")),
    };
    let sort = match q.sort_order.as_deref() {
        None | Some("trust") => SortOrder::Trust,
        Some("weight") => SortOrder::Weight,
        Some("timestamp") => SortOrder::Timestamp,
        Some(o) => {
            return Err(bad(format!(
                "SortOrder {o:?} is not trust, weight or timestamp"
            )));
        }
    };
    let owners = q
        .owners
        .iter()
        .map(|o| parse_owner(o))
        .collect::<ApiResult<Vec<_>>>()?;
    let oracles = q
        .oracles
        .iter()
        .map(|o| parse_owner(o))
        .collect::<ApiResult<Vec<_>>>()?;
    let mask = q
        .masking_key
        .map(String::into_bytes)
        .or_else(|| q.ranges[0].name.as_ref().map(|n| n.as_bytes().to_vec()));
    let query = lf_store::Query {
        ranges,
        time_range,
        owners,
        open: q.open,
        sort,
        limit: q.limit,
        oracles,
        certification: None,
        start_after,
        max_keys: Some(page),
        max_rows: Some(MAX_PAGE_ROWS),
    };
    Ok((query, mask))
}

fn result_json(r: &lf_store::QueryResult, mask: Option<&[u8]>) -> json::QueryResult {
    let value = mask.and_then(|k| r.record.value(Some(k)).ok());
    let (text, b64) = match value {
        Some(v) => match String::from_utf8(v) {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(B64.encode(e.as_bytes()))),
        },
        None => (None, None),
    };
    json::QueryResult {
        hash: r.record.hash().to_string(),
        owner: r.record.owner().to_string(),
        timestamp: r.record.timestamp(),
        weight: r.weight,
        trust: r.trust,
        reputation: r.reputation,
        signed: r.signed,
        selector_keys: r
            .record
            .selector_keys()
            .iter()
            .map(|k| hex::encode(k.0))
            .collect(),
        value: text,
        value_base64: b64,
        record: B64.encode(r.record.to_bytes()),
    }
}

async fn query(State(node): State<Arc<Node>>, body: Bytes) -> ApiResult<Response> {
    let (mut q, mask) = to_store_query(parse_json(&body)?)?;
    q.certification = node.certs().query_hook();
    // Unmasking and encoding run on the blocking pool too: they are per record.
    let (body, next) = blocking(move || {
        let page = node.store().query_page(&q).map_err(|e| match e {
            lf_store::StoreError::TooManyRows(_) => bad(format!("{e}")),
            e => internal(e),
        })?;
        page_json(page, mask.as_deref())
    })
    .await?;
    let mut r = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Some(k) = next {
        r.headers_mut().insert(
            "X-LF-Next-Cursor",
            HeaderValue::from_str(&hex::encode(k.0)).expect("hex is a header value"),
        );
    }
    Ok(r)
}

/// The JSON of a page, cut short (at a first-key boundary, so the cursor stays exact)
/// when it would pass [`MAX_ANSWER_BYTES`]; and the cursor of the next page.
fn page_json(
    page: lf_store::QueryPage,
    mask: Option<&[u8]>,
) -> ApiResult<(Vec<u8>, Option<SelectorKey>)> {
    let key0 = |set: &[lf_store::QueryResult]| set[0].record.selector_keys().first().copied();
    let mut encoded: Vec<Vec<u8>> = Vec::new();
    let mut total = 2;
    let mut next = page.next;
    for (i, set) in page.sets.iter().enumerate() {
        let json: Vec<json::QueryResult> = set.iter().map(|r| result_json(r, mask)).collect();
        let bytes = serde_json::to_vec(&json).map_err(internal)?;
        if total + bytes.len() + 1 > MAX_ANSWER_BYTES {
            // Drop the sets sharing this set's first key: the cursor names a key.
            let cut_key = key0(set);
            let mut keep = i;
            while keep > 0 && key0(&page.sets[keep - 1]) == cut_key {
                keep -= 1;
            }
            if keep == 0 {
                return Err(bad(format!(
                    "the result sets of one selector key exceed {} MiB: ask for fewer \
                     entries per set (Limit) or fewer owners",
                    MAX_ANSWER_BYTES >> 20
                )));
            }
            encoded.truncate(keep);
            next = key0(&page.sets[keep - 1]);
            break;
        }
        total += bytes.len() + 1;
        encoded.push(bytes);
    }
    let mut out = Vec::with_capacity(total);
    out.push(b'[');
    for (i, e) in encoded.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e);
    }
    out.push(b']');
    Ok((out, next))
}

fn type_name(t: RecordType) -> &'static str {
    match t {
        RecordType::Genesis => "genesis",
        RecordType::Commentary => "commentary",
        RecordType::Certificate => "certificate",
        RecordType::Crl => "crl",
        _ => "datum",
    }
}

fn record_json(node: &Node, r: &Record) -> ApiResult<json::RecordJson> {
    let info = node.store().info(&r.hash()).map_err(internal)?;
    Ok(json::RecordJson {
        hash: r.hash().to_string(),
        id: r.id().to_string(),
        owner: r.owner().to_string(),
        timestamp: r.timestamp(),
        record_type: type_name(r.record_type()).into(),
        links: r.links().iter().map(|l| l.to_string()).collect(),
        selector_keys: r.selector_keys().iter().map(|k| hex::encode(k.0)).collect(),
        value_size: r.value_size(),
        work_effort: r.work().map_or(0, |w| w.effort),
        size: r.to_bytes().len(),
        reputation: info.as_ref().map(|i| i.reputation),
        weight: info.as_ref().map(|i| i.weight),
        synchronized: info.as_ref().map(|i| i.synced),
    })
}

async fn post_record(
    State(node): State<Arc<Node>>,
    body: Bytes,
) -> ApiResult<axum::Json<json::RecordJson>> {
    blocking(move || {
        let r = Record::from_bytes(&body).map_err(|e| bad(format!("malformed record: {e}")))?;
        match node.accept(&r) {
            Ok(PutOutcome::Added { .. }) => {
                tracing::debug!(hash = %r.hash(), "record accepted");
            }
            Ok(PutOutcome::Duplicate) => {}
            Err(AcceptError::Store(e)) => return Err(storage(e.into())),
            Err(e) => return Err(bad(format!("record rejected: {e}"))),
        }
        Ok(axum::Json(record_json(&node, &r)?))
    })
    .await
}

fn authorized(node: &Node, headers: &HeaderMap) -> ApiResult<()> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Failure(
                StatusCode::UNAUTHORIZED,
                "missing Authorization: Bearer <token>".into(),
            )
        })?;
    // Compare without an early exit so timing does not reveal a matching prefix.
    let (a, b) = (given.as_bytes(), node.token().as_bytes());
    let diff = a
        .iter()
        .zip(b)
        .fold(a.len() ^ b.len(), |d, (x, y)| d | (x ^ y) as usize);
    if diff != 0 {
        return Err(Failure(
            StatusCode::UNAUTHORIZED,
            "wrong authorization token".into(),
        ));
    }
    Ok(())
}

async fn make_record(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<json::RecordJson>> {
    authorized(&node, &headers)?;
    let m: json::MakeRecord = parse_json(&body)?;
    // Argon2 (a passphrase) takes a core for a moment: never on a runtime worker, which
    // HTTP and P2P share.
    let (passphrase, pem, identity) = (
        m.passphrase.clone(),
        m.owner_private.clone(),
        node.identity().clone(),
    );
    let (owner, derived_mask) = blocking(move || match (passphrase, pem) {
        (Some(p), _) => {
            let (o, k) =
                lf_record::OwnerSecret::from_passphrase(&p).map_err(|e| bad(e.to_string()))?;
            Ok((o, Some(k)))
        }
        (None, Some(pem)) => Ok((
            lf_record::OwnerSecret::from_pem(&pem)
                .map_err(|e| bad(format!("OwnerPrivate: {e}")))?,
            None,
        )),
        (None, None) => Ok((identity, None)),
    })
    .await?;
    let mask = m.masking_key.map(String::into_bytes).or(derived_mask);
    let selectors: Vec<(Vec<u8>, u64)> = m
        .selectors
        .iter()
        .map(|s| (s.name.clone().into_bytes(), s.ordinal))
        .collect();
    let ts = m.timestamp.unwrap_or_else(now);
    // Only proof of work needs the slot: a certified owner's record is made at once.
    let slot_owner = node.clone();
    let _slot = if node.certs().status(&owner.public(), ts) == lf_record::CertStatus::Certified {
        None
    } else {
        Some(slot_owner.pow_slot().acquire().await.map_err(internal)?)
    };
    blocking(move || {
        let r = node
            .make_record(&owner, &selectors, m.value.into_bytes(), mask, ts, &|_| {})
            .map_err(|e| {
                if crate::common::home::is_disk_full(&e) {
                    storage(e)
                } else {
                    bad(format!("cannot make record: {e:#}"))
                }
            })?;
        Ok(axum::Json(record_json(&node, &r)?))
    })
    .await
}

async fn status(State(state): State<AppState>) -> ApiResult<axum::Json<json::Status>> {
    let (node, lffs) = (&state.node, state.lffs.as_deref());
    let stats = {
        let n = node.clone();
        blocking(move || n.store().stats().map_err(internal)).await?
    };
    let collisions = {
        let n = node.clone();
        let mounts = lffs.map(|l| l.mounts.clone());
        blocking(move || {
            // Paths come from the mounts' inode tables: store reads, so here too.
            let contested = mounts.map(|m| m.contested()).unwrap_or_default();
            crate::node::collisions::gather(&n, &contested).map_err(internal)
        })
        .await?
    };
    let queue = lffs.map(|l| l.queue.stats()).unwrap_or_default();
    Ok(axum::Json(json::Status {
        software: "LF".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: json::API_VERSION,
        uptime: node.started().elapsed().as_secs(),
        server_time: now(),
        network: (*node.config()).clone(),
        config_amendments: node.amendment_count() as u64,
        genesis_owner: node.genesis_owner().to_string(),
        identity: node.identity().public().to_string(),
        record_count: stats.records,
        synchronized_count: stats.synced,
        wanted_count: stats.wanted,
        data_size: stats.bytes,
        fully_synchronized: stats.wanted == 0,
        http_port: node.http_port(),
        p2p_port: node.p2p_port,
        mounts: lffs
            .map(|l| l.mounts.states().into_iter().map(mount_json).collect())
            .unwrap_or_default(),
        mounts_file_error: lffs.and_then(|l| l.mounts.file_error()),
        pending_commits: queue.records as u64,
        oldest_pending_seconds: queue.oldest_age,
        pending_batches: queue.batches as u64,
        pending_bytes: queue.bytes,
        pending_max_bytes: queue.max_bytes,
        pending_max_records: queue.max_records,
        proof_of_work: queue.pow.map(|p| json::PowStatus {
            name: p.name,
            elapsed_seconds: p.elapsed,
            challenges_tried: p.tried,
            expected_challenges: p.expected,
        }),
        p2p_identity: state
            .p2p
            .as_ref()
            .map(|p| p.peer_id().to_string())
            .unwrap_or_default(),
        peers: match &state.p2p {
            Some(p) => p
                .peers()
                .await
                .into_iter()
                .map(|p| json::Peer {
                    peer_id: p.peer.to_string(),
                    address: p.addr.to_string(),
                    inbound: p.inbound,
                    score: p.score,
                })
                .collect(),
            None => vec![],
        },
        collisions,
        workers: state
            .workers
            .status()
            .into_iter()
            .map(|w| json::WorkerStatus {
                name: w.name,
                state: w.state.as_str().into(),
                seconds: w.seconds,
            })
            .collect(),
    }))
}

fn mount_json(m: crate::lffs_glue::mount_manager::MountState) -> json::MountStatus {
    json::MountStatus {
        path: m.path.display().to_string(),
        root: m.root,
        owner: m.owner,
        state: if m.error.is_some() {
            "failed"
        } else {
            "mounted"
        }
        .into(),
        since: m.since,
        error: m.error,
        writes_refused: m.writes_refused,
        read_only: m.read_only,
        allow_other: m.allow_other,
    }
}

/// `GET /`: the `/status` data as an HTML page (`status_page.rs`).
async fn status_page(state: State<AppState>) -> Response {
    match status(state).await {
        Ok(axum::Json(s)) => crate::http::status_page::response(&s),
        Err(f) => f.into_response(),
    }
}

/// Sets the node-level gauges (sampled at scrape time), before they are rendered.
async fn sample_gauges(state: &AppState) {
    use ::metrics::gauge;
    let n = state.node.clone();
    let c = state.node.clone();
    if let Ok(Ok(open)) =
        tokio::task::spawn_blocking(move || crate::node::collisions::count(&c)).await
    {
        gauge!("lf_collisions_open").set(open as f64);
    }
    if let Ok(Ok(s)) = tokio::task::spawn_blocking(move || n.store().stats()).await {
        gauge!("lf_records").set(s.records as f64);
        gauge!("lf_records_synchronized").set(s.synced as f64);
        gauge!("lf_records_wanted").set(s.wanted as f64);
        gauge!("lf_data_bytes").set(s.bytes as f64);
        gauge!("lf_fully_synchronized").set(if s.wanted == 0 { 1.0 } else { 0.0 });
    }
    gauge!("lf_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    gauge!("lf_uptime_seconds").set(state.node.started().elapsed().as_secs_f64());
    let peers = match &state.p2p {
        Some(p) => p.peers().await.len(),
        None => 0,
    };
    gauge!("lf_peers").set(peers as f64);
    if let Some(l) = &state.lffs {
        let q = l.queue.stats();
        gauge!("lf_commit_queue_records").set(q.records as f64);
        gauge!("lf_commit_queue_bytes").set(q.bytes as f64);
        gauge!("lf_commit_queue_oldest_age_seconds").set(q.oldest_age as f64);
        gauge!("lf_mounts").set(l.mounts.mounted().len() as f64);
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let rendered = match crate::common::metrics::install() {
        Some(_) => {
            sample_gauges(&state).await;
            crate::common::metrics::render()
        }
        None => None,
    };
    match rendered {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are disabled".into(),
        )
        .into_response(),
    }
}

async fn connect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<json::Connected>> {
    authorized(&state.node, &headers)?;
    let c: json::Connect = parse_json(&body)?;
    let addr = crate::replication::parse_peer(&c.address).map_err(|e| bad(format!("{e:#}")))?;
    let p2p = state
        .p2p
        .as_ref()
        .ok_or_else(|| Failure(StatusCode::SERVICE_UNAVAILABLE, "P2P is not running".into()))?;
    let peer = p2p
        .connect(addr)
        .await
        .map_err(|e| Failure(StatusCode::BAD_GATEWAY, format!("cannot connect: {e}")))?;
    Ok(axum::Json(json::Connected {
        peer_id: peer.to_string(),
    }))
}

#[derive(serde::Deserialize)]
struct LinksParams {
    count: Option<String>,
}

async fn links(
    State(node): State<Arc<Node>>,
    UrlQuery(p): UrlQuery<LinksParams>,
) -> ApiResult<axum::Json<json::Links>> {
    let n = match p.count {
        None => node.config().record_min_links as usize,
        Some(c) => c
            .parse::<usize>()
            .map_err(|_| bad(format!("count {c:?} is not a number")))?,
    }
    .clamp(1, lf_record::MAX_LINKS);
    let links = blocking(move || node.store().link_candidates(n).map_err(internal)).await?;
    Ok(axum::Json(json::Links {
        links: links.iter().map(|h| h.to_string()).collect(),
        server_time: now(),
    }))
}

async fn owner(
    State(node): State<Arc<Node>>,
    Path(owner): Path<String>,
) -> ApiResult<axum::Json<json::OwnerStatus>> {
    let o = parse_owner(&owner)?;
    let n = node.clone();
    let (count, bytes, links) = blocking(move || {
        let (c, b) = n.store().owner_stats(&o).map_err(internal)?;
        let l = n
            .store()
            .link_candidates(n.config().record_min_links as usize)
            .map_err(internal)?;
        Ok((c, b, l))
    })
    .await?;
    let standing = node.certs().status(&o, now());
    Ok(axum::Json(json::OwnerStatus {
        owner: o.to_string(),
        owner_type: "p384".into(),
        record_count: count,
        record_bytes: bytes,
        new_record_links: links.iter().map(|h| h.to_string()).collect(),
        server_time: now(),
        work_difficulty: node.config().work_difficulty,
        max_value_size: node.config().record_max_value_size,
        auth_required: node.config().auth_required,
        has_current_certificate: standing == lf_record::CertStatus::Certified,
        certificate_revoked: standing == lf_record::CertStatus::Revoked,
        certificates: node
            .certs()
            .read()
            .certificates(&o)
            .into_iter()
            .map(|(c, revoked_at)| json::OwnerCertificate {
                serial: hex::encode(c.serial()),
                subject: c.subject().to_string(),
                not_before: c.not_before(),
                not_after: c.not_after(),
                revoked_at,
            })
            .collect(),
    }))
}

fn parse_hash(s: &str) -> ApiResult<RecordHash> {
    s.parse::<RecordHash>().map_err(bad)
}

async fn load(node: &Arc<Node>, hash: &str) -> ApiResult<Record> {
    let h = parse_hash(hash)?;
    let n = node.clone();
    blocking(move || n.store().get(&h).map_err(internal))
        .await?
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("record {h} not found")))
}

async fn record(
    State(node): State<Arc<Node>>,
    Path(hash): Path<String>,
) -> ApiResult<axum::Json<json::RecordJson>> {
    let r = load(&node, &hash).await?;
    blocking(move || Ok(axum::Json(record_json(&node, &r)?))).await
}

async fn record_raw(
    State(node): State<Arc<Node>>,
    Path(hash): Path<String>,
) -> ApiResult<Response> {
    let r = load(&node, &hash).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        r.to_bytes().to_vec(),
    )
        .into_response())
}
