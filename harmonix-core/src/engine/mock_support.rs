//! Helpers of the `aws-smithy-mocks` tests of the engine: responses shaped
//! like CloudFormation's.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
use aws_sdk_cloudformation::primitives::DateTime;
use aws_sdk_cloudformation::types::{
    ResourceStatus, Stack, StackEvent as CfnEvent, StackStatus, Tag,
};

use super::apply::ApplyOptions;
use super::plan::{Backoff, PlanOptions};
use crate::provider::{STACK_HASH_TAG, StackDefinition};
use crate::template::{Resource, Template};

/// Id of the stack `app`.
pub const STACK_ID: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/app/1";
/// A change set id.
pub const CS_ID: &str = "arn:aws:cloudformation:us-east-1:123456789012:changeSet/harmonix-x/1";

/// The id of stack `name` (generation `n`).
pub fn stack_id(name: &str, n: u32) -> String {
    format!("arn:aws:cloudformation:us-east-1:123456789012:stack/{name}/{n}")
}

/// Stack `app` with a queue and a bucket.
pub fn def() -> StackDefinition {
    def_named("app", &[])
}

/// A stack with a queue and a bucket, depending on `deps`.
pub fn def_named(name: &str, deps: &[&str]) -> StackDefinition {
    let mut t = Template::new("test");
    t.resource("Queue", Resource::new("AWS::SQS::Queue"));
    t.resource("Bucket", Resource::new("AWS::S3::Bucket"));
    StackDefinition {
        name: name.to_owned(),
        provider: "p".to_owned(),
        account: "123456789012".to_owned(),
        region: "us-east-1".to_owned(),
        template: t,
        parameters: BTreeMap::new(),
        tags: BTreeMap::new(),
        depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
        capabilities: Vec::new(),
    }
}

/// One stack as `DescribeStacks` lists it.
pub fn summary(
    name: &str,
    id: &str,
    status: StackStatus,
    hash: &str,
    updated: Option<i64>,
) -> Stack {
    Stack::builder()
        .stack_name(name)
        .stack_id(id)
        .stack_status(status)
        .creation_time(DateTime::from_secs(1_700_000_000))
        .set_last_updated_time(updated.map(DateTime::from_secs))
        .tags(Tag::builder().key(STACK_HASH_TAG).value(hash).build())
        .build()
}

/// `DescribeStacks` answering stack `app`.
pub fn stack(status: StackStatus, hash: &str, updated: Option<i64>) -> DescribeStacksOutput {
    DescribeStacksOutput::builder()
        .stacks(summary("app", STACK_ID, status, hash, updated))
        .build()
}

/// `DescribeStacks` answering these stacks.
pub fn stacks(list: Vec<Stack>) -> DescribeStacksOutput {
    DescribeStacksOutput::builder()
        .set_stacks(Some(list))
        .build()
}

/// A stack event of stack `app`.
pub fn event(
    id: &str,
    logical: &str,
    kind: &str,
    status: ResourceStatus,
    reason: &str,
) -> CfnEvent {
    event_of("app", STACK_ID, id, logical, kind, status, reason)
}

/// A stack event.
pub fn event_of(
    stack: &str,
    stack_id: &str,
    id: &str,
    logical: &str,
    kind: &str,
    status: ResourceStatus,
    reason: &str,
) -> CfnEvent {
    CfnEvent::builder()
        .event_id(id)
        .stack_id(stack_id)
        .stack_name(stack)
        .logical_resource_id(logical)
        .resource_type(kind)
        .resource_status(status)
        .resource_status_reason(reason)
        .timestamp(DateTime::from_secs(1_700_000_000))
        .build()
}

/// Options that poll every millisecond.
pub fn fast() -> (PlanOptions, ApplyOptions) {
    let poll = Backoff {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(2),
    };
    (
        PlanOptions {
            poll,
            ..PlanOptions::default()
        },
        ApplyOptions {
            poll,
            timeout: Duration::from_secs(10),
            ..ApplyOptions::default()
        },
    )
}
