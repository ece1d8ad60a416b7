//! The stored templates: one record per template id in the spool's `templates` tree, holding a
//! draft and a published version. Records are JSON; every change is a compare-and-swap, so two
//! writers to one template cannot lose each other's change.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sluice_core::{Store, StoreError};

/// The content of one version, as checked and compiled when it was written: either the inline
/// fields or `email_rfc822` alone. `from` is kept as `{email, name}` whatever form the client
/// sent; a raw message has neither `from` nor `subject`, so both are left out when empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TemplateContent {
    /// `{email, name?}`.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub from: Value,
    /// Subject line.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// Plain-text part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// HTML part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// AMP part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amp_html: Option<String>,
    /// `Reply-To`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Extra headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Map<String, Value>>,
    /// A whole message as raw MIME, in place of all the fields above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_rfc822: Option<String>,
}

/// The sending options a template carries; a transmission's own options win over them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TemplateOptions {
    /// Default for `options.open_tracking`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_tracking: Option<bool>,
    /// Default for `options.click_tracking`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub click_tracking: Option<bool>,
    /// Default for `options.transactional`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transactional: Option<bool>,
}

/// One version of a template: the draft or the published one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// What the messages hold.
    pub content: TemplateContent,
    /// Sending defaults.
    pub options: TemplateOptions,
    /// When this version was last written, in Unix milliseconds.
    pub updated_ms: u64,
    /// Reported on events as `template_version`: the published versions count up from 0, and
    /// a draft carries the number it will have once published.
    pub number: u32,
}

/// A template and its versions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredTemplate {
    /// The id clients use, case-sensitive.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// When a transmission last used it, in Unix milliseconds.
    pub last_use_ms: Option<u64>,
    /// The version being edited, if any.
    pub draft: Option<Version>,
    /// The version transmissions use, if any.
    pub published: Option<Version>,
}

impl StoredTemplate {
    /// The draft when `draft` is true, the published version when false, and the most recently
    /// written one when not asked: usually the draft, unless the published version was
    /// overwritten (`update_published`) since.
    pub fn version(&self, draft: Option<bool>) -> Option<&Version> {
        match draft {
            Some(true) => self.draft.as_ref(),
            Some(false) => self.published.as_ref(),
            // The most recently written, the draft when both were written at once.
            None => match (&self.draft, &self.published) {
                (Some(d), Some(p)) if p.updated_ms > d.updated_ms => Some(p),
                (draft, published) => draft.as_ref().or(published.as_ref()),
            },
        }
    }
}

/// Why a store operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TemplateStoreError {
    /// Creating an id that exists.
    #[error("a template with id {0:?} already exists")]
    Exists(String),
    /// Changing an id that does not exist.
    #[error("no template with id {0:?}")]
    Missing(String),
    /// The spool failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sled::Error> for TemplateStoreError {
    fn from(error: sled::Error) -> TemplateStoreError {
        TemplateStoreError::Store(StoreError::Storage(error))
    }
}

/// The `templates` tree.
#[derive(Clone)]
pub struct TemplateStore {
    tree: sled::Tree,
}

impl TemplateStore {
    /// Opens the spool's `templates` tree.
    pub fn open(store: &Store) -> Result<TemplateStore, StoreError> {
        Ok(TemplateStore {
            tree: store.tree("templates")?,
        })
    }

    /// Stores a new template; fails if its id is taken.
    pub fn create(&self, template: &StoredTemplate) -> Result<(), TemplateStoreError> {
        let bytes = encode(template);
        self.tree
            .compare_and_swap(template.id.as_bytes(), None::<&[u8]>, Some(bytes))?
            .map_err(|_| TemplateStoreError::Exists(template.id.clone()))
    }

    /// The template with this id, if any. A record that does not decode counts as missing.
    pub fn get(&self, id: &str) -> Result<Option<StoredTemplate>, TemplateStoreError> {
        Ok(self.tree.get(id)?.and_then(|bytes| decode(&bytes)))
    }

    /// Every template, in id order.
    pub fn list(&self) -> Result<Vec<StoredTemplate>, TemplateStoreError> {
        let mut out = Vec::new();
        for entry in self.tree.iter() {
            let (_, bytes) = entry?;
            out.extend(decode(&bytes));
        }
        Ok(out)
    }

    /// Applies `change` to the stored template and writes the result, retrying when another
    /// writer got in between. Returns the template as written; when `change` fails, nothing is
    /// written and its error is returned.
    pub fn update<F, E>(&self, id: &str, mut change: F) -> Result<StoredTemplate, E>
    where
        F: FnMut(StoredTemplate) -> Result<StoredTemplate, E>,
        E: From<TemplateStoreError>,
    {
        loop {
            let old = self
                .tree
                .get(id)
                .map_err(TemplateStoreError::from)?
                .ok_or_else(|| TemplateStoreError::Missing(id.to_string()))?;
            let current = decode(&old).ok_or_else(|| TemplateStoreError::Missing(id.into()))?;
            let new = change(current)?;
            let swapped = self
                .tree
                .compare_and_swap(id, Some(&old), Some(encode(&new)))
                .map_err(TemplateStoreError::from)?;
            if swapped.is_ok() {
                return Ok(new);
            }
        }
    }

    /// Removes a template; false when there was none.
    pub fn delete(&self, id: &str) -> Result<bool, TemplateStoreError> {
        Ok(self.tree.remove(id)?.is_some())
    }
}

fn encode(template: &StoredTemplate) -> Vec<u8> {
    // A struct of strings, numbers and JSON values always serialises.
    serde_json::to_vec(template).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Option<StoredTemplate> {
    serde_json::from_slice(bytes).ok()
}

/// The id SparkPost derives from a name: lower-cased, every character that is not an ASCII
/// letter or digit replaced by `-`, cut to the 64-byte id limit.
pub fn id_from_name(name: &str) -> String {
    let id: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(super::MAX_ID)
        .collect();
    // A name without a letter or digit of ASCII, such as one in another script, gives no id.
    if id.bytes().any(|b| b.is_ascii_alphanumeric()) {
        id
    } else {
        "template".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> TemplateStore {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .expect("temporary db");
        TemplateStore {
            tree: db.open_tree("templates").expect("tree"),
        }
    }

    fn template(id: &str) -> StoredTemplate {
        StoredTemplate {
            id: id.into(),
            name: "Welcome".into(),
            draft: Some(Version {
                number: 0,
                ..Version::default()
            }),
            ..StoredTemplate::default()
        }
    }

    #[test]
    fn ids_derive_from_names() {
        assert_eq!(id_from_name("My Welcome Mail!"), "my-welcome-mail-");
        assert_eq!(id_from_name("Zoë_2"), "zo--2");
        assert_eq!(id_from_name(&"a".repeat(100)).len(), 64);
    }

    #[test]
    fn create_refuses_a_taken_id() {
        let store = open();
        store.create(&template("welcome")).expect("first create");
        let again = store.create(&template("welcome"));
        assert!(matches!(again, Err(TemplateStoreError::Exists(_))));
        assert_eq!(store.list().expect("list").len(), 1);
    }

    #[test]
    fn update_writes_the_change_and_a_refusal_changes_nothing() {
        let store = open();
        store.create(&template("welcome")).expect("create");
        let updated = store
            .update::<_, TemplateStoreError>("welcome", |mut t| {
                t.published = t.draft.take();
                Ok(t)
            })
            .expect("publish");
        assert!(updated.draft.is_none() && updated.published.is_some());
        let refused = store.update("welcome", |_| Err(TemplateStoreError::Exists("x".into())));
        assert!(refused.is_err());
        let stored = store.get("welcome").expect("get").expect("present");
        assert_eq!(stored, updated);
    }

    #[test]
    fn missing_templates_are_reported() {
        let store = open();
        assert!(store.get("nope").expect("get").is_none());
        let result: Result<_, TemplateStoreError> = store.update("nope", Ok);
        assert!(matches!(result, Err(TemplateStoreError::Missing(_))));
        assert!(!store.delete("nope").expect("delete"));
    }

    #[test]
    fn the_most_recent_version_is_the_draft_when_there_is_one() {
        let mut t = template("welcome");
        t.published = Some(Version {
            number: 3,
            ..Version::default()
        });
        assert_eq!(t.version(None).map(|v| v.number), Some(0));
        assert_eq!(t.version(Some(false)).map(|v| v.number), Some(3));
        t.draft = None;
        assert_eq!(t.version(None).map(|v| v.number), Some(3));
        assert!(t.version(Some(true)).is_none());
    }
}
