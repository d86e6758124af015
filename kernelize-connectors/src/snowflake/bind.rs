//! Bind variables: `:name` placeholders rewritten to `?`, JSON values as SQL API
//! bindings (`{"1": {"type": "FIXED", "value": "123"}}`), and statement counting.
//!
//! Values are always sent as bindings, never written into the statement's text.

use std::collections::BTreeMap;

use kernelize_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The value `:last_sync` gets when the caller has none (a workflow's first run): the Unix
/// epoch, so that an incremental query reads everything.
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

/// One binding of the SQL API: a Snowflake type name and the value as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    /// `FIXED`, `REAL`, `TEXT`, `BOOLEAN`, `DATE`, `TIME`, `TIMESTAMP_TZ`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The value: text, `null`, or (array binding) one text or `null` per row.
    pub value: Value,
}

impl Binding {
    /// A binding of `kind` with a text (or null) value.
    pub fn new(kind: &str, value: Option<String>) -> Self {
        Self {
            kind: kind.to_string(),
            value: value.map_or(Value::Null, Value::String),
        }
    }

    /// A JSON value as a binding: integers are `FIXED`, other numbers `REAL`, booleans
    /// `BOOLEAN`, text (timestamps included) and `null` are `TEXT`; objects and arrays are
    /// `TEXT` holding their JSON. An object `{"type": T, "value": V}` is taken as an explicit
    /// binding and sent as it is (`{"type": "TIMESTAMP_NTZ", "value": "..."}`).
    ///
    /// RFC 3339 text is normalized to UTC (`2024-05-01T08:00:00Z`): Snowflake casts bound
    /// text to the column's type, and a `TIMESTAMP_NTZ` column would otherwise keep the
    /// wall clock of another offset.
    pub fn from_json(value: &Value) -> Result<Self> {
        Ok(match value {
            Value::Null => Binding::new("TEXT", None),
            Value::Bool(b) => Binding::new("BOOLEAN", Some(b.to_string())),
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                Binding::new("FIXED", Some(n.to_string()))
            }
            Value::Number(n) => Binding::new("REAL", Some(n.to_string())),
            Value::String(s) => Binding::new("TEXT", Some(normalize_instant(s))),
            Value::Object(map) if is_explicit(map) => {
                let kind = map
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_ascii_uppercase();
                if !KNOWN_TYPES.contains(&kind.as_str()) {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "binding type `{kind}` is not one of {}",
                            KNOWN_TYPES.join(", ")
                        ),
                    ));
                }
                let value = match map.get("value") {
                    None | Some(Value::Null) => Value::Null,
                    Some(Value::String(s)) => Value::String(s.clone()),
                    Some(other @ (Value::Number(_) | Value::Bool(_))) => {
                        Value::String(other.to_string())
                    }
                    Some(other) => Value::String(other.to_string()),
                };
                Binding { kind, value }
            }
            other => Binding::new("TEXT", Some(other.to_string())),
        })
    }
}

/// The binding types the SQL API documents.
pub const KNOWN_TYPES: [&str; 10] = [
    "FIXED",
    "REAL",
    "TEXT",
    "BINARY",
    "BOOLEAN",
    "DATE",
    "TIME",
    "TIMESTAMP_LTZ",
    "TIMESTAMP_NTZ",
    "TIMESTAMP_TZ",
];

fn is_explicit(map: &Map<String, Value>) -> bool {
    map.len() <= 2 && map.contains_key("type") && map.keys().all(|k| k == "type" || k == "value")
}

/// RFC 3339 text as a UTC instant; any other text unchanged.
fn normalize_instant(text: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(text.trim()) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        Err(_) => text.to_string(),
    }
}

/// Bindings in the SQL API's shape: positions `"1"`, `"2"`, ... to bindings.
pub fn positional(bindings: Vec<Binding>) -> BTreeMap<String, Binding> {
    bindings
        .into_iter()
        .enumerate()
        .map(|(i, b)| ((i + 1).to_string(), b))
        .collect()
}

/// A statement with its `:name` placeholders replaced by `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The statement, each placeholder now `?`.
    pub sql: String,
    /// The name of each `?`, in order (a name used twice appears twice).
    pub names: Vec<String>,
    /// How many `?` markers the statement already had outside quotes and comments.
    pub positional: usize,
    /// How many statements it holds (`;`-separated, empty ones not counted).
    pub statements: usize,
}

/// Scans `sql` once, skipping what Snowflake would not read as code — string literals
/// (`'it''s'`, `'a\'b'`), `$$ ... $$` blocks, quoted identifiers (`"a"`), comments (`-- `,
/// `//`, `/* */`) and `::` casts — and replaces each `:name` (`[A-Za-z_][A-Za-z0-9_]*`)
/// by `?`. A `:` right after a name, a `"` or a `]` is a path into a semi-structured value
/// (`v:price`, `src:"a b"`), not a placeholder. Counts existing `?` markers and statements.
///
/// An unterminated literal, identifier or comment is an invalid-input error naming where
/// it starts.
pub fn rewrite(sql: &str) -> Result<Rewritten> {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut names = Vec::new();
    let mut positional = 0;
    let mut statements = 0;
    let mut pending_code = false;
    let mut i = 0;
    let mut copied = 0;
    let unterminated = |what: &str, at: usize| {
        let line = sql[..at].matches('\n').count() + 1;
        Error::new(
            ErrorKind::InvalidInput,
            format!("the statement has an unterminated {what} starting on line {line}"),
        )
    };
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        match c {
            b'\'' => {
                let start = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(unterminated("string literal", start)),
                        Some(b'\\') => i += 2,
                        Some(b'\'') if bytes.get(i + 1) == Some(&b'\'') => i += 2,
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                pending_code = true;
            }
            b'"' => {
                let start = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(unterminated("quoted identifier", start)),
                        Some(b'"') if bytes.get(i + 1) == Some(&b'"') => i += 2,
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                pending_code = true;
            }
            b'$' if next == Some(b'$') => {
                let start = i;
                match sql[i + 2..].find("$$") {
                    Some(end) => i = i + 2 + end + 2,
                    None => return Err(unterminated("$$ block", start)),
                }
                pending_code = true;
            }
            b'-' if next == Some(b'-') => i = skip_line(bytes, i),
            b'/' if next == Some(b'/') => i = skip_line(bytes, i),
            b'/' if next == Some(b'*') => {
                let start = i;
                match sql[i + 2..].find("*/") {
                    Some(end) => i = i + 2 + end + 2,
                    None => return Err(unterminated("block comment", start)),
                }
            }
            b':' if next == Some(b':') => {
                i += 2;
                pending_code = true;
            }
            b':' if next.is_some_and(|n| n.is_ascii_alphabetic() || n == b'_')
                && !follows_a_name(bytes, i) =>
            {
                let start = i + 1;
                let mut end = start;
                while end < bytes.len()
                    && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_')
                {
                    end += 1;
                }
                out.push_str(&sql[copied..i]);
                out.push('?');
                copied = end;
                names.push(sql[start..end].to_string());
                i = end;
                pending_code = true;
            }
            b'?' => {
                positional += 1;
                i += 1;
                pending_code = true;
            }
            b';' => {
                if pending_code {
                    statements += 1;
                }
                pending_code = false;
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                pending_code = true;
                i += 1;
            }
        }
    }
    if pending_code {
        statements += 1;
    }
    out.push_str(&sql[copied..]);
    Ok(Rewritten {
        sql: out,
        names,
        positional,
        statements,
    })
}

fn skip_line(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i] != b'\n' {
        i += 1;
    }
    i
}

/// Whether the `:` at `i` directly follows a name, a quoted name or a `]` (a path into a
/// VARIANT, `v:price`).
fn follows_a_name(bytes: &[u8], i: usize) -> bool {
    i > 0
        && (matches!(bytes[i - 1], b'"' | b']' | b'_' | b'$')
            || bytes[i - 1].is_ascii_alphanumeric())
}

/// Binds each name of `rewritten` from `params`, then `vars`; `last_sync` without a value
/// (absent or `null`) is [`EPOCH`]. Any other name without a value is an invalid-input
/// error naming it and the names on offer.
pub fn bind_names(
    rewritten: &Rewritten,
    params: &Map<String, Value>,
    vars: &BTreeMap<String, Value>,
) -> Result<Vec<Binding>> {
    if rewritten.positional > 0 && !rewritten.names.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "the statement mixes `?` markers with `:name` placeholders; use one or the other",
        ));
    }
    let mut out = Vec::with_capacity(rewritten.names.len());
    for name in &rewritten.names {
        let value = params.get(name).or_else(|| vars.get(name));
        let binding = match value {
            Some(Value::Null) | None if name == "last_sync" => {
                Binding::new("TEXT", Some(EPOCH.to_string()))
            }
            Some(v) => Binding::from_json(v)
                .map_err(|e| Error::new(e.kind(), format!("`:{name}`: {}", e.message())))?,
            None => {
                let offered: Vec<&str> = params
                    .keys()
                    .map(String::as_str)
                    .chain(vars.keys().map(String::as_str))
                    .collect();
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the statement uses `:{name}` but no value is given for it (given: {})",
                        if offered.is_empty() {
                            "none".to_string()
                        } else {
                            offered.join(", ")
                        }
                    ),
                )
                .with_context("placeholder", name));
            }
        };
        out.push(binding);
    }
    Ok(out)
}

/// One name (a column) as SQL: a plain identifier (`[A-Za-z_][A-Za-z0-9_$]*`) unquoted,
/// so that Snowflake upper-cases it; anything else double-quoted, `"` doubled.
pub fn column_name(name: &str) -> String {
    if is_plain(name) {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn is_plain(part: &str) -> bool {
    part.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
}

/// A table or column name as SQL: each dot-separated part that is a plain identifier
/// (`[A-Za-z_][A-Za-z0-9_$]*`) stays unquoted, so that Snowflake upper-cases it as it does
/// when the table was created unquoted; a part already in double quotes is kept; any other
/// part is double-quoted (case and spaces kept, `"` doubled).
pub fn sql_name(name: &str) -> Result<String> {
    let mut parts = Vec::new();
    let mut rest = name.trim();
    if rest.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "an empty table or column name",
        ));
    }
    loop {
        let (part, tail) = if let Some(quoted) = rest.strip_prefix('"') {
            let mut end = None;
            let b = quoted.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'"' {
                    if b.get(i + 1) == Some(&b'"') {
                        i += 2;
                        continue;
                    }
                    end = Some(i);
                    break;
                }
                i += 1;
            }
            let end = end.ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("the name `{name}` has an unterminated quote"),
                )
            })?;
            (format!("\"{}\"", &quoted[..end]), &quoted[end + 1..])
        } else {
            let end = rest.find('.').unwrap_or(rest.len());
            let part = &rest[..end];
            if part.is_empty() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("the name `{name}` has an empty part"),
                ));
            }
            (column_name(part), &rest[end..])
        };
        parts.push(part);
        match tail.strip_prefix('.') {
            Some(t) => rest = t,
            None if tail.is_empty() => break,
            None => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("the name `{name}` has text after a quoted part"),
                ));
            }
        }
    }
    if parts.len() > 3 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("the name `{name}` has more than three parts (database.schema.table)"),
        ));
    }
    Ok(parts.join("."))
}

/// A random UUID (version 4), for a statement's `requestId`.
pub use crate::saas::uuid_v4;

/// A UUID (version 4 layout) derived from `seed`, so that the same unit of work sends the
/// same `requestId` again.
pub fn uuid_from_seed(seed: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, seed.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    crate::saas::uuid_from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn named_placeholders_become_markers_outside_quotes_and_comments() {
        let r = rewrite(
            "SELECT ':no', \"a:b\", v:price, x::int, $$ :no $$ FROM t -- :no\n WHERE a > :since /* :no */ AND b = :id AND c = :since;",
        )
        .unwrap();
        assert_eq!(
            r.sql,
            "SELECT ':no', \"a:b\", v:price, x::int, $$ :no $$ FROM t -- :no\n WHERE a > ? /* :no */ AND b = ? AND c = ?;"
        );
        assert_eq!(r.names, vec!["since", "id", "since"]);
        assert_eq!(r.statements, 1);
        assert_eq!(rewrite("a; b ; -- c\n").unwrap().statements, 2);
        assert_eq!(rewrite("select ?, ?").unwrap().positional, 2);
        let err = rewrite("select 'abc").unwrap_err();
        assert!(
            err.message().contains("unterminated string literal"),
            "{err}"
        );
    }

    #[test]
    fn values_bind_with_snowflake_types_and_last_sync_defaults_to_the_epoch() {
        let r = rewrite("x = :a AND y = :b AND z = :c AND w > :last_sync AND v = :d AND u = :e")
            .unwrap();
        let params = json!({"a": 42, "b": 1.5, "c": true, "d": {"type": "timestamp_ntz", "value": "2024-01-01 00:00:00"}, "e": "2024-05-01T10:00:00+02:00"});
        let bindings = bind_names(&r, params.as_object().unwrap(), &BTreeMap::new()).unwrap();
        let kinds: Vec<&str> = bindings.iter().map(|b| b.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["FIXED", "REAL", "BOOLEAN", "TEXT", "TIMESTAMP_NTZ", "TEXT"]
        );
        assert_eq!(bindings[0].value, json!("42"));
        assert_eq!(bindings[3].value, json!(EPOCH));
        assert_eq!(bindings[5].value, json!("2024-05-01T08:00:00Z"));
        let err = bind_names(
            &rewrite("x = :nope").unwrap(),
            &Map::new(),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(err.message().contains(":nope"), "{err}");
    }

    #[test]
    fn names_are_quoted_only_when_they_must_be() {
        assert_eq!(sql_name("sales").unwrap(), "sales");
        assert_eq!(sql_name("db.sch.sales_2024").unwrap(), "db.sch.sales_2024");
        assert_eq!(sql_name("my table").unwrap(), "\"my table\"");
        assert_eq!(sql_name("\"Mixed\".t").unwrap(), "\"Mixed\".t");
        assert_eq!(sql_name("a\"b").unwrap(), "\"a\"\"b\"");
        assert!(sql_name("a.b.c.d").is_err());
        assert!(sql_name("").is_err());
    }

    #[test]
    fn request_ids_are_version_4_uuids() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_eq!(uuid_from_seed("a"), uuid_from_seed("a"));
        assert_ne!(uuid_from_seed("a"), uuid_from_seed("b"));
    }
}
