//! The `wordpress-connector` against the WordPress fake (two sites on one server): every
//! action called by name with JSON config, as a workflow calls it, and the requests the
//! fake saw.

#![cfg(feature = "wordpress")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use kernelize_connectors::wordpress;
use kernelize_core::{ErrorKind, Payload, PluginManager};
use kernelize_fakes::Fake;
use kernelize_fakes::wordpress::{Config, Site, start};
use serde_json::{Value, json};

mod saas_common;

const MAIN_PASSWORD: &str = "abcd efgh ijkl mnop qrst uvwx";
const BLOG_PASSWORD: &str = "zyxw vuts rqpo nmlk jihg fedc";

fn two_sites() -> Config {
    Config {
        sites: vec![
            Site {
                prefix: String::new(),
                user: "admin".into(),
                application_password: MAIN_PASSWORD.into(),
            },
            Site {
                prefix: "/blog".into(),
                user: "editor".into(),
                application_password: BLOG_PASSWORD.into(),
            },
        ],
        ..Config::default()
    }
}

async fn manager(fake: &Fake) -> PluginManager {
    let settings = json!({
        "sites": [
            {"name": "main", "base_url": fake.url(), "user": "admin", "application_password": MAIN_PASSWORD},
            {"name": "blog", "base_url": format!("{}/blog/", fake.url()), "user": "editor", "application_password": BLOG_PASSWORD},
        ],
        "http": {"retry": {"base_delay": "10ms"}},
    });
    saas_common::activated(wordpress::factory(), settings, &[], vec![]).await
}

async fn call(
    manager: &PluginManager,
    action: &str,
    config: Value,
    input: Payload,
) -> kernelize_core::Result<Payload> {
    saas_common::call(manager, wordpress::ID, action, config, input).await
}

async fn json_of(manager: &PluginManager, action: &str, config: Value, input: Payload) -> Value {
    call(manager, action, config, input)
        .await
        .unwrap()
        .into_json()
        .unwrap()
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test]
async fn list_reads_every_page_up_to_x_wp_totalpages() {
    let fake = start(two_sites()).await.unwrap();
    let m = manager(&fake).await;

    let rows = call(
        &m,
        "list",
        json!({"per_page": 5, "filters": {"status": ["publish", "draft"]}}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_records()
    .unwrap()
    .to_json_rows()
    .unwrap();

    assert_eq!(rows.len(), 12);
    assert_eq!(rows[0]["id"], 1);
    assert_eq!(rows[0]["title"], "Post 1", "rendered fields are flattened");
    assert_eq!(
        rows[0]["date_gmt"], "2024-05-02T08:00:00Z",
        "GMT dates typed as UTC"
    );
    assert_eq!(rows[3]["status"], "draft");
    let seen = fake.journal().matching("GET", "/wp-json/wp/v2/posts");
    assert_eq!(seen.len(), 3, "12 posts at 5 a page");
    for (i, page) in seen.iter().enumerate() {
        assert_eq!(page.param("page"), Some((i + 1).to_string()));
        assert_eq!(page.param("per_page").as_deref(), Some("5"));
        assert_eq!(page.param("status").as_deref(), Some("publish,draft"));
        assert_eq!(
            page.header("authorization"),
            Some(basic("admin", MAIN_PASSWORD).as_str())
        );
    }
}

#[tokio::test]
async fn each_site_is_called_with_its_own_credentials() {
    let fake = start(two_sites()).await.unwrap();
    let m = manager(&fake).await;

    let rows = call(
        &m,
        "list",
        json!({"site": "blog", "resource": "categories"}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_records()
    .unwrap()
    .to_json_rows()
    .unwrap();

    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["name"], "News");
    assert_eq!(rows[0]["count"], 1);
    let seen = fake
        .journal()
        .matching("GET", "/blog/wp-json/wp/v2/categories");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].param("per_page").as_deref(), Some("100"));
    assert_eq!(
        seen[0].header("authorization"),
        Some(basic("editor", BLOG_PASSWORD).as_str())
    );

    let err = call(&m, "list", json!({"site": "shop"}), Payload::Empty)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("main, blog"), "{err}");
}

#[tokio::test]
async fn create_posts_with_seo_meta() {
    let fake = start(two_sites()).await.unwrap();
    let m = manager(&fake).await;

    let out = json_of(
        &m,
        "create",
        json!({"site": "blog", "seo": {"title": "Launch | Blog", "description": "We launched."}}),
        Payload::json(json!({"title": "Launch", "content": "<p>Hello</p>", "status": "publish"})),
    )
    .await;

    let post = &out["items"][0];
    assert_eq!(post["status"], "publish");
    assert_eq!(post["meta"]["_yoast_wpseo_title"], "Launch | Blog");
    assert_eq!(post["meta"]["_yoast_wpseo_metadesc"], "We launched.");
    let seen = fake.journal().matching("POST", "/blog/wp-json/wp/v2/posts");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].json(),
        json!({"title": "Launch", "content": "<p>Hello</p>", "status": "publish",
               "meta": {"_yoast_wpseo_title": "Launch | Blog", "_yoast_wpseo_metadesc": "We launched."}})
    );
    assert!(
        seen[0]
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
}

#[tokio::test]
async fn a_create_answered_200_is_accepted_too() {
    let fake = start(Config {
        create_status: 200,
        ..Config::default()
    })
    .await
    .unwrap();
    let settings = json!({"sites": [{"name": "only", "base_url": fake.url(), "user": "admin", "application_password": MAIN_PASSWORD}]});
    let m = saas_common::activated(wordpress::factory(), settings, &[], vec![]).await;

    let out = json_of(
        &m,
        "create",
        json!({"resource": "pages", "post": {"title": "About"}}),
        Payload::Empty,
    )
    .await;

    assert_eq!(out["items"][0]["type"], "page");
    assert_eq!(
        fake.journal()
            .matching("POST", "/wp-json/wp/v2/pages")
            .len(),
        1
    );
}

#[tokio::test]
async fn update_posts_by_the_ids_in_the_input() {
    let fake = start(two_sites()).await.unwrap();
    let m = manager(&fake).await;

    let out = json_of(
        &m,
        "update",
        json!({"seo": {"description": "Fresh."}}),
        Payload::json(json!([{"id": 3, "title": "Post three"}, {"id": "5", "status": "draft"}])),
    )
    .await;

    assert_eq!(out["items"][0]["title"]["raw"], "Post three");
    assert_eq!(out["items"][1]["status"], "draft");
    let first = fake.journal().matching("POST", "/wp-json/wp/v2/posts/3");
    assert_eq!(
        first[0].json(),
        json!({"title": "Post three", "meta": {"_yoast_wpseo_metadesc": "Fresh."}})
    );
    assert_eq!(
        fake.journal()
            .matching("POST", "/wp-json/wp/v2/posts/5")
            .len(),
        1
    );
}

#[tokio::test]
async fn delete_trashes_then_force_deletes_and_trashing_twice_is_a_clear_error() {
    let fake = start(two_sites()).await.unwrap();
    let m = manager(&fake).await;

    let trashed = json_of(&m, "delete", json!({"id": 2}), Payload::Empty).await;
    let err = call(&m, "delete", json!({"id": 2}), Payload::Empty)
        .await
        .unwrap_err();
    let gone = json_of(
        &m,
        "delete",
        json!({"force": true}),
        Payload::json(json!([2])),
    )
    .await;

    assert_eq!(trashed["items"][0]["status"], "trash");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.status(), Some(410));
    assert_eq!(err.context_value("code"), Some("rest_already_trashed"));
    assert!(
        err.message().contains("The post has already been deleted."),
        "{err}"
    );
    assert_eq!(gone["items"][0]["deleted"], true);
    let seen = fake.journal().matching("DELETE", "/wp-json/wp/v2/posts/2");
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].param("force").as_deref(), Some("false"));
    assert_eq!(seen[2].param("force").as_deref(), Some("true"));
}

#[tokio::test]
async fn upload_media_sends_raw_bytes_with_the_documented_headers_then_sets_alt_text() {
    let fake = start(two_sites()).await.unwrap();
    let m = manager(&fake).await;
    let png = b"\x89PNG\r\n\x1a\nfake image".to_vec();

    let media = json_of(
        &m,
        "upload_media",
        json!({"filename": "Café menu.png", "alt_text": "The menu", "caption": "Today"}),
        Payload::bytes(png.clone(), "image/png"),
    )
    .await;

    assert_eq!(media["alt_text"], "The menu");
    assert_eq!(media["mime_type"], "image/png");
    let upload = &fake.journal().matching("POST", "/wp-json/wp/v2/media")[0];
    assert_eq!(upload.body.as_ref(), png.as_slice());
    assert_eq!(upload.header("content-type"), Some("image/png"));
    assert_eq!(
        upload.header("content-disposition"),
        Some("attachment; filename=\"Caf_ menu.png\"; filename*=UTF-8''Caf%C3%A9%20menu.png")
    );
    assert_eq!(
        upload.header("content-md5"),
        Some(wordpress::md5_hex(&png).as_str())
    );
    let id = media["id"].as_u64().unwrap();
    let details = fake
        .journal()
        .matching("POST", &format!("/wp-json/wp/v2/media/{id}"));
    assert_eq!(
        details[0].json(),
        json!({"alt_text": "The menu", "caption": "Today"})
    );
}

#[tokio::test]
async fn upload_media_guesses_the_type_and_can_skip_the_md5() {
    let fake = start(two_sites()).await.unwrap();
    let m = manager(&fake).await;

    let media = json_of(
        &m,
        "upload_media",
        json!({"filename": "report.pdf", "content_md5": false}),
        Payload::bytes(b"%PDF-1.7".to_vec(), "application/octet-stream"),
    )
    .await;

    assert_eq!(media["mime_type"], "application/pdf");
    let upload = &fake.journal().matching("POST", "/wp-json/wp/v2/media")[0];
    assert_eq!(upload.header("content-md5"), None);
    assert_eq!(
        upload.header("content-disposition"),
        Some("attachment; filename=\"report.pdf\"")
    );
    assert_eq!(
        fake.journal()
            .matching("POST", "/wp-json/wp/v2/media/*")
            .len(),
        0
    );
}

#[tokio::test]
async fn a_wordpress_error_keeps_its_code_and_message() {
    let fake = start(two_sites()).await.unwrap();
    let m = manager(&fake).await;

    let err = call(
        &m,
        "create",
        json!({"post": {"status": "draft"}}),
        Payload::Empty,
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.context_value("code"), Some("empty_content"));
    assert!(
        err.message()
            .contains("Content, title, and excerpt are empty."),
        "{err}"
    );
    assert!(err.message().contains("`main`"), "{err}");
}

#[tokio::test]
async fn a_wrong_application_password_is_permission_denied() {
    let fake = start(two_sites()).await.unwrap();
    let settings = json!({"sites": [{"name": "main", "base_url": fake.url(), "user": "admin", "application_password": "wrong pass word"}]});
    let m = saas_common::activated(wordpress::factory(), settings, &[], vec![]).await;

    let err = call(&m, "delete", json!({"id": 1}), Payload::Empty)
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.context_value("code"), Some("incorrect_password"));
    assert!(!err.to_string().contains("wrong pass word"));
}

#[tokio::test]
async fn a_bad_list_parameter_is_invalid_input() {
    let fake = start(two_sites()).await.unwrap();
    let m = manager(&fake).await;

    let err = call(
        &m,
        "list",
        json!({"filters": {"per_page": 5}}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    let err = call(
        &m,
        "list",
        json!({"filters": {"status": "bogus"}}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.status(), Some(400));
    assert!(err.message().contains("rest_invalid_param"), "{err}");
}

#[tokio::test]
async fn the_fake_refuses_uploads_as_wordpress_core_does() {
    // The fake's own checks, so that a client sending the wrong headers would fail the
    // tests above.
    let fake = start(Config::default()).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/wp-json/wp/v2/media", fake.url());
    let auth = basic("admin", MAIN_PASSWORD);
    let code = |r: Value| r["code"].as_str().unwrap().to_string();

    let no_disposition = http
        .post(&url)
        .header("authorization", &auth)
        .header("content-type", "image/png")
        .body("x")
        .send()
        .await
        .unwrap();
    let no_filename = http
        .post(&url)
        .header("authorization", &auth)
        .header("content-type", "image/png")
        .header("content-disposition", "attachment")
        .body("x")
        .send()
        .await
        .unwrap();
    let bad_md5 = http
        .post(&url)
        .header("authorization", &auth)
        .header("content-type", "image/png")
        .header("content-disposition", "attachment; filename=\"a.png\"")
        .header("content-md5", "00000000000000000000000000000000")
        .body("x")
        .send()
        .await
        .unwrap();
    let no_data = http
        .post(&url)
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();

    assert_eq!(no_disposition.status().as_u16(), 400);
    assert_eq!(
        code(no_disposition.json().await.unwrap()),
        "rest_upload_no_content_disposition"
    );
    assert_eq!(
        code(no_filename.json().await.unwrap()),
        "rest_upload_invalid_disposition"
    );
    assert_eq!(bad_md5.status().as_u16(), 412);
    assert_eq!(
        code(bad_md5.json().await.unwrap()),
        "rest_upload_hash_mismatch"
    );
    assert_eq!(code(no_data.json().await.unwrap()), "rest_upload_no_data");
}
