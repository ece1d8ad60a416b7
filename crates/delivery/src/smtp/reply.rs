//! SMTP replies: parsing the (possibly multi-line) reply a server sends, and the parts of it
//! that classification reads.

use std::fmt;

/// A complete reply: a three-digit code and its text lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The reply code, 200 to 599.
    pub code: u16,
    /// Each line's text after the code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    /// 2xx: the command succeeded.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3xx: the server waits for more (after DATA).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4xx: a temporary failure.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The enhanced status code (`5.1.1`) at the start of the first line, when present.
    pub fn enhanced_code(&self) -> Option<&str> {
        let first = self.lines.first()?.split_whitespace().next()?;
        let mut parts = first.split('.');
        let class = parts.next()?;
        let valid = matches!(class, "2" | "4" | "5")
            && parts.clone().count() == 2
            && parts
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
        valid.then_some(first)
    }

    /// Whether an EHLO reply advertises `keyword` (case-insensitive).
    pub fn advertises(&self, keyword: &str) -> bool {
        self.lines.iter().skip(1).any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|word| word.eq_ignore_ascii_case(keyword))
        })
    }

    /// The first parameter an EHLO reply gives an extension, such as `35882577` in
    /// `SIZE 35882577`; `None` when the extension is not advertised or has no parameter.
    pub fn parameter(&self, keyword: &str) -> Option<&str> {
        self.lines.iter().skip(1).find_map(|line| {
            let mut words = line.split_whitespace();
            words
                .next()
                .filter(|word| word.eq_ignore_ascii_case(keyword))
                .and_then(|_| words.next())
        })
    }

    /// The reply as one line, the form kept in events: `550 5.1.1 no such user`, with the
    /// lines of a multi-line reply joined by spaces.
    pub fn one_line(&self) -> String {
        let mut out = self.code.to_string();
        for line in &self.lines {
            if !line.is_empty() {
                out.push(' ');
                out.push_str(line);
            }
        }
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.one_line())
    }
}

/// One line of a reply, as parsed.
#[derive(Debug, PartialEq, Eq)]
pub struct ReplyLine<'a> {
    /// The three-digit code.
    pub code: u16,
    /// True when more lines follow (`250-…`).
    pub more: bool,
    /// The text after the separator.
    pub text: &'a str,
}

/// Parses one reply line (without its CRLF). `None` for anything that is not `NNN`, `NNN text`
/// or `NNN-text` with a code from 200 to 599.
pub fn parse_line(line: &str) -> Option<ReplyLine<'_>> {
    let digits = line.get(..3)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u16 = digits.parse().ok()?;
    if !(200..600).contains(&code) {
        return None;
    }
    let rest = line.get(3..)?;
    let (more, text) = match rest.as_bytes().first() {
        None => (false, ""),
        Some(b' ') => (false, rest.get(1..)?),
        Some(b'-') => (true, rest.get(1..)?),
        Some(_) => return None,
    };
    Some(ReplyLine { code, more, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_continuation_lines() {
        assert_eq!(
            parse_line("250 ok"),
            Some(ReplyLine {
                code: 250,
                more: false,
                text: "ok"
            })
        );
        assert_eq!(
            parse_line("250-PIPELINING"),
            Some(ReplyLine {
                code: 250,
                more: true,
                text: "PIPELINING"
            })
        );
        assert_eq!(
            parse_line("354"),
            Some(ReplyLine {
                code: 354,
                more: false,
                text: ""
            })
        );
    }

    #[test]
    fn refuses_lines_that_are_not_replies() {
        for garbage in [
            "",
            "25",
            "abc def",
            "250x",
            "999 no",
            "099 no",
            "HTTP/1.1 400 Bad",
        ] {
            assert_eq!(parse_line(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn reads_enhanced_codes_and_keywords() {
        let reply = Reply {
            code: 550,
            lines: vec!["5.1.1 <a@b> no such user".into()],
        };
        assert_eq!(reply.enhanced_code(), Some("5.1.1"));
        assert_eq!(reply.one_line(), "550 5.1.1 <a@b> no such user");
        let plain = Reply {
            code: 550,
            lines: vec!["no such user".into()],
        };
        assert_eq!(plain.enhanced_code(), None);
        let ehlo = Reply {
            code: 250,
            lines: vec!["mx.test".into(), "pipelining".into(), "SIZE 100".into()],
        };
        assert!(
            ehlo.advertises("PIPELINING")
                && ehlo.advertises("size")
                && !ehlo.advertises("STARTTLS")
        );
    }
}
