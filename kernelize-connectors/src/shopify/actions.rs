//! The `shopify-connector`'s typed actions: their names, per-call configs and outputs.

use std::collections::BTreeMap;

use kernelize_core::{Action, Error, ErrorKind, Payload, Permission, Records, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::Api;
use crate::saas::{Column, ColumnType, records_from_rows};

/// The most products or inventory levels one call writes.
pub const MAX_WRITES: usize = 1000;

fn network() -> Vec<Permission> {
    vec![Permission::Network { host: "*".into() }]
}

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

/// Action `list_products`.
#[derive(Debug)]
pub struct ListProducts;

impl Action for ListProducts {
    const NAME: &'static str = "list_products";
    const DESCRIPTION: &'static str =
        "List products (REST pages by Link cursor, or GraphQL products(first, after)) as records.";
    type Config = ListProductsConfig;
    type Input = Payload;
    type Output = Records;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `list_orders`.
#[derive(Debug)]
pub struct ListOrders;

impl Action for ListOrders {
    const NAME: &'static str = "list_orders";
    const DESCRIPTION: &'static str =
        "List orders (status any by default), following the Link cursor, as records.";
    type Config = ListOrdersConfig;
    type Input = Payload;
    type Output = Records;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `list_customers`.
#[derive(Debug)]
pub struct ListCustomers;

impl Action for ListCustomers {
    const NAME: &'static str = "list_customers";
    const DESCRIPTION: &'static str = "List customers, following the Link cursor, as records.";
    type Config = ListCustomersConfig;
    type Input = Payload;
    type Output = Records;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `upsert_product`.
#[derive(Debug)]
pub struct UpsertProduct;

impl Action for UpsertProduct {
    const NAME: &'static str = "upsert_product";
    const DESCRIPTION: &'static str = "Create or update products: REST POST/PUT (by id or a match field such as handle) or GraphQL productSet.";
    type Config = UpsertProductConfig;
    type Input = Payload;
    type Output = UpsertOutcome;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `set_inventory`.
#[derive(Debug)]
pub struct SetInventory;

impl Action for SetInventory {
    const NAME: &'static str = "set_inventory";
    const DESCRIPTION: &'static str =
        "Set available quantities of inventory items at locations (inventory_levels/set).";
    type Config = SetInventoryConfig;
    type Input = Payload;
    type Output = InventorySet;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

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

/// Records of JSON objects: the `known` columns typed, in that order (null where an
/// object lacks one), then every other field found, as text (objects and arrays as JSON).
pub(crate) fn records_of(items: &[Value], known: &[(&str, ColumnType)]) -> Result<Records> {
    let mut columns: Vec<Column> = known.iter().map(|(n, t)| Column::new(*n, *t)).collect();
    for item in items {
        if let Value::Object(map) = item {
            for key in map.keys() {
                if !columns.iter().any(|c| c.name == *key) {
                    columns.push(Column::new(key.clone(), ColumnType::Text));
                }
            }
        }
    }
    let rows: Vec<Vec<Value>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|c| item.get(&c.name).cloned().unwrap_or(Value::Null))
                .collect()
        })
        .collect();
    records_from_rows(&columns, &rows)
}

/// REST filter values as query text (lists joined by commas, as Shopify's `ids` wants).
pub(crate) fn filter_pairs(filters: &BTreeMap<String, Value>) -> Result<Vec<(String, String)>> {
    filters
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Array(items) => items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!("filter `{k}` must be text, a number, a boolean or a list"),
                    ));
                }
            };
            Ok((k.clone(), text))
        })
        .collect()
}

/// The objects a write action works on: its config's one, else the input's.
pub(crate) fn objects_of(
    one: Option<Map<String, Value>>,
    input: Payload,
    what: &str,
) -> Result<Vec<Map<String, Value>>> {
    if let Some(one) = one {
        return Ok(vec![one]);
    }
    let items = match input.into_json()? {
        Value::Object(map) => vec![Value::Object(map)],
        Value::Array(items) => items,
        Value::Null => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("no {what} given: set it in the config or pass it as the input"),
            ));
        }
        other => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the input must be a {what} object, a list of them or records, not {}",
                    kernelize_core::payload::json_type_name(&other)
                ),
            ));
        }
    };
    if items.len() > MAX_WRITES {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{} {what}s given; one call writes at most {MAX_WRITES}",
                items.len()
            ),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(map) => Ok(map),
            other => Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "input item {i} is {}, not a {what} object",
                    kernelize_core::payload::json_type_name(&other)
                ),
            )),
        })
        .collect()
}
