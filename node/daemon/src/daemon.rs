//! `lf node-start` from start to shutdown: the home and its lock, logging, the
//! identity, token and network, the store and the [`Node`], then LFFS (commit queue,
//! mounts, the `mounts.yaml` watcher), the oracle, P2P and HTTP over an [`AppState`];
//! on SIGTERM/SIGINT they stop in reverse order (HTTP, unmount, background work and
//! proof of work cancelled, P2P, store flushed on drop) and the process exits 0.
//!
//! The top of the daemon: the one module that imports every layer, and none imports it
//! (ARCHITECTURE.md, "Modules of the daemon").

pub mod sdnotify;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use lf_record::{NetworkConfig, Record, RecordType};
use lf_store::{Store, StoreConfig};

use crate::common::workers::{State, Workers};
use crate::common::{home, network};
use crate::http::api::{AppState, LffsHandles};
use crate::node::{Node, NodeParts};

/// Options of `lf node-start`.
pub struct NodeOptions {
    /// Home directory.
    pub home: PathBuf,
    /// HTTP port on 127.0.0.1.
    pub http_port: u16,
    /// P2P port.
    pub p2p_port: u16,
    /// P2P bind address.
    pub p2p_bind: std::net::IpAddr,
    /// Peers to dial (multiaddrs from `-peer`).
    pub peers: Vec<String>,
    /// Connection limits: (inbound, outbound).
    pub max_connections: (u32, u32),
    /// `-allow-private-peers`: peer exchange may dial private and loopback addresses.
    pub allow_private_peers: bool,
    /// `-mdns` (`Some(true)`), `-no-mdns` (`Some(false)`), or neither.
    pub mdns: Option<bool>,
    /// Oracle mode and its round interval.
    pub oracle: Option<std::time::Duration>,
    /// Bound of the LFFS commit queue (value bytes waiting for publication).
    pub lffs_queue_bytes: u64,
    /// `Host` values the HTTP API answers beside the loopback names.
    pub http_allow_hosts: Vec<String>,
    /// Limits of the HTTP listener.
    pub http_limits: crate::http::server::HttpLimits,
    /// Limits of watching.
    pub watch_limits: crate::watch::Limits,
}

fn load_network(home: &Path) -> anyhow::Result<(NetworkConfig, Vec<Record>, String)> {
    let path = home.join("genesis.lf");
    match std::fs::read(&path) {
        Ok(b) => {
            let (c, r) = lf_record::parse_records(&b)
                .with_context(|| format!("{} is not a valid genesis file", path.display()))?;
            Ok((c, r, path.display().to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (c, r) = network::default_network()?;
            Ok((
                c,
                r,
                format!("the embedded default network ({} absent)", path.display()),
            ))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn init_logging(home: &Path) -> anyhow::Result<()> {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    let path = home.join("node.log");
    // LF_LOG_MAX_BYTES caps node.log (rotated to node.log.1); default 10 MiB.
    let max = std::env::var("LF_LOG_MAX_BYTES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(crate::common::logfile::DEFAULT_MAX_BYTES);
    let file = crate::common::logfile::LogFile::open(&path, max)?;
    let (filter, filter_from) = match std::env::var("LF_LOG") {
        Ok(f) => (
            tracing_subscriber::EnvFilter::try_new(&f)
                .with_context(|| format!("LF_LOG={f:?} is not a valid log filter"))?,
            "LF_LOG",
        ),
        Err(_) => (tracing_subscriber::EnvFilter::new("info"), "the default"),
    };
    let shown = filter.to_string();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr.and(std::sync::Mutex::new(file)))
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
    tracing::info!(
        file = %path.display(),
        max_bytes = max,
        filter = %shown,
        from = filter_from,
        "logging to stderr and the log file"
    );
    Ok(())
}

/// How long the workers get to end at shutdown (a publication in progress finishes its
/// store transaction; proof of work is cancelled at once). One left behind is logged; the
/// process exits anyway, and the journal replays what it did not finish.
const WORKER_STOP: std::time::Duration = std::time::Duration::from_secs(15);

/// Runs `lf node-start` until SIGTERM or SIGINT.
pub fn run(opts: NodeOptions) -> anyhow::Result<()> {
    home::create_home(&opts.home)?;
    let pid = home::PidFile::acquire(&opts.home)?;
    init_logging(&opts.home)?;
    // Before anything is started or bound: a full disk fails here, naming the file.
    home::check_writable(&opts.home)?;
    crate::common::metrics::install();
    tracing::info!(home = %opts.home.display(), pid = std::process::id(), "lf node starting");
    for secret in [
        "identity-secret.pem",
        "authtoken.secret",
        crate::replication::IDENTITY_FILE,
    ] {
        home::warn_if_exposed(&opts.home.join(secret));
    }
    let identity = home::identity(&opts.home)?;
    tracing::info!(
        identity = %identity.public(),
        file = %opts.home.join("identity-secret.pem").display(),
        "identity loaded"
    );
    let token = home::auth_token(&opts.home)?;
    tracing::info!(file = %opts.home.join("authtoken.secret").display(), "API token loaded");
    let (config, genesis, source) = load_network(&opts.home)?;
    tracing::info!(network = %config.name, id = %config.id, from = %source, "network loaded");
    let store = Store::open(
        &opts.home,
        StoreConfig {
            max_time_drift: config.record_max_time_drift,
        },
    )?;
    store.put_many(&genesis)?;
    let genesis_hashes: std::collections::HashSet<_> = genesis.iter().map(|r| r.hash()).collect();
    let history = crate::node::amendments::ConfigHistory::build(
        &config,
        &genesis_hashes,
        &store.records_of_type(RecordType::Genesis)?,
    );
    if history.amendments() > 0 {
        tracing::info!(
            amendments = history.amendments(),
            config = %String::from_utf8_lossy(&history.current().to_json()),
            "genesis amendments applied"
        );
    }
    let certs = crate::common::certs::Certs::load(&history.current(), &store)?;
    let stats = store.stats()?;
    tracing::info!(
        dir = %opts.home.display(),
        records = stats.records,
        bytes = stats.bytes,
        "store open"
    );
    // Local writes are announced to peers once P2P runs (it starts over the node).
    let p2p_slot: Arc<std::sync::OnceLock<lf_p2p::P2pNode>> = Arc::default();
    let announce = {
        let slot = p2p_slot.clone();
        Box::new(move |hashes| {
            if let Some(p2p) = slot.get() {
                p2p.announce(hashes);
            }
        })
    };
    let node = Arc::new(Node::new(NodeParts {
        store,
        genesis_config: config,
        history,
        genesis,
        identity,
        token,
        ports: (opts.http_port, opts.p2p_port),
        certs,
        announce,
    }));
    let queue = crate::lffs_glue::commit_queue::CommitQueue::open(
        node.clone(),
        &opts.home,
        opts.lffs_queue_bytes,
    )?;
    // Every long-lived thread and task runs as a worker: named, shown in `/status`,
    // stopped with a deadline at shutdown.
    let workers = Workers::default();
    {
        let q = queue.clone();
        workers.spawn_thread("lffs-commit", None, move |ctx| {
            q.run(&ctx);
            Ok(())
        })?;
    }
    let mounts = crate::lffs_glue::mount_manager::MountManager::start(
        node.clone(),
        queue.clone(),
        &opts.home,
        workers.clone(),
    )?;
    let lffs = LffsHandles {
        queue,
        mounts: mounts.clone(),
    };
    let watcher =
        crate::lffs_glue::mount_manager::MountWatcher::start(&opts.home, mounts.clone(), &workers)?;
    if let Some(interval) = opts.oracle {
        let n = node.clone();
        workers.spawn_thread("oracle", None, move |ctx| {
            crate::oracle::run(n, interval, &ctx);
            Ok(())
        })?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let p2p_opts = crate::replication::P2pOptions {
        home: opts.home.clone(),
        port: opts.p2p_port,
        bind: opts.p2p_bind,
        peers: opts.peers.clone(),
        max_connections: opts.max_connections,
        allow_private_peers: opts.allow_private_peers,
        mdns: opts.mdns,
    };
    let (replication, result) =
        match rt.block_on(crate::replication::start(node.clone(), &p2p_opts, &workers)) {
            Ok(r) => {
                let _ = p2p_slot.set(r.p2p().clone());
                let hub = crate::watch::WatchHub::new(node.clone(), opts.watch_limits);
                hub.set_mounts(mounts.clone());
                let h = hub.clone();
                workers.spawn_task(rt.handle(), "watch-hub", |ctx| async move {
                    tokio::select! {
                        _ = h.run() => {}
                        _ = ctx.stopped() => {}
                    }
                    Ok(())
                });
                let state = AppState {
                    node: node.clone(),
                    lffs: Some(Arc::new(lffs)),
                    p2p: Some(r.p2p().clone()),
                    watch: Some(hub),
                    workers: workers.clone(),
                };
                (
                    Some(r),
                    rt.block_on(serve(state, &opts, mounts.clone(), &workers)),
                )
            }
            Err(e) => (None, Err(e)),
        };
    // Shutdown in reverse start order: HTTP has stopped; stop the mounts.yaml watcher
    // and retry timer, then unmount (a reload still running finishes first; none
    // mounts after); stop background work (proof of work is cancelled); the store
    // flushes when dropped.
    watcher.stop();
    tracing::info!("shutting down: unmounting");
    mounts.unmount_all();
    node.begin_stopping();
    if let Some(r) = replication {
        rt.block_on(r.stop());
    }
    // The rest: the commit queue and the oracle (their proof of work is cancelled),
    // the watch hub, metrics upkeep, the SIGHUP handler.
    workers.stop(&[], WORKER_STOP);
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    drop(mounts);
    drop(node);
    tracing::info!("lf node stopped");
    drop(pid);
    result
}

async fn serve(
    state: AppState,
    opts: &NodeOptions,
    mounts: Arc<crate::lffs_glue::mount_manager::MountManager>,
    workers: &Workers,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Handle::current();
    workers.spawn_task(&rt, "sighup", |ctx| async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = ctx.stopped() => return Ok(()),
                got = hup.recv() => if got.is_none() { return Ok(()) },
            }
            tracing::info!("SIGHUP: reloading mounts.yaml");
            ctx.set_state(State::Busy);
            let m = mounts.clone();
            let _ = tokio::task::spawn_blocking(move || m.reload(true)).await;
            ctx.set_state(State::Idle);
        }
    });
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], opts.http_port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => bail!("cannot listen for HTTP on {addr}: {e}"),
    };
    let url = format!("http://{}", listener.local_addr()?);
    let mut client = crate::cli::client::ClientConfig::load(&opts.home)?;
    client.urls = vec![url.clone()];
    client.save()?;
    tracing::info!(%url, client = %opts.home.join("client.json").display(), "HTTP API listening");
    // Mounts were made before the runtime started: the node is ready now.
    crate::daemon::sdnotify::ready(&format!(
        "serving {url}, {} mounts",
        state.lffs.as_ref().map_or(0, |l| l.mounts.mounted().len())
    ));
    workers.spawn_task(&rt, "metrics-upkeep", |ctx| async move {
        tokio::select! {
            _ = crate::common::metrics::upkeep() => {}
            _ = ctx.stopped() => {}
        }
        Ok(())
    });
    let hosts = crate::http::server::AllowedHosts::new(
        listener.local_addr()?.port(),
        &opts.http_allow_hosts,
    );
    let node = state.node.clone();
    let hub = state.watch.clone();
    let app = crate::http::api::router(state, hosts);
    crate::http::server::serve(listener, app, opts.http_limits, async {
        shutdown_signal().await;
        // Open watches end now rather than hold the server's last 5 s.
        if let Some(h) = &hub {
            h.close();
        }
        crate::daemon::sdnotify::stopping();
        tracing::info!("shutting down: stopping HTTP");
    })
    .await;
    node.begin_stopping();
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the node can only be killed; keep serving.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
