//! Destroys with retained data, with `aws-smithy-mocks` responses shaped
//! like AWS's. The emulator (moto 5.2.5) honours `DeletionPolicy: Retain`
//! on delete (`tests/deployment_emulator.rs` shows the kept resources) but
//! cannot run `delete_data`: the update that turns the policies off fails
//! there ("Fn::GetAtt references undefined resource EnvironmentKey": it
//! has no update for KMS keys), and it updates neither a table's deletion
//! protection nor deletes a table, key or log group that an update touched.
//! Here: what a delete keeps is listed from the deployed template and resources;
//! a protected Aurora cluster is unprotected by an update first; with
//! `delete_data` the update turns every keeping policy off and the buckets
//! are emptied before the delete.

use std::sync::Mutex;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::operation::create_change_set::CreateChangeSetOutput;
use aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput;
use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
use aws_sdk_cloudformation::operation::execute_change_set::ExecuteChangeSetOutput;
use aws_sdk_cloudformation::operation::get_template::GetTemplateOutput;
use aws_sdk_cloudformation::operation::list_stack_resources::ListStackResourcesOutput;
use aws_sdk_cloudformation::primitives::DateTime;
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, Parameter, ResourceStatus, Stack, StackResourceSummary,
    StackStatus, Tag, TemplateStage,
};
use aws_sdk_s3::operation::delete_objects::DeleteObjectsOutput;
use aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput;
use aws_sdk_s3::types::{DeleteMarkerEntry, ObjectVersion};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use serde_json::{Value, json};

use super::apply::{Outcome, apply_checked, check_stale};
use super::events::Event;
use super::mock_support::{STACK_ID, def, fast};
use super::plan::{ActionKind, plan_destroy, plan_destroy_with};
use super::retained::{DestroyOptions, RetainedResource};
use super::state::read_state;
use crate::provider::STACK_HASH_TAG;

/// What is deployed as stack `app`: an audit table, a protected Aurora
/// cluster, a log bucket, all kept; a queue that is not.
fn deployed_template() -> Value {
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": { "Prefix": { "Type": "String" } },
        "Resources": {
            "AuditTable": {
                "Type": "AWS::DynamoDB::Table",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "TableName": { "Fn::Sub": "${Prefix}-app-audit" },
                    "DeletionProtectionEnabled": true
                }
            },
            "DatabaseCluster": {
                "Type": "AWS::RDS::DBCluster",
                "DeletionPolicy": "Snapshot",
                "UpdateReplacePolicy": "Snapshot",
                "Properties": { "Engine": "aurora-postgresql", "DeletionProtection": true }
            },
            "LogsBucket": {
                "Type": "AWS::S3::Bucket",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain"
            },
            "Queue": { "Type": "AWS::SQS::Queue" }
        }
    })
}

/// `DescribeStacks` of stack `app` in `status`, as AWS returns it (with its
/// parameters, tags and capabilities).
fn app(status: StackStatus) -> DescribeStacksOutput {
    DescribeStacksOutput::builder()
        .stacks(
            Stack::builder()
                .stack_name("app")
                .stack_id(STACK_ID)
                .stack_status(status)
                .creation_time(DateTime::from_secs(1_700_000_000))
                .parameters(
                    Parameter::builder()
                        .parameter_key("Prefix")
                        .parameter_value("opa")
                        .build(),
                )
                .tags(Tag::builder().key(STACK_HASH_TAG).value("h1").build())
                .tags(Tag::builder().key("team").value("shop").build())
                .capabilities(Capability::CapabilityNamedIam)
                .build(),
        )
        .build()
}

fn summary(logical: &str, kind: &str, physical: &str) -> StackResourceSummary {
    StackResourceSummary::builder()
        .logical_resource_id(logical)
        .physical_resource_id(physical)
        .resource_type(kind)
        .resource_status(ResourceStatus::CreateComplete)
        .last_updated_timestamp(DateTime::from_secs(1_700_000_000))
        .build()
}

fn resources() -> ListStackResourcesOutput {
    ListStackResourcesOutput::builder()
        .stack_resource_summaries(summary(
            "AuditTable",
            "AWS::DynamoDB::Table",
            "opa-app-audit",
        ))
        .stack_resource_summaries(summary("DatabaseCluster", "AWS::RDS::DBCluster", "opa-app"))
        .stack_resource_summaries(summary(
            "LogsBucket",
            "AWS::S3::Bucket",
            "app-logsbucket-1x2y3z",
        ))
        .stack_resource_summaries(summary(
            "Queue",
            "AWS::SQS::Queue",
            "https://sqs.us-east-1.amazonaws.com/123456789012/app-Queue-1",
        ))
        .build()
}

fn kept(logical: &str, kind: &str, physical: &str, policy: &str) -> RetainedResource {
    RetainedResource {
        stack: "app".to_owned(),
        logical_id: logical.to_owned(),
        resource_type: kind.to_owned(),
        physical_id: physical.to_owned(),
        policy: policy.to_owned(),
    }
}

#[tokio::test]
async fn a_destroy_lists_what_the_deployed_template_keeps_and_unprotects_the_database() {
    let describe = mock!(Client::describe_stacks)
        .sequence()
        // plan: the state, then the stack's parameters for the update
        .output(|| app(StackStatus::CreateComplete))
        .times(2)
        // apply: the state, then the update and the delete done
        .output(|| app(StackStatus::CreateComplete))
        .output(|| app(StackStatus::UpdateComplete))
        .output(|| DescribeStacksOutput::builder().build())
        .build();
    let template = mock!(Client::get_template)
        .match_requests(|r| {
            r.stack_name() == Some(STACK_ID) && r.template_stage() == Some(&TemplateStage::Original)
        })
        .then_output(|| {
            GetTemplateOutput::builder()
                .template_body(deployed_template().to_string())
                .stages_available(TemplateStage::Original)
                .stages_available(TemplateStage::Processed)
                .build()
        });
    let list = mock!(Client::list_stack_resources).then_output(resources);
    let create = mock!(Client::create_change_set)
        .match_requests(|r| {
            // The update keeps everything but the cluster's protection.
            r.change_set_type() == Some(&aws_sdk_cloudformation::types::ChangeSetType::Update)
                && r.capabilities() == [Capability::CapabilityNamedIam]
                && r.parameters().iter().any(|p| {
                    p.parameter_key() == Some("Prefix") && p.parameter_value() == Some("opa")
                })
                && r.tags().iter().any(|t| t.key() == Some("team"))
        })
        .then_output(|| {
            CreateChangeSetOutput::builder()
                .id("arn:aws:cloudformation:us-east-1:123456789012:changeSet/harmonix-p/1")
                .stack_id(STACK_ID)
                .build()
        });
    let describe_cs = mock!(Client::describe_change_set).then_output(|| {
        DescribeChangeSetOutput::builder()
            .stack_id(STACK_ID)
            .status(ChangeSetStatus::CreateComplete)
            .build()
    });
    let execute =
        mock!(Client::execute_change_set).then_output(|| ExecuteChangeSetOutput::builder().build());
    let delete = mock!(Client::delete_stack).then_output(|| DeleteStackOutput::builder().build());
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [
            &describe,
            &template,
            &list,
            &create,
            &describe_cs,
            &execute,
            &delete
        ]
    );
    let (popts, aopts) = fast();
    let p = plan_destroy(&[def()], &client, &popts, &|_: &Event| {})
        .await
        .expect("plan");
    let ps = &p.stacks[0];
    assert_eq!(ps.action, ActionKind::Delete);
    assert_eq!(
        ps.kept,
        [
            kept(
                "AuditTable",
                "AWS::DynamoDB::Table",
                "opa-app-audit",
                "Retain"
            ),
            kept(
                "DatabaseCluster",
                "AWS::RDS::DBCluster",
                "opa-app",
                "Snapshot"
            ),
            kept(
                "LogsBucket",
                "AWS::S3::Bucket",
                "app-logsbucket-1x2y3z",
                "Retain"
            ),
        ]
    );
    assert!(ps.deleted_data.is_empty());
    let source = ps.source.as_ref().expect("an update before the delete");
    let body: Value = serde_json::from_str(&source.template_body).expect("JSON");
    let mut expected = deployed_template();
    expected["Resources"]["DatabaseCluster"]["Properties"]["DeletionProtection"] = json!(false);
    assert_eq!(body, expected, "only the cluster's protection changes");
    assert_eq!(ps.changes.len(), 1);
    let diff = p.render_diff(false);
    for line in [
        "~ DatabaseCluster (AWS::RDS::DBCluster) update before the delete: DeletionProtection",
        "= AuditTable (AWS::DynamoDB::Table) kept: opa-app-audit",
        "= DatabaseCluster (AWS::RDS::DBCluster) kept as a final snapshot of opa-app",
        "= LogsBucket (AWS::S3::Bucket) kept: app-logsbucket-1x2y3z",
    ] {
        assert!(diff.contains(line), "{line}\n{diff}");
    }
    assert!(!diff.contains("Queue"), "{diff}");

    let seen = Mutex::new(Vec::new());
    let sink = |e: &Event| {
        if let Event::Kept { resource } = e {
            seen.lock().expect("lock").push(resource.clone());
        }
    };
    let state = read_state(&client).await.expect("state");
    check_stale(&p, &state).expect("fresh");
    let report = apply_checked(&p, &state, &client, None, &aopts, &sink)
        .await
        .expect("apply");
    assert_eq!(report.stacks[0].outcome, Outcome::Deleted);
    assert_eq!(report.kept, ps.kept);
    assert_eq!(*seen.lock().expect("lock"), ps.kept);
    assert_eq!(execute.num_calls(), 1, "the update ran");
    assert_eq!(delete.num_calls(), 1, "then the delete");
}

#[tokio::test]
async fn delete_data_turns_the_policies_off_empties_the_buckets_then_deletes() {
    let describe = mock!(Client::describe_stacks)
        .sequence()
        .output(|| app(StackStatus::CreateComplete))
        .times(3)
        .output(|| app(StackStatus::UpdateComplete))
        .output(|| DescribeStacksOutput::builder().build())
        .build();
    let template = mock!(Client::get_template).then_output(|| {
        GetTemplateOutput::builder()
            .template_body(deployed_template().to_string())
            .build()
    });
    let list = mock!(Client::list_stack_resources).then_output(resources);
    let body = std::sync::Arc::new(Mutex::new(String::new()));
    let create = {
        let body = body.clone();
        mock!(Client::create_change_set)
            .match_requests(move |r| {
                *body.lock().expect("lock") = r.template_body().unwrap_or_default().to_owned();
                true
            })
            .then_output(|| {
                CreateChangeSetOutput::builder()
                    .id("arn:aws:cloudformation:us-east-1:123456789012:changeSet/harmonix-p/1")
                    .stack_id(STACK_ID)
                    .build()
            })
    };
    let describe_cs = mock!(Client::describe_change_set).then_output(|| {
        DescribeChangeSetOutput::builder()
            .stack_id(STACK_ID)
            .status(ChangeSetStatus::CreateComplete)
            .build()
    });
    let execute =
        mock!(Client::execute_change_set).then_output(|| ExecuteChangeSetOutput::builder().build());
    let delete = mock!(Client::delete_stack).then_output(|| DeleteStackOutput::builder().build());
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [
            &describe,
            &template,
            &list,
            &create,
            &describe_cs,
            &execute,
            &delete
        ]
    );
    // A versioned bucket: two pages of versions and delete markers.
    let versions = mock!(aws_sdk_s3::Client::list_object_versions)
        .match_requests(|r| r.bucket() == Some("app-logsbucket-1x2y3z"))
        .sequence()
        .output(|| {
            ListObjectVersionsOutput::builder()
                .versions(
                    ObjectVersion::builder()
                        .key("AWSLogs/123456789012/ELBAccessLogTestFile")
                        .version_id("v1")
                        .build(),
                )
                .delete_markers(
                    DeleteMarkerEntry::builder()
                        .key("AWSLogs/old.log.gz")
                        .version_id("m1")
                        .build(),
                )
                .is_truncated(true)
                .next_key_marker("AWSLogs/old.log.gz")
                .next_version_id_marker("m1")
                .build()
        })
        .output(|| {
            ListObjectVersionsOutput::builder()
                .versions(
                    ObjectVersion::builder()
                        .key("AWSLogs/new.log.gz")
                        .version_id("v2")
                        .build(),
                )
                .is_truncated(false)
                .build()
        })
        .build();
    let deleted = std::sync::Arc::new(Mutex::new(Vec::new()));
    let delete_objects = {
        let deleted = deleted.clone();
        mock!(aws_sdk_s3::Client::delete_objects)
            .match_requests(move |r| {
                if let Some(d) = r.delete() {
                    deleted.lock().expect("lock").extend(
                        d.objects()
                            .iter()
                            .map(|o| format!("{}@{}", o.key(), o.version_id().unwrap_or("-"))),
                    );
                }
                true
            })
            .then_output(|| DeleteObjectsOutput::builder().build())
    };
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&versions, &delete_objects]);
    let (popts, aopts) = fast();
    let p = plan_destroy_with(
        &[def()],
        &client,
        &popts,
        DestroyOptions {
            delete_data: true,
            delete_production_data: false,
        },
        &|_: &Event| {},
    )
    .await
    .expect("plan");
    let ps = &p.stacks[0];
    assert!(ps.kept.is_empty(), "{:?}", ps.kept);
    assert_eq!(ps.deleted_data.len(), 3, "{:?}", ps.deleted_data);
    let diff = p.render_diff(false);
    assert!(
        diff.contains("- AuditTable (AWS::DynamoDB::Table) deleted with its data: opa-app-audit"),
        "{diff}"
    );

    let state = read_state(&client).await.expect("state");
    // Without S3 the buckets cannot be emptied: the stack fails, not deleted.
    let without = apply_checked(&p, &state, &client, None, &aopts, &|_: &Event| {})
        .await
        .expect("apply");
    assert!(
        matches!(&without.stacks[0].outcome, Outcome::Failed { reason } if reason.contains("no S3 client")),
        "{without:?}"
    );
    assert_eq!(delete.num_calls(), 0);

    let describe_again = mock!(Client::describe_stacks)
        .sequence()
        .output(|| app(StackStatus::UpdateComplete))
        .output(|| DescribeStacksOutput::builder().build())
        .build();
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&describe_again, &create, &describe_cs, &execute, &delete]
    );
    let report = apply_checked(&p, &state, &client, Some(&s3), &aopts, &|_: &Event| {})
        .await
        .expect("apply");
    assert_eq!(report.stacks[0].outcome, Outcome::Deleted, "{report:?}");
    assert!(report.kept.is_empty());
    let sent: Value = serde_json::from_str(&body.lock().expect("lock")).expect("JSON body");
    for id in ["AuditTable", "DatabaseCluster", "LogsBucket"] {
        assert_eq!(sent["Resources"][id]["DeletionPolicy"], "Delete", "{id}");
        assert_eq!(
            sent["Resources"][id]["UpdateReplacePolicy"], "Delete",
            "{id}"
        );
    }
    assert_eq!(
        sent["Resources"]["AuditTable"]["Properties"]["DeletionProtectionEnabled"],
        false
    );
    assert_eq!(
        sent["Resources"]["DatabaseCluster"]["Properties"]["DeletionProtection"],
        false
    );
    assert_eq!(
        sent["Resources"]["Queue"],
        json!({ "Type": "AWS::SQS::Queue" })
    );
    assert_eq!(
        *deleted.lock().expect("lock"),
        [
            "AWSLogs/123456789012/ELBAccessLogTestFile@v1",
            "AWSLogs/old.log.gz@m1",
            "AWSLogs/new.log.gz@v2"
        ]
    );
    assert_eq!(delete.num_calls(), 1);
}
