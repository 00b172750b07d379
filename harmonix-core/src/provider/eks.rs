//! EKS environment provider (`eks`).
//!
//! Creates, on top of [`common::foundation`](super::common::foundation)
//! (VPC or existing VPC, KMS key, log group, audit table) and the
//! operations and provisioning roles:
//!
//! - **a new cluster** (the default): the control-plane role and security
//!   group, the `AWS::EKS::Cluster` (secrets encrypted with the environment
//!   key, all five control-plane log types into a KMS-encrypted log group
//!   with the spec's retention, access entries only: authentication mode
//!   `API`; upgrade policy `STANDARD` unless `extendedSupport`), its IAM
//!   OIDC provider (IAM roles for service accounts), the cluster-admin role with its access entry, a read-only
//!   access entry for the operations role, and the compute: a Fargate
//!   profile for `default` and `kube-system` (plus the CoreDNS add-on set to
//!   run on Fargate) or a managed node group (IMDSv2, encrypted gp3 root
//!   volumes through a launch template). With a `private` endpoint, a
//!   kubectl Lambda in the VPC reaches the API server for the platform.
//! - **an existing cluster** (`eks.existingCluster`): no cluster; the
//!   roles, a read-only access entry for the operations role on that
//!   cluster, and the catalog points at the spec's `kubectlRole`. The
//!   existing cluster's endpoint is unknown to the template, so no kubectl
//!   Lambda is created: the platform reaches the cluster with the
//!   `kubectlRole` directly. The access entry needs the cluster's
//!   authentication mode `API` or `API_AND_CONFIG_MAP`: `plan` checks it
//!   first ([`Preflight::EksCluster`]) and refuses a `CONFIG_MAP` cluster
//!   saying how to switch it or what to map in `aws-auth` instead
//!   (`existingCluster.accessEntries: false`).
//!
//! Who may act on a new cluster: the cluster-admin role is trusted by the
//! spec's platform and pipeline roles (the only external principals) and by
//! this stack's operations, provisioning and kubectl roles, which reach it
//! by role chaining. With a public-only endpoint, nodes and Fargate pods reach
//! the API through the NAT gateways: a new VPC's NAT addresses are added to
//! `publicAccessCidrs`; in an existing VPC, the spec must list the VPC's
//! NAT addresses itself (or use `public-and-private`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::common::{self, ids, outputs, params};
use super::ecs::provider_entity;
use super::names::{DerivedName, NameKind, Names};
use super::{AccessGrant, EnvironmentProvider, Lookup, Preflight, StackDefinition, StackOutputs};
use crate::catalog::{EksEntityFields, Entity};
use crate::spec::arn::RoleArn;
use crate::spec::cidr::Ipv4Cidr;
use crate::spec::{
    DEFAULT_KUBERNETES_VERSION, EXTENDED_SUPPORT_KUBERNETES_VERSIONS, Ec2Capacity, EksComputeKind,
    EndpointAccess, ExistingCluster, ProviderKind, ProviderSpec, ResolvedVpc,
    SUPPORTED_KUBERNETES_VERSIONS, ValidProvider, ValidationErrors, VpcMode, regions,
};
use crate::template::{Output, Parameter, Resource, Template, fns};

/// Logical id of the EKS cluster.
pub const CLUSTER: &str = "Cluster";
/// Logical id of the control-plane role.
pub const CLUSTER_ROLE: &str = "ClusterRole";
/// Logical id of the additional control-plane security group.
pub const CLUSTER_SECURITY_GROUP: &str = "ClusterSecurityGroup";
/// Logical id of the control-plane log group.
pub const CLUSTER_LOG_GROUP: &str = "ClusterLogGroup";
/// Logical id of the cluster-admin role.
pub const CLUSTER_ADMIN_ROLE: &str = "ClusterAdminRole";
/// Logical id of the cluster-admin role's access entry.
pub const CLUSTER_ADMIN_ACCESS: &str = "ClusterAdminAccessEntry";
/// Logical id of the operations role's access entry.
pub const OPERATIONS_ACCESS: &str = "OperationsAccessEntry";
/// Logical id of the Fargate pod-execution role.
pub const POD_EXECUTION_ROLE: &str = "PodExecutionRole";
/// Logical id of the Fargate profile.
pub const FARGATE_PROFILE: &str = "FargateProfile";
/// Logical id of the CoreDNS add-on (Fargate clusters).
pub const COREDNS_ADDON: &str = "CoreDnsAddon";
/// Logical id of the node role (managed nodes).
pub const NODE_ROLE: &str = "NodeRole";
/// Logical id of the node launch template (managed nodes).
pub const NODE_LAUNCH_TEMPLATE: &str = "NodeLaunchTemplate";
/// Logical id of the managed node group.
pub const NODE_GROUP: &str = "NodeGroup";
/// Logical id of the kubectl Lambda's role.
pub const KUBECTL_ROLE: &str = "KubectlRole";
/// Logical id of the kubectl Lambda's security group.
pub const KUBECTL_SECURITY_GROUP: &str = "KubectlSecurityGroup";
/// Logical id of the ingress rule letting the kubectl Lambda reach the API.
pub const KUBECTL_INGRESS: &str = "ClusterIngressFromKubectl";
/// Logical id of the kubectl Lambda.
pub const KUBECTL_FUNCTION: &str = "KubectlFunction";
/// Logical id of the cluster's IAM OIDC provider (IRSA).
pub const OIDC_PROVIDER: &str = "OidcProvider";

/// Template parameter: the Kubernetes version of a new cluster.
pub const VERSION_PARAM: &str = "KubernetesVersion";
/// Template parameter: the name of an existing cluster.
pub const EXISTING_CLUSTER_PARAM: &str = "ExistingClusterName";
/// Condition: the existing VPC has public subnets (public endpoint only).
pub const HAS_PUBLIC_SUBNETS: &str = "HasPublicSubnets";

/// Output: the cluster API endpoint (new cluster).
pub const OUTPUT_CLUSTER_ENDPOINT: &str = "ClusterEndpoint";
/// Output: the OIDC issuer URL (new cluster).
pub const OUTPUT_OIDC_ISSUER: &str = "OidcIssuer";
/// Output: the ARN of the cluster's IAM OIDC provider (new cluster).
pub const OUTPUT_OIDC_PROVIDER_ARN: &str = "OidcProviderArn";
/// Output: the cluster-admin role ARN.
pub const OUTPUT_CLUSTER_ADMIN_ROLE_ARN: &str = "ClusterAdminRoleArn";
/// Output: the kubectl Lambda ARN (private endpoint).
pub const OUTPUT_KUBECTL_LAMBDA_ARN: &str = "KubectlLambdaArn";
/// Output: the kubectl Lambda's role ARN (private endpoint).
pub const OUTPUT_KUBECTL_LAMBDA_ROLE_ARN: &str = "KubectlLambdaRoleArn";

/// Default node instance type.
pub const DEFAULT_INSTANCE_TYPE: &str = "t3.medium";
/// The five control-plane log types.
pub const CLUSTER_LOG_TYPES: [&str; 5] = [
    "api",
    "audit",
    "authenticator",
    "controllerManager",
    "scheduler",
];
/// Most CIDRs EKS accepts for the public endpoint.
pub const MAX_PUBLIC_ACCESS_CIDRS: usize = 40;
/// Most nodes in one managed node group (EKS quota).
pub const MAX_NODES_PER_GROUP: u32 = 450;
/// Runtime of the kubectl Lambda.
pub const KUBECTL_RUNTIME: &str = "python3.12";
/// Root volume size of managed nodes, GiB.
pub const NODE_VOLUME_GIB: u32 = 50;

/// Source of the kubectl Lambda (inline `ZipFile`, module `index`).
///
/// Event: `{"method": "GET", "path": "/api/v1/namespaces", "body": {...},
/// "contentType": "application/json"}` (all optional; `GET /version` by
/// default). It assumes the cluster-admin role, builds an EKS bearer token
/// (a presigned STS `GetCallerIdentity` URL bound to the cluster with the
/// `x-k8s-aws-id` header), and sends the request to the private API
/// endpoint, checking the server against the cluster's CA. Returns
/// `{"statusCode": …, "body": …}` with the API server's answer.
pub const KUBECTL_SOURCE: &str = r#"import base64
import json
import os
import ssl
import urllib.error
import urllib.request

import boto3
from botocore.signers import RequestSigner

CLUSTER = os.environ["CLUSTER_NAME"]
ADMIN_ROLE = os.environ["ADMIN_ROLE_ARN"]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def token(session):
    sts = session.client("sts")
    signer = RequestSigner(
        sts.meta.service_model.service_id, session.region_name, "sts", "v4",
        session.get_credentials(), session.events)
    url = signer.generate_presigned_url(
        {"method": "GET",
         "url": sts.meta.endpoint_url
         + "/?Action=GetCallerIdentity&Version=2011-06-15",
         "body": {}, "headers": {"x-k8s-aws-id": CLUSTER}, "context": {}},
        region_name=session.region_name, expires_in=60, operation_name="")
    b64 = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    return "k8s-aws-v1." + b64


def handler(event, context):
    method = str(event.get("method", "GET")).upper()
    path = str(event.get("path", "/version"))
    if method not in METHODS or not path.startswith("/"):
        return {"statusCode": 400,
                "body": "method must be one of %s; path must start with /"
                % ", ".join(METHODS)}
    creds = boto3.client("sts").assume_role(
        RoleArn=ADMIN_ROLE, RoleSessionName="harmonix-kubectl")["Credentials"]
    session = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=os.environ["AWS_REGION"])
    cluster = boto3.client("eks").describe_cluster(name=CLUSTER)["cluster"]
    ca = base64.b64decode(cluster["certificateAuthority"]["data"]).decode()
    body = event.get("body")
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
    request = urllib.request.Request(
        cluster["endpoint"] + path, method=method,
        data=None if body is None else body.encode(),
        headers={"Authorization": "Bearer " + token(session),
                 "Accept": "application/json",
                 "Content-Type": event.get("contentType", "application/json")})
    tls = ssl.create_default_context(cadata=ca)
    try:
        with urllib.request.urlopen(request, context=tls, timeout=25) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    return {"statusCode": status, "body": text}
"#;

/// Amazon EKS environments.
#[derive(Debug, Clone, Copy, Default)]
pub struct EksProvider;

impl EnvironmentProvider for EksProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Eks
    }
    fn summary(&self) -> &'static str {
        "Amazon EKS cluster (Fargate or managed nodes) or an existing cluster"
    }
    fn validate(&self, spec: &ProviderSpec, path: &str, errors: &mut ValidationErrors) {
        validate_eks(spec, path, errors);
    }
    fn derived_names(&self, spec: &ProviderSpec, path: &str) -> Vec<DerivedName> {
        eks_names(spec, path)
    }
    fn stacks(&self, spec: ValidProvider<'_>) -> Vec<StackDefinition> {
        vec![eks_stack(&spec)]
    }
    fn catalog_entity(&self, spec: ValidProvider<'_>, outputs: &StackOutputs) -> Entity {
        eks_entity(&spec, outputs)
    }
    fn lookups(&self, spec: ValidProvider<'_>) -> Vec<Lookup> {
        vec![Lookup::EksCluster {
            name: cluster_name(&spec),
        }]
    }
    fn preflight(&self, spec: ValidProvider<'_>) -> Vec<Preflight> {
        let s = Settings::of(&spec);
        let Some(existing) = s.existing else {
            // The stack creates the cluster, with authentication mode
            // `API`; a version change must be a step EKS can take.
            return vec![Preflight::EksVersionStep {
                name: Names::of(&spec).cluster,
                region: spec.region.clone(),
                version: s.version.to_owned(),
            }];
        };
        vec![Preflight::EksCluster {
            name: existing.name.clone(),
            region: spec.region.clone(),
            access_entries: if uses_access_entries(existing) {
                vec![operations_grant(&spec)]
            } else {
                Vec::new()
            },
        }]
    }
}

/// Whether the stack gives the operations role an access entry on the
/// existing cluster (`existingCluster.accessEntries`, default true).
fn uses_access_entries(existing: &ExistingCluster) -> bool {
    existing.access_entries.unwrap_or(true)
}

/// Kubernetes group an `aws-auth` mapping of the operations role uses.
pub const AWS_AUTH_VIEW_GROUP: &str = "harmonix-view";

/// The operations role's access to the cluster: `AmazonEKSViewPolicy`,
/// cluster-wide (see [`operations_access`]); in `aws-auth` terms, a group
/// bound to Kubernetes' user-facing `view` ClusterRole: "The permissions
/// contained in access policies are similar to the permissions in the
/// Kubernetes user-facing cluster roles"
/// (<https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html>).
fn operations_grant(spec: &ProviderSpec) -> AccessGrant {
    let names = Names::of(spec);
    AccessGrant {
        role_arn: common::role_arn(&spec.region, spec.account.as_str(), &names.operations_role),
        username: names.operations_role,
        group: AWS_AUTH_VIEW_GROUP.to_owned(),
        cluster_role: "view".to_owned(),
        access_policy: "AmazonEKSViewPolicy".to_owned(),
    }
}

/// The cluster the environment uses: the existing one, or the one it
/// creates.
fn cluster_name(spec: &ProviderSpec) -> String {
    match Settings::of(spec).existing {
        Some(e) => e.name.clone(),
        None => Names::of(spec).cluster,
    }
}

/// The `eks:` section after defaults (a missing section means all
/// defaults: a new Fargate cluster with a private endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings<'a> {
    existing: Option<&'a ExistingCluster>,
    version: &'a str,
    /// `extendedSupport`: upgrade policy `EXTENDED` instead of `STANDARD`.
    extended: bool,
    access: EndpointAccess,
    cidrs: &'a [String],
    compute: EksComputeKind,
    nodes: Option<&'a Ec2Capacity>,
    /// `operationsClusterAdmin`: the operations role may become cluster
    /// admin (default: it only views).
    operations_admin: bool,
    /// `kubectlReservedConcurrency` (default none).
    kubectl_reserved: Option<u32>,
}

impl<'a> Settings<'a> {
    fn of(spec: &'a ProviderSpec) -> Self {
        let e = spec.eks.as_ref();
        let compute = e.and_then(|e| e.compute.as_ref());
        Self {
            existing: e.and_then(|e| e.existing_cluster.as_ref()),
            version: e
                .and_then(|e| e.kubernetes_version.as_deref())
                .unwrap_or(DEFAULT_KUBERNETES_VERSION),
            extended: e.and_then(|e| e.extended_support).unwrap_or(false),
            access: e.and_then(|e| e.endpoint_access).unwrap_or_default(),
            cidrs: e.map_or(&[], |e| e.public_access_cidrs.as_slice()),
            compute: compute.map(|c| c.kind).unwrap_or_default(),
            nodes: compute.and_then(|c| c.nodes.as_ref()),
            operations_admin: e.and_then(|e| e.operations_cluster_admin).unwrap_or(false),
            kubectl_reserved: e.and_then(|e| e.kubectl_reserved_concurrency),
        }
    }

    /// Whether the stack has the kubectl Lambda: a new cluster whose API is
    /// reachable from the VPC only.
    fn kubectl_lambda(&self) -> bool {
        self.existing.is_none() && !self.access.public()
    }
}

/// Derived physical names, attributed to `{path}.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EksNames {
    cluster_role: String,
    cluster_admin_role: String,
    cluster_log_group: String,
    pod_execution_role: String,
    fargate_profile: String,
    node_role: String,
    node_group: String,
    node_launch_template: String,
    kubectl_role: String,
    kubectl_function: String,
}

impl EksNames {
    fn of(names: &Names) -> Self {
        let base = &names.base;
        Self {
            cluster_role: format!("{base}-cluster-role"),
            cluster_admin_role: format!("{base}-cluster-admin-role"),
            cluster_log_group: format!("/aws/eks/{}/cluster", names.cluster),
            pod_execution_role: format!("{base}-pod-execution-role"),
            fargate_profile: format!("{base}-fargate"),
            node_role: format!("{base}-node-role"),
            node_group: format!("{base}-nodes"),
            node_launch_template: format!("{base}-eks-nodes"),
            kubectl_role: format!("{base}-kubectl-role"),
            kubectl_function: format!("{base}-kubectl"),
        }
    }
}

// ---------------------------------------------------------------------------
// Validation

fn validate_eks(spec: &ProviderSpec, path: &str, errors: &mut ValidationErrors) {
    let at = format!("{path}.eks");
    validate_kubectl_concurrency(&Settings::of(spec), &at, errors);
    if let Some(existing) = spec.eks.as_ref().and_then(|e| e.existing_cluster.as_ref()) {
        validate_existing(spec, existing, path, errors);
        return;
    }
    let s = Settings::of(spec);
    validate_version(&s, &at, errors);
    validate_cidrs(spec, &s, &at, errors);
    if let Some(compute) = spec.eks.as_ref().and_then(|e| e.compute.as_ref()) {
        match (compute.kind, compute.nodes.as_ref()) {
            (EksComputeKind::Fargate, Some(_)) => errors.push(
                format!("{at}.compute.nodes"),
                None,
                "node capacity is only used with `type: managed-nodes`; Fargate runs pods without nodes",
            ),
            (EksComputeKind::ManagedNodes, Some(c)) => {
                let nodes = format!("{at}.compute.nodes");
                common::validate_capacity(c, &nodes, errors);
                let arm = c.instance_types.iter().filter(|t| is_arm(t)).count();
                if arm > 0 && arm < c.instance_types.len() {
                    errors.push(
                        format!("{nodes}.instanceTypes"),
                        Some(&c.instance_types.join(", ")),
                        "mixes Arm (Graviton) and x86 instance types; a node group runs one architecture",
                    );
                }
                if let Some(max) = c.max_size
                    && max > MAX_NODES_PER_GROUP
                    && max <= 1000
                {
                    errors.push(
                        format!("{nodes}.maxSize"),
                        Some(&max.to_string()),
                        format!(
                            "an EKS managed node group holds at most {MAX_NODES_PER_GROUP} nodes"
                        ),
                    );
                }
            }
            (_, None) => {}
        }
    }
    if let ResolvedVpc::Existing {
        private_subnet_ids, ..
    } = spec.resolved_vpc()
    {
        match private_subnet_ids.len() {
            0 => errors.push(
                format!("{path}.vpc.privateSubnetIds"),
                None,
                "a new EKS cluster in an existing VPC needs the VPC's private subnet ids \
                 (at least two, in different availability zones) for the control plane and pods",
            ),
            1 => errors.push(
                format!("{path}.vpc.privateSubnetIds"),
                private_subnet_ids.first().map(String::as_str),
                "EKS needs private subnets in at least two availability zones; list at least two",
            ),
            _ => {}
        }
    }
}

/// `kubectlReservedConcurrency`: at least 1 (0 would stop the function),
/// and only where there is a kubectl function.
fn validate_kubectl_concurrency(s: &Settings<'_>, at: &str, errors: &mut ValidationErrors) {
    let Some(n) = s.kubectl_reserved else { return };
    let field = format!("{at}.kubectlReservedConcurrency");
    if !s.kubectl_lambda() {
        errors.push(
            field,
            Some(&n.to_string()),
            "only used with the kubectl function, which a new cluster with endpointAccess `private` has; remove it",
        );
    } else if n == 0 {
        errors.push(
            field,
            Some("0"),
            "must be at least 1 (0 stops the function); leave it out to share the account's unreserved concurrency",
        );
    }
}

/// `kubernetesVersion` against EKS's version lifecycle: a version in
/// standard support, or one in extended support with `extendedSupport:
/// true`. "Extended support allows you to stay at a specific Kubernetes
/// version for longer at an additional cost per cluster hour"
/// (<https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html>;
/// $0.60 instead of $0.10 per cluster hour, <https://aws.amazon.com/eks/pricing/>),
/// and a cluster on a version past standard support cannot have its
/// extended support turned off: it can be disabled only for clusters in
/// standard support
/// (<https://docs.aws.amazon.com/eks/latest/userguide/disable-extended-support.html>),
/// so upgrade policy `STANDARD` needs a version in standard support.
fn validate_version(s: &Settings<'_>, at: &str, errors: &mut ValidationErrors) {
    let field = format!("{at}.kubernetesVersion");
    if SUPPORTED_KUBERNETES_VERSIONS.contains(&s.version) {
        return;
    }
    if EXTENDED_SUPPORT_KUBERNETES_VERSIONS.contains(&s.version) {
        if !s.extended {
            errors.push(
                &field,
                Some(s.version),
                format!(
                    "Kubernetes {} is past EKS standard support and only in extended support, which costs six times the standard cluster-hour price: use a version in standard support ({}; default {DEFAULT_KUBERNETES_VERSION}), or set `eks.extendedSupport: true` to pay for extended support",
                    s.version,
                    SUPPORTED_KUBERNETES_VERSIONS.join(", ")
                ),
            );
        }
        return;
    }
    errors.push(
        &field,
        Some(s.version),
        format!(
            "unsupported Kubernetes version; supported: {} (EKS standard support; default {DEFAULT_KUBERNETES_VERSION}), or with `extendedSupport: true` also {} (extended support)",
            SUPPORTED_KUBERNETES_VERSIONS.join(", "),
            EXTENDED_SUPPORT_KUBERNETES_VERSIONS.join(", ")
        ),
    );
}

/// The versions the template parameter allows: standard support, plus
/// extended support when the spec opts in.
fn allowed_versions(s: &Settings<'_>) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = Vec::new();
    if s.extended {
        v.extend_from_slice(EXTENDED_SUPPORT_KUBERNETES_VERSIONS);
    }
    v.extend_from_slice(SUPPORTED_KUBERNETES_VERSIONS);
    v
}

/// How many NAT addresses join `publicAccessCidrs`: with a public-only
/// endpoint in a new VPC, nodes and pods reach the API only through the NAT
/// gateways, so each one's address must be allowed; none otherwise.
fn nat_in_public_cidrs(spec: &ProviderSpec, s: &Settings<'_>) -> usize {
    if s.access == EndpointAccess::Public && spec.vpc_mode() == VpcMode::New {
        common::nat_gateway_count(spec) as usize
    } else {
        0
    }
}

/// `publicAccessCidrs`: required with a public endpoint, refused without
/// one; each a canonical public IPv4 CIDR, never `/0`.
fn validate_cidrs(spec: &ProviderSpec, s: &Settings<'_>, at: &str, errors: &mut ValidationErrors) {
    let field = format!("{at}.publicAccessCidrs");
    if !s.access.public() {
        if !s.cidrs.is_empty() {
            errors.push(
                &field,
                Some(&s.cidrs.join(", ")),
                format!(
                    "only used with a public endpoint; endpointAccess is `{}`. Remove the CIDRs, or set endpointAccess to `public` or `public-and-private`",
                    s.access
                ),
            );
        }
        return;
    }
    if s.cidrs.is_empty() {
        errors.push(
            &field,
            None,
            format!(
                "required with endpointAccess `{}`: list the CIDRs allowed to reach the public API endpoint, e.g. [203.0.113.0/24] (0.0.0.0/0 is refused)",
                s.access
            ),
        );
        return;
    }
    let max = MAX_PUBLIC_ACCESS_CIDRS - nat_in_public_cidrs(spec, s);
    if s.cidrs.len() > max {
        errors.push(
            &field,
            None,
            format!(
                "{} CIDRs given; at most {max} are allowed here (EKS accepts {MAX_PUBLIC_ACCESS_CIDRS}; with a public-only endpoint each NAT gateway address of a new VPC takes one)",
                s.cidrs.len()
            ),
        );
    }
    let mut seen = BTreeMap::new();
    for (j, c) in s.cidrs.iter().enumerate() {
        let item = format!("{field}[{j}]");
        let cidr = match Ipv4Cidr::parse(c) {
            Ok(cidr) => cidr,
            Err(problem) => {
                errors.push(&item, Some(c), format!("not an IPv4 CIDR: {problem}"));
                continue;
            }
        };
        if cidr.len == 0 {
            errors.push(
                &item,
                Some(c),
                "refused: a /0 block opens the Kubernetes API endpoint to the whole internet; list the CIDRs of your offices, VPN or CI instead",
            );
        } else if !cidr.is_aligned() {
            errors.push(
                &item,
                Some(c),
                format!(
                    "host bits are set; EKS wants the network address: `{}`",
                    cidr.aligned()
                ),
            );
        } else if cidr.is_private() {
            errors.push(
                &item,
                Some(c),
                "a private (RFC 1918) range never reaches the public endpoint; clients inside a VPC use the private endpoint (`endpointAccess: public-and-private`)",
            );
        } else if let Some(first) = seen.insert(cidr.to_string(), j) {
            errors.push(
                &item,
                Some(c),
                format!("duplicate of publicAccessCidrs[{first}]"),
            );
        }
    }
}

fn validate_existing(
    spec: &ProviderSpec,
    existing: &ExistingCluster,
    path: &str,
    errors: &mut ValidationErrors,
) {
    let at = format!("{path}.eks");
    if let Some(eks) = &spec.eks {
        let unused = [
            ("kubernetesVersion", eks.kubernetes_version.is_some()),
            ("extendedSupport", eks.extended_support.is_some()),
            ("endpointAccess", eks.endpoint_access.is_some()),
            ("publicAccessCidrs", !eks.public_access_cidrs.is_empty()),
            ("compute", eks.compute.is_some()),
        ];
        for (field, given) in unused {
            if given {
                errors.push(
                    format!("{at}.{field}"),
                    None,
                    "not used with existingCluster: Harmonix does not manage the existing cluster's settings; remove it (or remove existingCluster to create a cluster)",
                );
            }
        }
    }
    if NameKind::EksCluster.check(&existing.name).is_some() {
        errors.push(
            format!("{at}.existingCluster.name"),
            Some(&existing.name),
            "not an EKS cluster name: 1–100 letters, digits, `-` and `_`, starting with a letter or digit",
        );
    }
    let role_path = format!("{at}.existingCluster.kubectlRole");
    match RoleArn::parse(&existing.kubectl_role) {
        Err(problem) => errors.push(&role_path, Some(&existing.kubectl_role), problem),
        Ok(role) => {
            let mut problems = Vec::new();
            if role.account != spec.account.as_str() {
                problems.push(format!(
                    "the role is in account {} but `account` is {}; the cluster-admin role must be in the cluster's account",
                    role.account, spec.account
                ));
            }
            if regions::is_known(&spec.region) {
                let expected = common::partition(&spec.region);
                if role.partition != expected {
                    problems.push(format!(
                        "partition `{}` does not match region `{}`, which is in partition `{expected}`",
                        role.partition, spec.region
                    ));
                }
            }
            if !problems.is_empty() {
                errors.push(
                    &role_path,
                    Some(&existing.kubectl_role),
                    problems.join("; "),
                );
            }
        }
    }
    if spec.vpc_mode() != VpcMode::Existing {
        errors.push(
            format!("{path}.vpc"),
            None,
            "existingCluster needs the cluster's VPC: set `vpc: { mode: existing, id: vpc-… }` (a new VPC cannot hold an existing cluster)",
        );
    }
}

fn eks_names(spec: &ProviderSpec, path: &str) -> Vec<DerivedName> {
    let names = Names::of(spec);
    let n = EksNames::of(&names);
    let s = Settings::of(spec);
    let at = format!("{path}.name");
    let mut v = names.derived(path);
    let mut add = |kind, value: &str| v.push(DerivedName::new(kind, value, &at));
    if matches!(spec.resolved_vpc(), ResolvedVpc::New { .. }) {
        add(NameKind::IamRole, &format!("{}-flow-logs-role", names.base));
    }
    if s.existing.is_some() {
        return v;
    }
    add(NameKind::EksCluster, &names.cluster);
    add(NameKind::IamRole, &n.cluster_role);
    add(NameKind::IamRole, &n.cluster_admin_role);
    add(NameKind::LogGroup, &n.cluster_log_group);
    match s.compute {
        EksComputeKind::Fargate => {
            add(NameKind::IamRole, &n.pod_execution_role);
            add(NameKind::EksChild, &n.fargate_profile);
        }
        EksComputeKind::ManagedNodes => {
            add(NameKind::IamRole, &n.node_role);
            add(NameKind::EksChild, &n.node_group);
            add(NameKind::Ec2Group, &n.node_launch_template);
        }
    }
    if s.kubectl_lambda() {
        add(NameKind::IamRole, &n.kubectl_role);
        add(NameKind::LambdaFunction, &n.kubectl_function);
    }
    v
}

// ---------------------------------------------------------------------------
// Template

/// A managed policy ARN in the stack's partition.
fn managed_policy(name: &str) -> Value {
    fns::sub(&format!("arn:${{AWS::Partition}}:iam::aws:policy/{name}"))
}

/// An EKS access policy ARN in the stack's partition.
fn access_policy(name: &str) -> Value {
    fns::sub(&format!(
        "arn:${{AWS::Partition}}:eks::aws:cluster-access-policy/{name}"
    ))
}

/// ARN of a role of this environment, by name suffix (a plain `Fn::Sub`,
/// so policies can name roles without depending on them).
fn env_role_arn(suffix: &str) -> Value {
    fns::sub(&format!(
        "arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/${{Prefix}}-${{EnvironmentName}}{suffix}"
    ))
}

/// ARN of the kubectl Lambda (plain `Fn::Sub`).
fn kubectl_function_arn() -> Value {
    fns::sub(
        "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${Prefix}-${EnvironmentName}-kubectl",
    )
}

/// ARNs of the cluster's node groups, Fargate profiles and add-ons.
fn cluster_children(cluster_name: &Value) -> Vec<Value> {
    ["nodegroup", "fargateprofile", "addon"]
        .into_iter()
        .map(|kind| {
            json!({ "Fn::Sub": [
                format!("arn:${{AWS::Partition}}:eks:${{AWS::Region}}:${{AWS::AccountId}}:{kind}/${{Name}}/*"),
                { "Name": cluster_name }
            ] })
        })
        .collect()
}

/// What the role statements need to know about the cluster.
struct ClusterRefs {
    /// The cluster name (a `Ref`).
    name: Value,
    /// The cluster ARN.
    arn: Value,
    /// The cluster-admin role ARN.
    admin_role: Value,
    /// The kubectl Lambda ARN, if there is one.
    kubectl: Option<Value>,
    /// The Fargate pod-execution role ARN, for Fargate clusters.
    pod_execution_role: Option<Value>,
}

/// Read the cluster and its children and reach the Kubernetes API (what
/// Kubernetes then allows is the access entry's business).
fn read_statements(c: &ClusterRefs) -> Vec<Value> {
    let mut resources = vec![c.arn.clone()];
    resources.extend(cluster_children(&c.name));
    vec![
        common::allow(
            &[
                "eks:DescribeCluster",
                "eks:AccessKubernetesApi",
                "eks:ListFargateProfiles",
                "eks:DescribeFargateProfile",
                "eks:ListNodegroups",
                "eks:DescribeNodegroup",
                "eks:ListAddons",
                "eks:DescribeAddon",
                "eks:ListUpdates",
                "eks:DescribeUpdate",
            ],
            resources,
        ),
        common::allow(&["eks:ListClusters"], vec![json!("*")]),
    ]
}

/// The ways to cluster admin: assume the cluster-admin role, invoke the
/// kubectl Lambda (which assumes it).
fn admin_statements(c: &ClusterRefs) -> Vec<Value> {
    let mut v = vec![common::allow(
        &["sts:AssumeRole"],
        vec![c.admin_role.clone()],
    )];
    if let Some(f) = &c.kubectl {
        v.push(common::allow(&["lambda:InvokeFunction"], vec![f.clone()]));
    }
    v
}

/// EKS statements of the operations role: read the cluster and its
/// children and reach the Kubernetes API (as `AmazonEKSViewPolicy` lets
/// it); the ways to cluster admin only with `operationsClusterAdmin`.
fn operations_statements(c: &ClusterRefs, admin: bool) -> Vec<Value> {
    let mut v = read_statements(c);
    if admin {
        v.extend(admin_statements(c));
    }
    v
}

/// EKS statements of the provisioning role: read, cluster admin (the
/// pipeline deploys applications), plus Fargate profiles for application
/// namespaces on Fargate clusters.
fn provisioning_statements(c: &ClusterRefs) -> Vec<Value> {
    let mut v = read_statements(c);
    v.extend(admin_statements(c));
    if let Some(role) = &c.pod_execution_role {
        let mut resources = vec![c.arn.clone()];
        resources.extend(cluster_children(&c.name));
        v.push(common::allow(
            &[
                "eks:CreateFargateProfile",
                "eks:DeleteFargateProfile",
                "eks:TagResource",
            ],
            resources,
        ));
        v.push(common::allow(&["iam:PassRole"], vec![role.clone()]));
    }
    v
}

fn eks_stack(spec: &ProviderSpec) -> StackDefinition {
    let s = Settings::of(spec);
    let what = match (s.existing, s.compute) {
        (Some(_), _) => "existing EKS cluster",
        (None, EksComputeKind::Fargate) => "EKS cluster on Fargate",
        (None, EksComputeKind::ManagedNodes) => "EKS cluster with managed nodes",
    };
    let (mut t, mut values) = common::base_template(
        &format!(
            "Harmonix EKS environment ({what}): VPC, KMS key, log group, audit table, operations and provisioning roles"
        ),
        spec,
    );
    let net = common::foundation(&mut t, spec, &mut values);
    match s.existing {
        Some(existing) => existing_cluster(&mut t, spec, existing, &mut values),
        None => new_cluster(&mut t, spec, &s, &net, &mut values),
    }
    let existing_vpc = matches!(spec.resolved_vpc(), ResolvedVpc::Existing { .. });
    if existing_vpc && (s.existing.is_some() || !s.access.public()) {
        // Only the cluster of a public endpoint uses an existing VPC's
        // public subnets: leave the parameter out rather than unused.
        t.parameters.remove(params::PUBLIC_SUBNET_IDS);
        values.remove(params::PUBLIC_SUBNET_IDS);
    }
    common::environment_stack(spec, t, values)
}

/// The resources of a new cluster.
fn new_cluster(
    t: &mut Template,
    spec: &ProviderSpec,
    s: &Settings<'_>,
    net: &common::Network,
    values: &mut BTreeMap<String, String>,
) {
    t.parameter(
        VERSION_PARAM,
        Parameter::string("Kubernetes version of the cluster")
            .allowed(allowed_versions(s))
            .default_value(DEFAULT_KUBERNETES_VERSION),
    );
    values.insert(VERSION_PARAM.into(), s.version.to_owned());
    if matches!(spec.resolved_vpc(), ResolvedVpc::Existing { .. }) {
        // The cluster, its compute and the kubectl Lambda need them (the
        // spec is validated to list them): typed, so CloudFormation checks
        // that they exist, and without the shared empty default.
        t.parameter(
            params::PRIVATE_SUBNET_IDS,
            Parameter::of_type(
                "List<AWS::EC2::Subnet::Id>",
                "Private subnet ids of the existing VPC (at least two AZs)",
            ),
        );
    }
    cluster(t, spec, s, net);
    match s.compute {
        EksComputeKind::Fargate => fargate(t, spec, net),
        EksComputeKind::ManagedNodes => managed_nodes(t, spec, s.nodes, net),
    }
    let refs = ClusterRefs {
        name: fns::ref_(CLUSTER),
        arn: fns::get_att(CLUSTER, "Arn"),
        admin_role: env_role_arn("-cluster-admin-role"),
        kubectl: s.kubectl_lambda().then(kubectl_function_arn),
        pod_execution_role: (s.compute == EksComputeKind::Fargate)
            .then(|| env_role_arn("-pod-execution-role")),
    };
    common::environment_roles(
        t,
        spec,
        operations_statements(&refs, s.operations_admin),
        provisioning_statements(&refs),
    );
    cluster_admin(t, spec, s);
    operations_access(t, spec, fns::ref_(CLUSTER));
    if s.kubectl_lambda() {
        kubectl_lambda(t, spec, net);
    }
    common::ssm_parameter(
        t,
        spec,
        "ClusterNameParameter",
        "cluster-name",
        fns::ref_(CLUSTER),
        "Environment EKS cluster name",
    );
    t.output(
        outputs::CLUSTER_NAME,
        Output::new(fns::ref_(CLUSTER)).description("EKS cluster name"),
    );
    t.output(
        outputs::CLUSTER_ARN,
        Output::new(fns::get_att(CLUSTER, "Arn")).description("EKS cluster ARN"),
    );
    t.output(
        OUTPUT_CLUSTER_ENDPOINT,
        Output::new(fns::get_att(CLUSTER, "Endpoint")).description("Kubernetes API endpoint"),
    );
    t.output(
        OUTPUT_OIDC_ISSUER,
        Output::new(fns::get_att(CLUSTER, "OpenIdConnectIssuerUrl"))
            .description("OIDC issuer URL (for IAM roles for service accounts)"),
    );
    t.output(
        OUTPUT_CLUSTER_ADMIN_ROLE_ARN,
        Output::new(fns::get_att(CLUSTER_ADMIN_ROLE, "Arn")).description("Cluster-admin role ARN"),
    );
}

/// The control-plane role, security group, log group and the cluster.
fn cluster(t: &mut Template, spec: &ProviderSpec, s: &Settings<'_>, net: &common::Network) {
    t.resource(
        CLUSTER_ROLE,
        Resource::new("AWS::IAM::Role")
            .property("RoleName", common::name_sub("-cluster-role"))
            .property("Description", common::name_sub(" EKS control plane role"))
            .property(
                "AssumeRolePolicyDocument",
                // EKS sends both keys when it assumes the cluster role
                // (https://docs.aws.amazon.com/eks/latest/userguide/cross-service-confused-deputy-prevention.html);
                // the cluster's name is fixed, so its ARN is known before
                // the cluster exists.
                common::service_trust_policy_from(
                    "eks.amazonaws.com",
                    Some(fns::sub(
                        "arn:${AWS::Partition}:eks:${AWS::Region}:${AWS::AccountId}:cluster/${Prefix}-${EnvironmentName}-cluster",
                    )),
                ),
            )
            .property(
                "ManagedPolicyArns",
                json!([managed_policy("AmazonEKSClusterPolicy")]),
            )
            .property(
                "Policies",
                // Envelope encryption of secrets with the environment key.
                json!([common::policy(
                    "secrets-encryption",
                    vec![common::allow(
                        &[
                            "kms:Encrypt",
                            "kms:Decrypt",
                            "kms:DescribeKey",
                            "kms:CreateGrant"
                        ],
                        vec![fns::get_att(ids::KMS_KEY, "Arn")],
                    )]
                )]),
            )
            .property("Tags", common::resource_tags(spec)),
    );
    t.resource(
        CLUSTER_SECURITY_GROUP,
        Resource::new("AWS::EC2::SecurityGroup")
            .property(
                "GroupDescription",
                "Additional EKS control plane security group of the environment",
            )
            .property("VpcId", net.vpc_id.clone())
            .property("Tags", common::resource_tags(spec)),
    );
    // Created before the cluster so EKS writes into it: encrypted, with the
    // environment's retention, kept when the stack goes.
    t.resource(
        CLUSTER_LOG_GROUP,
        Resource::new("AWS::Logs::LogGroup")
            .retain_policy(common::RETAIN)
            .property(
                "LogGroupName",
                fns::sub("/aws/eks/${Prefix}-${EnvironmentName}-cluster/cluster"),
            )
            .property("RetentionInDays", spec.log_retention_days())
            .property("KmsKeyId", fns::get_att(ids::KMS_KEY, "Arn"))
            .property("Tags", common::resource_tags(spec)),
    );
    let existing_vpc = matches!(spec.resolved_vpc(), ResolvedVpc::Existing { .. });
    let subnets = if !s.access.public() {
        net.private_subnets.clone()
    } else if existing_vpc {
        // The existing VPC's public subnets may be empty.
        t.condition(
            HAS_PUBLIC_SUBNETS,
            fns::not(fns::equals(
                json!({ "Fn::Join": [",", fns::ref_(params::PUBLIC_SUBNET_IDS)] }),
                json!(""),
            )),
        );
        fns::if_(
            HAS_PUBLIC_SUBNETS,
            json!({ "Fn::Split": [",", fns::join(",", vec![
                json!({ "Fn::Join": [",", net.private_subnets.clone()] }),
                json!({ "Fn::Join": [",", net.public_subnets.clone()] }),
            ])] }),
            net.private_subnets.clone(),
        )
    } else {
        let mut all = net.private_subnets.as_array().cloned().unwrap_or_default();
        all.extend(net.public_subnets.as_array().cloned().unwrap_or_default());
        Value::Array(all)
    };
    let mut vpc_config = json!({
        "SubnetIds": subnets,
        "SecurityGroupIds": [fns::ref_(CLUSTER_SECURITY_GROUP)],
        "EndpointPublicAccess": s.access.public(),
        "EndpointPrivateAccess": s.access.private(),
    });
    if s.access.public() {
        let mut cidrs: Vec<Value> = s.cidrs.iter().map(|c| json!(c)).collect();
        if nat_in_public_cidrs(spec, s) > 0 {
            // Nodes and Fargate pods in the new VPC's private subnets reach
            // a public-only endpoint through the NAT gateways: their
            // addresses must be allowed too.
            for eip in &net.nat_eips {
                cidrs.push(fns::sub(&format!("${{{eip}.PublicIp}}/32")));
            }
        }
        if let Some(m) = vpc_config.as_object_mut() {
            m.insert("PublicAccessCidrs".into(), Value::Array(cidrs));
        }
    }
    t.resource(
        CLUSTER,
        Resource::new("AWS::EKS::Cluster")
            .depends_on(CLUSTER_LOG_GROUP)
            .property("Name", common::name_sub("-cluster"))
            .property("Version", fns::ref_(VERSION_PARAM))
            .property("RoleArn", fns::get_att(CLUSTER_ROLE, "Arn"))
            .property("ResourcesVpcConfig", vpc_config)
            .property(
                "EncryptionConfig",
                json!([{
                    "Provider": { "KeyArn": fns::get_att(ids::KMS_KEY, "Arn") },
                    "Resources": ["secrets"]
                }]),
            )
            .property(
                "Logging",
                json!({ "ClusterLogging": { "EnabledTypes":
                    CLUSTER_LOG_TYPES.iter().map(|ty| json!({ "Type": ty })).collect::<Vec<_>>()
                } }),
            )
            .property(
                "AccessConfig",
                // Access entries only; nobody is admin implicitly, not even
                // the deploying role: the cluster-admin role is.
                json!({
                    "AuthenticationMode": "API",
                    "BootstrapClusterCreatorAdminPermissions": false
                }),
            )
            // EKS's default is `EXTENDED`: a cluster not upgraded in time
            // silently enters extended support and its 6x price. `STANDARD`
            // lets EKS upgrade it at the end of standard support instead
            // (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-eks-cluster-upgradepolicy.html).
            .property(
                "UpgradePolicy",
                json!({ "SupportType": if s.extended { "EXTENDED" } else { "STANDARD" } }),
            )
            .property("Tags", common::resource_tags(spec)),
    );
    oidc_provider(t, spec);
}

/// The IAM OIDC identity provider of the cluster's issuer, which IAM roles
/// for service accounts (IRSA) need: "To use AWS Identity and Access
/// Management (IAM) roles for service accounts, an IAM OIDC provider must
/// exist for your cluster's OIDC issuer URL", with the audience
/// `sts.amazonaws.com`
/// (<https://docs.aws.amazon.com/eks/latest/userguide/enable-iam-roles-for-service-accounts.html>).
/// No `ThumbprintList` (optional in
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-iam-oidcprovider.html>):
/// IAM verifies the issuer's JWKS endpoint against its library of trusted
/// root CAs and uses thumbprints only for certificates outside it
/// (<https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateOpenIDConnectProvider.html>);
/// the EKS issuer's certificate is publicly trusted.
fn oidc_provider(t: &mut Template, spec: &ProviderSpec) {
    t.resource(
        OIDC_PROVIDER,
        Resource::new("AWS::IAM::OIDCProvider")
            .property("Url", fns::get_att(CLUSTER, "OpenIdConnectIssuerUrl"))
            .property("ClientIdList", json!(["sts.amazonaws.com"]))
            .property("Tags", common::resource_tags(spec)),
    );
    t.output(
        OUTPUT_OIDC_PROVIDER_ARN,
        Output::new(fns::get_att(OIDC_PROVIDER, "Arn")).description(
            "IAM OIDC provider ARN (trust principal of IAM roles for service accounts)",
        ),
    );
}

/// The cluster-admin role and its access entry.
///
/// Trusted by the spec's platform and pipeline roles (no other external
/// principal), and by this environment's own roles that act on the
/// cluster: the operations and provisioning roles and, with a private
/// endpoint, the kubectl Lambda's role.
fn cluster_admin(t: &mut Template, spec: &ProviderSpec, s: &Settings<'_>) {
    // The platform (its own role and the operations role it assumes) is
    // trusted only with `operationsClusterAdmin`: by default it views the
    // cluster through the operations role's access entry.
    let mut external = vec![json!(spec.pipeline_role)];
    let mut internal = vec![fns::get_att(ids::PROVISIONING_ROLE, "Arn")];
    if s.operations_admin {
        external.insert(0, json!(spec.platform_role));
        internal.insert(0, fns::get_att(ids::OPERATIONS_ROLE, "Arn"));
    }
    if s.kubectl_lambda() {
        internal.push(fns::get_att(KUBECTL_ROLE, "Arn"));
    }
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PlatformAndPipeline",
                "Effect": "Allow",
                "Principal": { "AWS": external },
                "Action": "sts:AssumeRole"
            },
            {
                "Sid": "EnvironmentRoles",
                "Effect": "Allow",
                "Principal": { "AWS": internal },
                "Action": "sts:AssumeRole"
            }
        ]
    });
    t.resource(
        CLUSTER_ADMIN_ROLE,
        Resource::new("AWS::IAM::Role")
            .property("RoleName", common::name_sub("-cluster-admin-role"))
            .property(
                "Description",
                common::name_sub(" EKS cluster administrator (access entry)"),
            )
            .property("MaxSessionDuration", common::MAX_SESSION_SECONDS)
            .property("AssumeRolePolicyDocument", trust)
            .property(
                "Policies",
                json!([common::policy(
                    "cluster-access",
                    vec![common::allow(
                        &["eks:DescribeCluster", "eks:AccessKubernetesApi"],
                        vec![fns::get_att(CLUSTER, "Arn")],
                    )]
                )]),
            )
            .property("Tags", common::resource_tags(spec)),
    );
    t.resource(
        CLUSTER_ADMIN_ACCESS,
        Resource::new("AWS::EKS::AccessEntry")
            .property("ClusterName", fns::ref_(CLUSTER))
            .property("PrincipalArn", fns::get_att(CLUSTER_ADMIN_ROLE, "Arn"))
            .property("Type", "STANDARD")
            .property(
                "AccessPolicies",
                json!([{
                    "PolicyArn": access_policy("AmazonEKSClusterAdminPolicy"),
                    "AccessScope": { "Type": "cluster" }
                }]),
            )
            .property("Tags", common::resource_tags(spec)),
    );
}

/// A read-only (`AmazonEKSViewPolicy`, cluster-wide) access entry for the
/// operations role: the platform reads workloads directly and changes
/// them through the cluster-admin role.
fn operations_access(t: &mut Template, spec: &ProviderSpec, cluster_name: Value) {
    let r = Resource::new("AWS::EKS::AccessEntry")
        .property("ClusterName", cluster_name)
        .property("PrincipalArn", fns::get_att(ids::OPERATIONS_ROLE, "Arn"))
        .property("Type", "STANDARD")
        .property(
            "AccessPolicies",
            json!([{
                "PolicyArn": access_policy("AmazonEKSViewPolicy"),
                "AccessScope": { "Type": "cluster" }
            }]),
        )
        .property("Tags", common::resource_tags(spec));
    t.resource(OPERATIONS_ACCESS, r);
}

/// Fargate: the pod-execution role, a profile for `default` and
/// `kube-system` in the private subnets, and CoreDNS set to run on Fargate
/// (by default it waits for EC2 nodes a Fargate cluster never gets).
fn fargate(t: &mut Template, spec: &ProviderSpec, net: &common::Network) {
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "eks-fargate-pods.amazonaws.com" },
            "Action": "sts:AssumeRole",
            "Condition": { "ArnLike": { "aws:SourceArn": fns::sub(
                "arn:${AWS::Partition}:eks:${AWS::Region}:${AWS::AccountId}:fargateprofile/${Prefix}-${EnvironmentName}-cluster/*"
            ) } }
        }]
    });
    t.resource(
        POD_EXECUTION_ROLE,
        Resource::new("AWS::IAM::Role")
            .property("RoleName", common::name_sub("-pod-execution-role"))
            .property(
                "Description",
                common::name_sub(" EKS Fargate pod execution role"),
            )
            .property("AssumeRolePolicyDocument", trust)
            .property(
                "ManagedPolicyArns",
                json!([managed_policy("AmazonEKSFargatePodExecutionRolePolicy")]),
            )
            .property("Tags", common::resource_tags(spec)),
    );
    let mut profile = Resource::new("AWS::EKS::FargateProfile")
        .property("ClusterName", fns::ref_(CLUSTER))
        .property("FargateProfileName", common::name_sub("-fargate"))
        .property(
            "PodExecutionRoleArn",
            fns::get_att(POD_EXECUTION_ROLE, "Arn"),
        )
        .property("Subnets", net.private_subnets.clone())
        .property(
            "Selectors",
            json!([{ "Namespace": "default" }, { "Namespace": "kube-system" }]),
        )
        .property("Tags", common::resource_tags(spec));
    // Pods pull images through the NAT gateways.
    for route in &net.private_routes {
        profile = profile.depends_on(route);
    }
    t.resource(FARGATE_PROFILE, profile);
    t.resource(
        COREDNS_ADDON,
        Resource::new("AWS::EKS::Addon")
            .depends_on(FARGATE_PROFILE)
            .property("ClusterName", fns::ref_(CLUSTER))
            .property("AddonName", "coredns")
            .property("ResolveConflicts", "OVERWRITE")
            .property("ConfigurationValues", r#"{"computeType":"Fargate"}"#)
            .property("Tags", common::resource_tags(spec)),
    );
}

/// Managed nodes: the node role, a launch template (IMDSv2, encrypted gp3
/// root volume) and the node group in the private subnets.
fn managed_nodes(
    t: &mut Template,
    spec: &ProviderSpec,
    nodes: Option<&Ec2Capacity>,
    net: &common::Network,
) {
    let instance_types: Vec<&str> = match nodes {
        Some(c) if !c.instance_types.is_empty() => {
            c.instance_types.iter().map(String::as_str).collect()
        }
        _ => vec![DEFAULT_INSTANCE_TYPE],
    };
    let min = nodes.and_then(|c| c.min_size).unwrap_or(1);
    let desired = nodes.and_then(|c| c.desired_size).unwrap_or(2).max(min);
    let max = nodes
        .and_then(|c| c.max_size)
        .unwrap_or(4)
        .max(desired)
        .max(1);
    t.resource(
        NODE_ROLE,
        Resource::new("AWS::IAM::Role")
            .property("RoleName", common::name_sub("-node-role"))
            .property("Description", common::name_sub(" EKS node role"))
            .property(
                "AssumeRolePolicyDocument",
                common::service_trust_policy("ec2.amazonaws.com"),
            )
            .property(
                "ManagedPolicyArns",
                json!([
                    managed_policy("AmazonEKSWorkerNodePolicy"),
                    managed_policy("AmazonEKS_CNI_Policy"),
                    managed_policy("AmazonEC2ContainerRegistryReadOnly")
                ]),
            )
            .property("Tags", common::resource_tags(spec)),
    );
    // The default EBS key (not the environment key): the Auto Scaling
    // service-linked role behind managed node groups may use it without a
    // key-policy grant.
    t.resource(
        NODE_LAUNCH_TEMPLATE,
        Resource::new("AWS::EC2::LaunchTemplate")
            .property("LaunchTemplateName", common::name_sub("-eks-nodes"))
            .property(
                "LaunchTemplateData",
                json!({
                    "MetadataOptions": {
                        "HttpTokens": "required",
                        "HttpEndpoint": "enabled",
                        "HttpPutResponseHopLimit": 2
                    },
                    "BlockDeviceMappings": [{
                        "DeviceName": "/dev/xvda",
                        "Ebs": {
                            "Encrypted": true,
                            "VolumeSize": NODE_VOLUME_GIB,
                            "VolumeType": "gp3",
                            "DeleteOnTermination": true
                        }
                    }]
                }),
            ),
    );
    let tags: serde_json::Map<String, Value> = common::stack_tags(spec)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let mut group = Resource::new("AWS::EKS::Nodegroup")
        .property("ClusterName", fns::ref_(CLUSTER))
        .property("NodegroupName", common::name_sub("-nodes"))
        .property("NodeRole", fns::get_att(NODE_ROLE, "Arn"))
        .property("Subnets", net.private_subnets.clone())
        .property("InstanceTypes", json!(instance_types))
        .property("AmiType", ami_type(&instance_types))
        .property("CapacityType", "ON_DEMAND")
        .property(
            "ScalingConfig",
            json!({ "MinSize": min, "DesiredSize": desired, "MaxSize": max }),
        )
        .property("UpdateConfig", json!({ "MaxUnavailable": 1 }))
        .property(
            "LaunchTemplate",
            json!({
                "Id": fns::ref_(NODE_LAUNCH_TEMPLATE),
                "Version": fns::get_att(NODE_LAUNCH_TEMPLATE, "LatestVersionNumber")
            }),
        )
        .property("Tags", Value::Object(tags));
    // Nodes join the cluster and pull images through the NAT gateways.
    for route in &net.private_routes {
        group = group.depends_on(route);
    }
    t.resource(NODE_GROUP, group);
}

/// Whether an instance type is Arm (Graviton): `a1`, or a `g` right after
/// the generation digit (`m7g`, `c6gn`, `t4g`, `im4gn`).
fn is_arm(instance_type: &str) -> bool {
    let family = instance_type.split('.').next().unwrap_or_default();
    if family == "a1" {
        return true;
    }
    let rest = family.trim_start_matches(|c: char| c.is_ascii_lowercase());
    let after_digits = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    after_digits.len() < rest.len() && after_digits.starts_with('g')
}

/// The EKS-optimized Amazon Linux 2023 AMI type for the node group's
/// architecture (Amazon Linux 2 ends with Kubernetes 1.32).
fn ami_type(instance_types: &[&str]) -> &'static str {
    if !instance_types.is_empty() && instance_types.iter().all(|t| is_arm(t)) {
        "AL2023_ARM_64_STANDARD"
    } else {
        "AL2023_x86_64_STANDARD"
    }
}

/// The kubectl Lambda of a private cluster: its role, a security group
/// allowed to reach the API server on 443, and the function in the private
/// subnets.
fn kubectl_lambda(t: &mut Template, spec: &ProviderSpec, net: &common::Network) {
    t.resource(
        KUBECTL_ROLE,
        Resource::new("AWS::IAM::Role")
            .property("RoleName", common::name_sub("-kubectl-role"))
            .property("Description", common::name_sub(" kubectl function role"))
            .property(
                "AssumeRolePolicyDocument",
                common::service_trust_policy("lambda.amazonaws.com"),
            )
            .property(
                "ManagedPolicyArns",
                json!([managed_policy(
                    "service-role/AWSLambdaVPCAccessExecutionRole"
                )]),
            )
            .property(
                "Policies",
                json!([common::policy(
                    "kubectl",
                    vec![
                        common::allow(
                            &["sts:AssumeRole"],
                            vec![env_role_arn("-cluster-admin-role")]
                        ),
                        common::allow(&["eks:DescribeCluster"], vec![fns::get_att(CLUSTER, "Arn")]),
                        common::allow(&["kms:Decrypt"], vec![fns::get_att(ids::KMS_KEY, "Arn")]),
                    ]
                )]),
            )
            .property("Tags", common::resource_tags(spec)),
    );
    t.resource(
        KUBECTL_SECURITY_GROUP,
        Resource::new("AWS::EC2::SecurityGroup")
            .property(
                "GroupDescription",
                "kubectl function: HTTPS to the EKS API, STS and EKS endpoints",
            )
            .property("VpcId", net.vpc_id.clone())
            .property(
                "SecurityGroupEgress",
                json!([{
                    "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                    "CidrIp": "0.0.0.0/0",
                    "Description": "HTTPS to the cluster endpoint and AWS APIs"
                }]),
            )
            .property("Tags", common::resource_tags(spec)),
    );
    t.resource(
        KUBECTL_INGRESS,
        Resource::new("AWS::EC2::SecurityGroupIngress")
            .property("GroupId", fns::ref_(CLUSTER_SECURITY_GROUP))
            .property("SourceSecurityGroupId", fns::ref_(KUBECTL_SECURITY_GROUP))
            .property("IpProtocol", "tcp")
            .property("FromPort", 443)
            .property("ToPort", 443)
            .property("Description", "HTTPS from the kubectl function"),
    );
    t.resource(
        KUBECTL_FUNCTION,
        common::unless_reserved(Resource::new("AWS::Lambda::Function"), Settings::of(spec).kubectl_reserved)
            .property("FunctionName", common::name_sub("-kubectl"))
            .property(
                "Description",
                common::name_sub(" kubectl: Kubernetes API requests to the private cluster"),
            )
            .property("Runtime", KUBECTL_RUNTIME)
            .property("Handler", "index.handler")
            .property("Code", json!({ "ZipFile": KUBECTL_SOURCE }))
            .property("Role", fns::get_att(KUBECTL_ROLE, "Arn"))
            .property("MemorySize", 256)
            .property("Timeout", 30)
            // None by default: new accounts may have a concurrency limit
            // of 10 and Lambda keeps 100 unreserved, so any reservation
            // fails there
            // (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html,
            // https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
            .property_opt(
                "ReservedConcurrentExecutions",
                Settings::of(spec).kubectl_reserved,
            )
            .property(
                "Environment",
                json!({ "Variables": {
                    "CLUSTER_NAME": fns::ref_(CLUSTER),
                    "ADMIN_ROLE_ARN": fns::get_att(CLUSTER_ADMIN_ROLE, "Arn"),
                    // Regional STS: reachable from the VPC, and the token's
                    // presigned URL is signed for this region.
                    "AWS_STS_REGIONAL_ENDPOINTS": "regional"
                } }),
            )
            .property("KmsKeyArn", fns::get_att(ids::KMS_KEY, "Arn"))
            .property(
                "VpcConfig",
                json!({
                    "SubnetIds": net.private_subnets.clone(),
                    "SecurityGroupIds": [fns::ref_(KUBECTL_SECURITY_GROUP)]
                }),
            )
            .property(
                "LoggingConfig",
                json!({ "LogGroup": fns::ref_(ids::LOG_GROUP), "LogFormat": "JSON" }),
            )
            .property("Tags", common::resource_tags(spec))
            .checkov_skip(
                "CKV_AWS_116",
                "Invoked synchronously (RequestResponse) by the pipeline and the operations role, which see each error: a dead-letter queue only receives failed asynchronous invocations",
            ),
    );
    t.output(
        OUTPUT_KUBECTL_LAMBDA_ARN,
        Output::new(fns::get_att(KUBECTL_FUNCTION, "Arn")).description("kubectl Lambda ARN"),
    );
    t.output(
        OUTPUT_KUBECTL_LAMBDA_ROLE_ARN,
        Output::new(fns::get_att(KUBECTL_ROLE, "Arn")).description("kubectl Lambda role ARN"),
    );
}

/// The resources for an existing cluster: roles scoped to it and a
/// read-only access entry for the operations role.
fn existing_cluster(
    t: &mut Template,
    spec: &ProviderSpec,
    existing: &ExistingCluster,
    values: &mut BTreeMap<String, String>,
) {
    t.parameter(
        EXISTING_CLUSTER_PARAM,
        Parameter::string("Name of the existing EKS cluster")
            .pattern("^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$"),
    );
    values.insert(EXISTING_CLUSTER_PARAM.into(), existing.name.clone());
    let name = fns::ref_(EXISTING_CLUSTER_PARAM);
    let refs = ClusterRefs {
        name: name.clone(),
        arn: fns::sub(&format!(
            "arn:${{AWS::Partition}}:eks:${{AWS::Region}}:${{AWS::AccountId}}:cluster/${{{EXISTING_CLUSTER_PARAM}}}"
        )),
        admin_role: json!(existing.kubectl_role),
        kubectl: None,
        pod_execution_role: None,
    };
    common::environment_roles(
        t,
        spec,
        operations_statements(&refs, Settings::of(spec).operations_admin),
        provisioning_statements(&refs),
    );
    if uses_access_entries(existing) {
        operations_access(t, spec, name.clone());
    }
    common::ssm_parameter(
        t,
        spec,
        "ClusterNameParameter",
        "cluster-name",
        name.clone(),
        "Environment EKS cluster name (existing cluster)",
    );
    t.output(
        outputs::CLUSTER_NAME,
        Output::new(name).description("EKS cluster name (existing cluster)"),
    );
    t.output(
        OUTPUT_CLUSTER_ADMIN_ROLE_ARN,
        Output::new(json!(existing.kubectl_role))
            .description("Cluster-admin role of the existing cluster (the spec's kubectlRole)"),
    );
}

// ---------------------------------------------------------------------------
// Catalog

fn eks_entity(spec: &ProviderSpec, all: &StackOutputs) -> Entity {
    let names = Names::of(spec);
    let n = EksNames::of(&names);
    let out = all.get(&names.stack);
    let s = Settings::of(spec);
    let account = spec.account.as_str();
    let region = spec.region.as_str();
    let (cluster, admin_role) = match s.existing {
        Some(e) => (e.name.clone(), e.kubectl_role.clone()),
        None => (
            names.cluster.clone(),
            common::role_arn(region, account, &n.cluster_admin_role),
        ),
    };
    let (lambda_arn, lambda_role) = if s.kubectl_lambda() {
        (
            common::output_or(
                out,
                OUTPUT_KUBECTL_LAMBDA_ARN,
                format!(
                    "arn:{}:lambda:{region}:{account}:function:{}",
                    common::partition(region),
                    n.kubectl_function
                ),
            ),
            common::output_or(
                out,
                OUTPUT_KUBECTL_LAMBDA_ROLE_ARN,
                common::role_arn(region, account, &n.kubectl_role),
            ),
        )
    } else {
        (String::new(), String::new())
    };
    let mut draft = provider_entity(spec, &names, out).with_cluster(common::output_or(
        out,
        outputs::CLUSTER_NAME,
        cluster,
    ));
    let live = all.get(
        &Lookup::EksCluster {
            name: cluster_name(spec),
        }
        .key(),
    );
    let endpoint = common::output_or(
        out,
        OUTPUT_CLUSTER_ENDPOINT,
        common::output_or(live, "endpoint", ""),
    );
    let issuer = common::output_or(
        out,
        OUTPUT_OIDC_ISSUER,
        common::output_or(live, "oidcIssuer", ""),
    );
    if !endpoint.is_empty() {
        draft.0.extra.insert("clusterEndpoint".to_owned(), endpoint);
    }
    if s.existing.is_none() {
        // The stack's IAM OIDC provider; without its output, its ARN follows
        // from the issuer: `arn:…:iam::ACCOUNT:oidc-provider/` + the issuer
        // URL without `https://`
        // (the trust principal in
        // https://docs.aws.amazon.com/eks/latest/userguide/associate-service-account-role.html).
        let derived = issuer
            .strip_prefix("https://")
            .map(|host_path| {
                format!(
                    "arn:{}:iam::{account}:oidc-provider/{host_path}",
                    common::partition(region)
                )
            })
            .unwrap_or_default();
        let arn = common::output_or(out, OUTPUT_OIDC_PROVIDER_ARN, derived);
        if !arn.is_empty() {
            draft
                .0
                .extra
                .insert("clusterOidcProviderArn".to_owned(), arn);
        }
    }
    if !issuer.is_empty() {
        draft.0.extra.insert("clusterOidcIssuer".to_owned(), issuer);
    }
    draft.0.eks = Some(EksEntityFields {
        // An existing cluster's endpoint settings are not Harmonix's to know.
        api_access: if s.existing.is_some() {
            String::new()
        } else {
            s.access.as_str().to_owned()
        },
        api_access_cidrs: s.cidrs.to_vec(),
        node_type: if s.existing.is_some() {
            "existing".to_owned()
        } else {
            s.compute.as_str().to_owned()
        },
        cluster_admin_role: common::output_or(out, OUTPUT_CLUSTER_ADMIN_ROLE_ARN, admin_role),
        kubectl_lambda_arn: lambda_arn,
        kubectl_lambda_assume_role_arn: lambda_role,
    });
    draft.finish()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::provider::test_support::{example, paths, prop, resource};
    use crate::spec::{self, SpecFile};

    fn render(file: &SpecFile) -> StackDefinition {
        crate::provider::test_support::render_nth(&EksProvider, file, 0)
    }

    fn entity(file: &SpecFile, outputs: &StackOutputs) -> Entity {
        crate::provider::test_support::entity_of(&EksProvider, file, outputs)
    }

    fn errors_of(file: &SpecFile) -> ValidationErrors {
        crate::provider::test_support::errors_of(&EksProvider, file)
    }

    const EXAMPLES: [&str; 3] = ["eks-public.yaml", "eks-private.yaml", "eks-existing.yaml"];
    const PLATFORM: &str = "arn:aws:iam::111111111111:role/opa-platform-role";
    const PIPELINE: &str = "arn:aws:iam::111111111111:role/opa-pipeline-role";

    const HEAD: &str = r#"
providers:
  - kind: eks
    name: web-dev
    owner: group:web
    account: "123456789012"
    region: us-west-2
    environmentRole: arn:aws:iam::123456789012:role/opa-envprovisioning-role
    platformRole: arn:aws:iam::111111111111:role/opa-platform-role
    pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
"#;

    /// A one-provider spec: [`HEAD`] plus `extra` (indented provider fields).
    fn spec_with(extra: &str) -> SpecFile {
        spec::parse_str(&format!("{HEAD}{extra}"), "test")
            .unwrap_or_else(|e| panic!("test spec does not parse: {e}\n{extra}"))
    }

    const EXISTING_VPC: &str = "    vpc: { mode: existing, id: vpc-0a1b2c3d4e5f60718, privateSubnetIds: [subnet-0a1b2c3d, subnet-0e1f2a3b] }\n";

    fn metadata<'a>(e: &'a Entity, key: &str) -> &'a str {
        e.metadata
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("metadata.{key} missing or not a string"))
    }

    #[test]
    fn examples_render_deterministically_without_dangling_references() {
        for name in EXAMPLES {
            let file = example(name);
            assert!(errors_of(&file).is_empty(), "{name}: {}", errors_of(&file));
            let a = render(&file);
            let b = render(&file);
            assert_eq!(a.name, Names::of(&file.providers[0]).stack, "{name}");
            assert_eq!(
                a.template.dangling_references(),
                Vec::<String>::new(),
                "{name}"
            );
            assert_eq!(a.template.to_json(), b.template.to_json(), "{name}");
            assert_eq!(a.parameters_json(), b.parameters_json(), "{name}");
            assert_eq!(a.content_hash(), b.content_hash(), "{name}");
            // Every parameter without a default gets a value, and every
            // value names a parameter.
            for (p, def) in &a.template.parameters {
                assert!(
                    def.default.is_some() || a.parameters.contains_key(p),
                    "{name}: parameter {p} has no value"
                );
            }
            for p in a.parameters.keys() {
                assert!(
                    a.template.parameters.contains_key(p),
                    "{name}: value for undeclared parameter {p}"
                );
            }
            assert_eq!(a.capabilities, ["CAPABILITY_NAMED_IAM"], "{name}");
        }
    }

    #[test]
    fn variants_render_without_dangling_references() {
        let variants = [
            String::new(),
            "    eks: { compute: { type: managed-nodes } }\n".to_owned(),
            "    eks: { endpointAccess: public-and-private, publicAccessCidrs: [198.51.100.0/24] }\n"
                .to_owned(),
            EXISTING_VPC.to_owned(),
            format!(
                "{EXISTING_VPC}    eks: {{ endpointAccess: public, publicAccessCidrs: [198.51.100.0/24], compute: {{ type: managed-nodes }} }}\n"
            ),
        ];
        for extra in &variants {
            let file = spec_with(extra);
            assert!(errors_of(&file).is_empty(), "{extra}: {}", errors_of(&file));
            let s = render(&file);
            assert_eq!(
                s.template.dangling_references(),
                Vec::<String>::new(),
                "{extra}"
            );
            assert_eq!(s.template.to_json(), render(&file).template.to_json());
        }
    }

    #[test]
    fn new_cluster_properties() {
        let s = render(&example("eks-private.yaml"));
        assert_eq!(resource(&s, CLUSTER).kind, "AWS::EKS::Cluster");
        assert_eq!(
            prop(&s, CLUSTER, "Name"),
            &fns::sub("${Prefix}-${EnvironmentName}-cluster")
        );
        assert_eq!(prop(&s, CLUSTER, "Version"), &fns::ref_(VERSION_PARAM));
        let version = &s.template.parameters[VERSION_PARAM];
        let allowed: Vec<&str> = version
            .allowed_values
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(allowed, SUPPORTED_KUBERNETES_VERSIONS);
        assert_eq!(s.parameters[VERSION_PARAM], "1.35");
        assert_eq!(
            prop(&s, CLUSTER, "EncryptionConfig"),
            &json!([{
                "Provider": { "KeyArn": fns::get_att(ids::KMS_KEY, "Arn") },
                "Resources": ["secrets"]
            }])
        );
        let logged: Vec<&str> = prop(&s, CLUSTER, "Logging")["ClusterLogging"]["EnabledTypes"]
            .as_array()
            .expect("log types")
            .iter()
            .filter_map(|t| t["Type"].as_str())
            .collect();
        assert_eq!(logged, CLUSTER_LOG_TYPES);
        assert_eq!(
            prop(&s, CLUSTER, "AccessConfig")["AuthenticationMode"],
            "API"
        );
        let vpc = prop(&s, CLUSTER, "ResourcesVpcConfig");
        assert_eq!(vpc["EndpointPublicAccess"], false);
        assert_eq!(vpc["EndpointPrivateAccess"], true);
        assert!(vpc.get("PublicAccessCidrs").is_none());
        assert_eq!(
            vpc["SubnetIds"],
            json!([
                fns::ref_("PrivateSubnet1"),
                fns::ref_("PrivateSubnet2"),
                fns::ref_("PrivateSubnet3")
            ])
        );
        assert_eq!(
            vpc["SecurityGroupIds"],
            json!([fns::ref_(CLUSTER_SECURITY_GROUP)])
        );
        // Control-plane role: EKS service, the cluster policy in the
        // stack's partition.
        assert_eq!(
            prop(&s, CLUSTER_ROLE, "AssumeRolePolicyDocument")["Statement"][0]["Principal"],
            json!({ "Service": "eks.amazonaws.com" })
        );
        assert_eq!(
            prop(&s, CLUSTER_ROLE, "ManagedPolicyArns"),
            &json!([fns::sub(
                "arn:${AWS::Partition}:iam::aws:policy/AmazonEKSClusterPolicy"
            )])
        );
        assert_eq!(
            prop(&s, CLUSTER_ROLE, "RoleName"),
            &fns::sub("${Prefix}-${EnvironmentName}-cluster-role")
        );
        // Cluster-admin access entry.
        assert_eq!(
            prop(&s, CLUSTER_ADMIN_ACCESS, "ClusterName"),
            &fns::ref_(CLUSTER)
        );
        assert_eq!(
            prop(&s, CLUSTER_ADMIN_ACCESS, "PrincipalArn"),
            &fns::get_att(CLUSTER_ADMIN_ROLE, "Arn")
        );
        assert_eq!(
            prop(&s, CLUSTER_ADMIN_ACCESS, "AccessPolicies"),
            &json!([{
                "PolicyArn": fns::sub("arn:${AWS::Partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"),
                "AccessScope": { "Type": "cluster" }
            }])
        );
        // SSM parameter and outputs.
        assert_eq!(
            prop(&s, "ClusterNameParameter", "Name"),
            &fns::sub("/${Prefix}/${EnvironmentName}/cluster-name")
        );
        for key in [
            outputs::CLUSTER_NAME,
            outputs::CLUSTER_ARN,
            OUTPUT_CLUSTER_ENDPOINT,
            OUTPUT_OIDC_ISSUER,
            OUTPUT_CLUSTER_ADMIN_ROLE_ARN,
            outputs::VPC_ID,
            outputs::OPERATIONS_ROLE_ARN,
            outputs::PROVISIONING_ROLE_ARN,
            outputs::AUDIT_TABLE,
        ] {
            assert!(s.template.outputs.contains_key(key), "output {key} missing");
        }
        assert_eq!(
            s.template.outputs[OUTPUT_OIDC_ISSUER].value,
            fns::get_att(CLUSTER, "OpenIdConnectIssuerUrl")
        );
        assert!(s.template.outputs.values().all(|o| o.export.is_none()));
    }

    #[test]
    fn private_cluster_has_the_kubectl_lambda() {
        let s = render(&example("eks-private.yaml"));
        let f = resource(&s, KUBECTL_FUNCTION);
        assert_eq!(f.kind, "AWS::Lambda::Function");
        assert_eq!(
            prop(&s, KUBECTL_FUNCTION, "FunctionName"),
            &fns::sub("${Prefix}-${EnvironmentName}-kubectl")
        );
        assert_eq!(prop(&s, KUBECTL_FUNCTION, "Runtime"), KUBECTL_RUNTIME);
        assert_eq!(
            prop(&s, KUBECTL_FUNCTION, "Code"),
            &json!({ "ZipFile": KUBECTL_SOURCE })
        );
        // Inline code is limited to 4096 characters.
        assert!(KUBECTL_SOURCE.len() < 4096, "{}", KUBECTL_SOURCE.len());
        for needle in [
            "assume_role",
            "x-k8s-aws-id",
            "GetCallerIdentity",
            "k8s-aws-v1.",
            "certificateAuthority",
            "create_default_context(cadata=ca)",
        ] {
            assert!(KUBECTL_SOURCE.contains(needle), "source lacks {needle}");
        }
        // No reserved concurrency unless the spec asks: new accounts
        // cannot reserve any.
        assert!(
            !f.properties.contains_key("ReservedConcurrentExecutions"),
            "{:?}",
            f.properties.get("ReservedConcurrentExecutions")
        );
        assert_eq!(
            prop(&s, KUBECTL_FUNCTION, "KmsKeyArn"),
            &fns::get_att(ids::KMS_KEY, "Arn")
        );
        let env = &prop(&s, KUBECTL_FUNCTION, "Environment")["Variables"];
        assert_eq!(env["CLUSTER_NAME"], fns::ref_(CLUSTER));
        assert_eq!(
            env["ADMIN_ROLE_ARN"],
            fns::get_att(CLUSTER_ADMIN_ROLE, "Arn")
        );
        let vpc = prop(&s, KUBECTL_FUNCTION, "VpcConfig");
        assert_eq!(
            vpc["SubnetIds"],
            json!([
                fns::ref_("PrivateSubnet1"),
                fns::ref_("PrivateSubnet2"),
                fns::ref_("PrivateSubnet3")
            ])
        );
        assert_eq!(
            vpc["SecurityGroupIds"],
            json!([fns::ref_(KUBECTL_SECURITY_GROUP)])
        );
        // The Lambda's security group may reach the cluster's on 443.
        let ingress = resource(&s, KUBECTL_INGRESS);
        assert_eq!(ingress.kind, "AWS::EC2::SecurityGroupIngress");
        assert_eq!(
            ingress.properties["GroupId"],
            fns::ref_(CLUSTER_SECURITY_GROUP)
        );
        assert_eq!(
            ingress.properties["SourceSecurityGroupId"],
            fns::ref_(KUBECTL_SECURITY_GROUP)
        );
        assert_eq!(ingress.properties["FromPort"], 443);
        assert_eq!(ingress.properties["ToPort"], 443);
        // Its role: Lambda service, VPC access, assume the admin role,
        // describe the cluster.
        assert_eq!(
            prop(&s, KUBECTL_ROLE, "AssumeRolePolicyDocument")["Statement"][0]["Principal"],
            json!({ "Service": "lambda.amazonaws.com" })
        );
        assert_eq!(
            prop(&s, KUBECTL_ROLE, "ManagedPolicyArns"),
            &json!([fns::sub(
                "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
            )])
        );
        let statements = &prop(&s, KUBECTL_ROLE, "Policies")[0]["PolicyDocument"]["Statement"];
        assert_eq!(statements[0]["Action"], json!(["sts:AssumeRole"]));
        assert_eq!(
            statements[0]["Resource"],
            json!([env_role_arn("-cluster-admin-role")])
        );
        assert_eq!(statements[1]["Action"], json!(["eks:DescribeCluster"]));
        assert!(s.template.outputs.contains_key(OUTPUT_KUBECTL_LAMBDA_ARN));
        assert!(
            s.template
                .outputs
                .contains_key(OUTPUT_KUBECTL_LAMBDA_ROLE_ARN)
        );
        // The provisioning role may invoke it; the operations role only
        // with `operationsClusterAdmin` (the function acts as cluster admin).
        let prov =
            serde_json::to_string(prop(&s, ids::PROVISIONING_ROLE, "Policies")).expect("json");
        assert!(prov.contains("lambda:InvokeFunction") && prov.contains("-kubectl"));
        let ops = serde_json::to_string(prop(&s, ids::OPERATIONS_ROLE, "Policies")).expect("json");
        assert!(!ops.contains("lambda:InvokeFunction"), "{ops}");
    }

    #[test]
    fn the_cluster_role_trusts_eks_only_for_this_cluster() {
        let s = render(&example("eks-private.yaml"));
        let st = &prop(&s, CLUSTER_ROLE, "AssumeRolePolicyDocument")["Statement"][0];
        assert_eq!(st["Principal"], json!({ "Service": "eks.amazonaws.com" }));
        assert_eq!(
            st["Condition"]["StringEquals"]["aws:SourceAccount"],
            fns::ref_("AWS::AccountId")
        );
        // The ARN of the cluster this stack names.
        assert_eq!(prop(&s, CLUSTER, "Name"), &common::name_sub("-cluster"));
        assert_eq!(
            st["Condition"]["ArnLike"]["aws:SourceArn"],
            fns::sub(
                "arn:${AWS::Partition}:eks:${AWS::Region}:${AWS::AccountId}:cluster/${Prefix}-${EnvironmentName}-cluster"
            )
        );
    }

    #[test]
    fn kubectl_reserved_concurrency_is_opt_in_and_checked() {
        let s = render(&spec_with(
            "    eks: { kubectlReservedConcurrency: 3 }
",
        ));
        assert_eq!(
            prop(&s, KUBECTL_FUNCTION, "ReservedConcurrentExecutions"),
            &json!(3)
        );
        for (extra, why) in [
            ("    eks: { kubectlReservedConcurrency: 0 }
", "at least 1"),
            (
                "    eks: { endpointAccess: public, publicAccessCidrs: [203.0.113.0/24], kubectlReservedConcurrency: 2 }
",
                "only used with the kubectl function",
            ),
        ] {
            let text = errors_of(&spec_with(extra)).to_string();
            assert!(
                text.contains("providers[0].eks.kubectlReservedConcurrency") && text.contains(why),
                "{extra}: {text}"
            );
        }
    }

    #[test]
    fn public_cluster_has_no_kubectl_lambda() {
        for extra in [
            "    eks: { endpointAccess: public, publicAccessCidrs: [203.0.113.0/24] }\n",
            "    eks: { endpointAccess: public-and-private, publicAccessCidrs: [203.0.113.0/24] }\n",
        ] {
            let file = spec_with(extra);
            let s = render(&file);
            for id in [
                KUBECTL_FUNCTION,
                KUBECTL_ROLE,
                KUBECTL_SECURITY_GROUP,
                KUBECTL_INGRESS,
            ] {
                assert!(!s.template.resources.contains_key(id), "{extra}: {id}");
            }
            assert!(!s.template.outputs.contains_key(OUTPUT_KUBECTL_LAMBDA_ARN));
            assert!(
                !s.template
                    .outputs
                    .contains_key(OUTPUT_KUBECTL_LAMBDA_ROLE_ARN)
            );
            let json = s.template.to_json();
            assert!(!json.contains("lambda:InvokeFunction"), "{extra}");
            let vpc = prop(&s, CLUSTER, "ResourcesVpcConfig");
            assert_eq!(vpc["EndpointPublicAccess"], true);
            // The spec's CIDRs, plus the new VPC's NAT address for nodes
            // when they have no private endpoint.
            let want = if extra.contains("public-and-private") {
                json!(["203.0.113.0/24"])
            } else {
                json!(["203.0.113.0/24", fns::sub("${NatGatewayEip.PublicIp}/32")])
            };
            assert_eq!(vpc["PublicAccessCidrs"], want, "{extra}");
            assert_eq!(vpc["SubnetIds"].as_array().map(Vec::len), Some(6));
        }
        let s = render(&example("eks-public.yaml"));
        assert!(!s.template.resources.contains_key(KUBECTL_FUNCTION));
    }

    #[test]
    fn public_endpoint_in_existing_vpc_adds_public_subnets_when_given() {
        let file = spec_with(&format!(
            "{EXISTING_VPC}    eks: {{ endpointAccess: public, publicAccessCidrs: [198.51.100.0/24] }}\n"
        ));
        let s = render(&file);
        assert!(s.template.conditions.contains_key(HAS_PUBLIC_SUBNETS));
        assert!(
            s.template
                .parameters
                .contains_key(params::PUBLIC_SUBNET_IDS)
        );
        let vpc = prop(&s, CLUSTER, "ResourcesVpcConfig");
        assert_eq!(vpc["SubnetIds"]["Fn::If"][0], HAS_PUBLIC_SUBNETS);
        assert_eq!(
            vpc["SubnetIds"]["Fn::If"][2],
            fns::ref_(params::PRIVATE_SUBNET_IDS)
        );
        // No NAT address known in an existing VPC.
        assert_eq!(vpc["PublicAccessCidrs"], json!(["198.51.100.0/24"]));
        assert_eq!(
            s.template.parameters[params::PRIVATE_SUBNET_IDS].kind,
            "List<AWS::EC2::Subnet::Id>"
        );
        assert_eq!(
            s.parameters[params::PRIVATE_SUBNET_IDS],
            "subnet-0a1b2c3d,subnet-0e1f2a3b"
        );

        // A private cluster in an existing VPC: Lambda in the given
        // subnets, no unused public-subnet parameter.
        let s = render(&spec_with(EXISTING_VPC));
        assert_eq!(
            prop(&s, KUBECTL_FUNCTION, "VpcConfig")["SubnetIds"],
            fns::ref_(params::PRIVATE_SUBNET_IDS)
        );
        assert!(
            !s.template
                .parameters
                .contains_key(params::PUBLIC_SUBNET_IDS)
        );
        assert!(!s.parameters.contains_key(params::PUBLIC_SUBNET_IDS));
    }

    /// The `AWS` principals of a trust policy, as written.
    fn principals(doc: &Value) -> Vec<Value> {
        let mut v = Vec::new();
        for st in doc["Statement"].as_array().expect("statements") {
            match &st["Principal"]["AWS"] {
                Value::Array(a) => v.extend(a.iter().cloned()),
                Value::Null => {}
                one => v.push(one.clone()),
            }
        }
        v
    }

    #[test]
    fn trust_policies_name_exactly_the_specs_roles() {
        let admin_on = "    eks: { operationsClusterAdmin: true }\n";
        for (name, file) in [
            ("eks-private.yaml", example("eks-private.yaml")),
            ("eks-public.yaml", example("eks-public.yaml")),
            ("operationsClusterAdmin", spec_with(admin_on)),
        ] {
            let s = render(&file);
            let opted_in = name == "operationsClusterAdmin";
            assert_eq!(
                principals(prop(&s, ids::OPERATIONS_ROLE, "AssumeRolePolicyDocument")),
                [json!(PLATFORM)],
                "{name}"
            );
            assert_eq!(
                principals(prop(&s, ids::PROVISIONING_ROLE, "AssumeRolePolicyDocument")),
                [json!(PIPELINE)],
                "{name}"
            );
            // The platform's roles reach cluster admin only when the spec
            // asks for it.
            let admin = principals(prop(&s, CLUSTER_ADMIN_ROLE, "AssumeRolePolicyDocument"));
            let external: BTreeSet<&str> = admin.iter().filter_map(Value::as_str).collect();
            let want_external = if opted_in {
                BTreeSet::from([PLATFORM, PIPELINE])
            } else {
                BTreeSet::from([PIPELINE])
            };
            assert_eq!(external, want_external, "{name}");
            // Everything else is a role of this stack, never an account or `*`.
            let mut internal: Vec<&str> = admin
                .iter()
                .filter(|p| !p.is_string())
                .map(|p| {
                    p["Fn::GetAtt"][0]
                        .as_str()
                        .unwrap_or_else(|| panic!("{name}: principal {p} is not a GetAtt"))
                })
                .collect();
            internal.sort_unstable();
            let mut want = vec![ids::PROVISIONING_ROLE];
            if opted_in {
                want.push(ids::OPERATIONS_ROLE);
            }
            if name != "eks-public.yaml" {
                want.push(KUBECTL_ROLE);
            }
            want.sort_unstable();
            assert_eq!(internal, want, "{name}");
            for id in &internal {
                assert_eq!(resource(&s, id).kind, "AWS::IAM::Role");
            }
            // …and the operations role's own policy has no way there
            // either: no AssumeRole, no kubectl function.
            let ops =
                serde_json::to_string(prop(&s, ids::OPERATIONS_ROLE, "Policies")).expect("json");
            assert_eq!(ops.contains("sts:AssumeRole"), opted_in, "{name}: {ops}");
            assert_eq!(
                ops.contains("lambda:InvokeFunction"),
                opted_in && name != "eks-public.yaml",
                "{name}: {ops}"
            );
            assert_eq!(
                prop(&s, CLUSTER_ADMIN_ROLE, "RoleName"),
                &fns::sub("${Prefix}-${EnvironmentName}-cluster-admin-role")
            );
            // Whatever the option, the operations role's access entry is
            // the read-only view policy.
            let entry = prop(&s, OPERATIONS_ACCESS, "AccessPolicies").to_string();
            assert!(entry.contains("AmazonEKSViewPolicy"), "{name}: {entry}");
            assert!(!entry.contains("ClusterAdmin"), "{name}: {entry}");
        }
        // Spec roles other than the examples' flow through.
        let file = spec::parse_str(
            &(HEAD
                .replace(
                    "111111111111:role/opa-platform-role",
                    "222222222222:role/team/backstage",
                )
                .replace(
                    "111111111111:role/opa-pipeline-role",
                    "333333333333:role/gitlab-runner",
                )
                + admin_on),
            "t",
        )
        .expect("parses");
        let s = render(&file);
        let admin = principals(prop(&s, CLUSTER_ADMIN_ROLE, "AssumeRolePolicyDocument"));
        let external: BTreeSet<&str> = admin.iter().filter_map(Value::as_str).collect();
        assert_eq!(
            external,
            BTreeSet::from([
                "arn:aws:iam::222222222222:role/team/backstage",
                "arn:aws:iam::333333333333:role/gitlab-runner"
            ])
        );
    }

    #[test]
    fn fargate_compute() {
        // No `eks:` section: a private Fargate cluster of the default version.
        let file = spec_with("");
        let s = render(&file);
        assert_eq!(s.parameters[VERSION_PARAM], DEFAULT_KUBERNETES_VERSION);
        assert!(s.template.resources.contains_key(KUBECTL_FUNCTION));
        assert_eq!(
            resource(&s, FARGATE_PROFILE).kind,
            "AWS::EKS::FargateProfile"
        );
        assert_eq!(
            prop(&s, FARGATE_PROFILE, "FargateProfileName"),
            &fns::sub("${Prefix}-${EnvironmentName}-fargate")
        );
        assert_eq!(
            prop(&s, FARGATE_PROFILE, "Selectors"),
            &json!([{ "Namespace": "default" }, { "Namespace": "kube-system" }])
        );
        assert_eq!(
            prop(&s, FARGATE_PROFILE, "Subnets"),
            &json!([
                fns::ref_("PrivateSubnet1"),
                fns::ref_("PrivateSubnet2"),
                fns::ref_("PrivateSubnet3")
            ])
        );
        assert_eq!(
            prop(&s, FARGATE_PROFILE, "PodExecutionRoleArn"),
            &fns::get_att(POD_EXECUTION_ROLE, "Arn")
        );
        assert_eq!(
            prop(&s, POD_EXECUTION_ROLE, "AssumeRolePolicyDocument")["Statement"][0]["Principal"],
            json!({ "Service": "eks-fargate-pods.amazonaws.com" })
        );
        assert_eq!(
            prop(&s, POD_EXECUTION_ROLE, "ManagedPolicyArns"),
            &json!([fns::sub(
                "arn:${AWS::Partition}:iam::aws:policy/AmazonEKSFargatePodExecutionRolePolicy"
            )])
        );
        assert_eq!(
            prop(&s, COREDNS_ADDON, "ConfigurationValues"),
            r#"{"computeType":"Fargate"}"#
        );
        for id in [NODE_GROUP, NODE_ROLE, NODE_LAUNCH_TEMPLATE] {
            assert!(!s.template.resources.contains_key(id), "{id}");
        }
    }

    #[test]
    fn managed_nodes_compute() {
        let s = render(&example("eks-private.yaml"));
        assert_eq!(resource(&s, NODE_GROUP).kind, "AWS::EKS::Nodegroup");
        assert_eq!(
            prop(&s, NODE_GROUP, "NodegroupName"),
            &fns::sub("${Prefix}-${EnvironmentName}-nodes")
        );
        assert_eq!(
            prop(&s, NODE_GROUP, "ScalingConfig"),
            &json!({ "MinSize": 2, "DesiredSize": 3, "MaxSize": 6 })
        );
        assert_eq!(
            prop(&s, NODE_GROUP, "InstanceTypes"),
            &json!(["m6i.large", "m6a.large"])
        );
        let policies = prop(&s, NODE_ROLE, "ManagedPolicyArns").to_string();
        for p in [
            "AmazonEKSWorkerNodePolicy",
            "AmazonEKS_CNI_Policy",
            "AmazonEC2ContainerRegistryReadOnly",
        ] {
            assert!(policies.contains(p), "{p}");
        }
        let ebs =
            &prop(&s, NODE_LAUNCH_TEMPLATE, "LaunchTemplateData")["BlockDeviceMappings"][0]["Ebs"];
        assert_eq!(ebs["Encrypted"], true);
        assert!(!s.template.resources.contains_key(FARGATE_PROFILE));

        // Defaults: 1/2/4 of t3.medium.
        let s = render(&spec_with(
            "    eks: { compute: { type: managed-nodes } }\n",
        ));
        assert_eq!(
            prop(&s, NODE_GROUP, "ScalingConfig"),
            &json!({ "MinSize": 1, "DesiredSize": 2, "MaxSize": 4 })
        );
        assert_eq!(
            prop(&s, NODE_GROUP, "InstanceTypes"),
            &json!([DEFAULT_INSTANCE_TYPE])
        );
        assert_eq!(prop(&s, NODE_GROUP, "AmiType"), "AL2023_x86_64_STANDARD");
        let s = render(&spec_with(
            "    eks: { compute: { type: managed-nodes, nodes: { instanceTypes: [m7g.large, c6gn.xlarge] } } }\n",
        ));
        assert_eq!(prop(&s, NODE_GROUP, "AmiType"), "AL2023_ARM_64_STANDARD");
    }

    #[test]
    fn arm_instance_types() {
        for t in [
            "m7g.large",
            "t4g.micro",
            "c6gn.xlarge",
            "im4gn.large",
            "a1.medium",
            "r8gd.2xlarge",
        ] {
            assert!(is_arm(t), "{t}");
        }
        for t in [
            "t3.medium",
            "m6i.large",
            "m6a.large",
            "g5.xlarge",
            "c6in.large",
            "p4d.24xlarge",
            "inf2.xlarge",
            "",
            ".",
        ] {
            assert!(!is_arm(t), "{t}");
        }
    }

    #[test]
    fn existing_cluster_creates_no_cluster() {
        let file = example("eks-existing.yaml");
        let s = render(&file);
        for id in [
            CLUSTER,
            CLUSTER_ROLE,
            CLUSTER_ADMIN_ROLE,
            FARGATE_PROFILE,
            NODE_GROUP,
            KUBECTL_FUNCTION,
        ] {
            assert!(!s.template.resources.contains_key(id), "{id}");
        }
        for id in [
            ids::KMS_KEY,
            ids::LOG_GROUP,
            ids::AUDIT_TABLE,
            ids::OPERATIONS_ROLE,
            ids::PROVISIONING_ROLE,
        ] {
            assert!(s.template.resources.contains_key(id), "{id}");
        }
        assert_eq!(s.parameters[EXISTING_CLUSTER_PARAM], "shared-dev-cluster");
        assert_eq!(s.parameters[params::VPC_ID], "vpc-0a1b2c3d4e5f60718");
        assert_eq!(
            resource(&s, OPERATIONS_ACCESS).kind,
            "AWS::EKS::AccessEntry"
        );
        assert_eq!(
            prop(&s, OPERATIONS_ACCESS, "ClusterName"),
            &fns::ref_(EXISTING_CLUSTER_PARAM)
        );
        assert_eq!(
            prop(&s, OPERATIONS_ACCESS, "PrincipalArn"),
            &fns::get_att(ids::OPERATIONS_ROLE, "Arn")
        );
        assert_eq!(
            s.template.outputs[OUTPUT_CLUSTER_ADMIN_ROLE_ARN].value,
            json!("arn:aws:iam::123456789012:role/shared-dev-cluster-admin")
        );
        assert_eq!(
            s.template.outputs[outputs::CLUSTER_NAME].value,
            fns::ref_(EXISTING_CLUSTER_PARAM)
        );
        assert!(!s.template.outputs.contains_key(OUTPUT_CLUSTER_ENDPOINT));
        assert!(!s.template.outputs.contains_key(OUTPUT_KUBECTL_LAMBDA_ARN));
        assert!(
            !s.template
                .parameters
                .contains_key(params::PUBLIC_SUBNET_IDS)
        );
        // The provisioning role may assume the existing cluster's kubectl
        // role; the operations role reads the cluster and, without
        // `operationsClusterAdmin`, may not.
        let prov = prop(&s, ids::PROVISIONING_ROLE, "Policies").to_string();
        assert!(prov.contains("shared-dev-cluster-admin"), "{prov}");
        let ops = prop(&s, ids::OPERATIONS_ROLE, "Policies").to_string();
        assert!(ops.contains("eks:AccessKubernetesApi"), "{ops}");
        assert!(!ops.contains("shared-dev-cluster-admin"), "{ops}");
        assert!(ops.contains(":cluster/${ExistingClusterName}"));
        let mut file = example("eks-existing.yaml");
        if let Some(e) = file.providers[0].eks.as_mut() {
            e.operations_cluster_admin = Some(true);
        }
        let s = render(&file);
        let ops = prop(&s, ids::OPERATIONS_ROLE, "Policies").to_string();
        assert!(ops.contains("shared-dev-cluster-admin"), "{ops}");
    }

    #[test]
    fn catalog_entity_is_complete_without_outputs() {
        let e = entity(&example("eks-private.yaml"), &StackOutputs::new());
        assert_eq!(metadata(&e, "envType"), "aws-eks");
        assert_eq!(metadata(&e, "clusterName"), "opa-core-prod-cluster");
        assert_eq!(metadata(&e, "apiAccess"), "private");
        assert_eq!(metadata(&e, "nodeType"), "managed-nodes");
        assert_eq!(e.metadata["apiAccessCidrs"], json!([]));
        assert_eq!(
            metadata(&e, "clusterAdminRole"),
            "arn:aws:iam::210987654321:role/opa-core-prod-cluster-admin-role"
        );
        assert_eq!(
            metadata(&e, "kubectlLambdaArn"),
            "arn:aws:lambda:eu-central-1:210987654321:function:opa-core-prod-kubectl"
        );
        assert_eq!(
            metadata(&e, "kubectlLambdaAssumeRoleArn"),
            "arn:aws:iam::210987654321:role/opa-core-prod-kubectl-role"
        );
        assert_eq!(
            metadata(&e, "operationRole"),
            "arn:aws:iam::210987654321:role/opa-core-prod-operations-role"
        );
        assert_eq!(metadata(&e, "stackName"), "opa-core-prod-environment");

        let e = entity(&example("eks-public.yaml"), &StackOutputs::new());
        assert_eq!(metadata(&e, "apiAccess"), "public");
        assert_eq!(metadata(&e, "nodeType"), "fargate");
        assert_eq!(e.metadata["apiAccessCidrs"], json!(["203.0.113.0/24"]));
        // No kubectl Lambda for a public cluster.
        assert_eq!(metadata(&e, "kubectlLambdaArn"), "");
        assert_eq!(metadata(&e, "kubectlLambdaAssumeRoleArn"), "");
        assert_eq!(
            metadata(&e, "clusterAdminRole"),
            "arn:aws:iam::123456789012:role/opa-web-dev-cluster-admin-role"
        );

        let e = entity(&example("eks-existing.yaml"), &StackOutputs::new());
        assert_eq!(metadata(&e, "clusterName"), "shared-dev-cluster");
        assert_eq!(metadata(&e, "nodeType"), "existing");
        assert_eq!(
            metadata(&e, "clusterAdminRole"),
            "arn:aws:iam::123456789012:role/shared-dev-cluster-admin"
        );
        assert_eq!(metadata(&e, "vpc"), "vpc-0a1b2c3d4e5f60718");
        assert_eq!(metadata(&e, "kubectlLambdaArn"), "");

        // Partition of the region.
        let file = spec::parse_str(
            &HEAD
                .replace("us-west-2", "cn-north-1")
                .replace("arn:aws:", "arn:aws-cn:"),
            "t",
        )
        .expect("parses");
        let e = entity(&file, &StackOutputs::new());
        assert_eq!(
            metadata(&e, "kubectlLambdaArn"),
            "arn:aws-cn:lambda:cn-north-1:123456789012:function:opa-web-dev-kubectl"
        );
    }

    #[test]
    fn catalog_entity_prefers_outputs() {
        let file = example("eks-private.yaml");
        let stack = render(&file);
        let values: BTreeMap<String, String> = [
            (outputs::CLUSTER_NAME, "deployed-cluster"),
            (outputs::VPC_ID, "vpc-0f1e2d3c4b5a69788"),
            (
                OUTPUT_CLUSTER_ADMIN_ROLE_ARN,
                "arn:aws:iam::210987654321:role/deployed-admin",
            ),
            (
                OUTPUT_KUBECTL_LAMBDA_ARN,
                "arn:aws:lambda:eu-central-1:210987654321:function:deployed-kubectl",
            ),
            (
                OUTPUT_KUBECTL_LAMBDA_ROLE_ARN,
                "arn:aws:iam::210987654321:role/deployed-kubectl-role",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for key in values.keys() {
            assert!(
                stack.template.outputs.contains_key(key),
                "template lacks output {key}"
            );
        }
        let all = StackOutputs::from([(stack.name.clone(), values)]);
        let e = entity(&file, &all);
        assert_eq!(metadata(&e, "clusterName"), "deployed-cluster");
        assert_eq!(metadata(&e, "vpc"), "vpc-0f1e2d3c4b5a69788");
        assert_eq!(
            metadata(&e, "clusterAdminRole"),
            "arn:aws:iam::210987654321:role/deployed-admin"
        );
        assert_eq!(
            metadata(&e, "kubectlLambdaArn"),
            "arn:aws:lambda:eu-central-1:210987654321:function:deployed-kubectl"
        );
        assert_eq!(
            metadata(&e, "kubectlLambdaAssumeRoleArn"),
            "arn:aws:iam::210987654321:role/deployed-kubectl-role"
        );
    }

    #[test]
    fn derived_names_cover_every_named_resource() {
        let file = example("eks-private.yaml");
        let names = EksProvider.derived_names(&file.providers[0], "providers[0]");
        let got: BTreeSet<(NameKind, &str)> =
            names.iter().map(|n| (n.kind, n.value.as_str())).collect();
        for want in [
            (NameKind::Stack, "opa-core-prod-environment"),
            (NameKind::EksCluster, "opa-core-prod-cluster"),
            (NameKind::IamRole, "opa-core-prod-cluster-role"),
            (NameKind::IamRole, "opa-core-prod-cluster-admin-role"),
            (NameKind::IamRole, "opa-core-prod-node-role"),
            (NameKind::IamRole, "opa-core-prod-kubectl-role"),
            (NameKind::IamRole, "opa-core-prod-flow-logs-role"),
            (NameKind::EksChild, "opa-core-prod-nodes"),
            (NameKind::LambdaFunction, "opa-core-prod-kubectl"),
            (NameKind::LogGroup, "/aws/eks/opa-core-prod-cluster/cluster"),
        ] {
            assert!(got.contains(&want), "missing {want:?} in {got:?}");
        }
        assert!(names.iter().all(|n| n.path == "providers[0].name"));
        assert!(names.iter().all(|n| n.kind.check(&n.value).is_none()));

        let file = example("eks-public.yaml");
        let names = EksProvider.derived_names(&file.providers[0], "providers[3]");
        let got: BTreeSet<&str> = names.iter().map(|n| n.value.as_str()).collect();
        assert!(got.contains("opa-web-dev-pod-execution-role"));
        assert!(got.contains("opa-web-dev-fargate"));
        assert!(!got.contains("opa-web-dev-kubectl"));
        assert!(names.iter().all(|n| n.path == "providers[3].name"));

        // Existing cluster in an existing VPC: only the shared names.
        let file = example("eks-existing.yaml");
        let names = EksProvider.derived_names(&file.providers[0], "providers[0]");
        assert_eq!(names, Names::of(&file.providers[0]).derived("providers[0]"));

        // A long name is caught by the name rules.
        let file = spec_with("    prefix: averyveryverylongprefix\n")
            .providers
            .remove(0);
        let mut file = file;
        file.name = "an-environment-name-that-is-long".into();
        let names = EksProvider.derived_names(&file, "providers[0]");
        assert!(
            names
                .iter()
                .any(|n| n.kind == NameKind::IamRole && n.kind.check(&n.value).is_some())
        );
    }

    /// The paths of the errors `validate` reports for `extra`.
    fn bad(extra: &str) -> Vec<String> {
        let errors = errors_of(&spec_with(extra));
        for e in &errors {
            assert!(!e.message.is_empty());
        }
        paths(&errors).into_iter().map(str::to_owned).collect()
    }

    #[test]
    fn valid_specs_have_no_errors() {
        for extra in [
            "",
            "    eks: {}\n",
            "    eks: { kubernetesVersion: \"1.35\", endpointAccess: private }\n",
            "    eks: { kubernetesVersion: \"1.34\", extendedSupport: true }\n",
            "    eks: { kubernetesVersion: \"1.36\", extendedSupport: true }\n",
            "    vpc: { natGateways: 3 }\n    eks: { endpointAccess: public, publicAccessCidrs: [203.0.113.0/24] }\n",
            "    eks: { endpointAccess: public-and-private, publicAccessCidrs: [203.0.113.0/24, 198.51.100.7/32] }\n",
            "    eks: { compute: { type: managed-nodes, nodes: { minSize: 0, desiredSize: 0, maxSize: 450 } } }\n",
            EXISTING_VPC,
        ] {
            assert_eq!(bad(extra), Vec::<String>::new(), "{extra}");
        }
    }

    #[test]
    fn validation_error_paths() {
        let cases: Vec<(String, &[&str], &str)> = vec![
            (
                "    eks: { kubernetesVersion: \"1.20\" }\n".into(),
                &["providers[0].eks.kubernetesVersion"],
                "1.35, 1.36",
            ),
            (
                // Past standard support: only with the extended-support opt-in.
                "    eks: { kubernetesVersion: \"1.33\" }\n".into(),
                &["providers[0].eks.kubernetesVersion"],
                "`eks.extendedSupport: true`",
            ),
            (
                "    eks: { kubernetesVersion: \"1.34\", extendedSupport: false }\n".into(),
                &["providers[0].eks.kubernetesVersion"],
                "six times",
            ),
            (
                // Past extended support too.
                "    eks: { kubernetesVersion: \"1.31\", extendedSupport: true }\n".into(),
                &["providers[0].eks.kubernetesVersion"],
                "1.32, 1.33, 1.34",
            ),
            (
                format!("{EXISTING_VPC}    eks: {{ extendedSupport: true, existingCluster: {{ name: shared, kubectlRole: arn:aws:iam::123456789012:role/admin }} }}\n"),
                &["providers[0].eks.extendedSupport"],
                "not used with existingCluster",
            ),
            (
                "    eks: { kubernetesVersion: latest }\n".into(),
                &["providers[0].eks.kubernetesVersion"],
                "supported:",
            ),
            (
                "    eks: { endpointAccess: public }\n".into(),
                &["providers[0].eks.publicAccessCidrs"],
                "required",
            ),
            (
                "    eks: { endpointAccess: public-and-private }\n".into(),
                &["providers[0].eks.publicAccessCidrs"],
                "required",
            ),
            (
                "    eks: { endpointAccess: private, publicAccessCidrs: [203.0.113.0/24] }\n".into(),
                &["providers[0].eks.publicAccessCidrs"],
                "only used with a public endpoint",
            ),
            (
                // The default endpoint is private.
                "    eks: { publicAccessCidrs: [203.0.113.0/24] }\n".into(),
                &["providers[0].eks.publicAccessCidrs"],
                "`private`",
            ),
            (
                "    eks: { endpointAccess: public, publicAccessCidrs: [0.0.0.0/0] }\n".into(),
                &["providers[0].eks.publicAccessCidrs[0]"],
                "whole internet",
            ),
            (
                "    eks: { endpointAccess: public, publicAccessCidrs: [203.0.113.0/24, 203.0.113/24] }\n".into(),
                &["providers[0].eks.publicAccessCidrs[1]"],
                "not an IPv4 CIDR",
            ),
            (
                "    eks: { endpointAccess: public, publicAccessCidrs: [not-a-cidr] }\n".into(),
                &["providers[0].eks.publicAccessCidrs[0]"],
                "not an IPv4 CIDR",
            ),
            (
                "    eks: { endpointAccess: public, publicAccessCidrs: [203.0.113.7/24] }\n".into(),
                &["providers[0].eks.publicAccessCidrs[0]"],
                "203.0.113.0/24",
            ),
            (
                "    eks: { endpointAccess: public, publicAccessCidrs: [10.0.0.0/8] }\n".into(),
                &["providers[0].eks.publicAccessCidrs[0]"],
                "private",
            ),
            (
                "    eks: { endpointAccess: public, publicAccessCidrs: [203.0.113.0/24, 203.0.113.0/24] }\n".into(),
                &["providers[0].eks.publicAccessCidrs[1]"],
                "duplicate",
            ),
            (
                "    eks: { compute: { type: fargate, nodes: { minSize: 1 } } }\n".into(),
                &["providers[0].eks.compute.nodes"],
                "managed-nodes",
            ),
            (
                "    eks: { compute: { type: managed-nodes, nodes: { minSize: 5, desiredSize: 2 } } }\n".into(),
                &["providers[0].eks.compute.nodes.minSize"],
                "desiredSize",
            ),
            (
                "    eks: { compute: { type: managed-nodes, nodes: { instanceTypes: [large] } } }\n".into(),
                &["providers[0].eks.compute.nodes.instanceTypes[0]"],
                "instance type",
            ),
            (
                "    eks: { compute: { type: managed-nodes, nodes: { instanceTypes: [m7g.large, m7i.large] } } }\n".into(),
                &["providers[0].eks.compute.nodes.instanceTypes"],
                "one architecture",
            ),
            (
                "    eks: { compute: { type: managed-nodes, nodes: { maxSize: 500 } } }\n".into(),
                &["providers[0].eks.compute.nodes.maxSize"],
                "450",
            ),
            (
                "    vpc: { mode: existing, id: vpc-0a1b2c3d4e5f60718 }\n".into(),
                &["providers[0].vpc.privateSubnetIds"],
                "private subnet ids",
            ),
            (
                "    vpc: { mode: existing, id: vpc-0a1b2c3d4e5f60718, privateSubnetIds: [subnet-0a1b2c3d] }\n".into(),
                &["providers[0].vpc.privateSubnetIds"],
                "two",
            ),
            (
                format!("{EXISTING_VPC}    eks: {{ existingCluster: {{ name: -bad, kubectlRole: arn:aws:iam::123456789012:role/admin }} }}\n"),
                &["providers[0].eks.existingCluster.name"],
                "EKS cluster name",
            ),
            (
                format!("{EXISTING_VPC}    eks: {{ existingCluster: {{ name: '{}', kubectlRole: arn:aws:iam::123456789012:role/admin }} }}\n", "c".repeat(101)),
                &["providers[0].eks.existingCluster.name"],
                "1–100",
            ),
            (
                format!("{EXISTING_VPC}    eks: {{ existingCluster: {{ name: shared, kubectlRole: admin }} }}\n"),
                &["providers[0].eks.existingCluster.kubectlRole"],
                "not an IAM role ARN",
            ),
            (
                format!("{EXISTING_VPC}    eks: {{ existingCluster: {{ name: shared, kubectlRole: arn:aws:iam::123456789012:user/admin }} }}\n"),
                &["providers[0].eks.existingCluster.kubectlRole"],
                "not a role",
            ),
            (
                format!("{EXISTING_VPC}    eks: {{ existingCluster: {{ name: shared, kubectlRole: arn:aws:iam::999999999999:role/admin }} }}\n"),
                &["providers[0].eks.existingCluster.kubectlRole"],
                "account 999999999999",
            ),
            (
                format!("{EXISTING_VPC}    eks: {{ existingCluster: {{ name: shared, kubectlRole: arn:aws-cn:iam::123456789012:role/admin }} }}\n"),
                &["providers[0].eks.existingCluster.kubectlRole"],
                "partition",
            ),
            (
                format!("{EXISTING_VPC}    eks: {{ kubernetesVersion: \"1.33\", endpointAccess: private, publicAccessCidrs: [203.0.113.0/24], compute: {{ type: fargate }}, existingCluster: {{ name: shared, kubectlRole: arn:aws:iam::123456789012:role/admin }} }}\n"),
                &[
                    "providers[0].eks.kubernetesVersion",
                    "providers[0].eks.endpointAccess",
                    "providers[0].eks.publicAccessCidrs",
                    "providers[0].eks.compute",
                ],
                "not used with existingCluster",
            ),
            (
                "    eks: { existingCluster: { name: shared, kubectlRole: arn:aws:iam::123456789012:role/admin } }\n".into(),
                &["providers[0].vpc"],
                "mode: existing",
            ),
            (
                "    vpc: { cidr: 10.1.0.0/24 }\n    eks: { existingCluster: { name: shared, kubectlRole: arn:aws:iam::123456789012:role/admin } }\n".into(),
                &["providers[0].vpc"],
                "mode: existing",
            ),
        ];
        for (extra, want, message) in &cases {
            let errors = errors_of(&spec_with(extra));
            assert_eq!(paths(&errors), *want, "{extra}");
            assert!(
                errors.iter().all(|e| e.message.contains(message)),
                "{extra}: {errors} lacks {message:?}"
            );
        }
        // An existing cluster in an existing VPC needs no subnets, and the
        // legacy VPC fields count.
        let errors = errors_of(&example("eks-existing.yaml"));
        assert!(errors.is_empty(), "{errors}");
    }

    #[test]
    fn too_many_public_cidrs() {
        let cidrs: Vec<String> = (0..40).map(|i| format!("198.51.{i}.0/24")).collect();
        let extra = format!(
            "    eks: {{ endpointAccess: public, publicAccessCidrs: [{}] }}\n",
            cidrs.join(", ")
        );
        // A new VPC's NAT address takes one of the 40.
        assert_eq!(bad(&extra), ["providers[0].eks.publicAccessCidrs"]);
        assert_eq!(bad(&format!("{EXISTING_VPC}{extra}")), Vec::<String>::new());
        assert_eq!(
            bad(&extra.replace("public,", "public-and-private,")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn upgrade_policy_is_standard_unless_extended_support_is_chosen() {
        let s = render(&spec_with(""));
        assert_eq!(
            prop(&s, CLUSTER, "UpgradePolicy"),
            &json!({ "SupportType": "STANDARD" })
        );
        assert_eq!(s.parameters[VERSION_PARAM], DEFAULT_KUBERNETES_VERSION);
        assert!(SUPPORTED_KUBERNETES_VERSIONS.contains(&DEFAULT_KUBERNETES_VERSION));
        let allowed = |s: &StackDefinition| -> Vec<String> {
            s.template.parameters[VERSION_PARAM]
                .allowed_values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(allowed(&s), SUPPORTED_KUBERNETES_VERSIONS);

        let file = spec_with("    eks: { kubernetesVersion: \"1.33\", extendedSupport: true }\n");
        assert!(errors_of(&file).is_empty(), "{}", errors_of(&file));
        let s = render(&file);
        assert_eq!(
            prop(&s, CLUSTER, "UpgradePolicy"),
            &json!({ "SupportType": "EXTENDED" })
        );
        assert_eq!(s.parameters[VERSION_PARAM], "1.33");
        let v = allowed(&s);
        assert!(
            v.contains(&"1.33".to_owned()) && v.contains(&"1.36".to_owned()),
            "{v:?}"
        );
        // The lists do not overlap: a version is in one support phase.
        for v in EXTENDED_SUPPORT_KUBERNETES_VERSIONS {
            assert!(!SUPPORTED_KUBERNETES_VERSIONS.contains(v), "{v}");
        }
    }

    /// The spec schema (and the Backstage form made from it) spells the
    /// version lists out: it must follow the constants.
    #[test]
    fn the_schema_describes_the_current_versions() {
        let schema = crate::schema::spec_schema();
        let doc = schema["$defs"]["EksSpec"]["properties"]["kubernetesVersion"]["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for v in SUPPORTED_KUBERNETES_VERSIONS
            .iter()
            .chain(EXTENDED_SUPPORT_KUBERNETES_VERSIONS)
        {
            assert!(doc.contains(&format!("`{v}`")), "{v} missing from {doc:?}");
        }
        assert!(
            doc.contains(&format!("default `{DEFAULT_KUBERNETES_VERSION}`")),
            "{doc}"
        );
    }

    #[test]
    fn new_clusters_get_an_iam_oidc_provider_for_irsa() {
        for name in ["eks-public.yaml", "eks-private.yaml"] {
            let s = render(&example(name));
            assert_eq!(resource(&s, OIDC_PROVIDER).kind, "AWS::IAM::OIDCProvider");
            assert_eq!(
                prop(&s, OIDC_PROVIDER, "Url"),
                &fns::get_att(CLUSTER, "OpenIdConnectIssuerUrl")
            );
            assert_eq!(
                prop(&s, OIDC_PROVIDER, "ClientIdList"),
                &json!(["sts.amazonaws.com"])
            );
            assert!(
                !resource(&s, OIDC_PROVIDER)
                    .properties
                    .contains_key("ThumbprintList")
            );
            assert_eq!(
                s.template.outputs[OUTPUT_OIDC_PROVIDER_ARN].value,
                fns::get_att(OIDC_PROVIDER, "Arn")
            );
        }
        let s = render(&example("eks-existing.yaml"));
        assert!(!s.template.resources.contains_key(OIDC_PROVIDER));
        assert!(!s.template.outputs.contains_key(OUTPUT_OIDC_PROVIDER_ARN));
    }

    #[test]
    fn the_catalog_entity_names_the_oidc_provider() {
        let file = example("eks-public.yaml");
        let stack = Names::of(&file.providers[0]).stack;
        let issuer = "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
        let with = |pairs: &[(&str, &str)]| {
            let m: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            entity(&file, &StackOutputs::from([(stack.clone(), m)]))
        };
        // From the output, as CloudFormation reports it.
        let arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
        let e = with(&[
            (OUTPUT_OIDC_PROVIDER_ARN, arn),
            (OUTPUT_OIDC_ISSUER, issuer),
        ]);
        assert_eq!(metadata(&e, "clusterOidcProviderArn"), arn);
        // Derived from the issuer when the output is missing.
        let e = with(&[(OUTPUT_OIDC_ISSUER, issuer)]);
        assert_eq!(metadata(&e, "clusterOidcProviderArn"), arn);
        // Nothing to name without either.
        let e = with(&[]);
        assert!(!e.metadata.contains_key("clusterOidcProviderArn"), "{e:#?}");
    }

    #[test]
    fn existing_clusters_ask_for_the_access_entry_preflight() {
        let file = example("eks-existing.yaml");
        let valid = crate::spec::ValidSpec::new_unchecked(file.clone());
        let p = valid.providers().next().expect("provider");
        let role = "arn:aws:iam::123456789012:role/opa-shared-dev-operations-role";
        assert_eq!(
            EksProvider.preflight(p),
            [Preflight::EksCluster {
                name: "shared-dev-cluster".to_owned(),
                region: "us-east-1".to_owned(),
                access_entries: vec![AccessGrant {
                    role_arn: role.to_owned(),
                    username: "opa-shared-dev-operations-role".to_owned(),
                    group: AWS_AUTH_VIEW_GROUP.to_owned(),
                    cluster_role: "view".to_owned(),
                    access_policy: "AmazonEKSViewPolicy".to_owned(),
                }],
            }]
        );
        let s = render(&file);
        assert_eq!(
            resource(&s, OPERATIONS_ACCESS).kind,
            "AWS::EKS::AccessEntry"
        );

        // `accessEntries: false` (aws-auth instead): no access entry, and
        // the check only asks for the cluster to be there and ACTIVE.
        let mut file = file;
        if let Some(e) = file.providers[0]
            .eks
            .as_mut()
            .and_then(|e| e.existing_cluster.as_mut())
        {
            e.access_entries = Some(false);
        }
        assert!(errors_of(&file).is_empty(), "{}", errors_of(&file));
        let s = render(&file);
        assert!(!s.template.resources.contains_key(OPERATIONS_ACCESS));
        assert!(
            !s.template
                .resources
                .values()
                .any(|r| r.kind == "AWS::EKS::AccessEntry")
        );
        let valid = crate::spec::ValidSpec::new_unchecked(file);
        let p = valid.providers().next().expect("provider");
        assert!(matches!(
            EksProvider.preflight(p).as_slice(),
            [Preflight::EksCluster { access_entries, .. }] if access_entries.is_empty()
        ));
        // A cluster the stack creates: only the version step is checked.
        let valid = crate::spec::ValidSpec::new_unchecked(example("eks-public.yaml"));
        assert_eq!(
            EksProvider.preflight(valid.providers().next().expect("p")),
            [Preflight::EksVersionStep {
                name: "opa-web-dev-cluster".to_owned(),
                region: "us-west-2".to_owned(),
                version: "1.36".to_owned(),
            }]
        );
    }

    #[test]
    fn new_vpc_subnets_are_tagged_for_load_balancers() {
        let s = render(&example("eks-public.yaml"));
        let tag = |id: &str, key: &str| -> Option<Value> {
            prop(&s, id, "Tags")
                .as_array()?
                .iter()
                .find(|t| t["Key"] == key)
                .map(|t| t["Value"].clone())
        };
        for n in 1..=3 {
            let (public, private) = (format!("PublicSubnet{n}"), format!("PrivateSubnet{n}"));
            assert_eq!(tag(&public, "kubernetes.io/role/elb"), Some(json!("1")));
            assert_eq!(
                tag(&private, "kubernetes.io/role/internal-elb"),
                Some(json!("1"))
            );
            assert_eq!(tag(&public, "kubernetes.io/role/internal-elb"), None);
            assert_eq!(tag(&private, "kubernetes.io/role/elb"), None);
        }
    }

    #[test]
    fn production_clusters_wait_for_every_zones_nat_route() {
        // eks-private is `lifecycle: production`: three NAT gateways.
        let s = render(&example("eks-private.yaml"));
        let routes: BTreeSet<String> = (1..=3)
            .map(|k| common_nth("PrivateDefaultRoute", k))
            .collect();
        assert_eq!(resource(&s, NODE_GROUP).depends_on, routes);
        let file = spec_with("    lifecycle: production\n");
        let s = render(&file);
        assert_eq!(resource(&s, FARGATE_PROFILE).depends_on, routes);
        // In an existing VPC there is nothing of ours to wait for.
        let s = render(&spec_with(EXISTING_VPC));
        assert!(resource(&s, FARGATE_PROFILE).depends_on.is_empty());
    }

    #[test]
    fn a_public_only_endpoint_allows_every_nat_address() {
        let file = spec_with(
            "    vpc: { natGateways: 3 }\n    eks: { endpointAccess: public, publicAccessCidrs: [203.0.113.0/24] }\n",
        );
        let s = render(&file);
        assert_eq!(
            prop(&s, CLUSTER, "ResourcesVpcConfig")["PublicAccessCidrs"],
            json!([
                "203.0.113.0/24",
                fns::sub("${NatGatewayEip.PublicIp}/32"),
                fns::sub("${NatGatewayEip2.PublicIp}/32"),
                fns::sub("${NatGatewayEip3.PublicIp}/32")
            ])
        );
        assert_eq!(s.template.dangling_references(), Vec::<String>::new());
        // Three of the 40 are taken.
        let cidrs: Vec<String> = (0..38).map(|i| format!("198.51.{i}.0/24")).collect();
        let extra = format!(
            "    vpc: {{ natGateways: 3 }}\n    eks: {{ endpointAccess: public, publicAccessCidrs: [{}] }}\n",
            cidrs.join(", ")
        );
        assert_eq!(bad(&extra), ["providers[0].eks.publicAccessCidrs"]);
        let fits = extra
            .replace("198.51.37.0/24, ", "")
            .replace(", 198.51.37.0/24", "");
        assert_eq!(bad(&fits), Vec::<String>::new());
    }

    /// The logical id of the `k`th per-zone network resource.
    fn common_nth(base: &str, k: u32) -> String {
        if k == 1 {
            base.to_owned()
        } else {
            format!("{base}{k}")
        }
    }

    proptest::proptest! {
        #[test]
        fn validate_and_names_never_panic(
            version in "\\PC{0,8}",
            cidr in "\\PC{0,20}",
            name in "\\PC{0,120}",
            role in "\\PC{0,80}",
            access in 0..3usize,
            existing in proptest::bool::ANY,
        ) {
            let mut file = spec_with("");
            let p = &mut file.providers[0];
            p.name = name.clone();
            p.eks = Some(crate::spec::EksSpec {
                kubernetes_version: Some(version),
                endpoint_access: Some(
                    [EndpointAccess::Public, EndpointAccess::Private, EndpointAccess::PublicAndPrivate][access],
                ),
                public_access_cidrs: vec![cidr],
                compute: None,
                existing_cluster: existing.then_some(ExistingCluster { name, kubectl_role: role, access_entries: None }),
                operations_cluster_admin: Some(existing),
                kubectl_reserved_concurrency: existing.then_some(0),
                extended_support: None,
            });
            let mut errors = ValidationErrors::default();
            EksProvider.validate(&file.providers[0], "providers[0]", &mut errors);
            let _ = EksProvider.derived_names(&file.providers[0], "providers[0]");
            for e in &errors {
                proptest::prop_assert!(e.path.starts_with("providers[0]."));
            }
        }
    }
}
