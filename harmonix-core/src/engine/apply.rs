//! Applying a reviewed [`Plan`]: refuse a stale plan, execute exactly the
//! reviewed change sets in dependency order with bounded concurrency, wait
//! for every stack with one poller per account/region, and report per
//! stack. Also [`destroy`].
//!
//! Waiting relies on CloudFormation moving a stack to `*_IN_PROGRESS`
//! before `ExecuteChangeSet`/`DeleteStack` return. The poller reads all
//! in-flight stacks together: one paginated `DescribeStacks` when more than
//! [`ApplyOptions::list_threshold`] stacks are in flight, otherwise one
//! `DescribeStacks` per in-flight stack. A [`ActionKind::Recreate`]
//! creates its change set after the delete, while the poller waits.
//!
//! Change sets run with `RetainExceptOnCreate`: a create (or an update that
//! adds resources) that rolls back deletes what it created, `Retain`ed
//! resources included, so the retained data of an environment never
//! blocks the re-create of a stack that failed to create.
//! <https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ExecuteChangeSet.html>

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::ChangeSetType;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::assets::TemplateStore;
use super::error::EngineError;
use super::events::{Event, EventSink};
use super::plan::{
    ActionKind, Backoff, ChangeSetResult, Observed, Plan, PlanOptions, PlannedStack,
    create_change_set, find_cycle, plan_destroy,
};
use super::retained::{BUCKET, RetainedResource, empty_bucket};
use super::state::{StackState, StateMap, describe_all, is_in_progress, read_state};
use crate::provider::{StackDefinition, StackOutputs};
use crate::template::hex_sha256;

/// Options of [`apply`] and [`destroy`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Stacks executed at the same time (at least 1; default 4).
    pub concurrency: usize,
    /// Limit for the whole apply.
    pub timeout: Duration,
    /// Polling of stack statuses.
    pub poll: Backoff,
    /// Limit for the change set of a re-created stack.
    pub change_set_timeout: Duration,
    /// With more stacks than this in flight, the poller lists all stacks
    /// (paginated) instead of describing each.
    pub list_threshold: usize,
    /// Cancelling it stops starting new stacks; stacks already running are
    /// awaited (CloudFormation finishes them anyway) and reported, the
    /// rest reported [`Outcome::Cancelled`]. Re-running converges.
    pub cancel: CancellationToken,
    /// How the templates of re-created stacks reach CloudFormation (see
    /// [`PlanOptions::templates`]).
    pub templates: TemplateStore,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            timeout: Duration::from_hours(1),
            poll: Backoff::default(),
            change_set_timeout: Duration::from_mins(5),
            list_threshold: 3,
            cancel: CancellationToken::new(),
            templates: TemplateStore::inline_only(),
        }
    }
}

/// What happened to a stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
#[non_exhaustive]
pub enum Outcome {
    /// Created (or re-created).
    Created,
    /// Updated.
    Updated,
    /// Deleted.
    Deleted,
    /// Nothing to do.
    Unchanged,
    /// Failed.
    Failed {
        /// The first failing resource's reason, or the stack's.
        reason: String,
    },
    /// Not executed because a stack it depends on did not succeed.
    Skipped {
        /// That stack.
        because: String,
    },
    /// Not started because the apply was cancelled.
    Cancelled,
}

/// One stack's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackReport {
    /// Stack name.
    pub name: String,
    /// What was done.
    pub action: ActionKind,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Final stack status, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<String>,
}

/// The result of [`apply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    /// Per stack, in plan order.
    pub stacks: Vec<StackReport>,
    /// Outputs of the deployed stacks.
    pub outputs: StackOutputs,
    /// What the deleted stacks kept (their templates' `DeletionPolicy`),
    /// in plan order.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub kept: Vec<RetainedResource>,
}

impl ApplyReport {
    /// Whether every stack succeeded (or needed nothing).
    pub fn succeeded(&self) -> bool {
        self.stacks.iter().all(|s| {
            matches!(
                s.outcome,
                Outcome::Created | Outcome::Updated | Outcome::Deleted | Outcome::Unchanged
            )
        })
    }

    /// The report of one stack.
    pub fn stack(&self, name: &str) -> Option<&StackReport> {
        self.stacks.iter().find(|s| s.name == name)
    }
}

/// Refuse a plan whose stacks changed since planning.
pub fn check_stale(plan: &Plan, state: &StateMap) -> Result<(), EngineError> {
    for ps in &plan.stacks {
        let now = state.get(&ps.name);
        let stale = |detail: String| EngineError::StalePlan {
            stack: ps.name.clone(),
            detail,
        };
        if ps.action == ActionKind::Create {
            match now {
                None => {}
                Some(s) if s.status == "REVIEW_IN_PROGRESS" => {
                    if let Some(id) = &ps.change_set_stack_id
                        && *id != s.stack_id
                    {
                        return Err(stale(format!("stack id {} -> {}", id, s.stack_id)));
                    }
                }
                Some(s) => {
                    return Err(stale(format!(
                        "it was to be created but now exists in {}",
                        s.status
                    )));
                }
            }
            continue;
        }
        match (&ps.observed, now) {
            (None, None) => {}
            (None, Some(s)) => {
                return Err(stale(format!("it did not exist, now it is {}", s.status)));
            }
            (Some(_), None) => return Err(stale("it was deleted".to_owned())),
            (Some(o), Some(s)) => {
                let cur = Observed::from(s);
                if cur != *o {
                    return Err(stale(describe_difference(o, &cur)));
                }
            }
        }
    }
    Ok(())
}

fn describe_difference(old: &Observed, new: &Observed) -> String {
    let mut parts = Vec::new();
    if old.stack_id != new.stack_id {
        parts.push("it was replaced by a new stack".to_owned());
    }
    if old.status != new.status {
        parts.push(format!("status {} -> {}", old.status, new.status));
    }
    if old.last_updated != new.last_updated {
        parts.push(format!(
            "last updated {} -> {}",
            old.last_updated.as_deref().unwrap_or("never"),
            new.last_updated.as_deref().unwrap_or("never")
        ));
    }
    if old.hash != new.hash {
        parts.push("its hash tag changed".to_owned());
    }
    parts.join(", ")
}

/// Where a stack is in the apply.
enum Slot {
    Pending,
    InFlight(Flight),
    Done(StackReport),
}

/// Phases of an in-flight stack.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A change set runs; success is the given status.
    Execute(&'static str),
    /// A delete runs (of a delete, or the first half of a re-create).
    Delete,
    /// The update before a delete runs (see [`super::retained`]).
    Prepare,
    /// `ContinueUpdateRollback` runs (the first half of a
    /// [`ActionKind::ResumeRollback`]).
    ContinueRollback,
}

struct Flight {
    phase: Phase,
    /// Stack id (or name) to poll.
    stack_id: String,
    /// Stack events already reported.
    seen_events: BTreeSet<String>,
    /// `DeleteStack` requests made for this stack.
    deletes: u8,
}

/// Idempotency token of one request of this plan.
fn request_token(plan: &Plan, stack: &str, op: &str) -> String {
    let h = hex_sha256(format!("{}\0{stack}\0{op}", plan.content_hash).as_bytes());
    format!("harmonix-{}", h.get(..40).unwrap_or(&h))
}

fn outcome_done(action: ActionKind) -> Outcome {
    match action {
        ActionKind::Create | ActionKind::Recreate => Outcome::Created,
        ActionKind::Update | ActionKind::ResumeRollback => Outcome::Updated,
        ActionKind::Delete => Outcome::Deleted,
        _ => Outcome::Unchanged,
    }
}

/// Apply a reviewed plan with the client of its account/region.
pub async fn apply(
    plan: &Plan,
    client: &Client,
    opts: &ApplyOptions,
    events: EventSink<'_>,
) -> Result<ApplyReport, EngineError> {
    let deps: BTreeMap<&str, Vec<&str>> = plan
        .stacks
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.depends_on.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    if let Some(stack) = find_cycle(&deps) {
        return Err(EngineError::InvalidPlan {
            reason: format!("stack `{stack}` depends on itself through its dependencies"),
        });
    }
    let state = read_state(client).await?;
    check_stale(plan, &state)?;
    apply_checked(plan, &state, client, None, opts, events).await
}

/// [`apply`] after the caller read `state` and passed [`check_stale`]
/// with it (for callers that check several plans before applying any).
/// `s3` empties the buckets of a destroy with `delete_data` (a plan that
/// has such buckets fails those stacks without it).
pub async fn apply_checked(
    plan: &Plan,
    state: &StateMap,
    client: &Client,
    s3: Option<&aws_sdk_s3::Client>,
    opts: &ApplyOptions,
    events: EventSink<'_>,
) -> Result<ApplyReport, EngineError> {
    // Prerequisites: a stack's dependencies; for a delete, its dependents.
    let prereqs: Vec<Vec<usize>> = plan
        .stacks
        .iter()
        .map(|ps| {
            plan.stacks
                .iter()
                .enumerate()
                .filter(|(_, other)| {
                    if ps.action == ActionKind::Delete {
                        other.action == ActionKind::Delete && other.depends_on.contains(&ps.name)
                    } else {
                        ps.depends_on.contains(&other.name)
                    }
                })
                .map(|(i, _)| i)
                .collect()
        })
        .collect();

    let mut outputs = StackOutputs::new();
    let mut slots: Vec<Slot> = plan
        .stacks
        .iter()
        .map(|ps| {
            if ps.action == ActionKind::NoOp {
                let st = state.get(&ps.name);
                if let Some(s) = st {
                    outputs.insert(ps.name.clone(), s.outputs.clone());
                }
                Slot::Done(StackReport {
                    name: ps.name.clone(),
                    action: ps.action,
                    outcome: Outcome::Unchanged,
                    status: st.map(|s| s.status.clone()),
                })
            } else {
                Slot::Pending
            }
        })
        .collect();

    let deadline = Instant::now() + opts.timeout;
    let mut delay = Duration::ZERO;
    loop {
        schedule(plan, client, s3, opts, events, &prereqs, &mut slots).await;
        let in_flight = slots
            .iter()
            .filter(|s| matches!(s, Slot::InFlight(_)))
            .count();
        if in_flight == 0 {
            break;
        }
        if Instant::now() >= deadline {
            return Err(EngineError::Timeout {
                what: format!("{in_flight} stack(s) to finish"),
                after: opts.timeout,
            });
        }
        tokio::time::sleep(delay).await;
        delay = opts.poll.next(delay);
        if poll(plan, client, s3, opts, events, &mut slots, &mut outputs).await? {
            delay = Duration::ZERO;
        }
    }

    let stacks: Vec<StackReport> = slots
        .into_iter()
        .zip(&plan.stacks)
        .map(|(slot, ps)| match slot {
            Slot::Done(r) => r,
            // Unreachable with an acyclic plan; reported, never silent.
            Slot::Pending | Slot::InFlight(_) => StackReport {
                name: ps.name.clone(),
                action: ps.action,
                outcome: Outcome::Skipped {
                    because: "its dependencies could not be ordered".to_owned(),
                },
                status: None,
            },
        })
        .collect();
    let count = |f: fn(&Outcome) -> bool| stacks.iter().filter(|s| f(&s.outcome)).count();
    events(&Event::Finished {
        succeeded: count(|o| {
            matches!(
                o,
                Outcome::Created | Outcome::Updated | Outcome::Deleted | Outcome::Unchanged
            )
        }),
        failed: count(|o| matches!(o, Outcome::Failed { .. })),
        skipped: count(|o| matches!(o, Outcome::Skipped { .. } | Outcome::Cancelled)),
    });
    let kept = stacks
        .iter()
        .zip(&plan.stacks)
        .filter(|(r, _)| r.outcome == Outcome::Deleted)
        .flat_map(|(_, ps)| ps.kept.iter().cloned())
        .collect();
    Ok(ApplyReport {
        stacks,
        outputs,
        kept,
    })
}

/// Skip stacks behind failures; start ready stacks up to the concurrency.
async fn schedule(
    plan: &Plan,
    client: &Client,
    s3: Option<&aws_sdk_s3::Client>,
    opts: &ApplyOptions,
    events: EventSink<'_>,
    prereqs: &[Vec<usize>],
    slots: &mut [Slot],
) {
    let mut progressed = true;
    while progressed {
        progressed = false;
        for i in 0..slots.len() {
            if !matches!(slots.get(i), Some(Slot::Pending)) {
                continue;
            }
            let (Some(ps), Some(pre)) = (plan.stacks.get(i), prereqs.get(i)) else {
                continue;
            };
            if opts.cancel.is_cancelled() {
                events(&Event::Skipped {
                    stack: ps.name.clone(),
                    because: "cancelled".to_owned(),
                });
                slots[i] = Slot::Done(StackReport {
                    name: ps.name.clone(),
                    action: ps.action,
                    outcome: Outcome::Cancelled,
                    status: None,
                });
                progressed = true;
                continue;
            }
            let mut blocked_by = None;
            let mut ready = true;
            for &p in pre {
                match slots.get(p) {
                    Some(Slot::Done(r)) => {
                        if matches!(
                            r.outcome,
                            Outcome::Failed { .. } | Outcome::Skipped { .. } | Outcome::Cancelled
                        ) {
                            blocked_by = Some(r.name.clone());
                        }
                    }
                    _ => ready = false,
                }
            }
            if let Some(because) = blocked_by {
                events(&Event::Skipped {
                    stack: ps.name.clone(),
                    because: because.clone(),
                });
                slots[i] = Slot::Done(StackReport {
                    name: ps.name.clone(),
                    action: ps.action,
                    outcome: Outcome::Skipped { because },
                    status: None,
                });
                progressed = true;
                continue;
            }
            let in_flight = slots
                .iter()
                .filter(|s| matches!(s, Slot::InFlight(_)))
                .count();
            if !ready || in_flight >= opts.concurrency.max(1) {
                continue;
            }
            events(&Event::Started {
                stack: ps.name.clone(),
                action: ps.action,
            });
            slots[i] = match start(plan, ps, client, s3, opts).await {
                Ok(f) => Slot::InFlight(f),
                Err(e) => fail(events, ps, None, e.to_string()),
            };
            progressed = true;
        }
    }
}

fn fail(events: EventSink<'_>, ps: &PlannedStack, status: Option<String>, reason: String) -> Slot {
    events(&Event::StackFailed {
        stack: ps.name.clone(),
        status: status.clone(),
        reason: reason.clone(),
    });
    Slot::Done(StackReport {
        name: ps.name.clone(),
        action: ps.action,
        outcome: Outcome::Failed { reason },
        status,
    })
}

/// Start a stack's operation.
async fn start(
    plan: &Plan,
    ps: &PlannedStack,
    client: &Client,
    s3: Option<&aws_sdk_s3::Client>,
    opts: &ApplyOptions,
) -> Result<Flight, EngineError> {
    let known_id = ps
        .observed
        .as_ref()
        .map(|o| o.stack_id.clone())
        .filter(|s| !s.is_empty());
    match ps.action {
        ActionKind::Create | ActionKind::Update => {
            let Some(cs) = &ps.change_set_id else {
                return Err(EngineError::InvalidPlan {
                    reason: format!("stack `{}` has no change set", ps.name),
                });
            };
            client
                .execute_change_set()
                .change_set_name(cs)
                .stack_name(&ps.name)
                .client_request_token(request_token(plan, &ps.name, "execute"))
                .retain_except_on_create(true)
                .send()
                .await
                .map_err(|e| EngineError::aws("ExecuteChangeSet", Some(&ps.name), e))?;
            let target = if ps.action == ActionKind::Create {
                "CREATE_COMPLETE"
            } else {
                "UPDATE_COMPLETE"
            };
            Ok(Flight {
                phase: Phase::Execute(target),
                stack_id: ps
                    .change_set_stack_id
                    .clone()
                    .or(known_id)
                    .unwrap_or_else(|| ps.name.clone()),
                seen_events: BTreeSet::new(),
                deletes: 0,
            })
        }
        ActionKind::Delete if ps.source.is_some() => {
            let update = execute_source(
                plan,
                ps,
                client,
                opts,
                ChangeSetType::Update,
                ps.observed.as_ref(),
            )
            .await?;
            if let Some(f) = update {
                Ok(Flight {
                    phase: Phase::Prepare,
                    ..f
                })
            } else {
                let id = known_id.unwrap_or_else(|| ps.name.clone());
                delete(plan, ps, client, s3, id, 0).await
            }
        }
        ActionKind::Delete | ActionKind::Recreate => {
            let id = known_id.unwrap_or_else(|| ps.name.clone());
            delete(plan, ps, client, s3, id, 0).await
        }
        ActionKind::ResumeRollback => {
            let id = known_id.unwrap_or_else(|| ps.name.clone());
            client
                .continue_update_rollback()
                .stack_name(&id)
                .client_request_token(request_token(plan, &ps.name, "continue-rollback"))
                .send()
                .await
                .map_err(|e| EngineError::aws("ContinueUpdateRollback", Some(&ps.name), e))?;
            Ok(Flight {
                phase: Phase::ContinueRollback,
                stack_id: id,
                seen_events: BTreeSet::new(),
                deletes: 0,
            })
        }
        _ => Err(EngineError::InvalidPlan {
            reason: format!("stack `{}` has nothing to start", ps.name),
        }),
    }
}

/// `DeleteStack` (the `n`-th time for this stack), after emptying the
/// buckets the plan deletes with their data.
async fn delete(
    plan: &Plan,
    ps: &PlannedStack,
    client: &Client,
    s3: Option<&aws_sdk_s3::Client>,
    id: String,
    n: u8,
) -> Result<Flight, EngineError> {
    let buckets: Vec<&str> = ps
        .deleted_data
        .iter()
        .filter(|r| r.resource_type == BUCKET)
        .map(|r| r.physical_id.as_str())
        .collect();
    if !buckets.is_empty() {
        let Some(s3) = s3 else {
            return Err(EngineError::InvalidPlan {
                reason: format!(
                    "stack `{}` has buckets to empty before its delete ({}) but no S3 client was given",
                    ps.name,
                    buckets.join(", ")
                ),
            });
        };
        for b in buckets {
            empty_bucket(s3, &ps.name, b).await?;
        }
    }
    let op = if n == 0 {
        "delete".to_owned()
    } else {
        format!("delete-{n}")
    };
    client
        .delete_stack()
        .stack_name(&id)
        .client_request_token(request_token(plan, &ps.name, &op))
        .send()
        .await
        .map_err(|e| EngineError::aws("DeleteStack", Some(&ps.name), e))?;
    Ok(Flight {
        phase: Phase::Delete,
        stack_id: id,
        seen_events: BTreeSet::new(),
        deletes: n + 1,
    })
}

/// The second half of a re-create (a `CREATE` change set) or of a resumed
/// rollback (an `UPDATE` change set), executed; for a delete, the update
/// that comes first. `None` when CloudFormation
/// finds nothing to change.
async fn execute_source(
    plan: &Plan,
    ps: &PlannedStack,
    client: &Client,
    opts: &ApplyOptions,
    kind: ChangeSetType,
    observed: Option<&Observed>,
) -> Result<Option<Flight>, EngineError> {
    let Some(source) = &ps.source else {
        return Err(EngineError::InvalidPlan {
            reason: format!(
                "stack `{}` is to be {} but the plan has no template for it",
                ps.name,
                ps.action.as_str()
            ),
        });
    };
    let popts = PlanOptions {
        concurrency: 1,
        change_set_timeout: opts.change_set_timeout,
        poll: opts.poll,
        templates: opts.templates.clone(),
        ..PlanOptions::default()
    };
    let create = kind == ChangeSetType::Create;
    // The update before a delete is made of the deployed template, not of
    // the definition the hash stands for.
    let hash = if ps.action == ActionKind::Delete {
        hex_sha256(source.template_body.as_bytes())
    } else {
        ps.hash.clone()
    };
    let result = create_change_set(client, &ps.name, source, &hash, observed, kind, &popts).await?;
    let ChangeSetResult::Ready { id, stack_id, .. } = result else {
        return Ok(None);
    };
    client
        .execute_change_set()
        .change_set_name(&id)
        .stack_name(&ps.name)
        .client_request_token(request_token(
            plan,
            &ps.name,
            match (create, ps.action) {
                (true, _) => "recreate",
                (false, ActionKind::Delete) => "prepare",
                (false, _) => "resume",
            },
        ))
        .retain_except_on_create(true)
        .send()
        .await
        .map_err(|e| EngineError::aws("ExecuteChangeSet", Some(&ps.name), e))?;
    Ok(Some(Flight {
        phase: Phase::Execute(if create {
            "CREATE_COMPLETE"
        } else {
            "UPDATE_COMPLETE"
        }),
        stack_id: stack_id.unwrap_or_else(|| ps.name.clone()),
        seen_events: BTreeSet::new(),
        deletes: 0,
    }))
}

/// Read the statuses of all in-flight stacks and finish those that ended;
/// true when any did.
async fn poll(
    plan: &Plan,
    client: &Client,
    s3: Option<&aws_sdk_s3::Client>,
    opts: &ApplyOptions,
    events: EventSink<'_>,
    slots: &mut [Slot],
    outputs: &mut StackOutputs,
) -> Result<bool, EngineError> {
    let flights: Vec<(usize, String, Phase, u8)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Slot::InFlight(f) => Some((i, f.stack_id.clone(), f.phase, f.deletes)),
            _ => None,
        })
        .collect();
    let mut current: BTreeMap<usize, Option<StackState>> = BTreeMap::new();
    if flights.len() > opts.list_threshold {
        let all = describe_all(client).await?;
        for (i, id, _, _) in &flights {
            let name = plan
                .stacks
                .get(*i)
                .map(|p| p.name.as_str())
                .unwrap_or_default();
            let found = all
                .iter()
                .find(|s| s.stack_id == *id)
                .or_else(|| {
                    all.iter()
                        .find(|s| s.name == name && s.status != "DELETE_COMPLETE")
                })
                .cloned();
            current.insert(*i, found);
        }
    } else {
        for (i, id, _, _) in &flights {
            let name = plan
                .stacks
                .get(*i)
                .map(|p| p.name.as_str())
                .unwrap_or_default();
            current.insert(*i, describe_one(client, id, name).await?);
        }
    }

    let mut any_done = false;
    for (i, id, phase, deletes) in flights {
        let Some(ps) = plan.stacks.get(i) else {
            continue;
        };
        let now = current.remove(&i).flatten();
        let status = now.as_ref().map(|s| s.status.clone());
        match phase {
            Phase::Delete => match status.as_deref() {
                None | Some("DELETE_COMPLETE") => {
                    any_done = true;
                    if ps.action == ActionKind::Recreate {
                        slots[i] = match execute_source(
                            plan,
                            ps,
                            client,
                            opts,
                            ChangeSetType::Create,
                            None,
                        )
                        .await
                        {
                            Ok(Some(f)) => Slot::InFlight(f),
                            Ok(None) => fail(
                                events,
                                ps,
                                None,
                                "the change set to re-create the stack contains no changes"
                                    .to_owned(),
                            ),
                            Err(e) => fail(events, ps, None, e.to_string()),
                        };
                    } else {
                        for k in &ps.kept {
                            events(&Event::Kept {
                                resource: k.clone(),
                            });
                        }
                        events(&Event::StackDone {
                            stack: ps.name.clone(),
                            status: "DELETE_COMPLETE".to_owned(),
                        });
                        slots[i] = Slot::Done(StackReport {
                            name: ps.name.clone(),
                            action: ps.action,
                            outcome: Outcome::Deleted,
                            status: Some("DELETE_COMPLETE".to_owned()),
                        });
                    }
                }
                Some(s) if is_in_progress(s) => {
                    report_progress(client, ps, &id, events, slots.get_mut(i)).await;
                }
                Some(s) => {
                    any_done = true;
                    let reason = delete_failure_reason(client, &id, &ps.name, now.as_ref()).await;
                    // Objects can arrive between the emptying and the
                    // bucket's delete (a load balancer's last access logs):
                    // empty the buckets again and delete once more.
                    let buckets = ps.deleted_data.iter().any(|r| r.resource_type == BUCKET);
                    if buckets && deletes < 2 && reason.contains(BUCKET) {
                        slots[i] = match delete(plan, ps, client, s3, id.clone(), deletes).await {
                            Ok(f) => Slot::InFlight(f),
                            Err(e) => fail(events, ps, Some(s.to_owned()), e.to_string()),
                        };
                    } else {
                        slots[i] = fail(events, ps, Some(s.to_owned()), reason);
                    }
                }
            },
            Phase::Prepare => match status.as_deref() {
                Some("UPDATE_COMPLETE") => {
                    any_done = true;
                    slots[i] = match delete(plan, ps, client, s3, id.clone(), 0).await {
                        Ok(f) => Slot::InFlight(f),
                        Err(e) => fail(events, ps, status.clone(), e.to_string()),
                    };
                }
                Some(s) if is_in_progress(s) => {
                    report_progress(client, ps, &id, events, slots.get_mut(i)).await;
                }
                s => {
                    any_done = true;
                    let reason = first_failure_reason(client, &id, &ps.name, now.as_ref()).await;
                    slots[i] = fail(
                        events,
                        ps,
                        s.map(str::to_owned),
                        format!("the update before the delete failed: {reason}"),
                    );
                }
            },
            Phase::ContinueRollback => match (status.as_deref(), now) {
                (Some("UPDATE_ROLLBACK_COMPLETE"), Some(st)) => {
                    any_done = true;
                    let observed = Observed::from(&st);
                    slots[i] = match execute_source(
                        plan,
                        ps,
                        client,
                        opts,
                        ChangeSetType::Update,
                        Some(&observed),
                    )
                    .await
                    {
                        Ok(Some(f)) => Slot::InFlight(f),
                        Ok(None) => {
                            outputs.insert(ps.name.clone(), st.outputs.clone());
                            events(&Event::StackDone {
                                stack: ps.name.clone(),
                                status: st.status.clone(),
                            });
                            Slot::Done(StackReport {
                                name: ps.name.clone(),
                                action: ps.action,
                                outcome: Outcome::Updated,
                                status: Some(st.status.clone()),
                            })
                        }
                        Err(e) => fail(events, ps, Some(st.status.clone()), e.to_string()),
                    };
                }
                (Some(s), Some(_)) if is_in_progress(s) => {
                    report_progress(client, ps, &id, events, slots.get_mut(i)).await;
                }
                (s, st) => {
                    any_done = true;
                    let reason = first_failure_reason(client, &id, &ps.name, st.as_ref()).await;
                    slots[i] = fail(events, ps, s.map(str::to_owned), reason);
                }
            },
            Phase::Execute(target) => match (status.as_deref(), now) {
                (Some(s), Some(st)) if s == target => {
                    any_done = true;
                    outputs.insert(ps.name.clone(), st.outputs.clone());
                    events(&Event::StackDone {
                        stack: ps.name.clone(),
                        status: s.to_owned(),
                    });
                    slots[i] = Slot::Done(StackReport {
                        name: ps.name.clone(),
                        action: ps.action,
                        outcome: outcome_done(ps.action),
                        status: Some(s.to_owned()),
                    });
                }
                (Some(s), Some(_)) if is_in_progress(s) => {
                    report_progress(client, ps, &id, events, slots.get_mut(i)).await;
                }
                (Some(s), st) => {
                    any_done = true;
                    let reason = first_failure_reason(client, &id, &ps.name, st.as_ref()).await;
                    slots[i] = fail(events, ps, Some(s.to_owned()), reason);
                }
                (None, _) => {
                    any_done = true;
                    slots[i] = fail(
                        events,
                        ps,
                        None,
                        "the stack disappeared while its change set ran".to_owned(),
                    );
                }
            },
        }
    }
    Ok(any_done)
}

/// `DescribeStacks` for one stack; `None` when it does not exist.
async fn describe_one(
    client: &Client,
    id: &str,
    name: &str,
) -> Result<Option<StackState>, EngineError> {
    match client.describe_stacks().stack_name(id).send().await {
        Ok(resp) => Ok(resp.stacks().first().and_then(StackState::from_stack)),
        Err(e)
            if e.code() == Some("ValidationError")
                && e.message().is_some_and(|m| m.contains("does not exist")) =>
        {
            Ok(None)
        }
        Err(e) => Err(EngineError::aws("DescribeStacks", Some(name), e)),
    }
}

/// One stack event.
struct StackEvent {
    id: String,
    logical_id: String,
    resource_type: String,
    status: String,
    reason: Option<String>,
}

/// Whether an event is the start of the stack's current operation.
fn is_operation_start(e: &StackEvent, stack: &str) -> bool {
    e.logical_id == stack
        && e.resource_type == "AWS::CloudFormation::Stack"
        && is_in_progress(&e.status)
        && e.reason.as_deref() == Some("User Initiated")
}

/// The events of the stack's current operation, oldest first (at most
/// `max_pages` pages of `DescribeStackEvents`).
async fn operation_events(
    client: &Client,
    id: &str,
    stack: &str,
    max_pages: usize,
) -> Result<Vec<StackEvent>, EngineError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    'pages: for _ in 0..max_pages {
        let resp = client
            .describe_stack_events()
            .stack_name(id)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| EngineError::aws("DescribeStackEvents", Some(stack), e))?;
        for e in resp.stack_events() {
            let ev = StackEvent {
                id: e.event_id().unwrap_or_default().to_owned(),
                logical_id: e.logical_resource_id().unwrap_or_default().to_owned(),
                resource_type: e.resource_type().unwrap_or_default().to_owned(),
                status: e
                    .resource_status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                reason: e.resource_status_reason().map(str::to_owned),
            };
            let start = is_operation_start(&ev, stack);
            out.push(ev);
            if start {
                break 'pages;
            }
        }
        match resp.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => break,
        }
    }
    out.reverse();
    Ok(out)
}

/// Emit the new resource events of an in-flight stack.
async fn report_progress(
    client: &Client,
    ps: &PlannedStack,
    id: &str,
    events: EventSink<'_>,
    slot: Option<&mut Slot>,
) {
    let Some(Slot::InFlight(flight)) = slot else {
        return;
    };
    // Progress is best effort: a failed read only loses progress lines.
    let Ok(list) = operation_events(client, id, &ps.name, 1).await else {
        return;
    };
    for e in list {
        if flight.seen_events.insert(e.id.clone()) {
            events(&Event::ResourceProgress {
                stack: ps.name.clone(),
                logical_id: e.logical_id,
                resource_type: e.resource_type,
                status: e.status,
                reason: e.reason,
            });
        }
    }
}

/// The first failing resource's reason of the stack's last operation
/// (`LogicalId (Type): reason`), else the stack's status reason.
async fn first_failure_reason(
    client: &Client,
    id: &str,
    stack: &str,
    state: Option<&StackState>,
) -> String {
    let fallback = || {
        state
            .and_then(|s| s.status_reason.clone())
            .or_else(|| state.map(|s| format!("the stack ended in {}", s.status)))
            .unwrap_or_else(|| "the stack ended in a failure status".to_owned())
    };
    match operation_events(client, id, stack, 10).await {
        Ok(list) => list
            .iter()
            .find(|e| e.status.ends_with("_FAILED") && e.logical_id != stack)
            .or_else(|| list.iter().find(|e| e.status.ends_with("_FAILED")))
            .map_or_else(fallback, |e| {
                format!(
                    "{} ({}): {}",
                    e.logical_id,
                    e.resource_type,
                    e.reason.as_deref().unwrap_or(&e.status)
                )
            }),
        Err(e) => format!("{} (its events could not be read: {e})", fallback()),
    }
}

/// Why a delete failed: every resource CloudFormation could not delete in
/// the stack's last operation (`A (type): reason; B (type): reason`), or
/// the stack's own reason.
async fn delete_failure_reason(
    client: &Client,
    id: &str,
    stack: &str,
    state: Option<&StackState>,
) -> String {
    let Ok(list) = operation_events(client, id, stack, 10).await else {
        return first_failure_reason(client, id, stack, state).await;
    };
    let mut seen = BTreeSet::new();
    let failed: Vec<String> = list
        .iter()
        .filter(|e| e.status == "DELETE_FAILED" && e.logical_id != stack)
        .filter(|e| seen.insert(e.logical_id.clone()))
        .map(|e| {
            format!(
                "{} ({}): {}",
                e.logical_id,
                e.resource_type,
                e.reason.as_deref().unwrap_or("DELETE_FAILED")
            )
        })
        .collect();
    if failed.is_empty() {
        first_failure_reason(client, id, stack, state).await
    } else {
        format!(
            "{} resource(s) could not be deleted: {}",
            failed.len(),
            failed.join("; ")
        )
    }
}

/// Delete the given stacks (those deployed) in reverse dependency order
/// and wait: [`plan_destroy`] then [`apply`].
pub async fn destroy(
    defs: &[StackDefinition],
    client: &Client,
    opts: &ApplyOptions,
    events: EventSink<'_>,
) -> Result<ApplyReport, EngineError> {
    let popts = PlanOptions {
        change_set_timeout: opts.change_set_timeout,
        poll: opts.poll,
        ..PlanOptions::default()
    };
    let plan = plan_destroy(defs, client, &popts, events).await?;
    apply(&plan, client, opts, events).await
}

#[cfg(test)]
mod tests {
    //! Paths the emulator cannot produce, with `aws-smithy-mocks` responses
    //! shaped like AWS's: a create that rolls back, a replacement, a
    //! `LastUpdatedTime` change.

    use aws_sdk_cloudformation::Client;
    use aws_sdk_cloudformation::operation::create_change_set::CreateChangeSetOutput;
    use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
    use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
    use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
    use aws_sdk_cloudformation::operation::execute_change_set::ExecuteChangeSetOutput;
    use aws_sdk_cloudformation::types::{
        Change, ChangeAction as CfnAction, ChangeSetStatus, Replacement as CfnReplacement,
        ResourceAttribute, ResourceChange as CfnResourceChange, ResourceChangeDetail,
        ResourceStatus, ResourceTargetDefinition, StackStatus,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;
    use crate::engine::events::ignore_events;
    use crate::engine::mock_support::{CS_ID, STACK_ID, def, event, fast, stack};
    use crate::engine::plan::{ChangeAction, Replacement, plan};

    #[tokio::test]
    async fn create_rolled_back_reports_first_failure_then_plans_recreate() {
        let d = def();
        let describe = mock!(Client::describe_stacks)
            .sequence()
            .output(|| DescribeStacksOutput::builder().build())
            .output(|| stack(StackStatus::ReviewInProgress, "", None))
            .output(|| stack(StackStatus::RollbackComplete, "", None))
            .times(2)
            .build();
        let create = mock!(Client::create_change_set).then_output(|| {
            CreateChangeSetOutput::builder()
                .id(CS_ID)
                .stack_id(STACK_ID)
                .build()
        });
        let describe_cs = mock!(Client::describe_change_set).then_output(|| {
            DescribeChangeSetOutput::builder()
                .change_set_id(CS_ID)
                .stack_id(STACK_ID)
                .status(ChangeSetStatus::CreateComplete)
                .changes(
                    Change::builder()
                        .resource_change(
                            CfnResourceChange::builder()
                                .action(CfnAction::Add)
                                .logical_resource_id("Queue")
                                .resource_type("AWS::SQS::Queue")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
        // Only an execution with RetainExceptOnCreate matches: the rolled
        // back create leaves no retained resource behind to block the
        // re-create planned below.
        let execute = mock!(Client::execute_change_set)
            .match_requests(|r| r.retain_except_on_create() == Some(true))
            .then_output(|| ExecuteChangeSetOutput::builder().build());
        // Newest first, as CloudFormation returns them.
        let events = mock!(Client::describe_stack_events).then_output(|| {
            use ResourceStatus as S;
            DescribeStackEventsOutput::builder()
                .stack_events(event(
                    "9",
                    "app",
                    "AWS::CloudFormation::Stack",
                    S::RollbackComplete,
                    "",
                ))
                .stack_events(event(
                    "8",
                    "Bucket",
                    "AWS::S3::Bucket",
                    S::DeleteComplete,
                    "",
                ))
                .stack_events(event(
                    "7",
                    "app",
                    "AWS::CloudFormation::Stack",
                    S::RollbackInProgress,
                    "The following resource(s) failed to create: [Queue, Bucket].",
                ))
                .stack_events(event(
                    "6",
                    "Bucket",
                    "AWS::S3::Bucket",
                    S::CreateFailed,
                    "Resource creation cancelled",
                ))
                .stack_events(event(
                    "5",
                    "Queue",
                    "AWS::SQS::Queue",
                    S::CreateFailed,
                    "Queue app-q already exists",
                ))
                .stack_events(event(
                    "4",
                    "Bucket",
                    "AWS::S3::Bucket",
                    S::CreateInProgress,
                    "",
                ))
                .stack_events(event(
                    "3",
                    "app",
                    "AWS::CloudFormation::Stack",
                    S::CreateInProgress,
                    "User Initiated",
                ))
                .stack_events(event(
                    "2",
                    "Old",
                    "AWS::S3::Bucket",
                    S::CreateFailed,
                    "an earlier operation",
                ))
                .build()
        });
        let client = mock_client!(
            aws_sdk_cloudformation,
            RuleMode::MatchAny,
            [&describe, &create, &describe_cs, &execute, &events]
        );
        let (popts, aopts) = fast();
        let p = plan(std::slice::from_ref(&d), &client, &popts, &ignore_events)
            .await
            .expect("plan");
        assert_eq!(p.stacks[0].action, ActionKind::Create);
        let report = apply(&p, &client, &aopts, &ignore_events)
            .await
            .expect("apply");
        let r = report.stack("app").expect("report");
        assert_eq!(r.status.as_deref(), Some("ROLLBACK_COMPLETE"));
        assert_eq!(
            r.outcome,
            Outcome::Failed {
                reason: "Queue (AWS::SQS::Queue): Queue app-q already exists".to_owned()
            }
        );
        assert!(!report.succeeded());

        let calls = create.num_calls();
        let again = plan(std::slice::from_ref(&d), &client, &popts, &ignore_events)
            .await
            .expect("replan");
        assert_eq!(again.stacks[0].action, ActionKind::Recreate);
        assert_eq!(
            create.num_calls(),
            calls,
            "a recreate plans without a change set"
        );
        assert_eq!(again.stacks[0].changes.len(), 2);
        assert!(again.stacks[0].source.is_some());
        assert!(
            again
                .render_diff(false)
                .contains("stack app: delete and re-create")
        );
    }

    #[tokio::test]
    async fn replacement_renders_as_replace_and_last_update_makes_plan_stale() {
        let d = def();
        let describe = mock!(Client::describe_stacks)
            .sequence()
            .output(|| stack(StackStatus::UpdateComplete, "old", Some(1_700_000_100)))
            .output(|| stack(StackStatus::UpdateComplete, "old", Some(1_700_000_200)))
            .build();
        let create = mock!(Client::create_change_set).then_output(|| {
            CreateChangeSetOutput::builder()
                .id(CS_ID)
                .stack_id(STACK_ID)
                .build()
        });
        let describe_cs = mock!(Client::describe_change_set)
            .sequence()
            .output(|| {
                DescribeChangeSetOutput::builder()
                    .status(ChangeSetStatus::CreateInProgress)
                    .build()
            })
            .output(|| {
                let detail = |name: &str| {
                    ResourceChangeDetail::builder()
                        .target(
                            ResourceTargetDefinition::builder()
                                .attribute(ResourceAttribute::Properties)
                                .name(name)
                                .build(),
                        )
                        .build()
                };
                DescribeChangeSetOutput::builder()
                    .change_set_id(CS_ID)
                    .stack_id(STACK_ID)
                    .status(ChangeSetStatus::CreateComplete)
                    .changes(
                        Change::builder()
                            .resource_change(
                                CfnResourceChange::builder()
                                    .action(CfnAction::Modify)
                                    .logical_resource_id("Bucket")
                                    .resource_type("AWS::S3::Bucket")
                                    .replacement(CfnReplacement::True)
                                    .details(detail("BucketName"))
                                    .details(detail("Tags"))
                                    .build(),
                            )
                            .build(),
                    )
                    .build()
            })
            .build();
        let execute = mock!(Client::execute_change_set)
            .then_output(|| ExecuteChangeSetOutput::builder().build());
        let client = mock_client!(
            aws_sdk_cloudformation,
            RuleMode::MatchAny,
            [&describe, &create, &describe_cs, &execute]
        );
        let (popts, aopts) = fast();
        let p = plan(std::slice::from_ref(&d), &client, &popts, &ignore_events)
            .await
            .expect("plan");
        let s = &p.stacks[0];
        assert_eq!(s.action, ActionKind::Update);
        assert_eq!(describe_cs.num_calls(), 2, "polled until ready");
        assert_eq!(s.changes[0].action, ChangeAction::Modify);
        assert_eq!(s.changes[0].replacement, Some(Replacement::True));
        assert_eq!(s.changes[0].properties, ["BucketName", "Tags"]);
        let diff = p.render_diff(false);
        assert!(
            diff.contains("-/+ Bucket (AWS::S3::Bucket) replace: BucketName, Tags"),
            "{diff}"
        );
        assert!(
            diff.contains("Plan: 1 to add, 0 to change, 1 to destroy."),
            "{diff}"
        );

        let err = apply(&p, &client, &aopts, &ignore_events)
            .await
            .expect_err("stale");
        assert!(
            matches!(&err, EngineError::StalePlan { stack, detail }
                if stack == "app" && detail.contains("last updated")),
            "{err:?}"
        );
        assert_eq!(execute.num_calls(), 0);
    }

    #[test]
    fn tampered_plan_file_is_refused() {
        let p = Plan::new("1".to_owned(), "r".to_owned(), Vec::new());
        let text = p.to_json().replace("\"r\"", "\"x\"");
        let err = Plan::from_json(&text).expect_err("tampered");
        assert!(err.to_string().contains("was modified"), "{err}");
        assert_eq!(Plan::from_json(&p.to_json()).expect("valid"), p);
    }

    #[test]
    fn dependency_cycle_is_an_input_error() {
        let mut a = def();
        a.name = "a".to_owned();
        a.depends_on = vec!["b".to_owned()];
        let mut b = def();
        b.name = "b".to_owned();
        b.depends_on = vec!["a".to_owned()];
        let err = crate::engine::plan::validate(&[a, b]).expect_err("cycle");
        assert!(
            matches!(&err, EngineError::InvalidInput { path, .. } if path.ends_with("depends_on")),
            "{err}"
        );
    }
}
