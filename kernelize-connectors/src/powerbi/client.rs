//! [`PowerBiClient`]: the Power BI REST API calls, typed, over the shared HTTP stack with an
//! Entra client-credentials token.

use std::sync::Arc;
use std::time::Duration;

use kernelize_core::plugin::ActionContext;
use kernelize_core::{Error, ErrorKind, Result};
use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::config::{MAX_PUSH_ROWS, MY_WORKSPACE, PowerBiSettings};
use crate::http::{
    ClientAuthMethod, ClientCredentials, HttpClient, OAuth2ClientCredentials, Request, Response,
    excerpt,
};
use crate::saas::{
    Poll, PollSettings, build_client, id_segment, poll_until, send_checked, token_client,
};

/// A Power BI error answer as an [`Error`]: the status, Power BI's code and message (from
/// `{"error": {"code", "message", "details"}}`), the request id Power BI gives for support,
/// and a kind by status.
pub fn api_error(response: &Response, what: &str) -> Error {
    let status = response.status.as_u16();
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let error = &body["error"];
    let code = error["code"]
        .as_str()
        .or_else(|| error["pbi.error"]["code"].as_str())
        .map(str::to_string);
    let mut text = error["message"].as_str().unwrap_or_default().to_string();
    if let Some(details) = error["details"].as_array() {
        let details: Vec<String> = details
            .iter()
            .filter_map(|d| d["message"].as_str().map(str::to_string))
            .collect();
        if !details.is_empty() {
            text.push_str(&format!(" ({})", details.join("; ")));
        }
    }
    if text.is_empty() && code.is_none() {
        text = excerpt(&response.body);
    }
    let kind = match status {
        401 | 403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::InvalidState,
        429 => ErrorKind::RateLimited,
        400 | 405..=422 => ErrorKind::InvalidInput,
        _ => ErrorKind::Remote,
    };
    let mut message = format!("Power BI answered {} when {what}", response.status);
    match (&code, text.is_empty()) {
        (Some(code), false) => message.push_str(&format!(": {code}: {text}")),
        (Some(code), true) => message.push_str(&format!(": {code}")),
        (None, _) => message.push_str(&format!(": {text}")),
    }
    let mut error = Error::new(kind, message).with_status(status);
    if let Some(code) = code {
        error = error.with_context("powerbi_code", code);
    }
    if let Some(id) = response
        .header("requestid")
        .or_else(|| response.header("x-ms-request-id"))
    {
        error = error.with_context("powerbi_request_id", id);
    }
    error = if status == 429 || response.status.is_server_error() {
        error.set_temporary()
    } else {
        error.set_permanent()
    };
    if let Some(after) = response.retry_after() {
        error = error.with_retry_after(after);
    }
    error
}

/// An id as a path segment ([`id_segment`]); anything that could change the path is refused.
fn segment<'a>(what: &str, id: &'a str) -> Result<&'a str> {
    id_segment("Power BI", what, id)
}

/// The mail Power BI sends about a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum NotifyOption {
    /// No mail (the only option for a service principal).
    #[default]
    NoNotification,
    /// Mail when the refresh fails.
    MailOnFailure,
    /// Mail when it completes, either way.
    MailOnCompletion,
}

/// A refresh request: the notification, and the enhanced-refresh options (any of them
/// makes it an enhanced refresh, which needs Premium or Fabric capacity).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshOptions {
    /// Mail notification (`NoNotification` by default).
    #[serde(default)]
    pub notify_option: NotifyOption,
    /// Enhanced: `Full`, `ClearValues`, `Calculate`, `DataOnly`, `Automatic`, `Defragment`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub refresh_type: Option<String>,
    /// Enhanced: `transactional` or `partialBatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_mode: Option<String>,
    /// Enhanced: the most threads processing at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallelism: Option<u32>,
    /// Enhanced: how often the refresh is retried on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<u32>,
    /// Enhanced: the tables and partitions to refresh (`[{"table": "Sales"}]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<Value>>,
    /// Enhanced: apply the incremental refresh policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_refresh_policy: Option<bool>,
    /// Enhanced: the date the incremental policy counts from (`2024-05-01`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_date: Option<String>,
    /// Enhanced: the longest one attempt may run (`hh:mm:ss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// One refresh, as the refresh history shows it (or as it was accepted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RefreshEntry {
    /// The refresh's request id (`x-ms-request-id` of the call that started it).
    pub request_id: String,
    /// `Accepted` (started, not waited for), `Unknown` (in progress), `Completed`,
    /// `Failed`, `Disabled`, `Cancelled`.
    pub status: String,
    /// `ViaApi`, `ViaEnhancedApi`, `Scheduled`, `OnDemand`.
    pub refresh_type: Option<String>,
    /// When it started.
    pub start_time: Option<String>,
    /// When it ended.
    pub end_time: Option<String>,
    /// The `Location` of the refresh (enhanced refreshes can be read and cancelled there).
    pub location: Option<String>,
    /// The failure's error code, from `serviceExceptionJson`.
    pub error_code: Option<String>,
    /// The failure's description, from `serviceExceptionJson`.
    pub error_description: Option<String>,
}

impl RefreshEntry {
    fn from_history(entry: &Value) -> Option<Self> {
        let request_id = entry["requestId"].as_str()?.to_string();
        let text = |key: &str| entry[key].as_str().map(str::to_string);
        let exception: Value = entry["serviceExceptionJson"]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null);
        Some(Self {
            request_id,
            status: text("status").unwrap_or_else(|| "Unknown".into()),
            refresh_type: text("refreshType"),
            start_time: text("startTime"),
            end_time: text("endTime"),
            location: None,
            error_code: exception["errorCode"].as_str().map(str::to_string),
            error_description: exception["errorDescription"]
                .as_str()
                .map(str::to_string)
                .or_else(|| {
                    entry["serviceExceptionJson"]
                        .as_str()
                        .filter(|_| exception.is_null())
                        .map(str::to_string)
                }),
        })
    }

    /// Whether the refresh has ended (`Unknown` and `Accepted` have not).
    pub fn is_finished(&self) -> bool {
        !matches!(
            self.status.as_str(),
            "Unknown" | "Accepted" | "NotStarted" | "InProgress"
        )
    }

    /// `Ok(self)` for a completed refresh; an error naming the refresh and Power BI's
    /// reason for a failed, disabled or cancelled one.
    pub fn into_result(self, dataset_id: &str) -> Result<Self> {
        if matches!(self.status.as_str(), "Completed" | "Unknown" | "Accepted") {
            return Ok(self);
        }
        let reason = match (&self.error_code, &self.error_description) {
            (Some(code), Some(text)) => format!(": {code}: {text}"),
            (Some(code), None) => format!(": {code}"),
            (None, Some(text)) => format!(": {text}"),
            (None, None) => String::new(),
        };
        let verb = match self.status.as_str() {
            "Failed" => "failed".to_string(),
            "Disabled" => "is disabled".to_string(),
            "Cancelled" => "was cancelled".to_string(),
            other => format!("ended as `{other}`"),
        };
        Err(Error::new(
            ErrorKind::Remote,
            format!(
                "the Power BI refresh {} of dataset {dataset_id} {verb}{reason}",
                self.request_id
            ),
        )
        .with_context("request_id", &self.request_id)
        .with_context("dataset_id", dataset_id)
        .set_permanent())
    }
}

/// What pushing rows did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PushReport {
    /// Requests sent.
    pub chunks: usize,
    /// Rows sent.
    pub rows: usize,
}

/// A clone of a report: its name and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneReport {
    /// The new report's name.
    pub name: String,
    /// The workspace to clone into (`00000000-0000-0000-0000-000000000000` for My
    /// workspace); the report's own when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_workspace_id: Option<String>,
    /// The dataset the clone is bound to; the report's own when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_model_id: Option<String>,
}

/// The Power BI REST API, typed. Cheap to clone (the HTTP client and its token are shared).
#[derive(Debug, Clone)]
pub struct PowerBiClient {
    http: HttpClient,
    group_id: Option<String>,
    push_chunk_rows: usize,
    history_top: u32,
}

impl PowerBiClient {
    /// A client for `settings` (checked first). The first call fetches a token.
    pub fn new(settings: &PowerBiSettings) -> Result<Self> {
        settings.check()?;
        let credentials = ClientCredentials {
            token_url: settings.token_url()?,
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            scopes: vec![settings.scope.clone()],
            extra: Vec::new(),
            // As Microsoft's own libraries (MSAL) send them.
            client_auth: ClientAuthMethod::Body,
            refresh_margin: Duration::from_secs(300),
        };
        let auth = Arc::new(OAuth2ClientCredentials::new(
            credentials,
            token_client(&settings.http)?,
        ));
        let http = build_client(&settings.base_url, &settings.http, None, vec![auth])?;
        Ok(Self {
            http,
            group_id: settings.group_id.clone(),
            push_chunk_rows: settings.push_chunk_rows,
            history_top: settings.history_top,
        })
    }

    /// The HTTP client (base URL `…/v1.0/myorg/`).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The path prefix of a workspace: `groups/{id}/`, or none for My workspace (`me`, or
    /// no group here and in the settings).
    fn scope(&self, group: Option<&str>) -> Result<String> {
        match group.or(self.group_id.as_deref()) {
            None | Some(MY_WORKSPACE) => Ok(String::new()),
            Some(id) => Ok(format!("groups/{}/", segment("workspace", id)?)),
        }
    }

    async fn send(&self, request: Request, what: &str) -> Result<Response> {
        send_checked(&self.http, request, what, api_error).await
    }

    async fn list(&self, path: &str, what: &str) -> Result<Vec<Value>> {
        let request = self.http.request(Method::GET, path)?;
        let answer: Value = self.send(request, what).await?.json()?;
        match &answer["value"] {
            Value::Array(items) => Ok(items.clone()),
            _ => Err(Error::new(
                ErrorKind::CorruptData,
                format!(
                    "Power BI's answer when {what} has no `value` list: {}",
                    excerpt(answer.to_string().as_bytes())
                ),
            )),
        }
    }

    /// The datasets of a workspace (`GET [groups/{id}/]datasets`).
    pub async fn datasets(&self, group: Option<&str>) -> Result<Vec<Value>> {
        let path = format!("{}datasets", self.scope(group)?);
        self.list(&path, "listing datasets").await
    }

    /// The reports of a workspace (`GET [groups/{id}/]reports`).
    pub async fn reports(&self, group: Option<&str>) -> Result<Vec<Value>> {
        let path = format!("{}reports", self.scope(group)?);
        self.list(&path, "listing reports").await
    }

    /// The on-premises data gateways the caller administers (`GET gateways`).
    pub async fn gateways(&self) -> Result<Vec<Value>> {
        self.list("gateways", "listing gateways").await
    }

    /// A gateway's data sources (`GET gateways/{id}/datasources`).
    pub async fn gateway_datasources(&self, gateway_id: &str) -> Result<Vec<Value>> {
        let id = segment("gateway", gateway_id)?;
        self.list(
            &format!("gateways/{id}/datasources"),
            &format!("listing the data sources of gateway {id}"),
        )
        .await
    }

    /// Starts a refresh (`POST …/datasets/{id}/refreshes`, answered 202); the refresh as
    /// accepted, with its request id and `Location`.
    pub async fn start_refresh(
        &self,
        group: Option<&str>,
        dataset_id: &str,
        options: &RefreshOptions,
    ) -> Result<RefreshEntry> {
        let id = segment("dataset", dataset_id)?;
        let path = format!("{}datasets/{id}/refreshes", self.scope(group)?);
        let request = self
            .http
            .request(Method::POST, &path)?
            .path_template("datasets/{id}/refreshes")
            .json(options)?;
        let response = self
            .send(request, &format!("starting a refresh of dataset {id}"))
            .await
            .map_err(|e| e.with_context("dataset_id", id))?;
        let location = response.header("location").map(str::to_string);
        let request_id = response
            .header("x-ms-request-id")
            .map(str::to_string)
            .or_else(|| {
                location
                    .as_deref()
                    .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
                    .filter(|s| !s.is_empty() && *s != "refreshes")
                    .map(str::to_string)
            })
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::CorruptData,
                    format!(
                        "Power BI accepted the refresh of dataset {id} ({}) without an \
                         x-ms-request-id or a Location to follow it by",
                        response.status
                    ),
                )
            })?;
        Ok(RefreshEntry {
            request_id,
            status: "Accepted".into(),
            refresh_type: None,
            start_time: None,
            end_time: None,
            location,
            error_code: None,
            error_description: None,
        })
    }

    /// The latest `top` refreshes of a dataset, newest first (`GET …/refreshes?$top=`).
    pub async fn refresh_history(
        &self,
        group: Option<&str>,
        dataset_id: &str,
        top: Option<u32>,
    ) -> Result<Vec<RefreshEntry>> {
        let id = segment("dataset", dataset_id)?;
        let path = format!("{}datasets/{id}/refreshes", self.scope(group)?);
        let top = top.unwrap_or(self.history_top);
        let request = self
            .http
            .request(Method::GET, &path)?
            .query(&[("$top", top.to_string())])?
            .path_template("datasets/{id}/refreshes");
        let answer: Value = self
            .send(
                request,
                &format!("reading the refresh history of dataset {id}"),
            )
            .await?
            .json()?;
        Ok(answer["value"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(RefreshEntry::from_history)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Polls the refresh history until the refresh `request_id` has ended; the entry,
    /// whatever its outcome (see [`RefreshEntry::into_result`]).
    pub async fn wait_for_refresh(
        &self,
        ctx: &ActionContext,
        poll: &PollSettings,
        group: Option<&str>,
        dataset_id: &str,
        request_id: &str,
    ) -> Result<RefreshEntry> {
        poll_until(
            ctx,
            poll,
            &format!("the Power BI refresh {request_id} of dataset {dataset_id}"),
            || async {
                let history = self.refresh_history(group, dataset_id, None).await?;
                Ok(
                    match history.into_iter().find(|e| e.request_id == request_id) {
                        Some(entry) if entry.is_finished() => Poll::Ready(entry),
                        Some(entry) => Poll::Pending(entry.status),
                        None => Poll::Pending("not in the refresh history yet".into()),
                    },
                )
            },
        )
        .await
    }

    /// Pushes rows into a push dataset's table (`POST …/tables/{table}/rows`), at most
    /// `chunk_rows` (the `push_chunk_rows` setting when `None`; at most 10,000) a request,
    /// in order. A 429 is waited out by the retry layer; any other failure stops the push
    /// with an error saying how many rows went before it (`rows_sent`).
    pub async fn push_rows(
        &self,
        group: Option<&str>,
        dataset_id: &str,
        table: &str,
        rows: &[Map<String, Value>],
        chunk_rows: Option<usize>,
    ) -> Result<PushReport> {
        let id = segment("dataset", dataset_id)?;
        let chunk = chunk_rows.unwrap_or(self.push_chunk_rows);
        if !(1..=MAX_PUSH_ROWS).contains(&chunk) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("`chunk_rows` must be from 1 to {MAX_PUSH_ROWS}, not {chunk}"),
            ));
        }
        if table.trim().is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "the table needs a name",
            ));
        }
        let mut url = self
            .http
            .url(&format!("{}datasets/{id}/tables", self.scope(group)?))?;
        url.path_segments_mut()
            .map_err(|_| Error::new(ErrorKind::ConfigInvalid, "the base URL cannot take a path"))?
            .push(table)
            .push("rows");
        let mut report = PushReport { chunks: 0, rows: 0 };
        for batch in rows.chunks(chunk) {
            let request = Request::new(Method::POST, url.clone())
                .path_template("datasets/{id}/tables/{table}/rows")
                .json(&json!({ "rows": batch }))?;
            self.send(
                request,
                &format!(
                    "pushing rows {} to {} into table `{table}` of dataset {id}",
                    report.rows + 1,
                    report.rows + batch.len()
                ),
            )
            .await
            .map_err(|e| {
                e.with_context("rows_sent", report.rows)
                    .with_context("dataset_id", id)
                    .with_context("table", table)
            })?;
            report.chunks += 1;
            report.rows += batch.len();
        }
        Ok(report)
    }

    /// Clones a report (`POST …/reports/{id}/Clone`); the new report as Power BI
    /// describes it.
    pub async fn clone_report(
        &self,
        group: Option<&str>,
        report_id: &str,
        clone: &CloneReport,
    ) -> Result<Value> {
        let id = segment("report", report_id)?;
        if clone.name.trim().is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "the clone needs a name",
            ));
        }
        let path = format!("{}reports/{id}/Clone", self.scope(group)?);
        let request = self
            .http
            .request(Method::POST, &path)?
            .path_template("reports/{id}/Clone")
            .json(clone)?;
        self.send(request, &format!("cloning report {id}"))
            .await?
            .json()
    }

    /// Binds a report to another dataset (`POST …/reports/{id}/Rebind`).
    pub async fn rebind_report(
        &self,
        group: Option<&str>,
        report_id: &str,
        dataset_id: &str,
    ) -> Result<()> {
        let id = segment("report", report_id)?;
        let dataset = segment("dataset", dataset_id)?;
        let path = format!("{}reports/{id}/Rebind", self.scope(group)?);
        let request = self
            .http
            .request(Method::POST, &path)?
            .path_template("reports/{id}/Rebind")
            .json(&json!({ "datasetId": dataset }))?;
        self.send(
            request,
            &format!("rebinding report {id} to dataset {dataset}"),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_history_entry_carries_the_service_exception() {
        let entry = RefreshEntry::from_history(&json!({
            "requestId": "r1", "status": "Failed", "refreshType": "ViaApi",
            "serviceExceptionJson": "{\"errorCode\":\"ModelRefreshFailed\",\"errorDescription\":\"no creds\"}"
        }));
        let entry = entry.unwrap();
        assert!(entry.is_finished());
        assert_eq!(entry.error_code.as_deref(), Some("ModelRefreshFailed"));
        let err = entry.into_result("d1").unwrap_err().message().to_string();
        assert!(
            err.contains("failed: ModelRefreshFailed: no creds"),
            "{err}"
        );
    }

    #[test]
    fn enhanced_options_serialize_as_power_bi_names_them() {
        let options = RefreshOptions {
            refresh_type: Some("Full".into()),
            commit_mode: Some("transactional".into()),
            max_parallelism: Some(2),
            ..RefreshOptions::default()
        };
        let body = serde_json::to_value(&options).unwrap();
        assert_eq!(
            body,
            json!({"notifyOption": "NoNotification", "type": "Full",
                "commitMode": "transactional", "maxParallelism": 2})
        );
    }

    #[test]
    fn ids_that_would_change_the_path_are_refused() {
        assert!(segment("dataset", "cfafbeb1-8037-4d0c-896e-a46fb27ff229").is_ok());
        for bad in ["", "..", "a/b", "a?b"] {
            assert!(segment("dataset", bad).is_err(), "{bad}");
        }
    }
}
