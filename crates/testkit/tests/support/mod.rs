//! A deliberately small SMTP client for driving the sink byte by byte in integration tests,
//! plus a TLS client configuration that accepts any certificate, as opportunistic TLS does.

// Each test binary compiles this module and uses a different subset of it.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Upper bound on any single network step, so a broken sink fails a test instead of hanging it.
pub const STEP: Duration = Duration::from_secs(10);

/// One client connection to the sink.
pub struct SmtpClient<S> {
    io: BufReader<S>,
}

impl SmtpClient<TcpStream> {
    /// Connects and returns the client with the greeting it received.
    pub async fn connect(addr: SocketAddr) -> (SmtpClient<TcpStream>, String) {
        let stream = step(TcpStream::connect(addr))
            .await
            .expect("connect to the sink");
        SmtpClient::greeted(stream).await
    }

    /// Connects from a chosen local address, e.g. another loopback IP such as 127.0.0.2.
    pub async fn connect_from(source: IpAddr, addr: SocketAddr) -> (SmtpClient<TcpStream>, String) {
        let socket = TcpSocket::new_v4().expect("create a socket");
        socket
            .bind(SocketAddr::new(source, 0))
            .expect("bind the source address");
        let stream = step(socket.connect(addr))
            .await
            .expect("connect to the sink");
        SmtpClient::greeted(stream).await
    }

    /// Performs STARTTLS's handshake (after the 220) with a client that trusts any certificate.
    pub async fn into_tls(self) -> SmtpClient<TlsStream<TcpStream>> {
        assert!(
            self.io.buffer().is_empty(),
            "no bytes may follow the STARTTLS reply"
        );
        let connector = TlsConnector::from(
            // Sluice's own opportunistic client configuration: any certificate, checked signatures.
            sluice_delivery::smtp::opportunistic_config().expect("a TLS client configuration"),
        );
        let name = ServerName::try_from("sink.test").expect("a valid server name");
        let stream = step(connector.connect(name, self.io.into_inner())).await;
        SmtpClient {
            io: BufReader::new(stream.expect("TLS handshake with the sink")),
        }
    }

    async fn greeted(stream: TcpStream) -> (SmtpClient<TcpStream>, String) {
        let mut client = SmtpClient {
            io: BufReader::new(stream),
        };
        let greeting = client.reply().await;
        (client, greeting)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> SmtpClient<S> {
    /// Writes `text` exactly as given, in a single write.
    pub async fn write(&mut self, text: &[u8]) {
        step(self.io.get_mut().write_all(text))
            .await
            .expect("write to the sink");
    }

    /// Reads one complete (possibly multi-line) reply, lines joined with `\n`, CRLFs removed.
    pub async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = step(self.io.read_line(&mut line))
                .await
                .expect("read a reply");
            assert!(read > 0, "connection closed while expecting a reply");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    /// Sends one command line and returns the reply.
    pub async fn command(&mut self, line: &str) -> String {
        self.write(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Whether the server closes the connection (reads to EOF) within [`STEP`].
    pub async fn closed_by_server(&mut self) -> bool {
        let mut rest = Vec::new();
        // Returns at EOF, or with an error on a reset; either way the server hung up.
        tokio::time::timeout(STEP, self.io.read_to_end(&mut rest))
            .await
            .is_ok()
    }
}

/// The numeric code of a reply as returned by [`SmtpClient::reply`].
pub fn code(reply: &str) -> u16 {
    reply
        .get(..3)
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}

async fn step<T>(
    future: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {STEP:?}"))
}
