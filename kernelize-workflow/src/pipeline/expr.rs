//! Expressions over events: filters, route conditions and dedupe keys.
//!
//! An expression is a [MiniJinja](https://docs.rs/minijinja) expression (the language of
//! Jinja's `{{ ... }}`, without the braces) over two variables:
//!
//! - `event`: the event's body as JSON (`event.amount > 100`, `event.tags | length`);
//! - `meta`: what the source said about it: `meta.id`, `meta.key`, `meta.subject`,
//!   `meta.headers["content-type"]`, `meta.attempt`.
//!
//! Values are passed as variables, never spliced into the expression's text. An expression
//! that does not compile is refused when the pipeline is built (with MiniJinja's reason);
//! one that fails on an event (a filter comparing text with a number) rejects that event
//! to the dead letter sink with the reason.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, LazyLock};

use kernelize_core::{Error, ErrorKind, Event, Result};
use minijinja::value::{Enumerator, Object, ObjectRepr};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

static ENV: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env
});

/// A compiled expression.
pub struct Expr {
    text: String,
    compiled: minijinja::Expression<'static, 'static>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expr").field(&self.text).finish()
    }
}

impl Expr {
    /// Compiles `text`; the error says why it is not an expression.
    pub fn compile(text: &str) -> std::result::Result<Self, String> {
        if text.trim().is_empty() {
            return Err("the expression is empty".into());
        }
        let compiled = ENV
            .compile_expression_owned(text.to_string())
            .map_err(|e| format!("`{text}` is not a valid expression: {e}"))?;
        Ok(Expr {
            text: text.to_string(),
            compiled,
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The top-level fields of the body the expression reads (`event.a.b` reads `a`);
    /// `None` when it reads the body as a whole (`event | length`, `event[name]`).
    pub(crate) fn top_fields(&self) -> Option<BTreeSet<String>> {
        let mut fields = BTreeSet::new();
        for path in self.compiled.undeclared_variables(true) {
            let mut parts = path.split('.');
            if parts.next() != Some("event") {
                continue;
            }
            fields.insert(parts.next()?.to_string());
        }
        Some(fields)
    }

    /// Evaluates the expression for an event whose body is `body`. The body is read in
    /// place: only the fields the expression reads become template values.
    pub fn eval(&self, body: &Arc<Value>, event: &Event) -> Result<minijinja::Value> {
        let meta = minijinja::context! {
            id => &event.id,
            key => &event.key,
            subject => &event.subject,
            headers => &event.headers,
            attempt => event.attempt,
        };
        let ctx = minijinja::context! {
            event => JsonView::value(body.clone(), Vec::new()),
            meta => meta,
        };
        self.compiled.eval(ctx).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("`{}` could not be evaluated: {e}", self.text),
            )
        })
    }

    /// Whether the expression holds for the event.
    pub fn holds(&self, body: &Arc<Value>, event: &Event) -> Result<bool> {
        Ok(self.eval(body, event)?.is_true())
    }

    /// The expression's value as a key: text as is, numbers and booleans written out;
    /// `None` when it is undefined, `none` or empty.
    pub fn key(&self, body: &Arc<Value>, event: &Event) -> Result<Option<String>> {
        let value = self.eval(body, event)?;
        if value.is_undefined() || value.is_none() {
            return Ok(None);
        }
        let text = match value.as_str() {
            Some(s) => s.to_string(),
            None => value.to_string(),
        };
        Ok(if text.is_empty() { None } else { Some(text) })
    }
}

/// Parses a JSON body keeping only the top-level `fields` of an object: every other
/// value is checked and skipped without being built. A body that is not an object is
/// parsed whole. An error when the body is not JSON.
pub(crate) fn parse_fields(
    body: &[u8],
    fields: &BTreeSet<String>,
) -> std::result::Result<Value, serde_json::Error> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return serde_json::from_slice(body);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Only(fields).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// The object of the named fields only.
struct Only<'a>(&'a BTreeSet<String>);

impl<'de> DeserializeSeed<'de> for Only<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Only<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(Key)? {
            if self.0.contains(key.as_ref()) {
                let value: Value = map.next_value()?;
                out.insert(key.into_owned(), value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Value::Object(out))
    }
}

/// An object key, borrowed from the body when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// One step from a JSON value to one of its children.
#[derive(Debug, Clone)]
enum Step {
    Field(Arc<str>),
    Item(usize),
}

/// An object or array inside a shared JSON body, seen by MiniJinja without copying it:
/// a field becomes a template value only when an expression reads it. (Turning a whole
/// body into template values for each expression cost more than the rest of a pipeline's
/// stage put together.)
#[derive(Debug)]
struct JsonView {
    root: Arc<Value>,
    path: Vec<Step>,
}

impl JsonView {
    /// The template value of the node at `path` in `root`: scalars as themselves, objects
    /// and arrays as views.
    fn value(root: Arc<Value>, path: Vec<Step>) -> minijinja::Value {
        match walk(&root, &path) {
            None | Some(Value::Null) => minijinja::Value::from(()),
            Some(Value::Bool(b)) => minijinja::Value::from(*b),
            Some(Value::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    minijinja::Value::from(i)
                } else if let Some(u) = n.as_u64() {
                    minijinja::Value::from(u)
                } else {
                    minijinja::Value::from(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Some(Value::String(s)) => minijinja::Value::from(s.as_str()),
            Some(Value::Array(_) | Value::Object(_)) => {
                minijinja::Value::from_object(JsonView { root, path })
            }
        }
    }

    fn node(&self) -> &Value {
        walk(&self.root, &self.path).unwrap_or(&Value::Null)
    }

    fn child(&self, step: Step) -> minijinja::Value {
        let mut path = Vec::with_capacity(self.path.len() + 1);
        path.extend(self.path.iter().cloned());
        path.push(step);
        Self::value(self.root.clone(), path)
    }
}

fn walk<'a>(root: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(root, |node, step| match step {
        Step::Field(name) => node.as_object()?.get(&**name),
        Step::Item(i) => node.as_array()?.get(*i),
    })
}

impl Object for JsonView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        match self.node() {
            Value::Array(_) => ObjectRepr::Seq,
            _ => ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        match self.node() {
            Value::Object(map) => {
                let name = key.as_str()?;
                map.contains_key(name)
                    .then(|| self.child(Step::Field(Arc::from(name))))
            }
            Value::Array(items) => {
                let i = usize::try_from(key.as_i64()?).ok()?;
                (i < items.len()).then(|| self.child(Step::Item(i)))
            }
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.node() {
            Value::Object(map) => Enumerator::Values(
                map.keys()
                    .map(|k| minijinja::Value::from(k.as_str()))
                    .collect(),
            ),
            Value::Array(items) => Enumerator::Seq(items.len()),
            _ => Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        match self.node() {
            Value::Object(map) => Some(map.len()),
            Value::Array(items) => Some(items.len()),
            _ => Some(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelize_core::Payload;
    use serde_json::json;

    fn event() -> Event {
        Event::new("7", Payload::json(json!({})))
            .with_key("k-1")
            .with_subject("orders.eu")
            .with_header("source", "shop")
    }

    #[test]
    fn conditions_see_the_body_and_the_metadata() -> Result<()> {
        let body = Arc::new(json!({"amount": 120, "region": "eu", "tags": ["a", "b"]}));
        let e = event();
        let holds = |text: &str| {
            Expr::compile(text)
                .map_err(|m| Error::new(ErrorKind::InvalidInput, m))?
                .holds(&body, &e)
        };
        assert!(holds("event.amount > 100 and event.region == 'eu'")?);
        assert!(!holds("event.amount > 500")?);
        assert!(holds("event.tags | length == 2")?);
        assert!(holds(
            "meta.subject == 'orders.eu' and meta.headers.source == 'shop'"
        )?);
        assert!(holds("meta.attempt == 1 and meta.key == 'k-1'")?);
        assert!(
            !holds("event.missing")?,
            "an absent field is false, not an error"
        );
        Ok(())
    }

    #[test]
    fn keys_are_text_and_absent_keys_are_none() -> Result<()> {
        let body = Arc::new(json!({"id": 42, "name": "x", "empty": ""}));
        let e = event();
        let key = |text: &str| {
            Expr::compile(text)
                .map_err(|m| Error::new(ErrorKind::InvalidInput, m))?
                .key(&body, &e)
        };
        assert_eq!(key("event.id")?.as_deref(), Some("42"));
        assert_eq!(key("event.name ~ '/' ~ event.id")?.as_deref(), Some("x/42"));
        assert_eq!(key("event.nothing")?, None);
        assert_eq!(key("event.empty")?, None);
        Ok(())
    }

    #[test]
    fn the_lazy_view_agrees_with_a_full_conversion() -> Result<()> {
        let body = json!({
            "n": 7, "big": u64::MAX, "neg": -3, "price": 19.5, "flag": true, "off": false,
            "none": null, "text": "Zürich", "empty_list": [], "empty_map": {},
            "tags": ["a", "b", "c"],
            "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1, "extra": [1, [2, 3]]}],
            "nested": {"deep": {"x": 1, "list": [{"y": "z"}]}},
        });
        let view = Arc::new(body.clone());
        let full = minijinja::Value::from(minijinja::value::Serde(&body));
        let e = event();
        for text in [
            "event.n + 1",
            "event.big",
            "event.neg * 2",
            "event.price > 19",
            "event.flag and not event.off",
            "event.none is none",
            "event.text | upper",
            "event.empty_list",
            "event.empty_map",
            "event.empty_list | length",
            "event.tags",
            "event.tags | length",
            "event.tags | join(',')",
            "'b' in event.tags",
            "'z' in event.tags",
            "event.tags[1]",
            "event.tags[-1]",
            "event.tags[7]",
            "event.tags[0:2]",
            "event.tags == ['a', 'b', 'c']",
            "event.items[1].sku ~ '/' ~ event.items[1].qty",
            "event.items[1].extra[1][0]",
            "event.items | map(attribute='sku') | join('+')",
            "event.items | selectattr('qty', 'gt', 1) | list | length",
            "event.nested.deep.list[0].y",
            "event.nested['deep']['x'] == 1",
            "'deep' in event.nested",
            "event.nested.missing.x",
            "event.nested | length",
            "event.nested.deep | dictsort | length",
            "event | length",
            "event.missing is undefined",
        ] {
            let expr = Expr::compile(text).map_err(|m| Error::new(ErrorKind::InvalidInput, m))?;
            let lazy = expr
                .eval(&view, &e)
                .map(|v| (v.to_string(), v.is_true()))
                .ok();
            let eager = expr
                .compiled
                .eval(minijinja::context! { event => full.clone() })
                .map(|v| (v.to_string(), v.is_true()))
                .ok();
            assert_eq!(lazy, eager, "{text}");
        }
        // The one difference: an object written out keeps the body's field order.
        let written = Expr::compile("event.items[0]")
            .map_err(|m| Error::new(ErrorKind::InvalidInput, m))?
            .eval(&view, &e)?
            .to_string();
        assert_eq!(written, "{'sku': 'A-1', 'qty': 2}");
        Ok(())
    }

    #[test]
    fn expressions_name_the_fields_they_read() {
        let fields = |text: &str| Expr::compile(text).ok().and_then(|e| e.top_fields());
        let set = |names: &[&str]| Some(names.iter().map(|n| n.to_string()).collect());
        assert_eq!(
            fields("event.a > 1 and event.b.c == 'x' and meta.key"),
            set(&["a", "b"])
        );
        assert_eq!(fields("event.items[0].sku == 'A'"), set(&["items"]));
        assert_eq!(fields("meta.subject == 'x'"), set(&[]));
        assert_eq!(fields("event | length > 2"), None);
        assert_eq!(fields("event['a'] == 1"), None);
    }

    #[test]
    fn a_partial_parse_keeps_the_named_fields_and_still_checks_the_rest() {
        let names: BTreeSet<String> = ["a".to_string(), "d\"q".to_string()].into();
        let body = br#" {"a": {"x": [1, 2]}, "b": "skip \u00e9", "d\"q": 3, "a": 5} "#;
        let parsed = parse_fields(body, &names).ok();
        let bad = [
            &br#"{"a": 1, "b": tru}"#[..],
            br#"{"a": 1, "b": [1, 2}"#,
            br#"{"a": 1} trailing"#,
            br#"{"a": 1, "b": "\q"}"#,
            br#"{"a": 1,"#,
        ];

        assert_eq!(parsed, Some(json!({"a": 5, "d\"q": 3})));
        for body in bad {
            assert!(
                parse_fields(body, &names).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(parse_fields(b"[1, 2]", &names).ok(), Some(json!([1, 2])));
        assert_eq!(parse_fields(b" 7 ", &names).ok(), Some(json!(7)));
    }

    #[test]
    fn bad_expressions_say_why() {
        assert!(Expr::compile("").is_err());
        let message = Expr::compile("event.amount >").err().unwrap_or_default();
        assert!(message.contains("event.amount >"), "{message}");
    }

    #[test]
    fn a_failing_evaluation_is_an_invalid_input_error() {
        let e = event();
        let expr = Expr::compile("event.n // 0 > 1");
        let result = expr.map(|x| x.holds(&Arc::new(json!({"n": 1})), &e));
        match result {
            Ok(Err(err)) => assert_eq!(err.kind(), ErrorKind::InvalidInput),
            other => panic!("expected an evaluation error, got {other:?}"),
        }
    }
}
