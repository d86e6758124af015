//! Every pagination kind against a real server on loopback that pages seven items three at
//! a time (three pages), the way each kind of API does it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::TryStreamExt;
use kernelize_connectors::http::{
    HttpClient, Method, Pagination, Paginator, Response as HttpResponse,
};
use kernelize_core::{Error, ErrorKind};
use serde_json::{Value, json};

const ITEMS: usize = 7;
const PER_PAGE: usize = 3;

type Hits = Arc<Mutex<Vec<String>>>;
type Params = Query<HashMap<String, String>>;

fn slice(from: usize) -> Vec<Value> {
    (from..ITEMS.min(from + PER_PAGE))
        .map(|i| json!({"id": i}))
        .collect()
}

fn json_response(headers: Vec<(&'static str, String)>, body: Value) -> Response {
    let mut response = ([("content-type", "application/json")], body.to_string()).into_response();
    for (name, value) in headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

fn record(hits: &Hits, path: &str, q: &HashMap<String, String>) {
    let mut q: Vec<_> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    q.sort();
    hits.lock().unwrap().push(format!("{path}?{}", q.join("&")));
}

fn number(q: &HashMap<String, String>, name: &str, default: usize) -> usize {
    q.get(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn link(State(hits): State<Hits>, headers: HeaderMap, Query(q): Params) -> Response {
    record(&hits, "/link", &q);
    let page = number(&q, "page", 1);
    let host = headers["host"].to_str().unwrap().to_string();
    let mut links = Vec::new();
    if page * PER_PAGE < ITEMS {
        // Absolute URL for page 2, relative for page 3: both must be followed.
        let target = if page == 1 {
            format!("http://{host}/link?page=2")
        } else {
            format!("/link?page={}", page + 1)
        };
        links.push(format!(r#"<{target}>; rel="next""#));
    }
    links.push(r#"</link?page=3>; rel="last""#.to_string());
    json_response(
        vec![("link", links.join(", "))],
        Value::Array(slice((page - 1) * PER_PAGE)),
    )
}

async fn cursor(State(hits): State<Hits>, Query(q): Params) -> Response {
    record(&hits, "/cursor", &q);
    let from = q
        .get("after")
        .map(|c| c.trim_start_matches("c").parse::<usize>().unwrap())
        .unwrap_or(0);
    let next = from + PER_PAGE;
    // Slack's way: the last page has an empty cursor.
    let next_cursor = if next < ITEMS {
        format!("c{next}")
    } else {
        String::new()
    };
    json_response(
        vec![],
        json!({"ok": true, "members": slice(from), "response_metadata": {"next_cursor": next_cursor}}),
    )
}

async fn offset(State(hits): State<Hits>, Query(q): Params) -> Response {
    record(&hits, "/offset", &q);
    let from = number(&q, "offset", 0);
    assert_eq!(number(&q, "limit", 0), PER_PAGE);
    json_response(vec![], json!({"results": slice(from), "total": ITEMS}))
}

async fn page(State(hits): State<Hits>, Query(q): Params) -> Response {
    record(&hits, "/page", &q);
    let page = number(&q, "page", 1);
    assert_eq!(number(&q, "per_page", 0), PER_PAGE);
    let pages = ITEMS.div_ceil(PER_PAGE);
    json_response(
        vec![("x-total-pages", pages.to_string())],
        Value::Array(slice((page - 1) * PER_PAGE)),
    )
}

async fn next_url(State(hits): State<Hits>, Query(q): Params) -> Response {
    record(&hits, "/next", &q);
    let from = number(&q, "skip", 0);
    let next = from + PER_PAGE;
    let link = (next < ITEMS).then(|| format!("/next?skip={next}"));
    json_response(
        vec![],
        json!({"value": slice(from), "@odata.nextLink": link}),
    )
}

/// Always answers with the same cursor: a walk that would never end.
async fn stuck(State(hits): State<Hits>, Query(q): Params) -> Response {
    record(&hits, "/stuck", &q);
    json_response(vec![], json!({"data": [1], "next": "same"}))
}

/// Points its next page at another origin.
async fn elsewhere(State(hits): State<Hits>, Query(q): Params) -> Response {
    record(&hits, "/elsewhere", &q);
    json_response(
        vec![(
            "link",
            r#"<http://127.0.0.2:9/steal?page=2>; rel="next""#.into(),
        )],
        json!([1, 2]),
    )
}

/// Page 1 answers and links to page 2, which answers 422 with a vendor error body (the
/// WordPress shape) and a request id header.
async fn failing(State(hits): State<Hits>, Query(q): Params) -> Response {
    record(&hits, "/failing", &q);
    if number(&q, "page", 1) == 1 {
        return json_response(
            vec![(
                "link",
                r#"</failing?page=2&token=s3cret>; rel="next""#.into(),
            )],
            json!([{"id": 0}, {"id": 1}]),
        );
    }
    let mut response = json_response(
        vec![("x-request-id", "req-7".into())],
        json!({"code": "rest_invalid_param", "message": "Invalid parameter(s): status",
               "data": {"status": 422}}),
    );
    *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    response
}

async fn start() -> (HttpClient, Hits) {
    let hits: Hits = Arc::default();
    let app = Router::new()
        .route("/link", get(link))
        .route("/cursor", get(cursor))
        .route("/offset", get(offset))
        .route("/page", get(page))
        .route("/next", get(next_url))
        .route("/stuck", get(stuck))
        .route("/elsewhere", get(elsewhere))
        .route("/failing", get(failing))
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = HttpClient::with_defaults(&format!("http://{addr}/")).unwrap();
    (client, hits)
}

fn kinds() -> Vec<(&'static str, Paginator)> {
    vec![
        ("link", Paginator::new(Pagination::Link)),
        (
            "cursor",
            Paginator::new(Pagination::Cursor {
                cursor_param: "after".into(),
                cursor_path: "response_metadata.next_cursor".into(),
                has_more_path: None,
            })
            .items_at("members"),
        ),
        (
            "offset",
            Paginator::new(Pagination::Offset {
                offset_param: "offset".into(),
                limit_param: "limit".into(),
                limit: PER_PAGE as u64,
                total_path: Some("/total".into()),
            })
            .items_at("/results"),
        ),
        (
            "page",
            Paginator::new(Pagination::Page {
                page_param: "page".into(),
                first_page: 1,
                per_page_param: "per_page".into(),
                per_page: Some(PER_PAGE as u64),
                total_pages_header: Some("X-Total-Pages".into()),
                total_pages_path: None,
            }),
        ),
        (
            "next",
            Paginator::new(Pagination::NextUrl {
                next_path: "/@odata.nextLink".into(),
            })
            .items_at("value"),
        ),
    ]
}

fn ids(items: &[Value]) -> Vec<u64> {
    items.iter().map(|i| i["id"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn each_kind_walks_three_pages_to_the_end() {
    let (client, hits) = start().await;
    for (path, paginator) in kinds() {
        hits.lock().unwrap().clear();
        let request = client.request(Method::GET, path).unwrap();
        let collected = client.paginate_all(request, paginator).await.unwrap();
        assert_eq!(ids(&collected.items), (0..7).collect::<Vec<_>>(), "{path}");
        assert_eq!(collected.pages, 3, "{path}");
        assert!(collected.complete, "{path}");
        assert_eq!(
            hits.lock().unwrap().len(),
            3,
            "{path}: three requests, none after the last page: {:?}",
            hits.lock().unwrap()
        );
    }
}

#[tokio::test]
async fn each_kind_stops_at_the_page_cap_and_says_so() {
    let (client, hits) = start().await;
    for (path, paginator) in kinds() {
        hits.lock().unwrap().clear();
        let request = client.request(Method::GET, path).unwrap();
        let collected = client
            .paginate_all(request, paginator.max_pages(2))
            .await
            .unwrap();
        assert_eq!(ids(&collected.items), (0..6).collect::<Vec<_>>(), "{path}");
        assert_eq!(collected.pages, 2, "{path}");
        assert!(!collected.complete, "{path}: the cap cut the walk short");
        assert_eq!(
            hits.lock().unwrap().len(),
            2,
            "{path}: no request past the cap"
        );
    }
}

#[tokio::test]
async fn pages_stream_one_request_at_a_time_with_their_numbers() {
    let (client, hits) = start().await;
    let (_, paginator) = kinds().remove(1);
    let request = client.request(Method::GET, "cursor").unwrap();
    let mut pages = std::pin::pin!(client.paginate(request, paginator));
    let first = pages.try_next().await.unwrap().unwrap();
    assert_eq!((first.number, first.items.len(), first.more), (1, 3, true));
    assert_eq!(
        hits.lock().unwrap().len(),
        1,
        "the next page is fetched only when asked for"
    );
    let rest: Vec<_> = pages.try_collect().await.unwrap();
    assert_eq!(rest.iter().map(|p| p.number).collect::<Vec<_>>(), [2, 3]);
    assert!(!rest[1].more);
    assert_eq!(
        *hits.lock().unwrap(),
        ["/cursor?", "/cursor?after=c3", "/cursor?after=c6"]
    );

    let items: Vec<Value> = client
        .paginate_items(
            client.request(Method::GET, "offset").unwrap(),
            kinds().remove(2).1,
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids(&items), (0..7).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_walk_sent_back_to_a_page_it_had_is_an_error_not_an_endless_loop() {
    let (client, hits) = start().await;
    let paginator = Paginator::new(Pagination::Cursor {
        cursor_param: "cursor".into(),
        cursor_path: "next".into(),
        has_more_path: None,
    })
    .items_at("data");
    let request = client.request(Method::GET, "stuck").unwrap();
    let error = client.paginate_all(request, paginator).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Remote);
    assert!(error.to_string().contains("pagination loops"), "{error}");
    assert_eq!(hits.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn items_that_are_not_an_array_are_an_error_naming_the_path() {
    let (client, _) = start().await;
    let paginator = Paginator::new(Pagination::Link).items_at("/ok");
    let request = client.request(Method::GET, "cursor").unwrap();
    let error = client.paginate_all(request, paginator).await.unwrap_err();
    assert!(error.to_string().contains("`/ok`"), "{error}");
    assert!(error.to_string().contains("a boolean"), "{error}");
}

#[tokio::test]
async fn a_next_page_on_another_origin_is_not_followed() {
    let (client, hits) = start().await;
    let request = client.request(Method::GET, "elsewhere").unwrap();
    let error = client
        .paginate_all(request, Paginator::new(Pagination::Link))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("another origin"), "{error}");
    assert!(error.to_string().contains("http://127.0.0.2:9"), "{error}");
    assert_eq!(hits.lock().unwrap().len(), 1);
}

/// A vendor mapping, as a connector writes it: the status, a header and the JSON body.
fn vendor_error(response: &HttpResponse) -> Option<Error> {
    let body: Value = serde_json::from_slice(&response.body).ok()?;
    let code = body["code"].as_str()?;
    let message = body["message"].as_str()?;
    let kind = match response.status.as_u16() {
        400 | 422 => ErrorKind::InvalidInput,
        _ => ErrorKind::Remote,
    };
    Some(
        Error::new(
            kind,
            format!(
                "vendor answered {}: {code}: {message} (request {})",
                response.status.as_u16(),
                response.header("x-request-id").unwrap_or("?")
            ),
        )
        .with_status(response.status.as_u16())
        .with_context("code", code)
        .set_permanent(),
    )
}

#[tokio::test]
async fn a_failing_page_becomes_the_error_the_mapper_builds_with_the_page_as_context() {
    let (client, hits) = start().await;
    let calls = Arc::new(Mutex::new(0));
    let seen = calls.clone();
    let paginator = Paginator::new(Pagination::Link).map_error(move |response| {
        *seen.lock().unwrap() += 1;
        vendor_error(response)
    });
    let request = client.request(Method::GET, "failing").unwrap();
    let error = client.paginate_all(request, paginator).await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert_eq!(error.status(), Some(422));
    assert!(!error.is_temporary());
    assert_eq!(
        error.message(),
        "vendor answered 422: rest_invalid_param: Invalid parameter(s): status (request req-7)"
    );
    assert_eq!(error.context_value("code"), Some("rest_invalid_param"));
    assert_eq!(error.context_value("page"), Some("2"));
    let url = error.context_value("url").unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/failing"),
        "{url}"
    );
    // The query (here a token) stays out of the error.
    assert!(!error.to_string().contains("s3cret"), "{error}");
    // Called for the failing page only, not for the good one.
    assert_eq!(*calls.lock().unwrap(), 1);
    assert_eq!(hits.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn the_stream_gives_the_good_pages_before_the_mapped_error() {
    let (client, _) = start().await;
    let paginator = Paginator::new(Pagination::Link).map_error(vendor_error);
    let request = client.request(Method::GET, "failing").unwrap();
    let mut pages = std::pin::pin!(client.paginate(request, paginator));
    let first = pages.try_next().await.unwrap().unwrap();
    assert_eq!((first.number, first.items.len(), first.more), (1, 2, true));
    let error = pages.try_next().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert_eq!(error.context_value("page"), Some("2"));
}

#[tokio::test]
async fn a_mapper_answering_none_leaves_the_generic_error() {
    let (client, _) = start().await;
    let calls = Arc::new(Mutex::new(0));
    let seen = calls.clone();
    let paginator = Paginator::new(Pagination::Link).map_error(move |_| {
        *seen.lock().unwrap() += 1;
        None
    });
    let request = client.request(Method::GET, "failing").unwrap();
    let mapped_none = client.paginate_all(request, paginator).await.unwrap_err();
    assert_eq!(*calls.lock().unwrap(), 1);

    let request = client.request(Method::GET, "failing").unwrap();
    let without = client
        .paginate_all(request, Paginator::new(Pagination::Link))
        .await
        .unwrap_err();

    for error in [&mapped_none, &without] {
        assert_eq!(error.kind(), ErrorKind::Remote);
        assert_eq!(error.status(), Some(422));
        assert!(error.message().contains("answered 422"), "{error}");
        // The generic error quotes the body as text.
        assert!(error.message().contains("rest_invalid_param"), "{error}");
        assert_eq!(error.context_value("page"), Some("2"));
        assert_eq!(error.context_value("url"), None);
    }
    assert_eq!(mapped_none.to_string(), without.to_string());
}
