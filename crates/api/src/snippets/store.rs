//! The stored snippets: one JSON record per id in the spool's `snippets` tree, and beside it
//! every snippet compiled for each part it can be used in, so rendering reads no record and
//! compiles nothing per recipient. Writes go through this store, which replaces or drops the
//! compiled entry as it writes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use sluice_core::{Store, StoreError};
use sluice_template::{CompileError, Part, Snippet, Template};

/// The variants of a snippet; each is used from the part of the same kind, `text` also from
/// headers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnippetContent {
    /// Used from the HTML part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Used from the text part and from headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Used from the AMP part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amp_html: Option<String>,
}

/// A snippet as stored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredSnippet {
    /// The id `render_snippet` names, case-sensitive.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// The variants.
    pub content: SnippetContent,
    /// Kept and reported; Sluice has no subaccounts.
    pub shared_with_subaccounts: bool,
    /// When it was last written, in Unix milliseconds.
    pub updated_ms: u64,
}

/// A variant that does not compile: its field name and the compiler's error.
#[derive(Debug)]
pub struct VariantError {
    /// `html`, `text` or `amp_html`.
    pub part: &'static str,
    /// What is wrong.
    pub error: CompileError,
}

/// A snippet compiled for every part. A missing variant renders as nothing.
struct Compiled {
    html: Arc<Template>,
    text: Arc<Template>,
    header: Arc<Template>,
    amp_html: Arc<Template>,
}

impl Compiled {
    fn new(content: &SnippetContent) -> Result<Compiled, VariantError> {
        let compile = |part: &'static str, source: &Option<String>, kind: Part| {
            Template::compile(source.as_deref().unwrap_or(""), kind)
                .map(Arc::new)
                .map_err(|error| VariantError { part, error })
        };
        Ok(Compiled {
            html: compile("html", &content.html, Part::Html)?,
            text: compile("text", &content.text, Part::Text)?,
            header: compile("text", &content.text, Part::Header)?,
            amp_html: compile("amp_html", &content.amp_html, Part::AmpHtml)?,
        })
    }

    /// The variants with their field names, to check what they call.
    fn variants(&self) -> [(&'static str, &Template); 3] {
        [
            ("html", &self.html),
            ("text", &self.text),
            ("amp_html", &self.amp_html),
        ]
    }

    fn for_part(&self, part: Part) -> &Arc<Template> {
        match part {
            Part::Html => &self.html,
            Part::Text => &self.text,
            Part::Header => &self.header,
            Part::AmpHtml => &self.amp_html,
        }
    }
}

/// Compiles every variant of `content` and names the first that pulls in other content
/// (`render_snippet`, `render_dynamic_content`), which snippets may not do. `Ok(None)` when
/// all is well.
pub fn check(content: &SnippetContent) -> Result<Option<&'static str>, VariantError> {
    let compiled = Compiled::new(content)?;
    let calling = compiled
        .variants()
        .into_iter()
        .find(|(_, t)| t.includes_content());
    Ok(calling.map(|(part, _)| part))
}

/// Why a store operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SnippetStoreError {
    /// Creating an id that exists.
    #[error("a snippet with id {0:?} already exists")]
    Exists(String),
    /// The spool failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sled::Error> for SnippetStoreError {
    fn from(error: sled::Error) -> SnippetStoreError {
        SnippetStoreError::Store(StoreError::Storage(error))
    }
}

/// The `snippets` tree and the compiled snippets. Cheap to clone.
#[derive(Clone)]
pub struct SnippetStore {
    tree: sled::Tree,
    compiled: Arc<RwLock<HashMap<String, Arc<Compiled>>>>,
}

impl SnippetStore {
    /// Opens the spool's `snippets` tree and compiles every snippet in it.
    pub fn open(store: &Store) -> Result<SnippetStore, StoreError> {
        SnippetStore::with_tree(store.tree("snippets")?)
    }

    fn with_tree(tree: sled::Tree) -> Result<SnippetStore, StoreError> {
        let mut compiled = HashMap::new();
        for entry in tree.iter() {
            let (_, bytes) = entry?;
            let Some(snippet) = decode(&bytes) else {
                continue;
            };
            // Stored snippets were checked when written; one that no longer compiles (after a
            // language change) counts as missing rather than stopping the start.
            if let Ok(c) = Compiled::new(&snippet.content) {
                compiled.insert(snippet.id, Arc::new(c));
            }
        }
        Ok(SnippetStore {
            tree,
            compiled: Arc::new(RwLock::new(compiled)),
        })
    }

    /// The snippet `id` compiled for `part`, as rendering asks for it; `None` when there is no
    /// such snippet. Reads memory only.
    pub fn lookup(&self, id: &str, part: Part) -> Option<Snippet> {
        let compiled = self.compiled.read().unwrap_or_else(|p| p.into_inner());
        let template = compiled.get(id)?.for_part(part).clone();
        Some(Snippet::Compiled(template))
    }

    /// Stores a new snippet; fails if its id is taken or a variant does not compile.
    pub fn create(&self, snippet: &StoredSnippet) -> Result<(), SnippetStoreError> {
        let compiled = compiled(snippet);
        let mut cache = self.compiled.write().unwrap_or_else(|p| p.into_inner());
        self.tree
            .compare_and_swap(snippet.id.as_bytes(), None::<&[u8]>, Some(encode(snippet)))?
            .map_err(|_| SnippetStoreError::Exists(snippet.id.clone()))?;
        cache.extend(compiled.map(|c| (snippet.id.clone(), c)));
        Ok(())
    }

    /// The snippet with this id, if any.
    pub fn get(&self, id: &str) -> Result<Option<StoredSnippet>, SnippetStoreError> {
        Ok(self.tree.get(id)?.and_then(|bytes| decode(&bytes)))
    }

    /// Every snippet, in id order.
    pub fn list(&self) -> Result<Vec<StoredSnippet>, SnippetStoreError> {
        let mut out = Vec::new();
        for entry in self.tree.iter() {
            let (_, bytes) = entry?;
            out.extend(decode(&bytes));
        }
        Ok(out)
    }

    /// Replaces the stored snippet `snippet.id`; false when there is none. Writers are
    /// serialised by the compiled-snippet lock, so the record and its compiled form agree.
    pub fn replace(&self, snippet: &StoredSnippet) -> Result<bool, SnippetStoreError> {
        let compiled = compiled(snippet);
        let mut cache = self.compiled.write().unwrap_or_else(|p| p.into_inner());
        if !self.tree.contains_key(&snippet.id)? {
            return Ok(false);
        }
        self.tree.insert(snippet.id.as_bytes(), encode(snippet))?;
        match compiled {
            Some(c) => cache.insert(snippet.id.clone(), c),
            None => cache.remove(&snippet.id),
        };
        Ok(true)
    }

    /// Removes a snippet; false when there was none.
    pub fn delete(&self, id: &str) -> Result<bool, SnippetStoreError> {
        let mut cache = self.compiled.write().unwrap_or_else(|p| p.into_inner());
        cache.remove(id);
        Ok(self.tree.remove(id)?.is_some())
    }
}

/// A checked snippet always compiles; should one not, it counts as missing when rendering.
fn compiled(snippet: &StoredSnippet) -> Option<Arc<Compiled>> {
    Compiled::new(&snippet.content).ok().map(Arc::new)
}

fn encode(snippet: &StoredSnippet) -> Vec<u8> {
    // Strings, booleans and a number: serialisation cannot fail.
    serde_json::to_vec(snippet).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Option<StoredSnippet> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> SnippetStore {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .expect("temporary db");
        SnippetStore::with_tree(db.open_tree("snippets").expect("tree")).expect("store")
    }

    fn footer(html: &str) -> StoredSnippet {
        StoredSnippet {
            id: "footer".into(),
            name: "Footer".into(),
            content: SnippetContent {
                html: Some(html.into()),
                text: Some("bye {{name}}".into()),
                amp_html: None,
            },
            ..StoredSnippet::default()
        }
    }

    fn source(snippet: Option<Snippet>) -> Option<usize> {
        match snippet? {
            Snippet::Compiled(t) => Some(usize::from(t.is_static())),
            Snippet::Source(_) => None,
        }
    }

    #[test]
    fn lookups_follow_every_write() {
        let store = open();
        assert!(store.lookup("footer", Part::Html).is_none());
        store.create(&footer("<p>static</p>")).expect("create");
        assert_eq!(source(store.lookup("footer", Part::Html)), Some(1));
        assert_eq!(source(store.lookup("footer", Part::Text)), Some(0));
        assert_eq!(source(store.lookup("footer", Part::AmpHtml)), Some(1));
        assert!(store.replace(&footer("<p>{{name}}</p>")).expect("replace"));
        assert_eq!(source(store.lookup("footer", Part::Html)), Some(0));
        assert!(store.delete("footer").expect("delete"));
        assert!(store.lookup("footer", Part::Html).is_none());
        assert!(!store.replace(&footer("x")).expect("replace a missing one"));
    }

    #[test]
    fn taken_ids_are_refused() {
        let store = open();
        store.create(&footer("a")).expect("create");
        let again = store.create(&footer("b"));
        assert!(matches!(again, Err(SnippetStoreError::Exists(_))));
        let stored = store.get("footer").expect("get").expect("present");
        assert_eq!(stored.content.html.as_deref(), Some("a"));
    }

    #[test]
    fn checks_name_broken_and_nesting_variants() {
        let fine = footer("<p>{{name}}</p>").content;
        assert!(matches!(check(&fine), Ok(None)));
        let broken = SnippetContent {
            text: Some("line\n{{ if }}".into()),
            ..SnippetContent::default()
        };
        let error = check(&broken).expect_err("syntax error");
        assert_eq!((error.part, error.error.line), ("text", 2));
        let nesting = SnippetContent {
            amp_html: Some("{{ render_snippet('x') }}".into()),
            ..SnippetContent::default()
        };
        assert!(matches!(check(&nesting), Ok(Some("amp_html"))));
    }
}
