//! Golden examples of failures: compile errors with their lines, render errors, and limits.

mod fixture;

use fixture::Fixture;
use serde_json::Map;
use sluice_template::{Context, Part, Template};

#[test]
fn snippet_failures_are_render_errors() {
    let fixture = Fixture::new();
    let six = "{{render_snippet('footer')}}".repeat(6);
    assert!(fixture
        .try_render(&six, Part::Text)
        .expect_err("limit")
        .contains("snippet limit exceeded"));
    let missing = fixture.try_render("{{ render_snippet('nope') }}", Part::Text);
    assert_eq!(missing.expect_err("missing"), "snippet 'nope' not found");
    let nested = fixture.try_render("{{ render_snippet('recursive') }}", Part::Text);
    assert!(nested.expect_err("nested").contains("inside a snippet"));
    let broken = fixture.try_render("{{ render_snippet('broken') }}", Part::Text);
    assert!(broken.expect_err("broken").contains("does not compile"));
    let not_string = fixture.try_render("{{ render_snippet(count) }}", Part::Text);
    assert!(not_string.is_err());
}

#[test]
fn the_snippet_limit_counts_every_part_of_a_message() {
    let fixture = Fixture::new();
    let three = "{{render_snippet('footer')}}".repeat(3);
    let html_three = "{{render_snippet('html_footer')}}".repeat(3);
    let one_part = fixture.try_render_parts(&[(&three, Part::Text)]);
    assert_eq!(one_part.expect("3 calls are allowed").len(), 1);
    let two_parts = fixture.try_render_parts(&[(&three, Part::Text), (&html_three, Part::Html)]);
    assert!(two_parts
        .expect_err("6 calls over two parts")
        .contains("snippet limit exceeded: at most 5 per message"));
}

#[test]
fn snippets_without_a_lookup_are_missing() {
    let template = Template::compile("{{ render_snippet('a') }}", Part::Text).expect("compiles");
    let builtins = Map::new();
    let ctx = Context {
        layers: Vec::new(),
        builtins: &builtins,
        dynamic: None,
        snippets: None,
        snippet_calls: Default::default(),
    };
    assert!(template.render(&ctx).is_err());
}

fn compile_error(source: &str) -> (u32, String) {
    let err = Template::compile(source, Part::Html).expect_err("must not compile");
    (err.line, err.message)
}

#[test]
fn compile_errors_carry_lines() {
    let unclosed_if = compile_error("a\nb\n{{if x}}\nc\nd");
    assert_eq!(
        unclosed_if,
        (
            5,
            "unexpected end of template: 'if' opened on line 3 is never closed".into()
        )
    );
    let unclosed_each = compile_error("{{each x}}\n{{if y}}{{end}}");
    assert_eq!(
        unclosed_each.1,
        "unexpected end of template: 'each' opened on line 1 is never closed"
    );
    assert_eq!(
        compile_error("a\n{{end}}"),
        (2, "'end' without a matching 'if' or 'each'".into())
    );
    assert_eq!(
        compile_error("{{else}}").1,
        "'else' without a matching 'if'"
    );
    assert_eq!(compile_error("x\n\n{{ name").0, 3);
    assert!(compile_error("x\n\n{{ name")
        .1
        .starts_with("unclosed '{{' opened on line 3"));
    assert_eq!(
        compile_error("\n{{ for }}"),
        (
            2,
            "'for' is a reserved word and cannot be used as a variable".into()
        )
    );
    assert_eq!(compile_error("{{ a + }}").1, "unexpected end of expression");
    assert_eq!(
        compile_error("{{ a b }}").1,
        "unexpected 'b' after expression"
    );
    assert_eq!(
        compile_error("{{ while x }}").1,
        "'while' is a reserved word and cannot be used as a variable"
    );
    assert_eq!(compile_error("{{ nope(1) }}").1, "unknown function 'nope'");
    assert_eq!(
        compile_error("{{if x}}{{else}}{{else}}{{end}}").1,
        "'else' after 'else' in the 'if' opened on line 1"
    );
    assert_eq!(
        compile_error("{{each x}}\n{{else}}{{end}}"),
        (2, "'else' inside the 'each' opened on line 1".into())
    );
    assert_eq!(compile_error("{{}}").1, "expected an expression");
    assert!(compile_error("{{ x or render_snippet('a') }}")
        .1
        .contains("only expression"));
    assert!(compile_error("{{ render_dynamic_content(name) }}")
        .1
        .contains("render_dynamic_content"));
    assert!(compile_error("{{{ if x }}}{{end}}")
        .1
        .contains("two braces"));
}

#[test]
fn nesting_limits_are_compile_errors() {
    let deep_blocks = "{{if a}}".repeat(33) + &"{{end}}".repeat(33);
    assert!(compile_error(&deep_blocks).1.contains("nested too deeply"));
    let ok_blocks = "{{if a}}".repeat(32) + "x" + &"{{end}}".repeat(32);
    assert!(Template::compile(&ok_blocks, Part::Text).is_ok());
    let deep_parens = format!("{{{{ {}a{} }}}}", "(".repeat(40), ")".repeat(40));
    assert!(compile_error(&deep_parens).1.contains("nested too deeply"));
    let long_chain = format!("{{{{ a{} }}}}", " + a".repeat(300));
    assert_eq!(compile_error(&long_chain).1, "expression is too complex");
}

#[test]
fn templates_at_the_limits_render() {
    let fixture = Fixture::new();
    let chain = format!("{{{{ count{} }}}}", " + 1".repeat(255));
    assert_eq!(fixture.render(&chain, Part::Text), "258");
    let parens = format!("{{{{ {}count{} }}}}", "(".repeat(31), ")".repeat(31));
    assert_eq!(fixture.render(&parens, Part::Text), "3");
    let nots = format!("{{{{ {}flag }}}}", "not ".repeat(32));
    assert_eq!(fixture.render(&nots, Part::Text), "false");
    let loops = "{{each one}}".repeat(32) + "{{loop_var}}" + &"{{end}}".repeat(32);
    assert_eq!(fixture.render(&loops, Part::Text), "x");
    let exploding = "{{each items}}".repeat(32) + "x" + &"{{end}}".repeat(32);
    let err = fixture
        .try_render(&exploding, Part::Text)
        .expect_err("2^32 iterations");
    assert!(err.starts_with("loop limit exceeded"), "{err}");
    let ifs = "{{if name}}".repeat(32) + "{{render_snippet('footer')}}" + &"{{end}}".repeat(32);
    assert_eq!(fixture.render(&ifs, Part::Text), "-- Ada --");
}

#[test]
fn templates_tell_whether_they_pull_in_content() {
    let compiled = |source: &str| Template::compile(source, Part::Html).expect("compiles");
    assert!(!compiled("<p>{{ name }}</p>{{if a}}x{{end}}").includes_content());
    assert!(
        compiled("{{if a}}{{each b}}{{ render_snippet('f') }}{{end}}{{end}}").includes_content()
    );
    assert!(compiled("{{ render_dynamic_content(dynamic_html.k) }}").includes_content());
}
