//! SparkPost's substitution (template) language, compiled once and rendered per recipient.
//!
//! This crate owns the public surface: [`Part`], [`Template`], [`Context`] and the two error
//! types. Source text goes through [`lexer`] (text and tag segments), [`parser`] (an AST of
//! [`ast::Node`]s) and is rendered by [`eval`], which borrows JSON data instead of cloning it.
//!
//! Language summary (see the module docs for details):
//! - `{{ expr }}` outputs a value, HTML-escaped in HTML parts and percent-encoded inside a
//!   literal `http://`/`https://` URL; `{{{ expr }}}` outputs it raw.
//! - `{{if}}`/`{{elseif}}`/`{{else}}`/`{{end}}` and `{{each}}`/`{{end}}` are statements; a
//!   statement alone on its line removes that whole line from the output.
//! - Expressions follow Lua: `and`/`or`/`not`, comparisons, arithmetic, `#` length, 1-based
//!   indexing, `nil`/`false` as the only falsy values.
//! - Arrays and objects render as the empty string; so do `nil` and non-finite numbers.
//!
//! ```
//! use serde_json::json;
//! use sluice_template::{Context, Part, Template};
//!
//! let template = Template::compile("<p>Hi {{ name or 'there' }}</p>", Part::Html)?;
//! let recipient = json!({"name": "<Ada>"});
//! let builtins = serde_json::Map::new();
//! let ctx = Context {
//!     layers: recipient.as_object().into_iter().collect(),
//!     builtins: &builtins,
//!     dynamic: None,
//!     snippets: None,
//!     snippet_calls: Default::default(),
//! };
//! assert_eq!(template.render(&ctx)?, "<p>Hi &lt;Ada&gt;</p>");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod amp;
mod ast;
mod elide;
mod escape;
mod eval;
mod lexer;
mod names;
mod parser;
mod token;
mod value;

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

pub use eval::{MAX_LOOP_ITERATIONS, MAX_OUTPUT_BYTES, MAX_SNIPPETS};

use serde_json::{Map, Value as Json};

/// The message part a template belongs to; it decides how `{{ }}` output is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// `text/plain` body: never escaped.
    Text,
    /// `text/html` body: `{{ }}` output is HTML-escaped.
    Html,
    /// AMP HTML body: escaped like [`Part::Html`]; `<template type="amp-mustache">` regions
    /// pass through untouched, since the mail client fills them in.
    AmpHtml,
    /// from, subject, reply_to and header values: never escaped, like text.
    Header,
}

impl Part {
    /// Whether `{{ }}` output outside a URL is HTML-escaped in this part.
    fn escapes_html(self) -> bool {
        matches!(self, Part::Html | Part::AmpHtml)
    }
}

/// A compiled template for one [`Part`]; compile once, render once per recipient.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<ast::Node>,
    part: Part,
    /// Bytes of literal text, used to reserve the output buffer up front.
    text_len: usize,
    is_static: bool,
}

impl Template {
    /// Compiles `source` for `part`; the error carries the 1-based line of the problem.
    pub fn compile(source: &str, part: Part) -> Result<Template, CompileError> {
        let nodes = parser::parse(source, part)?;
        let is_static = nodes.iter().all(|n| matches!(n, ast::Node::Text(_)));
        Ok(Template {
            text_len: ast::text_len(&nodes),
            nodes,
            part,
            is_static,
        })
    }

    /// A template that renders `source` exactly as written, for content sent without
    /// substitution (`perform_substitutions: false`).
    pub fn literal(source: &str, part: Part) -> Template {
        let nodes = vec![ast::Node::Text(source.to_string())];
        Template {
            text_len: source.len(),
            nodes,
            part,
            is_static: true,
        }
    }

    /// Renders the template against `ctx` into a new string.
    pub fn render(&self, ctx: &Context<'_>) -> Result<String, RenderError> {
        let mut out = String::new();
        self.render_into(ctx, &mut out)?;
        Ok(out)
    }

    /// Appends the rendering to `out`, letting callers reuse one buffer across recipients.
    ///
    /// On error `out` may hold a partial rendering; callers should discard it.
    pub fn render_into(&self, ctx: &Context<'_>, out: &mut String) -> Result<(), RenderError> {
        // Substituted values usually add a little over the literal text.
        out.reserve(self.text_len + self.text_len / 4 + 64);
        eval::render(self, ctx, out)
    }

    /// True when the template has no expressions or statements: rendering returns the source.
    pub fn is_static(&self) -> bool {
        self.is_static
    }

    /// Whether the template calls `render_snippet` or `render_dynamic_content` anywhere, which
    /// content that is itself pulled in (a snippet) may not do.
    pub fn includes_content(&self) -> bool {
        ast::includes_content(&self.nodes)
    }

    /// The part this template was compiled for.
    pub fn part(&self) -> Part {
        self.part
    }
}

/// A snippet as a lookup hands it to the renderer.
#[derive(Debug, Clone)]
pub enum Snippet {
    /// Source text, compiled at each use.
    Source(String),
    /// Compiled once by the lookup's owner for the part asked for, so a snippet used for every
    /// recipient is not compiled for each of them.
    Compiled(Arc<Template>),
}

impl From<String> for Snippet {
    fn from(source: String) -> Snippet {
        Snippet::Source(source)
    }
}

/// Finds a snippet by id for a part; `None` means the snippet does not exist.
pub type SnippetLookup<'a> = dyn Fn(&str, Part) -> Option<Snippet> + 'a;

/// Data and callbacks a render reads from; everything is borrowed, nothing is cloned.
#[derive(Clone)]
pub struct Context<'a> {
    /// Data layers, highest precedence first: recipient substitution_data, recipient metadata,
    /// transmission substitution_data, transmission metadata. A top-level key resolves in the
    /// first layer that contains it (even when its value there is `null`).
    pub layers: Vec<&'a Map<String, Json>>,
    /// Built-in variables: `address` (object `{email, name}`), `email`, `email_id`,
    /// `env_from`, `return_path`. These names are read only from here, never from `layers`.
    pub builtins: &'a Map<String, Json>,
    /// Transmission-level substitution_data, where `render_dynamic_content` finds
    /// `dynamic_html`, `dynamic_plain` and `dynamic_amp_html`.
    pub dynamic: Option<&'a Map<String, Json>>,
    /// Looks up a snippet by id for the given part (`None` = missing).
    pub snippets: Option<&'a SnippetLookup<'a>>,
    /// `render_snippet` calls made so far through this context. One context serves every part
    /// of one message, so the limit of [`MAX_SNIPPETS`] holds for the message, not per part.
    pub snippet_calls: Cell<usize>,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("layers", &self.layers)
            .field("builtins", &self.builtins)
            .field("dynamic", &self.dynamic)
            .field("snippets", &self.snippets.map(|_| "<fn>"))
            .field("snippet_calls", &self.snippet_calls.get())
            .finish()
    }
}

/// A syntax error found while compiling a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// 1-based line where the problem was detected.
    pub line: u32,
    /// Lowercase description without a trailing period.
    pub message: String,
}

impl CompileError {
    pub(crate) fn new(line: u32, message: impl Into<String>) -> Self {
        CompileError {
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for CompileError {}

/// A failure while rendering, e.g. a missing snippet or the snippet limit being exceeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    /// Lowercase description without a trailing period.
    pub message: String,
}

impl RenderError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        RenderError {
            message: message.into(),
        }
    }
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RenderError {}
