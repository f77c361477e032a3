//! The user id an admin client may choose for a new account (the panel's optional `userId`).
//!
//! Scalefog's ids are numbers from a sequence. A number the sequence has not reached becomes the
//! account's id (the sequence then continues after it; ids are never reused); any other text (a
//! UUID from another system, say) is kept as the account's `external_id`, by which every admin
//! lookup also finds it.

use crate::domain::{Error, Result};

/// The largest id a client may choose: integers above it are not exact in JSON numbers
/// (JavaScript's `Number.MAX_SAFE_INTEGER`), and the sequence must have room to continue.
pub const MAX_CHOSEN_ID: u64 = (1 << 53) - 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChosenId {
    Number(u64),
    External(String),
}

impl ChosenId {
    /// `None` for an absent or empty value (the server assigns the id).
    pub fn parse(v: Option<&str>) -> Result<Option<ChosenId>> {
        let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        if v.bytes().all(|b| b.is_ascii_digit()) {
            return match v.parse::<u64>() {
                Ok(n) if (1..=MAX_CHOSEN_ID).contains(&n) => Ok(Some(ChosenId::Number(n))),
                _ => Err(Error::invalid(
                    "userId",
                    format!("a numeric userId must be from 1 to {MAX_CHOSEN_ID}"),
                )),
            };
        }
        let ok = v.len() <= 64
            && v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !ok {
            return Err(Error::invalid(
                "userId",
                "userId must be 1-64 letters, digits, '-', '_', '.' or ':', starting with a letter or digit",
            ));
        }
        Ok(Some(ChosenId::External(v.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_ids_other_text_is_an_external_id() {
        assert_eq!(ChosenId::parse(None).unwrap(), None);
        assert_eq!(ChosenId::parse(Some(" ")).unwrap(), None);
        assert_eq!(
            ChosenId::parse(Some("42")).unwrap(),
            Some(ChosenId::Number(42))
        );
        let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(
            ChosenId::parse(Some(uuid)).unwrap(),
            Some(ChosenId::External(uuid.into()))
        );
        for bad in [
            "0",
            "9007199254740992",
            "-1",
            "a b",
            "x/y",
            "_x",
            &"a".repeat(65),
        ] {
            let e = ChosenId::parse(Some(bad)).expect_err(bad);
            assert_eq!(e.field(), Some("userId"), "{bad}");
        }
    }
}
