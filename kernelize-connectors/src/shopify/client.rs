//! [`ShopifyClient`]: the Admin API calls (REST and GraphQL), typed, usable without the
//! plugin.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kernelize_core::{Error, ErrorKind, Result};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use super::config::{MAX_PAGE_SIZE, ShopifySettings};
use super::throttle::{
    CallLimitPacer, GraphqlCostPacer, retry_verdict, throttle_wait, within_deadline,
};
use crate::http::{
    HeaderAuth, HttpClient, Layer, Method, Pagination, Paginator, Request, Response, StatusCode,
    excerpt,
};
use crate::saas::build_client;

/// The REST resources the list calls read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `products.json`.
    Products,
    /// `orders.json`.
    Orders,
    /// `customers.json`.
    Customers,
}

impl Resource {
    /// The body key and path stem (`products`).
    pub fn name(self) -> &'static str {
        match self {
            Resource::Products => "products",
            Resource::Orders => "orders",
            Resource::Customers => "customers",
        }
    }
}

/// Items a list call collected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listed {
    /// The items, in the API's order.
    pub items: Vec<Value>,
    /// Pages fetched.
    pub pages: usize,
    /// Whether the walk reached the last page (`false`: the page cap stopped it).
    pub complete: bool,
}

/// What an upsert did.
#[derive(Debug, Clone, PartialEq)]
pub struct Upserted {
    /// The product as Shopify returned it (REST shape, or the GraphQL node).
    pub product: Value,
    /// Whether it was created (`false`: updated).
    pub created: bool,
}

/// The GraphQL selection of a product node.
const PRODUCT_FIELDS: &str =
    "id legacyResourceId title handle vendor productType status tags createdAt updatedAt";

/// A client of one shop's Admin API.
#[derive(Debug, Clone)]
pub struct ShopifyClient {
    http: HttpClient,
    /// The whole-call timeout (`http.timeout.call`), which bounds the GraphQL pacing.
    call_timeout: Duration,
}

impl ShopifyClient {
    /// Checks `settings` and builds the client stack: retry with [`retry_verdict`], the
    /// token header, the [`CallLimitPacer`] and (with
    /// `graphql_pacing`) the [`GraphqlCostPacer`], inside the retry.
    pub fn new(settings: &ShopifySettings) -> Result<Self> {
        let base = settings.api_base()?;
        if settings.access_token.expose_secret().trim().is_empty() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "`access_token` is empty",
            ));
        }
        let mut auth: Vec<Arc<dyn Layer>> = vec![Arc::new(CallLimitPacer::new(
            settings.rest_bucket.leak_per_second,
            settings.rest_bucket.reserve,
        ))];
        if settings.graphql_pacing {
            auth.push(Arc::new(GraphqlCostPacer::new(
                settings.graphql_bucket.default_cost,
                settings.graphql_bucket.max_wait,
            )));
        }
        auth.push(Arc::new(HeaderAuth::new(vec![(
            "X-Shopify-Access-Token".into(),
            settings.access_token.clone(),
        )])?));
        let http = build_client(&base, &settings.http, Some(Arc::new(retry_verdict)), auth)?;
        Ok(Self {
            http,
            call_timeout: settings.http.timeout.call,
        })
    }

    /// The underlying HTTP client (base URL `…/admin/api/{version}/`).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// `GET {resource}.json?limit=…&filters…`, then the `Link` header's `rel="next"` URLs
    /// (`page_info` and `limit` only, as Shopify requires) until there is none or
    /// `max_pages` pages were read.
    pub async fn list(
        &self,
        resource: Resource,
        filters: &[(String, String)],
        limit: u32,
        max_pages: usize,
    ) -> Result<Listed> {
        check_limit(limit)?;
        let mut request = self
            .http
            .request(Method::GET, &format!("{}.json", resource.name()))?;
        {
            let mut query = request.url.query_pairs_mut();
            query.append_pair("limit", &limit.to_string());
            for (k, v) in filters {
                if k == "limit" || k == "page_info" {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "`{k}` is set by the connector; give `limit` in the action's config"
                        ),
                    ));
                }
                query.append_pair(k, v);
            }
        }
        let paginator = Paginator::new(Pagination::Link)
            .items_at(resource.name())
            .max_pages(max_pages);
        let collected = self
            .http
            .paginate_all(
                request.path_template(&format!("{}.json", resource.name())),
                paginator,
            )
            .await
            .map_err(rest_error)?;
        Ok(Listed {
            items: collected.items,
            pages: collected.pages,
            complete: collected.complete,
        })
    }

    /// Products through GraphQL: `products(first:, after:, query:)` following
    /// `pageInfo{hasNextPage endCursor}`. Nodes are turned into the REST shape (numeric
    /// `id`, `product_type`, lower-case `status`, `tags` joined by `, `), with the global
    /// id as `admin_graphql_api_id`.
    pub async fn list_products_graphql(
        &self,
        search: Option<&str>,
        first: u32,
        max_pages: usize,
    ) -> Result<Listed> {
        check_limit(first)?;
        let query = format!(
            "query Products($first: Int!, $after: String, $query: String) {{ products(first: $first, after: $after, query: $query) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {PRODUCT_FIELDS} }} }} }}"
        );
        let mut listed = Listed::default();
        let mut after: Option<String> = None;
        loop {
            let data = self
                .graphql(
                    &query,
                    json!({"first": first, "after": after, "query": search}),
                    false,
                )
                .await?;
            listed.pages += 1;
            let connection = data.get("products").ok_or_else(|| shape("data.products"))?;
            let nodes = connection
                .get("nodes")
                .and_then(Value::as_array)
                .ok_or_else(|| shape("data.products.nodes"))?;
            listed.items.extend(nodes.iter().map(rest_shape));
            let more = connection
                .pointer("/pageInfo/hasNextPage")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let cursor = connection
                .pointer("/pageInfo/endCursor")
                .and_then(Value::as_str)
                .map(str::to_string);
            match cursor {
                Some(c) if more && !nodes.is_empty() => {
                    if after.as_deref() == Some(c.as_str()) {
                        return Err(Error::new(
                            ErrorKind::Remote,
                            "Shopify sent the same products cursor twice; the walk stops",
                        ));
                    }
                    if listed.pages >= max_pages {
                        listed.complete = false;
                        return Ok(listed);
                    }
                    after = Some(c);
                }
                _ => {
                    listed.complete = true;
                    return Ok(listed);
                }
            }
        }
    }

    /// Runs a GraphQL operation and returns its `data`. `errors` become an error (a
    /// THROTTLED answer that outlived the retries is `rate limited` with the wait).
    ///
    /// `mutation` decides retries: a query is [`Request::replayable`] (sending it twice is
    /// harmless), a mutation is not, so a timeout or a 5xx on it is not retried, since it
    /// may have been applied. A throttle is retried either way: [`retry_verdict`] takes it
    /// for the refusal it is.
    /// With `graphql_pacing`, the call first waits for the cost bucket to cover it
    /// ([`GraphqlCostPacer`]), within the call's timeout.
    pub async fn graphql(&self, query: &str, variables: Value, mutation: bool) -> Result<Value> {
        let mut request = self
            .http
            .request(Method::POST, "graphql.json")?
            .json(&json!({"query": query, "variables": variables}))?;
        if !mutation {
            request = request.replayable();
        }
        let timeout = request.timeout.unwrap_or(self.call_timeout);
        let deadline = Instant::now().checked_add(timeout);
        let response = within_deadline(deadline, self.http.send(request)).await?;
        graphql_data(&response)
    }

    /// Creates a product (`POST products.json`), or updates one (`PUT products/{id}.json`)
    /// when `product` has an `id`, or when `match_by` (`handle`, `vendor`, …) names a field
    /// whose value finds an existing product (`GET products.json?{match_by}=…`).
    pub async fn upsert_product_rest(
        &self,
        product: &Map<String, Value>,
        match_by: Option<&str>,
    ) -> Result<Upserted> {
        let mut id = product.get("id").and_then(id_text);
        if id.is_none()
            && let Some(key) = match_by
        {
            let value = product.get(key).and_then(scalar_text).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("the product has no `{key}` to match an existing product by"),
                )
            })?;
            let found = self
                .list(
                    Resource::Products,
                    &[(key.to_string(), value), ("fields".into(), "id".into())],
                    2,
                    1,
                )
                .await?;
            id = found
                .items
                .first()
                .and_then(|p| p.get("id"))
                .and_then(id_text);
        }
        let mut body = product.clone();
        body.remove("id");
        // Null cells (records rows) are left out, so that they do not clear fields.
        body.retain(|_, v| !v.is_null());
        let (request, created) = match &id {
            Some(id) => (
                self.http
                    .request(Method::PUT, &format!("products/{id}.json"))?
                    .path_template("products/{id}.json"),
                false,
            ),
            None => (self.http.request(Method::POST, "products.json")?, true),
        };
        let request = request.json(&json!({ "product": body }))?;
        let response = self.rest(request).await?;
        let product = response
            .json::<Value>()?
            .get("product")
            .cloned()
            .ok_or_else(|| shape("product"))?;
        Ok(Upserted { product, created })
    }

    /// `productSet` (synchronous), identified by the product's `id` (numeric or a global
    /// id) or by `match_by` = `handle`. Without either, Shopify creates a product.
    /// `input` is a `ProductSetInput` (camelCase fields: `title`, `descriptionHtml`,
    /// `productType`, `status`: `ACTIVE`…).
    pub async fn upsert_product_graphql(
        &self,
        input: &Map<String, Value>,
        match_by: Option<&str>,
    ) -> Result<Upserted> {
        let mut input = input.clone();
        input.retain(|_, v| !v.is_null());
        let id = input.remove("id").and_then(|v| id_text(&v)).map(|id| {
            if id.starts_with("gid://") {
                id
            } else {
                format!("gid://shopify/Product/{id}")
            }
        });
        let identifier = match (&id, match_by) {
            (Some(id), _) => Some(json!({"id": id})),
            (None, Some("handle")) => {
                let handle = input.get("handle").and_then(Value::as_str).ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        "the product has no `handle` to match by",
                    )
                })?;
                Some(json!({"handle": handle}))
            }
            (None, Some(other)) => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "with `api: graphql`, products match by `id` or `handle`, not `{other}`"
                    ),
                ));
            }
            (None, None) => None,
        };
        let query = format!(
            "mutation ProductSet($input: ProductSetInput!, $identifier: ProductSetIdentifiers) {{ productSet(input: $input, identifier: $identifier, synchronous: true) {{ product {{ {PRODUCT_FIELDS} }} userErrors {{ field message code }} }} }}"
        );
        let data = self
            .graphql(
                &query,
                json!({"input": input, "identifier": identifier}),
                true,
            )
            .await?;
        let payload = data
            .get("productSet")
            .ok_or_else(|| shape("data.productSet"))?;
        user_errors(payload, "productSet")?;
        let node = payload
            .get("product")
            .filter(|p| !p.is_null())
            .ok_or_else(|| shape("data.productSet.product"))?;
        Ok(Upserted {
            product: rest_shape(node),
            created: identifier.is_none(),
        })
    }

    /// `POST inventory_levels/set.json`: sets the available quantity of an inventory item
    /// at a location; returns the `inventory_level`.
    pub async fn set_inventory(
        &self,
        location_id: i64,
        inventory_item_id: i64,
        available: i64,
        disconnect_if_necessary: Option<bool>,
    ) -> Result<Value> {
        let mut body = json!({
            "location_id": location_id,
            "inventory_item_id": inventory_item_id,
            "available": available,
        });
        if let Some(d) = disconnect_if_necessary {
            body["disconnect_if_necessary"] = json!(d);
        }
        // Setting an absolute quantity twice leaves it as once: safe to retry.
        let request = self
            .http
            .request(Method::POST, "inventory_levels/set.json")?
            .json(&body)?
            .replayable();
        let response = self.rest(request).await?;
        response
            .json::<Value>()?
            .get("inventory_level")
            .cloned()
            .ok_or_else(|| shape("inventory_level"))
    }

    /// Sends a REST request; a non-2xx answer becomes a clear error.
    async fn rest(&self, request: Request) -> Result<Response> {
        let describe = format!("{} {}", request.method, request.path_label());
        let response = self.http.send(request).await?;
        if response.is_success() {
            Ok(response)
        } else {
            Err(rest_failure(&describe, &response))
        }
    }
}

fn check_limit(limit: u32) -> Result<()> {
    if (1..=MAX_PAGE_SIZE).contains(&limit) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("`limit` must be between 1 and {MAX_PAGE_SIZE}, not {limit}"),
        ))
    }
}

fn shape(what: &str) -> Error {
    Error::new(
        ErrorKind::Remote,
        format!("Shopify's answer has no `{what}`"),
    )
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A GraphQL product node in the REST shape, so both APIs give the same records.
fn rest_shape(node: &Value) -> Value {
    let mut out = Map::new();
    let id = node
        .get("legacyResourceId")
        .and_then(id_text)
        .and_then(|s| s.parse::<i64>().ok());
    out.insert("id".into(), id.map(Value::from).unwrap_or(Value::Null));
    for (from, to) in [
        ("title", "title"),
        ("handle", "handle"),
        ("vendor", "vendor"),
        ("productType", "product_type"),
        ("createdAt", "created_at"),
        ("updatedAt", "updated_at"),
    ] {
        out.insert(to.into(), node.get(from).cloned().unwrap_or(Value::Null));
    }
    out.insert(
        "status".into(),
        node.get("status")
            .and_then(Value::as_str)
            .map(|s| Value::from(s.to_ascii_lowercase()))
            .unwrap_or(Value::Null),
    );
    let tags = match node.get("tags") {
        Some(Value::Array(tags)) => Value::from(
            tags.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Some(other) => other.clone(),
        None => Value::Null,
    };
    out.insert("tags".into(), tags);
    out.insert(
        "admin_graphql_api_id".into(),
        node.get("id").cloned().unwrap_or(Value::Null),
    );
    Value::Object(out)
}

/// A REST error body (`{"errors": "…"}` or `{"errors": {"field": ["msg", …]}}`) as text.
fn rest_messages(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let errors = value.get("errors").or_else(|| value.get("error"))?;
    Some(match errors {
        Value::String(s) => s.clone(),
        Value::Object(fields) => fields
            .iter()
            .map(|(field, msgs)| {
                let msgs = match msgs {
                    Value::Array(items) => items
                        .iter()
                        .map(|m| {
                            m.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| m.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                format!("{field}: {msgs}")
            })
            .collect::<Vec<_>>()
            .join("; "),
        Value::Array(items) => items
            .iter()
            .map(|m| {
                m.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| m.to_string())
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    })
}

/// A non-2xx REST answer as an error: the kind by status, Shopify's messages, the status,
/// `Retry-After`.
fn rest_failure(describe: &str, response: &Response) -> Error {
    let status = response.status.as_u16();
    let kind = match status {
        401 | 403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        400 | 406 | 422 => ErrorKind::InvalidInput,
        429 => ErrorKind::RateLimited,
        _ => ErrorKind::Remote,
    };
    let detail = rest_messages(&response.body).unwrap_or_else(|| excerpt(&response.body));
    let mut error = Error::new(
        kind,
        format!("Shopify answered {status} to {describe}: {detail}"),
    )
    .with_status(status);
    error = if status == 429 || status >= 500 {
        error.set_temporary()
    } else {
        error.set_permanent()
    };
    if let Some(after) = response.retry_after() {
        error = error.with_retry_after(after);
    }
    error
}

/// Turns the `send_ok` error of a page walk into one with Shopify's messages: the walk's
/// error quotes the body, which holds them; the kind follows the status.
fn rest_error(e: Error) -> Error {
    match e.status() {
        Some(400 | 406 | 422) if e.kind() == ErrorKind::Remote => {
            let mut out = Error::new(ErrorKind::InvalidInput, e.message().to_string())
                .with_status(e.status().unwrap_or(400))
                .set_permanent();
            for (k, v) in e.context() {
                out = out.with_context(k, v);
            }
            out
        }
        _ => e,
    }
}

/// `data` of a GraphQL answer; `errors` (or a non-2xx status) as an error.
fn graphql_data(response: &Response) -> Result<Value> {
    let status = response.status.as_u16();
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let messages: Vec<String> = body
        .as_ref()
        .and_then(|b| b.get("errors"))
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let message = e.get("message").and_then(Value::as_str).unwrap_or("error");
                    match e.pointer("/extensions/code").and_then(Value::as_str) {
                        Some(code) => format!("{message} ({code})"),
                        None => message.to_string(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(wait) = throttle_wait(&response.body) {
        return Err(Error::new(
            ErrorKind::RateLimited,
            format!(
                "Shopify's GraphQL API is still throttling after the retries: {}",
                messages.join("; ")
            ),
        )
        // A throttle is a 429 whatever status it came with (sources disagree).
        .with_status(StatusCode::TOO_MANY_REQUESTS.as_u16())
        .with_retry_after(wait)
        .set_temporary());
    }
    if !response.is_success() {
        let detail = if messages.is_empty() {
            rest_messages(&response.body).unwrap_or_else(|| excerpt(&response.body))
        } else {
            messages.join("; ")
        };
        return Err(rest_failure("POST graphql.json", response).with_context("graphql", detail));
    }
    if !messages.is_empty() {
        let kind = if messages.iter().any(|m| m.contains("ACCESS_DENIED")) {
            ErrorKind::PermissionDenied
        } else {
            ErrorKind::Remote
        };
        return Err(Error::new(
            kind,
            format!(
                "Shopify's GraphQL API answered errors: {}",
                messages.join("; ")
            ),
        )
        .with_status(status)
        .set_permanent());
    }
    body.and_then(|mut b| b.get_mut("data").map(Value::take))
        .filter(|d| !d.is_null())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Remote,
                format!(
                    "Shopify's GraphQL answer has no data: {}",
                    excerpt(&response.body)
                ),
            )
        })
}

/// A mutation payload's `userErrors` as an invalid-input error naming the fields.
fn user_errors(payload: &Value, mutation: &str) -> Result<()> {
    let Some(errors) = payload.get("userErrors").and_then(Value::as_array) else {
        return Ok(());
    };
    if errors.is_empty() {
        return Ok(());
    }
    let text: Vec<String> = errors
        .iter()
        .map(|e| {
            let field = e
                .get("field")
                .and_then(Value::as_array)
                .map(|f| {
                    f.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(".")
                })
                .unwrap_or_default();
            let message = e.get("message").and_then(Value::as_str).unwrap_or("error");
            if field.is_empty() {
                message.to_string()
            } else {
                format!("{field}: {message}")
            }
        })
        .collect();
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!("Shopify refused {mutation}: {}", text.join("; ")),
    )
    .set_permanent())
}
