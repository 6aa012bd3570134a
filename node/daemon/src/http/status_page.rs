//! The status page at `GET /` of the HTTP API: the same data as `/status` and
//! `lf status`, rendered on the server as one self-contained HTML page (inline CSS, no
//! script, no external assets) that reloads itself every few seconds.

use std::fmt::Write;

use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::common::api_json::Status;

/// Seconds between reloads.
const REFRESH_SECONDS: u32 = 5;

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The answer to `GET /` for a status (the route is in `api.rs`).
pub fn response(s: &Status) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        render(s),
    )
        .into_response()
}

fn row(out: &mut String, id: &str, label: &str, value: &str) {
    let _ = writeln!(
        out,
        "<tr><th>{}</th><td id=\"{}\">{}</td></tr>",
        esc(label),
        esc(id),
        esc(value)
    );
}

/// The page for a status.
pub fn render(s: &Status) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>LF node: {}</title>\n<style>\
         body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}}\
         h1{{font-size:1.4em}} h2{{font-size:1.1em;margin-top:1.5em}}\
         table{{border-collapse:collapse}} th,td{{text-align:left;padding:.2em .8em;\
         border-bottom:1px solid #ddd;vertical-align:top}} th{{font-weight:600}}\
         td{{font-family:ui-monospace,monospace;word-break:break-all}}\
         .ok{{color:#070}} .warn{{color:#a50}}\
         </style></head><body>\n<h1>LF node on <span id=\"network\">{}</span></h1>\n",
        esc(&s.network.name),
        esc(&s.network.name)
    );
    o.push_str("<h2>Node</h2><table>\n");
    row(
        &mut o,
        "network-id",
        "network ID",
        &s.network.id.to_string(),
    );
    let n = &s.network;
    row(
        &mut o,
        "config",
        "configuration",
        &format!(
            "difficulty {}, values up to {} bytes, {} links, drift {} s{}, {} amendments",
            n.work_difficulty,
            n.record_max_value_size,
            n.record_min_links,
            n.record_max_time_drift,
            if n.auth_required {
                ", certificates required"
            } else {
                ""
            },
            s.config_amendments
        ),
    );
    row(&mut o, "identity", "identity", &s.identity);
    row(
        &mut o,
        "version",
        "version",
        &format!("{} (API {})", s.version, s.api_version),
    );
    row(&mut o, "uptime", "uptime", &format!("{} s", s.uptime));
    row(
        &mut o,
        "ports",
        "ports",
        &format!("HTTP {} (127.0.0.1), P2P {}", s.http_port, s.p2p_port),
    );
    o.push_str("</table>\n<h2>Records</h2><table>\n");
    row(&mut o, "records", "records", &s.record_count.to_string());
    row(
        &mut o,
        "synchronized-count",
        "synchronized",
        &s.synchronized_count.to_string(),
    );
    row(&mut o, "wanted", "wanted", &s.wanted_count.to_string());
    row(&mut o, "data-size", "bytes", &s.data_size.to_string());
    let _ = writeln!(
        o,
        "<tr><th>sync state</th><td id=\"sync\" class=\"{}\">{}</td></tr>",
        if s.fully_synchronized { "ok" } else { "warn" },
        if s.fully_synchronized {
            "fully synchronized"
        } else {
            "synchronizing"
        }
    );
    o.push_str("</table>\n<h2>Peers</h2><table>\n");
    row(&mut o, "p2p-identity", "P2P identity", &s.p2p_identity);
    row(
        &mut o,
        "peer-count",
        "connected",
        &s.peers.len().to_string(),
    );
    for p in &s.peers {
        let dir = if p.inbound { "in" } else { "out" };
        let score = if p.score < 0 {
            format!(", score {}", p.score)
        } else {
            String::new()
        };
        row(
            &mut o,
            "peer",
            &p.peer_id,
            &format!("{dir} {}{score}", p.address),
        );
    }
    o.push_str("</table>\n<h2>LFFS</h2><table>\n");
    let up = s.mounts.iter().filter(|m| m.error.is_none()).count();
    row(&mut o, "mount-count", "mounts up", &up.to_string());
    for m in &s.mounts {
        let mode = if m.read_only {
            "read-only"
        } else {
            "read-write"
        };
        match &m.error {
            None => row(
                &mut o,
                "mount",
                &m.path,
                &format!(
                    "mounted: {} ({mode}), owner {}{}",
                    m.root,
                    m.owner,
                    m.writes_refused
                        .as_ref()
                        .map(|w| format!("; writes refused: {w}"))
                        .unwrap_or_default()
                ),
            ),
            Some(e) => row(
                &mut o,
                "mount-failed",
                &m.path,
                &format!("FAILED: {} ({e})", m.root),
            ),
        }
    }
    if let Some(e) = &s.mounts_file_error {
        row(
            &mut o,
            "mounts-file-error",
            "mounts.yaml",
            &format!("edit refused, running mounts kept: {e}"),
        );
    }
    row(
        &mut o,
        "pending",
        "pending commits",
        &format!(
            "{} records in {} batches (oldest {} s), {:.1} of {} MiB",
            s.pending_commits,
            s.pending_batches,
            s.oldest_pending_seconds,
            s.pending_bytes as f64 / 1048576.0,
            s.pending_max_bytes >> 20
        ),
    );
    if let Some(p) = &s.proof_of_work {
        row(
            &mut o,
            "pow",
            "proof of work",
            &format!(
                "{}: {:.0}% of the expected work, {:.1} s",
                p.name,
                p.percent(),
                p.elapsed_seconds
            ),
        );
    }
    o.push_str("</table>\n<h2>Collisions</h2><table>\n");
    row(
        &mut o,
        "collision-count",
        "open",
        &s.collisions.open.to_string(),
    );
    for c in &s.collisions.listed {
        let scope = if c.same_everywhere {
            "the same on every node"
        } else {
            "this node only"
        };
        let others: Vec<&str> = c.owners.iter().skip(1).map(|o| o.owner.as_str()).collect();
        row(
            &mut o,
            "collision",
            c.path.as_deref().unwrap_or(&c.selector_key),
            &format!(
                "{} wins here ({}, {scope}); also {}",
                c.winner,
                c.reason,
                others.join(", ")
            ),
        );
    }
    let _ = write!(
        o,
        "</table>\n<p><small>Reloads every {REFRESH_SECONDS} s. Also: \
         <a href=\"/status\">/status</a> (JSON), <a href=\"/metrics\">/metrics</a> \
         (Prometheus).</small></p>\n</body></html>\n"
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
