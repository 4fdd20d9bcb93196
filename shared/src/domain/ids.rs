//! Identifiers that end up inside key strings. `#` separates key parts, so it is never allowed.

use std::fmt;

use super::DomainError;

/// A member: the JWT `sub` of the caller. Opaque, 1–128 visible ASCII characters, no `#`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::invalid(
                "user_id",
                "must be 1-128 visible ASCII characters without '#'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<UserId> for String {
    fn from(value: UserId) -> Self {
        value.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A short identifier chosen by an admin (campaign, contest, draw): 1–64 of `[A-Za-z0-9_-]`.
pub fn validate_slug(field: &'static str, raw: &str) -> Result<(), DomainError> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            "must be 1-64 characters of A-Z a-z 0-9 _ -",
        ))
    }
}

/// Crockford's base32 alphabet (no I, L, O, U): codes people read aloud and type.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Characters in a join or invite code (40 random bits).
pub const CODE_LEN: usize = 8;

/// A code of [`CODE_LEN`] Crockford base32 characters from `random`'s low 40 bits.
pub fn code_from(random: u64) -> String {
    (0..CODE_LEN)
        .rev()
        .map(|i| CROCKFORD[((random >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// A code as typed: case-insensitive, dashes and spaces ignored, I and L read as 1, O as 0.
/// `None` when it cannot be a code.
pub fn normalize_code(raw: &str) -> Option<String> {
    let code: String = raw
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            other => other,
        })
        .collect();
    (code.len() == CODE_LEN && code.bytes().all(|b| CROCKFORD.contains(&b))).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_crockford_and_read_forgivingly() {
        assert_eq!(code_from(0), "00000000");
        assert_eq!(code_from((1 << 40) - 1), "ZZZZZZZZ");
        assert_eq!(code_from(31 << 35 | 1), "Z0000001");
        // Bits above the 40th do not matter.
        assert_eq!(code_from(1 << 40 | 5), code_from(5));
        let code = code_from(0x12_3456_789A);
        assert_eq!(code.len(), CODE_LEN);
        assert_eq!(normalize_code(&code).as_deref(), Some(code.as_str()));
        assert_eq!(normalize_code("ab-cd ef9z").as_deref(), Some("ABCDEF9Z"));
        assert_eq!(normalize_code("iLoO-1234").as_deref(), Some("11001234"));
        for bad in ["", "ABCDEFG", "ABCDEFGHJ", "ABCDEFGU", "ABCD#FGH", "ABCDÉFGH"] {
            assert_eq!(normalize_code(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn user_ids_refuse_separators_and_blanks() {
        assert!(UserId::parse("7d8f-user").is_ok());
        assert!(UserId::parse("auth0|abc").is_ok());
        for bad in ["", "a#b", "a b", "é", &"x".repeat(129)] {
            assert!(UserId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_user_id_is_its_text_everywhere() {
        let u = UserId::parse("auth0|abc").unwrap();
        assert_eq!((u.as_str(), u.to_string()), ("auth0|abc", "auth0|abc".to_owned()));
        assert_eq!(serde_json::to_string(&u).unwrap(), r#""auth0|abc""#);
        assert_eq!(String::from(u.clone()), "auth0|abc");
        assert_eq!(serde_json::from_str::<UserId>(r#""auth0|abc""#).unwrap(), u);
        assert!(serde_json::from_str::<UserId>(r##""a#b""##).is_err());
    }

    #[test]
    fn slugs() {
        assert!(validate_slug("id", "daily").is_ok());
        assert!(validate_slug("id", "spring_2026-a").is_ok());
        assert!(validate_slug("id", "a#b").is_err());
        assert!(validate_slug("id", "").is_err());
        assert!(validate_slug("id", &"a".repeat(65)).is_err());
    }
}
