//! Statement-line removal: a statement tag alone on its line takes the whole line with it.
//!
//! `{{if x}}`, `{{each y}}`, `{{else}}` and `{{end}}` usually sit on lines of their own so the
//! template stays readable; without this pass each would leave a blank line in the output. The
//! pass only narrows the kept range of the neighbouring text; `raw` stays untouched so URL
//! detection still sees the source as written.

use crate::lexer::Segment;

/// Narrows the text around every run of statement tags that is alone on its line, such as
/// `{{end}}` or `{{end}}{{end}}`.
pub(crate) fn remove_statement_lines(segments: &mut [Segment<'_>]) {
    let is_statement =
        |s: Option<&Segment<'_>>| matches!(s, Some(Segment::Tag(tag)) if tag.statement().is_some());
    let mut i = 0;
    while i < segments.len() {
        if !is_statement(segments.get(i)) {
            i += 1;
            continue;
        }
        let mut last = i;
        while is_statement(segments.get(last + 1)) {
            last += 1;
        }
        let blank = leading_blank(segments, i).zip(trailing_blank(segments, last));
        if let Some((before, after)) = blank {
            if let Some(Segment::Text(text)) = i.checked_sub(1).and_then(|j| segments.get_mut(j)) {
                // Clamping keeps start <= end even if a neighbour already narrowed this text.
                text.end = text.end.min(before).max(text.start);
            }
            if let Some(Segment::Text(text)) = segments.get_mut(last + 1) {
                text.start = text.start.max(after).min(text.end);
            }
        }
        i = last + 1;
    }
}

/// Where the blank run before tag `i` starts in the preceding text (`Some(0)` for none), or
/// `None` when something other than spaces sits between the line start and the tag.
fn leading_blank(segments: &[Segment<'_>], i: usize) -> Option<usize> {
    let Some(prev) = i.checked_sub(1) else {
        return Some(0);
    };
    let Some(Segment::Text(text)) = segments.get(prev) else {
        return None;
    };
    let line_start = text.raw.rfind('\n').map(|n| n + 1);
    let start = match line_start {
        Some(start) => start,
        None if prev == 0 => 0,
        None => return None,
    };
    let blank = text.raw.get(start..).is_some_and(is_blank);
    blank.then_some(start)
}

/// Where the kept text after tag `i` begins (just past the newline ending the tag's line), or
/// `None` when the rest of the line is not blank.
fn trailing_blank(segments: &[Segment<'_>], i: usize) -> Option<usize> {
    let next = i + 1;
    let Some(segment) = segments.get(next) else {
        return Some(0);
    };
    let Segment::Text(text) = segment else {
        return None;
    };
    let (rest_of_line, resume) = match text.raw.find('\n') {
        Some(n) => (text.raw.get(..n), n + 1),
        None if next + 1 == segments.len() => (Some(text.raw), text.raw.len()),
        None => return None,
    };
    rest_of_line.is_some_and(is_blank).then_some(resume)
}

fn is_blank(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::segments;

    fn kept(src: &str) -> String {
        let mut segs = segments(src, crate::Part::Text).expect("lexes");
        remove_statement_lines(&mut segs);
        segs.iter()
            .map(|s| match s {
                Segment::Text(t) => t.kept().to_string(),
                Segment::Tag(_) => "|".to_string(),
            })
            .collect()
    }

    #[test]
    fn removes_lines_holding_only_a_statement() {
        assert_eq!(kept("a\n  {{if x}}  \nb\n{{end}}\nc"), "a\n|b\n|c");
    }

    #[test]
    fn handles_template_start_and_end() {
        assert_eq!(kept("{{if x}}\nb\n{{end}}"), "|b\n|");
        assert_eq!(kept("  {{if x}}\r\nb\n  {{end}}  "), "|b\n|");
    }

    #[test]
    fn keeps_lines_shared_with_other_content() {
        assert_eq!(kept("a {{if x}}\nb{{end}}\n"), "a |\nb|\n");
        assert_eq!(kept("{{if x}}{{y}}{{end}}\n"), "|||\n");
    }

    #[test]
    fn keeps_expression_lines() {
        assert_eq!(kept("a\n{{ y }}\nb"), "a\n|\nb");
    }

    #[test]
    fn consecutive_statement_lines_all_disappear() {
        assert_eq!(kept("{{if a}}\n{{if b}}\nx\n{{end}}\n{{end}}\n"), "||x\n||");
    }

    #[test]
    fn a_line_of_several_statements_disappears() {
        assert_eq!(
            kept("A\n{{if a}}{{if b}}\nX\n{{end}}{{end}}\nB"),
            "A\n||X\n||B"
        );
        assert_eq!(kept("A\n{{if a}}{{y}}\nB"), "A\n||\nB");
    }
}
