#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod builder;
pub mod definition;
pub mod engine;
pub mod pipeline;
pub mod schedule;
pub mod store;

pub use builder::{Chain, Step, TypedCompensation, TypedReport, TypedWorkflow, WorkflowBuilder};
pub use engine::{Engine, RunOptions, RunReport, RunStatus, StepReport, StepStatus};
pub use store::Store;
