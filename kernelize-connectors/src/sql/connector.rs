//! The plugin every SQL connector is: one generic [`SqlConnector`] over what a database
//! adds ([`SqlDatabase`]: its settings, how it opens, the grants each call needs), so that
//! `sqlite-connector`, `postgres-connector` and `mysql-connector` share their plugin,
//! lifecycle, action handlers, event sink ([`super::sink`]) and batch-by-batch extract
//! ([`SqlConnector::extract_batches`]), not just their SQL code.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use kernelize_core::plugin::{
    ActionContext, ActionRouter, Call, Category, Handler, HealthReport, InitContext, Plugin,
    PluginMetadata,
};
use kernelize_core::{
    Error, ErrorKind, EventSink, Payload, Permission, PermissionGuard, Records, Result,
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::actions::{
    self, Execute, ExecuteConfig, Extract, ExtractConfig, Load, LoadConfig, LoadSummary, Query,
    QueryConfig, RecordBatchStream, RowsAffected,
};
use super::backend::SqlBackend;
use super::result_set::ReadLimits;
use super::sink::{SqlSink, SqlSinkOptions};

/// What one database brings to [`SqlConnector`].
#[async_trait]
pub trait SqlDatabase: Send + Sync + 'static {
    /// The plugin id (`sqlite-connector`).
    const ID: &'static str;
    /// Its display name (`SQLite`).
    const NAME: &'static str;
    /// What the plugin does, in a sentence.
    const DESCRIPTION: &'static str;
    /// The plugin's settings.
    type Settings: DeserializeOwned + JsonSchema + fmt::Debug + Send + Sync + 'static;
    /// An open database; clones share its pool.
    type Backend: SqlBackend + Clone + fmt::Debug + Send + Sync + 'static;

    /// The permissions the plugin declares.
    fn declared_permissions() -> Vec<Permission>;

    /// Checks `settings` and the grants, then opens the database.
    async fn open(settings: &Self::Settings, grants: &PermissionGuard) -> Result<Self::Backend>;

    /// Checks the grants of one call against the open database.
    fn check_call(
        settings: &Self::Settings,
        backend: &Self::Backend,
        grants: &PermissionGuard,
    ) -> Result<()>;

    /// Whether `load` may write (a database opened read-only refuses, with why).
    fn check_writable(_settings: &Self::Settings) -> Result<()> {
        Ok(())
    }

    /// Most rows and bytes one call may hold in memory.
    fn read_limits(settings: &Self::Settings) -> ReadLimits;

    /// Closes the database's connections.
    async fn close(backend: &Self::Backend);

    /// Whether its connections are closed.
    fn is_closed(backend: &Self::Backend) -> bool;
}

/// A SQL connector plugin over database `D`. Made by its factory and opened by the
/// manager's `initialize`, or opened directly with [`SqlConnector::open`].
pub struct SqlConnector<D: SqlDatabase> {
    open: Option<Opened<D>>,
    router: Arc<ActionRouter<SqlConnector<D>>>,
}

/// An open database, with the settings it was opened with and the grants the host gave.
pub(crate) struct Opened<D: SqlDatabase> {
    pub(crate) settings: Arc<D::Settings>,
    pub(crate) backend: D::Backend,
    pub(crate) grants: PermissionGuard,
}

impl<D: SqlDatabase> Clone for Opened<D> {
    fn clone(&self) -> Self {
        Opened {
            settings: self.settings.clone(),
            backend: self.backend.clone(),
            grants: self.grants.clone(),
        }
    }
}

impl<D: SqlDatabase> Opened<D> {
    /// Checks `grants` (a call's, or the host's for work outside calls) against the
    /// database.
    pub(crate) fn check(&self, grants: &PermissionGuard) -> Result<()> {
        D::check_call(&self.settings, &self.backend, grants)
    }
}

impl<D: SqlDatabase> fmt::Debug for SqlConnector<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let open = self.open.as_ref().map(|o| (&o.settings, &o.backend));
        f.debug_struct("SqlConnector")
            .field("plugin", &D::ID)
            .field("open", &open)
            .finish()
    }
}

impl<D: SqlDatabase> Default for SqlConnector<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: SqlDatabase> SqlConnector<D> {
    /// A connector not yet opened.
    pub fn new() -> Self {
        SqlConnector {
            open: None,
            router: Arc::new(
                ActionRouter::new()
                    .action::<Query>()
                    .action::<Extract>()
                    .action::<Load>()
                    .action::<Execute>(),
            ),
        }
    }

    /// Opens the database of `settings`, checking them against `grants` (which each call is
    /// checked against too).
    pub async fn open(settings: D::Settings, grants: &PermissionGuard) -> Result<Self> {
        let backend = D::open(&settings, grants).await?;
        Ok(SqlConnector {
            open: Some(Opened {
                settings: Arc::new(settings),
                backend,
                grants: grants.clone(),
            }),
            ..Self::new()
        })
    }

    fn opened(&self) -> Result<&Opened<D>> {
        self.open.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                format!("the {} is not initialized", D::ID),
            )
        })
    }

    /// The open database, after checking the call's grants.
    fn database(&self, ctx: &ActionContext) -> Result<(&D::Settings, &D::Backend)> {
        let opened = self.opened()?;
        opened.check(&ctx.permissions)?;
        Ok((&opened.settings, &opened.backend))
    }

    /// Runs `extract` batch by batch, for results larger than memory: the rows come as a
    /// [`RecordBatchStream`] of Arrow record batches of at most `config.batch_rows` rows
    /// (10,000 unless set), read as the database sends them, with backpressure; see
    /// [`actions::extract_batches`] for the contract (bounds, watermark progress, errors).
    ///
    /// `:name` placeholders bind from `config.params` (there are no run variables here).
    /// The grants given at [`SqlConnector::open`] (or activation) are checked first.
    /// Cancelling `cancel`, or dropping the stream, stops the statement.
    ///
    /// ```no_run
    /// # async fn demo(db: kernelize_connectors::sql::postgres::PostgresConnector) -> kernelize_core::Result<()> {
    /// use futures::TryStreamExt;
    /// use kernelize_connectors::sql::actions::ExtractConfig;
    ///
    /// let config = ExtractConfig {
    ///     query: "SELECT * FROM events WHERE id > :after".into(),
    ///     params: serde_json::json!({"after": 0}).as_object().cloned().unwrap_or_default(),
    ///     watermark: Some("id".into()),
    ///     batch_rows: Some(50_000),
    ///     ..Default::default()
    /// };
    /// let mut batches = db.extract_batches(config, Default::default())?;
    /// while let Some(batch) = batches.try_next().await? {
    ///     // ... write the batch somewhere, then record batch.schema().metadata()
    ///     // ["kernelize.watermark.max"] as the point to resume from.
    /// }
    /// # Ok(()) }
    /// ```
    pub fn extract_batches(
        &self,
        config: ExtractConfig,
        cancel: CancellationToken,
    ) -> Result<RecordBatchStream> {
        let opened = self.opened()?;
        opened.check(&opened.grants)?;
        let ctx = ActionContext {
            action: "extract".into(),
            deadline: None,
            cancel,
            permissions: opened.grants.clone(),
            idempotency_key: None,
            vars: BTreeMap::new(),
        };
        Ok(actions::extract_batches(
            opened.backend.clone(),
            ctx,
            config,
        ))
    }

    /// Opens the event sink ([`super::sink`]) that writes events into a table of this
    /// database, as [`Plugin::open_sink`] does for pipelines.
    pub fn sink(&self, options: SqlSinkOptions) -> Result<SqlSink<D>> {
        let opened = self.opened()?;
        opened.check(&opened.grants)?;
        D::check_writable(&opened.settings)?;
        SqlSink::new(opened.clone(), options)
    }
}

#[async_trait]
impl<D: SqlDatabase> Plugin for SqlConnector<D> {
    fn metadata(&self) -> PluginMetadata {
        let mut metadata = PluginMetadata::new(
            D::ID,
            D::NAME,
            semver::Version::new(0, 1, 0),
            Category::Connector,
        )
        .description(D::DESCRIPTION)
        .author("Kernelize")
        .config_type::<D::Settings>()
        .actions(self.router.descriptors())
        .event_sink::<SqlSinkOptions>();
        for permission in D::declared_permissions() {
            metadata = metadata.needs(permission);
        }
        metadata
    }

    async fn initialize(&mut self, ctx: InitContext) -> Result<()> {
        let settings: D::Settings = ctx.config.parse()?;
        let backend = D::open(&settings, &ctx.permissions).await?;
        self.open = Some(Opened {
            settings: Arc::new(settings),
            backend,
            grants: ctx.permissions,
        });
        Ok(())
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        self.router.dispatch(self, call).await
    }

    async fn shutdown(&self) -> Result<()> {
        if let Some(opened) = &self.open {
            D::close(&opened.backend).await;
        }
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        match &self.open {
            None => HealthReport::unhealthy("not initialized"),
            Some(opened) if D::is_closed(&opened.backend) => {
                HealthReport::unhealthy("the connection pool is closed")
            }
            Some(_) => HealthReport::healthy(),
        }
    }

    /// Opens a [`SqlSink`]: `options` are [`SqlSinkOptions`].
    async fn open_sink(&self, options: Value) -> Result<Arc<dyn EventSink>> {
        let options: SqlSinkOptions = serde_json::from_value(options).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("the {} sink options are invalid: {e}", D::ID),
            )
        })?;
        Ok(Arc::new(self.sink(options)?))
    }
}

#[async_trait]
impl<D: SqlDatabase> Handler<Query> for SqlConnector<D> {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: QueryConfig,
        _input: Payload,
    ) -> Result<Payload> {
        let (settings, backend) = self.database(&ctx)?;
        actions::query(backend, &ctx, config, D::read_limits(settings)).await
    }
}

#[async_trait]
impl<D: SqlDatabase> Handler<Extract> for SqlConnector<D> {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: ExtractConfig,
        _input: Payload,
    ) -> Result<Records> {
        let (settings, backend) = self.database(&ctx)?;
        actions::extract(backend, &ctx, config, D::read_limits(settings)).await
    }
}

#[async_trait]
impl<D: SqlDatabase> Handler<Load> for SqlConnector<D> {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: LoadConfig,
        input: Records,
    ) -> Result<LoadSummary> {
        let (settings, backend) = self.database(&ctx)?;
        D::check_writable(settings)?;
        actions::load(backend, &ctx, config, input).await
    }
}

#[async_trait]
impl<D: SqlDatabase> Handler<Execute> for SqlConnector<D> {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: ExecuteConfig,
        _input: Payload,
    ) -> Result<RowsAffected> {
        let (_, backend) = self.database(&ctx)?;
        actions::execute(backend, &ctx, config).await
    }
}
