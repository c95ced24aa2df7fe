//! User codes (RFC 8628 §6.1): eight letters of an alphabet without vowels
//! (no words) and without look-alikes, about 34.5 bits, shown as
//! `XXXX-XXXX` and typed back in any case, with or without the dash.

use crate::store::records::secret_hash;

/// No vowels (no words can form) and no letters read as another (`I`, `O`,
/// `U` are vowels already; `Y` goes with them).
pub const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a code (20^8 ≈ 2^34.6).
pub const LENGTH: usize = 8;
/// Longer input is not a code, whatever it contains.
const MAX_INPUT: usize = 64;

/// A fresh code, uniformly drawn: normalized (`BCDFGHJK`).
pub fn generate() -> String {
    let mut code = String::with_capacity(LENGTH);
    let mut bytes = [0u8; 16];
    while code.len() < LENGTH {
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
        // 240 = 12 × 20: rejecting the rest keeps every letter equally likely.
        for b in bytes.iter().filter(|b| **b < 240) {
            if code.len() == LENGTH {
                break;
            }
            code.push(ALPHABET[(*b % 20) as usize] as char);
        }
    }
    code
}

/// How a normalized code is shown and sent: `BCDF-GHJK`.
pub fn display(normalized: &str) -> String {
    let (a, b) = normalized.split_at(normalized.len().min(LENGTH / 2));
    format!("{a}-{b}")
}

/// What the person typed, as the normalized code it stands for: spaces and
/// punctuation (the dash) are dropped and letters are uppercased (§6.1).
/// None when what remains is not eight letters of the alphabet.
pub fn normalize(input: &str) -> Option<String> {
    if input.len() > MAX_INPUT {
        return None;
    }
    let code: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_ascii_punctuation())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid = code.len() == LENGTH && code.bytes().all(|b| ALPHABET.contains(&b));
    valid.then_some(code)
}

/// The key a normalized code is stored under.
pub fn key(normalized: &str) -> String {
    secret_hash(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_eight_letters_of_the_alphabet_without_vowels_or_look_alikes() {
        assert_eq!(ALPHABET.len(), 20);
        for b in b"AEIOUY01" {
            assert!(!ALPHABET.contains(b), "{}", *b as char);
        }
        for _ in 0..200 {
            let code = generate();
            assert_eq!(code.len(), LENGTH);
            assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
            assert_eq!(normalize(&code).as_deref(), Some(code.as_str()));
        }
    }

    #[test]
    fn every_letter_of_the_alphabet_is_drawn() {
        let mut seen = [false; 20];
        for _ in 0..200 {
            for b in generate().bytes() {
                seen[ALPHABET.iter().position(|a| *a == b).unwrap()] = true;
            }
        }
        assert!(
            seen.iter().all(|s| *s),
            "1600 draws miss a letter: {seen:?}"
        );
    }

    #[test]
    fn codes_are_shown_with_a_dash_in_the_middle() {
        assert_eq!(display("BCDFGHJK"), "BCDF-GHJK");
    }

    #[test]
    fn a_code_is_accepted_in_any_case_with_or_without_the_dash_and_spaces() {
        for typed in [
            "BCDF-GHJK",
            "bcdf-ghjk",
            "BcDf-gHjK",
            "BCDFGHJK",
            "bcdfghjk",
            "  bcdf-ghjk \n",
            "bcdf ghjk",
        ] {
            assert_eq!(normalize(typed).as_deref(), Some("BCDFGHJK"), "{typed:?}");
        }
    }

    #[test]
    fn anything_but_eight_letters_of_the_alphabet_is_not_a_code() {
        for typed in [
            "",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "BCDF-GHJA",
            "BCDF-GHJ1",
            "BCDFGHJK".repeat(9).as_str(),
            "ÉCDF-GHJK",
        ] {
            assert_eq!(normalize(typed), None, "{typed:?}");
        }
    }

    #[test]
    fn the_stored_key_is_the_same_for_every_way_of_typing_a_code() {
        let a = normalize("bcdf-ghjk").unwrap();
        let b = normalize("BCDFGHJK").unwrap();
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), a);
    }
}
