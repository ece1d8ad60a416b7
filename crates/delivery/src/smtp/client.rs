//! One SMTP connection: connect from a chosen local address, greet, negotiate STARTTLS,
//! PIPELINING, 8BITMIME and SIZE, then carry messages one after another until the caller closes
//! it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use super::error::{Phase, SmtpError};
use super::reply::{parse_line, Reply};

/// Longest reply line accepted; RFC 5321 allows 512 bytes, servers send a little more.
const MAX_LINE: usize = 4096;
/// Most lines in one reply, so a server cannot make us buffer without bound.
const MAX_LINES: usize = 128;

/// How a connection is opened and timed.
#[derive(Clone)]
pub struct ConnectionSettings {
    /// Local address to bind before connecting; `None` lets the system choose.
    pub bind: Option<IpAddr>,
    /// Name said in EHLO.
    pub ehlo_name: String,
    /// TLS configuration for STARTTLS; `None` never upgrades.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Refuse to go on without TLS: a server that does not offer STARTTLS (or a missing `tls`
    /// configuration) fails the connection with [`SmtpError::Tls`].
    pub require_tls: bool,
    /// Limit for the TCP connect.
    pub connect_timeout: Duration,
    /// Limit for each reply to a command.
    pub command_timeout: Duration,
    /// Limit for the reply after the message content.
    pub data_timeout: Duration,
}

/// What became of TLS on a connection, as `outbound_tls` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsOutcome {
    /// The session is encrypted.
    Established,
    /// The server did not offer STARTTLS, or TLS was not wanted.
    NotOffered,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open SMTP session, ready for `MAIL FROM`.
pub struct Connection {
    stream: BufStream<Box<dyn Io>>,
    settings: ConnectionSettings,
    pipelining: bool,
    /// Whether the server advertised 8BITMIME in its latest EHLO reply.
    eight_bit_mime: bool,
    /// The SIZE extension (RFC 1870): `None` when not advertised, else the server's fixed
    /// limit in bytes, 0 meaning none.
    size: Option<u64>,
    /// False once the server hung up or the dialogue fell out of step (see [`Self::is_open`]).
    open: bool,
    tls: TlsOutcome,
    local: SocketAddr,
    peer: SocketAddr,
    line: String,
}

impl Connection {
    /// Connects to `peer`, reads the greeting, says EHLO and upgrades to TLS when offered.
    /// `server_name` is the MX host name, used for TLS SNI.
    pub async fn open(
        peer: SocketAddr,
        server_name: &str,
        settings: ConnectionSettings,
    ) -> Result<Connection, SmtpError> {
        let tcp = connect(peer, &settings).await?;
        let local = tcp.local_addr().map_err(|source| SmtpError::Io {
            phase: Phase::Connect,
            source,
        })?;
        let mut conn = Connection {
            stream: BufStream::new(Box::new(tcp)),
            settings,
            pipelining: false,
            eight_bit_mime: false,
            open: true,
            size: None,
            tls: TlsOutcome::NotOffered,
            local,
            peer,
            line: String::new(),
        };
        let timeout = conn.settings.command_timeout;
        conn.expect(Phase::Greeting, timeout).await?;
        let capabilities = conn.ehlo().await?;
        let offered = capabilities.advertises("STARTTLS");
        if offered && conn.settings.tls.is_some() {
            conn.start_tls(server_name).await?;
        } else if conn.settings.require_tls {
            let reason = if offered {
                "TLS is required but no verifying TLS configuration is available"
            } else {
                "TLS is required but the server does not offer STARTTLS"
            };
            return Err(SmtpError::Tls(reason.to_string()));
        } else {
            conn.learn(&capabilities);
        }
        Ok(conn)
    }

    /// The local address the connection was made from.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the session is encrypted.
    pub fn tls(&self) -> TlsOutcome {
        self.tls
    }

    /// Sends one message to one recipient and returns the server's final reply. On a refusal
    /// the session is reset, so the connection can carry the next message. An address that
    /// cannot be written into a command safely is refused before anything is sent.
    pub async fn send(
        &mut self,
        mail_from: &str,
        rcpt_to: &str,
        body: &[u8],
    ) -> Result<Reply, SmtpError> {
        check_path(Phase::MailFrom, mail_from)?;
        check_path(Phase::RcptTo, rcpt_to)?;
        if !self.open {
            return Err(SmtpError::Io {
                phase: Phase::MailFrom,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "the server closed the connection after an earlier refusal",
                ),
            });
        }
        if let Some(refusal) = self.over_size_limit(body) {
            return Err(refusal);
        }
        let result = self.transaction(mail_from, rcpt_to, body).await;
        if let Err(e) = &result {
            let resettable = e.connection_usable() && e.phase() != Phase::DataEnd;
            // A server that hung up after refusing leaves the refusal as the outcome.
            if resettable && self.open && self.reset().await.is_err() {
                self.open = false;
            }
        }
        result
    }

    /// Ends the session politely. Errors are ignored: the message outcomes are already known.
    pub async fn quit(mut self) {
        if self.write(b"QUIT\r\n").await.is_ok() {
            let _ = self.read_reply(Phase::Data, Duration::from_secs(2)).await;
        }
        let _ = self.stream.shutdown().await;
    }

    async fn transaction(
        &mut self,
        mail_from: &str,
        rcpt_to: &str,
        body: &[u8],
    ) -> Result<Reply, SmtpError> {
        let command_timeout = self.settings.command_timeout;
        let mail = self.mail_command(mail_from, body);
        let rcpt = format!("RCPT TO:<{rcpt_to}>\r\n");
        if self.pipelining {
            self.write(format!("{mail}{rcpt}DATA\r\n").as_bytes())
                .await?;
            let mail_reply = self.read_reply(Phase::MailFrom, command_timeout).await?;
            let rcpt_reply = self.read_reply(Phase::RcptTo, command_timeout).await;
            let data_reply = self.read_reply(Phase::Data, command_timeout).await;
            // A refusal is the outcome even when the server hung up after it, as it may after
            // a 421 or a policy block: the replies that follow are only read to keep in step.
            let refused = require(Phase::MailFrom, mail_reply)
                .and_then(|_| require(Phase::RcptTo, rcpt_reply?));
            if let Err(refusal) = refused {
                self.end_refused_data(data_reply).await;
                return Err(refusal);
            }
            intermediate(Phase::Data, data_reply?)?;
        } else {
            self.command(Phase::MailFrom, &mail).await?;
            self.command(Phase::RcptTo, &rcpt).await?;
            self.write(b"DATA\r\n").await?;
            let reply = self.read_reply(Phase::Data, command_timeout).await?;
            intermediate(Phase::Data, reply)?;
        }
        self.write_content(body).await?;
        let timeout = self.settings.data_timeout;
        self.expect(Phase::DataEnd, timeout).await
    }

    /// Ends the DATA of a pipelined transaction whose MAIL or RCPT was refused: a server that
    /// said 354 anyway gets an empty message. When the server hung up, or the dialogue cannot
    /// be brought back in step, the connection is marked closed.
    async fn end_refused_data(&mut self, data_reply: Result<Reply, SmtpError>) {
        let in_step = match data_reply {
            Ok(reply) if reply.is_intermediate() => {
                let timeout = self.settings.command_timeout;
                self.write(b".\r\n").await.is_ok()
                    && self.read_reply(Phase::DataEnd, timeout).await.is_ok()
            }
            Ok(_) => true,
            Err(_) => false,
        };
        self.open &= in_step;
    }

    /// Whether the connection can carry another message: false once the server hung up or the
    /// dialogue fell out of step, even after a refusal that would otherwise leave it usable.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The `MAIL FROM` command, declaring `BODY=8BITMIME` for a body with 8-bit bytes when the
    /// server takes it; a 7-bit body's command carries no parameter.
    fn mail_command(&self, mail_from: &str, body: &[u8]) -> String {
        let mut command = format!("MAIL FROM:<{mail_from}>");
        if self.size.is_some() {
            command.push_str(&format!(" SIZE={}", body.len()));
        }
        if !body.is_ascii() {
            if self.eight_bit_mime {
                command.push_str(" BODY=8BITMIME");
            } else {
                // Without 8BITMIME the body goes as it is, since most servers take 8-bit bytes
                // anyway; downgrading it to 7 bits would mean re-encoding MIME parts after DKIM
                // signed them.
                tracing::debug!(peer = %self.peer, "8-bit body sent to a server without 8BITMIME");
            }
        }
        command.push_str("\r\n");
        command
    }

    /// The refusal the server would give a message over the fixed limit it advertised, made
    /// here so the message is not sent only to be refused after its last byte.
    fn over_size_limit(&self, body: &[u8]) -> Option<SmtpError> {
        let limit = self.size.filter(|limit| *limit > 0)?;
        let size = body.len() as u64;
        (size > limit).then(|| SmtpError::Rejected {
            phase: Phase::MailFrom,
            reply: Reply {
                code: 552,
                lines: vec![format!(
                    "5.3.4 [internal] message of {size} bytes is over the server's fixed \
                     limit of {limit} bytes (SIZE)"
                )],
            },
        })
    }

    async fn ehlo(&mut self) -> Result<Reply, SmtpError> {
        let timeout = self.settings.command_timeout;
        let name = self.settings.ehlo_name.clone();
        self.write(format!("EHLO {name}\r\n").as_bytes()).await?;
        let reply = self.read_reply(Phase::Ehlo, timeout).await?;
        if reply.is_positive() {
            return Ok(reply);
        }
        // A server too old for EHLO still speaks HELO, without extensions.
        self.write(format!("HELO {name}\r\n").as_bytes()).await?;
        let helo = self.read_reply(Phase::Ehlo, timeout).await?;
        require(Phase::Ehlo, helo).map(|_| Reply {
            code: 250,
            lines: Vec::new(),
        })
    }

    async fn start_tls(&mut self, server_name: &str) -> Result<(), SmtpError> {
        self.command(Phase::StartTls, "STARTTLS\r\n").await?;
        let Some(config) = self.settings.tls.clone() else {
            return Ok(());
        };
        let name = ServerName::try_from(server_name.trim_end_matches('.').to_string())
            .unwrap_or_else(|_| ServerName::IpAddress(self.peer.ip().into()));
        let placeholder: Box<dyn Io> = Box::new(tokio::io::duplex(1).0);
        let plain = std::mem::replace(&mut self.stream, BufStream::new(placeholder)).into_inner();
        let handshake = TlsConnector::from(config).connect(name, plain);
        let tls = timeout(self.settings.command_timeout, handshake)
            .await
            .map_err(|_| SmtpError::Timeout(Phase::StartTls))?
            .map_err(|e| SmtpError::Tls(e.to_string()))?;
        self.stream = BufStream::new(Box::new(tls));
        self.tls = TlsOutcome::Established;
        let capabilities = self.ehlo().await?;
        self.learn(&capabilities);
        Ok(())
    }

    /// Records the extensions of an EHLO reply this client uses. After STARTTLS only the new
    /// reply counts (RFC 3207 4.2).
    fn learn(&mut self, capabilities: &Reply) {
        self.pipelining = capabilities.advertises("PIPELINING");
        self.eight_bit_mime = capabilities.advertises("8BITMIME");
        // A limit that is not a number is read as none: the server still refuses what it must.
        self.size = capabilities
            .advertises("SIZE")
            .then(|| capabilities.parameter("SIZE").and_then(|n| n.parse().ok()))
            .map(|limit| limit.unwrap_or(0));
    }

    async fn reset(&mut self) -> Result<(), SmtpError> {
        self.command(Phase::MailFrom, "RSET\r\n").await.map(|_| ())
    }

    async fn command(&mut self, phase: Phase, line: &str) -> Result<Reply, SmtpError> {
        self.write(line.as_bytes()).await?;
        let timeout = self.settings.command_timeout;
        self.expect(phase, timeout).await
    }

    async fn expect(&mut self, phase: Phase, limit: Duration) -> Result<Reply, SmtpError> {
        let reply = self.read_reply(phase, limit).await?;
        require(phase, reply)
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SmtpError> {
        let io = |source| SmtpError::Io {
            phase: Phase::Data,
            source,
        };
        self.stream.write_all(bytes).await.map_err(io)?;
        self.stream.flush().await.map_err(io)
    }

    /// Writes the message dot-stuffed, with the terminating `.` line.
    async fn write_content(&mut self, body: &[u8]) -> Result<(), SmtpError> {
        let io = |source| SmtpError::Io {
            phase: Phase::DataEnd,
            source,
        };
        let mut at_line_start = true;
        let mut rest = body;
        while !rest.is_empty() {
            if at_line_start && rest[0] == b'.' {
                self.stream.write_all(b".").await.map_err(io)?;
            }
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            self.stream.write_all(&rest[..end]).await.map_err(io)?;
            at_line_start = rest[end - 1] == b'\n';
            rest = &rest[end..];
        }
        let terminator: &[u8] = if at_line_start {
            b".\r\n"
        } else {
            b"\r\n.\r\n"
        };
        self.stream.write_all(terminator).await.map_err(io)?;
        self.stream.flush().await.map_err(io)
    }

    async fn read_reply(&mut self, phase: Phase, limit: Duration) -> Result<Reply, SmtpError> {
        timeout(limit, self.read_reply_lines(phase))
            .await
            .map_err(|_| SmtpError::Timeout(phase))?
    }

    async fn read_reply_lines(&mut self, phase: Phase) -> Result<Reply, SmtpError> {
        let mut lines = Vec::new();
        loop {
            self.read_line(phase).await?;
            let text = self.line.trim_end_matches(['\r', '\n']);
            let malformed = || SmtpError::Malformed {
                phase,
                line: text.chars().take(200).collect(),
            };
            let parsed = parse_line(text).ok_or_else(malformed)?;
            lines.push(parsed.text.to_string());
            if !parsed.more {
                return Ok(Reply {
                    code: parsed.code,
                    lines,
                });
            }
            if lines.len() >= MAX_LINES {
                return Err(malformed());
            }
        }
    }

    async fn read_line(&mut self, phase: Phase) -> Result<(), SmtpError> {
        self.line.clear();
        let mut raw = Vec::new();
        let mut limited = (&mut self.stream).take(MAX_LINE as u64);
        let read = limited
            .read_until(b'\n', &mut raw)
            .await
            .map_err(|source| SmtpError::Io { phase, source })?;
        if read == 0 {
            let source = std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            );
            return Err(SmtpError::Io { phase, source });
        }
        self.line = String::from_utf8_lossy(&raw).into_owned();
        tracing::trace!(peer = %self.peer, line = %self.line.trim_end(), "smtp receive");
        Ok(())
    }
}

async fn connect(peer: SocketAddr, settings: &ConnectionSettings) -> Result<TcpStream, SmtpError> {
    let io = |source| SmtpError::Io {
        phase: Phase::Connect,
        source,
    };
    let socket = if peer.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(io)?;
    if let Some(local) = settings.bind {
        socket.bind(SocketAddr::new(local, 0)).map_err(io)?;
    }
    let stream = timeout(settings.connect_timeout, socket.connect(peer))
        .await
        .map_err(|_| SmtpError::Timeout(Phase::Connect))?
        .map_err(io)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Refuses an envelope address that would change the command it is written into: a line break
/// or other control character would end the command and start another, and an angle bracket
/// would end the path early. The API checks addresses first; this keeps the client safe alone.
fn check_path(phase: Phase, address: &str) -> Result<(), SmtpError> {
    let what = address.chars().find_map(|c| match c {
        '\r' | '\n' => Some("a line break"),
        '<' | '>' => Some("an angle bracket"),
        c if c.is_control() => Some("a control character"),
        _ => None,
    });
    match what {
        None => Ok(()),
        Some(what) => Err(SmtpError::UnsafeAddress {
            phase,
            address: address.chars().take(200).collect(),
            what,
        }),
    }
}

fn require(phase: Phase, reply: Reply) -> Result<Reply, SmtpError> {
    if reply.is_positive() {
        Ok(reply)
    } else {
        Err(SmtpError::Rejected { phase, reply })
    }
}

fn intermediate(phase: Phase, reply: Reply) -> Result<Reply, SmtpError> {
    if reply.is_intermediate() {
        Ok(reply)
    } else {
        Err(SmtpError::Rejected { phase, reply })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(address: &str) -> Option<&'static str> {
        match check_path(Phase::RcptTo, address) {
            Ok(()) => None,
            Err(SmtpError::UnsafeAddress { what, .. }) => Some(what),
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn envelope_addresses_that_would_inject_commands_are_refused() {
        for (address, what) in [
            ("a@b.test\r\nRCPT TO:<c@d.test>", "a line break"),
            ("a@b.test\nDATA", "a line break"),
            ("a@b.test\rx", "a line break"),
            ("a@b.test> NOTIFY=NEVER", "an angle bracket"),
            ("<a@b.test", "an angle bracket"),
            ("a\0@b.test", "a control character"),
            ("a\t@b.test", "a control character"),
            ("a\u{7f}@b.test", "a control character"),
            ("a\u{85}@b.test", "a control character"),
        ] {
            assert_eq!(refusal(address), Some(what), "{address:?}");
        }
    }

    #[test]
    fn ordinary_and_null_addresses_pass() {
        for address in [
            "",
            "a@b.test",
            "\"a b\"@b.test",
            "user+tag@[192.0.2.1]",
            "jos\u{e9}@b.test",
        ] {
            assert_eq!(refusal(address), None, "{address:?}");
        }
    }
}
