//! The fake of the Tableau REST API (Tableau Server and Tableau Cloud), speaking JSON
//! (`Accept: application/json`), as the REST API offers beside XML.
//!
//! Written from the documented API (see the project's API facts, section 4): sign-in with a
//! personal access token, `X-Tableau-Auth` on every later call, publishing data sources as
//! `multipart/mixed` (in one request, or through a file-upload session in chunks),
//! extract-refresh jobs that finish after a few polls, paged workbooks and views, view
//! images, and the `{"error": {"code", "summary", "detail"}}` error body.
//!
//! ## Valid credentials (the default [`Config`])
//!
//! | what | value |
//! |------|-------|
//! | personal access token name | `fake-pat` |
//! | personal access token secret | `fake-pat-secret` |
//! | site `contentUrl` | `kernelize` |
//! | site id | [`SITE_ID`] |
//! | project id (publishing) | [`PROJECT_ID`] |
//! | a data source with an extract to refresh | [`DATASOURCE_ID`] |
//!
//! The first session token is `fake-token`; later sign-ins get `fake-token-2`, `-3`, ...
//! Paths are `/api/{version}/...` for any version.
//!
//! ## What it checks
//!
//! - `Accept: application/json` on every call but the view image (a server asked for XML
//!   would answer XML; this fake speaks JSON only and answers 406 instead);
//!   `Content-Type: application/json` on JSON bodies.
//! - The token in `X-Tableau-Auth` (401, code `401002`, when missing, unknown, signed out
//!   or expired); the PAT name, secret and site (401, code `401001`).
//! - Publishing: `multipart/mixed` with a `boundary`; a `request_payload` part (`text/xml`,
//!   a `tsRequest` with a `datasource name` and a `project id`) and a `tableau_datasource`
//!   part with a `filename` whose extension is the `datasourceType`; or, with
//!   `uploadSessionId`, the `request_payload` part alone. Appends to an upload session carry
//!   `request_payload` (empty) and `tableau_file` parts. What was published (the file
//!   reassembled from its chunks) is kept in [`Config::published`].
//! - Paging: `pageSize` 1 to 1000 (400, `400006`) and `pageNumber` from 1 (400, `400007`).
//!
//! ## Not confirmed by the documentation (knobs)
//!
//! - The status of a refresh request, 200 or 202: [`Config::refresh_status`].
//! - Rate limiting: Tableau documents none. [`Config::rate_limit_times`] answers the first
//!   calls 429, with `Retry-After` when [`Config::rate_limit_retry_after`] is set.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::{Fake, Journal, MAX_BODY, Times, json, serve};

/// The fake site's id (the default site `contentUrl` is `kernelize`).
pub const SITE_ID: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
/// The signed-in user's id.
pub const USER_ID: &str = "1f2e3d4c-5b6a-4978-8a6b-5c4d3e2f1a0b";
/// The one project data sources can be published to.
pub const PROJECT_ID: &str = "3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a9f";
/// A data source with an extract, ready to be refreshed.
pub const DATASOURCE_ID: &str = "7d6c5b4a-3e2f-4a1b-9c8d-7e6f5a4b3c2d";
/// The data source types Tableau publishes.
pub const DATASOURCE_TYPES: [&str; 4] = ["hyper", "tds", "tdsx", "tde"];
/// The image every view renders to: a 1×1 PNG.
pub const VIEW_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

/// A data source the fake accepted.
#[derive(Debug, Clone)]
pub struct PublishedDatasource {
    /// The id it was given.
    pub id: String,
    /// Its name, from the request payload.
    pub name: String,
    /// Its description, when the payload had one.
    pub description: Option<String>,
    /// The `datasourceType` parameter.
    pub datasource_type: String,
    /// The file name of the file part (none when published from an upload session).
    pub file_name: Option<String>,
    /// The file: the file part, or the chunks of the upload session, in order.
    pub content: Bytes,
    /// Which of `overwrite` / `append` was asked (`"overwrite"`, `"append"`, or `"new"`).
    pub mode: String,
    /// The upload session it came from, when chunked.
    pub upload_session: Option<String>,
    /// How many chunks the upload session received.
    pub chunks: usize,
    /// Whether `asJob=true` was asked.
    pub as_job: bool,
}

/// What the fake published, shared with the test that holds a clone.
#[derive(Debug, Clone, Default)]
pub struct Published(Arc<Mutex<Vec<PublishedDatasource>>>);

impl Published {
    /// Every data source published so far, in order.
    pub fn all(&self) -> Vec<PublishedDatasource> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn push(&self, item: PublishedDatasource) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(item);
    }
}

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The personal access token's name.
    pub token_name: String,
    /// The personal access token's secret.
    pub token_secret: String,
    /// The site's `contentUrl`.
    pub site_content_url: String,
    /// How many workbooks the site has (ids and names are deterministic).
    pub workbooks: usize,
    /// How many views the site has, spread over the workbooks.
    pub views: usize,
    /// How many polls of a job answer "in progress" before it finishes.
    pub job_polls: u32,
    /// The `finishCode` refresh jobs end with: 0 success, 1 failed, 2 cancelled.
    pub refresh_finish_code: u8,
    /// The status of an accepted refresh request, 200 or 202 ([U]).
    pub refresh_status: u16,
    /// Answer refresh requests with 409 / `409093` (a refresh is already queued).
    pub refresh_conflict: bool,
    /// The first session token expires after this many authenticated calls (the next one
    /// answers 401 / `401002`); later tokens do not expire.
    pub expire_session_after: Option<u32>,
    /// How many authenticated calls (sign-in excluded) answer 429 first.
    pub rate_limit_times: u32,
    /// The `Retry-After` of those 429 answers, in seconds; none when `None`.
    pub rate_limit_retry_after: Option<u64>,
    /// Where published data sources are kept (a test keeps a clone to look).
    pub published: Published,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            token_name: "fake-pat".into(),
            token_secret: "fake-pat-secret".into(),
            site_content_url: "kernelize".into(),
            workbooks: 5,
            views: 7,
            job_polls: 2,
            refresh_finish_code: 0,
            refresh_status: 202,
            refresh_conflict: false,
            expire_session_after: None,
            rate_limit_times: 0,
            rate_limit_retry_after: Some(1),
            published: Published::default(),
        }
    }
}

#[derive(Debug)]
struct Job {
    kind: &'static str,
    polls_left: u32,
    finish_code: u8,
    datasource_id: String,
    created_at: &'static str,
}

#[derive(Debug, Default)]
struct World {
    token: Option<String>,
    sign_ins: u32,
    calls_with_token: u32,
    uploads: HashMap<String, (Vec<u8>, usize)>,
    jobs: HashMap<String, Job>,
    datasources: Vec<(String, String)>,
    counter: u32,
}

#[derive(Clone)]
struct Shared {
    config: Arc<Config>,
    world: Arc<Mutex<World>>,
    limited: Times,
    _journal: Journal,
}

/// The fake's routes, with `config`; `journal` is the one the server records into.
pub fn router(config: Config, journal: Journal) -> Router {
    let limited = Times::new(config.rate_limit_times);
    let world = World {
        datasources: vec![(DATASOURCE_ID.to_string(), "Sales extract".to_string())],
        ..World::default()
    };
    let shared = Shared {
        config: Arc::new(config),
        world: Arc::new(Mutex::new(world)),
        limited,
        _journal: journal,
    };
    Router::new().fallback(handle).with_state(shared)
}

/// Starts the fake on a free loopback port.
pub async fn start(config: Config) -> std::io::Result<Fake> {
    let journal = Journal::new();
    serve(router(config, journal.clone()), journal).await
}

fn error(status: u16, code: &str, summary: &str, detail: &str) -> Response {
    json(
        status,
        json!({"error": {"code": code, "summary": summary, "detail": detail}}),
    )
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn query_map(query: Option<&str>) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return error(413, "413000", "Payload Too Large", &e.to_string()),
    };
    let path = parts.uri.path().to_string();
    let query = query_map(parts.uri.query());
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segments.as_slice() {
        ["api", version, rest @ ..] if version.split('.').all(|p| p.parse::<u32>().is_ok()) => {
            rest.to_vec()
        }
        _ => {
            return error(
                404,
                "404000",
                "Resource Not Found",
                &format!("`{path}` is not under /api/{{version}}/"),
            );
        }
    };
    let is_image = matches!(rest.as_slice(), ["sites", _, "views", _, "image"]);
    if !is_image && !header_text(&parts.headers, header::ACCEPT).contains("application/json") {
        return error(
            406,
            "406000",
            "Not Acceptable",
            "this fake answers JSON only: send `Accept: application/json`",
        );
    }
    let method = parts.method.clone();
    if method == Method::POST && rest == ["auth", "signin"] {
        return sign_in(&shared, &parts.headers, &body);
    }
    // Every other call carries the session token.
    let token = header_text(
        &parts.headers,
        header::HeaderName::from_static("x-tableau-auth"),
    );
    if let Some(answer) = check_token(&shared, token) {
        return answer;
    }
    if method == Method::POST && rest == ["auth", "signout"] {
        let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
        world.token = None;
        return StatusCode::NO_CONTENT.into_response();
    }
    if shared.limited.take() {
        let mut answer = error(
            429,
            "429000",
            "Too Many Requests",
            "The fake's rate limit was reached; try again later.",
        );
        if let Some(after) = shared.config.rate_limit_retry_after
            && let Ok(value) = header::HeaderValue::from_str(&after.to_string())
        {
            answer.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return answer;
    }
    let site = match rest.as_slice() {
        ["sites", site, ..] => *site,
        _ => {
            return error(
                404,
                "404000",
                "Resource Not Found",
                &format!("no route for `{path}`"),
            );
        }
    };
    if site != SITE_ID {
        return error(
            404,
            "404000",
            "Site Not Found",
            &format!("The site '{site}' could not be found (or is not the signed-in site)."),
        );
    }
    let content_type = header_text(&parts.headers, header::CONTENT_TYPE).to_string();
    match (method.as_str(), &rest[2..]) {
        ("POST", ["fileUploads"]) => initiate_upload(&shared),
        ("PUT", ["fileUploads", id]) => append_upload(&shared, id, &content_type, &body),
        ("POST", ["datasources"]) => publish(&shared, &query, &content_type, &body),
        ("POST", ["datasources", id, "refresh"]) => refresh(&shared, id, &content_type, &body),
        ("GET", ["jobs", id]) => job(&shared, id),
        ("GET", ["workbooks"]) => list(&shared, &query, "workbooks"),
        ("GET", ["views"]) => list(&shared, &query, "views"),
        ("GET", ["workbooks", id, "views"]) => workbook_views(&shared, id),
        ("GET", ["views", id, "image"]) => view_image(&shared, id, &query),
        _ => error(
            404,
            "404000",
            "Resource Not Found",
            &format!("no route for {method} `{path}`"),
        ),
    }
}

fn sign_in(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    if !header_text(headers, header::CONTENT_TYPE).starts_with("application/json") {
        return error(
            415,
            "415000",
            "Unsupported Media Type",
            "the sign-in request must be `application/json` here",
        );
    }
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                400,
                "400000",
                "Bad Request",
                &format!("the body is not JSON: {e}"),
            );
        }
    };
    let credentials = &request["credentials"];
    let name = credentials["personalAccessTokenName"].as_str();
    let secret = credentials["personalAccessTokenSecret"].as_str();
    let site = credentials["site"]["contentUrl"].as_str();
    let config = &shared.config;
    if name.is_none() || secret.is_none() || site.is_none() {
        return error(
            400,
            "400000",
            "Bad Request",
            "credentials need personalAccessTokenName, personalAccessTokenSecret and site.contentUrl",
        );
    }
    if name != Some(config.token_name.as_str())
        || secret != Some(config.token_secret.as_str())
        || site != Some(config.site_content_url.as_str())
    {
        return error(
            401,
            "401001",
            "Signin Error",
            "Error signing in to Tableau Server (invalid personal access token or site)",
        );
    }
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    world.sign_ins += 1;
    let token = if world.sign_ins == 1 {
        "fake-token".to_string()
    } else {
        format!("fake-token-{}", world.sign_ins)
    };
    world.token = Some(token.clone());
    world.calls_with_token = 0;
    json(
        200,
        json!({"credentials": {
            "site": {"id": SITE_ID, "contentUrl": config.site_content_url},
            "user": {"id": USER_ID},
            "token": token,
            "estimatedTimeToExpiration": "365:22:13"
        }}),
    )
}

fn check_token(shared: &Shared, token: &str) -> Option<Response> {
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    let valid = !token.is_empty() && world.token.as_deref() == Some(token);
    if !valid {
        return Some(error(
            401,
            "401002",
            "Unauthorized Access",
            "Invalid authentication credentials were provided.",
        ));
    }
    world.calls_with_token += 1;
    if world.sign_ins == 1
        && let Some(limit) = shared.config.expire_session_after
        && world.calls_with_token > limit
    {
        world.token = None;
        return Some(error(
            401,
            "401002",
            "Unauthorized Access",
            "Invalid authentication credentials were provided (the session expired).",
        ));
    }
    None
}

fn next_id(world: &mut World, prefix: u32) -> String {
    world.counter += 1;
    format!("{prefix:08x}-0000-4000-8000-{:012x}", world.counter)
}

fn initiate_upload(shared: &Shared) -> Response {
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    let id = next_id(&mut world, 0xf11e);
    world.uploads.insert(id.clone(), (Vec::new(), 0));
    json(
        201,
        json!({"fileUpload": {"uploadSessionId": id, "fileSize": "0"}}),
    )
}

fn append_upload(shared: &Shared, id: &str, content_type: &str, body: &[u8]) -> Response {
    let parts = match parse_mixed(content_type, body) {
        Ok(p) => p,
        Err(e) => return error(400, "400000", "Bad Request", &e),
    };
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    if names != ["request_payload", "tableau_file"] {
        return error(
            400,
            "400000",
            "Bad Request",
            &format!("an append needs the parts request_payload and tableau_file, got {names:?}"),
        );
    }
    let file = &parts[1];
    if file.file_name.is_none() || file.content_type.as_deref() != Some("application/octet-stream")
    {
        return error(
            400,
            "400000",
            "Bad Request",
            "the tableau_file part needs a filename and Content-Type: application/octet-stream",
        );
    }
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    let Some((data, chunks)) = world.uploads.get_mut(id) else {
        return error(
            404,
            "404003",
            "Upload Session Not Found",
            &format!("The upload session '{id}' could not be found."),
        );
    };
    data.extend_from_slice(&file.data);
    *chunks += 1;
    let megabytes = data.len() / (1024 * 1024);
    json(
        200,
        json!({"fileUpload": {"uploadSessionId": id, "fileSize": megabytes.to_string()}}),
    )
}

fn publish(
    shared: &Shared,
    query: &BTreeMap<String, String>,
    content_type: &str,
    body: &[u8],
) -> Response {
    let bad = |detail: &str| error(400, "400000", "Bad Request", detail);
    let Some(kind) = query.get("datasourceType").map(String::as_str) else {
        return bad("the datasourceType parameter is required");
    };
    if !DATASOURCE_TYPES.contains(&kind) {
        return bad(&format!(
            "datasourceType `{kind}` is not one of hyper, tds, tdsx, tde"
        ));
    }
    let overwrite = query.get("overwrite").map(String::as_str) == Some("true");
    let append = query.get("append").map(String::as_str) == Some("true");
    if overwrite && append {
        return bad("overwrite and append cannot both be true");
    }
    let as_job = query.get("asJob").map(String::as_str) == Some("true");
    let parts = match parse_mixed(content_type, body) {
        Ok(p) => p,
        Err(e) => return bad(&e),
    };
    let upload = query.get("uploadSessionId").cloned();
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    let expected: &[&str] = if upload.is_some() {
        &["request_payload"]
    } else {
        &["request_payload", "tableau_datasource"]
    };
    if names != expected {
        return bad(&format!("expected the parts {expected:?}, got {names:?}"));
    }
    let payload = &parts[0];
    if !matches!(
        payload.content_type.as_deref(),
        Some("text/xml") | Some("application/xml")
    ) {
        return bad("the request_payload part must be text/xml");
    }
    let xml = String::from_utf8_lossy(&payload.data).into_owned();
    if !xml.contains("<tsRequest") {
        return bad("the request payload is not a tsRequest");
    }
    let datasource = xml_attributes(&xml, "datasource");
    let project = xml_attributes(&xml, "project");
    let Some(name) = datasource.get("name").filter(|n| !n.is_empty()).cloned() else {
        return bad("the datasource element needs a name");
    };
    match project.get("id") {
        Some(id) if id == PROJECT_ID => {}
        Some(id) => {
            return error(
                404,
                "404005",
                "Project Not Found",
                &format!("The project '{id}' could not be found."),
            );
        }
        None => return bad("the datasource element needs a project with an id"),
    }
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    let (content, file_name, chunks) = match &upload {
        Some(session) => match world.uploads.remove(session) {
            Some((data, chunks)) => (Bytes::from(data), None, chunks),
            None => {
                return error(
                    404,
                    "404003",
                    "Upload Session Not Found",
                    &format!("The upload session '{session}' could not be found."),
                );
            }
        },
        None => {
            let file = &parts[1];
            let Some(file_name) = file.file_name.clone() else {
                return bad("the tableau_datasource part needs a filename");
            };
            if file.content_type.as_deref() != Some("application/octet-stream") {
                return bad("the tableau_datasource part must be application/octet-stream");
            }
            let extension = file_name
                .rsplit_once('.')
                .map(|(_, e)| e.to_ascii_lowercase());
            if extension.as_deref() != Some(kind) {
                return bad(&format!(
                    "the file `{file_name}` does not have the extension of datasourceType `{kind}`"
                ));
            }
            (file.data.clone(), Some(file_name), 0)
        }
    };
    let existing = world
        .datasources
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(id, _)| id.clone());
    if existing.is_some() && !overwrite && !append {
        return error(
            409,
            "409004",
            "Resource Conflict",
            &format!("A data source named '{name}' already exists in the project."),
        );
    }
    let id = match existing {
        Some(id) => id,
        None => {
            let id = next_id(&mut world, 0xda7a);
            world.datasources.push((id.clone(), name.clone()));
            id
        }
    };
    shared.config.published.push(PublishedDatasource {
        id: id.clone(),
        name: name.clone(),
        description: datasource.get("description").cloned(),
        datasource_type: kind.to_string(),
        file_name,
        content,
        mode: if overwrite {
            "overwrite"
        } else if append {
            "append"
        } else {
            "new"
        }
        .to_string(),
        upload_session: upload,
        chunks,
        as_job,
    });
    if as_job {
        let job_id = next_id(&mut world, 0x10b);
        world.jobs.insert(
            job_id.clone(),
            Job {
                kind: "PublishDatasource",
                polls_left: shared.config.job_polls,
                finish_code: 0,
                datasource_id: id,
                created_at: "2024-05-01T10:00:00Z",
            },
        );
        return json(
            202,
            json!({"job": {"id": job_id, "mode": "Asynchronous", "type": "PublishDatasource",
                "createdAt": "2024-05-01T10:00:00Z"}}),
        );
    }
    json(
        201,
        json!({"datasource": {
            "id": id, "name": name, "contentUrl": name.replace(' ', ""), "type": kind,
            "createdAt": "2024-05-01T10:00:00Z", "updatedAt": "2024-05-01T10:00:00Z",
            "isCertified": false,
            "project": {"id": PROJECT_ID, "name": "Default"},
            "owner": {"id": USER_ID}
        }}),
    )
}

fn refresh(shared: &Shared, id: &str, content_type: &str, body: &[u8]) -> Response {
    if !content_type.starts_with("application/json") {
        return error(
            415,
            "415000",
            "Unsupported Media Type",
            "send the body as application/json",
        );
    }
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                400,
                "400000",
                "Bad Request",
                &format!("the body is not JSON: {e}"),
            );
        }
    };
    if !request.is_object() {
        return error(
            400,
            "400000",
            "Bad Request",
            "the body must be a JSON object (`{}`)",
        );
    }
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    if !world.datasources.iter().any(|(d, _)| d == id) {
        return error(
            404,
            "404011",
            "Resource Not Found",
            &format!("Datasource '{id}' could not be found."),
        );
    }
    if shared.config.refresh_conflict {
        return error(
            409,
            "409093",
            "Resource Conflict",
            "An extract refresh job for this data source is already queued or running.",
        );
    }
    let job_id = next_id(&mut world, 0x10b);
    world.jobs.insert(
        job_id.clone(),
        Job {
            kind: "RefreshExtract",
            polls_left: shared.config.job_polls,
            finish_code: shared.config.refresh_finish_code,
            datasource_id: id.to_string(),
            created_at: "2024-05-01T10:00:00Z",
        },
    );
    json(
        shared.config.refresh_status,
        json!({"job": {"id": job_id, "mode": "Asynchronous", "type": "RefreshExtract",
            "createdAt": "2024-05-01T10:00:00Z"}}),
    )
}

fn job(shared: &Shared, id: &str) -> Response {
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    let datasources = world.datasources.clone();
    let Some(job) = world.jobs.get_mut(id) else {
        return error(
            404,
            "404031",
            "Resource Not Found",
            &format!("Job '{id}' could not be found."),
        );
    };
    let name = datasources
        .iter()
        .find(|(d, _)| *d == job.datasource_id)
        .map(|(_, n)| n.clone())
        .unwrap_or_default();
    let mut answer = json!({
        "id": id, "mode": "Asynchronous", "type": job.kind,
        "createdAt": job.created_at, "startedAt": "2024-05-01T10:00:01Z",
        "extractRefreshJob": {"datasource": {"id": job.datasource_id, "name": name}}
    });
    if job.polls_left > 0 {
        job.polls_left -= 1;
        answer["progress"] = json!("50");
    } else {
        answer["progress"] = json!("100");
        answer["finishCode"] = json!(job.finish_code.to_string());
        answer["completedAt"] = json!("2024-05-01T10:00:09Z");
        let notes = match job.finish_code {
            0 => "Extract refresh completed.",
            1 => "Extract refresh failed: the fake database refused the connection (error 08001).",
            _ => "The job was cancelled by an administrator.",
        };
        answer["extractRefreshJob"]["notes"] = json!(notes);
    }
    json(200, json!({"job": answer}))
}

fn workbook(n: usize) -> Value {
    let id = format!("{:08x}-0000-4000-8000-{n:012x}", 0xb00c);
    json!({
        "id": id,
        "name": format!("Workbook {n}"),
        "description": "",
        "contentUrl": format!("Workbook{n}"),
        "webpageUrl": format!("https://fake.tableau/#/site/kernelize/workbooks/{n}"),
        "showTabs": "true",
        "size": (n % 3 + 1).to_string(),
        "createdAt": format!("2024-01-{:02}T08:00:00Z", n % 28 + 1),
        "updatedAt": format!("2024-02-{:02}T09:30:00Z", n % 28 + 1),
        "encryptExtracts": "false",
        "project": {"id": PROJECT_ID, "name": "Default"},
        "owner": {"id": USER_ID, "name": "kernelize@example.com"},
        "tags": {}
    })
}

fn view(n: usize, workbooks: usize) -> Value {
    let w = n % workbooks.max(1);
    json!({
        "id": format!("{:08x}-0000-4000-8000-{n:012x}", 0x51e7),
        "name": format!("View {n}"),
        "contentUrl": format!("Workbook{w}/sheets/View{n}"),
        "viewUrlName": format!("View{n}"),
        "sheetType": if n.is_multiple_of(2) { "dashboard" } else { "view" },
        "createdAt": format!("2024-01-{:02}T08:00:00Z", n % 28 + 1),
        "updatedAt": format!("2024-02-{:02}T09:30:00Z", n % 28 + 1),
        "workbook": {"id": format!("{:08x}-0000-4000-8000-{w:012x}", 0xb00c)},
        "owner": {"id": USER_ID},
        "project": {"id": PROJECT_ID},
        "usage": {"totalViewCount": (n * 10).to_string()},
        "tags": {}
    })
}

fn list(shared: &Shared, query: &BTreeMap<String, String>, what: &str) -> Response {
    let page_size = match query.get("pageSize") {
        None => 100,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return error(
                    400,
                    "400006",
                    "Bad Request",
                    &format!("The page size '{s}' is not valid: it must be from 1 to 1000."),
                );
            }
        },
    };
    let page_number = match query.get("pageNumber") {
        None => 1,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return error(
                    400,
                    "400007",
                    "Bad Request",
                    &format!("The page number '{s}' is not valid: it must be 1 or more."),
                );
            }
        },
    };
    let config = &shared.config;
    let (total, item): (usize, Box<dyn Fn(usize) -> Value>) = if what == "workbooks" {
        (config.workbooks, Box::new(workbook))
    } else {
        let workbooks = config.workbooks;
        (config.views, Box::new(move |n| view(n, workbooks)))
    };
    let start = (page_number - 1).saturating_mul(page_size);
    let items: Vec<Value> = (start..total.min(start.saturating_add(page_size)))
        .map(|n| item(n + 1))
        .collect();
    let singular = &what[..what.len() - 1];
    let collection = if items.is_empty() {
        json!({})
    } else {
        json!({ singular: items })
    };
    json(
        200,
        json!({
            "pagination": {
                "pageNumber": page_number.to_string(),
                "pageSize": page_size.to_string(),
                "totalAvailable": total.to_string()
            },
            what: collection
        }),
    )
}

fn workbook_views(shared: &Shared, id: &str) -> Response {
    let config = &shared.config;
    let known = (1..=config.workbooks).any(|n| workbook(n)["id"] == id);
    if !known {
        return error(
            404,
            "404006",
            "Resource Not Found",
            &format!("Workbook '{id}' could not be found."),
        );
    }
    let views: Vec<Value> = (1..=config.views)
        .map(|n| view(n, config.workbooks))
        .filter(|v| v["workbook"]["id"] == id)
        .collect();
    json(200, json!({"views": {"view": views}}))
}

fn view_image(shared: &Shared, id: &str, query: &BTreeMap<String, String>) -> Response {
    let config = &shared.config;
    if !(1..=config.views).any(|n| view(n, config.workbooks)["id"] == id) {
        return error(
            404,
            "404011",
            "Resource Not Found",
            &format!("View '{id}' could not be found."),
        );
    }
    if let Some(resolution) = query.get("resolution")
        && resolution != "high"
    {
        return error(
            400,
            "400000",
            "Bad Request",
            &format!("resolution `{resolution}` is not valid: the only value is `high`"),
        );
    }
    if let Some(age) = query.get("maxAge")
        && !age.parse::<u32>().is_ok_and(|m| m >= 1)
    {
        return error(
            400,
            "400000",
            "Bad Request",
            &format!("maxAge `{age}` is not valid: minutes, at least 1"),
        );
    }
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "image/png")
        .body(Body::from(Bytes::from_static(VIEW_PNG)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// One part of a `multipart/mixed` body.
#[derive(Debug)]
struct MixedPart {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    data: Bytes,
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    (from..=haystack.len() - needle.len()).find(|&i| haystack[i..].starts_with(needle))
}

fn disposition_param(disposition: &str, key: &str) -> Option<String> {
    disposition.split(';').find_map(|item| {
        let (k, v) = item.trim().split_once('=')?;
        (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Parses a `multipart/mixed` body as RFC 2046 lays it out; the error says what is wrong.
fn parse_mixed(content_type: &str, body: &[u8]) -> Result<Vec<MixedPart>, String> {
    let mut params = content_type.split(';');
    let essence = params.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("multipart/mixed") {
        return Err(format!(
            "the Content-Type must be multipart/mixed, not `{content_type}`"
        ));
    }
    let boundary = params
        .find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| v.trim().trim_matches('"').to_string())
        })
        .filter(|b| !b.is_empty())
        .ok_or("the multipart/mixed Content-Type has no boundary")?;
    let delimiter = format!("--{boundary}");
    let mut pos = find(body, delimiter.as_bytes(), 0)
        .ok_or("the body does not contain its boundary")?
        + delimiter.len();
    let mut parts = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            return Ok(parts);
        }
        if !body[pos..].starts_with(b"\r\n") {
            return Err("a boundary line is not followed by CRLF".into());
        }
        pos += 2;
        let header_end =
            find(body, b"\r\n\r\n", pos).ok_or("a part's headers do not end with a blank line")?;
        let headers = String::from_utf8_lossy(&body[pos..header_end]).into_owned();
        let data_start = header_end + 4;
        let closing = format!("\r\n{delimiter}");
        let data_end = find(body, closing.as_bytes(), data_start)
            .ok_or("a part is not closed by the boundary")?;
        let mut disposition = None;
        let mut part_type = None;
        for line in headers.split("\r\n") {
            if let Some((k, v)) = line.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-disposition") {
                    disposition = Some(v.trim().to_string());
                } else if k.trim().eq_ignore_ascii_case("content-type") {
                    part_type = Some(v.trim().to_string());
                }
            }
        }
        let disposition = disposition.ok_or("a part has no Content-Disposition")?;
        let name = disposition_param(&disposition, "name")
            .ok_or_else(|| format!("the part `{disposition}` has no name"))?;
        parts.push(MixedPart {
            name,
            file_name: disposition_param(&disposition, "filename"),
            content_type: part_type,
            data: Bytes::copy_from_slice(&body[data_start..data_end]),
        });
        pos = data_end + closing.len();
    }
}

/// The attributes of the first `<tag ...>` element in `xml`, entities decoded.
fn xml_attributes(xml: &str, tag: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let open = format!("<{tag}");
    let Some(start) = xml.find(&open) else {
        return out;
    };
    let rest = &xml[start + open.len()..];
    let end = rest.find('>').unwrap_or(rest.len());
    let mut text = rest[..end].trim_end_matches('/');
    while let Some(eq) = text.find('=') {
        let key = text[..eq].trim().to_string();
        let after = text[eq + 1..].trim_start();
        let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            break;
        };
        let Some(close) = after[1..].find(quote) else {
            break;
        };
        let value = &after[1..1 + close];
        out.insert(key, unescape(value));
        text = &after[close + 2..];
    }
    out
}

fn unescape(value: &str) -> String {
    value
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_parts_of_a_mixed_body() {
        let body = b"--b1\r\nContent-Disposition: name=\"request_payload\"\r\nContent-Type: text/xml\r\n\r\n<tsRequest/>\r\n--b1\r\nContent-Disposition: form-data; name=\"tableau_datasource\"; filename=\"a.hyper\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\r\n--b1--\r\n";
        let parts = parse_mixed("multipart/mixed; boundary=b1", body).unwrap_or_default();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "request_payload");
        assert_eq!(&parts[0].data[..], b"<tsRequest/>");
        assert_eq!(parts[1].file_name.as_deref(), Some("a.hyper"));
        assert_eq!(&parts[1].data[..], b"\x00\x01");
        assert!(parse_mixed("multipart/form-data; boundary=b1", body).is_err());
    }

    #[test]
    fn reads_xml_attributes_with_entities() {
        let xml = r#"<tsRequest><datasource name="A &amp; B" description='x'><project id="p1"/></datasource></tsRequest>"#;
        assert_eq!(
            xml_attributes(xml, "datasource")
                .get("name")
                .map(String::as_str),
            Some("A & B")
        );
        assert_eq!(
            xml_attributes(xml, "project").get("id").map(String::as_str),
            Some("p1")
        );
    }
}
