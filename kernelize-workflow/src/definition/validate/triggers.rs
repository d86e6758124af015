//! Triggers: cron schedules in IANA time zones, and webhook paths.

use std::collections::HashMap;

use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use super::Checker;
use crate::definition::model::WorkflowDef;

/// Parses a schedule the way the scheduler reads it: 5 fields (minute, hour, day of month,
/// month, day of week), or 6 with seconds first, or a nickname (`@hourly`, `@daily`,
/// `@weekly`, `@monthly`, `@yearly`).
pub fn parse_schedule(expression: &str) -> Result<Cron, String> {
    let trimmed = expression.trim();
    let fields = trimmed.split_whitespace().count();
    if !trimmed.starts_with('@') && !(5..=6).contains(&fields) {
        return Err(format!(
            "`{expression}` has {fields} field{}; a schedule has 5 (minute hour day month \
             weekday) or 6 (seconds first)",
            if fields == 1 { "" } else { "s" }
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(trimmed)
        .map_err(|e| format!("`{expression}` is not a valid cron schedule: {e}"))
}

/// Parses an IANA time zone name (`Europe/Paris`, `UTC`).
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("`{name}` is not an IANA time zone name (like `UTC` or `Europe/Paris`)")
    })
}

impl Checker<'_> {
    /// Checks a workflow's triggers; `webhooks` holds the paths seen in the file so far,
    /// with the workflow and pointer that took them.
    pub(super) fn triggers(
        &mut self,
        base: &str,
        workflow_name: &str,
        workflow: &WorkflowDef,
        webhooks: &mut HashMap<String, (String, String)>,
    ) {
        for (k, trigger) in workflow.triggers.iter().enumerate() {
            let at = format!("{base}/triggers/{k}");
            match (&trigger.schedule, &trigger.webhook) {
                (Some(_), Some(_)) => self.error(
                    &at,
                    "a trigger has either `schedule` or `webhook`, not both; write two triggers",
                ),
                (None, None) => {
                    self.error(&at, "a trigger needs a `schedule` or a `webhook`");
                }
                _ => {}
            }
            if let Some(schedule) = &trigger.schedule
                && let Err(message) = parse_schedule(schedule)
            {
                self.error(&format!("{at}/schedule"), message);
            }
            if let Some(zone) = &trigger.timezone {
                if let Err(message) = parse_timezone(zone) {
                    self.error(&format!("{at}/timezone"), message);
                } else if trigger.schedule.is_none() {
                    self.error(
                        &format!("{at}/timezone"),
                        "`timezone` applies to a `schedule`, and this trigger has none",
                    );
                }
            }
            if trigger.max_catch_up == Some(0) {
                self.error(
                    &format!("{at}/max_catch_up"),
                    "`max_catch_up` must be at least 1",
                );
            }
            if let Some(path) = &trigger.webhook {
                let pointer = format!("{at}/webhook");
                if !path.starts_with('/') {
                    self.error(
                        &pointer,
                        format!("webhook path `{path}` must start with `/`"),
                    );
                } else if path.contains(|c: char| c.is_whitespace() || c == '?' || c == '#') {
                    self.error(
                        &pointer,
                        format!("webhook path `{path}` must not hold spaces, `?` or `#`"),
                    );
                } else if let Some((other, other_pointer)) = webhooks.get(path) {
                    let line = self
                        .loaded
                        .position(other_pointer)
                        .map(|p| format!(" (line {})", p.line))
                        .unwrap_or_default();
                    let message = format!(
                        "webhook path `{path}` is already taken by workflow `{other}`{line}"
                    );
                    self.error(&pointer, message);
                } else {
                    webhooks.insert(path.clone(), (workflow_name.to_string(), pointer));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_have_five_or_six_fields() {
        assert!(parse_schedule("0 */6 * * *").is_ok());
        assert!(parse_schedule("30 0 */6 * * *").is_ok());
        assert!(parse_schedule("@daily").is_ok());
        assert!(parse_schedule("0 0 1 1 * 2030").is_err());
        assert!(parse_schedule("* * * *").is_err_and(|e| e.contains("4 fields")));
        assert!(parse_schedule("0 0 1 1 * * 2030").is_err_and(|e| e.contains("7 fields")));
        assert!(parse_schedule("61 * * * *").is_err());
        assert!(parse_schedule("").is_err());
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert!(parse_timezone("Europe/Paris").is_ok());
        assert!(parse_timezone("UTC").is_ok());
        assert!(parse_timezone("Mars/Olympus").is_err());
    }
}
