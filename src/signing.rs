//! Signed Assignments, after the idea of STANAG 4778 (binding a confidentiality label to its data).
//!
//! The controller signs each Assignment's digest (`spec.digest`, the sha256 over the canonical JSON of what
//! the member must enforce, see [`crate::api::AssignmentSpec::compute_digest`]) with an Ed25519 key held in a
//! hub Secret, and puts the signature and the key id into two annotations of the Assignment
//! ([`SIGNATURE_ANNOTATION`], [`KEY_ID_ANNOTATION`]). Syncers verify with a [`KeyRing`] of trusted public keys
//! before applying: unsigned, signed by a key not in the ring, or tampered → refused.
//!
//! Rotation: a ring holds several keys (old and new) while every Assignment is re-signed; see
//! `docs/pull-mode.md`.
//!
//! Text forms (one line each, so they fit ConfigMaps, Secrets and flags):
//! - private key: `ed25519-private:<base64 of the 32-byte seed>`
//! - public key:  `ed25519:<base64 of the 32-byte key>`; a key ring is such lines, `#` starts a comment.
//! - key id: the first 16 hex digits of sha256 over the raw public key.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::api::Assignment;

/// Annotation with the base64 Ed25519 signature of the Assignment's digest.
pub const SIGNATURE_ANNOTATION: &str = "marshal.dev/signature";
/// Annotation with the id of the key that signed.
pub const KEY_ID_ANNOTATION: &str = "marshal.dev/signature-key";
/// Key of the private key in the hub signing Secret.
pub const SECRET_PRIVATE_KEY: &str = "signing-key";
/// Key of the current public key in the hub signing Secret (for operators to hand to agents).
pub const SECRET_PUBLIC_KEY: &str = "public-key";
/// Optional key in the hub signing Secret: further trusted public keys (the old key during a rotation).
pub const SECRET_TRUSTED_KEYS: &str = "trusted-keys";
/// Domain separation: what exactly is signed is this prefix followed by the digest.
const CONTEXT: &str = "marshal.dev/v1alpha1 Assignment digest\n";
const PRIVATE_PREFIX: &str = "ed25519-private:";
const PUBLIC_PREFIX: &str = "ed25519:";

/// The bytes that are signed for a digest.
pub fn message(digest: &str) -> Vec<u8> {
    format!("{CONTEXT}{digest}").into_bytes()
}

/// Key id of a public key: 16 hex digits of its sha256.
pub fn key_id(key: &VerifyingKey) -> String {
    Sha256::digest(key.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Text form of a public key.
pub fn public_key_text(key: &VerifyingKey) -> String {
    format!("{PUBLIC_PREFIX}{}", STANDARD.encode(key.as_bytes()))
}

fn decode32(text: &str, what: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD.decode(text.trim()).map_err(|e| format!("{what}: not base64: {e}"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| format!("{what}: expected 32 bytes, got {}", bytes.len()))
}

/// Parses one public key line (`ed25519:<base64>`).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let b64 = text
        .trim()
        .strip_prefix(PUBLIC_PREFIX)
        .ok_or_else(|| format!("public key must start with {PUBLIC_PREFIX:?}"))?;
    VerifyingKey::from_bytes(&decode32(b64, "public key")?).map_err(|e| format!("public key: {e}"))
}

/// The hub's signing key.
pub struct Signer {
    key: SigningKey,
    id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Signer {
    /// A new random key (from the operating system's generator).
    pub fn generate() -> Result<Self, String> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
        Ok(Self::from_seed(seed))
    }

    fn from_seed(seed: [u8; 32]) -> Self {
        let key = SigningKey::from_bytes(&seed);
        let id = key_id(&key.verifying_key());
        Signer { key, id }
    }

    /// Parses the private key text: `ed25519-private:<base64 seed>` (`marshal keygen`), or a PKCS#8 PEM
    /// `PRIVATE KEY` (what the hub chart generates with Helm's `genPrivateKey "ed25519"`). Errors never
    /// repeat the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let text = text.trim();
        if text.starts_with("-----BEGIN PRIVATE KEY-----") {
            let key = SigningKey::from_pkcs8_pem(text)
                .map_err(|_| "signing key: not an Ed25519 PKCS#8 PEM private key".to_string())?;
            return Ok(Self::from_seed(key.to_bytes()));
        }
        let b64 = text
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or_else(|| format!("signing key must start with {PRIVATE_PREFIX:?} or be a PKCS#8 PEM private key"))?;
        Ok(Self::from_seed(decode32(b64, "signing key")?))
    }

    /// Text form of the private key.
    pub fn private_text(&self) -> String {
        format!("{PRIVATE_PREFIX}{}", STANDARD.encode(self.key.to_bytes()))
    }

    /// The public key.
    pub fn public(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Key id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The base64 signature of a digest (Ed25519 is deterministic: the same digest gives the same signature,
    /// so re-building an unchanged Assignment writes nothing).
    pub fn sign_digest(&self, digest: &str) -> String {
        STANDARD.encode(self.key.sign(&message(digest)).to_bytes())
    }

    /// Sets the signature annotations of an Assignment (over its `spec.digest`, which must be computed first).
    pub fn sign(&self, a: &mut Assignment) {
        let sig = self.sign_digest(&a.spec.digest);
        let ann = a.metadata.annotations.get_or_insert_with(Default::default);
        ann.insert(SIGNATURE_ANNOTATION.into(), sig);
        ann.insert(KEY_ID_ANNOTATION.into(), self.id.clone());
    }
}

/// Why a signature is not accepted. `reason` is CamelCase (condition, Event and metric label).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// `Unsigned`, `UnknownSigningKey` or `BadSignature`.
    pub reason: &'static str,
    /// Detail.
    pub message: String,
}

/// The public keys a syncer trusts, by key id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRing {
    keys: BTreeMap<String, VerifyingKey>,
}

impl KeyRing {
    /// Parses lines of public keys; blank lines and `#` comments are ignored. An empty ring is an error
    /// (it would refuse everything, which is never what was meant).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut ring = KeyRing::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let token = line.split_whitespace().next().unwrap_or_default();
            ring.add(parse_public_key(token).map_err(|e| format!("line {}: {e}", i + 1))?);
        }
        if ring.keys.is_empty() {
            return Err("no public key".into());
        }
        Ok(ring)
    }

    /// Adds a key.
    pub fn add(&mut self, key: VerifyingKey) {
        self.keys.insert(key_id(&key), key);
    }

    /// The keys, by id.
    pub fn keys(&self) -> Vec<VerifyingKey> {
        self.keys.values().copied().collect()
    }

    /// Key ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }

    /// The ring as text, one key per line with its id as a comment.
    pub fn to_text(&self) -> String {
        self.keys.iter().map(|(id, k)| format!("{}  # {id}\n", public_key_text(k))).collect()
    }

    /// Verifies the signature annotations of an Assignment over its `spec.digest`. The digest itself must be
    /// checked against the spec separately (see `sync::recheck`).
    pub fn verify(&self, a: &Assignment) -> Result<(), Rejection> {
        let ann = a.metadata.annotations.as_ref();
        let get = |k: &str| ann.and_then(|m| m.get(k)).map(String::as_str).filter(|s| !s.is_empty());
        let (Some(sig), Some(id)) = (get(SIGNATURE_ANNOTATION), get(KEY_ID_ANNOTATION)) else {
            return Err(Rejection {
                reason: "Unsigned",
                message: format!("no {SIGNATURE_ANNOTATION} and {KEY_ID_ANNOTATION} annotations"),
            });
        };
        let Some(key) = self.keys.get(id) else {
            return Err(Rejection {
                reason: "UnknownSigningKey",
                message: format!("signed by key {id}, which is not trusted (trusted: {})", self.ids().join(", ")),
            });
        };
        let bad = |detail: String| Rejection { reason: "BadSignature", message: detail };
        let bytes = STANDARD.decode(sig).map_err(|e| bad(format!("signature is not base64: {e}")))?;
        let sig = Signature::from_slice(&bytes).map_err(|e| bad(format!("signature: {e}")))?;
        key.verify_strict(&message(&a.spec.digest), &sig)
            .map_err(|_| bad(format!("signature by key {id} does not match digest {}", a.spec.digest)))
    }
}

/// How a syncer treats signatures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Trust {
    /// No keys configured (push mode without `--signing-key-secret`): signatures are not checked.
    #[default]
    AcceptUnsigned,
    /// Only Assignments signed by one of these keys are applied.
    Keys(KeyRing),
    /// The key ring in this file, read at every check (so a rotation needs no restart). An unreadable or
    /// invalid file refuses everything (fail closed).
    File(std::path::PathBuf),
}

impl Trust {
    /// The key ring in force: `Ok(None)` when signatures are not checked.
    pub fn ring(&self) -> Result<Option<KeyRing>, String> {
        match self {
            Trust::AcceptUnsigned => Ok(None),
            Trust::Keys(r) => Ok(Some(r.clone())),
            Trust::File(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| format!("trusted keys {}: {e}", p.display()))?;
                KeyRing::parse(&text).map(Some).map_err(|e| format!("trusted keys {}: {e}", p.display()))
            }
        }
    }
}

/// The hub's signing key and the ring its push-mode syncers trust, from the signing Secret's data.
pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<(Signer, KeyRing), String> {
    let text = |k: &str| data.get(k).map(|v| String::from_utf8_lossy(v).into_owned());
    let signer = Signer::parse(&text(SECRET_PRIVATE_KEY).ok_or_else(|| format!("no key {SECRET_PRIVATE_KEY}"))?)?;
    let mut ring = match text(SECRET_TRUSTED_KEYS) {
        Some(t) if !t.trim().is_empty() => KeyRing::parse(&t).map_err(|e| format!("{SECRET_TRUSTED_KEYS}: {e}"))?,
        _ => KeyRing::default(),
    };
    ring.add(signer.public());
    Ok((signer, ring))
}

/// The signing Secret as YAML (`stringData`), with the current public key and further trusted keys.
pub fn secret_yaml(namespace: &str, name: &str, signer: &Signer, trusted: &[VerifyingKey]) -> String {
    let mut out = format!(
        "# Marshal's Assignment signing key {id}. Keep it on the hub only; hand agents the public key.\n\
         apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  \
         labels: {{app.kubernetes.io/managed-by: marshal}}\ntype: Opaque\nstringData:\n  \
         {SECRET_PRIVATE_KEY}: {private}\n  {SECRET_PUBLIC_KEY}: {public}\n",
        id = signer.id(),
        private = signer.private_text(),
        public = public_key_text(&signer.public()),
    );
    if !trusted.is_empty() {
        out.push_str(&format!("  {SECRET_TRUSTED_KEYS}: |\n"));
        for k in trusted {
            out.push_str(&format!("    {}  # {}\n", public_key_text(k), key_id(k)));
        }
    }
    out
}

/// Process-wide signing configuration, installed once by the command that runs (`marshal controller` or
/// `marshal agent`) and read by the pure build step and the syncers (whose call chains are shared with push
/// mode and tests, so the configuration travels beside them rather than through every signature).
static SIGNER: RwLock<Option<Arc<Signer>>> = RwLock::new(None);

/// Counts key changes, so the controller can re-build every Assignment at once after a rotation.
static CHANGES: std::sync::LazyLock<tokio::sync::watch::Sender<u64>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::channel(0).0);

/// Installs (or replaces, on rotation) the key the controller signs with.
pub fn install_signer(signer: Option<Signer>) {
    {
        let mut slot = SIGNER.write().unwrap_or_else(|p| p.into_inner());
        *slot = signer.map(Arc::new);
    }
    CHANGES.send_modify(|n| *n += 1);
}

/// A receiver that changes whenever the signing key does.
pub fn signer_changes() -> tokio::sync::watch::Receiver<u64> {
    CHANGES.subscribe()
}

/// The key the controller signs with, if any.
pub fn signer() -> Option<Arc<Signer>> {
    SIGNER.read().unwrap_or_else(|p| p.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        let s = Signer::generate().unwrap();
        let again = Signer::parse(&s.private_text()).unwrap();
        assert_eq!(again.id(), s.id());
        assert_eq!(parse_public_key(&public_key_text(&s.public())).unwrap(), s.public());
        assert_eq!(s.id().len(), 16);
        assert!(Signer::parse("ed25519:AAAA").is_err());
        assert!(parse_public_key("ed25519:AAAA").unwrap_err().contains("32 bytes"));
    }

    #[test]
    fn pem_keys_as_helm_generates_them_parse_to_the_same_key() {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let s = Signer::generate().unwrap();
        let pem = s.key.to_pkcs8_pem(Default::default()).unwrap();
        let again = Signer::parse(&pem).unwrap();
        assert_eq!(again.id(), s.id());
        let bad = Signer::parse("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").unwrap_err();
        assert!(!bad.contains("AAAA"), "{bad}");
    }

    #[test]
    fn ring_parses_comments_and_rejects_empty() {
        let a = Signer::generate().unwrap();
        let b = Signer::generate().unwrap();
        let text =
            format!("# hub keys\n{}  # old\n\n{} new\n", public_key_text(&a.public()), public_key_text(&b.public()));
        let ring = KeyRing::parse(&text).unwrap();
        let mut ids = vec![a.id().to_string(), b.id().to_string()];
        ids.sort();
        assert_eq!(ring.ids(), ids);
        assert_eq!(KeyRing::parse(&ring.to_text()).unwrap(), ring);
        assert!(KeyRing::parse("# nothing\n").is_err());
        assert!(KeyRing::parse("rsa:xyz\n").unwrap_err().contains("line 1"));
    }

    #[test]
    fn secret_round_trips_with_trusted_keys() {
        let old = Signer::generate().unwrap();
        let new = Signer::generate().unwrap();
        let yaml = secret_yaml("marshal-system", "marshal-signing-key", &new, &[old.public()]);
        let secret: k8s_openapi::api::core::v1::Secret = serde_yaml::from_str(&yaml).unwrap();
        let data: BTreeMap<String, Vec<u8>> =
            secret.string_data.unwrap().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
        let (signer, ring) = from_secret_data(&data).unwrap();
        assert_eq!(signer.id(), new.id());
        assert_eq!(ring.ids().len(), 2);
        assert!(ring.ids().contains(&old.id().to_string()));
        assert!(from_secret_data(&BTreeMap::new()).unwrap_err().contains(SECRET_PRIVATE_KEY));
    }
}
