//! `when` conditions: references become variables of a MiniJinja expression.
//!
//! `${steps.count.output.rows} > 0 and ${params.env} == "prod"` is compiled as
//! `ref_0 > 0 and ref_1 == "prod"` with `ref_0` and `ref_1` bound to the referenced values,
//! so values are compared, never spliced into the expression's text.

use crate::definition::reference::{Reference, Segment, parse_template};

/// Longest `when` condition accepted, in bytes.
const MAX_CONDITION_BYTES: usize = 4096;

/// A `when` condition ready to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The expression, each reference replaced by the variable `ref_N` (N counting from 0).
    pub expression: String,
    /// The references, in order: `ref_N` stands for `references[N]`.
    pub references: Vec<Reference>,
}

/// Turns a `when` condition into an expression over `ref_N` variables, and checks that
/// MiniJinja parses it; the error says why not.
pub fn prepare_condition(when: &str) -> Result<Condition, String> {
    if when.len() > MAX_CONDITION_BYTES {
        return Err(format!(
            "the condition is {} bytes long; the limit is {MAX_CONDITION_BYTES}",
            when.len()
        ));
    }
    let mut expression = String::new();
    let mut references = Vec::new();
    for segment in parse_template(when)? {
        match segment {
            Segment::Text(text) => expression.push_str(&text),
            Segment::Ref(reference) => {
                expression.push_str(&format!("ref_{}", references.len()));
                references.push(reference);
            }
        }
    }
    if expression.trim().is_empty() {
        return Err("the condition is empty".to_string());
    }
    let environment = minijinja::Environment::new();
    if let Err(e) = environment.compile_expression(&expression) {
        let detail = e.detail().unwrap_or("syntax error");
        return Err(format!(
            "`{when}` is not a valid condition: {detail} (conditions are MiniJinja \
             expressions such as `${{steps.count.output.rows}} > 0 and ${{params.env}} == \"prod\"`)"
        ));
    }
    Ok(Condition {
        expression,
        references,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_become_numbered_variables() {
        let condition =
            prepare_condition("${steps.count.output.rows} > 0 and ${params.env} == \"prod\"")
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(condition.expression, "ref_0 > 0 and ref_1 == \"prod\"");
        assert_eq!(condition.references[1], Reference::Param("env".into()));
    }

    #[test]
    fn bad_conditions_say_why() {
        assert!(prepare_condition("${params.x} >").is_err());
        assert!(prepare_condition("(${params.x}").is_err());
        assert!(prepare_condition("  ").is_err());
        assert!(prepare_condition("${nope}").is_err_and(|e| e.contains("not a reference")));
        assert!(prepare_condition(&"(".repeat(10_000)).is_err());
        // Deep nesting is an error or fine, never a crash.
        let _ = prepare_condition(&format!("{}1{}", "(".repeat(1000), ")".repeat(1000)));
    }
}
