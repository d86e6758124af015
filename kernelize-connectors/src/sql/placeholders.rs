//! Finding `:name` placeholders in SQL, so that their values are bound, never spliced.
//!
//! The scanner walks the SQL once and skips everything the database would not read as code:
//! string literals (`'it''s'`), quoted identifiers (`"a"`, and `` `a` `` and `[a]` where the
//! dialect has them), comments (`-- ...`, `/* ... */`), and `::` casts. What is left, a `:`
//! followed by a name (`[A-Za-z_][A-Za-z0-9_]*`), is a placeholder. An unterminated string,
//! identifier or comment is an error naming where it starts, as is a second statement after
//! a `;`: one call runs one statement.
//!
//! The database's own parameter markers (for SQLite `?`, `?NNN`, `@name`, `$name`) are refused
//! outside quotes and comments: the shared code binds only what it found, and SQLite would
//! bind NULL to any other marker without a word.
//!
//! ```
//! use kernelize_connectors::sql::placeholders::NamedQuery;
//! use kernelize_connectors::sql::sqlite::DIALECT;
//!
//! let query = NamedQuery::parse(
//!     "SELECT ':skipped', x::text FROM t WHERE a = :since -- :neither\n AND b > :since",
//!     &DIALECT.lexical,
//! )?;
//! assert_eq!(query.names(), vec!["since"]);
//! let (sql, slots) = query.render(&DIALECT);
//! assert_eq!(sql, "SELECT ':skipped', x::text FROM t WHERE a = ?1 -- :neither\n AND b > ?1");
//! assert_eq!(slots, vec![0]);
//! # Ok::<(), kernelize_core::Error>(())
//! ```

use kernelize_core::{Error, ErrorKind, Result};

use super::dialect::{Dialect, LexicalRules, PlaceholderStyle};

/// One `:name` placeholder in a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// Byte offset of the `:`.
    pub start: usize,
    /// Byte offset just past the name.
    pub end: usize,
    /// The name, without the colon.
    pub name: String,
}

/// A query with its `:name` placeholders found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedQuery {
    sql: String,
    placeholders: Vec<Placeholder>,
    /// Byte offset of the `;` that ends the statement, if one does.
    statement_end: Option<usize>,
}

impl NamedQuery {
    /// Scans `sql` for placeholders under a dialect's lexical rules.
    ///
    /// Errors (all [`ErrorKind::InvalidInput`], naming line and column): empty SQL, an
    /// unterminated string, quoted identifier or block comment, a second statement after a
    /// `;`, a placeholder name followed by a non-ASCII letter, and a parameter marker of the
    /// database's own.
    pub fn parse(sql: &str, rules: &LexicalRules) -> Result<Self> {
        Scanner::new(sql, rules).run()
    }

    /// The SQL as given.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The query without the `;` that ends it and whatever follows (only comments and
    /// whitespace may), so that it can be nested in another statement.
    pub fn without_terminator(&self) -> NamedQuery {
        match self.statement_end {
            None => self.clone(),
            Some(end) => NamedQuery {
                sql: self.sql[..end].to_string(),
                placeholders: self.placeholders.clone(),
                statement_end: None,
            },
        }
    }

    /// Every placeholder, in order of appearance.
    pub fn placeholders(&self) -> &[Placeholder] {
        &self.placeholders
    }

    /// The distinct names, in order of first appearance.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for p in &self.placeholders {
            if !names.contains(&p.name.as_str()) {
                names.push(&p.name);
            }
        }
        names
    }

    /// The SQL with each placeholder replaced by the dialect's bind slot, and for each slot
    /// the index (into [`NamedQuery::names`]) of the name whose value goes in it.
    ///
    /// With numbered slots every name has one slot, reused; with positional slots each
    /// occurrence has its own.
    pub fn render(&self, dialect: &Dialect) -> (String, Vec<usize>) {
        let names = self.names();
        let mut sql = String::with_capacity(self.sql.len());
        let mut slots = Vec::new();
        let mut copied = 0;
        for p in &self.placeholders {
            sql.push_str(&self.sql[copied..p.start]);
            let name_index = names.iter().position(|n| *n == p.name).unwrap_or(0);
            let slot = match dialect.placeholder {
                PlaceholderStyle::Numbered(_) => {
                    if slots.len() <= name_index {
                        slots.push(name_index);
                    }
                    name_index
                }
                PlaceholderStyle::Positional => {
                    slots.push(name_index);
                    slots.len() - 1
                }
            };
            sql.push_str(&dialect.slot(slot));
            copied = p.end;
        }
        sql.push_str(&self.sql[copied..]);
        (sql, slots)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `b` can be part of an identifier or a number, so that a marker right after it
/// is not the start of a token (`a$b` is one SQLite identifier).
fn is_word_byte(b: u8) -> bool {
    is_name_char(b) || b == b'$' || b >= 0x80
}

struct Scanner<'a> {
    sql: &'a str,
    bytes: &'a [u8],
    rules: &'a LexicalRules,
    pos: usize,
    placeholders: Vec<Placeholder>,
    /// Where the first statement ended (its `;`), once it has.
    statement_end: Option<usize>,
    saw_code: bool,
}

impl<'a> Scanner<'a> {
    fn new(sql: &'a str, rules: &'a LexicalRules) -> Self {
        Scanner {
            sql,
            bytes: sql.as_bytes(),
            rules,
            pos: 0,
            placeholders: Vec::new(),
            statement_end: None,
            saw_code: false,
        }
    }

    fn error_at(&self, offset: usize, what: String) -> Error {
        let (line, column) = line_and_column(self.sql, offset);
        Error::new(
            ErrorKind::InvalidInput,
            format!("{what} (SQL line {line}, column {column})"),
        )
        .with_context("line", line)
        .with_context("column", column)
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    fn previous_is_word(&self) -> bool {
        self.pos > 0 && is_word_byte(self.bytes[self.pos - 1])
    }

    /// Notes a piece of code at the current position: an error when the first statement
    /// already ended.
    fn code(&mut self) -> Result<()> {
        if let Some(end) = self.statement_end {
            return Err(self.error_at(
                self.pos,
                format!(
                    "one call runs one statement, but more SQL follows the `;` that ends the first (at offset {end})"
                ),
            ));
        }
        self.saw_code = true;
        Ok(())
    }

    fn run(mut self) -> Result<NamedQuery> {
        while let Some(b) = self.peek(0) {
            match b {
                b'\'' => {
                    self.code()?;
                    self.skip_quoted(b'\'', self.rules.backslash_escapes, "string literal")?;
                }
                b'"' => {
                    self.code()?;
                    self.skip_quoted(b'"', self.rules.backslash_escapes, "quoted identifier")?;
                }
                b'`' if self.rules.backtick_identifiers => {
                    self.code()?;
                    self.skip_quoted(b'`', false, "quoted identifier")?;
                }
                b'[' if self.rules.bracket_identifiers => {
                    self.code()?;
                    self.skip_bracketed()?;
                }
                b'-' if self.peek(1) == Some(b'-') => self.skip_line(),
                b'#' if self.rules.hash_comments => self.skip_line(),
                b'/' if self.peek(1) == Some(b'*') => self.skip_block_comment()?,
                b'$' if self.rules.dollar_quoted_strings && self.dollar_tag().is_some() => {
                    self.code()?;
                    self.skip_dollar_quoted()?;
                }
                b':' => {
                    self.code()?;
                    self.colon()?;
                }
                b';' => {
                    self.statement_end.get_or_insert(self.pos);
                    self.pos += 1;
                }
                b if b.is_ascii_whitespace() => self.pos += 1,
                b if self.is_foreign_marker(b) => {
                    return Err(self.error_at(
                        self.pos,
                        format!(
                            "`{}` is a parameter marker the connector does not bind; write a `:name` placeholder and give its value in `params` (or as a run variable)",
                            self.marker_text()
                        ),
                    ));
                }
                _ => {
                    self.code()?;
                    self.pos += 1;
                }
            }
        }
        if !self.saw_code {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "the SQL is empty (nothing but whitespace, comments or `;`)",
            ));
        }
        Ok(NamedQuery {
            sql: self.sql.to_string(),
            placeholders: self.placeholders,
            statement_end: self.statement_end,
        })
    }

    fn skip_quoted(&mut self, quote: u8, backslash: bool, what: &str) -> Result<()> {
        let start = self.pos;
        let mut i = self.pos + 1;
        while i < self.bytes.len() {
            let b = self.bytes[i];
            if backslash && b == b'\\' {
                i += 2;
                continue;
            }
            if b == quote {
                if self.bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                    continue;
                }
                self.pos = i + 1;
                return Ok(());
            }
            i += 1;
        }
        Err(self.error_at(start, format!("unterminated {what}")))
    }

    fn skip_bracketed(&mut self) -> Result<()> {
        let start = self.pos;
        match self.bytes[start..].iter().position(|&b| b == b']') {
            Some(len) => {
                self.pos = start + len + 1;
                Ok(())
            }
            None => Err(self.error_at(start, "unterminated quoted identifier `[`".into())),
        }
    }

    fn skip_line(&mut self) {
        match self.bytes[self.pos..].iter().position(|&b| b == b'\n') {
            Some(len) => self.pos += len + 1,
            None => self.pos = self.bytes.len(),
        }
    }

    fn skip_block_comment(&mut self) -> Result<()> {
        let start = self.pos;
        let mut depth = 0usize;
        let mut i = self.pos;
        while i + 1 < self.bytes.len() {
            match (self.bytes[i], self.bytes[i + 1]) {
                (b'/', b'*') if depth == 0 || self.rules.nested_block_comments => {
                    depth += 1;
                    i += 2;
                }
                (b'*', b'/') => {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        self.pos = i;
                        return Ok(());
                    }
                }
                _ => i += 1,
            }
        }
        Err(self.error_at(start, "unterminated block comment `/*`".into()))
    }

    /// The `$tag$` opening a dollar-quoted string at the current position, if one does.
    fn dollar_tag(&self) -> Option<&'a str> {
        if self.previous_is_word() {
            return None;
        }
        let rest = &self.bytes[self.pos + 1..];
        if let Some(&first) = rest.first()
            && first != b'$'
            && !is_name_start(first)
        {
            return None;
        }
        let len = rest.iter().take_while(|&&b| is_name_char(b)).count();
        (rest.get(len) == Some(&b'$')).then(|| &self.sql[self.pos..self.pos + len + 2])
    }

    fn skip_dollar_quoted(&mut self) -> Result<()> {
        let start = self.pos;
        let Some(tag) = self.dollar_tag() else {
            return Ok(());
        };
        let body = start + tag.len();
        match self.sql[body..].find(tag) {
            Some(len) => {
                self.pos = body + len + tag.len();
                Ok(())
            }
            None => Err(self.error_at(start, format!("unterminated dollar-quoted string `{tag}`"))),
        }
    }

    fn colon(&mut self) -> Result<()> {
        match self.peek(1) {
            // A cast (`x::text`): neither colon starts a placeholder.
            Some(b':') => self.pos += 2,
            Some(b) if is_name_start(b) => {
                let start = self.pos;
                let name_start = start + 1;
                let len = self.bytes[name_start..]
                    .iter()
                    .take_while(|&&b| is_name_char(b))
                    .count();
                let end = name_start + len;
                if self.bytes.get(end).is_some_and(|&b| b >= 0x80) {
                    return Err(self.error_at(
                        start,
                        format!(
                            "placeholder `:{}` runs into a non-ASCII character; names are ASCII letters, digits and `_`",
                            &self.sql[name_start..end]
                        ),
                    ));
                }
                self.placeholders.push(Placeholder {
                    start,
                    end,
                    name: self.sql[name_start..end].to_string(),
                });
                self.pos = end;
            }
            _ => self.pos += 1,
        }
        Ok(())
    }

    fn is_foreign_marker(&self, b: u8) -> bool {
        if !self.rules.foreign_markers.contains(&char::from(b)) {
            return false;
        }
        if b == b'?' {
            return true;
        }
        !self.previous_is_word()
            && self
                .peek(1)
                .is_some_and(|n| is_name_start(n) || n.is_ascii_digit())
    }

    fn marker_text(&self) -> &'a str {
        let rest = &self.bytes[self.pos + 1..];
        let len = rest.iter().take_while(|&&b| is_name_char(b)).count();
        &self.sql[self.pos..self.pos + 1 + len]
    }
}

#[cfg(test)]
#[cfg(feature = "sqlite")]
mod tests {
    use super::*;
    use crate::sql::sqlite::DIALECT as SQLITE;

    const POSTGRES_LIKE: LexicalRules = LexicalRules {
        backtick_identifiers: false,
        bracket_identifiers: false,
        backslash_escapes: false,
        dollar_quoted_strings: true,
        nested_block_comments: true,
        hash_comments: false,
        foreign_markers: &['$'],
    };

    const MYSQL_LIKE: LexicalRules = LexicalRules {
        backtick_identifiers: true,
        bracket_identifiers: false,
        backslash_escapes: true,
        dollar_quoted_strings: false,
        nested_block_comments: false,
        hash_comments: true,
        foreign_markers: &['?'],
    };

    fn names(sql: &str) -> Vec<String> {
        names_with(sql, &SQLITE.lexical)
    }

    fn names_with(sql: &str, rules: &LexicalRules) -> Vec<String> {
        NamedQuery::parse(sql, rules)
            .unwrap()
            .placeholders()
            .iter()
            .map(|p| p.name.clone())
            .collect()
    }

    fn error(sql: &str) -> String {
        NamedQuery::parse(sql, &SQLITE.lexical)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn finds_names_with_letters_digits_and_underscores() {
        assert_eq!(
            names("SELECT * FROM t WHERE a = :a AND b = :_b2 AND c=:last_sync"),
            vec!["a", "_b2", "last_sync"]
        );
    }

    #[test]
    fn a_colon_not_followed_by_a_name_start_is_not_a_placeholder() {
        assert!(names("SELECT 1 WHERE x = :1 OR y = : z OR w = :").is_empty());
    }

    #[test]
    fn skips_string_literals_with_doubled_quotes() {
        assert_eq!(
            names("SELECT 'it''s :not' , ':nor' || :yes || '12:30' FROM t"),
            vec!["yes"]
        );
    }

    #[test]
    fn skips_quoted_identifiers_of_every_sqlite_kind() {
        assert_eq!(
            names(r#"SELECT "a "":x", `b:y`, [c:z] FROM t WHERE d = :real"#),
            vec!["real"]
        );
    }

    #[test]
    fn skips_line_and_block_comments() {
        let sql = "SELECT 1 -- :line\n, 2 /* :block\n :more */ WHERE a = :after";
        assert_eq!(names(sql), vec!["after"]);
    }

    #[test]
    fn a_line_comment_at_the_end_needs_no_newline() {
        assert_eq!(names("SELECT :a -- :b"), vec!["a"]);
    }

    #[test]
    fn double_colon_casts_are_not_placeholders() {
        assert_eq!(
            names("SELECT x::text, :p::integer FROM t"),
            vec!["p"],
            "the cast after a placeholder does not extend it"
        );
    }

    #[test]
    fn a_placeholder_right_after_a_word_is_still_one() {
        assert_eq!(
            names("SELECT 1 WHERE a=:x OR b IN(:y,:z)"),
            vec!["x", "y", "z"]
        );
    }

    #[test]
    fn unterminated_string_is_an_error_naming_its_start() {
        let err = error("SELECT 1\nWHERE a = 'oops :x");
        assert!(err.contains("unterminated string literal"), "{err}");
        assert!(err.contains("line 2, column 11"), "{err}");
    }

    #[test]
    fn unterminated_identifiers_and_comments_are_errors() {
        assert!(error("SELECT \"a FROM t").contains("unterminated quoted identifier"));
        assert!(error("SELECT [a FROM t").contains("unterminated quoted identifier"));
        assert!(error("SELECT 1 /* :x").contains("unterminated block comment"));
    }

    #[test]
    fn a_second_statement_is_refused_but_a_trailing_semicolon_is_fine() {
        assert_eq!(names("SELECT :a;  -- done\n ;"), vec!["a"]);
        let err = error("SELECT 1; DROP TABLE t");
        assert!(err.contains("one call runs one statement"), "{err}");
    }

    #[test]
    fn a_semicolon_inside_a_string_does_not_end_the_statement() {
        assert_eq!(names("SELECT ';' || :a"), vec!["a"]);
    }

    #[test]
    fn empty_sql_is_an_error() {
        assert!(error("  -- nothing\n /* here */ ;").contains("the SQL is empty"));
    }

    #[test]
    fn sqlite_parameter_markers_are_refused() {
        for sql in ["SELECT ?", "SELECT ?1", "SELECT @since", "SELECT $since"] {
            let err = error(sql);
            assert!(err.contains("parameter marker"), "{sql}: {err}");
        }
    }

    #[test]
    fn dollar_and_at_inside_words_and_strings_are_not_markers() {
        assert_eq!(
            names("SELECT a$b, 'x?y@z$w' FROM t WHERE c = :c"),
            vec!["c"]
        );
    }

    #[test]
    fn non_ascii_after_a_name_is_an_error() {
        assert!(error("SELECT :café").contains("non-ASCII"));
    }

    #[test]
    fn non_ascii_text_elsewhere_keeps_offsets_right() {
        let query = NamedQuery::parse("SELECT 'é' AS \"ü\", :x", &SQLITE.lexical).unwrap();
        let (sql, _) = query.render(&SQLITE);
        assert_eq!(sql, "SELECT 'é' AS \"ü\", ?1");
    }

    #[test]
    fn numbered_rendering_reuses_a_slot_per_name() {
        let query = NamedQuery::parse("SELECT :b, :a, :b", &SQLITE.lexical).unwrap();
        assert_eq!(query.names(), vec!["b", "a"]);
        let (sql, slots) = query.render(&SQLITE);
        assert_eq!(sql, "SELECT ?1, ?2, ?1");
        assert_eq!(slots, vec![0, 1]);
    }

    #[test]
    fn positional_rendering_gives_each_occurrence_a_slot() {
        let dialect = Dialect {
            placeholder: PlaceholderStyle::Positional,
            lexical: MYSQL_LIKE,
            ..SQLITE
        };
        let query = NamedQuery::parse("SELECT :b, :a, :b", &dialect.lexical).unwrap();
        let (sql, slots) = query.render(&dialect);
        assert_eq!(sql, "SELECT ?, ?, ?");
        assert_eq!(slots, vec![0, 1, 0]);
    }

    #[test]
    fn backslash_escapes_apply_only_where_the_dialect_has_them() {
        // MySQL: the backslash escapes the quote, so `:x` is still inside the string.
        assert!(names_with(r"SELECT 'a\' :x'", &MYSQL_LIKE).is_empty());
        // SQLite: the string ends at the second quote, and `:x` is code.
        let err = error(r"SELECT 'a\' :x'");
        assert!(err.contains("unterminated string literal"), "{err}");
    }

    #[test]
    fn a_query_nests_without_its_terminator_and_sorts_by_the_database() {
        let query = NamedQuery::parse("SELECT a FROM t WHERE b > :since; -- done", &SQLITE.lexical)
            .unwrap()
            .without_terminator();
        let (sql, _) = query.render(&SQLITE);
        assert_eq!(sql, "SELECT a FROM t WHERE b > ?1");
        assert_eq!(
            SQLITE.order_by(&sql, "a\"b"),
            "SELECT * FROM (\nSELECT a FROM t WHERE b > ?1\n) AS kernelize_sorted ORDER BY kernelize_sorted.\"a\"\"b\""
        );
    }

    #[test]
    fn hash_comments_only_where_the_dialect_has_them() {
        assert_eq!(names_with("SELECT :a # :b\n", &MYSQL_LIKE), vec!["a"]);
    }

    #[test]
    fn dollar_quoted_strings_and_nested_comments_for_postgres_like_rules() {
        let sql =
            "SELECT $$ :a $$, $tag$ :b $x$ $tag$, arr[1:n] /* /* :c */ :d */ FROM t WHERE e = :e";
        assert_eq!(names_with(sql, &POSTGRES_LIKE), vec!["n", "e"]);
        let err = NamedQuery::parse("SELECT $1", &POSTGRES_LIKE).unwrap_err();
        assert!(err.to_string().contains("`$1`"), "{err}");
    }

    #[test]
    fn brackets_are_not_identifiers_where_the_dialect_says_so() {
        assert_eq!(
            names_with("SELECT arr[:i] FROM t", &POSTGRES_LIKE),
            vec!["i"]
        );
        assert!(names("SELECT [:i] FROM t").is_empty());
    }
}
