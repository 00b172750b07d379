//! The engine as a pipeline job uses it: specs in, stacks planned and
//! applied in every target account/region through the role chain, under
//! the environment locks, with an audit trail, and the catalog written.
//!
//! ```text
//! SpecSet ──Engine::plan──▶ DeploymentPlan (plan.json: specs + per-target plans)
//!                               │ reviewed
//!                               ▼ Engine::apply
//!        lock every environment ─▶ refuse if stale ─▶ audit STARTED
//!        ─▶ execute per target (DAG, bounded concurrency, one poller)
//!        ─▶ outputs (+ resources, + EKS look-ups) ─▶ audit result
//!        ─▶ unlock ─▶ catalog-info.yaml (atomic)
//! ```
//!
//! A *target* is an account, region and environment role: stacks of one
//! target are planned together (one paginated state read) and applied by
//! one poller; targets run concurrently. Each environment provider is
//! locked on its own (`<account>/<region>/<prefix>-<name>`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::apply::{ApplyOptions, ApplyReport, Outcome, StackReport, apply_checked, check_stale};
use super::assets::{AssetsOptions, TemplateStore};
use super::audit::{AuditRecord, AuditStatus, AuditWriter, rfc3339};
use super::error::EngineError;
use super::events::{Event, EventSink};
use super::lock::{
    DEFAULT_LEASE, Holder, LOCK_TABLE, LockError, LockGuard, LockManager, TABLE_ACTIVE_TIMEOUT,
    ensure_lock_table_named,
};
use super::outputs::{complete_outputs, perform};
use super::plan::{
    ActionKind, Plan, PlanOptions, Triage, busy_stacks, plan_destroy_with, plan_triaged,
    plan_with_state, read_settled_state, validate,
};
use super::retained::{DestroyOptions, RetainedResource, retained_names};
use super::state::{StackStatusReport, read_state, status_from_state};
use crate::Error;
use crate::aws::{ClientPool, Clients, Target};
use crate::catalog::{self, Entity};
use crate::fsio::write_atomic;
use crate::provider::{
    BOOTSTRAP_STACK, Names, Registry, StackDefinition, StackOutputs, bootstrap_stack,
};
use crate::spec::{EmbeddedSpec, SpecSet};
use crate::template::hex_sha256;

/// Version of the deployment plan file format.
pub const DEPLOYMENT_PLAN_FORMAT: u32 = 1;

/// Options of the environment lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    /// Take the lock (default). Turning it off is for single-user setups.
    pub enabled: bool,
    /// The lock table in each account/region (default [`LOCK_TABLE`]).
    pub table: String,
    /// Lease, renewed by a heartbeat while the run lasts (default 5 min).
    pub lease: Duration,
    /// Create the lock table when it is missing (default). Off: run
    /// `harmonix bootstrap` once per account/region first.
    pub create_table: bool,
}

impl Default for LockOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            table: LOCK_TABLE.to_owned(),
            lease: DEFAULT_LEASE,
            create_table: true,
        }
    }
}

/// Options of [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Stacks planned or executed at the same time per target (≥ 1,
    /// default 4).
    pub concurrency: usize,
    /// Planning waits and timeouts (its `concurrency` is replaced by
    /// [`EngineOptions::concurrency`]).
    pub plan: PlanOptions,
    /// Applying: timeouts, polling, cancellation (its `concurrency` is
    /// replaced by [`EngineOptions::concurrency`]).
    pub apply: ApplyOptions,
    /// The environment lock.
    pub lock: LockOptions,
    /// The assets bucket of templates over CloudFormation's inline limit.
    pub assets: AssetsOptions,
    /// Write audit records to each environment's audit table (default).
    pub audit: bool,
    /// The command recorded as the lock holder's and in audit records.
    pub command: String,
    /// Build the catalog entities after a successful deploy (completing
    /// stack outputs from resources and doing the providers' look-ups)
    /// even when no catalog file is written (default). Off (the CLI's
    /// `--no-catalog`): no calls for them, `entities` stays empty.
    pub entities: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            plan: PlanOptions::default(),
            apply: ApplyOptions::default(),
            lock: LockOptions::default(),
            assets: AssetsOptions::default(),
            audit: true,
            command: "harmonix".to_owned(),
            entities: true,
        }
    }
}

/// What a deployment plan does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum PlanKind {
    /// Create or update the environments.
    Deploy,
    /// Delete them.
    Destroy,
}

impl PlanKind {
    /// `deploy` or `destroy` (also the audit `actionType`: `apply` /
    /// `destroy`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Destroy => "destroy",
        }
    }
}

impl std::fmt::Display for PlanKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PlanKind {
    type Err = crate::spec::ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deploy" => Ok(Self::Deploy),
            "destroy" => Ok(Self::Destroy),
            _ => Err(crate::spec::ParseEnumError {
                what: "plan kind",
                value: s.to_owned(),
                allowed: "deploy, destroy".to_owned(),
            }),
        }
    }
}

/// The plan of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetPlan {
    /// The environment role the target is deployed as.
    pub role_arn: String,
    /// The environment providers (spec names) of this target.
    pub providers: Vec<String>,
    /// The stacks' plan (account and region are in it).
    pub plan: Plan,
}

/// A reviewed plan of every target, with the specs it was made from: what
/// `harmonix plan -o plan.json` saves and `harmonix apply plan.json`
/// executes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentPlan {
    /// [`DEPLOYMENT_PLAN_FORMAT`].
    pub format: u32,
    /// Deploy or destroy.
    pub kind: PlanKind,
    /// The Harmonix version that made it.
    pub harmonix_version: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// The specs it was made from.
    pub specs: Vec<EmbeddedSpec>,
    /// One plan per target.
    pub targets: Vec<TargetPlan>,
    /// Hex SHA-256 over everything above.
    pub content_hash: String,
}

/// Counts of a plan, as `Plan: 2 to add, 1 to change, 0 to destroy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    /// Stacks with something to do.
    pub stacks_to_change: usize,
    /// Stacks without changes.
    pub stacks_unchanged: usize,
    /// Resources to add.
    pub add: usize,
    /// Resources to change in place.
    pub change: usize,
    /// Resources to remove (replacements count here and in `add`).
    pub destroy: usize,
}

impl DeploymentPlan {
    fn new(kind: PlanKind, specs: Vec<EmbeddedSpec>, targets: Vec<TargetPlan>) -> Self {
        let mut p = Self {
            format: DEPLOYMENT_PLAN_FORMAT,
            kind,
            harmonix_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at: rfc3339(SystemTime::now()),
            specs,
            targets,
            content_hash: String::new(),
        };
        p.content_hash = p.compute_hash();
        p
    }

    fn compute_hash(&self) -> String {
        let body = serde_json::to_string(&(
            self.format,
            self.kind,
            &self.harmonix_version,
            &self.created_at,
            &self.specs,
            &self.targets,
        ))
        .unwrap_or_default();
        hex_sha256(body.as_bytes())
    }

    /// Whether nothing is to be done.
    pub fn is_noop(&self) -> bool {
        self.targets.iter().all(|t| t.plan.is_noop())
    }

    /// Every planned stack.
    pub fn stacks(&self) -> impl Iterator<Item = &super::plan::PlannedStack> {
        self.targets.iter().flat_map(|t| &t.plan.stacks)
    }

    /// Counts of stacks and resource changes.
    pub fn summary(&self) -> PlanSummary {
        use super::plan::{ChangeAction, Replacement};
        let mut s = PlanSummary::default();
        for st in self.stacks() {
            if st.action == ActionKind::NoOp {
                s.stacks_unchanged += 1;
                continue;
            }
            s.stacks_to_change += 1;
            if st.action == ActionKind::Delete {
                s.destroy += 1;
            }
            if st.action == ActionKind::ResumeRollback {
                s.change += 1;
            }
            for c in &st.changes {
                match (c.action, c.replacement) {
                    (ChangeAction::Add | ChangeAction::Import, _) => s.add += 1,
                    (ChangeAction::Remove, _) => s.destroy += 1,
                    (ChangeAction::Modify, Some(Replacement::True)) => {
                        s.add += 1;
                        s.destroy += 1;
                    }
                    _ => s.change += 1,
                }
            }
        }
        s
    }

    /// A Terraform-like diff of every target (ANSI colors with `color`).
    pub fn render_diff(&self, color: bool) -> String {
        let mut out = String::new();
        for t in &self.targets {
            let body = t.plan.render_diff(color);
            // The per-target summary line is replaced by one for all.
            let body = body
                .rsplit_once("\nPlan: ")
                .map_or(body.as_str(), |(head, _)| head);
            let _ = writeln!(
                out,
                "# account {} / {} as {}",
                t.plan.account, t.plan.region, t.role_arn
            );
            out.push_str(body.trim_end());
            out.push_str("\n\n");
        }
        let s = self.summary();
        if self.is_noop() {
            out.push_str("No changes. Your environments match their specs.\n");
        } else {
            let _ = writeln!(
                out,
                "Plan: {} to add, {} to change, {} to destroy ({} of {} stacks).",
                s.add,
                s.change,
                s.destroy,
                s.stacks_to_change,
                s.stacks_to_change + s.stacks_unchanged
            );
        }
        out
    }

    /// The plan file's text (pretty JSON, deterministic for a given plan).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Read a plan file's text, checking its format and content hash.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::Engine(EngineError::InvalidPlan { reason });
        let plan: Self =
            serde_json::from_str(text).map_err(|e| invalid(format!("not a plan file: {e}")))?;
        if plan.format != DEPLOYMENT_PLAN_FORMAT {
            return Err(invalid(format!(
                "format is {}, this version reads format {DEPLOYMENT_PLAN_FORMAT}",
                plan.format
            )));
        }
        let expected = plan.compute_hash();
        if plan.content_hash != expected {
            return Err(invalid(format!(
                "contentHash is {} but the content hashes to {expected}: the file was modified",
                plan.content_hash
            )));
        }
        for t in &plan.targets {
            // Also checks each target's own hash.
            Plan::from_json(&serde_json::to_string(&t.plan).unwrap_or_default())?;
        }
        Ok(plan)
    }

    /// Write the plan file atomically.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        Ok(write_atomic(path, self.to_json().as_bytes())?)
    }

    /// Read a plan file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text)
    }
}

/// The result of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    /// Account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Role the target was deployed as.
    pub role_arn: String,
    /// Per stack.
    pub stacks: Vec<StackReport>,
}

/// Where the catalog went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogReport {
    /// The file.
    pub path: String,
    /// `created`, `updated` or `unchanged`.
    pub outcome: String,
}

/// The result of [`Engine::apply`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployReport {
    /// Deploy or destroy.
    pub kind: PlanKind,
    /// Per target.
    pub targets: Vec<TargetReport>,
    /// Outputs of the deployed stacks (completed from their resources)
    /// and the providers' look-ups.
    pub outputs: StackOutputs,
    /// The catalog entities (deploys that succeeded).
    pub entities: Vec<Entity>,
    /// The catalog file written, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub catalog: Option<CatalogReport>,
    /// What the deleted stacks kept (their templates' `DeletionPolicy`):
    /// tables, keys, log groups, buckets, secrets, final snapshots.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub kept: Vec<RetainedResource>,
    /// Problems that did not stop the run (an audit record that could not
    /// be written, a lock taken over, a catalog not written).
    pub warnings: Vec<String>,
    /// The catalog could not be completed: why (the run failed).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub catalog_error: Option<String>,
    /// AWS requests made by this engine so far, by operation.
    pub requests: BTreeMap<String, u64>,
}

impl DeployReport {
    /// Every stack's report.
    pub fn stacks(&self) -> impl Iterator<Item = &StackReport> {
        self.targets.iter().flat_map(|t| &t.stacks)
    }

    /// The report of one stack.
    pub fn stack(&self, name: &str) -> Option<&StackReport> {
        self.stacks().find(|s| s.name == name)
    }

    /// Whether every stack succeeded (or needed nothing) and the catalog
    /// was completed.
    pub fn succeeded(&self) -> bool {
        self.catalog_error.is_none()
            && self.stacks().all(|s| {
                matches!(
                    s.outcome,
                    Outcome::Created | Outcome::Updated | Outcome::Deleted | Outcome::Unchanged
                )
            })
    }
}

/// The deployed state of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    /// Account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Per defined stack.
    pub stacks: Vec<StackStatusReport>,
}

/// The latest audit records of one environment provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderAudit {
    /// The provider's name.
    pub provider: String,
    /// Account.
    pub account: String,
    /// Region.
    pub region: String,
    /// The audit table (`Names::of(spec).audit_table`).
    pub table: String,
    /// Whether the table exists (false: the provider was never deployed).
    pub table_found: bool,
    /// The records, newest first (see [`super::audit::latest`]).
    pub items: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// The outputs of one defined stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackOutputsReport {
    /// Stack name.
    pub name: String,
    /// The provider that defines it.
    pub provider: String,
    /// Account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Whether the stack is deployed (no outputs when it is not).
    pub deployed: bool,
    /// Output key to value.
    pub outputs: BTreeMap<String, String>,
}

/// The engine a pipeline job, a script or a Backstage plugin drives.
///
/// Cheap to clone; every clone shares the client pool (credentials and API
/// budgets) and the options.
///
/// ```no_run
/// use harmonix_core::aws::{AwsOptions, ClientPool};
/// use harmonix_core::engine::{Engine, EngineOptions, events::Event};
/// use harmonix_core::{provider::Registry, spec::SpecSet};
///
/// # async fn run() -> Result<(), harmonix_core::Error> {
/// let registry = Registry::builtin();
/// let specs = SpecSet::load(&["envs/dev.yaml"], &registry)?;
/// let pool = ClientPool::load(AwsOptions::default()).await?;
/// let engine = Engine::new(pool, registry, EngineOptions::default());
/// let progress = |e: &Event| eprintln!("{e:?}");
/// let plan = engine.plan(&specs, &progress).await?; // review, save, load
/// print!("{}", plan.render_diff(false));
/// let report = engine
///     .apply(&plan, Some("catalog-info.yaml".as_ref()), &progress)
///     .await?;
/// assert!(report.succeeded());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Engine {
    pool: ClientPool,
    registry: Registry,
    opts: EngineOptions,
}

/// One target's definitions.
struct Group<'a> {
    target: Target,
    /// (spec index, provider name) of each provider.
    providers: Vec<(usize, crate::spec::ValidProvider<'a>)>,
    defs: Vec<StackDefinition>,
}

impl Engine {
    /// An engine over `pool` (see [`ClientPool::load`]).
    pub fn new(pool: ClientPool, registry: Registry, opts: EngineOptions) -> Self {
        Self {
            pool,
            registry,
            opts,
        }
    }

    /// A clone whose applies are cancelled through `token` (see
    /// [`ApplyOptions::cancel`]), e.g. one token per call in a binding.
    #[must_use]
    pub fn with_cancel(&self, token: tokio_util::sync::CancellationToken) -> Self {
        let mut e = self.clone();
        e.opts.apply.cancel = token;
        e
    }

    /// The client pool.
    pub fn pool(&self) -> &ClientPool {
        &self.pool
    }

    /// The provider registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    fn plan_options(&self) -> PlanOptions {
        PlanOptions {
            concurrency: self.opts.concurrency.max(1),
            ..self.opts.plan.clone()
        }
    }

    fn apply_options(&self) -> ApplyOptions {
        ApplyOptions {
            concurrency: self.opts.concurrency.max(1),
            ..self.opts.apply.clone()
        }
    }

    /// Group the specs' stacks by target, in first-seen order.
    fn groups<'a>(&self, specs: &'a SpecSet) -> Result<Vec<Group<'a>>, Error> {
        self.groups_of(specs, true)
    }

    /// The providers of `specs` by target; with `render`, each group's
    /// stacks too (checked: unique names, acyclic dependencies). Without,
    /// `defs` stay empty (planning renders provider by provider).
    fn groups_of<'a>(&self, specs: &'a SpecSet, render: bool) -> Result<Vec<Group<'a>>, Error> {
        let mut groups: Vec<Group<'a>> = Vec::new();
        let items: Vec<(usize, crate::spec::ValidProvider<'a>, Vec<StackDefinition>)> = if render {
            specs
                .provider_stacks(&self.registry)?
                .into_iter()
                .map(|ps| (ps.spec_index, ps.provider, ps.stacks))
                .collect()
        } else {
            let mut v = Vec::new();
            for (spec_index, (_, spec)) in specs.iter().enumerate() {
                for (index, p) in spec.providers().enumerate() {
                    if self.registry.get(p.kind).is_none() {
                        return Err(crate::render::RenderError::UnknownKind {
                            kind: p.kind.to_string(),
                            index,
                        }
                        .into());
                    }
                    v.push((spec_index, p, Vec::new()));
                }
            }
            v
        };
        for (spec_index, p, stacks) in items {
            let key = (
                p.account.as_str().to_owned(),
                p.region.clone(),
                p.environment_role.clone(),
            );
            let idx = groups.iter().position(|g| {
                (
                    g.target.account.clone(),
                    g.target.region.clone(),
                    g.target.role_arn.clone(),
                ) == key
            });
            let i = if let Some(i) = idx {
                i
            } else {
                groups.push(Group {
                    target: Target {
                        account: key.0,
                        region: key.1,
                        role_arn: key.2,
                        environment: String::new(),
                    },
                    providers: Vec::new(),
                    defs: Vec::new(),
                });
                groups.len() - 1
            };
            let g = &mut groups[i];
            g.providers.push((spec_index, p));
            g.defs.extend(stacks);
        }
        for g in &mut groups {
            // The role session name tells CloudTrail which environments.
            g.target.environment = g
                .providers
                .iter()
                .map(|(_, p)| p.name.as_str())
                .collect::<Vec<_>>()
                .join("+");
            if render {
                validate(&g.defs)?;
            }
        }
        Ok(groups)
    }

    /// Where the templates of `target` go when too big to send inline:
    /// its account/region's assets bucket.
    fn templates(&self, target: &Target, c: &Clients) -> TemplateStore {
        let plain_http = c
            .config
            .endpoint_url()
            .is_some_and(|u| u.starts_with("http://"));
        TemplateStore::s3(
            c.s3.clone(),
            &target.account,
            &target.region,
            self.opts.assets.clone(),
            !plain_http,
        )
    }

    async fn clients(&self, target: &Target) -> Result<Clients, Error> {
        Ok(self.pool.clients(target).await?)
    }

    /// Plan every environment of `specs`: one state read per target, a
    /// change set per stack that differs.
    pub async fn plan(
        &self,
        specs: &SpecSet,
        events: EventSink<'_>,
    ) -> Result<DeploymentPlan, Error> {
        self.plan_kind(specs, PlanKind::Deploy, DestroyOptions::default(), events)
            .await
    }

    /// Plan the deletion of every environment of `specs`, keeping what
    /// their templates keep (listed in the plan and the report).
    pub async fn plan_destroy(
        &self,
        specs: &SpecSet,
        events: EventSink<'_>,
    ) -> Result<DeploymentPlan, Error> {
        self.plan_destroy_with(specs, DestroyOptions::default(), events)
            .await
    }

    /// [`Engine::plan_destroy`] with `destroy`'s treatment of the kept
    /// data. `delete_data` for an environment whose lifecycle is
    /// `production` (its own, or an environment's that lists it) is
    /// refused, before any AWS call, unless `delete_production_data` is
    /// set too.
    pub async fn plan_destroy_with(
        &self,
        specs: &SpecSet,
        destroy: DestroyOptions,
        events: EventSink<'_>,
    ) -> Result<DeploymentPlan, Error> {
        if destroy.delete_data && !destroy.delete_production_data {
            refuse_production_data(specs)?;
        }
        self.plan_kind(specs, PlanKind::Destroy, destroy, events)
            .await
    }

    async fn plan_kind(
        &self,
        specs: &SpecSet,
        kind: PlanKind,
        destroy: DestroyOptions,
        events: EventSink<'_>,
    ) -> Result<DeploymentPlan, Error> {
        let groups = self.groups_of(specs, kind == PlanKind::Destroy)?;
        let popts = self.plan_options();
        let plans = join_all(groups.iter().map(|g| async {
            let clients = self.clients(&g.target).await?;
            let cfn = &clients.cloudformation;
            let popts = PlanOptions {
                templates: self.templates(&g.target, &clients),
                ..popts.clone()
            };
            let plan = match kind {
                PlanKind::Deploy => {
                    // What the stacks rely on but do not create, before
                    // any change set exists.
                    let providers: Vec<_> = g.providers.iter().map(|(_, p)| *p).collect();
                    super::preflight::check_providers(
                        &self.registry,
                        &providers,
                        &clients.eks,
                        events,
                    )
                    .await?;
                    // One state read, then each provider rendered and
                    // decided in turn: templates of stacks without changes
                    // are dropped as soon as they are hashed.
                    let mut state = read_state(cfn).await?;
                    let mut triage = self.triage(g, &state, events)?;
                    if !triage.busy.is_empty() {
                        // A stack with an operation running while a live
                        // run holds its environment's lock: that run is
                        // applying; refuse now naming it rather than wait
                        // and plan against a state it is about to change
                        // again. Otherwise wait for it, then decide again.
                        self.refuse_if_locked(g, &triage.light, &clients, &triage.busy)
                            .await?;
                        let names: Vec<String> =
                            triage.light.iter().map(|d| d.name.clone()).collect();
                        let names: Vec<&str> = names.iter().map(String::as_str).collect();
                        state = read_settled_state(&names, cfn, &popts, events).await?;
                        triage = self.triage(g, &state, events)?;
                    }
                    validate(&triage.light)?;
                    refuse_retained(&triage, &state, &clients, events).await?;
                    let stacks = plan_triaged(triage, &state, cfn, &popts, events).await?;
                    Plan::new(g.target.account.clone(), g.target.region.clone(), stacks)
                }
                PlanKind::Destroy => {
                    plan_destroy_with(&g.defs, cfn, &popts, destroy, events).await?
                }
            };
            Ok::<_, Error>(TargetPlan {
                role_arn: g.target.role_arn.clone(),
                providers: g.providers.iter().map(|(_, p)| p.name.clone()).collect(),
                plan,
            })
        }))
        .await;
        let targets = plans.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(DeploymentPlan::new(kind, specs.to_embedded(), targets))
    }

    /// Render `g`'s providers one at a time and decide their stacks against
    /// `state` (see [`Triage`]).
    fn triage(
        &self,
        g: &Group<'_>,
        state: &super::state::StateMap,
        events: EventSink<'_>,
    ) -> Result<Triage, Error> {
        let mut triage = Triage::default();
        for (i, (_, p)) in g.providers.iter().enumerate() {
            let imp = self.registry.get(p.kind).ok_or_else(|| {
                crate::render::RenderError::UnknownKind {
                    kind: p.kind.to_string(),
                    index: i,
                }
            })?;
            let stacks = imp.stacks(*p);
            stacks.iter().try_for_each(crate::render::check_quotas)?;
            triage.add(stacks, state, events)?;
        }
        Ok(triage)
    }

    /// [`LockError::Held`] when a live run (not this one) holds the lock of
    /// an environment owning one of the `busy` stacks.
    async fn refuse_if_locked(
        &self,
        g: &Group<'_>,
        defs: &[StackDefinition],
        clients: &Clients,
        busy: &[String],
    ) -> Result<(), Error> {
        if !self.opts.lock.enabled {
            return Ok(());
        }
        let manager = LockManager::new(clients.dynamodb.clone(), &self.opts.lock.table);
        for (_, p) in &g.providers {
            let owns = defs
                .iter()
                .any(|d| d.provider == p.name && busy.contains(&d.name));
            if owns {
                manager
                    .ensure_free(&lock_id(&g.target, &Names::of(p).base))
                    .await?;
            }
        }
        Ok(())
    }

    /// Apply a reviewed plan: lock every environment, refuse the plan if
    /// any stack changed since planning, execute the reviewed change sets,
    /// write the audit trail and, for a deploy that succeeded, the catalog
    /// to `catalog` (when given).
    ///
    /// Stack failures are in the report ([`DeployReport::succeeded`]); an
    /// `Err` means nothing was executed (invalid or stale plan, lock held,
    /// credentials) or the run could not be completed.
    pub async fn apply(
        &self,
        plan: &DeploymentPlan,
        catalog_path: Option<&Path>,
        events: EventSink<'_>,
    ) -> Result<DeployReport, Error> {
        let specs = SpecSet::from_embedded(&plan.specs, &self.registry)?;
        let groups = self.groups(&specs)?;
        let pairs = match_targets(plan, &groups)?;
        let mut warnings = Vec::new();

        // Credentials for every target first: a role that cannot be
        // assumed stops the run before anything is locked or changed.
        let mut clients = Vec::with_capacity(pairs.len());
        for (_, g) in &pairs {
            clients.push(self.clients(&g.target).await?);
        }

        // Locks, in a stable order so that concurrent runs cannot deadlock.
        let mut guards = Vec::new();
        if self.opts.lock.enabled {
            match self.lock_all(&pairs, &clients, events, &mut warnings).await {
                Ok(g) => guards = g,
                Err(e) => return Err(e),
            }
        }
        let result = self
            .apply_locked(
                plan,
                &specs,
                &pairs,
                &clients,
                catalog_path,
                events,
                &mut warnings,
            )
            .await;
        warnings.extend(release_all(guards).await);
        let mut report = result?;
        report.warnings.append(&mut warnings);
        report.requests = self.pool.request_counts();
        Ok(report)
    }

    async fn lock_all(
        &self,
        pairs: &[(&TargetPlan, &Group<'_>)],
        clients: &[Clients],
        events: EventSink<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<LockGuard>, Error> {
        let lopts = &self.opts.lock;
        let mut wanted: Vec<(String, usize)> = Vec::new();
        let mut tables_ready = BTreeSet::new();
        for (i, ((tp, g), c)) in pairs.iter().zip(clients).enumerate() {
            let changing: Vec<_> = g
                .providers
                .iter()
                .filter(|(_, p)| provider_changes(tp, g, &p.name))
                .collect();
            if changing.is_empty() {
                continue;
            }
            if lopts.create_table
                && tables_ready.insert((g.target.account.clone(), g.target.region.clone()))
            {
                ensure_lock_table_named(&c.dynamodb, &lopts.table, TABLE_ACTIVE_TIMEOUT).await?;
            }
            for (_, p) in changing {
                wanted.push((lock_id(&g.target, &Names::of(p).base), i));
            }
        }
        wanted.sort();
        let holder = Holder::current(self.opts.command.clone());
        // Taken concurrently: a held lock fails its acquire at once (no
        // waiting), so there is no lock-order deadlock to avoid.
        let attempts: Vec<(String, Result<LockGuard, LockError>)> =
            futures_util::stream::iter(wanted.into_iter().map(|(id, i)| {
                let manager = LockManager::new(clients[i].dynamodb.clone(), &lopts.table);
                let holder = holder.clone();
                async move {
                    let r = manager.acquire(&id, holder, lopts.lease).await;
                    (id, r)
                }
            }))
            .buffered(PARALLEL_ITEM_WRITES)
            .collect()
            .await;
        let mut guards = Vec::with_capacity(attempts.len());
        let mut first_err: Option<LockError> = None;
        for (id, r) in attempts {
            match r {
                Ok(g) => {
                    if let Some(prev) = g.took_over() {
                        let msg = format!("took over lock `{id}` from {prev}");
                        events(&Event::Warning {
                            message: msg.clone(),
                        });
                        warnings.push(msg);
                    }
                    events(&Event::Locked { lock: id.clone() });
                    guards.push(g);
                }
                Err(e) => {
                    // A held lock is the error to report, before any other.
                    let replace = match (&first_err, &e) {
                        (None, _) => true,
                        (Some(LockError::Held { .. }), _) => false,
                        (Some(_), held) => matches!(held, LockError::Held { .. }),
                    };
                    if replace {
                        first_err = Some(e);
                    }
                }
            }
        }
        if let Some(e) = first_err {
            release_all(guards).await;
            return Err(e.into());
        }
        Ok(guards)
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_locked(
        &self,
        plan: &DeploymentPlan,
        specs: &SpecSet,
        pairs: &[(&TargetPlan, &Group<'_>)],
        clients: &[Clients],
        catalog_path: Option<&Path>,
        events: EventSink<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<DeployReport, Error> {
        // Refuse a stale plan before executing anything anywhere.
        let mut states = Vec::with_capacity(pairs.len());
        for ((tp, _), c) in pairs.iter().zip(clients) {
            let state = read_state(&c.cloudformation).await?;
            check_stale(&tp.plan, &state)?;
            states.push(state);
        }
        if self.opts.apply.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        if plan.kind == PlanKind::Deploy {
            // Account/region settings the changing environments need, in
            // the shared bootstrap stack, before any of them is applied.
            let mut done = BTreeSet::new();
            for (((tp, g), c), state) in pairs.iter().zip(clients).zip(&states) {
                let needs = g.providers.iter().any(|(_, p)| {
                    provider_changes(tp, g, &p.name)
                        && self
                            .registry
                            .get(p.kind)
                            .is_some_and(|imp| !imp.account_settings(*p).is_empty())
                });
                let key = (g.target.account.clone(), g.target.region.clone());
                if needs && done.insert(key) {
                    self.ensure_bootstrap_stack(&g.target, c, Some(state), events)
                        .await?;
                }
            }
        }
        let audit = self.opts.audit;
        let action = match plan.kind {
            PlanKind::Deploy => "apply",
            PlanKind::Destroy => "destroy",
        };
        if audit {
            let mut writes = Vec::new();
            for ((tp, g), c) in pairs.iter().zip(clients) {
                for (_, p) in g
                    .providers
                    .iter()
                    .filter(|(_, p)| provider_changes(tp, g, &p.name))
                {
                    // The table exists only once the environment does.
                    if stack_exists(&states, &Names::of(p).stack) {
                        let rec = self.audit_record(action, tp, g, c, *p, AuditStatus::Started, "");
                        writes.push((c.dynamodb.clone(), p.name.clone(), rec, Names::of(p)));
                    }
                }
            }
            warnings.extend(write_audits(writes).await);
        }

        let aopts = self.apply_options();
        let reports: Vec<Result<ApplyReport, EngineError>> = join_all(
            pairs
                .iter()
                .zip(clients)
                .zip(&states)
                .map(|(((tp, g), c), state)| {
                    let aopts = ApplyOptions {
                        templates: self.templates(&g.target, c),
                        ..aopts.clone()
                    };
                    async move {
                        apply_checked(
                            &tp.plan,
                            state,
                            &c.cloudformation,
                            Some(&c.s3),
                            &aopts,
                            events,
                        )
                        .await
                    }
                }),
        )
        .await;

        let wants_entities = self.opts.entities || catalog_path.is_some();
        let mut final_audits = Vec::new();
        let mut targets = Vec::with_capacity(pairs.len());
        let mut outputs = StackOutputs::new();
        let mut kept = Vec::new();
        let mut first_err = None;
        for (((tp, g), c), r) in pairs.iter().zip(clients).zip(reports) {
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    first_err.get_or_insert(e);
                    continue;
                }
            };
            if plan.kind == PlanKind::Deploy && wants_entities {
                for def in &g.defs {
                    let deployed = r.stack(&def.name).is_some_and(|s| {
                        matches!(
                            s.outcome,
                            Outcome::Created | Outcome::Updated | Outcome::Unchanged
                        )
                    });
                    if !deployed {
                        continue;
                    }
                    let mut out = r.outputs.get(&def.name).cloned().unwrap_or_default();
                    if let Err(e) = complete_outputs(&c.cloudformation, def, &mut out).await {
                        warnings.push(format!("outputs of `{}`: {e}", def.name));
                    }
                    outputs.insert(def.name.clone(), out);
                }
            }
            if audit {
                for (_, p) in g
                    .providers
                    .iter()
                    .filter(|(_, p)| provider_changes(tp, g, &p.name))
                {
                    let names = Names::of(p);
                    let mine: Vec<&StackReport> = r
                        .stacks
                        .iter()
                        .filter(|s| {
                            g.defs
                                .iter()
                                .any(|d| d.name == s.name && d.provider == p.name)
                        })
                        .collect();
                    let failed: Vec<String> = mine
                        .iter()
                        .filter_map(|s| match &s.outcome {
                            Outcome::Failed { reason } => Some(format!("{}: {reason}", s.name)),
                            Outcome::Skipped { because } => {
                                Some(format!("{}: skipped, {because} did not succeed", s.name))
                            }
                            Outcome::Cancelled => Some(format!("{}: cancelled", s.name)),
                            _ => None,
                        })
                        .collect();
                    let deleted = mine.iter().any(|s| s.outcome == Outcome::Deleted);
                    let table_kept = r.kept.iter().any(|k| {
                        k.stack == names.stack
                            && k.logical_id == crate::provider::common::ids::AUDIT_TABLE
                    });
                    if deleted && !table_kept {
                        continue; // the audit table went with the stack
                    }
                    let (status, message) = if failed.is_empty() {
                        let summary = mine
                            .iter()
                            .map(|s| format!("{} {}", s.name, outcome_word(&s.outcome)))
                            .collect::<Vec<_>>()
                            .join(", ");
                        (AuditStatus::Success, summary)
                    } else {
                        (AuditStatus::Failed, failed.join("; "))
                    };
                    let rec = self.audit_record(action, tp, g, c, *p, status, &message);
                    final_audits.push((c.dynamodb.clone(), p.name.clone(), rec, names));
                }
            }
            kept.extend(r.kept);
            targets.push(TargetReport {
                account: tp.plan.account.clone(),
                region: tp.plan.region.clone(),
                role_arn: tp.role_arn.clone(),
                stacks: r.stacks,
            });
        }
        warnings.extend(write_audits(final_audits).await);
        if let Some(e) = first_err {
            return Err(e.into());
        }

        let mut report = DeployReport {
            kind: plan.kind,
            targets,
            outputs,
            entities: Vec::new(),
            catalog: None,
            kept,
            warnings: Vec::new(),
            catalog_error: None,
            requests: BTreeMap::new(),
        };
        if plan.kind == PlanKind::Deploy && report.succeeded() && wants_entities {
            match self
                .catalog_from(
                    specs,
                    pairs,
                    clients,
                    &mut report.outputs,
                    catalog_path,
                    events,
                )
                .await
            {
                Ok((entities, written)) => {
                    report.entities = entities;
                    report.catalog = written;
                }
                Err(e) => {
                    let msg = crate::error_chain(&e);
                    events(&Event::Warning {
                        message: format!("catalog not written: {msg}"),
                    });
                    report.catalog_error = Some(msg);
                }
            }
        } else if plan.kind == PlanKind::Deploy && !report.succeeded() {
            warnings.push("catalog not written: not every stack succeeded".to_owned());
        }
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    fn audit_record(
        &self,
        action: &str,
        tp: &TargetPlan,
        g: &Group<'_>,
        c: &Clients,
        p: crate::spec::ValidProvider<'_>,
        status: AuditStatus,
        message: &str,
    ) -> AuditRecord {
        let mut rec = AuditRecord::new(action, Names::of(&p).stack);
        rec.initiated_by = self.pool.caller().to_owned();
        rec.owner = p.owner.clone();
        rec.assumed_role = c.role_arn.clone();
        rec.target_account = g.target.account.clone();
        rec.target_region = g.target.region.clone();
        rec.prefix = p.prefix().to_owned();
        rec.provider_name = p.name.clone();
        rec.status = status;
        rec.message = message.to_owned();
        let stacks: Vec<_> = tp
            .plan
            .stacks
            .iter()
            .filter(|s| g.defs.iter().any(|d| d.name == s.name && d.provider == p.name))
            .map(|s| json!({ "stack": s.name, "action": s.action, "changes": s.changes.len(), "changeSetId": s.change_set_id }))
            .collect();
        rec.set_request(&json!({
            "command": self.opts.command,
            "planHash": tp.plan.content_hash,
            "session": c.session_name,
            "stacks": stacks,
        }));
        rec
    }

    /// Outputs → look-ups → entities → catalog file.
    async fn catalog_from(
        &self,
        specs: &SpecSet,
        pairs: &[(&TargetPlan, &Group<'_>)],
        clients: &[Clients],
        outputs: &mut StackOutputs,
        catalog_path: Option<&Path>,
        events: EventSink<'_>,
    ) -> Result<(Vec<Entity>, Option<CatalogReport>), Error> {
        for ((_, g), c) in pairs.iter().zip(clients) {
            for (_, p) in &g.providers {
                let Some(imp) = self.registry.get(p.kind) else {
                    continue;
                };
                for lookup in imp.lookups(*p) {
                    let found = perform(&c.eks, &lookup).await?;
                    outputs.insert(lookup.key(), found);
                }
            }
        }
        let mut entities = Vec::new();
        for (_, spec) in specs.iter() {
            entities.extend(catalog::entities(spec, &self.registry, outputs)?);
        }
        let written = match catalog_path {
            Some(path) => {
                let outcome = catalog::write_catalog(path, &entities)?;
                events(&Event::CatalogWritten {
                    path: path.display().to_string(),
                    outcome: outcome.as_str().to_owned(),
                });
                Some(CatalogReport {
                    path: path.display().to_string(),
                    outcome: outcome.as_str().to_owned(),
                })
            }
            None => None,
        };
        Ok((entities, written))
    }

    /// Throw away a plan that will not be applied: delete its change sets,
    /// and the empty stacks (`REVIEW_IN_PROGRESS`, no resources) that
    /// CloudFormation made to hold the change sets of new stacks, so that
    /// nothing is left behind. A stack that holds resources is never
    /// deleted here. Returns how many change sets were discarded.
    pub async fn discard(&self, plan: &DeploymentPlan) -> Result<usize, Error> {
        let none = plan
            .targets
            .iter()
            .all(|tp| tp.plan.stacks.iter().all(|s| s.change_set_id.is_none()));
        if none {
            // Nothing to delete: no need to load and render the specs.
            return Ok(0);
        }
        let specs = SpecSet::from_embedded(&plan.specs, &self.registry)?;
        let groups = self.groups(&specs)?;
        let pairs = match_targets(plan, &groups)?;
        let mut discarded = 0;
        for (tp, g) in pairs {
            if tp.plan.stacks.iter().all(|s| s.change_set_id.is_none()) {
                continue;
            }
            let c = self.clients(&g.target).await?;
            let cfn = &c.cloudformation;
            let state = read_state(cfn).await?;
            for ps in &tp.plan.stacks {
                let Some(cs) = &ps.change_set_id else {
                    continue;
                };
                let review_only = ps.action == ActionKind::Create
                    && state.get(&ps.name).is_some_and(|st| {
                        st.status == "REVIEW_IN_PROGRESS"
                            && ps.change_set_stack_id.as_deref() == Some(st.stack_id.as_str())
                    });
                if review_only {
                    let id = ps.change_set_stack_id.as_deref().unwrap_or(&ps.name);
                    cfn.delete_stack()
                        .stack_name(id)
                        .send()
                        .await
                        .map_err(|e| EngineError::aws("DeleteStack", Some(&ps.name), e))?;
                } else {
                    cfn.delete_change_set()
                        .change_set_name(cs)
                        .stack_name(&ps.name)
                        .send()
                        .await
                        .map_err(|e| EngineError::aws("DeleteChangeSet", Some(&ps.name), e))?;
                }
                discarded += 1;
            }
        }
        Ok(discarded)
    }

    /// Plan and apply in one go (no review step): what `harmonix apply
    /// FILE…` does after its confirmation.
    pub async fn deploy(
        &self,
        specs: &SpecSet,
        catalog_path: Option<&Path>,
        events: EventSink<'_>,
    ) -> Result<DeployReport, Error> {
        let plan = self.plan(specs, events).await?;
        self.apply(&plan, catalog_path, events).await
    }

    /// Plan and apply the deletion of every environment of `specs`.
    pub async fn destroy(
        &self,
        specs: &SpecSet,
        events: EventSink<'_>,
    ) -> Result<DeployReport, Error> {
        self.destroy_with(specs, DestroyOptions::default(), events)
            .await
    }

    /// [`Engine::destroy`] with `destroy`'s treatment of the kept data (see
    /// [`Engine::plan_destroy_with`]).
    pub async fn destroy_with(
        &self,
        specs: &SpecSet,
        destroy: DestroyOptions,
        events: EventSink<'_>,
    ) -> Result<DeployReport, Error> {
        let plan = self.plan_destroy_with(specs, destroy, events).await?;
        self.apply(&plan, None, events).await
    }

    /// Each defined stack's deployed state and drift (one state read per
    /// target).
    pub async fn status(&self, specs: &SpecSet) -> Result<Vec<TargetStatus>, Error> {
        let groups = self.groups(specs)?;
        let mut out = Vec::with_capacity(groups.len());
        for g in &groups {
            let c = self.clients(&g.target).await?;
            let state = read_state(&c.cloudformation).await?;
            out.push(TargetStatus {
                account: g.target.account.clone(),
                region: g.target.region.clone(),
                stacks: status_from_state(&g.defs, &state),
            });
        }
        Ok(out)
    }

    /// The outputs of every stack of `specs` (deployed or not), completed
    /// from the stacks' resources where CloudFormation lists no value, as
    /// the catalog entities are.
    pub async fn outputs(&self, specs: &SpecSet) -> Result<Vec<StackOutputsReport>, Error> {
        let groups = self.groups(specs)?;
        let mut out = Vec::new();
        for g in &groups {
            let c = self.clients(&g.target).await?;
            let state = read_state(&c.cloudformation).await?;
            for def in &g.defs {
                let mut outputs = BTreeMap::new();
                let deployed = state
                    .get(&def.name)
                    .filter(|st| st.status != "REVIEW_IN_PROGRESS");
                if let Some(st) = deployed {
                    outputs = st.outputs.clone();
                    complete_outputs(&c.cloudformation, def, &mut outputs).await?;
                }
                out.push(StackOutputsReport {
                    name: def.name.clone(),
                    provider: def.provider.clone(),
                    account: g.target.account.clone(),
                    region: g.target.region.clone(),
                    deployed: deployed.is_some(),
                    outputs,
                });
            }
        }
        Ok(out)
    }

    /// The newest `limit` audit records (at most
    /// [`super::audit::MAX_LATEST`]) of every provider of `specs`, newest
    /// first, read as each target's environment role.
    pub async fn audit_items(
        &self,
        specs: &SpecSet,
        limit: usize,
    ) -> Result<Vec<ProviderAudit>, Error> {
        let groups = self.groups_of(specs, false)?;
        let mut out = Vec::new();
        for g in &groups {
            let c = self.clients(&g.target).await?;
            for (_, p) in &g.providers {
                let table = Names::of(p).audit_table;
                let items = super::audit::latest(
                    &c.dynamodb,
                    &table,
                    limit,
                    super::audit::DEFAULT_CALL_TIMEOUT,
                )
                .await
                .map_err(|e| audit_read_error(&table, e))?;
                out.push(ProviderAudit {
                    provider: p.name.clone(),
                    account: g.target.account.clone(),
                    region: g.target.region.clone(),
                    table,
                    table_found: items.is_some(),
                    items: items.unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    /// Build the catalog entities from the deployed stacks and write them
    /// to `path` (when given). Stacks not deployed leave their values to
    /// the derived names.
    pub async fn catalog(
        &self,
        specs: &SpecSet,
        path: Option<&Path>,
        events: EventSink<'_>,
    ) -> Result<(Vec<Entity>, Option<CatalogReport>), Error> {
        let groups = self.groups(specs)?;
        let mut clients = Vec::with_capacity(groups.len());
        let mut outputs = StackOutputs::new();
        for g in &groups {
            let c = self.clients(&g.target).await?;
            let state = read_state(&c.cloudformation).await?;
            for def in &g.defs {
                if let Some(st) = state.get(&def.name) {
                    let mut out = st.outputs.clone();
                    complete_outputs(&c.cloudformation, def, &mut out).await?;
                    outputs.insert(def.name.clone(), out);
                }
            }
            clients.push(c);
        }
        // Reuse the apply path's look-ups and write.
        let plans: Vec<TargetPlan> = groups
            .iter()
            .map(|g| TargetPlan {
                role_arn: g.target.role_arn.clone(),
                providers: Vec::new(),
                plan: Plan::new(
                    g.target.account.clone(),
                    g.target.region.clone(),
                    Vec::new(),
                ),
            })
            .collect();
        let pairs: Vec<(&TargetPlan, &Group<'_>)> = plans.iter().zip(groups.iter()).collect();
        self.catalog_from(specs, &pairs, &clients, &mut outputs, path, events)
            .await
    }

    /// Make sure the lock table exists in every target account/region of
    /// `specs` (what `harmonix bootstrap` does). Returns the
    /// `account/region` pairs prepared.
    pub async fn bootstrap(&self, specs: &SpecSet) -> Result<Vec<String>, Error> {
        let groups = self.groups(specs)?;
        let mut done = BTreeSet::new();
        for g in &groups {
            let key = format!("{}/{}", g.target.account, g.target.region);
            if done.contains(&key) {
                continue;
            }
            let c = self.clients(&g.target).await?;
            ensure_lock_table_named(&c.dynamodb, &self.opts.lock.table, TABLE_ACTIVE_TIMEOUT)
                .await?;
            self.templates(&g.target, &c).bootstrap().await?;
            self.ensure_bootstrap_stack(&g.target, &c, None, &|_| {})
                .await?;
            done.insert(key);
        }
        Ok(done.into_iter().collect())
    }

    /// Deploy the bootstrap stack of `target`'s account/region
    /// ([`crate::provider::account`]) unless it is deployed and current.
    /// Returns whether it was deployed now.
    async fn ensure_bootstrap_stack(
        &self,
        target: &Target,
        c: &Clients,
        state: Option<&super::state::StateMap>,
        events: EventSink<'_>,
    ) -> Result<bool, Error> {
        let def = bootstrap_stack(&target.account, &target.region);
        let hash = def.content_hash();
        let cfn = &c.cloudformation;
        let current = |st: &super::state::StateMap| {
            st.get(BOOTSTRAP_STACK)
                .is_some_and(|s| s.in_sync_with_hash(&hash))
        };
        let popts = PlanOptions {
            templates: self.templates(target, c),
            ..self.plan_options()
        };
        // The bootstrap stack is not part of the reviewed plan: show its
        // execution (started, progress, done or failed), not its planning
        // or a second `finished`.
        let forward = |e: &Event| {
            if matches!(
                e,
                Event::Started { .. }
                    | Event::ResourceProgress { .. }
                    | Event::StackDone { .. }
                    | Event::StackFailed { .. }
                    | Event::Waiting { .. }
            ) {
                events(e);
            }
        };
        let events: EventSink<'_> = &forward;
        let mut read = match state {
            Some(s) if current(s) => return Ok(false),
            Some(s) if busy_stacks(&[BOOTSTRAP_STACK], s).is_empty() => None,
            // Another run is deploying it right now: wait, then look again.
            _ => Some(read_settled_state(&[BOOTSTRAP_STACK], cfn, &popts, events).await?),
        };
        if read.as_ref().is_some_and(current) {
            return Ok(false);
        }
        let state = match (read.take(), state) {
            (Some(r), _) => &*read.insert(r),
            (None, Some(s)) => s,
            (None, None) => &*read.insert(read_state(cfn).await?),
        };
        let deployed = async {
            let stacks =
                plan_with_state(std::slice::from_ref(&def), state, cfn, &popts, events).await?;
            let plan = Plan::new(target.account.clone(), target.region.clone(), stacks);
            if plan.is_noop() {
                return Ok(None);
            }
            let aopts = ApplyOptions {
                templates: popts.templates.clone(),
                ..self.apply_options()
            };
            apply_checked(&plan, state, cfn, Some(&c.s3), &aopts, events)
                .await
                .map(Some)
        }
        .await;
        let report = match deployed {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(false),
            Err(e) => {
                // Two runs making it at once: the other one's may have won.
                let settled = read_settled_state(&[BOOTSTRAP_STACK], cfn, &popts, events).await?;
                if current(&settled) {
                    return Ok(false);
                }
                return Err(e.into());
            }
        };
        if let Some(failed) = report.stacks.iter().find(|s| {
            !matches!(
                s.outcome,
                Outcome::Created | Outcome::Updated | Outcome::Unchanged
            )
        }) {
            let settled = read_settled_state(&[BOOTSTRAP_STACK], cfn, &popts, events).await?;
            if current(&settled) {
                return Ok(false);
            }
            return Err(EngineError::StackFailed {
                stack: BOOTSTRAP_STACK.to_owned(),
                status: outcome_word(&failed.outcome).to_owned(),
                reason: format!(
                    "the account/region bootstrap stack of {}/{} could not be deployed ({:?}); \
                     run `harmonix bootstrap` and check the stack's events",
                    target.account, target.region, failed.outcome
                ),
            }
            .into());
        }
        Ok(true)
    }
}

/// DynamoDB item writes (locks, audit records) sent at the same time.
const PARALLEL_ITEM_WRITES: usize = 16;

/// Release locks concurrently; a message per lock that could not be
/// released (its lease then expires by itself).
/// Refuse `delete_data` for the first production environment of `specs`.
fn refuse_production_data(specs: &SpecSet) -> Result<(), EngineError> {
    for (_, spec) in specs.iter() {
        for p in spec.providers() {
            let why = if p.lifecycle() == "production" {
                Some("its lifecycle is `production`".to_owned())
            } else {
                spec.environments()
                    .iter()
                    .find(|e| {
                        e.providers.contains(&p.name)
                            && e.lifecycle.as_deref() == Some("production")
                    })
                    .map(|e| {
                        format!(
                            "environment `{}` lists it with lifecycle `production`",
                            e.name
                        )
                    })
            };
            if let Some(why) = why {
                return Err(EngineError::InvalidInput {
                    path: format!("environment `{}`", p.name),
                    problem: format!(
                        "{why}: deleting the data its stacks keep (audit table, key, log groups, buckets, database and its snapshot) needs delete_production_data as well as delete_data (CLI: --delete-data --delete-production-data)"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Refuse to plan the create (or re-create) of a stack when a table its
/// template retains under a fixed name exists already: an earlier destroy
/// kept it, and CloudFormation would fail the create ("already exists")
/// after creating everything else. Tables are looked up (the audit table
/// is in every environment stack); the other named resources the template
/// keeps are listed with them, as the same destroy kept them.
async fn refuse_retained(
    triage: &Triage,
    state: &super::state::StateMap,
    clients: &Clients,
    events: EventSink<'_>,
) -> Result<(), Error> {
    let mut candidates = Vec::new();
    for def in &triage.full {
        let creating = state
            .get(&def.name)
            .is_none_or(|s| s.status == "REVIEW_IN_PROGRESS");
        if creating && let Ok(t) = serde_json::to_value(&def.template) {
            candidates.push((def.name.clone(), t, def.parameters.clone()));
        }
    }
    for ps in triage.done.iter().flatten() {
        if ps.action == ActionKind::Recreate
            && let Some(src) = &ps.source
            && let Ok(t) = serde_json::from_str::<serde_json::Value>(&src.template_body)
        {
            candidates.push((ps.name.clone(), t, src.parameters.clone()));
        }
    }
    for (stack, template, parameters) in candidates {
        let names = retained_names(&template, &parameters);
        let mut existing = Vec::new();
        for (id, kind, name) in &names {
            if kind != "AWS::DynamoDB::Table" {
                continue;
            }
            match clients
                .dynamodb
                .describe_table()
                .table_name(name)
                .send()
                .await
            {
                Ok(_) => existing.push(format!("table `{name}` ({id})")),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(aws_sdk_dynamodb::operation::describe_table::DescribeTableError::is_resource_not_found_exception) => {}
                Err(e) => events(&Event::Warning {
                    message: format!(
                        "could not check whether table `{name}` of stack `{stack}` exists: {}",
                        crate::error_chain(&e)
                    ),
                }),
            }
        }
        if existing.is_empty() {
            continue;
        }
        let others: Vec<String> = names
            .iter()
            .filter(|(_, kind, _)| kind != "AWS::DynamoDB::Table")
            .map(|(id, kind, name)| format!("`{name}` ({id}, {kind})"))
            .collect();
        let with = if others.is_empty() {
            String::new()
        } else {
            format!("; kept with it, under fixed names: {}", others.join(", "))
        };
        return Err(EngineError::RetainedResourcesExist {
            stack,
            detail: format!(
                "{} exists, kept when the environment was destroyed{with}. CloudFormation would fail the create with \"already exists\". Save what you need from them, delete them (the table has deletion protection: `aws dynamodb update-table --table-name NAME --no-deletion-protection-enabled` first), then plan again",
                existing.join(", ")
            ),
        }
        .into());
    }
    Ok(())
}

async fn release_all(guards: Vec<LockGuard>) -> Vec<String> {
    futures_util::stream::iter(guards.into_iter().map(|g| async move {
        let id = g.lock_id().to_owned();
        g.release()
            .await
            .err()
            .map(|e| format!("releasing lock `{id}`: {e}"))
    }))
    .buffer_unordered(PARALLEL_ITEM_WRITES)
    .filter_map(|m| async move { m })
    .collect()
    .await
}

/// A failed audit read as an engine error (it names the table, never
/// credentials).
fn audit_read_error(table: &str, e: super::audit::AuditError) -> Error {
    use super::audit::AuditError;
    match e {
        AuditError::Timeout { after, .. } => EngineError::Timeout {
            what: format!("DynamoDB Query on audit table `{table}`"),
            after,
        }
        .into(),
        AuditError::Aws {
            operation,
            code,
            source,
            ..
        } => EngineError::Aws {
            service: "DynamoDB",
            operation,
            stack: None,
            code: code.unwrap_or_else(|| "unknown".to_owned()),
            message: format!("audit table `{table}`: {source}"),
            source,
        }
        .into(),
    }
}

/// Write audit records concurrently; a warning per record not written.
async fn write_audits(
    writes: Vec<(aws_sdk_dynamodb::Client, String, AuditRecord, Names)>,
) -> Vec<String> {
    futures_util::stream::iter(writes.into_iter().map(
        |(client, provider, rec, names)| async move {
            AuditWriter::new(client)
                .write(&names.audit_table, &rec)
                .await
                .err()
                .map(|e| format!("audit record for `{provider}`: {e}"))
        },
    ))
    .buffer_unordered(PARALLEL_ITEM_WRITES)
    .filter_map(|m| async move { m })
    .collect()
    .await
}

/// Whether the plan changes any stack of provider `name` in this target:
/// providers with nothing to do are neither locked nor audited.
fn provider_changes(tp: &TargetPlan, g: &Group<'_>, name: &str) -> bool {
    tp.plan.stacks.iter().any(|s| {
        s.action != ActionKind::NoOp
            && g.defs
                .iter()
                .any(|d| d.name == s.name && d.provider == name)
    })
}

/// The lock of one environment provider.
pub fn lock_id(target: &Target, base_name: &str) -> String {
    format!("{}/{}/{base_name}", target.account, target.region)
}

fn stack_exists(states: &[super::state::StateMap], name: &str) -> bool {
    states.iter().any(|s| {
        s.get(name)
            .is_some_and(|st| st.status != "REVIEW_IN_PROGRESS")
    })
}

fn outcome_word(o: &Outcome) -> &'static str {
    match o {
        Outcome::Created => "created",
        Outcome::Updated => "updated",
        Outcome::Deleted => "deleted",
        Outcome::Unchanged => "unchanged",
        Outcome::Failed { .. } => "failed",
        Outcome::Skipped { .. } => "skipped",
        Outcome::Cancelled => "cancelled",
    }
}

/// Pair each target plan with the group its specs render to, and check
/// that the plan's stacks are exactly what the specs render (same names,
/// same content hashes): a plan file whose specs were edited, or that a
/// different Harmonix version would render differently, is refused.
fn match_targets<'p, 'g, 's>(
    plan: &'p DeploymentPlan,
    groups: &'g [Group<'s>],
) -> Result<Vec<(&'p TargetPlan, &'g Group<'s>)>, Error> {
    let invalid = |reason: String| Error::Engine(EngineError::InvalidPlan { reason });
    if plan.targets.len() != groups.len() {
        return Err(invalid(format!(
            "the plan has {} target(s) but its specs define {}",
            plan.targets.len(),
            groups.len()
        )));
    }
    let mut out = Vec::with_capacity(groups.len());
    for tp in &plan.targets {
        let g = groups
            .iter()
            .find(|g| {
                g.target.account == tp.plan.account
                    && g.target.region == tp.plan.region
                    && g.target.role_arn == tp.role_arn
            })
            .ok_or_else(|| {
                invalid(format!(
                    "target {}/{} ({}) is not defined by the plan's specs",
                    tp.plan.account, tp.plan.region, tp.role_arn
                ))
            })?;
        if tp.plan.stacks.len() != g.defs.len() {
            return Err(invalid(format!(
                "target {}/{} plans {} stack(s) but its specs define {}",
                tp.plan.account,
                tp.plan.region,
                tp.plan.stacks.len(),
                g.defs.len()
            )));
        }
        for (ps, def) in tp.plan.stacks.iter().zip(&g.defs) {
            if ps.name != def.name {
                return Err(invalid(format!(
                    "the plan has stack `{}` where its specs define `{}`",
                    ps.name, def.name
                )));
            }
            if plan.kind == PlanKind::Deploy && ps.hash != def.content_hash() {
                return Err(invalid(format!(
                    "stack `{}` renders differently from when it was planned (Harmonix {} made the plan, this is {}); plan again",
                    ps.name,
                    plan.harmonix_version,
                    env!("CARGO_PKG_VERSION")
                )));
            }
        }
        out.push((tp, g));
    }
    Ok(out)
}

/// Where the catalog goes by default: `catalog-info.yaml` in the current
/// directory.
pub fn default_catalog_path() -> PathBuf {
    PathBuf::from("catalog-info.yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: T) {}

    /// The engine's futures can be spawned on a multi-threaded runtime (the
    /// bindings do): checked by the compiler.
    #[test]
    fn engine_futures_are_send() {
        fn check(e: &Engine, s: &SpecSet, p: &DeploymentPlan, sink: EventSink<'_>) {
            assert_send(e.plan(s, sink));
            assert_send(e.plan_destroy(s, sink));
            assert_send(e.apply(p, None, sink));
            assert_send(e.deploy(s, None, sink));
            assert_send(e.destroy(s, sink));
            assert_send(e.destroy_with(s, DestroyOptions::default(), sink));
            assert_send(e.status(s));
            assert_send(e.catalog(s, None, sink));
            assert_send(e.discard(p));
            assert_send(e.bootstrap(s));
        }
        let _ = check;
    }

    fn multi(edit: impl Fn(String) -> String) -> SpecSet {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs/multi.yaml");
        let text = edit(std::fs::read_to_string(&path).expect("multi.yaml"));
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("multi.yaml");
        std::fs::write(&p, text).expect("write");
        SpecSet::load(&[&p], &Registry::builtin()).expect("valid")
    }

    #[test]
    fn deleting_production_data_needs_its_own_flag() {
        // shop-prod-ecs has lifecycle production.
        let err = refuse_production_data(&multi(|t| t)).expect_err("refused");
        let msg = err.to_string();
        assert!(msg.contains("environment `shop-prod-ecs`"), "{msg}");
        assert!(msg.contains("--delete-production-data"), "{msg}");
        // The environment's lifecycle counts as well as the provider's.
        let env_only = multi(|t| {
            t.replacen(
                "    lifecycle: production
    account: \"210987654321\"",
                "    account: \"210987654321\"",
                1,
            )
        });
        let err = refuse_production_data(&env_only).expect_err("refused");
        assert!(
            err.to_string()
                .contains("environment `shop-prod` lists it with lifecycle `production`"),
            "{err}"
        );
        let none = multi(|t| t.replace("lifecycle: production", "lifecycle: experimental"));
        refuse_production_data(&none).expect("no production environment");
    }
}
