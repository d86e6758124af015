//! Workflow definitions: the YAML model ([`WorkflowFile`]), `${...}` references, parsing
//! with line and column positions, and validation against the plugins a host has.
//!
//! ```no_run
//! use kernelize_workflow::definition::{load, validate};
//!
//! # fn main() -> Result<(), kernelize_core::Error> {
//! let plugins = kernelize_core::PluginManager::new();
//! let loaded = load("flows/data_sync.yaml".as_ref())?;
//! validate(&loaded, &plugins)?; // every problem, as `FILE:LINE:COL: ...` lines
//! # Ok(()) }
//! ```

mod catalog;
mod diagnostics;
mod model;
mod parse;
pub mod reference;
mod validate;
mod yaml;

pub use catalog::Catalog;
pub use diagnostics::{Diagnostic, Diagnostics, Position, human_path};
pub(crate) use model::error_kind_name;
pub use model::{
    BatchSpec, Compensation, DedupeSpec, EndpointDef, MissedRuns, OnFailure, Overlap, PipelineDef,
    PluginInstance, RetrySpec, RouteArm, RouteSpec, SinkDef, StageDef, StepDef, TransformSpec,
    Trigger, TriggerRule, WorkflowDef, WorkflowFile,
};
pub use parse::{Loaded, MAX_FILE_BYTES, load, parse};
pub use validate::{
    Condition, MAX_STEPS, parse_schedule, parse_timezone, prepare_condition, validate,
};
pub use yaml::{MAX_DEPTH, MAX_NODES};
