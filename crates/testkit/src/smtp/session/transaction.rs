//! The mail transaction: `MAIL`, `RCPT` and `DATA`, up to recording the accepted message.
//!
//! Protocol errors (bad command order, oversized messages) get fixed replies before the script
//! is consulted, so a script can never make the sink accept an invalid transaction.

use std::io;
use std::time::Instant;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};

use super::{Session, Step, Transaction};
use crate::smtp::record::Received;
use crate::smtp::reply::Reply;
use crate::smtp::wire::{self, Data, MAX_COMMAND_LINE};

impl Session {
    /// Opens a transaction; refuses out of order or when the declared size is over the limit.
    /// The `parameters` are recorded with the message, unchecked.
    pub(super) async fn mail<S>(
        &mut self,
        io: &mut BufReader<S>,
        from: String,
        size: Option<u64>,
        parameters: Vec<String>,
    ) -> io::Result<Step>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if self.ehlo.is_none() {
            return self.refuse(io, 503, "5.5.1 send EHLO or HELO first").await;
        }
        if self.transaction.is_some() {
            return self.refuse(io, 503, "5.5.1 nested MAIL command").await;
        }
        let limit = self.shared.with_script(|script| script.size_limit()) as u64;
        if size.is_some_and(|size| size > limit) {
            return self
                .refuse(io, 552, "5.3.4 message size exceeds fixed limit")
                .await;
        }
        if self
            .answer(io, "MAIL", Reply::new(250, "2.1.0 sender OK"))
            .await?
            .is_positive()
        {
            self.transaction = Some(Transaction {
                from,
                parameters,
                recipients: Vec::new(),
            });
        }
        Ok(Step::Continue)
    }

    /// Adds a recipient to the open transaction if the (scripted) reply accepts it.
    pub(super) async fn rcpt<S>(&mut self, io: &mut BufReader<S>, to: String) -> io::Result<Step>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if self.transaction.is_none() {
            return self.refuse(io, 503, "5.5.1 need MAIL before RCPT").await;
        }
        let scripted = self
            .shared
            .with_script(|script| script.next_rcpt_reply(&to));
        let reply = scripted.unwrap_or_else(|| Reply::new(250, "2.1.5 recipient OK"));
        self.send(io, &reply).await?;
        if let Some(transaction) = self.transaction.as_mut().filter(|_| reply.is_positive()) {
            transaction.recipients.push(to);
        }
        Ok(Step::Continue)
    }

    /// Checks the transaction can take data, then sends the go-ahead and receives it.
    pub(super) async fn data<S>(&mut self, io: &mut BufReader<S>) -> io::Result<Step>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(transaction) = &self.transaction else {
            return self.refuse(io, 503, "5.5.1 need MAIL before DATA").await;
        };
        // With PIPELINING the client sends DATA even when every RCPT failed (RFC 2920 3.1).
        let Some(first) = transaction.recipients.first().cloned() else {
            return self.refuse(io, 554, "5.5.1 no valid recipients").await;
        };

        let go_ahead = Reply::new(354, "end data with <CR><LF>.<CR><LF>");
        let reply = self.answer(io, "DATA", go_ahead).await?;
        if !reply.code().is_some_and(|code| (300..400).contains(&code)) {
            return Ok(Step::Continue);
        }
        self.receive(io, &first).await
    }

    /// Reads the message content after a go-ahead and answers the final dot.
    async fn receive<S>(&mut self, io: &mut BufReader<S>, first: &str) -> io::Result<Step>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (drops, limit) = self
            .shared
            .with_script(|script| (script.drops_mid_data(first), script.size_limit()));
        if drops {
            // Take the first line so the client is demonstrably mid-transfer, then vanish.
            wire::read_line(io, &mut self.line, MAX_COMMAND_LINE).await?;
            return Ok(Step::Close);
        }

        match wire::read_data(io, limit).await? {
            Data::Closed => Ok(Step::Close),
            Data::TooLarge => {
                self.transaction = None;
                self.refuse(io, 552, "5.3.4 message size exceeds fixed limit")
                    .await
            }
            Data::Complete(message) => self.finish(io, first, message).await,
        }
    }

    /// Answers the final dot. A positive reply commits the message before it is sent, as a
    /// real server would, so a client that loses the reply has still delivered the message.
    async fn finish<S>(
        &mut self,
        io: &mut BufReader<S>,
        first: &str,
        message: Vec<u8>,
    ) -> io::Result<Step>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(transaction) = self.transaction.take() else {
            return Ok(Step::Continue);
        };

        let queue_id = self.shared.next_queue_id();
        let scripted = self
            .shared
            .with_script(|script| script.next_data_reply(first));
        let reply =
            scripted.unwrap_or_else(|| Reply::new(250, &format!("2.0.0 OK: queued as {queue_id}")));
        if reply.code().is_some_and(|code| (200..300).contains(&code)) {
            let received = self.received(transaction, message, queue_id);
            self.shared.record_message(received);
        }
        self.send(io, &reply).await?;
        Ok(Step::Continue)
    }

    fn received(&self, transaction: Transaction, data: Vec<u8>, queue_id: String) -> Received {
        Received {
            mail_from: transaction.from,
            mail_parameters: transaction.parameters,
            rcpt_to: transaction.recipients,
            data: Bytes::from(data),
            client: self.client,
            ehlo: self.ehlo.clone().unwrap_or_default(),
            tls: self.tls,
            at: Instant::now(),
            queue_id,
        }
    }
}
