#![doc = include_str!("docs.md")]

mod actions;
mod client;
mod config;

use std::sync::LazyLock;

use async_trait::async_trait;
use kernelize_core::plugin::{ActionContext, ActionRouter, Handler};
use kernelize_core::{Blob, Error, ErrorKind, Payload, Records, Result};
use serde_json::{Map, Value};
use url::Url;

pub use actions::{
    Create, CreateConfig, Delete, DeleteConfig, List, ListConfig, MAX_WRITES, PostType, Resource,
    Seo, Update, UpdateConfig, UploadMedia, UploadMediaConfig, Written,
};
pub use client::{
    Listed, MAX_PER_PAGE, MediaUpload, WordPressClient, content_disposition, guess_mime, md5_hex,
};
pub use config::{DEFAULT_MAX_PAGES, SeoKeys, SiteSettings, WordPressSettings};

use crate::saas::{
    Connector, OtherFields, max_pages, objects_of, parse_url, query_pairs, records_of_objects,
    within,
};
use actions::{columns_of, flatten_rendered, ids_of};

/// The plugin's id.
pub const ID: &str = "wordpress-connector";

/// The `wordpress-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> kernelize_core::PluginFactory {
    crate::saas::factory::<WordPressConnector>()
}

static ROUTER: LazyLock<ActionRouter<WordPressConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<List>()
        .action::<Create>()
        .action::<Update>()
        .action::<Delete>()
        .action::<UploadMedia>()
});

/// The connector: a client per site.
#[derive(Debug)]
pub struct WordPressConnector {
    sites: Vec<WordPressClient>,
    seo_keys: SeoKeys,
    max_pages: usize,
}

impl WordPressConnector {
    /// The client of the site named `name`, or of the first site.
    pub fn site(&self, name: Option<&str>) -> Result<&WordPressClient> {
        match name {
            None => self.sites.first().ok_or_else(|| {
                Error::new(ErrorKind::ConfigInvalid, "no WordPress site is configured")
            }),
            Some(name) => self.sites.iter().find(|s| s.name() == name).ok_or_else(|| {
                let known: Vec<&str> = self.sites.iter().map(WordPressClient::name).collect();
                Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "no site named `{name}`; the sites are: {}",
                        known.join(", ")
                    ),
                )
            }),
        }
    }

    /// `item` with the SEO fields put in its `meta`.
    fn with_seo(
        &self,
        mut item: Map<String, Value>,
        seo: Option<&Seo>,
    ) -> Result<Map<String, Value>> {
        let Some(seo) = seo else {
            return Ok(item);
        };
        let meta = item
            .entry("meta")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(meta) = meta else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "`meta` must be an object of meta keys to values",
            ));
        };
        if let Some(title) = &seo.title {
            meta.insert(self.seo_keys.title.clone(), Value::from(title.clone()));
        }
        if let Some(description) = &seo.description {
            meta.insert(
                self.seo_keys.description.clone(),
                Value::from(description.clone()),
            );
        }
        Ok(item)
    }
}

#[async_trait]
impl Connector for WordPressConnector {
    const ID: &'static str = ID;
    const NAME: &'static str = "WordPress";
    const DESCRIPTION: &'static str = "Posts, pages, media uploads and SEO meta over the WordPress REST API, on one or more sites, with application passwords.";
    type Settings = WordPressSettings;

    fn router() -> &'static ActionRouter<Self> {
        &ROUTER
    }

    async fn connect(settings: WordPressSettings) -> Result<Self> {
        settings.check()?;
        let sites = settings
            .sites
            .iter()
            .map(|site| WordPressClient::new(site, &settings.http))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            sites,
            seo_keys: settings.seo_keys,
            max_pages: settings.max_pages,
        })
    }

    fn hosts(&self) -> Vec<Url> {
        self.sites
            .iter()
            .filter_map(|s| parse_url("base_url", s.http().base_url().as_str()).ok())
            .collect()
    }
}

#[async_trait]
impl Handler<List> for WordPressConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: ListConfig,
        _input: Payload,
    ) -> Result<Records> {
        let site = self.site(config.site.as_deref())?;
        let max_pages = max_pages(config.max_pages, self.max_pages)?;
        let filters = query_pairs(&config.filters, "filter", "")?;
        let mut listed = within(
            &ctx,
            "WordPress",
            site.list(config.resource.path(), &filters, config.per_page, max_pages),
        )
        .await?;
        listed.items.iter_mut().for_each(flatten_rendered);
        records_of_objects(
            &listed.items,
            columns_of(config.resource),
            OtherFields::Text,
        )
    }
}

#[async_trait]
impl Handler<Create> for WordPressConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: CreateConfig,
        input: Payload,
    ) -> Result<Written> {
        let site = self.site(config.site.as_deref())?;
        let items = objects_of(config.post, input, "post", MAX_WRITES)?;
        let mut written = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            ctx.check_alive()?;
            let item = self.with_seo(item, config.seo.as_ref())?;
            let done = within(
                &ctx,
                "WordPress",
                site.create(config.resource.path(), &item),
            )
            .await
            .map_err(|e| e.with_context("item", i))?;
            written.push(done);
        }
        Ok(Written { items: written })
    }
}

#[async_trait]
impl Handler<Update> for WordPressConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: UpdateConfig,
        input: Payload,
    ) -> Result<Written> {
        let site = self.site(config.site.as_deref())?;
        let items = objects_of(config.post, input, "post", MAX_WRITES)?;
        let mut written = Vec::with_capacity(items.len());
        for (i, mut item) in items.into_iter().enumerate() {
            ctx.check_alive()?;
            let own = item.remove("id").and_then(|v| match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            });
            let id = config.id.or(own).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("item {i} has no `id` to update (give `id` in the config or the item)"),
                )
            })?;
            let item = self.with_seo(item, config.seo.as_ref())?;
            let done = within(
                &ctx,
                "WordPress",
                site.update(config.resource.path(), id, &item),
            )
            .await
            .map_err(|e| e.with_context("id", id))?;
            written.push(done);
        }
        Ok(Written { items: written })
    }
}

#[async_trait]
impl Handler<Delete> for WordPressConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: DeleteConfig,
        input: Payload,
    ) -> Result<Written> {
        let site = self.site(config.site.as_deref())?;
        let ids = ids_of(config.id, input)?;
        let mut written = Vec::with_capacity(ids.len());
        for id in ids {
            ctx.check_alive()?;
            let done = within(
                &ctx,
                "WordPress",
                site.delete(config.resource.path(), id, config.force),
            )
            .await
            .map_err(|e| e.with_context("id", id))?;
            written.push(done);
        }
        Ok(Written { items: written })
    }
}

#[async_trait]
impl Handler<UploadMedia> for WordPressConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: UploadMediaConfig,
        input: Blob,
    ) -> Result<Value> {
        let site = self.site(config.site.as_deref())?;
        let mime_type = match &config.mime_type {
            Some(m) => m.clone(),
            None => {
                let given = input.essence();
                if given.is_empty() || given == kernelize_core::payload::MEDIA_OCTET_STREAM {
                    guess_mime(&config.filename).to_string()
                } else {
                    input.media_type.clone()
                }
            }
        };
        let upload = MediaUpload {
            filename: config.filename.clone(),
            mime_type,
            data: input.data,
            content_md5: config.content_md5,
        };
        let media = within(&ctx, "WordPress", site.upload_media(&upload))
            .await
            .map_err(|e| e.with_context("filename", &config.filename))?;
        let mut fields = Map::new();
        for (key, value) in [
            ("alt_text", &config.alt_text),
            ("caption", &config.caption),
            ("title", &config.title),
            ("description", &config.description),
        ] {
            if let Some(v) = value {
                fields.insert(key.into(), Value::from(v.clone()));
            }
        }
        if let Some(post) = config.post {
            fields.insert("post".into(), Value::from(post));
        }
        if fields.is_empty() {
            return Ok(media);
        }
        let id = media.get("id").and_then(Value::as_u64).ok_or_else(|| {
            Error::new(
                ErrorKind::Remote,
                "WordPress's answer to the upload has no numeric `id`",
            )
        })?;
        within(&ctx, "WordPress", site.update("media", id, &fields))
            .await
            .map_err(|e| {
                e.with_context("media_id", id).with_context(
                    "note",
                    "the file was uploaded; only its details were not set",
                )
            })
    }
}
