//! Parser: turns lexed segments into the block structure of [`Node`]s.
//!
//! Owns statement matching (`if`/`elseif`/`else`/`each`/`end`), the compile-time choice of
//! escaping for each output tag, and the block nesting limit. Expressions are delegated to
//! [`expr::ExprParser`].

mod expr;

use crate::ast::{Branch, Escape, Expr, Func, Node};
use crate::lexer::{self, Segment, Tag};
use crate::names::DYNAMIC_ROOTS;
use crate::token::{Sym, TokenKind};
use crate::{elide, escape, CompileError, Part};
use expr::ExprParser;

/// Maximum nesting of `if`/`each` blocks.
const MAX_BLOCK_DEPTH: u32 = 32;

/// Compiles `source` for `part` into its top-level nodes.
pub(crate) fn parse(source: &str, part: Part) -> Result<Vec<Node>, CompileError> {
    let mut segments = lexer::segments(source, part)?;
    elide::remove_statement_lines(&mut segments);
    let last_line = source
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        .saturating_add(1);
    let mut parser = Parser {
        segments: segments.into_iter(),
        part,
        in_url: false,
        depth: 0,
        last_line: u32::try_from(last_line).unwrap_or(u32::MAX),
    };
    let (nodes, end) = parser.block()?;
    match end {
        Terminator::Eof => Ok(nodes),
        Terminator::End(line) => Err(CompileError::new(
            line,
            "'end' without a matching 'if' or 'each'",
        )),
        Terminator::Else(line) => Err(CompileError::new(line, "'else' without a matching 'if'")),
        Terminator::ElseIf(_, line) => {
            Err(CompileError::new(line, "'elseif' without a matching 'if'"))
        }
    }
}

/// What ended a block.
enum Terminator {
    Eof,
    End(u32),
    Else(u32),
    ElseIf(Expr, u32),
}

struct Parser<'s> {
    segments: std::vec::IntoIter<Segment<'s>>,
    part: Part,
    /// Whether the literal text so far leaves us inside an `http(s)://` URL.
    in_url: bool,
    depth: u32,
    last_line: u32,
}

impl<'s> Parser<'s> {
    /// Nodes up to the next block terminator (or the end of the source).
    fn block(&mut self) -> Result<(Vec<Node>, Terminator), CompileError> {
        let mut nodes = Vec::new();
        while let Some(segment) = self.segments.next() {
            match segment {
                Segment::Text(text) => {
                    self.in_url = escape::in_url_after(self.in_url, text.raw);
                    if !text.kept().is_empty() {
                        nodes.push(Node::Text(text.kept().to_string()));
                    }
                }
                Segment::Tag(tag) => {
                    if let Some(end) = self.tag(tag, &mut nodes)? {
                        return Ok((nodes, end));
                    }
                }
            }
        }
        Ok((nodes, Terminator::Eof))
    }

    /// Handles one tag: pushes a node, or returns the terminator it represents.
    fn tag(
        &mut self,
        tag: Tag<'s>,
        nodes: &mut Vec<Node>,
    ) -> Result<Option<Terminator>, CompileError> {
        let Some(keyword) = tag.statement() else {
            nodes.push(self.output(&tag)?);
            return Ok(None);
        };
        if tag.triple {
            let msg = format!("'{keyword}' must be written with two braces, not three");
            return Err(CompileError::new(tag.line, msg));
        }
        let mut exprs = ExprParser::new(tag.tokens.get(1..).unwrap_or_default(), tag.line);
        match keyword {
            "if" => nodes.push(self.if_chain(condition(&mut exprs)?, tag.line)?),
            "each" => {
                let items = exprs.expr()?;
                exprs.finish()?;
                nodes.push(self.each(items, tag.line)?);
            }
            _ => return terminator(keyword, &mut exprs, tag.line).map(Some),
        }
        Ok(None)
    }

    fn enter(&mut self, line: u32) -> Result<(), CompileError> {
        if self.depth >= MAX_BLOCK_DEPTH {
            let msg = format!("blocks are nested too deeply (at most {MAX_BLOCK_DEPTH})");
            return Err(CompileError::new(line, msg));
        }
        self.depth += 1;
        Ok(())
    }

    fn unclosed(&self, keyword: &str, line: u32) -> CompileError {
        let msg = format!(
            "unexpected end of template: '{keyword}' opened on line {line} is never closed"
        );
        CompileError::new(self.last_line, msg)
    }

    fn if_chain(&mut self, first: Expr, line: u32) -> Result<Node, CompileError> {
        self.enter(line)?;
        let mut branches = Vec::new();
        let mut cond = first;
        let otherwise = loop {
            let (body, end) = self.block()?;
            branches.push(Branch { cond, body });
            match end {
                Terminator::ElseIf(next, _) => cond = next,
                Terminator::Else(_) => break self.else_body(line)?,
                Terminator::End(_) => break Vec::new(),
                Terminator::Eof => return Err(self.unclosed("if", line)),
            }
        };
        self.depth -= 1;
        Ok(Node::If {
            branches,
            otherwise,
        })
    }

    fn else_body(&mut self, if_line: u32) -> Result<Vec<Node>, CompileError> {
        let (body, end) = self.block()?;
        let (word, line) = match end {
            Terminator::End(_) => return Ok(body),
            Terminator::Eof => return Err(self.unclosed("if", if_line)),
            Terminator::Else(line) => ("else", line),
            Terminator::ElseIf(_, line) => ("elseif", line),
        };
        let msg = format!("'{word}' after 'else' in the 'if' opened on line {if_line}");
        Err(CompileError::new(line, msg))
    }

    fn each(&mut self, items: Expr, line: u32) -> Result<Node, CompileError> {
        self.enter(line)?;
        let name = loop_name(&items);
        let (body, end) = self.block()?;
        let (word, at) = match end {
            Terminator::End(_) => {
                self.depth -= 1;
                return Ok(Node::Each { items, name, body });
            }
            Terminator::Eof => return Err(self.unclosed("each", line)),
            Terminator::Else(at) => ("else", at),
            Terminator::ElseIf(_, at) => ("elseif", at),
        };
        let msg = format!("'{word}' inside the 'each' opened on line {line}");
        Err(CompileError::new(at, msg))
    }

    /// An expression tag, including the `render_*` macros that must stand alone.
    fn output(&self, tag: &Tag<'s>) -> Result<Node, CompileError> {
        let mut exprs = ExprParser::new(&tag.tokens, tag.line);
        let macro_name = match tag.tokens.first().map(|t| &t.kind) {
            Some(TokenKind::Ident(word @ ("render_snippet" | "render_dynamic_content"))) => {
                Some(*word)
            }
            _ => None,
        };
        if let Some(name) = macro_name {
            exprs.accept_word(name);
            return tag_macro(name, &mut exprs, tag.line);
        }
        let expr = exprs.expr()?;
        exprs.finish()?;
        let escape = match &expr {
            Expr::Call(Func::Braces(_), _) => Escape::Raw,
            _ if tag.triple => Escape::Raw,
            _ if self.in_url => Escape::Url,
            _ if self.part.escapes_html() => Escape::Html,
            _ => Escape::Raw,
        };
        Ok(Node::Output { expr, escape })
    }
}

/// `render_snippet(id)` or `render_dynamic_content(path)`, after the name.
fn tag_macro(name: &str, exprs: &mut ExprParser<'_, '_>, line: u32) -> Result<Node, CompileError> {
    exprs.expect_sym(Sym::LParen, &format!("after {name}"))?;
    let arg = exprs.expr()?;
    exprs.expect_sym(Sym::RParen, &format!("to close {name}("))?;
    exprs.finish()?;
    if name == "render_snippet" {
        return Ok(Node::Snippet { id: arg });
    }
    let mut path = arg;
    if !reroot_dynamic(&mut path) {
        let roots = DYNAMIC_ROOTS.join(", ");
        let msg = format!("render_dynamic_content expects a path under one of {roots}");
        return Err(CompileError::new(line, msg));
    }
    Ok(Node::Dynamic { path })
}

/// The terminator an `elseif`, `else` or `end` tag stands for.
fn terminator(
    keyword: &str,
    exprs: &mut ExprParser<'_, '_>,
    line: u32,
) -> Result<Terminator, CompileError> {
    let end = match keyword {
        "elseif" => return Ok(Terminator::ElseIf(condition(exprs)?, line)),
        "else" if exprs.accept_word("if") => {
            return Err(CompileError::new(
                line,
                "write 'elseif' instead of 'else if'",
            ));
        }
        "else" => Terminator::Else(line),
        _ => Terminator::End(line),
    };
    exprs.finish_after(&format!("'{keyword}'"))?;
    Ok(end)
}

/// The condition of `if`/`elseif`, with its optional trailing `then`.
fn condition(exprs: &mut ExprParser<'_, '_>) -> Result<Expr, CompileError> {
    let cond = exprs.expr()?;
    exprs.accept_word("then");
    exprs.finish()?;
    Ok(cond)
}

/// Points a `dynamic_*` path at [`Expr::DynamicRoot`]; false if it is not such a path.
fn reroot_dynamic(path: &mut Expr) -> bool {
    let mut cursor = path;
    loop {
        match cursor {
            Expr::Field(base, _) | Expr::Index(base, _) => cursor = base,
            Expr::Var(name) => {
                let Some(root) = DYNAMIC_ROOTS.iter().find(|r| **r == name.as_str()) else {
                    return false;
                };
                *cursor = Expr::DynamicRoot(root);
                return true;
            }
            _ => return false,
        }
    }
}

/// The name `loop_vars.<name>` uses for a loop over `items`: its last path component.
fn loop_name(items: &Expr) -> Option<String> {
    match items {
        Expr::Var(name) | Expr::Field(_, name) | Expr::LoopVarOf(name) => Some(name.clone()),
        Expr::Builtin(name) => Some((*name).to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escapes(source: &str, part: Part) -> Vec<Escape> {
        let nodes = parse(source, part).expect("parses");
        nodes
            .iter()
            .filter_map(|n| match n {
                Node::Output { escape, .. } => Some(*escape),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn chooses_escaping_per_part_and_context() {
        assert_eq!(
            escapes("{{a}}{{{a}}}", Part::Html),
            [Escape::Html, Escape::Raw]
        );
        assert_eq!(
            escapes("{{a}}{{{a}}}", Part::AmpHtml),
            [Escape::Html, Escape::Raw]
        );
        assert_eq!(escapes("{{a}}", Part::Text), [Escape::Raw]);
        assert_eq!(escapes("{{a}}", Part::Header), [Escape::Raw]);
        assert_eq!(
            escapes("http://x/{{a}}{{{a}}} {{a}}", Part::Text),
            [Escape::Url, Escape::Raw, Escape::Raw]
        );
        assert_eq!(
            escapes("https://x/{{opening_single_curly()}}", Part::Html),
            [Escape::Raw]
        );
    }

    #[test]
    fn builds_if_chains() {
        let nodes =
            parse("{{if a}}1{{elseif b then}}2{{else}}3{{end}}", Part::Text).expect("parses");
        let [Node::If {
            branches,
            otherwise,
        }] = nodes.as_slice()
        else {
            panic!("{nodes:?}")
        };
        assert_eq!(branches.len(), 2);
        assert_eq!(branches[1].cond, Expr::Var("b".into()));
        assert!(matches!(otherwise.as_slice(), [Node::Text(t)] if t == "3"));
    }

    #[test]
    fn names_loops_after_their_last_path_component() {
        assert_eq!(loop_name(&Expr::Var("a".into())), Some("a".into()));
        let field = Expr::Field(Box::new(Expr::LoopVar), "inner".into());
        assert_eq!(loop_name(&field), Some("inner".into()));
        assert_eq!(loop_name(&Expr::LoopVar), None);
    }

    #[test]
    fn reroots_dynamic_paths_only() {
        let mut path = Expr::Field(Box::new(Expr::Var("dynamic_plain".into())), "k".into());
        assert!(reroot_dynamic(&mut path));
        let root = Expr::DynamicRoot("dynamic_plain");
        assert_eq!(path, Expr::Field(Box::new(root), "k".into()));
        assert!(!reroot_dynamic(&mut Expr::Var("other".into())));
        assert!(!reroot_dynamic(&mut Expr::Str("x".into())));
    }

    #[test]
    fn macros_must_stand_alone_and_be_well_formed() {
        assert!(parse("{{ render_snippet('a') }}", Part::Text).is_ok());
        assert!(parse("{{ render_snippet('a') x }}", Part::Text).is_err());
        assert!(parse("{{ render_snippet 'a' }}", Part::Text).is_err());
        assert!(parse("{{ render_dynamic_content(dynamic_html[k]) }}", Part::Text).is_ok());
    }

    #[test]
    fn reports_statement_errors_on_their_line() {
        let err = parse("a\n{{if x}}\n{{elseif}}\n{{end}}", Part::Text).expect_err("no condition");
        assert_eq!(
            (err.line, err.message.as_str()),
            (3, "expected an expression")
        );
        let err = parse("{{if x}}{{end extra}}", Part::Text).expect_err("junk after end");
        assert_eq!(err.message, "unexpected 'extra' after 'end'");
        let err = parse("{{if x}}{{else if y}}{{end}}", Part::Text).expect_err("else if");
        assert_eq!(err.message, "write 'elseif' instead of 'else if'");
        let err = parse("{{if x}}{{else}}{{elseif y}}{{end}}", Part::Text).expect_err("order");
        assert_eq!(
            err.message,
            "'elseif' after 'else' in the 'if' opened on line 1"
        );
    }
}
