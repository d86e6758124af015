//! [`TableauClient`]: the Tableau REST API calls, typed, over the shared HTTP stack, and
//! [`TableauSession`], the layer that signs in and puts `X-Tableau-Auth` on every call.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use kernelize_core::plugin::ActionContext;
use kernelize_core::{Blob, Error, ErrorKind, Result};
use rand::Rng;
use reqwest::Method;
use reqwest::header::HeaderValue;
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use super::config::TableauSettings;
use crate::http::{HttpClient, Layer, Next, Request, Response, excerpt};
use crate::saas::{Poll, PollSettings, build_client, id_segment, poll_until, send_checked};

/// The header that carries the session token.
pub const AUTH_HEADER: &str = "x-tableau-auth";

/// The data source file types Tableau publishes (`datasourceType`).
pub const DATASOURCE_TYPES: [&str; 4] = ["hyper", "tds", "tdsx", "tde"];

/// Who is signed in, where (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionInfo {
    /// The site's id (a LUID), which every site-scoped path names.
    pub site_id: String,
    /// The site's `contentUrl`.
    pub site_content_url: String,
    /// The signed-in user's id.
    pub user_id: String,
}

/// A signed-in session: the token and what it is for.
#[derive(Clone)]
struct Session {
    token: HeaderValue,
    info: SessionInfo,
    generation: u64,
}

/// The session layer: signs in with the personal access token on first use, puts
/// `X-Tableau-Auth` on every request, and signs in again once when a request answers 401
/// (Tableau's `401002` for an expired or revoked session), replaying that request with the
/// new token.
///
/// However many calls need a session at once, one sign-in goes out and the others wait for
/// it; a 401 seen by many calls replaces the session once.
pub struct TableauSession {
    signin_url: Url,
    signout_url: Url,
    token_name: String,
    token_secret: SecretString,
    site: String,
    state: tokio::sync::Mutex<Option<Session>>,
}

impl std::fmt::Debug for TableauSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableauSession")
            .field("signin_url", &self.signin_url.as_str())
            .field("token_name", &self.token_name)
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

impl TableauSession {
    /// A session layer for the API at `api` (`https://host/api/3.22/`).
    pub fn new(api: &Url, settings: &TableauSettings) -> Result<Self> {
        let join = |path: &str| {
            api.join(path).map_err(|e| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("bad API URL `{api}`: {e}"),
                )
            })
        };
        Ok(Self {
            signin_url: join("auth/signin")?,
            signout_url: join("auth/signout")?,
            token_name: settings.token_name.clone(),
            token_secret: settings.token_secret.clone(),
            site: settings.site.clone(),
            state: tokio::sync::Mutex::new(None),
        })
    }

    /// The sign-in request (`POST auth/signin` with the personal access token).
    fn signin_request(&self) -> Result<Request> {
        let body = json!({"credentials": {
            "personalAccessTokenName": self.token_name,
            "personalAccessTokenSecret": self.token_secret.expose_secret(),
            "site": {"contentUrl": self.site},
        }});
        Request::new(Method::POST, self.signin_url.clone())
            .header("accept", "application/json")?
            .json(&body)
    }

    /// The current session, signing in (through `send`) when there is none, or when the
    /// current one is of generation `stale` (a request made with it answered 401).
    async fn session_with<F, Fut>(&self, stale: Option<u64>, send: F) -> Result<Session>
    where
        F: FnOnce(Request) -> Fut,
        Fut: std::future::Future<Output = Result<Response>>,
    {
        let mut state = self.state.lock().await;
        if let Some(session) = state.as_ref()
            && stale != Some(session.generation)
        {
            return Ok(session.clone());
        }
        let generation = state.as_ref().map_or(1, |s| s.generation + 1);
        let response = send(self.signin_request()?).await?;
        let session = read_session(&response, generation)?;
        tracing::debug!(
            site = %session.info.site_content_url,
            generation,
            "signed in to Tableau"
        );
        *state = Some(session.clone());
        Ok(session)
    }

    /// The session, if signed in.
    async fn current(&self) -> Option<Session> {
        self.state.lock().await.clone()
    }

    /// Forgets the session of `generation` (after signing out).
    async fn forget(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state.as_ref().is_some_and(|s| s.generation == generation) {
            *state = None;
        }
    }
}

fn read_session(response: &Response, generation: u64) -> Result<Session> {
    if !response.is_success() {
        return Err(api_error(response, "signing in"));
    }
    let answer: Value = response.json()?;
    let credentials = &answer["credentials"];
    let field = |pointer: &str| {
        credentials
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::CorruptData,
                    format!("Tableau's sign-in answer has no `credentials{pointer}`"),
                )
            })
    };
    let mut token = HeaderValue::from_str(&field("/token")?).map_err(|_| {
        Error::new(
            ErrorKind::CorruptData,
            "Tableau's sign-in answer holds a token that is not a valid header value",
        )
    })?;
    token.set_sensitive(true);
    Ok(Session {
        token,
        info: SessionInfo {
            site_id: field("/site/id")?,
            site_content_url: credentials
                .pointer("/site/contentUrl")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            user_id: field("/user/id")?,
        },
        generation,
    })
}

fn with_token(mut request: Request, session: &Session) -> Request {
    request.headers.insert(AUTH_HEADER, session.token.clone());
    request
}

/// Points a request made for site `old` at site `new` (a new session may be on a site with
/// another id only if the site was re-created; the path follows it).
fn move_to_site(request: &mut Request, old: &str, new: &str) {
    if old == new {
        return;
    }
    let from = format!("/sites/{old}/");
    let path = request.url.path().to_string();
    if path.contains(&from) {
        let moved = path.replacen(&from, &format!("/sites/{new}/"), 1);
        request.url.set_path(&moved);
    }
}

#[async_trait]
impl Layer for TableauSession {
    fn name(&self) -> &'static str {
        "tableau-session"
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response> {
        if request.url == self.signin_url {
            return next.run(request).await;
        }
        let session = self.session_with(None, |r| next.run(r)).await?;
        let response = next.run(with_token(request.clone(), &session)).await?;
        if response.status.as_u16() != 401 || request.url == self.signout_url {
            return Ok(response);
        }
        tracing::debug!(
            request = %request.describe(),
            "Tableau answered 401 (session expired?); signing in again"
        );
        let fresh = self
            .session_with(Some(session.generation), |r| next.run(r))
            .await?;
        let mut replay = request;
        move_to_site(&mut replay, &session.info.site_id, &fresh.info.site_id);
        next.run(with_token(replay, &fresh)).await
    }
}

/// A Tableau error answer as an [`Error`]: the status, Tableau's code, summary and detail
/// (from a JSON `{"error": {...}}` or an XML `<error>` body), and a kind by status.
pub fn api_error(response: &Response, what: &str) -> Error {
    let status = response.status.as_u16();
    let (code, summary, detail) = error_fields(&response.body);
    let kind = match (status, code.as_deref()) {
        (_, Some("409093")) | (409, _) => ErrorKind::InvalidState,
        (401 | 403, _) => ErrorKind::PermissionDenied,
        (404, _) => ErrorKind::NotFound,
        (429, _) => ErrorKind::RateLimited,
        (400 | 405..=422, _) => ErrorKind::InvalidInput,
        _ => ErrorKind::Remote,
    };
    let mut text = String::new();
    if let Some(summary) = &summary {
        text.push_str(summary);
    }
    if let Some(detail) = &detail {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(detail);
    }
    if text.is_empty() {
        text = excerpt(&response.body);
    }
    let mut message = format!("Tableau answered {} when {what}: {text}", response.status);
    if let Some(code) = &code {
        message.push_str(&format!(" (error {code})"));
    }
    if code.as_deref() == Some("409093") {
        message.push_str(
            " — an extract refresh of this data source is already queued or running; wait for it",
        );
    }
    let mut error = Error::new(kind, message).with_status(status);
    if let Some(code) = code {
        error = error.with_context("tableau_code", code);
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

fn error_fields(body: &[u8]) -> (Option<String>, Option<String>, Option<String>) {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let error = &value["error"];
        return (
            text(&error["code"]),
            text(&error["summary"]),
            text(&error["detail"]),
        );
    }
    // A server asked for JSON may still answer XML from a proxy or an old endpoint.
    let xml = String::from_utf8_lossy(body);
    let code = xml.find("code=\"").and_then(|i| {
        let rest = &xml[i + 6..];
        rest.find('"').map(|end| rest[..end].to_string())
    });
    let element = |tag: &str| {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let start = xml.find(&open)? + open.len();
        let end = xml[start..].find(&close)? + start;
        Some(xml[start..end].trim().to_string())
    };
    (code, element("summary"), element("detail"))
}

/// A JSON string or number as text (Tableau's JSON carries numbers as strings).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn number(value: &Value) -> Option<i64> {
    text(value).and_then(|t| t.trim().parse().ok())
}

/// An id as a path segment ([`id_segment`]); anything that could change the path is refused.
fn segment<'a>(what: &str, id: &'a str) -> Result<&'a str> {
    id_segment("Tableau", what, id)
}

/// A Tableau background job (an extract refresh, a publish run as a job).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Job {
    /// The job's id.
    pub id: String,
    /// Its type (`RefreshExtract`, `PublishDatasource`).
    pub job_type: Option<String>,
    /// `Asynchronous`.
    pub mode: Option<String>,
    /// Progress in percent, when reported.
    pub progress: Option<i64>,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
    /// When it started.
    pub started_at: Option<String>,
    /// When it finished.
    pub completed_at: Option<String>,
    /// How it finished: 0 success, 1 failed, 2 cancelled; absent while it runs.
    pub finish_code: Option<i64>,
    /// `InProgress`, `Success`, `Failed`, `Cancelled`, derived from `finish_code`.
    pub status: String,
    /// Tableau's notes (the reason of a failure).
    pub notes: Option<String>,
    /// The data source the job is about, when the answer names it.
    pub datasource_id: Option<String>,
}

impl Job {
    fn from_answer(answer: &Value) -> Result<Self> {
        let job = &answer["job"];
        let id = text(&job["id"]).ok_or_else(|| {
            Error::new(
                ErrorKind::CorruptData,
                format!(
                    "Tableau's answer has no job id: {}",
                    excerpt(answer.to_string().as_bytes())
                ),
            )
        })?;
        let finish_code = number(&job["finishCode"]).filter(|c| *c >= 0);
        let status = match finish_code {
            None => "InProgress",
            Some(0 | 3) => "Success",
            Some(1) => "Failed",
            Some(2) => "Cancelled",
            Some(_) => "Unknown",
        }
        .to_string();
        let notes = text(&job["extractRefreshJob"]["notes"])
            .or_else(|| text(&job["notes"]))
            .or_else(|| {
                job.pointer("/statusNotes/statusNote")
                    .and_then(|n| match n {
                        Value::Array(items) => items.first(),
                        other => Some(other),
                    })
                    .and_then(|n| text(&n["text"]).or_else(|| text(&n["value"])))
            });
        Ok(Self {
            id,
            job_type: text(&job["type"]),
            mode: text(&job["mode"]),
            progress: number(&job["progress"]),
            created_at: text(&job["createdAt"]),
            started_at: text(&job["startedAt"]),
            completed_at: text(&job["completedAt"]),
            finish_code,
            status,
            notes,
            datasource_id: text(&job["extractRefreshJob"]["datasource"]["id"])
                .or_else(|| text(&job["datasource"]["id"])),
        })
    }

    /// Whether the job has finished (whatever the outcome).
    pub fn is_finished(&self) -> bool {
        self.finish_code.is_some()
    }

    /// `Ok(self)` for a job that succeeded; an error naming the job and Tableau's notes for
    /// one that failed or was cancelled.
    pub fn into_result(self) -> Result<Self> {
        let what = format!(
            "Tableau job {} ({})",
            self.id,
            self.job_type.as_deref().unwrap_or("job")
        );
        let notes = self
            .notes
            .as_deref()
            .map(|n| format!(": {n}"))
            .unwrap_or_default();
        match self.finish_code {
            Some(0 | 3) | None => Ok(self),
            Some(1) => Err(
                Error::new(ErrorKind::Remote, format!("{what} failed{notes}"))
                    .with_context("job_id", &self.id)
                    .set_permanent(),
            ),
            Some(2) => Err(
                Error::new(ErrorKind::Remote, format!("{what} was cancelled{notes}"))
                    .with_context("job_id", &self.id)
                    .set_permanent(),
            ),
            Some(code) => Err(Error::new(
                ErrorKind::Remote,
                format!("{what} finished with the unknown finishCode {code}{notes}"),
            )
            .with_context("job_id", &self.id)),
        }
    }
}

/// How a published data source meets one of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PublishMode {
    /// Fail when one exists (`overwrite=false`).
    #[default]
    CreateNew,
    /// Replace it (`overwrite=true`).
    Overwrite,
    /// Append the extract's rows to it (`append=true`; `.hyper` and `.tde` only).
    Append,
}

/// What to publish a data source as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOptions {
    /// The data source's name.
    pub name: String,
    /// The project to publish into.
    pub project_id: String,
    /// A description.
    pub description: Option<String>,
    /// `hyper`, `tds`, `tdsx` or `tde`; the file name's extension when `None`.
    pub datasource_type: Option<String>,
    /// Create, overwrite or append.
    pub mode: PublishMode,
    /// Ask Tableau to publish as a background job (`asJob=true`): the answer is a job.
    pub as_job: bool,
}

/// The file of a data source to publish.
#[derive(Debug, Clone)]
pub enum DatasourceFile {
    /// Bytes in memory.
    Bytes {
        /// The file's content.
        data: Bytes,
        /// Its name (`sales.hyper`), as Tableau sees it.
        file_name: String,
    },
    /// A file on disk, read a chunk at a time.
    Path {
        /// The file.
        path: PathBuf,
        /// The name Tableau sees (the path's file name by default).
        file_name: String,
    },
}

impl DatasourceFile {
    fn file_name(&self) -> &str {
        match self {
            DatasourceFile::Bytes { file_name, .. } | DatasourceFile::Path { file_name, .. } => {
                file_name
            }
        }
    }

    async fn size(&self) -> Result<u64> {
        match self {
            DatasourceFile::Bytes { data, .. } => Ok(data.len() as u64),
            DatasourceFile::Path { path, .. } => tokio::fs::metadata(path)
                .await
                .map(|m| m.len())
                .map_err(|e| file_error(path, e)),
        }
    }

    /// `len` bytes from `offset`.
    async fn read(&self, offset: u64, len: u64) -> Result<Bytes> {
        match self {
            DatasourceFile::Bytes { data, .. } => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let end = usize::try_from(offset.saturating_add(len))
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                Ok(data.slice(start..end))
            }
            DatasourceFile::Path { path, .. } => {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                let mut file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| file_error(path, e))?;
                file.seek(std::io::SeekFrom::Start(offset))
                    .await
                    .map_err(|e| file_error(path, e))?;
                let mut buffer = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
                file.take(len)
                    .read_to_end(&mut buffer)
                    .await
                    .map_err(|e| file_error(path, e))?;
                if (buffer.len() as u64) < len {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!("`{}` got shorter while it was being read", path.display()),
                    ));
                }
                Ok(Bytes::from(buffer))
            }
        }
    }
}

fn file_error(path: &std::path::Path, e: std::io::Error) -> Error {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        _ => ErrorKind::InvalidInput,
    };
    Error::new(kind, format!("cannot read `{}`: {e}", path.display()))
}

/// What publishing did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PublishOutcome {
    /// The data source as Tableau describes it (when not published as a job).
    pub datasource: Option<Value>,
    /// The job (when published with `asJob`).
    pub job: Option<Job>,
    /// The file's size in bytes.
    pub bytes: u64,
    /// How many chunks went through a file upload (0 when sent in one request).
    pub chunks: u64,
    /// The file upload session, when chunked.
    pub upload_session_id: Option<String>,
}

/// Which items to list and how many.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Tableau's `filter` expression (`name:eq:Sales`).
    pub filter: Option<String>,
    /// Tableau's `sort` expression (`updatedAt:desc`).
    pub sort: Option<String>,
    /// The most items to return; all of them (up to the `max_items` setting) when `None`.
    pub limit: Option<usize>,
}

/// How to render a view as an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageOptions {
    /// Ask for the high resolution (`resolution=high`).
    pub high_resolution: bool,
    /// Accept a cached image at most this many minutes old (`maxAge`).
    pub max_age_minutes: Option<u32>,
    /// View filters: field name to value, sent as `vf_<field>=value`.
    pub filters: Vec<(String, String)>,
}

/// The Tableau REST API, typed. Cheap to clone (the HTTP client and the session are
/// shared).
#[derive(Debug, Clone)]
pub struct TableauClient {
    http: HttpClient,
    session: Arc<TableauSession>,
    chunk_threshold: u64,
    chunk_size: u64,
    page_size: u32,
    max_items: usize,
    api_version: (u32, u32),
}

impl TableauClient {
    /// A client for `settings` (checked first). Nothing is sent until the first call.
    pub fn new(settings: &TableauSettings) -> Result<Self> {
        settings.check()?;
        let api = settings.api_url()?;
        let session = Arc::new(TableauSession::new(&api, settings)?);
        let http = build_client(api.as_str(), &settings.http, None, vec![session.clone()])?;
        let mut version = settings
            .api_version
            .split('.')
            .map(|p| p.parse().unwrap_or(0));
        Ok(Self {
            http,
            session,
            chunk_threshold: settings.chunk_threshold,
            chunk_size: settings.chunk_size,
            page_size: settings.page_size,
            max_items: settings.max_items,
            api_version: (version.next().unwrap_or(0), version.next().unwrap_or(0)),
        })
    }

    /// The HTTP client (base URL `{base_url}/api/{version}/`).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Signs in (unless signed in already; with `fresh`, always) and says where.
    pub async fn sign_in(&self, fresh: bool) -> Result<SessionInfo> {
        let stale = match (fresh, self.session.current().await) {
            (true, Some(current)) => Some(current.generation),
            _ => None,
        };
        let session = self
            .session
            .session_with(stale, |r| self.http.send(r))
            .await?;
        Ok(session.info)
    }

    /// Signs out (`POST auth/signout`); `false` when there was no session. A session the
    /// server already dropped (401) counts as signed out.
    pub async fn sign_out(&self) -> Result<bool> {
        let Some(session) = self.session.current().await else {
            return Ok(false);
        };
        let request = self.request(Method::POST, "auth/signout")?;
        let response = self.http.send(request).await?;
        self.session.forget(session.generation).await;
        if response.is_success() || response.status.as_u16() == 401 {
            return Ok(true);
        }
        Err(api_error(&response, "signing out"))
    }

    async fn site(&self) -> Result<String> {
        Ok(self.sign_in(false).await?.site_id)
    }

    fn request(&self, method: Method, path: &str) -> Result<Request> {
        self.http
            .request(method, path)?
            .header("accept", "application/json")
    }

    async fn send(&self, request: Request, what: &str) -> Result<Response> {
        send_checked(&self.http, request, what, api_error).await
    }

    async fn send_json(&self, request: Request, what: &str) -> Result<Value> {
        let response = self.send(request, what).await?;
        if response.body.is_empty() {
            return Ok(Value::Null);
        }
        response.json()
    }

    /// Publishes a data source: in one `multipart/mixed` request up to the
    /// `chunk_threshold`, else through a file upload in `chunk_size` chunks.
    pub async fn publish_datasource(
        &self,
        file: &DatasourceFile,
        options: &PublishOptions,
    ) -> Result<PublishOutcome> {
        let file_name = clean_file_name(file.file_name())?;
        let kind = datasource_type(options.datasource_type.as_deref(), &file_name)?;
        if options.mode == PublishMode::Append && !matches!(kind.as_str(), "hyper" | "tde") {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("Tableau appends only .hyper and .tde extracts, not `{kind}`"),
            ));
        }
        if options.name.trim().is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "the data source needs a name",
            ));
        }
        let project = segment("project", &options.project_id)?;
        let size = file.size().await?;
        if size == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("the file `{file_name}` is empty"),
            ));
        }
        let site = self.site().await?;
        let payload = publish_payload(options, project);
        let mut query: Vec<(&str, String)> = vec![("datasourceType", kind.clone())];
        match options.mode {
            PublishMode::CreateNew => query.push(("overwrite", "false".into())),
            PublishMode::Overwrite => query.push(("overwrite", "true".into())),
            PublishMode::Append => query.push(("append", "true".into())),
        }
        if options.as_job {
            query.push(("asJob", "true".into()));
        }
        let (body, content_type, chunks, upload) = if size <= self.chunk_threshold {
            let data = file.read(0, size).await?;
            let (body, content_type) = multipart_mixed(&[
                MixedPart::text("request_payload", "text/xml", payload.as_bytes()),
                MixedPart::file("tableau_datasource", &file_name, &data),
            ]);
            (body, content_type, 0, None)
        } else {
            let upload = self.upload(&site, file, &file_name, size).await?;
            query.push(("uploadSessionId", upload.0.clone()));
            let (body, content_type) = multipart_mixed(&[MixedPart::text(
                "request_payload",
                "text/xml",
                payload.as_bytes(),
            )]);
            (body, content_type, upload.1, Some(upload.0))
        };
        let request = self
            .request(Method::POST, &format!("sites/{site}/datasources"))?
            .query(&query)?
            .path_template("sites/{site}/datasources")
            .bytes(body, &content_type);
        let answer = self
            .send_json(
                request,
                &format!("publishing data source `{}`", options.name),
            )
            .await?;
        let (datasource, job) = if answer.get("job").is_some() {
            (None, Some(Job::from_answer(&answer)?))
        } else {
            let datasource = answer.get("datasource").cloned().ok_or_else(|| {
                Error::new(
                    ErrorKind::CorruptData,
                    format!(
                        "Tableau's publish answer has neither a datasource nor a job: {}",
                        excerpt(answer.to_string().as_bytes())
                    ),
                )
            })?;
            (Some(datasource), None)
        };
        Ok(PublishOutcome {
            datasource,
            job,
            bytes: size,
            chunks,
            upload_session_id: upload,
        })
    }

    /// Uploads `file` in chunks; the upload session's id and the number of chunks.
    async fn upload(
        &self,
        site: &str,
        file: &DatasourceFile,
        file_name: &str,
        size: u64,
    ) -> Result<(String, u64)> {
        let request = self
            .request(Method::POST, &format!("sites/{site}/fileUploads"))?
            .path_template("sites/{site}/fileUploads");
        let answer = self.send_json(request, "starting a file upload").await?;
        let id = text(&answer["fileUpload"]["uploadSessionId"]).ok_or_else(|| {
            Error::new(
                ErrorKind::CorruptData,
                "Tableau's file upload answer has no uploadSessionId",
            )
        })?;
        let session = segment("upload session", &id)?.to_string();
        let chunks = size.div_ceil(self.chunk_size);
        for n in 0..chunks {
            let offset = n * self.chunk_size;
            let data = file
                .read(offset, self.chunk_size.min(size - offset))
                .await?;
            let (body, content_type) = multipart_mixed(&[
                MixedPart::text("request_payload", "text/xml", b""),
                MixedPart::file("tableau_file", file_name, &data),
            ]);
            let request = self
                .request(Method::PUT, &format!("sites/{site}/fileUploads/{session}"))?
                .path_template("sites/{site}/fileUploads/{id}")
                .bytes(body, &content_type)
                // Tableau appends whatever arrives, so a chunk sent twice would corrupt the
                // file: the retry layer resends it only after a refusal (429).
                .send_once();
            self.send_json(
                request,
                &format!("uploading chunk {} of {chunks} of `{file_name}`", n + 1),
            )
            .await
            .map_err(|e| e.with_context("upload_session_id", &session))?;
        }
        Ok((session, chunks))
    }

    /// Starts an extract refresh of a data source (`POST .../datasources/{id}/refresh`);
    /// the job it started. `incremental` needs API 3.25 or later.
    pub async fn refresh_extract(&self, datasource_id: &str, incremental: bool) -> Result<Job> {
        let id = segment("data source", datasource_id)?;
        if incremental && self.api_version < (3, 25) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "an incremental refresh needs `api_version` 3.25 or later",
            ));
        }
        let body = if incremental {
            json!({"extractRefresh": {"incremental": true}})
        } else {
            json!({})
        };
        let site = self.site().await?;
        let request = self
            .request(
                Method::POST,
                &format!("sites/{site}/datasources/{id}/refresh"),
            )?
            .path_template("sites/{site}/datasources/{id}/refresh")
            .json(&body)?;
        let answer = self
            .send_json(request, &format!("refreshing data source {id}"))
            .await
            .map_err(|e| e.with_context("datasource_id", id))?;
        Job::from_answer(&answer)
    }

    /// A job's state (`GET .../jobs/{id}`).
    pub async fn job(&self, job_id: &str) -> Result<Job> {
        let id = segment("job", job_id)?;
        let site = self.site().await?;
        let request = self
            .request(Method::GET, &format!("sites/{site}/jobs/{id}"))?
            .path_template("sites/{site}/jobs/{id}");
        let answer = self
            .send_json(request, &format!("reading job {id}"))
            .await?;
        Job::from_answer(&answer)
    }

    /// Polls a job until it has a `finishCode`; the finished job, whatever its outcome
    /// (see [`Job::into_result`]).
    pub async fn wait_for_job(
        &self,
        ctx: &ActionContext,
        poll: &PollSettings,
        job_id: &str,
    ) -> Result<Job> {
        poll_until(ctx, poll, &format!("Tableau job {job_id}"), || async {
            let job = self.job(job_id).await?;
            Ok(if job.is_finished() {
                Poll::Ready(job)
            } else {
                Poll::Pending(match job.progress {
                    Some(p) => format!("{} at {p}%", job.status),
                    None => job.status.clone(),
                })
            })
        })
        .await
    }

    /// The site's workbooks, every page.
    pub async fn workbooks(&self, query: &ListQuery) -> Result<Vec<Value>> {
        let site = self.site().await?;
        self.collect(
            &format!("sites/{site}/workbooks"),
            "workbooks",
            "workbook",
            query,
        )
        .await
    }

    /// The site's views, every page; or one workbook's views (a single answer).
    pub async fn views(&self, workbook_id: Option<&str>, query: &ListQuery) -> Result<Vec<Value>> {
        let site = self.site().await?;
        match workbook_id {
            None => {
                self.collect(&format!("sites/{site}/views"), "views", "view", query)
                    .await
            }
            Some(workbook) => {
                let id = segment("workbook", workbook)?;
                let request = self
                    .request(Method::GET, &format!("sites/{site}/workbooks/{id}/views"))?
                    .path_template("sites/{site}/workbooks/{id}/views");
                let answer = self
                    .send_json(request, &format!("listing the views of workbook {id}"))
                    .await?;
                let mut items = items_of(&answer, "views", "view");
                if let Some(limit) = query.limit {
                    items.truncate(limit);
                }
                Ok(items)
            }
        }
    }

    /// Follows `pageNumber` until `totalAvailable` items are in (or the limit).
    async fn collect(
        &self,
        path: &str,
        plural: &str,
        singular: &str,
        query: &ListQuery,
    ) -> Result<Vec<Value>> {
        let limit = query.limit.unwrap_or(self.max_items);
        if limit > self.max_items {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "`limit` {limit} is more than the `max_items` setting ({})",
                    self.max_items
                ),
            ));
        }
        let page_size = self.page_size as usize;
        let max_pages = limit.div_ceil(page_size) + 1;
        let mut items: Vec<Value> = Vec::new();
        for page in 1..=max_pages {
            let mut params: Vec<(&str, String)> = vec![
                ("pageSize", page_size.to_string()),
                ("pageNumber", page.to_string()),
            ];
            if let Some(filter) = &query.filter {
                params.push(("filter", filter.clone()));
            }
            if let Some(sort) = &query.sort {
                params.push(("sort", sort.clone()));
            }
            let request = self
                .request(Method::GET, path)?
                .query(&params)?
                .path_template(&format!("sites/{{site}}/{plural}"));
            let answer = self
                .send_json(request, &format!("listing {plural} (page {page})"))
                .await?;
            let total = answer
                .pointer("/pagination/totalAvailable")
                .and_then(number)
                .and_then(|t| usize::try_from(t).ok());
            if page == 1
                && query.limit.is_none()
                && let Some(total) = total
                && total > self.max_items
            {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the site has {total} {plural}, more than the `max_items` setting ({}); \
                         narrow the list with `filter` or give a `limit`",
                        self.max_items
                    ),
                ));
            }
            let batch = items_of(&answer, plural, singular);
            let empty = batch.is_empty();
            items.extend(batch);
            if items.len() >= limit {
                items.truncate(limit);
                return Ok(items);
            }
            if empty || total.is_none_or(|t| items.len() >= t) {
                return Ok(items);
            }
        }
        Ok(items)
    }

    /// Renders a view as a PNG (`GET .../views/{id}/image`).
    pub async fn view_image(&self, view_id: &str, options: &ImageOptions) -> Result<Blob> {
        let id = segment("view", view_id)?;
        let mut params: Vec<(String, String)> = Vec::new();
        if options.high_resolution {
            params.push(("resolution".into(), "high".into()));
        }
        if let Some(age) = options.max_age_minutes {
            if age == 0 {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "`max_age_minutes` must be at least 1",
                ));
            }
            params.push(("maxAge".into(), age.to_string()));
        }
        for (field, value) in &options.filters {
            if field.trim().is_empty() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "a view filter needs a field name",
                ));
            }
            params.push((format!("vf_{field}"), value.clone()));
        }
        let site = self.site().await?;
        let request = self
            .http
            .request(Method::GET, &format!("sites/{site}/views/{id}/image"))?
            .header("accept", "image/png")?
            .query(&params)?
            .path_template("sites/{site}/views/{id}/image");
        let response = self.send(request, &format!("rendering view {id}")).await?;
        let media = response
            .header("content-type")
            .unwrap_or("image/png")
            .to_string();
        if !media.starts_with("image/") {
            return Err(Error::new(
                ErrorKind::CorruptData,
                format!("Tableau answered the image of view {id} with `{media}`, not an image"),
            ));
        }
        Ok(Blob::new(response.body, media))
    }
}

/// The items of a list answer: `{plural: {singular: [...]}}` (one item may come bare).
fn items_of(answer: &Value, plural: &str, singular: &str) -> Vec<Value> {
    match &answer[plural][singular] {
        Value::Array(items) => items.clone(),
        Value::Object(_) => vec![answer[plural][singular].clone()],
        _ => Vec::new(),
    }
}

fn datasource_type(given: Option<&str>, file_name: &str) -> Result<String> {
    let kind = match given {
        Some(kind) => kind.to_ascii_lowercase(),
        None => file_name
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .unwrap_or_default(),
    };
    if DATASOURCE_TYPES.contains(&kind.as_str()) {
        Ok(kind)
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "`{file_name}`: the data source type must be one of hyper, tds, tdsx, tde \
                 (given, or the file's extension), not `{kind}`"
            ),
        ))
    }
}

/// A file name safe in a `Content-Disposition` header.
fn clean_file_name(name: &str) -> Result<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name).trim();
    if base.is_empty() {
        return Err(Error::new(ErrorKind::InvalidInput, "the file needs a name"));
    }
    Ok(base
        .chars()
        .map(|c| if c == '"' || c.is_control() { '_' } else { c })
        .collect())
}

/// XML text escaped for an attribute value.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push_str(&format!("&#{};", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The `tsRequest` of a publish call (the `request_payload` part is XML, as Tableau
/// documents it, whatever the format of the answers).
fn publish_payload(options: &PublishOptions, project_id: &str) -> String {
    let description = options
        .description
        .as_deref()
        .map(|d| format!(" description=\"{}\"", xml_escape(d)))
        .unwrap_or_default();
    format!(
        "<tsRequest><datasource name=\"{}\"{description}><project id=\"{}\"/></datasource></tsRequest>",
        xml_escape(&options.name),
        xml_escape(project_id)
    )
}

/// One part of a `multipart/mixed` body.
struct MixedPart<'a> {
    name: &'a str,
    file_name: Option<&'a str>,
    content_type: &'a str,
    data: &'a [u8],
}

impl<'a> MixedPart<'a> {
    fn text(name: &'a str, content_type: &'a str, data: &'a [u8]) -> Self {
        Self {
            name,
            file_name: None,
            content_type,
            data,
        }
    }

    fn file(name: &'a str, file_name: &'a str, data: &'a [u8]) -> Self {
        Self {
            name,
            file_name: Some(file_name),
            content_type: "application/octet-stream",
            data,
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A `multipart/mixed` body (RFC 2046) with a random boundary that none of the parts
/// contains, and its `Content-Type`. Each part has a `Content-Disposition` with its name
/// (and file name) and a `Content-Type`, as Tableau's publishing calls expect.
fn multipart_mixed(parts: &[MixedPart<'_>]) -> (Bytes, String) {
    let mut boundary;
    loop {
        boundary = format!("kernelize-{:032x}", rand::rng().random::<u128>());
        if !parts.iter().any(|p| contains(p.data, boundary.as_bytes())) {
            break;
        }
    }
    let size: usize = parts.iter().map(|p| p.data.len() + 200).sum();
    let mut body = Vec::with_capacity(size + boundary.len() + 8);
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
        if let Some(file_name) = part.file_name {
            disposition.push_str(&format!("; filename=\"{file_name}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(
            format!("\r\nContent-Type: {}\r\n\r\n", part.content_type).as_bytes(),
        );
        body.extend_from_slice(part.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (
        Bytes::from(body),
        format!("multipart/mixed; boundary={boundary}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mixed_body_has_named_parts_and_a_closing_boundary() {
        let (body, content_type) = multipart_mixed(&[
            MixedPart::text("request_payload", "text/xml", b"<tsRequest/>"),
            MixedPart::file("tableau_datasource", "a.hyper", b"\x00\x01"),
        ]);
        let boundary = content_type
            .strip_prefix("multipart/mixed; boundary=")
            .unwrap_or_default()
            .to_string();
        assert!(!boundary.is_empty());
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains(
            "name=\"request_payload\"\r\nContent-Type: text/xml\r\n\r\n<tsRequest/>\r\n"
        ));
        assert!(text.contains("name=\"tableau_datasource\"; filename=\"a.hyper\""));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }

    #[test]
    fn the_payload_escapes_names() {
        let options = PublishOptions {
            name: "Q1 <\"Sales\"> & more".into(),
            project_id: "p1".into(),
            description: None,
            datasource_type: None,
            mode: PublishMode::CreateNew,
            as_job: false,
        };
        assert_eq!(
            publish_payload(&options, "p1"),
            "<tsRequest><datasource name=\"Q1 &lt;&quot;Sales&quot;&gt; &amp; more\"><project id=\"p1\"/></datasource></tsRequest>"
        );
    }

    #[test]
    fn types_come_from_the_extension_and_are_checked() {
        assert_eq!(
            datasource_type(None, "sales.HYPER").ok().as_deref(),
            Some("hyper")
        );
        assert_eq!(
            datasource_type(Some("tdsx"), "x.bin").ok().as_deref(),
            Some("tdsx")
        );
        assert!(datasource_type(None, "sales.csv").is_err());
    }

    #[test]
    fn ids_that_would_change_the_path_are_refused() {
        assert!(segment("view", "a1-b2_c3").is_ok());
        for bad in ["", "..", "a/b", "a?b", "a b"] {
            assert!(segment("view", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_bodies_are_read_as_json_or_xml() {
        let (code, summary, detail) =
            error_fields(br#"{"error":{"code":"409093","summary":"Conflict","detail":"queued"}}"#);
        assert_eq!(code.as_deref(), Some("409093"));
        assert_eq!(summary.as_deref(), Some("Conflict"));
        assert_eq!(detail.as_deref(), Some("queued"));
        let (code, summary, _) = error_fields(
            br#"<tsResponse><error code="401001"><summary>Signin Error</summary><detail>x</detail></error></tsResponse>"#,
        );
        assert_eq!(code.as_deref(), Some("401001"));
        assert_eq!(summary.as_deref(), Some("Signin Error"));
    }

    #[test]
    fn finish_codes_become_outcomes() {
        let job = |code: &str| {
            Job::from_answer(
                &json!({"job": {"id": "j1", "type": "RefreshExtract", "finishCode": code,
                "extractRefreshJob": {"notes": "db down"}}}),
            )
        };
        assert!(job("0").and_then(Job::into_result).is_ok());
        let failed = job("1")
            .and_then(Job::into_result)
            .err()
            .map(|e| e.message().to_string());
        assert!(failed.unwrap_or_default().contains("failed: db down"));
        let running = Job::from_answer(&json!({"job": {"id": "j1", "progress": "40"}}));
        assert!(running.is_ok_and(|j| !j.is_finished() && j.progress == Some(40)));
    }
}
