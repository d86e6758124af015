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

use std::sync::LazyLock;

use kernelize_core::{Error, ErrorKind, Event, Result};
use serde_json::Value;

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

    /// Evaluates the expression for an event whose body is `body`.
    pub fn eval(&self, body: &Value, event: &Event) -> Result<minijinja::Value> {
        let meta = minijinja::context! {
            id => &event.id,
            key => &event.key,
            subject => &event.subject,
            headers => &event.headers,
            attempt => event.attempt,
        };
        let ctx = minijinja::context! {
            event => minijinja::Value::from(minijinja::value::Serde(body)),
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
    pub fn holds(&self, body: &Value, event: &Event) -> Result<bool> {
        Ok(self.eval(body, event)?.is_true())
    }

    /// The expression's value as a key: text as is, numbers and booleans written out;
    /// `None` when it is undefined, `none` or empty.
    pub fn key(&self, body: &Value, event: &Event) -> Result<Option<String>> {
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
        let body = json!({"amount": 120, "region": "eu", "tags": ["a", "b"]});
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
        let body = json!({"id": 42, "name": "x", "empty": ""});
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
    fn bad_expressions_say_why() {
        assert!(Expr::compile("").is_err());
        let message = Expr::compile("event.amount >").err().unwrap_or_default();
        assert!(message.contains("event.amount >"), "{message}");
    }

    #[test]
    fn a_failing_evaluation_is_an_invalid_input_error() {
        let e = event();
        let expr = Expr::compile("event.n // 0 > 1");
        let result = expr.map(|x| x.holds(&json!({"n": 1}), &e));
        match result {
            Ok(Err(err)) => assert_eq!(err.kind(), ErrorKind::InvalidInput),
            other => panic!("expected an evaluation error, got {other:?}"),
        }
    }
}
