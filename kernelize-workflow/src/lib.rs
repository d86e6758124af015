#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod definition;
pub mod engine;

pub use engine::{Engine, RunOptions, RunReport, RunStatus, StepReport, StepStatus};
