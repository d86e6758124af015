//! The fake of the WordPress REST API (`/wp-json/wp/v2/…`), one or more sites on one
//! server, written from the documented API and WordPress core's controllers.
//!
//! - **Sites:** each [`Site`] lives under its `prefix` (`""` for the root, `/blog`…) with
//!   its own user and application password (default: one site at the root, user `admin`,
//!   password `abcd efgh ijkl mnop qrst uvwx`; spaces in the password are ignored, as
//!   WordPress ignores them).
//! - **Auth:** HTTP Basic on every request. None is 401 `rest_not_logged_in`; an unknown
//!   user 401 `invalid_username`; a wrong password 401 `incorrect_password`.
//! - **Lists:** `GET posts|pages|media|categories|tags` with `page` and `per_page` (1–100,
//!   default 10; out of range is 400 `rest_invalid_param`), filters `status`, `search`,
//!   `after`; headers `X-WP-Total`, `X-WP-TotalPages` and `Link` (`rel="next"`,
//!   `rel="prev"`); a page past the last is 400 `rest_post_invalid_page_number`.
//! - **Posts and pages:** `POST posts` creates (201 with `Location`, or
//!   [`Config::create_status`]; all of title, content and excerpt empty is 400
//!   `empty_content`; a bad `status` 400 `rest_invalid_param`); `POST posts/{id}` updates
//!   (404 `rest_post_invalid_id`); `DELETE posts/{id}` trashes, or deletes with
//!   `force=true` (`{"deleted": true, "previous": …}`); trashing twice is 410
//!   `rest_already_trashed`. `meta` keeps only the keys in [`Config::registered_meta`]
//!   (WordPress ignores meta not registered with `show_in_rest`).
//! - **Media:** `POST media` with the raw bytes: an empty body is 400
//!   `rest_upload_no_data`, no `Content-Type` 400 `rest_upload_no_content_type`, no
//!   `Content-Disposition` 400 `rest_upload_no_content_disposition`, one without a
//!   `filename` 400 `rest_upload_invalid_disposition`, a `Content-MD5` that is not the hex
//!   MD5 of the body 412 `rest_upload_hash_mismatch` — in that order, as core checks. 201
//!   with the attachment. `POST media/{id}` sets `alt_text`, `caption`, `title`,
//!   `description`, `post`. Deleting media needs `force=true` (501 `rest_trash_not_supported`).
//!
//! Errors are `{"code", "message", "data": {"status"}}`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::Response;
use base64::Engine;
use md5::{Digest, Md5};
use serde_json::{Map, Value, json};

use crate::{Fake, Journal, json as answer, serve};

/// One WordPress site of the fake.
#[derive(Debug, Clone)]
pub struct Site {
    /// Where it lives on the server: `""` (the root) or `/blog`.
    pub prefix: String,
    /// The user.
    pub user: String,
    /// The user's application password (spaces optional).
    pub application_password: String,
}

/// The fake's knobs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The sites.
    pub sites: Vec<Site>,
    /// Posts per site.
    pub posts: usize,
    /// Pages per site.
    pub pages: usize,
    /// The status of a creation: 201 (documented) or 200.
    pub create_status: u16,
    /// Meta keys registered with `show_in_rest` (others are ignored).
    pub registered_meta: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sites: vec![Site {
                prefix: String::new(),
                user: "admin".into(),
                application_password: "abcd efgh ijkl mnop qrst uvwx".into(),
            }],
            posts: 12,
            pages: 2,
            create_status: 201,
            registered_meta: vec!["_yoast_wpseo_title".into(), "_yoast_wpseo_metadesc".into()],
        }
    }
}

struct SiteState {
    site: Site,
    items: BTreeMap<&'static str, Vec<Value>>,
    next_id: u64,
}

struct State {
    sites: Vec<SiteState>,
    create_status: u16,
    registered_meta: Vec<String>,
}

type Shared = Arc<Mutex<State>>;

const RESOURCES: [&str; 5] = ["posts", "pages", "media", "categories", "tags"];

/// The fake's routes, recording into `journal` through [`serve`].
pub fn router(config: Config, journal: Journal) -> Router {
    let _ = journal;
    let sites = config
        .sites
        .iter()
        .map(|site| {
            let mut items = BTreeMap::new();
            items.insert(
                "posts",
                (0..config.posts)
                    .map(|i| post(i as u64 + 1, "post"))
                    .collect(),
            );
            items.insert(
                "pages",
                (0..config.pages)
                    .map(|i| post(i as u64 + 501, "page"))
                    .collect(),
            );
            items.insert("media", vec![media(901, "logo.png", "image/png", 3)]);
            items.insert(
                "categories",
                ["News", "Guides", "Releases"]
                    .iter()
                    .enumerate()
                    .map(|(i, n)| term(i as u64 + 1, n, "category"))
                    .collect(),
            );
            items.insert(
                "tags",
                ["rust", "wordpress"]
                    .iter()
                    .enumerate()
                    .map(|(i, n)| term(i as u64 + 11, n, "post_tag"))
                    .collect(),
            );
            SiteState {
                site: site.clone(),
                items,
                next_id: 1001,
            }
        })
        .collect();
    let shared: Shared = Arc::new(Mutex::new(State {
        sites,
        create_status: config.create_status,
        registered_meta: config.registered_meta,
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

fn post(id: u64, kind: &str) -> Value {
    json!({
        "id": id,
        "date": format!("2024-05-{:02}T10:00:00", (id % 28) + 1),
        "date_gmt": format!("2024-05-{:02}T08:00:00", (id % 28) + 1),
        "guid": {"rendered": format!("https://example.com/?p={id}")},
        "modified": "2024-05-30T10:00:00",
        "modified_gmt": "2024-05-30T08:00:00",
        "slug": format!("{kind}-{id}"),
        "status": if id.is_multiple_of(4) { "draft" } else { "publish" },
        "type": kind,
        "link": format!("https://example.com/{kind}-{id}/"),
        "title": {"rendered": format!("{} {id}", if kind == "page" { "Page" } else { "Post" })},
        "content": {"rendered": format!("<p>Body {id}</p>\n"), "protected": false},
        "excerpt": {"rendered": format!("<p>Excerpt {id}</p>\n"), "protected": false},
        "author": 1,
        "featured_media": 0,
        "categories": [1],
        "tags": [],
        "meta": {},
    })
}

fn media(id: u64, filename: &str, mime: &str, size: usize) -> Value {
    let stem = filename
        .rsplit_once('.')
        .map(|(s, _)| s)
        .unwrap_or(filename);
    json!({
        "id": id,
        "date": "2024-05-01T10:00:00",
        "date_gmt": "2024-05-01T08:00:00",
        "slug": stem.to_lowercase(),
        "status": "inherit",
        "type": "attachment",
        "link": format!("https://example.com/{}/", stem.to_lowercase()),
        "title": {"rendered": stem},
        "author": 1,
        "alt_text": "",
        "caption": {"rendered": ""},
        "description": {"rendered": ""},
        "media_type": if mime.starts_with("image/") { "image" } else { "file" },
        "mime_type": mime,
        "media_details": {"filesize": size},
        "post": Value::Null,
        "source_url": format!("https://example.com/wp-content/uploads/2024/05/{filename}"),
    })
}

fn term(id: u64, name: &str, taxonomy: &str) -> Value {
    json!({"id": id, "count": 1, "description": "", "link": format!("https://example.com/{taxonomy}/{}/", name.to_lowercase()), "name": name, "slug": name.to_lowercase(), "taxonomy": taxonomy, "parent": 0, "meta": []})
}

fn wp_error(status: u16, code: &str, message: &str) -> Response {
    answer(
        status,
        json!({"code": code, "message": message, "data": {"status": status}}),
    )
}

fn insert(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
}

fn handle(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
    let path = uri.path();
    let Some((prefix, route)) = path.split_once("/wp-json/wp/v2/") else {
        return wp_error(
            404,
            "rest_no_route",
            "No route was found matching the URL and request method.",
        );
    };
    let Some(index) = state.sites.iter().position(|s| s.site.prefix == prefix) else {
        return wp_error(
            404,
            "rest_no_route",
            "No route was found matching the URL and request method.",
        );
    };
    if let Err(response) = check_auth(&state.sites[index].site, headers) {
        return *response;
    }
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let root = format!("http://{host}{prefix}/wp-json/wp/v2");
    let (resource, id) = match route.split_once('/') {
        Some((r, id)) => (r, Some(id)),
        None => (route, None),
    };
    let Some(resource) = RESOURCES.iter().copied().find(|r| *r == resource) else {
        return wp_error(
            404,
            "rest_no_route",
            "No route was found matching the URL and request method.",
        );
    };
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let registered = state.registered_meta.clone();
    let create_status = state.create_status;
    let site = &mut state.sites[index];
    match (method.as_str(), id) {
        ("GET", None) => list(site, resource, &params, &root),
        ("POST", None) if resource == "media" => upload(site, headers, body, create_status),
        ("POST", None) if resource == "posts" || resource == "pages" => {
            create(site, resource, body, &registered, create_status, &root)
        }
        ("POST" | "PUT" | "PATCH", Some(id)) => update(site, resource, id, body, &registered),
        ("DELETE", Some(id)) => delete(site, resource, id, &params),
        ("GET", Some(id)) => match find(site, resource, id) {
            Some(i) => answer(200, site.items[resource][i].clone()),
            None => invalid_id(),
        },
        _ => wp_error(
            404,
            "rest_no_route",
            "No route was found matching the URL and request method.",
        ),
    }
}

fn check_auth(site: &Site, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(encoded) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return Err(Box::new(wp_error(
            401,
            "rest_not_logged_in",
            "You are not currently logged in.",
        )));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
    if user != site.user {
        return Err(Box::new(wp_error(
            401,
            "invalid_username",
            "Unknown username. Check again or try your email address.",
        )));
    }
    let strip = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
    };
    if strip(password) != strip(&site.application_password) || password.is_empty() {
        return Err(Box::new(wp_error(
            401,
            "incorrect_password",
            "The provided password is an invalid application password.",
        )));
    }
    Ok(())
}

fn invalid_id() -> Response {
    wp_error(404, "rest_post_invalid_id", "Invalid post ID.")
}

fn find(site: &SiteState, resource: &str, id: &str) -> Option<usize> {
    let wanted = id.parse::<u64>().ok()?;
    site.items
        .get(resource)?
        .iter()
        .position(|p| p["id"].as_u64() == Some(wanted))
}

fn list(
    site: &SiteState,
    resource: &'static str,
    params: &[(String, String)],
    root: &str,
) -> Response {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let per_page = match get("per_page").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            return wp_error(400, "rest_invalid_param", "Invalid parameter(s): per_page");
        }
    };
    let page = match get("page").map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return wp_error(400, "rest_invalid_param", "Invalid parameter(s): page"),
    };
    let mut rows: Vec<&Value> = site.items[resource].iter().collect();
    match get("status") {
        // Posts default to published ones (drafts need an explicit status and rights).
        None if resource == "posts" || resource == "pages" => {
            rows.retain(|p| p["status"] == "publish");
        }
        None | Some("any") => {}
        Some(s) => {
            let wanted: Vec<&str> = s.split(',').collect();
            let known = [
                "publish", "future", "draft", "pending", "private", "trash", "inherit",
            ];
            if wanted.iter().any(|w| !known.contains(w)) {
                return wp_error(400, "rest_invalid_param", "Invalid parameter(s): status");
            }
            rows.retain(|p| p["status"].as_str().is_some_and(|st| wanted.contains(&st)));
        }
    }
    if let Some(search) = get("search") {
        let needle = search.to_lowercase();
        rows.retain(|p| {
            p.pointer("/title/rendered")
                .or_else(|| p.get("name"))
                .and_then(Value::as_str)
                .is_some_and(|t| t.to_lowercase().contains(&needle))
        });
    }
    if let Some(after) = get("after") {
        rows.retain(|p| p["date"].as_str().is_some_and(|d| d > after));
    }
    let total = rows.len();
    let pages = total.div_ceil(per_page);
    if page > pages.max(1) {
        return wp_error(
            400,
            "rest_post_invalid_page_number",
            "The page number requested is larger than the number of pages available.",
        );
    }
    let items: Vec<Value> = rows
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|v| (*v).clone())
        .collect();
    let mut response = answer(200, Value::Array(items));
    insert(&mut response, "x-wp-total", &total.to_string());
    insert(&mut response, "x-wp-totalpages", &pages.to_string());
    let link_for = |n: usize| {
        let mut pairs: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| k != "page")
            .cloned()
            .collect();
        pairs.push(("page".into(), n.to_string()));
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        format!("{root}/{resource}?{query}")
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", link_for(page - 1)));
    }
    if page < pages {
        links.push(format!("<{}>; rel=\"next\"", link_for(page + 1)));
    }
    if !links.is_empty() {
        insert(&mut response, "link", &links.join(", "));
    }
    response
}

/// Applies a post body's fields; an error response when a field is invalid.
fn apply(
    target: &mut Value,
    input: &Map<String, Value>,
    registered: &[String],
) -> Result<(), Box<Response>> {
    for (k, v) in input {
        match k.as_str() {
            "title" | "content" | "excerpt" => {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Object(o) => o
                        .get("raw")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    _ => {
                        return Err(Box::new(wp_error(
                            400,
                            "rest_invalid_param",
                            &format!("Invalid parameter(s): {k}"),
                        )));
                    }
                };
                target[k] = json!({"raw": text, "rendered": text});
            }
            "status" => {
                if !v.as_str().is_some_and(|s| {
                    ["publish", "future", "draft", "pending", "private"].contains(&s)
                }) {
                    return Err(Box::new(wp_error(
                        400,
                        "rest_invalid_param",
                        "Invalid parameter(s): status",
                    )));
                }
                target[k] = v.clone();
            }
            "meta" => {
                let Some(meta) = v.as_object() else {
                    return Err(Box::new(wp_error(
                        400,
                        "rest_invalid_param",
                        "Invalid parameter(s): meta",
                    )));
                };
                for (key, value) in meta {
                    if registered.contains(key) {
                        target["meta"][key] = value.clone();
                    }
                }
            }
            "id" => {}
            _ => target[k] = v.clone(),
        }
    }
    Ok(())
}

fn parse_body(body: &Bytes) -> Result<Map<String, Value>, Box<Response>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Box::new(wp_error(
            400,
            "rest_invalid_json",
            "Invalid JSON body passed.",
        ))),
    }
}

fn create(
    site: &mut SiteState,
    resource: &'static str,
    body: &Bytes,
    registered: &[String],
    status: u16,
    root: &str,
) -> Response {
    let input = match parse_body(body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let empty = |k: &str| match input.get(k) {
        None => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Object(o)) => o
            .get("raw")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty),
        Some(_) => false,
    };
    if empty("title") && empty("content") && empty("excerpt") {
        return wp_error(
            400,
            "empty_content",
            "Content, title, and excerpt are empty.",
        );
    }
    let id = site.next_id;
    site.next_id += 1;
    let mut item = post(id, if resource == "pages" { "page" } else { "post" });
    item["status"] = json!("draft");
    if let Err(r) = apply(&mut item, &input, registered) {
        return *r;
    }
    if let Some(list) = site.items.get_mut(resource) {
        list.push(item.clone());
    }
    let mut response = answer(status, item);
    insert(
        &mut response,
        "location",
        &format!("{root}/{resource}/{id}"),
    );
    response
}

fn update(
    site: &mut SiteState,
    resource: &'static str,
    id: &str,
    body: &Bytes,
    registered: &[String],
) -> Response {
    let Some(i) = find(site, resource, id) else {
        return invalid_id();
    };
    let input = match parse_body(body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let Some(list) = site.items.get_mut(resource) else {
        return invalid_id();
    };
    let item = &mut list[i];
    if resource == "media" {
        for (k, v) in &input {
            match k.as_str() {
                "caption" | "description" | "title" => item[k] = json!({"raw": v, "rendered": v}),
                "alt_text" | "post" => item[k] = v.clone(),
                _ => {}
            }
        }
    } else if let Err(r) = apply(item, &input, registered) {
        return *r;
    }
    answer(200, item.clone())
}

fn delete(
    site: &mut SiteState,
    resource: &'static str,
    id: &str,
    params: &[(String, String)],
) -> Response {
    let Some(i) = find(site, resource, id) else {
        return invalid_id();
    };
    let force = params
        .iter()
        .any(|(k, v)| k == "force" && (v == "true" || v == "1"));
    let Some(list) = site.items.get_mut(resource) else {
        return invalid_id();
    };
    if force {
        let previous = list.remove(i);
        return answer(200, json!({"deleted": true, "previous": previous}));
    }
    if resource == "media" || resource == "categories" || resource == "tags" {
        return wp_error(
            501,
            "rest_trash_not_supported",
            "Terms and attachments do not support trashing. Set 'force' to true to delete.",
        );
    }
    if list[i]["status"] == "trash" {
        return wp_error(
            410,
            "rest_already_trashed",
            "The post has already been deleted.",
        );
    }
    list[i]["status"] = json!("trash");
    answer(200, list[i].clone())
}

fn filename_of(disposition: &str) -> Option<String> {
    // As WordPress reads it: the `filename` parameter, quotes removed.
    let (_, params) = disposition.trim().split_once(';')?;
    let mut found = None;
    for part in params.split(';') {
        if let Some((k, v)) = part.split_once('=')
            && k.trim() == "filename"
        {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if !v.is_empty() {
                found = Some(v.to_string());
            }
        }
    }
    found
}

fn upload(site: &mut SiteState, headers: &HeaderMap, body: &Bytes, status: u16) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if body.is_empty() {
        return wp_error(400, "rest_upload_no_data", "No data supplied.");
    }
    let Some(content_type) = header("content-type") else {
        return wp_error(
            400,
            "rest_upload_no_content_type",
            "No Content-Type supplied.",
        );
    };
    let Some(disposition) = header("content-disposition") else {
        return wp_error(
            400,
            "rest_upload_no_content_disposition",
            "No Content-Disposition supplied.",
        );
    };
    let Some(filename) = filename_of(disposition) else {
        return wp_error(
            400,
            "rest_upload_invalid_disposition",
            "Invalid Content-Disposition supplied. Content-Disposition needs to be formatted as `attachment; filename=\"image.png\"` or similar.",
        );
    };
    if let Some(expected) = header("content-md5") {
        let actual: String = Md5::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if expected != actual {
            return wp_error(
                412,
                "rest_upload_hash_mismatch",
                "Content hash did not match expected.",
            );
        }
    }
    let id = site.next_id;
    site.next_id += 1;
    let item = media(id, &filename, content_type, body.len());
    if let Some(list) = site.items.get_mut("media") {
        list.push(item.clone());
    }
    answer(status, item)
}
