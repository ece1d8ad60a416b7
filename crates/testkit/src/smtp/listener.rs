//! The accept loop and the life of one connection, from greeting through STARTTLS to close.
//!
//! Connection tasks live in a `JoinSet` owned by the accept loop, so aborting the loop (which
//! the sink's handle does on drop) also ends every open conversation.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::reply::Reply;
use super::session::{Ending, Session};
use super::state::{SessionId, Shared};
use super::tracked::TrackedStream;

/// Read buffer per connection; large enough that multi-megabyte DATA is read in few syscalls.
const READ_BUFFER: usize = 64 * 1024;

/// Back-off after a failed `accept`, which is usually file-descriptor exhaustion and would
/// otherwise spin the loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Accepts connections forever, serving each on its own task.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => {
                    // Replies go out one by one; Nagle's algorithm would hold each behind the
                    // client's delayed ACK and cost every pipelined transaction ~40 ms.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(stream, client, Arc::clone(&shared)));
                }
                Err(error) => {
                    tracing::warn!(%error, "smtp sink: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = joined {
                    tracing::error!(%error, "smtp sink: connection task failed");
                }
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, client: SocketAddr, shared: Arc<Shared>) {
    let (id, open) = shared.open_session(client);
    let stream = TrackedStream::new(stream, Arc::clone(&shared), id);
    if let Err(error) = converse(stream, client, id, open, &shared).await {
        // Expected for scripted hangups and clients that disconnect abruptly.
        tracing::debug!(%error, %client, "smtp sink: connection ended with an error");
    }
}

async fn converse(
    stream: TrackedStream,
    client: SocketAddr,
    id: SessionId,
    open: usize,
    shared: &Arc<Shared>,
) -> io::Result<()> {
    let mut session = Session::new(Arc::clone(shared), id, client);
    let mut plain = BufReader::with_capacity(READ_BUFFER, stream);
    let greeting = greeting_for(shared, client, open);
    session.send(&mut plain, &greeting).await?;
    if !greeting.is_positive() {
        return Ok(());
    }

    let Ending::StartTls(plain) = session.run(plain).await? else {
        return Ok(());
    };
    if !plain.buffer().is_empty() {
        // RFC 3207 forbids pipelining past STARTTLS; acting on such bytes after the handshake
        // is the classic STARTTLS command-injection bug, so they are dropped unread.
        tracing::warn!(%client, "smtp sink: discarding plaintext pipelined after STARTTLS");
    }

    let encrypted = shared.tls.acceptor.accept(plain.into_inner()).await?;
    session.upgraded_to_tls();
    session
        .run(BufReader::with_capacity(READ_BUFFER, encrypted))
        .await?;
    Ok(())
}

/// The scripted greeting, or the refusal when the connection is over the scripted limit.
fn greeting_for(shared: &Shared, client: SocketAddr, open: usize) -> Reply {
    shared.with_script(|script| {
        if script.connection_limit().is_some_and(|limit| open > limit) {
            return Reply::new(421, "4.7.0 too many connections, try again later");
        }
        script
            .greeting_for(client.ip())
            .unwrap_or_else(|| Reply::new(220, "sink.test ESMTP sluice-testkit ready"))
    })
}
