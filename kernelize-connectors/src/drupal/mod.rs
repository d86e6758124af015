#![doc = include_str!("docs.md")]

mod actions;
mod client;
mod config;
mod document;

use std::sync::LazyLock;

use async_trait::async_trait;
use kernelize_core::plugin::{ActionContext, ActionRouter, Handler};
use kernelize_core::{Error, ErrorKind, Payload, Records, Result};
use serde_json::{Map, Value, json};
use url::Url;

pub use actions::{
    Create, CreateConfig, Delete, DeleteConfig, List, ListConfig, MAX_WRITES, Save, SaveConfig,
    SyncTaxonomy, SyncTaxonomyConfig, TaxonomySynced, Update, UpdateConfig, Written,
};
pub use client::{DrupalClient, Listed, MEDIA_TYPE, SyncedTerms};
pub use config::{DEFAULT_MAX_PAGES, DrupalAuth, DrupalSettings, MAX_PAGE_LIMIT};
pub use document::{Mapping, Resource, Target, flatten, records_of, resource_from_row};

use crate::saas::{Connector, parse_url, within};
use actions::{names_of, param_pairs, rows_of, uuids_of};

/// The plugin's id.
pub const ID: &str = "drupal-connector";

/// The `drupal-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> kernelize_core::PluginFactory {
    crate::saas::factory::<DrupalConnector>()
}

static ROUTER: LazyLock<ActionRouter<DrupalConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<List>()
        .action::<Create>()
        .action::<Update>()
        .action::<Save>()
        .action::<Delete>()
        .action::<SyncTaxonomy>()
});

/// The connector: one site's client.
#[derive(Debug)]
pub struct DrupalConnector {
    client: DrupalClient,
    base: Url,
}

impl DrupalConnector {
    /// The client, for Rust code.
    pub fn client(&self) -> &DrupalClient {
        &self.client
    }
}

/// The resources a write works on: the config's attributes/relationships, else the input
/// rows (through the mapping when given).
fn resources(
    kind: &str,
    attributes: Option<Map<String, Value>>,
    relationships: Option<Map<String, Value>>,
    mapping: Option<&Mapping>,
    input: Payload,
) -> Result<Vec<Resource>> {
    if attributes.is_some() || relationships.is_some() {
        let mut row = Map::new();
        row.insert(
            "attributes".into(),
            Value::Object(attributes.unwrap_or_default()),
        );
        if let Some(r) = relationships {
            row.insert("relationships".into(), Value::Object(r));
        }
        return Ok(vec![resource_from_row(&row, None, kind)?]);
    }
    rows_of(input)?
        .iter()
        .enumerate()
        .map(|(i, row)| resource_from_row(row, mapping, kind).map_err(|e| e.with_context("row", i)))
        .collect()
}

#[async_trait]
impl Connector for DrupalConnector {
    const ID: &'static str = ID;
    const NAME: &'static str = "Drupal";
    const DESCRIPTION: &'static str = "Content over Drupal's JSON:API: list with paging and filters, create, update, delete, record-to-field mapping and taxonomy sync.";
    type Settings = DrupalSettings;

    fn router() -> &'static ActionRouter<Self> {
        &ROUTER
    }

    async fn connect(settings: DrupalSettings) -> Result<Self> {
        let client = DrupalClient::new(&settings)?;
        let base = parse_url("base_url", &settings.api_base()?)?;
        Ok(Self { client, base })
    }

    fn hosts(&self) -> Vec<Url> {
        vec![self.base.clone()]
    }
}

#[async_trait]
impl Handler<List> for DrupalConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: ListConfig,
        _input: Payload,
    ) -> Result<Records> {
        if config.max_pages == Some(0) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "`max_pages` must be at least 1",
            ));
        }
        let params = param_pairs(&config.params)?;
        let listed = within(
            &ctx,
            "Drupal",
            self.client.list(
                &config.entity_type,
                &config.bundle,
                &params,
                config.page_limit,
                config.max_pages,
            ),
        )
        .await?;
        let rows: Vec<Value> = listed.items.iter().map(flatten).collect();
        records_of(&rows)
    }
}

#[async_trait]
impl Handler<Create> for DrupalConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: CreateConfig,
        input: Payload,
    ) -> Result<Written> {
        let kind = format!("{}--{}", config.entity_type, config.bundle);
        let all = resources(
            &kind,
            config.attributes,
            config.relationships,
            config.mapping.as_ref(),
            input,
        )?;
        let mut items = Vec::with_capacity(all.len());
        for (i, resource) in all.iter().enumerate() {
            ctx.check_alive()?;
            let created = within(
                &ctx,
                "Drupal",
                self.client
                    .create(&config.entity_type, &config.bundle, &resource.data),
            )
            .await
            .map_err(|e| e.with_context("row", i))?;
            items.push(created);
        }
        Ok(Written { items })
    }
}

#[async_trait]
impl Handler<Update> for DrupalConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: UpdateConfig,
        input: Payload,
    ) -> Result<Written> {
        let kind = format!("{}--{}", config.entity_type, config.bundle);
        let all = resources(
            &kind,
            config.attributes,
            config.relationships,
            config.mapping.as_ref(),
            input,
        )?;
        let mut items = Vec::with_capacity(all.len());
        for (i, resource) in all.iter().enumerate() {
            ctx.check_alive()?;
            let uuid = config
                .id
                .clone()
                .or_else(|| resource.id.clone())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "row {i} has no uuid to update (give `id`, or map a column to `id`)"
                        ),
                    )
                })?;
            let updated = within(
                &ctx,
                "Drupal",
                self.client
                    .update(&config.entity_type, &config.bundle, &uuid, &resource.data),
            )
            .await
            .map_err(|e| e.with_context("row", i).with_context("uuid", &uuid))?;
            items.push(updated);
        }
        Ok(Written { items })
    }
}

#[async_trait]
impl Handler<Save> for DrupalConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: SaveConfig,
        input: Payload,
    ) -> Result<Written> {
        let kind = format!("{}--{}", config.entity_type, config.bundle);
        let all = resources(&kind, None, None, Some(&config.mapping), input)?;
        let mut items = Vec::with_capacity(all.len());
        for (i, resource) in all.iter().enumerate() {
            ctx.check_alive()?;
            let work = async {
                match &resource.id {
                    Some(uuid) => {
                        self.client
                            .update(&config.entity_type, &config.bundle, uuid, &resource.data)
                            .await
                    }
                    None => {
                        self.client
                            .create(&config.entity_type, &config.bundle, &resource.data)
                            .await
                    }
                }
            };
            let saved = within(&ctx, "Drupal", work)
                .await
                .map_err(|e| e.with_context("row", i))?;
            items.push(saved);
        }
        Ok(Written { items })
    }
}

#[async_trait]
impl Handler<Delete> for DrupalConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: DeleteConfig,
        input: Payload,
    ) -> Result<Written> {
        let uuids = match config.id {
            Some(id) => vec![id],
            None => uuids_of(input)?,
        };
        let mut items = Vec::with_capacity(uuids.len());
        for uuid in uuids {
            ctx.check_alive()?;
            within(
                &ctx,
                "Drupal",
                self.client
                    .delete(&config.entity_type, &config.bundle, &uuid),
            )
            .await
            .map_err(|e| e.with_context("uuid", &uuid))?;
            items.push(json!({"id": uuid, "deleted": true}));
        }
        Ok(Written { items })
    }
}

#[async_trait]
impl Handler<SyncTaxonomy> for DrupalConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: SyncTaxonomyConfig,
        input: Payload,
    ) -> Result<TaxonomySynced> {
        let names = match config.names {
            Some(names) => names,
            None => names_of(input, &config.column)?,
        };
        let synced = within(
            &ctx,
            "Drupal",
            self.client
                .sync_terms(&config.vocabulary, &names, config.parent.as_deref()),
        )
        .await?;
        Ok(TaxonomySynced {
            terms: synced.terms,
            created: synced.created,
        })
    }
}
