//! The steps of a workflow as a graph: names, `depends_on`, cycles, and which steps are sure
//! to have finished before another starts.

use std::collections::{HashMap, VecDeque};

use super::{Checker, list};
use crate::definition::model::StepDef;

/// Who waits for whom in one workflow.
pub(super) struct StepGraph {
    /// Step name to the index of the first step of that name.
    pub(super) index: HashMap<String, usize>,
    /// For each step, the steps it waits for (its `depends_on`, or else the step listed
    /// before it), without unknown names or itself.
    deps: Vec<Vec<usize>>,
    /// For each step and each dependency, which `depends_on` entry named it (`None` for the
    /// implicit previous step).
    written_at: Vec<Vec<Option<usize>>>,
    /// Ancestors of each step, as bit sets, computed when first asked.
    ancestors: Vec<Option<Vec<u64>>>,
}

impl StepGraph {
    /// Whether step `ancestor` is sure to have finished before step `step` starts.
    pub(super) fn precedes(&mut self, ancestor: usize, step: usize) -> bool {
        let words = self.deps.len().div_ceil(64);
        if self.ancestors[step].is_none() {
            let mut seen = vec![0u64; words];
            let mut stack: Vec<usize> = self.deps[step].clone();
            while let Some(next) = stack.pop() {
                let (word, bit) = (next / 64, 1u64 << (next % 64));
                if seen[word] & bit == 0 {
                    seen[word] |= bit;
                    stack.extend(self.deps[next].iter().copied());
                }
            }
            self.ancestors[step] = Some(seen);
        }
        self.ancestors[step]
            .as_ref()
            .is_some_and(|seen| seen[ancestor / 64] & (1u64 << (ancestor % 64)) != 0)
    }

    /// Every cycle, one per strongly connected group of steps, as the path from its
    /// first-listed step back to itself.
    fn cycles(&self) -> Vec<Vec<usize>> {
        let n = self.deps.len();
        // Kosaraju, iteratively: finishing order on the graph, then groups on its reverse.
        let mut order = Vec::with_capacity(n);
        let mut visited = vec![false; n];
        for start in 0..n {
            if visited[start] {
                continue;
            }
            visited[start] = true;
            let mut stack = vec![(start, 0usize)];
            while let Some((node, edge)) = stack.pop() {
                if let Some(&next) = self.deps[node].get(edge) {
                    stack.push((node, edge + 1));
                    if !visited[next] {
                        visited[next] = true;
                        stack.push((next, 0));
                    }
                } else {
                    order.push(node);
                }
            }
        }
        let mut reverse = vec![Vec::new(); n];
        for (from, deps) in self.deps.iter().enumerate() {
            for &to in deps {
                reverse[to].push(from);
            }
        }
        let mut group = vec![usize::MAX; n];
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for &root in order.iter().rev() {
            if group[root] != usize::MAX {
                continue;
            }
            let id = groups.len();
            let mut members = vec![root];
            group[root] = id;
            let mut stack = vec![root];
            while let Some(node) = stack.pop() {
                for &next in &reverse[node] {
                    if group[next] == usize::MAX {
                        group[next] = id;
                        members.push(next);
                        stack.push(next);
                    }
                }
            }
            groups.push(members);
        }
        let mut cycles: Vec<Vec<usize>> = groups
            .into_iter()
            .filter(|members| members.len() > 1)
            .map(|members| {
                let start = members.iter().copied().min().unwrap_or(0);
                self.path_back(start, &group)
            })
            .collect();
        cycles.sort();
        cycles
    }

    /// The shortest path from `start` along dependencies within its group back to `start`.
    fn path_back(&self, start: usize, group: &[usize]) -> Vec<usize> {
        let mut came_from: HashMap<usize, usize> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            for &next in &self.deps[node] {
                if group[next] != group[start] {
                    continue;
                }
                if next == start {
                    let mut path = vec![start, node];
                    let mut at = node;
                    while at != start {
                        at = came_from.get(&at).copied().unwrap_or(start);
                        path.push(at);
                    }
                    // Built backwards from start; reverse so it reads start -> ... -> start.
                    path.reverse();
                    return path;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = came_from.entry(next) {
                    e.insert(node);
                    queue.push_back(next);
                }
            }
        }
        vec![start, start]
    }
}

impl Checker<'_> {
    /// Builds a workflow's step graph, reporting repeated names, `depends_on` entries that
    /// name no step (or the step itself), and cycles.
    pub(super) fn graph(&mut self, base: &str, workflow: &str, steps: &[StepDef]) -> StepGraph {
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, step) in steps.iter().enumerate() {
            if let Some(&first) = index.get(&step.name) {
                let first_at = self
                    .loaded
                    .position(&format!("{base}/steps/{first}/name"))
                    .map(|p| format!(" (line {})", p.line))
                    .unwrap_or_default();
                self.error(
                    &format!("{base}/steps/{i}/name"),
                    format!(
                        "duplicate step name `{}`: step {first}{first_at} has it too",
                        step.name
                    ),
                );
            } else {
                index.insert(step.name.clone(), i);
            }
        }
        let names = || list(steps.iter().map(|s| s.name.as_str()));
        let mut deps = Vec::with_capacity(steps.len());
        let mut written_at = Vec::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            let mut mine: Vec<usize> = Vec::new();
            let mut mine_at: Vec<Option<usize>> = Vec::new();
            match &step.depends_on {
                None if i > 0 => {
                    mine.push(i - 1);
                    mine_at.push(None);
                }
                None => {}
                Some(names_written) => {
                    for (j, dep) in names_written.iter().enumerate() {
                        let at = format!("{base}/steps/{i}/depends_on/{j}");
                        if dep == &step.name {
                            self.error(&at, format!("step `{dep}` depends on itself"));
                        } else if let Some(&d) = index.get(dep) {
                            if !mine.contains(&d) {
                                mine.push(d);
                                mine_at.push(Some(j));
                            }
                        } else {
                            self.error(
                                &at,
                                format!(
                                    "step `{}` depends on `{dep}`, which is not a step of \
                                     workflow `{workflow}`; steps: {}",
                                    step.name,
                                    names()
                                ),
                            );
                        }
                    }
                }
            }
            deps.push(mine);
            written_at.push(mine_at);
        }
        let graph = StepGraph {
            index,
            ancestors: vec![None; deps.len()],
            deps,
            written_at,
        };
        for cycle in graph.cycles() {
            let shown: Vec<&str> = cycle.iter().map(|&i| steps[i].name.as_str()).collect();
            // Report at the first `depends_on` entry of the cycle: every cycle has one, as
            // implicit dependencies only point back up the list.
            let at = cycle
                .windows(2)
                .find_map(|pair| {
                    let (from, to) = (pair[0], pair[1]);
                    let k = graph.deps[from].iter().position(|&d| d == to)?;
                    graph.written_at[from][k].map(|j| format!("{base}/steps/{from}/depends_on/{j}"))
                })
                .unwrap_or_else(|| format!("{base}/steps/{}", cycle[0]));
            self.error(
                &at,
                format!(
                    "steps depend on each other in a cycle: {} (`->` reads \"depends on\")",
                    shown.join(" -> ")
                ),
            );
        }
        graph
    }
}
