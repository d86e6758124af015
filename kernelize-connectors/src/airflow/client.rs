//! [`AirflowClient`]: the Airflow REST API calls this connector makes, for v1 (Airflow 2)
//! and v2 (Airflow 3), usable from Rust without the plugin.

use std::sync::Arc;

use kernelize_core::plugin::ActionContext;
use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use url::Url;

use super::auth::AirflowTokenAuth;
use super::config::{AirflowSettings, ApiVersion};
use crate::http::{BasicAuth, BearerAuth, HttpClient, Layer, Method, Request, Response, excerpt};
use crate::saas::{Poll, PollSettings, answer_error, build_client, parse_url, poll_until};

/// The longest `dag_run_id` Airflow stores (`ID_LEN`).
pub const MAX_RUN_ID_LEN: usize = 250;

/// A DAG run as both API versions describe it (fields of one version only are optional;
/// fields this type does not name are dropped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DagRun {
    /// The DAG.
    pub dag_id: String,
    /// The run's id.
    pub dag_run_id: String,
    /// `queued`, `running`, `success` or `failed`.
    pub state: String,
    /// The logical date (`null` for a v2 run triggered without one).
    #[serde(default)]
    pub logical_date: Option<String>,
    /// `manual`, `scheduled`, `backfill`, `asset_triggered` (v2) / `dataset_triggered` (v1).
    #[serde(default)]
    pub run_type: Option<String>,
    /// When it was queued (v2).
    #[serde(default)]
    pub queued_at: Option<String>,
    /// When it started.
    #[serde(default)]
    pub start_date: Option<String>,
    /// When it ended.
    #[serde(default)]
    pub end_date: Option<String>,
    /// The run's configuration.
    #[serde(default)]
    pub conf: Option<Value>,
    /// The run's note.
    #[serde(default)]
    pub note: Option<String>,
}

impl DagRun {
    /// Whether the run is over (`success` or `failed`).
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "success" | "failed")
    }
}

/// What to trigger: the body of `POST …/dags/{dag_id}/dagRuns`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriggerDagRun {
    /// The run's id; Airflow makes one (`manual__<date>`) when absent.
    pub dag_run_id: Option<String>,
    /// The run's configuration (`dag_run.conf`).
    pub conf: Map<String, Value>,
    /// The logical date (RFC 3339). v1 sends it only when given; v2 sends `null` when not
    /// given (Airflow 3.0 requires the key).
    pub logical_date: Option<String>,
    /// The data interval's start (give both ends or neither).
    pub data_interval_start: Option<String>,
    /// The data interval's end.
    pub data_interval_end: Option<String>,
    /// v2 only: when the run may start.
    pub run_after: Option<String>,
    /// A note on the run.
    pub note: Option<String>,
}

/// A trigger's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Triggered {
    /// The run.
    pub run: DagRun,
    /// `true` when Airflow answered 409 and the run returned is the one that already had
    /// the id (see [`AirflowClient::trigger_dag`]).
    pub already_existed: bool,
}

/// Filters of [`AirflowClient::list_dags`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DagFilter {
    /// DAGs with any of these tags.
    pub tags: Vec<String>,
    /// Only paused (`true`) or only active (`false`) DAGs.
    pub paused: Option<bool>,
    /// DAGs whose id contains this text (SQL `LIKE` pattern; `%` and `_` are wildcards).
    pub dag_id_pattern: Option<String>,
}

/// The Airflow REST API of one deployment.
#[derive(Debug, Clone)]
pub struct AirflowClient {
    http: HttpClient,
    base: Url,
    version: ApiVersion,
    page_size: u32,
    max_pages: usize,
}

impl AirflowClient {
    /// A client for `settings` (checked here), signing in as they say: Basic (v1), a token
    /// from `/auth/token` (v2), or the fixed `access_token` (either version).
    pub fn new(settings: &AirflowSettings) -> Result<Self> {
        settings.check()?;
        let base = parse_url("base_url", &settings.base_url)?;
        let auth: Arc<dyn Layer> = match (&settings.access_token, settings.api_version) {
            (Some(token), _) => Arc::new(BearerAuth::new(token.clone())),
            (None, version) => {
                let (Some(user), Some(password)) = (&settings.username, &settings.password) else {
                    return Err(Error::new(
                        ErrorKind::ConfigInvalid,
                        "give `username` and `password` (or `access_token`)",
                    ));
                };
                match version {
                    ApiVersion::V1 => Arc::new(BasicAuth::new(user, password.clone())),
                    ApiVersion::V2 => Arc::new(AirflowTokenAuth::new(
                        Self::token_url_of(settings)?,
                        user,
                        password.clone(),
                    )),
                }
            }
        };
        let http = build_client(base.as_str(), &settings.http, None, vec![auth])?;
        Ok(Self {
            http,
            base,
            version: settings.api_version,
            page_size: settings.page_size,
            max_pages: settings.max_pages,
        })
    }

    /// The v2 token endpoint: `token_url`, else `{base_url}/auth/token`.
    pub fn token_url_of(settings: &AirflowSettings) -> Result<Url> {
        match &settings.token_url {
            Some(url) => parse_url("token_url", url),
            None => {
                let mut url = parse_url("base_url", &settings.base_url)?;
                url.path_segments_mut()
                    .map_err(|_| {
                        Error::new(ErrorKind::ConfigInvalid, "`base_url` cannot have a path")
                    })?
                    .pop_if_empty()
                    .extend(["auth", "token"]);
                Ok(url)
            }
        }
    }

    /// The API version spoken.
    pub fn version(&self) -> ApiVersion {
        self.version
    }

    /// `{base_url}/api/{v}/` followed by `segments`, each percent-encoded (run ids hold
    /// `:` and `+`; a `/` in an id cannot change the path).
    fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.base.clone();
        url.set_query(None);
        url.path_segments_mut()
            .map_err(|_| Error::new(ErrorKind::ConfigInvalid, "`base_url` cannot have a path"))?
            .pop_if_empty()
            .extend(["api", self.version.segment()])
            .extend(segments);
        Ok(url)
    }

    /// Sends `request`; a non-2xx answer becomes the error its body describes.
    async fn send(&self, request: Request) -> Result<Response> {
        let describe = request.describe();
        let response = self.http.send(request).await?;
        if response.is_success() {
            Ok(response)
        } else {
            Err(api_error(&response, &describe))
        }
    }

    fn trigger_body(&self, run: &TriggerDagRun) -> Result<Value> {
        if let Some(id) = &run.dag_run_id {
            check_run_id(id)?;
        }
        let mut body = Map::new();
        if let Some(id) = &run.dag_run_id {
            body.insert("dag_run_id".into(), json!(id));
        }
        match (self.version, &run.logical_date) {
            (_, Some(date)) => {
                body.insert("logical_date".into(), json!(date));
            }
            // Airflow 3.0 refuses a body without the key (apache/airflow#46390); null asks
            // for a run without a logical date.
            (ApiVersion::V2, None) => {
                body.insert("logical_date".into(), Value::Null);
            }
            (ApiVersion::V1, None) => {}
        }
        for (name, value) in [
            ("data_interval_start", &run.data_interval_start),
            ("data_interval_end", &run.data_interval_end),
            ("note", &run.note),
        ] {
            if let Some(v) = value {
                body.insert(name.into(), json!(v));
            }
        }
        if let Some(after) = &run.run_after {
            if self.version == ApiVersion::V1 {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "`run_after` exists in Airflow 3 only (api_version v2)",
                ));
            }
            body.insert("run_after".into(), json!(after));
        }
        body.insert("conf".into(), Value::Object(run.conf.clone()));
        Ok(Value::Object(body))
    }

    /// Triggers a run of `dag_id` (`POST /api/{v}/dags/{dag_id}/dagRuns`).
    ///
    /// When `reuse_existing` is set and Airflow answers **409** for the given `dag_run_id`
    /// (Airflow refuses a second run with an id), the run that has it is fetched and
    /// returned with [`Triggered::already_existed`] set: a repeated call (a request re-sent
    /// after a lost answer, a workflow step attempt resumed after a crash) finds the run it
    /// started instead of failing or starting a second one; such a trigger is therefore
    /// also retried after a 5xx or a timeout. A 409 for another reason (a logical date
    /// already taken: no run has the id) stays an error, as does any 409 without
    /// `reuse_existing`; other triggers are retried only after a 429.
    pub async fn trigger_dag(
        &self,
        dag_id: &str,
        run: &TriggerDagRun,
        reuse_existing: bool,
    ) -> Result<Triggered> {
        let body = self.trigger_body(run)?;
        let mut request = Request::new(Method::POST, self.url(&["dags", dag_id, "dagRuns"])?)
            .json(&body)?
            .path_template("/api/{v}/dags/{dag_id}/dagRuns");
        // With an id whose 409 is answered by the existing run, sending again after a lost
        // answer cannot start a second run nor fail: the request is safe to replay.
        if run.dag_run_id.is_some() && reuse_existing {
            request = request.replayable();
        }
        let describe = request.describe();
        let response = self.http.send(request).await?;
        if response.is_success() {
            return Ok(Triggered {
                run: response.json()?,
                already_existed: false,
            });
        }
        let error = api_error(&response, &describe).with_context("dag_id", dag_id);
        match (&run.dag_run_id, response.status.as_u16()) {
            (Some(id), 409) if reuse_existing => match self.get_dag_run(dag_id, id).await {
                Ok(existing) => {
                    tracing::debug!(dag_id, dag_run_id = %id, "the run already existed; returning it");
                    Ok(Triggered {
                        run: existing,
                        already_existed: true,
                    })
                }
                Err(e) if e.kind() == ErrorKind::NotFound => Err(error),
                Err(e) => Err(e),
            },
            _ => Err(error),
        }
    }

    /// One run (`GET /api/{v}/dags/{dag_id}/dagRuns/{dag_run_id}`).
    pub async fn get_dag_run(&self, dag_id: &str, dag_run_id: &str) -> Result<DagRun> {
        let request = Request::new(
            Method::GET,
            self.url(&["dags", dag_id, "dagRuns", dag_run_id])?,
        )
        .path_template("/api/{v}/dags/{dag_id}/dagRuns/{dag_run_id}");
        self.send(request)
            .await
            .map_err(|e| {
                e.with_context("dag_id", dag_id)
                    .with_context("dag_run_id", dag_run_id)
            })?
            .json()
    }

    /// Polls a run with [`poll_until`] until it is `success` or `failed`, bounded by
    /// `settings` and the call's deadline and cancellation.
    pub async fn wait_for_dag_run(
        &self,
        ctx: &ActionContext,
        settings: &PollSettings,
        dag_id: &str,
        dag_run_id: &str,
    ) -> Result<DagRun> {
        let what = format!("DAG run `{dag_run_id}` of `{dag_id}`");
        poll_until(ctx, settings, &what, || async {
            let run = self.get_dag_run(dag_id, dag_run_id).await?;
            Ok(if run.is_finished() {
                Poll::Ready(run)
            } else {
                Poll::Pending(run.state)
            })
        })
        .await
    }

    /// Every page of a listing at `url` whose items are under `field`, by `limit` and
    /// `offset` until `total_entries` are read. More than `max_pages` pages is an error:
    /// a partial list would pass for the whole.
    async fn list_all(&self, url: Url, template: &str, field: &str) -> Result<Vec<Value>> {
        let mut items: Vec<Value> = Vec::new();
        let mut offset: u64 = 0;
        for _ in 0..self.max_pages {
            let mut page_url = url.clone();
            page_url
                .query_pairs_mut()
                .append_pair("limit", &self.page_size.to_string())
                .append_pair("offset", &offset.to_string());
            let request = Request::new(Method::GET, page_url).path_template(template);
            let describe = request.describe();
            let mut page: Value = self.send(request).await?.json()?;
            let total = page
                .get("total_entries")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Remote,
                        format!("{describe} answered without `total_entries`"),
                    )
                })?;
            let Some(Value::Array(found)) = page.get_mut(field).map(Value::take) else {
                return Err(Error::new(
                    ErrorKind::Remote,
                    format!("{describe} answered without a `{field}` list"),
                ));
            };
            let empty = found.is_empty();
            offset += found.len() as u64;
            items.extend(found);
            if empty || offset >= total {
                return Ok(items);
            }
        }
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "the listing has more than {} pages of {}; raise `max_pages` or narrow it with filters",
                self.max_pages, self.page_size
            ),
        ))
    }

    /// The DAGs (`GET /api/{v}/dags`), every page, as the API describes them.
    pub async fn list_dags(&self, filter: &DagFilter) -> Result<Vec<Value>> {
        let mut url = self.url(&["dags"])?;
        {
            let mut query = url.query_pairs_mut();
            for tag in &filter.tags {
                query.append_pair("tags", tag);
            }
            if let Some(paused) = filter.paused {
                query.append_pair("paused", if paused { "true" } else { "false" });
            }
            if let Some(pattern) = &filter.dag_id_pattern {
                query.append_pair("dag_id_pattern", pattern);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.list_all(url, "/api/{v}/dags", "dags").await
    }

    /// Pauses (`true`) or unpauses a DAG (`PATCH /api/{v}/dags/{dag_id}?update_mask=is_paused`
    /// with `{"is_paused"}`) and returns the DAG. Setting a flag is safe to repeat, so the
    /// request is retried like a PUT.
    pub async fn set_paused(&self, dag_id: &str, paused: bool) -> Result<Value> {
        let mut url = self.url(&["dags", dag_id])?;
        url.query_pairs_mut()
            .append_pair("update_mask", "is_paused");
        let request = Request::new(Method::PATCH, url)
            .json(&json!({ "is_paused": paused }))?
            .path_template("/api/{v}/dags/{dag_id}")
            .replayable();
        self.send(request)
            .await
            .map_err(|e| e.with_context("dag_id", dag_id))?
            .json()
    }

    /// The task instances of a run (`GET …/dagRuns/{dag_run_id}/taskInstances`), every page.
    pub async fn list_task_instances(&self, dag_id: &str, dag_run_id: &str) -> Result<Vec<Value>> {
        let url = self.url(&["dags", dag_id, "dagRuns", dag_run_id, "taskInstances"])?;
        self.list_all(
            url,
            "/api/{v}/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances",
            "task_instances",
        )
        .await
        .map_err(|e| {
            e.with_context("dag_id", dag_id)
                .with_context("dag_run_id", dag_run_id)
        })
    }
}

/// Refuses a run id Airflow would refuse (empty, too long, or with characters outside
/// `[A-Za-z0-9_.~:+-]`, the default `allowed_run_id_pattern`), before sending it.
fn check_run_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_RUN_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.~:+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "`dag_run_id` must be 1 to {MAX_RUN_ID_LEN} characters of A-Z a-z 0-9 _ . ~ : + -, not `{id}`"
            ),
        ))
    }
}

/// The run id a call's idempotency key stands for: `kernelize__` and the key, with any
/// character Airflow does not allow in run ids replaced by `_` and, then, a hash of the
/// whole key appended so that two keys never meet; cut to Airflow's 250 characters. The
/// same key always gives the same id (FNV-1a, not a per-process hash).
pub fn run_id_for_key(key: &str) -> String {
    let clean: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.~:+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let hash = fnv1a(key.as_bytes());
    let suffix = if clean == key {
        String::new()
    } else {
        format!("-{hash:016x}")
    };
    let room = MAX_RUN_ID_LEN - "kernelize__".len() - suffix.len();
    if clean.len() > room {
        // Too long: keep the start and let the hash tell keys apart.
        let kept: String = clean.chars().take(room - 17).collect();
        return format!("kernelize__{kept}-{hash:016x}");
    }
    format!("kernelize__{clean}{suffix}")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// An Airflow error answer as an [`Error`]: the v1 problem document (`title`, `detail`), or
/// v2's `{"detail"}` (text, an object such as `{reason, orig_error}`, or a list of
/// validation errors `{loc, msg}`). Kinds by status: 400/422 invalid input, 401/403
/// permission denied, 404 not found, 429 rate limited, others remote; 408, 429 and 5xx are
/// temporary.
pub(crate) fn api_error(response: &Response, request: &str) -> Error {
    let status = response.status.as_u16();
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let said = body
        .as_ref()
        .and_then(describe_body)
        .unwrap_or_else(|| excerpt(&response.body));
    let kind = match status {
        400 | 422 => ErrorKind::InvalidInput,
        401 | 403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        429 => ErrorKind::RateLimited,
        _ => ErrorKind::Remote,
    };
    answer_error(
        response,
        kind,
        format!("Airflow answered {} to {request}: {said}", response.status),
    )
}

/// What an error body says, in a line.
fn describe_body(body: &Value) -> Option<String> {
    let detail = describe_detail(body.get("detail")?);
    match body.get("title").and_then(Value::as_str) {
        Some(title) if !title.is_empty() => Some(if detail.is_empty() {
            title.to_string()
        } else {
            format!("{title}: {detail}")
        }),
        _ => Some(detail),
    }
}

fn describe_detail(detail: &Value) -> String {
    match detail {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(errors) => errors
            .iter()
            .map(|e| {
                let loc = e
                    .get("loc")
                    .and_then(Value::as_array)
                    .map(|parts| {
                        parts
                            .iter()
                            .map(|p| match p {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                            .collect::<Vec<_>>()
                            .join(".")
                    })
                    .unwrap_or_default();
                let msg = e.get("msg").and_then(Value::as_str).unwrap_or("invalid");
                if loc.is_empty() {
                    msg.to_string()
                } else {
                    format!("{loc}: {msg}")
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        Value::Object(map) => match map.get("reason").and_then(Value::as_str) {
            Some(reason) => match map.get("orig_error").and_then(Value::as_str) {
                Some(orig) => format!("{reason} ({orig})"),
                None => reason.to_string(),
            },
            None => detail.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_from_keys_are_stable_allowed_and_distinct() {
        assert_eq!(run_id_for_key("wf-1.step-2"), "kernelize__wf-1.step-2");
        let a = run_id_for_key("run 7/step 1");
        let b = run_id_for_key("run_7_step_1");
        assert_ne!(a, b, "replacing characters must not make two keys meet");
        assert!(a.starts_with("kernelize__run_7_step_1-"));
        assert_eq!(a, run_id_for_key("run 7/step 1"));
        let long = run_id_for_key(&"x".repeat(400));
        assert_eq!(long.len(), MAX_RUN_ID_LEN);
        for id in [a, b, long] {
            check_run_id(&id).unwrap();
        }
    }

    #[test]
    fn bad_run_ids_are_refused_before_sending() {
        assert!(check_run_id("").is_err());
        assert!(check_run_id("a b").is_err());
        assert!(check_run_id(&"x".repeat(251)).is_err());
        check_run_id("manual__2024-05-01T00:00:00+00:00").unwrap();
    }

    #[test]
    fn error_details_of_both_versions_read_as_one_line() {
        let v1 = json!({"type": "x", "title": "DAG not found", "status": 404, "detail": "DAG with dag_id: 'a' not found"});
        assert_eq!(
            describe_body(&v1).unwrap(),
            "DAG not found: DAG with dag_id: 'a' not found"
        );
        let v2 = json!({"detail": [{"type": "extra_forbidden", "loc": ["body", "foo"], "msg": "Extra inputs are not permitted"}]});
        assert_eq!(
            describe_body(&v2).unwrap(),
            "body.foo: Extra inputs are not permitted"
        );
        let conflict = json!({"detail": {"reason": "Unique constraint violation", "orig_error": "duplicate key"}});
        assert_eq!(
            describe_body(&conflict).unwrap(),
            "Unique constraint violation (duplicate key)"
        );
    }
}
