//! Every stateful resource of every rendered example keeps its data when
//! the stack is deleted or the resource replaced. The check goes by
//! resource type, not by logical id, so a new kind (or a new resource of an
//! old one) that adds a stateful type without the policies fails here.

use std::collections::BTreeSet;
use std::path::Path;

use crate::provider::Registry;
use crate::template::Resource;

/// Resource types that hold data: cfn-lint's list for I3011
/// (`StatefulResources.json`) plus buckets and image repositories.
const STATEFUL: &[&str] = &[
    "AWS::Backup::BackupVault",
    "AWS::Cognito::UserPool",
    "AWS::DocDB::DBCluster",
    "AWS::DocDB::DBInstance",
    "AWS::DynamoDB::GlobalTable",
    "AWS::DynamoDB::Table",
    "AWS::EC2::Volume",
    "AWS::ECR::Repository",
    "AWS::EFS::FileSystem",
    "AWS::ElastiCache::CacheCluster",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::Elasticsearch::Domain",
    "AWS::FSx::FileSystem",
    "AWS::KMS::Key",
    "AWS::Kinesis::Stream",
    "AWS::Logs::LogGroup",
    "AWS::Neptune::DBCluster",
    "AWS::Neptune::DBInstance",
    "AWS::OpenSearchService::Domain",
    "AWS::RDS::DBCluster",
    "AWS::RDS::DBInstance",
    "AWS::Redshift::Cluster",
    "AWS::S3::Bucket",
    "AWS::SQS::Queue",
    "AWS::SecretsManager::Secret",
];

/// Types for which CloudFormation can take a snapshot before deleting.
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-deletionpolicy.html>
const SNAPSHOT: &[&str] = &[
    "AWS::EC2::Volume",
    "AWS::ElastiCache::CacheCluster",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::Neptune::DBCluster",
    "AWS::RDS::DBCluster",
    "AWS::RDS::DBInstance",
    "AWS::Redshift::Cluster",
];

/// Every stack of every example spec, as (stack name, logical id, resource).
fn example_resources() -> Vec<(String, String, Resource)> {
    let registry = Registry::builtin();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/specs")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let valid = crate::spec::load(&f, &registry).unwrap_or_else(|e| panic!("{f:?}: {e}"));
        for s in crate::render::stacks(&valid, &registry).expect("renders") {
            for (id, r) in &s.template.resources {
                out.push((s.name.clone(), id.clone(), r.clone()));
            }
        }
    }
    out
}

/// An Aurora instance: a member of a cluster, whose data is the cluster's.
fn in_cluster(r: &Resource) -> bool {
    r.kind == "AWS::RDS::DBInstance" && r.properties.contains_key("DBClusterIdentifier")
}

#[test]
fn every_stateful_resource_survives_stack_deletion_and_replacement() {
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for (stack, id, r) in example_resources() {
        if !STATEFUL.contains(&r.kind.as_str()) {
            continue;
        }
        seen.insert(r.kind.clone());
        let deletion = r.deletion_policy.as_deref();
        let replace = r.update_replace_policy.as_deref();
        if in_cluster(&r) {
            if deletion != Some("Delete") || replace != Some("Delete") {
                problems.push(format!(
                    "{stack}/{id}: an Aurora instance holds no data; say Delete explicitly (got {deletion:?}/{replace:?})"
                ));
            }
            continue;
        }
        let snapshot_ok = SNAPSHOT.contains(&r.kind.as_str());
        let keeps = |p: Option<&str>, on_delete: bool| match p {
            Some("Retain") => true,
            Some("RetainExceptOnCreate") => on_delete,
            Some("Snapshot") => snapshot_ok,
            _ => false,
        };
        if !keeps(deletion, true) || !keeps(replace, false) {
            problems.push(format!(
                "{stack}/{id} ({}): DeletionPolicy {deletion:?}, UpdateReplacePolicy {replace:?}",
                r.kind
            ));
        }
        if r.kind == "AWS::DynamoDB::Table"
            && r.properties.get("DeletionProtectionEnabled") != Some(&serde_json::json!(true))
        {
            problems.push(format!(
                "{stack}/{id}: DeletionProtectionEnabled is not true"
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    for kind in [
        "AWS::DynamoDB::Table",
        "AWS::KMS::Key",
        "AWS::Logs::LogGroup",
        "AWS::S3::Bucket",
        "AWS::SecretsManager::Secret",
        "AWS::RDS::DBCluster",
        "AWS::RDS::DBInstance",
    ] {
        assert!(seen.contains(kind), "no {kind} in the examples: {seen:?}");
    }
}

#[test]
fn the_aurora_cluster_keeps_a_final_snapshot() {
    let clusters: Vec<_> = example_resources()
        .into_iter()
        .filter(|(_, _, r)| r.kind == "AWS::RDS::DBCluster")
        .collect();
    assert!(!clusters.is_empty());
    for (stack, id, r) in clusters {
        assert_eq!(
            r.deletion_policy.as_deref(),
            Some("Snapshot"),
            "{stack}/{id}"
        );
        assert_eq!(
            r.update_replace_policy.as_deref(),
            Some("Snapshot"),
            "{stack}/{id}"
        );
    }
}

#[test]
fn names_that_are_not_data_are_not_kept() {
    // A kept alias would make the next create of the environment fail
    // ("already exists") and protects nothing: the key keeps its id.
    let aliases: Vec<_> = example_resources()
        .into_iter()
        .filter(|(_, _, r)| r.kind == "AWS::KMS::Alias")
        .collect();
    assert!(!aliases.is_empty());
    for (stack, id, r) in aliases {
        assert_eq!(r.deletion_policy, None, "{stack}/{id}");
        assert_eq!(r.update_replace_policy, None, "{stack}/{id}");
    }
}
