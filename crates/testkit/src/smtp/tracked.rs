//! A TCP stream that marks its session closed just before the socket itself closes.
//!
//! Tying the bookkeeping to the stream's drop, in that order, means a client that sees the
//! connection close can rely on the sink no longer counting it as open, which keeps tests of
//! connection limits free of races; and it holds on every path, including scripted hangups
//! and the handshake failing mid-STARTTLS.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::state::{SessionId, Shared};

/// A connection's stream plus the duty to record its end.
pub(crate) struct TrackedStream {
    // Field order matters: fields drop in declaration order, so the session is marked closed
    // before the socket is.
    _open: OpenSession,
    stream: TcpStream,
}

struct OpenSession {
    shared: Arc<Shared>,
    id: SessionId,
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.shared.close_session(self.id);
    }
}

impl TrackedStream {
    pub(crate) fn new(stream: TcpStream, shared: Arc<Shared>, id: SessionId) -> TrackedStream {
        TrackedStream {
            _open: OpenSession { shared, id },
            stream,
        }
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
