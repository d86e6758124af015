//! What differs between SQL databases in the SQL the shared code reads and writes.
//!
//! A [`Dialect`] is a constant each database module defines once (`sqlite::DIALECT`); the
//! placeholder scanner, the load planner and the error mapping read it instead of branching
//! on the database.

use kernelize_core::ErrorKind;

/// How a database writes the bind slot the shared code puts where a `:name` placeholder was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceholderStyle {
    /// A numbered slot, `?1` (SQLite) or `$1` (PostgreSQL): each distinct name gets one
    /// number, and every occurrence of the name reuses it, so its value is bound once.
    Numbered(char),
    /// An anonymous `?` per occurrence (MySQL): a name used twice is bound twice.
    Positional,
}

/// Which quoting and comment forms a database's SQL has, so that the placeholder scanner
/// skips exactly what the database would not read as code.
///
/// Every dialect has `'...'` strings (a doubled `''` inside), `"..."` quoted identifiers
/// (`""` inside), `-- ...` line comments and `/* ... */` block comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LexicalRules {
    /// `` `name` `` quoted identifiers (SQLite, MySQL).
    pub backtick_identifiers: bool,
    /// `[name]` quoted identifiers (SQLite, SQL Server). Off for PostgreSQL, where `[` is an
    /// array subscript.
    pub bracket_identifiers: bool,
    /// A backslash escapes the next character inside strings (MySQL's default mode).
    pub backslash_escapes: bool,
    /// `$tag$ ... $tag$` strings (PostgreSQL).
    pub dollar_quoted_strings: bool,
    /// `/* /* */ */` nests (PostgreSQL).
    pub nested_block_comments: bool,
    /// `# ...` line comments (MySQL).
    pub hash_comments: bool,
    /// The database's own parameter markers (`?`, `@name`, `$name` for SQLite). Outside
    /// strings and comments they are refused: a value must come through a `:name`
    /// placeholder, never through a marker the shared code does not bind (SQLite would
    /// silently bind NULL to it).
    pub foreign_markers: &'static [char],
}

/// How the Arrow column of a load is stored: the shared code decides it from the Arrow type,
/// the dialect names the SQL type for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoredAs {
    /// `true`/`false`.
    Boolean,
    /// A 64-bit signed integer.
    Integer,
    /// A 64-bit float.
    Real,
    /// Text (strings, and decimals and times written as text).
    Text,
    /// An instant, UTC.
    Timestamp,
    /// A calendar date.
    Date,
    /// Bytes.
    Blob,
}

/// How a database writes "insert, or update the row with the same key".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertSyntax {
    /// `ON CONFLICT (key) DO UPDATE SET c = excluded.c` (SQLite, PostgreSQL). The database
    /// counts each inserted or updated row once.
    OnConflict,
    /// `ON DUPLICATE KEY UPDATE c = VALUES(c)` (MySQL, MariaDB), on whichever unique key the
    /// row collides with. MySQL counts an updated row twice in its affected rows, so a load
    /// reports every row it sent as written.
    OnDuplicateKeyUpdate,
}

/// How the shared error mapping should read a database's error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorClass {
    /// The kind of the resulting error.
    pub kind: ErrorKind,
    /// Whether trying again later may succeed (a lock held by another connection).
    pub temporary: bool,
    /// A sentence added to the database's message, when the code alone leaves the user
    /// guessing what to do.
    pub hint: Option<&'static str>,
}

/// Everything the shared SQL code needs to know about one database.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// The database's name, for messages (`SQLite`).
    pub name: &'static str,
    /// Quoting and comment forms, for the placeholder scanner.
    pub lexical: LexicalRules,
    /// How the slot of a `:name` placeholder is written.
    pub placeholder: PlaceholderStyle,
    /// How the slots of generated statements with many values (a load's `INSERT`s) are
    /// written. SQLite takes anonymous `?` here: it looks a numbered `?NNN` slot's name up
    /// by a linear scan when binding, which makes a 30,000-value `INSERT` bind in
    /// quadratic time.
    pub bulk_placeholder: PlaceholderStyle,
    /// The character that quotes identifiers (`"`, or `` ` `` for MySQL); doubled inside.
    pub identifier_quote: char,
    /// Longest identifier accepted, in characters.
    pub max_identifier_len: usize,
    /// Whether unquoted-equal identifiers that differ only in ASCII case name the same
    /// column (SQLite, MySQL) or different ones (PostgreSQL, once quoted).
    pub case_insensitive_identifiers: bool,
    /// Most bound values one statement may carry (SQLite's `SQLITE_MAX_VARIABLE_NUMBER`).
    pub max_bind_values: usize,
    /// The SQL column type for each kind of stored value, used when a load creates a table.
    pub column_type: fn(StoredAs) -> &'static str,
    /// The SQL column type of a key column a load creates: MySQL cannot index `TEXT` or
    /// `BLOB` whole, so its keys are `VARCHAR(255)` and `VARBINARY(255)`.
    pub key_column_type: fn(StoredAs) -> &'static str,
    /// Table options after `CREATE TABLE (...)` (MySQL: the engine and character set).
    pub create_table_options: &'static str,
    /// How an upsert is written.
    pub upsert: UpsertSyntax,
    /// Whether DDL (`CREATE TABLE`, `ALTER TABLE`) takes part in a transaction. MySQL commits
    /// it at once (an implicit commit), so a load runs it before the transaction that writes
    /// the rows, and a failed load leaves a table it created behind, empty.
    pub transactional_ddl: bool,
    /// Most bytes of values one generated statement carries (MySQL refuses a statement
    /// above `max_allowed_packet`); a load's `INSERT` takes fewer rows past it.
    pub max_statement_bytes: usize,
    /// What follows `ORDER BY column` so that NULLs come first, as SQLite and MySQL sort
    /// them anyway (PostgreSQL: ` NULLS FIRST`).
    pub nulls_first: &'static str,
    /// Reads a database error code; `None` leaves the shared default (invalid input).
    pub classify_error: fn(&str) -> Option<ErrorClass>,
}

impl Dialect {
    /// `name` quoted as an identifier: wrapped in the quote character, which is doubled
    /// inside. Check it with [`crate::sql::load::check_identifier`] first.
    pub fn quote_identifier(&self, name: &str) -> String {
        let q = self.identifier_quote;
        let mut out = String::with_capacity(name.len() + 2);
        out.push(q);
        for c in name.chars() {
            if c == q {
                out.push(q);
            }
            out.push(c);
        }
        out.push(q);
        out
    }

    /// The text of the slot of placeholder `index` (0-based).
    pub fn slot(&self, index: usize) -> String {
        slot_text(self.placeholder, index)
    }

    /// The text of slot `index` (0-based) of a generated statement with many values.
    pub fn bulk_slot(&self, index: usize) -> String {
        slot_text(self.bulk_placeholder, index)
    }

    /// `sql`, a statement that returns rows, wrapped so that its rows come sorted by
    /// `column` (NULLs first): `SELECT * FROM (sql) AS kernelize_sorted ORDER BY column`.
    /// The sort is the database's, so it may spill to disk rather than fill memory.
    pub fn order_by(&self, sql: &str, column: &str) -> String {
        format!(
            "SELECT * FROM (\n{sql}\n) AS kernelize_sorted ORDER BY kernelize_sorted.{}{}",
            self.quote_identifier(column),
            self.nulls_first
        )
    }
}

fn slot_text(style: PlaceholderStyle, index: usize) -> String {
    match style {
        PlaceholderStyle::Numbered(prefix) => format!("{prefix}{}", index + 1),
        PlaceholderStyle::Positional => "?".to_string(),
    }
}
