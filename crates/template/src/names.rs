//! The language's fixed names: statements, reserved words, built-ins and macros.
//!
//! Kept in one place so the lexer, the parser and the documentation agree on them.

/// Keywords that open, continue or close a block.
pub(crate) const STATEMENTS: [&str; 5] = ["if", "elseif", "else", "end", "each"];

/// Names read from [`crate::Context::builtins`] rather than from the data layers.
pub(crate) const BUILTINS: [&str; 5] = ["address", "email", "email_id", "env_from", "return_path"];

/// Roots that `render_dynamic_content` accepts.
pub(crate) const DYNAMIC_ROOTS: [&str; 3] = ["dynamic_html", "dynamic_plain", "dynamic_amp_html"];

/// Lua keywords and statement words that may never name a variable.
pub(crate) const RESERVED: [&str; 22] = [
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "if", "in", "local",
    "nil", "not", "or", "each", "repeat", "return", "then", "true", "until", "while",
];

/// Functions that only make sense as the whole content of a tag.
pub(crate) const TAG_MACROS: [&str; 2] = ["render_snippet", "render_dynamic_content"];

/// The text produced by a `*_curly()` macro.
pub(crate) fn braces(name: &str) -> Option<&'static str> {
    Some(match name {
        "opening_single_curly" => "{",
        "closing_single_curly" => "}",
        "opening_double_curly" => "{{",
        "closing_double_curly" => "}}",
        "opening_triple_curly" => "{{{",
        "closing_triple_curly" => "}}}",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_and_builtins_are_reserved_or_special() {
        for word in STATEMENTS {
            assert!(RESERVED.contains(&word), "{word}");
        }
        assert!(BUILTINS.iter().all(|b| !RESERVED.contains(b)));
    }

    #[test]
    fn brace_macros_produce_their_braces() {
        assert_eq!(braces("opening_triple_curly"), Some("{{{"));
        assert_eq!(braces("closing_single_curly"), Some("}"));
        assert_eq!(braces("render_snippet"), None);
    }
}
