//! C2SP signed notes (c2sp.org/signed-note) with Ed25519, signed and
//! verified with ring — the one Ed25519 implementation in this service —
//! rather than pulling a second one in through the `signed_note` crate.
//! Checked against the specification's own example (PeterNeumann).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// Signature type byte for Ed25519 (signed-note §"Signature types").
const ED25519_TYPE: u8 = 0x01;

/// A verifier key: a name and a public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteKey {
    /// The key name, e.g. the log's origin line; no spaces and no `+`.
    pub name: String,
    /// The raw 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
}

/// Why a note does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note, or a verifier key, breaks the signed-note grammar; holds what is wrong.
    #[error("the note is malformed: {0}")]
    Malformed(String),
    /// No signature line carries the key's name and key ID; holds the name.
    #[error("no signature by the log key '{0}' is on the note")]
    NotSigned(String),
    /// A signature with the key's name and ID is there but does not verify; holds the name.
    #[error("the signature by '{0}' does not match the note's text")]
    BadSignature(String),
}

impl NoteKey {
    /// The 4-byte key ID: `SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]`
    /// (signed-note §"Signatures").
    pub fn key_id(&self) -> [u8; 4] {
        let mut m = self.name.as_bytes().to_vec();
        m.push(b'\n');
        m.push(ED25519_TYPE);
        m.extend_from_slice(&self.public_key);
        let d = ring::digest::digest(&ring::digest::SHA256, &m);
        d.as_ref()[..4].try_into().expect("four bytes")
    }

    /// The verifier key string `name+hexid+base64(type ‖ key)`.
    pub fn vkey(&self) -> String {
        let mut k = vec![ED25519_TYPE];
        k.extend_from_slice(&self.public_key);
        format!("{}+{}+{}", self.name, hex::encode(self.key_id()), B64.encode(k))
    }

    /// Parses a verifier key string.
    pub fn from_vkey(vkey: &str) -> Result<NoteKey, NoteError> {
        let bad = |why: &str| NoteError::Malformed(format!("verifier key '{vkey}': {why}"));
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected name+id+key"));
        };
        let key = B64.decode(key).map_err(|_| bad("key is not base64"))?;
        if key.len() != 33 || key[0] != ED25519_TYPE {
            return Err(bad("not an Ed25519 key"));
        }
        let k = NoteKey { name: name.to_owned(), public_key: key[1..].to_vec() };
        if hex::encode(k.key_id()) != id {
            return Err(bad("its id does not match its name and key"));
        }
        Ok(k)
    }
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(NoteError::Malformed(format!("key name '{name}' is empty or has a space or '+'")));
    }
    Ok(())
}

/// Signs `text` (which must end in a newline) as `name`: the text, a blank
/// line, and one signature line `— name base64(id ‖ signature)`.
pub fn sign(text: &str, name: &str, pair: &Ed25519KeyPair) -> Result<String, NoteError> {
    check_name(name)?;
    if !text.ends_with('\n') || text.contains("\n\n") {
        return Err(NoteError::Malformed("the text must end in a newline and have no blank line".into()));
    }
    let key = NoteKey { name: name.to_owned(), public_key: pair.public_key().as_ref().to_vec() };
    let mut sig = key.key_id().to_vec();
    sig.extend_from_slice(pair.sign(text.as_bytes()).as_ref());
    Ok(format!("{text}\n\u{2014} {name} {}\n", B64.encode(sig)))
}

/// A signature line: the key name and base64-decoded (key id ‖ signature).
pub type SignatureLine<'n> = (&'n str, Vec<u8>);

/// Splits a signed note into its text and signature lines.
pub fn split(note: &str) -> Result<(&str, Vec<SignatureLine<'_>>), NoteError> {
    let at = note.rfind("\n\n").ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
    let (text, sigs) = (&note[..at + 1], &note[at + 2..]);
    if !sigs.ends_with('\n') {
        return Err(NoteError::Malformed("the last signature line does not end in a newline".into()));
    }
    let mut out = Vec::new();
    for line in sigs.lines() {
        let rest = line.strip_prefix("\u{2014} ").ok_or_else(|| NoteError::Malformed(format!("'{line}' is not a signature line")))?;
        let (name, sig) = rest.split_once(' ').ok_or_else(|| NoteError::Malformed(format!("'{line}' has no signature")))?;
        let sig = B64.decode(sig).map_err(|_| NoteError::Malformed(format!("the signature of '{name}' is not base64")))?;
        if sig.len() < 4 {
            return Err(NoteError::Malformed(format!("the signature of '{name}' is too short")));
        }
        out.push((name, sig));
    }
    Ok((text, out))
}

/// Verifies that `key` signed the note; returns the note's text.
pub fn verify<'n>(note: &'n str, key: &NoteKey) -> Result<&'n str, NoteError> {
    let (text, sigs) = split(note)?;
    let id = key.key_id();
    let sig = sigs.iter().find(|(name, sig)| *name == key.name && sig[..4] == id).ok_or_else(|| NoteError::NotSigned(key.name.clone()))?;
    UnparsedPublicKey::new(&ED25519, &key.public_key)
        .verify(text.as_bytes(), &sig.1[4..])
        .map_err(|_| NoteError::BadSignature(key.name.clone()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of c2sp.org/signed-note (and Go's golang.org/x/mod/sumdb/note).
    const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const SIGNED: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn seed_pair() -> Ed25519KeyPair {
        let seed = B64.decode(SKEY.splitn(5, '+').nth(4).unwrap()).unwrap();
        assert_eq!(seed[0], ED25519_TYPE);
        Ed25519KeyPair::from_seed_unchecked(&seed[1..]).unwrap()
    }

    #[test]
    fn the_specifications_example_signs_and_verifies_byte_for_byte() {
        let key = NoteKey::from_vkey(VKEY).unwrap();
        assert_eq!(key.vkey(), VKEY);
        let pair = seed_pair();
        assert_eq!(pair.public_key().as_ref(), key.public_key.as_slice());
        assert_eq!(sign(TEXT, "PeterNeumann", &pair).unwrap(), SIGNED);
        assert_eq!(verify(SIGNED, &key).unwrap(), TEXT);
    }

    #[test]
    fn tampered_or_foreign_notes_are_refused() {
        let key = NoteKey::from_vkey(VKEY).unwrap();
        let tampered = SIGNED.replace("cryptography", "cryptographY");
        assert_eq!(verify(&tampered, &key), Err(NoteError::BadSignature("PeterNeumann".into())));
        let other = NoteKey { name: "PeterNeumann".into(), public_key: vec![7; 32] };
        assert_eq!(verify(SIGNED, &other), Err(NoteError::NotSigned("PeterNeumann".into())));
        assert!(matches!(verify("no signatures\n", &key), Err(NoteError::Malformed(_))));
        assert!(matches!(verify(&SIGNED.replace("x08go", "!!!"), &key), Err(NoteError::Malformed(_))));
        assert!(NoteKey::from_vkey("PeterNeumann+00000000+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").is_err());
    }
}
