//! The fake of the Shopify Admin API: REST (`/admin/api/{YYYY-MM}/….json`) and GraphQL
//! (`POST /admin/api/{YYYY-MM}/graphql.json`), written from the documented API.
//!
//! - **Auth:** every request needs `X-Shopify-Access-Token` (default `fake-token`); a wrong
//!   or missing one is answered 401 `{"errors": "[API] Invalid API key or access token …"}`.
//!   A path that is not under `/admin/api/YYYY-MM/` (or not [`Config::api_version`] when
//!   set) is 404 `{"errors": "Not Found"}`.
//! - **REST lists:** `GET products.json`, `orders.json`, `customers.json` with `limit`
//!   (default 50, at most 250; more is 400) and cursor pagination in the `Link` header
//!   (`<…?limit=N&page_info=X>; rel="next"`, `rel="previous"`); no `Link` when everything fits.
//!   Filters (`status`, `vendor`, `handle`, `ids`…) apply on the first request only; a
//!   request with `page_info` and another filter is refused with 400 (Shopify does not
//!   honour them together), and an unknown `page_info` is 400. Orders default to
//!   `status=open`, as Shopify's do, so a client that wants every order must send `status=any`.
//! - **REST writes:** `POST products.json` (`{"product": {title, …}}`, 201; no title is 422
//!   `{"errors": {"title": ["can't be blank"]}}`), `PUT products/{id}.json` (200, 404 when
//!   unknown), `POST inventory_levels/set.json` (`{location_id, inventory_item_id,
//!   available}`; a missing field is 400 `{"errors": {"field": "Required parameter missing
//!   or invalid"}}`).
//! - **REST leaky bucket:** [`Config::bucket_size`] requests (40), draining
//!   [`Config::leak_per_second`] (2/s). Every answer carries
//!   `X-Shopify-Shop-Api-Call-Limit: used/size`; a request that would overflow the bucket is
//!   answered 429 with `Retry-After` (seconds). [`Config::rest_429_times`] forces that answer
//!   for the first N REST requests.
//! - **GraphQL:** `products(first:, after:, query:)` with `pageInfo{hasNextPage endCursor}`
//!   and `nodes` / `edges{node}`, and the mutations `productSet`, `productCreate`,
//!   `productUpdate`. Every answer has `extensions.cost{requestedQueryCost,
//!   actualQueryCost, throttleStatus{maximumAvailable, currentlyAvailable, restoreRate}}`
//!   from a real points bucket. A query costing more than is available is answered
//!   `{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED"}}]}` with status
//!   [`Config::throttle_status`] (200 or 429: sources disagree). [`Config::graphql_throttle_times`]
//!   empties the bucket for the first N GraphQL requests, so they are throttled.
//!   [`Config::throttled`] counts the THROTTLED answers given (keep a clone of it to read
//!   it after the run).
//!
//! The data is fixed: [`Config::products`] products (ids from 1001), [`Config::orders`]
//! orders (every third one closed), [`Config::customers`] customers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use crate::{Fake, Journal, json as answer, serve};

/// The fake's knobs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The accepted `X-Shopify-Access-Token`.
    pub access_token: String,
    /// The only API version served; any `YYYY-MM` when `None`.
    pub api_version: Option<String>,
    /// How many products there are.
    pub products: usize,
    /// How many orders there are (every third one is closed).
    pub orders: usize,
    /// How many customers there are.
    pub customers: usize,
    /// The REST bucket's size (requests).
    pub bucket_size: u32,
    /// How fast the REST bucket drains (requests per second).
    pub leak_per_second: f64,
    /// Answer the first N REST requests 429 with `Retry-After: retry_after_secs`.
    pub rest_429_times: u32,
    /// The `Retry-After` of a forced 429.
    pub retry_after_secs: u64,
    /// Refuse a request that combines `page_info` with another filter (400).
    pub reject_filters_with_page_info: bool,
    /// GraphQL bucket size (points).
    pub graphql_maximum_available: f64,
    /// GraphQL restore rate (points per second).
    pub graphql_restore_rate: f64,
    /// Empty the GraphQL bucket before the first N GraphQL requests, so they are throttled.
    pub graphql_throttle_times: u32,
    /// The HTTP status of a THROTTLED GraphQL answer: 200 or 429 (disputed).
    pub throttle_status: u16,
    /// The status of a REST product creation (201; 200 for tolerance tests).
    pub create_status: u16,
    /// How many THROTTLED GraphQL answers the fake gave; shared with clones of the
    /// config, so a test keeps a clone to read it.
    pub throttled: Arc<AtomicU32>,
}

impl Config {
    /// How many THROTTLED GraphQL answers the fake gave so far.
    pub fn throttled_answers(&self) -> u32 {
        self.throttled.load(Ordering::SeqCst)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            access_token: "fake-token".into(),
            api_version: None,
            products: 7,
            orders: 5,
            customers: 4,
            bucket_size: 40,
            leak_per_second: 2.0,
            rest_429_times: 0,
            retry_after_secs: 1,
            reject_filters_with_page_info: true,
            graphql_maximum_available: 2000.0,
            graphql_restore_rate: 100.0,
            graphql_throttle_times: 0,
            throttle_status: 200,
            create_status: 201,
            throttled: Arc::new(AtomicU32::new(0)),
        }
    }
}

struct State {
    config: Config,
    products: Vec<Value>,
    orders: Vec<Value>,
    customers: Vec<Value>,
    next_id: u64,
    rest_level: f64,
    rest_at: Instant,
    rest_429_left: u32,
    gql_available: f64,
    gql_at: Instant,
    gql_throttles_left: u32,
}

type Shared = Arc<Mutex<State>>;

/// The fake's routes, recording into `journal` through [`serve`].
pub fn router(config: Config, journal: Journal) -> Router {
    let _ = journal;
    let state = State {
        products: (0..config.products).map(product).collect(),
        orders: (0..config.orders).map(order).collect(),
        customers: (0..config.customers).map(customer).collect(),
        next_id: 5001,
        rest_level: 0.0,
        rest_at: Instant::now(),
        rest_429_left: config.rest_429_times,
        gql_available: config.graphql_maximum_available,
        gql_at: Instant::now(),
        gql_throttles_left: config.graphql_throttle_times,
        config,
    };
    let shared: Shared = Arc::new(Mutex::new(state));
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

const TS: &str = "2024-05-01T10:00:00-04:00";

fn product(i: usize) -> Value {
    let id = 1001 + i as u64;
    json!({
        "id": id,
        "title": format!("Product {}", i + 1),
        "handle": format!("product-{}", i + 1),
        "body_html": format!("<p>Product {}</p>", i + 1),
        "vendor": if i.is_multiple_of(2) { "Acme" } else { "Globex" },
        "product_type": "Widget",
        "status": if i % 3 == 2 { "draft" } else { "active" },
        "tags": "fake, shop",
        "created_at": TS,
        "updated_at": TS,
        "published_at": if i % 3 == 2 { Value::Null } else { json!(TS) },
        "admin_graphql_api_id": format!("gid://shopify/Product/{id}"),
        "variants": [{"id": id * 10, "product_id": id, "price": "19.99", "sku": format!("SKU-{}", i + 1), "inventory_item_id": id * 100}],
    })
}

fn order(i: usize) -> Value {
    let id = 2001 + i as u64;
    let closed = i % 3 == 2;
    json!({
        "id": id,
        "name": format!("#{}", 1001 + i),
        "email": format!("buyer{}@example.com", i + 1),
        "financial_status": "paid",
        "fulfillment_status": if closed { json!("fulfilled") } else { Value::Null },
        "total_price": format!("{}.50", 10 + i),
        "currency": "USD",
        "created_at": TS,
        "updated_at": TS,
        "closed_at": if closed { json!(TS) } else { Value::Null },
        "cancelled_at": Value::Null,
        "line_items": [{"id": id * 10, "title": "Product 1", "quantity": 1, "price": "10.50"}],
    })
}

fn customer(i: usize) -> Value {
    let id = 3001 + i as u64;
    json!({
        "id": id,
        "email": format!("customer{}@example.com", i + 1),
        "first_name": format!("First{}", i + 1),
        "last_name": "Fake",
        "state": "enabled",
        "verified_email": true,
        "created_at": TS,
        "updated_at": TS,
        "tags": "",
    })
}

fn errors(status: u16, errors: Value) -> Response {
    answer(status, json!({ "errors": errors }))
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
    let Some(rest) = path.strip_prefix("/admin/api/") else {
        return errors(404, json!("Not Found"));
    };
    let Some((version, resource)) = rest.split_once('/') else {
        return errors(404, json!("Not Found"));
    };
    let version_ok = match &state.config.api_version {
        Some(v) => v == version,
        None => is_version(version),
    };
    if !version_ok {
        return errors(404, json!("Not Found"));
    }
    let token = headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok());
    if token != Some(state.config.access_token.as_str()) {
        return errors(
            401,
            json!("[API] Invalid API key or access token (unrecognized login or wrong password)"),
        );
    }
    if resource == "graphql.json" && method == Method::POST {
        return graphql(&mut state, body);
    }
    // REST: the leaky bucket first, as Shopify counts every request.
    let size = f64::from(state.config.bucket_size.max(1));
    let now = Instant::now();
    let leaked = now.duration_since(state.rest_at).as_secs_f64() * state.config.leak_per_second;
    state.rest_level = (state.rest_level - leaked).max(0.0);
    state.rest_at = now;
    let forced = state.rest_429_left > 0;
    if forced || state.rest_level + 1.0 > size {
        let wait = if forced {
            state.rest_429_left -= 1;
            state.config.retry_after_secs
        } else {
            ((state.rest_level + 1.0 - size) / state.config.leak_per_second.max(0.001)).ceil()
                as u64
        };
        let mut response = errors(
            429,
            json!(
                "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
            ),
        );
        insert(&mut response, "retry-after", &wait.max(1).to_string());
        let used = state.rest_level.ceil() as u32;
        insert(
            &mut response,
            "x-shopify-shop-api-call-limit",
            &format!("{used}/{}", state.config.bucket_size),
        );
        return response;
    }
    state.rest_level += 1.0;
    let used = state.rest_level.ceil() as u32;
    let limit_header = format!("{used}/{}", state.config.bucket_size);
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let base = format!("http://{host}/admin/api/{version}");
    let mut response = rest_api(
        &mut state,
        method,
        resource,
        uri.query().unwrap_or(""),
        body,
        &base,
    );
    insert(
        &mut response,
        "x-shopify-shop-api-call-limit",
        &limit_header,
    );
    response
}

fn insert(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
}

fn is_version(v: &str) -> bool {
    let b = v.as_bytes();
    v == "unstable"
        || (b.len() == 7
            && b[4] == b'-'
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[5..].iter().all(u8::is_ascii_digit))
}

fn rest_api(
    state: &mut State,
    method: &Method,
    resource: &str,
    query: &str,
    body: &Bytes,
    base: &str,
) -> Response {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match (method.as_str(), resource) {
        ("GET", "products.json") => list(state, "products", &params, base),
        ("GET", "orders.json") => list(state, "orders", &params, base),
        ("GET", "customers.json") => list(state, "customers", &params, base),
        ("POST", "products.json") => create_product(state, body),
        ("PUT", r) if r.starts_with("products/") && r.ends_with(".json") => {
            let id = &r["products/".len()..r.len() - ".json".len()];
            update_product(state, id, body)
        }
        ("POST", "inventory_levels/set.json") => set_inventory(body),
        _ => errors(404, json!("Not Found")),
    }
}

/// A page cursor: the resource, the filters of the first request and the offset, opaque.
fn cursor(resource: &str, filters: &BTreeMap<String, String>, offset: usize) -> String {
    let raw = json!({"r": resource, "f": filters, "o": offset}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn uncursor(token: &str) -> Option<(String, BTreeMap<String, String>, usize)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    let filters = serde_json::from_value(v.get("f")?.clone()).ok()?;
    Some((
        v.get("r")?.as_str()?.to_string(),
        filters,
        usize::try_from(v.get("o")?.as_u64()?).ok()?,
    ))
}

fn list(state: &State, resource: &str, params: &[(String, String)], base: &str) -> Response {
    let mut limit = 50usize;
    let mut page_info = None;
    let mut filters = BTreeMap::new();
    for (k, v) in params {
        match k.as_str() {
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=250).contains(&n) => limit = n,
                _ => return errors(400, json!({"limit": ["must be between 1 and 250"]})),
            },
            "page_info" => page_info = Some(v.clone()),
            "fields" => {}
            _ => {
                filters.insert(k.clone(), v.clone());
            }
        }
    }
    let offset = match &page_info {
        Some(token) => {
            if !filters.is_empty() && state.config.reject_filters_with_page_info {
                let names: Vec<&str> = filters.keys().map(String::as_str).collect();
                return errors(
                    400,
                    json!({"page_info": [format!("cannot be combined with other filters ({})", names.join(", "))]}),
                );
            }
            match uncursor(token) {
                Some((r, f, o)) if r == resource => {
                    filters = f;
                    o
                }
                _ => return errors(400, json!({"page_info": ["is invalid"]})),
            }
        }
        None => 0,
    };
    let all: &Vec<Value> = match resource {
        "products" => &state.products,
        "orders" => &state.orders,
        _ => &state.customers,
    };
    let mut rows: Vec<&Value> = all.iter().collect();
    if resource == "orders" {
        let status = filters.get("status").map(String::as_str).unwrap_or("open");
        rows.retain(|o| match status {
            "any" => true,
            "closed" => !o["closed_at"].is_null(),
            "open" => o["closed_at"].is_null(),
            _ => false,
        });
    }
    for key in ["vendor", "handle", "product_type"] {
        if let Some(want) = filters.get(key) {
            rows.retain(|p| p[key].as_str() == Some(want.as_str()));
        }
    }
    if resource == "products"
        && let Some(want) = filters.get("status")
    {
        rows.retain(|p| p["status"].as_str() == Some(want.as_str()));
    }
    if let Some(ids) = filters.get("ids") {
        let ids: Vec<&str> = ids.split(',').map(str::trim).collect();
        rows.retain(|r| ids.contains(&r["id"].to_string().as_str()));
    }
    let page: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(limit)
        .map(|v| (*v).clone())
        .collect();
    let mut links = Vec::new();
    if offset > 0 {
        let prev = cursor(resource, &filters, offset.saturating_sub(limit));
        links.push(format!(
            "<{base}/{resource}.json?limit={limit}&page_info={prev}>; rel=\"previous\""
        ));
    }
    if offset + limit < rows.len() {
        let next = cursor(resource, &filters, offset + limit);
        links.push(format!(
            "<{base}/{resource}.json?limit={limit}&page_info={next}>; rel=\"next\""
        ));
    }
    let mut body = serde_json::Map::new();
    body.insert(resource.to_string(), Value::Array(page));
    let mut response = answer(200, Value::Object(body));
    if !links.is_empty() {
        insert(&mut response, "link", &links.join(", "));
    }
    response
}

fn create_product(state: &mut State, body: &Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return errors(400, json!("bad JSON"));
    };
    let Some(input) = v.get("product").and_then(Value::as_object) else {
        return errors(
            400,
            json!({"product": "Required parameter missing or invalid"}),
        );
    };
    if input
        .get("title")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return errors(422, json!({"title": ["can't be blank"]}));
    }
    let id = state.next_id;
    state.next_id += 1;
    let mut p = product(0);
    for (k, val) in input {
        p[k] = val.clone();
    }
    p["id"] = json!(id);
    p["admin_graphql_api_id"] = json!(format!("gid://shopify/Product/{id}"));
    if input.get("handle").is_none() {
        let title = p["title"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .replace(' ', "-");
        p["handle"] = json!(title);
    }
    state.products.push(p.clone());
    answer(state.config.create_status, json!({"product": p}))
}

fn update_product(state: &mut State, id: &str, body: &Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return errors(400, json!("bad JSON"));
    };
    let Some(input) = v.get("product").and_then(Value::as_object) else {
        return errors(
            400,
            json!({"product": "Required parameter missing or invalid"}),
        );
    };
    let wanted = id.parse::<u64>().ok();
    let Some(p) = state
        .products
        .iter_mut()
        .find(|p| wanted.is_some() && p["id"].as_u64() == wanted)
    else {
        return errors(404, json!("Not Found"));
    };
    for (k, val) in input {
        if k != "id" {
            p[k] = val.clone();
        }
    }
    answer(200, json!({"product": p}))
}

fn set_inventory(body: &Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return errors(400, json!("bad JSON"));
    };
    for field in ["location_id", "inventory_item_id", "available"] {
        if !v.get(field).is_some_and(Value::is_i64) {
            let mut e = serde_json::Map::new();
            e.insert(
                field.to_string(),
                json!("Required parameter missing or invalid"),
            );
            return errors(400, Value::Object(e));
        }
    }
    answer(
        200,
        json!({"inventory_level": {
            "inventory_item_id": v["inventory_item_id"],
            "location_id": v["location_id"],
            "available": v["available"],
            "updated_at": TS,
            "admin_graphql_api_id": format!("gid://shopify/InventoryLevel/{}?inventory_item_id={}", v["location_id"], v["inventory_item_id"]),
        }}),
    )
}

fn graphql(state: &mut State, body: &Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return answer(400, json!({"errors": [{"message": "Invalid JSON"}]}));
    };
    let Some(query) = request.get("query").and_then(Value::as_str) else {
        return answer(
            400,
            json!({"errors": [{"message": "Parameter Missing or Invalid", "extensions": {"code": "BAD_REQUEST"}}]}),
        );
    };
    let variables = request.get("variables").cloned().unwrap_or(Value::Null);
    let max = state.config.graphql_maximum_available;
    let rate = state.config.graphql_restore_rate;
    let now = Instant::now();
    state.gql_available =
        (state.gql_available + now.duration_since(state.gql_at).as_secs_f64() * rate).min(max);
    state.gql_at = now;
    if state.gql_throttles_left > 0 {
        state.gql_throttles_left -= 1;
        state.gql_available = 0.0;
    }
    let requested = if query.contains("products(") {
        let first = variables.get("first").and_then(Value::as_u64).unwrap_or(10);
        first as f64 + 2.0
    } else {
        10.0
    };
    let status = |actual: Option<f64>, available: f64| {
        json!({"cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {"maximumAvailable": max, "currentlyAvailable": available, "restoreRate": rate},
        }})
    };
    if requested > state.gql_available {
        state.config.throttled.fetch_add(1, Ordering::SeqCst);
        return answer(
            state.config.throttle_status,
            json!({
                "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": status(None, state.gql_available),
            }),
        );
    }
    state.gql_available -= requested;
    let data = if query.contains("products(") {
        gql_products(state, &variables, query)
    } else if query.contains("productSet(") {
        gql_product_set(state, &variables)
    } else {
        return answer(
            200,
            json!({
                "errors": [{"message": "Field is not supported by this fake", "extensions": {"code": "undefinedField"}}],
                "extensions": status(Some(0.0), state.gql_available),
            }),
        );
    };
    match data {
        Ok(data) => answer(
            200,
            json!({"data": data, "extensions": status(Some(requested), state.gql_available)}),
        ),
        Err(e) => answer(
            200,
            json!({"errors": [{"message": e}], "extensions": status(Some(0.0), state.gql_available)}),
        ),
    }
}

fn gql_node(p: &Value) -> Value {
    json!({
        "id": p["admin_graphql_api_id"],
        "legacyResourceId": p["id"].to_string(),
        "title": p["title"],
        "handle": p["handle"],
        "vendor": p["vendor"],
        "productType": p["product_type"],
        "status": p["status"].as_str().unwrap_or("active").to_uppercase(),
        "tags": p["tags"].as_str().unwrap_or("").split(", ").filter(|t| !t.is_empty()).collect::<Vec<_>>(),
        "createdAt": "2024-05-01T14:00:00Z",
        "updatedAt": "2024-05-01T14:00:00Z",
    })
}

fn gql_products(state: &State, variables: &Value, query: &str) -> Result<Value, String> {
    let first = variables.get("first").and_then(Value::as_u64).unwrap_or(0) as usize;
    if !(1..=250).contains(&first) {
        return Err("first must be between 1 and 250".into());
    }
    let offset = match variables.get("after").and_then(Value::as_str) {
        None => 0,
        Some(token) => match uncursor(token) {
            Some((r, _, o)) if r == "gql-products" => o,
            _ => {
                return Err(format!(
                    "Invalid cursor for current pagination sort: {token}"
                ));
            }
        },
    };
    let rows: Vec<&Value> = state.products.iter().skip(offset).take(first).collect();
    let end = offset + rows.len();
    let has_next = end < state.products.len();
    let end_cursor = (!rows.is_empty()).then(|| cursor("gql-products", &BTreeMap::new(), end));
    let mut connection = json!({"pageInfo": {"hasNextPage": has_next, "endCursor": end_cursor}});
    if query.contains("nodes") {
        connection["nodes"] = rows.iter().map(|p| gql_node(p)).collect();
    }
    if query.contains("edges") {
        connection["edges"] = rows
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"cursor": cursor("gql-products", &BTreeMap::new(), offset + i + 1), "node": gql_node(p)}))
            .collect();
    }
    Ok(json!({"products": connection}))
}

fn gql_product_set(state: &mut State, variables: &Value) -> Result<Value, String> {
    let Some(input) = variables.get("input").and_then(Value::as_object) else {
        return Err("Variable $input of type ProductSetInput! was provided invalid value".into());
    };
    let identifier = variables.get("identifier");
    let by_id = identifier
        .and_then(|i| i.get("id"))
        .or_else(|| input.get("id"))
        .and_then(Value::as_str);
    let by_handle = identifier
        .and_then(|i| i.get("handle"))
        .and_then(Value::as_str);
    let found = state.products.iter().position(|p| {
        by_id.is_some_and(|id| p["admin_graphql_api_id"].as_str() == Some(id))
            || by_handle.is_some_and(|h| p["handle"].as_str() == Some(h))
    });
    if found.is_none() && by_id.is_some() {
        return Ok(
            json!({"productSet": {"product": null, "userErrors": [{"field": ["identifier", "id"], "message": "Product does not exist", "code": "PRODUCT_DOES_NOT_EXIST"}]}}),
        );
    }
    if found.is_none()
        && input
            .get("title")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return Ok(
            json!({"productSet": {"product": null, "userErrors": [{"field": ["input", "title"], "message": "Title can't be blank", "code": "BLANK"}]}}),
        );
    }
    let index = match found {
        Some(i) => i,
        None => {
            let id = state.next_id;
            state.next_id += 1;
            let mut p = product(0);
            p["id"] = json!(id);
            p["admin_graphql_api_id"] = json!(format!("gid://shopify/Product/{id}"));
            p["handle"] = json!(
                by_handle
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("product-{id}"))
            );
            state.products.push(p);
            state.products.len() - 1
        }
    };
    let p = &mut state.products[index];
    for (k, v) in input {
        let key = match k.as_str() {
            "productType" => "product_type",
            "descriptionHtml" => "body_html",
            "id" => continue,
            other => other,
        };
        p[key] = match (key, v) {
            ("status", Value::String(s)) => json!(s.to_lowercase()),
            _ => v.clone(),
        };
    }
    Ok(json!({"productSet": {"product": gql_node(p), "userErrors": []}}))
}
