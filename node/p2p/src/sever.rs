//! Severing connections presumed dead, at the socket.
//!
//! libp2p closes a connection gracefully: Yamux sends its last frames and flushes them
//! before the connection is reported closed. On a cut link whose send buffer is full,
//! that flush waits for TCP's next retransmission after the link heals (20 s and
//! more), and meanwhile the old connection still carries half of the requests to the
//! peer (request-response spreads them over every connection), so even a new
//! connection looks dead. A connection the service presumes dead is therefore severed
//! here: its socket fails every read and write at once, so libp2p drops it at once.
//! Sockets are named by their remote address and the time they were opened: a new
//! connection to the same address is not touched.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::futures::{AsyncRead, AsyncWrite};

/// How long a severance is remembered: every socket it names fails at its next read or
/// write, which a live connection does within seconds (pings, follow pulls).
const REMEMBER: Duration = Duration::from_secs(120);

/// Remote addresses whose sockets opened before a given instant are severed.
#[derive(Default)]
pub(crate) struct Severed {
    before: Mutex<HashMap<SocketAddr, Instant>>,
    /// Bumped by every severance, so a socket looks at the map only when it changed.
    generation: AtomicU64,
}

impl Severed {
    /// Severs every socket to `remote` opened until now.
    pub(crate) fn sever(&self, remote: SocketAddr) {
        let now = Instant::now();
        let mut before = self.before.lock().unwrap_or_else(|p| p.into_inner());
        before.retain(|_, t| now.duration_since(*t) < REMEMBER);
        before.insert(remote, now);
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn severs(&self, remote: SocketAddr, opened: Instant) -> bool {
        self.before
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&remote)
            .is_some_and(|t| opened <= *t)
    }
}

/// A socket that fails once [`Severed`] names it.
pub(crate) struct Severable<S> {
    inner: S,
    remote: Option<SocketAddr>,
    opened: Instant,
    severed: std::sync::Arc<Severed>,
    /// The generation last looked at, and whether this socket is severed (for good).
    seen: u64,
    dead: bool,
}

impl<S> Severable<S> {
    pub(crate) fn new(
        inner: S,
        remote: Option<SocketAddr>,
        severed: std::sync::Arc<Severed>,
    ) -> Severable<S> {
        Severable {
            inner,
            remote,
            opened: Instant::now(),
            seen: severed.generation.load(Ordering::Acquire),
            severed,
            dead: false,
        }
    }

    fn check(&mut self) -> std::io::Result<()> {
        if !self.dead {
            let g = self.severed.generation.load(Ordering::Acquire);
            if g != self.seen {
                self.seen = g;
                self.dead = self
                    .remote
                    .is_some_and(|r| self.severed.severs(r, self.opened));
            }
        }
        if self.dead {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "connection presumed dead: severed",
            ))
        } else {
            Ok(())
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Severable<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Severable<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.check().is_err() {
            // Nothing more is sent: the socket is dropped with what it still holds.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use libp2p::futures::executor::block_on;
    use libp2p::futures::io::{AsyncReadExt, AsyncWriteExt, Cursor};

    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn a_severed_socket_fails_and_a_newer_one_to_the_same_address_does_not() {
        let severed = Arc::new(Severed::default());
        let mut old = Severable::new(Cursor::new(vec![0u8; 64]), Some(addr(1)), severed.clone());
        let mut other = Severable::new(Cursor::new(vec![0u8; 64]), Some(addr(2)), severed.clone());
        let mut buf = [0u8; 8];
        block_on(old.read_exact(&mut buf)).unwrap();
        severed.sever(addr(1));
        let mut new = Severable::new(Cursor::new(vec![0u8; 64]), Some(addr(1)), severed.clone());
        let e = block_on(old.read_exact(&mut buf)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionAborted);
        assert!(block_on(old.write_all(b"x")).is_err());
        block_on(old.close()).unwrap();
        block_on(new.read_exact(&mut buf)).unwrap();
        block_on(new.write_all(b"x")).unwrap();
        block_on(other.read_exact(&mut buf)).unwrap();
    }
}
