//! What the catalog needs from deployed stacks: their outputs, completed
//! from the stacks' resources where CloudFormation lists no value, and the
//! providers' live [`Lookup`]s.
//!
//! CloudFormation normally returns every output. When it does not (an
//! output whose condition is false, a stack made by a tool that drops
//! outputs, an emulator), an output defined as `{"Ref": Resource}` is the
//! resource's physical id and `{"Fn::GetAtt": [Resource, "Arn"]}` of a
//! resource type with a documented ARN format is built from the physical
//! id: both read from one `DescribeStackResources` call, made only when an
//! output is missing.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::Client;
use serde_json::Value;

use super::error::EngineError;
use crate::provider::common::partition;
use crate::provider::{Lookup, StackDefinition};

/// Fill the outputs of `def`'s deployed stack that CloudFormation did not
/// return, from its resources. No call when nothing is missing.
pub async fn complete_outputs(
    client: &Client,
    def: &StackDefinition,
    outputs: &mut BTreeMap<String, String>,
) -> Result<(), EngineError> {
    let missing: Vec<(&String, &Value)> = def
        .template
        .outputs
        .iter()
        .filter(|(k, _)| outputs.get(*k).is_none_or(String::is_empty))
        .map(|(k, o)| (k, &o.value))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let resp = client
        .describe_stack_resources()
        .stack_name(&def.name)
        .send()
        .await
        .map_err(|e| EngineError::aws("DescribeStackResources", Some(&def.name), e))?;
    let physical: BTreeMap<&str, &str> = resp
        .stack_resources()
        .iter()
        .filter_map(|r| Some((r.logical_resource_id()?, r.physical_resource_id()?)))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    for (key, value) in missing {
        if let Some(v) = resolve(def, value, &physical) {
            outputs.insert(key.clone(), v);
        }
    }
    Ok(())
}

/// The value of an output expression from physical ids, when it is a
/// `Ref` to a resource or a `GetAtt … Arn` of a known resource type.
fn resolve(
    def: &StackDefinition,
    value: &Value,
    physical: &BTreeMap<&str, &str>,
) -> Option<String> {
    let obj = value.as_object()?;
    if let Some(Value::String(id)) = obj.get("Ref") {
        def.template.resources.get(id)?;
        return physical.get(id.as_str()).map(|p| (*p).to_owned());
    }
    let att = obj.get("Fn::GetAtt")?.as_array()?;
    let (Some(Value::String(id)), Some(Value::String(attribute))) = (att.first(), att.get(1))
    else {
        return None;
    };
    if attribute != "Arn" {
        return None;
    }
    let kind = &def.template.resources.get(id)?.kind;
    let phys = physical.get(id.as_str())?;
    arn_of(kind, phys, &def.account, &def.region)
}

/// The ARN of a resource from its physical id, for resource types whose
/// `Ref` is a name and whose ARN format is documented.
fn arn_of(kind: &str, physical: &str, account: &str, region: &str) -> Option<String> {
    if physical.starts_with("arn:") {
        return Some(physical.to_owned());
    }
    let p = partition(region);
    Some(match kind {
        "AWS::IAM::Role" => format!("arn:{p}:iam::{account}:role/{physical}"),
        "AWS::Lambda::Function" => format!("arn:{p}:lambda:{region}:{account}:function:{physical}"),
        "AWS::DynamoDB::Table" => format!("arn:{p}:dynamodb:{region}:{account}:table/{physical}"),
        "AWS::ECS::Cluster" => format!("arn:{p}:ecs:{region}:{account}:cluster/{physical}"),
        "AWS::EKS::Cluster" => format!("arn:{p}:eks:{region}:{account}:cluster/{physical}"),
        "AWS::KMS::Key" => format!("arn:{p}:kms:{region}:{account}:key/{physical}"),
        "AWS::Logs::LogGroup" => format!("arn:{p}:logs:{region}:{account}:log-group:{physical}:*"),
        "AWS::SSM::Parameter" => format!(
            "arn:{p}:ssm:{region}:{account}:parameter/{}",
            physical.trim_start_matches('/')
        ),
        _ => return None,
    })
}

/// Perform a provider's look-up; the result map as described on
/// [`Lookup`].
pub async fn perform(
    eks: &aws_sdk_eks::Client,
    lookup: &Lookup,
) -> Result<BTreeMap<String, String>, EngineError> {
    match lookup {
        Lookup::EksCluster { name } => {
            let resp = eks
                .describe_cluster()
                .name(name)
                .send()
                .await
                .map_err(|e| EngineError::aws_in("EKS", "DescribeCluster", None, e))?;
            let Some(c) = resp.cluster() else {
                return Err(EngineError::LookupFailed {
                    what: format!("EKS cluster `{name}`"),
                    reason: "DescribeCluster returned no cluster".to_owned(),
                });
            };
            let status = c
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default();
            if status != "ACTIVE" {
                return Err(EngineError::LookupFailed {
                    what: format!("EKS cluster `{name}`"),
                    reason: format!("it is {status}, not ACTIVE"),
                });
            }
            let mut out = BTreeMap::new();
            out.insert("status".to_owned(), status);
            let mut put = |k: &str, v: Option<&str>| {
                if let Some(v) = v {
                    out.insert(k.to_owned(), v.to_owned());
                }
            };
            put("arn", c.arn());
            put("endpoint", c.endpoint());
            put("version", c.version());
            put(
                "oidcIssuer",
                c.identity().and_then(|i| i.oidc()).and_then(|o| o.issuer()),
            );
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{Output, Resource, Template, fns};

    fn def() -> StackDefinition {
        let mut t = Template::new("t");
        t.resource("Vpc", Resource::new("AWS::EC2::VPC"));
        t.resource("Role", Resource::new("AWS::IAM::Role"));
        t.resource("Table", Resource::new("AWS::DynamoDB::Table"));
        t.resource("Thing", Resource::new("AWS::Custom::Thing"));
        t.output("VpcId", Output::new(fns::ref_("Vpc")));
        t.output("RoleArn", Output::new(fns::get_att("Role", "Arn")));
        t.output("TableArn", Output::new(fns::get_att("Table", "Arn")));
        t.output("ThingArn", Output::new(fns::get_att("Thing", "Arn")));
        t.output("Sub", Output::new(fns::sub("${Vpc}")));
        StackDefinition {
            name: "s".to_owned(),
            provider: "p".to_owned(),
            account: "123456789012".to_owned(),
            region: "cn-north-1".to_owned(),
            template: t,
            parameters: BTreeMap::new(),
            tags: BTreeMap::new(),
            depends_on: Vec::new(),
            capabilities: Vec::new(),
        }
    }

    #[test]
    fn refs_and_arns_resolve_from_physical_ids() {
        let d = def();
        let physical = BTreeMap::from([
            ("Vpc", "vpc-123"),
            ("Role", "s-role"),
            ("Table", "s-audit"),
            ("Thing", "thing-1"),
        ]);
        let r = |k: &str| resolve(&d, &d.template.outputs[k].value, &physical);
        assert_eq!(r("VpcId").as_deref(), Some("vpc-123"));
        assert_eq!(
            r("RoleArn").as_deref(),
            Some("arn:aws-cn:iam::123456789012:role/s-role")
        );
        assert_eq!(
            r("TableArn").as_deref(),
            Some("arn:aws-cn:dynamodb:cn-north-1:123456789012:table/s-audit")
        );
        assert_eq!(r("ThingArn"), None, "unknown ARN format: left out");
        assert_eq!(r("Sub"), None, "only Ref and GetAtt resolve");
    }
}
