//! The `drupal-connector` against the Drupal JSON:API fake: every action called by name
//! with JSON config, as a workflow calls it, and the requests the fake saw.

#![cfg(feature = "drupal")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use kernelize_connectors::drupal;
use kernelize_core::{ErrorKind, Payload, PluginManager, Records};
use kernelize_fakes::Fake;
use kernelize_fakes::drupal::{Config, start};
use serde_json::{Value, json};

mod saas_common;

const MEDIA: &str = "application/vnd.api+json";
const RUST_TAG: &str = "00000000-0000-4000-8000-000000000001";

async fn manager_with(fake: &Fake, extra: Value) -> kernelize_core::Result<PluginManager> {
    let settings = json!({
        "base_url": fake.url(),
        "auth": {"type": "basic", "user": "admin", "password": "admin-pass"},
        "http": {"retry": {"base_delay": "10ms"}},
    });
    let settings = saas_common::overlaid(settings, extra);
    let manager = saas_common::configured(drupal::factory(), settings, &[], vec![]);
    manager.activate(drupal::ID).await?;
    Ok(manager)
}

async fn manager(fake: &Fake) -> PluginManager {
    manager_with(fake, json!({})).await.unwrap()
}

async fn call(
    manager: &PluginManager,
    action: &str,
    config: Value,
    input: Payload,
) -> kernelize_core::Result<Payload> {
    saas_common::call(manager, drupal::ID, action, config, input).await
}

async fn json_of(manager: &PluginManager, action: &str, config: Value, input: Payload) -> Value {
    call(manager, action, config, input)
        .await
        .unwrap()
        .into_json()
        .unwrap()
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:admin-pass")
    )
}

#[tokio::test]
async fn list_follows_links_next_and_flattens_attributes_and_relationships() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager_with(&fake, json!({"page_limit": 3})).await.unwrap();

    let records: Records = call(
        &m,
        "list",
        json!({"entity_type": "node", "bundle": "article"}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_records()
    .unwrap();
    let rows = records.to_json_rows().unwrap();

    assert_eq!(rows.len(), 7);
    let first = &rows[0];
    assert_eq!(first["id"], "00000000-0000-4000-8000-000000000100");
    assert_eq!(first["type"], "node--article");
    assert_eq!(first["title"], "Article 1");
    assert_eq!(first["drupal_internal__nid"], 1);
    assert_eq!(first["status"], true);
    assert_eq!(first["body.value"], "<p>Body 1</p>");
    assert_eq!(
        first["created"], "2024-05-01T10:00:00Z",
        "typed as a timestamp"
    );
    assert_eq!(first["uid"], "00000000-0000-4000-8000-000000009000");
    assert!(first["field_tags"].as_str().unwrap().contains(RUST_TAG));
    let schema = records.schema();
    use kernelize_core::arrow_schema::DataType;
    assert_eq!(
        schema
            .field_with_name("drupal_internal__nid")
            .unwrap()
            .data_type(),
        &DataType::Int64
    );
    assert_eq!(
        schema.field_with_name("status").unwrap().data_type(),
        &DataType::Boolean
    );

    let seen = fake.journal().matching("GET", "/jsonapi/node/article");
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].param("page[limit]").as_deref(), Some("3"));
    assert_eq!(seen[1].param("page[offset]").as_deref(), Some("3"));
    assert_eq!(seen[2].param("page[offset]").as_deref(), Some("6"));
    for page in &seen {
        assert_eq!(page.header("accept"), Some(MEDIA));
        assert_eq!(page.header("authorization"), Some(basic().as_str()));
    }
}

#[tokio::test]
async fn list_passes_filters_and_sort_through_to_every_page() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager(&fake).await;

    let rows = call(
        &m,
        "list",
        json!({"entity_type": "node", "bundle": "article", "page_limit": 2,
               "params": {"filter[status]": 1, "sort": "-created"}}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_records()
    .unwrap()
    .to_json_rows()
    .unwrap();

    let titles: Vec<&str> = rows.iter().map(|r| r["title"].as_str().unwrap()).collect();
    assert_eq!(
        titles,
        vec![
            "Article 7",
            "Article 5",
            "Article 4",
            "Article 2",
            "Article 1"
        ]
    );
    let seen = fake.journal().matching("GET", "/jsonapi/node/article");
    assert_eq!(seen.len(), 3);
    for page in &seen {
        assert_eq!(page.param("filter[status]").as_deref(), Some("1"));
        assert_eq!(page.param("sort").as_deref(), Some("-created"));
    }
}

#[tokio::test]
async fn a_page_limit_above_drupals_50_is_refused() {
    let fake = start(Config::default()).await.unwrap();

    let err = manager_with(&fake, json!({"page_limit": 100}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
    assert!(err.to_string().contains("between 1 and 50"), "{err}");

    let m = manager(&fake).await;
    let err = call(
        &m,
        "list",
        json!({"entity_type": "node", "bundle": "article", "page_limit": 51}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(fake.journal().all().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn create_builds_a_json_api_document_per_mapped_row() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager(&fake).await;
    let rows = Payload::json(json!([
        {"headline": "Hello", "text": "<p>Hi</p>", "tags": [RUST_TAG], "ignored": 1},
        {"headline": "Second", "text": null, "tags": [RUST_TAG]},
    ]))
    .into_records()
    .unwrap();

    let out = json_of(
        &m,
        "create",
        json!({"entity_type": "node", "bundle": "article", "mapping": {
            "headline": "title",
            "text": "body.value",
            "tags": {"relationship": "field_tags", "type": "taxonomy_term--tags", "many": true},
        }}),
        Payload::Records(rows),
    )
    .await;

    assert_eq!(out["items"].as_array().unwrap().len(), 2);
    assert!(
        out["items"][0]["attributes"]["drupal_internal__nid"]
            .as_u64()
            .is_some()
    );
    assert!(out["items"][0]["id"].as_str().unwrap().len() == 36);
    let posts = fake.journal().matching("POST", "/jsonapi/node/article");
    assert_eq!(posts.len(), 2, "one resource per request");
    assert_eq!(posts[0].header("content-type"), Some(MEDIA));
    assert_eq!(posts[0].header("accept"), Some(MEDIA));
    assert_eq!(
        posts[0].json(),
        json!({"data": {"type": "node--article",
            "attributes": {"title": "Hello", "body": {"value": "<p>Hi</p>"}},
            "relationships": {"field_tags": {"data": [{"type": "taxonomy_term--tags", "id": RUST_TAG}]}}}})
    );
    assert_eq!(
        posts[1].json()["data"]["attributes"],
        json!({"title": "Second"}),
        "a null cell is left out"
    );
}

#[tokio::test]
async fn save_updates_rows_with_a_uuid_and_creates_the_others() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager(&fake).await;
    let existing = "00000000-0000-4000-8000-000000000101";

    let out = json_of(
        &m,
        "save",
        json!({"entity_type": "node", "bundle": "article", "mapping": {"uuid": "id", "headline": "title"}}),
        Payload::json(json!([
            {"uuid": existing, "headline": "Renamed"},
            {"uuid": null, "headline": "Brand new"},
        ])),
    )
    .await;

    assert_eq!(out["items"][0]["attributes"]["title"], "Renamed");
    assert_eq!(out["items"][1]["attributes"]["title"], "Brand new");
    let patch = fake
        .journal()
        .matching("PATCH", &format!("/jsonapi/node/article/{existing}"));
    assert_eq!(patch.len(), 1);
    assert_eq!(
        patch[0].json(),
        json!({"data": {"type": "node--article", "id": existing, "attributes": {"title": "Renamed"}}})
    );
    assert_eq!(
        fake.journal()
            .matching("POST", "/jsonapi/node/article")
            .len(),
        1
    );
}

#[tokio::test]
async fn update_and_delete_one_resource_each() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager(&fake).await;
    let uuid = "00000000-0000-4000-8000-000000000102";

    let updated = json_of(
        &m,
        "update",
        json!({"entity_type": "node", "bundle": "article", "id": uuid, "attributes": {"status": false}}),
        Payload::Empty,
    )
    .await;
    let deleted = json_of(
        &m,
        "delete",
        json!({"entity_type": "node", "bundle": "article"}),
        Payload::json(json!([uuid])),
    )
    .await;

    assert_eq!(updated["items"][0]["attributes"]["status"], false);
    assert_eq!(deleted["items"][0], json!({"id": uuid, "deleted": true}));
    let patch = &fake
        .journal()
        .matching("PATCH", &format!("/jsonapi/node/article/{uuid}"))[0];
    assert_eq!(patch.json()["data"]["id"], uuid);
    assert_eq!(patch.json()["data"]["type"], "node--article");
    assert_eq!(
        fake.journal()
            .matching("DELETE", &format!("/jsonapi/node/article/{uuid}"))
            .len(),
        1
    );
    let err = call(
        &m,
        "delete",
        json!({"entity_type": "node", "bundle": "article", "id": uuid}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_missing_required_field_is_invalid_input_naming_the_pointer() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager(&fake).await;

    let err = call(
        &m,
        "create",
        json!({"entity_type": "node", "bundle": "article", "attributes": {"body": {"value": "no title"}}}),
        Payload::Empty,
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.status(), Some(422));
    assert_eq!(err.context_value("pointer"), Some("/data/attributes/title"));
    assert!(
        err.message()
            .contains("title: This value should not be null. (at /data/attributes/title)"),
        "{err}"
    );
}

#[tokio::test]
async fn a_relationship_to_a_missing_term_names_its_pointer() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager(&fake).await;

    let err = call(
        &m,
        "create",
        json!({"entity_type": "node", "bundle": "article", "attributes": {"title": "T"},
               "relationships": {"field_tags": {"data": [{"type": "taxonomy_term--tags", "id": "00000000-0000-4000-8000-999999999999"}]}}}),
        Payload::Empty,
    )
    .await
    .unwrap_err();

    assert_eq!(err.status(), Some(422));
    assert_eq!(
        err.context_value("pointer"),
        Some("/data/relationships/field_tags")
    );
}

#[tokio::test]
async fn sync_taxonomy_creates_only_the_missing_terms() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager_with(
        &fake,
        json!({"auth": {"type": "bearer", "token": "fake-token"}}),
    )
    .await
    .unwrap();

    let out = json_of(
        &m,
        "sync_taxonomy",
        json!({"vocabulary": "tags", "parent": RUST_TAG}),
        Payload::json(
            json!([{"name": "Rust"}, {"name": "Kernelize"}, {"name": "Rust"}, {"name": " Arrow "}]),
        ),
    )
    .await;

    assert_eq!(out["created"], json!(["Kernelize", "Arrow"]));
    assert_eq!(out["terms"]["Rust"], RUST_TAG);
    assert_eq!(out["terms"].as_object().unwrap().len(), 3);
    let seen = fake.requests();
    assert_eq!(seen.len(), 3, "one list, two creations");
    assert_eq!(seen[0].path, "/jsonapi/taxonomy_term/tags");
    assert_eq!(seen[1].header("authorization"), Some("Bearer fake-token"));
    assert_eq!(
        seen[1].json(),
        json!({"data": {"type": "taxonomy_term--tags", "attributes": {"name": "Kernelize"},
                        "relationships": {"parent": {"data": [{"type": "taxonomy_term--tags", "id": RUST_TAG}]}}}})
    );
    // The new terms are there now: a second sync creates nothing.
    let again = json_of(
        &m,
        "sync_taxonomy",
        json!({"vocabulary": "tags", "names": ["Kernelize", "Arrow"]}),
        Payload::Empty,
    )
    .await;
    assert_eq!(again["created"], json!([]));
    assert_eq!(again["terms"]["Arrow"], out["terms"]["Arrow"]);
}

#[tokio::test]
async fn wrong_credentials_are_permission_denied() {
    let fake = start(Config::default()).await.unwrap();
    let m = manager_with(
        &fake,
        json!({"auth": {"type": "basic", "user": "admin", "password": "nope"}}),
    )
    .await
    .unwrap();

    let err = call(
        &m,
        "list",
        json!({"entity_type": "node", "bundle": "article"}),
        Payload::Empty,
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert_eq!(err.status(), Some(401));
    assert!(!err.to_string().contains("nope"));
}

#[tokio::test]
async fn the_fake_refuses_the_wrong_media_types_as_drupal_does() {
    // The fake's own checks, so that a client sending plain JSON would fail the tests above.
    let fake = start(Config::default()).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/jsonapi/node/article", fake.url());

    let wrong_accept = http
        .get(&url)
        .header("authorization", basic())
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let wrong_type = http
        .post(&url)
        .header("authorization", basic())
        .header("accept", MEDIA)
        .header("content-type", "application/json")
        .body(r#"{"data":{"type":"node--article","attributes":{"title":"x"}}}"#)
        .send()
        .await
        .unwrap();
    let wrong_route_type = http
        .post(&url)
        .header("authorization", basic())
        .header("accept", MEDIA)
        .header("content-type", MEDIA)
        .body(r#"{"data":{"type":"node--page","attributes":{"title":"x"}}}"#)
        .send()
        .await
        .unwrap();

    assert_eq!(wrong_accept.status().as_u16(), 406);
    assert_eq!(wrong_type.status().as_u16(), 415);
    assert_eq!(wrong_route_type.status().as_u16(), 409);
}
