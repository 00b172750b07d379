//! Backstage entities written by Harmonix.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `apiVersion` of the Harmonix custom kinds.
pub const AWS_API_VERSION: &str = "aws.backstage.io/v1alpha";
/// Kind of an environment provider entity.
pub const KIND_PROVIDER: &str = "AWSEnvironmentProvider";
/// Kind of an environment entity.
pub const KIND_ENVIRONMENT: &str = "AWSEnvironment";
/// Annotation marking documents written by Harmonix.
pub const MANAGED_BY_ANNOTATION: &str = "harmonix.dev/managed-by";

/// A Backstage catalog entity, as written to `catalog-info.yaml`.
///
/// `metadata` and `spec` keep their key order, so that merged files stay
/// stable and diffs small.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entity {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata` (at least `name`).
    pub metadata: Map<String, Value>,
    /// `spec`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub spec: Map<String, Value>,
}

impl Entity {
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.metadata
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    /// `metadata.namespace`, `default` when absent.
    pub fn namespace(&self) -> &str {
        self.metadata
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
    }
    /// The entity reference `kind:namespace/name`, kind lowercased.
    pub fn entity_ref(&self) -> String {
        format!(
            "{}:{}/{}",
            self.kind.to_ascii_lowercase(),
            self.namespace(),
            self.name()
        )
    }
    /// As a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Fields of an `AWSEnvironmentProvider` entity. Providers fill it from
/// stack outputs (or derived names) and call [`ProviderEntity::into_entity`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderEntity {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.title`.
    pub title: String,
    /// `metadata.description`.
    pub description: String,
    /// `metadata.tags`.
    pub tags: Vec<String>,
    /// `metadata.prefix`.
    pub prefix: String,
    /// `metadata.envType` (`aws-ecs`, `aws-eks`, `aws-serverless`).
    pub env_type: String,
    /// `metadata.awsAccount`.
    pub aws_account: String,
    /// `metadata.awsRegion`.
    pub aws_region: String,
    /// `metadata.environmentRole`.
    pub environment_role: String,
    /// `metadata.vpc` (VPC id).
    pub vpc: String,
    /// `metadata.clusterName` (empty for serverless).
    pub cluster_name: String,
    /// `metadata.operationRole` (ARN).
    pub operation_role: String,
    /// `metadata.provisioningRole` (ARN).
    pub provisioning_role: String,
    /// `metadata.auditTable` (name).
    pub audit_table: String,
    /// `metadata.stackName`.
    pub stack_name: String,
    /// EKS-only fields.
    pub eks: Option<EksEntityFields>,
    /// Extra metadata written after the standard fields (sorted by key),
    /// e.g. `apiGatewayId` for serverless.
    pub extra: std::collections::BTreeMap<String, String>,
    /// `spec.lifecycle`.
    pub lifecycle: String,
    /// `spec.owner`.
    pub owner: String,
}

/// EKS additions to [`ProviderEntity`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EksEntityFields {
    /// `metadata.apiAccess` (`public`, `private`, `public-and-private`).
    pub api_access: String,
    /// `metadata.apiAccessCidrs`.
    pub api_access_cidrs: Vec<String>,
    /// `metadata.nodeType` (`fargate`, `managed-nodes`).
    pub node_type: String,
    /// `metadata.clusterAdminRole` (ARN).
    pub cluster_admin_role: String,
    /// `metadata.kubectlLambdaArn` (empty unless the endpoint is private).
    pub kubectl_lambda_arn: String,
    /// `metadata.kubectlLambdaAssumeRoleArn`.
    pub kubectl_lambda_assume_role_arn: String,
}

impl ProviderEntity {
    /// The entity.
    pub fn into_entity(self) -> Entity {
        let mut m = Map::new();
        let s = |v: String| Value::String(v);
        m.insert("name".into(), s(self.name));
        m.insert("title".into(), s(self.title));
        m.insert("description".into(), s(self.description));
        m.insert(
            "tags".into(),
            Value::Array(self.tags.into_iter().map(Value::String).collect()),
        );
        m.insert(
            "annotations".into(),
            serde_json::json!({ MANAGED_BY_ANNOTATION: "harmonix" }),
        );
        m.insert("prefix".into(), s(self.prefix));
        m.insert("envType".into(), s(self.env_type));
        m.insert("awsAccount".into(), s(self.aws_account));
        m.insert("awsRegion".into(), s(self.aws_region));
        m.insert("environmentRole".into(), s(self.environment_role));
        m.insert("iacType".into(), s("cloudformation".into()));
        m.insert("componentState".into(), s("cloudformation".into()));
        m.insert("vpc".into(), s(self.vpc));
        m.insert("clusterName".into(), s(self.cluster_name));
        m.insert("operationRole".into(), s(self.operation_role));
        m.insert("provisioningRole".into(), s(self.provisioning_role));
        m.insert("auditTable".into(), s(self.audit_table));
        m.insert("stackName".into(), s(self.stack_name));
        if let Some(eks) = self.eks {
            m.insert("apiAccess".into(), s(eks.api_access));
            m.insert(
                "apiAccessCidrs".into(),
                Value::Array(
                    eks.api_access_cidrs
                        .into_iter()
                        .map(Value::String)
                        .collect(),
                ),
            );
            m.insert("nodeType".into(), s(eks.node_type));
            m.insert("clusterAdminRole".into(), s(eks.cluster_admin_role));
            m.insert("kubectlLambdaArn".into(), s(eks.kubectl_lambda_arn));
            m.insert(
                "kubectlLambdaAssumeRoleArn".into(),
                s(eks.kubectl_lambda_assume_role_arn),
            );
        }
        for (k, v) in self.extra {
            m.insert(k, s(v));
        }
        let mut spec = Map::new();
        spec.insert("type".into(), s("environment-provider".into()));
        spec.insert("lifecycle".into(), s(self.lifecycle));
        spec.insert("owner".into(), s(self.owner));
        Entity {
            api_version: AWS_API_VERSION.into(),
            kind: KIND_PROVIDER.into(),
            metadata: m,
            spec,
        }
    }
}
