//! The fake of the Power BI REST API (`/v1.0/myorg`) and of the Microsoft Entra token
//! endpoint (`/{tenant}/oauth2/v2.0/token`), on one server.
//!
//! Written from the documented API (see the project's API facts, section 5, and the REST
//! reference on learn.microsoft.com for reports and gateways): client-credentials tokens,
//! bearer tokens on every call, datasets, reports and gateways as `{"value": [...]}`, dataset
//! refreshes answered 202 with `x-ms-request-id` and `Location` and followed in the refresh
//! history, push rows (at most 10,000 a request, and a 429 with `Retry-After` when asked),
//! report clone and rebind, and the `{"error": {"code", "message"}}` error body.
//!
//! ## Valid credentials (the default [`Config`])
//!
//! | what | value |
//! |------|-------|
//! | tenant | `fake-tenant` |
//! | client id | `fake-client-id` |
//! | client secret | `fake-client-secret` |
//! | scope | [`SCOPE`] |
//! | the access token issued | `fake-token` |
//!
//! With the fake at `http://127.0.0.1:PORT`, the authority is that URL and the API base
//! `http://127.0.0.1:PORT/v1.0/myorg`.
//!
//! ## Data
//!
//! Workspace [`GROUP_ID`] holds the import dataset [`DATASET_ID`] (refreshes complete), the
//! dataset [`FAILING_DATASET_ID`] (refreshes fail with a `serviceExceptionJson`), and the push
//! dataset [`PUSH_DATASET_ID`] with the table [`PUSH_TABLE`]; reports [`REPORT_ID`] and one
//! more. My workspace (`/datasets`, `/reports`) holds [`MY_DATASET_ID`]. Two gateways, the
//! first ([`GATEWAY_ID`]) with two data sources.
//!
//! ## What it checks
//!
//! - Token requests: form-encoded, `grant_type=client_credentials`, the client id and
//!   secret (in the form or HTTP Basic), the scope and the tenant; Entra's
//!   `{"error", "error_description"}` (400/401) otherwise.
//! - `Authorization: Bearer <token>` on every API call (401 otherwise); `Content-Type:
//!   application/json` on bodies.
//! - Refresh bodies: `notifyOption` one of `MailOnFailure`, `MailOnCompletion`,
//!   `NoNotification`; enhanced `type` and `commitMode` values.
//! - Push rows: `{"rows": [objects]}`, at most [`Config::max_rows_per_request`] rows (400
//!   beyond), only on the push dataset's table. Rows received are kept in [`Config::pushed`].
//! - Clone needs a `name` (and a GUID `targetWorkspaceId` when given); rebind a known
//!   `datasetId`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use crate::{Fake, Journal, MAX_BODY, Times, json, serve};

/// The scope Power BI's client-credentials tokens are asked with.
pub const SCOPE: &str = "https://analysis.windows.net/powerbi/api/.default";
/// The workspace (group).
pub const GROUP_ID: &str = "f089354e-8366-4e18-aea3-4cb4a3a50b48";
/// An import dataset whose refreshes complete.
pub const DATASET_ID: &str = "cfafbeb1-8037-4d0c-896e-a46fb27ff229";
/// A dataset whose refreshes fail.
pub const FAILING_DATASET_ID: &str = "0d4a7c2e-1b3f-4e5a-9c8d-7f6e5d4c3b2a";
/// A push dataset (`addRowsAPIEnabled`).
pub const PUSH_DATASET_ID: &str = "8a9b0c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d";
/// The push dataset's table.
pub const PUSH_TABLE: &str = "Sales";
/// The dataset of My workspace.
pub const MY_DATASET_ID: &str = "4e3d2c1b-0a9f-4e8d-9c7b-6a5f4e3d2c1b";
/// A report of the workspace, on [`DATASET_ID`].
pub const REPORT_ID: &str = "5b218778-e7a5-4d73-8187-f10824047715";
/// A second report of the workspace.
pub const SECOND_REPORT_ID: &str = "9c8b7a69-5847-4362-a150-9f8e7d6c5b4a";
/// A gateway with two data sources.
pub const GATEWAY_ID: &str = "1f69e798-5852-4fdd-ab01-33bb14b6e934";

/// Rows the fake received, in order, shared with the test that holds a clone.
#[derive(Debug, Clone, Default)]
pub struct Pushed(Arc<Mutex<Vec<Value>>>);

impl Pushed {
    /// Every row received so far.
    pub fn rows(&self) -> Vec<Value> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn extend(&self, rows: &[Value]) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(rows);
    }
}

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The tenant in the token endpoint's path.
    pub tenant: String,
    /// The application (client) id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// The access token issued (and the only one accepted).
    pub access_token: String,
    /// How many polls of the refresh history show a new refresh as `Unknown` (in
    /// progress) before it ends.
    pub refresh_polls: u32,
    /// The most rows one push request may carry (Power BI's limit is 10,000).
    pub max_rows_per_request: usize,
    /// How many push-rows requests answer 429 first.
    pub push_rate_limit_times: u32,
    /// The `Retry-After` of those answers, in seconds.
    pub retry_after_secs: u64,
    /// Where pushed rows are kept (a test keeps a clone to look).
    pub pushed: Pushed,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tenant: "fake-tenant".into(),
            client_id: "fake-client-id".into(),
            client_secret: "fake-client-secret".into(),
            access_token: "fake-token".into(),
            refresh_polls: 2,
            max_rows_per_request: 10_000,
            push_rate_limit_times: 0,
            retry_after_secs: 1,
            pushed: Pushed::default(),
        }
    }
}

#[derive(Debug, Clone)]
struct Refresh {
    request_id: String,
    number: u64,
    dataset: String,
    enhanced: bool,
    polls_left: u32,
}

#[derive(Debug, Default)]
struct World {
    refreshes: Vec<Refresh>,
    counter: u64,
    /// Report id → (name, dataset id), in order.
    reports: Vec<(String, String, String)>,
}

#[derive(Clone)]
struct Shared {
    config: Arc<Config>,
    world: Arc<Mutex<World>>,
    push_limited: Times,
    _journal: Journal,
}

/// The fake's routes, with `config`; `journal` is the one the server records into.
pub fn router(config: Config, journal: Journal) -> Router {
    let world = World {
        reports: vec![
            (
                REPORT_ID.to_string(),
                "SalesMarketing".to_string(),
                DATASET_ID.to_string(),
            ),
            (
                SECOND_REPORT_ID.to_string(),
                "Inventory".to_string(),
                FAILING_DATASET_ID.to_string(),
            ),
        ],
        ..World::default()
    };
    let shared = Shared {
        push_limited: Times::new(config.push_rate_limit_times),
        config: Arc::new(config),
        world: Arc::new(Mutex::new(world)),
        _journal: journal,
    };
    Router::new().fallback(handle).with_state(shared)
}

/// Starts the fake on a free loopback port.
pub async fn start(config: Config) -> std::io::Result<Fake> {
    let journal = Journal::new();
    serve(router(config, journal.clone()), journal).await
}

fn error(status: u16, code: &str, message: &str) -> Response {
    json(status, json!({"error": {"code": code, "message": message}}))
}

fn entra_error(status: u16, code: &str, description: &str) -> Response {
    json(
        status,
        json!({"error": code, "error_description": description, "error_codes": [],
            "timestamp": "2024-05-01 10:00:00Z", "trace_id": "00000000-0000-0000-0000-000000000000"}),
    )
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn guid(n: u64, kind: u16) -> String {
    format!(
        "{kind:04x}{:04x}-{:04x}-4000-8000-{n:012x}",
        n % 0xffff,
        kind
    )
}

fn is_guid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return error(413, "RequestEntityTooLarge", &e.to_string()),
    };
    let path = parts.uri.path().to_string();
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        [tenant, "oauth2", "v2.0", "token"] if parts.method == Method::POST => {
            token(&shared, tenant, &parts.headers, &body)
        }
        ["v1.0", "myorg", rest @ ..] => {
            let authorization = header_text(&parts.headers, header::AUTHORIZATION);
            if authorization != format!("Bearer {}", shared.config.access_token) {
                let mut answer = error(
                    401,
                    "PowerBINotAuthorizedException",
                    "The access token is missing, invalid or expired.",
                );
                answer.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
                return answer;
            }
            let host = header_text(&parts.headers, header::HOST).to_string();
            let content_type = header_text(&parts.headers, header::CONTENT_TYPE).to_string();
            let call = ApiCall {
                method: parts.method.clone(),
                rest: rest.to_vec(),
                query,
                host,
                content_type,
                body: &body,
            };
            api(&shared, &call)
        }
        _ => error(404, "NotFound", &format!("no route for `{path}`")),
    }
}

fn token(shared: &Shared, tenant: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let config = &shared.config;
    if !header_text(headers, header::CONTENT_TYPE).starts_with("application/x-www-form-urlencoded")
    {
        return entra_error(
            400,
            "invalid_request",
            "AADSTS900144: the request body must be application/x-www-form-urlencoded.",
        );
    }
    if tenant != config.tenant {
        return entra_error(
            400,
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant}' not found."),
        );
    }
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return entra_error(
            400,
            "unsupported_grant_type",
            "AADSTS70003: the app asked for an unsupported grant type; this fake issues client_credentials only.",
        );
    }
    let basic = header_text(headers, header::AUTHORIZATION)
        .strip_prefix("Basic ")
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(id, secret)| (id.to_string(), secret.to_string()))
        });
    let (client_id, secret) = match basic {
        Some(pair) => (Some(pair.0), Some(pair.1)),
        None => (
            form.get("client_id").cloned(),
            form.get("client_secret").cloned(),
        ),
    };
    let Some(client_id) = client_id else {
        return entra_error(
            400,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'client_id'.",
        );
    };
    if client_id != config.client_id {
        return entra_error(
            400,
            "unauthorized_client",
            &format!(
                "AADSTS700016: Application with identifier '{client_id}' was not found in the directory."
            ),
        );
    }
    if secret.as_deref() != Some(config.client_secret.as_str()) {
        return entra_error(
            401,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    match form.get("scope").map(String::as_str) {
        Some(SCOPE) => {}
        None => {
            return entra_error(
                400,
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: 'scope'.",
            );
        }
        Some(other) => {
            return entra_error(
                400,
                "invalid_scope",
                &format!(
                    "AADSTS1002012: The provided value for scope {other} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier."
                ),
            );
        }
    }
    json(
        200,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
            "access_token": config.access_token}),
    )
}

struct ApiCall<'a> {
    method: Method,
    rest: Vec<&'a str>,
    query: BTreeMap<String, String>,
    host: String,
    content_type: String,
    body: &'a [u8],
}

impl ApiCall<'_> {
    /// The JSON body, or the 400 answer saying why there is none.
    fn json(&self) -> Result<Value, Box<Response>> {
        if !self.content_type.starts_with("application/json") {
            return Err(Box::new(error(
                415,
                "UnsupportedMediaType",
                "send the body as application/json",
            )));
        }
        match serde_json::from_slice::<Value>(self.body) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => Err(Box::new(error(
                400,
                "InvalidRequest",
                "the body must be a JSON object",
            ))),
            Err(e) => Err(Box::new(error(
                400,
                "InvalidRequest",
                &format!("the body is not JSON: {e}"),
            ))),
        }
    }
}

fn datasets_of(group: Option<&str>) -> Vec<Value> {
    let url = |id: &str| match group {
        Some(g) => format!("https://app.powerbi.com/groups/{g}/datasets/{id}"),
        None => format!("https://app.powerbi.com/groups/me/datasets/{id}"),
    };
    let dataset = |id: &str, name: &str, push: bool, gateway: bool, created: &str| {
        json!({
            "id": id, "name": name, "addRowsAPIEnabled": push,
            "configuredBy": "admin@contoso.com", "isRefreshable": !push,
            "isEffectiveIdentityRequired": false, "isEffectiveIdentityRolesRequired": false,
            "isOnPremGatewayRequired": gateway,
            "targetStorageMode": if push { "PushStreaming" } else { "Abf" },
            "webUrl": url(id), "createdDate": created
        })
    };
    match group {
        Some(_) => vec![
            dataset(
                DATASET_ID,
                "SalesMarketing",
                false,
                true,
                "2019-03-27T09:25:34.047Z",
            ),
            dataset(
                FAILING_DATASET_ID,
                "Inventory",
                false,
                false,
                "2020-10-12T17:34:24.657Z",
            ),
            dataset(
                PUSH_DATASET_ID,
                "SalesPush",
                true,
                false,
                "2023-01-05T08:00:00Z",
            ),
        ],
        None => vec![dataset(
            MY_DATASET_ID,
            "Personal",
            false,
            false,
            "2022-06-01T12:00:00Z",
        )],
    }
}

fn api(shared: &Shared, call: &ApiCall<'_>) -> Response {
    let (group, rest): (Option<&str>, &[&str]) = match call.rest.as_slice() {
        ["groups", g, rest @ ..] => (Some(*g), rest),
        rest => (None, rest),
    };
    if let Some(g) = group
        && g != GROUP_ID
    {
        return error(
            404,
            "PowerBIEntityNotFound",
            &format!("Workspace '{g}' was not found, or you have no access to it."),
        );
    }
    let odata = |what: &str| match group {
        Some(g) => format!(
            "https://{}/v1.0/myorg/groups/{g}/$metadata#{what}",
            call.host
        ),
        None => format!("https://{}/v1.0/myorg/$metadata#{what}", call.host),
    };
    let datasets = datasets_of(group);
    let known_dataset = |id: &str| datasets.iter().any(|d| d["id"] == id);
    match (call.method.as_str(), rest) {
        ("GET", ["datasets"]) => json(
            200,
            json!({"@odata.context": odata("datasets"), "value": datasets}),
        ),
        ("GET", ["reports"]) => {
            let world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
            let reports: Vec<Value> = match group {
                Some(g) => world
                    .reports
                    .iter()
                    .map(|(id, name, dataset)| report(g, id, name, dataset))
                    .collect(),
                None => Vec::new(),
            };
            json(
                200,
                json!({"@odata.context": odata("reports"), "value": reports}),
            )
        }
        ("GET", ["gateways"]) if group.is_none() => json(200, json!({"value": gateways()})),
        ("GET", ["gateways", id, "datasources"]) if group.is_none() => {
            if !gateways().iter().any(|g| g["id"] == *id) {
                return error(
                    404,
                    "DMTS_GatewayNotFoundError",
                    &format!("Gateway '{id}' was not found."),
                );
            }
            let sources = if *id == GATEWAY_ID {
                gateway_datasources()
            } else {
                Vec::new()
            };
            json(200, json!({"value": sources}))
        }
        ("POST", ["datasets", id, "refreshes"]) => {
            if !known_dataset(id) {
                return not_found_dataset(id);
            }
            start_refresh(shared, call, group, id)
        }
        ("GET", ["datasets", id, "refreshes"]) => {
            if !known_dataset(id) {
                return not_found_dataset(id);
            }
            history(shared, call, id)
        }
        ("POST", ["datasets", id, "tables", table, "rows"]) => {
            if !known_dataset(id) {
                return not_found_dataset(id);
            }
            push_rows(shared, call, id, table)
        }
        ("POST", ["reports", id, "Clone"]) => clone_report(shared, call, group, id),
        ("POST", ["reports", id, "Rebind"]) => rebind_report(shared, call, id, &datasets),
        _ => error(
            404,
            "NotFound",
            &format!(
                "no route for {} /v1.0/myorg/{}",
                call.method,
                call.rest.join("/")
            ),
        ),
    }
}

fn not_found_dataset(id: &str) -> Response {
    error(
        404,
        "ItemNotFound",
        &format!(
            "Dataset {id} is not found! Please verify the dataset id is correct and that you have permission to access it."
        ),
    )
}

fn report(group: &str, id: &str, name: &str, dataset: &str) -> Value {
    json!({
        "id": id, "reportType": "PowerBIReport", "name": name,
        "webUrl": format!("https://app.powerbi.com/groups/{group}/reports/{id}"),
        "embedUrl": format!("https://app.powerbi.com/reportEmbed?reportId={id}&groupId={group}"),
        "datasetId": dataset, "datasetWorkspaceId": group,
        "isFromPbix": true, "isOwnedByMe": true
    })
}

fn gateways() -> Vec<Value> {
    vec![
        json!({
            "id": GATEWAY_ID, "name": "My_Sample_Gateway", "type": "Resource",
            "publicKey": {"exponent": "AQAB", "modulus": "o6j2....cLk="},
            "gatewayStatus": "Live",
            "gatewayAnnotation": "{\"gatewayContactInformation\":[\"admin@contoso.com\"],\"gatewayVersion\":\"3000.218.9\",\"gatewayMachine\":\"GW-01\"}"
        }),
        json!({
            "id": "2a7b9c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "name": "Backup_Gateway",
            "type": "Resource",
            "publicKey": {"exponent": "AQAB", "modulus": "p7k3....dMm="},
            "gatewayStatus": "Offline",
            "gatewayAnnotation": "{\"gatewayContactInformation\":[\"ops@contoso.com\"],\"gatewayVersion\":\"3000.214.2\",\"gatewayMachine\":\"GW-02\"}"
        }),
    ]
}

fn gateway_datasources() -> Vec<Value> {
    vec![
        json!({
            "id": "252b9de8-d915-4788-aaeb-ec8c2395f970", "gatewayId": GATEWAY_ID,
            "datasourceType": "Sql",
            "connectionDetails": "{\"server\":\"localSQL\",\"database\":\"salesDB\"}",
            "credentialType": "Windows", "datasourceName": "SQL Datasource"
        }),
        json!({
            "id": "91f8aec2-4b32-476f-909b-3241999620ec", "gatewayId": GATEWAY_ID,
            "datasourceType": "AnalysisServices",
            "connectionDetails": "{\"server\":\"localAS\",\"database\":\"marketingDB\"}",
            "credentialType": "Windows", "datasourceName": "AS Datasource"
        }),
    ]
}

fn start_refresh(shared: &Shared, call: &ApiCall<'_>, group: Option<&str>, id: &str) -> Response {
    let body = match call.json() {
        Ok(b) => b,
        Err(answer) => return *answer,
    };
    if id == PUSH_DATASET_ID {
        return error(
            400,
            "InvalidRequest",
            "Dataset SalesPush is a push dataset and cannot be refreshed.",
        );
    }
    if let Some(option) = body.get("notifyOption")
        && !matches!(
            option.as_str(),
            Some("MailOnFailure" | "MailOnCompletion" | "NoNotification")
        )
    {
        return error(
            400,
            "InvalidRequest",
            &format!(
                "notifyOption {option} is not one of MailOnFailure, MailOnCompletion, NoNotification"
            ),
        );
    }
    if let Some(kind) = body.get("type")
        && !matches!(
            kind.as_str(),
            Some("Full" | "ClearValues" | "Calculate" | "DataOnly" | "Automatic" | "Defragment")
        )
    {
        return error(
            400,
            "InvalidRequest",
            &format!("refresh type {kind} is not valid"),
        );
    }
    if let Some(mode) = body.get("commitMode")
        && !matches!(mode.as_str(), Some("transactional" | "partialBatch"))
    {
        return error(
            400,
            "InvalidRequest",
            &format!("commitMode {mode} is not valid"),
        );
    }
    let enhanced = [
        "type",
        "commitMode",
        "maxParallelism",
        "retryCount",
        "objects",
        "applyRefreshPolicy",
        "effectiveDate",
        "timeout",
    ]
    .iter()
    .any(|k| body.get(*k).is_some());
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    world.counter += 1;
    let number = world.counter;
    let request_id = guid(number, 0x4ef);
    world.refreshes.push(Refresh {
        request_id: request_id.clone(),
        number,
        dataset: id.to_string(),
        enhanced,
        polls_left: shared.config.refresh_polls,
    });
    let scope = match group {
        Some(g) => format!("groups/{g}/"),
        None => String::new(),
    };
    let location = format!(
        "http://{}/v1.0/myorg/{scope}datasets/{id}/refreshes/{request_id}",
        call.host
    );
    let mut answer = StatusCode::ACCEPTED.into_response();
    for (name, value) in [("x-ms-request-id", request_id), ("location", location)] {
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            answer.headers_mut().insert(name, value);
        }
    }
    answer
}

fn history(shared: &Shared, call: &ApiCall<'_>, id: &str) -> Response {
    let top = match call.query.get("$top") {
        None => 60,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return error(
                    400,
                    "InvalidRequest",
                    &format!("$top `{t}` is not a positive integer"),
                );
            }
        },
    };
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    let mut entries = Vec::new();
    for refresh in world.refreshes.iter_mut().rev().filter(|r| r.dataset == id) {
        if entries.len() >= top {
            break;
        }
        let start = format!("2024-05-01T10:{:02}:00Z", refresh.number % 60);
        let mut entry = json!({
            "requestId": refresh.request_id,
            "id": refresh.number,
            "refreshType": if refresh.enhanced { "ViaEnhancedApi" } else { "ViaApi" },
            "startTime": start,
        });
        if refresh.polls_left > 0 {
            refresh.polls_left -= 1;
            entry["status"] = json!("Unknown");
        } else {
            let end = format!("2024-05-01T10:{:02}:30Z", refresh.number % 60);
            entry["endTime"] = json!(end);
            entry["refreshAttempts"] = json!([{"attemptId": 1, "startTime": start,
                "endTime": end, "type": "Data"}]);
            if refresh.dataset == FAILING_DATASET_ID {
                entry["status"] = json!("Failed");
                entry["serviceExceptionJson"] = json!(
                    "{\"errorCode\":\"ModelRefreshFailed_CredentialsNotSpecified\",\"errorDescription\":\"The credentials of the data source are missing or expired.\"}"
                );
            } else {
                entry["status"] = json!("Completed");
            }
        }
        entries.push(entry);
    }
    json(200, json!({"value": entries}))
}

fn push_rows(shared: &Shared, call: &ApiCall<'_>, id: &str, table: &str) -> Response {
    if id != PUSH_DATASET_ID {
        return error(
            400,
            "InvalidRequest",
            &format!("Dataset {id} is not a push dataset (addRowsAPIEnabled is false)."),
        );
    }
    if table != PUSH_TABLE {
        return error(
            404,
            "ItemNotFound",
            &format!("Table '{table}' was not found in dataset {id}."),
        );
    }
    if shared.push_limited.take() {
        let mut answer = error(
            429,
            "TooManyRequests",
            "The rate limit of POST rows requests for this dataset was exceeded; retry later.",
        );
        if let Ok(value) =
            header::HeaderValue::from_str(&shared.config.retry_after_secs.to_string())
        {
            answer.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return answer;
    }
    let body = match call.json() {
        Ok(b) => b,
        Err(answer) => return *answer,
    };
    let Some(rows) = body.get("rows").and_then(Value::as_array) else {
        return error(
            400,
            "InvalidRequest",
            "the body must be {\"rows\": [ ... ]}",
        );
    };
    if rows.len() > shared.config.max_rows_per_request {
        return error(
            400,
            "InvalidRequest",
            &format!(
                "The request has {} rows, more than the limit of {} rows per request.",
                rows.len(),
                shared.config.max_rows_per_request
            ),
        );
    }
    if let Some(n) = rows.iter().position(|r| !r.is_object()) {
        return error(
            400,
            "InvalidRequest",
            &format!("row {n} is not a JSON object"),
        );
    }
    shared.config.pushed.extend(rows);
    StatusCode::OK.into_response()
}

fn clone_report(shared: &Shared, call: &ApiCall<'_>, group: Option<&str>, id: &str) -> Response {
    let body = match call.json() {
        Ok(b) => b,
        Err(answer) => return *answer,
    };
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    let Some((_, _, dataset)) = world.reports.iter().find(|(r, _, _)| r == id).cloned() else {
        return error(
            404,
            "PowerBIEntityNotFound",
            &format!("Report {id} was not found."),
        );
    };
    let Some(name) = body["name"].as_str().filter(|n| !n.trim().is_empty()) else {
        return error(400, "InvalidRequest", "The new report's name is required.");
    };
    let target_workspace = match body.get("targetWorkspaceId") {
        None | Some(Value::Null) => group.unwrap_or(GROUP_ID).to_string(),
        Some(Value::String(w)) if is_guid(w) => w.clone(),
        Some(other) => {
            return error(
                400,
                "InvalidRequest",
                &format!("targetWorkspaceId {other} is not a GUID"),
            );
        }
    };
    let target_dataset = match body.get("targetModelId") {
        None | Some(Value::Null) => dataset,
        Some(Value::String(m)) => m.clone(),
        Some(other) => {
            return error(
                400,
                "InvalidRequest",
                &format!("targetModelId {other} is not a string"),
            );
        }
    };
    world.counter += 1;
    let new_id = guid(world.counter, 0x7e9);
    if target_workspace == GROUP_ID {
        world
            .reports
            .push((new_id.clone(), name.to_string(), target_dataset.clone()));
    }
    json(
        200,
        report(&target_workspace, &new_id, name, &target_dataset),
    )
}

fn rebind_report(shared: &Shared, call: &ApiCall<'_>, id: &str, datasets: &[Value]) -> Response {
    let body = match call.json() {
        Ok(b) => b,
        Err(answer) => return *answer,
    };
    let Some(dataset) = body["datasetId"].as_str() else {
        return error(400, "InvalidRequest", "datasetId is required.");
    };
    if !datasets.iter().any(|d| d["id"] == dataset) {
        return not_found_dataset(dataset);
    }
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    let Some(report) = world.reports.iter_mut().find(|(r, _, _)| r == id) else {
        return error(
            404,
            "PowerBIEntityNotFound",
            &format!("Report {id} was not found."),
        );
    };
    report.2 = dataset.to_string();
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_look_like_guids() {
        assert!(is_guid(&guid(7, 0x4ef)));
        assert!(is_guid(GROUP_ID));
        assert!(!is_guid("not-a-guid"));
    }
}
