//! Golden examples: one template, one data set, one exact expected output per case.

mod fixture;

use fixture::Fixture;
use serde_json::Map;
use sluice_template::{Context, Part, Snippet, Template};

fn check(part: Part, cases: &[(&str, &str)]) {
    let fixture = Fixture::new();
    for (source, expected) in cases {
        assert_eq!(
            fixture.render(source, part),
            *expected,
            "template {source:?}"
        );
    }
}

#[test]
fn variables_and_missing_values() {
    check(
        Part::Text,
        &[
            ("Hello {{name}}!", "Hello Ada!"),
            ("Hello {{ name }}!", "Hello Ada!"),
            ("[{{missing}}][{{nothing}}][{{list}}][{{obj}}]", "[][][][]"),
            (
                "{{count}} {{price}} {{flag}} {{big}}",
                "3 2.5 false 12345678901234567890",
            ),
            (
                "{{ user.first }} {{ user['my-key'] }} {{ user[key].deep }}",
                "Grace dash yes",
            ),
            ("{{ user.nested['deep'] }}", "yes"),
        ],
    );
}

#[test]
fn layer_precedence_and_builtins() {
    check(
        Part::Text,
        &[
            ("{{city}}", "Recipient City"),
            ("{{tier}}", "gold"),
            ("{{plan}}", "pro"),
            ("{{region}} {{only_meta}}", "eu m"),
            (
                "{{address.email}} <{{address.name}}>",
                "ada@example.test <Ada L>",
            ),
            (
                "{{email}} {{email_id}} {{env_from}} {{return_path}}",
                "ada@example.test e-42 bounce@example.test rp@example.test",
            ),
        ],
    );
}

#[test]
fn defaults_and_logic_follow_lua() {
    check(
        Part::Text,
        &[
            ("{{ missing or 'Friend' }}", "Friend"),
            ("{{ missing or \"Friend\" }}", "Friend"),
            ("{{ name or 'Friend' }}", "Ada"),
            ("{{ flag or 'no' }}", "no"),
            ("{{ blank or 'kept' }}", ""),
            ("{{ name and 'yes' }}|{{ missing and 'yes' }}", "yes|"),
            (
                "{{ not flag }} {{ not name }} {{ nil }} {{ true }}",
                "true false  true",
            ),
            ("{{ count > 2 and 'many' or 'few' }}", "many"),
        ],
    );
}

#[test]
fn arithmetic_comparison_and_length() {
    check(
        Part::Text,
        &[
            (
                "{{ count + 1 }} {{ count - 5 }} {{ count * price }} {{ count / 2 }}",
                "4 -2 7.5 1.5",
            ),
            ("{{ 2 + 3 * 4 }} {{ (2 + 3) * 4 }} {{ -count }}", "14 20 -3"),
            ("{{ 1 / 0 }}|{{ count / (1 - 1) }}|{{ name + 1 }}", "||"),
            (
                "{{ numstr + 1 }} {{ numstr == 10 }} {{ numstr > 9 }}",
                "11 true true",
            ),
            (
                "{{ 'apple' < 'banana' }} {{ name == 'Ada' }} {{ name != 'Ada' }}",
                "true true false",
            ),
            (
                "{{ count >= 3 }} {{ count <= 2 }} {{ 1 == '1x' }} {{ list == list }}",
                "true false false true",
            ),
            (
                "{{ #items }} {{ #name }} {{ #list }} {{ #missing }}",
                "2 3 0 ",
            ),
            ("{{ 0.1 + 0.2 }} {{ 4 / 2 }} {{ 0 * -1 }}", "0.3 2 0"),
        ],
    );
}

#[test]
fn arrays_are_one_based() {
    check(
        Part::Text,
        &[
            ("{{ items[1].sku }} {{ items[2].sku }}", "A1 B2"),
            (
                "[{{ items[0].sku }}][{{ items[3].sku }}][{{ items[1.5] }}]",
                "[][][]",
            ),
            ("{{ items[pos].sku }} {{ matrix[1].cells[2] }}", "B2 b"),
        ],
    );
}

#[test]
fn html_escaping_applies_only_to_double_braces_in_html_parts() {
    let fixture = Fixture::new();
    assert_eq!(
        fixture.render("<b>{{tag}}</b>", Part::Html),
        "<b>&lt;&#x2F;b&gt;</b>"
    );
    assert_eq!(
        fixture.render("{{quote}}", Part::AmpHtml),
        "Tom &amp; &quot;Jerry&quot; &#x27;x&#x27;"
    );
    assert_eq!(
        fixture.render("<b>{{{tag}}}</b>", Part::Html),
        "<b></b></b>"
    );
    assert_eq!(fixture.render("{{tag}}", Part::Text), "</b>");
    assert_eq!(fixture.render("{{tag}}", Part::Header), "</b>");
    assert_eq!(
        fixture.render("{{ missing or '<x>' }}", Part::Html),
        "&lt;x&gt;"
    );
}

#[test]
fn values_in_literal_urls_are_percent_encoded() {
    let fixture = Fixture::new();
    let cases = [
        (
            "https://x.test/?q={{deal}}",
            Part::Text,
            "https://x.test/?q=Daily%20Deal%21",
        ),
        (
            "<a href=\"https://x.test/?q={{deal}}\">{{deal}}</a>",
            Part::Html,
            "<a href=\"https://x.test/?q=Daily%20Deal%21\">Daily Deal!</a>",
        ),
        (
            "http://x.test/{{path}}/{{deal}}",
            Part::Html,
            "http://x.test/a%20b%2Fc/Daily%20Deal%21",
        ),
        (
            "https://x.test/{{{path}}}",
            Part::Html,
            "https://x.test/a b/c",
        ),
        (
            "{{proto}}://x.test/{{path}}",
            Part::Text,
            "https://x.test/a b/c",
        ),
        (
            "https://x.test/ {{path}}",
            Part::Text,
            "https://x.test/ a b/c",
        ),
        ("HTTPS://x.test/{{count}}", Part::Header, "HTTPS://x.test/3"),
        (
            "https://x.test/?a={{if name}}{{deal}}{{end}}",
            Part::Text,
            "https://x.test/?a=Daily%20Deal%21",
        ),
    ];
    for (source, part, expected) in cases {
        assert_eq!(
            fixture.render(source, part),
            expected,
            "template {source:?}"
        );
    }
}

#[test]
fn amp_mustache_templates_pass_through_in_amp_parts() {
    let fixture = Fixture::new();
    let source = concat!(
        "<p>{{name}}</p>\n",
        "<template type=\"amp-mustache\">{{#items}}{{sku}}{{/items}}</template>\n",
        "<p>{{tag}}</p>"
    );
    let expected = concat!(
        "<p>Ada</p>\n",
        "<template type=\"amp-mustache\">{{#items}}{{sku}}{{/items}}</template>\n",
        "<p>&lt;&#x2F;b&gt;</p>"
    );
    assert_eq!(fixture.render(source, Part::AmpHtml), expected);
    assert!(fixture.try_render(source, Part::Html).is_err());
}

/// What SparkPost still evaluates inside an amp-mustache template: expressions naming
/// `sparkpost` or `loop_var`, the brace macros, and `else`/`end` closing statements opened
/// outside it.
#[test]
fn some_expressions_are_evaluated_inside_amp_mustache_templates() {
    let fixture = Fixture::new();
    let cases = [
        (
            "<template type=\"amp-mustache\">{{sparkpost_x or name}}: {{#c}}{{n}}{{/c}}</template>",
            "<template type=\"amp-mustache\">Ada: {{#c}}{{n}}{{/c}}</template>",
        ),
        (
            "{{each items}}<template type=\"amp-mustache\">{{loop_var.sku}}{{x}}</template>{{end}}",
            "<template type=\"amp-mustache\">A1{{x}}</template><template type=\"amp-mustache\">B2{{x}}</template>",
        ),
        (
            "<template type=\"amp-mustache\">{{opening_double_curly()}}raw{{closing_double_curly()}}</template>",
            "<template type=\"amp-mustache\">{{raw}}</template>",
        ),
        (
            "{{if flag}}<template type=\"amp-mustache\">A{{else}}B{{end}}</template>",
            "B</template>",
        ),
    ];
    for (source, expected) in cases {
        assert_eq!(fixture.render(source, Part::AmpHtml), expected, "{source}");
    }
}

#[test]
fn conditionals() {
    check(
        Part::Text,
        &[
            ("{{if name}}yes{{end}}", "yes"),
            ("{{if missing}}yes{{else}}no{{end}}", "no"),
            (
                "{{ if flag then }}a{{ elseif count == 3 then }}b{{ else }}c{{ end }}",
                "b",
            ),
            ("{{if blank}}blank is truthy{{end}}", "blank is truthy"),
            (
                "{{if not empty(items)}}has{{end}}{{if empty(list)}} none{{end}}",
                "has none",
            ),
            (
                "{{if empty(missing) and empty(blank) and empty(obj)}}all{{end}}",
                "all",
            ),
            ("{{if empty(name)}}x{{else}}y{{end}}", "y"),
            ("{{if count > 1}}{{if flag}}a{{else}}b{{end}}{{end}}", "b"),
        ],
    );
}

#[test]
fn statement_lines_disappear() {
    let source = concat!(
        "Items:\n",
        "  {{each items}}\n",
        "  - {{loop_var.sku}}\n",
        "  {{end}}\n",
        "{{if flag}}\n",
        "never\n",
        "{{else}}\n",
        "done\n",
        "{{end}}\n",
    );
    check(Part::Text, &[(source, "Items:\n  - A1\n  - B2\ndone\n")]);
    check(Part::Text, &[("a {{if name}}b{{end}}\nc", "a b\nc")]);
}

#[test]
fn loops() {
    check(
        Part::Text,
        &[
            (
                "{{each items}}{{loop_index}}:{{loop_var.sku}}x{{loop_var.qty}} {{end}}",
                "0:A1x2 1:B2x0 ",
            ),
            (
                "{{each list}}never{{end}}{{each missing}}never{{end}}{{each name}}never{{end}}",
                "",
            ),
            ("{{each user.nested}}never{{end}}", ""),
            (
                concat!(
                    "{{each matrix}}{{each loop_var.cells}}",
                    "{{loop_vars.matrix.row}}={{loop_var}};{{end}}{{end}}"
                ),
                "r1=a;r1=b;r2=c;",
            ),
            (
                concat!(
                    "{{each items}}{{each loop_var.tags}}",
                    "{{loop_vars.items.sku}}:{{loop_var}}{{end}}{{end}}"
                ),
                "A1:new",
            ),
            (
                "{{each items}}{{if loop_var.qty > 0}}{{loop_var.sku}}{{end}}{{end}}",
                "A1",
            ),
            ("{{ loop_var }}{{ loop_index }}", ""),
        ],
    );
}

#[test]
fn brace_macros() {
    check(
        Part::Html,
        &[(
            concat!(
                "{{opening_single_curly()}}{{closing_single_curly()}} ",
                "{{ opening_double_curly() }}x{{ closing_double_curly() }} ",
                "{{opening_triple_curly()}}{{closing_triple_curly()}}",
            ),
            "{} {{x}} {{{}}}",
        )],
    );
}

#[test]
fn dynamic_content() {
    let fixture = Fixture::new();
    let html = fixture.render(
        "[{{ render_dynamic_content(dynamic_html.banner) }}]",
        Part::Html,
    );
    assert_eq!(html, "[<p>Hi Ada &lt;&#x2F;b&gt;</p>]");
    let text = fixture.render(
        "{{render_dynamic_content(dynamic_plain['banner'])}}",
        Part::Text,
    );
    assert_eq!(text, "Hi Ada </b>");
    let missing = fixture.render(
        "[{{ render_dynamic_content(dynamic_html.nope) }}]",
        Part::Html,
    );
    assert_eq!(missing, "[]");
    let with_snippet = "{{ render_dynamic_content(dynamic_html.with_snippet) }}";
    assert_eq!(fixture.render(with_snippet, Part::Html), "[-- Ada --]");
    let nested = fixture.try_render(
        "{{ render_dynamic_content(dynamic_html.nested) }}",
        Part::Html,
    );
    assert!(nested
        .expect_err("nested")
        .contains("inside dynamic content"));
    let broken = fixture.try_render(
        "{{ render_dynamic_content(dynamic_html.broken) }}",
        Part::Html,
    );
    assert!(broken.expect_err("broken").contains("does not compile"));
}

#[test]
fn snippets() {
    let fixture = Fixture::new();
    assert_eq!(
        fixture.render("{{ render_snippet('footer') }}", Part::Text),
        "-- Ada --"
    );
    assert_eq!(
        fixture.render("{{render_snippet(\"html_footer\")}}", Part::Html),
        "<i>&lt;&#x2F;b&gt;</i>"
    );
    assert_eq!(
        fixture.render("{{ render_snippet(snippet_id) }}", Part::Text),
        "-- Ada --"
    );
    let looped = "{{each items}}{{ render_snippet('looped') }}{{end}}";
    assert_eq!(fixture.render(looped, Part::Text), "A1B2");
    let five = "{{render_snippet('footer')}}".repeat(5);
    assert_eq!(fixture.render(&five, Part::Text), "-- Ada --".repeat(5));
}

#[test]
fn static_templates_render_their_source() {
    let source = "no expressions } here { at all }}";
    let template = Template::compile(source, Part::Html).expect("compiles");
    assert!(template.is_static());
    assert!(!Template::compile("{{x}}", Part::Html)
        .expect("compiles")
        .is_static());
    let builtins = Map::new();
    let ctx = Context {
        layers: Vec::new(),
        builtins: &builtins,
        dynamic: None,
        snippets: None,
        snippet_calls: Default::default(),
    };
    assert_eq!(template.render(&ctx).expect("renders"), source);
}

#[test]
fn compiled_snippets_render_like_their_source() {
    let footer = Template::compile("<b>{{ name }}</b>", Part::Html).expect("compiles");
    let footer = std::sync::Arc::new(footer);
    let lookup = |id: &str, _: Part| (id == "footer").then(|| Snippet::Compiled(footer.clone()));
    let data = serde_json::json!({"name": "<Ada>"});
    let builtins = Map::new();
    let ctx = Context {
        layers: data.as_object().into_iter().collect(),
        builtins: &builtins,
        dynamic: None,
        snippets: Some(&lookup),
        snippet_calls: Default::default(),
    };
    let template = Template::compile("[{{ render_snippet('footer') }}]", Part::Html);
    let rendered = template.expect("compiles").render(&ctx);
    assert_eq!(rendered.expect("renders"), "[<b>&lt;Ada&gt;</b>]");
}
