#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod audit;
pub mod builtins;

pub mod config;
pub mod error;
pub mod event;
pub mod manager;

pub mod payload;
pub mod permissions;
pub mod plugin;
pub mod registry;

pub use audit::{AuditEvent, AuditSink, Outcome};
pub use config::{Limits, PluginConfig, ResolvedConfig, SecretStore, WhenBusy};
pub use error::{Error, ErrorKind, Result};
pub use event::{AckHandle, Delivery, Event, EventSink, EventSource, Settlement, WriteReport};

pub use manager::{CallOptions, InstalledPlugin, PluginHealth, PluginManager};
pub use payload::{Blob, Payload, Records};
pub use permissions::{Permission, PermissionGuard};
pub use plugin::{
    Action, ActionContext, ActionDescriptor, ActionRouter, Call, Category, Dependency, EventRoles,
    Handler, HealthReport, HealthStatus, InitContext, PayloadType, Plugin, PluginMetadata,
};
pub use registry::{PluginFactory, Registry, Resolution};

/// Re-exported so plugin authors use the same versions as the SDK.
pub use {arrow_array, arrow_schema, async_trait::async_trait, schemars, semver, serde_json};
