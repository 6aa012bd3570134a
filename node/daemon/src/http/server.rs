//! The HTTP listener under the API's router: hyper's HTTP/1 connection with the limits
//! a local API needs against clients that connect and then idle or trickle (any local
//! user can connect): a cap on open connections (past it new ones are closed at once,
//! so they cannot queue up and starve the rest), a deadline for a request's headers,
//! and an idle deadline between requests and on stalled reads and writes. Figures in
//! `API.md`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Limits of the listener.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Time a connection may sit without a byte read or written.
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 128,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight
/// finish for up to 5 s.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut refused_logged = None::<std::time::Instant>;
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors, most likely: let some close.
                    tracing::warn!("HTTP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!("lf_http_connections_refused_total").increment(1);
            if refused_logged.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                refused_logged = Some(std::time::Instant::now());
                tracing::warn!(
                    max = limits.max_connections,
                    "HTTP connection refused: too many open connections"
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(IdleStream::new(stream, limits.idle_timeout));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(io, TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        metrics::gauge!("lf_http_connections").increment(1.0);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("HTTP connection closed: {e}");
            }
            drop(permit);
            metrics::gauge!("lf_http_connections").decrement(1.0);
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(5)) => {
            tracing::info!("HTTP: requests still running after 5 s were dropped");
        }
    }
}

/// A stream that fails with `TimedOut` when a read or write waits longer than its idle
/// timeout without progress (an idle keep-alive connection, a client that stopped
/// reading its answer).
struct IdleStream<S> {
    inner: S,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<S> IdleStream<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        IdleStream {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    fn progressed(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.timeout);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "HTTP connection idle for too long")
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Hosts a request may name: the loopback names with the node's port (or without a
/// port), and those given with `-http-allow-host`. Anything else is refused, so a web
/// page that rebinds its own domain to 127.0.0.1 cannot read the API.
#[derive(Clone, Debug)]
pub struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    /// The allow-list for a node listening on `port`, plus `extra` (`host` or
    /// `host:port`).
    pub fn new(port: u16, extra: &[String]) -> AllowedHosts {
        let mut v = Vec::new();
        for h in ["127.0.0.1", "localhost", "[::1]"] {
            v.push(h.to_string());
            v.push(format!("{h}:{port}"));
        }
        v.extend(extra.iter().map(|h| h.to_ascii_lowercase()));
        AllowedHosts(v)
    }

    /// Whether a `Host` header value is allowed (a request without one is: browsers
    /// always send it).
    pub fn allows(&self, host: Option<&str>) -> bool {
        match host {
            None => true,
            Some(h) => {
                let h = h.trim().to_ascii_lowercase();
                self.0.contains(&h)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_allowed_are_loopback_names_and_extras() {
        let a = AllowedHosts::new(9980, &["lf.internal:9980".into()]);
        for ok in [
            None,
            Some("127.0.0.1:9980"),
            Some("LOCALHOST:9980"),
            Some("[::1]:9980"),
            Some("localhost"),
            Some("lf.internal:9980"),
        ] {
            assert!(a.allows(ok), "{ok:?}");
        }
        for bad in [
            Some("evil.example:9980"),
            Some("127.0.0.1:9981"),
            Some("localhost.evil.example:9980"),
            Some(""),
        ] {
            assert!(!a.allows(bad), "{bad:?}");
        }
    }
}
