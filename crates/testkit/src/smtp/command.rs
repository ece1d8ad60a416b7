//! Parsing of SMTP command lines into [`Command`]s.
//!
//! The parser is deliberately strict about the things an MTA must get right (angle brackets
//! around paths, numeric `SIZE`), so the sink surfaces client bugs instead of papering over them,
//! and lenient only where real servers commonly are (verb case, a space after `FROM:`).

/// A command the sink understands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    Ehlo(String),
    Helo(String),
    /// `MAIL FROM`, with the reverse path ("" for the null sender), the declared `SIZE` and
    /// every parameter as sent (`SIZE=1234`, `BODY=8BITMIME`).
    Mail {
        from: String,
        size: Option<u64>,
        parameters: Vec<String>,
    },
    Rcpt {
        to: String,
    },
    Data,
    Rset,
    Noop,
    Quit,
    StartTls,
}

/// Why a line is not a usable command; each maps onto a standard SMTP error reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CommandError {
    /// The verb is not one the sink implements (reply 500).
    Unknown(String),
    /// The verb is known but its arguments are malformed (reply 501).
    Syntax(&'static str),
}

impl Command {
    /// The upper-case verb, as used to key scripted replies.
    pub(crate) fn verb(&self) -> &'static str {
        match self {
            Command::Ehlo(_) => "EHLO",
            Command::Helo(_) => "HELO",
            Command::Mail { .. } => "MAIL",
            Command::Rcpt { .. } => "RCPT",
            Command::Data => "DATA",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::StartTls => "STARTTLS",
        }
    }
}

/// Parses one command line; trailing CR/LF are ignored.
pub(crate) fn parse(line: &str) -> Result<Command, CommandError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (verb, args) = match line.split_once(' ') {
        Some((verb, args)) => (verb, args.trim()),
        None => (line, ""),
    };
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" => domain_argument(args).map(Command::Ehlo),
        "HELO" => domain_argument(args).map(Command::Helo),
        "MAIL" => parse_mail(args),
        "RCPT" => parse_rcpt(args),
        "DATA" => no_arguments(args, Command::Data),
        "RSET" => no_arguments(args, Command::Rset),
        // NOOP may carry a string argument, which is ignored (RFC 5321 4.1.1.9).
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_arguments(args, Command::Quit),
        "STARTTLS" => no_arguments(args, Command::StartTls),
        _ => Err(CommandError::Unknown(verb.to_owned())),
    }
}

fn domain_argument(args: &str) -> Result<String, CommandError> {
    match args.split_whitespace().next() {
        Some(domain) => Ok(domain.to_owned()),
        None => Err(CommandError::Syntax(
            "a domain or address literal is required",
        )),
    }
}

fn no_arguments(args: &str, command: Command) -> Result<Command, CommandError> {
    if args.is_empty() {
        Ok(command)
    } else {
        Err(CommandError::Syntax("this command takes no arguments"))
    }
}

fn parse_mail(args: &str) -> Result<Command, CommandError> {
    let rest = strip_keyword(args, "FROM:").ok_or(CommandError::Syntax("expected FROM:<path>"))?;
    let (from, params) = split_path(rest)?;
    let mut size = None;
    let parameters = params.split_whitespace().map(str::to_owned).collect();
    for param in params.split_whitespace() {
        if let Some((key, value)) = param.split_once('=') {
            if key.eq_ignore_ascii_case("SIZE") {
                let parsed = value
                    .parse()
                    .map_err(|_| CommandError::Syntax("bad SIZE value"))?;
                size = Some(parsed);
            }
        }
    }
    Ok(Command::Mail {
        from,
        size,
        parameters,
    })
}

fn parse_rcpt(args: &str) -> Result<Command, CommandError> {
    let rest = strip_keyword(args, "TO:").ok_or(CommandError::Syntax("expected TO:<path>"))?;
    let (to, _params) = split_path(rest)?;
    if to.is_empty() {
        return Err(CommandError::Syntax(
            "the null path is not a valid recipient",
        ));
    }
    Ok(Command::Rcpt { to })
}

/// Strips a case-insensitive keyword such as `FROM:` and any spaces after it.
fn strip_keyword<'a>(args: &'a str, keyword: &str) -> Option<&'a str> {
    let head = args.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| args[keyword.len()..].trim_start())
}

/// Splits `<path> params` into the mailbox inside the brackets and the parameter string.
fn split_path(rest: &str) -> Result<(String, &str), CommandError> {
    let inner = rest
        .strip_prefix('<')
        .ok_or(CommandError::Syntax("path must be in <>"))?;
    let close = inner
        .find('>')
        .ok_or(CommandError::Syntax("unterminated path"))?;
    let mailbox = strip_source_route(&inner[..close]);
    Ok((mailbox.to_owned(), &inner[close + 1..]))
}

/// Drops an obsolete source route (`@relay1,@relay2:user@host`), which RFC 5321 says to ignore.
fn strip_source_route(path: &str) -> &str {
    match path
        .strip_prefix('@')
        .and_then(|route| route.split_once(':'))
    {
        Some((_route, mailbox)) => mailbox,
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(from: &str, size: Option<u64>, parameters: &[&str]) -> Command {
        Command::Mail {
            from: from.to_owned(),
            size,
            parameters: parameters.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(
            parse("ehlo client.test\r\n"),
            Ok(Command::Ehlo("client.test".into()))
        );
        assert_eq!(parse("Data"), Ok(Command::Data));
        assert_eq!(parse("StartTLS\r\n"), Ok(Command::StartTls));
        assert_eq!(parse("noop anything at all"), Ok(Command::Noop));
    }

    #[test]
    fn mail_from_with_params() {
        assert_eq!(
            parse("MAIL FROM:<a@b.test> SIZE=1234 BODY=8BITMIME"),
            Ok(mail(
                "a@b.test",
                Some(1234),
                &["SIZE=1234", "BODY=8BITMIME"]
            ))
        );
        assert_eq!(
            parse("mail from: <a@b.test>"),
            Ok(mail("a@b.test", None, &[]))
        );
        assert_eq!(parse("MAIL FROM:<>"), Ok(mail("", None, &[])));
    }

    #[test]
    fn rcpt_to_strips_brackets_and_source_routes() {
        let expected = Ok(Command::Rcpt {
            to: "u@c.test".into(),
        });
        assert_eq!(parse("RCPT TO:<u@c.test> NOTIFY=NEVER"), expected);
        assert_eq!(
            parse("rcpt to:<@relay.test,@other.test:u@c.test>"),
            expected
        );
    }

    #[test]
    fn malformed_arguments_are_syntax_errors() {
        for line in [
            "MAIL FROM:a@b.test",
            "MAIL FROM:<a@b.test",
            "MAIL TO:<a@b.test>",
            "MAIL FROM:<a@b.test> SIZE=big",
            "RCPT TO:<>",
            "RCPT",
            "EHLO",
            "DATA now",
        ] {
            assert!(
                matches!(parse(line), Err(CommandError::Syntax(_))),
                "{line}"
            );
        }
    }

    #[test]
    fn unknown_and_garbage_lines_are_unknown_commands() {
        assert_eq!(
            parse("VRFY root"),
            Err(CommandError::Unknown("VRFY".into()))
        );
        assert_eq!(parse(""), Err(CommandError::Unknown(String::new())));
        assert!(matches!(
            parse("\u{0}\u{fffd}é MAIL"),
            Err(CommandError::Unknown(_))
        ));
    }

    #[test]
    fn multibyte_text_near_keywords_does_not_panic() {
        assert!(parse("MAIL é").is_err());
        assert!(parse("RCPT ééééééé").is_err());
    }
}
