//! `kernelize worker --schedule FILE`: the worker also runs the scheduler for the schedules
//! of those files. Of all the processes scheduling on one store, one at a time queues runs
//! (the holder of the store's `scheduler` lock); every worker executes them.

use std::path::PathBuf;

use kernelize::workflow::Engine;
use kernelize::workflow::definition::{self, WorkflowFile};
use kernelize::workflow::schedule::Scheduler;
use kernelize::{Error, ErrorKind, PluginManager, Result};

/// Reads and validates each file the way `kernelize run` does (an invalid one is exit 2,
/// with every problem at its line), and refuses a file without any schedule.
pub(crate) fn load(files: &[PathBuf], manager: &PluginManager) -> Result<Vec<WorkflowFile>> {
    let mut loaded_files = Vec::with_capacity(files.len());
    for path in files {
        let loaded = definition::load(path).map_err(Error::from)?;
        definition::validate(&loaded, manager).map_err(Error::from)?;
        let scheduled = loaded
            .file
            .workflows
            .values()
            .any(|w| w.triggers.iter().any(|t| t.schedule.is_some()));
        if !scheduled {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "--schedule {}: no workflow in it has a `schedule` trigger",
                    path.display()
                ),
            ));
        }
        loaded_files.push(loaded.file);
    }
    Ok(loaded_files)
}

/// A scheduler over `engine` with the workflows of `files` registered; `None` without
/// files. Two files that give one webhook path, or one workflow name, to different
/// workflows are refused.
pub(crate) fn scheduler(
    engine: &Engine,
    files: &[WorkflowFile],
    paths: &[PathBuf],
) -> Result<Option<Scheduler>> {
    if files.is_empty() {
        return Ok(None);
    }
    let scheduler = Scheduler::new(engine.clone());
    for (file, path) in files.iter().zip(paths) {
        scheduler
            .register(file)
            .map_err(|e| e.with_context("file", path.display()))?;
    }
    Ok(Some(scheduler))
}
