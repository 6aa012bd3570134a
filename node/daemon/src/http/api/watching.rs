//! `/watch`, `/history` and `/restore` over the watch hub (`watch.rs`). Selector
//! requests need no token, like `/query`; requests naming mount paths do (they read a
//! mount's entries with its masking key, and `/restore` writes through the mount).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{
    ApiResult, AppState, Failure, authorized, bad, blocking, internal, parse_json, parse_owner,
};
use crate::common::api_json as json;
use crate::watch::{WatchError, WatchHub, history};

/// Most selectors, and most paths, one watch names.
const MAX_TARGETS: usize = 64;
/// Longest long-poll wait, seconds.
const MAX_WAIT: f64 = 300.0;
/// Seconds between heartbeat lines (`{"Cursor": n}`) of a stream: they keep the
/// connection under the idle deadline and tell the client where it is.
const HEARTBEAT: Duration = Duration::from_secs(20);

fn failure(e: WatchError) -> Failure {
    match e {
        WatchError::Busy(_) => Failure(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        WatchError::CursorAhead { .. } => Failure(StatusCode::GONE, e.to_string()),
        WatchError::Bad(m) => bad(m),
        WatchError::Stopping => Failure(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        WatchError::Store(e) => internal(e),
    }
}

fn hub(state: &AppState) -> ApiResult<Arc<WatchHub>> {
    state.watch.clone().ok_or_else(|| {
        Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "watching is not running".into(),
        )
    })
}

fn ordinals(name: &str, range: &[u64]) -> ApiResult<(u64, u64)> {
    match range {
        [] => Ok((0, 0)),
        [v] => Ok((*v, *v)),
        [a, b] if a <= b => Ok((*a, *b)),
        [_, _] => Err(bad(format!(
            "selector {name:?}: Range starts after it ends"
        ))),
        _ => Err(bad(format!(
            "selector {name:?}: Range must hold 0, 1 or 2 ordinals"
        ))),
    }
}

fn oracles_of(given: &[String]) -> ApiResult<Vec<lf_record::Owner>> {
    if given.len() > MAX_TARGETS {
        return Err(bad(format!(
            "Oracles may hold at most {MAX_TARGETS} entries"
        )));
    }
    given.iter().map(|o| parse_owner(o)).collect()
}

/// One JSON line.
fn line<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    b
}

/// `POST /watch`.
pub async fn watch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let req: json::WatchRequest = parse_json(&body)?;
    if !req.paths.is_empty() {
        authorized(&state.node, &headers)?;
    }
    if req.selectors.is_empty() && req.paths.is_empty() {
        return Err(bad("name something to watch: Selectors or Paths"));
    }
    if req.selectors.len() > MAX_TARGETS || req.paths.len() > MAX_TARGETS {
        return Err(bad(format!(
            "Selectors and Paths may hold at most {MAX_TARGETS} entries each"
        )));
    }
    let wait = match req.wait {
        None => Duration::from_secs(30),
        Some(w) if (0.0..=MAX_WAIT).contains(&w) => Duration::from_secs_f64(w),
        Some(w) => {
            return Err(bad(format!(
                "Wait {w} is not between 0 and {MAX_WAIT} seconds"
            )));
        }
    };
    let oracles = oracles_of(&req.oracles)?;
    let selectors = req
        .selectors
        .iter()
        .map(|s| ordinals(&s.name, &s.range).map(|(a, b)| (s.name.clone(), a, b)))
        .collect::<ApiResult<Vec<_>>>()?;
    let hub = hub(&state)?;
    let (h, paths, tree) = (hub.clone(), req.paths.clone(), req.tree.unwrap_or(true));
    let ranges =
        blocking(move || crate::watch::ranges_of(&h, &selectors, &paths, tree).map_err(failure))
            .await?;
    let mask = req.masking_key.map(String::into_bytes);
    let mut watcher = hub
        .open(ranges, req.cursor, oracles, mask)
        .await
        .map_err(failure)?;
    if !req.stream {
        let events = watcher.next(wait).await.map_err(failure)?;
        return Ok(axum::Json(json::WatchAnswer {
            cursor: watcher.cursor(),
            events,
        })
        .into_response());
    }
    // Streaming: a task owns the watcher and writes lines into a one-slot channel; a
    // client that does not read holds the task, and the watcher catches up from the
    // store once it reads again (nothing piles up here).
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        // First line: where the stream starts.
        let first = line(&json::WatchHeartbeat {
            cursor: watcher.cursor(),
        });
        if tx.send(Bytes::from(first)).await.is_err() {
            return;
        }
        loop {
            let next = tokio::select! {
                r = watcher.next(HEARTBEAT) => r,
                () = tx.closed() => return,
            };
            let Ok(events) = next else {
                return;
            };
            let mut out = Vec::new();
            if events.is_empty() {
                out = line(&json::WatchHeartbeat {
                    cursor: watcher.cursor(),
                });
            }
            for e in &events {
                out.extend_from_slice(&line(e));
            }
            if tx.send(Bytes::from(out)).await.is_err() {
                return;
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::new(Lines(rx)),
    )
        .into_response())
}

/// A response body of lines from a channel.
struct Lines(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for Lines {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(http_body::Frame::data(b))))
    }
}

type Versions = Vec<(json::HistoryVersion, lf_record::Record)>;

/// The naming and versions a history request names (blocking).
fn versions_of(
    hub: &WatchHub,
    req: &json::HistoryRequest,
) -> ApiResult<(crate::watch::Range, Versions)> {
    let sel = match &req.selector {
        Some(s) => match ordinals(&s.name, &s.range)? {
            (a, b) if a == b => Some((s.name.as_str(), a)),
            _ => return Err(bad("Selector: history is of one ordinal")),
        },
        None => None,
    };
    let (key, range) = history::resolve(hub, req.path.as_deref(), sel).map_err(failure)?;
    let oracles = oracles_of(&req.oracles)?;
    let mask = req.masking_key.as_ref().map(|m| m.as_bytes().to_vec());
    let versions =
        history::versions(hub, &key, &range, &oracles, mask.as_deref()).map_err(failure)?;
    Ok((range, versions))
}

/// `POST /history`: every version, or one version's content (`At`).
pub async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let req: json::HistoryRequest = parse_json(&body)?;
    if req.path.is_some() {
        authorized(&state.node, &headers)?;
    }
    let hub = hub(&state)?;
    blocking(move || {
        let (range, versions) = versions_of(&hub, &req)?;
        let Some(at) = &req.at else {
            let list: Vec<json::HistoryVersion> = versions.into_iter().map(|(v, _)| v).collect();
            return Ok(axum::Json(list).into_response());
        };
        let (v, r) = history::pick(&versions, at).map_err(failure)?;
        let mask = req.masking_key.as_ref().map(|m| m.as_bytes().to_vec());
        let content = history::content(&range, r, mask.as_deref()).map_err(failure)?;
        Ok((
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (
                    header::HeaderName::from_static("x-lf-version"),
                    v.hash.clone(),
                ),
            ],
            content,
        )
            .into_response())
    })
    .await
}

/// `POST /restore` (paths; privileged): writes a version's content back to the file
/// through the mount, so it becomes a new version by the mount's owner (the LFFS
/// write path: journal, commit queue, proof of work, peers).
pub async fn restore(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    authorized(&state.node, &headers)?;
    let req: json::HistoryRequest = parse_json(&body)?;
    let Some(path) = req.path.clone() else {
        return Err(bad(
            "/restore takes a Path; restore a selector's value with lf restore, which signs \
             it with your owner key",
        ));
    };
    let Some(at) = req.at.clone() else {
        return Err(bad("At names the version to restore (a hash or a time)"));
    };
    let hub = hub(&state)?;
    blocking(move || {
        let (range, versions) = versions_of(&hub, &req)?;
        let (v, r) = history::pick(&versions, &at).map_err(failure)?;
        let content = history::content(&range, r, None).map_err(failure)?;
        // Written from this blocking thread, never from a FUSE callback.
        std::fs::write(&path, &content)
            .map_err(|e| Failure(StatusCode::CONFLICT, format!("cannot write {path}: {e}")))?;
        tracing::info!(%path, version = %v.hash, bytes = content.len(), "restored");
        Ok(axum::Json(v.clone()).into_response())
    })
    .await
}
