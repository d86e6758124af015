#![doc = include_str!("docs.md")]

mod actions;
mod client;
mod config;
mod throttle;

use std::sync::LazyLock;

use async_trait::async_trait;
use kernelize_core::plugin::{ActionContext, ActionRouter, Handler};
use kernelize_core::{Error, ErrorKind, Payload, Records, Result};
use url::Url;

pub use actions::{
    InventorySet, ListCustomers, ListCustomersConfig, ListOrders, ListOrdersConfig, ListProducts,
    ListProductsConfig, MAX_WRITES, SetInventory, SetInventoryConfig, UpsertOutcome, UpsertProduct,
    UpsertProductConfig, UpsertedProduct,
};
pub use client::{Listed, Resource, ShopifyClient, Upserted};
pub use config::{
    Api, DEFAULT_API_VERSION, DEFAULT_GRAPHQL_COST, DEFAULT_MAX_PAGES, GraphqlBucket,
    MAX_PAGE_SIZE, RestBucket, ShopifySettings,
};
pub use throttle::{
    CALL_LIMIT_HEADER, CallLimitPacer, GraphqlCostPacer, parse_call_limit, retry_verdict,
    throttle_wait,
};

use crate::saas::{
    Connector, OtherFields, max_pages, objects_of, parse_url, query_pairs, records_of_objects,
    within,
};
use actions::{CUSTOMER_COLUMNS, ORDER_COLUMNS, PRODUCT_COLUMNS};

/// Runs `work` within the call's deadline and cancellation; the deadline also bounds the
/// GraphQL pacing's waits.
async fn bounded<T>(
    ctx: &ActionContext,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    within(
        ctx,
        "Shopify",
        throttle::within_deadline(ctx.deadline, work),
    )
    .await
}

/// The plugin's id.
pub const ID: &str = "shopify-connector";

/// The `shopify-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> kernelize_core::PluginFactory {
    crate::saas::factory::<ShopifyConnector>()
}

static ROUTER: LazyLock<ActionRouter<ShopifyConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<ListProducts>()
        .action::<ListOrders>()
        .action::<ListCustomers>()
        .action::<UpsertProduct>()
        .action::<SetInventory>()
});

/// The connector: one shop's client and the settings' defaults.
#[derive(Debug)]
pub struct ShopifyConnector {
    client: ShopifyClient,
    base: Url,
    api: Api,
    max_pages: usize,
}

impl ShopifyConnector {
    /// The client, for Rust code.
    pub fn client(&self) -> &ShopifyClient {
        &self.client
    }

    async fn list_rest(
        &self,
        ctx: &ActionContext,
        resource: Resource,
        filters: Vec<(String, String)>,
        limit: u32,
        asked_pages: Option<usize>,
    ) -> Result<Listed> {
        ctx.check_alive()?;
        let max_pages = max_pages(asked_pages, self.max_pages)?;
        bounded(ctx, self.client.list(resource, &filters, limit, max_pages)).await
    }
}

#[async_trait]
impl Connector for ShopifyConnector {
    const ID: &'static str = ID;
    const NAME: &'static str = "Shopify";
    const DESCRIPTION: &'static str = "Products, orders, customers and inventory over Shopify's Admin REST and GraphQL APIs, paced by both of Shopify's throttles.";
    type Settings = ShopifySettings;

    fn router() -> &'static ActionRouter<Self> {
        &ROUTER
    }

    async fn connect(settings: ShopifySettings) -> Result<Self> {
        let client = ShopifyClient::new(&settings)?;
        let base = parse_url("base_url", &settings.api_base()?)?;
        Ok(Self {
            client,
            base,
            api: settings.api,
            max_pages: settings.max_pages,
        })
    }

    fn hosts(&self) -> Vec<Url> {
        vec![self.base.clone()]
    }
}

#[async_trait]
impl Handler<ListProducts> for ShopifyConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: ListProductsConfig,
        _input: Payload,
    ) -> Result<Records> {
        let listed = match config.api.unwrap_or(self.api) {
            Api::Rest => {
                if config.query.is_some() {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        "`query` is GraphQL search syntax: use `filters` with REST, or set `api: graphql`",
                    ));
                }
                let filters = query_pairs(&config.filters, "filter", "")?;
                self.list_rest(
                    &ctx,
                    Resource::Products,
                    filters,
                    config.limit,
                    config.max_pages,
                )
                .await?
            }
            Api::Graphql => {
                if !config.filters.is_empty() {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        "`filters` are REST query parameters: use `query` (search syntax) with `api: graphql`",
                    ));
                }
                let max_pages = max_pages(config.max_pages, self.max_pages)?;
                bounded(
                    &ctx,
                    self.client.list_products_graphql(
                        config.query.as_deref(),
                        config.limit,
                        max_pages,
                    ),
                )
                .await?
            }
        };
        records_of_objects(&listed.items, PRODUCT_COLUMNS, OtherFields::Text)
    }
}

#[async_trait]
impl Handler<ListOrders> for ShopifyConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: ListOrdersConfig,
        _input: Payload,
    ) -> Result<Records> {
        let mut filters = vec![("status".to_string(), config.status.clone())];
        for (k, v) in query_pairs(&config.filters, "filter", "")? {
            if k == "status" {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "give the order status as the config's `status`, not in `filters`",
                ));
            }
            filters.push((k, v));
        }
        let listed = self
            .list_rest(
                &ctx,
                Resource::Orders,
                filters,
                config.limit,
                config.max_pages,
            )
            .await?;
        records_of_objects(&listed.items, ORDER_COLUMNS, OtherFields::Text)
    }
}

#[async_trait]
impl Handler<ListCustomers> for ShopifyConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: ListCustomersConfig,
        _input: Payload,
    ) -> Result<Records> {
        let filters = query_pairs(&config.filters, "filter", "")?;
        let listed = self
            .list_rest(
                &ctx,
                Resource::Customers,
                filters,
                config.limit,
                config.max_pages,
            )
            .await?;
        records_of_objects(&listed.items, CUSTOMER_COLUMNS, OtherFields::Text)
    }
}

#[async_trait]
impl Handler<UpsertProduct> for ShopifyConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: UpsertProductConfig,
        input: Payload,
    ) -> Result<UpsertOutcome> {
        let products = objects_of(config.product, input, "product", MAX_WRITES)?;
        let api = config.api.unwrap_or(self.api);
        let mut out = Vec::with_capacity(products.len());
        for (i, product) in products.iter().enumerate() {
            ctx.check_alive()?;
            let work = async {
                match api {
                    Api::Rest => {
                        self.client
                            .upsert_product_rest(product, config.match_by.as_deref())
                            .await
                    }
                    Api::Graphql => {
                        self.client
                            .upsert_product_graphql(product, config.match_by.as_deref())
                            .await
                    }
                }
            };
            let done = bounded(&ctx, work)
                .await
                .map_err(|e| e.with_context("product", i))?;
            out.push(UpsertedProduct {
                id: done.product.get("id").and_then(serde_json::Value::as_i64),
                admin_graphql_api_id: done
                    .product
                    .get("admin_graphql_api_id")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string),
                handle: done
                    .product
                    .get("handle")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string),
                created: done.created,
            });
        }
        Ok(UpsertOutcome { products: out })
    }
}

#[async_trait]
impl Handler<SetInventory> for ShopifyConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: SetInventoryConfig,
        input: Payload,
    ) -> Result<InventorySet> {
        let rows = match (config.inventory_item_id, config.available) {
            (Some(item), Some(available)) => {
                let mut one = serde_json::Map::new();
                one.insert("inventory_item_id".into(), item.into());
                one.insert("available".into(), available.into());
                vec![one]
            }
            _ => objects_of(None, input, "inventory level", MAX_WRITES)?,
        };
        let mut levels = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            ctx.check_alive()?;
            let field = |name: &str| -> Result<i64> {
                row.get(name)
                    .and_then(|v| match v {
                        serde_json::Value::Number(n) => n.as_i64(),
                        serde_json::Value::String(s) => s.trim().parse().ok(),
                        _ => None,
                    })
                    .or(if name == "location_id" {
                        config.location_id
                    } else {
                        None
                    })
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::InvalidInput,
                            format!("inventory level {i} has no integer `{name}`"),
                        )
                    })
            };
            let (location, item, available) = (
                field("location_id")?,
                field("inventory_item_id")?,
                field("available")?,
            );
            let disconnect = row
                .get("disconnect_if_necessary")
                .and_then(serde_json::Value::as_bool)
                .or(config.disconnect_if_necessary);
            let level = bounded(
                &ctx,
                self.client
                    .set_inventory(location, item, available, disconnect),
            )
            .await
            .map_err(|e| e.with_context("inventory_level", i))?;
            levels.push(level);
        }
        Ok(InventorySet {
            inventory_levels: levels,
        })
    }
}
