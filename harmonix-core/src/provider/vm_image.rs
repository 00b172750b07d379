//! Machine-image environment provider (`vm-image`, seed `002`): an
//! application of two roles, each an Auto Scaling group of instances
//! launched from a versioned, immutable machine image.
//!
//! Creates, on top of [`common::foundation`](super::common::foundation)
//! (KMS key, log group, audit table, network):
//!
//! - per role (`frontend`, `backend`): an instance role and profile, a
//!   launch template (the image, IMDSv2 required with one hop, the root
//!   volume gp3 and encrypted with the environment key, detailed
//!   monitoring), a target group with the role's health check, and an Auto
//!   Scaling group in the private subnets using the load balancer's health
//!   checks. The group and its instances carry the image version as tags;
//! - an application load balancer in front of the frontend (HTTPS with the
//!   spec's certificate, port 80 redirecting to HTTPS, invalid headers
//!   dropped, deletion protection, access logs) in the public subnets
//!   (`internal`: the private ones), and an internal one in front of the
//!   backend; the access logs go to the spec's bucket or to a private,
//!   versioned bucket the stack makes (kept when the stack is deleted);
//! - security groups chaining the tiers: the allowed CIDRs reach the
//!   frontend load balancer only, which reaches the frontend instances only;
//!   the frontend instances reach the backend load balancer, which reaches
//!   the backend instances. Instances accept nothing else and reach out on
//!   443 only (AWS APIs through the NAT gateway). No SSH: Session Manager;
//! - an Auto Scaling service-linked role with a custom suffix, named in the
//!   environment key's policy so that the groups can launch instances with
//!   volumes encrypted by that key (a fresh account has no Auto Scaling
//!   role yet that the policy could name); the key is created after it;
//! - the backend's URL as an SSM parameter the frontend instances may read,
//!   and operations/provisioning statements scoped to this environment's
//!   groups.
//!
//! **Image changes.** The image, its version label and everything derived
//! from them sit in the role's launch template and group only (no template
//! parameters): a new `imageVersion` changes exactly those two resources.
//! The launch template gets a new version; the group's `LaunchTemplate`
//! version (`Fn::GetAtt … LatestVersionNumber`) changes, which makes
//! CloudFormation apply the group's `UpdatePolicy`:
//! `AutoScalingRollingUpdate` with `MinInstancesInService` = ⌈desired ×
//! `minHealthyPercentage` / 100⌉ and `MaxBatchSize` = desired − that (at
//! least 1): a batch never takes out more old instances than the share
//! allows, even while the new ones are still starting. At 100% the batch
//! is 1 and CloudFormation launches its replacement before it terminates
//! an old instance, which needs `maxSize` above `MinInstancesInService`
//! (AWS requires `MinInstancesInService` < `MaxSize`; validation checks
//! it). Without `rollout.healthSignals` CloudFormation waits `PauseTime`
//! (the health check grace period) after each batch and the load
//! balancer's health checks (`HealthCheckType: ELB`) decide which
//! instances get traffic; with it (and images declared `cfnBootstrap`),
//! each batch waits until every new instance has signalled that it answers
//! its health check (a failed or missing signal rolls the update back to
//! the previous launch template version). A rolling update was chosen over
//! instance refresh because CloudFormation runs it inside the stack
//! update: the apply ends when the replacement has, and a failed
//! replacement rolls the stack back.
//!
//! **Start-up order.** Instances reach AWS APIs (SSM, CloudWatch,
//! CloudFormation for `cfn-signal`) through the NAT gateway, so in a new
//! VPC the groups depend on the private subnets' NAT routes, their route
//! table associations and the NAT gateways: no instance boots before its
//! way out exists (an existing VPC's routes are the user's).
//!
//! **Emulator.** moto runs these stacks (launch templates, groups, ELBv2,
//! security groups, instance profiles) but replaces a group on update
//! instead of rolling it, ignores `UpdatePolicy`/`CreationPolicy`, has no
//! CloudFormation model for `AWS::IAM::ServiceLinkedRole` (skipped) and
//! does not resolve `{{resolve:ssm:…}}` references; those parts are
//! covered by the unit tests here and by `cfn-lint`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::common::{self, ids};
use super::ecs::provider_entity;
use super::names::{DerivedName, NameKind, Names};
use super::{EnvironmentProvider, StackDefinition, StackOutputs};
use crate::catalog::Entity;
use crate::spec::cidr::Ipv4Cidr;
use crate::spec::vm_image::{
    DEFAULT_ALLOWED_CIDR, DEFAULT_DESIRED_SIZE, DEFAULT_GRACE_PERIOD, DEFAULT_HEALTH_CHECK_PATH,
    DEFAULT_INSTANCE_TYPE, DEFAULT_MAX_SIZE, DEFAULT_MIN_HEALTHY_PERCENTAGE, DEFAULT_MIN_SIZE,
    DEFAULT_PORT, DEFAULT_ROOT_DEVICE, DEFAULT_ROOT_VOLUME_GIB, LoadBalancerScheme, VmImageSpec,
    VmRoleSpec,
};
use crate::spec::{ProviderKind, ProviderSpec, ResolvedVpc, ValidProvider, ValidationErrors};
use crate::template::{Output, Parameter, Resource, Template, fns};

/// TLS policy of the HTTPS listeners (TLS 1.3 and 1.2 only).
pub const SSL_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";
/// Largest health check grace period (also the rolling update's pause,
/// which CloudFormation caps at one hour).
pub const MAX_GRACE_PERIOD: u32 = 3600;
/// Smallest grace period with `healthSignals` (the time an instance has to
/// boot and signal).
pub const MIN_SIGNAL_GRACE_PERIOD: u32 = 60;
/// Longest image parameter name: `ssm:` and the name make the
/// `harmonix:image` tag value, which AWS caps at 256 characters.
pub const MAX_IMAGE_PARAMETER: usize = 252;
/// Tags every instance and volume gets besides the stack's.
pub const INSTANCE_TAG_KEYS: [&str; 4] = [
    "Name",
    "harmonix:image",
    "harmonix:image-version",
    "harmonix:role",
];
/// Most tags AWS allows on one resource.
pub const MAX_TAGS_PER_RESOURCE: usize = 50;
/// Most instances a group may have.
pub const MAX_GROUP_SIZE: u32 = 1000;
/// Most instance types per role.
pub const MAX_INSTANCE_TYPES: usize = 20;
/// Most CIDRs allowed to reach the load balancer (two rules each, within
/// the 60 inbound rules of a security group).
pub const MAX_ALLOWED_CIDRS: usize = 25;
/// Root volume sizes a gp3 volume may have, in GiB.
pub const ROOT_VOLUME_GIB: std::ops::RangeInclusive<u32> = 8..=16_384;
/// Seconds a deregistered target keeps draining.
pub const DEREGISTRATION_DELAY_SECONDS: u32 = 30;
/// Service whose service-linked role launches the groups' instances.
pub const AUTOSCALING_SERVICE: &str = "autoscaling.amazonaws.com";
/// Name of that role, before the custom suffix (`_{prefix}-{name}`).
pub const AUTOSCALING_ROLE_NAME: &str = "AWSServiceRoleForAutoScaling";

/// Logical id of the Auto Scaling service-linked role.
pub const AUTOSCALING_ROLE: &str = "AutoScalingServiceRole";
/// Logical id of the frontend load balancer.
pub const LOAD_BALANCER: &str = "FrontendLoadBalancer";
/// Logical id of its security group.
pub const LOAD_BALANCER_SG: &str = "FrontendLoadBalancerSecurityGroup";
/// Logical id of its HTTPS listener.
pub const HTTPS_LISTENER: &str = "FrontendHttpsListener";
/// Logical id of its port-80 listener (redirects to HTTPS).
pub const HTTP_LISTENER: &str = "FrontendHttpListener";
/// Logical id of the backend's internal load balancer.
pub const BACKEND_LOAD_BALANCER: &str = "BackendLoadBalancer";
/// Logical id of its security group.
pub const BACKEND_LOAD_BALANCER_SG: &str = "BackendLoadBalancerSecurityGroup";
/// Logical id of the rule letting the frontend instances reach it.
pub const BACKEND_LOAD_BALANCER_INGRESS: &str = "BackendLoadBalancerIngressFromFrontend";
/// Logical id of its listener.
pub const BACKEND_LISTENER: &str = "BackendListener";
/// Logical id of the access-log bucket (when the spec names none).
pub const ACCESS_LOGS_BUCKET: &str = "AccessLogsBucket";
/// Logical id of its policy.
pub const ACCESS_LOGS_BUCKET_POLICY: &str = "AccessLogsBucketPolicy";
/// Logical id of the SSM parameter holding the backend URL.
pub const BACKEND_URL_PARAMETER: &str = "BackendUrlParameter";

/// Output: the frontend URL (`https://` + the load balancer's DNS name).
pub const OUTPUT_FRONTEND_URL: &str = "FrontendUrl";
/// Output: the frontend load balancer's DNS name.
pub const OUTPUT_LOAD_BALANCER_DNS: &str = "LoadBalancerDnsName";
/// Output: the frontend load balancer's ARN.
pub const OUTPUT_LOAD_BALANCER_ARN: &str = "LoadBalancerArn";
/// Output: the backend URL inside the VPC.
pub const OUTPUT_BACKEND_URL: &str = "BackendUrl";

/// One of the application's two roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// The web tier behind the frontend load balancer.
    Frontend,
    /// The API tier behind the internal load balancer.
    Backend,
}

impl Role {
    /// Both roles, frontend first.
    pub const ALL: [Role; 2] = [Role::Frontend, Role::Backend];

    /// The spec key and name suffix (`frontend`, `backend`).
    pub fn key(self) -> &'static str {
        match self {
            Self::Frontend => "frontend",
            Self::Backend => "backend",
        }
    }

    /// Prefix of the role's logical ids (`Frontend`, `Backend`).
    fn title(self) -> &'static str {
        match self {
            Self::Frontend => "Frontend",
            Self::Backend => "Backend",
        }
    }

    /// Logical id of the role's launch template.
    pub fn launch_template(self) -> String {
        format!("{}LaunchTemplate", self.title())
    }
    /// Logical id of the role's Auto Scaling group.
    pub fn group(self) -> String {
        format!("{}Group", self.title())
    }
    /// Logical id of the role's target group.
    pub fn target_group(self) -> String {
        format!("{}TargetGroup", self.title())
    }
    /// Logical id of the role's instance security group.
    pub fn security_group(self) -> String {
        format!("{}SecurityGroup", self.title())
    }
    /// Logical id of the rule letting the role's load balancer reach it.
    pub fn ingress(self) -> String {
        format!("{}IngressFromLoadBalancer", self.title())
    }
    /// Logical id of the role's instance role.
    pub fn instance_role(self) -> String {
        format!("{}InstanceRole", self.title())
    }
    /// Logical id of the role's instance profile.
    pub fn instance_profile(self) -> String {
        format!("{}InstanceProfile", self.title())
    }
    /// Output key of the role's group name.
    pub fn group_output(self) -> String {
        format!("{}GroupName", self.title())
    }
    /// Output key of the role's launch template id.
    pub fn launch_template_output(self) -> String {
        format!("{}LaunchTemplateId", self.title())
    }
    /// Output key (and catalog field) of the role's image version.
    pub fn version_output(self) -> String {
        format!("{}ImageVersion", self.title())
    }
    /// The role's launch template and group name: `{base}-{role}`.
    pub fn physical_name(self, names: &Names) -> String {
        format!("{}-{}", names.base, self.key())
    }
    /// The role's instance role name: `{base}-{role}-instance-role`.
    pub fn role_name(self, names: &Names) -> String {
        format!("{}-{}-instance-role", names.base, self.key())
    }
    fn spec(self, vm: &VmImageSpec) -> &VmRoleSpec {
        match self {
            Self::Frontend => &vm.frontend,
            Self::Backend => &vm.backend,
        }
    }
}

/// The custom-suffix Auto Scaling service-linked role of an environment:
/// `AWSServiceRoleForAutoScaling_{base}`.
pub fn autoscaling_role_name(names: &Names) -> String {
    format!("{AUTOSCALING_ROLE_NAME}_{}", names.base)
}

/// Immutable machine-image deployments: launch templates and Auto Scaling
/// groups behind load balancers.
#[derive(Debug, Clone, Copy, Default)]
pub struct VmImageProvider;

impl EnvironmentProvider for VmImageProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::VmImage
    }
    fn summary(&self) -> &'static str {
        "Frontend and backend Auto Scaling groups on versioned machine images behind load balancers"
    }
    fn validate(&self, spec: &ProviderSpec, path: &str, errors: &mut ValidationErrors) {
        validate_vm_image(spec, path, errors);
    }
    fn derived_names(&self, spec: &ProviderSpec, path: &str) -> Vec<DerivedName> {
        vm_image_names(spec, path)
    }
    fn stacks(&self, spec: ValidProvider<'_>) -> Vec<StackDefinition> {
        // Validation guarantees the section; without it there is nothing
        // to render (and nothing panics).
        Settings::of(&spec)
            .map(|s| vec![vm_image_stack(&spec, &s)])
            .unwrap_or_default()
    }
    fn catalog_entity(&self, spec: ValidProvider<'_>, outputs: &StackOutputs) -> Entity {
        vm_image_entity(&spec, outputs)
    }
}

/// Where a role's image comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image<'a> {
    /// An AMI id.
    Ami(&'a str),
    /// An SSM parameter holding the AMI id.
    Parameter(&'a str),
}

impl Image<'_> {
    /// The launch template's `ImageId`: the AMI id, or a dynamic reference
    /// CloudFormation resolves when it creates the launch template version.
    pub fn image_id(self) -> String {
        match self {
            Self::Ami(id) => id.to_owned(),
            Self::Parameter(name) => format!("{{{{resolve:ssm:{name}}}}}"),
        }
    }
    /// How the catalog and tags show it: `ami-…` or `ssm:<name>`.
    pub fn label(self) -> String {
        match self {
            Self::Ami(id) => id.to_owned(),
            Self::Parameter(name) => format!("ssm:{name}"),
        }
    }
}

/// A role after defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSettings<'a> {
    /// The image.
    pub image: Image<'a>,
    /// Its version label.
    pub version: &'a str,
    /// Instance types, at least one.
    pub instance_types: Vec<&'a str>,
    /// Group minimum.
    pub min: u32,
    /// Group desired capacity.
    pub desired: u32,
    /// Group maximum.
    pub max: u32,
    /// Health check grace period, seconds.
    pub grace: u32,
    /// Application port.
    pub port: u16,
    /// Health check path.
    pub health_path: &'a str,
    /// Root volume GiB.
    pub volume_gib: u32,
    /// Root device name.
    pub device: &'a str,
    /// Whether the image declares the CloudFormation helper scripts.
    pub cfn_bootstrap: bool,
}

/// Group sizes after defaults: `(min, desired, max)`, with desired at
/// least min and max at least desired.
pub fn sizes(r: &VmRoleSpec) -> (u32, u32, u32) {
    let min = r.min_size.unwrap_or(DEFAULT_MIN_SIZE);
    let desired = r.desired_size.unwrap_or(DEFAULT_DESIRED_SIZE.max(min));
    let max = r.max_size.unwrap_or(DEFAULT_MAX_SIZE.max(desired));
    (min, desired, max)
}

impl<'a> RoleSettings<'a> {
    fn of(r: &'a VmRoleSpec) -> Option<Self> {
        let image = match (r.image_id.as_deref(), r.image_parameter.as_deref()) {
            (Some(id), _) => Image::Ami(id),
            (None, Some(name)) => Image::Parameter(name),
            (None, None) => return None,
        };
        let (min, desired, max) = sizes(r);
        let mut instance_types: Vec<&str> = r.instance_types.iter().map(String::as_str).collect();
        if instance_types.is_empty() {
            instance_types.push(DEFAULT_INSTANCE_TYPE);
        }
        Some(Self {
            image,
            version: &r.image_version,
            instance_types,
            min,
            desired,
            max,
            grace: r.health_check_grace_period.unwrap_or(DEFAULT_GRACE_PERIOD),
            port: r.port.unwrap_or(DEFAULT_PORT),
            health_path: r
                .health_check_path
                .as_deref()
                .unwrap_or(DEFAULT_HEALTH_CHECK_PATH),
            volume_gib: r.root_volume_size.unwrap_or(DEFAULT_ROOT_VOLUME_GIB),
            device: r.root_device_name.as_deref().unwrap_or(DEFAULT_ROOT_DEVICE),
            cfn_bootstrap: r.cfn_bootstrap.unwrap_or(false),
        })
    }
}

/// `MinInstancesInService` of a rolling replacement: ⌈desired × percent /
/// 100⌉.
pub fn min_in_service(desired: u32, percent: u32) -> u32 {
    let n = (u64::from(desired) * u64::from(percent.min(100))).div_ceil(100);
    u32::try_from(n).unwrap_or(desired)
}

/// `MaxBatchSize` of a rolling replacement: the old instances that may be
/// out of service at once, `desired` − `MinInstancesInService`, and at
/// least 1 (at 100% CloudFormation launches the one replacement first,
/// within `MaxSize`). A batch larger than that would make CloudFormation
/// count new, still starting instances towards `MinInstancesInService`.
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-updatepolicy.html>
pub fn max_batch(desired: u32, in_service: u32) -> u32 {
    desired.saturating_sub(in_service).max(1)
}

/// The `vmImage` section after defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings<'a> {
    /// The frontend role.
    pub frontend: RoleSettings<'a>,
    /// The backend role.
    pub backend: RoleSettings<'a>,
    /// Frontend load balancer certificate.
    pub certificate: &'a str,
    /// Frontend load balancer scheme.
    pub scheme: LoadBalancerScheme,
    /// CIDRs allowed to reach the frontend load balancer.
    pub allowed_cidrs: Vec<&'a str>,
    /// Backend load balancer certificate (HTTPS inside the VPC).
    pub backend_certificate: Option<&'a str>,
    /// Access log bucket.
    pub access_logs_bucket: Option<&'a str>,
    /// Load balancer deletion protection.
    pub deletion_protection: bool,
    /// Share of desired instances kept in service during a replacement.
    pub min_healthy_percentage: u32,
    /// Whether new instances signal their health (`rollout.healthSignals`;
    /// a role signals only if its image also declares `cfnBootstrap`).
    pub health_signals: bool,
}

impl<'a> Settings<'a> {
    /// The settings of `spec`, `None` without a complete `vmImage` section.
    pub fn of(spec: &'a ProviderSpec) -> Option<Self> {
        let vm = spec.vm_image.as_ref()?;
        let lb = &vm.load_balancer;
        let rollout = vm.rollout.as_ref();
        let mut allowed_cidrs: Vec<&str> = lb.allowed_cidrs.iter().map(String::as_str).collect();
        if allowed_cidrs.is_empty() {
            allowed_cidrs.push(DEFAULT_ALLOWED_CIDR);
        }
        Some(Self {
            frontend: RoleSettings::of(&vm.frontend)?,
            backend: RoleSettings::of(&vm.backend)?,
            certificate: &lb.certificate_arn,
            scheme: lb.scheme.unwrap_or_default(),
            allowed_cidrs,
            backend_certificate: lb.backend_certificate_arn.as_deref(),
            access_logs_bucket: lb.access_logs_bucket.as_deref(),
            deletion_protection: lb.deletion_protection.unwrap_or(true),
            min_healthy_percentage: rollout
                .and_then(|r| r.min_healthy_percentage)
                .unwrap_or(DEFAULT_MIN_HEALTHY_PERCENTAGE),
            health_signals: rollout.and_then(|r| r.health_signals).unwrap_or(false),
        })
    }

    /// The settings of `role`.
    pub fn role(&self, role: Role) -> &RoleSettings<'a> {
        match role {
            Role::Frontend => &self.frontend,
            Role::Backend => &self.backend,
        }
    }

    /// Whether `role`'s instances send `cfn-signal`: signals asked for and
    /// the image declared to have the helper scripts (validation refuses
    /// the one without the other).
    pub fn signals(&self, role: Role) -> bool {
        self.health_signals && self.role(role).cfn_bootstrap
    }

    /// Port and protocol of the backend listener.
    fn backend_listener(&self) -> (u16, &'static str) {
        if self.backend_certificate.is_some() {
            (443, "HTTPS")
        } else {
            (80, "HTTP")
        }
    }
}

// ---------------------------------------------------------------------------
// Validation

/// Whether `s` is an AMI id: `ami-` and 8 or 17 lowercase hex digits.
fn is_ami_id(s: &str) -> bool {
    s.strip_prefix("ami-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Why `name` is not an SSM parameter name holding an AMI id.
fn ssm_name_problem(name: &str) -> Option<String> {
    let len = name.chars().count();
    if len == 0 || len > MAX_IMAGE_PARAMETER {
        return Some(format!(
            "is {len} characters; 1–{MAX_IMAGE_PARAMETER} are allowed here (the name tags the instances, and tag values have at most 256 characters)"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c)))
    {
        return Some(format!(
            "contains {c:?}; SSM parameter names allow letters, digits and `_.-/`"
        ));
    }
    if name.contains('/') && !name.starts_with('/') {
        return Some("a hierarchical name starts with `/`, e.g. `/images/web/1.4.2`".to_owned());
    }
    if name.contains("//") || (name.len() > 1 && name.ends_with('/')) {
        return Some("has an empty path segment".to_owned());
    }
    if name.split('/').filter(|s| !s.is_empty()).count() > 15 {
        return Some("has more than 15 levels; SSM allows at most 15".to_owned());
    }
    let lower = name.trim_start_matches('/').to_ascii_lowercase();
    if (lower.starts_with("aws") || lower.starts_with("ssm")) && !name.starts_with("/aws/service/")
    {
        return Some(
            "names starting with `aws` or `ssm` are reserved (public parameters under `/aws/service/` are fine)"
                .to_owned(),
        );
    }
    None
}

/// Why `v` is not an image version label.
fn version_problem(v: &str) -> Option<String> {
    let len = v.chars().count();
    if len == 0 || len > 128 {
        return Some(format!("is {len} characters; a version label has 1–128"));
    }
    v.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._+-".contains(*c)))
        .map(|c| format!("contains {c:?}; a version label allows letters, digits and `._+-`"))
}

/// Why `ty` is not an EC2 instance type.
fn instance_type_problem(ty: &str) -> bool {
    !ty.split_once('.').is_some_and(|(family, size)| {
        !family.is_empty()
            && !size.is_empty()
            && family
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            && size
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
    })
}

/// Why `path` is not a health check path.
fn health_path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some("must start with `/`, e.g. `/health`".to_owned());
    }
    if path.len() > 1024 {
        return Some(format!(
            "is {} characters; at most 1024 are allowed",
            path.len()
        ));
    }
    path.chars()
        .find(|c| !c.is_ascii_graphic())
        .map(|c| format!("contains {c:?}; use printable ASCII without spaces"))
}

/// Why `arn` cannot be the certificate of a load balancer in `region` of
/// `account` (`None` for an unknown region or account: those have their
/// own errors).
fn certificate_problem(arn: &str, region: &str, account: &str) -> Option<String> {
    const FORMS: &str = "expected `arn:aws:acm:<region>:<account>:certificate/<id>` or `arn:aws:iam::<account>:server-certificate/<name>`";
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [
        prefix,
        partition,
        service,
        cert_region,
        cert_account,
        resource,
    ] = parts.as_slice()
    else {
        return Some(format!("not a certificate ARN; {FORMS}"));
    };
    if *prefix != "arn" {
        return Some(format!("not a certificate ARN; {FORMS}"));
    }
    let expected_partition = common::partition(region);
    if *partition != expected_partition {
        return Some(format!(
            "partition `{partition}`; region `{region}` is in partition `{expected_partition}`"
        ));
    }
    if cert_account.len() != 12 || !cert_account.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!("account `{cert_account}` is not 12 digits"));
    }
    if *cert_account != account {
        return Some(format!(
            "the certificate is in account {cert_account}; a load balancer uses certificates of its own account ({account})"
        ));
    }
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-/".contains(c))
    };
    match *service {
        "acm" => {
            if *cert_region != region {
                return Some(format!(
                    "the certificate is in region `{cert_region}`; a load balancer in `{region}` needs an ACM certificate of its own region"
                ));
            }
            match resource.strip_prefix("certificate/") {
                Some(id) if name_ok(id) && !id.contains('/') => None,
                _ => Some(format!(
                    "resource `{resource}` is not `certificate/<id>`; {FORMS}"
                )),
            }
        }
        "iam" => {
            if !cert_region.is_empty() {
                return Some(format!(
                    "IAM ARNs have no region; found `{cert_region}` (write `iam::<account>`)"
                ));
            }
            match resource.strip_prefix("server-certificate/") {
                Some(name) if name_ok(name) && !name.ends_with('/') => None,
                _ => Some(format!(
                    "resource `{resource}` is not `server-certificate/<name>`; {FORMS}"
                )),
            }
        }
        other => Some(format!(
            "service is `{other}`; a load balancer certificate comes from `acm` or `iam`"
        )),
    }
}

/// Why `name` is not an S3 bucket name.
fn bucket_problem(name: &str) -> Option<String> {
    let len = name.len();
    if !(3..=63).contains(&len) {
        return Some(format!("is {len} characters; bucket names have 3–63"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return Some(format!(
            "contains {c:?}; bucket names allow lowercase letters, digits, `.` and `-`"
        ));
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !edge_ok(name.chars().next()) || !edge_ok(name.chars().last()) {
        return Some("must start and end with a letter or digit".to_owned());
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Some("has `..`, `.-` or `-.`".to_owned());
    }
    if Ipv4Cidr::parse(&format!("{name}/32")).is_ok() {
        return Some("looks like an IP address; bucket names may not".to_owned());
    }
    None
}

fn validate_role(
    r: &VmRoleSpec,
    path: &str,
    min_healthy: u32,
    signals: bool,
    errors: &mut ValidationErrors,
) {
    match (r.image_id.as_deref(), r.image_parameter.as_deref()) {
        (None, None) => errors.push(
            format!("{path}.imageId"),
            None,
            "the role needs its machine image: give `imageId` (an AMI id, `ami-…`) or `imageParameter` (an SSM parameter holding one)",
        ),
        (Some(id), Some(_)) => errors.push(
            format!("{path}.imageId"),
            Some(id),
            "give exactly one of `imageId` and `imageParameter`, not both",
        ),
        (Some(id), None) => {
            if !is_ami_id(id) {
                errors.push(
                    format!("{path}.imageId"),
                    Some(id),
                    "not an AMI id; expected `ami-` and 8 or 17 lowercase hex digits, e.g. `ami-0123456789abcdef0` (or use `imageParameter` for an SSM parameter)",
                );
            }
        }
        (None, Some(name)) => {
            if let Some(problem) = ssm_name_problem(name) {
                errors.push(
                    format!("{path}.imageParameter"),
                    Some(name),
                    format!("not an SSM parameter name: {problem}"),
                );
            }
        }
    }
    if let Some(problem) = version_problem(&r.image_version) {
        errors.push(
            format!("{path}.imageVersion"),
            Some(&r.image_version),
            problem,
        );
    }
    for (i, ty) in r.instance_types.iter().enumerate() {
        if instance_type_problem(ty) {
            errors.push(
                format!("{path}.instanceTypes[{i}]"),
                Some(ty),
                "not an EC2 instance type; expected `family.size`, e.g. `t3.small` or `m6i.large`",
            );
        }
    }
    if r.instance_types.len() > MAX_INSTANCE_TYPES {
        errors.push(
            format!("{path}.instanceTypes"),
            Some(&r.instance_types.len().to_string()),
            format!("at most {MAX_INSTANCE_TYPES} instance types are allowed"),
        );
    }
    let (min, desired, max) = sizes(r);
    let mut sizes_ok = true;
    if max == 0 || max > MAX_GROUP_SIZE {
        errors.push(
            format!("{path}.maxSize"),
            Some(&max.to_string()),
            format!("must be between 1 and {MAX_GROUP_SIZE}"),
        );
        sizes_ok = false;
    }
    if min > desired {
        errors.push(
            format!("{path}.minSize"),
            Some(&min.to_string()),
            format!("must not exceed desiredSize ({desired})"),
        );
        sizes_ok = false;
    }
    if desired > max {
        errors.push(
            format!("{path}.desiredSize"),
            Some(&desired.to_string()),
            format!("must not exceed maxSize ({max})"),
        );
        sizes_ok = false;
    }
    let in_service = min_in_service(desired, min_healthy);
    if sizes_ok && in_service > 0 && in_service >= max {
        errors.push(
            format!("{path}.maxSize"),
            Some(&max.to_string()),
            format!(
                "a rolling replacement keeps {in_service} of {desired} instances in service ({min_healthy}%) and launches new ones first: maxSize must be at least {}, or lower rollout.minHealthyPercentage",
                in_service + 1
            ),
        );
    }
    let grace = r.health_check_grace_period.unwrap_or(DEFAULT_GRACE_PERIOD);
    if grace > MAX_GRACE_PERIOD {
        errors.push(
            format!("{path}.healthCheckGracePeriod"),
            Some(&grace.to_string()),
            format!("must be 0–{MAX_GRACE_PERIOD} seconds (it is also the rolling update's pause, at most one hour)"),
        );
    } else if signals && grace < MIN_SIGNAL_GRACE_PERIOD {
        errors.push(
            format!("{path}.healthCheckGracePeriod"),
            Some(&grace.to_string()),
            format!("with rollout.healthSignals an instance has this long to boot and signal: at least {MIN_SIGNAL_GRACE_PERIOD} seconds"),
        );
    }
    // cfn-signal is one of the CloudFormation helper scripts: preinstalled
    // on Amazon Linux AMIs only, not on other distributions or optimized
    // AMIs. Without it no signal comes and every create or rollout fails
    // after the timeout.
    // https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/cfn-helper-scripts-reference.html
    if signals && r.cfn_bootstrap != Some(true) {
        errors.push(
            format!("{path}.cfnBootstrap"),
            r.cfn_bootstrap.map(|b| b.to_string()).as_deref(),
            "rollout.healthSignals makes this role's instances run `/opt/aws/bin/cfn-signal` and `curl`: add `cfnBootstrap: true` if the image has the CloudFormation helper scripts (`aws-cfn-bootstrap`; Amazon Linux AMIs ship them, other images must install them), or remove rollout.healthSignals",
        );
    }
    if r.port == Some(0) {
        errors.push(
            format!("{path}.port"),
            Some("0"),
            "port 0 is not a TCP port the application can listen on; use 1–65535",
        );
    }
    if let Some(p) = &r.health_check_path
        && let Some(problem) = health_path_problem(p)
    {
        errors.push(format!("{path}.healthCheckPath"), Some(p), problem);
    }
    if let Some(gib) = r.root_volume_size
        && !ROOT_VOLUME_GIB.contains(&gib)
    {
        errors.push(
            format!("{path}.rootVolumeSize"),
            Some(&gib.to_string()),
            format!(
                "gp3 volumes have {}–{} GiB",
                ROOT_VOLUME_GIB.start(),
                ROOT_VOLUME_GIB.end()
            ),
        );
    }
    if let Some(dev) = &r.root_device_name {
        let ok = dev.strip_prefix("/dev/").is_some_and(|d| {
            !d.is_empty() && d.len() <= 16 && d.chars().all(|c| c.is_ascii_alphanumeric())
        });
        if !ok {
            errors.push(
                format!("{path}.rootDeviceName"),
                Some(dev),
                "not a device name; expected `/dev/` and letters/digits, e.g. `/dev/xvda` or `/dev/sda1`",
            );
        }
    }
}

fn validate_vm_image(spec: &ProviderSpec, path: &str, errors: &mut ValidationErrors) {
    let at = format!("{path}.vmImage");
    let Some(vm) = spec.vm_image.as_ref() else {
        errors.push(
            at,
            None,
            "kind `vm-image` needs a `vmImage` section with `frontend`, `backend` (image and version each) and `loadBalancer` (certificateArn)",
        );
        return;
    };
    let rollout = vm.rollout.as_ref();
    let pct = rollout
        .and_then(|r| r.min_healthy_percentage)
        .unwrap_or(DEFAULT_MIN_HEALTHY_PERCENTAGE);
    if pct > 100 {
        errors.push(
            format!("{at}.rollout.minHealthyPercentage"),
            Some(&pct.to_string()),
            "a percentage of the desired instances: 0–100",
        );
    }
    let signals = rollout.and_then(|r| r.health_signals).unwrap_or(false);
    for role in Role::ALL {
        validate_role(
            role.spec(vm),
            &format!("{at}.{}", role.key()),
            pct.min(100),
            signals,
            errors,
        );
    }
    let lb = &vm.load_balancer;
    let lb_at = format!("{at}.loadBalancer");
    let account = spec.account.as_str();
    for (field, arn) in [
        ("certificateArn", Some(&lb.certificate_arn)),
        ("backendCertificateArn", lb.backend_certificate_arn.as_ref()),
    ] {
        if let Some(arn) = arn
            && let Some(problem) = certificate_problem(arn, &spec.region, account)
        {
            errors.push(format!("{lb_at}.{field}"), Some(arn), problem);
        }
    }
    if lb.allowed_cidrs.len() > MAX_ALLOWED_CIDRS {
        errors.push(
            format!("{lb_at}.allowedCidrs"),
            Some(&lb.allowed_cidrs.len().to_string()),
            format!(
                "at most {MAX_ALLOWED_CIDRS} CIDRs are allowed (two security group rules each)"
            ),
        );
    }
    for (i, c) in lb.allowed_cidrs.iter().enumerate() {
        match Ipv4Cidr::parse(c) {
            Err(problem) => errors.push(format!("{lb_at}.allowedCidrs[{i}]"), Some(c), problem),
            Ok(cidr) if !cidr.is_aligned() => errors.push(
                format!("{lb_at}.allowedCidrs[{i}]"),
                Some(c),
                format!("host bits are set; the block is `{}`", cidr.aligned()),
            ),
            Ok(_) => {}
        }
    }
    if let Some(b) = &lb.access_logs_bucket
        && let Some(problem) = bucket_problem(b)
    {
        errors.push(
            format!("{lb_at}.accessLogsBucket"),
            Some(b),
            format!("not an S3 bucket name: {problem}"),
        );
    }
    let stack_tags = common::stack_tags(spec);
    let instance_tags: std::collections::BTreeSet<&str> = stack_tags
        .keys()
        .map(String::as_str)
        .chain(INSTANCE_TAG_KEYS)
        .collect();
    if instance_tags.len() > MAX_TAGS_PER_RESOURCE {
        errors.push(
            format!("{path}.tags"),
            Some(&format!("{} tags", spec.tags.len())),
            format!(
                "kind `vm-image` tags its instances with {} more ({}): with Harmonix's own 3, at most {MAX_TAGS_PER_RESOURCE} per resource",
                INSTANCE_TAG_KEYS.len(),
                INSTANCE_TAG_KEYS.join(", ")
            ),
        );
    }
    if let ResolvedVpc::Existing {
        private_subnet_ids,
        public_subnet_ids,
        ..
    } = spec.resolved_vpc()
    {
        if private_subnet_ids.len() < 2 {
            errors.push(
                format!("{path}.vpc.privateSubnetIds"),
                None,
                "kind `vm-image` in an existing VPC needs at least two private subnets (in different availability zones) for its instances and internal load balancer",
            );
        }
        if lb.scheme.unwrap_or_default() == LoadBalancerScheme::InternetFacing
            && public_subnet_ids.len() < 2
        {
            errors.push(
                format!("{path}.vpc.publicSubnetIds"),
                None,
                "an internet-facing load balancer in an existing VPC needs at least two public subnets (in different availability zones); or set loadBalancer.scheme: internal",
            );
        }
    }
}

fn vm_image_names(spec: &ProviderSpec, path: &str) -> Vec<DerivedName> {
    let names = Names::of(spec);
    let at = format!("{path}.name");
    let mut v = names.derived(path);
    if matches!(spec.resolved_vpc(), ResolvedVpc::New { .. }) {
        v.push(DerivedName::new(
            NameKind::IamRole,
            format!("{}-flow-logs-role", names.base),
            &at,
        ));
    }
    v.push(DerivedName::new(
        NameKind::IamRole,
        autoscaling_role_name(&names),
        &at,
    ));
    for role in Role::ALL {
        // The launch template and the group share this name (different
        // namespaces); listed once.
        v.push(DerivedName::new(
            NameKind::Ec2Group,
            role.physical_name(&names),
            &at,
        ));
        v.push(DerivedName::new(
            NameKind::IamRole,
            role.role_name(&names),
            &at,
        ));
    }
    v
}

// ---------------------------------------------------------------------------
// Template

/// ARN of the environment's Auto Scaling service-linked role.
fn autoscaling_role_arn() -> Value {
    fns::sub(&format!(
        "arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/aws-service-role/{AUTOSCALING_SERVICE}/{AUTOSCALING_ROLE_NAME}_${{Prefix}}-${{EnvironmentName}}"
    ))
}

/// ARNs of this environment's Auto Scaling groups.
fn groups_arn() -> Value {
    fns::sub(
        "arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:autoScalingGroupName/${Prefix}-${EnvironmentName}-*",
    )
}

/// The service-linked role the groups launch instances with, and the
/// statements of the environment key's policy that let it encrypt their
/// volumes (AWS's documented policy for Auto Scaling and customer managed
/// keys). The key is created after the role: a key policy may only name
/// principals that exist.
fn autoscaling_service_role(t: &mut Template) {
    t.resource(
        AUTOSCALING_ROLE,
        Resource::new("AWS::IAM::ServiceLinkedRole")
            .property("AWSServiceName", AUTOSCALING_SERVICE)
            .property("CustomSuffix", fns::sub("${Prefix}-${EnvironmentName}"))
            .property(
                "Description",
                fns::sub("Launches the ${Prefix}-${EnvironmentName} instances (EBS volumes encrypted with the environment key)"),
            ),
    );
    let role = autoscaling_role_arn();
    let statements = [
        json!({
            "Sid": "AutoScalingVolumes",
            "Effect": "Allow",
            "Principal": { "AWS": role },
            "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
            "Resource": "*"
        }),
        json!({
            "Sid": "AutoScalingVolumeGrants",
            "Effect": "Allow",
            "Principal": { "AWS": role },
            "Action": "kms:CreateGrant",
            "Resource": "*",
            "Condition": { "Bool": { "kms:GrantIsForAWSResource": true } }
        }),
    ];
    if let Some(key) = t.resources.get_mut(ids::KMS_KEY) {
        key.depends_on.insert(AUTOSCALING_ROLE.to_owned());
        if let Some(list) = key
            .properties
            .get_mut("KeyPolicy")
            .and_then(|p| p.get_mut("Statement"))
            .and_then(Value::as_array_mut)
        {
            list.extend(statements);
        }
    }
}

/// A security group rule with a description.
fn rule(protocol_port: u16, description: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("IpProtocol".into(), json!("tcp"));
    m.insert("FromPort".into(), json!(protocol_port));
    m.insert("ToPort".into(), json!(protocol_port));
    m.insert("Description".into(), json!(description));
    m
}

fn to_group(port: u16, group: &str, description: &str) -> Value {
    let mut m = rule(port, description);
    m.insert("DestinationSecurityGroupId".into(), fns::ref_(group));
    Value::Object(m)
}

fn to_anywhere_https(description: &str) -> Value {
    let mut m = rule(443, description);
    m.insert("CidrIp".into(), json!("0.0.0.0/0"));
    Value::Object(m)
}

/// A separate ingress rule (`AWS::EC2::SecurityGroupIngress`): the groups
/// reference each other, so one direction is a resource of its own.
fn ingress(group: &str, source: &str, port: u16, description: &str) -> Resource {
    Resource::new("AWS::EC2::SecurityGroupIngress")
        .property("GroupId", fns::ref_(group))
        .property("SourceSecurityGroupId", fns::ref_(source))
        .property("IpProtocol", "tcp")
        .property("FromPort", port)
        .property("ToPort", port)
        .property("Description", description)
}

/// The four security groups and the rules between them.
fn security_groups(t: &mut Template, s: &Settings<'_>, vpc_id: &Value) {
    let front = &s.frontend;
    let back = &s.backend;
    let (backend_lb_port, _) = s.backend_listener();
    let mut lb_in = Vec::new();
    for cidr in &s.allowed_cidrs {
        for (port, what) in [(443, "HTTPS"), (80, "HTTP, redirected to HTTPS")] {
            let mut m = rule(port, &format!("{what} from {cidr}"));
            m.insert("CidrIp".into(), json!(cidr));
            lb_in.push(Value::Object(m));
        }
    }
    let mut lb_sg = Resource::new("AWS::EC2::SecurityGroup")
        .property(
            "GroupDescription",
            "Frontend load balancer: HTTPS (and HTTP to redirect) from the allowed CIDRs",
        )
        .property("VpcId", vpc_id.clone())
        .property("SecurityGroupIngress", Value::Array(lb_in))
        .property(
            "SecurityGroupEgress",
            json!([to_group(
                front.port,
                &Role::Frontend.security_group(),
                "To the frontend instances"
            )]),
        );
    if s.allowed_cidrs.contains(&"0.0.0.0/0") {
        lb_sg = lb_sg.checkov_skip(
            "CKV_AWS_260",
            "Port 80 of the public load balancer only answers with a redirect to HTTPS (listener FrontendHttpListener); no content is served over HTTP",
        );
    }
    t.resource(LOAD_BALANCER_SG, lb_sg);
    t.resource(
        Role::Frontend.security_group(),
        Resource::new("AWS::EC2::SecurityGroup")
            .property(
                "GroupDescription",
                "Frontend instances: the application port from the frontend load balancer only",
            )
            .property("VpcId", vpc_id.clone())
            .property(
                "SecurityGroupEgress",
                json!([
                    to_group(backend_lb_port, BACKEND_LOAD_BALANCER_SG, "To the backend load balancer"),
                    to_anywhere_https("HTTPS to AWS APIs (SSM, CloudWatch, CloudFormation) through the NAT gateway")
                ]),
            ),
    );
    t.resource(
        Role::Frontend.ingress(),
        ingress(
            &Role::Frontend.security_group(),
            LOAD_BALANCER_SG,
            front.port,
            "From the frontend load balancer",
        ),
    );
    t.resource(
        BACKEND_LOAD_BALANCER_SG,
        Resource::new("AWS::EC2::SecurityGroup")
            .property(
                "GroupDescription",
                "Backend load balancer: from the frontend instances only",
            )
            .property("VpcId", vpc_id.clone())
            .property(
                "SecurityGroupEgress",
                json!([to_group(
                    back.port,
                    &Role::Backend.security_group(),
                    "To the backend instances"
                )]),
            ),
    );
    t.resource(
        BACKEND_LOAD_BALANCER_INGRESS,
        ingress(
            BACKEND_LOAD_BALANCER_SG,
            &Role::Frontend.security_group(),
            backend_lb_port,
            "From the frontend instances",
        ),
    );
    t.resource(
        Role::Backend.security_group(),
        Resource::new("AWS::EC2::SecurityGroup")
            .property(
                "GroupDescription",
                "Backend instances: the application port from the backend load balancer only",
            )
            .property("VpcId", vpc_id.clone())
            .property(
                "SecurityGroupEgress",
                json!([to_anywhere_https(
                    "HTTPS to AWS APIs (SSM, CloudWatch, CloudFormation) through the NAT gateway"
                )]),
            ),
    );
    t.resource(
        Role::Backend.ingress(),
        ingress(
            &Role::Backend.security_group(),
            BACKEND_LOAD_BALANCER_SG,
            back.port,
            "From the backend load balancer",
        ),
    );
}

/// Where the load balancers write their access logs: the spec's bucket,
/// or the one this stack makes.
fn access_logs_bucket_value(s: &Settings<'_>) -> Value {
    s.access_logs_bucket
        .map_or_else(|| fns::ref_(ACCESS_LOGS_BUCKET), |b| json!(b))
}

/// Load balancer attributes: invalid headers dropped, deletion protection,
/// access logs under `{prefix}/{name}/{role}/`.
fn lb_attributes(s: &Settings<'_>, role: Role) -> Value {
    json!([
        { "Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true" },
        { "Key": "deletion_protection.enabled", "Value": s.deletion_protection.to_string() },
        { "Key": "access_logs.s3.enabled", "Value": "true" },
        { "Key": "access_logs.s3.bucket", "Value": access_logs_bucket_value(s) },
        {
            "Key": "access_logs.s3.prefix",
            "Value": fns::sub(&format!("${{Prefix}}/${{EnvironmentName}}/{}", role.key()))
        }
    ])
}

/// The access-log bucket, when the spec names none: private, versioned,
/// SSE-S3 (the only encryption load balancer log delivery supports),
/// objects expiring after the environment's log retention, kept when the
/// stack is deleted; its policy lets Elastic Load Balancing write this
/// environment's prefixes only.
fn access_logs_bucket(t: &mut Template, spec: &ProviderSpec) {
    t.resource(
        ACCESS_LOGS_BUCKET,
        common::access_logs_bucket(spec.log_retention_days()),
    );
    t.resource(
        ACCESS_LOGS_BUCKET_POLICY,
        Resource::new("AWS::S3::BucketPolicy")
            .property("Bucket", fns::ref_(ACCESS_LOGS_BUCKET))
            .property(
                "PolicyDocument",
                json!({
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Sid": "LoadBalancerLogDelivery",
                        "Effect": "Allow",
                        "Principal": common::elb_log_delivery_principal(&spec.region),
                        "Action": "s3:PutObject",
                        "Resource": fns::sub(&format!(
                            "${{{ACCESS_LOGS_BUCKET}.Arn}}/${{Prefix}}/${{EnvironmentName}}/*/AWSLogs/${{AWS::AccountId}}/*"
                        ))
                    }]
                }),
            ),
    );
}

/// A load balancer of `role`; it waits for the access-log bucket's policy
/// (enabling access logs checks that it may write).
fn load_balancer(
    s: &Settings<'_>,
    role: Role,
    scheme: &str,
    subnets: Value,
    group: &str,
) -> Resource {
    let mut r = Resource::new("AWS::ElasticLoadBalancingV2::LoadBalancer")
        .property("Type", "application")
        .property("Scheme", scheme)
        .property("IpAddressType", "ipv4")
        .property("Subnets", subnets)
        .property("SecurityGroups", json!([fns::ref_(group)]))
        .property("LoadBalancerAttributes", lb_attributes(s, role));
    if s.access_logs_bucket.is_none() {
        r = r.depends_on(ACCESS_LOGS_BUCKET_POLICY);
    }
    r
}

fn load_balancers(t: &mut Template, s: &Settings<'_>, net: &common::Network) {
    let frontend_subnets = match s.scheme {
        LoadBalancerScheme::InternetFacing => net.public_subnets.clone(),
        LoadBalancerScheme::Internal => net.private_subnets.clone(),
    };
    t.resource(
        LOAD_BALANCER,
        load_balancer(
            s,
            Role::Frontend,
            s.scheme.as_str(),
            frontend_subnets,
            LOAD_BALANCER_SG,
        ),
    );
    t.resource(
        HTTPS_LISTENER,
        Resource::new("AWS::ElasticLoadBalancingV2::Listener")
            .property("LoadBalancerArn", fns::ref_(LOAD_BALANCER))
            .property("Port", 443)
            .property("Protocol", "HTTPS")
            .property("SslPolicy", SSL_POLICY)
            .property("Certificates", json!([{ "CertificateArn": s.certificate }]))
            .property(
                "DefaultActions",
                json!([{ "Type": "forward", "TargetGroupArn": fns::ref_(&Role::Frontend.target_group()) }]),
            ),
    );
    t.resource(
        HTTP_LISTENER,
        Resource::new("AWS::ElasticLoadBalancingV2::Listener")
            .property("LoadBalancerArn", fns::ref_(LOAD_BALANCER))
            .property("Port", 80)
            .property("Protocol", "HTTP")
            .property(
                "DefaultActions",
                json!([{
                    "Type": "redirect",
                    "RedirectConfig": { "Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301" }
                }]),
            ),
    );
    t.resource(
        BACKEND_LOAD_BALANCER,
        load_balancer(
            s,
            Role::Backend,
            "internal",
            net.private_subnets.clone(),
            BACKEND_LOAD_BALANCER_SG,
        ),
    );
    let (port, protocol) = s.backend_listener();
    let mut listener = Resource::new("AWS::ElasticLoadBalancingV2::Listener")
        .property("LoadBalancerArn", fns::ref_(BACKEND_LOAD_BALANCER))
        .property("Port", port)
        .property("Protocol", protocol)
        .property(
            "DefaultActions",
            json!([{ "Type": "forward", "TargetGroupArn": fns::ref_(&Role::Backend.target_group()) }]),
        );
    match s.backend_certificate {
        Some(cert) => {
            listener = listener
                .property("SslPolicy", SSL_POLICY)
                .property("Certificates", json!([{ "CertificateArn": cert }]));
        }
        None => {
            listener = listener.checkov_skip(
                "CKV_AWS_2",
                "Internal listener in the private subnets, reachable only from the frontend instances' security group; TLS ends at the public load balancer unless vmImage.loadBalancer.backendCertificateArn names a certificate for the internal name",
            )
                .checkov_skip(
                    "CKV_AWS_103",
                    "A plain HTTP listener has no TLS version to check (see CKV_AWS_2 on this listener); with vmImage.loadBalancer.backendCertificateArn it is HTTPS with a TLS 1.2+ policy",
                );
        }
    }
    t.resource(BACKEND_LISTENER, listener);
}

/// The instance role of `role`: write to the environment log group, read
/// the role's own SSM parameters, and Session Manager (no SSH).
fn instance_role(t: &mut Template, role: Role) {
    let key = role.key();
    let params = |suffix: &str| {
        fns::sub(&format!(
            "arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter/${{Prefix}}/${{EnvironmentName}}/{key}{suffix}"
        ))
    };
    let statements = vec![
        common::allow(
            &[
                "logs:CreateLogStream",
                "logs:DescribeLogStreams",
                "logs:PutLogEvents",
            ],
            vec![fns::get_att(ids::LOG_GROUP, "Arn")],
        ),
        common::allow(
            &[
                "ssm:GetParameter",
                "ssm:GetParameters",
                "ssm:GetParametersByPath",
            ],
            vec![params(""), params("/*")],
        ),
        // Session Manager: the agent registers its own instance and opens
        // its channels (the `ssmmessages` actions have no resource types).
        common::allow(
            &["ssm:UpdateInstanceInformation"],
            vec![fns::sub(
                "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*",
            )],
        ),
        common::allow(
            &[
                "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel",
                "ssmmessages:OpenDataChannel",
            ],
            vec![json!("*")],
        ),
    ];
    t.resource(
        role.instance_role(),
        Resource::new("AWS::IAM::Role")
            .property(
                "RoleName",
                common::name_sub(&format!("-{key}-instance-role")),
            )
            .property(
                "Description",
                common::name_sub(&format!(" {key} instances")),
            )
            .property(
                "AssumeRolePolicyDocument",
                common::service_trust_policy("ec2.amazonaws.com"),
            )
            .property("Policies", json!([common::policy("instance", statements)])),
    );
    t.resource(
        role.instance_profile(),
        Resource::new("AWS::IAM::InstanceProfile")
            .property("Roles", json!([fns::ref_(&role.instance_role())])),
    );
}

/// Tags of a role's instances and volumes: the stack's tags, the role,
/// the image and its version.
fn role_tags(spec: &ProviderSpec, role: Role, r: &RoleSettings<'_>) -> BTreeMap<String, String> {
    // Keys as in [`INSTANCE_TAG_KEYS`].
    let mut tags = common::stack_tags(spec);
    tags.insert("Name".into(), role.physical_name(&Names::of(spec)));
    tags.insert("harmonix:role".into(), role.key().to_owned());
    tags.insert("harmonix:image".into(), r.image.label());
    tags.insert("harmonix:image-version".into(), r.version.to_owned());
    tags
}

/// The user data of `rollout.healthSignals`: wait for the application's
/// health check on the instance, then signal the group.
fn signal_user_data(role: Role, r: &RoleSettings<'_>) -> Value {
    let tries = r.grace / 10 + 1;
    let group = role.group();
    let (port, path) = (r.port, r.health_path);
    let script = format!(
        "#!/bin/bash\n\
         # Harmonix: signal the Auto Scaling group once the application answers its health check.\n\
         signal() {{ /opt/aws/bin/cfn-signal --success \"$1\" --stack ${{AWS::StackName}} --resource {group} --region ${{AWS::Region}}; }}\n\
         for _ in $(seq 1 {tries}); do\n\
         \x20 if curl -fsS -o /dev/null --max-time 5 'http://127.0.0.1:{port}{path}'; then signal true; exit 0; fi\n\
         \x20 sleep 10\n\
         done\n\
         signal false\n"
    );
    json!({ "Fn::Base64": fns::sub(&script) })
}

fn launch_template(t: &mut Template, spec: &ProviderSpec, s: &Settings<'_>, role: Role) {
    let r = s.role(role);
    let tags = role_tags(spec, role, r);
    let tag_list = fns::tags(tags.iter().map(|(k, v)| (k.as_str(), json!(v))));
    let mut data = json!({
        "ImageId": r.image.image_id(),
        "InstanceType": r.instance_types.first().copied().unwrap_or(DEFAULT_INSTANCE_TYPE),
        "IamInstanceProfile": { "Arn": fns::get_att(&role.instance_profile(), "Arn") },
        "SecurityGroupIds": [fns::ref_(&role.security_group())],
        "MetadataOptions": { "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1, "HttpTokens": "required" },
        "BlockDeviceMappings": [{
            "DeviceName": r.device,
            "Ebs": {
                "DeleteOnTermination": true,
                "Encrypted": true,
                "KmsKeyId": fns::get_att(ids::KMS_KEY, "Arn"),
                "VolumeSize": r.volume_gib,
                "VolumeType": "gp3"
            }
        }],
        "Monitoring": { "Enabled": true },
        "TagSpecifications": [{ "ResourceType": "volume", "Tags": tag_list }]
    });
    if s.signals(role)
        && let Some(m) = data.as_object_mut()
    {
        m.insert("UserData".into(), signal_user_data(role, r));
    }
    t.resource(
        role.launch_template(),
        Resource::new("AWS::EC2::LaunchTemplate")
            .property(
                "LaunchTemplateName",
                common::name_sub(&format!("-{}", role.key())),
            )
            .property(
                "VersionDescription",
                format!("{} {}", role.key(), r.version),
            )
            .property("LaunchTemplateData", data),
    );
}

fn target_group(t: &mut Template, s: &Settings<'_>, role: Role, vpc_id: &Value) {
    let r = s.role(role);
    t.resource(
        role.target_group(),
        Resource::new("AWS::ElasticLoadBalancingV2::TargetGroup")
            .property("TargetType", "instance")
            .property("Protocol", "HTTP")
            .property("Port", r.port)
            .property("VpcId", vpc_id.clone())
            .property("HealthCheckEnabled", true)
            .property("HealthCheckProtocol", "HTTP")
            .property("HealthCheckPath", r.health_path)
            .property("HealthCheckIntervalSeconds", 15)
            .property("HealthCheckTimeoutSeconds", 5)
            .property("HealthyThresholdCount", 2)
            .property("UnhealthyThresholdCount", 3)
            .property("Matcher", json!({ "HttpCode": "200-399" }))
            .property(
                "TargetGroupAttributes",
                json!([{
                    "Key": "deregistration_delay.timeout_seconds",
                    "Value": DEREGISTRATION_DELAY_SECONDS.to_string()
                }]),
            ),
    );
}

/// The rolling-update policy of a role's group (see the module docs).
/// Without signals `PauseTime` is the wait after each batch; with them it
/// is how long CloudFormation waits for the batch's signals, and
/// `MinSuccessfulInstancesPercent` (valid only with
/// `WaitOnResourceSignals`) asks for every one.
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-updatepolicy.html>
fn update_policy(s: &Settings<'_>, role: Role) -> Value {
    let r = s.role(role);
    let signals = s.signals(role);
    let in_service = min_in_service(r.desired, s.min_healthy_percentage);
    let mut rolling = json!({
        "MinInstancesInService": in_service,
        "MaxBatchSize": max_batch(r.desired, in_service),
        "PauseTime": format!("PT{}S", r.grace),
        "WaitOnResourceSignals": signals,
        "SuspendProcesses": ["AlarmNotification", "AZRebalance", "HealthCheck", "ReplaceUnhealthy", "ScheduledActions"]
    });
    if signals && let Some(m) = rolling.as_object_mut() {
        m.insert("MinSuccessfulInstancesPercent".into(), json!(100));
    }
    json!({ "AutoScalingRollingUpdate": rolling })
}

/// What a group must wait for before its instances start: in a new VPC,
/// every route to a NAT gateway (`AWS::EC2::Route` with `NatGatewayId`),
/// the NAT gateways they name, and the subnet associations of their route
/// tables. Read from the template, so the shared VPC builder may make one
/// NAT gateway or one per AZ; an existing VPC adds none of these.
fn private_route_dependencies(t: &Template) -> std::collections::BTreeSet<String> {
    let mut deps = std::collections::BTreeSet::new();
    let mut tables = Vec::new();
    for (id, r) in &t.resources {
        if r.kind != "AWS::EC2::Route" {
            continue;
        }
        let Some(nat) = r.properties.get("NatGatewayId") else {
            continue;
        };
        deps.insert(id.clone());
        if let Some(gw) = nat.get("Ref").and_then(Value::as_str) {
            deps.insert(gw.to_owned());
        }
        if let Some(table) = r.properties.get("RouteTableId") {
            tables.push(table.clone());
        }
    }
    for (id, r) in &t.resources {
        if r.kind == "AWS::EC2::SubnetRouteTableAssociation"
            && r.properties
                .get("RouteTableId")
                .is_some_and(|table| tables.contains(table))
        {
            deps.insert(id.clone());
        }
    }
    deps
}

fn group(t: &mut Template, spec: &ProviderSpec, s: &Settings<'_>, role: Role, subnets: &Value) {
    let r = s.role(role);
    let lt = role.launch_template();
    let spec_lt = json!({
        "LaunchTemplateId": fns::ref_(&lt),
        "Version": fns::get_att(&lt, "LatestVersionNumber")
    });
    let tags: Vec<Value> = role_tags(spec, role, r)
        .into_iter()
        .map(|(k, v)| json!({ "Key": k, "Value": v, "PropagateAtLaunch": true }))
        .collect();
    let listener = match role {
        Role::Frontend => HTTPS_LISTENER,
        Role::Backend => BACKEND_LISTENER,
    };
    let mut g = Resource::new("AWS::AutoScaling::AutoScalingGroup")
        .depends_on(AUTOSCALING_ROLE)
        .depends_on(listener)
        .property(
            "AutoScalingGroupName",
            common::name_sub(&format!("-{}", role.key())),
        )
        .property("MinSize", r.min.to_string())
        .property("DesiredCapacity", r.desired.to_string())
        .property("MaxSize", r.max.to_string())
        .property("VPCZoneIdentifier", subnets.clone())
        .property("TargetGroupARNs", json!([fns::ref_(&role.target_group())]))
        .property("HealthCheckType", "ELB")
        .property("HealthCheckGracePeriod", r.grace)
        .property("ServiceLinkedRoleARN", autoscaling_role_arn())
        .property("MetricsCollection", json!([{ "Granularity": "1Minute" }]))
        .property("Tags", Value::Array(tags))
        .update_policy(update_policy(s, role));
    g.depends_on.extend(private_route_dependencies(t));
    if r.instance_types.len() > 1 {
        let overrides: Vec<Value> = r
            .instance_types
            .iter()
            .map(|ty| json!({ "InstanceType": ty }))
            .collect();
        g = g.property(
            "MixedInstancesPolicy",
            json!({
                "InstancesDistribution": {
                    "OnDemandAllocationStrategy": "prioritized",
                    "OnDemandBaseCapacity": 0,
                    "OnDemandPercentageAboveBaseCapacity": 100
                },
                "LaunchTemplate": {
                    "LaunchTemplateSpecification": spec_lt,
                    "Overrides": overrides
                }
            }),
        );
    } else {
        g = g.property("LaunchTemplate", spec_lt);
    }
    if s.signals(role) {
        g = g.creation_policy(json!({
            "AutoScalingCreationPolicy": { "MinSuccessfulInstancesPercent": 100 },
            "ResourceSignal": { "Count": r.desired, "Timeout": format!("PT{}S", r.grace) }
        }));
    }
    t.resource(role.group(), g);
}

/// Statements of the operations role: look at the environment and steer
/// its groups (capacity, instance refresh, processes).
fn operations_statements() -> Vec<Value> {
    vec![
        common::allow(
            &[
                "autoscaling:DescribeAutoScalingGroups",
                "autoscaling:DescribeInstanceRefreshes",
                "autoscaling:DescribeScalingActivities",
                "ec2:DescribeInstances",
                "ec2:DescribeLaunchTemplateVersions",
                "elasticloadbalancing:DescribeLoadBalancers",
                "elasticloadbalancing:DescribeTargetGroups",
                "elasticloadbalancing:DescribeTargetHealth",
            ],
            vec![json!("*")],
        ),
        common::allow(
            &[
                "autoscaling:CancelInstanceRefresh",
                "autoscaling:ResumeProcesses",
                "autoscaling:SetDesiredCapacity",
                "autoscaling:StartInstanceRefresh",
                "autoscaling:SuspendProcesses",
            ],
            vec![groups_arn()],
        ),
    ]
}

/// Statements of the provisioning role: as operations, plus publishing
/// image ids under the environment's `images/` parameters (for
/// `imageParameter`).
fn provisioning_statements() -> Vec<Value> {
    let mut v = operations_statements();
    v.push(common::allow(
        &["ssm:PutParameter"],
        vec![fns::sub(
            "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/${Prefix}/${EnvironmentName}/images/*",
        )],
    ));
    v
}

/// In an existing VPC, the subnet parameters this stack uses become typed
/// lists without an empty default (validation requires the subnets, and
/// CloudFormation then checks they exist); the public subnets are dropped
/// when an internal load balancer leaves them unused.
fn existing_subnet_parameters(
    t: &mut Template,
    values: &mut BTreeMap<String, String>,
    scheme: LoadBalancerScheme,
) {
    use common::params::{PRIVATE_SUBNET_IDS, PUBLIC_SUBNET_IDS};
    let typed = |what: &str| {
        Parameter::of_type(
            "List<AWS::EC2::Subnet::Id>",
            format!("{what} subnet ids of the existing VPC"),
        )
    };
    t.parameter(PRIVATE_SUBNET_IDS, typed("Private"));
    if scheme == LoadBalancerScheme::InternetFacing {
        t.parameter(PUBLIC_SUBNET_IDS, typed("Public"));
    } else {
        t.parameters.remove(PUBLIC_SUBNET_IDS);
        values.remove(PUBLIC_SUBNET_IDS);
    }
}

fn vm_image_stack(spec: &ProviderSpec, s: &Settings<'_>) -> StackDefinition {
    let (mut t, mut values) = common::base_template(
        "Harmonix VM-image environment: frontend and backend Auto Scaling groups on versioned machine images behind load balancers, VPC, KMS key, log group, audit table, operations and provisioning roles",
        spec,
    );
    let net = common::foundation(&mut t, spec, &mut values);
    if matches!(spec.resolved_vpc(), ResolvedVpc::Existing { .. }) {
        existing_subnet_parameters(&mut t, &mut values, s.scheme);
    }
    autoscaling_service_role(&mut t);
    security_groups(&mut t, s, &net.vpc_id);
    if s.access_logs_bucket.is_none() {
        access_logs_bucket(&mut t, spec);
    }
    load_balancers(&mut t, s, &net);
    for role in Role::ALL {
        instance_role(&mut t, role);
        launch_template(&mut t, spec, s, role);
        target_group(&mut t, s, role, &net.vpc_id);
        group(&mut t, spec, s, role, &net.private_subnets);
    }
    let (_, protocol) = s.backend_listener();
    let backend_url = fns::sub(&format!(
        "{}://${{{BACKEND_LOAD_BALANCER}.DNSName}}",
        protocol.to_ascii_lowercase()
    ));
    common::ssm_parameter(
        &mut t,
        spec,
        BACKEND_URL_PARAMETER,
        "frontend/backend-url",
        backend_url.clone(),
        "URL of the backend load balancer, for the frontend instances",
    );
    common::environment_roles(
        &mut t,
        spec,
        operations_statements(),
        provisioning_statements(),
    );
    t.output(
        OUTPUT_FRONTEND_URL,
        Output::new(fns::sub(&format!("https://${{{LOAD_BALANCER}.DNSName}}")))
            .description("Frontend URL"),
    );
    t.output(
        OUTPUT_LOAD_BALANCER_DNS,
        Output::new(fns::get_att(LOAD_BALANCER, "DNSName"))
            .description("Frontend load balancer DNS name"),
    );
    t.output(
        OUTPUT_LOAD_BALANCER_ARN,
        Output::new(fns::ref_(LOAD_BALANCER)).description("Frontend load balancer ARN"),
    );
    t.output(
        OUTPUT_BACKEND_URL,
        Output::new(backend_url).description("Backend URL (inside the VPC)"),
    );
    for role in Role::ALL {
        let key = role.key();
        t.output(
            role.group_output(),
            Output::new(fns::ref_(&role.group()))
                .description(format!("Auto Scaling group of the {key}")),
        );
        t.output(
            role.launch_template_output(),
            Output::new(fns::ref_(&role.launch_template()))
                .description(format!("Launch template of the {key}")),
        );
        t.output(
            role.version_output(),
            Output::new(s.role(role).version).description(format!("Image version of the {key}")),
        );
    }
    common::environment_stack(spec, t, values)
}

// ---------------------------------------------------------------------------
// Catalog

/// Catalog field of a role's image (`frontendImage`).
fn image_field(role: Role) -> String {
    format!("{}Image", role.key())
}

fn vm_image_entity(spec: &ProviderSpec, all: &StackOutputs) -> Entity {
    let names = Names::of(spec);
    let out = all.get(&names.stack);
    let mut draft = provider_entity(spec, &names, out);
    let settings = Settings::of(spec);
    let extra = &mut draft.0.extra;
    for role in Role::ALL {
        let key = role.key();
        let r = settings.as_ref().map(|s| s.role(role));
        extra.insert(
            format!("{key}ImageVersion"),
            common::output_or(
                out,
                &role.version_output(),
                r.map(|r| r.version).unwrap_or_default(),
            ),
        );
        extra.insert(
            image_field(role),
            r.map(|r| r.image.label()).unwrap_or_default(),
        );
        extra.insert(
            format!("{key}AutoScalingGroup"),
            common::output_or(out, &role.group_output(), role.physical_name(&names)),
        );
    }
    let dns = common::output_or(out, OUTPUT_LOAD_BALANCER_DNS, "");
    let url = common::output_or(
        out,
        OUTPUT_FRONTEND_URL,
        if dns.is_empty() {
            String::new()
        } else {
            format!("https://{dns}")
        },
    );
    extra.insert("loadBalancerDnsName".into(), dns);
    extra.insert("frontendUrl".into(), url);
    draft.finish()
}

#[cfg(test)]
#[path = "vm_image_tests.rs"]
mod tests;
