//! YAML text to a JSON value, remembering where every key and value was written.
//!
//! Built on the event stream of `saphyr-parser` rather than on a loaded YAML tree, so that the
//! limits hold while reading: nesting deeper than [`MAX_DEPTH`] or more than [`MAX_NODES`]
//! nodes (alias expansions included, so no "billion laughs") stop the parse at once, and no
//! tree deeper than the limit is ever built or dropped. Scalars are typed by the YAML 1.2
//! core schema (saphyr's resolver): `true`, `12`, `1.5`, `~` are a bool, an int, a float and
//! null; anything quoted stays a string; `yes` and `on` are strings.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr::Scalar;
use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};

use super::diagnostics::{Position, escape_token};

/// Deepest nesting of lists and mappings accepted.
pub const MAX_DEPTH: usize = 128;

/// Most nodes (scalars, lists, mappings, alias expansions included) accepted in one file.
pub const MAX_NODES: usize = 200_000;

/// Where a node was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NodePositions {
    /// The value's first character.
    pub(crate) value: Option<Position>,
    /// The key's first character, for a value in a mapping.
    pub(crate) key: Option<Position>,
}

/// Positions by JSON pointer.
pub(crate) type PositionMap = HashMap<String, NodePositions>;

/// A problem that stops reading the YAML: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub(crate) position: Position,
    pub(crate) message: String,
}

/// Reads one YAML document into JSON and the positions of its nodes. An empty document
/// gives `Value::Null`.
pub(crate) fn to_json(text: &str) -> Result<(Value, PositionMap), YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder::default();
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| YamlError {
            position: position(e.marker()),
            message: e.info().to_string(),
        })?;
        builder.on_event(event, span)?;
    }
    Ok((builder.root.unwrap_or(Value::Null), builder.positions))
}

fn position(marker: &Marker) -> Position {
    Position::new(marker.line().max(1), marker.col() + 1)
}

/// A subtree kept for the aliases that name its anchor.
struct Anchored {
    value: Value,
    nodes: usize,
    height: usize,
}

enum Collection {
    Sequence(Vec<Value>),
    /// The entries so far and the key waiting for its value.
    Mapping(Map<String, Value>, Option<String>),
}

struct Frame {
    collection: Collection,
    pointer: String,
    anchor: usize,
    nodes_before: usize,
    /// Height of the tallest child so far.
    height: usize,
}

/// What the next node is in its parent.
enum Slot {
    Key(String),
    Value(String),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    documents: usize,
    anchors: HashMap<usize, Anchored>,
    positions: PositionMap,
    nodes: usize,
}

fn fail<T>(at: Position, message: impl Into<String>) -> Result<T, YamlError> {
    Err(YamlError {
        position: at,
        message: message.into(),
    })
}

impl Builder {
    fn on_event(&mut self, event: Event<'_>, span: Span) -> Result<(), YamlError> {
        let at = position(&span.start);
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return fail(
                        at,
                        "a workflow file holds one YAML document; this is a second one",
                    );
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(at, 1, false)?;
                match self.slot() {
                    Slot::Key(parent) => {
                        self.key(at, &parent, &text, style, tag.as_ref())?;
                        if anchor != 0 {
                            // An anchored key may be aliased as a value elsewhere.
                            let value = Value::String(text.to_string());
                            self.anchors.insert(
                                anchor,
                                Anchored {
                                    value,
                                    nodes: 1,
                                    height: 0,
                                },
                            );
                        }
                    }
                    Slot::Value(pointer) => {
                        let value = scalar(&text, style, tag.as_ref()).or_else(|m| fail(at, m))?;
                        self.record_value(&pointer, at);
                        self.complete(at, value, anchor, 1, 0)?;
                    }
                }
            }
            Event::Alias(id) => {
                let Slot::Value(pointer) = self.slot() else {
                    return fail(at, "an alias cannot be a mapping key");
                };
                let Some(anchored) = self.anchors.get(&id) else {
                    return fail(
                        at,
                        "this alias names an anchor that is not complete here (an alias inside \
                         its own anchor)",
                    );
                };
                let (value, nodes, height) =
                    (anchored.value.clone(), anchored.nodes, anchored.height);
                if self.stack.len() + height > MAX_DEPTH {
                    return fail(
                        at,
                        format!("this alias nests values deeper than {MAX_DEPTH} levels"),
                    );
                }
                self.count(at, nodes, true)?;
                self.record_value(&pointer, at);
                self.complete(at, value, 0, nodes, height)?;
            }
            Event::SequenceStart(anchor, tag) => {
                self.start(
                    at,
                    anchor,
                    tag.as_ref(),
                    "seq",
                    Collection::Sequence(Vec::new()),
                )?;
            }
            Event::MappingStart(anchor, tag) => {
                self.start(
                    at,
                    anchor,
                    tag.as_ref(),
                    "map",
                    Collection::Mapping(Map::new(), None),
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => self.end()?,
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
        Ok(())
    }

    /// Counts `nodes` more nodes against [`MAX_NODES`].
    fn count(&mut self, at: Position, nodes: usize, alias: bool) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > MAX_NODES {
            let how = if alias {
                " once aliases are expanded"
            } else {
                ""
            };
            return fail(
                at,
                format!("the document has more than {MAX_NODES} values{how}; that is the limit"),
            );
        }
        Ok(())
    }

    /// Whether the next node is a key or a value, and its pointer.
    fn slot(&self) -> Slot {
        match self.stack.last() {
            None => Slot::Value(String::new()),
            Some(frame) => match &frame.collection {
                Collection::Sequence(items) => {
                    Slot::Value(format!("{}/{}", frame.pointer, items.len()))
                }
                Collection::Mapping(_, None) => Slot::Key(frame.pointer.clone()),
                Collection::Mapping(_, Some(key)) => {
                    Slot::Value(format!("{}/{}", frame.pointer, escape_token(key)))
                }
            },
        }
    }

    fn record_value(&mut self, pointer: &str, at: Position) {
        self.positions.entry(pointer.to_string()).or_default().value = Some(at);
    }

    /// A scalar in key position: checked for repeats and kept until its value comes.
    fn key(
        &mut self,
        at: Position,
        parent: &str,
        text: &str,
        style: ScalarStyle,
        tag: Option<&Cow<'_, Tag>>,
    ) -> Result<(), YamlError> {
        if let Some(tag) = tag
            && !tag.is_yaml_core_schema()
        {
            return fail(at, format!("unsupported tag `{tag}` on a key"));
        }
        if style == ScalarStyle::Plain && text == "<<" {
            return fail(
                at,
                "merge keys (`<<`) are not supported; repeat the entries, or alias the whole value",
            );
        }
        let pointer = format!("{parent}/{}", escape_token(text));
        let Some(Frame {
            collection: Collection::Mapping(map, pending),
            ..
        }) = self.stack.last_mut()
        else {
            return fail(at, "a key outside a mapping");
        };
        if map.contains_key(text) {
            let first = self
                .positions
                .get(&pointer)
                .and_then(|p| p.key)
                .map(|p| format!(" (first at line {}, column {})", p.line, p.column))
                .unwrap_or_default();
            return fail(at, format!("duplicate key `{text}`{first}"));
        }
        *pending = Some(text.to_string());
        self.positions.entry(pointer).or_default().key = Some(at);
        Ok(())
    }

    fn start(
        &mut self,
        at: Position,
        anchor: usize,
        tag: Option<&Cow<'_, Tag>>,
        core_tag: &str,
        collection: Collection,
    ) -> Result<(), YamlError> {
        let Slot::Value(pointer) = self.slot() else {
            return fail(
                at,
                "a mapping key must be a single value, not a list or a mapping",
            );
        };
        if let Some(tag) = tag
            && !(tag.is_yaml_core_schema() && tag.suffix == core_tag)
        {
            return fail(at, format!("unsupported tag `{tag}`"));
        }
        if self.stack.len() >= MAX_DEPTH {
            return fail(
                at,
                format!(
                    "lists and mappings nest deeper than {MAX_DEPTH} levels; that is the limit"
                ),
            );
        }
        let nodes_before = self.nodes;
        self.count(at, 1, false)?;
        self.record_value(&pointer, at);
        self.stack.push(Frame {
            collection,
            pointer,
            anchor,
            nodes_before,
            height: 0,
        });
        Ok(())
    }

    fn end(&mut self) -> Result<(), YamlError> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let at = self
            .positions
            .get(&frame.pointer)
            .and_then(|p| p.value)
            .unwrap_or(Position::START);
        let value = match frame.collection {
            Collection::Sequence(items) => Value::Array(items),
            Collection::Mapping(map, _) => Value::Object(map),
        };
        let nodes = self.nodes - frame.nodes_before;
        self.complete(at, value, frame.anchor, nodes, frame.height + 1)
    }

    /// A finished node: kept for its anchor's aliases, then put in its parent.
    fn complete(
        &mut self,
        at: Position,
        value: Value,
        anchor: usize,
        nodes: usize,
        height: usize,
    ) -> Result<(), YamlError> {
        if anchor != 0 {
            // The copy kept for aliases costs as much as the value itself.
            self.count(at, nodes, true)?;
            self.anchors.insert(
                anchor,
                Anchored {
                    value: value.clone(),
                    nodes,
                    height,
                },
            );
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(frame) => {
                frame.height = frame.height.max(height);
                match &mut frame.collection {
                    Collection::Sequence(items) => items.push(value),
                    Collection::Mapping(map, pending) => {
                        if let Some(key) = pending.take() {
                            map.insert(key, value);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A scalar's value by the YAML 1.2 core schema.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Cow<'_, Tag>>) -> Result<Value, String> {
    if let Some(tag) = tag
        && !tag.is_yaml_core_schema()
    {
        return Err(format!(
            "unsupported tag `{tag}`; only YAML's core tags (!!str, !!int, !!float, !!bool, \
             !!null) are understood"
        ));
    }
    if style == ScalarStyle::Plain
        && tag.is_none()
        && let Ok(big) = text.parse::<u64>()
    {
        // Above i64::MAX the resolver would make it a float and lose digits.
        return Ok(Value::Number(big.into()));
    }
    match Scalar::parse_from_cow_and_metadata(Cow::Borrowed(text), style, tag) {
        None => Err(format!(
            "`{text}` is not a valid {}",
            tag.map(|t| t.to_string()).unwrap_or_default()
        )),
        Some(Scalar::Null) => Ok(Value::Null),
        Some(Scalar::Boolean(b)) => Ok(Value::Bool(b)),
        Some(Scalar::Integer(i)) => Ok(Value::Number(i.into())),
        Some(Scalar::FloatingPoint(f)) => Number::from_f64(f.into_inner())
            .map(Value::Number)
            .ok_or_else(|| {
                format!("`{text}` is not a finite number; JSON has no infinities or NaN")
            }),
        Some(Scalar::String(s)) => Ok(Value::String(s.into_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_of(text: &str) -> Value {
        to_json(text)
            .map(|(v, _)| v)
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn error_of(text: &str) -> YamlError {
        match to_json(text) {
            Ok((v, _)) => panic!("expected an error, got {v}"),
            Err(e) => e,
        }
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let v = json_of(
            "a: 12\nb: 1.5\nc: true\nd: ~\ne: yes\nf: '12'\ng: \"true\"\nh: 0x1f\ni: \nj: \
             18446744073709551615\nk: !!str 12\nl: .5\n",
        );
        assert_eq!(
            v,
            json!({"a": 12, "b": 1.5, "c": true, "d": null, "e": "yes", "f": "12", "g": "true",
                   "h": 31, "i": null, "j": 18446744073709551615u64, "k": "12", "l": 0.5})
        );
    }

    #[test]
    fn keys_and_values_have_positions() {
        let (_, positions) =
            to_json("workflows:\n  w:\n    steps:\n      - name: a\n        plugin: p\n")
                .unwrap_or_default();
        let at = |p: &str| positions.get(p).copied().unwrap_or_default();
        assert_eq!(at("/workflows").key, Some(Position::new(1, 1)));
        assert_eq!(at("/workflows/w/steps").value, Some(Position::new(4, 7)));
        assert_eq!(at("/workflows/w/steps/0").value, Some(Position::new(4, 9)));
        assert_eq!(
            at("/workflows/w/steps/0/plugin").key,
            Some(Position::new(5, 9))
        );
        assert_eq!(
            at("/workflows/w/steps/0/plugin").value,
            Some(Position::new(5, 17))
        );
    }

    #[test]
    fn duplicate_keys_are_refused_at_the_second() {
        let e = error_of("a: 1\nb:\n  c: 1\n  c: 2\n");
        assert_eq!(e.position, Position::new(4, 3));
        assert!(
            e.message
                .contains("duplicate key `c` (first at line 3, column 3)"),
            "{}",
            e.message
        );
    }

    #[test]
    fn aliases_expand_within_a_budget() {
        assert_eq!(
            json_of("a: &x [1, 2]\nb: *x\n"),
            json!({"a": [1, 2], "b": [1, 2]})
        );
        assert_eq!(json_of("&k a: 1\nb: *k\n"), json!({"a": 1, "b": "a"}));
        let mut laughs = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            laughs.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = error_of(&laughs);
        assert!(e.message.contains("aliases are expanded"), "{}", e.message);
    }

    #[test]
    fn deep_nesting_stops_at_the_limit() {
        // Block lists: ours is the limit that stops them.
        let deep = format!("{}1\n", "- ".repeat(100_000));
        let e = error_of(&deep);
        assert_eq!(e.position, Position::new(1, 2 * MAX_DEPTH + 1));
        assert!(e.message.contains("deeper than 128"), "{}", e.message);
        // Flow lists: the scanner, reading ahead, stops at its own limit of 255 first.
        assert!(to_json(&"[".repeat(100_000)).is_err());
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(to_json(&fine).is_ok());
    }

    #[test]
    fn unsupported_constructs_are_refused_clearly() {
        assert!(
            error_of("a: !custom 1\n")
                .message
                .contains("unsupported tag")
        );
        assert!(error_of("<<: {a: 1}\n").message.contains("merge keys"));
        assert!(error_of("? [a]\n: 1\n").message.contains("single value"));
        assert!(error_of("a: .inf\n").message.contains("finite"));
        assert!(
            error_of("a: 1\n---\nb: 2\n")
                .message
                .contains("one YAML document")
        );
        assert!(error_of("a: !!int x\n").message.contains("not a valid"));
    }

    #[test]
    fn syntax_errors_carry_the_parsers_position() {
        let e = error_of("a: [1, 2\nb: 3\n");
        assert!(e.position.line >= 1, "{e:?}");
        assert!(!e.message.is_empty());
    }
}
