//! Options of the `vm-image` kind (seed `002`): an application whose roles
//! run on versioned machine images.
//!
//! An image pipeline (e.g. Packer) bakes the application into a machine
//! image per role and release; the spec names the image and its version
//! label. Raising a role's `imageVersion` (with its new `imageId` or
//! `imageParameter`) is the deployment: the role's launch template gets a
//! new version and its Auto Scaling group replaces its instances in
//! batches, keeping `rollout.minHealthyPercentage` of them in service.
//!
//! ```yaml
//! vmImage:
//!   frontend:
//!     imageId: ami-0123456789abcdef0
//!     imageVersion: "1.4.2"
//!     instanceTypes: [t3.small]
//!     port: 8080
//!   backend:
//!     imageParameter: /images/shop-backend/2.0.1
//!     imageVersion: "2.0.1"
//!   loadBalancer:
//!     certificateArn: arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-…
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Instance type of a role when the spec names none.
pub const DEFAULT_INSTANCE_TYPE: &str = "t3.small";
/// Minimum size of a role's group when the spec names none (two, so that
/// each role spans two availability zones).
pub const DEFAULT_MIN_SIZE: u32 = 2;
/// Desired size of a role's group when the spec names none.
pub const DEFAULT_DESIRED_SIZE: u32 = 2;
/// Maximum size of a role's group when the spec names none.
pub const DEFAULT_MAX_SIZE: u32 = 4;
/// Health check grace period in seconds when the spec names none.
pub const DEFAULT_GRACE_PERIOD: u32 = 300;
/// Application port of a role when the spec names none.
pub const DEFAULT_PORT: u16 = 8080;
/// Health check path of a role when the spec names none.
pub const DEFAULT_HEALTH_CHECK_PATH: &str = "/health";
/// Root volume size in GiB when the spec names none.
pub const DEFAULT_ROOT_VOLUME_GIB: u32 = 20;
/// Root device name when the spec names none (Amazon Linux).
pub const DEFAULT_ROOT_DEVICE: &str = "/dev/xvda";
/// Share of a group kept in service during a rolling replacement when the
/// spec names none.
pub const DEFAULT_MIN_HEALTHY_PERCENTAGE: u32 = 100;
/// CIDRs allowed to reach an internet-facing load balancer when the spec
/// names none.
pub const DEFAULT_ALLOWED_CIDR: &str = "0.0.0.0/0";

/// Machine-image application options (kind `vm-image`): a frontend role
/// behind a load balancer and a backend role reachable from the frontend
/// only, each an Auto Scaling group of instances launched from a versioned
/// image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VmImageSpec {
    /// The web tier: instances behind the load balancer that serve the
    /// end users' browsers.
    pub frontend: VmRoleSpec,
    /// The API tier: instances behind an internal load balancer that only
    /// the frontend instances can reach.
    pub backend: VmRoleSpec,
    /// The load balancer in front of the frontend.
    pub load_balancer: LoadBalancerSpec,
    /// How a new image version replaces running instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
}

/// One role of the application: an Auto Scaling group of instances from
/// one machine image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VmRoleSpec {
    /// The machine image: an AMI id (`ami-` and 8 or 17 hex digits). Give
    /// exactly one of `imageId` and `imageParameter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The machine image: the name of an SSM parameter holding the AMI id
    /// (e.g. `/images/shop-frontend/1.4.2`), read when the stack is
    /// applied. Give exactly one of `imageId` and `imageParameter`; prefer a
    /// parameter per version, since the value is only read again when the
    /// role's launch template changes (e.g. by a new `imageVersion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_parameter: Option<String>,
    /// Version label of the image (e.g. `1.4.2`): 1–128 letters, digits,
    /// `.`, `_`, `+` and `-`. Tags the instances and names the launch
    /// template version; changing it rolls the role's instances.
    pub image_version: String,
    /// EC2 instance types (default `[t3.small]`). The first is the launch
    /// template's; more make a mixed-instances group that tries them in
    /// order (all on demand).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_types: Vec<String>,
    /// Minimum number of instances (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u32>,
    /// Desired number of instances (default 2, at least `minSize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_size: Option<u32>,
    /// Maximum number of instances (default 4, at least `desiredSize`);
    /// a rolling replacement that keeps every instance in service needs
    /// room for one more than `desiredSize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u32>,
    /// Seconds a new instance has to start before load balancer health
    /// checks count (default 300, at most 3600); also the pause between
    /// rolling-replacement batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_grace_period: Option<u32>,
    /// TCP port the application listens on (default 8080); the load
    /// balancer forwards HTTP to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// HTTP path the load balancer checks for a 200–399 answer (default
    /// `/health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_path: Option<String>,
    /// Root volume size in GiB (default 20, 8–16384); gp3, encrypted with
    /// the environment's KMS key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_volume_size: Option<u32>,
    /// Root device name of the image (default `/dev/xvda`, as on Amazon
    /// Linux; Ubuntu images use `/dev/sda1`). The encrypted volume is
    /// mapped to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_device_name: Option<String>,
    /// Whether the image has the CloudFormation helper scripts
    /// (`aws-cfn-bootstrap`, i.e. `/opt/aws/bin/cfn-signal`) and `curl`
    /// (default false). Amazon Linux AMIs ship them; other images (Ubuntu,
    /// Windows, optimized AMIs such as the ECS-optimized ones, most custom
    /// builds) have them only if the image pipeline installs them.
    /// `rollout.healthSignals` needs it on both roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cfn_bootstrap: Option<bool>,
}

/// Whether the frontend load balancer faces the internet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LoadBalancerScheme {
    /// In the public subnets, with a public DNS name (default).
    #[default]
    InternetFacing,
    /// In the private subnets, reachable from the VPC (and networks
    /// connected to it) only.
    Internal,
}

impl LoadBalancerScheme {
    /// The CloudFormation spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InternetFacing => "internet-facing",
            Self::Internal => "internal",
        }
    }
}

/// The application load balancers: a public (or internal) HTTPS one in
/// front of the frontend, and an internal one in front of the backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoadBalancerSpec {
    /// Certificate of the HTTPS listener: an ACM certificate ARN in the
    /// provider's account and region
    /// (`arn:aws:acm:<region>:<account>:certificate/<id>`) or an IAM server
    /// certificate ARN (`arn:aws:iam::<account>:server-certificate/<name>`).
    /// Port 80 only redirects to HTTPS.
    pub certificate_arn: String,
    /// `internet-facing` (default) or `internal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<LoadBalancerScheme>,
    /// IPv4 CIDRs allowed to reach the load balancer (default
    /// `[0.0.0.0/0]`; at most 25).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_cidrs: Vec<String>,
    /// Certificate of the backend's internal load balancer (same forms as
    /// `certificateArn`, e.g. for a private domain). Without it the
    /// frontend reaches the backend over HTTP inside the VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_certificate_arn: Option<String>,
    /// Existing S3 bucket for the load balancers' access logs (its policy
    /// must let Elastic Load Balancing write). Without it the stack makes a
    /// private, versioned bucket whose logs expire after
    /// `logRetentionDays` (the bucket is kept when the stack is deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_logs_bucket: Option<String>,
    /// Deletion protection of both load balancers (default true); turn it
    /// off and apply before destroying the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<bool>,
}

/// How a new image version replaces the instances of a role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Share of each group's desired instances kept in service while its
    /// instances are replaced (0–100, default 100): the group's
    /// `MinInstancesInService` is this share of `desiredSize`, rounded up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_healthy_percentage: Option<u32>,
    /// Wait for each new instance to report itself healthy (default
    /// false). A user-data script polls the application on
    /// `port`/`healthCheckPath` and sends `cfn-signal`; CloudFormation
    /// waits up to the grace period for the signals and rolls the update
    /// back if they do not come. Both roles must declare
    /// `cfnBootstrap: true` (their images have `curl` and
    /// `aws-cfn-bootstrap`, as Amazon Linux has). Without it, each batch
    /// waits the grace period and the load balancer's health checks decide
    /// which instances get traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_signals: Option<bool>,
}
