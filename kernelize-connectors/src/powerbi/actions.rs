//! The `powerbi-connector`'s typed actions: their names, per-call configs, outputs and
//! handlers.

use async_trait::async_trait;
use kernelize_core::plugin::{ActionContext, Handler};
use kernelize_core::{Action, Payload, Records, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::PowerBiConnector;
use super::client::{CloneReport, NotifyOption, PushReport, RefreshEntry, RefreshOptions};
use crate::saas::{ColumnType, ItemColumn, input_objects, records_from_items, saas_action};

fn yes() -> bool {
    true
}

/// Config of `list_datasets` and `list_reports`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    /// The workspace; the `group_id` setting when absent; `me` for My workspace.
    #[serde(default)]
    pub group_id: Option<String>,
}

/// Config of `list_gateways` (none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListGatewaysConfig {}

/// Config of `list_gateway_datasources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListGatewayDatasourcesConfig {
    /// The gateway (the primary gateway's id for a cluster).
    pub gateway_id: String,
}

/// Config of `refresh_dataset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshDatasetConfig {
    /// The dataset (semantic model) to refresh.
    pub dataset_id: String,
    /// The workspace; the `group_id` setting when absent; `me` for My workspace.
    #[serde(default)]
    pub group_id: Option<String>,
    /// `NoNotification` (the default; the only one a service principal may use),
    /// `MailOnFailure` or `MailOnCompletion`.
    #[serde(default)]
    pub notify_option: NotifyOption,
    /// Enhanced refresh: `Full`, `ClearValues`, `Calculate`, `DataOnly`, `Automatic`,
    /// `Defragment`.
    #[serde(default, rename = "type")]
    pub refresh_type: Option<String>,
    /// Enhanced refresh: `transactional` or `partialBatch`.
    #[serde(default)]
    pub commit_mode: Option<String>,
    /// Enhanced refresh: the most threads at once.
    #[serde(default)]
    pub max_parallelism: Option<u32>,
    /// Enhanced refresh: retries on failure.
    #[serde(default)]
    pub retry_count: Option<u32>,
    /// Enhanced refresh: the tables and partitions (`[{"table": "Sales"}]`).
    #[serde(default)]
    pub objects: Option<Vec<Value>>,
    /// Enhanced refresh: apply the incremental refresh policy.
    #[serde(default)]
    pub apply_refresh_policy: Option<bool>,
    /// Enhanced refresh: the date the incremental policy counts from.
    #[serde(default)]
    pub effective_date: Option<String>,
    /// Enhanced refresh: the longest one attempt may run (`hh:mm:ss`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Wait for the refresh to end (the default); `false` returns it as accepted.
    #[serde(default = "yes")]
    pub wait: bool,
}

/// Config of `list_refreshes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRefreshesConfig {
    /// The dataset.
    pub dataset_id: String,
    /// The workspace; the `group_id` setting when absent; `me` for My workspace.
    #[serde(default)]
    pub group_id: Option<String>,
    /// How many of the latest refreshes (`$top`); the `history_top` setting when absent.
    #[serde(default)]
    pub top: Option<u32>,
}

/// Config of `push_rows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRowsConfig {
    /// The push dataset.
    pub dataset_id: String,
    /// The table to add the rows to.
    pub table: String,
    /// The workspace; the `group_id` setting when absent; `me` for My workspace.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Rows per request (1 to 10,000); the `push_chunk_rows` setting when absent.
    #[serde(default)]
    pub chunk_rows: Option<usize>,
}

/// Config of `clone_report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneReportConfig {
    /// The report to clone.
    pub report_id: String,
    /// The new report's name.
    pub name: String,
    /// The report's workspace; the `group_id` setting when absent; `me` for My workspace.
    #[serde(default)]
    pub group_id: Option<String>,
    /// The workspace to clone into; the report's own when absent.
    #[serde(default)]
    pub target_workspace_id: Option<String>,
    /// The dataset to bind the clone to; the report's own when absent.
    #[serde(default)]
    pub target_model_id: Option<String>,
}

/// Config of `rebind_report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RebindReportConfig {
    /// The report.
    pub report_id: String,
    /// The dataset to bind it to.
    pub dataset_id: String,
    /// The report's workspace; the `group_id` setting when absent; `me` for My workspace.
    #[serde(default)]
    pub group_id: Option<String>,
}

/// What `rebind_report` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Rebound {
    /// The report.
    pub report_id: String,
    /// The dataset it is bound to now.
    pub dataset_id: String,
}

saas_action!(
    ListDatasets,
    "list_datasets",
    "List a workspace's datasets (semantic models) as records.",
    WorkspaceConfig,
    Payload,
    Records
);
saas_action!(
    ListReports,
    "list_reports",
    "List a workspace's reports as records.",
    WorkspaceConfig,
    Payload,
    Records
);
saas_action!(
    ListGateways,
    "list_gateways",
    "List the on-premises data gateways the app administers, as records.",
    ListGatewaysConfig,
    Payload,
    Records
);
saas_action!(
    ListGatewayDatasources,
    "list_gateway_datasources",
    "List a gateway's data sources as records.",
    ListGatewayDatasourcesConfig,
    Payload,
    Records
);
saas_action!(
    RefreshDataset,
    "refresh_dataset",
    "Start a dataset refresh (answered 202) and, by default, follow it in the refresh history until it completes; a failed refresh is an error with Power BI's reason.",
    RefreshDatasetConfig,
    Payload,
    RefreshEntry
);
saas_action!(
    ListRefreshes,
    "list_refreshes",
    "List a dataset's latest refreshes (the refresh history) as records.",
    ListRefreshesConfig,
    Payload,
    Records
);
saas_action!(
    PushRows,
    "push_rows",
    "Add the input rows (records or JSON objects) to a push dataset's table, at most 10,000 a request, waiting out 429s.",
    PushRowsConfig,
    Payload,
    PushReport
);
saas_action!(
    CloneReportAction,
    "clone_report",
    "Clone a report, into another workspace and onto another dataset if asked (report deployment).",
    CloneReportConfig,
    Payload,
    Value
);
saas_action!(
    RebindReport,
    "rebind_report",
    "Bind a report to another dataset.",
    RebindReportConfig,
    Payload,
    Rebound
);

/// The columns of `list_datasets`: name, type, and where the value is in an item.
const DATASET_COLUMNS: &[ItemColumn<'static>] = &[
    ("id", ColumnType::Text, "/id"),
    ("name", ColumnType::Text, "/name"),
    ("configuredBy", ColumnType::Text, "/configuredBy"),
    ("isRefreshable", ColumnType::Boolean, "/isRefreshable"),
    (
        "addRowsAPIEnabled",
        ColumnType::Boolean,
        "/addRowsAPIEnabled",
    ),
    (
        "isOnPremGatewayRequired",
        ColumnType::Boolean,
        "/isOnPremGatewayRequired",
    ),
    (
        "isEffectiveIdentityRequired",
        ColumnType::Boolean,
        "/isEffectiveIdentityRequired",
    ),
    ("targetStorageMode", ColumnType::Text, "/targetStorageMode"),
    ("webUrl", ColumnType::Text, "/webUrl"),
    ("createdDate", ColumnType::Timestamp, "/createdDate"),
];

/// The columns of `list_reports`.
const REPORT_COLUMNS: &[ItemColumn<'static>] = &[
    ("id", ColumnType::Text, "/id"),
    ("name", ColumnType::Text, "/name"),
    ("datasetId", ColumnType::Text, "/datasetId"),
    (
        "datasetWorkspaceId",
        ColumnType::Text,
        "/datasetWorkspaceId",
    ),
    ("reportType", ColumnType::Text, "/reportType"),
    ("webUrl", ColumnType::Text, "/webUrl"),
    ("embedUrl", ColumnType::Text, "/embedUrl"),
];

/// The columns of `list_gateways`.
const GATEWAY_COLUMNS: &[ItemColumn<'static>] = &[
    ("id", ColumnType::Text, "/id"),
    ("name", ColumnType::Text, "/name"),
    ("type", ColumnType::Text, "/type"),
    ("gatewayStatus", ColumnType::Text, "/gatewayStatus"),
    ("gatewayAnnotation", ColumnType::Text, "/gatewayAnnotation"),
    ("publicKeyExponent", ColumnType::Text, "/publicKey/exponent"),
    ("publicKeyModulus", ColumnType::Text, "/publicKey/modulus"),
];

/// The columns of `list_gateway_datasources`.
const GATEWAY_DATASOURCE_COLUMNS: &[ItemColumn<'static>] = &[
    ("id", ColumnType::Text, "/id"),
    ("gatewayId", ColumnType::Text, "/gatewayId"),
    ("datasourceName", ColumnType::Text, "/datasourceName"),
    ("datasourceType", ColumnType::Text, "/datasourceType"),
    ("credentialType", ColumnType::Text, "/credentialType"),
    ("connectionDetails", ColumnType::Text, "/connectionDetails"),
];

/// The columns of `list_refreshes`.
const REFRESH_COLUMNS: &[ItemColumn<'static>] = &[
    ("requestId", ColumnType::Text, "/request_id"),
    ("status", ColumnType::Text, "/status"),
    ("refreshType", ColumnType::Text, "/refresh_type"),
    ("startTime", ColumnType::Timestamp, "/start_time"),
    ("endTime", ColumnType::Timestamp, "/end_time"),
    ("errorCode", ColumnType::Text, "/error_code"),
    ("errorDescription", ColumnType::Text, "/error_description"),
];

#[async_trait]
impl Handler<ListDatasets> for PowerBiConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: WorkspaceConfig,
        _input: Payload,
    ) -> Result<Records> {
        let items = self.client().datasets(config.group_id.as_deref()).await?;
        records_from_items(DATASET_COLUMNS, &items)
    }
}

#[async_trait]
impl Handler<ListReports> for PowerBiConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: WorkspaceConfig,
        _input: Payload,
    ) -> Result<Records> {
        let items = self.client().reports(config.group_id.as_deref()).await?;
        records_from_items(REPORT_COLUMNS, &items)
    }
}

#[async_trait]
impl Handler<ListGateways> for PowerBiConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        _config: ListGatewaysConfig,
        _input: Payload,
    ) -> Result<Records> {
        let items = self.client().gateways().await?;
        records_from_items(GATEWAY_COLUMNS, &items)
    }
}

#[async_trait]
impl Handler<ListGatewayDatasources> for PowerBiConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: ListGatewayDatasourcesConfig,
        _input: Payload,
    ) -> Result<Records> {
        let items = self
            .client()
            .gateway_datasources(&config.gateway_id)
            .await?;
        records_from_items(GATEWAY_DATASOURCE_COLUMNS, &items)
    }
}

#[async_trait]
impl Handler<RefreshDataset> for PowerBiConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: RefreshDatasetConfig,
        _input: Payload,
    ) -> Result<RefreshEntry> {
        let options = RefreshOptions {
            notify_option: config.notify_option,
            refresh_type: config.refresh_type,
            commit_mode: config.commit_mode,
            max_parallelism: config.max_parallelism,
            retry_count: config.retry_count,
            objects: config.objects,
            apply_refresh_policy: config.apply_refresh_policy,
            effective_date: config.effective_date,
            timeout: config.timeout,
        };
        let group = config.group_id.as_deref();
        let client = self.client();
        let accepted = client
            .start_refresh(group, &config.dataset_id, &options)
            .await?;
        if !config.wait {
            return Ok(accepted);
        }
        let mut done = client
            .wait_for_refresh(
                &ctx,
                self.poll(),
                group,
                &config.dataset_id,
                &accepted.request_id,
            )
            .await?;
        done.location = accepted.location;
        done.into_result(&config.dataset_id)
    }
}

#[async_trait]
impl Handler<ListRefreshes> for PowerBiConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: ListRefreshesConfig,
        _input: Payload,
    ) -> Result<Records> {
        let entries = self
            .client()
            .refresh_history(config.group_id.as_deref(), &config.dataset_id, config.top)
            .await?;
        let items: Vec<Value> = entries
            .iter()
            .map(serde_json::to_value)
            .collect::<std::result::Result<_, _>>()?;
        records_from_items(REFRESH_COLUMNS, &items)
    }
}

#[async_trait]
impl Handler<PushRows> for PowerBiConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: PushRowsConfig,
        input: Payload,
    ) -> Result<PushReport> {
        let rows = input_objects(PushRows::NAME, input)?;
        self.client()
            .push_rows(
                config.group_id.as_deref(),
                &config.dataset_id,
                &config.table,
                &rows,
                config.chunk_rows,
            )
            .await
    }
}

#[async_trait]
impl Handler<CloneReportAction> for PowerBiConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: CloneReportConfig,
        _input: Payload,
    ) -> Result<Value> {
        let clone = CloneReport {
            name: config.name,
            target_workspace_id: config.target_workspace_id,
            target_model_id: config.target_model_id,
        };
        self.client()
            .clone_report(config.group_id.as_deref(), &config.report_id, &clone)
            .await
    }
}

#[async_trait]
impl Handler<RebindReport> for PowerBiConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: RebindReportConfig,
        _input: Payload,
    ) -> Result<Rebound> {
        self.client()
            .rebind_report(
                config.group_id.as_deref(),
                &config.report_id,
                &config.dataset_id,
            )
            .await?;
        Ok(Rebound {
            report_id: config.report_id,
            dataset_id: config.dataset_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dataset_items_become_typed_records() {
        let items = vec![json!({"id": "d1", "name": "Sales", "isRefreshable": true,
            "createdDate": "2019-03-27T09:25:34.047Z"})];
        let rows = records_from_items(DATASET_COLUMNS, &items)
            .unwrap()
            .to_json_rows()
            .unwrap();
        assert_eq!(rows[0]["isRefreshable"], true);
        assert!(
            rows[0]["createdDate"]
                .as_str()
                .unwrap()
                .starts_with("2019-03-27T09:25:34.047")
        );
    }
}
