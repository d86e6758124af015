//! The `shopify-connector`'s typed actions: their names, per-call configs and outputs.

use std::collections::BTreeMap;

use kernelize_core::{Payload, Records};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::Api;
use crate::saas::{ColumnType, saas_action};

/// The most products or inventory levels one call writes.
pub const MAX_WRITES: usize = 1000;

fn default_limit() -> u32 {
    50
}

fn default_status() -> String {
    "any".into()
}

/// Config of `list_products`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListProductsConfig {
    /// `rest` or `graphql`; the plugin's `api` setting when absent.
    #[serde(default)]
    pub api: Option<Api>,
    /// Products per page, 1 to 250 (50).
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 250))]
    pub limit: u32,
    /// Most pages read; the plugin's `max_pages` when absent.
    #[serde(default)]
    pub max_pages: Option<usize>,
    /// REST filters of the first request (`vendor`, `status`, `handle`, `ids`,
    /// `updated_at_min`, `fields`…); the next pages carry only Shopify's cursor.
    #[serde(default)]
    pub filters: BTreeMap<String, Value>,
    /// GraphQL search syntax (`vendor:Acme status:active`), with `api: graphql`.
    #[serde(default)]
    pub query: Option<String>,
}

/// Config of `list_orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListOrdersConfig {
    /// `any` (the default here; Shopify's own default is `open`), `open`, `closed` or
    /// `cancelled`.
    #[serde(default = "default_status")]
    pub status: String,
    /// Orders per page, 1 to 250 (50).
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 250))]
    pub limit: u32,
    /// Most pages read; the plugin's `max_pages` when absent.
    #[serde(default)]
    pub max_pages: Option<usize>,
    /// More filters of the first request (`financial_status`, `created_at_min`…).
    #[serde(default)]
    pub filters: BTreeMap<String, Value>,
}

/// Config of `list_customers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListCustomersConfig {
    /// Customers per page, 1 to 250 (50).
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 250))]
    pub limit: u32,
    /// Most pages read; the plugin's `max_pages` when absent.
    #[serde(default)]
    pub max_pages: Option<usize>,
    /// Filters of the first request (`ids`, `created_at_min`, `updated_at_min`…).
    #[serde(default)]
    pub filters: BTreeMap<String, Value>,
}

/// Config of `upsert_product`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertProductConfig {
    /// `rest` or `graphql`; the plugin's `api` setting when absent.
    #[serde(default)]
    pub api: Option<Api>,
    /// The product; when absent, the input gives the products (a JSON object, an array
    /// of objects, or records: one product per row; at most 1,000).
    #[serde(default)]
    pub product: Option<Map<String, Value>>,
    /// A field that identifies an existing product when the product has no `id`
    /// (`handle`): REST looks it up with `GET products.json?{field}=…`, GraphQL passes it
    /// as `productSet`'s identifier (only `handle`).
    #[serde(default)]
    pub match_by: Option<String>,
}

/// One product `upsert_product` wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpsertedProduct {
    /// The numeric id.
    pub id: Option<i64>,
    /// The global id (`gid://shopify/Product/…`).
    pub admin_graphql_api_id: Option<String>,
    /// The handle.
    pub handle: Option<String>,
    /// Whether it was created (`false`: updated).
    pub created: bool,
}

/// What `upsert_product` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpsertOutcome {
    /// One entry per product, in input order.
    pub products: Vec<UpsertedProduct>,
}

/// Config of `set_inventory`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetInventoryConfig {
    /// The location; also the default of input rows without one.
    #[serde(default)]
    pub location_id: Option<i64>,
    /// The inventory item (a variant's `inventory_item_id`).
    #[serde(default)]
    pub inventory_item_id: Option<i64>,
    /// The quantity available. With `inventory_item_id` and `location_id`, one level is
    /// set; otherwise the input's rows (`{inventory_item_id, available, location_id?}`) are.
    #[serde(default)]
    pub available: Option<i64>,
    /// Connect the item to the location when it is connected to another that cannot
    /// stock it alongside (Shopify's `disconnect_if_necessary`).
    #[serde(default)]
    pub disconnect_if_necessary: Option<bool>,
}

/// What `set_inventory` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InventorySet {
    /// The `inventory_level`s Shopify returned, in input order.
    pub inventory_levels: Vec<Value>,
}

saas_action!(
    ListProducts,
    "list_products",
    "List products (REST pages by Link cursor, or GraphQL products(first, after)) as records.",
    ListProductsConfig,
    Payload,
    Records
);

saas_action!(
    ListOrders,
    "list_orders",
    "List orders (status any by default), following the Link cursor, as records.",
    ListOrdersConfig,
    Payload,
    Records
);

saas_action!(
    ListCustomers,
    "list_customers",
    "List customers, following the Link cursor, as records.",
    ListCustomersConfig,
    Payload,
    Records
);

saas_action!(
    UpsertProduct,
    "upsert_product",
    "Create or update products: REST POST/PUT (by id or a match field such as handle) or GraphQL productSet.",
    UpsertProductConfig,
    Payload,
    UpsertOutcome
);

saas_action!(
    SetInventory,
    "set_inventory",
    "Set available quantities of inventory items at locations (inventory_levels/set).",
    SetInventoryConfig,
    Payload,
    InventorySet
);

/// The typed columns of products' records.
pub(crate) const PRODUCT_COLUMNS: &[(&str, ColumnType)] = &[
    ("id", ColumnType::Integer),
    ("title", ColumnType::Text),
    ("handle", ColumnType::Text),
    ("vendor", ColumnType::Text),
    ("product_type", ColumnType::Text),
    ("status", ColumnType::Text),
    ("tags", ColumnType::Text),
    ("created_at", ColumnType::Timestamp),
    ("updated_at", ColumnType::Timestamp),
    ("published_at", ColumnType::Timestamp),
    ("admin_graphql_api_id", ColumnType::Text),
];

/// Money: Shopify sends amounts as decimal text; four places hold every currency.
const MONEY: ColumnType = ColumnType::Decimal {
    precision: 18,
    scale: 4,
};

/// The typed columns of orders' records.
pub(crate) const ORDER_COLUMNS: &[(&str, ColumnType)] = &[
    ("id", ColumnType::Integer),
    ("name", ColumnType::Text),
    ("email", ColumnType::Text),
    ("financial_status", ColumnType::Text),
    ("fulfillment_status", ColumnType::Text),
    ("total_price", MONEY),
    ("subtotal_price", MONEY),
    ("total_tax", MONEY),
    ("currency", ColumnType::Text),
    ("created_at", ColumnType::Timestamp),
    ("updated_at", ColumnType::Timestamp),
    ("closed_at", ColumnType::Timestamp),
    ("cancelled_at", ColumnType::Timestamp),
];

/// The typed columns of customers' records.
pub(crate) const CUSTOMER_COLUMNS: &[(&str, ColumnType)] = &[
    ("id", ColumnType::Integer),
    ("email", ColumnType::Text),
    ("first_name", ColumnType::Text),
    ("last_name", ColumnType::Text),
    ("state", ColumnType::Text),
    ("verified_email", ColumnType::Boolean),
    ("tags", ColumnType::Text),
    ("created_at", ColumnType::Timestamp),
    ("updated_at", ColumnType::Timestamp),
];
