//! The token vocabulary shared by the lexer and the expression parser.

/// A token with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token<'s> {
    pub kind: TokenKind<'s>,
    pub line: u32,
}

/// The kinds of token an expression is made of.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind<'s> {
    /// A name or keyword: `[A-Za-z_][A-Za-z0-9_]*`.
    Ident(&'s str),
    /// A quoted string with escapes already resolved.
    Str(String),
    /// A decimal number literal.
    Num(f64),
    /// An operator or punctuation.
    Sym(Sym),
}

/// Operators and punctuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sym {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Dot,
    Comma,
    Hash,
    Plus,
    Minus,
    Star,
    Slash,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Every symbol with its spelling; two-character spellings come first so `<=` wins over `<`.
/// The first spelling of a symbol is the one shown in error messages.
const SYMBOLS: [(&str, Sym); 18] = [
    ("==", Sym::Eq),
    ("!=", Sym::Ne),
    ("~=", Sym::Ne),
    ("<=", Sym::Le),
    (">=", Sym::Ge),
    ("<", Sym::Lt),
    (">", Sym::Gt),
    ("(", Sym::LParen),
    (")", Sym::RParen),
    ("[", Sym::LBracket),
    ("]", Sym::RBracket),
    (".", Sym::Dot),
    (",", Sym::Comma),
    ("#", Sym::Hash),
    ("+", Sym::Plus),
    ("-", Sym::Minus),
    ("*", Sym::Star),
    ("/", Sym::Slash),
];

impl Sym {
    /// The symbol as written, for error messages.
    pub fn as_str(self) -> &'static str {
        SYMBOLS
            .iter()
            .find(|(_, sym)| *sym == self)
            .map_or("?", |(text, _)| text)
    }

    /// The symbol `text` starts with and its length in bytes.
    pub fn at_start_of(text: &str) -> Option<(Sym, usize)> {
        SYMBOLS
            .iter()
            .find(|(spelling, _)| text.starts_with(spelling))
            .map(|(s, sym)| (*sym, s.len()))
    }
}

/// A token as shown in error messages.
pub(crate) fn describe(kind: &TokenKind<'_>) -> String {
    match kind {
        TokenKind::Ident(word) => format!("'{word}'"),
        TokenKind::Str(_) => "string".to_string(),
        TokenKind::Num(_) => "number".to_string(),
        TokenKind::Sym(sym) => format!("'{}'", sym.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_symbol_has_a_spelling() {
        for (text, sym) in SYMBOLS {
            assert!(sym.as_str() == text || sym == Sym::Ne, "{text}");
        }
        assert_eq!(Sym::Ne.as_str(), "!=");
        assert_eq!(Sym::at_start_of("<=x"), Some((Sym::Le, 2)));
        assert_eq!(Sym::at_start_of("<x"), Some((Sym::Lt, 1)));
        assert_eq!(Sym::at_start_of("x"), None);
    }

    #[test]
    fn describes_tokens_for_errors() {
        assert_eq!(describe(&TokenKind::Ident("x")), "'x'");
        assert_eq!(describe(&TokenKind::Str("x".into())), "string");
        assert_eq!(describe(&TokenKind::Num(1.0)), "number");
        assert_eq!(describe(&TokenKind::Sym(Sym::Le)), "'<='");
    }
}
