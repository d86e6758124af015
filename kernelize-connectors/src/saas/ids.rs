//! Ids a connector makes (request ids, insert ids: UUIDs) and ids it puts into URL paths.

use kernelize_core::{Error, ErrorKind, Result};

/// A random (version 4) UUID, for request ids and insert ids the vendor de-duplicates by.
pub fn uuid_v4() -> String {
    uuid_from_bytes(rand::random())
}

/// `bytes` as a UUID of the version 4 layout (version and variant bits set), lower-case
/// hex in 8-4-4-4-12 groups. Give it random bytes for a random UUID, or a digest's first
/// 16 bytes for one that is the same for the same input.
pub fn uuid_from_bytes(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `id` as one URL path segment: letters, digits, `-`, `_` and `.` only, and neither `.`
/// nor `..`, so that it cannot reach another path. Anything else is an `invalid input`
/// error naming the `vendor`'s kind of id (`what`: `data source`, `report`).
pub fn id_segment<'a>(vendor: &str, what: &str, id: &'a str) -> Result<&'a str> {
    if id.is_empty()
        || id == "."
        || id == ".."
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("`{id}` is not a valid {vendor} {what} id (letters, digits, `-`, `_`, `.`)"),
        ));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_look_like_version_4_uuids() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(id, uuid_v4());
        assert_eq!(
            uuid_from_bytes([0xff; 16]),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
    }

    #[test]
    fn ids_cannot_reach_other_paths() {
        assert_eq!(
            id_segment("Tableau", "view", "a1-b_2.c").ok(),
            Some("a1-b_2.c")
        );
        for bad in ["", ".", "..", "a/b", "a?b", "a#b", "a%2F", "a b"] {
            let err = id_segment("Tableau", "view", bad).unwrap_err();
            assert!(err.message().contains("Tableau view id"), "{err}");
        }
    }
}
