//! What deleting a stack keeps, and how a destroy with `delete_data`
//! deletes that too.
//!
//! The templates keep every resource that holds data (`DeletionPolicy`
//! `Retain`, `Snapshot` for the Aurora cluster: see
//! [`crate::provider::common::RETAIN`]). Planning a delete reads the
//! *deployed* template (`GetTemplate`: what CloudFormation will act on,
//! which may be older than the spec) and the stack's resources
//! (`ListStackResources`), and records each resource the delete keeps with
//! its physical id, for the plan, the events and the report.
//!
//! Some deletes need an update first, with the deployed template changed
//! only in what protects data:
//! - always: an RDS cluster (or instance) with `DeletionProtection` cannot
//!   be deleted, final snapshot or not, so protection is turned off (the
//!   snapshot is still taken);
//!   <https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/USER_DeleteCluster.html>
//! - with `delete_data`: every keeping `DeletionPolicy` and
//!   `UpdateReplacePolicy` becomes `Delete` and DynamoDB deletion protection
//!   is turned off. CloudFormation applies both in an update: a change set
//!   reports `DeletionPolicy` and `UpdateReplacePolicy` as attributes of a
//!   `Modify`, and `DeletionProtectionEnabled` updates without
//!   interruption.
//!   <https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ResourceTargetDefinition.html>
//!   <https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-dynamodb-table.html#cfn-dynamodb-table-deletionprotectionenabled>
//!
//! S3 refuses to delete a bucket that holds objects (every version and
//! delete marker of a versioned bucket counts), so with `delete_data` the
//! stack's buckets are emptied before the delete.
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteBucket.html>

use std::collections::BTreeMap;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::TemplateStage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::EngineError;
use super::plan::{ChangeAction, ResourceChange, StackSource};

/// The resource type of buckets, which are emptied before a delete that
/// removes them.
pub const BUCKET: &str = "AWS::S3::Bucket";

/// A resource that a stack's template keeps when the stack is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetainedResource {
    /// The stack it belongs (or belonged) to.
    pub stack: String,
    /// Logical id in the template.
    pub logical_id: String,
    /// Resource type, e.g. `AWS::DynamoDB::Table`.
    pub resource_type: String,
    /// Physical id: table or log group name, key id, bucket name, secret
    /// ARN, cluster identifier.
    pub physical_id: String,
    /// The template's `DeletionPolicy`: `Retain` (the resource stays as it
    /// is) or `Snapshot` (the resource goes, its final snapshot stays).
    pub policy: String,
}

impl RetainedResource {
    /// `AuditTable (AWS::DynamoDB::Table) opa-x-audit`, with `, final
    /// snapshot` for a snapshot.
    pub fn describe(&self) -> String {
        let snapshot = if self.policy == "Snapshot" {
            ", final snapshot"
        } else {
            ""
        };
        format!(
            "{} ({}{snapshot}) {}",
            self.logical_id, self.resource_type, self.physical_id
        )
    }
}

/// How a destroy treats the data the templates keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestroyOptions {
    /// Delete the kept resources too (tables, keys, log groups, buckets,
    /// secrets; the Aurora cluster without a final snapshot). Default off.
    pub delete_data: bool,
    /// Allow [`DestroyOptions::delete_data`] for environments whose
    /// lifecycle is `production`. Default off: such a destroy is refused.
    pub delete_production_data: bool,
}

/// Whether a `DeletionPolicy` keeps something of the resource.
pub(crate) fn keeps(policy: &str) -> bool {
    matches!(policy, "Retain" | "RetainExceptOnCreate" | "Snapshot")
}

/// `(logical id, type, DeletionPolicy)` of each resource of `template` that
/// a stack deletion keeps (`RetainExceptOnCreate` reads `Retain`: it keeps
/// on every delete but a rolled-back create).
pub(crate) fn retained(template: &Value) -> Vec<(String, String, String)> {
    let Some(resources) = template.get("Resources").and_then(Value::as_object) else {
        return Vec::new();
    };
    resources
        .iter()
        .filter_map(|(id, r)| {
            let policy = r.get("DeletionPolicy")?.as_str()?;
            if !keeps(policy) {
                return None;
            }
            let policy = if policy == "Snapshot" {
                "Snapshot"
            } else {
                "Retain"
            };
            let kind = r.get("Type").and_then(Value::as_str).unwrap_or_default();
            Some((id.clone(), kind.to_owned(), policy.to_owned()))
        })
        .collect()
}

/// Change `template` into the one the stack is updated with before its
/// delete (see the module documentation); returns the changes, empty when
/// no update is needed.
pub(crate) fn prepare(template: &mut Value, delete_data: bool) -> Vec<ResourceChange> {
    let Some(resources) = template.get_mut("Resources").and_then(Value::as_object_mut) else {
        return Vec::new();
    };
    let mut changes = Vec::new();
    for (id, r) in resources.iter_mut() {
        let Some(obj) = r.as_object_mut() else {
            continue;
        };
        let kind = obj
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut changed = Vec::new();
        if delete_data {
            for attr in ["DeletionPolicy", "UpdateReplacePolicy"] {
                if obj.get(attr).and_then(Value::as_str).is_some_and(keeps) {
                    obj.insert(attr.to_owned(), Value::from("Delete"));
                    changed.push(attr.to_owned());
                }
            }
        }
        let protection = match kind.as_str() {
            "AWS::DynamoDB::Table" if delete_data => Some("DeletionProtectionEnabled"),
            "AWS::RDS::DBCluster" | "AWS::RDS::DBInstance" => Some("DeletionProtection"),
            _ => None,
        };
        if let Some(p) = protection
            && let Some(props) = obj.get_mut("Properties").and_then(Value::as_object_mut)
            && props.get(p).is_some_and(|v| v != &Value::Bool(false))
        {
            props.insert(p.to_owned(), Value::Bool(false));
            changed.push(p.to_owned());
        }
        if !changed.is_empty() {
            changes.push(ResourceChange {
                action: ChangeAction::Modify,
                logical_id: id.clone(),
                resource_type: kind,
                replacement: None,
                properties: changed,
                rollout: None,
            });
        }
    }
    changes
}

/// What planning the delete of one deployed stack found.
#[derive(Debug, Default)]
pub(crate) struct Inspection {
    /// What the delete keeps.
    pub kept: Vec<RetainedResource>,
    /// What the template would keep and `delete_data` deletes.
    pub deleted_data: Vec<RetainedResource>,
    /// The update to run before the delete, if any.
    pub source: Option<StackSource>,
    /// Its changes.
    pub changes: Vec<ResourceChange>,
}

/// Read the deployed template and resources of stack `name` (id `id`) and
/// decide what its delete keeps and whether it needs an update first.
/// `capabilities` are used when the stack does not report its own.
pub(crate) async fn inspect(
    client: &Client,
    name: &str,
    id: &str,
    capabilities: &[String],
    delete_data: bool,
) -> Result<Inspection, EngineError> {
    let body = client
        .get_template()
        .stack_name(id)
        .template_stage(TemplateStage::Original)
        .send()
        .await
        .map_err(|e| EngineError::aws("GetTemplate", Some(name), e))?
        .template_body
        .unwrap_or_default();
    let mut template: Value = serde_json::from_str(&body).map_err(|e| EngineError::InvalidInput {
        path: format!("stack `{name}`"),
        problem: format!(
            "its deployed template is not JSON ({e}); Harmonix deploys JSON templates, so the stack was changed outside Harmonix: what its delete keeps cannot be read"
        ),
    })?;
    let retained = retained(&template);
    let changes = prepare(&mut template, delete_data);
    let mut out = Inspection::default();
    if !retained.is_empty() {
        let physical: BTreeMap<String, String> = client
            .list_stack_resources()
            .stack_name(id)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| EngineError::aws("ListStackResources", Some(name), e))?
            .into_iter()
            .filter_map(|r| {
                Some((
                    r.logical_resource_id?,
                    r.physical_resource_id.filter(|p| !p.is_empty())?,
                ))
            })
            .collect();
        // Resources a condition left out, or never created, keep nothing.
        for (logical_id, resource_type, policy) in retained {
            let Some(physical_id) = physical.get(&logical_id).cloned() else {
                continue;
            };
            let r = RetainedResource {
                stack: name.to_owned(),
                logical_id,
                resource_type,
                physical_id,
                policy,
            };
            if delete_data {
                out.deleted_data.push(r);
            } else {
                out.kept.push(r);
            }
        }
    }
    if !changes.is_empty() {
        let stack = client
            .describe_stacks()
            .stack_name(id)
            .send()
            .await
            .map_err(|e| EngineError::aws("DescribeStacks", Some(name), e))?
            .stacks
            .unwrap_or_default()
            .into_iter()
            .next()
            .unwrap_or_else(|| aws_sdk_cloudformation::types::Stack::builder().build());
        let mut caps: Vec<String> = stack
            .capabilities()
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        if caps.is_empty() {
            caps = capabilities.to_vec();
        }
        out.source = Some(StackSource {
            // Compact: never larger than the deployed body.
            template_body: serde_json::to_string(&template).unwrap_or_default(),
            parameters: stack
                .parameters()
                .iter()
                .filter_map(|p| {
                    Some((
                        p.parameter_key()?.to_owned(),
                        p.parameter_value().unwrap_or_default().to_owned(),
                    ))
                })
                .collect(),
            tags: stack
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                .collect(),
            capabilities: caps,
        });
        out.changes = changes;
    }
    Ok(out)
}

/// The property holding the physical name of a resource type, for the
/// retained types whose names the templates fix.
fn name_property(kind: &str) -> Option<&'static str> {
    match kind {
        "AWS::DynamoDB::Table" => Some("TableName"),
        "AWS::Logs::LogGroup" => Some("LogGroupName"),
        "AWS::SecretsManager::Secret" => Some("Name"),
        BUCKET => Some("BucketName"),
        _ => None,
    }
}

/// A string or an `Fn::Sub` of `${Parameter}` references, resolved with
/// `parameters`; `None` for anything else (pseudo parameters, other
/// functions).
fn resolve(v: &Value, parameters: &BTreeMap<String, String>) -> Option<String> {
    if let Some(s) = v.as_str() {
        return Some(s.to_owned());
    }
    let text = v.get("Fn::Sub")?.as_str()?;
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}')? + start;
        out.push_str(parameters.get(&rest[start + 2..end])?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// `(logical id, type, name)` of each resource of `template` that a stack
/// deletion keeps and whose name the template fixes: what a create of the
/// template collides with when an earlier deletion kept it.
pub(crate) fn retained_names(
    template: &Value,
    parameters: &BTreeMap<String, String>,
) -> Vec<(String, String, String)> {
    let resources = template.get("Resources").and_then(Value::as_object);
    retained(template)
        .into_iter()
        .filter_map(|(id, kind, _)| {
            let prop = name_property(&kind)?;
            let value = resources?.get(&id)?.get("Properties")?.get(prop)?;
            let name = resolve(value, parameters)?;
            Some((id, kind, name))
        })
        .collect()
}

/// Delete every object version and delete marker of `bucket` (a missing
/// bucket is empty); returns how many were deleted.
pub(crate) async fn empty_bucket(
    s3: &aws_sdk_s3::Client,
    stack: &str,
    bucket: &str,
) -> Result<usize, EngineError> {
    use aws_sdk_s3::error::ProvideErrorMetadata as _;
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let mut deleted = 0;
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let page = match s3
            .list_object_versions()
            .bucket(bucket)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
        {
            Ok(p) => p,
            Err(e) if e.code() == Some("NoSuchBucket") => return Ok(deleted),
            Err(e) => {
                return Err(EngineError::aws_in(
                    "S3",
                    "ListObjectVersions",
                    Some(stack),
                    e,
                ));
            }
        };
        let versions = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            );
        let ids: Vec<ObjectIdentifier> = versions
            .filter_map(|(key, version)| {
                ObjectIdentifier::builder()
                    .key(key?)
                    .set_version_id(version.map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        // At most 1,000 keys per DeleteObjects, as a page lists at most.
        for chunk in ids.chunks(1000) {
            let delete = Delete::builder()
                .set_objects(Some(chunk.to_vec()))
                .quiet(true)
                .build()
                .map_err(|e| EngineError::InvalidInput {
                    path: format!("bucket `{bucket}`"),
                    problem: e.to_string(),
                })?;
            let out = s3
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| EngineError::aws_in("S3", "DeleteObjects", Some(stack), e))?;
            if let Some(err) = out.errors().first() {
                return Err(EngineError::LookupFailed {
                    what: format!("emptying bucket `{bucket}` of stack `{stack}`"),
                    reason: format!(
                        "{} ({}): {}",
                        err.key().unwrap_or_default(),
                        err.code().unwrap_or_default(),
                        err.message().unwrap_or_default()
                    ),
                });
            }
            deleted += chunk.len();
        }
        if page.is_truncated() != Some(true) {
            return Ok(deleted);
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
        if key_marker.is_none() && version_marker.is_none() {
            return Ok(deleted);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn template() -> Value {
        json!({ "Resources": {
            "AuditTable": {
                "Type": "AWS::DynamoDB::Table",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": { "TableName": "t", "DeletionProtectionEnabled": true }
            },
            "Key": {
                "Type": "AWS::KMS::Key",
                "DeletionPolicy": "RetainExceptOnCreate",
                "UpdateReplacePolicy": "Retain",
                "Properties": {}
            },
            "Database": {
                "Type": "AWS::RDS::DBCluster",
                "DeletionPolicy": "Snapshot",
                "UpdateReplacePolicy": "Snapshot",
                "Properties": { "DeletionProtection": true }
            },
            "Alias": { "Type": "AWS::KMS::Alias", "Properties": {} }
        }})
    }

    #[test]
    fn retained_names_resolve_the_fixed_names() {
        let t = json!({ "Resources": {
            "AuditTable": {
                "Type": "AWS::DynamoDB::Table",
                "DeletionPolicy": "Retain",
                "Properties": { "TableName": { "Fn::Sub": "${Prefix}-${EnvironmentName}-audit" } }
            },
            "Logs": {
                "Type": "AWS::Logs::LogGroup",
                "DeletionPolicy": "Retain",
                "Properties": { "LogGroupName": "/fixed/name" }
            },
            "Regional": {
                "Type": "AWS::Logs::LogGroup",
                "DeletionPolicy": "Retain",
                "Properties": { "LogGroupName": { "Fn::Sub": "/x/${AWS::Region}" } }
            },
            "Unnamed": { "Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain" },
            "Gone": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": { "LogGroupName": "/deleted/with/the/stack" }
            }
        }});
        let params = BTreeMap::from([
            ("Prefix".to_owned(), "opa".to_owned()),
            ("EnvironmentName".to_owned(), "dev".to_owned()),
        ]);
        assert_eq!(
            retained_names(&t, &params),
            [
                (
                    "AuditTable".into(),
                    "AWS::DynamoDB::Table".into(),
                    "opa-dev-audit".into()
                ),
                (
                    "Logs".into(),
                    "AWS::Logs::LogGroup".into(),
                    "/fixed/name".into()
                ),
            ]
        );
    }

    #[test]
    fn retained_reads_the_deletion_policy() {
        assert_eq!(
            retained(&template()),
            [
                (
                    "AuditTable".into(),
                    "AWS::DynamoDB::Table".into(),
                    "Retain".into()
                ),
                ("Key".into(), "AWS::KMS::Key".into(), "Retain".into()),
                (
                    "Database".into(),
                    "AWS::RDS::DBCluster".into(),
                    "Snapshot".into()
                ),
            ]
        );
        assert!(
            retained(&json!({ "Resources": { "A": { "Type": "AWS::SQS::Queue" } } })).is_empty()
        );
    }

    #[test]
    fn a_delete_that_keeps_the_data_only_lifts_the_database_protection() {
        let mut t = template();
        let changes = prepare(&mut t, false);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].logical_id, "Database");
        assert_eq!(changes[0].properties, ["DeletionProtection"]);
        assert_eq!(t["Resources"]["Database"]["DeletionPolicy"], "Snapshot");
        assert_eq!(
            t["Resources"]["Database"]["Properties"]["DeletionProtection"],
            false
        );
        assert_eq!(t["Resources"]["AuditTable"]["DeletionPolicy"], "Retain");
        assert_eq!(
            t["Resources"]["AuditTable"]["Properties"]["DeletionProtectionEnabled"],
            true
        );
        // Nothing left to change: a second pass finds nothing.
        assert!(prepare(&mut t, false).is_empty());
    }

    #[test]
    fn delete_data_turns_every_keeping_policy_and_protection_off() {
        let mut t = template();
        let changes = prepare(&mut t, true);
        let by_id: BTreeMap<_, _> = changes
            .iter()
            .map(|c| (c.logical_id.as_str(), c.properties.clone()))
            .collect();
        assert_eq!(
            by_id["AuditTable"],
            [
                "DeletionPolicy",
                "UpdateReplacePolicy",
                "DeletionProtectionEnabled"
            ]
        );
        assert_eq!(by_id["Key"], ["DeletionPolicy", "UpdateReplacePolicy"]);
        assert_eq!(
            by_id["Database"],
            [
                "DeletionPolicy",
                "UpdateReplacePolicy",
                "DeletionProtection"
            ]
        );
        assert!(!by_id.contains_key("Alias"));
        for id in ["AuditTable", "Key", "Database"] {
            assert_eq!(t["Resources"][id]["DeletionPolicy"], "Delete", "{id}");
        }
        assert_eq!(t["Resources"]["Key"]["UpdateReplacePolicy"], "Delete");
        assert_eq!(
            t["Resources"]["AuditTable"]["Properties"]["DeletionProtectionEnabled"],
            false
        );
        assert!(retained(&t).is_empty());
    }
}
