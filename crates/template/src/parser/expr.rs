//! Expression parser: precedence climbing over the tokens of one tag.
//!
//! Precedence, lowest first: `or`, `and`, comparisons, `+ -`, `* /`, unary `not - #`, then
//! postfix `.name`, `[expr]` and calls. Nesting and size are capped so that neither this
//! parser nor the evaluator can recurse deeply on hostile input.

use crate::ast::{BinOp, Expr, Func};
use crate::names::{braces, BUILTINS, RESERVED, TAG_MACROS};
use crate::token::{describe, Sym, Token, TokenKind};
use crate::CompileError;

/// Maximum nesting of parentheses, brackets, call arguments and unary operators.
const MAX_NESTING: u32 = 32;
/// Maximum operators and path steps in one tag; bounds the depth of left-leaning trees.
const MAX_OPERATIONS: u32 = 256;

/// Parses expressions from the tokens of one tag.
pub(crate) struct ExprParser<'t, 's> {
    tokens: &'t [Token<'s>],
    pos: usize,
    /// Line reported for errors found after the last token.
    tag_line: u32,
    nesting: u32,
    operations: u32,
}

impl<'t, 's> ExprParser<'t, 's> {
    /// A parser over `tokens`, which belong to the tag opened on `tag_line`.
    pub fn new(tokens: &'t [Token<'s>], tag_line: u32) -> Self {
        ExprParser {
            tokens,
            pos: 0,
            tag_line,
            nesting: 0,
            operations: 0,
        }
    }

    /// Parses one full expression.
    pub fn expr(&mut self) -> Result<Expr, CompileError> {
        if self.peek().is_none() {
            return Err(self.error("expected an expression"));
        }
        self.or()
    }

    /// Consumes `word` if it is the next token.
    pub fn accept_word(&mut self, word: &str) -> bool {
        let found = matches!(self.peek(), Some(TokenKind::Ident(w)) if *w == word);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Consumes `sym` or fails with `context` in the message.
    pub fn expect_sym(&mut self, sym: Sym, context: &str) -> Result<(), CompileError> {
        if self.accept_sym(sym) {
            return Ok(());
        }
        Err(self.error(format!("expected '{}' {context}", sym.as_str())))
    }

    /// Fails unless every token has been consumed.
    pub fn finish(&self) -> Result<(), CompileError> {
        self.finish_after("expression")
    }

    /// Like [`Self::finish`], naming what the stray token follows (e.g. `'end'`).
    pub fn finish_after(&self, what: &str) -> Result<(), CompileError> {
        match self.peek() {
            None => Ok(()),
            Some(kind) => Err(self.error(format!("unexpected {} after {what}", describe(kind)))),
        }
    }

    /// An error at the current token's line (or the tag's line past the end).
    pub fn error(&self, message: impl Into<String>) -> CompileError {
        let line = self.tokens.get(self.pos).map_or(self.tag_line, |t| t.line);
        CompileError::new(line, message)
    }

    /// An error at the line of the token just consumed.
    fn error_at_last(&self, message: impl Into<String>) -> CompileError {
        let last = self.pos.checked_sub(1).and_then(|i| self.tokens.get(i));
        CompileError::new(last.map_or(self.tag_line, |t| t.line), message)
    }

    fn peek(&self) -> Option<&TokenKind<'s>> {
        self.tokens.get(self.pos).map(|t| &t.kind)
    }

    fn next(&mut self) -> Option<&TokenKind<'s>> {
        let token = self.tokens.get(self.pos).map(|t| &t.kind);
        self.pos += usize::from(token.is_some());
        token
    }

    fn accept_sym(&mut self, sym: Sym) -> bool {
        let found = self.peek() == Some(&TokenKind::Sym(sym));
        self.pos += usize::from(found);
        found
    }

    fn count_operation(&mut self) -> Result<(), CompileError> {
        self.operations += 1;
        if self.operations > MAX_OPERATIONS {
            return Err(self.error("expression is too complex"));
        }
        Ok(())
    }

    /// Runs `inner` one nesting level deeper.
    fn nested<T>(
        &mut self,
        inner: impl FnOnce(&mut Self) -> Result<T, CompileError>,
    ) -> Result<T, CompileError> {
        if self.nesting >= MAX_NESTING {
            return Err(self.error("expression is nested too deeply"));
        }
        self.nesting += 1;
        let result = inner(self);
        self.nesting -= 1;
        result
    }

    fn or(&mut self) -> Result<Expr, CompileError> {
        let mut lhs = self.and()?;
        while self.accept_word("or") {
            self.count_operation()?;
            lhs = Expr::Or(Box::new(lhs), Box::new(self.and()?));
        }
        Ok(lhs)
    }

    fn and(&mut self) -> Result<Expr, CompileError> {
        let mut lhs = self.comparison()?;
        while self.accept_word("and") {
            self.count_operation()?;
            lhs = Expr::And(Box::new(lhs), Box::new(self.comparison()?));
        }
        Ok(lhs)
    }

    fn comparison(&mut self) -> Result<Expr, CompileError> {
        let ops = [
            (Sym::Eq, BinOp::Eq),
            (Sym::Ne, BinOp::Ne),
            (Sym::Lt, BinOp::Lt),
            (Sym::Le, BinOp::Le),
            (Sym::Gt, BinOp::Gt),
            (Sym::Ge, BinOp::Ge),
        ];
        self.binary(&ops, Self::additive)
    }

    fn additive(&mut self) -> Result<Expr, CompileError> {
        self.binary(
            &[(Sym::Plus, BinOp::Add), (Sym::Minus, BinOp::Sub)],
            Self::multiplicative,
        )
    }

    fn multiplicative(&mut self) -> Result<Expr, CompileError> {
        self.binary(
            &[(Sym::Star, BinOp::Mul), (Sym::Slash, BinOp::Div)],
            Self::unary,
        )
    }

    /// A left-associative chain of `operand (op operand)*` for the given operators.
    fn binary(
        &mut self,
        ops: &[(Sym, BinOp)],
        operand: fn(&mut Self) -> Result<Expr, CompileError>,
    ) -> Result<Expr, CompileError> {
        let mut lhs = operand(self)?;
        while let Some(op) = ops
            .iter()
            .find(|(sym, _)| self.accept_sym(*sym))
            .map(|p| p.1)
        {
            self.count_operation()?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(operand(self)?));
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, CompileError> {
        let wrap: fn(Box<Expr>) -> Expr = if self.accept_word("not") {
            Expr::Not
        } else if self.accept_sym(Sym::Minus) {
            Expr::Neg
        } else if self.accept_sym(Sym::Hash) {
            Expr::Len
        } else {
            return self.postfix();
        };
        self.count_operation()?;
        let operand = self.nested(Self::unary)?;
        Ok(wrap(Box::new(operand)))
    }

    fn postfix(&mut self) -> Result<Expr, CompileError> {
        let mut expr = self.primary()?;
        loop {
            if self.accept_sym(Sym::Dot) {
                self.count_operation()?;
                let name = self.field_name()?;
                expr = Expr::Field(Box::new(expr), name);
            } else if self.accept_sym(Sym::LBracket) {
                self.count_operation()?;
                let key = self.nested(Self::expr)?;
                self.expect_sym(Sym::RBracket, "to close '['")?;
                expr = index(expr, key);
            } else {
                return Ok(expr);
            }
        }
    }

    /// The name after a `.`; keywords are allowed here (`address.email`, `a.end`).
    fn field_name(&mut self) -> Result<String, CompileError> {
        match self.next() {
            Some(TokenKind::Ident(name)) => Ok((*name).to_string()),
            _ => Err(self.error("expected a name after '.'")),
        }
    }

    fn primary(&mut self) -> Result<Expr, CompileError> {
        let Some(kind) = self.next().cloned() else {
            return Err(self.error("unexpected end of expression"));
        };
        match kind {
            TokenKind::Num(n) => Ok(Expr::Num(n)),
            TokenKind::Str(s) => Ok(Expr::Str(s)),
            TokenKind::Ident(word) => self.word(word),
            TokenKind::Sym(Sym::LParen) => {
                let inner = self.nested(Self::expr)?;
                self.expect_sym(Sym::RParen, "to close '('")?;
                Ok(inner)
            }
            TokenKind::Sym(sym) => {
                Err(self.error_at_last(format!("unexpected '{}'", sym.as_str())))
            }
        }
    }

    /// A name in value position: literal, built-in, loop variable, call or data key.
    fn word(&mut self, word: &'s str) -> Result<Expr, CompileError> {
        if self.peek() == Some(&TokenKind::Sym(Sym::LParen)) {
            return self.call(word);
        }
        match word {
            "true" => Ok(Expr::Bool(true)),
            "false" => Ok(Expr::Bool(false)),
            "nil" => Ok(Expr::Nil),
            "loop_var" => Ok(Expr::LoopVar),
            "loop_index" => Ok(Expr::LoopIndex),
            "loop_vars" if self.accept_sym(Sym::Dot) => {
                self.count_operation()?;
                Ok(Expr::LoopVarOf(self.field_name()?))
            }
            _ => self.name(word),
        }
    }

    fn name(&mut self, word: &'s str) -> Result<Expr, CompileError> {
        if let Some(builtin) = BUILTINS.iter().find(|b| **b == word) {
            return Ok(Expr::Builtin(builtin));
        }
        if RESERVED.contains(&word) {
            let msg = format!("'{word}' is a reserved word and cannot be used as a variable");
            return Err(self.error_at_last(msg));
        }
        Ok(Expr::Var(word.to_string()))
    }

    /// A call to `name`, whose `(` is the next token.
    fn call(&mut self, name: &str) -> Result<Expr, CompileError> {
        if TAG_MACROS.contains(&name) {
            let msg = format!("{name} must be the only expression in its tag");
            return Err(self.error_at_last(msg));
        }
        let func = match name {
            "empty" => Func::Empty,
            _ => match braces(name) {
                Some(text) => Func::Braces(text),
                None => return Err(self.error_at_last(format!("unknown function '{name}'"))),
            },
        };
        self.accept_sym(Sym::LParen);
        self.count_operation()?;
        let args = self.nested(Self::arguments)?;
        let arity = usize::from(func == Func::Empty);
        if args.len() != arity {
            let msg = format!("{name}() takes {arity} argument(s), got {}", args.len());
            return Err(self.error(msg));
        }
        Ok(Expr::Call(func, args))
    }

    /// Comma-separated arguments after `(`, consuming the closing `)`.
    fn arguments(&mut self) -> Result<Vec<Expr>, CompileError> {
        let mut args = Vec::new();
        if self.accept_sym(Sym::RParen) {
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            if self.accept_sym(Sym::RParen) {
                return Ok(args);
            }
            self.expect_sym(Sym::Comma, "or ')' between arguments")?;
        }
    }
}

/// `a['b']` is the same as `a.b`; other keys are resolved at render time.
fn index(base: Expr, key: Expr) -> Expr {
    match key {
        Expr::Str(name) => Expr::Field(Box::new(base), name),
        key => Expr::Index(Box::new(base), Box::new(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::{segments, Segment};

    fn parse(source: &str) -> Result<Expr, CompileError> {
        let wrapped = format!("{{{{{source}}}}}");
        let segs = segments(&wrapped, crate::Part::Text)?;
        let Some(Segment::Tag(tag)) = segs.into_iter().next() else {
            panic!("no tag")
        };
        let mut parser = ExprParser::new(&tag.tokens, tag.line);
        let expr = parser.expr()?;
        parser.finish()?;
        Ok(expr)
    }

    fn var(name: &str) -> Box<Expr> {
        Box::new(Expr::Var(name.into()))
    }

    #[test]
    fn respects_lua_precedence() {
        let expr = parse("a or b and not c == d").expect("parses");
        let cmp = Expr::Binary(BinOp::Eq, Box::new(Expr::Not(var("c"))), var("d"));
        let and = Expr::And(var("b"), Box::new(cmp));
        assert_eq!(expr, Expr::Or(var("a"), Box::new(and)));
        let expr = parse("1 - 2 - 3 * 4").expect("parses");
        let left = Expr::Binary(
            BinOp::Sub,
            Box::new(Expr::Num(1.0)),
            Box::new(Expr::Num(2.0)),
        );
        let mul = Expr::Binary(
            BinOp::Mul,
            Box::new(Expr::Num(3.0)),
            Box::new(Expr::Num(4.0)),
        );
        assert_eq!(
            expr,
            Expr::Binary(BinOp::Sub, Box::new(left), Box::new(mul))
        );
    }

    #[test]
    fn parses_paths_and_special_names() {
        let expr = parse("a['b'][1].end").expect("parses");
        let b = Expr::Field(var("a"), "b".into());
        let one = Expr::Index(Box::new(b), Box::new(Expr::Num(1.0)));
        assert_eq!(expr, Expr::Field(Box::new(one), "end".into()));
        assert_eq!(
            parse("loop_vars.outer").expect("parses"),
            Expr::LoopVarOf("outer".into())
        );
        assert_eq!(parse("address").expect("parses"), Expr::Builtin("address"));
        assert_eq!(
            parse("#loop_var").expect("parses"),
            Expr::Len(Box::new(Expr::LoopVar))
        );
    }

    #[test]
    fn checks_calls() {
        assert_eq!(
            parse("empty(x)").expect("parses"),
            Expr::Call(Func::Empty, vec![*var("x")])
        );
        assert!(parse("empty()").is_err());
        assert!(parse("empty(a, b)").is_err());
        assert!(parse("closing_double_curly(1)").is_err());
        assert!(parse("empty(a,)").is_err());
        assert!(parse("render_snippet('x')").is_err());
    }

    #[test]
    fn rejects_reserved_words_and_stray_tokens() {
        for source in [
            "local", "repeat", "then", "a and", "(a", "a]", ".a", "a.1", "a[1",
        ] {
            assert!(parse(source).is_err(), "{source} should not parse");
        }
    }
}
