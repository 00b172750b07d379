//! Unit tests of the ECS providers.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::spec::{SpecFile, ValidSpec, parse_str};

const ECS: &str = r#"
providers:
  - kind: ecs
    name: payments-dev
    owner: group:payments
    account: "123456789012"
    region: us-east-1
    environmentRole: arn:aws:iam::123456789012:role/opa-envprovisioning-role
    platformRole: arn:aws:iam::111111111111:role/opa-platform-role
    pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
"#;

fn file(extra: &str, kind: &str) -> SpecFile {
    parse_str(
        &format!("{}{extra}", ECS.replace("kind: ecs", kind)),
        "test",
    )
    .unwrap()
}

fn stack(f: &SpecFile) -> StackDefinition {
    let valid = ValidSpec::new_unchecked(f.clone());
    let p = valid.providers().next().unwrap();
    let provider: &dyn EnvironmentProvider = if p.kind == ProviderKind::Ecs {
        &EcsProvider
    } else {
        &EcsEc2Provider
    };
    let mut s = provider.stacks(p);
    assert_eq!(s.len(), 1);
    s.remove(0)
}

fn prop<'a>(s: &'a StackDefinition, id: &str, name: &str) -> &'a Value {
    s.template
        .resources
        .get(id)
        .and_then(|r| r.properties.get(name))
        .unwrap_or_else(|| panic!("{id}.{name} missing"))
}

#[test]
fn fargate_stack_has_cluster_with_insights_and_fargate_capacity() {
    let s = stack(&file("", "kind: ecs"));
    assert_eq!(s.name, "opa-payments-dev-environment");
    assert_eq!(s.capabilities, vec!["CAPABILITY_NAMED_IAM".to_owned()]);
    assert_eq!(
        prop(&s, CLUSTER, "ClusterSettings"),
        &json!([{ "Name": "containerInsights", "Value": "enabled" }])
    );
    assert_eq!(
        prop(&s, "ClusterCapacityProviders", "CapacityProviders"),
        &json!(["FARGATE", "FARGATE_SPOT"])
    );
    assert!(!s.template.resources.contains_key("AutoScalingGroup"));
    for id in [
        "EnvironmentKey",
        "EnvironmentLogGroup",
        "AuditTable",
        "Vpc",
        "OperationsRole",
        "ProvisioningRole",
    ] {
        assert!(s.template.resources.contains_key(id), "{id} missing");
    }
    assert!(s.template.dangling_references().is_empty());
    assert_eq!(s.parameters["VpcCidr"], "10.0.0.0/24");
    assert_eq!(s.parameters["Prefix"], "opa");
}

#[test]
fn roles_trust_exactly_the_spec_principals() {
    let s = stack(&file("", "kind: ecs"));
    let principal = |id: &str| {
        prop(&s, id, "AssumeRolePolicyDocument")["Statement"][0]["Principal"]["AWS"].clone()
    };
    assert_eq!(
        principal("OperationsRole"),
        json!("arn:aws:iam::111111111111:role/opa-platform-role")
    );
    assert_eq!(
        principal("ProvisioningRole"),
        json!("arn:aws:iam::111111111111:role/opa-pipeline-role")
    );
    assert_eq!(
        prop(&s, "OperationsRole", "MaxSessionDuration"),
        &json!(43_200)
    );
}

#[test]
fn ec2_stack_sizes_the_group_from_the_spec() {
    let extra = "    ecs:\n      capacity: { instanceTypes: [m6i.large], minSize: 2, desiredSize: 3, maxSize: 5 }\n";
    let s = stack(&file(extra, "kind: ecs-ec2"));
    assert_eq!(prop(&s, "AutoScalingGroup", "MinSize"), &json!("2"));
    assert_eq!(prop(&s, "AutoScalingGroup", "DesiredCapacity"), &json!("3"));
    assert_eq!(prop(&s, "AutoScalingGroup", "MaxSize"), &json!("5"));
    assert_eq!(
        prop(&s, "LaunchTemplate", "LaunchTemplateData")["InstanceType"],
        json!("m6i.large")
    );
    assert_eq!(
        prop(&s, "LaunchTemplate", "LaunchTemplateData")["MetadataOptions"]["HttpTokens"],
        json!("required")
    );
    assert!(s.template.dangling_references().is_empty());
}

#[test]
fn validation_paths() {
    let mut errors = ValidationErrors::default();
    let f = file("    ecs: { capacity: { minSize: 1 } }\n", "kind: ecs");
    EcsProvider.validate(&f.providers[0], "providers[0]", &mut errors);
    assert_eq!(
        errors.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
        ["providers[0].ecs.capacity"]
    );

    let mut errors = ValidationErrors::default();
    let f = file(
        "    vpc: { mode: existing, id: vpc-0a1b2c3d }\n",
        "kind: ecs-ec2",
    );
    EcsEc2Provider.validate(&f.providers[0], "providers[0]", &mut errors);
    assert_eq!(
        errors.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
        ["providers[0].vpc.privateSubnetIds"]
    );

    let mut errors = ValidationErrors::default();
    let f = file(
        "    ecs: { capacity: { minSize: 5, desiredSize: 2, maxSize: 1, instanceTypes: [large] } }\n",
        "kind: ecs-ec2",
    );
    EcsEc2Provider.validate(&f.providers[0], "providers[0]", &mut errors);
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    for p in [
        "providers[0].ecs.capacity.minSize",
        "providers[0].ecs.capacity.desiredSize",
        "providers[0].ecs.capacity.instanceTypes[0]",
    ] {
        assert!(paths.contains(&p), "{p} not in {paths:?}");
    }
}

#[test]
fn derived_names_cover_cluster_and_roles() {
    let f = file("", "kind: ecs-ec2");
    let names = EcsEc2Provider.derived_names(&f.providers[0], "providers[0]");
    let has = |kind: NameKind, v: &str| names.iter().any(|n| n.kind == kind && n.value == v);
    assert!(has(NameKind::EcsCluster, "opa-payments-dev-cluster"));
    assert!(has(NameKind::IamRole, "opa-payments-dev-ecs-instance-role"));
    assert!(has(NameKind::DynamoDbTable, "opa-payments-dev-audit"));
    assert!(names.iter().all(|n| n.path == "providers[0].name"));
}

#[test]
fn entity_is_complete_without_outputs_and_prefers_outputs() {
    let f = file("", "kind: ecs");
    let valid = ValidSpec::new_unchecked(f);
    let p = valid.providers().next().unwrap();
    let e = EcsProvider.catalog_entity(p, &StackOutputs::new());
    let m = |k: &str| e.metadata[k].as_str().unwrap().to_owned();
    assert_eq!(e.kind, "AWSEnvironmentProvider");
    assert_eq!(m("clusterName"), "opa-payments-dev-cluster");
    assert_eq!(
        m("operationRole"),
        "arn:aws:iam::123456789012:role/opa-payments-dev-operations-role"
    );
    assert_eq!(m("auditTable"), "opa-payments-dev-audit");
    assert_eq!(m("envType"), "aws-ecs");
    assert_eq!(m("stackName"), "opa-payments-dev-environment");

    let mut outputs = StackOutputs::new();
    outputs.insert(
        "opa-payments-dev-environment".into(),
        BTreeMap::from([
            ("VpcId".to_owned(), "vpc-0123456789abcdef0".to_owned()),
            ("ClusterName".to_owned(), "from-output".to_owned()),
        ]),
    );
    let e = EcsProvider.catalog_entity(p, &outputs);
    assert_eq!(e.metadata["vpc"], json!("vpc-0123456789abcdef0"));
    assert_eq!(e.metadata["clusterName"], json!("from-output"));
}

/// The statements of an inline policy of `role`.
fn statements<'a>(s: &'a StackDefinition, role: &str) -> &'a Vec<Value> {
    prop(s, role, "Policies")[0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
}

/// The statement allowing `action` (the first one).
fn allowing<'a>(statements: &'a [Value], action: &str) -> &'a Value {
    statements
        .iter()
        .find(|st| {
            st["Action"] == action
                || st["Action"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == action))
        })
        .unwrap_or_else(|| panic!("no statement allows {action}"))
}

#[test]
fn ecs_statements_name_the_resource_types_ecs_authorizes_against() {
    let s = stack(&file("", "kind: ecs"));
    let cluster = fns::get_att(CLUSTER, "Arn");
    let in_cluster = |kind: &str| {
        json!([fns::sub(&format!(
            "arn:${{AWS::Partition}}:ecs:${{AWS::Region}}:${{AWS::AccountId}}:{kind}/${{Prefix}}-${{EnvironmentName}}-cluster/*"
        ))])
    };
    for role in [ids::OPERATIONS_ROLE, ids::PROVISIONING_ROLE] {
        let st = statements(&s, role);
        assert_eq!(
            allowing(st, "ecs:DescribeClusters")["Resource"],
            json!([cluster])
        );
        assert_eq!(
            allowing(st, "ecs:UpdateService")["Resource"],
            in_cluster("service")
        );
        assert_eq!(allowing(st, "ecs:StopTask")["Resource"], in_cluster("task"));
        // No resource type to scope by: `*` with the cluster condition.
        for action in ["ecs:ListServices", "ecs:ListTasks"] {
            let list = allowing(st, action);
            assert_eq!(list["Resource"], "*", "{action}");
            assert_eq!(list["Condition"]["ArnEquals"]["ecs:cluster"], cluster);
        }
        // The old pattern `…:*/{cluster}*` matched no ECS resource type.
        assert!(
            !serde_json::to_string(st).unwrap().contains(":*/${Prefix}"),
            "{role}"
        );
    }
    let prov = statements(&s, ids::PROVISIONING_ROLE);
    assert_eq!(
        allowing(prov, "ecs:CreateService")["Resource"],
        in_cluster("service")
    );
    let run = allowing(prov, "ecs:RunTask");
    assert_eq!(
        run["Resource"],
        fns::sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task-definition/*")
    );
    assert_eq!(run["Condition"]["ArnEquals"]["ecs:cluster"], cluster);
}

#[test]
fn the_operations_role_reads_its_stack_audit_table_resource_groups_and_app_secrets() {
    let s = stack(&file("", "kind: ecs"));
    let ops = statements(&s, ids::OPERATIONS_ROLE);
    for action in [
        "cloudformation:DescribeStacks",
        "cloudformation:DescribeStackEvents",
        "cloudformation:DescribeStackResources",
        "cloudformation:GetTemplateSummary",
        "cloudformation:ListStackResources",
    ] {
        assert_eq!(
            allowing(ops, action)["Resource"],
            json!([fns::sub(
                "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${Prefix}-${EnvironmentName}-environment/*"
            )]),
            "{action}"
        );
    }
    let audit = json!([fns::get_att(ids::AUDIT_TABLE, "Arn")]);
    for action in [
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:Query",
    ] {
        assert_eq!(allowing(ops, action)["Resource"], audit, "{action}");
    }
    // The latest records come from the audit table's index by time.
    let index = json!([fns::sub("${AuditTable.Arn}/index/byCreatedAt")]);
    assert!(
        ops.iter()
            .any(|st| st["Resource"] == index && st["Action"] == json!(["dynamodb:Query"])),
        "{ops:?}"
    );
    for action in [
        "resource-groups:ListGroups",
        "resource-groups:SearchResources",
        "tag:GetResources",
    ] {
        assert_eq!(allowing(ops, action)["Resource"], "*", "{action}");
    }
    assert!(
        allowing(ops, "resource-groups:ListGroupResources")["Resource"]
            .to_string()
            .contains(":group/${Prefix}-${EnvironmentName}")
    );
    for action in [
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
    ] {
        assert_eq!(
            allowing(ops, action)["Resource"],
            json!([fns::sub(
                "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${Prefix}-${EnvironmentName}/*"
            )]),
            "{action}"
        );
    }
    // Reads for the platform, not for the pipeline.
    let prov = serde_json::to_string(statements(&s, ids::PROVISIONING_ROLE)).unwrap();
    assert!(!prov.contains("secretsmanager:GetSecretValue"), "{prov}");
}

#[test]
fn service_trust_policies_carry_the_confused_deputy_conditions() {
    let s = stack(&file("", "kind: ecs"));
    let trust = &prop(&s, "FlowLogRole", "AssumeRolePolicyDocument")["Statement"][0];
    assert_eq!(
        trust["Principal"],
        json!({ "Service": "vpc-flow-logs.amazonaws.com" })
    );
    assert_eq!(
        trust["Condition"],
        json!({
            "StringEquals": { "aws:SourceAccount": fns::ref_("AWS::AccountId") },
            "ArnLike": { "aws:SourceArn": fns::sub(
                "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:vpc-flow-log/*"
            ) }
        })
    );
    // The key policy's CloudWatch Logs statement names actions that carry
    // the encryption context it conditions on.
    let key = &prop(&s, ids::KMS_KEY, "KeyPolicy")["Statement"][1];
    assert_eq!(key["Sid"], "CloudWatchLogs");
    let actions = key["Action"].to_string();
    assert!(
        !actions.contains('*') && !actions.contains("Describe"),
        "{actions}"
    );
    assert!(key["Condition"]["StringLike"]["kms:EncryptionContext:aws:logs:arn"].is_object());
}
