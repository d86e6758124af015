//! Which kind of operation a GraphQL document asks for, read from the document itself so
//! that a query can be retried and cached and a mutation cannot.
//!
//! This is not a GraphQL parser: it reads tokens just far enough to find each top-level
//! definition's keyword and name, and skips everything inside brackets (selection sets,
//! arguments, variable defaults), strings, block strings and comments.

/// The three kinds of GraphQL operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationType {
    /// A read (`query { ... }`, or the shorthand `{ ... }`): safe to send again and to
    /// answer from a cache.
    Query,
    /// A write: sent once, never cached.
    Mutation,
    /// A stream of results, over WebSocket.
    Subscription,
}

impl OperationType {
    /// The keyword: `query`, `mutation` or `subscription`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationType::Query => "query",
            OperationType::Mutation => "mutation",
            OperationType::Subscription => "subscription",
        }
    }

    /// The kind of the operation `document` runs: the one named `operation_name` when
    /// given, else the document's first operation. `None` when the document has no such
    /// operation (or is not GraphQL); such a request is treated like a mutation (sent once,
    /// not cached) and the server reports what is wrong with it.
    pub fn of(document: &str, operation_name: Option<&str>) -> Option<Self> {
        find_operation(document, operation_name).map(|op| op.kind)
    }
}

impl std::fmt::Display for OperationType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operation found in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Operation<'a> {
    pub(crate) kind: OperationType,
    /// The operation's own name (`query Viewer { ... }` is named `Viewer`).
    pub(crate) name: Option<&'a str>,
}

/// The operation named `wanted` (or the first operation when `wanted` is `None`).
pub(crate) fn find_operation<'a>(document: &'a str, wanted: Option<&str>) -> Option<Operation<'a>> {
    let mut tokens = Tokens::new(document);
    while let Some(token) = tokens.next() {
        let (operation, mut depth) = match token {
            Token::Punct('{') => (
                Some(Operation {
                    kind: OperationType::Query,
                    name: None,
                }),
                1usize,
            ),
            Token::Name(keyword) => {
                let kind = match keyword {
                    "query" => Some(OperationType::Query),
                    "mutation" => Some(OperationType::Mutation),
                    "subscription" => Some(OperationType::Subscription),
                    _ => None,
                };
                match kind {
                    Some(kind) => {
                        let (name, depth) = match tokens.next() {
                            Some(Token::Name(name)) => (Some(name), 0),
                            Some(token) => (None, token.depth_change(0)),
                            None => (None, 0),
                        };
                        (Some(Operation { kind, name }), depth)
                    }
                    // A fragment (or something a server will reject): skip it whole.
                    None => (None, 0),
                }
            }
            // A stray token at the top level: not the start of a definition.
            _ => continue,
        };
        // Skip to the end of this definition: the `}` that closes its selection set.
        let mut ended = false;
        while !ended {
            let Some(token) = tokens.next() else { break };
            depth = token.depth_change(depth);
            ended = depth == 0 && token == Token::Punct('}');
        }
        if let Some(operation) = operation {
            match wanted {
                None => return Some(operation),
                Some(wanted) if operation.name == Some(wanted) => return Some(operation),
                Some(_) => {}
            }
        }
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Name(&'a str),
    Punct(char),
    /// A string, a number or anything else that is none of the above.
    Other,
}

impl Token<'_> {
    /// The bracket depth after this token.
    fn depth_change(self, depth: usize) -> usize {
        match self {
            Token::Punct('{' | '(' | '[') => depth.saturating_add(1),
            Token::Punct('}' | ')' | ']') => depth.saturating_sub(1),
            _ => depth,
        }
    }
}

/// The tokens of a document, without whitespace, commas and comments.
struct Tokens<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, at: 0 }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.at..).unwrap_or("")
    }

    /// Skips ignored characters: whitespace, commas, a byte-order mark and `#` comments.
    fn skip_ignored(&mut self) {
        loop {
            let rest = self.rest();
            let Some(c) = rest.chars().next() else { return };
            if c.is_whitespace() || c == ',' || c == '\u{feff}' {
                self.at += c.len_utf8();
            } else if c == '#' {
                self.at += rest.find(['\n', '\r']).unwrap_or(rest.len());
            } else {
                return;
            }
        }
    }

    /// Skips a string starting at the current position (its opening quote included).
    fn skip_string(&mut self) {
        let rest = self.rest();
        if let Some(body) = rest.strip_prefix("\"\"\"") {
            // A block string ends at the first `"""` not escaped as `\"""`.
            let mut from = 0;
            loop {
                match body.get(from..).and_then(|tail| tail.find("\"\"\"")) {
                    Some(found) => {
                        let end = from + found;
                        if body[..end].ends_with('\\') {
                            from = end + 3;
                            continue;
                        }
                        self.at += 3 + end + 3;
                        return;
                    }
                    None => {
                        self.at = self.text.len();
                        return;
                    }
                }
            }
        }
        // A plain string ends at an unescaped quote or, malformed, at the line's end.
        let mut escaped = false;
        for (i, c) in rest.char_indices().skip(1) {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    self.at += i + 1;
                    return;
                }
                '\n' | '\r' => {
                    self.at += i;
                    return;
                }
                _ => escaped = false,
            }
        }
        self.at = self.text.len();
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        self.skip_ignored();
        let rest = self.rest();
        let c = rest.chars().next()?;
        if c == '_' || c.is_ascii_alphabetic() {
            let len = rest
                .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
                .unwrap_or(rest.len());
            self.at += len;
            return Some(Token::Name(&rest[..len]));
        }
        if c == '"' {
            self.skip_string();
            return Some(Token::Other);
        }
        if c == '.' && rest.starts_with("...") {
            self.at += 3;
            return Some(Token::Other);
        }
        if c == '-' || c.is_ascii_digit() {
            let len = rest
                .char_indices()
                .skip(1)
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-')))
                .map_or(rest.len(), |(i, _)| i);
            self.at += len;
            return Some(Token::Other);
        }
        self.at += c.len_utf8();
        Some(Token::Punct(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shorthand_is_a_query() {
        assert_eq!(
            OperationType::of("{ viewer { id } }", None),
            Some(OperationType::Query)
        );
    }

    #[test]
    fn keywords_name_the_kind() {
        assert_eq!(
            OperationType::of("query Q { a }", None),
            Some(OperationType::Query)
        );
        assert_eq!(
            OperationType::of("  mutation { a }", None),
            Some(OperationType::Mutation)
        );
        assert_eq!(
            OperationType::of("subscription S($x: Int) { a(x: $x) }", None),
            Some(OperationType::Subscription)
        );
    }

    #[test]
    fn comments_fragments_and_strings_are_skipped() {
        let doc = r#"
            # mutation in a comment
            fragment F on User { name(format: "mutation {") bio(x: """ a "" mutation { """) }
            query Viewer($d: In = {a: [1, 2]}) @live(if: true) { viewer { ...F } }
        "#;
        let op = find_operation(doc, None);
        assert_eq!(
            op,
            Some(Operation {
                kind: OperationType::Query,
                name: Some("Viewer")
            })
        );
    }

    #[test]
    fn the_named_operation_is_chosen() {
        let doc = "query A { a } mutation B { b } subscription C { c }";
        assert_eq!(
            OperationType::of(doc, Some("B")),
            Some(OperationType::Mutation)
        );
        assert_eq!(
            OperationType::of(doc, Some("C")),
            Some(OperationType::Subscription)
        );
        assert_eq!(
            OperationType::of(doc, Some("A")),
            Some(OperationType::Query)
        );
        assert_eq!(OperationType::of(doc, Some("Z")), None);
        assert_eq!(OperationType::of(doc, None), Some(OperationType::Query));
    }

    #[test]
    fn a_field_named_like_a_keyword_does_not_count() {
        let doc = "mutation M { query { mutation } } query Q { x }";
        assert_eq!(OperationType::of(doc, None), Some(OperationType::Mutation));
        assert_eq!(
            OperationType::of(doc, Some("Q")),
            Some(OperationType::Query)
        );
        assert_eq!(
            OperationType::of("queryX { a }", None),
            None,
            "`queryX` is a name, not the keyword"
        );
    }

    #[test]
    fn garbage_is_no_operation_and_never_a_panic() {
        for doc in [
            "",
            "}}}",
            "\"unterminated",
            "\"\"\"unterminated block",
            "query",
            "mutation (",
            "fragment F on T",
            "é ü {",
            "-1.5e+3 ... @ $",
        ] {
            let _ = OperationType::of(doc, None);
            let _ = OperationType::of(doc, Some("X"));
        }
        assert_eq!(OperationType::of("fragment F on T { a }", None), None);
        assert_eq!(OperationType::of("query", None), Some(OperationType::Query));
    }
}
