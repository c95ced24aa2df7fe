//! Values that must be kept but must not be usable from a store dump (Slack's
//! access token, a rotated refresh token's successor) are sealed with
//! AES-256-GCM under a key derived from a secret only the client holds (the
//! code or refresh token). The store keeps the ciphertext; whoever presents
//! the secret can open it.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn key(secret: &str, purpose: &str) -> LessSafeKey {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"slack-oidc-bridge seal v1\0");
    ctx.update(purpose.as_bytes());
    ctx.update(b"\0");
    ctx.update(secret.as_bytes());
    let material = ctx.finish();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, material.as_ref()).expect("32-byte key"))
}

/// Seals `plaintext` under `secret` for `purpose` (which is also authenticated).
pub fn seal(secret: &str, purpose: &str, plaintext: &[u8]) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).expect("the system random source works");
    let mut data = plaintext.to_vec();
    key(secret, purpose)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(purpose.as_bytes()),
            &mut data,
        )
        .expect("sealing cannot fail for small inputs");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&data);
    URL_SAFE_NO_PAD.encode(out)
}

/// Opens what [`seal`] made; `None` when the secret or purpose is wrong or
/// the data was altered.
pub fn open(secret: &str, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
    let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if raw.len() < NONCE_LEN {
        return None;
    }
    let (nonce, data) = raw.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut data = data.to_vec();
    let plain = key(secret, purpose)
        .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut data)
        .ok()?;
    Some(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_secret_and_purpose_open_a_sealed_value() {
        let sealed = seal("secret-a", "upstream", b"xoxp-123");
        assert_eq!(
            open("secret-a", "upstream", &sealed).as_deref(),
            Some(&b"xoxp-123"[..])
        );
        assert_eq!(open("secret-b", "upstream", &sealed), None);
        assert_eq!(open("secret-a", "successor", &sealed), None);
        assert!(!sealed.contains("xoxp"));
    }

    #[test]
    fn altered_data_does_not_open() {
        let mut sealed = seal("s", "p", b"value").into_bytes();
        let last = sealed.len() - 2;
        sealed[last] = if sealed[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(open("s", "p", std::str::from_utf8(&sealed).unwrap()), None);
    }
}
