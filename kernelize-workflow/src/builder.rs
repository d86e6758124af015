//! The typed Rust workflow builder: compose typed plugin actions into a workflow that the
//! compiler checks, then run it through the same [`Engine`] as YAML workflows.
//!
//! A [`Step`] is one call of a typed [`Action`] (`Step<A::Input, A::Output>`); a [`Chain`]
//! is steps in sequence, with parallel branches joined again ([`Chain::parallel`],
//! [`Fork::join`]) and conditions ([`Step::when`], [`Chain::branch`]).
//! [`WorkflowBuilder::build`] turns a chain into a [`TypedWorkflow`]: an ordinary
//! [`WorkflowDef`] (the same one a YAML file gives) plus the type of its final output, which
//! [`TypedWorkflow::run`] decodes from the run's report.
//!
//! ```
//! use kernelize_core::{Action, Result};
//! use kernelize_workflow::builder::{Chain, Step, TypedWorkflow, WorkflowBuilder};
//! use kernelize_workflow::definition::RetrySpec;
//! use kernelize_workflow::{Engine, RunOptions};
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! struct Orders { amounts: Vec<f64> }
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! struct Totals { sum: f64 }
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! struct Sent { message_id: String }
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! struct FetchConfig { since: String }
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! struct NotifyConfig { channel: String }
//!
//! struct FetchOrders;
//! impl Action for FetchOrders {
//!     const NAME: &'static str = "fetch_orders";
//!     const DESCRIPTION: &'static str = "Reads the orders placed since a date.";
//!     type Config = FetchConfig;
//!     type Input = ();
//!     type Output = Orders;
//! }
//! struct SumOrders;
//! impl Action for SumOrders {
//!     const NAME: &'static str = "sum_orders";
//!     const DESCRIPTION: &'static str = "Adds up order amounts.";
//!     type Config = ();
//!     type Input = Orders;
//!     type Output = Totals;
//! }
//! struct Notify;
//! impl Action for Notify {
//!     const NAME: &'static str = "notify";
//!     const DESCRIPTION: &'static str = "Posts totals to a channel.";
//!     type Config = NotifyConfig;
//!     type Input = Totals;
//!     type Output = Sent;
//! }
//!
//! let since = FetchConfig { since: "${params.since}".into() };
//! let notify = NotifyConfig { channel: "#sales".into() };
//! let steps = Chain::start(Step::typed::<FetchOrders>("fetch", "shop", since))
//!     .then(Step::typed::<SumOrders>("sum", "analytics", ()))
//!     .then(Step::typed::<Notify>("notify", "chat", notify).retry(RetrySpec::default()));
//! // `.then(Step::typed::<Notify>(..))` right after `fetch` would not compile: `Notify`
//! // takes `Totals`, and `fetch` gives `Orders`.
//! let workflow: TypedWorkflow<Sent> = WorkflowBuilder::new("daily_sales")
//!     .param("since", "2024-01-01")
//!     .build(steps)?;
//! assert_eq!(workflow.definition().steps[2].depends_on, Some(vec!["sum".to_string()]));
//!
//! // Runs through the engine that runs YAML workflows; the final output comes back typed.
//! async fn send_report(engine: &Engine, workflow: &TypedWorkflow<Sent>) -> Result<String> {
//!     let report = workflow.run(engine, RunOptions::default()).await?;
//!     Ok(report.into_output()?.message_id)
//! }
//! # Ok::<(), kernelize_core::Error>(())
//! ```
//!
//! # What the compiler checks
//!
//! | Where | Rule |
//! |---|---|
//! | [`Chain::then`] | the step's input type *is* the previous step's output type |
//! | [`WorkflowBuilder::build`] | the first step takes `()` (a run starts with no input) |
//! | [`Chain::parallel`] | every branch starts with a step taking the previous output |
//! | [`Fork::join`] | the join's input is the tuple of the branch outputs, in branch order |
//! | [`Fork::join_named`] | the join's input declares ([`NamedJoin::Branches`]) that tuple |
//! | [`Chain::branch`] | both arms take the previous output and end in the same type |
//! | [`Step::compensate`] | the compensation takes the step's output |
//! | [`WorkflowBuilder::failure_handler`] | a failure handler takes `()` |
//! | [`TypedWorkflow`]`<Out>` | `Out` is the final step's output type |
//! | [`Step::typed`] | the config is the action's `Config` type |
//!
//! Input types are compared exactly. A step whose input is [`Payload`] accepts any output,
//! but says so: [`Step::accept_any`] turns a `Step<Payload, O>` into a `Step<I, O>` for the
//! `I` the position needs (inferred). Dynamic steps ([`Step::dynamic`]) accept any input
//! from the start and give `Payload`. The rule is explicit rather than a blanket "accepts"
//! trait because such a trait needs one impl for `T` and one for `Payload`; they overlap at
//! `Payload`, and the usual marker-type workaround makes `then` ambiguous (type annotations
//! needed) whenever the previous output is itself `Payload` or a dynamic step's input is
//! still being inferred.
//!
//! # What is checked when building, and when validating
//!
//! [`WorkflowBuilder::build`] fails, naming each problem, on: repeated step names, names that
//! `${steps.NAME.output}` cannot refer to, `when` conditions that do not parse, references
//! to steps that are not in the workflow or to undeclared parameters, failure handlers not
//! declared (or declared and never named), empty chains, branches and arms, configs that do
//! not serialize, and [`NamedJoin::FIELDS`] that are not the branch names.
//! [`TypedWorkflow::validate`] then runs the YAML validator against the plugins a host has:
//! unknown plugins and actions (a plugin that does not offer `A::NAME`), configs that fail
//! the action's schema, references to steps not sure to have run first, retry policies.
//!
//! Not checked before a run: that a plugin's outputs really have the types its actions
//! declare (a mismatch fails the step that reads it, or [`TypedWorkflow::run`] decoding the
//! final output), and what conditions evaluate to.
//!
//! # How the typed shapes map to the definition
//!
//! Every step but the first gets an explicit `depends_on`. A join step gets an `input:` of
//! references to the branch outputs: a list for [`Fork::join`]
//! (`["${steps.a.output}", "${steps.b.output}"]`, which serde reads as a tuple), an object
//! keyed by branch name for [`Fork::join_named`]. Because `input:` values are JSON, joined
//! outputs travel as JSON (records become JSON rows). A [`Chain::branch`] puts its condition
//! on the first step(s) of the first arm and `not (condition)` on those of the second; the
//! steps after a skipped step are skipped in turn.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use kernelize_core::{Action, Error, ErrorKind, Payload, PayloadType, Result};
use serde_json::Value;

use crate::definition::reference::{Reference, Segment, parse_template, references_in};
use crate::definition::{
    Catalog, Compensation, Diagnostic, Diagnostics, OnFailure, PluginInstance, Position, RetrySpec,
    StepDef, Trigger, WorkflowDef, WorkflowFile, parse, prepare_condition, validate,
};
use crate::engine::{Engine, RunOptions, RunReport, RunStatus, StepStatus};

/// One typed step: a call of an action that takes `In` and gives `Out`.
///
/// Made with [`Step::typed`] (from an [`Action`]) or [`Step::dynamic`] (by action name);
/// options (retry, timeout, condition, compensation, failure policy) are set on it before it
/// goes into a [`Chain`].
#[must_use = "a step does nothing until it is put in a chain"]
pub struct Step<In, Out> {
    def: StepDef,
    problems: Vec<String>,
    types: PhantomData<fn(In) -> Out>,
}

impl<In, Out> Step<In, Out> {
    /// A step named `name` that calls action `A` of `plugin` (a plugin id, or an instance
    /// name declared with [`WorkflowBuilder::plugin`]) with `config`.
    ///
    /// The config is serialized as the step's `config`; its strings may hold `${...}`
    /// references, resolved when the step runs.
    pub fn typed<A>(name: impl Into<String>, plugin: impl Into<String>, config: A::Config) -> Self
    where
        A: Action<Input = In, Output = Out>,
    {
        let name = name.into();
        let mut problems = Vec::new();
        let config = serde_json::to_value(config).unwrap_or_else(|e| {
            problems.push(format!(
                "step `{name}`: the config of action `{}` does not serialize to JSON: {e}",
                A::NAME
            ));
            Value::Null
        });
        Step {
            def: StepDef {
                name,
                plugin: plugin.into(),
                action: A::NAME.to_string(),
                config,
                depends_on: Some(Vec::new()),
                ..StepDef::default()
            },
            problems,
            types: PhantomData,
        }
    }

    /// The step's name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The step as the definition will hold it (its `depends_on` and `input` are set when
    /// it is put in a chain).
    pub fn definition(&self) -> &StepDef {
        &self.def
    }

    /// Retries the step by `policy` (temporary errors only, as for YAML steps).
    pub fn retry(mut self, policy: RetrySpec) -> Self {
        self.def.retry = Some(policy);
        self
    }

    /// Fails an attempt that takes longer than `limit`.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.def.timeout = Some(limit);
        self
    }

    /// Runs the step only when `condition` holds: a MiniJinja expression over `${params..}`
    /// and `${steps..}` references (`${params.tier} == "gold"`). A skipped step has no
    /// output, so the steps after it are skipped too.
    pub fn when(mut self, condition: impl Into<String>) -> Self {
        self.def.when = Some(condition.into());
        self
    }

    /// What the step's failure does to the run: fail it (the default), continue, or run a
    /// handler declared with [`WorkflowBuilder::failure_handler`], then fail.
    pub fn on_failure(mut self, policy: OnFailure) -> Self {
        self.def.on_failure = policy;
        self
    }

    /// Undoes the step, when the run fails after it succeeded, with `compensation`, which
    /// receives the step's output.
    pub fn compensate(mut self, compensation: TypedCompensation<Out>) -> Self {
        self.problems.extend(compensation.problems);
        self.def.compensate = Some(compensation.def);
        self
    }
}

impl<In> Step<In, Payload> {
    /// A step that calls `action` of `plugin` by name with a JSON `config`, as a YAML step
    /// does. It accepts any input and gives a [`Payload`]; nothing about it is typed.
    pub fn dynamic(
        name: impl Into<String>,
        plugin: impl Into<String>,
        action: impl Into<String>,
        config: Value,
    ) -> Self {
        Step {
            def: StepDef {
                name: name.into(),
                plugin: plugin.into(),
                action: action.into(),
                config,
                depends_on: Some(Vec::new()),
                ..StepDef::default()
            },
            problems: Vec::new(),
            types: PhantomData,
        }
    }
}

impl<Out> Step<Payload, Out> {
    /// Lets this step, whose input is [`Payload`] (any payload), follow a step of any output
    /// type: `chain.then(step.accept_any())`. The input type `In` is inferred from where the
    /// step goes.
    pub fn accept_any<In>(self) -> Step<In, Out> {
        Step {
            def: self.def,
            problems: self.problems,
            types: PhantomData,
        }
    }
}

impl<In, Out> Clone for Step<In, Out> {
    fn clone(&self) -> Self {
        Step {
            def: self.def.clone(),
            problems: self.problems.clone(),
            types: PhantomData,
        }
    }
}

impl<In, Out> fmt::Debug for Step<In, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step")
            .field("input", &std::any::type_name::<In>())
            .field("output", &std::any::type_name::<Out>())
            .field("def", &self.def)
            .finish()
    }
}

/// What undoes a step: an action that receives the step's output (`In`).
///
/// The engine runs compensations of completed steps, in reverse order of completion, when a
/// run fails.
#[must_use = "a compensation does nothing until given to Step::compensate"]
pub struct TypedCompensation<In> {
    def: Compensation,
    problems: Vec<String>,
    types: PhantomData<fn(In)>,
}

impl<In> TypedCompensation<In> {
    /// Calls action `C` of `plugin` with `config`; `C` must take what the step gives.
    pub fn typed<C>(plugin: impl Into<String>, config: C::Config) -> Self
    where
        C: Action<Input = In>,
    {
        let mut problems = Vec::new();
        let config = serde_json::to_value(config).unwrap_or_else(|e| {
            problems.push(format!(
                "the config of compensation `{}` does not serialize to JSON: {e}",
                C::NAME
            ));
            Value::Null
        });
        TypedCompensation {
            def: Compensation {
                plugin: plugin.into(),
                action: C::NAME.to_string(),
                config,
            },
            problems,
            types: PhantomData,
        }
    }

    /// Calls `action` of `plugin` by name with a JSON `config`; it accepts any output.
    pub fn dynamic(plugin: impl Into<String>, action: impl Into<String>, config: Value) -> Self {
        TypedCompensation {
            def: Compensation {
                plugin: plugin.into(),
                action: action.into(),
                config,
            },
            problems: Vec::new(),
            types: PhantomData,
        }
    }

    /// The compensation as the definition will hold it.
    pub fn definition(&self) -> &Compensation {
        &self.def
    }
}

impl TypedCompensation<Payload> {
    /// Lets this compensation, whose input is [`Payload`], undo a step of any output type.
    pub fn accept_any<In>(self) -> TypedCompensation<In> {
        TypedCompensation {
            def: self.def,
            problems: self.problems,
            types: PhantomData,
        }
    }
}

impl<In> Clone for TypedCompensation<In> {
    fn clone(&self) -> Self {
        TypedCompensation {
            def: self.def.clone(),
            problems: self.problems.clone(),
            types: PhantomData,
        }
    }
}

impl<In> fmt::Debug for TypedCompensation<In> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedCompensation")
            .field("input", &std::any::type_name::<In>())
            .field("def", &self.def)
            .finish()
    }
}

/// Steps as they are put together, untyped: the typed wrappers keep the types.
#[derive(Debug, Clone, Default)]
struct Parts {
    steps: Vec<StepDef>,
    /// Indexes of the steps that take the chain's input (its first step, or the first
    /// steps of parallel branches that open it).
    entries: Vec<usize>,
    /// The steps whose output is the chain's output: none for an empty chain, one, or one
    /// per arm after a branch (one per branch before a join).
    tails: Vec<String>,
    problems: Vec<String>,
}

impl Parts {
    fn of_step(mut def: StepDef, problems: Vec<String>) -> Self {
        def.depends_on = Some(Vec::new());
        let tail = def.name.clone();
        Parts {
            steps: vec![def],
            entries: vec![0],
            tails: vec![tail],
            problems,
        }
    }

    /// Appends `next`, its entries taking this chain's output; gives back `next`'s tails.
    fn append(&mut self, next: Parts) -> Vec<String> {
        let offset = self.steps.len();
        let Parts {
            mut steps,
            entries,
            tails,
            problems,
        } = next;
        for entry in entries {
            if let Some(step) = steps.get_mut(entry) {
                step.depends_on = Some(self.tails.clone());
            }
            if self.tails.is_empty() {
                self.entries.push(offset + entry);
            }
        }
        self.steps.extend(steps);
        self.problems.extend(problems);
        tails
    }
}

/// `${steps.NAME.output}`.
fn output_reference(step: &str) -> String {
    format!("${{steps.{step}.output}}")
}

/// Typed steps in sequence: a chain that takes `In` and gives `Out`.
///
/// A workflow's chain starts with [`Chain::start`] (or [`Chain::new`] then
/// [`Chain::then`]); the sub-chains of [`Chain::parallel`] and [`Chain::branch`] are chains
/// that take the output they branch from.
#[must_use = "a chain does nothing until it is built into a workflow"]
pub struct Chain<In, Out> {
    parts: Parts,
    types: PhantomData<fn(In) -> Out>,
}

impl<T> Chain<T, T> {
    /// An empty chain, which gives what it takes; add steps with [`Chain::then`]. Its type
    /// is inferred from the first step.
    pub fn new() -> Self {
        Chain {
            parts: Parts::default(),
            types: PhantomData,
        }
    }
}

impl<T> Default for Chain<T, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<In, Out> Chain<In, Out> {
    /// A chain of one step.
    pub fn start(step: Step<In, Out>) -> Self {
        Chain {
            parts: Parts::of_step(step.def, step.problems),
            types: PhantomData,
        }
    }

    /// Adds `step` after the chain; it receives the chain's output.
    ///
    /// `step` must take exactly `Out`: a `Step<Payload, _>` goes here as
    /// `step.accept_any()`, and a [`Step::dynamic`] goes anywhere.
    pub fn then<Next>(mut self, step: Step<Out, Next>) -> Chain<In, Next> {
        self.parts.tails = self.parts.append(Parts::of_step(step.def, step.problems));
        Chain {
            parts: self.parts,
            types: PhantomData,
        }
    }

    /// Runs `branches` (a tuple of 2 to 8 [`Step`]s or [`Chain`]s) in parallel, each on the
    /// chain's output; join them with [`Fork::join`] or [`Fork::join_named`].
    ///
    /// Each branch must take `Out`; the fork's type is the tuple of their outputs. A branch
    /// is named by its last step: that is the key [`Fork::join_named`] uses.
    pub fn parallel<B: ParallelBranches<Out>>(mut self, branches: B) -> Fork<In, B::Outputs> {
        let branches = branches.into_branches();
        let count = branches.len();
        let mut tails = Vec::new();
        for (i, branch) in branches.into_iter().enumerate() {
            if branch.parts.steps.is_empty() {
                self.parts.problems.push(format!(
                    "parallel branch {} of {count} has no steps; each branch needs one",
                    i + 1
                ));
                continue;
            }
            tails.extend(self.parts.append(branch.parts));
        }
        self.parts.tails = tails;
        Fork {
            parts: self.parts,
            types: PhantomData,
        }
    }

    /// Runs `then_arm` when `condition` holds and `else_arm` when it does not, each on the
    /// chain's output; both end in `Next`, the output of the workflow.
    ///
    /// `condition` is a MiniJinja expression over references, as for [`Step::when`]; it
    /// should read parameters and the outputs of steps before the branch. Nothing can
    /// follow a branch yet (see [`Branched`]); it ends the workflow.
    pub fn branch<Next>(
        mut self,
        condition: impl Into<String>,
        then_arm: impl IntoChain<Out, Output = Next>,
        else_arm: impl IntoChain<Out, Output = Next>,
    ) -> Branched<In, Next> {
        let condition = condition.into();
        let valid = match prepare_condition(&condition) {
            Ok(_) => true,
            Err(e) => {
                self.parts
                    .problems
                    .push(format!("the condition of a branch: {e}"));
                false
            }
        };
        let arms = [
            ("first", condition.clone(), then_arm.into_chain().parts),
            (
                "second",
                format!("not ({condition})"),
                else_arm.into_chain().parts,
            ),
        ];
        let mut tails = Vec::new();
        for (which, arm_condition, mut arm) in arms {
            if arm.steps.is_empty() {
                self.parts.problems.push(format!(
                    "the {which} arm of the branch on `{condition}` has no steps"
                ));
                continue;
            }
            if valid {
                for &entry in &arm.entries {
                    if let Some(step) = arm.steps.get_mut(entry) {
                        step.when = Some(match step.when.take() {
                            Some(own) => format!("({arm_condition}) and ({own})"),
                            None => arm_condition.clone(),
                        });
                    }
                }
            }
            tails.extend(self.parts.append(arm));
        }
        self.parts.tails = tails;
        Branched {
            chain: Chain {
                parts: self.parts,
                types: PhantomData,
            },
        }
    }

    /// The steps so far, as the definition will hold them.
    pub fn steps(&self) -> &[StepDef] {
        &self.parts.steps
    }

    fn erase<Any>(self) -> Chain<In, Any> {
        Chain {
            parts: self.parts,
            types: PhantomData,
        }
    }
}

impl<In, Out> Clone for Chain<In, Out> {
    fn clone(&self) -> Self {
        Chain {
            parts: self.parts.clone(),
            types: PhantomData,
        }
    }
}

impl<In, Out> fmt::Debug for Chain<In, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("input", &std::any::type_name::<In>())
            .field("output", &std::any::type_name::<Out>())
            .field("steps", &self.parts.steps)
            .finish()
    }
}

/// Something that can be a sub-chain taking `In`: a [`Step`] or a [`Chain`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a branch that takes `{In}`",
    label = "a branch must be a `Step<{In}, _>` or a `Chain<{In}, _>`: it takes the output before it"
)]
pub trait IntoChain<In> {
    /// What the sub-chain gives.
    type Output;
    /// The sub-chain.
    fn into_chain(self) -> Chain<In, Self::Output>;
}

impl<In, Out> IntoChain<In> for Step<In, Out> {
    type Output = Out;
    fn into_chain(self) -> Chain<In, Out> {
        Chain::start(self)
    }
}

impl<In, Out> IntoChain<In> for Chain<In, Out> {
    type Output = Out;
    fn into_chain(self) -> Chain<In, Out> {
        self
    }
}

mod sealed {
    /// Keeps the builder's shape traits implemented only here, so that the output types
    /// they declare are the ones the steps give.
    pub trait Sealed {}
}

/// Parallel branches that all take `In`: a tuple of 2 to 8 [`IntoChain`]s (steps or
/// chains). `Outputs` is the tuple of their outputs.
#[diagnostic::on_unimplemented(
    message = "`{Self}` are not parallel branches that all take `{In}`",
    label = "each branch must be a `Step<{In}, _>` or a `Chain<{In}, _>`",
    note = "parallel branches are a tuple of 2 to 8 steps or chains, each taking the output of the step before the fork"
)]
pub trait ParallelBranches<In>: sealed::Sealed {
    /// The tuple of the branches' outputs, in order.
    type Outputs;
    /// The branches, in order, their output types set aside.
    #[doc(hidden)]
    fn into_branches(self) -> Vec<Chain<In, Payload>>;
}

macro_rules! parallel_branches {
    ($($branch:ident),+) => {
        impl<$($branch),+> sealed::Sealed for ($($branch,)+) {}

        impl<In, $($branch: IntoChain<In>),+> ParallelBranches<In> for ($($branch,)+) {
            type Outputs = ($($branch::Output,)+);

            #[allow(non_snake_case)]
            fn into_branches(self) -> Vec<Chain<In, Payload>> {
                let ($($branch,)+) = self;
                vec![$($branch.into_chain().erase()),+]
            }
        }
    };
}

parallel_branches!(B1, B2);
parallel_branches!(B1, B2, B3);
parallel_branches!(B1, B2, B3, B4);
parallel_branches!(B1, B2, B3, B4, B5);
parallel_branches!(B1, B2, B3, B4, B5, B6);
parallel_branches!(B1, B2, B3, B4, B5, B6, B7);
parallel_branches!(B1, B2, B3, B4, B5, B6, B7, B8);

/// The input type of a join step that receives the branch outputs as a JSON object keyed by
/// branch name (the name of each branch's last step), such as a serde struct with one field
/// per branch.
///
/// ```
/// # use schemars::JsonSchema;
/// # use serde::{Deserialize, Serialize};
/// # use kernelize_workflow::builder::NamedJoin;
/// # #[derive(Serialize, Deserialize, JsonSchema)] struct Totals { sum: f64 }
/// # #[derive(Serialize, Deserialize, JsonSchema)] struct Count { n: u64 }
/// #[derive(Serialize, Deserialize, JsonSchema)]
/// struct Summary { totals: Totals, count: Count }
///
/// impl NamedJoin for Summary {
///     type Branches = (Totals, Count);
///     const FIELDS: &'static [&'static str] = &["totals", "count"];
/// }
/// ```
///
/// The compiler checks `Branches` against the branch outputs; building checks `FIELDS`
/// against the branch names (and against the type's JSON Schema, when it lists
/// properties). That each field has the type `Branches` gives it at that position is this
/// impl's promise: a broken one fails the join step when it decodes its input.
pub trait NamedJoin: PayloadType {
    /// The branch outputs it holds, as a tuple in branch order.
    type Branches;
    /// Its JSON field names: the branch names, in branch order.
    const FIELDS: &'static [&'static str];
}

/// A chain that ends in parallel branches: it waits for a join step, which receives every
/// branch output (`Outs`, a tuple).
#[must_use = "parallel branches need a join step"]
pub struct Fork<In, Outs> {
    parts: Parts,
    types: PhantomData<fn(In) -> Outs>,
}

impl<In, Outs> Fork<In, Outs> {
    /// Joins the branches with `step`, which receives their outputs as one tuple, in branch
    /// order (a JSON list of `${steps.BRANCH.output}` references in the definition).
    ///
    /// The step's input must be exactly `Outs`: a tuple of serde types, so an action
    /// declaring `type Input = (Totals, Count)`. Branches giving [`kernelize_core::Records`]
    /// or [`kernelize_core::Blob`] can only be joined by a `Payload` step (`accept_any`) or
    /// a dynamic one, which receive the JSON list.
    pub fn join<Next>(self, step: Step<Outs, Next>) -> Chain<In, Next> {
        let input = Value::Array(
            self.parts
                .tails
                .iter()
                .map(|tail| Value::String(output_reference(tail)))
                .collect(),
        );
        self.join_with(step.def, step.problems, input)
    }

    /// Joins the branches with `step`, which receives their outputs as a JSON object keyed
    /// by branch name (`{"totals": "${steps.totals.output}", ...}` in the definition).
    ///
    /// The compiler checks that the step's input type declares `Outs` as its
    /// [`NamedJoin::Branches`]; building checks its [`NamedJoin::FIELDS`] against the
    /// branch names.
    pub fn join_named<J, Next>(mut self, step: Step<J, Next>) -> Chain<In, Next>
    where
        J: NamedJoin<Branches = Outs>,
    {
        let type_name = std::any::type_name::<J>();
        let tails = &self.parts.tails;
        if J::FIELDS != tails.as_slice() {
            self.parts.problems.push(format!(
                "join step `{}` takes `{type_name}`, whose NamedJoin::FIELDS are [{}]; they \
                 must be the branch names (their last steps), in order: [{}]",
                step.def.name,
                J::FIELDS.join(", "),
                tails.join(", ")
            ));
        }
        let schema = J::descriptor().schema;
        if let Some(properties) = schema
            .as_ref()
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
        {
            for field in J::FIELDS {
                if !properties.contains_key(*field) {
                    self.parts.problems.push(format!(
                        "join step `{}` takes `{type_name}`, which lists `{field}` in \
                         NamedJoin::FIELDS but has no such field",
                        step.def.name
                    ));
                }
            }
        }
        let input = Value::Object(
            tails
                .iter()
                .map(|tail| (tail.clone(), Value::String(output_reference(tail))))
                .collect(),
        );
        self.join_with(step.def, step.problems, input)
    }

    /// The branch names (their last steps), in order.
    pub fn branch_names(&self) -> &[String] {
        &self.parts.tails
    }

    fn join_with<Next>(
        mut self,
        mut def: StepDef,
        problems: Vec<String>,
        input: Value,
    ) -> Chain<In, Next> {
        def.input = Some(input);
        self.parts.tails = self.parts.append(Parts::of_step(def, problems));
        Chain {
            parts: self.parts,
            types: PhantomData,
        }
    }
}

impl<In, Outs> fmt::Debug for Fork<In, Outs> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fork")
            .field("input", &std::any::type_name::<In>())
            .field("outputs", &std::any::type_name::<Outs>())
            .field("steps", &self.parts.steps)
            .finish()
    }
}

/// A chain that ends in a conditional branch ([`Chain::branch`]); its output is that of
/// the arm that ran.
///
/// It can only be built into a workflow: the engine passes a step the output of its single
/// dependency, or an `input:` of references that must all have succeeded, so no step can
/// yet take "the output of whichever arm ran". The workflow's output is read from the arm
/// that ran ([`TypedWorkflow::output_steps`]).
#[must_use = "a branched chain does nothing until it is built into a workflow"]
pub struct Branched<In, Out> {
    chain: Chain<In, Out>,
}

impl<In, Out> Branched<In, Out> {
    /// The steps, as the definition will hold them.
    pub fn steps(&self) -> &[StepDef] {
        self.chain.steps()
    }
}

impl<In, Out> fmt::Debug for Branched<In, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Branched")
            .field("input", &std::any::type_name::<In>())
            .field("output", &std::any::type_name::<Out>())
            .field("steps", &self.chain.parts.steps)
            .finish()
    }
}

/// Typed steps a workflow can be built from: a [`Chain`] or a [`Branched`] chain that takes
/// `()` (a run starts with no input).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be built into a workflow",
    label = "a workflow is built from a `Chain<(), _>` or a `Branched<(), _>`",
    note = "a run starts with no input, so the first step must take `()` (or be a `Payload` step made to `accept_any`); a `Fork` needs its join step first"
)]
pub trait WorkflowSteps: sealed::Sealed {
    /// The output of the workflow.
    type Output;
    /// The chain.
    #[doc(hidden)]
    fn into_steps(self) -> Chain<(), Self::Output>;
}

impl<Out> sealed::Sealed for Chain<(), Out> {}

impl<Out> WorkflowSteps for Chain<(), Out> {
    type Output = Out;
    fn into_steps(self) -> Chain<(), Out> {
        self
    }
}

impl<Out> sealed::Sealed for Branched<(), Out> {}

impl<Out> WorkflowSteps for Branched<(), Out> {
    type Output = Out;
    fn into_steps(self) -> Chain<(), Out> {
        self.chain
    }
}

/// The workflow-level settings of a typed workflow, and [`WorkflowBuilder::build`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until built"]
pub struct WorkflowBuilder {
    name: String,
    def: WorkflowDef,
    plugins: BTreeMap<String, PluginInstance>,
    handlers: Vec<StepDef>,
    problems: Vec<String>,
}

impl WorkflowBuilder {
    /// A workflow called `name` (the name runs and reports use).
    pub fn new(name: impl Into<String>) -> Self {
        WorkflowBuilder {
            name: name.into(),
            def: WorkflowDef::default(),
            plugins: BTreeMap::new(),
            handlers: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// Says what the workflow is for.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.def.description = Some(text.into());
        self
    }

    /// Declares parameter `name` with a default; [`RunOptions::params`] overrides it, and
    /// steps read it as `${params.NAME}`.
    pub fn param(mut self, name: impl Into<String>, default: impl Into<Value>) -> Self {
        self.def.params.insert(name.into(), default.into());
        self
    }

    /// Runs at most `limit` steps at once (8 when not set).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.def.concurrency = Some(limit);
        self
    }

    /// Gives the whole run a deadline.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.def.timeout = Some(limit);
        self
    }

    /// Adds a trigger (a schedule or a webhook), for hosts that start workflows.
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.def.triggers.push(trigger);
        self
    }

    /// Declares plugin instance `name` (settings, permissions, limits); steps name it as
    /// their plugin.
    pub fn plugin(mut self, name: impl Into<String>, instance: PluginInstance) -> Self {
        self.plugins.insert(name.into(), instance);
        self
    }

    /// Declares `step` as a failure handler: it runs only when a step naming it in
    /// [`Step::on_failure`] (`OnFailure::Handler(NAME)`) fails, with no input.
    pub fn failure_handler<Out>(mut self, step: Step<(), Out>) -> Self {
        self.problems.extend(step.problems);
        self.handlers.push(step.def);
        self
    }

    /// The typed workflow of `steps`, or a `config_invalid` error naming every problem
    /// found (see the [module documentation](self) for what is checked).
    pub fn build<S: WorkflowSteps>(self, steps: S) -> Result<TypedWorkflow<S::Output>> {
        let parts = steps.into_steps().parts;
        let mut def = self.def;
        def.steps = parts.steps;
        let handler_names: BTreeSet<String> =
            self.handlers.iter().map(|h| h.name.clone()).collect();
        def.steps.extend(self.handlers);
        // The first step listed depends on nothing without saying so, as in YAML.
        if let Some(first) = def.steps.first_mut()
            && first.depends_on.as_ref().is_some_and(Vec::is_empty)
        {
            first.depends_on = None;
        }
        let mut problems = self.problems;
        problems.extend(parts.problems);
        problems.extend(check(&self.name, &def, &handler_names));
        if !problems.is_empty() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "typed workflow `{}` cannot be built: {}",
                    self.name,
                    problems.join("; ")
                ),
            ));
        }
        Ok(TypedWorkflow {
            name: self.name,
            def,
            plugins: self.plugins,
            output_steps: parts.tails,
            types: PhantomData,
        })
    }
}

/// Every problem of a built definition that needs no plugin to see.
fn check(name: &str, def: &WorkflowDef, handlers: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    if name.trim().is_empty() {
        problems.push("the workflow has an empty name".to_string());
    }
    if def.steps.is_empty() {
        problems.push("it has no steps".to_string());
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for step in &def.steps {
        *counts.entry(&step.name).or_default() += 1;
    }
    for (step, count) in &counts {
        if *count > 1 {
            problems.push(format!(
                "step name `{step}` is used by {count} steps; names must be unique in a workflow"
            ));
        }
    }
    for step in &def.steps {
        if !referable(&step.name) {
            problems.push(format!(
                "step name `{}` cannot be referred to as `${{steps.NAME.output}}`; use \
                 ASCII letters, digits, `_` and `-`",
                step.name
            ));
        }
        let mut references = Vec::new();
        if let Some(when) = &step.when {
            match prepare_condition(when) {
                Ok(condition) => references.extend(condition.references),
                Err(e) => problems.push(format!("step `{}`: {e}", step.name)),
            }
        }
        let configs = [
            ("config", Some(&step.config)),
            (
                "compensate config",
                step.compensate.as_ref().map(|c| &c.config),
            ),
        ];
        for (what, value) in configs {
            match value.map(references_in) {
                Some(Ok(found)) => references.extend(found.into_iter().map(|(_, r)| r)),
                Some(Err((pointer, e))) => {
                    problems.push(format!("step `{}`: {what} at `{pointer}`: {e}", step.name));
                }
                None => {}
            }
        }
        for reference in references {
            match &reference {
                Reference::Param(param) if !def.params.contains_key(param) => {
                    problems.push(format!(
                        "step `{}` refers to `{reference}`, a parameter the workflow does not \
                         declare (declare it with WorkflowBuilder::param)",
                        step.name
                    ));
                }
                Reference::StepOutput { step: other, .. } | Reference::StepStatus(other)
                    if !counts.contains_key(other.as_str()) =>
                {
                    problems.push(format!(
                        "step `{}` refers to `{reference}`, but there is no step `{other}`",
                        step.name
                    ));
                }
                _ => {}
            }
        }
        if let OnFailure::Handler(handler) = &step.on_failure
            && !handlers.contains(handler)
        {
            problems.push(format!(
                "step `{}` names `{handler}` as its failure handler, which is not declared \
                 with WorkflowBuilder::failure_handler",
                step.name
            ));
        }
    }
    for handler in handlers {
        let named = def
            .steps
            .iter()
            .any(|s| matches!(&s.on_failure, OnFailure::Handler(h) if h == handler));
        if !named {
            problems.push(format!(
                "failure handler `{handler}` is not named by any step's on_failure, so it \
                 would run as an ordinary step"
            ));
        }
    }
    problems
}

/// Whether `${steps.NAME.output}` can refer to a step called `name`.
fn referable(name: &str) -> bool {
    matches!(
        parse_template(&output_reference(name)).as_deref(),
        Ok([Segment::Ref(Reference::StepOutput { step, path })]) if step == name && path.is_empty()
    )
}

/// A workflow built from typed steps: its definition, and the type of its final output.
///
/// It runs through [`Engine::run`] like a YAML workflow; [`TypedWorkflow::run`] also
/// decodes the final output as `Out`.
pub struct TypedWorkflow<Out> {
    name: String,
    def: WorkflowDef,
    plugins: BTreeMap<String, PluginInstance>,
    output_steps: Vec<String>,
    types: PhantomData<fn() -> Out>,
}

impl<Out> TypedWorkflow<Out> {
    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The definition, as a YAML file would give it.
    pub fn definition(&self) -> &WorkflowDef {
        &self.def
    }

    /// The plugin instances declared with [`WorkflowBuilder::plugin`].
    pub fn plugins(&self) -> &BTreeMap<String, PluginInstance> {
        &self.plugins
    }

    /// The steps whose output is the workflow's output: the last step, or the last step of
    /// each arm of a final [`Chain::branch`] (the one that ran gives the output).
    pub fn output_steps(&self) -> &[String] {
        &self.output_steps
    }

    /// A workflow file holding this workflow and its plugin instances, for
    /// [`Engine::run`] or for writing out.
    pub fn to_file(&self) -> WorkflowFile {
        WorkflowFile {
            plugins: self.plugins.clone(),
            workflows: BTreeMap::from([(self.name.clone(), self.def.clone())]),
            pipelines: BTreeMap::new(),
        }
    }

    /// The workflow file and the workflow's name in it.
    pub fn into_parts(self) -> (WorkflowFile, String) {
        let file = WorkflowFile {
            plugins: self.plugins,
            workflows: BTreeMap::from([(self.name.clone(), self.def)]),
            pipelines: BTreeMap::new(),
        };
        (file, self.name)
    }

    /// Checks the workflow against the plugins of `catalog` (a [`kernelize_core::PluginManager`]
    /// for one) with the validator YAML files go through: plugins and actions exist, configs
    /// fit the actions' schemas, references are to steps that run first.
    ///
    /// Diagnostics point into the workflow's pretty-printed JSON
    /// (`serde_json::to_string_pretty(&workflow.to_file())`); their path names the node.
    pub fn validate(&self, catalog: &dyn Catalog) -> std::result::Result<(), Diagnostics> {
        let source = format!("typed workflow {}", self.name);
        let text = serde_json::to_string_pretty(&self.to_file()).map_err(|e| {
            Diagnostics::from(Diagnostic::new(
                &source,
                Position::START,
                "",
                format!("the definition does not serialize: {e}"),
            ))
        })?;
        let loaded = parse(&source, &text)?;
        validate(&loaded, catalog)
    }
}

impl<Out: PayloadType> TypedWorkflow<Out> {
    /// Runs the workflow with [`Engine::run`] and decodes the final output as `Out`.
    ///
    /// As with [`Engine::run`], a failed run is a report, not an `Err`; `Err` means the run
    /// could not start, or the final step's output is not an `Out` (its plugin broke its
    /// action's contract).
    pub async fn run(&self, engine: &Engine, options: RunOptions) -> Result<TypedReport<Out>> {
        let report = engine.run(&self.to_file(), &self.name, options).await?;
        let produced = self.output_steps.iter().find_map(|name| {
            let succeeded = report
                .step(name)
                .is_some_and(|s| s.status == StepStatus::Succeeded);
            report
                .outputs
                .get(name)
                .filter(|_| succeeded)
                .map(|p| (name, p))
        });
        let output = match produced {
            None => None,
            Some((name, payload)) => Some(Out::from_payload(payload.clone()).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the output of final step `{name}` is not a `{}`: {}",
                        std::any::type_name::<Out>(),
                        e.message()
                    ),
                )
                .with_context("workflow", &self.name)
                .with_context("run", &report.id)
            })?),
        };
        Ok(TypedReport {
            report,
            output,
            output_steps: self.output_steps.clone(),
        })
    }
}

impl<Out> Clone for TypedWorkflow<Out> {
    fn clone(&self) -> Self {
        TypedWorkflow {
            name: self.name.clone(),
            def: self.def.clone(),
            plugins: self.plugins.clone(),
            output_steps: self.output_steps.clone(),
            types: PhantomData,
        }
    }
}

impl<Out> fmt::Debug for TypedWorkflow<Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedWorkflow")
            .field("name", &self.name)
            .field("output", &std::any::type_name::<Out>())
            .field("output_steps", &self.output_steps)
            .field("def", &self.def)
            .finish()
    }
}

/// What a run of a [`TypedWorkflow`] came to: the engine's report and the typed output.
#[derive(Debug, Clone)]
pub struct TypedReport<Out> {
    /// The engine's report: status, and each step's status, attempts and error.
    pub report: RunReport,
    /// The final step's output, when it succeeded; `None` when the run failed or the final
    /// step was skipped (a condition was false).
    pub output: Option<Out>,
    output_steps: Vec<String>,
}

impl<Out> TypedReport<Out> {
    /// How the run ended.
    pub fn status(&self) -> RunStatus {
        self.report.status
    }

    /// The output, or an error saying why there is none: the step that failed the run and
    /// its error, or that the final step did not run.
    pub fn into_output(self) -> Result<Out> {
        if let Some(output) = self.output {
            return Ok(output);
        }
        let report = &self.report;
        let run = format!("run {} of workflow `{}`", report.id, report.workflow);
        let failed = report
            .steps
            .iter()
            .find(|s| matches!(s.status, StepStatus::Failed | StepStatus::Cancelled));
        let message = match (report.status, failed) {
            (RunStatus::Succeeded, _) => {
                let how: Vec<String> = self
                    .output_steps
                    .iter()
                    .map(|name| {
                        let status = report.step(name).map_or("absent", |s| s.status.as_str());
                        format!("`{name}` {status}")
                    })
                    .collect();
                format!(
                    "{run} succeeded without an output: its final step did not run ({}); a \
                     `when` condition was false, or a step before it failed with \
                     `on_failure: continue`",
                    how.join(", ")
                )
            }
            (status, Some(step)) => format!(
                "{run} ended {}: step `{}` {}: {}",
                status.as_str(),
                step.name,
                step.status.as_str(),
                step.error.as_deref().unwrap_or("no error recorded")
            ),
            (status, None) => format!("{run} ended {}", status.as_str()),
        };
        let kind = if report.status == RunStatus::Cancelled {
            ErrorKind::Cancelled
        } else {
            ErrorKind::InvalidState
        };
        Err(Error::new(kind, message))
    }
}
