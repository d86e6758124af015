//! The `tableau-connector`'s typed actions: their names, per-call configs, outputs and
//! handlers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use kernelize_core::plugin::{ActionContext, Handler};
use kernelize_core::{Action, Blob, Error, ErrorKind, Payload, Permission, Records, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::TableauConnector;
use super::client::{
    DatasourceFile, ImageOptions, Job, ListQuery, PublishMode, PublishOptions, PublishOutcome,
    SessionInfo,
};
use crate::saas::{ColumnType, ItemColumn, network, network_and_file_read, records_from_items};

fn yes() -> bool {
    true
}

/// Config of `sign_in`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInConfig {
    /// Sign in anew even when a session is open.
    #[serde(default)]
    pub fresh: bool,
}

/// Config of `sign_out` (none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignOutConfig {}

/// What `sign_out` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignedOut {
    /// `false` when no session was open.
    pub signed_out: bool,
}

/// Config of `publish_datasource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishDatasourceConfig {
    /// The data source's name on the server.
    pub name: String,
    /// The project to publish into (its id).
    pub project_id: String,
    /// A description.
    #[serde(default)]
    pub description: Option<String>,
    /// The file's name as Tableau sees it (`sales.hyper`): required when the input (bytes)
    /// is the file; with `path`, the path's file name when absent.
    #[serde(default)]
    pub file_name: Option<String>,
    /// A file on disk to publish instead of the input, read a chunk at a time; the plugin
    /// needs a file-read grant covering it (`permission denied` otherwise).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `hyper`, `tds`, `tdsx` or `tde`; the file name's extension when absent.
    #[serde(default)]
    pub datasource_type: Option<String>,
    /// `create_new` (the default: fail when one of that name exists), `overwrite` or
    /// `append` (.hyper and .tde only).
    #[serde(default)]
    pub mode: PublishMode,
    /// Publish as a background job (`asJob=true`).
    #[serde(default)]
    pub as_job: bool,
    /// With `as_job`, wait for the job to finish (the default); `false` returns the job as
    /// it started.
    #[serde(default = "yes")]
    pub wait: bool,
}

/// Config of `refresh_extract`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshExtractConfig {
    /// The data source whose extract to refresh.
    pub datasource_id: String,
    /// An incremental refresh (API 3.25 or later); a full one by default.
    #[serde(default)]
    pub incremental: bool,
    /// Wait for the job to finish (the default); `false` returns the job as it started.
    #[serde(default = "yes")]
    pub wait: bool,
}

/// Config of `get_job`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetJobConfig {
    /// The job's id.
    pub job_id: String,
}

/// Config of `list_workbooks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListWorkbooksConfig {
    /// Tableau's filter expression (`name:eq:Sales`, `updatedAt:gt:2024-01-01T00:00:00Z`).
    #[serde(default)]
    pub filter: Option<String>,
    /// Tableau's sort expression (`updatedAt:desc`).
    #[serde(default)]
    pub sort: Option<String>,
    /// The most workbooks to return (all, up to the `max_items` setting, when absent).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Config of `list_views`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListViewsConfig {
    /// Only this workbook's views (one request, not paged); the whole site's otherwise.
    #[serde(default)]
    pub workbook_id: Option<String>,
    /// Tableau's filter expression (site views only).
    #[serde(default)]
    pub filter: Option<String>,
    /// Tableau's sort expression (site views only).
    #[serde(default)]
    pub sort: Option<String>,
    /// The most views to return.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Config of `export_view_image`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportViewImageConfig {
    /// The view (sheet or dashboard) to render.
    pub view_id: String,
    /// Ask for the high resolution (the default).
    #[serde(default = "yes")]
    pub high_resolution: bool,
    /// Accept a cached image at most this many minutes old.
    #[serde(default)]
    pub max_age_minutes: Option<u32>,
    /// View filters, field name to value (`{"Region": "West"}` → `vf_Region=West`).
    #[serde(default)]
    pub filters: BTreeMap<String, String>,
}

/// Action `sign_in`.
#[derive(Debug)]
pub struct SignIn;

impl Action for SignIn {
    const NAME: &'static str = "sign_in";
    const DESCRIPTION: &'static str = "Sign in with the personal access token (other actions do it when needed); returns the site and user ids.";
    type Config = SignInConfig;
    type Input = Payload;
    type Output = SessionInfo;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `sign_out`.
#[derive(Debug)]
pub struct SignOut;

impl Action for SignOut {
    const NAME: &'static str = "sign_out";
    const DESCRIPTION: &'static str = "Sign out of the session (the token stops working).";
    type Config = SignOutConfig;
    type Input = Payload;
    type Output = SignedOut;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `publish_datasource`.
#[derive(Debug)]
pub struct PublishDatasource;

impl Action for PublishDatasource {
    const NAME: &'static str = "publish_datasource";
    const DESCRIPTION: &'static str = "Publish a data source file (.hyper, .tds, .tdsx, .tde) given as the input bytes or as a `path` on disk (with a file-read grant); large files go in chunks through a file upload.";
    type Config = PublishDatasourceConfig;
    type Input = Payload;
    type Output = PublishOutcome;

    fn permissions() -> Vec<Permission> {
        network_and_file_read()
    }
}

/// Action `refresh_extract`.
#[derive(Debug)]
pub struct RefreshExtract;

impl Action for RefreshExtract {
    const NAME: &'static str = "refresh_extract";
    const DESCRIPTION: &'static str = "Start an extract refresh of a data source and (by default) wait for its job; a failed job is an error with Tableau's notes.";
    type Config = RefreshExtractConfig;
    type Input = Payload;
    type Output = Job;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `get_job`.
#[derive(Debug)]
pub struct GetJob;

impl Action for GetJob {
    const NAME: &'static str = "get_job";
    const DESCRIPTION: &'static str =
        "Read a background job's state (progress, finish code, notes).";
    type Config = GetJobConfig;
    type Input = Payload;
    type Output = Job;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `list_workbooks`.
#[derive(Debug)]
pub struct ListWorkbooks;

impl Action for ListWorkbooks {
    const NAME: &'static str = "list_workbooks";
    const DESCRIPTION: &'static str = "List the site's workbooks, every page, as records.";
    type Config = ListWorkbooksConfig;
    type Input = Payload;
    type Output = Records;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `list_views`.
#[derive(Debug)]
pub struct ListViews;

impl Action for ListViews {
    const NAME: &'static str = "list_views";
    const DESCRIPTION: &'static str =
        "List the site's views (every page), or one workbook's, as records.";
    type Config = ListViewsConfig;
    type Input = Payload;
    type Output = Records;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `export_view_image`.
#[derive(Debug)]
pub struct ExportViewImage;

impl Action for ExportViewImage {
    const NAME: &'static str = "export_view_image";
    const DESCRIPTION: &'static str =
        "Render a view or dashboard as a PNG (with view filters), for reports and alerts.";
    type Config = ExportViewImageConfig;
    type Input = Payload;
    type Output = Blob;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// The columns of `list_workbooks`: name, type, and where the value is in an item.
const WORKBOOK_COLUMNS: &[ItemColumn<'static>] = &[
    ("id", ColumnType::Text, "/id"),
    ("name", ColumnType::Text, "/name"),
    ("description", ColumnType::Text, "/description"),
    ("contentUrl", ColumnType::Text, "/contentUrl"),
    ("webpageUrl", ColumnType::Text, "/webpageUrl"),
    ("showTabs", ColumnType::Boolean, "/showTabs"),
    ("size", ColumnType::Integer, "/size"),
    ("createdAt", ColumnType::Timestamp, "/createdAt"),
    ("updatedAt", ColumnType::Timestamp, "/updatedAt"),
    ("projectId", ColumnType::Text, "/project/id"),
    ("projectName", ColumnType::Text, "/project/name"),
    ("ownerId", ColumnType::Text, "/owner/id"),
    ("ownerName", ColumnType::Text, "/owner/name"),
];

/// The columns of `list_views`.
const VIEW_COLUMNS: &[ItemColumn<'static>] = &[
    ("id", ColumnType::Text, "/id"),
    ("name", ColumnType::Text, "/name"),
    ("contentUrl", ColumnType::Text, "/contentUrl"),
    ("viewUrlName", ColumnType::Text, "/viewUrlName"),
    ("sheetType", ColumnType::Text, "/sheetType"),
    ("createdAt", ColumnType::Timestamp, "/createdAt"),
    ("updatedAt", ColumnType::Timestamp, "/updatedAt"),
    ("workbookId", ColumnType::Text, "/workbook/id"),
    ("ownerId", ColumnType::Text, "/owner/id"),
    ("projectId", ColumnType::Text, "/project/id"),
    (
        "totalViewCount",
        ColumnType::Integer,
        "/usage/totalViewCount",
    ),
];

#[async_trait]
impl Handler<SignIn> for TableauConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: SignInConfig,
        _input: Payload,
    ) -> Result<SessionInfo> {
        self.client().sign_in(config.fresh).await
    }
}

#[async_trait]
impl Handler<SignOut> for TableauConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        _config: SignOutConfig,
        _input: Payload,
    ) -> Result<SignedOut> {
        let signed_out = self.client().sign_out().await?;
        Ok(SignedOut { signed_out })
    }
}

/// The file `publish_datasource` publishes: the file at `path`, once the call's grants
/// allow reading it (read a chunk at a time as it is sent), else the bytes input.
fn datasource_file(
    ctx: &ActionContext,
    config: &PublishDatasourceConfig,
    input: Payload,
) -> Result<DatasourceFile> {
    if let Some(path) = &config.path {
        ctx.permissions
            .check_read(path)
            .map_err(|e| e.with_context("path", path.display().to_string()))?;
        let file_name = match &config.file_name {
            Some(name) => name.clone(),
            None => path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "`{}` has no file name to publish under; give `file_name`",
                            path.display()
                        ),
                    )
                })?,
        };
        return Ok(DatasourceFile::Path {
            path: path.clone(),
            file_name,
        });
    }
    let Payload::Bytes(blob) = input else {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "`publish_datasource` takes the file as a bytes input or as `path`, not a {} input",
                input.kind_name()
            ),
        ));
    };
    let file_name = config.file_name.clone().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            "`publish_datasource` with a bytes input needs `file_name` (`sales.hyper`)",
        )
    })?;
    Ok(DatasourceFile::Bytes {
        data: blob.data,
        file_name,
    })
}

#[async_trait]
impl Handler<PublishDatasource> for TableauConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: PublishDatasourceConfig,
        input: Payload,
    ) -> Result<PublishOutcome> {
        let file = datasource_file(&ctx, &config, input)?;
        let options = PublishOptions {
            name: config.name.clone(),
            project_id: config.project_id.clone(),
            description: config.description.clone(),
            datasource_type: config.datasource_type.clone(),
            mode: config.mode,
            as_job: config.as_job,
        };
        let client = self.client();
        let mut outcome = client
            .publish_datasource(&file, &options)
            .await
            .map_err(|e| e.with_context("datasource", &config.name))?;
        if config.wait
            && let Some(job) = outcome.job.take()
        {
            let done = client.wait_for_job(&ctx, self.poll(), &job.id).await?;
            outcome.job = Some(done.into_result()?);
        }
        Ok(outcome)
    }
}

#[async_trait]
impl Handler<RefreshExtract> for TableauConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: RefreshExtractConfig,
        _input: Payload,
    ) -> Result<Job> {
        let client = self.client();
        let job = client
            .refresh_extract(&config.datasource_id, config.incremental)
            .await?;
        if !config.wait {
            return Ok(job);
        }
        client
            .wait_for_job(&ctx, self.poll(), &job.id)
            .await?
            .into_result()
            .map_err(|e| e.with_context("datasource_id", &config.datasource_id))
    }
}

#[async_trait]
impl Handler<GetJob> for TableauConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: GetJobConfig,
        _input: Payload,
    ) -> Result<Job> {
        self.client().job(&config.job_id).await
    }
}

#[async_trait]
impl Handler<ListWorkbooks> for TableauConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: ListWorkbooksConfig,
        _input: Payload,
    ) -> Result<Records> {
        let query = ListQuery {
            filter: config.filter,
            sort: config.sort,
            limit: config.limit,
        };
        let items = self.client().workbooks(&query).await?;
        records_from_items(WORKBOOK_COLUMNS, &items)
    }
}

#[async_trait]
impl Handler<ListViews> for TableauConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: ListViewsConfig,
        _input: Payload,
    ) -> Result<Records> {
        let query = ListQuery {
            filter: config.filter,
            sort: config.sort,
            limit: config.limit,
        };
        let items = self
            .client()
            .views(config.workbook_id.as_deref(), &query)
            .await?;
        records_from_items(VIEW_COLUMNS, &items)
    }
}

#[async_trait]
impl Handler<ExportViewImage> for TableauConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: ExportViewImageConfig,
        _input: Payload,
    ) -> Result<Blob> {
        let options = ImageOptions {
            high_resolution: config.high_resolution,
            max_age_minutes: config.max_age_minutes,
            filters: config.filters.into_iter().collect(),
        };
        self.client().view_image(&config.view_id, &options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn workbook_items_become_typed_records() {
        let items = vec![json!({
            "id": "w1", "name": "Sales", "showTabs": "true", "size": "2",
            "createdAt": "2024-01-01T08:00:00Z", "updatedAt": "",
            "project": {"id": "p1", "name": "Default"}
        })];
        let records = records_from_items(WORKBOOK_COLUMNS, &items);
        let rows = records.and_then(|r| r.to_json_rows()).unwrap_or_default();
        assert_eq!(rows[0]["size"], 2);
        assert_eq!(rows[0]["showTabs"], true);
        assert_eq!(rows[0]["projectName"], "Default");
        assert_eq!(rows[0]["updatedAt"], Value::Null);
    }
}
