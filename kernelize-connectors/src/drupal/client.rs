//! [`DrupalClient`]: JSON:API calls, typed, usable without the plugin.

use std::collections::BTreeMap;
use std::sync::Arc;

use kernelize_core::{Error, ErrorKind, Result};
use serde_json::{Map, Value, json};

use super::config::{DrupalAuth, DrupalSettings, check_page_limit};
use crate::http::{
    BasicAuth, BearerAuth, HttpClient, Layer, Method, Pagination, Paginator, Request, Response,
    excerpt,
};
use crate::saas::build_client;

/// The JSON:API media type, in `Accept` and `Content-Type`.
pub const MEDIA_TYPE: &str = "application/vnd.api+json";

/// Resources a list call collected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listed {
    /// The resource objects, in the API's order.
    pub items: Vec<Value>,
    /// Pages fetched.
    pub pages: usize,
    /// Whether the walk reached the last page (`false`: the page cap stopped it).
    pub complete: bool,
}

/// What `sync_terms` found and made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncedTerms {
    /// Every name asked for → its term's uuid.
    pub terms: BTreeMap<String, String>,
    /// The names that had no term and were created, in input order.
    pub created: Vec<String>,
}

/// A client of one Drupal site's JSON:API.
#[derive(Debug, Clone)]
pub struct DrupalClient {
    http: HttpClient,
    page_limit: u32,
    max_pages: usize,
}

impl DrupalClient {
    /// Checks `settings` and builds the client.
    pub fn new(settings: &DrupalSettings) -> Result<Self> {
        let base = settings.api_base()?;
        let auth: Arc<dyn Layer> = match &settings.auth {
            DrupalAuth::Basic { user, password } => {
                Arc::new(BasicAuth::new(user, password.clone()))
            }
            DrupalAuth::Bearer { token } => Arc::new(BearerAuth::new(token.clone())),
        };
        let http = build_client(&base, &settings.http, None, vec![auth])?;
        Ok(Self {
            http,
            page_limit: settings.page_limit,
            max_pages: settings.max_pages,
        })
    }

    /// The underlying HTTP client (base URL `…/jsonapi/`).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// A request for `path` with `Accept: application/vnd.api+json`.
    fn request(&self, method: Method, path: &str) -> Result<Request> {
        self.http
            .request(method, path)?
            .header("accept", MEDIA_TYPE)
    }

    /// `GET {entity_type}/{bundle}?page[limit]=…&params…`, then `links.next.href` until
    /// there is none (or the page cap). `params` pass through: `filter[status]=1`,
    /// `sort=-created`, `include=field_tags`, `fields[node--article]=title`.
    pub async fn list(
        &self,
        entity_type: &str,
        bundle: &str,
        params: &[(String, String)],
        page_limit: Option<u32>,
        max_pages: Option<usize>,
    ) -> Result<Listed> {
        let path = route(entity_type, bundle)?;
        let limit = page_limit.unwrap_or(self.page_limit);
        check_page_limit(limit)
            .map_err(|e| Error::new(ErrorKind::InvalidInput, e.message().to_string()))?;
        let mut request = self.request(Method::GET, &path)?;
        {
            let mut query = request.url.query_pairs_mut();
            for (k, v) in params {
                if k.starts_with("page[") {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!("`{k}` is set by the connector's paging; use `page_limit`"),
                    ));
                }
                query.append_pair(k, v);
            }
            query.append_pair("page[limit]", &limit.to_string());
        }
        let paginator = Paginator::new(Pagination::NextUrl {
            next_path: "/links/next/href".into(),
        })
        .items_at("/data")
        .max_pages(max_pages.unwrap_or(self.max_pages));
        let request = request.path_template(&path);
        let describe = format!("{} /jsonapi/{}", request.method, request.path_label());
        let paginator = paginator.map_error(move |response| {
            Some(jsonapi_failure(
                &describe,
                response.status.as_u16(),
                &response.body,
                response.retry_after(),
            ))
        });
        let collected = self.http.paginate_all(request, paginator).await?;
        Ok(Listed {
            items: collected.items,
            pages: collected.pages,
            complete: collected.complete,
        })
    }

    /// `POST {entity_type}/{bundle}` with one resource object (`{type, attributes,
    /// relationships}`); returns the created resource (201).
    pub async fn create(
        &self,
        entity_type: &str,
        bundle: &str,
        data: &Map<String, Value>,
    ) -> Result<Value> {
        let path = route(entity_type, bundle)?;
        let request = self
            .request(Method::POST, &path)?
            .path_template(&path)
            .bytes(document(data)?, MEDIA_TYPE);
        self.data_of(request).await
    }

    /// `PATCH {entity_type}/{bundle}/{uuid}` with the resource object (which must carry
    /// `type` and `id`; they are set here). Setting fields is safe to repeat, so it is
    /// retried like a PUT.
    pub async fn update(
        &self,
        entity_type: &str,
        bundle: &str,
        uuid: &str,
        data: &Map<String, Value>,
    ) -> Result<Value> {
        let path = route(entity_type, bundle)?;
        check_uuid(uuid)?;
        let mut data = data.clone();
        data.insert(
            "type".into(),
            Value::from(format!("{entity_type}--{bundle}")),
        );
        data.insert("id".into(), Value::from(uuid));
        let request = self
            .request(Method::PATCH, &format!("{path}/{uuid}"))?
            .path_template(&format!("{path}/{{uuid}}"))
            .bytes(document(&data)?, MEDIA_TYPE)
            .replayable();
        self.data_of(request).await
    }

    /// `DELETE {entity_type}/{bundle}/{uuid}` (204).
    pub async fn delete(&self, entity_type: &str, bundle: &str, uuid: &str) -> Result<()> {
        let path = route(entity_type, bundle)?;
        check_uuid(uuid)?;
        let request = self
            .request(Method::DELETE, &format!("{path}/{uuid}"))?
            .path_template(&format!("{path}/{{uuid}}"));
        self.send(request).await.map(|_| ())
    }

    /// Makes sure every name in `names` has a term in `vocabulary`: lists the vocabulary's
    /// terms, creates the missing ones (under `parent`, a term uuid, when given), and
    /// returns name → uuid. Names match exactly, after trimming; blank names are refused.
    pub async fn sync_terms(
        &self,
        vocabulary: &str,
        names: &[String],
        parent: Option<&str>,
    ) -> Result<SyncedTerms> {
        let kind = format!("taxonomy_term--{vocabulary}");
        let existing = self
            .list("taxonomy_term", vocabulary, &[], None, None)
            .await?;
        if !existing.complete {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "vocabulary `{vocabulary}` has more terms than `max_pages` pages hold; raise it so that no term is created twice"
                ),
            ));
        }
        let mut known: BTreeMap<String, String> = BTreeMap::new();
        for term in &existing.items {
            if let (Some(name), Some(id)) = (
                term.pointer("/attributes/name").and_then(Value::as_str),
                term.get("id").and_then(Value::as_str),
            ) {
                known
                    .entry(name.trim().to_string())
                    .or_insert_with(|| id.to_string());
            }
        }
        let mut out = SyncedTerms::default();
        for (i, name) in names.iter().enumerate() {
            let name = name.trim();
            if name.is_empty() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("term name {i} is blank"),
                ));
            }
            if let Some(id) = known.get(name) {
                out.terms.insert(name.to_string(), id.clone());
                continue;
            }
            let mut data = Map::new();
            data.insert("type".into(), Value::from(kind.clone()));
            data.insert("attributes".into(), json!({ "name": name }));
            if let Some(parent) = parent {
                data.insert(
                    "relationships".into(),
                    json!({"parent": {"data": [{"type": kind, "id": parent}]}}),
                );
            }
            let created = self
                .create("taxonomy_term", vocabulary, &data)
                .await
                .map_err(|e| e.with_context("term", name))?;
            let id = created
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::new(ErrorKind::Remote, "Drupal's new term has no `id`"))?
                .to_string();
            known.insert(name.to_string(), id.clone());
            out.terms.insert(name.to_string(), id);
            out.created.push(name.to_string());
        }
        Ok(out)
    }

    /// Sends a write and returns the answer's `data`.
    async fn data_of(&self, request: Request) -> Result<Value> {
        let response = self.send(request).await?;
        let mut body: Value = response.json()?;
        body.get_mut("data")
            .map(Value::take)
            .filter(Value::is_object)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Remote,
                    format!(
                        "Drupal's answer has no resource in `data`: {}",
                        excerpt(&response.body)
                    ),
                )
            })
    }

    /// Sends a request; a non-2xx answer becomes a clear error.
    async fn send(&self, request: Request) -> Result<Response> {
        let describe = format!("{} /jsonapi/{}", request.method, request.path_label());
        let response = self.http.send(request).await?;
        if response.is_success() {
            Ok(response)
        } else {
            Err(jsonapi_failure(
                &describe,
                response.status.as_u16(),
                &response.body,
                response.retry_after(),
            ))
        }
    }
}

/// The route `{entity_type}/{bundle}`, both machine names.
fn route(entity_type: &str, bundle: &str) -> Result<String> {
    for (what, name) in [("entity_type", entity_type), ("bundle", bundle)] {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("`{what}` must be a Drupal machine name (a-z, 0-9, _), not `{name}`"),
            ));
        }
    }
    Ok(format!("{entity_type}/{bundle}"))
}

fn check_uuid(uuid: &str) -> Result<()> {
    let ok = !uuid.is_empty()
        && uuid.len() <= 64
        && uuid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("`{uuid}` is not a uuid"),
        ))
    }
}

fn document(data: &Map<String, Value>) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(&json!({ "data": data }))?)
}

/// A JSON:API error document as one message: each error's `title`, `detail` and
/// `source.pointer`.
fn messages(body: &[u8]) -> Option<(String, Option<String>)> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    let errors = doc.get("errors")?.as_array()?;
    let mut first_pointer = None;
    let text = errors
        .iter()
        .map(|e| {
            let title = e.get("title").and_then(Value::as_str).unwrap_or("error");
            let mut line = match e.get("detail").and_then(Value::as_str) {
                Some(detail) => format!("{title}: {detail}"),
                None => title.to_string(),
            };
            if let Some(pointer) = e.pointer("/source/pointer").and_then(Value::as_str) {
                line.push_str(&format!(" (at {pointer})"));
                first_pointer.get_or_insert_with(|| pointer.to_string());
            }
            line
        })
        .collect::<Vec<_>>()
        .join("; ");
    Some((text, first_pointer))
}

fn jsonapi_failure(
    describe: &str,
    status: u16,
    body: &[u8],
    retry_after: Option<std::time::Duration>,
) -> Error {
    let kind = match status {
        401 | 403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        400 | 405 | 406 | 409 | 415 | 422 => ErrorKind::InvalidInput,
        429 => ErrorKind::RateLimited,
        _ => ErrorKind::Remote,
    };
    let (text, pointer) = messages(body).unwrap_or_else(|| (excerpt(body), None));
    let mut error = Error::new(
        kind,
        format!("Drupal answered {status} to {describe}: {text}"),
    )
    .with_status(status);
    if let Some(pointer) = pointer {
        error = error.with_context("pointer", pointer);
    }
    error = if status == 429 || status >= 500 {
        error.set_temporary()
    } else {
        error.set_permanent()
    };
    if let Some(after) = retry_after {
        error = error.with_retry_after(after);
    }
    error
}
