//! The process's supervision registry: restarts and last errors per actor kind, and the
//! live supervision tree the status API shows.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Restarts and last errors per actor kind, and the live supervision tree: shared by
/// every supervisor of the process with the status API and metrics.
#[derive(Clone, Default, Debug)]
pub struct RestartStats(Arc<Mutex<Registry>>);

#[derive(Default, Debug)]
struct Registry {
    kinds: BTreeMap<&'static str, KindStats>,
    /// Each running supervisor's children, by supervisor name.
    supervisors: BTreeMap<String, Vec<ChildEntry>>,
    /// Supervisors started by a plain actor (partition pipelines under the coordinator):
    /// supervisor name → the child name they hang under.
    attached: BTreeMap<String, String>,
}

/// Counters of one actor kind.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct KindStats {
    pub restarts: u64,
    pub failures: u64,
    pub last_error: Option<String>,
}

/// Whether a child is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    Running,
    /// Failed (or stopped with a failed sibling) and waiting for its restart.
    Restarting,
    /// Its supervisor gave up or is stopping.
    Stopped,
}

/// One supervised child as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChildEntry {
    pub name: String,
    pub kind: &'static str,
    pub state: ChildState,
    pub restarts: u64,
    pub last_error: Option<String>,
    /// When it last failed, milliseconds since the Unix epoch.
    pub last_failure_ms: Option<i64>,
}

/// A node of the supervision tree, for the status API: an actor and what runs under it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TreeNode {
    #[serde(flatten)]
    pub actor: ChildEntry,
    pub children: Vec<TreeNode>,
}

impl RestartStats {
    /// Restarts of actors of `kind` so far.
    pub fn restarts(&self, kind: &str) -> u64 {
        self.snapshot().get(kind).map_or(0, |k| k.restarts)
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, KindStats> {
        self.lock().kinds.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn update(&self, kind: &'static str, f: impl FnOnce(&mut KindStats)) {
        f(self.lock().kinds.entry(kind).or_default());
    }

    pub(super) fn register(&self, supervisor: &str, children: Vec<ChildEntry>) {
        self.lock()
            .supervisors
            .insert(supervisor.to_owned(), children);
    }

    pub(super) fn set_child(&self, supervisor: &str, child: &str, f: impl FnOnce(&mut ChildEntry)) {
        if let Some(entry) = self
            .lock()
            .supervisors
            .get_mut(supervisor)
            .and_then(|children| children.iter_mut().find(|c| c.name == child))
        {
            f(entry);
        }
    }

    /// Shows supervisor `supervisor` under the child named `under` (for supervisors that
    /// a plain actor starts, such as the coordinator's partition pipelines).
    pub fn attach(&self, supervisor: &str, under: &str) {
        self.lock()
            .attached
            .insert(supervisor.to_owned(), under.to_owned());
    }

    /// Forgets a supervisor that stopped.
    pub fn unregister(&self, supervisor: &str) {
        let mut registry = self.lock();
        registry.supervisors.remove(supervisor);
        registry.attached.remove(supervisor);
    }

    /// The tree under the supervisor named `root`, or `None` when it is not running.
    /// A child's subtree is the supervisor of the same name (a supervisor child, or the
    /// leader's duties) and any supervisors attached under it.
    pub fn tree(&self, root: &str) -> Option<TreeNode> {
        let registry = self.lock();
        registry.supervisors.get(root)?;
        let node = ChildEntry {
            name: root.to_owned(),
            kind: "supervisor",
            state: ChildState::Running,
            restarts: 0,
            last_error: None,
            last_failure_ms: None,
        };
        Some(TreeNode {
            children: subtree(&registry, root, 0),
            actor: node,
        })
    }

    /// Children that are not running, anywhere in the tree.
    pub fn not_running(&self) -> Vec<String> {
        self.lock()
            .supervisors
            .iter()
            .flat_map(|(supervisor, children)| {
                children
                    .iter()
                    .filter(|c| c.state != ChildState::Running)
                    .map(move |c| format!("{supervisor}/{} ({:?})", c.name, c.state))
            })
            .collect()
    }
}

fn subtree(registry: &Registry, supervisor: &str, depth: usize) -> Vec<TreeNode> {
    let Some(children) = registry.supervisors.get(supervisor) else {
        return Vec::new();
    };
    if depth > 8 {
        return Vec::new();
    }
    children
        .iter()
        .map(|child| {
            let mut nodes = if child.name != supervisor {
                subtree(registry, &child.name, depth + 1)
            } else {
                Vec::new()
            };
            for (attached, under) in &registry.attached {
                if under == &child.name && registry.supervisors.contains_key(attached) {
                    nodes.push(TreeNode {
                        actor: ChildEntry {
                            name: attached.clone(),
                            kind: "supervisor",
                            state: ChildState::Running,
                            restarts: 0,
                            last_error: None,
                            last_failure_ms: None,
                        },
                        children: subtree(registry, attached, depth + 1),
                    });
                }
            }
            TreeNode {
                actor: child.clone(),
                children: nodes,
            }
        })
        .collect()
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
