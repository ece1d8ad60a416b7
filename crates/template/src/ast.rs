//! The compiled form of a template: a tree of [`Node`]s whose expressions are [`Expr`]s.
//!
//! Every decision that depends only on the source (escaping mode, which data source a name
//! reads from, operator precedence) is made by the parser and recorded here, so rendering
//! does no analysis of its own.

/// How the output of an expression tag is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escape {
    /// Written as is: text/header parts, `{{{ }}}` and macro output.
    Raw,
    /// HTML-escaped: `{{ }}` in HTML and AMP parts.
    Html,
    /// Percent-encoded: `{{ }}` inside a literal `http://` or `https://` URL.
    Url,
}

/// One piece of a template body.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// Literal text, with statement-only lines already removed.
    Text(String),
    /// An expression whose value is written with the given escaping.
    Output { expr: Expr, escape: Escape },
    /// `render_snippet(id)`: the expression giving the snippet id.
    Snippet { id: Expr },
    /// `render_dynamic_content(path)`: a path rooted at [`Expr::DynamicRoot`].
    Dynamic { path: Expr },
    /// `if` / `elseif` chain; `otherwise` is the `else` body (empty when absent).
    If {
        branches: Vec<Branch>,
        otherwise: Vec<Node>,
    },
    /// `each items`: `name` is what `loop_vars.<name>` refers to inside nested loops.
    Each {
        items: Expr,
        name: Option<String>,
        body: Vec<Node>,
    },
}

/// A condition and the body rendered when it is truthy.
#[derive(Debug, Clone)]
pub(crate) struct Branch {
    pub cond: Expr,
    pub body: Vec<Node>,
}

/// Built-in functions, checked for arity at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    /// `empty(x)`: nil, empty string, empty array or empty object.
    Empty,
    /// One of the `*_curly()` macros; the literal braces it produces.
    Braces(&'static str),
}

/// Binary operators other than the short-circuiting `and`/`or`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Nil,
    Bool(bool),
    Num(f64),
    Str(String),
    /// A top-level data key, looked up through the context layers.
    Var(String),
    /// A reserved built-in (`address`, `email`, ...), read from the context builtins.
    Builtin(&'static str),
    /// `dynamic_html` / `dynamic_plain` / `dynamic_amp_html` under `render_dynamic_content`.
    DynamicRoot(&'static str),
    /// The current element of the innermost `each`.
    LoopVar,
    /// The 0-based position within the innermost `each`.
    LoopIndex,
    /// `loop_vars.<name>`: the current element of the enclosing `each` over `name`.
    LoopVarOf(String),
    /// `a.b`, `a['b']`: object key (or stringified index).
    Field(Box<Expr>, String),
    /// `a[expr]`: 1-based array index or object key computed at render time.
    Index(Box<Expr>, Box<Expr>),
    /// `#a`: length of an array or string.
    Len(Box<Expr>),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
}

/// Total bytes of literal text in `nodes`, counting each loop body once.
pub(crate) fn text_len(nodes: &[Node]) -> usize {
    nodes.iter().map(node_text_len).sum()
}

/// Whether any node, at any depth, is a `render_snippet` or `render_dynamic_content` call.
pub(crate) fn includes_content(nodes: &[Node]) -> bool {
    nodes.iter().any(|node| match node {
        Node::Snippet { .. } | Node::Dynamic { .. } => true,
        Node::If {
            branches,
            otherwise,
        } => branches.iter().any(|b| includes_content(&b.body)) || includes_content(otherwise),
        Node::Each { body, .. } => includes_content(body),
        Node::Text(_) | Node::Output { .. } => false,
    })
}

fn node_text_len(node: &Node) -> usize {
    match node {
        Node::Text(text) => text.len(),
        Node::If {
            branches,
            otherwise,
        } => {
            let longest = branches
                .iter()
                .map(|b| text_len(&b.body))
                .max()
                .unwrap_or(0);
            longest.max(text_len(otherwise))
        }
        Node::Each { body, .. } => text_len(body),
        Node::Output { .. } | Node::Snippet { .. } | Node::Dynamic { .. } => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_len_takes_the_longest_branch() {
        let nodes = vec![
            Node::Text("ab".into()),
            Node::If {
                branches: vec![Branch {
                    cond: Expr::Nil,
                    body: vec![Node::Text("xyz".into())],
                }],
                otherwise: vec![Node::Text("q".into())],
            },
            Node::Each {
                items: Expr::Nil,
                name: None,
                body: vec![Node::Text("12".into())],
            },
        ];
        assert_eq!(text_len(&nodes), 7);
    }
}
