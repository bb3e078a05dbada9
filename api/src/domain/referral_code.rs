//! Referral codes: short, and unambiguous when read aloud or copied by hand.

use rand::Rng;

/// No 0/O, 1/I/L: the characters people confuse.
const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// 31^8 ≈ 8.5e11 codes: collisions are rare, and the unique index settles the rest.
pub const LENGTH: usize = 8;

pub fn generate() -> String {
    let mut rng = rand::rng();
    (0..LENGTH)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A code as a user typed it: trimmed, upper-cased.
pub fn normalize(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_avoid_confusable_characters() {
        for _ in 0..1000 {
            let code = generate();
            assert_eq!(code.len(), LENGTH);
            assert!(!code.contains(['0', 'O', '1', 'I', 'L']), "{code}");
        }
    }
}
