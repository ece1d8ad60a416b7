//! Property tests: no input makes compiling or rendering panic, and escaping always holds.

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value as Json};
use sluice_template::{Context, Part, Template};

const PARTS: [Part; 4] = [Part::Text, Part::Html, Part::AmpHtml, Part::Header];

/// Keys that generated templates also use, so lookups actually hit data.
const KEYS: [&str; 9] = [
    "a",
    "b",
    "x",
    "items",
    "name",
    "inner",
    "k",
    "dynamic_html",
    "loop_var",
];

fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Json::String),
        select(vec![
            "{{a}}",
            "{{ render_snippet('s1') }}",
            "<&>",
            "{{ if }}"
        ])
        .prop_map(Json::from),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::btree_map(select(KEYS.to_vec()), inner, 0..6).prop_map(|m| {
                Json::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

fn data_layer() -> impl Strategy<Value = Map<String, Json>> {
    prop::collection::btree_map(select(KEYS.to_vec()), json_value(), 0..8)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn layers(count: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Map<String, Json>>> {
    prop::collection::vec(data_layer(), count)
}

fn single(key: &str, value: Json) -> Map<String, Json> {
    [(key.to_string(), value)].into_iter().collect()
}

/// Renders `source` in every part against `layers`; only compile and render errors may result.
fn render_everywhere(source: &str, layers: &[Map<String, Json>]) {
    let builtins: Map<String, Json> = match json!({"address": {"email": "a@x.test", "name": "A"},
        "email": "a@x.test", "email_id": "1", "env_from": "e@x.test", "return_path": "r@x.test"})
    {
        Json::Object(map) => map,
        _ => Map::new(),
    };
    let lookup = |id: &str, _: Part| match id {
        "s1" => Some(
            "<{{a}}>{{ render_dynamic_content(dynamic_html.k) }}"
                .to_string()
                .into(),
        ),
        "s2" => Some("{{ render_snippet('s1') }}".to_string().into()),
        _ => None,
    };
    for part in PARTS {
        let Ok(template) = Template::compile(source, part) else {
            continue;
        };
        let ctx = Context {
            layers: layers.iter().collect(),
            builtins: &builtins,
            dynamic: layers.last(),
            snippets: Some(&lookup),
            snippet_calls: Default::default(),
        };
        let _ = template.render(&ctx);
    }
}

/// Fragments that, glued at random, make mostly broken but tag-rich templates.
fn soup() -> impl Strategy<Value = String> {
    let pieces = vec![
        "{{",
        "}}",
        "{{{",
        "}}}",
        "{",
        "}",
        " if ",
        " each ",
        " end ",
        " else ",
        " elseif ",
        "then",
        " a ",
        "b",
        "x",
        ".",
        "[",
        "]",
        "(",
        ")",
        "1",
        "0",
        "-",
        "+",
        "*",
        "/",
        "#",
        " or ",
        " and ",
        " not ",
        "==",
        "<=",
        ">",
        "'s'",
        "\"",
        "'",
        "\\",
        "\n",
        "\r\n",
        "  ",
        "loop_var",
        "loop_vars",
        "loop_index",
        "items",
        "empty(",
        "render_snippet('s1')",
        "render_snippet('s2')",
        "render_dynamic_content(dynamic_html.k)",
        "https://",
        "<b>",
        "&",
        "é",
        "nil",
        "for",
        ",",
        "address.email",
        "opening_double_curly()",
        "=",
        "~=",
        "!",
        "<template type=\"amp-mustache\">",
        "</template>",
    ];
    prop::collection::vec(select(pieces), 0..48).prop_map(|v| v.concat())
}

fn expr() -> impl Strategy<Value = String> {
    let leaf = select(vec![
        "a",
        "b",
        "x",
        "name",
        "items",
        "loop_var",
        "loop_index",
        "loop_var.a",
        "loop_vars.items",
        "address.email",
        "email",
        "nil",
        "true",
        "false",
        "1",
        "2.5",
        "0",
        "'s'",
        "\"<&>\"",
        "a.b",
        "items[1]",
        "#items",
        "empty(a)",
        "opening_double_curly()",
        "a[k]",
        "x['a']",
    ])
    .prop_map(String::from);
    leaf.prop_recursive(3, 16, 2, |inner| {
        let ops = select(vec!["+", "-", "*", "/", "==", "!=", "<", ">=", "and", "or"]);
        prop_oneof![
            (inner.clone(), ops, inner.clone()).prop_map(|(l, o, r)| format!("({l} {o} {r})")),
            inner.clone().prop_map(|e| format!("not {e}")),
            inner.clone().prop_map(|e| format!("-{e}")),
            (inner.clone(), inner).prop_map(|(b, i)| format!("({b})[{i}]")),
        ]
    })
}

/// Templates that are valid by construction.
fn valid_template() -> impl Strategy<Value = String> {
    let text = select(vec![
        "hi ",
        "\n",
        "  ",
        "<b>",
        "https://x.test/?q=",
        "&",
        "'\"",
        "\t",
    ]);
    let leaf = prop_oneof![
        text.prop_map(String::from),
        expr().prop_map(|e| format!("{{{{ {e} }}}}")),
        expr().prop_map(|e| format!("{{{{{{{e}}}}}}}")),
        Just("{{ render_snippet('s1') }}".to_string()),
        Just("{{ render_dynamic_content(dynamic_html.k) }}".to_string()),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        let path = select(vec!["items", "a", "loop_var", "loop_var.inner", "x.items"]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| v.concat()),
            (expr(), inner.clone(), inner.clone())
                .prop_map(|(c, t, e)| format!("{{{{if {c}}}}}\n{t}\n{{{{else}}}}{e}{{{{end}}}}")),
            (path, inner)
                .prop_map(|(p, body)| format!("\n {{{{each {p}}}}}\n{body}{{{{ end }}}}\n")),
        ]
    })
}

/// True when every `&` in `s` starts one of the entities the escaper produces.
fn only_known_entities(s: &str) -> bool {
    let entities = ["&amp;", "&lt;", "&gt;", "&quot;", "&#x27;", "&#x2F;"];
    s.match_indices('&').all(|(i, _)| {
        entities
            .iter()
            .any(|e| s.get(i..).is_some_and(|rest| rest.starts_with(e)))
    })
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2F;", "/")
        .replace("&amp;", "&")
}

fn percent_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hex: String = bytes.by_ref().take(2).map(char::from).collect();
        out.push(u8::from_str_radix(&hex, 16).unwrap_or(0));
    }
    out
}

fn render_one(source: &str, part: Part, data: &Map<String, Json>) -> String {
    let builtins = Map::new();
    let ctx = Context {
        layers: vec![data],
        builtins: &builtins,
        dynamic: None,
        snippets: None,
        snippet_calls: Default::default(),
    };
    let template = Template::compile(source, part).expect("template compiles");
    template.render(&ctx).expect("template renders")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn tag_soup_never_panics(source in soup(), layers in layers(0..4)) {
        render_everywhere(&source, &layers);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_text_never_panics(source in any::<String>(), layer in data_layer()) {
        render_everywhere(&source, &[layer]);
    }

    #[test]
    fn valid_templates_compile_and_render(source in valid_template(), layers in layers(1..4)) {
        for part in PARTS {
            prop_assert!(Template::compile(&source, part).is_ok(), "{:?}", source);
        }
        render_everywhere(&source, &layers);
    }

    #[test]
    fn html_output_escapes_every_string(value in any::<String>()) {
        let data = single("x", Json::String(value.clone()));
        for part in [Part::Html, Part::AmpHtml] {
            let out = render_one("<p>{{x}}</p>", part, &data);
            let inner = out.strip_prefix("<p>").and_then(|s| s.strip_suffix("</p>"));
            let inner = inner.expect("template text is kept around the value");
            prop_assert!(!inner.contains(['<', '>', '"', '\'']), "{:?}", inner);
            prop_assert!(only_known_entities(inner), "{:?}", inner);
            prop_assert_eq!(unescape(inner), value.clone());
        }
    }

    #[test]
    fn html_output_escapes_any_json(value in json_value()) {
        let data = single("x", value);
        let out = render_one("{{x}}{{ x.a }}{{ x[1] }}", Part::Html, &data);
        prop_assert!(!out.contains(['<', '>', '"', '\'']), "{:?}", out);
        prop_assert!(only_known_entities(&out), "{:?}", out);
    }

    #[test]
    fn url_values_are_percent_encoded(value in any::<String>()) {
        let data = single("x", Json::String(value.clone()));
        for part in PARTS {
            let out = render_one("https://x.test/?q={{x}}", part, &data);
            let encoded = out.strip_prefix("https://x.test/?q=").expect("prefix kept");
            let unreserved = |c: char| c.is_ascii_alphanumeric() || "-._~%".contains(c);
            prop_assert!(encoded.chars().all(unreserved), "{:?}", encoded);
            prop_assert_eq!(percent_decode(encoded), value.as_bytes());
        }
    }

    #[test]
    fn text_without_tags_renders_verbatim(source in "[^{]*") {
        for part in PARTS {
            let template = Template::compile(&source, part).expect("plain text compiles");
            prop_assert!(template.is_static());
            prop_assert_eq!(render_one(&source, part, &Map::new()), source.clone());
        }
    }
}
