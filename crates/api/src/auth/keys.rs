//! The key store: keys from the configuration file, read-only, and keys created through the API,
//! kept in the spool's `api_keys` tree under their SHA-256 digest. The key itself is never
//! stored; each stored key has a separate random id for the management API.
//!
//! Every request reads the tree, so a deleted or changed key takes effect on the next request.

use std::sync::Arc;

use rand::Rng;
use serde::{Deserialize, Serialize};
use sluice_core::config::ApiKeyConfig;
use sluice_core::{Store, StoreError};

/// Characters of a key shown in listings, as SparkPost's `short_key`.
const SHORT_KEY_LEN: usize = 4;
/// Prefix of the ids given to configured keys.
const CONFIGURED_PREFIX: &str = "config-";

/// A key as listed: everything but the key itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Random id for the management API; `config-<n>` for configured keys.
    #[serde(default)]
    pub id: String,
    /// Human-readable name.
    pub label: String,
    /// Grant names, or `*` for all.
    pub grants: Vec<String>,
    /// Addresses or CIDR ranges the key may be used from; empty means anywhere.
    #[serde(default)]
    pub valid_ips: Vec<String>,
    /// The first characters of the key, to tell keys apart.
    #[serde(default)]
    pub short_key: String,
}

impl KeyRecord {
    /// Whether the key comes from the configuration file and so cannot change through the API.
    pub fn is_configured(&self) -> bool {
        self.id.starts_with(CONFIGURED_PREFIX)
    }
}

/// A configured key: its digest and how it is listed.
struct Configured {
    digest: [u8; 32],
    record: KeyRecord,
}

/// Known keys. Cheap to clone.
#[derive(Clone)]
pub struct Keys {
    configured: Arc<Vec<Configured>>,
    stored: sled::Tree,
}

impl Keys {
    /// Keys from the configuration plus those in the spool's `api_keys` tree. Stored keys from
    /// before keys had ids are given one.
    pub fn open(store: &Store, configured: &[ApiKeyConfig]) -> Result<Keys, StoreError> {
        Keys::with_tree(store.tree("api_keys")?, configured)
    }

    fn with_tree(stored: sled::Tree, configured: &[ApiKeyConfig]) -> Result<Keys, StoreError> {
        let configured = configured
            .iter()
            .enumerate()
            .map(|(i, k)| Configured {
                digest: digest(&k.key),
                record: KeyRecord {
                    id: format!("{CONFIGURED_PREFIX}{}", i + 1),
                    label: "configuration file".into(),
                    grants: k.grants.clone(),
                    valid_ips: Vec::new(),
                    short_key: short_key(&k.key),
                },
            })
            .collect();
        let keys = Keys {
            configured: Arc::new(configured),
            stored,
        };
        keys.give_ids()?;
        Ok(keys)
    }

    fn give_ids(&self) -> Result<(), StoreError> {
        for entry in self.stored.iter() {
            let (digest, bytes) = entry?;
            let Some(mut record) = decode(&bytes) else {
                continue;
            };
            if record.id.is_empty() {
                record.id = new_id();
                // A concurrent change wins; the record then already has what it needs.
                let _ = self
                    .stored
                    .compare_and_swap(digest, Some(bytes), Some(encode(&record)))?;
            }
        }
        Ok(())
    }

    /// Whether any key exists at all.
    pub fn any(&self) -> bool {
        !self.configured.is_empty() || !self.stored.is_empty()
    }

    /// Creates a key with every grant and returns the key itself: the only time it is visible.
    pub fn generate(&self, label: &str) -> Result<String, StoreError> {
        let (key, _) = self.create(label, vec!["*".into()], Vec::new())?;
        Ok(key)
    }

    /// Stores a new key and returns it with its record; the key is shown only this once.
    pub fn create(
        &self,
        label: &str,
        grants: Vec<String>,
        valid_ips: Vec<String>,
    ) -> Result<(String, KeyRecord), StoreError> {
        let bytes: [u8; 20] = rand::rng().random();
        let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let record = KeyRecord {
            id: new_id(),
            label: label.to_string(),
            grants,
            valid_ips,
            short_key: short_key(&key),
        };
        self.stored.insert(digest(&key), encode(&record))?;
        Ok((key, record))
    }

    /// The record of the key presented in a request, read afresh.
    pub fn lookup(&self, key: &str) -> Result<Option<KeyRecord>, StoreError> {
        let digest = digest(key);
        if let Some(c) = self.configured.iter().find(|c| c.digest == digest) {
            return Ok(Some(c.record.clone()));
        }
        Ok(self.stored.get(digest)?.and_then(|bytes| decode(&bytes)))
    }

    /// Every key, configured ones first, stored ones in digest order.
    pub fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let mut out: Vec<KeyRecord> = self.configured.iter().map(|c| c.record.clone()).collect();
        for entry in self.stored.iter() {
            let (_, bytes) = entry?;
            out.extend(decode(&bytes));
        }
        Ok(out)
    }

    /// The key with this id.
    pub fn get(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.list()?.into_iter().find(|k| k.id == id))
    }

    /// Applies `change` to the stored key `id` and writes the result, retrying when another
    /// writer got in between. `Ok(None)` when no stored key has this id; when `change` fails,
    /// nothing is written and its error is returned.
    pub fn update<F, E>(&self, id: &str, mut change: F) -> Result<Option<KeyRecord>, E>
    where
        F: FnMut(KeyRecord) -> Result<KeyRecord, E>,
        E: From<StoreError>,
    {
        loop {
            let Some((digest, old)) = self.find_stored(id)? else {
                return Ok(None);
            };
            let Some(current) = decode(&old) else {
                return Ok(None);
            };
            let new = change(current)?;
            let swapped = self
                .stored
                .compare_and_swap(&digest, Some(&old), Some(encode(&new)))
                .map_err(StoreError::from)?;
            if swapped.is_ok() {
                return Ok(Some(new));
            }
        }
    }

    /// Removes the stored key `id`; false when there was none.
    pub fn remove(&self, id: &str) -> Result<bool, StoreError> {
        match self.find_stored(id)? {
            Some((digest, _)) => Ok(self.stored.remove(digest)?.is_some()),
            None => Ok(false),
        }
    }

    /// The digest and record bytes of the stored key `id`. A scan: keys are few, and only the
    /// management API asks by id.
    fn find_stored(&self, id: &str) -> Result<Option<(sled::IVec, sled::IVec)>, StoreError> {
        for entry in self.stored.iter() {
            let (digest, bytes) = entry?;
            if decode(&bytes).is_some_and(|k| k.id == id) {
                return Ok(Some((digest, bytes)));
            }
        }
        Ok(None)
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn short_key(key: &str) -> String {
    key.chars().take(SHORT_KEY_LEN).collect()
}

fn encode(record: &KeyRecord) -> Vec<u8> {
    // Strings only: serialisation cannot fail.
    serde_json::to_vec(record).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Option<KeyRecord> {
    serde_json::from_slice(bytes).ok()
}

fn digest(key: &str) -> [u8; 32] {
    let hash = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(hash.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> sled::Tree {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .expect("temporary db");
        db.open_tree("api_keys").expect("tree")
    }

    fn open(configured: &[ApiKeyConfig]) -> Keys {
        Keys::with_tree(tree(), configured).expect("keys")
    }

    #[test]
    fn created_keys_are_found_by_key_and_by_id_and_gone_once_removed() {
        let keys = open(&[]);
        let (key, record) = keys
            .create("ci", vec!["transmissions/modify".into()], Vec::new())
            .expect("create");
        assert_eq!(record.short_key, &key[..4]);
        assert_eq!(keys.lookup(&key).expect("lookup"), Some(record.clone()));
        assert_eq!(keys.get(&record.id).expect("get"), Some(record.clone()));
        assert!(keys.remove(&record.id).expect("remove"));
        assert_eq!(keys.lookup(&key).expect("lookup"), None);
        assert!(!keys.remove(&record.id).expect("second remove"));
    }

    #[test]
    fn configured_keys_are_listed_but_never_stored() {
        let configured = [ApiKeyConfig {
            key: "secret-from-config".into(),
            grants: vec!["*".into()],
        }];
        let keys = open(&configured);
        let listed = keys.list().expect("list");
        assert_eq!(listed.len(), 1);
        assert!(listed[0].is_configured());
        assert_eq!(listed[0].short_key, "secr");
        let updated = keys.update::<_, StoreError>(&listed[0].id, Ok);
        assert!(matches!(updated, Ok(None)));
        assert!(!keys.remove(&listed[0].id).expect("remove"));
        assert!(keys.lookup("secret-from-config").expect("lookup").is_some());
    }

    #[test]
    fn records_without_an_id_get_one_when_opened() {
        let tree = tree();
        let old = serde_json::json!({"label": "first start", "grants": ["*"]});
        tree.insert(digest("old-key"), serde_json::to_vec(&old).expect("json"))
            .expect("insert");
        let keys = Keys::with_tree(tree, &[]).expect("keys");
        let record = keys.lookup("old-key").expect("lookup").expect("present");
        assert_eq!(record.id.len(), 32);
        assert_eq!(keys.get(&record.id).expect("get"), Some(record));
    }
}
