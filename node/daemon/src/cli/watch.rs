//! `lf watch`, `lf history`, `lf restore`: the CLI over `/watch`, `/history` and
//! `/restore`. A target is a path on a mount of the node (anything with a `/`, or an
//! existing file) or a selector `NAME[#ORD[#END]]`.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cli::args::{HistoryArgs, RestoreArgs, WatchArgs};
use crate::cli::client::ClientConfig;
use crate::cli::{SelectorArg, api, parse_selector};
use crate::common::api_json as json;

/// What a command names.
enum Target {
    Path(String),
    Selector(SelectorArg),
}

fn target(s: &str, allow_range: bool) -> anyhow::Result<Target> {
    if s.contains('/') || s.starts_with('.') || Path::new(s).exists() {
        let abs = std::path::absolute(s).with_context(|| format!("{s}: not a usable path"))?;
        return Ok(Target::Path(abs.display().to_string()));
    }
    Ok(Target::Selector(parse_selector(s, allow_range)?))
}

fn name_of(s: &SelectorArg) -> String {
    String::from_utf8_lossy(&s.name).into_owned()
}

/// Seconds to wait after the node could not be reached, before trying again.
const RETRY: Duration = Duration::from_secs(1);

/// `lf watch`.
pub fn watch(home: &Path, url: Option<&str>, json_out: bool, a: &WatchArgs) -> anyhow::Result<()> {
    let config = ClientConfig::load(home)?;
    let api = api(home, url, &config);
    let mut req = json::WatchRequest {
        tree: Some(!a.no_tree),
        cursor: a.cursor,
        masking_key: a.mask.clone(),
        ..Default::default()
    };
    match target(&a.target, true)? {
        Target::Path(p) => req.paths = vec![p],
        Target::Selector(s) => {
            req.selectors = vec![json::NamedSelector {
                name: name_of(&s),
                range: vec![s.first, s.last],
            }];
            req.oracles = config.oracles.clone();
        }
    }
    let exec = !a.command.is_empty();
    let mut out = std::io::stdout().lock();
    let mut unreachable = false;
    // Exec mode: what changed in the burst so far.
    let mut burst: Vec<String> = Vec::new();
    loop {
        req.wait = Some(if exec && !burst.is_empty() {
            a.debounce as f64 / 1000.0
        } else {
            30.0
        });
        let body = serde_json::to_value(&req)?;
        let answer: json::WatchAnswer = match api.post_json("/watch", &body) {
            Ok(a) => a,
            // The node restarting: keep the cursor and try again; refusals end here.
            Err(e) if e.to_string().contains("cannot reach node") => {
                if !unreachable {
                    eprintln!("lf watch: {e:#}; retrying");
                    unreachable = true;
                }
                std::thread::sleep(RETRY);
                continue;
            }
            Err(e) => return Err(e),
        };
        if unreachable {
            eprintln!("lf watch: reconnected");
            unreachable = false;
        }
        req.cursor = Some(answer.cursor);
        if exec {
            if answer.events.is_empty() && !burst.is_empty() {
                run_command(&a.command, &std::mem::take(&mut burst), answer.cursor, a)?;
                continue;
            }
            for e in &answer.events {
                let what = what(e);
                if !burst.contains(&what) {
                    burst.push(what);
                }
            }
            continue;
        }
        for e in &answer.events {
            if json_out {
                writeln!(out, "{}", serde_json::to_string(e)?)?;
            } else {
                writeln!(out, "{}", line(e))?;
            }
        }
        out.flush()?;
        if a.once && !answer.events.is_empty() {
            return Ok(());
        }
    }
}

/// The path or `selector#ordinal` of an event.
fn what(e: &json::WatchEvent) -> String {
    match (&e.path, &e.selector) {
        (Some(p), _) => p.clone(),
        (None, Some(s)) => format!("{s}#{}", e.ordinal.unwrap_or(0)),
        (None, None) => String::new(),
    }
}

/// One event as a line of text.
fn line(e: &json::WatchEvent) -> String {
    format!(
        "{} {} {} {} {} {} bytes{}{}",
        crate::common::clock::format_time(e.timestamp),
        e.kind,
        what(e),
        e.hash,
        e.owner,
        e.size,
        if e.winner { "" } else { " (not the winner)" },
        e.reason
            .as_ref()
            .map_or(String::new(), |r| format!(" ({r})"))
    )
}

/// Runs the exec-mode command once for a burst (never two at once: this waits).
fn run_command(
    cmd: &[String],
    changed: &[String],
    cursor: u64,
    a: &WatchArgs,
) -> anyhow::Result<()> {
    let status = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .env("LF_CHANGED", changed.join("\n"))
        .env("LF_CURSOR", cursor.to_string())
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => {
            eprintln!("lf watch: {} exited with {s}", cmd[0]);
            if a.exit_on_error {
                std::process::exit(s.code().unwrap_or(1));
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("lf watch: cannot run {}: {e}", cmd[0]);
            if a.exit_on_error {
                bail!("cannot run {}: {e}", cmd[0]);
            }
            Ok(())
        }
    }
}

fn history_request(
    config: &ClientConfig,
    t: &str,
    mask: Option<&String>,
    at: Option<&String>,
) -> anyhow::Result<(json::HistoryRequest, Option<SelectorArg>)> {
    let mut req = json::HistoryRequest {
        masking_key: mask.cloned(),
        at: at.cloned(),
        ..Default::default()
    };
    let mut sel = None;
    match target(t, false)? {
        Target::Path(p) => req.path = Some(p),
        Target::Selector(s) => {
            req.selector = Some(json::NamedSelector {
                name: name_of(&s),
                range: vec![s.first],
            });
            req.oracles = config.oracles.clone();
            sel = Some(s);
        }
    }
    Ok((req, sel))
}

/// `lf history`.
pub fn history(
    home: &Path,
    url: Option<&str>,
    json_out: bool,
    a: &HistoryArgs,
) -> anyhow::Result<()> {
    let config = ClientConfig::load(home)?;
    let api = api(home, url, &config);
    let (req, _) = history_request(&config, &a.target, a.mask.as_ref(), a.at.as_ref())?;
    let body = serde_json::to_value(&req)?;
    let mut out = std::io::stdout().lock();
    if a.at.is_some() {
        out.write_all(&api.post_json_raw("/history", &body)?)?;
        return Ok(out.flush()?);
    }
    let versions: Vec<json::HistoryVersion> = api.post_json("/history", &body)?;
    if json_out {
        writeln!(out, "{}", serde_json::to_string_pretty(&versions)?)?;
        return Ok(());
    }
    if versions.is_empty() {
        writeln!(out, "no versions of {} on this node", a.target)?;
    }
    // History shows stored records; a mount's changes still paying their proof of work
    // are not among them yet, which would look like a lost write.
    if let Ok(status) = api.get::<json::Status>("/status")
        && status.pending_commits > 0
    {
        writeln!(
            out,
            "({} local change(s) of the mounts are still waiting to be published and are not \
             listed yet: see `lf status`)",
            status.pending_commits
        )?;
    }
    for v in &versions {
        writeln!(
            out,
            "{} {} {} {:>9} {} {}\n    {}",
            if v.winner { "*" } else { " " },
            crate::common::clock::format_time(v.timestamp),
            v.owner,
            format!("{} B", v.size),
            v.kind,
            v.hash,
            v.why
        )?;
    }
    Ok(())
}

/// `lf restore`.
pub fn restore(
    home: &Path,
    url: Option<&str>,
    json_out: bool,
    a: &RestoreArgs,
) -> anyhow::Result<()> {
    let config = ClientConfig::load(home)?;
    let api = api(home, url, &config);
    let (req, sel) = history_request(&config, &a.target, a.mask.as_ref(), Some(&a.at))?;
    let body = serde_json::to_value(&req)?;
    match sel {
        None => {
            let v: json::HistoryVersion = api.post_json("/restore", &body)?;
            if json_out {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "restored {} to version {} of {} ({} bytes)",
                    req.path.unwrap_or_default(),
                    v.hash,
                    crate::common::clock::format_time(v.timestamp),
                    v.size
                );
            }
            Ok(())
        }
        Some(s) => {
            let content = api.post_json_raw("/history", &body)?;
            crate::cli::set_value(
                home,
                url,
                json_out,
                std::slice::from_ref(&s),
                content,
                a.owner.as_deref(),
                a.mask.as_deref(),
            )
        }
    }
}
