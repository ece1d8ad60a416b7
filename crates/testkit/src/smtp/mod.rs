//! The SMTP sink: an ESMTP server that records what it accepts and answers per a [`Script`].
//!
//! [`SmtpSink`] is the handle a test holds. The listener and one task per connection run in
//! the background and share recorded state with the handle; dropping the handle stops them.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

mod command;
mod listener;
mod matcher;
mod record;
mod reply;
mod script;
mod session;
mod state;
mod tls;
mod tracked;
mod wire;

pub use matcher::Matcher;
pub use record::{Received, SessionRecord};
pub use reply::Reply;
pub use script::{Script, END_OF_DATA};

use state::Shared;
use tls::TlsIdentity;

/// A running SMTP sink. Dropping it (or calling [`SmtpSink::shutdown`]) closes the listener
/// and every open connection.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl SmtpSink {
    /// Binds `bind` (port 0 picks a free port; any 127.x.y.z works on Linux) and starts
    /// serving with `script`. A self-signed certificate is generated for STARTTLS.
    pub async fn start(bind: SocketAddr, script: Script) -> io::Result<SmtpSink> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(script, TlsIdentity::self_signed()?));
        let accept_task = tokio::spawn(listener::accept_loop(listener, Arc::clone(&shared)));
        Ok(SmtpSink {
            addr,
            shared,
            accept_task,
        })
    }

    /// The address the sink listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The DER certificate presented on STARTTLS, for clients that want to trust it exactly.
    pub fn certificate_der(&self) -> CertificateDer<'static> {
        self.shared.tls.certificate.clone()
    }

    /// A snapshot of the messages accepted so far (minus any taken by
    /// [`SmtpSink::drain_messages`]), in acceptance order.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.recorded().messages.clone()
    }

    /// Removes and returns the recorded messages, so a long-running sink does not keep them all.
    pub fn drain_messages(&self) -> Vec<Received> {
        let drained = std::mem::take(&mut self.shared.recorded().messages);
        self.shared.changes.bump();
        drained
    }

    /// One record per connection so far, open ones included, in accept order.
    pub fn sessions(&self) -> Vec<SessionRecord> {
        self.shared.recorded().sessions.clone()
    }

    /// The highest number of connections open at once, counting those refused by
    /// [`Script::max_connections`] (they were open when refused).
    pub fn max_concurrent(&self) -> usize {
        self.shared.recorded().max_concurrent
    }

    /// Waits until at least `n` messages are recorded or `timeout` passes, then returns the
    /// recorded messages (fewer than `n` on timeout).
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        let enough = || self.shared.recorded().messages.len() >= n;
        self.shared.changes.wait_until(deadline, enough).await;
        self.messages()
    }

    /// Replaces the script for replies from now on, on open connections too. Reply sequences
    /// start from their first reply again.
    pub fn set_script(&self, script: Script) {
        self.shared.replace_script(script);
    }

    /// Stops the sink: the same as dropping it, spelled out for readability in tests.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.accept_task.abort();
    }
}
