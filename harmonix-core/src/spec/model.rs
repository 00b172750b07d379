//! The environment spec: the typed form of a Harmonix spec file.
//!
//! A spec file holds one or more environment providers and, optionally, the
//! named environments (stages such as `dev` or `prod`) that group them:
//!
//! ```yaml
//! providers:
//!   - kind: ecs
//!     name: payments-dev
//!     owner: group:payments
//!     account: "123456789012"
//!     region: us-east-1
//!     environmentRole: arn:aws:iam::123456789012:role/opa-envprovisioning-role
//!     platformRole: arn:aws:iam::111111111111:role/opa-platform-role
//!     pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
//!     vpc: { mode: new, cidr: 10.0.0.0/24 }
//! ```
//!
//! Every struct rejects unknown fields. Values are kept as written (strings
//! for ids, CIDRs and ARNs) and checked by [`crate::spec::validate`], which
//! names the field path of every problem.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default resource-name prefix, as in the original Harmonix templates.
pub const DEFAULT_PREFIX: &str = "opa";
/// Default CIDR block of a new VPC.
pub const DEFAULT_VPC_CIDR: &str = "10.0.0.0/24";
/// Default CloudWatch log retention, in days.
pub const DEFAULT_LOG_RETENTION_DAYS: u32 = 90;

/// A whole spec file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpecFile {
    /// Optional schema marker; `harmonix/v1` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The environment providers this file describes (at least one).
    pub providers: Vec<ProviderSpec>,
    /// Named environments (stages) grouping providers, written to the
    /// catalog as `AWSEnvironment` entities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<EnvironmentSpec>,
}

/// The kind of an environment provider; selects the provider
/// implementation in the [`crate::provider::Registry`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum ProviderKind {
    /// Amazon ECS on AWS Fargate.
    #[serde(rename = "ecs")]
    Ecs,
    /// Amazon ECS on EC2 instances (an Auto Scaling group capacity provider).
    #[serde(rename = "ecs-ec2")]
    EcsEc2,
    /// Amazon EKS.
    #[serde(rename = "eks")]
    Eks,
    /// Amazon API Gateway + AWS Lambda.
    #[serde(rename = "serverless")]
    Serverless,
    /// The Backstage platform itself: ECS Fargate + Aurora PostgreSQL
    /// behind an HTTPS load balancer, one stack per stage.
    #[serde(rename = "backstage-platform")]
    BackstagePlatform,
    /// An application on versioned machine images: launch templates and
    /// Auto Scaling groups behind a load balancer.
    #[serde(rename = "vm-image")]
    VmImage,
}

impl ProviderKind {
    /// Every kind, in a stable order.
    pub const ALL: [ProviderKind; 6] = [
        Self::Ecs,
        Self::EcsEc2,
        Self::Eks,
        Self::Serverless,
        Self::BackstagePlatform,
        Self::VmImage,
    ];

    /// The spelling used in spec files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ecs => "ecs",
            Self::EcsEc2 => "ecs-ec2",
            Self::Eks => "eks",
            Self::Serverless => "serverless",
            Self::BackstagePlatform => "backstage-platform",
            Self::VmImage => "vm-image",
        }
    }

    /// The `envType` written to the catalog, as the Harmonix plugins expect.
    pub fn env_type(self) -> &'static str {
        match self {
            Self::Ecs | Self::EcsEc2 => "aws-ecs",
            Self::Eks => "aws-eks",
            Self::Serverless => "aws-serverless",
            Self::BackstagePlatform => "aws-backstage-platform",
            Self::VmImage => "aws-vm-image",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when parsing an unknown enum spelling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`; allowed: {allowed}")]
pub struct ParseEnumError {
    /// What was being parsed (e.g. `provider kind`).
    pub what: &'static str,
    /// The rejected input.
    pub value: String,
    /// The allowed spellings, comma-separated.
    pub allowed: String,
}

impl FromStr for ProviderKind {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                what: "provider kind",
                value: s.to_owned(),
                allowed: Self::ALL.map(Self::as_str).join(", "),
            })
    }
}

/// One environment provider.
///
/// Field names follow the Harmonix plugins; the parameter names of the
/// original Harmonix templates (`awsAccountID`, `awsRegion`,
/// `vpc_configuration`, `cidr`, `vpc_id`) are accepted too, so existing
/// provider repositories can be migrated unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderSpec {
    /// Which provider implementation builds this environment.
    pub kind: ProviderKind,
    /// Short name, lowercase letters, digits and `-`; unique in the file.
    pub name: String,
    /// Prefix of every derived resource name (default `opa`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Human description, shown in Backstage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owning Backstage group or user, e.g. `group:platform`.
    pub owner: String,
    /// Backstage lifecycle of the provider entity (default `experimental`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<String>,
    /// Target AWS account id: 12 digits (quote it in YAML).
    #[serde(alias = "awsAccountID")]
    pub account: AccountId,
    /// Target AWS region code, e.g. `us-east-1`.
    #[serde(alias = "awsRegion")]
    pub region: String,
    /// IAM role the pipeline assumes in the target account to deploy; its
    /// account must be `account`.
    #[serde(rename = "environmentRole")]
    pub environment_role: String,
    /// Role of the Backstage platform; trusted by the operations role.
    pub platform_role: String,
    /// Role of the CI pipeline runner; trusted by the provisioning role.
    pub pipeline_role: String,
    /// The VPC: a new one (default, `10.0.0.0/24`) or an existing one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc: Option<VpcSpec>,
    /// Legacy Harmonix parameter: `new` / `existing` (or the original
    /// template's `Create New VPC` / `Use Existing VPC`).
    #[serde(
        default,
        rename = "vpc_configuration",
        skip_serializing_if = "Option::is_none"
    )]
    pub legacy_vpc_configuration: Option<String>,
    /// Legacy Harmonix parameter: CIDR of a new VPC.
    #[serde(default, rename = "cidr", skip_serializing_if = "Option::is_none")]
    pub legacy_cidr: Option<String>,
    /// Legacy Harmonix parameter: id of an existing VPC.
    #[serde(default, rename = "vpc_id", skip_serializing_if = "Option::is_none")]
    pub legacy_vpc_id: Option<String>,
    /// CloudWatch log retention in days (a value CloudWatch accepts; default 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_retention_days: Option<u32>,
    /// Tags applied to the stack and every resource that takes tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// ECS options (kinds `ecs` and `ecs-ec2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs: Option<EcsSpec>,
    /// EKS options (kind `eks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eks: Option<EksSpec>,
    /// API Gateway options (kind `serverless`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<ServerlessSpec>,
    /// Backstage platform options (kind `backstage-platform`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<super::platform::PlatformSpec>,
    /// Machine-image application options (kind `vm-image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_image: Option<super::vm_image::VmImageSpec>,
}

/// A 12-digit AWS account id. Accepts a YAML string or integer; an integer
/// that lost leading zeros is rejected by validation with a hint to quote it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct AccountId(#[schemars(regex(pattern = r"^[0-9]{12}$"))] pub String);

impl AccountId {
    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = AccountId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 12-digit AWS account id")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AccountId, E> {
                Ok(AccountId(v.to_owned()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<AccountId, E> {
                Ok(AccountId(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<AccountId, E> {
                Ok(AccountId(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Whether the environment gets a new VPC or uses an existing one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum VpcMode {
    /// Create a VPC across three availability zones.
    #[default]
    New,
    /// Use an existing VPC by id.
    Existing,
}

/// VPC settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VpcSpec {
    /// `new` (default) or `existing`.
    #[serde(default)]
    pub mode: VpcMode,
    /// CIDR of a new VPC, /16 to /28 in a private range (default `10.0.0.0/24`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// Id (`vpc-…`) of an existing VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Private subnet ids of an existing VPC (used by EKS, the kubectl
    /// Lambda and ECS EC2 instances).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_subnet_ids: Vec<String>,
    /// Public subnet ids of an existing VPC.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_subnet_ids: Vec<String>,
    /// NAT gateways of a new VPC, 1 to 3 (default: 3, one per availability
    /// zone, for `lifecycle: production`; 1 otherwise). Each NAT gateway
    /// lives in one zone: with one per zone, each private subnet goes out
    /// through its own zone's and a zone outage cuts only that zone off.
    /// Each NAT gateway is billed by the hour and needs an Elastic IP.
    /// Not allowed with `mode: existing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3))]
    pub nat_gateways: Option<u32>,
}

/// ECS options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EcsSpec {
    /// Enable CloudWatch Container Insights (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_insights: Option<bool>,
    /// EC2 capacity (kind `ecs-ec2` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Ec2Capacity>,
}

/// EC2 instance capacity for ECS on EC2 or EKS managed node groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Ec2Capacity {
    /// Instance types, e.g. `[m6i.large]` (default `[t3.medium]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_types: Vec<String>,
    /// Minimum number of instances (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u32>,
    /// Desired number of instances (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_size: Option<u32>,
    /// Maximum number of instances (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u32>,
}

/// Kubernetes versions in Amazon EKS standard support on the day this
/// release was made (2026-12-07), oldest first: 1.35 (standard support until
/// 2027-03-27) and 1.36 (released on EKS 2026-06-02, until 2027-08-02).
/// Source: the EKS release calendar,
/// <https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html>
/// and
/// <https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions-standard.html>.
/// Update it with each release.
pub const SUPPORTED_KUBERNETES_VERSIONS: &[&str] = &["1.35", "1.36"];
/// Versions past standard support but still in EKS extended support on
/// that day, oldest first: 1.32 (until 2027-03-23), 1.33 (until 2027-07-29)
/// and 1.34 (standard support ended 2026-12-02; extended until
/// 2027-12-02). Allowed only with `eks.extendedSupport: true`, which AWS
/// bills at six times the standard cluster-hour price (see
/// <https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html>).
pub const EXTENDED_SUPPORT_KUBERNETES_VERSIONS: &[&str] = &["1.32", "1.33", "1.34"];
/// The Kubernetes version used when the spec names none: the newest in
/// standard support, as AWS recommends for new clusters.
pub const DEFAULT_KUBERNETES_VERSION: &str = "1.36";

/// EKS cluster API endpoint access.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointAccess {
    /// Public endpoint only (restricted by `publicAccessCidrs`).
    Public,
    /// Private endpoint only; a kubectl Lambda in the VPC reaches it.
    #[default]
    Private,
    /// Both endpoints.
    PublicAndPrivate,
}

impl EndpointAccess {
    /// The spelling used in spec files and the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::PublicAndPrivate => "public-and-private",
        }
    }
    /// Whether the public endpoint is enabled.
    pub fn public(self) -> bool {
        matches!(self, Self::Public | Self::PublicAndPrivate)
    }
    /// Whether the private endpoint is enabled.
    pub fn private(self) -> bool {
        matches!(self, Self::Private | Self::PublicAndPrivate)
    }
}

impl fmt::Display for EndpointAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EndpointAccess {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Public, Self::Private, Self::PublicAndPrivate]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                what: "endpoint access",
                value: s.to_owned(),
                allowed: "public, private, public-and-private".to_owned(),
            })
    }
}

/// EKS options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EksSpec {
    /// Kubernetes version: one in EKS standard support, `1.35` or `1.36`
    /// (default `1.36`), or, with `extendedSupport: true`, one in extended
    /// support: `1.32`, `1.33` or `1.34`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Keep the cluster on its version after EKS standard support ends
    /// (upgrade policy `EXTENDED`) instead of letting EKS upgrade it
    /// (`STANDARD`, the default). A cluster in extended support costs six
    /// times the standard cluster-hour price. Required for a version
    /// that is only in extended support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_support: Option<bool>,
    /// `public`, `private` (default) or `public-and-private`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_access: Option<EndpointAccess>,
    /// CIDRs allowed to reach the public endpoint (required when it is on;
    /// `0.0.0.0/0` is refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_access_cidrs: Vec<String>,
    /// Where pods run: Fargate (default) or managed node groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<EksCompute>,
    /// Use an existing cluster instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_cluster: Option<ExistingCluster>,
    /// Let the operations role (the Backstage platform's) administer the
    /// cluster: assume the cluster-admin role and invoke the kubectl
    /// function (default false: it reads the cluster through an
    /// `AmazonEKSViewPolicy` access entry only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations_cluster_admin: Option<bool>,
    /// Reserved concurrency of the kubectl function (private endpoint),
    /// at least 1 (default none: it shares the account's unreserved
    /// concurrency). Lambda keeps 100 of an account's concurrency
    /// unreserved, and new accounts may start with a limit of 10, so a
    /// reservation needs a raised quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubectl_reserved_concurrency: Option<u32>,
}

/// EKS compute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EksCompute {
    /// `fargate` or `managed-nodes`.
    #[serde(rename = "type")]
    pub kind: EksComputeKind,
    /// Node group capacity (`managed-nodes` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Ec2Capacity>,
}

/// Where EKS pods run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EksComputeKind {
    /// A Fargate profile.
    #[default]
    Fargate,
    /// A managed node group.
    ManagedNodes,
}

impl EksComputeKind {
    /// The spelling used in spec files and the catalog (`nodeType`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fargate => "fargate",
            Self::ManagedNodes => "managed-nodes",
        }
    }
}

/// An existing EKS cluster the environment attaches to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExistingCluster {
    /// Cluster name.
    pub name: String,
    /// ARN of a role with cluster-admin rights that kubectl assumes.
    pub kubectl_role: String,
    /// Give the operations role its read-only Kubernetes access through an
    /// EKS access entry (default `true`), which needs the cluster's
    /// authentication mode `API` or `API_AND_CONFIG_MAP`. `false`: no
    /// access entry; map the role in the cluster's `aws-auth` ConfigMap
    /// instead (clusters in mode `CONFIG_MAP`: `harmonix plan` refuses such
    /// a cluster with the `mapRoles` entry to add).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_entries: Option<bool>,
}

/// API Gateway REST endpoint type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ApiEndpointType {
    /// Regional endpoint (default).
    #[default]
    Regional,
    /// Edge-optimized endpoint.
    Edge,
    /// Private endpoint, reachable from the VPC only.
    Private,
}

impl ApiEndpointType {
    /// CloudFormation spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Regional => "REGIONAL",
            Self::Edge => "EDGE",
            Self::Private => "PRIVATE",
        }
    }
}

/// Serverless (API Gateway REST API) options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerlessSpec {
    /// Stage name (default `api`); letters, digits, `_` and `-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_name: Option<String>,
    /// Write API Gateway access logs to the environment log group (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_logging: Option<bool>,
    /// Endpoint type (default `REGIONAL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_type: Option<ApiEndpointType>,
    /// Steady-state request rate limit per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttling_rate_limit: Option<u32>,
    /// Burst limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttling_burst_limit: Option<u32>,
    /// Enable X-Ray tracing on the stage (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<bool>,
    /// Reserved concurrency of the `/health` function, at least 1 (default
    /// none: it shares the account's unreserved concurrency). Lambda keeps
    /// 100 of an account's concurrency unreserved, and new accounts may
    /// start with a limit of 10, so a reservation needs a raised quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_reserved_concurrency: Option<u32>,
}

/// A named environment (stage) grouping providers: an `AWSEnvironment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvironmentSpec {
    /// Entity name, e.g. `payments-dev`.
    pub name: String,
    /// Short name, e.g. `dev`.
    pub short_name: String,
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owning Backstage group or user.
    pub owner: String,
    /// Backstage system the environment belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Backstage lifecycle (default `experimental`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<String>,
    /// Category, e.g. `aws`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Classification, e.g. `internal` or `public`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    /// Level (1 = dev … higher = closer to production).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u32>,
    /// Whether deployments need approval (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_requires_approval: Option<bool>,
    /// Names of the providers (from this file) in this environment; all of
    /// one kind family, account and region.
    pub providers: Vec<String>,
    /// Extra Backstage tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}
