//! The failure state machine on paths the emulator cannot produce (it has
//! no rollbacks and completes every operation synchronously), with
//! `aws-smithy-mocks` responses shaped like CloudFormation's:
//!
//! | state                   | plan            | apply                                                      |
//! |-------------------------|-----------------|------------------------------------------------------------|
//! | `ROLLBACK_COMPLETE`     | recreate        | DeleteStack, then a CREATE change set, executed            |
//! | `UPDATE_ROLLBACK_FAILED`| resume rollback | ContinueUpdateRollback, then an UPDATE change set          |
//! | `DELETE_FAILED`         | recreate        | (destroy) every resource that could not be deleted, named |
//! | change set `FAILED`     | error (plan)    | stack failed, its dependents skipped                       |

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::operation::continue_update_rollback::ContinueUpdateRollbackOutput;
use aws_sdk_cloudformation::operation::create_change_set::CreateChangeSetOutput;
use aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput;
use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
use aws_sdk_cloudformation::operation::execute_change_set::ExecuteChangeSetOutput;
use aws_sdk_cloudformation::operation::get_template::GetTemplateOutput;
use aws_sdk_cloudformation::types::{
    Change, ChangeAction as CfnAction, ChangeSetStatus, ResourceChange as CfnResourceChange,
    ResourceStatus as S, StackStatus,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use std::sync::Mutex;

use super::apply::{Outcome, apply};
use super::error::EngineError;
use super::events::{Event, ignore_events};
use super::mock_support::{
    CS_ID, STACK_ID, def, def_named, event, event_of, fast, stack, stack_id, stacks, summary,
};
use super::plan::{ActionKind, plan, plan_destroy};

fn ready(action: CfnAction, logical: &str) -> DescribeChangeSetOutput {
    DescribeChangeSetOutput::builder()
        .change_set_id(CS_ID)
        .status(ChangeSetStatus::CreateComplete)
        .changes(
            Change::builder()
                .resource_change(
                    CfnResourceChange::builder()
                        .action(action)
                        .logical_resource_id(logical)
                        .resource_type("AWS::SQS::Queue")
                        .build(),
                )
                .build(),
        )
        .build()
}

#[tokio::test]
async fn rolled_back_create_is_deleted_and_created_again() {
    let d = def();
    let hash = d.content_hash();
    let new_id = stack_id("app", 2);
    let describe = {
        let (hash, new_id) = (hash.clone(), new_id.clone());
        mock!(Client::describe_stacks)
            .sequence()
            .output(|| stack(StackStatus::RollbackComplete, "", None))
            .times(2)
            // Described by id after the delete: AWS still lists it.
            .output(|| {
                stacks(vec![summary(
                    "app",
                    STACK_ID,
                    StackStatus::DeleteComplete,
                    "",
                    None,
                )])
            })
            .output(move || {
                stacks(vec![summary(
                    "app",
                    &new_id,
                    StackStatus::CreateComplete,
                    &hash,
                    None,
                )])
            })
            .build()
    };
    let delete = mock!(Client::delete_stack).then_output(|| DeleteStackOutput::builder().build());
    let create = {
        let new_id = new_id.clone();
        mock!(Client::create_change_set).then_output(move || {
            CreateChangeSetOutput::builder()
                .id(CS_ID)
                .stack_id(&new_id)
                .build()
        })
    };
    let describe_cs =
        mock!(Client::describe_change_set).then_output(|| ready(CfnAction::Add, "Queue"));
    let execute =
        mock!(Client::execute_change_set).then_output(|| ExecuteChangeSetOutput::builder().build());
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &delete, &create, &describe_cs, &execute]
    );
    let (popts, aopts) = fast();
    let p = plan(std::slice::from_ref(&d), &client, &popts, &ignore_events)
        .await
        .expect("plan");
    assert_eq!(p.stacks[0].action, ActionKind::Recreate);
    assert_eq!(create.num_calls(), 0, "nothing to review before the delete");

    let events = Mutex::new(Vec::new());
    let sink = |e: &Event| events.lock().expect("events").push(e.clone());
    let report = apply(&p, &client, &aopts, &sink).await.expect("apply");
    let r = report.stack("app").expect("report");
    assert_eq!(r.outcome, Outcome::Created, "{report:?}");
    assert_eq!(r.status.as_deref(), Some("CREATE_COMPLETE"));
    assert!(report.succeeded());
    assert_eq!(
        (delete.num_calls(), create.num_calls(), execute.num_calls()),
        (1, 1, 1)
    );
    assert_eq!(describe.num_calls(), 4);
    let ev = events.lock().expect("events");
    assert!(matches!(
        ev.first(),
        Some(Event::Started {
            action: ActionKind::Recreate,
            ..
        })
    ));
    assert!(matches!(
        ev.last(),
        Some(Event::Finished {
            succeeded: 1,
            failed: 0,
            skipped: 0
        })
    ));
}

#[tokio::test]
async fn update_rollback_failed_is_continued_then_updated() {
    let d = def();
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .output(|| {
            stack(
                StackStatus::UpdateRollbackFailed,
                "old",
                Some(1_700_000_100),
            )
        })
        .times(2)
        .output(|| {
            stack(
                StackStatus::UpdateRollbackComplete,
                "old",
                Some(1_700_000_200),
            )
        })
        .output(|| stack(StackStatus::UpdateComplete, "new", Some(1_700_000_300)))
        .build();
    let resume = mock!(Client::continue_update_rollback)
        .then_output(|| ContinueUpdateRollbackOutput::builder().build());
    let create = mock!(Client::create_change_set).then_output(|| {
        CreateChangeSetOutput::builder()
            .id(CS_ID)
            .stack_id(STACK_ID)
            .build()
    });
    let describe_cs =
        mock!(Client::describe_change_set).then_output(|| ready(CfnAction::Modify, "Queue"));
    let execute =
        mock!(Client::execute_change_set).then_output(|| ExecuteChangeSetOutput::builder().build());
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &resume, &create, &describe_cs, &execute]
    );
    let (popts, aopts) = fast();
    let p = plan(std::slice::from_ref(&d), &client, &popts, &ignore_events)
        .await
        .expect("plan");
    assert_eq!(p.stacks[0].action, ActionKind::ResumeRollback);
    assert!(
        p.render_diff(false)
            .contains("~ stack app: ContinueUpdateRollback, then an update"),
        "{}",
        p.render_diff(false)
    );
    assert_eq!(create.num_calls(), 0);
    let report = apply(&p, &client, &aopts, &ignore_events)
        .await
        .expect("apply");
    let r = report.stack("app").expect("report");
    assert_eq!(r.outcome, Outcome::Updated, "{report:?}");
    assert_eq!(r.status.as_deref(), Some("UPDATE_COMPLETE"));
    assert_eq!(
        (resume.num_calls(), create.num_calls(), execute.num_calls()),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_rollback_that_fails_again_names_the_resource() {
    let d = def();
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .output(|| {
            stack(
                StackStatus::UpdateRollbackFailed,
                "old",
                Some(1_700_000_100),
            )
        })
        .times(3)
        .build();
    let resume = mock!(Client::continue_update_rollback)
        .then_output(|| ContinueUpdateRollbackOutput::builder().build());
    let events = mock!(Client::describe_stack_events).then_output(|| {
        DescribeStackEventsOutput::builder()
            .stack_events(event(
                "3",
                "app",
                "AWS::CloudFormation::Stack",
                S::UpdateRollbackFailed,
                "The following resource(s) failed to update: [Bucket].",
            ))
            .stack_events(event(
                "2",
                "Bucket",
                "AWS::S3::Bucket",
                S::UpdateFailed,
                "Bucket logs-1 is still in use",
            ))
            .stack_events(event(
                "1",
                "app",
                "AWS::CloudFormation::Stack",
                S::UpdateRollbackInProgress,
                "User Initiated",
            ))
            .build()
    });
    let create = mock!(Client::create_change_set)
        .then_output(|| CreateChangeSetOutput::builder().id(CS_ID).build());
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &resume, &events, &create]
    );
    let (popts, aopts) = fast();
    let p = plan(std::slice::from_ref(&d), &client, &popts, &ignore_events)
        .await
        .expect("plan");
    let report = apply(&p, &client, &aopts, &ignore_events)
        .await
        .expect("apply");
    let r = report.stack("app").expect("report");
    assert_eq!(r.status.as_deref(), Some("UPDATE_ROLLBACK_FAILED"));
    assert_eq!(
        r.outcome,
        Outcome::Failed {
            reason: "Bucket (AWS::S3::Bucket): Bucket logs-1 is still in use".to_owned()
        }
    );
    assert_eq!(create.num_calls(), 0, "no update after a failed rollback");
}

#[tokio::test]
async fn delete_failed_names_every_resource_and_skips_what_it_holds_up() {
    let base = def_named("base", &[]);
    let app = def_named("app", &["base"]);
    let base_id = stack_id("base", 1);
    let both = {
        let base_id = base_id.clone();
        move || {
            stacks(vec![
                summary("base", &base_id, StackStatus::CreateComplete, "b", None),
                summary("app", STACK_ID, StackStatus::CreateComplete, "a", None),
            ])
        }
    };
    let base_hash = base.content_hash();
    let describe = {
        let base_id = base_id.clone();
        mock!(Client::describe_stacks)
            .sequence()
            .output(both.clone())
            .times(2)
            .output(|| {
                stacks(vec![summary(
                    "app",
                    STACK_ID,
                    StackStatus::DeleteFailed,
                    "a",
                    None,
                )])
            })
            // The next deploy plan.
            .output(move || {
                stacks(vec![
                    summary(
                        "base",
                        &base_id,
                        StackStatus::CreateComplete,
                        &base_hash,
                        None,
                    ),
                    summary("app", STACK_ID, StackStatus::DeleteFailed, "a", None),
                ])
            })
            .build()
    };
    let delete = mock!(Client::delete_stack).then_output(|| DeleteStackOutput::builder().build());
    // The deployed templates keep nothing: no resource listing, no update.
    let body = app.template.to_json();
    let template = mock!(Client::get_template).then_output(move || {
        GetTemplateOutput::builder()
            .template_body(body.clone())
            .build()
    });
    let events = mock!(Client::describe_stack_events).then_output(|| {
        let e = |id: &str, logical: &str, kind: &str, status: S, reason: &str| {
            event_of("app", STACK_ID, id, logical, kind, status, reason)
        };
        DescribeStackEventsOutput::builder()
            .stack_events(e(
                "5",
                "app",
                "AWS::CloudFormation::Stack",
                S::DeleteFailed,
                "The following resource(s) failed to delete: [Queue, Bucket].",
            ))
            .stack_events(e(
                "4",
                "Queue",
                "AWS::SQS::Queue",
                S::DeleteFailed,
                "Access denied",
            ))
            .stack_events(e(
                "3",
                "Bucket",
                "AWS::S3::Bucket",
                S::DeleteFailed,
                "The bucket you tried to delete is not empty",
            ))
            .stack_events(e(
                "2",
                "app",
                "AWS::CloudFormation::Stack",
                S::DeleteInProgress,
                "User Initiated",
            ))
            .stack_events(e("1", "Old", "AWS::S3::Bucket", S::DeleteFailed, "earlier"))
            .build()
    });
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &delete, &template, &events]
    );
    let (popts, aopts) = fast();
    let defs = [base.clone(), app.clone()];
    let p = plan_destroy(&defs, &client, &popts, &ignore_events)
        .await
        .expect("plan destroy");
    assert!(p.stacks.iter().all(|s| s.action == ActionKind::Delete));
    let report = apply(&p, &client, &aopts, &ignore_events)
        .await
        .expect("apply");
    assert!(!report.succeeded());
    let r = report.stack("app").expect("app");
    assert_eq!(r.status.as_deref(), Some("DELETE_FAILED"));
    assert_eq!(
        r.outcome,
        Outcome::Failed {
            reason: "2 resource(s) could not be deleted: \
                     Bucket (AWS::S3::Bucket): The bucket you tried to delete is not empty; \
                     Queue (AWS::SQS::Queue): Access denied"
                .to_owned()
        }
    );
    assert_eq!(
        report.stack("base").map(|s| s.outcome.clone()),
        Some(Outcome::Skipped {
            because: "app".to_owned()
        }),
        "base is deleted only after what depends on it"
    );
    assert_eq!(delete.num_calls(), 1);

    // Deploying again deletes the half-deleted stack and creates it anew.
    let again = plan(&defs, &client, &popts, &ignore_events)
        .await
        .expect("replan");
    assert_eq!(again.stacks[0].action, ActionKind::NoOp);
    assert_eq!(again.stacks[1].action, ActionKind::Recreate);
}

#[tokio::test]
async fn a_change_set_that_fails_fails_its_stack_and_skips_dependents() {
    let base = def_named("base", &[]);
    let app = def_named("app", &["base"]);
    let base_id = stack_id("base", 1);
    let rolled_back = {
        let base_id = base_id.clone();
        move || {
            stacks(vec![summary(
                "base",
                &base_id,
                StackStatus::RollbackComplete,
                "",
                None,
            )])
        }
    };
    let describe = {
        let base_id = base_id.clone();
        mock!(Client::describe_stacks)
            .sequence()
            .output(rolled_back.clone())
            .times(2)
            .output(move || {
                stacks(vec![summary(
                    "base",
                    &base_id,
                    StackStatus::DeleteComplete,
                    "",
                    None,
                )])
            })
            .build()
    };
    let delete = mock!(Client::delete_stack).then_output(|| DeleteStackOutput::builder().build());
    let create = mock!(Client::create_change_set).then_output(|| {
        CreateChangeSetOutput::builder()
            .id(CS_ID)
            .stack_id(STACK_ID)
            .build()
    });
    let describe_cs = mock!(Client::describe_change_set)
        .sequence()
        // app's CREATE change set, reviewed in the plan.
        .output(|| ready(CfnAction::Add, "Queue"))
        // base's CREATE change set after its delete.
        .output(|| {
            DescribeChangeSetOutput::builder()
                .change_set_id(CS_ID)
                .status(ChangeSetStatus::Failed)
                .status_reason("Template format error: Unresolved resource dependencies [Gone]")
                .build()
        })
        .build();
    let execute =
        mock!(Client::execute_change_set).then_output(|| ExecuteChangeSetOutput::builder().build());
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &delete, &create, &describe_cs, &execute]
    );
    let (popts, aopts) = fast();
    let p = plan(&[base, app], &client, &popts, &ignore_events)
        .await
        .expect("plan");
    assert_eq!(p.stacks[0].action, ActionKind::Recreate);
    assert_eq!(p.stacks[1].action, ActionKind::Create);
    let report = apply(&p, &client, &aopts, &ignore_events)
        .await
        .expect("apply");
    let base = report.stack("base").expect("base");
    assert!(
        matches!(&base.outcome, Outcome::Failed { reason }
            if reason.contains("change set for stack `base` failed")
            && reason.contains("Unresolved resource dependencies [Gone]")),
        "{base:?}"
    );
    assert_eq!(
        report.stack("app").map(|s| s.outcome.clone()),
        Some(Outcome::Skipped {
            because: "base".to_owned()
        })
    );
    assert_eq!(execute.num_calls(), 0, "nothing executed after the failure");
}

#[tokio::test]
async fn a_change_set_that_fails_at_planning_names_stack_and_reason() {
    let describe = mock!(Client::describe_stacks).then_output(|| stacks(Vec::new()));
    let create = mock!(Client::create_change_set).then_output(|| {
        CreateChangeSetOutput::builder()
            .id(CS_ID)
            .stack_id(STACK_ID)
            .build()
    });
    let describe_cs = mock!(Client::describe_change_set).then_output(|| {
        DescribeChangeSetOutput::builder()
            .status(ChangeSetStatus::Failed)
            .status_reason("Requires capabilities : [CAPABILITY_NAMED_IAM]")
            .build()
    });
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &create, &describe_cs]
    );
    let (popts, _) = fast();
    let err = plan(&[def()], &client, &popts, &ignore_events)
        .await
        .expect_err("failed change set");
    assert!(
        matches!(&err, EngineError::ChangeSetFailed { stack, reason }
            if stack == "app" && reason.contains("CAPABILITY_NAMED_IAM") && reason.contains("FAILED")),
        "{err}"
    );
}

#[tokio::test]
async fn cancelling_starts_nothing_new_and_reports_what_did_not_run() {
    let a = def_named("a", &[]);
    let b = def_named("b", &["a"]);
    let a_id = stack_id("a", 1);
    let b_id = stack_id("b", 1);
    let a_hash = a.content_hash();
    let describe = {
        let a_id = a_id.clone();
        mock!(Client::describe_stacks)
            .sequence()
            .output(|| stacks(Vec::new()))
            .times(2)
            .output(move || {
                stacks(vec![summary(
                    "a",
                    &a_id,
                    StackStatus::CreateComplete,
                    &a_hash,
                    None,
                )])
            })
            .build()
    };
    let create = mock!(Client::create_change_set)
        .sequence()
        .output(move || {
            CreateChangeSetOutput::builder()
                .id(CS_ID)
                .stack_id(&a_id)
                .build()
        })
        .output(move || {
            CreateChangeSetOutput::builder()
                .id(CS_ID)
                .stack_id(&b_id)
                .build()
        })
        .build();
    let describe_cs =
        mock!(Client::describe_change_set).then_output(|| ready(CfnAction::Add, "Queue"));
    let execute =
        mock!(Client::execute_change_set).then_output(|| ExecuteChangeSetOutput::builder().build());
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe, &create, &describe_cs, &execute]
    );
    let (popts, aopts) = fast();
    let p = plan(&[a, b], &client, &popts, &ignore_events)
        .await
        .expect("plan");
    let cancel = aopts.cancel.clone();
    // Ctrl-C while `a` runs.
    let sink = move |e: &Event| {
        if matches!(e, Event::Started { stack, .. } if stack == "a") {
            cancel.cancel();
        }
    };
    let report = apply(&p, &client, &aopts, &sink).await.expect("apply");
    assert_eq!(
        report.stack("a").map(|s| s.outcome.clone()),
        Some(Outcome::Created),
        "the running stack is awaited"
    );
    assert_eq!(
        report.stack("b").map(|s| s.outcome.clone()),
        Some(Outcome::Cancelled)
    );
    assert!(!report.succeeded());
    assert_eq!(execute.num_calls(), 1);
}
