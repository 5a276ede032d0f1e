//! The API's listener: at most `api.max_connections` open connections.
//!
//! Role: an `axum::serve::Listener` over the tokio TCP listener whose
//! accepted streams each hold a semaphore permit until they close; with every
//! permit taken, accepting waits (the kernel's backlog queues, then refuses).
//! HTTP/1 serves one request at a time per connection, so this also bounds
//! the calls in flight, and with them `net::mailbox::Replies`.
//!
//! Invariants: open API connections ≤ `api.max_connections`, authenticated
//! or not; a permit is released exactly when its stream is dropped.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A TCP listener with a cap on open connections.
#[derive(Debug)]
pub(crate) struct Bounded {
    inner: TcpListener,
    permits: Arc<Semaphore>,
}

impl Bounded {
    pub(crate) fn new(inner: TcpListener, max_connections: usize) -> Self {
        Self { inner, permits: Arc::new(Semaphore::new(max_connections)) }
    }
}

/// An accepted stream holding its connection permit.
#[derive(Debug)]
pub(crate) struct Counted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl axum::serve::Listener for Bounded {
    type Io = Counted;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // The semaphore is never closed, so this waits for a free permit.
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else { continue };
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (Counted { stream, _permit: permit }, addr);
                }
                Err(e) => {
                    // EMFILE and friends: say so, back off a little, retry.
                    tracing::warn!(error = %e, "api: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
