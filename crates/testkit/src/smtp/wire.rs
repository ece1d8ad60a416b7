//! Reading command lines and message data off the wire, with bounded memory.
//!
//! Every read is capped so that a client sending endless bytes without a line break costs the
//! sink a bounded amount of memory and ends in an SMTP error rather than an allocation failure.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// Longest command line accepted. RFC 5321 allows 512 bytes; real clients exceed that with
/// long parameters, so the sink is generous and only guards against unbounded input.
pub(crate) const MAX_COMMAND_LINE: usize = 64 * 1024;

/// What reading one command line produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A full line, terminator included, is in the buffer.
    Complete,
    /// The line exceeded the limit before its terminator.
    TooLong,
    /// The client closed the connection (possibly mid-line).
    Closed,
}

/// What reading message data produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Data {
    /// The dot-unstuffed message, without the terminating `.` line.
    Complete(Vec<u8>),
    /// The terminator arrived but the message exceeded the size limit; its content was dropped.
    TooLarge,
    /// The client closed the connection before the terminator.
    Closed,
}

/// Reads one line (ending in LF) into `line`, replacing its contents.
pub(crate) async fn read_line<R>(
    reader: &mut R,
    line: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Line>
where
    R: AsyncBufRead + Unpin,
{
    line.clear();
    let read = (&mut *reader)
        .take(limit as u64)
        .read_until(b'\n', line)
        .await?;
    Ok(if line.ends_with(b"\n") {
        Line::Complete
    } else if read >= limit {
        Line::TooLong
    } else {
        Line::Closed
    })
}

/// Reads message data up to the `.` terminator line, removing dot-stuffing.
///
/// Line endings are kept exactly as sent, so a client's bare LFs stay visible to tests; a
/// terminator ending in a bare LF is accepted for the same reason (the test can then assert on
/// the bytes instead of timing out). Content beyond `limit` bytes is discarded as it arrives.
pub(crate) async fn read_data<R>(reader: &mut R, limit: usize) -> io::Result<Data>
where
    R: AsyncBufRead + Unpin,
{
    let mut data = Vec::new();
    let mut oversized = false;
    let mut at_line_start = true;
    loop {
        let start = data.len();
        // Three spare bytes so a terminator line always fits, even with the limit reached.
        let budget = limit.saturating_sub(start).saturating_add(3) as u64;
        let read = (&mut *reader)
            .take(budget)
            .read_until(b'\n', &mut data)
            .await?;
        let complete = data.ends_with(b"\n");
        if read == 0 || (!complete && (read as u64) < budget) {
            return Ok(Data::Closed);
        }

        // A line split by the budget continues in the next read and is not a line start.
        if at_line_start && is_terminator(&data[start..]) {
            data.truncate(start);
            return Ok(if oversized {
                Data::TooLarge
            } else {
                Data::Complete(data)
            });
        }
        if at_line_start && data[start] == b'.' {
            data.remove(start);
        }
        at_line_start = complete;

        if data.len() > limit {
            oversized = true;
            data.clear();
        }
    }
}

fn is_terminator(line: &[u8]) -> bool {
    line == b".\r\n" || line == b".\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn data_of(wire: &[u8], limit: usize) -> Data {
        let mut reader = wire;
        read_data(&mut reader, limit)
            .await
            .expect("reading from a slice cannot fail")
    }

    #[tokio::test]
    async fn dot_stuffing_is_removed_and_terminator_dropped() {
        let wire = b"Subject: x\r\n\r\n..leading dot\r\n.\r\n...\r\nend\r\n.\r\nQUIT\r\n";
        let expected = b"Subject: x\r\n\r\n.leading dot\r\n".to_vec();
        assert_eq!(data_of(wire, 1000).await, Data::Complete(expected));
    }

    #[tokio::test]
    async fn only_a_lone_dot_terminates() {
        // ". " is not a terminator, but its leading dot is still stuffing and is removed.
        let wire = b"a\r\n. \r\n..\r\n.\r\n";
        assert_eq!(
            data_of(wire, 1000).await,
            Data::Complete(b"a\r\n \r\n.\r\n".to_vec())
        );
        assert_eq!(data_of(b".\r\n", 1000).await, Data::Complete(Vec::new()));
    }

    #[tokio::test]
    async fn bare_lf_is_kept_and_terminates() {
        assert_eq!(
            data_of(b"a\nb\n.\n", 1000).await,
            Data::Complete(b"a\nb\n".to_vec())
        );
    }

    #[tokio::test]
    async fn eof_before_terminator_is_closed() {
        assert_eq!(data_of(b"a\r\nb", 1000).await, Data::Closed);
        assert_eq!(data_of(b"a\r\n", 1000).await, Data::Closed);
        assert_eq!(data_of(b"", 1000).await, Data::Closed);
    }

    #[tokio::test]
    async fn oversized_message_is_drained_to_the_terminator() {
        let mut wire = vec![b'x'; 5000];
        wire.extend_from_slice(b"\r\n.\r\nrest");
        let mut reader = &wire[..];
        assert_eq!(read_data(&mut reader, 100).await.ok(), Some(Data::TooLarge));
        assert_eq!(reader, b"rest");
    }

    #[tokio::test]
    async fn long_line_split_by_the_limit_is_not_mistaken_for_a_terminator() {
        // With a limit of 8 the first read takes 11 bytes, leaving ".\r\n" mid-line.
        let mut wire = vec![b'x'; 11];
        wire.extend_from_slice(b".\r\nmore\r\n.\r\n");
        let mut reader = &wire[..];
        assert_eq!(read_data(&mut reader, 8).await.ok(), Some(Data::TooLarge));
        assert!(reader.is_empty());
    }

    #[tokio::test]
    async fn command_lines_are_bounded() {
        let mut line = Vec::new();
        let mut reader: &[u8] = b"EHLO a\r\nxxxxxxxxxx";
        assert_eq!(
            read_line(&mut reader, &mut line, 100).await.ok(),
            Some(Line::Complete)
        );
        assert_eq!(line, b"EHLO a\r\n");
        assert_eq!(
            read_line(&mut reader, &mut line, 4).await.ok(),
            Some(Line::TooLong)
        );
        assert_eq!(
            read_line(&mut reader, &mut line, 100).await.ok(),
            Some(Line::Closed)
        );
    }
}
