//! Planning: compare stack definitions with the deployed state and review
//! what would change through CloudFormation change sets.
//!
//! A stack whose hash tag ([`crate::provider::STACK_HASH_TAG`]) equals its
//! definition's [`StackDefinition::content_hash`] is a no-op, decided from
//! the one shared state read without any further call. Every other stack
//! gets a change set (`CREATE` or `UPDATE`), awaited with backoff and an
//! explicit timeout, whose resource changes the [`Plan`] records. The plan
//! is serializable: `apply` executes exactly the reviewed change sets.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, ExecutionStatus, Parameter, ResourceAttribute, Tag,
};
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};

use super::assets::{Delivery, TemplateStore};
use super::error::EngineError;
use super::events::{Event, EventSink};
use super::retained::{DestroyOptions, RetainedResource, inspect};
use super::state::{StackState, StateMap, is_in_progress, is_stable, read_state};
use crate::provider::{STACK_HASH_TAG, StackDefinition};
use crate::template::hex_sha256;

/// Version of the plan file format.
pub const PLAN_FORMAT: u32 = 1;

/// What the engine does with a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum ActionKind {
    /// Nothing to do.
    NoOp,
    /// Create the stack (a `CREATE` change set).
    Create,
    /// Update the stack (an `UPDATE` change set).
    Update,
    /// Delete the stack (destroy plans).
    Delete,
    /// The stack cannot be updated (`ROLLBACK_COMPLETE` after a failed
    /// create, `ROLLBACK_FAILED`, `DELETE_FAILED`): delete it, then create
    /// it.
    Recreate,
    /// The stack is in `UPDATE_ROLLBACK_FAILED`: continue the rollback
    /// (`ContinueUpdateRollback`), then update it.
    ResumeRollback,
}

impl ActionKind {
    /// Lower-case name, as shown in diffs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoOp => "no changes",
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Recreate => "delete and re-create",
            Self::ResumeRollback => "continue rollback, then update",
        }
    }

    /// The stable identifier (`noOp`, `create`, `update`, `delete`,
    /// `recreate`, `resumeRollback`), as in plan files and events.
    pub fn id(self) -> &'static str {
        match self {
            Self::NoOp => "noOp",
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Recreate => "recreate",
            Self::ResumeRollback => "resumeRollback",
        }
    }

    /// Every action, in a stable order.
    pub const ALL: [Self; 6] = [
        Self::NoOp,
        Self::Create,
        Self::Update,
        Self::Delete,
        Self::Recreate,
        Self::ResumeRollback,
    ];
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl std::str::FromStr for ActionKind {
    type Err = crate::spec::ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.id() == s)
            .ok_or_else(|| crate::spec::ParseEnumError {
                what: "action",
                value: s.to_owned(),
                allowed: Self::ALL.map(Self::id).join(", "),
            })
    }
}

/// What happens to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum ChangeAction {
    /// A new resource.
    Add,
    /// A changed resource.
    Modify,
    /// A removed resource.
    Remove,
    /// An imported resource.
    Import,
    /// Decided at execution (e.g. nested modules).
    Dynamic,
}

/// Whether a modification replaces the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Replacement {
    /// The resource is replaced.
    True,
    /// The resource may be replaced, depending on a value known at
    /// execution.
    Conditional,
    /// Updated in place.
    False,
}

/// One resource change of a change set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceChange {
    /// What happens.
    pub action: ChangeAction,
    /// Logical id.
    pub logical_id: String,
    /// Resource type.
    pub resource_type: String,
    /// Replacement, when CloudFormation says (modifications only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub replacement: Option<Replacement>,
    /// Names of the changed properties, when CloudFormation lists them.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub properties: Vec<String>,
    /// How the update replaces the resource's instances, from its
    /// `UpdatePolicy` (an Auto Scaling group's rolling or replacing
    /// update): a change set lists such a group as a plain modification.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rollout: Option<String>,
}

/// Properties of an Auto Scaling group whose change replaces its
/// instances under an update policy.
const INSTANCE_REPLACING_PROPERTIES: [&str; 4] = [
    "LaunchConfigurationName",
    "LaunchTemplate",
    "MixedInstancesPolicy",
    "VPCZoneIdentifier",
];

/// The [`ResourceChange::rollout`] of a modified Auto Scaling group under
/// `policy` (its template `UpdatePolicy`). `None` when the change set
/// names the changed properties and none of them replaces instances.
pub(crate) fn rollout(change: &ResourceChange, policy: &serde_json::Value) -> Option<String> {
    if change.action != ChangeAction::Modify
        || change.resource_type != "AWS::AutoScaling::AutoScalingGroup"
    {
        return None;
    }
    if !change.properties.is_empty()
        && !change
            .properties
            .iter()
            .any(|p| INSTANCE_REPLACING_PROPERTIES.contains(&p.as_str()))
    {
        return None;
    }
    if policy["AutoScalingReplacingUpdate"]["WillReplace"] == serde_json::Value::Bool(true) {
        return Some(
            "instances replaced: a new group, the old one removed once it is healthy".into(),
        );
    }
    let rolling = policy.get("AutoScalingRollingUpdate")?;
    let num = |k: &str| {
        rolling
            .get(k)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
    };
    let mut text = String::from("instances replaced by a rolling update");
    let batch = num("MaxBatchSize");
    let min = num("MinInstancesInService");
    match (batch, min) {
        (Some(b), Some(m)) => {
            let _ = write!(text, " ({b} at a time, at least {m} in service)");
        }
        (Some(b), None) => {
            let _ = write!(text, " ({b} at a time)");
        }
        (None, Some(m)) => {
            let _ = write!(text, " (at least {m} in service)");
        }
        (None, None) => {}
    }
    Some(text)
}

/// The state of a stack seen while planning; `apply` refuses to run when
/// it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observed {
    /// Stack id.
    pub stack_id: String,
    /// Status.
    pub status: String,
    /// Last update (or creation) time.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_updated: Option<String>,
    /// Hash tag.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hash: Option<String>,
}

impl From<&StackState> for Observed {
    fn from(s: &StackState) -> Self {
        Self {
            stack_id: s.stack_id.clone(),
            status: s.status.clone(),
            last_updated: s.last_updated.clone(),
            hash: s.hash.clone(),
        }
    }
}

/// What a stack is created from, kept in the plan for a
/// [`ActionKind::Recreate`] (its change set can only be made once the old
/// stack is deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackSource {
    /// Template JSON (compact: what is sent, inline or through the assets
    /// bucket, see [`TemplateStore`]).
    pub template_body: String,
    /// Parameters.
    pub parameters: BTreeMap<String, String>,
    /// Tags, the hash tag included.
    pub tags: BTreeMap<String, String>,
    /// Capabilities.
    pub capabilities: Vec<String>,
}

impl StackSource {
    /// The source of a definition (its hash tag added).
    pub fn of(def: &StackDefinition) -> Self {
        let mut tags = def.tags.clone();
        tags.insert(STACK_HASH_TAG.to_owned(), def.content_hash());
        Self {
            template_body: def.template.to_compact_json(),
            parameters: def.parameters.clone(),
            tags,
            capabilities: def.capabilities.clone(),
        }
    }
}

/// The plan for one stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStack {
    /// Stack name.
    pub name: String,
    /// What to do.
    pub action: ActionKind,
    /// Stacks that must be deployed first.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The definition's content hash (for a delete: the deployed hash tag,
    /// or empty).
    pub hash: String,
    /// The stack as seen when planning; `None`: it did not exist.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub observed: Option<Observed>,
    /// The reviewed change set's id (ARN).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub change_set_id: Option<String>,
    /// The stack id the change set belongs to (for a create: the new
    /// stack in `REVIEW_IN_PROGRESS`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub change_set_stack_id: Option<String>,
    /// Resource changes.
    #[serde(default)]
    pub changes: Vec<ResourceChange>,
    /// For a recreate: what to create after the delete. For a delete: the
    /// update to run first (the deployed template with what protects data
    /// turned off, see [`super::retained`]); its changes are `changes`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source: Option<StackSource>,
    /// For a delete: the resources the stack's template keeps (its
    /// `DeletionPolicy`), which stay when the stack is gone.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub kept: Vec<RetainedResource>,
    /// For a delete with `delete_data`: the resources the template would
    /// keep, deleted with the stack (buckets emptied first).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub deleted_data: Vec<RetainedResource>,
}

impl PlannedStack {
    /// A stack with nothing to do yet (`noOp`, no change set, no changes):
    /// what planning starts from before it decides.
    pub(crate) fn unchanged(
        name: String,
        depends_on: Vec<String>,
        hash: String,
        observed: Option<Observed>,
    ) -> Self {
        Self {
            name,
            action: ActionKind::NoOp,
            depends_on,
            hash,
            observed,
            change_set_id: None,
            change_set_stack_id: None,
            changes: Vec::new(),
            source: None,
            kept: Vec::new(),
            deleted_data: Vec::new(),
        }
    }
}

/// A reviewed plan for the stacks of one account/region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// [`PLAN_FORMAT`].
    pub format: u32,
    /// Target account.
    pub account: String,
    /// Target region.
    pub region: String,
    /// Stacks, in definition order.
    pub stacks: Vec<PlannedStack>,
    /// Hex SHA-256 over format, account, region and stacks.
    pub content_hash: String,
}

impl Plan {
    /// Build a plan and compute its content hash.
    pub fn new(account: String, region: String, stacks: Vec<PlannedStack>) -> Self {
        let mut plan = Self {
            format: PLAN_FORMAT,
            account,
            region,
            stacks,
            content_hash: String::new(),
        };
        plan.content_hash = plan.compute_hash();
        plan
    }

    fn compute_hash(&self) -> String {
        let body =
            serde_json::to_string(&(&self.format, &self.account, &self.region, &self.stacks))
                .unwrap_or_default();
        hex_sha256(body.as_bytes())
    }

    /// Whether nothing is to be done.
    pub fn is_noop(&self) -> bool {
        self.stacks.iter().all(|s| s.action == ActionKind::NoOp)
    }

    /// The plan as pretty JSON (a plan file).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Read a plan file, checking its format and content hash.
    pub fn from_json(text: &str) -> Result<Self, EngineError> {
        let plan: Self = serde_json::from_str(text).map_err(|e| EngineError::InvalidPlan {
            reason: format!("not a plan file: {e}"),
        })?;
        if plan.format != PLAN_FORMAT {
            return Err(EngineError::InvalidPlan {
                reason: format!(
                    "format is {}, this version reads format {PLAN_FORMAT}",
                    plan.format
                ),
            });
        }
        let expected = plan.compute_hash();
        if plan.content_hash != expected {
            return Err(EngineError::InvalidPlan {
                reason: format!(
                    "contentHash is {} but the content hashes to {expected}: the file was modified",
                    plan.content_hash
                ),
            });
        }
        Ok(plan)
    }

    /// A Terraform-like text of the plan: per stack its action, then per
    /// resource `+ create`, `~ update`, `-/+ replace`, `- delete`; with
    /// `color`, ANSI colors.
    pub fn render_diff(&self, color: bool) -> String {
        let paint = |code: &str, s: &str| {
            if color {
                format!("\x1b[{code}m{s}\x1b[0m")
            } else {
                s.to_owned()
            }
        };
        let mut out = String::new();
        let (mut add, mut change, mut destroy) = (0usize, 0usize, 0usize);
        for st in &self.stacks {
            let head = format!("stack {}: {}", st.name, st.action.as_str());
            let _ = writeln!(out, "{}", paint("1", &head));
            if st.action == ActionKind::Delete {
                let _ = writeln!(out, "  {} stack {}", paint("31", "-"), st.name);
                destroy += 1;
            }
            if st.action == ActionKind::ResumeRollback {
                let _ = writeln!(
                    out,
                    "  {} stack {}: ContinueUpdateRollback, then an update to the new template",
                    paint("33", "~"),
                    st.name
                );
                change += 1;
            }
            for c in &st.changes {
                let (sign, code, word) = match (c.action, c.replacement) {
                    (ChangeAction::Add | ChangeAction::Import, _) => ("+", "32", "create"),
                    (ChangeAction::Remove, _) => ("-", "31", "delete"),
                    (ChangeAction::Modify, Some(Replacement::True)) => ("-/+", "33", "replace"),
                    (ChangeAction::Modify, Some(Replacement::Conditional)) => {
                        ("~", "33", "update (may replace)")
                    }
                    (ChangeAction::Modify | ChangeAction::Dynamic, _) => ("~", "33", "update"),
                };
                match sign {
                    "+" => add += 1,
                    "-" => destroy += 1,
                    "-/+" => {
                        add += 1;
                        destroy += 1;
                    }
                    _ => change += 1,
                }
                let word = if st.action == ActionKind::Delete {
                    "update before the delete"
                } else {
                    word
                };
                let mut line = format!(
                    "  {} {} ({}) {word}",
                    paint(code, sign),
                    c.logical_id,
                    c.resource_type
                );
                if !c.properties.is_empty() {
                    let _ = write!(line, ": {}", c.properties.join(", "));
                }
                if let Some(r) = &c.rollout {
                    let _ = write!(line, "; {r}");
                }
                let _ = writeln!(out, "{line}");
            }
            for k in &st.kept {
                let what = if k.policy == "Snapshot" {
                    "kept as a final snapshot of"
                } else {
                    "kept:"
                };
                let _ = writeln!(
                    out,
                    "  {} {} ({}) {what} {}",
                    paint("36", "="),
                    k.logical_id,
                    k.resource_type,
                    k.physical_id
                );
            }
            for k in &st.deleted_data {
                let _ = writeln!(
                    out,
                    "  {} {} ({}) deleted with its data: {}",
                    paint("31", "-"),
                    k.logical_id,
                    k.resource_type,
                    k.physical_id
                );
            }
        }
        let _ = writeln!(
            out,
            "\nPlan: {add} to add, {change} to change, {destroy} to destroy."
        );
        out
    }
}

/// How long to wait and how often to poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay between polls.
    pub initial: Duration,
    /// Largest delay (the delay doubles up to it).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay after `d`.
    pub fn next(&self, d: Duration) -> Duration {
        (d * 2).min(self.max).max(self.initial)
    }
}

/// Options of [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    /// Change sets created at the same time (at least 1).
    pub concurrency: usize,
    /// How long one change set may take to become ready.
    pub change_set_timeout: Duration,
    /// How long to wait for stacks that have an operation running (for
    /// example left by an interrupted apply) before planning them.
    pub settle_timeout: Duration,
    /// Polling of `DescribeChangeSet` and of running stacks.
    pub poll: Backoff,
    /// How templates reach CloudFormation (default: inline only; the
    /// [`super::Engine`] sets the assets bucket of each account/region).
    pub templates: TemplateStore,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            change_set_timeout: Duration::from_mins(5),
            settle_timeout: Duration::from_mins(30),
            poll: Backoff::default(),
            templates: TemplateStore::inline_only(),
        }
    }
}

/// Whether a stack has an operation running that planning must wait for
/// (`REVIEW_IN_PROGRESS` is a stack waiting for its first change set: no
/// operation).
fn is_busy(st: &StackState) -> bool {
    is_in_progress(&st.status) && st.status != "REVIEW_IN_PROGRESS"
}

/// The named stacks of `state` with an operation running.
pub(crate) fn busy_stacks<'s>(names: &[&str], state: &'s StateMap) -> Vec<&'s StackState> {
    names
        .iter()
        .filter_map(|n| state.get(*n))
        .filter(|s| is_busy(s))
        .collect()
}

/// Read the state and, while any of the named stacks has an operation
/// running, wait (polling the whole account/region, one paginated read per
/// round) up to `opts.settle_timeout`.
pub(crate) async fn read_settled_state(
    names: &[&str],
    client: &Client,
    opts: &PlanOptions,
    events: EventSink<'_>,
) -> Result<StateMap, EngineError> {
    let started = Instant::now();
    let mut delay = opts.poll.initial;
    let mut reported = BTreeSet::new();
    loop {
        let state = read_state(client).await?;
        let busy = busy_stacks(names, &state);
        let Some(first) = busy.first() else {
            return Ok(state);
        };
        for st in &busy {
            if reported.insert((st.name.clone(), st.status.clone())) {
                events(&Event::Waiting {
                    stack: st.name.clone(),
                    status: st.status.clone(),
                });
            }
        }
        if started.elapsed() >= opts.settle_timeout {
            return Err(EngineError::Timeout {
                what: format!(
                    "stack `{}` ({}) to finish its running operation",
                    first.name, first.status
                ),
                after: opts.settle_timeout,
            });
        }
        tokio::time::sleep(delay).await;
        delay = opts.poll.next(delay);
    }
}

/// Check that the definitions share one account/region, have unique names
/// and acyclic dependencies; return the account and region.
pub(crate) fn validate(defs: &[StackDefinition]) -> Result<(String, String), EngineError> {
    let Some(first) = defs.first() else {
        return Ok((String::new(), String::new()));
    };
    let mut names = BTreeSet::new();
    for (i, d) in defs.iter().enumerate() {
        if d.account != first.account || d.region != first.region {
            return Err(EngineError::InvalidInput {
                path: format!("stacks[{i}]"),
                problem: format!(
                    "stack `{}` targets {}/{}, but the plan is for {}/{}: plan each account/region separately",
                    d.name, d.account, d.region, first.account, first.region
                ),
            });
        }
        if !names.insert(d.name.as_str()) {
            return Err(EngineError::InvalidInput {
                path: format!("stacks[{i}].name"),
                problem: format!(
                    "stack name `{}` appears twice; names must be unique",
                    d.name
                ),
            });
        }
    }
    let deps: BTreeMap<&str, Vec<&str>> = defs
        .iter()
        .map(|d| {
            (
                d.name.as_str(),
                d.depends_on.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    if let Some(stack) = find_cycle(&deps) {
        let i = defs.iter().position(|d| d.name == stack).unwrap_or(0);
        return Err(EngineError::InvalidInput {
            path: format!("stacks[{i}].depends_on"),
            problem: format!("stack `{stack}` depends on itself through its dependencies"),
        });
    }
    Ok((first.account.clone(), first.region.clone()))
}

/// A stack on a dependency cycle, if any (dependencies outside the map
/// are ignored).
pub(crate) fn find_cycle<'a>(deps: &BTreeMap<&'a str, Vec<&'a str>>) -> Option<&'a str> {
    // Kahn's algorithm: what cannot be ordered is on (or behind) a cycle.
    let mut remaining: BTreeMap<&str, usize> = deps
        .iter()
        .map(|(n, ds)| (*n, ds.iter().filter(|d| deps.contains_key(*d)).count()))
        .collect();
    let mut done = BTreeSet::new();
    loop {
        let ready: Vec<&str> = remaining
            .iter()
            .filter(|(_, c)| **c == 0)
            .map(|(n, _)| *n)
            .collect();
        if ready.is_empty() {
            break;
        }
        for n in ready {
            remaining.remove(n);
            done.insert(n);
        }
        for (n, c) in &mut remaining {
            *c = deps.get(n).map_or(0, |ds| {
                ds.iter()
                    .filter(|d| deps.contains_key(*d) && !done.contains(*d))
                    .count()
            });
        }
    }
    remaining.keys().next().copied()
}

/// Plan the given stacks (one account/region) against the client's
/// account/region.
pub async fn plan(
    defs: &[StackDefinition],
    client: &Client,
    opts: &PlanOptions,
    events: EventSink<'_>,
) -> Result<Plan, EngineError> {
    let (account, region) = validate(defs)?;
    let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    let state = read_settled_state(&names, client, opts, events).await?;
    plan_with_state(defs, &state, client, opts, events)
        .await
        .map(|stacks| Plan::new(account, region, stacks))
}

/// What planning decides for a stack before any change set.
enum Decision {
    Done(Box<PlannedStack>),
    ChangeSet(ChangeSetType),
}

fn decide(def: &StackDefinition, st: Option<&StackState>) -> Result<Decision, EngineError> {
    let hash = def.content_hash();
    let base = PlannedStack::unchanged(
        def.name.clone(),
        def.depends_on.clone(),
        hash,
        st.map(Observed::from),
    );
    let Some(st) = st else {
        return Ok(Decision::ChangeSet(ChangeSetType::Create));
    };
    if st.status == "REVIEW_IN_PROGRESS" {
        return Ok(Decision::ChangeSet(ChangeSetType::Create));
    }
    if matches!(
        st.status.as_str(),
        "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "DELETE_FAILED"
    ) {
        let changes = def
            .template
            .resources
            .iter()
            .map(|(id, r)| ResourceChange {
                action: ChangeAction::Add,
                logical_id: id.clone(),
                resource_type: r.kind.clone(),
                replacement: None,
                properties: Vec::new(),
                rollout: None,
            })
            .collect();
        return Ok(Decision::Done(Box::new(PlannedStack {
            action: ActionKind::Recreate,
            changes,
            source: Some(StackSource::of(def)),
            ..base
        })));
    }
    if st.status == "UPDATE_ROLLBACK_FAILED" {
        // No change set can be made before the rollback completes; the
        // update's changes are reviewed by CloudFormation then.
        return Ok(Decision::Done(Box::new(PlannedStack {
            action: ActionKind::ResumeRollback,
            source: Some(StackSource::of(def)),
            ..base
        })));
    }
    if st.in_sync_with_hash(&base.hash) {
        return Ok(Decision::Done(Box::new(base)));
    }
    if is_stable(&st.status) {
        return Ok(Decision::ChangeSet(ChangeSetType::Update));
    }
    Err(EngineError::StackNotReady {
        stack: def.name.clone(),
        status: st.status.clone(),
        hint: if is_in_progress(&st.status) {
            "an operation is running; wait for it to finish and plan again"
        } else {
            "the stack needs manual intervention before it can be planned"
        },
    })
}

/// What planning decides for each stack from the deployed state alone,
/// before any change set: `noOp` (deployed and in sync), `create` or
/// `update` (a change set would be made), `recreate`, `resumeRollback`.
/// A stack in a state that cannot be planned is an error, as in [`plan`].
/// No AWS call: the state comes from one [`read_state`].
pub fn decisions(
    defs: &[StackDefinition],
    state: &StateMap,
) -> Result<Vec<ActionKind>, EngineError> {
    defs.iter()
        .map(|d| {
            Ok(match decide(d, state.get(&d.name))? {
                Decision::Done(ps) => ps.action,
                Decision::ChangeSet(ChangeSetType::Create) => ActionKind::Create,
                Decision::ChangeSet(_) => ActionKind::Update,
            })
        })
        .collect()
}

/// Plan against an already read state.
pub(crate) async fn plan_with_state(
    defs: &[StackDefinition],
    state: &StateMap,
    client: &Client,
    opts: &PlanOptions,
    events: EventSink<'_>,
) -> Result<Vec<PlannedStack>, EngineError> {
    let mut decided = Vec::with_capacity(defs.len());
    for def in defs {
        decided.push((def, decide(def, state.get(&def.name))?));
    }
    // Futures made from a named `async fn` (not an async closure) keep
    // the whole plan future `Send`, so bindings can spawn it.
    let futures: Vec<_> = decided
        .into_iter()
        .map(|(def, decision)| plan_one(def, decision, state, client, opts, events))
        .collect();
    let planned: Vec<PlannedStack> = futures_util::stream::iter(futures)
        .buffered(opts.concurrency.max(1))
        .try_collect()
        .await?;
    Ok(planned)
}

/// Stacks decided against an already read state one batch (provider) at
/// a time, so a large plan never holds every template: a stack that needs
/// no change set keeps only its name, provider and dependencies (its
/// template is dropped once hashed); the rest wait for
/// [`plan_triaged`] with their templates.
#[derive(Debug, Default)]
pub(crate) struct Triage {
    /// Every stack in definition order, templates dropped.
    pub light: Vec<StackDefinition>,
    /// Per stack of `light`: the planned stack when decided without a
    /// change set, `None` when it is in `full`.
    pub done: Vec<Option<PlannedStack>>,
    /// Stacks that need a change set, in definition order, whole.
    pub full: Vec<StackDefinition>,
    /// Stacks with an operation running (nothing decided for them).
    pub busy: Vec<String>,
}

impl Triage {
    /// Decide `batch` against `state`.
    pub(crate) fn add(
        &mut self,
        batch: Vec<StackDefinition>,
        state: &StateMap,
        events: EventSink<'_>,
    ) -> Result<(), EngineError> {
        for def in batch {
            let st = state.get(&def.name);
            let light = def.clone_without_template();
            if st.is_some_and(is_busy) {
                self.busy.push(def.name.clone());
                self.done.push(None);
                self.full.push(def);
            } else {
                match decide(&def, st)? {
                    Decision::Done(ps) => {
                        events(&Event::Planned {
                            stack: ps.name.clone(),
                            action: ps.action,
                            changes: ps.changes.len(),
                        });
                        self.done.push(Some(*ps));
                    }
                    Decision::ChangeSet(_) => {
                        self.done.push(None);
                        self.full.push(def);
                    }
                }
            }
            self.light.push(light);
        }
        Ok(())
    }
}

/// Finish a [`Triage`]: change sets for the stacks that need them (as
/// [`plan_with_state`]), merged back in definition order.
pub(crate) async fn plan_triaged(
    triage: Triage,
    state: &StateMap,
    client: &Client,
    opts: &PlanOptions,
    events: EventSink<'_>,
) -> Result<Vec<PlannedStack>, EngineError> {
    let changed = plan_with_state(&triage.full, state, client, opts, events).await?;
    let mut changed = changed.into_iter();
    let mut out = Vec::with_capacity(triage.done.len());
    for (done, def) in triage.done.into_iter().zip(&triage.light) {
        match done.or_else(|| changed.next()) {
            Some(ps) => out.push(ps),
            None => {
                return Err(EngineError::InvalidInput {
                    path: def.name.clone(),
                    problem: "no plan for this stack (internal error)".into(),
                });
            }
        }
    }
    Ok(out)
}

async fn plan_one(
    def: &StackDefinition,
    decision: Decision,
    state: &StateMap,
    client: &Client,
    opts: &PlanOptions,
    events: EventSink<'_>,
) -> Result<PlannedStack, EngineError> {
    let ps = match decision {
        Decision::Done(ps) => *ps,
        Decision::ChangeSet(kind) => {
            plan_change_set(def, state.get(&def.name), kind, client, opts, events).await?
        }
    };
    events(&Event::Planned {
        stack: ps.name.clone(),
        action: ps.action,
        changes: ps.changes.len(),
    });
    Ok(ps)
}

async fn plan_change_set(
    def: &StackDefinition,
    st: Option<&StackState>,
    kind: ChangeSetType,
    client: &Client,
    opts: &PlanOptions,
    events: EventSink<'_>,
) -> Result<PlannedStack, EngineError> {
    let source = StackSource::of(def);
    let hash = def.content_hash();
    // A stack in REVIEW_IN_PROGRESS holds no resources, only the change
    // sets of an earlier plan that was never applied (or of an apply
    // killed before it executed, or of a run planning right now). When it
    // holds our change set for exactly this content, reuse it: a re-run
    // after a crash, or a concurrent run, then plans the same change set
    // instead of making another. Otherwise remove the stack, so the new
    // change set makes exactly one stack.
    let mut st = st;
    let mut reused = None;
    if let Some(review) = st.filter(|s| s.status == "REVIEW_IN_PROGRESS") {
        reused = review_change_set(client, def, review, &hash, opts).await?;
        if reused.is_none() {
            remove_review_stack(client, &def.name, &review.stack_id, opts).await?;
            st = None;
        }
    }
    let observed = st.map(Observed::from);
    let result = match reused {
        Some(r) => r,
        None => {
            create_change_set(
                client,
                &def.name,
                &source,
                &hash,
                observed.as_ref(),
                kind.clone(),
                opts,
            )
            .await?
        }
    };
    let mut ps = PlannedStack::unchanged(def.name.clone(), def.depends_on.clone(), hash, observed);
    if let ChangeSetResult::Ready {
        id,
        stack_id,
        changes,
    } = result
    {
        events(&Event::ChangeSetReady {
            stack: def.name.clone(),
            change_set_id: id.clone(),
        });
        ps.action = if kind == ChangeSetType::Create {
            ActionKind::Create
        } else {
            ActionKind::Update
        };
        ps.change_set_id = Some(id);
        ps.change_set_stack_id = stack_id;
        ps.changes = changes;
        for c in &mut ps.changes {
            let policy = def
                .template
                .resources
                .get(&c.logical_id)
                .and_then(|r| r.update_policy.as_ref());
            c.rollout = policy.and_then(|p| rollout(c, p));
        }
    }
    Ok(ps)
}

/// The ready change set of `hash`'s content on a review-only stack, if it
/// has one (`None` when absent, failed or already executed).
async fn review_change_set(
    client: &Client,
    def: &StackDefinition,
    review: &StackState,
    hash: &str,
    opts: &PlanOptions,
) -> Result<Option<ChangeSetResult>, EngineError> {
    let found = client
        .describe_change_set()
        .stack_name(&review.stack_id)
        .change_set_name(change_set_name(hash))
        .send()
        .await;
    let resp = match found {
        Ok(r) => r,
        Err(e) if e.code() == Some("ChangeSetNotFound") || e.code() == Some("ValidationError") => {
            return Ok(None);
        }
        Err(e) => return Err(EngineError::aws("DescribeChangeSet", Some(&def.name), e)),
    };
    let usable = matches!(
        resp.status(),
        Some(
            ChangeSetStatus::CreateComplete
                | ChangeSetStatus::CreatePending
                | ChangeSetStatus::CreateInProgress
        )
    ) && resp
        .execution_status()
        .is_none_or(|x| *x == ExecutionStatus::Available || *x == ExecutionStatus::Unavailable);
    let Some(id) = resp.change_set_id().filter(|_| usable) else {
        return Ok(None);
    };
    let result =
        wait_change_set(client, &def.name, id, Some(review.stack_id.clone()), opts).await?;
    Ok(match result {
        r @ ChangeSetResult::Ready { .. } => Some(r),
        ChangeSetResult::NoChanges => None,
    })
}

/// Delete a stack that only holds change sets (`REVIEW_IN_PROGRESS`) and
/// wait until it is gone.
async fn remove_review_stack(
    client: &Client,
    stack: &str,
    stack_id: &str,
    opts: &PlanOptions,
) -> Result<(), EngineError> {
    client
        .delete_stack()
        .stack_name(stack_id)
        .send()
        .await
        .map_err(|e| EngineError::aws("DeleteStack", Some(stack), e))?;
    let started = Instant::now();
    let mut delay = opts.poll.initial;
    loop {
        let gone = match client.describe_stacks().stack_name(stack_id).send().await {
            Ok(r) => r.stacks().iter().all(|s| {
                s.stack_status()
                    .is_some_and(|x| x.as_str() == "DELETE_COMPLETE")
            }),
            Err(e) if e.code() == Some("ValidationError") => true,
            Err(e) => return Err(EngineError::aws("DescribeStacks", Some(stack), e)),
        };
        if gone {
            return Ok(());
        }
        if started.elapsed() >= opts.change_set_timeout {
            return Err(EngineError::Timeout {
                what: format!("the review-only stack `{stack}` to be deleted"),
                after: opts.change_set_timeout,
            });
        }
        tokio::time::sleep(delay).await;
        delay = opts.poll.next(delay);
    }
}

/// Outcome of creating a change set.
#[derive(Debug)]
pub(crate) enum ChangeSetResult {
    /// Ready to execute.
    Ready {
        id: String,
        stack_id: Option<String>,
        changes: Vec<ResourceChange>,
    },
    /// CloudFormation found nothing to change; the change set was deleted.
    NoChanges,
}

/// The change set name for a content hash: the same content gives the
/// same name.
pub fn change_set_name(hash: &str) -> String {
    format!("harmonix-{}", hash.get(..32).unwrap_or(hash))
}

/// The idempotency token of a change set: derived from the content hash
/// and the stack it applies to, so a retried request is recognised and a
/// later plan of the same content against a changed stack is not.
fn client_token(hash: &str, observed: Option<&Observed>) -> String {
    let base = observed.map_or_else(String::new, |o| {
        format!(
            "{}\0{}\0{}",
            o.stack_id,
            o.status,
            o.last_updated.as_deref().unwrap_or_default()
        )
    });
    let h = hex_sha256(format!("{hash}\0{base}").as_bytes());
    format!("harmonix-{}", h.get(..40).unwrap_or(&h))
}

/// Create a change set and wait until it is ready (or found empty).
pub(crate) async fn create_change_set(
    client: &Client,
    stack: &str,
    source: &StackSource,
    hash: &str,
    observed: Option<&Observed>,
    kind: ChangeSetType,
    opts: &PlanOptions,
) -> Result<ChangeSetResult, EngineError> {
    let name = change_set_name(hash);
    let (body, url) = match opts.templates.deliver(stack, &source.template_body).await? {
        Delivery::Body(b) => (Some(b), None),
        Delivery::Url(u) => (None, Some(u)),
    };
    let request = || {
        client
            .create_change_set()
            .stack_name(stack)
            .change_set_name(&name)
            .client_token(client_token(hash, observed))
            .change_set_type(kind.clone())
            .set_template_body(body.map(str::to_owned))
            .set_template_url(url.clone())
            .set_parameters(Some(
                source
                    .parameters
                    .iter()
                    .map(|(k, v)| {
                        Parameter::builder()
                            .parameter_key(k)
                            .parameter_value(v)
                            .build()
                    })
                    .collect(),
            ))
            .set_tags(Some(
                source
                    .tags
                    .iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .set_capabilities(Some(
                source
                    .capabilities
                    .iter()
                    .map(|c| Capability::from(c.as_str()))
                    .collect(),
            ))
    };
    let resp = match request().send().await {
        Ok(r) => r,
        Err(e) if e.code() == Some("AlreadyExistsException") => {
            // A change set of the same content from an earlier, unapplied
            // plan: it was made against an older stack, so replace it.
            client
                .delete_change_set()
                .stack_name(stack)
                .change_set_name(&name)
                .send()
                .await
                .map_err(|e| EngineError::aws("DeleteChangeSet", Some(stack), e))?;
            request()
                .send()
                .await
                .map_err(|e| EngineError::aws("CreateChangeSet", Some(stack), e))?
        }
        // Some implementations refuse an empty change set synchronously
        // instead of reporting it FAILED.
        Err(e) if e.message().is_some_and(is_no_changes) => {
            return Ok(ChangeSetResult::NoChanges);
        }
        Err(e) => return Err(EngineError::aws("CreateChangeSet", Some(stack), e)),
    };
    let id = resp.id().unwrap_or(&name).to_owned();
    let stack_id = resp.stack_id().map(str::to_owned);
    wait_change_set(client, stack, &id, stack_id, opts).await
}

/// Whether a failed change set's reason says there was nothing to change.
fn is_no_changes(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

async fn wait_change_set(
    client: &Client,
    stack: &str,
    id: &str,
    stack_id: Option<String>,
    opts: &PlanOptions,
) -> Result<ChangeSetResult, EngineError> {
    let started = Instant::now();
    let mut delay = opts.poll.initial;
    loop {
        let mut changes = Vec::new();
        let mut token: Option<String> = None;
        let (status, reason, stack_id) = loop {
            let resp = client
                .describe_change_set()
                .change_set_name(id)
                .stack_name(stack)
                .include_property_values(true)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| EngineError::aws("DescribeChangeSet", Some(stack), e))?;
            changes.extend(resp.changes().iter().filter_map(|c| {
                let rc = c.resource_change()?;
                Some(convert_change(rc))
            }));
            let status = resp.status().cloned();
            let reason = resp.status_reason().unwrap_or_default().to_owned();
            let sid = resp.stack_id().map(str::to_owned).or(stack_id.clone());
            if status != Some(ChangeSetStatus::CreateComplete) {
                break (status, reason, sid);
            }
            match resp.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break (status, reason, sid),
            }
        };
        match status {
            Some(ChangeSetStatus::CreateComplete) => {
                return Ok(ChangeSetResult::Ready {
                    id: id.to_owned(),
                    stack_id,
                    changes,
                });
            }
            Some(ChangeSetStatus::Failed) if is_no_changes(&reason) => {
                client
                    .delete_change_set()
                    .change_set_name(id)
                    .stack_name(stack)
                    .send()
                    .await
                    .map_err(|e| EngineError::aws("DeleteChangeSet", Some(stack), e))?;
                return Ok(ChangeSetResult::NoChanges);
            }
            Some(ChangeSetStatus::CreatePending | ChangeSetStatus::CreateInProgress) | None => {}
            Some(other) => {
                return Err(EngineError::ChangeSetFailed {
                    stack: stack.to_owned(),
                    reason: if reason.is_empty() {
                        format!("status {}", other.as_str())
                    } else {
                        format!("{} ({})", reason, other.as_str())
                    },
                });
            }
        }
        if started.elapsed() >= opts.change_set_timeout {
            return Err(EngineError::Timeout {
                what: format!("the change set of stack `{stack}` to become ready"),
                after: opts.change_set_timeout,
            });
        }
        tokio::time::sleep(delay).await;
        delay = opts.poll.next(delay);
    }
}

fn convert_change(rc: &aws_sdk_cloudformation::types::ResourceChange) -> ResourceChange {
    use aws_sdk_cloudformation::types::{ChangeAction as A, Replacement as R};
    let action = match rc.action() {
        Some(A::Add) => ChangeAction::Add,
        Some(A::Remove) => ChangeAction::Remove,
        Some(A::Import) => ChangeAction::Import,
        Some(A::Dynamic) => ChangeAction::Dynamic,
        _ => ChangeAction::Modify,
    };
    let replacement = match rc.replacement() {
        Some(R::True) => Some(Replacement::True),
        Some(R::Conditional) => Some(Replacement::Conditional),
        Some(R::False) => Some(Replacement::False),
        _ => None,
    };
    let mut properties: Vec<String> = rc
        .details()
        .iter()
        .filter_map(|d| {
            let t = d.target()?;
            if t.attribute() == Some(&ResourceAttribute::Properties) {
                t.name().map(str::to_owned)
            } else {
                None
            }
        })
        .collect();
    properties.sort();
    properties.dedup();
    ResourceChange {
        action,
        logical_id: rc.logical_resource_id().unwrap_or_default().to_owned(),
        resource_type: rc.resource_type().unwrap_or_default().to_owned(),
        replacement,
        properties,
        rollout: None,
    }
}

/// A plan that deletes the given stacks (those deployed; absent ones are
/// no-ops), from one state read; what each delete keeps is read from the
/// deployed stack (see [`super::retained`]).
pub async fn plan_destroy(
    defs: &[StackDefinition],
    client: &Client,
    opts: &PlanOptions,
    events: EventSink<'_>,
) -> Result<Plan, EngineError> {
    plan_destroy_with(defs, client, opts, DestroyOptions::default(), events).await
}

/// [`plan_destroy`] with `destroy`'s treatment of the kept data. Refusing
/// `delete_data` for production environments is the caller's (the
/// [`crate::engine::Engine`] knows the lifecycles).
pub async fn plan_destroy_with(
    defs: &[StackDefinition],
    client: &Client,
    opts: &PlanOptions,
    destroy: DestroyOptions,
    events: EventSink<'_>,
) -> Result<Plan, EngineError> {
    let (account, region) = validate(defs)?;
    let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    let state = read_settled_state(&names, client, opts, events).await?;
    let mut stacks = Vec::with_capacity(defs.len());
    for d in defs {
        let st = state.get(&d.name);
        let mut ps = PlannedStack {
            action: if st.is_some() {
                ActionKind::Delete
            } else {
                ActionKind::NoOp
            },
            ..PlannedStack::unchanged(
                d.name.clone(),
                d.depends_on.clone(),
                st.and_then(|s| s.hash.clone()).unwrap_or_default(),
                st.map(Observed::from),
            )
        };
        // A stack holding only change sets has no template or resources.
        if let Some(st) = st.filter(|s| s.status != "REVIEW_IN_PROGRESS") {
            let found = inspect(
                client,
                &d.name,
                &st.stack_id,
                &d.capabilities,
                destroy.delete_data,
            )
            .await?;
            ps.kept = found.kept;
            ps.deleted_data = found.deleted_data;
            ps.source = found.source;
            ps.changes = found.changes;
        }
        events(&Event::Planned {
            stack: ps.name.clone(),
            action: ps.action,
            changes: ps.changes.len(),
        });
        stacks.push(ps);
    }
    Ok(Plan::new(account, region, stacks))
}

#[cfg(test)]
mod rollout_tests {
    use serde_json::json;

    use super::{ChangeAction, ResourceChange, rollout};

    fn group(properties: &[&str]) -> ResourceChange {
        ResourceChange {
            action: ChangeAction::Modify,
            logical_id: "FrontendGroup".into(),
            resource_type: "AWS::AutoScaling::AutoScalingGroup".into(),
            replacement: None,
            properties: properties.iter().map(|p| (*p).to_owned()).collect(),
            rollout: None,
        }
    }

    #[test]
    fn a_rolling_update_policy_is_shown_on_an_instance_replacing_change() {
        let policy = json!({ "AutoScalingRollingUpdate": { "MaxBatchSize": 2, "MinInstancesInService": "3" } });
        let text = "instances replaced by a rolling update (2 at a time, at least 3 in service)";
        // Property details unknown (as on the emulator): assumed replacing.
        assert_eq!(rollout(&group(&[]), &policy).as_deref(), Some(text));
        assert_eq!(
            rollout(&group(&["LaunchTemplate"]), &policy).as_deref(),
            Some(text)
        );
        // A size change replaces no instance.
        assert_eq!(rollout(&group(&["DesiredCapacity"]), &policy), None);
        let replacing = json!({ "AutoScalingReplacingUpdate": { "WillReplace": true } });
        assert!(
            rollout(&group(&[]), &replacing)
                .is_some_and(|t| t.starts_with("instances replaced: a new group"))
        );
        // Only modified groups.
        let mut other = group(&[]);
        other.resource_type = "AWS::EC2::LaunchTemplate".into();
        assert_eq!(rollout(&other, &policy), None);
        let mut added = group(&[]);
        added.action = ChangeAction::Add;
        assert_eq!(rollout(&added, &policy), None);
        assert_eq!(rollout(&group(&[]), &json!({})), None);
    }
}
