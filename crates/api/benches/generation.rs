//! Message generation per recipient, as `POST /transmissions` does it: render a 10 KB HTML part
//! with 20 substitutions and a text part, build the MIME message, and sign it unsigned, with
//! RSA-2048 or with Ed25519. Throughput is messages per second on one core.
//!
//! Run: `cargo bench -p sluice-api --bench generation`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{Map, Value};
use sluice_api::dkim::{Algorithm, DomainKey, Keyring};
use sluice_api::generation::{self, Address, Addressing, Compiled, InlineContent, Prepared};
use sluice_core::Store;
use sluice_template::Context;

/// Substitutions in the HTML part, each a distinct variable.
const SUBSTITUTIONS: usize = 20;
/// Size the HTML part is padded to, in bytes.
const HTML_BYTES: usize = 10 * 1024;
const DOMAIN: &str = "sender.test";

/// A 10 KB HTML part with one `{{ var_i }}` per paragraph among plain paragraphs.
fn html() -> String {
    let filler = "<p style=\"margin:0 0 12px\">Thank you for shopping with us. Your order is on \
                  its way and will arrive soon; track it from your account page.</p>\n";
    let mut html = String::from("<html><body>\n");
    for i in 0..SUBSTITUTIONS {
        html.push_str(&format!("<p>Field {i}: <b>{{{{ var_{i} }}}}</b></p>\n"));
        html.push_str(filler);
    }
    while html.len() < HTML_BYTES - filler.len() {
        html.push_str(filler);
    }
    html.push_str("</body></html>\n");
    html
}

fn content() -> InlineContent {
    InlineContent {
        from_email: format!("shop@{DOMAIN}"),
        from_name: Some("Shop".into()),
        subject: "Your order {{ var_0 }} has shipped".into(),
        reply_to: None,
        headers: Vec::new(),
        text: Some("Hi {{ var_1 }},\n\nYour order {{ var_0 }} has shipped.\n".repeat(20)),
        html: Some(html()),
        amp_html: None,
        files: Default::default(),
    }
}

fn recipient_data() -> Map<String, Value> {
    (0..SUBSTITUTIONS)
        .map(|i| {
            (
                format!("var_{i}"),
                Value::from(format!("value <{i}> & more")),
            )
        })
        .collect()
}

/// One recipient's message, through the API's generation entry point.
fn one(content: &Compiled, data: &Map<String, Value>, keyring: &Keyring) -> usize {
    let builtins = generation::builtins("ann@example.test", Some("Ann"), "bounces@sender.test");
    let empty = Map::new();
    let context = Context {
        layers: vec![data, &empty, &empty, &empty],
        builtins: &builtins,
        dynamic: Some(&empty),
        snippets: None,
        snippet_calls: Default::default(),
    };
    let addressing = Addressing {
        message_id: "000000000000000000001",
        to: Address {
            email: "ann@example.test".into(),
            name: Some("Ann".into()),
            header_to: None,
        }
        .shown_in_to(),
    };
    match generation::generate(content, &context, &addressing, keyring) {
        Ok(generated) => generated.body.len(),
        Err(reason) => panic!("generation failed: {reason}"),
    }
}

/// A keyring in a throwaway spool, holding a key of `algorithm` for the sender's domain.
fn keyring(dir: &std::path::Path, algorithm: Option<Algorithm>) -> Keyring {
    let store = Store::open(dir, 8 << 20).expect("a spool for the keyring");
    let keyring = Keyring::open(&store).expect("a keyring");
    if let Some(algorithm) = algorithm {
        let key = DomainKey::generate(DOMAIN, "bench", algorithm, 2048).expect("a DKIM key");
        keyring.put(&key).expect("storing the key");
    }
    keyring
}

fn generation(c: &mut Criterion) {
    let content = Compiled::Inline(Box::new(
        Prepared::compile(content(), true).expect("the content compiles"),
    ));
    let data = recipient_data();
    let mut group = c.benchmark_group("generation");
    group.throughput(Throughput::Elements(1));
    let variants = [
        ("unsigned", None),
        ("rsa2048", Some(Algorithm::Rsa)),
        ("ed25519", Some(Algorithm::Ed25519)),
    ];
    for (name, algorithm) in variants {
        let dir = std::env::temp_dir().join(format!("sluice-bench-{name}-{}", std::process::id()));
        let keyring = keyring(&dir, algorithm);
        group.bench_function(name, |b| {
            b.iter(|| one(black_box(&content), black_box(&data), &keyring))
        });
        drop(keyring);
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

criterion_group!(benches, generation);
criterion_main!(benches);
