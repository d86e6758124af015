//! The `shopify-connector` against the Shopify fake: every action called by name with JSON
//! config, as a workflow calls it, and the requests the fake saw.

#![cfg(feature = "shopify")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kernelize_connectors::shopify;
use kernelize_core::{ErrorKind, Payload, PluginManager};
use kernelize_fakes::shopify::{Config, start};
use serde_json::{Value, json};

mod saas_common;

const VERSION: &str = "2025-10";

async fn manager(fake: &kernelize_fakes::Fake, extra: Value) -> PluginManager {
    let settings = json!({
        "base_url": fake.url(),
        "api_version": VERSION,
        "access_token": "fake-token",
        "http": {"retry": {"base_delay": "10ms"}},
    });
    let settings = saas_common::overlaid(settings, extra);
    saas_common::activated(shopify::factory(), settings, &[], vec![]).await
}

async fn call(
    manager: &PluginManager,
    action: &str,
    config: Value,
    input: Payload,
) -> kernelize_core::Result<Payload> {
    saas_common::call(manager, shopify::ID, action, config, input).await
}

async fn rows(manager: &PluginManager, action: &str, config: Value) -> Vec<Value> {
    saas_common::json_rows(call(manager, action, config, Payload::Empty).await.unwrap())
}

fn path(rest: &str) -> String {
    format!("/admin/api/{VERSION}/{rest}")
}

#[tokio::test]
async fn list_products_follows_the_link_cursor_with_filters_only_on_the_first_page() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager(&fake, json!({})).await;

    let products = rows(
        &m,
        "list_products",
        json!({"limit": 2, "filters": {"status": "active"}}),
    )
    .await;

    // Products 1, 2, 4, 5 and 7 are active: three pages of two.
    let ids: Vec<i64> = products.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![1001, 1002, 1004, 1005, 1007]);
    assert_eq!(products[0]["handle"], "product-1");
    assert_eq!(
        products[0]["created_at"], "2024-05-01T14:00:00Z",
        "typed as a UTC timestamp"
    );
    assert!(
        products[0]["variants"].as_str().unwrap().contains("SKU-1"),
        "other fields as JSON text"
    );
    let seen = fake.journal().matching("GET", &path("products.json"));
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].param("status").as_deref(), Some("active"));
    assert_eq!(seen[0].param("limit").as_deref(), Some("2"));
    for page in &seen {
        assert_eq!(page.header("x-shopify-access-token"), Some("fake-token"));
    }
    for later in &seen[1..] {
        assert_eq!(
            later.param("status"),
            None,
            "filters go on the first request only"
        );
        assert!(later.param("page_info").is_some());
        assert_eq!(later.param("limit").as_deref(), Some("2"));
    }
}

#[tokio::test]
async fn list_orders_asks_for_every_status_and_types_money_as_decimal() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager(&fake, json!({})).await;

    let orders = rows(&m, "list_orders", json!({"limit": 2})).await;

    assert_eq!(
        orders.len(),
        5,
        "closed orders too: Shopify's own default is open only"
    );
    assert_eq!(
        orders[0]["total_price"].as_f64(),
        Some(10.5),
        "a decimal, not text"
    );
    assert_eq!(orders[2]["fulfillment_status"], "fulfilled");
    let seen = fake.journal().matching("GET", &path("orders.json"));
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].param("status").as_deref(), Some("any"));
}

#[tokio::test]
async fn list_customers_reads_every_page() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager(&fake, json!({})).await;

    let customers = rows(&m, "list_customers", json!({"limit": 3})).await;

    assert_eq!(customers.len(), 4);
    assert_eq!(customers[3]["email"], "customer4@example.com");
    assert_eq!(customers[0]["verified_email"], true);
    assert_eq!(
        fake.journal()
            .matching("GET", &path("customers.json"))
            .len(),
        2
    );
}

#[tokio::test]
async fn the_page_cap_stops_a_long_walk() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager(&fake, json!({})).await;

    let products = rows(&m, "list_products", json!({"limit": 2, "max_pages": 2})).await;

    assert_eq!(products.len(), 4);
    assert_eq!(
        fake.journal().matching("GET", &path("products.json")).len(),
        2
    );
}

#[tokio::test]
async fn graphql_products_page_by_end_cursor_into_the_same_records() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager(&fake, json!({"api": "graphql"})).await;

    let products = rows(&m, "list_products", json!({"limit": 3})).await;

    assert_eq!(products.len(), 7);
    assert_eq!(products[0]["id"], 1001);
    assert_eq!(products[0]["status"], "active");
    assert_eq!(
        products[0]["admin_graphql_api_id"],
        "gid://shopify/Product/1001"
    );
    let seen = fake.journal().matching("POST", &path("graphql.json"));
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].json()["variables"]["after"], Value::Null);
    assert_eq!(seen[0].json()["variables"]["first"], 3);
    assert!(seen[1].json()["variables"]["after"].is_string());
    assert!(
        seen[0].json()["query"]
            .as_str()
            .unwrap()
            .contains("pageInfo")
    );
}

async fn graphql_throttle_is_waited_out(status: u16) {
    // A query of `first: 10` costs 12 points; the bucket is empty and refills 12 a second.
    let fake = start(Config {
        graphql_throttle_times: 1,
        graphql_restore_rate: 12.0,
        throttle_status: status,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(&fake, json!({"api": "graphql"})).await;

    let started = Instant::now();
    let products = rows(&m, "list_products", json!({"limit": 10})).await;

    assert_eq!(products.len(), 7);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited (12 - 0) / 12 s: {:?}",
        started.elapsed()
    );
    assert_eq!(
        fake.journal().matching("POST", &path("graphql.json")).len(),
        2
    );
}

#[tokio::test]
async fn a_graphql_throttle_answered_200_is_waited_out_by_its_cost() {
    graphql_throttle_is_waited_out(200).await;
}

#[tokio::test]
async fn a_graphql_throttle_answered_429_is_waited_out_by_its_cost() {
    graphql_throttle_is_waited_out(429).await;
}

/// Four product walks at once over GraphQL, two products a page: four pages of 4 points
/// per walk, 64 points in all, from a bucket of 20 points that restores 40 a second.
/// Gives each walk's outcome, the THROTTLED answers the fake gave, the GraphQL requests
/// it saw and the time the run took.
async fn four_graphql_walks_on_a_small_bucket(
    pacing: bool,
) -> (Vec<kernelize_core::Result<Payload>>, u32, usize, Duration) {
    let config = Config {
        graphql_maximum_available: 20.0,
        graphql_restore_rate: 40.0,
        ..Config::default()
    };
    let counter = config.clone();
    let fake = start(config).await.unwrap();
    let m = manager(
        &fake,
        json!({
            "api": "graphql",
            "graphql_pacing": pacing,
            "graphql_bucket": {"default_cost": 50, "max_wait": "20s"},
            "http": {"retry": {"base_delay": "10ms", "max_attempts": 10}},
        }),
    )
    .await;

    let started = Instant::now();
    let walk = || call(&m, "list_products", json!({"limit": 2}), Payload::Empty);
    let (a, b, c, d) = tokio::join!(walk(), walk(), walk(), walk());
    let elapsed = started.elapsed();

    let requests = fake.journal().matching("POST", &path("graphql.json")).len();
    (
        vec![a, b, c, d],
        counter.throttled_answers(),
        requests,
        elapsed,
    )
}

#[tokio::test]
async fn graphql_calls_are_paced_by_the_cost_bucket_before_shopify_throttles_them() {
    let (walks, throttled, requests, elapsed) = four_graphql_walks_on_a_small_bucket(true).await;

    for walk in walks {
        assert_eq!(saas_common::json_rows(walk.unwrap()).len(), 7);
    }
    assert_eq!(throttled, 0, "the fake never had to answer THROTTLED");
    assert_eq!(requests, 16, "four pages per walk, none sent twice");
    // The bucket holds 20 of the 64 points: the other 44 take 1.1 s to come back.
    assert!(
        elapsed >= Duration::from_millis(1100),
        "the restore rate allows no less: {elapsed:?}"
    );
}

#[tokio::test]
async fn without_graphql_pacing_the_same_run_is_throttled() {
    let (_walks, throttled, requests, _elapsed) = four_graphql_walks_on_a_small_bucket(false).await;

    assert!(throttled >= 1, "the run overflows the bucket unpaced");
    assert!(requests > 16, "throttled requests were sent again");
}

#[tokio::test]
async fn a_throttled_mutation_is_retried_since_shopify_did_not_run_it() {
    let fake = start(Config {
        graphql_throttle_times: 1,
        graphql_restore_rate: 10.0,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(&fake, json!({})).await;

    let started = Instant::now();
    let out = call(
        &m,
        "upsert_product",
        json!({"api": "graphql", "match_by": "handle", "product": {"title": "Hat", "handle": "hat", "status": "ACTIVE"}}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();

    assert_eq!(out["products"][0]["handle"], "hat");
    assert!(out["products"][0]["id"].as_i64().unwrap() >= 5001);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    let seen = fake.journal().matching("POST", &path("graphql.json"));
    assert_eq!(seen.len(), 2);
    let body = seen[1].json();
    assert!(body["query"].as_str().unwrap().contains("productSet("));
    assert_eq!(body["variables"]["identifier"], json!({"handle": "hat"}));
    assert_eq!(body["variables"]["input"]["title"], "Hat");
}

#[tokio::test]
async fn a_graphql_user_error_names_the_field() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager(&fake, json!({"api": "graphql"})).await;

    let err = call(
        &m,
        "upsert_product",
        json!({"product": {"id": 999999, "title": "Ghost"}}),
        Payload::Empty,
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.message()
            .contains("identifier.id: Product does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn a_rest_429_is_retried_after_its_retry_after() {
    let fake = start(Config {
        rest_429_times: 1,
        retry_after_secs: 1,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(&fake, json!({})).await;

    let started = Instant::now();
    let customers = rows(&m, "list_customers", json!({})).await;

    assert_eq!(customers.len(), 4);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        fake.journal()
            .matching("GET", &path("customers.json"))
            .len(),
        2
    );
}

#[tokio::test]
async fn the_call_limit_header_paces_requests_before_the_bucket_overflows() {
    // A bucket of 3 draining 2/s: seven quick requests would overflow it.
    let fake = start(Config {
        bucket_size: 3,
        leak_per_second: 2.0,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(
        &fake,
        json!({"rest_bucket": {"leak_per_second": 2.0, "reserve": 0}, "http": {"retry": {"max_attempts": 1}}}),
    )
    .await;

    let started = Instant::now();
    let products = rows(&m, "list_products", json!({"limit": 1})).await;

    assert_eq!(products.len(), 7);
    // No 429 (retries are off, so one would have failed the call) and no extra request.
    assert_eq!(
        fake.journal().matching("GET", &path("products.json")).len(),
        7
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn upsert_product_creates_then_updates_the_product_found_by_handle() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager(&fake, json!({})).await;
    let config = json!({"match_by": "handle"});

    let first = call(
        &m,
        "upsert_product",
        config.clone(),
        Payload::json(json!({"title": "Red Hat", "handle": "red-hat", "vendor": "Acme"})),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    let second = call(
        &m,
        "upsert_product",
        config,
        Payload::json(json!([{"title": "Red Hat v2", "handle": "red-hat"}])),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();

    assert_eq!(first["products"][0]["created"], true);
    assert_eq!(second["products"][0]["created"], false);
    let id = first["products"][0]["id"].as_i64().unwrap();
    assert_eq!(second["products"][0]["id"], id);
    let lookups = fake.journal().matching("GET", &path("products.json"));
    assert_eq!(lookups.len(), 2);
    assert_eq!(lookups[0].param("handle").as_deref(), Some("red-hat"));
    let created = fake.journal().matching("POST", &path("products.json"));
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].json()["product"]["title"], "Red Hat");
    let updated = fake
        .journal()
        .matching("PUT", &path(&format!("products/{id}.json")));
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].json()["product"]["title"], "Red Hat v2");
}

#[tokio::test]
async fn a_product_with_an_id_is_updated_in_place() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager(&fake, json!({})).await;

    let out = call(
        &m,
        "upsert_product",
        json!({"product": {"id": 1003, "title": "Renamed"}}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();

    assert_eq!(
        out["products"][0],
        json!({"id": 1003, "admin_graphql_api_id": "gid://shopify/Product/1003", "handle": "product-3", "created": false})
    );
    let put = fake.journal().matching("PUT", &path("products/1003.json"));
    assert_eq!(put[0].json(), json!({"product": {"title": "Renamed"}}));
}

#[tokio::test]
async fn a_rest_validation_error_is_invalid_input_with_shopifys_message() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager(&fake, json!({})).await;

    let err = call(
        &m,
        "upsert_product",
        json!({"product": {"vendor": "Acme"}}),
        Payload::Empty,
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.status(), Some(422));
    assert!(err.message().contains("title: can't be blank"), "{err}");
}

#[tokio::test]
async fn set_inventory_posts_each_level() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager(&fake, json!({})).await;

    let out = call(
        &m,
        "set_inventory",
        json!({"location_id": 77}),
        Payload::json(json!([
            {"inventory_item_id": 100100, "available": 5},
            {"inventory_item_id": 100200, "available": "0", "location_id": 78}
        ])),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();

    assert_eq!(out["inventory_levels"][0]["available"], 5);
    assert_eq!(out["inventory_levels"][1]["location_id"], 78);
    let seen = fake
        .journal()
        .matching("POST", &path("inventory_levels/set.json"));
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].json(),
        json!({"location_id": 77, "inventory_item_id": 100100, "available": 5})
    );
}

#[tokio::test]
async fn a_wrong_token_is_permission_denied() {
    let fake = start(Config {
        access_token: "another".into(),
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(&fake, json!({})).await;

    let err = call(
        &m,
        "set_inventory",
        json!({"location_id": 1, "inventory_item_id": 2, "available": 3}),
        Payload::Empty,
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert_eq!(err.status(), Some(401));
    assert!(
        err.message().contains("Invalid API key or access token"),
        "{err}"
    );
    assert!(
        !err.to_string().contains("fake-token"),
        "the token is never in errors"
    );
}

#[tokio::test]
async fn the_typed_client_works_without_the_plugin() {
    let fake = start(Config::default()).await.unwrap();
    let mut settings =
        shopify::ShopifySettings::new("ignored", secrecy::SecretString::from("fake-token"));
    settings.base_url = Some(fake.url().to_string());
    let client = shopify::ShopifyClient::new(&settings).unwrap();

    let listed = client
        .list(shopify::Resource::Products, &[], 5, 10)
        .await
        .unwrap();

    assert_eq!(listed.items.len(), 7);
    assert_eq!(listed.pages, 2);
    assert!(listed.complete);
    let seen = fake.requests();
    assert!(
        seen[0]
            .path
            .starts_with(&format!("/admin/api/{}/", shopify::DEFAULT_API_VERSION))
    );
}

#[tokio::test]
async fn the_fake_holds_shopify_to_its_rules() {
    // The fake's own checks, so that a client breaking them would fail the tests above.
    let fake = start(Config {
        bucket_size: 2,
        ..Config::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}{}", fake.url(), path("products.json"));
    let get = |query: &'static str| {
        http.get(format!("{url}?{query}"))
            .header("x-shopify-access-token", "fake-token")
            .send()
    };

    let first = get("limit=3").await.unwrap();
    assert_eq!(first.headers()["x-shopify-shop-api-call-limit"], "1/2");
    let next = shopify_next(first.headers()["link"].to_str().unwrap());
    let with_filter = http
        .get(format!("{next}&vendor=Acme"))
        .header("x-shopify-access-token", "fake-token")
        .send()
        .await
        .unwrap();
    let overflow = get("limit=3").await.unwrap();

    assert_eq!(
        with_filter.status().as_u16(),
        400,
        "page_info with another filter"
    );
    assert_eq!(
        overflow.status().as_u16(),
        429,
        "a bucket of two overflows on the third call"
    );
    assert!(overflow.headers().contains_key("retry-after"));
    let unversioned = http
        .get(format!("{}/admin/api/latest/products.json", fake.url()))
        .header("x-shopify-access-token", "fake-token")
        .send()
        .await
        .unwrap();
    assert_eq!(unversioned.status().as_u16(), 404);
}

fn shopify_next(link: &str) -> String {
    kernelize_connectors::http::next_link(link).unwrap()
}
