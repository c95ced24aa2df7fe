//! Sealing with the key set: data an unauthenticated request must carry to a
//! later request (the pending sign-in, in Slack's `state`) travels sealed
//! with AES-256-GCM instead of being stored, so a flood costs CPU and never
//! storage. The AEAD key is derived (HKDF-SHA256) from an active signing
//! key's private key, so every instance sharing the key file derives the
//! same key, and a rotation rotates it: data sealed under a key that is no
//! longer active does not open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const VERSION: u8 = 1;
const SALT: &[u8] = b"slack-oidc-bridge sealing v1";

/// One derived AEAD key and the `kid` of the signing key it came from.
pub struct Sealer {
    kid: String,
    key: LessSafeKey,
}

/// Why sealed data did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unsealed {
    #[error("the data is malformed or was altered")]
    Tampered,
    #[error("the data was sealed under a key that is no longer active")]
    RetiredKey,
}

impl Sealer {
    /// Derives the sealing key of the signing key `kid` from its PKCS#8 DER.
    pub fn derive(kid: &str, pkcs8: &[u8]) -> Sealer {
        let prk = Salt::new(HKDF_SHA256, SALT).extract(pkcs8);
        let info = [kid.as_bytes()];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .expect("HKDF output of the AES-256 key length");
        Sealer {
            kid: kid.to_string(),
            key: LessSafeKey::new(UnboundKey::from(okm)),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Seals `plaintext` for `purpose` (also authenticated): base64url of
    /// version, kid length, kid, nonce, ciphertext and tag.
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("the system random source works");
        let mut data = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(purpose, &self.kid).as_slice()),
                &mut data,
            )
            .expect("sealing cannot fail for small inputs");
        let kid = self.kid.as_bytes();
        let mut out = Vec::with_capacity(2 + kid.len() + NONCE_LEN + data.len());
        out.push(VERSION);
        out.push(kid.len() as u8);
        out.extend_from_slice(kid);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        URL_SAFE_NO_PAD.encode(out)
    }
}

fn aad(purpose: &str, kid: &str) -> Vec<u8> {
    let mut aad = purpose.as_bytes().to_vec();
    aad.push(0);
    aad.extend_from_slice(kid.as_bytes());
    aad
}

/// Opens what one of `sealers` sealed for `purpose`.
pub fn open(sealers: &[Sealer], purpose: &str, sealed: &str) -> Result<Vec<u8>, Unsealed> {
    let bytes = URL_SAFE_NO_PAD
        .decode(sealed)
        .map_err(|_| Unsealed::Tampered)?;
    let (&version, rest) = bytes.split_first().ok_or(Unsealed::Tampered)?;
    let (&kid_len, rest) = rest.split_first().ok_or(Unsealed::Tampered)?;
    if version != VERSION || rest.len() < kid_len as usize + NONCE_LEN {
        return Err(Unsealed::Tampered);
    }
    let (kid, rest) = rest.split_at(kid_len as usize);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let kid = std::str::from_utf8(kid).map_err(|_| Unsealed::Tampered)?;
    let sealer = sealers
        .iter()
        .find(|s| s.kid == kid)
        .ok_or(Unsealed::RetiredKey)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unsealed::Tampered)?;
    let mut data = ciphertext.to_vec();
    let plain = sealer
        .key
        .open_in_place(nonce, Aad::from(aad(purpose, kid).as_slice()), &mut data)
        .map_err(|_| Unsealed::Tampered)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealers() -> Vec<Sealer> {
        vec![Sealer::derive("kid-a", b"private key a")]
    }

    #[test]
    fn what_is_sealed_opens_for_the_same_purpose_only() {
        let s = sealers();
        let sealed = s[0].seal("state", b"hello");
        assert_eq!(open(&s, "state", &sealed).unwrap(), b"hello");
        assert_eq!(open(&s, "other", &sealed), Err(Unsealed::Tampered));
        assert!(!sealed.contains("hello"));
    }

    #[test]
    fn every_instance_derives_the_same_key_from_the_same_key_file() {
        let a = Sealer::derive("kid-a", b"private key a");
        let b = Sealer::derive("kid-a", b"private key a");
        assert_eq!(open(&[b], "p", &a.seal("p", b"x")).unwrap(), b"x");
        let other = Sealer::derive("kid-a", b"another private key");
        assert_eq!(
            open(&[other], "p", &a.seal("p", b"x")),
            Err(Unsealed::Tampered)
        );
    }

    #[test]
    fn data_sealed_under_a_key_no_longer_active_is_refused_as_such() {
        let old = Sealer::derive("kid-old", b"old");
        let sealed = old.seal("p", b"x");
        assert_eq!(open(&sealers(), "p", &sealed), Err(Unsealed::RetiredKey));
    }

    #[test]
    fn altered_or_truncated_data_is_refused() {
        let s = sealers();
        let sealed = s[0].seal("p", b"some data");
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            open(&s, "p", &URL_SAFE_NO_PAD.encode(&bytes)),
            Err(Unsealed::Tampered)
        );
        for cut in [0, 1, 3, 10] {
            assert_eq!(open(&s, "p", &sealed[..cut]), Err(Unsealed::Tampered));
        }
        assert_eq!(open(&s, "p", "not base64 !"), Err(Unsealed::Tampered));
    }
}
