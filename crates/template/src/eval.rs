//! Evaluator: renders a compiled template against a [`Context`] into one output buffer.
//!
//! Owns name resolution (builtins, loop variables, data layers), loop scoping and the limits
//! that keep one hostile template from stalling a sender: at most [`MAX_SNIPPETS`]
//! `render_snippet` calls, no snippet inside a snippet and no dynamic content inside dynamic
//! content (bounding recursion), and loop iteration and output budgets (bounding time and
//! memory, since nested loops multiply).

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::ast::{Expr, Func, Node};
use crate::value::Value;
use crate::{Context, Part, RenderError, Snippet, Template};

/// Most `render_snippet` calls one message may make, over all its parts and any dynamic content
/// they pull in: the count lives in the [`Context`], which serves every part of one message.
pub const MAX_SNIPPETS: usize = 5;

/// Most `each` iterations one render may run, counting every nesting level.
pub const MAX_LOOP_ITERATIONS: usize = 1_000_000;

/// Most bytes one render may produce (checked as loops run, the only way output multiplies).
pub const MAX_OUTPUT_BYTES: usize = 32 * 1024 * 1024;

/// Renders `template` into `out`.
pub(crate) fn render(
    template: &Template,
    ctx: &Context<'_>,
    out: &mut String,
) -> Result<(), RenderError> {
    let mut renderer = Renderer::new(ctx, template.part, out.len());
    renderer.nodes(&template.nodes, None, out)
}

/// One iteration of an `each`, linked to the enclosing loops; frames live on the call stack.
struct Frame<'v> {
    /// The array's name, for `loop_vars.<name>`.
    name: Option<&'v str>,
    item: &'v Json,
    index: usize,
    parent: Option<&'v Frame<'v>>,
}

/// Render state shared by the template and every snippet or dynamic content it pulls in.
struct Renderer<'c, 'd> {
    ctx: &'c Context<'d>,
    part: Part,
    iterations: usize,
    /// Length of the output buffer before this render, which may be a reused buffer.
    start_len: usize,
    in_snippet: bool,
    in_dynamic: bool,
}

impl<'c, 'd> Renderer<'c, 'd> {
    fn new(ctx: &'c Context<'d>, part: Part, start_len: usize) -> Self {
        Renderer {
            ctx,
            part,
            iterations: 0,
            start_len,
            in_snippet: false,
            in_dynamic: false,
        }
    }

    fn nodes<'v>(
        &mut self,
        nodes: &'v [Node],
        scope: Option<&'v Frame<'v>>,
        out: &mut String,
    ) -> Result<(), RenderError>
    where
        'd: 'v,
    {
        nodes
            .iter()
            .try_for_each(|node| self.node(node, scope, out))
    }

    fn node<'v>(
        &mut self,
        node: &'v Node,
        scope: Option<&'v Frame<'v>>,
        out: &mut String,
    ) -> Result<(), RenderError>
    where
        'd: 'v,
    {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Output { expr, escape } => self.eval(expr, scope).write(out, *escape),
            Node::If {
                branches,
                otherwise,
            } => {
                let chosen = branches.iter().find(|b| self.eval(&b.cond, scope).truthy());
                let body = chosen.map_or(otherwise.as_slice(), |b| b.body.as_slice());
                return self.nodes(body, scope, out);
            }
            Node::Each { items, name, body } => {
                let Value::Array(items) = self.eval(items, scope) else {
                    return Ok(());
                };
                for (index, item) in items.iter().enumerate() {
                    self.charge_iteration(out)?;
                    let frame = Frame {
                        name: name.as_deref(),
                        item,
                        index,
                        parent: scope,
                    };
                    self.nodes(body, Some(&frame), out)?;
                }
            }
            Node::Snippet { id } => return self.snippet(id, scope, out),
            Node::Dynamic { path } => return self.dynamic(path, scope, out),
        }
        Ok(())
    }

    fn charge_iteration(&mut self, out: &str) -> Result<(), RenderError> {
        self.iterations += 1;
        if self.iterations > MAX_LOOP_ITERATIONS {
            let msg = format!("loop limit exceeded: at most {MAX_LOOP_ITERATIONS} iterations");
            return Err(RenderError::new(msg));
        }
        if out.len().saturating_sub(self.start_len) > MAX_OUTPUT_BYTES {
            let msg = format!("output limit exceeded: at most {MAX_OUTPUT_BYTES} bytes");
            return Err(RenderError::new(msg));
        }
        Ok(())
    }

    fn snippet<'v>(
        &mut self,
        id: &'v Expr,
        scope: Option<&'v Frame<'v>>,
        out: &mut String,
    ) -> Result<(), RenderError>
    where
        'd: 'v,
    {
        if self.in_snippet {
            return Err(RenderError::new(
                "render_snippet cannot be used inside a snippet",
            ));
        }
        let calls = self.ctx.snippet_calls.get() + 1;
        self.ctx.snippet_calls.set(calls);
        if calls > MAX_SNIPPETS {
            let msg = format!("snippet limit exceeded: at most {MAX_SNIPPETS} per message");
            return Err(RenderError::new(msg));
        }
        let id = match self.eval(id, scope) {
            Value::Str(id) => id,
            _ => return Err(RenderError::new("render_snippet needs a snippet id string")),
        };
        let lookup = self.ctx.snippets.and_then(|find| find(&id, self.part));
        let snippet =
            lookup.ok_or_else(|| RenderError::new(format!("snippet '{id}' not found")))?;
        let template = match snippet {
            Snippet::Compiled(template) => template,
            Snippet::Source(source) => Template::compile(&source, self.part)
                .map(Arc::new)
                .map_err(|e| RenderError::new(format!("snippet '{id}' does not compile: {e}")))?,
        };
        let was_in_snippet = std::mem::replace(&mut self.in_snippet, true);
        let result = self.nodes(&template.nodes, scope, out);
        self.in_snippet = was_in_snippet;
        result
    }

    fn dynamic<'v>(
        &mut self,
        path: &'v Expr,
        scope: Option<&'v Frame<'v>>,
        out: &mut String,
    ) -> Result<(), RenderError>
    where
        'd: 'v,
    {
        if self.in_dynamic {
            let msg = "render_dynamic_content cannot be used inside dynamic content";
            return Err(RenderError::new(msg));
        }
        // Missing or non-string content renders nothing, like any missing variable.
        let Value::Str(source) = self.eval(path, scope) else {
            return Ok(());
        };
        let template = Template::compile(&source, self.part)
            .map_err(|e| RenderError::new(format!("dynamic content does not compile: {e}")))?;
        let was_in_dynamic = std::mem::replace(&mut self.in_dynamic, true);
        let result = self.nodes(&template.nodes, scope, out);
        self.in_dynamic = was_in_dynamic;
        result
    }

    fn eval<'v>(&self, expr: &'v Expr, scope: Option<&'v Frame<'v>>) -> Value<'v>
    where
        'd: 'v,
    {
        match expr {
            Expr::Nil => Value::Nil,
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Num(n) => Value::Num(*n),
            Expr::Str(s) => Value::Str(Cow::Borrowed(s)),
            Expr::Var(name) => self.lookup(name),
            // A built-in the context does not provide, as a preview without a recipient does
            // not, is read from the data like any name.
            Expr::Builtin(name) => match self.ctx.builtins.get(*name) {
                Some(value) => Value::from_json(value),
                None => self.lookup(name),
            },
            Expr::DynamicRoot(name) => {
                Value::from_option(self.ctx.dynamic.and_then(|map| map.get(*name)))
            }
            Expr::LoopVar => {
                scope.map_or_else(|| self.lookup("loop_var"), |f| Value::from_json(f.item))
            }
            Expr::LoopIndex => {
                scope.map_or_else(|| self.lookup("loop_index"), |f| Value::Num(f.index as f64))
            }
            Expr::LoopVarOf(name) => loop_var_of(scope, name),
            Expr::Field(base, key) => self.eval(base, scope).field(key),
            Expr::Index(base, key) => self.eval(base, scope).index(&self.eval(key, scope)),
            Expr::Call(Func::Braces(text), _) => Value::Str(Cow::Borrowed(text)),
            Expr::Call(Func::Empty, args) => Value::Bool(
                args.first()
                    .is_none_or(|arg| self.eval(arg, scope).is_empty()),
            ),
            _ => self.eval_operator(expr, scope),
        }
    }

    fn eval_operator<'v>(&self, expr: &'v Expr, scope: Option<&'v Frame<'v>>) -> Value<'v>
    where
        'd: 'v,
    {
        match expr {
            Expr::Len(operand) => self.eval(operand, scope).length(),
            Expr::Neg(operand) => self
                .eval(operand, scope)
                .as_number()
                .map_or(Value::Nil, |n| Value::Num(-n)),
            Expr::Not(operand) => Value::Bool(!self.eval(operand, scope).truthy()),
            Expr::And(lhs, rhs) => self.short_circuit(lhs, rhs, scope, true),
            Expr::Or(lhs, rhs) => self.short_circuit(lhs, rhs, scope, false),
            Expr::Binary(op, lhs, rhs) => self.eval(lhs, scope).binary(*op, &self.eval(rhs, scope)),
            // Leaves and calls are handled by `eval` before it delegates here.
            _ => Value::Nil,
        }
    }

    /// Lua `and` (`go_on_if_truthy`) and `or`: the left value unless it decides nothing.
    fn short_circuit<'v>(
        &self,
        lhs: &'v Expr,
        rhs: &'v Expr,
        scope: Option<&'v Frame<'v>>,
        go_on_if_truthy: bool,
    ) -> Value<'v>
    where
        'd: 'v,
    {
        let lhs = self.eval(lhs, scope);
        if lhs.truthy() == go_on_if_truthy {
            self.eval(rhs, scope)
        } else {
            lhs
        }
    }

    /// A top-level key from the first data layer that has it.
    fn lookup(&self, name: &str) -> Value<'d> {
        Value::from_option(self.ctx.layers.iter().find_map(|&layer| layer.get(name)))
    }
}

/// `loop_vars.<name>`: the current element of the innermost enclosing loop over `name`.
fn loop_var_of<'v>(scope: Option<&'v Frame<'v>>, name: &str) -> Value<'v> {
    let mut frame = scope;
    while let Some(current) = frame {
        if current.name == Some(name) {
            return Value::from_json(current.item);
        }
        frame = current.parent;
    }
    Value::Nil
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map};

    fn object(value: Json) -> Map<String, Json> {
        match value {
            Json::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn render_with(source: &str, layers: &[Json]) -> Result<String, RenderError> {
        let maps: Vec<Map<String, Json>> = layers.iter().cloned().map(object).collect();
        let builtins = object(json!({"email": "b@x.test"}));
        let ctx = Context {
            layers: maps.iter().collect(),
            builtins: &builtins,
            dynamic: None,
            snippets: None,
            snippet_calls: Default::default(),
        };
        Template::compile(source, Part::Text)
            .expect("compiles")
            .render(&ctx)
    }

    #[test]
    fn first_layer_with_the_key_wins_even_when_null() {
        let layers = [json!({"a": null}), json!({"a": "lower", "b": "b"})];
        assert_eq!(
            render_with("[{{a}}][{{b}}]", &layers).expect("renders"),
            "[][b]"
        );
    }

    #[test]
    fn builtins_ignore_the_data_layers_unless_the_context_lacks_them() {
        let layers = [json!({"email": "spoofed", "return_path": "from data"})];
        assert_eq!(
            render_with("{{email}}|{{return_path}}", &layers).expect("renders"),
            "b@x.test|from data"
        );
    }

    #[test]
    fn loop_names_fall_back_to_data_outside_loops() {
        let layers = [json!({"loop_var": "v", "loop_index": 7})];
        assert_eq!(
            render_with("{{loop_var}}{{loop_index}}", &layers).expect("renders"),
            "v7"
        );
    }

    #[test]
    fn loop_vars_finds_the_innermost_loop_with_that_name() {
        let layers = [json!({"a": [{"a": [1, 2]}, {"a": [3]}]})];
        let source =
            "{{each a}}{{each loop_var.a}}{{loop_vars.a}}/{{loop_vars.zzz}};{{end}}{{end}}";
        assert_eq!(render_with(source, &layers).expect("renders"), "1/;2/;3/;");
    }

    #[test]
    fn short_circuits_skip_the_other_operand() {
        let layers = [json!({"t": true})];
        let source = "{{ t or render }}{{ nil and x.y.z }}{{ false or nil }}";
        assert_eq!(render_with(source, &layers).expect("renders"), "true");
    }

    #[test]
    fn nested_loops_are_bounded() {
        let layers = [json!({"a": [1, 2, 3, 4]})];
        let source = "{{each a}}".repeat(11) + "x" + &"{{end}}".repeat(11);
        let err = render_with(&source, &layers).expect_err("4^11 iterations");
        assert!(err.message.starts_with("loop limit exceeded"), "{err}");
        let big = [json!({"a": [1, 2, 3, 4], "s": "y".repeat(64 * 1024)})];
        let source = "{{each a}}".repeat(9) + "{{s}}" + &"{{end}}".repeat(9);
        let err = render_with(&source, &big).expect_err("16 GiB of output");
        assert!(err.message.starts_with("output limit exceeded"), "{err}");
    }

    #[test]
    fn empty_without_arguments_is_impossible_but_safe() {
        let renderer_input = Expr::Call(Func::Empty, Vec::new());
        let builtins = Map::new();
        let ctx = Context {
            layers: Vec::new(),
            builtins: &builtins,
            dynamic: None,
            snippets: None,
            snippet_calls: Default::default(),
        };
        let renderer = Renderer::new(&ctx, Part::Text, 0);
        assert!(matches!(
            renderer.eval(&renderer_input, None),
            Value::Bool(true)
        ));
    }
}
