//! The fake of Drupal's JSON:API module (`/jsonapi/{entity_type}/{bundle}[/{uuid}]`),
//! written from the documented API.
//!
//! - **Resources:** `node/article` ([`Config::articles`] articles, every third one
//!   unpublished, tagged) and the taxonomy vocabularies in [`Config::vocabularies`]
//!   (`taxonomy_term/tags` with `Rust` and `Drupal`). Any other route is 404.
//! - **Media types:** every request needs `Accept: application/vnd.api+json` (406
//!   otherwise); a write needs `Content-Type: application/vnd.api+json` without parameters
//!   (415 otherwise).
//! - **Auth:** `Authorization: Basic` with [`Config::user`] / [`Config::password`]
//!   (`admin` / `admin-pass`), or `Bearer` [`Config::bearer_token`] (`fake-token`), as
//!   basic_auth and simple_oauth take them; anything else is 401.
//! - **Lists:** `page[offset]`, `page[limit]` (capped at 50, `OffsetPage::SIZE_MAX`),
//!   `filter[field]=value` (equality on an attribute), `sort=field` / `-field`. Each page
//!   has `links.self`, `links.next` (absent on the last page) and `links.prev`; other query
//!   parameters are kept in the links.
//! - **Writes:** one resource per request. `POST` → 201 with `Location`, a generated uuid
//!   and `drupal_internal__nid` (or `__tid`); `PATCH …/{uuid}` → 200; `DELETE …/{uuid}` →
//!   204. A `type` that is not `{entity_type}--{bundle}`, or a PATCH `id` that is not the
//!   URL's, is 409; a node without `title` (or a term without `name`) is 422 with
//!   `source.pointer` `/data/attributes/title`; a `field_tags` / `parent` relationship to
//!   a term that does not exist is 422 pointing at it.
//!
//! Errors are `{"jsonapi": {"version": "1.0"}, "errors": [{"status", "title", "detail",
//! "source": {"pointer"}}]}`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::Response;
use base64::Engine;
use serde_json::{Map, Value, json};

use crate::{Fake, Journal, serve};

/// The JSON:API media type.
pub const MEDIA_TYPE: &str = "application/vnd.api+json";

/// The fake's knobs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The basic_auth user.
    pub user: String,
    /// The basic_auth password.
    pub password: String,
    /// A simple_oauth bearer token that is also accepted.
    pub bearer_token: Option<String>,
    /// How many articles there are.
    pub articles: usize,
    /// Vocabularies and their terms.
    pub vocabularies: Vec<(String, Vec<String>)>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            user: "admin".into(),
            password: "admin-pass".into(),
            bearer_token: Some("fake-token".into()),
            articles: 7,
            vocabularies: vec![("tags".into(), vec!["Rust".into(), "Drupal".into()])],
        }
    }
}

struct State {
    config: Config,
    /// Resources by `type` (`node--article`).
    resources: BTreeMap<String, Vec<Value>>,
    next: u64,
}

type Shared = Arc<Mutex<State>>;

fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

const TS: &str = "2024-05-01T10:00:00+00:00";

/// The fake's routes, recording into `journal` through [`serve`].
pub fn router(config: Config, journal: Journal) -> Router {
    let _ = journal;
    let mut resources = BTreeMap::new();
    let mut next = 1;
    let mut first_tag = None;
    for (vocabulary, terms) in &config.vocabularies {
        let kind = format!("taxonomy_term--{vocabulary}");
        let list = terms
            .iter()
            .map(|name| {
                let id = uuid(next);
                first_tag.get_or_insert_with(|| (kind.clone(), id.clone()));
                let term = json!({
                    "type": kind, "id": id,
                    "attributes": {"drupal_internal__tid": next, "name": name, "description": null, "weight": 0, "changed": TS},
                    "relationships": {"parent": {"data": []}},
                });
                next += 1;
                term
            })
            .collect();
        resources.insert(kind, list);
    }
    let articles = (0..config.articles)
        .map(|i| {
            let id = uuid(100 + i as u64);
            let tags: Vec<Value> = first_tag
                .iter()
                .map(|(t, id)| json!({"type": t, "id": id}))
                .collect();
            json!({
                "type": "node--article", "id": id,
                "attributes": {
                    "drupal_internal__nid": i + 1,
                    "title": format!("Article {}", i + 1),
                    "status": i % 3 != 2,
                    "created": format!("2024-05-{:02}T10:00:00+00:00", i + 1),
                    "changed": TS,
                    "body": {"value": format!("<p>Body {}</p>", i + 1), "format": "basic_html", "summary": ""},
                },
                "relationships": {
                    "field_tags": {"data": tags},
                    "uid": {"data": {"type": "user--user", "id": uuid(9000)}},
                },
            })
        })
        .collect();
    resources.insert("node--article".to_string(), articles);
    let shared: Shared = Arc::new(Mutex::new(State {
        config,
        resources,
        next: 1000,
    }));
    Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let shared = shared.clone();
            async move { handle(&shared, &method, &uri, &headers, &body) }
        },
    )
}

/// Starts the fake on a free loopback port.
pub async fn start(config: Config) -> std::io::Result<Fake> {
    let journal = Journal::new();
    serve(router(config, journal.clone()), journal).await
}

fn document(status: u16, body: Value) -> Response {
    let mut response = crate::json(status, body);
    if let Ok(v) = HeaderValue::from_str(MEDIA_TYPE) {
        response.headers_mut().insert("content-type", v);
    }
    response
}

fn title_of(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        _ => "Error",
    }
}

fn error(status: u16, detail: &str, pointer: Option<&str>) -> Response {
    let mut e = json!({"title": title_of(status), "status": status.to_string(), "detail": detail});
    if let Some(p) = pointer {
        e["source"] = json!({"pointer": p});
    }
    document(
        status,
        json!({"jsonapi": {"version": "1.0"}, "errors": [e]}),
    )
}

fn handle(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if !authorized(&state.config, header("authorization")) {
        return error(
            401,
            "No authentication credentials provided, or they are not valid.",
            None,
        );
    }
    if !header("accept")
        .split(',')
        .any(|a| a.split(';').next().unwrap_or("").trim() == MEDIA_TYPE)
    {
        return error(
            406,
            "Not acceptable format: the Accept header must include application/vnd.api+json.",
            None,
        );
    }
    let Some(route) = uri.path().strip_prefix("/jsonapi/") else {
        return error(404, "No route found.", None);
    };
    let parts: Vec<&str> = route.split('/').filter(|p| !p.is_empty()).collect();
    let (kind, id) = match parts.as_slice() {
        [entity, bundle] => (format!("{entity}--{bundle}"), None),
        [entity, bundle, id] => (format!("{entity}--{bundle}"), Some((*id).to_string())),
        _ => return error(404, "No route found.", None),
    };
    if !state.resources.contains_key(&kind) {
        return error(404, &format!("No route found for `{kind}`."), None);
    }
    let host = header("host").to_string();
    let base = format!(
        "http://{host}/jsonapi/{}",
        route.split('/').take(2).collect::<Vec<_>>().join("/")
    );
    let writes = matches!(method.as_str(), "POST" | "PATCH");
    if writes && header("content-type").trim() != MEDIA_TYPE {
        return error(
            415,
            "No route found that matches \"Content-Type: application/vnd.api+json\"",
            None,
        );
    }
    match (method.as_str(), id) {
        ("GET", None) => list(&state, &kind, uri.query().unwrap_or(""), &base),
        ("GET", Some(id)) => match state.resources[&kind]
            .iter()
            .find(|r| r["id"] == id.as_str())
        {
            Some(r) => document(
                200,
                json!({"jsonapi": {"version": "1.0"}, "data": r, "links": {"self": {"href": format!("{base}/{id}")}}}),
            ),
            None => error(
                404,
                &format!("The \"{kind}\" entity with ID \"{id}\" does not exist."),
                None,
            ),
        },
        ("POST", None) => create(&mut state, &kind, body, &base),
        ("PATCH", Some(id)) => update(&mut state, &kind, &id, body),
        ("DELETE", Some(id)) => {
            let list = state.resources.get_mut(&kind);
            match list.and_then(|l| {
                l.iter()
                    .position(|r| r["id"] == id.as_str())
                    .map(|i| (l, i))
            }) {
                Some((l, i)) => {
                    l.remove(i);
                    let mut response = document(204, Value::Null);
                    *response.body_mut() = axum::body::Body::empty();
                    response
                }
                None => error(
                    404,
                    &format!("The \"{kind}\" entity with ID \"{id}\" does not exist."),
                    None,
                ),
            }
        }
        _ => error(405, "Method not allowed for this route.", None),
    }
}

fn authorized(config: &Config, authorization: &str) -> bool {
    if let Some(token) = authorization.strip_prefix("Bearer ") {
        return config.bearer_token.as_deref() == Some(token.trim());
    }
    let Some(encoded) = authorization.strip_prefix("Basic ") else {
        return false;
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    decoded == format!("{}:{}", config.user, config.password)
}

fn list(state: &State, kind: &str, query: &str, base: &str) -> Response {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let offset = match get("page[offset]").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return error(400, "The page offset must be a non-negative integer.", None),
    };
    let limit = match get("page[limit]").map(str::parse::<usize>) {
        None => 50,
        Some(Ok(n)) if n >= 1 => n.min(50),
        Some(_) => return error(400, "The page limit must be a positive integer.", None),
    };
    let mut rows: Vec<&Value> = state.resources[kind].iter().collect();
    for (k, v) in &params {
        if let Some(field) = k.strip_prefix("filter[").and_then(|f| f.strip_suffix(']')) {
            rows.retain(|r| match &r["attributes"][field] {
                Value::Bool(b) => (v == "1" || v == "true") == *b,
                Value::String(s) => s == v,
                Value::Number(n) => n.to_string() == *v,
                _ => false,
            });
        }
    }
    if let Some(sort) = get("sort") {
        let (field, descending) = match sort.strip_prefix('-') {
            Some(f) => (f, true),
            None => (sort, false),
        };
        rows.sort_by(|a, b| {
            let (a, b) = (
                a["attributes"][field].to_string(),
                b["attributes"][field].to_string(),
            );
            if descending { b.cmp(&a) } else { a.cmp(&b) }
        });
    }
    let page: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(limit)
        .map(|v| (*v).clone())
        .collect();
    let link = |o: usize| {
        let mut pairs: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| k != "page[offset]" && k != "page[limit]")
            .cloned()
            .collect();
        pairs.push(("page[offset]".into(), o.to_string()));
        pairs.push(("page[limit]".into(), limit.to_string()));
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        json!({"href": format!("{base}?{q}")})
    };
    let mut links = json!({"self": link(offset)});
    if offset + limit < rows.len() {
        links["next"] = link(offset + limit);
    }
    if offset > 0 {
        links["prev"] = link(offset.saturating_sub(limit));
    }
    document(
        200,
        json!({"jsonapi": {"version": "1.0"}, "data": page, "links": links}),
    )
}

/// Checks a request document against the route; the resource object when it fits.
fn resource_of(body: &Bytes, kind: &str) -> Result<Map<String, Value>, Box<Response>> {
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return Err(Box::new(error(
            400,
            "Syntax error: the body is not JSON.",
            None,
        )));
    };
    let Some(data) = doc.get("data").and_then(Value::as_object) else {
        return Err(Box::new(error(
            400,
            "Missing `data`: one resource per request.",
            Some("/data"),
        )));
    };
    match data.get("type").and_then(Value::as_str) {
        Some(t) if t == kind => Ok(data.clone()),
        Some(t) => Err(Box::new(error(
            409,
            &format!(
                "The provided type ({t}) does not match the destination resource types ({kind})."
            ),
            Some("/data/type"),
        ))),
        None => Err(Box::new(error(
            400,
            "Resource object must include a \"type\".",
            Some("/data"),
        ))),
    }
}

/// Checks relationships to terms: every `taxonomy_term--*` target must exist.
fn check_relationships(state: &State, data: &Map<String, Value>) -> Result<(), Box<Response>> {
    let Some(rels) = data.get("relationships").and_then(Value::as_object) else {
        return Ok(());
    };
    for (name, rel) in rels {
        let targets: Vec<&Value> = match rel.get("data") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(Value::Null) => Vec::new(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => {
                return Err(Box::new(error(
                    422,
                    &format!("{name}: a relationship needs `data`."),
                    Some(&format!("/data/relationships/{name}")),
                )));
            }
        };
        for target in targets {
            let (Some(t), Some(id)) = (target["type"].as_str(), target["id"].as_str()) else {
                return Err(Box::new(error(
                    422,
                    &format!("{name}: a resource identifier needs `type` and `id`."),
                    Some(&format!("/data/relationships/{name}")),
                )));
            };
            if t.starts_with("taxonomy_term--")
                && !state
                    .resources
                    .get(t)
                    .is_some_and(|l| l.iter().any(|r| r["id"] == id))
            {
                return Err(Box::new(error(
                    422,
                    &format!(
                        "{name}.0.target_id: The referenced entity ({t}: {id}) does not exist."
                    ),
                    Some(&format!("/data/relationships/{name}")),
                )));
            }
        }
    }
    Ok(())
}

fn create(state: &mut State, kind: &str, body: &Bytes, base: &str) -> Response {
    let data = match resource_of(body, kind) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let attributes = data
        .get("attributes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let required = if kind.starts_with("node--") {
        "title"
    } else {
        "name"
    };
    if attributes
        .get(required)
        .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
    {
        return error(
            422,
            &format!("{required}: This value should not be null."),
            Some(&format!("/data/attributes/{required}")),
        );
    }
    if let Err(r) = check_relationships(state, &data) {
        return *r;
    }
    state.next += 1;
    let n = state.next;
    let id = data
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| uuid(n));
    let mut attrs = attributes;
    let internal = if kind.starts_with("node--") {
        "drupal_internal__nid"
    } else {
        "drupal_internal__tid"
    };
    attrs.insert(internal.into(), json!(n));
    attrs.entry("created").or_insert(json!(TS));
    attrs.insert("changed".into(), json!(TS));
    if kind.starts_with("node--") {
        attrs.entry("status").or_insert(json!(true));
    }
    let resource = json!({
        "type": kind, "id": id,
        "attributes": attrs,
        "relationships": data.get("relationships").cloned().unwrap_or_else(|| json!({})),
        "links": {"self": {"href": format!("{base}/{id}")}},
    });
    if let Some(list) = state.resources.get_mut(kind) {
        list.push(resource.clone());
    }
    let mut response = document(
        201,
        json!({"jsonapi": {"version": "1.0"}, "data": resource}),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("{base}/{id}")) {
        response.headers_mut().insert("location", v);
    }
    response
}

fn update(state: &mut State, kind: &str, id: &str, body: &Bytes) -> Response {
    let data = match resource_of(body, kind) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    match data.get("id").and_then(Value::as_str) {
        Some(given) if given == id => {}
        Some(given) => {
            return error(
                409,
                &format!(
                    "The resource ID in the request body ({given}) does not match the ID in the URL ({id})."
                ),
                Some("/data/id"),
            );
        }
        None => {
            return error(
                422,
                "The `id` member is required to update a resource.",
                Some("/data/id"),
            );
        }
    }
    if let Err(r) = check_relationships(state, &data) {
        return *r;
    }
    let Some(resource) = state
        .resources
        .get_mut(kind)
        .and_then(|l| l.iter_mut().find(|r| r["id"] == id))
    else {
        return error(
            404,
            &format!("The \"{kind}\" entity with ID \"{id}\" does not exist."),
            None,
        );
    };
    if let Some(attrs) = data.get("attributes").and_then(Value::as_object) {
        for (k, v) in attrs {
            if k.starts_with("drupal_internal__") {
                continue;
            }
            resource["attributes"][k] = v.clone();
        }
    }
    if let Some(rels) = data.get("relationships").and_then(Value::as_object) {
        for (k, v) in rels {
            resource["relationships"][k] = v.clone();
        }
    }
    let resource = resource.clone();
    document(
        200,
        json!({"jsonapi": {"version": "1.0"}, "data": resource}),
    )
}
