//! The `wordpress-connector`'s typed actions: their names, per-call configs and outputs.

use std::collections::BTreeMap;

use kernelize_core::{Blob, Error, ErrorKind, Payload, Records, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::saas::{Batch, ColumnType, saas_action};

/// The most items one write call creates, updates or deletes.
pub const MAX_WRITES: usize = 1000;

fn default_per_page() -> u32 {
    100
}

fn default_true() -> bool {
    true
}

/// What a call lists, reads or deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// Posts (`/wp/v2/posts`).
    #[default]
    Posts,
    /// Pages (`/wp/v2/pages`).
    Pages,
    /// Media attachments (`/wp/v2/media`).
    Media,
    /// Categories (`/wp/v2/categories`).
    Categories,
    /// Tags (`/wp/v2/tags`).
    Tags,
}

impl Resource {
    /// The route segment (`posts`).
    pub fn path(self) -> &'static str {
        match self {
            Resource::Posts => "posts",
            Resource::Pages => "pages",
            Resource::Media => "media",
            Resource::Categories => "categories",
            Resource::Tags => "tags",
        }
    }
}

/// What `create` and `update` write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PostType {
    /// Posts.
    #[default]
    Posts,
    /// Pages.
    Pages,
}

impl PostType {
    /// The route segment.
    pub fn path(self) -> &'static str {
        match self {
            PostType::Posts => "posts",
            PostType::Pages => "pages",
        }
    }
}

/// SEO fields, written to post meta under the plugin's `seo_keys`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Seo {
    /// The SEO title.
    #[serde(default)]
    pub title: Option<String>,
    /// The meta description.
    #[serde(default)]
    pub description: Option<String>,
}

/// Config of `list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListConfig {
    /// The site's name; the first site when absent.
    #[serde(default)]
    pub site: Option<String>,
    /// What to list (`posts`).
    #[serde(default)]
    pub resource: Resource,
    /// Items per page, 1 to 100 (100).
    #[serde(default = "default_per_page")]
    #[schemars(range(min = 1, max = 100))]
    pub per_page: u32,
    /// Most pages read; the plugin's `max_pages` when absent.
    #[serde(default)]
    pub max_pages: Option<usize>,
    /// Query filters: `status` (`publish`, `draft,publish`, `any`), `after` (ISO 8601),
    /// `search`, `categories`, `author`, `orderby`, `context`…
    #[serde(default)]
    pub filters: BTreeMap<String, Value>,
}

/// Config of `create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConfig {
    /// The site's name; the first site when absent.
    #[serde(default)]
    pub site: Option<String>,
    /// `posts` or `pages`.
    #[serde(default)]
    pub resource: PostType,
    /// The item (`title`, `content`, `status`, `excerpt`, `categories`, `tags`, `meta`…);
    /// when absent, the input gives the items (an object, a list or records).
    #[serde(default)]
    pub post: Option<Map<String, Value>>,
    /// SEO fields for every item written.
    #[serde(default)]
    pub seo: Option<Seo>,
}

/// Config of `update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// The site's name; the first site when absent.
    #[serde(default)]
    pub site: Option<String>,
    /// `posts` or `pages`.
    #[serde(default)]
    pub resource: PostType,
    /// The item's id; else each item's `id`.
    #[serde(default)]
    pub id: Option<u64>,
    /// The fields to change; when absent, the input gives the items (each with its `id`).
    #[serde(default)]
    pub post: Option<Map<String, Value>>,
    /// SEO fields for every item written.
    #[serde(default)]
    pub seo: Option<Seo>,
}

/// Config of `delete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteConfig {
    /// The site's name; the first site when absent.
    #[serde(default)]
    pub site: Option<String>,
    /// What to delete (`posts`).
    #[serde(default)]
    pub resource: Resource,
    /// The id; else the input's ids (a number, a list of numbers, or objects with `id`).
    #[serde(default)]
    pub id: Option<u64>,
    /// Delete for good instead of moving to the trash (needed for media and terms).
    #[serde(default)]
    pub force: bool,
}

/// Config of `upload_media`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadMediaConfig {
    /// The site's name; the first site when absent.
    #[serde(default)]
    pub site: Option<String>,
    /// The file name to store (`logo.png`; any characters).
    pub filename: String,
    /// The media type; the input's when absent, else guessed from the extension.
    #[serde(default)]
    pub mime_type: Option<String>,
    /// Send `Content-MD5` so that a corrupted upload is refused (true).
    #[serde(default = "default_true")]
    pub content_md5: bool,
    /// Alternative text, set after the upload.
    #[serde(default)]
    pub alt_text: Option<String>,
    /// Caption, set after the upload.
    #[serde(default)]
    pub caption: Option<String>,
    /// Title, set after the upload.
    #[serde(default)]
    pub title: Option<String>,
    /// Description, set after the upload.
    #[serde(default)]
    pub description: Option<String>,
    /// The post the attachment belongs to, set after the upload.
    #[serde(default)]
    pub post: Option<u64>,
}

/// What a write action wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Written {
    /// WordPress's answer for each item, in input order.
    pub items: Vec<Value>,
}

saas_action!(
    List,
    "list",
    "List posts, pages, media, categories or tags of a site, page by page up to X-WP-TotalPages, as records.",
    ListConfig,
    Payload,
    Records
);
saas_action!(
    Create,
    "create",
    "Create posts or pages (with SEO meta), one per input item.",
    CreateConfig,
    Payload,
    Written
);
saas_action!(
    Update,
    "update",
    "Update posts or pages by id (with SEO meta).",
    UpdateConfig,
    Payload,
    Written
);
saas_action!(
    Delete,
    "delete",
    "Move posts or pages to the trash, or delete items for good with force.",
    DeleteConfig,
    Payload,
    Written
);
saas_action!(
    UploadMedia,
    "upload_media",
    "Upload a file to the media library (raw body, Content-Disposition, Content-MD5), then set its alt text and caption.",
    UploadMediaConfig,
    Blob,
    Value
);

const POST_COLUMNS: &[(&str, ColumnType)] = &[
    ("id", ColumnType::Integer),
    ("date", ColumnType::Text),
    ("date_gmt", ColumnType::Timestamp),
    ("modified", ColumnType::Text),
    ("modified_gmt", ColumnType::Timestamp),
    ("slug", ColumnType::Text),
    ("status", ColumnType::Text),
    ("type", ColumnType::Text),
    ("link", ColumnType::Text),
    ("title", ColumnType::Text),
    ("content", ColumnType::Text),
    ("excerpt", ColumnType::Text),
    ("author", ColumnType::Integer),
    ("featured_media", ColumnType::Integer),
];

const MEDIA_COLUMNS: &[(&str, ColumnType)] = &[
    ("id", ColumnType::Integer),
    ("date", ColumnType::Text),
    ("date_gmt", ColumnType::Timestamp),
    ("slug", ColumnType::Text),
    ("title", ColumnType::Text),
    ("media_type", ColumnType::Text),
    ("mime_type", ColumnType::Text),
    ("source_url", ColumnType::Text),
    ("alt_text", ColumnType::Text),
    ("caption", ColumnType::Text),
    ("post", ColumnType::Integer),
    ("author", ColumnType::Integer),
];

const TERM_COLUMNS: &[(&str, ColumnType)] = &[
    ("id", ColumnType::Integer),
    ("name", ColumnType::Text),
    ("slug", ColumnType::Text),
    ("taxonomy", ColumnType::Text),
    ("count", ColumnType::Integer),
    ("parent", ColumnType::Integer),
    ("description", ColumnType::Text),
    ("link", ColumnType::Text),
];

/// The typed columns of a resource's records.
pub(crate) fn columns_of(resource: Resource) -> &'static [(&'static str, ColumnType)] {
    match resource {
        Resource::Posts | Resource::Pages => POST_COLUMNS,
        Resource::Media => MEDIA_COLUMNS,
        Resource::Categories | Resource::Tags => TERM_COLUMNS,
    }
}

/// `{"rendered": …}` fields (title, content…) as their text: `raw` when WordPress sent it
/// (`context=edit`), else `rendered`.
pub(crate) fn flatten_rendered(item: &mut Value) {
    if let Value::Object(map) = item {
        for value in map.values_mut() {
            if let Value::Object(inner) = value
                && let Some(text) = inner.get("raw").or_else(|| inner.get("rendered"))
                && text.is_string()
            {
                *value = text.clone();
            }
        }
    }
}

/// The ids a `delete` works on: its config's, else the input's.
pub(crate) fn ids_of(one: Option<u64>, input: Payload) -> Result<Vec<u64>> {
    if let Some(id) = one {
        return Ok(vec![id]);
    }
    let id_of = |v: &Value| -> Option<u64> {
        match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            Value::Object(m) => m.get("id").and_then(|id| match id {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }),
            _ => None,
        }
    };
    let batch = Batch {
        none: "no id given: set `id` or pass ids (or objects with `id`) as the input",
        item: "item",
        items: "ids",
        verb: "deletes",
        max: MAX_WRITES,
    };
    batch
        .values(input)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            id_of(v).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("input item {i} has no numeric id"),
                )
            })
        })
        .collect()
}
