//! The plugin every SQL connector is: one generic [`SqlConnector`] over what a database
//! adds ([`SqlDatabase`]: its settings, how it opens, the grants each call needs), so that
//! `sqlite-connector`, `postgres-connector` and the MySQL connector to come share their
//! plugin, lifecycle and action handlers, not just their SQL code.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use kernelize_core::plugin::{
    ActionContext, ActionRouter, Call, Category, Handler, HealthReport, InitContext, Plugin,
    PluginMetadata,
};
use kernelize_core::{Error, ErrorKind, Payload, Permission, PermissionGuard, Records, Result};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use super::actions::{
    self, Execute, ExecuteConfig, Extract, ExtractConfig, Load, LoadConfig, LoadSummary, Query,
    QueryConfig, RowsAffected,
};
use super::backend::SqlBackend;

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
    /// An open database.
    type Backend: SqlBackend + fmt::Debug + Send + Sync + 'static;

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

    /// Most rows one call may hold in memory.
    fn max_rows(settings: &Self::Settings) -> usize;

    /// Closes the database's connections.
    async fn close(backend: &Self::Backend);

    /// Whether its connections are closed.
    fn is_closed(backend: &Self::Backend) -> bool;
}

/// A SQL connector plugin over database `D`. Made by its factory and opened by the
/// manager's `initialize`, or opened directly with [`SqlConnector::open`].
pub struct SqlConnector<D: SqlDatabase> {
    open: Option<(D::Settings, D::Backend)>,
    router: Arc<ActionRouter<SqlConnector<D>>>,
}

impl<D: SqlDatabase> fmt::Debug for SqlConnector<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlConnector")
            .field("plugin", &D::ID)
            .field("open", &self.open)
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
            open: Some((settings, backend)),
            ..Self::new()
        })
    }

    /// The open database, after checking the call's grants.
    fn database(&self, ctx: &ActionContext) -> Result<(&D::Settings, &D::Backend)> {
        let (settings, backend) = self.open.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                format!("the {} is not initialized", D::ID),
            )
        })?;
        D::check_call(settings, backend, &ctx.permissions)?;
        Ok((settings, backend))
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
        .actions(self.router.descriptors());
        for permission in D::declared_permissions() {
            metadata = metadata.needs(permission);
        }
        metadata
    }

    async fn initialize(&mut self, ctx: InitContext) -> Result<()> {
        let settings: D::Settings = ctx.config.parse()?;
        let backend = D::open(&settings, &ctx.permissions).await?;
        self.open = Some((settings, backend));
        Ok(())
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        self.router.dispatch(self, call).await
    }

    async fn shutdown(&self) -> Result<()> {
        if let Some((_, backend)) = &self.open {
            D::close(backend).await;
        }
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        match &self.open {
            None => HealthReport::unhealthy("not initialized"),
            Some((_, backend)) if D::is_closed(backend) => {
                HealthReport::unhealthy("the connection pool is closed")
            }
            Some(_) => HealthReport::healthy(),
        }
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
        actions::query(backend, &ctx, config, D::max_rows(settings)).await
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
        actions::extract(backend, &ctx, config, D::max_rows(settings)).await
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
