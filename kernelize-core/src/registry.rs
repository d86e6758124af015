//! The registry: every installed version of every plugin, and dependency resolution.
//!
//! [`Registry::resolve`] turns requested plugins (`id` + semver requirement) into one concrete
//! version per plugin, picking the highest versions that satisfy every requirement — and
//! backing off to lower versions of a plugin when its highest version leads to a conflict. A
//! missing plugin, a version conflict or a dependency cycle is a [`ErrorKind::Dependency`]
//! error that names the chain that caused it:
//!
//! ```text
//! version conflict on c: a 1.2.0 -> b ^2 -> c ^1, but a 1.2.0 -> c ^2 (available: 1.0.0, 2.0.0)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use semver::{Version, VersionReq};

use crate::error::{Error, ErrorKind, Result};
use crate::plugin::{Dependency, Plugin, PluginMetadata};

/// Makes fresh instances of one version of a plugin, and knows its metadata.
#[derive(Clone)]
pub struct PluginFactory {
    metadata: Arc<PluginMetadata>,
    make: Arc<dyn Fn() -> Box<dyn Plugin> + Send + Sync>,
    instance_of: Option<String>,
}

impl fmt::Debug for PluginFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginFactory")
            .field("plugin", &self.metadata.label())
            .finish()
    }
}

impl PluginFactory {
    /// A factory from a function that makes an uninitialized instance.
    ///
    /// The function is called once here to read the metadata.
    pub fn new(make: impl Fn() -> Box<dyn Plugin> + Send + Sync + 'static) -> Self {
        let metadata = make().metadata();
        PluginFactory {
            metadata: Arc::new(metadata),
            make: Arc::new(make),
            instance_of: None,
        }
    }

    /// A factory of the same plugin under the id `name`: a named instance, configured and
    /// activated on its own, for a host that runs one plugin several times (two databases
    /// through one connector).
    pub fn instance(&self, name: impl Into<String>) -> Self {
        let mut metadata = (*self.metadata).clone();
        metadata.id = name.into();
        PluginFactory {
            metadata: Arc::new(metadata),
            make: self.make.clone(),
            instance_of: Some(self.metadata.id.clone()),
        }
    }

    /// The plugin id this factory is a named instance of ([`PluginFactory::instance`]).
    pub fn instance_of(&self) -> Option<&str> {
        self.instance_of.as_deref()
    }

    /// The metadata of the plugins this factory makes.
    pub fn metadata(&self) -> &PluginMetadata {
        &self.metadata
    }

    /// A fresh, uninitialized instance.
    pub fn create(&self) -> Box<dyn Plugin> {
        (self.make)()
    }
}

/// Installed plugins, by id and version.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    plugins: BTreeMap<String, BTreeMap<Version, PluginFactory>>,
}

/// The outcome of a resolution: one version per plugin, and an activation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The chosen version of each plugin.
    pub versions: BTreeMap<String, Version>,
    /// Plugin ids, each after everything it depends on.
    pub order: Vec<String>,
    /// The direct dependencies of each chosen plugin.
    pub dependencies: BTreeMap<String, Vec<String>>,
}

/// Resolution gives up after this many version choices, so an adversarial set of plugins
/// cannot make it search forever.
const MAX_STEPS: usize = 100_000;

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a plugin version. Installing the same id and version twice is an error; ids must
    /// be non-empty lowercase words joined by `-` or `_`.
    pub fn register(&mut self, factory: PluginFactory) -> Result<()> {
        let meta = factory.metadata();
        check_id(&meta.id)?;
        for dep in &meta.dependencies {
            check_id(&dep.id).map_err(|e| e.with_context("plugin", meta.label()))?;
        }
        let versions = self.plugins.entry(meta.id.clone()).or_default();
        if versions.contains_key(&meta.version) {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("plugin {} is already installed", meta.label()),
            ));
        }
        versions.insert(meta.version.clone(), factory);
        Ok(())
    }

    /// Removes a plugin version; returns whether it was there.
    pub fn unregister(&mut self, id: &str, version: &Version) -> bool {
        let Some(versions) = self.plugins.get_mut(id) else {
            return false;
        };
        let removed = versions.remove(version).is_some();
        if versions.is_empty() {
            self.plugins.remove(id);
        }
        removed
    }

    /// Ids of every installed plugin, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.plugins.keys().cloned().collect()
    }

    /// Whether any version of `id` is installed.
    pub fn contains(&self, id: &str) -> bool {
        self.plugins.contains_key(id)
    }

    /// Installed versions of `id`, lowest first.
    pub fn versions(&self, id: &str) -> Vec<Version> {
        self.plugins
            .get(id)
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The factory of one version.
    pub fn get(&self, id: &str, version: &Version) -> Option<&PluginFactory> {
        self.plugins.get(id).and_then(|v| v.get(version))
    }

    /// The factory of the highest installed version of `id`.
    pub fn latest(&self, id: &str) -> Option<&PluginFactory> {
        self.plugins
            .get(id)
            .and_then(|v| v.last_key_value())
            .map(|(_, f)| f)
    }

    /// The highest version of each installed plugin, by id.
    pub fn latest_all(&self) -> Vec<&PluginFactory> {
        self.plugins
            .values()
            .filter_map(|v| v.last_key_value().map(|(_, f)| f))
            .collect()
    }

    /// Resolves requested plugins and their dependencies to concrete versions.
    pub fn resolve(&self, requests: &[Dependency]) -> Result<Resolution> {
        let mut solver = Solver {
            registry: self,
            steps: 0,
        };
        let mut state = State::default();
        for req in requests {
            state.constraints.push(Constraint {
                id: req.id.clone(),
                req: req.req.clone(),
                chain: format!("{} {}", req.id, req.req),
                parent: None,
            });
            if !state.pending.contains(&req.id) {
                state.pending.push(req.id.clone());
            }
        }
        let state = solver.solve(state)?;
        Ok(state.into_resolution())
    }
}

fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && id.starts_with(|c: char| c.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!(
                "invalid plugin id `{id}`: use lowercase letters, digits, `-` and `_`, starting with a letter"
            ),
        ))
    }
}

/// A requirement on a plugin, with the chain of choices that led to it.
#[derive(Debug, Clone)]
struct Constraint {
    id: String,
    req: VersionReq,
    /// How this requirement came about, for messages: `a 1.2.0 -> b ^2 -> c ^1`.
    chain: String,
    /// The plugin whose dependency this is; `None` for a requested plugin.
    parent: Option<String>,
}

#[derive(Debug, Clone)]
struct Chosen {
    version: Version,
    /// The chain children's requirements extend.
    chain: String,
    dependencies: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct State {
    chosen: BTreeMap<String, Chosen>,
    constraints: Vec<Constraint>,
    /// Ids with requirements and no chosen version yet, in discovery order.
    pending: Vec<String>,
}

impl State {
    fn constraints_on<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Constraint> + 'a {
        self.constraints.iter().filter(move |c| c.id == id)
    }

    fn into_resolution(self) -> Resolution {
        let versions: BTreeMap<String, Version> = self
            .chosen
            .iter()
            .map(|(id, c)| (id.clone(), c.version.clone()))
            .collect();
        let dependencies: BTreeMap<String, Vec<String>> = self
            .chosen
            .iter()
            .map(|(id, c)| (id.clone(), c.dependencies.clone()))
            .collect();
        // The solver checked acyclicity, so this order exists.
        let order = topological_order(&dependencies).unwrap_or_default();
        Resolution {
            versions,
            order,
            dependencies,
        }
    }
}

/// Ids ordered so that each comes after its dependencies (ties broken by id); on a cycle,
/// the ids of one cycle in order, as the error.
fn topological_order(
    deps: &BTreeMap<String, Vec<String>>,
) -> std::result::Result<Vec<String>, Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        id: &str,
        deps: &BTreeMap<String, Vec<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
        order: &mut Vec<String>,
    ) -> std::result::Result<(), Vec<String>> {
        match marks.get(id) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = stack.iter().position(|s| s == id).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(id.to_string());
                return Err(cycle);
            }
            None => {}
        }
        marks.insert(id.to_string(), Mark::Visiting);
        stack.push(id.to_string());
        let mut children: Vec<&String> =
            deps.get(id).map(|d| d.iter().collect()).unwrap_or_default();
        children.sort();
        for child in children {
            visit(child, deps, marks, stack, order)?;
        }
        stack.pop();
        marks.insert(id.to_string(), Mark::Done);
        order.push(id.to_string());
        Ok(())
    }
    let mut marks = BTreeMap::new();
    let mut order = Vec::new();
    for id in deps.keys() {
        let mut stack = Vec::new();
        visit(id, deps, &mut marks, &mut stack, &mut order)?;
    }
    Ok(order)
}

struct Solver<'r> {
    registry: &'r Registry,
    steps: usize,
}

impl Solver<'_> {
    fn solve(&mut self, mut state: State) -> Result<State> {
        let Some(id) = (!state.pending.is_empty()).then(|| state.pending.remove(0)) else {
            self.check_cycles(&state)?;
            return Ok(state);
        };
        if state.chosen.contains_key(&id) {
            return self.solve(state);
        }
        let Some(installed) = self.registry.plugins.get(&id) else {
            return Err(self.missing(&state, &id));
        };
        let constraints: Vec<&Constraint> = state.constraints_on(&id).collect();
        let candidates: Vec<&Version> = installed
            .keys()
            .rev()
            .filter(|v| constraints.iter().all(|c| c.req.matches(v)))
            .collect();
        if candidates.is_empty() {
            return Err(self.unsatisfiable(&state, &id));
        }
        let intro = constraints
            .first()
            .map(|c| (c.chain.clone(), c.parent.is_none()));
        let mut first_error = None;
        for version in candidates {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return Err(Error::new(
                    ErrorKind::Dependency,
                    format!("dependency resolution gave up after {MAX_STEPS} attempts"),
                ));
            }
            let Some(factory) = installed.get(version) else {
                continue;
            };
            let meta = factory.metadata();
            let chain = match &intro {
                Some((_, true)) | None => meta.label(),
                Some((chain, false)) => chain.clone(),
            };
            let mut next = state.clone();
            match self.choose(&mut next, meta, chain) {
                Ok(()) => match self.solve(next) {
                    Ok(done) => return Ok(done),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                },
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| self.unsatisfiable(&state, &id)))
    }

    /// Records `meta` as chosen and adds its dependencies' requirements.
    fn choose(&self, state: &mut State, meta: &PluginMetadata, chain: String) -> Result<()> {
        let mut dependencies = Vec::new();
        for dep in &meta.dependencies {
            let constraint = Constraint {
                id: dep.id.clone(),
                req: dep.req.clone(),
                chain: format!("{chain} -> {} {}", dep.id, dep.req),
                parent: Some(meta.id.clone()),
            };
            if let Some(already) = state.chosen.get(&dep.id)
                && !dep.req.matches(&already.version)
            {
                state.constraints.push(constraint);
                return Err(self.unsatisfiable(state, &dep.id));
            }
            state.constraints.push(constraint);
            if !state.chosen.contains_key(&dep.id) && !state.pending.contains(&dep.id) {
                state.pending.push(dep.id.clone());
            }
            dependencies.push(dep.id.clone());
        }
        state.chosen.insert(
            meta.id.clone(),
            Chosen {
                version: meta.version.clone(),
                chain,
                dependencies,
            },
        );
        Ok(())
    }

    fn check_cycles(&self, state: &State) -> Result<()> {
        let deps: BTreeMap<String, Vec<String>> = state
            .chosen
            .iter()
            .map(|(id, c)| (id.clone(), c.dependencies.clone()))
            .collect();
        match topological_order(&deps) {
            Ok(_) => Ok(()),
            Err(cycle) => {
                let mut text = String::new();
                for (i, id) in cycle.iter().enumerate() {
                    if i == 0 {
                        let version = state.chosen.get(id).map(|c| c.version.to_string());
                        text.push_str(&format!("{id} {}", version.unwrap_or_default()));
                    } else {
                        let parent = &cycle[i - 1];
                        let req = state
                            .constraints
                            .iter()
                            .find(|c| c.id == *id && c.parent.as_deref() == Some(parent))
                            .map(|c| c.req.to_string())
                            .unwrap_or_default();
                        text.push_str(&format!(" -> {id} {req}"));
                    }
                }
                Err(Error::new(
                    ErrorKind::Dependency,
                    format!("dependency cycle: {text}"),
                ))
            }
        }
    }

    fn missing(&self, state: &State, id: &str) -> Error {
        let chain = state
            .constraints_on(id)
            .next()
            .map(|c| c.chain.clone())
            .unwrap_or_else(|| id.to_string());
        let installed = self.registry.ids();
        Error::new(
            ErrorKind::Dependency,
            format!(
                "plugin `{id}` is not installed (required by {chain}); installed plugins: {}",
                if installed.is_empty() {
                    "none".to_string()
                } else {
                    installed.join(", ")
                }
            ),
        )
        .with_context("plugin", id)
    }

    fn unsatisfiable(&self, state: &State, id: &str) -> Error {
        let available = self
            .registry
            .versions(id)
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let constraints: Vec<&Constraint> = state.constraints_on(id).collect();
        let installed = self.registry.plugins.get(id);
        // Find two requirements that no installed version satisfies together, preferring
        // two that come from dependencies: their chains explain more than a bare request.
        let mut pairs: Vec<(&Constraint, &Constraint)> = Vec::new();
        for (i, a) in constraints.iter().enumerate() {
            for b in &constraints[..i] {
                pairs.push((a, b));
            }
        }
        pairs.sort_by_key(|(a, b)| a.parent.is_none() as u8 + b.parent.is_none() as u8);
        {
            for (a, b) in pairs {
                let together = installed
                    .map(|vs| vs.keys().any(|v| a.req.matches(v) && b.req.matches(v)))
                    .unwrap_or(false);
                if !together {
                    return Error::new(
                        ErrorKind::Dependency,
                        format!(
                            "version conflict on {id}: {}, but {} (available: {available})",
                            a.chain, b.chain
                        ),
                    )
                    .with_context("plugin", id);
                }
            }
        }
        // Or an already chosen version that a later requirement rejects.
        if let Some(chosen) = state.chosen.get(id)
            && let Some(c) = constraints.iter().find(|c| !c.req.matches(&chosen.version))
        {
            return Error::new(
                ErrorKind::Dependency,
                format!(
                    "version conflict on {id}: {}, but {} chose {id} {}",
                    c.chain, chosen.chain, chosen.version
                ),
            )
            .with_context("plugin", id);
        }
        let chains: Vec<String> = constraints.iter().map(|c| c.chain.clone()).collect();
        Error::new(
            ErrorKind::Dependency,
            format!(
                "no installed version of {id} satisfies {} (available: {available})",
                chains.join(" and ")
            ),
        )
        .with_context("plugin", id)
    }
}

/// Ids of the chosen plugins that depend, directly or not, on `id`.
pub fn dependents_of(dependencies: &BTreeMap<String, Vec<String>>, id: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut frontier = vec![id.to_string()];
    while let Some(current) = frontier.pop() {
        for (other, deps) in dependencies {
            if deps.contains(&current) && out.insert(other.clone()) {
                frontier.push(other.clone());
            }
        }
    }
    out
}
