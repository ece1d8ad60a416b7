//! One SMTP conversation: the command state machine between greeting and close.
//!
//! Commands are read one line at a time from a buffered reader and answered in order, which is
//! all that PIPELINING asks of a server. Every reply goes through [`Session::send`], the single
//! place where the scripted delay and scripted hangups take effect.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::command::{self, Command, CommandError};
use super::reply::Reply;
use super::state::{SessionId, Shared};
use super::wire::{self, Line, MAX_COMMAND_LINE};

mod transaction;

/// How a run over one stream ended.
pub(crate) enum Ending<S> {
    /// The conversation is over (QUIT, client gone, or a fatal protocol error).
    Closed,
    /// STARTTLS was accepted; the caller performs the handshake and runs the session again.
    StartTls(BufReader<S>),
}

/// What the command loop does after a command.
enum Step {
    Continue,
    Close,
    StartTls,
}

/// A mail transaction opened by an accepted `MAIL FROM`.
struct Transaction {
    from: String,
    parameters: Vec<String>,
    recipients: Vec<String>,
}

/// The per-connection protocol state.
pub(crate) struct Session {
    shared: Arc<Shared>,
    id: SessionId,
    client: SocketAddr,
    tls: bool,
    ehlo: Option<String>,
    transaction: Option<Transaction>,
    line: Vec<u8>,
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>, id: SessionId, client: SocketAddr) -> Session {
        let line = Vec::new();
        Session {
            shared,
            id,
            client,
            tls: false,
            ehlo: None,
            transaction: None,
            line,
        }
    }

    /// Resets the state after a TLS handshake, as RFC 3207 requires: the client must EHLO again.
    pub(crate) fn upgraded_to_tls(&mut self) {
        self.tls = true;
        self.ehlo = None;
        self.transaction = None;
        self.shared
            .update_session(self.id, |record| record.tls = true);
    }

    /// Answers commands from `io` until the conversation ends or switches to TLS.
    pub(crate) async fn run<S>(&mut self, mut io: BufReader<S>) -> io::Result<Ending<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            match wire::read_line(&mut io, &mut self.line, MAX_COMMAND_LINE).await? {
                Line::Complete => {}
                Line::Closed => return Ok(Ending::Closed),
                Line::TooLong => {
                    self.send(&mut io, &Reply::new(500, "5.5.2 line too long"))
                        .await?;
                    return Ok(Ending::Closed);
                }
            }
            match self.handle_line(&mut io).await? {
                Step::Continue => {}
                Step::Close => return Ok(Ending::Closed),
                Step::StartTls => return Ok(Ending::StartTls(io)),
            }
        }
    }

    /// Sends `reply` after the scripted delay. A scripted hangup surfaces as a
    /// `ConnectionAborted` error, which ends the connection like any other I/O failure.
    pub(crate) async fn send<S>(&self, io: &mut BufReader<S>, reply: &Reply) -> io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let delay = self.shared.with_script(|script| script.reply_delay());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if *reply == Reply::Hangup {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "scripted hangup",
            ));
        }
        io.write_all(&reply.to_wire()).await?;
        io.flush().await?;
        if let Reply::ThenHangup(_) = reply {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "scripted hangup after the reply",
            ));
        }
        Ok(())
    }

    async fn handle_line<S>(&mut self, io: &mut BufReader<S>) -> io::Result<Step>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches(['\r', '\n']).to_owned();
        let parsed = command::parse(&text);
        self.shared
            .update_session(self.id, |record| record.commands.push(text));
        match parsed {
            Ok(command) => self.execute(command, io).await,
            Err(CommandError::Unknown(verb)) => {
                let text = format!("5.5.1 command not recognized: {verb}");
                self.send(io, &Reply::new(500, &text))
                    .await
                    .map(|()| Step::Continue)
            }
            Err(CommandError::Syntax(problem)) => {
                let text = format!("5.5.4 syntax error: {problem}");
                self.send(io, &Reply::new(501, &text))
                    .await
                    .map(|()| Step::Continue)
            }
        }
    }

    async fn execute<S>(&mut self, command: Command, io: &mut BufReader<S>) -> io::Result<Step>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let verb = command.verb();
        match command {
            Command::Ehlo(name) => self.hello(io, verb, name, self.ehlo_reply()).await,
            Command::Helo(name) => {
                self.hello(io, verb, name, Reply::new(250, "sink.test"))
                    .await
            }
            Command::Mail {
                from,
                size,
                parameters,
            } => self.mail(io, from, size, parameters).await,
            Command::Rcpt { to } => self.rcpt(io, to).await,
            Command::Data => self.data(io).await,
            Command::Rset => {
                self.transaction = None;
                self.answer(io, verb, Reply::new(250, "2.0.0 reset"))
                    .await?;
                Ok(Step::Continue)
            }
            Command::Noop => {
                self.answer(io, verb, Reply::ok()).await?;
                Ok(Step::Continue)
            }
            Command::Quit => {
                self.answer(io, verb, Reply::new(221, "2.0.0 bye")).await?;
                Ok(Step::Close)
            }
            Command::StartTls => self.start_tls(io).await,
        }
    }

    /// Sends the scripted reply for `verb`, or `default`; returns the reply that was sent.
    async fn answer<S>(
        &self,
        io: &mut BufReader<S>,
        verb: &str,
        default: Reply,
    ) -> io::Result<Reply>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let scripted = self
            .shared
            .with_script(|script| script.next_command_reply(verb));
        let reply = scripted.unwrap_or(default);
        self.send(io, &reply).await?;
        Ok(reply)
    }

    /// Sends a fixed protocol-error reply that scripts cannot override.
    async fn refuse<S>(&self, io: &mut BufReader<S>, code: u16, text: &str) -> io::Result<Step>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.send(io, &Reply::new(code, text))
            .await
            .map(|()| Step::Continue)
    }

    fn ehlo_reply(&self) -> Reply {
        let (size, tls, eight_bit_mime) = self
            .shared
            .with_script(|s| (s.size_limit(), s.offers_tls(), s.offers_8bitmime()));
        let mut lines = vec![
            "sink.test greets you".to_owned(),
            "PIPELINING".to_owned(),
            "8BITMIME".to_owned(),
            format!("SIZE {size}"),
            "ENHANCEDSTATUSCODES".to_owned(),
        ];
        if !eight_bit_mime {
            lines.retain(|line| line != "8BITMIME");
        }
        if tls && !self.tls {
            lines.push("STARTTLS".to_owned());
        }
        Reply::multiline(250, lines)
    }

    /// Handles EHLO and HELO, which both reset any transaction (RFC 5321 4.1.4).
    async fn hello<S>(
        &mut self,
        io: &mut BufReader<S>,
        verb: &str,
        name: String,
        default: Reply,
    ) -> io::Result<Step>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if self.answer(io, verb, default).await?.is_positive() {
            self.transaction = None;
            self.shared
                .update_session(self.id, |record| record.ehlo = Some(name.clone()));
            self.ehlo = Some(name);
        }
        Ok(Step::Continue)
    }

    /// Accepts STARTTLS only when offered and not already encrypted; the caller then does the
    /// handshake on the raw stream.
    async fn start_tls<S>(&mut self, io: &mut BufReader<S>) -> io::Result<Step>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if self.tls {
            return self.refuse(io, 503, "5.5.1 TLS already active").await;
        }
        if !self.shared.with_script(|script| script.offers_tls()) {
            return self.refuse(io, 502, "5.5.1 STARTTLS not offered").await;
        }
        let ready = Reply::new(220, "2.0.0 ready to start TLS");
        if self.answer(io, "STARTTLS", ready).await?.is_positive() {
            return Ok(Step::StartTls);
        }
        Ok(Step::Continue)
    }
}
