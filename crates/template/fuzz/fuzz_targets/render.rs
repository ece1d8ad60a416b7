//! Fuzz target: any bytes, read as lossy UTF-8, compiled as a template for every part and
//! rendered against a fixed data set. Compile and render errors are fine; panics are not.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use sluice_template::{Context, Part, Snippet, Template};

/// Data layers (recipient data, recipient metadata, transmission data, transmission
/// metadata) followed by the builtins.
struct Fixture {
    layers: Vec<Map<String, Value>>,
    builtins: Map<String, Value>,
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        layers: vec![
            object(json!({
                "name": "Ada <admin>", "count": 3, "price": 2.5, "flag": false, "none": null,
                "items": [{"sku": "A1", "tags": ["x", "y"]}, {"sku": "B2", "tags": []}],
                "user": {"first": "Grace", "nested": {"deep": [1, 2, 3]}}, "id": "s1"
            })),
            object(json!({"tier": "gold", "name": "metadata name"})),
            object(json!({
                "plan": "pro",
                "dynamic_html": {
                    "k": "<p>{{name}}</p>",
                    "loop": "{{render_dynamic_content(dynamic_html.k)}}"
                },
                "dynamic_plain": {"k": "{{name}}"}
            })),
            object(json!({"region": "eu"})),
        ],
        builtins: object(json!({
            "address": {"email": "ada@example.test", "name": "Ada"},
            "email": "ada@example.test", "email_id": "e1",
            "env_from": "bounce@example.test", "return_path": "rp@example.test"
        })),
    })
}

fn snippet(id: &str, _part: Part) -> Option<Snippet> {
    let source = match id {
        "s1" => "<i>{{name}}</i>{{each items}}{{loop_var.sku}}{{end}}",
        "s2" => "{{render_snippet('s1')}}",
        _ => return None,
    };
    Some(Snippet::Source(source.to_string()))
}

fuzz_target!(|data: &[u8]| {
    let source = String::from_utf8_lossy(data);
    let fixture = fixture();
    let ctx = Context {
        layers: fixture.layers.iter().collect(),
        builtins: &fixture.builtins,
        dynamic: fixture.layers.get(2),
        snippets: Some(&snippet),
        snippet_calls: Default::default(),
    };
    for part in [Part::Text, Part::Html, Part::AmpHtml, Part::Header] {
        if let Ok(template) = Template::compile(&source, part) {
            let _ = template.render(&ctx);
        }
    }
});
