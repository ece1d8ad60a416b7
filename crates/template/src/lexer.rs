//! Lexer: splits source into literal text and `{{ }}` / `{{{ }}}` tags, and tags into tokens.
//!
//! Tags are tokenized as they are found, so a `}}` inside a string literal does not close the
//! tag. Line numbers are tracked here because every later error is reported by line.

use crate::amp::AmpTemplates;
use crate::names;
use crate::token::{Sym, Token, TokenKind};
use crate::{CompileError, Part};

/// A piece of template source: literal text or one tag.
#[derive(Debug)]
pub(crate) enum Segment<'s> {
    /// Literal text.
    Text(Text<'s>),
    /// A `{{ }}` or `{{{ }}}` tag.
    Tag(Tag<'s>),
}

/// Literal text: `raw` as written; `start..end` is the part left after statement-line removal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Text<'s> {
    pub raw: &'s str,
    pub start: usize,
    pub end: usize,
}

impl<'s> Text<'s> {
    fn new(raw: &'s str) -> Self {
        Text {
            raw,
            start: 0,
            end: raw.len(),
        }
    }

    /// The text that is actually output.
    pub fn kept(&self) -> &'s str {
        self.raw.get(self.start..self.end).unwrap_or_default()
    }
}

/// One tag with its tokens.
#[derive(Debug)]
pub(crate) struct Tag<'s> {
    /// True for `{{{ }}}`, whose output is never escaped.
    pub triple: bool,
    /// Line of the opening braces.
    pub line: u32,
    /// Tokens between the braces.
    pub tokens: Vec<Token<'s>>,
}

impl Tag<'_> {
    /// The statement keyword this tag starts with, if it is a statement.
    pub fn statement(&self) -> Option<&str> {
        match self.tokens.first().map(|t| &t.kind) {
            Some(TokenKind::Ident(word)) if names::STATEMENTS.contains(word) => Some(word),
            _ => None,
        }
    }
}

/// Splits `source` into segments, or reports the first lexical error.
///
/// In AMP HTML, `<template type="amp-mustache">` regions are kept as literal text.
pub(crate) fn segments(source: &str, part: Part) -> Result<Vec<Segment<'_>>, CompileError> {
    let amp = if part == Part::AmpHtml {
        AmpTemplates::new(source)
    } else {
        None
    };
    let mut verbatim = amp.as_ref().and_then(|a| a.next_region(0));
    let mut out = Vec::new();
    let (mut text_start, mut search, mut line) = (0, 0, 1u32);
    while let Some(open) = source
        .get(search..)
        .and_then(|s| s.find("{{"))
        .map(|i| i + search)
    {
        while let Some(passed) = verbatim.as_ref().filter(|r| r.end <= open) {
            verbatim = amp.as_ref().and_then(|a| a.next_region(passed.end));
        }
        let inside = verbatim.as_ref().is_some_and(|r| r.start <= open);
        if inside && !evaluated_in_amp_mustache(source, open) {
            // The mail client's own mustache tag: it stays text, braces and all.
            search = source
                .get(open..)
                .and_then(|s| s.find("}}"))
                .map_or(source.len(), |c| open + c + 2);
            continue;
        }
        let text = source.get(text_start..open).unwrap_or_default();
        push_text(&mut out, text);
        line = line.saturating_add(count_newlines(text));
        let (tag, end, end_line) = lex_tag(source, open, line)?;
        out.push(Segment::Tag(tag));
        (text_start, search, line) = (end, end, end_line);
        if !inside && verbatim.as_ref().is_some_and(|r| r.start < end) {
            // The marker sat inside this tag (e.g. in a string literal): look again after it.
            verbatim = amp.as_ref().and_then(|a| a.next_region(end));
        }
    }
    push_text(&mut out, source.get(text_start..).unwrap_or_default());
    Ok(out)
}

/// Whether the tag at `open`, inside an amp-mustache template, is still this language's, as
/// SparkPost documents: one naming `sparkpost` or `loop_var`, a brace macro such as
/// `opening_double_curly()`, or `else` and `end`, which close statements opened outside.
fn evaluated_in_amp_mustache(source: &str, open: usize) -> bool {
    let rest = source.get(open..).unwrap_or_default();
    let body = rest
        .get(..rest.find("}}").unwrap_or(rest.len()))
        .unwrap_or_default();
    let body = body.trim_start_matches('{').trim();
    body.contains("sparkpost")
        || body.contains("loop_var")
        || body.contains("_curly(")
        || body == "else"
        || body == "end"
}

fn push_text<'s>(out: &mut Vec<Segment<'s>>, text: &'s str) {
    if !text.is_empty() {
        out.push(Segment::Text(Text::new(text)));
    }
}

/// Lexes the tag whose braces start at byte `open`; returns it with the byte offset and the
/// line just past its closing braces.
fn lex_tag(source: &str, open: usize, line: u32) -> Result<(Tag<'_>, usize, u32), CompileError> {
    let triple = source.get(open..).is_some_and(|t| t.starts_with("{{{"));
    let body_start = open + if triple { 3 } else { 2 };
    let body = source.get(body_start..).unwrap_or_default();
    let mut cursor = Cursor {
        src: body,
        pos: 0,
        line,
        open_line: line,
        triple,
    };
    let tokens = cursor.tag_tokens()?;
    Ok((
        Tag {
            triple,
            line,
            tokens,
        },
        body_start + cursor.pos,
        cursor.line,
    ))
}

fn count_newlines(text: &str) -> u32 {
    let n = text.bytes().filter(|&b| b == b'\n').count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The character a backslash escape stands for; unknown escapes stand for themselves.
fn unescape(escaped: char) -> char {
    match escaped {
        'n' => '\n',
        't' => '\t',
        other => other,
    }
}

/// Reads the tokens of one tag, starting just after its opening braces.
struct Cursor<'s> {
    src: &'s str,
    pos: usize,
    line: u32,
    open_line: u32,
    triple: bool,
}

impl<'s> Cursor<'s> {
    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.src.as_bytes().get(self.pos + ahead).copied()
    }

    fn remaining(&self) -> &'s str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    fn error(&self, message: impl Into<String>) -> CompileError {
        CompileError::new(self.line, message)
    }

    /// Tokens up to and including the closing braces, which are consumed.
    fn tag_tokens(&mut self) -> Result<Vec<Token<'s>>, CompileError> {
        let mut tokens = Vec::new();
        loop {
            self.skip_whitespace();
            let Some(byte) = self.peek_at(0) else {
                let open = if self.triple { "{{{" } else { "{{" };
                let msg = format!("unclosed '{open}' opened on line {}", self.open_line);
                return Err(CompileError::new(self.line, msg));
            };
            if byte == b'}' {
                self.close()?;
                return Ok(tokens);
            }
            let line = self.line;
            let kind = self.token(byte)?;
            tokens.push(Token { kind, line });
        }
    }

    fn skip_whitespace(&mut self) {
        while let Some(byte) = self.peek_at(0) {
            match byte {
                b'\n' => self.line = self.line.saturating_add(1),
                b' ' | b'\t' | b'\r' => {}
                _ => return,
            }
            self.pos += 1;
        }
    }

    fn close(&mut self) -> Result<(), CompileError> {
        let want = if self.triple { 3 } else { 2 };
        let run = (0..want)
            .take_while(|&i| self.peek_at(i) == Some(b'}'))
            .count();
        if run < want {
            let msg = if self.triple {
                "expected '}}}' to close '{{{'"
            } else {
                "unexpected '}'"
            };
            return Err(self.error(msg));
        }
        self.pos += want;
        Ok(())
    }

    fn token(&mut self, byte: u8) -> Result<TokenKind<'s>, CompileError> {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => Ok(TokenKind::Ident(self.ident())),
            b'0'..=b'9' => self.number(),
            b'\'' | b'"' => self.string(byte),
            _ => self.symbol().map(TokenKind::Sym),
        }
    }

    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'s str {
        let start = self.pos;
        while self.peek_at(0).is_some_and(&pred) {
            self.pos += 1;
        }
        self.src.get(start..self.pos).unwrap_or_default()
    }

    fn ident(&mut self) -> &'s str {
        self.take_while(|b| b.is_ascii_alphanumeric() || b == b'_')
    }

    fn number(&mut self) -> Result<TokenKind<'s>, CompileError> {
        let start = self.pos;
        self.take_while(|b| b.is_ascii_digit());
        if self.peek_at(0) == Some(b'.') && self.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
            self.take_while(|b| b.is_ascii_digit());
        }
        // An exponent, as Lua writes it: `1e3`, `2.5E-2`.
        if matches!(self.peek_at(0), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.peek_at(1), Some(b'+' | b'-')));
            if self.peek_at(1 + sign).is_some_and(|b| b.is_ascii_digit()) {
                self.pos += 1 + sign;
                self.take_while(|b| b.is_ascii_digit());
            }
        }
        if self
            .peek_at(0)
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        {
            // Name the whole token, not only the digits before the stray letter.
            self.take_while(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
            let text = self.src.get(start..self.pos).unwrap_or_default();
            return Err(self.error(format!("malformed number '{text}'")));
        }
        let text = self.src.get(start..self.pos).unwrap_or_default();
        text.parse()
            .map(TokenKind::Num)
            .map_err(|_| self.error(format!("malformed number '{text}'")))
    }

    /// A quoted string; `\\`, `\'`, `\"`, `\n` and `\t` are the recognised escapes.
    fn string(&mut self, quote: u8) -> Result<TokenKind<'s>, CompileError> {
        let start_line = self.line;
        let mut value = String::new();
        let mut chars = self.remaining().char_indices().skip(1);
        while let Some((offset, c)) = chars.next() {
            let (written, meant) = match c {
                _ if c == char::from(quote) => {
                    self.pos += offset + 1;
                    return Ok(TokenKind::Str(value));
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => (escaped, unescape(escaped)),
                    None => break,
                },
                _ => (c, c),
            };
            if written == '\n' {
                self.line = self.line.saturating_add(1);
            }
            value.push(meant);
        }
        let msg = format!("unterminated string literal starting on line {start_line}");
        Err(self.error(msg))
    }

    fn symbol(&mut self) -> Result<Sym, CompileError> {
        let rest = self.remaining();
        if let Some((sym, len)) = Sym::at_start_of(rest) {
            self.pos += len;
            return Ok(sym);
        }
        if rest.starts_with('=') {
            return Err(self.error("unexpected '=': use '==' to compare"));
        }
        Err(self.unexpected_char())
    }

    fn unexpected_char(&self) -> CompileError {
        let c = self.remaining().chars().next().unwrap_or('?');
        self.error(format!("unexpected character '{}'", c.escape_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag_tokens(src: &str) -> Vec<TokenKind<'_>> {
        let segs = segments(src, Part::Text).expect("lexes");
        match segs.into_iter().next() {
            Some(Segment::Tag(tag)) => tag.tokens.into_iter().map(|t| t.kind).collect(),
            other => panic!("expected a tag, got {other:?}"),
        }
    }

    #[test]
    fn splits_text_and_tags() {
        let segs = segments("a {{ x }} b {{{ y }}}", Part::Text).expect("lexes");
        assert_eq!(segs.len(), 4);
        assert!(matches!(segs[0], Segment::Text(Text { raw: "a ", .. })));
        assert!(matches!(&segs[1], Segment::Tag(t) if !t.triple));
        assert!(matches!(&segs[3], Segment::Tag(t) if t.triple));
    }

    #[test]
    fn closing_braces_inside_strings_do_not_close_the_tag() {
        let toks = tag_tokens("{{ x or '}}' }}");
        assert_eq!(toks.last(), Some(&TokenKind::Str("}}".into())));
    }

    #[test]
    fn lexes_operators_numbers_and_escapes() {
        let toks = tag_tokens(r#"{{ a.b[1] >= 2.5 ~= "q\"x\n" }}"#);
        assert_eq!(toks.len(), 10);
        assert_eq!(toks[7], TokenKind::Num(2.5));
        assert_eq!(toks[8], TokenKind::Sym(Sym::Ne));
        assert_eq!(toks[9], TokenKind::Str("q\"x\n".into()));
    }

    #[test]
    fn numbers_take_lua_exponents_and_malformed_ones_are_named_whole() {
        for (source, value) in [("1e3", 1000.0), ("2.5E-2", 0.025), ("7e+1", 70.0)] {
            let tag = format!("{{{{ {source} }}}}");
            assert_eq!(tag_tokens(&tag), [TokenKind::Num(value)], "{source}");
        }
        let err = segments("{{ 12abc }}", Part::Text).expect_err("malformed");
        assert_eq!(err.message, "malformed number '12abc'");
    }

    #[test]
    fn reports_unclosed_tag_with_its_line() {
        let err = segments("a\nb {{ x\n\n", Part::Text).expect_err("unclosed");
        assert_eq!(err.message, "unclosed '{{' opened on line 2");
        assert_eq!(err.line, 4);
    }

    #[test]
    fn reports_bad_characters_and_strings() {
        assert!(segments("{{ a = 1 }}", Part::Text).is_err());
        assert!(segments("{{ a ; }}", Part::Text).is_err());
        assert!(segments("{{ 'abc }}", Part::Text).is_err());
        assert!(segments("{{ 12ab }}", Part::Text).is_err());
        assert!(segments("{{{ a }}", Part::Text).is_err());
    }

    #[test]
    fn amp_mustache_templates_stay_text_in_amp_only() {
        let src = "{{a}}\n<template type=\"amp-mustache\">{{b}}\n</template> {{c}}";
        let tag_lines = |part| -> Vec<u32> {
            let segs = segments(src, part).expect("lexes");
            segs.iter()
                .filter_map(|s| match s {
                    Segment::Tag(t) => Some(t.line),
                    Segment::Text(_) => None,
                })
                .collect()
        };
        assert_eq!(tag_lines(Part::AmpHtml), [1, 3]);
        assert_eq!(tag_lines(Part::Html), [1, 2, 3]);
        let in_string = "{{ '<template amp-mustache>' }}{{x}}";
        assert_eq!(segments(in_string, Part::AmpHtml).expect("lexes").len(), 2);
    }

    #[test]
    fn tracks_lines_across_segments() {
        let segs = segments("one\ntwo\n{{\nx }}{{ y }}", Part::Text).expect("lexes");
        let lines: Vec<u32> = segs
            .iter()
            .filter_map(|s| match s {
                Segment::Tag(t) => Some(t.tokens[0].line),
                Segment::Text(_) => None,
            })
            .collect();
        assert_eq!(lines, vec![4, 4]);
    }
}
