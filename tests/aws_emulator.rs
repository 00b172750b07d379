//! The role chain of `harmonix_core::aws` through the real AWS SDK against
//! the local emulator (moto): endpoint override and static dummy base
//! credentials injected through an `SdkConfig` (no process environment is
//! changed), pipeline role → environment role in another account.
//!
//! What moto cannot show (expiry-driven refresh, AssumeRole failures, trust
//! policies) is covered by the `aws-smithy-mocks` unit tests in
//! `harmonix-core/src/aws/tests.rs`.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use harmonix_core::aws::{AwsOptions, ClientPool, Target};
use harmonix_tests::emulator::Emulator;

const PIPELINE_ROLE: &str = "arn:aws:iam::111111111111:role/harmonix-pipeline";

/// Base configuration: static dummy credentials (moto checks no
/// signatures), a home region different from the targets'.
fn base_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "static",
        )))
        .build()
}

fn pool(emulator: &Emulator) -> ClientPool {
    let opts = AwsOptions {
        endpoint_url: Some(emulator.endpoint_url()),
        pipeline_role: Some(PIPELINE_ROLE.to_owned()),
        caller: Some("ci-bot".to_owned()),
        max_attempts: Some(2),
        ..AwsOptions::default()
    };
    ClientPool::from_sdk_config(base_config(), opts).expect("valid options")
}

fn target(account: &str, environment: &str) -> Target {
    Target {
        account: account.to_owned(),
        region: "eu-west-1".to_owned(),
        role_arn: format!("arn:aws:iam::{account}:role/opa-envprovisioning-role"),
        environment: environment.to_owned(),
    }
}

const TEMPLATE: &str = r#"{
  "AWSTemplateFormatVersion": "2010-09-09",
  "Resources": {
    "Marker": {
      "Type": "AWS::SSM::Parameter",
      "Properties": { "Name": "/harmonix/aws-emulator/marker", "Type": "String", "Value": "1" }
    }
  }
}"#;

#[tokio::test]
async fn role_chain_reaches_the_environment_account() {
    let emulator = Emulator::start();
    let pool = pool(&emulator);
    let dev = target("222222222222", "payments-dev");

    let clients = pool.clients(&dev).await.expect("role chain assumed");
    assert_eq!(clients.session_name, "harmonix-ci-bot-payments-dev");
    assert_eq!(clients.role_arn, dev.role_arn);
    assert_eq!(
        pool.assume_role_calls(),
        2,
        "pipeline role then environment role"
    );

    let me = clients
        .sts
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity through the pooled STS client");
    assert_eq!(
        me.arn(),
        Some(
            "arn:aws:sts::222222222222:assumed-role/opa-envprovisioning-role/harmonix-ci-bot-payments-dev"
        ),
        "{me:?}"
    );
    assert_eq!(me.account(), Some("222222222222"));

    // CloudFormation through the pooled client, in the target account and
    // region.
    let cfn = &clients.cloudformation;
    cfn.create_stack()
        .stack_name("harmonix-aws-emulator")
        .template_body(TEMPLATE)
        .send()
        .await
        .expect("CreateStack");
    let described = cfn
        .describe_stacks()
        .stack_name("harmonix-aws-emulator")
        .send()
        .await
        .expect("DescribeStacks");
    let stack_ids: Vec<&str> = described
        .stacks()
        .iter()
        .filter_map(|s| s.stack_id())
        .collect();
    assert_eq!(stack_ids.len(), 1, "{described:?}");
    assert!(
        stack_ids.iter().all(|id| id.starts_with(
            "arn:aws:cloudformation:eu-west-1:222222222222:stack/harmonix-aws-emulator/"
        )),
        "{stack_ids:?}"
    );

    // Another account's view has no such stack: accounts are separate.
    let prod = target("333333333333", "payments-prod");
    let prod_clients = pool.clients(&prod).await.expect("second chain");
    assert_eq!(pool.assume_role_calls(), 4);
    let prod_me = prod_clients
        .sts
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    assert_eq!(
        prod_me.arn(),
        Some(
            "arn:aws:sts::333333333333:assumed-role/opa-envprovisioning-role/harmonix-ci-bot-payments-prod"
        )
    );
    let prod_stacks = prod_clients
        .cloudformation
        .describe_stacks()
        .send()
        .await
        .expect("DescribeStacks");
    assert!(
        prod_stacks.stacks().is_empty(),
        "{:?}",
        prod_stacks.stacks()
    );
}

#[tokio::test]
async fn clients_are_reused_for_the_same_target() {
    let emulator = Emulator::start();
    let pool = pool(&emulator);
    let dev = target("222222222222", "payments-dev");

    let first = pool.clients(&dev).await.expect("clients");
    let calls = pool.assume_role_calls();
    assert_eq!(calls, 2);
    for _ in 0..3 {
        let again = pool.clients(&dev).await.expect("cached clients");
        assert_eq!(again.session_name, first.session_name);
        again
            .cloudformation
            .describe_stacks()
            .send()
            .await
            .expect("DescribeStacks");
        again
            .sts
            .get_caller_identity()
            .send()
            .await
            .expect("GetCallerIdentity");
    }
    // A clone of the pool shares the cache.
    pool.clone().clients(&dev).await.expect("clients");
    assert_eq!(
        pool.assume_role_calls(),
        calls,
        "no AssumeRole for cached clients with credentials valid for an hour"
    );

    // Concurrent first use of a new target assumes its chain once.
    let stage = target("444444444444", "payments-stage");
    let (a, b) = tokio::join!(pool.clients(&stage), pool.clients(&stage));
    a.expect("clients");
    b.expect("clients");
    assert_eq!(pool.assume_role_calls(), calls + 2);
}
