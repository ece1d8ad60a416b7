//! DKIM: keys per sending domain, kept in the spool's `sending_domains` tree and cached in
//! memory, and the signing of each generated message whose From domain has a key.
//!
//! Keys are RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8 v1 or v2); signatures are RSA-SHA256 or Ed25519-SHA256 with
//! relaxed/relaxed canonicalisation, made by mail-auth.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::generate::DkimKeyPair;
use mail_auth::dkim::{DkimSigner, Done};
use rustls::pki_types::{PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use sluice_core::{Store, StoreError};

/// Headers covered by every signature, when present.
const SIGNED_HEADERS: [&str; 9] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "CC",
    "MIME-Version",
    "Content-Type",
];

/// The DKIM key algorithms Sluice signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// RSA-SHA256, what every receiver verifies.
    Rsa,
    /// Ed25519-SHA256 (RFC 8463): small and fast, verified by fewer receivers.
    Ed25519,
}

/// A sending domain's key as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DomainKey {
    /// The sending domain, lower-cased.
    pub domain: String,
    /// DKIM selector.
    pub selector: String,
    /// Key algorithm.
    pub algorithm: Algorithm,
    /// Private key, base64 DER (PKCS#1 for RSA, PKCS#8 for Ed25519).
    pub private: String,
    /// The `p=` value to publish: base64 SubjectPublicKeyInfo for RSA, the raw key for Ed25519.
    pub public: String,
}

impl DomainKey {
    /// Generates a key for `domain`.
    pub fn generate(
        domain: &str,
        selector: &str,
        algorithm: Algorithm,
        bits: usize,
    ) -> Result<DomainKey, String> {
        let pair = match algorithm {
            Algorithm::Rsa => DkimKeyPair::generate_rsa(bits),
            Algorithm::Ed25519 => DkimKeyPair::generate_ed25519(),
        }
        .map_err(|e| format!("generating a DKIM key failed: {e}"))?;
        let public = match algorithm {
            Algorithm::Rsa => rsa_spki(pair.public_key()),
            Algorithm::Ed25519 => pair.public_key().to_vec(),
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(DomainKey {
            domain: domain.to_ascii_lowercase(),
            selector: selector.to_string(),
            algorithm,
            private: b64.encode(pair.private_key()),
            public: b64.encode(public),
        })
    }

    /// The DNS TXT record to publish at `<selector>._domainkey.<domain>`.
    pub fn txt_record(&self) -> String {
        let k = match self.algorithm {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        };
        format!("v=DKIM1; k={k}; p={}", self.public)
    }

    /// Reads an imported key: `private` is base64 DER (PEM armour lines are dropped), PKCS#1
    /// or PKCS#8 for RSA, PKCS#8 v1 or v2 for Ed25519, the algorithm being read from the key
    /// itself. `public`, when given, must be the private key's own public key, as the record
    /// publishes it (SubjectPublicKeyInfo or PKCS#1 for RSA, raw or SubjectPublicKeyInfo for
    /// Ed25519): a mismatch would fail every signature. Without it, it is derived.
    pub fn import(
        domain: &str,
        selector: &str,
        private: &str,
        public: Option<&str>,
    ) -> Result<DomainKey, String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let private: String = private
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .flat_map(|l| l.split_whitespace())
            .collect();
        let der = b64
            .decode(&private)
            .map_err(|_| "dkim.private is not a base64 DER (or PEM) private key".to_string())?;
        let algorithm = if contains(&der, &ED25519_OID) {
            Algorithm::Ed25519
        } else {
            Algorithm::Rsa
        };
        let mut key = DomainKey {
            domain: domain.to_ascii_lowercase(),
            selector: selector.to_string(),
            algorithm,
            private,
            public: String::new(),
        };
        let forms = key.public_forms()?;
        key.public = match public {
            None => b64.encode(&forms[0]),
            Some(given) => {
                let bytes = b64.decode(given).map_err(|_| {
                    "dkim.public must be the base64 key as published in DNS".to_string()
                })?;
                if !forms.contains(&bytes) {
                    return Err("dkim.public is not the public key of dkim.private".into());
                }
                given.to_string()
            }
        };
        Ok(key)
    }

    /// The forms the key's public half may be published in, the conventional one first.
    fn public_forms(&self) -> Result<[Vec<u8>; 2], String> {
        let der = self.private_der()?;
        let unusable = |e| self.unusable(e);
        Ok(match self.algorithm {
            Algorithm::Rsa => {
                let pkcs1 = rsa_key(&der).map_err(unusable)?.public_key();
                [rsa_spki(&pkcs1), pkcs1]
            }
            Algorithm::Ed25519 => {
                let raw = ed25519_key(&der).map_err(unusable)?.public_key();
                let mut spki = ED25519_SPKI_PREFIX.to_vec();
                spki.extend_from_slice(&raw);
                [raw, spki]
            }
        })
    }

    fn private_der(&self) -> Result<Vec<u8>, String> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.private)
            .map_err(|e| e.to_string())
    }

    fn unusable(&self, e: mail_auth::Error) -> String {
        format!("unusable DKIM key for {}: {e}", self.domain)
    }

    fn signer(&self) -> Result<Signer, String> {
        let der = self.private_der()?;
        let unsigned = |e| self.unusable(e);
        Ok(match self.algorithm {
            Algorithm::Rsa => {
                let key = rsa_key(&der).map_err(unsigned)?;
                Signer::Rsa(
                    DkimSigner::from_key(key)
                        .domain(&self.domain)
                        .selector(&self.selector)
                        .headers(SIGNED_HEADERS),
                )
            }
            Algorithm::Ed25519 => {
                let key = ed25519_key(&der).map_err(unsigned)?;
                Signer::Ed25519(
                    DkimSigner::from_key(key)
                        .domain(&self.domain)
                        .selector(&self.selector)
                        .headers(SIGNED_HEADERS),
                )
            }
        })
    }
}

/// The object identifier of Ed25519 (1.3.101.112), as DER: what marks a PKCS#8 Ed25519 key.
const ED25519_OID: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

/// What precedes the raw key in an Ed25519 SubjectPublicKeyInfo.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An RSA key from PKCS#1 DER, as generated here, or PKCS#8, as often imported.
fn rsa_key(der: &[u8]) -> Result<RsaKey<Sha256>, mail_auth::Error> {
    RsaKey::<Sha256>::from_key_der(PrivatePkcs1KeyDer::from(der).into())
        .or_else(|_| RsaKey::<Sha256>::from_key_der(PrivatePkcs8KeyDer::from(der).into()))
}

/// An Ed25519 key from PKCS#8 DER: v2 as generated here, or v1 as OpenSSL writes it.
fn ed25519_key(der: &[u8]) -> Result<Ed25519Key, mail_auth::Error> {
    Ed25519Key::from_pkcs8_maybe_unchecked_der(der)
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo, the form DNS records conventionally
/// publish (what `openssl rsa -pubout` prints).
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption, NULL }
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x00];
    bit_string.extend_from_slice(pkcs1);
    let mut body = ALGORITHM.to_vec();
    body.extend(der_tlv(0x03, &bit_string));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// The keys of every sending domain, ready to sign. Cheap to clone.
#[derive(Clone)]
pub struct Keyring {
    tree: sled::Tree,
    signers: Arc<RwLock<HashMap<String, Arc<Signer>>>>,
}

impl Keyring {
    /// Loads every stored key.
    pub fn open(store: &Store) -> Result<Keyring, StoreError> {
        let keyring = Keyring {
            tree: store.tree("sending_domains")?,
            signers: Arc::default(),
        };
        for value in keyring.tree.iter().values() {
            if let Ok(key) = serde_json::from_slice::<DomainKey>(&value?) {
                keyring.cache(&key);
            }
        }
        Ok(keyring)
    }

    fn cache(&self, key: &DomainKey) {
        match key.signer() {
            Ok(signer) => {
                let mut signers = self.signers.write().unwrap_or_else(|p| p.into_inner());
                signers.insert(key.domain.clone(), Arc::new(signer));
            }
            Err(e) => {
                tracing::error!(domain = %key.domain, error = %e, "DKIM key cannot sign; messages go out unsigned")
            }
        }
    }

    /// Stores a key and starts signing with it. Fails when the key cannot sign.
    pub fn put(&self, key: &DomainKey) -> Result<(), String> {
        key.signer()?;
        let json = serde_json::to_vec(key).map_err(|e| e.to_string())?;
        self.tree
            .insert(key.domain.as_bytes(), json)
            .map_err(|e| e.to_string())?;
        self.cache(key);
        Ok(())
    }

    /// A domain's key.
    pub fn get(&self, domain: &str) -> Result<Option<DomainKey>, StoreError> {
        Ok(self
            .tree
            .get(domain.to_ascii_lowercase())?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Every domain's key.
    pub fn list(&self) -> Result<Vec<DomainKey>, StoreError> {
        let mut out = Vec::new();
        for value in self.tree.iter().values() {
            if let Ok(key) = serde_json::from_slice(&value?) {
                out.push(key);
            }
        }
        Ok(out)
    }

    /// Forgets a domain's key; its mail goes out unsigned from now on.
    pub fn remove(&self, domain: &str) -> Result<bool, StoreError> {
        let domain = domain.to_ascii_lowercase();
        self.signers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&domain);
        Ok(self.tree.remove(domain.as_bytes())?.is_some())
    }

    /// Prepends a DKIM-Signature to `message` when `from_domain` has a key.
    pub fn sign(&self, from_domain: &str, message: Vec<u8>) -> Result<Vec<u8>, String> {
        let signer = self
            .signers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&from_domain.to_ascii_lowercase())
            .cloned();
        let Some(signer) = signer else {
            return Ok(message);
        };
        let signature = match signer.as_ref() {
            Signer::Rsa(s) => s.sign(&message),
            Signer::Ed25519(s) => s.sign(&message),
        }
        .map_err(|e| format!("DKIM signing failed: {e}"))?;
        let mut signed = signature.to_header().into_bytes();
        signed.extend_from_slice(&message);
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_wraps_the_rsa_key_for_publishing() {
        let key = DomainKey::generate("Example.TEST", "s1", Algorithm::Rsa, 2048).expect("key");
        let spki = base64::engine::general_purpose::STANDARD
            .decode(&key.public)
            .expect("base64");
        assert_eq!(
            &spki[..2],
            &[0x30, 0x82],
            "a SEQUENCE with a two-byte long length"
        );
        assert!(key.txt_record().starts_with("v=DKIM1; k=rsa; p=MI"));
        assert_eq!(key.domain, "example.test");
    }

    #[test]
    fn both_algorithms_sign() {
        for algorithm in [Algorithm::Rsa, Algorithm::Ed25519] {
            let key = DomainKey::generate("example.test", "s1", algorithm, 2048).expect("key");
            let signer = key.signer().expect("signer");
            let message = b"From: a@example.test\r\nSubject: x\r\n\r\nbody\r\n";
            let signature = match signer {
                Signer::Rsa(s) => s.sign(message),
                Signer::Ed25519(s) => s.sign(message),
            };
            assert!(signature.is_ok(), "{algorithm:?}");
        }
    }

    #[test]
    fn an_imported_key_must_match_its_public_key() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let rsa = DomainKey::generate("a.test", "s1", Algorithm::Rsa, 2048).expect("rsa");
        let other = DomainKey::generate("a.test", "s1", Algorithm::Rsa, 2048).expect("rsa");
        let pem = format!(
            "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n",
            rsa.private
        );
        let derived = DomainKey::import("A.test", "s2", &pem, None).expect("derived");
        assert_eq!(
            (
                derived.algorithm,
                derived.public.as_str(),
                derived.domain.as_str()
            ),
            (Algorithm::Rsa, rsa.public.as_str(), "a.test")
        );
        // The PKCS#1 form of the public key is taken as well as SubjectPublicKeyInfo.
        let pkcs1 = &rsa.public_forms().expect("forms")[1];
        assert!(DomainKey::import("a.test", "s2", &rsa.private, Some(&b64.encode(pkcs1))).is_ok());
        let error = DomainKey::import("a.test", "s2", &rsa.private, Some(&other.public))
            .expect_err("a mismatch");
        assert_eq!(error, "dkim.public is not the public key of dkim.private");
        assert!(DomainKey::import("a.test", "s2", "not a key!", None).is_err());
    }

    #[test]
    fn ed25519_keys_import_in_either_pkcs8_version() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let generated =
            DomainKey::generate("a.test", "s1", Algorithm::Ed25519, 0).expect("ed25519");
        let v2 = b64.decode(&generated.private).expect("base64");
        // Version 1, as OpenSSL writes it: the seed alone, without the public key.
        let mut v1 = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        v1.extend_from_slice(&v2[16..48]);
        for der in [v1, v2] {
            let key = DomainKey::import("a.test", "s2", &b64.encode(&der), Some(&generated.public))
                .expect("imports");
            assert_eq!(key.algorithm, Algorithm::Ed25519);
            assert!(key.signer().is_ok());
        }
    }
}
