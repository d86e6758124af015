//! The fake of the Snowflake SQL API v2 (`/api/v2/statements`), written from Snowflake's
//! published API (the OpenAPI file `sqlapi.yaml` and docs.snowflake.com/developer-guide/sql-api).
//!
//! ## What it checks
//!
//! Every request must carry a non-empty `User-Agent` (400 otherwise), an
//! `Authorization: Bearer` token (401 with Snowflake's `{code, message}` body otherwise) and,
//! when present, an `Accept` that allows `application/json` (406). The token is read by the
//! `X-Snowflake-Authorization-Token-Type` header:
//!
//! - `KEYPAIR_JWT`: the JWT's header must say `alg: RS256`; its claims must have
//!   `iss = ACCOUNT.USER.SHA256:<base64 of a 32-byte digest>`, `sub = ACCOUNT.USER` (the same
//!   account and user, upper case, and [`Config::account`] / [`Config::user`] when set),
//!   numeric `iat` and `exp`, `exp` in the future and `exp - iat` at most
//!   [`Config::max_jwt_lifetime_secs`] (3600). With [`Config::public_key_pem`], the
//!   fingerprint in `iss` must be the SHA-256 of that key's DER and the signature must verify.
//! - `OAUTH`: the token must be one of [`Config::oauth_tokens`] (`fake-token`).
//! - `PROGRAMMATIC_ACCESS_TOKEN`: one of [`Config::pat_tokens`] (`fake-pat`).
//! - no header: see [`MissingTokenType`] (older docs: OAuth is assumed; newer docs: the
//!   token is inspected).
//!
//! A submit must be `Content-Type: application/json` (415), have a `statement` (400), a
//! `requestId` that is a UUID when given (400), `async`/`nullable`/`retry` of `true` or
//! `false`, and well-formed `bindings` (`{"1": {"type": "FIXED", "value": "123"}}`, a value
//! being a string, `null` or an array of them for array binding; 400 otherwise).
//!
//! ## What it answers
//!
//! - `POST /api/v2/statements`: 202 `QueryStatus` while the statement is "running"
//!   ([`Config::pending_polls`] answers of 202 in all, counting the submit's; `async=true`
//!   gives at least one), then 200 `ResultSet`, 422 `QueryFailureStatus` or 408. The first
//!   [`Config::rate_limited`] submits are answered 429 (with `Retry-After` only when
//!   [`Config::retry_after_secs`] is set: Snowflake documents none). With
//!   [`Config::unavailable_after_submit`], a submit is registered (and run) but answered 503,
//!   as when an answer is lost; resending the same `requestId` with `retry=true` answers
//!   that statement's status without running it again, while a resend without `retry=true`
//!   runs it again.
//! - `GET /api/v2/statements/{handle}[?partition=N]`: 202 while running, then the result:
//!   partition 0 with `resultSetMetaData` (`rowType`, `partitionInfo`, `numRows`) and the
//!   first [`Config::partition_rows`] rows, partition N > 0 with `data` only (unless
//!   [`Config::later_partitions_with_metadata`]), and a `Link` header with `first`, `prev`,
//!   `next` and `last`. Cells are text in Snowflake's `jsonv2` forms: `FIXED` as decimal
//!   text at the column's scale, `DATE` as days since 1970-01-01, `TIMESTAMP_NTZ/LTZ` as
//!   `seconds.nanoseconds`, `TIMESTAMP_TZ` as `seconds.nanoseconds offset` (minutes + 1440).
//! - `POST /api/v2/statements/{handle}/cancel`: 200 `CancelStatus` for a running statement,
//!   which then answers 422 `000604` "SQL execution canceled"; 422 for an unknown or a
//!   finished one.
//!
//! ## The SQL it understands
//!
//! It is not a SQL engine: it recognizes statements by shape, over in-memory tables.
//!
//! - `SELECT * | col, ... | COUNT(*) FROM t [WHERE c op v [AND ...]] [ORDER BY c [DESC]]
//!   [LIMIT n]`, and `SELECT literal, ...` without `FROM`; `op` is one of `= <> != < <= > >=`,
//!   `v` a `?` / `:N` bind, a number, a `'string'` or `NULL`.
//! - `INSERT INTO t [(cols)] VALUES (...), (...)` with binds, literals, `NULL` and
//!   `CURRENT_TIMESTAMP()`; an array bind inserts one row per element (all arrays the same
//!   length).
//! - `CREATE [OR REPLACE] TABLE [IF NOT EXISTS] t (col TYPE [modifiers], ...)`,
//!   `ALTER TABLE t ADD [COLUMN] col TYPE`, `DROP TABLE [IF EXISTS] t`,
//!   `DELETE FROM t [WHERE ...]`.
//! - `SELECT SYSTEM$WAIT(n)` / `CALL SYSTEM$WAIT(n)`: "takes" `n` seconds, so a body
//!   `timeout` below `n` gives the documented 408 (`000630`).
//! - Several statements separated by `;` need `parameters.multi_statement_count` (either
//!   case, number or text; 0 = any) equal to their number (422 `000008` otherwise); the
//!   answer holds `statementHandles`, each readable with GET.
//!
//! Names are upper-cased unless double-quoted; a qualified name (`DB.SCHEMA.T`) uses its
//! last part. An unknown table is 422 `002003` (SQL state `42S02`), anything else it cannot
//! read is 422 `001003` (`42000`), a `:name` bind is 422 `002049`.
//!
//! ## The default configuration
//!
//! Accepts OAuth token `fake-token`, programmatic access token `fake-pat` and any well-formed
//! key-pair JWT (no account, user or key fixed, so the signature is not checked); answers
//! every statement 202 twice (the submit and the first poll) before its result on the
//! second poll, puts two rows in a partition, and answers the first submit 429. It holds one table, `SALES_DATA`
//! (`ID NUMBER(38,0), REGION VARCHAR, AMOUNT NUMBER(12,2), UPDATED_AT TIMESTAMP_NTZ`) with
//! four rows updated in 2024-01 .. 2024-04, so that
//! `SELECT * FROM sales_data WHERE updated_at > ?` bound to the epoch answers two
//! partitions.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde_json::{Map, Value, json};

use crate::{Fake, Journal, json as json_answer, serve};

/// What the fake does with a request that has no `X-Snowflake-Authorization-Token-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingTokenType {
    /// The token is taken as an OAuth token (the older docs and the OpenAPI file).
    #[default]
    OAuth,
    /// The token is inspected: three dot-separated parts is a key-pair JWT, else OAuth
    /// (the newer docs).
    Inspect,
    /// The request is refused with 401 (for testing that a client always sends the header).
    Reject,
}

/// A table the fake starts with.
#[derive(Debug, Clone)]
pub struct Table {
    /// Its name (compared as given: write it upper case for an unquoted name).
    pub name: String,
    /// Columns: name and SQL type (`NUMBER(12,2)`, `VARCHAR`, `TIMESTAMP_NTZ`).
    pub columns: Vec<(String, String)>,
    /// Rows of cells as text (`"12.50"`, `"2024-01-05 08:00:00"`) or `None` for NULL.
    pub rows: Vec<Vec<Option<String>>>,
}

impl Table {
    /// A table with these columns and no rows.
    pub fn new(name: &str, columns: &[(&str, &str)]) -> Self {
        Self {
            name: name.to_string(),
            columns: columns
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row of text cells (`None` is NULL).
    pub fn row(mut self, cells: &[Option<&str>]) -> Self {
        self.rows
            .push(cells.iter().map(|c| c.map(str::to_string)).collect());
        self
    }

    /// The default table `SALES_DATA`.
    pub fn sales_data() -> Self {
        Table::new(
            "SALES_DATA",
            &[
                ("ID", "NUMBER(38,0)"),
                ("REGION", "VARCHAR"),
                ("AMOUNT", "NUMBER(12,2)"),
                ("UPDATED_AT", "TIMESTAMP_NTZ"),
            ],
        )
        .row(&[
            Some("1"),
            Some("north"),
            Some("120.50"),
            Some("2024-01-05 08:00:00"),
        ])
        .row(&[
            Some("2"),
            Some("south"),
            Some("75.00"),
            Some("2024-02-10 12:30:00"),
        ])
        .row(&[
            Some("3"),
            Some("east"),
            Some("310.25"),
            Some("2024-03-15 16:45:00"),
        ])
        .row(&[Some("4"), Some("west"), None, Some("2024-04-20 09:15:00.5")])
    }
}

/// The fake's knobs; [`Config::default`] is documented in the module docs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The account the JWT must name (upper case, no region); any when `None`.
    pub account: Option<String>,
    /// The user the JWT must name (upper case); any when `None`.
    pub user: Option<String>,
    /// The user's registered RSA public key (PEM, `BEGIN PUBLIC KEY`): when set, the JWT's
    /// fingerprint must match it and its signature must verify.
    pub public_key_pem: Option<String>,
    /// Accepted OAuth tokens.
    pub oauth_tokens: Vec<String>,
    /// Accepted programmatic access tokens.
    pub pat_tokens: Vec<String>,
    /// What a request without the token-type header means.
    pub missing_token_type: MissingTokenType,
    /// The longest `exp - iat` accepted, in seconds.
    pub max_jwt_lifetime_secs: i64,
    /// How many 202 answers a statement gets (the submit's included) before its result.
    pub pending_polls: u32,
    /// Rows per result partition (at least 1).
    pub partition_rows: usize,
    /// How many submits are answered 429 first.
    pub rate_limited: u32,
    /// A `Retry-After` for the 429 answers (Snowflake documents none).
    pub retry_after_secs: Option<u64>,
    /// How many submits are registered (and run) but answered 503, as if the answer were
    /// lost on the way.
    pub unavailable_after_submit: u32,
    /// Whether partitions after the first carry `resultSetMetaData` too.
    pub later_partitions_with_metadata: bool,
    /// Whether `rowType` type names are upper case (`FIXED`, as the OpenAPI example) rather
    /// than lower case (`fixed`, as real answers).
    pub upper_case_type_names: bool,
    /// The tables the fake starts with.
    pub tables: Vec<Table>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            account: None,
            user: None,
            public_key_pem: None,
            oauth_tokens: vec!["fake-token".into()],
            pat_tokens: vec!["fake-pat".into()],
            missing_token_type: MissingTokenType::OAuth,
            max_jwt_lifetime_secs: 3600,
            pending_polls: 2,
            partition_rows: 2,
            rate_limited: 1,
            retry_after_secs: None,
            unavailable_after_submit: 0,
            later_partitions_with_metadata: false,
            upper_case_type_names: false,
            tables: vec![Table::sales_data()],
        }
    }
}

/// The `SHA256:<base64>` fingerprint of a public key in PEM (`BEGIN PUBLIC KEY`), as
/// Snowflake shows it in `DESC USER` (`RSA_PUBLIC_KEY_FP`); `None` when it is not PEM.
pub fn public_key_fingerprint(pem: &str) -> Option<String> {
    let der = pem_body(pem)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    ))
}

fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Runs the fake on a free loopback port.
pub async fn start(config: Config) -> std::io::Result<Fake> {
    let journal = Journal::new();
    serve(router(config, journal.clone()), journal).await
}

/// The fake's routes (the journal is filled by [`crate::serve`]).
pub fn router(config: Config, journal: Journal) -> Router {
    let _ = journal;
    let mut tables = BTreeMap::new();
    for t in &config.tables {
        let mut columns = Vec::new();
        for (name, ty) in &t.columns {
            let kind = parse_type_text(ty).unwrap_or(Kind::Text);
            columns.push(ColumnDef {
                name: name.clone(),
                kind,
            });
        }
        let rows = t
            .rows
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let text = row.get(i).cloned().flatten();
                        Cell::convert(&c.kind, text.as_deref())
                            .unwrap_or_else(|_| text.map_or(Cell::Null, Cell::Text))
                    })
                    .collect()
            })
            .collect();
        tables.insert(t.name.clone(), FakeTable { columns, rows });
    }
    let state = Shared(Arc::new(Mutex::new(Inner {
        rate_limited: config.rate_limited,
        unavailable: config.unavailable_after_submit,
        config,
        tables,
        statements: HashMap::new(),
        by_request: HashMap::new(),
        next_handle: 1,
    })));
    Router::new()
        .route("/api/v2/statements", post(submit))
        .route("/api/v2/statements/{handle}", get(status))
        .route("/api/v2/statements/{handle}/cancel", post(cancel))
        .fallback(|| async {
            json_answer(
                404,
                json!({"code": "390404", "message": "Not Found. The request endpoint is not valid."}),
            )
        })
        .with_state(state)
}

#[derive(Clone)]
struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Inner {
    config: Config,
    tables: BTreeMap<String, FakeTable>,
    statements: HashMap<String, Stmt>,
    by_request: HashMap<String, String>,
    rate_limited: u32,
    unavailable: u32,
    next_handle: u64,
}

struct FakeTable {
    columns: Vec<ColumnDef>,
    rows: Vec<Vec<Cell>>,
}

#[derive(Debug, Clone)]
struct ColumnDef {
    name: String,
    kind: Kind,
}

/// A bound value: `null`, a string, or an array of them.
#[derive(Debug, Clone)]
enum BindValue {
    One(Option<String>),
    Many(Vec<Option<String>>),
}

struct Stmt {
    request_id: Option<String>,
    sql: String,
    bindings: Vec<BindValue>,
    timeout: u64,
    multi_count: Option<u64>,
    nullable: bool,
    pending: u32,
    cancelled: bool,
    outcome: Option<Outcome>,
    created_on: i64,
}

#[derive(Clone)]
enum Outcome {
    Rows(ResultData),
    Multi(Vec<String>),
    Failed(Failure),
}

#[derive(Clone)]
struct ResultData {
    table: String,
    columns: Vec<ColumnDef>,
    rows: Vec<Vec<Cell>>,
    stats: Option<Value>,
}

#[derive(Clone, Debug)]
struct Failure {
    status: u16,
    code: &'static str,
    sql_state: &'static str,
    message: String,
}

impl Failure {
    fn new(code: &'static str, sql_state: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: 422,
            code,
            sql_state,
            message: message.into(),
        }
    }

    fn syntax(message: impl Into<String>) -> Self {
        Self::new(
            "001003",
            "42000",
            format!("SQL compilation error:\n{}", message.into()),
        )
    }

    fn no_table(name: &str) -> Self {
        Self::new(
            "002003",
            "42S02",
            format!("SQL compilation error:\nObject '{name}' does not exist or not authorized."),
        )
    }

    fn bad_value(message: impl Into<String>) -> Self {
        Self::new("100038", "22018", message)
    }
}

// ---------------------------------------------------------------------------------------
// Request checks
// ---------------------------------------------------------------------------------------

fn error_body(status: u16, code: &str, message: &str) -> Response {
    json_answer(status, json!({"code": code, "message": message}))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The checks every request passes: user agent, accept, authorization.
fn check_common(inner: &Inner, headers: &HeaderMap) -> Result<(), Box<Response>> {
    if header(headers, "user-agent").is_none_or(|ua| ua.trim().is_empty()) {
        return Err(Box::new(error_body(
            400,
            "390142",
            "The User-Agent header is required (applicationName/applicationVersion).",
        )));
    }
    if let Some(accept) = header(headers, "accept") {
        let ok = accept.split(',').any(|a| {
            let a = a.split(';').next().unwrap_or("").trim();
            a == "application/json" || a == "*/*" || a == "application/*"
        });
        if !ok {
            return Err(Box::new(error_body(
                406,
                "390406",
                "Not Acceptable. The API answers application/json only.",
            )));
        }
    }
    check_auth(&inner.config, headers)
}

fn check_auth(config: &Config, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let unauthorized = |code: &str, message: String| Err(Box::new(error_body(401, code, &message)));
    let Some(authorization) = header(headers, "authorization") else {
        return unauthorized("390101", "Authorization header is missing.".into());
    };
    let Some(token) = authorization.strip_prefix("Bearer ") else {
        return unauthorized(
            "390101",
            "Authorization header must be `Bearer <token>`.".into(),
        );
    };
    let token = token.trim();
    let kind = match header(headers, "x-snowflake-authorization-token-type") {
        Some(kind) => kind.trim().to_ascii_uppercase(),
        None => match config.missing_token_type {
            MissingTokenType::OAuth => "OAUTH".to_string(),
            MissingTokenType::Inspect => {
                if token.split('.').count() == 3 {
                    "KEYPAIR_JWT".to_string()
                } else {
                    "OAUTH".to_string()
                }
            }
            MissingTokenType::Reject => {
                return unauthorized(
                    "390101",
                    "X-Snowflake-Authorization-Token-Type header is missing.".into(),
                );
            }
        },
    };
    match kind.as_str() {
        "KEYPAIR_JWT" => check_jwt(config, token)
            .or_else(|why| unauthorized("390144", format!("JWT token is invalid. [{why}]"))),
        "OAUTH" => {
            if config.oauth_tokens.iter().any(|t| t == token) {
                Ok(())
            } else {
                unauthorized("390303", "Invalid OAuth access token.".into())
            }
        }
        "PROGRAMMATIC_ACCESS_TOKEN" => {
            if config.pat_tokens.iter().any(|t| t == token) {
                Ok(())
            } else {
                unauthorized("394400", "Programmatic access token is invalid.".into())
            }
        }
        other => unauthorized(
            "390101",
            format!("Unsupported X-Snowflake-Authorization-Token-Type `{other}`."),
        ),
    }
}

fn b64_json(part: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The JWT checks of the module docs; the reason on failure.
fn check_jwt(config: &Config, token: &str) -> Result<(), String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err("not a JWT (three dot-separated parts)".into());
    }
    let head = b64_json(parts[0]).ok_or("the header is not base64url JSON")?;
    if head.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(format!("alg must be RS256, not {}", head["alg"]));
    }
    let claims = b64_json(parts[1]).ok_or("the claims are not base64url JSON")?;
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or("no iss claim")?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or("no sub claim")?;
    let (who, fingerprint) = iss
        .split_once(".SHA256:")
        .ok_or("iss must be ACCOUNT.USER.SHA256:<fingerprint>")?;
    if who != sub {
        return Err(format!("iss names `{who}` but sub is `{sub}`"));
    }
    let (account, user) = who.split_once('.').ok_or("sub must be ACCOUNT.USER")?;
    if account.is_empty() || user.is_empty() || account.contains('.') {
        return Err(format!(
            "sub `{sub}` must be ACCOUNT.USER with an account without region"
        ));
    }
    if who != who.to_ascii_uppercase() {
        return Err(format!("account and user must be upper case in `{who}`"));
    }
    if let Some(expected) = &config.account
        && account != expected
    {
        return Err(format!("unknown account `{account}`"));
    }
    if let Some(expected) = &config.user
        && user != expected
    {
        return Err(format!("unknown user `{user}`"));
    }
    let digest = base64::engine::general_purpose::STANDARD
        .decode(fingerprint)
        .map_err(|_| "the fingerprint is not base64")?;
    if digest.len() != 32 {
        return Err("the fingerprint is not a SHA-256 digest".into());
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or("iat must be a number")?;
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or("exp must be a number")?;
    let now = chrono::Utc::now().timestamp();
    if exp <= now {
        return Err("the JWT has expired".into());
    }
    if iat > now + 60 {
        return Err("iat is in the future".into());
    }
    if exp - iat > config.max_jwt_lifetime_secs {
        return Err(format!(
            "exp - iat is {} s, more than {} s",
            exp - iat,
            config.max_jwt_lifetime_secs
        ));
    }
    if let Some(pem) = &config.public_key_pem {
        let registered = public_key_fingerprint(pem).ok_or("the registered key is not PEM")?;
        if registered != format!("SHA256:{fingerprint}") {
            return Err(format!(
                "fingerprint SHA256:{fingerprint} is not the registered key's {registered}"
            ));
        }
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| format!("the registered key is unusable: {e}"))?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.validate_aud = false;
        validation.leeway = 60;
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| format!("the signature does not verify: {e}"))?;
    }
    Ok(())
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn query_pairs(query: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn flag(pairs: &[(String, String)], name: &str) -> Result<bool, Box<Response>> {
    match pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
    {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(Box::new(error_body(
            400,
            "390400",
            &format!("Query parameter `{name}` must be true or false, not `{other}`."),
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

async fn submit(
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = state.lock();
    if let Err(r) = check_common(&inner, &headers) {
        return *r;
    }
    if let Some(ct) = header(&headers, "content-type")
        && ct.split(';').next().map(str::trim) != Some("application/json")
    {
        return error_body(
            415,
            "390415",
            "Unsupported Media Type. The API supports application/json only.",
        );
    }
    let pairs = query_pairs(&query);
    let request_id = pairs
        .iter()
        .find(|(k, _)| k == "requestId")
        .map(|(_, v)| v.clone());
    if let Some(id) = &request_id
        && !is_uuid(id)
    {
        return error_body(400, "390400", &format!("requestId `{id}` is not a UUID."));
    }
    let (asynchronous, nullable, retry) = match (
        flag(&pairs, "async"),
        pairs
            .iter()
            .find(|(k, _)| k == "nullable")
            .map_or(Ok(true), |_| flag(&pairs, "nullable")),
        flag(&pairs, "retry"),
    ) {
        (Ok(a), Ok(n), Ok(r)) => (a, n, r),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return *e,
    };
    if inner.rate_limited > 0 {
        inner.rate_limited -= 1;
        let mut response = error_body(
            429,
            "390429",
            "Limit Exceeded. The number of requests hit the rate limit. The application must slow down the frequency of hitting the API endpoints.",
        );
        if let Some(after) = inner.config.retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&after.to_string())
        {
            response.headers_mut().insert("retry-after", v);
        }
        return response;
    }
    if retry
        && let Some(id) = &request_id
        && let Some(handle) = inner.by_request.get(id).cloned()
    {
        return answer_status(&mut inner, &handle, 0);
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error_body(400, "390400", &format!("The request body is not JSON: {e}")),
    };
    let statement = match body.get("statement").and_then(Value::as_str) {
        Some(s) if !s.trim().is_empty() => s.to_string(),
        _ => return error_body(400, "390400", "The request body must have a `statement`."),
    };
    let timeout = match body.get("timeout") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_u64() {
            Some(t) => t,
            None => return error_body(400, "390400", "`timeout` must be a non-negative integer."),
        },
    };
    let bindings = match parse_bindings(body.get("bindings")) {
        Ok(b) => b,
        Err(why) => return error_body(400, "390400", &why),
    };
    let multi_count = match multi_statement_count(body.get("parameters")) {
        Ok(c) => c,
        Err(why) => return error_body(400, "390400", &why),
    };
    for field in ["database", "schema", "warehouse", "role"] {
        if let Some(v) = body.get(field)
            && !v.is_string()
            && !v.is_null()
        {
            return error_body(400, "390400", &format!("`{field}` must be a string."));
        }
    }
    let handle = new_handle(&mut inner);
    let pending = if asynchronous {
        inner.config.pending_polls.max(1)
    } else {
        inner.config.pending_polls
    };
    inner.statements.insert(
        handle.clone(),
        Stmt {
            request_id: request_id.clone(),
            sql: statement,
            bindings,
            timeout,
            multi_count,
            nullable,
            pending,
            cancelled: false,
            outcome: None,
            created_on: chrono::Utc::now().timestamp_millis(),
        },
    );
    if let Some(id) = request_id {
        inner.by_request.insert(id, handle.clone());
    }
    if inner.unavailable > 0 {
        inner.unavailable -= 1;
        // The statement runs, but its answer is "lost".
        let _ = answer_status(&mut inner, &handle, 0);
        return error_body(503, "390503", "Service Unavailable.");
    }
    answer_status(&mut inner, &handle, 0)
}

async fn status(
    State(state): State<Shared>,
    Path(handle): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut inner = state.lock();
    if let Err(r) = check_common(&inner, &headers) {
        return *r;
    }
    let pairs = query_pairs(&query);
    let partition = match pairs.iter().find(|(k, _)| k == "partition") {
        None => 0,
        Some((_, v)) => match v.parse::<usize>() {
            Ok(p) => p,
            Err(_) => {
                return error_body(
                    400,
                    "390400",
                    &format!("`partition` must be a number, not `{v}`."),
                );
            }
        },
    };
    answer_status(&mut inner, &handle, partition)
}

async fn cancel(
    State(state): State<Shared>,
    Path(handle): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut inner = state.lock();
    if let Err(r) = check_common(&inner, &headers) {
        return *r;
    }
    let Some(stmt) = inner.statements.get_mut(&handle) else {
        return not_found(&handle);
    };
    if stmt.outcome.is_some() {
        return json_answer(
            422,
            json!({
                "code": "000709",
                "sqlState": "02000",
                "message": format!("Statement {handle} has already completed and cannot be canceled."),
                "statementHandle": handle,
            }),
        );
    }
    stmt.cancelled = true;
    json_answer(
        200,
        json!({
            "code": "000000",
            "sqlState": "00000",
            "message": "successfully canceled",
            "statementHandle": handle,
            "statementStatusUrl": format!("/api/v2/statements/{handle}"),
        }),
    )
}

fn not_found(handle: &str) -> Response {
    json_answer(
        422,
        json!({
            "code": "000709",
            "sqlState": "02000",
            "message": format!("Statement {handle} not found"),
            "statementHandle": handle,
        }),
    )
}

fn new_handle(inner: &mut Inner) -> String {
    let n = inner.next_handle;
    inner.next_handle += 1;
    format!("01b3f0c2-0000-4d1e-8000-{n:012x}")
}

fn status_url(handle: &str, request_id: Option<&str>) -> String {
    match request_id {
        Some(id) => format!("/api/v2/statements/{handle}?requestId={id}"),
        None => format!("/api/v2/statements/{handle}"),
    }
}

/// Answers the state of statement `handle`: 202 while pending (each answer counts one
/// down), else its outcome at `partition`.
fn answer_status(inner: &mut Inner, handle: &str, partition: usize) -> Response {
    let Some(stmt) = inner.statements.get_mut(handle) else {
        return not_found(handle);
    };
    if stmt.cancelled {
        return failure_answer(
            handle,
            stmt.request_id.as_deref(),
            stmt.created_on,
            &Failure::new("000604", "57014", "SQL execution canceled"),
        );
    }
    if stmt.pending > 0 && stmt.outcome.is_none() {
        stmt.pending -= 1;
        return json_answer(
            202,
            json!({
                "code": "333334",
                "sqlState": "01000",
                "message": "Asynchronous execution in progress. Use provided query id to perform query monitoring and management.",
                "statementHandle": handle,
                "statementStatusUrl": status_url(handle, stmt.request_id.as_deref()),
                "createdOn": stmt.created_on,
            }),
        );
    }
    if stmt.outcome.is_none() {
        let outcome = run_statement(inner, handle);
        if let Some(stmt) = inner.statements.get_mut(handle) {
            stmt.outcome = Some(outcome);
        }
    }
    let Some(stmt) = inner.statements.get(handle) else {
        return not_found(handle);
    };
    let request_id = stmt.request_id.clone();
    let created_on = stmt.created_on;
    let nullable = stmt.nullable;
    match stmt.outcome.clone() {
        Some(Outcome::Failed(f)) => failure_answer(handle, request_id.as_deref(), created_on, &f),
        Some(Outcome::Rows(data)) => {
            let upper = inner.config.upper_case_type_names;
            let with_meta = partition == 0 || inner.config.later_partitions_with_metadata;
            result_answer(
                handle,
                request_id.as_deref(),
                created_on,
                &data,
                partition,
                inner.config.partition_rows.max(1),
                nullable,
                upper,
                with_meta,
                None,
            )
        }
        Some(Outcome::Multi(handles)) => {
            let data = ResultData {
                table: String::new(),
                columns: vec![ColumnDef {
                    name: "multiple statement execution".into(),
                    kind: Kind::Text,
                }],
                rows: vec![vec![Cell::Text(
                    "Multiple statements executed successfully.".into(),
                )]],
                stats: None,
            };
            result_answer(
                handle,
                request_id.as_deref(),
                created_on,
                &data,
                partition,
                inner.config.partition_rows.max(1),
                nullable,
                inner.config.upper_case_type_names,
                true,
                Some(handles),
            )
        }
        None => not_found(handle),
    }
}

fn failure_answer(
    handle: &str,
    request_id: Option<&str>,
    created_on: i64,
    failure: &Failure,
) -> Response {
    json_answer(
        failure.status,
        json!({
            "code": failure.code,
            "sqlState": failure.sql_state,
            "message": failure.message,
            "statementHandle": handle,
            "statementStatusUrl": status_url(handle, request_id),
            "createdOn": created_on,
        }),
    )
}

#[allow(clippy::too_many_arguments)]
fn result_answer(
    handle: &str,
    request_id: Option<&str>,
    created_on: i64,
    data: &ResultData,
    partition: usize,
    per_partition: usize,
    nullable: bool,
    upper: bool,
    with_meta: bool,
    statement_handles: Option<Vec<String>>,
) -> Response {
    let chunks: Vec<&[Vec<Cell>]> = if data.rows.is_empty() {
        vec![&[]]
    } else {
        data.rows.chunks(per_partition).collect()
    };
    let Some(rows) = chunks.get(partition) else {
        return json_answer(
            422,
            json!({
                "code": "000709",
                "sqlState": "02000",
                "message": format!("Partition {partition} of statement {handle} does not exist; the result has {} partition(s).", chunks.len()),
                "statementHandle": handle,
            }),
        );
    };
    let render = |row: &Vec<Cell>| -> Value {
        Value::Array(
            row.iter()
                .zip(&data.columns)
                .map(|(cell, col)| match cell.render(&col.kind) {
                    Some(text) => Value::String(text),
                    None if nullable => Value::Null,
                    None => Value::String("null".into()),
                })
                .collect(),
        )
    };
    let rows_json: Vec<Value> = rows.iter().map(render).collect();
    let mut body = Map::new();
    if with_meta {
        let row_type: Vec<Value> = data
            .columns
            .iter()
            .map(|c| c.kind.row_type(&c.name, &data.table, upper))
            .collect();
        let partition_info: Vec<Value> = chunks
            .iter()
            .map(|c| {
                let size: usize = c.iter().map(|r| render(r).to_string().len()).sum::<usize>() + 2;
                json!({"rowCount": c.len(), "uncompressedSize": size})
            })
            .collect();
        body.insert("code".into(), json!("090001"));
        body.insert("sqlState".into(), json!("00000"));
        body.insert("message".into(), json!("Statement executed successfully."));
        body.insert("statementHandle".into(), json!(handle));
        body.insert(
            "statementStatusUrl".into(),
            json!(status_url(handle, request_id)),
        );
        body.insert("createdOn".into(), json!(created_on));
        body.insert(
            "resultSetMetaData".into(),
            json!({
                "numRows": data.rows.len(),
                "format": "jsonv2",
                "rowType": row_type,
                "partitionInfo": partition_info,
                "nullable": nullable,
            }),
        );
        if let Some(stats) = &data.stats {
            body.insert("stats".into(), stats.clone());
        }
        if let Some(handles) = statement_handles {
            body.insert("statementHandles".into(), json!(handles));
        }
    }
    body.insert("data".into(), Value::Array(rows_json));
    let mut response = json_answer(200, Value::Object(body));
    let link = |n: usize, rel: &str| {
        let base = status_url(handle, request_id);
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("<{base}{sep}partition={n}>; rel=\"{rel}\"")
    };
    let mut links = vec![link(0, "first")];
    if partition > 0 {
        links.push(link(partition - 1, "prev"));
    }
    if partition + 1 < chunks.len() {
        links.push(link(partition + 1, "next"));
    }
    links.push(link(chunks.len() - 1, "last"));
    if let Ok(v) = HeaderValue::from_str(&links.join(",")) {
        response.headers_mut().insert("link", v);
    }
    response
}

fn parse_bindings(value: Option<&Value>) -> Result<Vec<BindValue>, String> {
    let map = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(other) => return Err(format!("`bindings` must be an object, not {other}")),
    };
    let mut out: Vec<Option<BindValue>> = vec![None; map.len()];
    for (key, binding) in map {
        let index: usize = key
            .parse()
            .ok()
            .filter(|i| *i >= 1 && *i <= map.len())
            .ok_or_else(|| {
                format!(
                    "binding key `{key}` must be a position from 1 to {}",
                    map.len()
                )
            })?;
        let ty = binding
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("binding {key} has no `type`"))?;
        const TYPES: [&str; 11] = [
            "FIXED",
            "REAL",
            "TEXT",
            "BINARY",
            "BOOLEAN",
            "DATE",
            "TIME",
            "TIMESTAMP_LTZ",
            "TIMESTAMP_NTZ",
            "TIMESTAMP_TZ",
            "ANY",
        ];
        if !TYPES.contains(&ty) {
            return Err(format!("binding {key} has unknown type `{ty}`"));
        }
        let scalar = |v: &Value| -> Result<Option<String>, String> {
            match v {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s.clone())),
                other => Err(format!(
                    "binding {key}'s value must be a string or null, not {other}"
                )),
            }
        };
        let value = match binding.get("value") {
            None => BindValue::One(None),
            Some(Value::Array(items)) => {
                BindValue::Many(items.iter().map(scalar).collect::<Result<_, _>>()?)
            }
            Some(v) => BindValue::One(scalar(v)?),
        };
        out[index - 1] = Some(value);
    }
    Ok(out.into_iter().flatten().collect())
}

fn multi_statement_count(parameters: Option<&Value>) -> Result<Option<u64>, String> {
    let Some(Value::Object(map)) = parameters else {
        return match parameters {
            None | Some(Value::Null) => Ok(None),
            Some(_) => Err("`parameters` must be an object".into()),
        };
    };
    let Some((_, v)) = map
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("multi_statement_count"))
    else {
        return Ok(None);
    };
    match v {
        Value::Number(n) => n.as_u64().map(Some),
        Value::String(s) => s.trim().parse().ok().map(Some),
        _ => None,
    }
    .ok_or_else(|| format!("MULTI_STATEMENT_COUNT must be a non-negative integer, not {v}"))
}

// ---------------------------------------------------------------------------------------
// Types and cells
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Fixed { precision: u32, scale: u32 },
    Real,
    Text,
    Binary,
    Boolean,
    Date,
    Time,
    TimestampNtz,
    TimestampLtz,
    TimestampTz,
    Variant(&'static str),
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Fixed { .. } => "fixed",
            Kind::Real => "real",
            Kind::Text => "text",
            Kind::Binary => "binary",
            Kind::Boolean => "boolean",
            Kind::Date => "date",
            Kind::Time => "time",
            Kind::TimestampNtz => "timestamp_ntz",
            Kind::TimestampLtz => "timestamp_ltz",
            Kind::TimestampTz => "timestamp_tz",
            Kind::Variant(name) => name,
        }
    }

    fn row_type(&self, name: &str, table: &str, upper: bool) -> Value {
        let ty = if upper {
            self.name().to_ascii_uppercase()
        } else {
            self.name().to_string()
        };
        let (length, precision, scale) = match self {
            Kind::Fixed { precision, scale } => (Value::Null, json!(precision), json!(scale)),
            Kind::Text | Kind::Binary | Kind::Variant(_) => {
                (json!(16_777_216), Value::Null, Value::Null)
            }
            Kind::Time | Kind::TimestampNtz | Kind::TimestampLtz | Kind::TimestampTz => {
                (Value::Null, Value::Null, json!(9))
            }
            _ => (Value::Null, Value::Null, Value::Null),
        };
        json!({
            "name": name,
            "database": "KERNELIZE",
            "schema": "PUBLIC",
            "table": table,
            "type": ty,
            "length": length,
            "precision": precision,
            "scale": scale,
            "byteLength": length,
            "nullable": true,
            "collation": null,
        })
    }
}

/// Parses a SQL type's text (`NUMBER(12,2)`, `varchar(20)`, `timestamp_ntz(9)`).
fn parse_type_text(text: &str) -> Option<Kind> {
    let tokens = tokenize(text).ok()?;
    let mut p = Parser::new(tokens);
    let kind = p.sql_type().ok()?;
    p.at_end().then_some(kind)
}

#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    /// An unscaled integer and its scale.
    Fixed(i128, u32),
    Real(f64),
    Text(String),
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i64),
    /// Nanoseconds since midnight.
    Time(i64),
    /// Nanoseconds since the epoch (wall clock for NTZ) and the offset in minutes.
    Ts(i128, i32),
}

impl Cell {
    /// The `jsonv2` text of the cell in a column of `kind`; `None` for NULL.
    fn render(&self, kind: &Kind) -> Option<String> {
        Some(match self {
            Cell::Null => return None,
            Cell::Fixed(v, scale) => format_fixed(*v, *scale),
            Cell::Real(f) => f.to_string(),
            Cell::Text(s) => s.clone(),
            Cell::Bool(b) => b.to_string(),
            Cell::Date(d) => d.to_string(),
            Cell::Time(n) => format!("{}.{:09}", n / 1_000_000_000, n % 1_000_000_000),
            Cell::Ts(nanos, offset) => {
                let secs = nanos.div_euclid(1_000_000_000);
                let frac = nanos.rem_euclid(1_000_000_000);
                if *kind == Kind::TimestampTz {
                    format!("{secs}.{frac:09} {}", offset + 1440)
                } else {
                    format!("{secs}.{frac:09}")
                }
            }
        })
    }

    /// Converts a bound or literal text into a cell of `kind`.
    fn convert(kind: &Kind, text: Option<&str>) -> Result<Cell, String> {
        let Some(text) = text else {
            return Ok(Cell::Null);
        };
        let t = text.trim();
        let bad = |what: &str| format!("{what} '{text}' is not recognized");
        match kind {
            Kind::Fixed { precision, scale } => {
                let v = parse_fixed(t, *scale).ok_or_else(|| bad("Numeric value"))?;
                let digits = v.unsigned_abs().to_string().len() as u32;
                if digits > *precision && v != 0 {
                    return Err(format!(
                        "Value '{text}' is out of range for NUMBER({precision},{scale})"
                    ));
                }
                Ok(Cell::Fixed(v, *scale))
            }
            Kind::Real => t
                .parse::<f64>()
                .map(Cell::Real)
                .map_err(|_| bad("Numeric value")),
            Kind::Text | Kind::Binary => Ok(Cell::Text(text.to_string())),
            Kind::Variant(_) => Ok(Cell::Text(if serde_json::from_str::<Value>(t).is_ok() {
                t.to_string()
            } else {
                Value::String(text.to_string()).to_string()
            })),
            Kind::Boolean => match t.to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "on" | "1" => Ok(Cell::Bool(true)),
                "false" | "f" | "no" | "n" | "off" | "0" => Ok(Cell::Bool(false)),
                _ => Err(bad("Boolean value")),
            },
            Kind::Date => {
                if let Ok(ms) = t.parse::<i64>() {
                    // Drivers bind DATE as milliseconds since the epoch.
                    return Ok(Cell::Date(ms.div_euclid(86_400_000)));
                }
                let day = t.get(..10).ok_or_else(|| bad("Date"))?;
                let date = NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| bad("Date"))?;
                Ok(Cell::Date(days_since_epoch(date)))
            }
            Kind::Time => {
                let time = NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
                    .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M:%S"))
                    .map_err(|_| bad("Time"))?;
                Ok(Cell::Time(
                    i64::from(time.num_seconds_from_midnight()) * 1_000_000_000
                        + i64::from(time.nanosecond()),
                ))
            }
            Kind::TimestampNtz | Kind::TimestampLtz | Kind::TimestampTz => {
                let (wall, offset) = parse_timestamp(t).ok_or_else(|| bad("Timestamp"))?;
                Ok(match kind {
                    // NTZ keeps the wall clock and drops the offset; LTZ and TZ keep the
                    // instant (the session time zone is UTC).
                    Kind::TimestampNtz => Cell::Ts(wall, 0),
                    Kind::TimestampLtz => Cell::Ts(wall - i128::from(offset) * 60_000_000_000, 0),
                    _ => Cell::Ts(wall - i128::from(offset) * 60_000_000_000, offset),
                })
            }
        }
    }

    fn compare(&self, other: &Cell) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Cell::Null, _) | (_, Cell::Null) => None,
            (Cell::Fixed(a, sa), Cell::Fixed(b, sb)) => {
                let (a, b) = rescale(*a, *sa, *b, *sb);
                Some(a.cmp(&b))
            }
            (Cell::Real(a), Cell::Real(b)) => a.partial_cmp(b),
            (Cell::Text(a), Cell::Text(b)) => Some(a.cmp(b)),
            (Cell::Bool(a), Cell::Bool(b)) => Some(a.cmp(b)),
            (Cell::Date(a), Cell::Date(b)) | (Cell::Time(a), Cell::Time(b)) => Some(a.cmp(b)),
            (Cell::Ts(a, _), Cell::Ts(b, _)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

fn rescale(a: i128, sa: u32, b: i128, sb: u32) -> (i128, i128) {
    let s = sa.max(sb);
    let up = |v: i128, from: u32| v.saturating_mul(10i128.saturating_pow(s - from));
    (up(a, sa), up(b, sb))
}

fn days_since_epoch(date: NaiveDate) -> i64 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    (date - epoch).num_days()
}

fn format_fixed(v: i128, scale: u32) -> String {
    if scale == 0 {
        return v.to_string();
    }
    let digits = v.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, frac) = padded.split_at(padded.len() - scale);
    format!("{}{whole}.{frac}", if v < 0 { "-" } else { "" })
}

/// Decimal text as an integer of `scale` digits after the point, rounding half away from
/// zero; exponents go through a float.
fn parse_fixed(text: &str, scale: u32) -> Option<i128> {
    if text.contains(['e', 'E']) {
        let f: f64 = text.parse().ok()?;
        let scaled = (f * 10f64.powi(scale as i32)).round();
        return (scaled.abs() < 1e37).then_some(scaled as i128);
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (whole.is_empty() && frac.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut value: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    value = value.checked_mul(10i128.checked_pow(scale)?)?;
    let kept: String = frac.chars().take(scale as usize).collect();
    let kept = format!("{kept:0<width$}", width = scale as usize);
    if !kept.is_empty() {
        value = value.checked_add(kept.parse::<i128>().ok()?)?;
    }
    if frac.chars().nth(scale as usize).is_some_and(|c| c >= '5') {
        value = value.checked_add(1)?;
    }
    Some(if negative { -value } else { value })
}

/// A timestamp's wall clock as nanoseconds since the epoch, and its offset in minutes
/// (0 when it has none). Takes RFC 3339, `YYYY-MM-DD[ T]HH:MI:SS[.f][ ][+-HH:MM|Z]`, a
/// date alone, and the drivers' `nanoseconds[ offset+1440]`.
fn parse_timestamp(text: &str) -> Option<(i128, i32)> {
    if let Some((nanos, offset)) = text.split_once(' ')
        && let (Ok(n), Ok(o)) = (nanos.parse::<i128>(), offset.parse::<i32>())
    {
        return Some((n + i128::from(o - 1440) * 60_000_000_000, o - 1440));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) && text.len() > 10 {
        return text.parse().ok().map(|n| (n, 0));
    }
    let wall =
        |t: NaiveDateTime| -> Option<i128> { Some(i128::from(t.and_utc().timestamp_nanos_opt()?)) };
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        let offset = t.offset().local_minus_utc() / 60;
        return Some((wall(t.naive_local())?, offset));
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f %z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            let offset = t.offset().local_minus_utc() / 60;
            return Some((wall(t.naive_local())?, offset));
        }
    }
    let plain = text.trim_end_matches('Z');
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(plain, format) {
            return Some((wall(t)?, 0));
        }
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some((wall(date.and_hms_opt(0, 0, 0)?)?, 0))
}

// ---------------------------------------------------------------------------------------
// SQL: tokens, statements, execution
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An unquoted word, upper-cased.
    Word(String),
    /// A double-quoted identifier, as written.
    Quoted(String),
    /// A string literal.
    Str(String),
    /// A number literal.
    Num(String),
    /// `?` (no index) or `:N` (1-based index).
    Bind(Option<usize>),
    /// `:name`.
    Named(String),
    /// Punctuation and operators.
    Sym(String),
}

fn tokenize(sql: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if (c == '-' && next == Some('-')) || (c == '/' && next == Some('/')) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            loop {
                if i + 1 >= chars.len() {
                    return Err("unterminated comment".into());
                }
                if chars[i] == '*' && chars[i + 1] == '/' {
                    i += 2;
                    break;
                }
                i += 1;
            }
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string literal".into()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('\\') if chars.get(i + 1).is_some() => {
                        s.push(chars[i + 1]);
                        i += 2;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c == '$' && next == Some('$') {
            let start = i + 2;
            let mut j = start;
            while j + 1 < chars.len() && !(chars[j] == '$' && chars[j + 1] == '$') {
                j += 1;
            }
            if j + 1 >= chars.len() {
                return Err("unterminated $$ literal".into());
            }
            out.push(Tok::Str(chars[start..j].iter().collect()));
            i = j + 2;
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated quoted identifier".into()),
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        s.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Quoted(s));
        } else if c.is_ascii_digit() || (c == '.' && next.is_some_and(|n| n.is_ascii_digit())) {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && matches!(chars[i], 'e' | 'E') {
                i += 1;
                if i < chars.len() && matches!(chars[i], '+' | '-') {
                    i += 1;
                }
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(Tok::Word(word.to_uppercase()));
        } else if c == '?' {
            out.push(Tok::Bind(None));
            i += 1;
        } else if c == ':' && next == Some(':') {
            out.push(Tok::Sym("::".into()));
            i += 2;
        } else if c == ':' && next.is_some_and(|n| n.is_ascii_digit()) {
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let n: String = chars[start..i].iter().collect();
            out.push(Tok::Bind(n.parse().ok()));
        } else if c == ':' && next.is_some_and(|n| n.is_alphabetic() || n == '_') {
            let start = i + 1;
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Named(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if matches!(two.as_str(), "<=" | ">=" | "<>" | "!=") {
                out.push(Tok::Sym(two));
                i += 2;
            } else if "(),;*.=<>+-".contains(c) {
                out.push(Tok::Sym(c.to_string()));
                i += 1;
            } else {
                return Err(format!("syntax error: unexpected '{c}'"));
            }
        }
    }
    Ok(out)
}

/// Splits tokens into statements at top-level `;`, dropping empty ones.
fn split_statements(tokens: Vec<Tok>) -> Vec<Vec<Tok>> {
    let mut out = vec![Vec::new()];
    for t in tokens {
        if t == Tok::Sym(";".into()) {
            out.push(Vec::new());
        } else if let Some(last) = out.last_mut() {
            last.push(t);
        }
    }
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

#[derive(Debug, Clone)]
enum Expr {
    /// A bind, by 0-based index into the request's bindings.
    Bind(usize),
    Lit(Option<String>),
    Now,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
struct Cond {
    column: String,
    op: Op,
    value: Expr,
}

#[derive(Debug)]
enum Items {
    Star,
    Count,
    Columns(Vec<String>),
    Literals(Vec<(String, Expr)>),
}

#[derive(Debug)]
enum Sql {
    Select {
        items: Items,
        from: Option<String>,
        filter: Vec<Cond>,
        order: Option<(String, bool)>,
        limit: Option<usize>,
    },
    Insert {
        table: String,
        columns: Option<Vec<String>>,
        rows: Vec<Vec<Expr>>,
    },
    Create {
        table: String,
        replace: bool,
        if_not_exists: bool,
        columns: Vec<ColumnDef>,
    },
    AddColumn {
        table: String,
        column: ColumnDef,
    },
    Drop {
        table: String,
        if_exists: bool,
    },
    Delete {
        table: String,
        filter: Vec<Cond>,
    },
    Wait(f64),
}

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
    /// The next `?`'s 0-based index.
    next_bind: usize,
}

impl Parser {
    fn new(tokens: Vec<Tok>) -> Self {
        Self {
            tokens,
            pos: 0,
            next_bind: 0,
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    fn kw(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Word(w)) if w == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(x)) if x == s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn near(&self) -> String {
        match self.peek() {
            None => "syntax error: unexpected end of statement".into(),
            Some(t) => format!("syntax error: unexpected {}", describe(t)),
        }
    }

    fn expect_kw(&mut self, word: &str) -> Result<(), String> {
        if self.kw(word) {
            Ok(())
        } else {
            Err(self.near())
        }
    }

    fn expect_sym(&mut self, s: &str) -> Result<(), String> {
        if self.sym(s) {
            Ok(())
        } else {
            Err(self.near())
        }
    }

    /// One name part: an unquoted word (upper case) or a quoted identifier.
    fn name_part(&mut self) -> Result<String, String> {
        match self.peek().cloned() {
            Some(Tok::Word(w)) | Some(Tok::Quoted(w)) => {
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.near()),
        }
    }

    /// A possibly qualified name; its last part.
    fn name(&mut self) -> Result<String, String> {
        let mut last = self.name_part()?;
        while self.sym(".") {
            last = self.name_part()?;
        }
        Ok(last)
    }

    fn number(&mut self) -> Result<String, String> {
        let negative = self.sym("-");
        match self.peek().cloned() {
            Some(Tok::Num(n)) => {
                self.pos += 1;
                Ok(if negative { format!("-{n}") } else { n })
            }
            _ => Err(self.near()),
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        match self.peek().cloned() {
            Some(Tok::Bind(None)) => {
                self.pos += 1;
                let i = self.next_bind;
                self.next_bind += 1;
                Ok(Expr::Bind(i))
            }
            Some(Tok::Bind(Some(n))) => {
                self.pos += 1;
                Ok(Expr::Bind(n.saturating_sub(1)))
            }
            Some(Tok::Named(name)) => Err(format!("__named__{name}")),
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(Expr::Lit(Some(s)))
            }
            Some(Tok::Num(_)) | Some(Tok::Sym(_)) => Ok(Expr::Lit(Some(self.number()?))),
            Some(Tok::Word(w)) if w == "NULL" => {
                self.pos += 1;
                Ok(Expr::Lit(None))
            }
            Some(Tok::Word(w)) if w == "TRUE" || w == "FALSE" => {
                self.pos += 1;
                Ok(Expr::Lit(Some(w.to_ascii_lowercase())))
            }
            Some(Tok::Word(w))
                if matches!(
                    w.as_str(),
                    "CURRENT_TIMESTAMP" | "SYSDATE" | "SYSTIMESTAMP" | "LOCALTIMESTAMP"
                ) =>
            {
                self.pos += 1;
                if self.sym("(") {
                    self.expect_sym(")")?;
                }
                Ok(Expr::Now)
            }
            _ => Err(self.near()),
        }
    }

    fn conditions(&mut self) -> Result<Vec<Cond>, String> {
        let mut out = Vec::new();
        if !self.kw("WHERE") {
            return Ok(out);
        }
        loop {
            let column = self.name()?;
            let op = match self.peek() {
                Some(Tok::Sym(s)) => match s.as_str() {
                    "=" => Op::Eq,
                    "<>" | "!=" => Op::Ne,
                    "<" => Op::Lt,
                    "<=" => Op::Le,
                    ">" => Op::Gt,
                    ">=" => Op::Ge,
                    _ => return Err(self.near()),
                },
                _ => return Err(self.near()),
            };
            self.pos += 1;
            let value = self.expr()?;
            out.push(Cond { column, op, value });
            if !self.kw("AND") {
                return Ok(out);
            }
        }
    }

    fn sql_type(&mut self) -> Result<Kind, String> {
        let word = match self.peek().cloned() {
            Some(Tok::Word(w)) => {
                self.pos += 1;
                w
            }
            _ => return Err(self.near()),
        };
        let mut args = Vec::new();
        if self.sym("(") {
            loop {
                args.push(self.number()?.parse::<u32>().map_err(|_| self.near())?);
                if self.sym(")") {
                    break;
                }
                self.expect_sym(",")?;
            }
        }
        Ok(match word.as_str() {
            "NUMBER" | "DECIMAL" | "NUMERIC" => Kind::Fixed {
                precision: args.first().copied().unwrap_or(38).clamp(1, 38),
                scale: args.get(1).copied().unwrap_or(0).min(37),
            },
            "INT" | "INTEGER" | "BIGINT" | "SMALLINT" | "TINYINT" | "BYTEINT" => Kind::Fixed {
                precision: 38,
                scale: 0,
            },
            "FLOAT" | "FLOAT4" | "FLOAT8" | "REAL" => Kind::Real,
            "DOUBLE" => {
                self.kw("PRECISION");
                Kind::Real
            }
            "VARCHAR" | "CHAR" | "CHARACTER" | "STRING" | "TEXT" | "NVARCHAR" | "NCHAR" => {
                Kind::Text
            }
            "BINARY" | "VARBINARY" => Kind::Binary,
            "BOOLEAN" => Kind::Boolean,
            "DATE" => Kind::Date,
            "TIME" => Kind::Time,
            "TIMESTAMP" | "DATETIME" | "TIMESTAMP_NTZ" | "TIMESTAMPNTZ" => Kind::TimestampNtz,
            "TIMESTAMP_LTZ" | "TIMESTAMPLTZ" => Kind::TimestampLtz,
            "TIMESTAMP_TZ" | "TIMESTAMPTZ" => Kind::TimestampTz,
            "VARIANT" => Kind::Variant("variant"),
            "OBJECT" => Kind::Variant("object"),
            "ARRAY" => Kind::Variant("array"),
            other => return Err(format!("Unsupported data type '{other}'.")),
        })
    }

    /// Skips column modifiers (`NOT NULL`, `DEFAULT x`, `PRIMARY KEY`) up to `,` or `)`.
    fn skip_modifiers(&mut self) {
        let mut depth = 0usize;
        while let Some(t) = self.peek() {
            match t {
                Tok::Sym(s) if s == "(" => depth += 1,
                Tok::Sym(s) if s == ")" && depth == 0 => return,
                Tok::Sym(s) if s == ")" => depth -= 1,
                Tok::Sym(s) if s == "," && depth == 0 => return,
                _ => {}
            }
            self.pos += 1;
        }
    }

    fn statement(&mut self) -> Result<Sql, String> {
        let sql = if self.kw("SELECT") {
            self.select()?
        } else if self.kw("CALL") {
            self.wait()?
        } else if self.kw("INSERT") {
            self.expect_kw("INTO")?;
            let table = self.name()?;
            let columns = if self.sym("(") {
                let mut cols = vec![self.name()?];
                while self.sym(",") {
                    cols.push(self.name()?);
                }
                self.expect_sym(")")?;
                Some(cols)
            } else {
                None
            };
            self.expect_kw("VALUES")?;
            let mut rows = Vec::new();
            loop {
                self.expect_sym("(")?;
                let mut row = vec![self.expr()?];
                while self.sym(",") {
                    row.push(self.expr()?);
                }
                self.expect_sym(")")?;
                rows.push(row);
                if !self.sym(",") {
                    break;
                }
            }
            Sql::Insert {
                table,
                columns,
                rows,
            }
        } else if self.kw("CREATE") {
            let replace = self.kw("OR") && {
                self.expect_kw("REPLACE")?;
                true
            };
            self.kw("TRANSIENT");
            self.expect_kw("TABLE")?;
            let if_not_exists = self.kw("IF") && {
                self.expect_kw("NOT")?;
                self.expect_kw("EXISTS")?;
                true
            };
            let table = self.name()?;
            self.expect_sym("(")?;
            let mut columns = Vec::new();
            loop {
                let name = self.name_part()?;
                let kind = self.sql_type()?;
                self.skip_modifiers();
                columns.push(ColumnDef { name, kind });
                if self.sym(")") {
                    break;
                }
                self.expect_sym(",")?;
            }
            Sql::Create {
                table,
                replace,
                if_not_exists,
                columns,
            }
        } else if self.kw("ALTER") {
            self.expect_kw("TABLE")?;
            let table = self.name()?;
            self.expect_kw("ADD")?;
            self.kw("COLUMN");
            let name = self.name_part()?;
            let kind = self.sql_type()?;
            self.skip_modifiers();
            Sql::AddColumn {
                table,
                column: ColumnDef { name, kind },
            }
        } else if self.kw("DROP") {
            self.expect_kw("TABLE")?;
            let if_exists = self.kw("IF") && {
                self.expect_kw("EXISTS")?;
                true
            };
            Sql::Drop {
                table: self.name()?,
                if_exists,
            }
        } else if self.kw("DELETE") {
            self.expect_kw("FROM")?;
            let table = self.name()?;
            let filter = self.conditions()?;
            Sql::Delete { table, filter }
        } else {
            return Err(self.near());
        };
        if self.at_end() {
            Ok(sql)
        } else {
            Err(self.near())
        }
    }

    fn wait(&mut self) -> Result<Sql, String> {
        if !self.kw("SYSTEM$WAIT") {
            return Err(self.near());
        }
        self.expect_sym("(")?;
        let n = self.number()?.parse::<f64>().map_err(|_| self.near())?;
        self.expect_sym(")")?;
        Ok(Sql::Wait(n))
    }

    fn select(&mut self) -> Result<Sql, String> {
        if matches!(self.peek(), Some(Tok::Word(w)) if w == "SYSTEM$WAIT") {
            return self.wait();
        }
        let items = if self.sym("*") {
            Items::Star
        } else if self.kw("COUNT") {
            self.expect_sym("(")?;
            self.expect_sym("*")?;
            self.expect_sym(")")?;
            Items::Count
        } else if matches!(
            self.peek(),
            Some(Tok::Num(_) | Tok::Str(_) | Tok::Bind(_) | Tok::Sym(_))
        ) {
            let mut lits = Vec::new();
            loop {
                let label = self.peek().map(describe_plain).unwrap_or_default();
                lits.push((label, self.expr()?));
                if !self.sym(",") {
                    break;
                }
            }
            Items::Literals(lits)
        } else {
            let mut cols = vec![self.name()?];
            while self.sym(",") {
                cols.push(self.name()?);
            }
            Items::Columns(cols)
        };
        let from = if self.kw("FROM") {
            Some(self.name()?)
        } else {
            None
        };
        let filter = self.conditions()?;
        let order = if self.kw("ORDER") {
            self.expect_kw("BY")?;
            let col = self.name()?;
            let desc = self.kw("DESC");
            if !desc {
                self.kw("ASC");
            }
            Some((col, desc))
        } else {
            None
        };
        let limit = if self.kw("LIMIT") {
            Some(self.number()?.parse().map_err(|_| self.near())?)
        } else {
            None
        };
        Ok(Sql::Select {
            items,
            from,
            filter,
            order,
            limit,
        })
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("'{w}'"),
        Tok::Quoted(q) => format!("'\"{q}\"'"),
        Tok::Str(s) => format!("''{s}''"),
        Tok::Num(n) => format!("'{n}'"),
        Tok::Bind(_) => "'?'".into(),
        Tok::Named(n) => format!("':{n}'"),
        Tok::Sym(s) => format!("'{s}'"),
    }
}

fn describe_plain(t: &Tok) -> String {
    match t {
        Tok::Str(s) => format!("'{s}'"),
        Tok::Num(n) => n.clone(),
        Tok::Bind(_) => "?".into(),
        other => describe(other).trim_matches('\'').to_string(),
    }
}

/// Runs statement `handle` (all its statements when there are several).
fn run_statement(inner: &mut Inner, handle: &str) -> Outcome {
    let Some(stmt) = inner.statements.get(handle) else {
        return Outcome::Failed(Failure::new("000709", "02000", "statement not found"));
    };
    let (sql, bindings, timeout, multi_count) = (
        stmt.sql.clone(),
        stmt.bindings.clone(),
        stmt.timeout,
        stmt.multi_count,
    );
    let tokens = match tokenize(&sql) {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(Failure::syntax(e)),
    };
    let statements = split_statements(tokens);
    if statements.is_empty() {
        return Outcome::Failed(Failure::syntax("Empty SQL statement."));
    }
    let wanted = multi_count.unwrap_or(1);
    if wanted != 0 && wanted != statements.len() as u64 {
        return Outcome::Failed(Failure::new(
            "000008",
            "0A000",
            format!(
                "Actual statement count {} did not match the desired statement count {wanted}.",
                statements.len()
            ),
        ));
    }
    let mut next_bind = 0;
    let single = statements.len() == 1 && multi_count.is_none_or(|c| c == 1);
    let mut results = Vec::new();
    for tokens in statements {
        let mut parser = Parser::new(tokens);
        parser.next_bind = next_bind;
        let parsed = parser.statement();
        next_bind = parser.next_bind;
        let outcome = match parsed {
            Err(e) if e.starts_with("__named__") => Outcome::Failed(Failure::new(
                "002049",
                "42601",
                format!(
                    "SQL compilation error: error line 1 at position 0\nBind variable :{} not set.",
                    e.trim_start_matches("__named__")
                ),
            )),
            Err(e) => Outcome::Failed(Failure::syntax(e)),
            Ok(sql) => match execute(inner, &sql, &bindings, timeout) {
                Ok(data) => Outcome::Rows(data),
                Err(f) => Outcome::Failed(f),
            },
        };
        if let Outcome::Failed(f) = &outcome {
            return Outcome::Failed(f.clone());
        }
        results.push(outcome);
    }
    if single {
        return results
            .pop()
            .unwrap_or(Outcome::Failed(Failure::syntax("nothing ran")));
    }
    let (request_id, nullable) = inner
        .statements
        .get(handle)
        .map(|s| (s.request_id.clone(), s.nullable))
        .unwrap_or((None, true));
    let mut handles = Vec::new();
    for outcome in results {
        let child = new_handle(inner);
        inner.statements.insert(
            child.clone(),
            Stmt {
                request_id: request_id.clone(),
                sql: String::new(),
                bindings: Vec::new(),
                timeout: 0,
                multi_count: None,
                nullable,
                pending: 0,
                cancelled: false,
                outcome: Some(outcome),
                created_on: chrono::Utc::now().timestamp_millis(),
            },
        );
        handles.push(child);
    }
    Outcome::Multi(handles)
}

fn status_result(table: &str, message: String) -> ResultData {
    ResultData {
        table: table.to_string(),
        columns: vec![ColumnDef {
            name: "status".into(),
            kind: Kind::Text,
        }],
        rows: vec![vec![Cell::Text(message)]],
        stats: None,
    }
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// The value of an expression in row `k` of an array-bound execution.
fn value_of(expr: &Expr, bindings: &[BindValue], k: usize) -> Result<Option<String>, Failure> {
    match expr {
        Expr::Lit(v) => Ok(v.clone()),
        Expr::Now => Ok(Some(now_text())),
        Expr::Bind(i) => match bindings.get(*i) {
            None => Err(Failure::new(
                "002049",
                "42601",
                format!(
                    "SQL compilation error: Bind variable ? not set (position {}; {} binding(s) given).",
                    i + 1,
                    bindings.len()
                ),
            )),
            Some(BindValue::One(v)) => Ok(v.clone()),
            Some(BindValue::Many(items)) => Ok(items.get(k).cloned().flatten()),
        },
    }
}

fn column_index(table: &FakeTable, name: &str, table_name: &str) -> Result<usize, Failure> {
    table
        .columns
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| {
            Failure::new(
                "000904",
                "42000",
                format!(
                    "SQL compilation error: error line 1 at position 0\ninvalid identifier '{name}' (table {table_name})"
                ),
            )
        })
}

fn matches_all(
    table: &FakeTable,
    table_name: &str,
    row: &[Cell],
    filter: &[Cond],
    bindings: &[BindValue],
) -> Result<bool, Failure> {
    for cond in filter {
        let i = column_index(table, &cond.column, table_name)?;
        let text = value_of(&cond.value, bindings, 0)?;
        let operand =
            Cell::convert(&table.columns[i].kind, text.as_deref()).map_err(Failure::bad_value)?;
        let Some(order) = row[i].compare(&operand) else {
            return Ok(false);
        };
        use std::cmp::Ordering::*;
        let keep = match cond.op {
            Op::Eq => order == Equal,
            Op::Ne => order != Equal,
            Op::Lt => order == Less,
            Op::Le => order != Greater,
            Op::Gt => order == Greater,
            Op::Ge => order != Less,
        };
        if !keep {
            return Ok(false);
        }
    }
    Ok(true)
}

fn execute(
    inner: &mut Inner,
    sql: &Sql,
    bindings: &[BindValue],
    timeout: u64,
) -> Result<ResultData, Failure> {
    let arrays = bindings
        .iter()
        .filter_map(|b| match b {
            BindValue::Many(items) => Some(items.len()),
            BindValue::One(_) => None,
        })
        .collect::<Vec<_>>();
    if !arrays.is_empty() && !matches!(sql, Sql::Insert { .. }) {
        return Err(Failure::new(
            "002099",
            "22000",
            "Array bind is supported only for INSERT statements.",
        ));
    }
    match sql {
        Sql::Wait(seconds) => {
            if timeout > 0 && *seconds > timeout as f64 {
                return Err(Failure {
                    status: 408,
                    code: "000630",
                    sql_state: "57014",
                    message: format!(
                        "Statement reached its statement or warehouse timeout of {timeout} second(s) and was canceled."
                    ),
                });
            }
            Ok(status_result("", format!("waited {seconds} seconds")))
        }
        Sql::Select {
            items,
            from,
            filter,
            order,
            limit,
        } => {
            let Some(name) = from else {
                let Items::Literals(lits) = items else {
                    return Err(Failure::syntax("SELECT without FROM takes literals only."));
                };
                let mut columns = Vec::new();
                let mut row = Vec::new();
                for (label, expr) in lits {
                    let text = value_of(expr, bindings, 0)?;
                    let kind = match &text {
                        Some(t) if parse_fixed(t, 0).is_some() && !t.contains('.') => Kind::Fixed {
                            precision: 38,
                            scale: 0,
                        },
                        _ => Kind::Text,
                    };
                    row.push(Cell::convert(&kind, text.as_deref()).map_err(Failure::bad_value)?);
                    columns.push(ColumnDef {
                        name: label.clone(),
                        kind,
                    });
                }
                return Ok(ResultData {
                    table: String::new(),
                    columns,
                    rows: vec![row],
                    stats: None,
                });
            };
            let table = inner
                .tables
                .get(name)
                .ok_or_else(|| Failure::no_table(name))?;
            let mut rows = Vec::new();
            for row in &table.rows {
                if matches_all(table, name, row, filter, bindings)? {
                    rows.push(row.clone());
                }
            }
            if let Some((col, desc)) = order {
                let i = column_index(table, col, name)?;
                rows.sort_by(|a, b| {
                    let o = a[i].compare(&b[i]).unwrap_or_else(|| {
                        // NULLs last ascending, as Snowflake's default.
                        (a[i] == Cell::Null).cmp(&(b[i] == Cell::Null))
                    });
                    if *desc { o.reverse() } else { o }
                });
            }
            if let Some(n) = limit {
                rows.truncate(*n);
            }
            let (columns, rows) = match items {
                Items::Star => (table.columns.clone(), rows),
                Items::Count => (
                    vec![ColumnDef {
                        name: "COUNT(*)".into(),
                        kind: Kind::Fixed {
                            precision: 18,
                            scale: 0,
                        },
                    }],
                    vec![vec![Cell::Fixed(rows.len() as i128, 0)]],
                ),
                Items::Columns(names) => {
                    let idx = names
                        .iter()
                        .map(|n| column_index(table, n, name))
                        .collect::<Result<Vec<_>, _>>()?;
                    (
                        idx.iter().map(|i| table.columns[*i].clone()).collect(),
                        rows.iter()
                            .map(|r| idx.iter().map(|i| r[*i].clone()).collect())
                            .collect(),
                    )
                }
                Items::Literals(_) => {
                    return Err(Failure::syntax("literals with FROM are not supported here"));
                }
            };
            Ok(ResultData {
                table: name.clone(),
                columns,
                rows,
                stats: None,
            })
        }
        Sql::Insert {
            table: name,
            columns,
            rows,
        } => {
            let table = inner
                .tables
                .get_mut(name)
                .ok_or_else(|| Failure::no_table(name))?;
            let targets: Vec<usize> = match columns {
                None => (0..table.columns.len()).collect(),
                Some(names) => {
                    let mut out = Vec::new();
                    for n in names {
                        let i = table.columns.iter().position(|c| &c.name == n).ok_or_else(|| {
                            Failure::new(
                                "000904",
                                "42000",
                                format!("SQL compilation error: error line 1 at position 0\ninvalid identifier '{n}'"),
                            )
                        })?;
                        out.push(i);
                    }
                    out
                }
            };
            let times = match arrays.first() {
                None => 1,
                Some(&n) => {
                    if arrays.iter().any(|&m| m != n) {
                        return Err(Failure::new(
                            "002099",
                            "22000",
                            "Array binds must all have the same number of elements.",
                        ));
                    }
                    n
                }
            };
            let mut new_rows = Vec::new();
            for k in 0..times {
                for exprs in rows {
                    if exprs.len() != targets.len() {
                        return Err(Failure::new(
                            "002020",
                            "21S01",
                            format!(
                                "SQL compilation error:\nInsert value list does not match column list expecting {} but got {}",
                                targets.len(),
                                exprs.len()
                            ),
                        ));
                    }
                    let mut row = vec![Cell::Null; table.columns.len()];
                    for (expr, &i) in exprs.iter().zip(&targets) {
                        let text = value_of(expr, bindings, k)?;
                        row[i] = Cell::convert(&table.columns[i].kind, text.as_deref())
                            .map_err(Failure::bad_value)?;
                    }
                    new_rows.push(row);
                }
            }
            let n = new_rows.len();
            table.rows.extend(new_rows);
            Ok(ResultData {
                table: name.clone(),
                columns: vec![ColumnDef {
                    name: "number of rows inserted".into(),
                    kind: Kind::Fixed {
                        precision: 38,
                        scale: 0,
                    },
                }],
                rows: vec![vec![Cell::Fixed(n as i128, 0)]],
                stats: Some(json!({"numRowsInserted": n})),
            })
        }
        Sql::Create {
            table,
            replace,
            if_not_exists,
            columns,
        } => {
            if inner.tables.contains_key(table) && !replace {
                if *if_not_exists {
                    return Ok(status_result(
                        table,
                        format!("{table} already exists, statement succeeded."),
                    ));
                }
                return Err(Failure::new(
                    "002002",
                    "42710",
                    format!("SQL compilation error:\nObject '{table}' already exists."),
                ));
            }
            inner.tables.insert(
                table.clone(),
                FakeTable {
                    columns: columns.clone(),
                    rows: Vec::new(),
                },
            );
            Ok(status_result(
                table,
                format!("Table {table} successfully created."),
            ))
        }
        Sql::AddColumn { table, column } => {
            let t = inner
                .tables
                .get_mut(table)
                .ok_or_else(|| Failure::no_table(table))?;
            if t.columns.iter().any(|c| c.name == column.name) {
                return Err(Failure::new(
                    "002025",
                    "42S21",
                    format!(
                        "SQL compilation error:\ncolumn '{}' already exists",
                        column.name
                    ),
                ));
            }
            t.columns.push(column.clone());
            for row in &mut t.rows {
                row.push(Cell::Null);
            }
            Ok(status_result(
                table,
                "Statement executed successfully.".into(),
            ))
        }
        Sql::Drop { table, if_exists } => {
            if inner.tables.remove(table).is_none() && !if_exists {
                return Err(Failure::no_table(table));
            }
            Ok(status_result(
                table,
                format!("{table} successfully dropped."),
            ))
        }
        Sql::Delete {
            table: name,
            filter,
        } => {
            let table = inner
                .tables
                .get(name)
                .ok_or_else(|| Failure::no_table(name))?;
            let mut keep = Vec::new();
            let mut deleted = 0usize;
            for row in &table.rows {
                if matches_all(table, name, row, filter, bindings)? {
                    deleted += 1;
                } else {
                    keep.push(row.clone());
                }
            }
            if let Some(t) = inner.tables.get_mut(name) {
                t.rows = keep;
            }
            Ok(ResultData {
                table: name.clone(),
                columns: vec![ColumnDef {
                    name: "number of rows deleted".into(),
                    kind: Kind::Fixed {
                        precision: 38,
                        scale: 0,
                    },
                }],
                rows: vec![vec![Cell::Fixed(deleted as i128, 0)]],
                stats: Some(json!({"numRowsDeleted": deleted})),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cells_render_in_jsonv2_forms() {
        let fixed = Kind::Fixed {
            precision: 12,
            scale: 2,
        };
        assert_eq!(
            Cell::convert(&fixed, Some("12.5")).unwrap().render(&fixed),
            Some("12.50".into())
        );
        assert_eq!(
            Cell::convert(&fixed, Some("-0.055"))
                .unwrap()
                .render(&fixed),
            Some("-0.06".into())
        );
        let ntz = Kind::TimestampNtz;
        assert_eq!(
            Cell::convert(&ntz, Some("2024-01-05 08:00:00"))
                .unwrap()
                .render(&ntz),
            Some("1704441600.000000000".into())
        );
        let tz = Kind::TimestampTz;
        assert_eq!(
            Cell::convert(&tz, Some("2024-01-05T10:00:00+02:00"))
                .unwrap()
                .render(&tz),
            Some("1704441600.000000000 1560".into())
        );
        assert_eq!(
            Cell::convert(&Kind::Date, Some("2024-05-01"))
                .unwrap()
                .render(&Kind::Date),
            Some("19844".into())
        );
    }

    #[test]
    fn statements_parse_by_shape() {
        let tokens =
            tokenize("SELECT * FROM db.s.sales_data WHERE updated_at > ? ORDER BY id").unwrap();
        let sql = Parser::new(tokens).statement().unwrap();
        assert!(matches!(sql, Sql::Select { from: Some(ref t), .. } if t == "SALES_DATA"));
        let tokens =
            tokenize("insert into \"t\" (a, b) values (?, ?), (:3, CURRENT_TIMESTAMP())").unwrap();
        let sql = Parser::new(tokens).statement().unwrap();
        assert!(
            matches!(sql, Sql::Insert { ref table, ref rows, .. } if table == "t" && rows.len() == 2)
        );
        assert!(
            Parser::new(tokenize("SELEC 1").unwrap())
                .statement()
                .is_err()
        );
        assert_eq!(split_statements(tokenize("a; b;; ").unwrap()).len(), 2);
    }

    #[test]
    fn uuids_are_recognized() {
        assert!(is_uuid("123e4567-e89b-42d3-a456-426614174000"));
        assert!(!is_uuid("123e4567e89b42d3a456426614174000"));
        assert!(!is_uuid("not-a-uuid"));
    }
}
