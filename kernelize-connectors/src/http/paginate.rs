//! Pagination as an async [`Stream`] of pages or items, with a page cap: RFC 8288 `Link`
//! headers, a cursor in the body, offset/limit, page numbers with a total, and a next URL
//! in the body.
//!
//! Every kind stops at the first empty page, at the page cap, and with an error when the
//! server sends the walk back to a page it already gave (a repeated next link or cursor),
//! so that a misbehaving API cannot keep a caller paging forever. A next page on another
//! origin (scheme, host, port) is an error too: the stack's credentials go with every page.
//!
//! A page that answers non-2xx (after the stack's retries) ends the walk with an error:
//! by default the generic one [`Response::error_for_status`] builds (kind by status, the
//! start of the body quoted in the message). A connector whose API has its own error shape
//! gives the walk an [`ErrorMapper`] ([`Paginator::map_error`]) so that a failing page
//! becomes the same error its single requests do.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use futures::Stream;
use futures::stream::{self, StreamExt, TryStreamExt};
use kernelize_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::client::HttpClient;
use super::request::{Request, Response};

/// How an API pages its answers. As config (the `http` plugin's `pagination`), the kind is
/// the `kind` field: `{"kind": "cursor", "cursor_param": "after", "cursor_path": "/meta/next"}`.
///
/// Paths into the body are JSON pointers (`/meta/next_cursor`) or dotted paths
/// (`meta.next_cursor`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// The `Link` header's `rel="next"` URL (RFC 8288; GitHub, Shopify).
    Link,
    /// A cursor in the body, sent back as a query parameter (Slack, Stripe-like APIs).
    Cursor {
        /// The query parameter the cursor goes in.
        #[serde(default = "default_cursor_param")]
        cursor_param: String,
        /// Where the next cursor is in the body; missing, null or `""` ends the walk.
        cursor_path: String,
        /// A boolean in the body that says whether more pages follow (`has_more`); when
        /// set, `false` ends the walk.
        #[serde(default)]
        has_more_path: Option<String>,
    },
    /// An offset and a limit as query parameters.
    Offset {
        /// The offset parameter.
        #[serde(default = "default_offset_param")]
        offset_param: String,
        /// The limit parameter.
        #[serde(default = "default_limit_param")]
        limit_param: String,
        /// Items asked for per page.
        #[serde(default = "default_limit")]
        limit: u64,
        /// Where the total item count is in the body, when the API gives one; without
        /// it, a page shorter than `limit` is the last.
        #[serde(default)]
        total_path: Option<String>,
    },
    /// A page number as a query parameter, with the number of pages in a header or the
    /// body.
    Page {
        /// The page parameter.
        #[serde(default = "default_page_param")]
        page_param: String,
        /// The first page's number.
        #[serde(default = "default_first_page")]
        first_page: u64,
        /// The page-size parameter.
        #[serde(default = "default_per_page_param")]
        per_page_param: String,
        /// Items asked for per page; `None` sends no page size.
        #[serde(default)]
        per_page: Option<u64>,
        /// The header that holds the number of pages.
        #[serde(default = "default_total_pages_header")]
        total_pages_header: Option<String>,
        /// Where the number of pages is in the body, when not in a header.
        #[serde(default)]
        total_pages_path: Option<String>,
    },
    /// The next page's URL in the body (`next`, `@odata.nextLink`); missing or null ends
    /// the walk.
    NextUrl {
        /// Where the URL is in the body.
        next_path: String,
    },
}

fn default_cursor_param() -> String {
    "cursor".into()
}
fn default_offset_param() -> String {
    "offset".into()
}
fn default_limit_param() -> String {
    "limit".into()
}
fn default_limit() -> u64 {
    100
}
fn default_page_param() -> String {
    "page".into()
}
fn default_per_page_param() -> String {
    "per_page".into()
}
fn default_first_page() -> u64 {
    1
}
fn default_total_pages_header() -> Option<String> {
    Some("x-total-pages".into())
}

/// The cap on pages when none is set: high enough for real walks, low enough to stop a
/// runaway one.
pub const DEFAULT_MAX_PAGES: usize = 1000;

/// Turns a failing page's whole answer (status, headers, body) into the vendor's own
/// error; `None` leaves it to the generic one. See [`Paginator::map_error`].
///
/// Cheap to clone (shared). Two mappers are equal when they are the same shared function,
/// so a [`Paginator`] stays comparable.
#[derive(Clone)]
pub struct ErrorMapper(Arc<MapFn>);

type MapFn = dyn Fn(&Response) -> Option<Error> + Send + Sync;

impl ErrorMapper {
    /// A mapper calling `map`.
    pub fn new(map: impl Fn(&Response) -> Option<Error> + Send + Sync + 'static) -> Self {
        Self(Arc::new(map))
    }

    /// The error for `response`, if the mapper has one.
    pub fn map(&self, response: &Response) -> Option<Error> {
        (self.0)(response)
    }
}

impl fmt::Debug for ErrorMapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ErrorMapper(..)")
    }
}

impl PartialEq for ErrorMapper {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ErrorMapper {}

/// A pagination walk: how the API pages, where the items are, and how many pages at most.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Paginator {
    /// How the API pages.
    pub pagination: Pagination,
    /// Where each page's items are in the body (`/data`, `results`); `None` takes a body
    /// that is itself an array.
    #[serde(default)]
    pub items_path: Option<String>,
    /// Most pages fetched; the walk stops there and says it was cut short.
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
    /// How a non-2xx page becomes an error ([`Paginator::map_error`]); `None`, and when it
    /// answers `None`, the generic [`Response::error_for_status`]. Code only: not part of
    /// the serialized config.
    #[serde(skip)]
    #[schemars(skip)]
    pub error_mapper: Option<ErrorMapper>,
}

fn default_max_pages() -> usize {
    DEFAULT_MAX_PAGES
}

impl Paginator {
    /// A walk of `pagination` with items in a body array and the default page cap.
    pub fn new(pagination: Pagination) -> Self {
        Self {
            pagination,
            items_path: None,
            max_pages: DEFAULT_MAX_PAGES,
            error_mapper: None,
        }
    }

    /// Items at `path` in each page's body.
    pub fn items_at(mut self, path: &str) -> Self {
        self.items_path = Some(path.to_string());
        self
    }

    /// At most `max_pages` pages.
    pub fn max_pages(mut self, max_pages: usize) -> Self {
        self.max_pages = max_pages;
        self
    }

    /// Maps a failing page to the vendor's error: `map` is called with the whole answer
    /// of a page that is not 2xx (after the stack's retries), before the generic error is
    /// built. When it returns `Some(error)`, the walk ends with that error, given the
    /// context `page` (its number, from 1) and `url` (origin and path, without the
    /// query); when it returns `None`, with the generic [`Response::error_for_status`]
    /// error, as without a mapper. The error is taken as the mapper builds it: status,
    /// temporary/permanent and `Retry-After` are its to set.
    pub fn map_error(
        mut self,
        map: impl Fn(&Response) -> Option<Error> + Send + Sync + 'static,
    ) -> Self {
        self.error_mapper = Some(ErrorMapper::new(map));
        self
    }
}

/// One page of a walk.
#[derive(Debug, Clone)]
pub struct Page {
    /// Its number in the walk, from 1.
    pub number: usize,
    /// The answer, whole.
    pub response: Response,
    /// The items found in it.
    pub items: Vec<Value>,
    /// Whether the API says pages follow this one. `false` on the last page; `true` on a
    /// page where the cap cut the walk short.
    pub more: bool,
}

/// Everything a finished walk collected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Collected {
    /// The items of every page, in order.
    pub items: Vec<Value>,
    /// Pages fetched.
    pub pages: usize,
    /// Whether the walk reached the last page (`false`: the page cap stopped it).
    pub complete: bool,
}

struct State {
    client: HttpClient,
    paginator: Paginator,
    /// The next page's request; `None` once the walk is over.
    next: Option<Request>,
    number: usize,
    offset: u64,
    page: u64,
    seen: HashSet<String>,
}

impl HttpClient {
    /// Walks the pages of `request` as a stream. Each page is fetched when the stream is
    /// polled for it; a non-2xx answer (after the stack's retries) ends the stream with
    /// its error: the [paginator's mapping](Paginator::map_error) of it, or the generic
    /// one.
    pub fn paginate(
        &self,
        request: Request,
        paginator: Paginator,
    ) -> impl Stream<Item = Result<Page>> + Send + 'static {
        let mut state = State {
            client: self.clone(),
            offset: 0,
            page: 0,
            number: 0,
            seen: HashSet::new(),
            next: None,
            paginator,
        };
        state.next = match first_request(&mut state, request) {
            Ok(first) => Some(first),
            Err(e) => return stream::once(async { Err(e) }).left_stream(),
        };
        stream::try_unfold(state, |mut state| async move {
            let Some(request) = state.next.take() else {
                return Ok(None);
            };
            if state.number >= state.paginator.max_pages {
                return Ok(None);
            }
            let page = fetch(&mut state, request).await?;
            Ok(Some((page, state)))
        })
        .right_stream()
    }

    /// Walks the pages of `request` as a stream of items.
    pub fn paginate_items(
        &self,
        request: Request,
        paginator: Paginator,
    ) -> impl Stream<Item = Result<Value>> + Send + 'static {
        self.paginate(request, paginator)
            .map_ok(|page| stream::iter(page.items.into_iter().map(Ok)))
            .try_flatten()
    }

    /// Walks every page of `request` and collects the items, saying whether the walk was
    /// complete or stopped at the page cap.
    pub async fn paginate_all(&self, request: Request, paginator: Paginator) -> Result<Collected> {
        let mut pages = std::pin::pin!(self.paginate(request, paginator));
        let mut collected = Collected {
            complete: true,
            ..Collected::default()
        };
        while let Some(page) = pages.try_next().await? {
            collected.pages += 1;
            collected.complete = !page.more;
            collected.items.extend(page.items);
        }
        Ok(collected)
    }
}

/// The first request, with the walk's starting parameters set.
fn first_request(state: &mut State, request: Request) -> Result<Request> {
    if state.paginator.max_pages == 0 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "max_pages must be at least 1",
        ));
    }
    let mut request = request;
    match &state.paginator.pagination {
        Pagination::Offset {
            offset_param,
            limit_param,
            limit,
            ..
        } => {
            if *limit == 0 {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "an offset walk needs a limit above zero",
                ));
            }
            state.offset = query_number(&request.url, offset_param).unwrap_or(0);
            set_query(&mut request.url, offset_param, &state.offset.to_string());
            set_query(&mut request.url, limit_param, &limit.to_string());
        }
        Pagination::Page {
            page_param,
            first_page,
            per_page_param,
            per_page,
            ..
        } => {
            state.page = query_number(&request.url, page_param).unwrap_or(*first_page);
            set_query(&mut request.url, page_param, &state.page.to_string());
            if let Some(size) = per_page {
                set_query(&mut request.url, per_page_param, &size.to_string());
            }
        }
        Pagination::Link | Pagination::Cursor { .. } | Pagination::NextUrl { .. } => {}
    }
    state.seen.insert(request.url.to_string());
    Ok(request)
}

async fn fetch(state: &mut State, request: Request) -> Result<Page> {
    let describe = request.describe();
    let number = state.number + 1;
    let response = state
        .client
        .send(request.clone())
        .await
        .map_err(|e| e.with_context("page", number))?;
    if !response.is_success()
        && let Some(error) = state
            .paginator
            .error_mapper
            .as_ref()
            .and_then(|mapper| mapper.map(&response))
    {
        return Err(mapped_error(error, &request, number));
    }
    let response = response
        .error_for_status(&describe)
        .map_err(|e| e.with_context("page", number))?;
    state.number = number;
    let body: Option<Value> = if response.body.is_empty() {
        None
    } else {
        Some(response.json()?)
    };
    let items = items_of(
        body.as_ref(),
        state.paginator.items_path.as_deref(),
        &describe,
    )?;
    let next = if items.is_empty() {
        None
    } else {
        next_request(state, &request, &response, body.as_ref(), items.len())?
    };
    let more = next.is_some();
    state.next = match next {
        Some(next) if state.number < state.paginator.max_pages => Some(next),
        _ => None,
    };
    metrics::counter!("kernelize_http_pages_total").increment(1);
    Ok(Page {
        number: state.number,
        response,
        items,
        more,
    })
}

/// A mapper's error for page `number`, with the page and its URL as context.
fn mapped_error(error: Error, request: &Request, number: usize) -> Error {
    error
        .with_context("page", number)
        .with_context("url", page_url(request))
}

/// The page's URL for an error: origin and path, without the query, which may carry
/// credentials. A path template stands for the path, as in `Request::describe`; a relative
/// one (`node/{id}`, relative to the client's base URL) stands for as many trailing
/// segments of the path, after the base path.
fn page_url(request: &Request) -> String {
    let origin = request.url.origin().ascii_serialization();
    let label = request.path_label();
    if label.starts_with('/') {
        return format!("{origin}{label}");
    }
    let segments: Vec<&str> = request.url.path().split('/').collect();
    let keep = segments
        .len()
        .saturating_sub(label.split('/').count())
        .max(1);
    format!("{origin}{}/{label}", segments[..keep].join("/"))
}

/// The request for the page after this one, or `None` when this was the last.
fn next_request(
    state: &mut State,
    request: &Request,
    response: &Response,
    body: Option<&Value>,
    count: usize,
) -> Result<Option<Request>> {
    let mut next = request.clone();
    match &state.paginator.pagination {
        Pagination::Link => {
            let Some(target) = response
                .headers
                .get_all("link")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link)
            else {
                return Ok(None);
            };
            next.url = response.url.join(&target).map_err(|e| {
                Error::new(
                    ErrorKind::Remote,
                    format!("the Link header's next URL `{target}` is not a URL: {e}"),
                )
            })?;
        }
        Pagination::Cursor {
            cursor_param,
            cursor_path,
            has_more_path,
        } => {
            if let Some(path) = has_more_path
                && lookup(body, path).and_then(Value::as_bool) == Some(false)
            {
                return Ok(None);
            }
            let cursor = match lookup(body, cursor_path) {
                None | Some(Value::Null) => return Ok(None),
                Some(Value::String(s)) if s.is_empty() => return Ok(None),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(other) => {
                    return Err(Error::new(
                        ErrorKind::Remote,
                        format!("the cursor at `{cursor_path}` is not a string or number: {other}"),
                    ));
                }
            };
            set_query(&mut next.url, cursor_param, &cursor);
        }
        Pagination::Offset {
            offset_param,
            limit,
            total_path,
            ..
        } => {
            state.offset += count as u64;
            match total_path.as_deref().map(|p| lookup(body, p)) {
                Some(Some(total)) => {
                    let total = total.as_u64().ok_or_else(|| {
                        Error::new(
                            ErrorKind::Remote,
                            format!(
                                "the total at `{}` is not a count: {total}",
                                total_path.as_deref().unwrap_or_default()
                            ),
                        )
                    })?;
                    if state.offset >= total {
                        return Ok(None);
                    }
                }
                _ if (count as u64) < *limit => return Ok(None),
                _ => {}
            }
            set_query(&mut next.url, offset_param, &state.offset.to_string());
        }
        Pagination::Page {
            page_param,
            first_page,
            total_pages_header,
            total_pages_path,
            ..
        } => {
            let total = match total_pages_path {
                Some(path) => lookup(body, path).and_then(Value::as_u64),
                None => total_pages_header
                    .as_deref()
                    .and_then(|h| response.header(h))
                    .and_then(|v| v.trim().parse::<u64>().ok()),
            };
            // Pages are numbered from `first_page`: the last one is first_page + total - 1.
            if let Some(total) = total
                && state.page + 1 >= first_page + total
            {
                return Ok(None);
            }
            state.page += 1;
            set_query(&mut next.url, page_param, &state.page.to_string());
        }
        Pagination::NextUrl { next_path } => {
            let target = match lookup(body, next_path) {
                None | Some(Value::Null) => return Ok(None),
                Some(Value::String(s)) if s.is_empty() => return Ok(None),
                Some(Value::String(s)) => s.clone(),
                Some(other) => {
                    return Err(Error::new(
                        ErrorKind::Remote,
                        format!("the next URL at `{next_path}` is not a string: {other}"),
                    ));
                }
            };
            next.url = response.url.join(&target).map_err(|e| {
                Error::new(
                    ErrorKind::Remote,
                    format!("the next URL `{target}` is not a URL: {e}"),
                )
            })?;
        }
    }
    // The stack's authentication goes with every page: a next link to another origin
    // would hand it the credentials.
    if next.url.origin() != request.url.origin() {
        return Err(Error::new(
            ErrorKind::Remote,
            format!(
                "{} points the next page at another origin ({}); it is not followed with \
                 this client's credentials",
                request.describe(),
                next.url.origin().ascii_serialization()
            ),
        ));
    }
    if !state.seen.insert(next.url.to_string()) {
        return Err(Error::new(
            ErrorKind::Remote,
            format!(
                "pagination loops: {} sent the walk back to a page it already gave (page {})",
                request.describe(),
                state.number + 1
            ),
        ));
    }
    Ok(Some(next))
}

/// The items of a page.
fn items_of(body: Option<&Value>, path: Option<&str>, describe: &str) -> Result<Vec<Value>> {
    let found = match path {
        Some(path) => match lookup(body, path) {
            Some(v) => v,
            // A page without the items field holds no items (some APIs leave it out on
            // an empty last page).
            None => return Ok(Vec::new()),
        },
        None => match body {
            Some(v) => v,
            None => return Ok(Vec::new()),
        },
    };
    match found {
        Value::Array(items) => Ok(items.clone()),
        Value::Null => Ok(Vec::new()),
        other => Err(Error::new(
            ErrorKind::Remote,
            format!(
                "{describe}: the items{} are not an array but {}",
                path.map(|p| format!(" at `{p}`")).unwrap_or_default(),
                kernelize_core::payload::json_type_name(other)
            ),
        )),
    }
}

/// The value at a JSON pointer (`/a/0/b`) or a dotted path (`a.0.b`).
pub(crate) fn lookup<'a>(body: Option<&'a Value>, path: &str) -> Option<&'a Value> {
    let body = body?;
    if path.is_empty() {
        return Some(body);
    }
    if path.starts_with('/') {
        return body.pointer(path);
    }
    path.split('.').try_fold(body, |value, key| match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Replaces (or adds) one query parameter, keeping the others in order.
fn set_query(url: &mut Url, name: &str, value: &str) {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut query = url.query_pairs_mut();
    query.clear();
    query.extend_pairs(pairs);
    query.append_pair(name, value);
}

fn query_number(url: &Url, name: &str) -> Option<u64> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// The `rel="next"` target of one `Link` header value (RFC 8288 §3): a list of
/// `<URI>; param=value; ...` links, where `rel` may hold several space-separated types and
/// its value may be quoted. A small parser of our own: the grammar is a few lines, and the
/// crates for it are unmaintained.
pub fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    loop {
        let open = rest.find('<')?;
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        rest = &rest[close + 1..];
        // The link's parameters run to the next comma outside quotes.
        let mut end = rest.len();
        let mut quoted = false;
        for (i, c) in rest.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let params = &rest[..end];
        rest = &rest[end..];
        let is_next = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.trim().to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_are_read_as_rfc_8288_writes_them() {
        let github = r#"<https://api.github.com/repos/x/y/issues?page=2>; rel="next", <https://api.github.com/repos/x/y/issues?page=5>; rel="last""#;
        assert_eq!(
            next_link(github).as_deref(),
            Some("https://api.github.com/repos/x/y/issues?page=2")
        );
        // rel first in a list, unquoted, several types, a comma inside a quoted title.
        let odd = r#"</a?x=1,2>; title="one, two"; rel=prev, </b>; rel="start next""#;
        assert_eq!(next_link(odd).as_deref(), Some("/b"));
        assert_eq!(next_link(r#"</a>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
        assert_eq!(next_link("<unterminated; rel=next"), None);
    }

    #[test]
    fn paths_are_pointers_or_dotted() {
        let body = serde_json::json!({"meta": {"next": "abc", "list": [1, {"id": 7}]}});
        assert_eq!(lookup(Some(&body), "/meta/next"), Some(&Value::from("abc")));
        assert_eq!(lookup(Some(&body), "meta.next"), Some(&Value::from("abc")));
        assert_eq!(lookup(Some(&body), "meta.list.1.id"), Some(&Value::from(7)));
        assert_eq!(lookup(Some(&body), "meta.missing"), None);
        assert_eq!(lookup(None, "meta"), None);
    }

    #[test]
    fn set_query_replaces_and_keeps_the_rest() {
        let mut url = Url::parse("http://h/p?a=1&cursor=old&b=2").unwrap_or_else(|e| panic!("{e}"));
        set_query(&mut url, "cursor", "new value");
        assert_eq!(url.query(), Some("a=1&b=2&cursor=new+value"));
    }

    #[test]
    fn pagination_config_reads_from_json() {
        let p: Paginator = serde_json::from_value(serde_json::json!({
            "pagination": {"kind": "cursor", "cursor_path": "meta.next"},
            "items_path": "/data",
            "max_pages": 3
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.pagination,
            Pagination::Cursor {
                cursor_param: "cursor".into(),
                cursor_path: "meta.next".into(),
                has_more_path: None
            }
        );
        let bad = serde_json::from_value::<Pagination>(serde_json::json!({"kind": "pages"}));
        assert!(bad.is_err());
    }

    #[test]
    fn a_page_url_keeps_the_base_path_under_a_relative_template_and_drops_the_query() {
        let request = |url: &str, template: Option<&str>| {
            let url = Url::parse(url).unwrap_or_else(|e| panic!("{e}"));
            let request = Request::new(reqwest::Method::GET, url);
            match template {
                Some(t) => page_url(&request.path_template(t)),
                None => page_url(&request),
            }
        };
        assert_eq!(
            request(
                "http://h:8/jsonapi/node/article?page[offset]=50",
                Some("node/article")
            ),
            "http://h:8/jsonapi/node/article"
        );
        assert_eq!(
            request(
                "https://h/api/v2/items/123/secret?token=x",
                Some("items/{id}/{key}")
            ),
            "https://h/api/v2/items/{id}/{key}"
        );
        assert_eq!(
            request(
                "https://h/hooks/catch/1/abc/",
                Some("/hooks/catch/{account}/{hook}/")
            ),
            "https://h/hooks/catch/{account}/{hook}/"
        );
        assert_eq!(request("https://h/x", Some("a/b/c")), "https://h/a/b/c");
        assert_eq!(
            request("https://h/v1/posts?page=2", None),
            "https://h/v1/posts"
        );
    }

    #[test]
    fn an_error_mapper_is_code_only_and_compared_by_identity() {
        let plain = Paginator::new(Pagination::Link);
        let mapped = plain.clone().map_error(|_| None);
        // Not in the config: it serializes as the plain walk and reads back without one.
        let json = serde_json::to_value(&mapped).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            json,
            serde_json::to_value(&plain).unwrap_or_else(|e| panic!("{e}"))
        );
        let back: Paginator = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, plain);
        assert_eq!(mapped.clone(), mapped);
        assert_ne!(mapped, plain);
        assert_ne!(mapped, plain.map_error(|_| None));
        assert!(format!("{mapped:?}").contains("ErrorMapper(..)"));
    }
}
