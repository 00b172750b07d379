//! Building blocks every environment shares: parameters, tags, the KMS
//! key, the log group, the audit table, the operations and provisioning
//! roles, and the network (a new VPC across three AZs, or an existing one).
//!
//! Each function adds resources and outputs to a [`Template`] and returns
//! the values later blocks need, so a provider reads top to bottom.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::names::Names;
use super::stack::StackDefinition;
use crate::spec::cidr::Ipv4Cidr;
use crate::spec::{ProviderSpec, ResolvedVpc};
use crate::template::{Output, Parameter, Resource, Template, fns};

/// Logical ids used across providers.
pub mod ids {
    /// The environment KMS key.
    pub const KMS_KEY: &str = "EnvironmentKey";
    /// Its alias.
    pub const KMS_ALIAS: &str = "EnvironmentKeyAlias";
    /// The environment log group.
    pub const LOG_GROUP: &str = "EnvironmentLogGroup";
    /// The audit table.
    pub const AUDIT_TABLE: &str = "AuditTable";
    /// The operations role.
    pub const OPERATIONS_ROLE: &str = "OperationsRole";
    /// The provisioning role.
    pub const PROVISIONING_ROLE: &str = "ProvisioningRole";
    /// The VPC (new VPC only).
    pub const VPC: &str = "Vpc";
}

/// Names of the template parameters every environment template has.
pub mod params {
    /// Resource-name prefix.
    pub const PREFIX: &str = "Prefix";
    /// Environment (provider) name.
    pub const ENVIRONMENT_NAME: &str = "EnvironmentName";
    /// CIDR of a new VPC.
    pub const VPC_CIDR: &str = "VpcCidr";
    /// Id of an existing VPC.
    pub const VPC_ID: &str = "VpcId";
    /// Private subnets of an existing VPC.
    pub const PRIVATE_SUBNET_IDS: &str = "PrivateSubnetIds";
    /// Public subnets of an existing VPC.
    pub const PUBLIC_SUBNET_IDS: &str = "PublicSubnetIds";
}

/// Output keys shared by every environment template (the catalog reads them).
pub mod outputs {
    /// VPC id.
    pub const VPC_ID: &str = "VpcId";
    /// Comma-separated private subnet ids.
    pub const PRIVATE_SUBNETS: &str = "PrivateSubnetIds";
    /// Comma-separated public subnet ids.
    pub const PUBLIC_SUBNETS: &str = "PublicSubnetIds";
    /// KMS key ARN.
    pub const KMS_KEY_ARN: &str = "KmsKeyArn";
    /// Log group name.
    pub const LOG_GROUP: &str = "LogGroupName";
    /// Audit table name.
    pub const AUDIT_TABLE: &str = "AuditTableName";
    /// Audit table ARN.
    pub const AUDIT_TABLE_ARN: &str = "AuditTableArn";
    /// Operations role ARN.
    pub const OPERATIONS_ROLE_ARN: &str = "OperationsRoleArn";
    /// Provisioning role ARN.
    pub const PROVISIONING_ROLE_ARN: &str = "ProvisioningRoleArn";
    /// Cluster name (ECS/EKS).
    pub const CLUSTER_NAME: &str = "ClusterName";
    /// Cluster ARN (ECS/EKS).
    pub const CLUSTER_ARN: &str = "ClusterArn";
}

/// Why a Lambda function of ours has no reserved concurrency unless the
/// spec asks for one (the checkov suppression of CKV_AWS_115).
pub const UNRESERVED_CONCURRENCY_REASON: &str = "Reserved concurrency is opt-in: new accounts may have a Lambda concurrency limit of 10 and Lambda keeps 100 unreserved, so any default reservation would fail to deploy there (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html)";

/// `r` with the CKV_AWS_115 suppression when `reserved` is none.
pub fn unless_reserved(r: Resource, reserved: Option<u32>) -> Resource {
    match reserved {
        Some(_) => r,
        None => r.checkov_skip("CKV_AWS_115", UNRESERVED_CONCURRENCY_REASON),
    }
}

/// Maximum session length of the environment roles: 12 hours.
pub const MAX_SESSION_SECONDS: u32 = 43_200;

/// The AWS partition of a region (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// `Fn::Sub` of a name built from `${Prefix}-${EnvironmentName}` + `suffix`.
pub fn name_sub(suffix: &str) -> Value {
    fns::sub(&format!("${{Prefix}}-${{EnvironmentName}}{suffix}"))
}

/// A new template with the shared parameters, and the matching parameter
/// values.
pub fn base_template(
    description: &str,
    spec: &ProviderSpec,
) -> (Template, BTreeMap<String, String>) {
    let mut t = Template::new(description);
    t.parameter(
        params::PREFIX,
        Parameter::string("Prefix of every resource name").pattern("^[a-z][a-z0-9-]*$"),
    );
    t.parameter(
        params::ENVIRONMENT_NAME,
        Parameter::string("Environment provider name").pattern("^[a-z][a-z0-9-]*$"),
    );
    let mut values = BTreeMap::new();
    values.insert(params::PREFIX.to_owned(), spec.prefix().to_owned());
    values.insert(params::ENVIRONMENT_NAME.to_owned(), spec.name.clone());
    (t, values)
}

/// Stack tags: the spec's tags plus Harmonix's own.
pub fn stack_tags(spec: &ProviderSpec) -> BTreeMap<String, String> {
    let mut tags = spec.tags.clone();
    tags.insert("harmonix:environment".into(), spec.name.clone());
    tags.insert("harmonix:kind".into(), spec.kind.to_string());
    tags.insert("harmonix:prefix".into(), spec.prefix().to_owned());
    tags
}

/// Resource tags (CloudFormation tag list) from [`stack_tags`].
///
/// The shared resources in this module carry no copy of these: CloudFormation
/// propagates stack-level tags to every taggable resource it creates, so the
/// stack tags ([`environment_stack`]) tag them. A resource-level copy only
/// matters for things CloudFormation does not tag itself (instances and
/// volumes an Auto Scaling group or node group launches).
pub fn resource_tags(spec: &ProviderSpec) -> Value {
    let tags = stack_tags(spec);
    fns::tags(tags.iter().map(|(k, v)| (k.as_str(), json!(v))))
}

/// A stack definition for the environment stack of `spec`.
pub fn environment_stack(
    spec: &ProviderSpec,
    template: Template,
    parameters: BTreeMap<String, String>,
) -> StackDefinition {
    StackDefinition {
        name: Names::of(spec).stack,
        provider: spec.name.clone(),
        account: spec.account.to_string(),
        region: spec.region.clone(),
        template,
        parameters,
        tags: stack_tags(spec),
        depends_on: Vec::new(),
        capabilities: vec!["CAPABILITY_NAMED_IAM".into()],
    }
}

/// `DeletionPolicy` and `UpdateReplacePolicy` of the resources that hold an
/// environment's data (the audit table, the key that encrypts it, log
/// groups, buckets, credentials): kept when the stack is deleted or the
/// resource replaced, so neither a `destroy` nor an update that replaces
/// one loses data. `harmonix destroy --delete-data` turns them to `Delete`
/// first. A create that rolls back still removes them: the engine executes
/// change sets with `RetainExceptOnCreate`.
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-deletionpolicy.html>
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-updatereplacepolicy.html>
pub const RETAIN: &str = "Retain";

/// The customer-managed KMS key (rotation on) that encrypts the log group,
/// the audit table and the SSM parameters, with an alias.
///
/// The key is retained ([`RETAIN`]): the retained table, log groups and
/// database snapshots are encrypted with it and unreadable without it. The
/// alias is not: a retained alias would make a re-create of the
/// environment fail ("already exists"), and the kept key stays reachable
/// by its id, which `destroy` lists.
pub fn kms_key(t: &mut Template) {
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministration",
                "Effect": "Allow",
                "Principal": { "AWS": fns::sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root") },
                "Action": "kms:*",
                "Resource": "*"
            },
            {
                // CloudWatch Logs encrypts log groups with this key
                // (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html).
                // The actions are named rather than `kms:Describe*` and
                // friends: `kms:DescribeKey` and `kms:DescribeCustomKeyStores`
                // carry no `kms:EncryptionContext:` key, so under this
                // condition they never matched anyway. The key is
                // String-typed in the Service Authorization Reference
                // (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awskeymanagementservice.html#awskeymanagementservice-policy-keys),
                // hence `StringLike`.
                "Sid": "CloudWatchLogs",
                "Effect": "Allow",
                "Principal": { "Service": fns::sub("logs.${AWS::Region}.amazonaws.com") },
                "Action": [
                    "kms:Decrypt",
                    "kms:Encrypt",
                    "kms:GenerateDataKey",
                    "kms:GenerateDataKeyWithoutPlaintext",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo"
                ],
                "Resource": "*",
                "Condition": {
                    "StringLike": {
                        "kms:EncryptionContext:aws:logs:arn":
                            fns::sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*")
                    }
                }
            }
        ]
    });
    t.resource(
        ids::KMS_KEY,
        Resource::new("AWS::KMS::Key")
            .retain_policy(RETAIN)
            .property("Description", name_sub(" environment key"))
            .property("EnableKeyRotation", true)
            .property("KeyPolicy", policy),
    );
    t.resource(
        ids::KMS_ALIAS,
        Resource::new("AWS::KMS::Alias")
            .property("AliasName", fns::sub("alias/${Prefix}-${EnvironmentName}"))
            .property("TargetKeyId", fns::ref_(ids::KMS_KEY)),
    );
    t.output(
        outputs::KMS_KEY_ARN,
        Output::new(fns::get_att(ids::KMS_KEY, "Arn")).description("Environment KMS key ARN"),
    );
}

/// The environment log group, KMS-encrypted, with the spec's retention;
/// retained ([`RETAIN`]).
pub fn log_group(t: &mut Template, spec: &ProviderSpec) {
    t.resource(
        ids::LOG_GROUP,
        Resource::new("AWS::Logs::LogGroup")
            .retain_policy(RETAIN)
            .property(
                "LogGroupName",
                fns::sub("/${Prefix}/${EnvironmentName}/environment"),
            )
            .property("RetentionInDays", spec.log_retention_days())
            .property("KmsKeyId", fns::get_att(ids::KMS_KEY, "Arn")),
    );
    t.output(
        outputs::LOG_GROUP,
        Output::new(fns::ref_(ids::LOG_GROUP)).description("Environment log group"),
    );
}

/// The audit table: `id` (partition) + `createdAt` (sort), point-in-time
/// recovery, KMS, on-demand; retained ([`RETAIN`]) and protected from
/// deletion by anyone, inside CloudFormation or outside it.
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-dynamodb-table.html#cfn-dynamodb-table-deletionprotectionenabled>
///
/// With `id` as the partition key, "the latest records" is not a Query on
/// the table; the index [`AUDIT_BY_TIME_INDEX`] (partition `origin`, always
/// `harmonix`, sort `createdAt`) makes it one, read newest first
/// (`ScanIndexForward=false`). Audit writes are a few per apply, far below
/// what one index partition takes. An update adding the index to a
/// deployed table is done in place, the existing records backfilled.
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-dynamodb-table.html#cfn-dynamodb-table-globalsecondaryindexes>
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.OnlineOps.html>
///
/// [`AUDIT_BY_TIME_INDEX`]: crate::engine::audit::AUDIT_BY_TIME_INDEX
pub fn audit_table(t: &mut Template) {
    t.resource(
        ids::AUDIT_TABLE,
        Resource::new("AWS::DynamoDB::Table")
            .retain_policy(RETAIN)
            .property("TableName", name_sub("-audit"))
            .property("DeletionProtectionEnabled", true)
            .property("BillingMode", "PAY_PER_REQUEST")
            .property(
                "AttributeDefinitions",
                json!([
                    { "AttributeName": "id", "AttributeType": "S" },
                    { "AttributeName": "createdAt", "AttributeType": "S" },
                    { "AttributeName": "origin", "AttributeType": "S" }
                ]),
            )
            .property(
                "KeySchema",
                json!([
                    { "AttributeName": "id", "KeyType": "HASH" },
                    { "AttributeName": "createdAt", "KeyType": "RANGE" }
                ]),
            )
            .property(
                "GlobalSecondaryIndexes",
                json!([{
                    "IndexName": crate::engine::audit::AUDIT_BY_TIME_INDEX,
                    "KeySchema": [
                        { "AttributeName": "origin", "KeyType": "HASH" },
                        { "AttributeName": "createdAt", "KeyType": "RANGE" }
                    ],
                    "Projection": { "ProjectionType": "ALL" }
                }]),
            )
            .property(
                "PointInTimeRecoverySpecification",
                json!({ "PointInTimeRecoveryEnabled": true }),
            )
            .property(
                "SSESpecification",
                json!({
                    "SSEEnabled": true,
                    "SSEType": "KMS",
                    "KMSMasterKeyId": fns::get_att(ids::KMS_KEY, "Arn")
                }),
            ),
    );
    t.output(
        outputs::AUDIT_TABLE,
        Output::new(fns::ref_(ids::AUDIT_TABLE)).description("Audit table name"),
    );
    t.output(
        outputs::AUDIT_TABLE_ARN,
        Output::new(fns::get_att(ids::AUDIT_TABLE, "Arn")).description("Audit table ARN"),
    );
}

/// A trust policy letting exactly `principal_arn` assume the role.
pub fn trust_policy(principal_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "AWS": principal_arn },
            "Action": "sts:AssumeRole"
        }]
    })
}

/// A trust policy for an AWS service principal (e.g. `eks.amazonaws.com`).
pub fn service_trust_policy(service: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": service },
            "Action": "sts:AssumeRole"
        }]
    })
}

/// A trust policy for an AWS service principal that acts only for this
/// account and, given `source_arn`, only for resources matching it: the
/// `aws:SourceAccount` and `aws:SourceArn` conditions against the
/// cross-service confused deputy
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html).
/// Only for services that document these keys in the trust policy of the
/// role they assume: the service must send them, or the role cannot be
/// assumed at all.
pub fn service_trust_policy_from(service: &str, source_arn: Option<Value>) -> Value {
    let mut condition = json!({
        "StringEquals": { "aws:SourceAccount": fns::ref_("AWS::AccountId") }
    });
    if let Some(arn) = source_arn {
        condition["ArnLike"] = json!({ "aws:SourceArn": arn });
    }
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": service },
            "Action": "sts:AssumeRole",
            "Condition": condition
        }]
    })
}

/// An inline policy document.
pub fn policy(name: &str, statements: Vec<Value>) -> Value {
    json!({
        "PolicyName": name,
        "PolicyDocument": { "Version": "2012-10-17", "Statement": statements }
    })
}

/// An `Allow` statement.
pub fn allow(actions: &[&str], resources: Vec<Value>) -> Value {
    json!({ "Effect": "Allow", "Action": actions, "Resource": resources })
}

/// What the Backstage side of Harmonix reads through the operations role
/// to show an environment, beyond the shared statements: the environment
/// stack, the audit table's description, resource groups and tagged
/// resources, and the application secrets under the environment's prefix
/// (`{prefix}-{name}/…`).
fn operations_reads() -> Vec<Value> {
    vec![
        // Resource type `stack` for each action
        // (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscloudformation.html).
        json!({
            "Sid": "ReadEnvironmentStack",
            "Effect": "Allow",
            "Action": [
                "cloudformation:DescribeStacks",
                "cloudformation:DescribeStackEvents",
                "cloudformation:DescribeStackResources",
                "cloudformation:GetTemplateSummary",
                "cloudformation:ListStackResources"
            ],
            "Resource": [fns::sub(
                "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${Prefix}-${EnvironmentName}-environment/*"
            )]
        }),
        json!({
            "Sid": "DescribeAuditTable",
            "Effect": "Allow",
            "Action": ["dynamodb:DescribeTable"],
            "Resource": [fns::get_att(ids::AUDIT_TABLE, "Arn")]
        }),
        // `ListGroups`, `SearchResources` and `tag:GetResources` have no
        // resource types, so they take `*`; the group reads take the
        // group ARN
        // (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsresourcegroups.html,
        // https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonresourcegrouptaggingapi.html).
        json!({
            "Sid": "FindResources",
            "Effect": "Allow",
            "Action": [
                "resource-groups:ListGroups",
                "resource-groups:SearchResources",
                "tag:GetResources"
            ],
            "Resource": "*"
        }),
        json!({
            "Sid": "ReadEnvironmentGroups",
            "Effect": "Allow",
            "Action": [
                "resource-groups:GetGroup",
                "resource-groups:GetGroupQuery",
                "resource-groups:GetTags",
                "resource-groups:ListGroupResources"
            ],
            "Resource": [
                fns::sub("arn:${AWS::Partition}:resource-groups:${AWS::Region}:${AWS::AccountId}:group/${Prefix}-${EnvironmentName}"),
                fns::sub("arn:${AWS::Partition}:resource-groups:${AWS::Region}:${AWS::AccountId}:group/${Prefix}-${EnvironmentName}-*")
            ]
        }),
        // Secret ARNs end in `-` and six random characters
        // (https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_iam-permissions.html),
        // which the trailing `*` covers: every secret named
        // `{prefix}-{name}/…`.
        json!({
            "Sid": "ReadApplicationSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
            "Resource": [fns::sub(
                "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${Prefix}-${EnvironmentName}/*"
            )]
        }),
    ]
}

/// The operations role (assumed by the Backstage platform role to operate
/// the environment) and the provisioning role (assumed by the pipeline role
/// to deploy applications into it), 12 h max session each.
///
/// `operations` and `provisioning` are the kind-specific statements; both
/// roles also get access to the environment's audit table, log group and key.
pub fn environment_roles(
    t: &mut Template,
    spec: &ProviderSpec,
    operations: Vec<Value>,
    provisioning: Vec<Value>,
) {
    let shared = vec![
        allow(
            &["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query"],
            vec![fns::get_att(ids::AUDIT_TABLE, "Arn")],
        ),
        // Reading the latest records queries the index, a resource of its
        // own: `table/NAME/index/INDEX`.
        // <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/iam-policy-specific-table-indexes.html>
        allow(
            &["dynamodb:Query"],
            vec![fns::sub(&format!(
                "${{{}.Arn}}/index/{}",
                ids::AUDIT_TABLE,
                crate::engine::audit::AUDIT_BY_TIME_INDEX
            ))],
        ),
        allow(
            &[
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:DescribeLogStreams",
                "logs:GetLogEvents",
            ],
            vec![fns::get_att(ids::LOG_GROUP, "Arn")],
        ),
        allow(
            &[
                "kms:Decrypt",
                "kms:Encrypt",
                "kms:GenerateDataKey*",
                "kms:DescribeKey",
            ],
            vec![fns::get_att(ids::KMS_KEY, "Arn")],
        ),
        allow(
            &[
                "ssm:GetParameter",
                "ssm:GetParameters",
                "ssm:GetParametersByPath",
            ],
            vec![fns::sub(
                "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/${Prefix}/${EnvironmentName}/*",
            )],
        ),
    ];
    let mut ops = shared.clone();
    ops.extend(operations_reads());
    ops.extend(operations);
    let mut prov = shared;
    prov.extend(provisioning);
    t.resource(
        ids::OPERATIONS_ROLE,
        Resource::new("AWS::IAM::Role")
            .property("RoleName", name_sub("-operations-role"))
            .property(
                "Description",
                name_sub(" operations role, assumed by the platform"),
            )
            .property("MaxSessionDuration", MAX_SESSION_SECONDS)
            .property(
                "AssumeRolePolicyDocument",
                trust_policy(&spec.platform_role),
            )
            .property("Policies", json!([policy("operations", ops)])),
    );
    t.resource(
        ids::PROVISIONING_ROLE,
        Resource::new("AWS::IAM::Role")
            .property("RoleName", name_sub("-provisioning-role"))
            .property(
                "Description",
                name_sub(" provisioning role, assumed by the pipeline"),
            )
            .property("MaxSessionDuration", MAX_SESSION_SECONDS)
            .property(
                "AssumeRolePolicyDocument",
                trust_policy(&spec.pipeline_role),
            )
            .property("Policies", json!([policy("provisioning", prov)])),
    );
    t.output(
        outputs::OPERATIONS_ROLE_ARN,
        Output::new(fns::get_att(ids::OPERATIONS_ROLE, "Arn")).description("Operations role ARN"),
    );
    t.output(
        outputs::PROVISIONING_ROLE_ARN,
        Output::new(fns::get_att(ids::PROVISIONING_ROLE, "Arn"))
            .description("Provisioning role ARN"),
    );
}

/// An SSM `String` parameter with an explicit name under the environment's
/// prefix (`/{prefix}/{name}/{key}`). Tagged by the stack tags, which
/// CloudFormation propagates to it. `_spec` is kept so callers need not
/// change.
pub fn ssm_parameter(
    t: &mut Template,
    _spec: &ProviderSpec,
    logical_id: &str,
    key: &str,
    value: Value,
    description: &str,
) {
    t.resource(
        logical_id,
        Resource::new("AWS::SSM::Parameter")
            .property(
                "Name",
                fns::sub(&format!("/${{Prefix}}/${{EnvironmentName}}/{key}")),
            )
            .property("Type", "String")
            .property("Value", value)
            .property("Description", description),
    );
}

/// What later blocks need from the network.
#[derive(Debug, Clone)]
pub struct Network {
    /// The VPC id (a `Ref`).
    pub vpc_id: Value,
    /// The private subnet ids (a list value).
    pub private_subnets: Value,
    /// The public subnet ids (a list value).
    pub public_subnets: Value,
    /// Logical ids of the private subnets' default routes through the NAT
    /// gateways (new VPC; empty for an existing one): what must exist
    /// before anything in a private subnet reaches the internet.
    pub private_routes: Vec<String>,
    /// Logical ids of the NAT gateways' Elastic IPs (new VPC; empty for an
    /// existing one): the addresses private subnets reach the internet from.
    pub nat_eips: Vec<String>,
}

/// Number of availability zones a new VPC spans.
pub const AZ_COUNT: u32 = 3;
/// Most NAT gateways a new VPC gets: one per availability zone.
pub const MAX_NAT_GATEWAYS: u32 = AZ_COUNT;
/// The lifecycle whose new VPCs get one NAT gateway per zone by default.
pub const PRODUCTION_LIFECYCLE: &str = "production";

/// The number of NAT gateways of `spec`'s new VPC: `vpc.natGateways`, else
/// one per availability zone for the production lifecycle and one
/// otherwise (clamped to 1..=3; validation refuses other values).
///
/// A NAT gateway is zonal: "If you have resources in multiple Availability
/// Zones and they share one NAT gateway, and if the NAT gateway's
/// Availability Zone is down, resources in the other Availability Zones
/// lose internet access. To improve resiliency, create a NAT gateway in
/// each Availability Zone"
/// (<https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-basics.html>).
/// Each costs an hourly charge and an Elastic IP, so other lifecycles keep
/// one.
pub fn nat_gateway_count(spec: &ProviderSpec) -> u32 {
    let default = if spec.lifecycle() == PRODUCTION_LIFECYCLE {
        MAX_NAT_GATEWAYS
    } else {
        1
    };
    spec.vpc
        .as_ref()
        .and_then(|v| v.nat_gateways)
        .unwrap_or(default)
        .clamp(1, MAX_NAT_GATEWAYS)
}

/// `natGateways` at `path`: 1 to 3 in a new VPC; not allowed in an
/// existing one (there is nothing to create).
pub fn validate_nat_gateways(
    value: Option<u32>,
    existing_vpc: bool,
    path: &str,
    errors: &mut crate::spec::ValidationErrors,
) {
    let Some(n) = value else {
        return;
    };
    if existing_vpc {
        errors.push(
            path,
            Some(&n.to_string()),
            "only allowed for a new VPC; this provider uses an existing VPC (`mode: existing`), whose routing is its own: Harmonix creates no NAT gateways there",
        );
    } else if !(1..=MAX_NAT_GATEWAYS).contains(&n) {
        errors.push(
            path,
            Some(&n.to_string()),
            format!(
                "must be 1 to {MAX_NAT_GATEWAYS}: one NAT gateway for the whole VPC, or up to one per availability zone (the VPC spans {AZ_COUNT})"
            ),
        );
    }
}

/// The logical id of the `n`th (1-based) of a family of per-zone
/// resources: the first keeps the plain name, so a VPC that grows from one
/// NAT gateway to three keeps its first gateway and routes.
fn nth(base: &str, n: u32) -> String {
    if n == 1 {
        base.to_owned()
    } else {
        format!("{base}{n}")
    }
}

/// The network: a new VPC across three AZs (public and private subnets,
/// internet gateway, one to three NAT gateways, flow logs to the
/// environment log group) or an existing VPC given by parameters.
pub fn network(
    t: &mut Template,
    spec: &ProviderSpec,
    values: &mut BTreeMap<String, String>,
) -> Network {
    match spec.resolved_vpc() {
        ResolvedVpc::New { cidr } => new_vpc(t, spec, cidr, values),
        ResolvedVpc::Existing {
            id,
            private_subnet_ids,
            public_subnet_ids,
        } => {
            t.parameter(
                params::VPC_ID,
                Parameter::of_type("AWS::EC2::VPC::Id", "Existing VPC id"),
            );
            values.insert(params::VPC_ID.into(), id.to_owned());
            t.parameter(
                params::PRIVATE_SUBNET_IDS,
                Parameter::of_type(
                    "CommaDelimitedList",
                    "Private subnet ids of the existing VPC",
                )
                .default_value(""),
            );
            values.insert(
                params::PRIVATE_SUBNET_IDS.into(),
                private_subnet_ids.join(","),
            );
            t.parameter(
                params::PUBLIC_SUBNET_IDS,
                Parameter::of_type(
                    "CommaDelimitedList",
                    "Public subnet ids of the existing VPC",
                )
                .default_value(""),
            );
            values.insert(
                params::PUBLIC_SUBNET_IDS.into(),
                public_subnet_ids.join(","),
            );
            t.output(
                outputs::VPC_ID,
                Output::new(fns::ref_(params::VPC_ID)).description("VPC id"),
            );
            t.output(
                outputs::PRIVATE_SUBNETS,
                Output::new(json!({ "Fn::Join": [",", fns::ref_(params::PRIVATE_SUBNET_IDS)] }))
                    .description("Private subnet ids"),
            );
            ssm_parameter(
                t,
                spec,
                "VpcIdParameter",
                "vpc-id",
                fns::ref_(params::VPC_ID),
                "Environment VPC id",
            );
            Network {
                vpc_id: fns::ref_(params::VPC_ID),
                private_subnets: fns::ref_(params::PRIVATE_SUBNET_IDS),
                public_subnets: fns::ref_(params::PUBLIC_SUBNET_IDS),
                private_routes: Vec::new(),
                nat_eips: Vec::new(),
            }
        }
    }
}

/// Subnet size for a VPC of prefix length `prefix_len` split into 8 blocks
/// (3 public + 3 private + 2 spare): host bits per subnet.
pub fn subnet_bits(prefix_len: u8) -> u32 {
    u32::from(32u8.saturating_sub(prefix_len).saturating_sub(3))
}

/// Name of the template parameter holding the CIDR of public (`public`) or
/// private subnet `n` (1-based): `PublicSubnet1Cidr`, `PrivateSubnet3Cidr`.
pub fn subnet_cidr_param(public: bool, n: u32) -> String {
    let side = if public { "Public" } else { "Private" };
    format!("{side}Subnet{n}Cidr")
}

/// The subnet CIDRs of a new VPC: the VPC block split into 8 equal blocks,
/// the first [`AZ_COUNT`] public, the next [`AZ_COUNT`] private (the last
/// two are spare). The same blocks, in the same order, as
/// `Fn::Select [i, Fn::Cidr [vpc, 8, subnet_bits]]`, computed here so the
/// template carries them as parameters. `None` when `vpc_cidr` is not an
/// aligned IPv4 block of /16 to /29 (validation rejects those earlier).
pub fn subnet_cidrs(vpc_cidr: &str) -> Option<Vec<String>> {
    let vpc = Ipv4Cidr::parse(vpc_cidr).ok()?;
    if !vpc.is_aligned() || !(16..=29).contains(&vpc.len) {
        return None;
    }
    let bits = subnet_bits(vpc.len);
    let len = vpc.len + 3;
    (0..2 * AZ_COUNT)
        .map(|i| {
            let addr = vpc.addr.checked_add(i.checked_shl(bits)?)?;
            Some(Ipv4Cidr { addr, len }.to_string())
        })
        .collect()
}

fn new_vpc(
    t: &mut Template,
    spec: &ProviderSpec,
    cidr: &str,
    values: &mut BTreeMap<String, String>,
) -> Network {
    const CIDR_PATTERN: &str = r"^(\d{1,3}\.){3}\d{1,3}/(1[6-9]|2[0-8])$";
    t.parameter(
        params::VPC_CIDR,
        Parameter::string("CIDR block of the VPC").pattern(CIDR_PATTERN),
    );
    values.insert(params::VPC_CIDR.into(), cidr.to_owned());
    // The subnet blocks are computed from the spec's CIDR and passed as
    // parameters (no `Fn::Cidr`): deterministic, visible in the parameter
    // file, and a VPC CIDR change stays a parameter change. Validation
    // guarantees the CIDR splits; were it not to, the parameters stay
    // without values and CloudFormation refuses the stack, naming them.
    let blocks = subnet_cidrs(cidr).unwrap_or_default();
    for az in 0..AZ_COUNT {
        let n = az + 1;
        for (public, index) in [(true, az), (false, az + AZ_COUNT)] {
            let name = subnet_cidr_param(public, n);
            let side = if public { "public" } else { "private" };
            t.parameter(
                &name,
                Parameter::string(format!(
                    "CIDR block of {side} subnet {n}, inside the VPC block"
                ))
                .pattern(CIDR_PATTERN),
            );
            if let Some(block) = blocks.get(index as usize) {
                values.insert(name, block.clone());
            }
        }
    }
    // Only the `Name` tag: the stack tags reach every piece through
    // CloudFormation's stack-level tag propagation.
    let tags =
        |suffix: &str| fns::tags([("Name", json!(format!("{}{suffix}", Names::of(spec).base)))]);
    t.resource(
        ids::VPC,
        Resource::new("AWS::EC2::VPC")
            .property("CidrBlock", fns::ref_(params::VPC_CIDR))
            .property("EnableDnsHostnames", true)
            .property("EnableDnsSupport", true)
            .property("Tags", tags("-vpc")),
    );
    t.resource(
        "InternetGateway",
        Resource::new("AWS::EC2::InternetGateway").property("Tags", tags("-igw")),
    );
    t.resource(
        "InternetGatewayAttachment",
        Resource::new("AWS::EC2::VPCGatewayAttachment")
            .property("VpcId", fns::ref_(ids::VPC))
            .property("InternetGatewayId", fns::ref_("InternetGateway")),
    );
    t.resource(
        "PublicRouteTable",
        Resource::new("AWS::EC2::RouteTable")
            .property("VpcId", fns::ref_(ids::VPC))
            .property("Tags", tags("-public")),
    );
    t.resource(
        "PublicDefaultRoute",
        Resource::new("AWS::EC2::Route")
            .depends_on("InternetGatewayAttachment")
            .property("RouteTableId", fns::ref_("PublicRouteTable"))
            .property("DestinationCidrBlock", "0.0.0.0/0")
            .property("GatewayId", fns::ref_("InternetGateway")),
    );
    // One private route table per NAT gateway; private subnet `n` routes
    // through NAT gateway `n` when there is one per zone (with two, the
    // third zone shares the first's).
    let nats = nat_gateway_count(spec);
    let nat_of = |az: u32| az % nats + 1;
    // Load balancer subnet discovery of the AWS Load Balancer Controller
    // (and the in-tree service controller) for EKS: "If you want to deploy
    // load balancers to a subnet, the subnet must have the following tag":
    // `kubernetes.io/role/elb: 1` on public subnets,
    // `kubernetes.io/role/internal-elb: 1` on private ones
    // (<https://docs.aws.amazon.com/eks/latest/userguide/network-reqs.html>,
    // <https://docs.aws.amazon.com/eks/latest/userguide/network-load-balancing.html>:
    // the controller "doesn't examine route tables, and requires the
    // private and public tags to be present for successful auto
    // discovery"). Only EKS reads them.
    let kubernetes = spec.kind == crate::spec::ProviderKind::Eks;
    let subnet_tags = |suffix: &str, role: &str| {
        let name = json!(format!("{}{suffix}", Names::of(spec).base));
        if kubernetes {
            fns::tags([("Name", name), (role, json!("1"))])
        } else {
            fns::tags([("Name", name)])
        }
    };
    let mut public = Vec::new();
    let mut private = Vec::new();
    for az in 0..AZ_COUNT {
        let n = az + 1;
        let pub_id = format!("PublicSubnet{n}");
        let priv_id = format!("PrivateSubnet{n}");
        t.resource(
            &pub_id,
            Resource::new("AWS::EC2::Subnet")
                .property("VpcId", fns::ref_(ids::VPC))
                .property("AvailabilityZone", fns::select(az, fns::get_azs()))
                .property("CidrBlock", fns::ref_(&subnet_cidr_param(true, n)))
                .property("MapPublicIpOnLaunch", false)
                .property(
                    "Tags",
                    subnet_tags(&format!("-public-{n}"), "kubernetes.io/role/elb"),
                ),
        );
        t.resource(
            &priv_id,
            Resource::new("AWS::EC2::Subnet")
                .property("VpcId", fns::ref_(ids::VPC))
                .property("AvailabilityZone", fns::select(az, fns::get_azs()))
                .property("CidrBlock", fns::ref_(&subnet_cidr_param(false, n)))
                .property("MapPublicIpOnLaunch", false)
                .property(
                    "Tags",
                    subnet_tags(&format!("-private-{n}"), "kubernetes.io/role/internal-elb"),
                ),
        );
        t.resource(
            format!("PublicSubnet{n}RouteTableAssociation"),
            Resource::new("AWS::EC2::SubnetRouteTableAssociation")
                .property("SubnetId", fns::ref_(&pub_id))
                .property("RouteTableId", fns::ref_("PublicRouteTable")),
        );
        t.resource(
            format!("PrivateSubnet{n}RouteTableAssociation"),
            Resource::new("AWS::EC2::SubnetRouteTableAssociation")
                .property("SubnetId", fns::ref_(&priv_id))
                .property(
                    "RouteTableId",
                    fns::ref_(&nth("PrivateRouteTable", nat_of(az))),
                ),
        );
        public.push(fns::ref_(&pub_id));
        private.push(fns::ref_(&priv_id));
    }
    let mut private_routes = Vec::new();
    let mut nat_eips = Vec::new();
    for k in 1..=nats {
        let (eip, nat, table, route) = (
            nth("NatGatewayEip", k),
            nth("NatGateway", k),
            nth("PrivateRouteTable", k),
            nth("PrivateDefaultRoute", k),
        );
        let suffix = if k == 1 {
            String::new()
        } else {
            format!("-{k}")
        };
        t.resource(
            &table,
            Resource::new("AWS::EC2::RouteTable")
                .property("VpcId", fns::ref_(ids::VPC))
                .property("Tags", tags(&format!("-private{suffix}"))),
        );
        t.resource(
            &eip,
            Resource::new("AWS::EC2::EIP")
                .depends_on("InternetGatewayAttachment")
                .property("Domain", "vpc")
                .property("Tags", tags(&format!("-nat{suffix}"))),
        );
        // NAT gateway `k` in public subnet `k`: in zone `k`.
        t.resource(
            &nat,
            Resource::new("AWS::EC2::NatGateway")
                .property("AllocationId", fns::get_att(&eip, "AllocationId"))
                .property("SubnetId", fns::ref_(&format!("PublicSubnet{k}")))
                .property("Tags", tags(&format!("-nat{suffix}"))),
        );
        t.resource(
            &route,
            Resource::new("AWS::EC2::Route")
                .property("RouteTableId", fns::ref_(&table))
                .property("DestinationCidrBlock", "0.0.0.0/0")
                .property("NatGatewayId", fns::ref_(&nat)),
        );
        private_routes.push(route);
        nat_eips.push(eip);
    }
    // VPC flow logs into the environment log group.
    t.resource(
        "FlowLogRole",
        Resource::new("AWS::IAM::Role")
            .property("RoleName", name_sub("-flow-logs-role"))
            .property(
                "AssumeRolePolicyDocument",
                // https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs-iam-role.html
                service_trust_policy_from(
                    "vpc-flow-logs.amazonaws.com",
                    Some(fns::sub(
                        "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:vpc-flow-log/*",
                    )),
                ),
            )
            .property(
                "Policies",
                json!([policy(
                    "flow-logs",
                    vec![allow(
                        &[
                            "logs:CreateLogStream",
                            "logs:PutLogEvents",
                            "logs:DescribeLogStreams"
                        ],
                        vec![fns::get_att(ids::LOG_GROUP, "Arn")],
                    )]
                )]),
            ),
    );
    t.resource(
        "FlowLog",
        Resource::new("AWS::EC2::FlowLog")
            .property("ResourceId", fns::ref_(ids::VPC))
            .property("ResourceType", "VPC")
            .property("TrafficType", "ALL")
            .property("LogDestinationType", "cloud-watch-logs")
            .property("LogGroupName", fns::ref_(ids::LOG_GROUP))
            .property(
                "DeliverLogsPermissionArn",
                fns::get_att("FlowLogRole", "Arn"),
            ),
    );
    // The default security group of a new VPC allows nothing.
    t.output(
        outputs::VPC_ID,
        Output::new(fns::ref_(ids::VPC)).description("VPC id"),
    );
    t.output(
        outputs::PRIVATE_SUBNETS,
        Output::new(fns::join(",", private.clone())).description("Private subnet ids"),
    );
    t.output(
        outputs::PUBLIC_SUBNETS,
        Output::new(fns::join(",", public.clone())).description("Public subnet ids"),
    );
    ssm_parameter(
        t,
        spec,
        "VpcIdParameter",
        "vpc-id",
        fns::ref_(ids::VPC),
        "Environment VPC id",
    );
    Network {
        vpc_id: fns::ref_(ids::VPC),
        private_subnets: Value::Array(private),
        public_subnets: Value::Array(public),
        private_routes,
        nat_eips,
    }
}

/// The shared parts of every environment, in order: key, log group, audit
/// table, network. Returns the network for the kind-specific resources.
pub fn foundation(
    t: &mut Template,
    spec: &ProviderSpec,
    values: &mut BTreeMap<String, String>,
) -> Network {
    kms_key(t);
    log_group(t, spec);
    audit_table(t);
    ssm_parameter(
        t,
        spec,
        "AuditTableParameter",
        "audit-table",
        fns::ref_(ids::AUDIT_TABLE),
        "Environment audit table",
    );
    network(t, spec, values)
}

/// A catalog value: the stack output `key` when the stack reported it,
/// otherwise `fallback` (derived from the spec, so the catalog is complete
/// even where outputs are missing).
pub fn output_or(
    outputs: Option<&BTreeMap<String, String>>,
    key: &str,
    fallback: impl Into<String>,
) -> String {
    outputs
        .and_then(|o| o.get(key))
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| fallback.into())
}

/// ARN of a role (path `/`) in `account`, in the partition of `region`.
pub fn role_arn(region: &str, account: &str, role: &str) -> String {
    format!("arn:{}:iam::{account}:role/{role}", partition(region))
}

/// Check EC2 capacity numbers: `min ≤ desired ≤ max`, `max ≥ 1`, at most
/// 1000 instances, and instance types shaped like `family.size`.
pub fn validate_capacity(
    c: &crate::spec::Ec2Capacity,
    path: &str,
    errors: &mut crate::spec::ValidationErrors,
) {
    let min = c.min_size.unwrap_or(1);
    let desired = c.desired_size.unwrap_or(2.max(min));
    let max = c.max_size.unwrap_or(4.max(desired));
    if max == 0 || max > 1000 {
        errors.push(
            format!("{path}.maxSize"),
            Some(&max.to_string()),
            "must be between 1 and 1000",
        );
    }
    if min > desired {
        errors.push(
            format!("{path}.minSize"),
            Some(&min.to_string()),
            format!("must not exceed desiredSize ({desired})"),
        );
    }
    if desired > max {
        errors.push(
            format!("{path}.desiredSize"),
            Some(&desired.to_string()),
            format!("must not exceed maxSize ({max})"),
        );
    }
    for (i, ty) in c.instance_types.iter().enumerate() {
        let ok = ty.split_once('.').is_some_and(|(family, size)| {
            !family.is_empty()
                && !size.is_empty()
                && family
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
                && size
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
        });
        if !ok {
            errors.push(
                format!("{path}.instanceTypes[{i}]"),
                Some(ty),
                "not an EC2 instance type; expected `family.size`, e.g. `m6i.large`",
            );
        }
    }
    if c.instance_types.len() > 20 {
        errors.push(
            format!("{path}.instanceTypes"),
            None,
            "at most 20 instance types are allowed",
        );
    }
}

/// AWS accounts of Elastic Load Balancing that deliver access logs in the
/// regions opened before August 2022; newer regions use the
/// `logdelivery.elasticloadbalancing.amazonaws.com` service principal.
pub const ELB_LOG_ACCOUNTS: [(&str, &str); 26] = [
    ("af-south-1", "098369216593"),
    ("ap-east-1", "754344448648"),
    ("ap-northeast-1", "582318560864"),
    ("ap-northeast-2", "600734575887"),
    ("ap-northeast-3", "383597477331"),
    ("ap-south-1", "718504428378"),
    ("ap-southeast-1", "114774131450"),
    ("ap-southeast-2", "783225319266"),
    ("ap-southeast-3", "589379963580"),
    ("ca-central-1", "985666609251"),
    ("cn-north-1", "638102146993"),
    ("cn-northwest-1", "037604701340"),
    ("eu-central-1", "054676820928"),
    ("eu-north-1", "897822967062"),
    ("eu-south-1", "635631232127"),
    ("eu-west-1", "156460612806"),
    ("eu-west-2", "652711504416"),
    ("eu-west-3", "009996457667"),
    ("me-south-1", "076674570225"),
    ("sa-east-1", "507241528517"),
    ("us-east-1", "127311923021"),
    ("us-east-2", "033677994240"),
    ("us-gov-east-1", "190560391635"),
    ("us-gov-west-1", "048591011584"),
    ("us-west-1", "027434742980"),
    ("us-west-2", "797873946194"),
];

/// The principal that delivers load balancer access logs in `region`: the
/// region's Elastic Load Balancing account where AWS documents one, else
/// the log delivery service.
pub fn elb_log_delivery_principal(region: &str) -> Value {
    match ELB_LOG_ACCOUNTS.iter().find(|(r, _)| *r == region) {
        Some((_, account)) => json!({
            "AWS": format!("arn:{}:iam::{account}:root", partition(region))
        }),
        None => json!({ "Service": "logdelivery.elasticloadbalancing.amazonaws.com" }),
    }
}

/// A bucket for load balancer access logs: private (owner-enforced,
/// public access blocked), versioned, SSE-S3 (the only encryption load
/// balancer log delivery supports), objects expiring after
/// `retention_days`, kept when the stack is deleted ([`RETAIN`]). The
/// caller adds the bucket policy for its log prefixes.
pub fn access_logs_bucket(retention_days: u32) -> Resource {
    Resource::new("AWS::S3::Bucket")
        .retain_policy(RETAIN)
        .property(
            "BucketEncryption",
            json!({ "ServerSideEncryptionConfiguration": [{
                "ServerSideEncryptionByDefault": { "SSEAlgorithm": "AES256" }
            }] }),
        )
        .property(
            "PublicAccessBlockConfiguration",
            json!({
                "BlockPublicAcls": true,
                "BlockPublicPolicy": true,
                "IgnorePublicAcls": true,
                "RestrictPublicBuckets": true
            }),
        )
        .property(
            "OwnershipControls",
            json!({ "Rules": [{ "ObjectOwnership": "BucketOwnerEnforced" }] }),
        )
        .property("VersioningConfiguration", json!({ "Status": "Enabled" }))
        .property(
            "LifecycleConfiguration",
            json!({ "Rules": [{
                "Id": "expire-access-logs",
                "Status": "Enabled",
                "ExpirationInDays": retention_days,
                "NoncurrentVersionExpiration": { "NoncurrentDays": 1 }
            }] }),
        )
        .checkov_skip(
            "CKV_AWS_18",
            "This bucket holds the load balancers' access logs; logging access to it would need another log bucket, and that one another",
        )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn audit_table_has_the_index_by_time_that_latest_queries() {
        let mut t = Template::new("t");
        audit_table(&mut t);
        let p = &t.resources[ids::AUDIT_TABLE].properties;
        let gsi = p["GlobalSecondaryIndexes"].as_array().expect("indexes");
        assert_eq!(gsi.len(), 1);
        assert_eq!(
            gsi[0]["IndexName"],
            crate::engine::audit::AUDIT_BY_TIME_INDEX
        );
        assert_eq!(
            gsi[0]["KeySchema"],
            json!([
                { "AttributeName": "origin", "KeyType": "HASH" },
                { "AttributeName": "createdAt", "KeyType": "RANGE" }
            ])
        );
        assert_eq!(gsi[0]["Projection"]["ProjectionType"], "ALL");
        // Every key attribute of the table and index is defined, as a string.
        let defined: BTreeSet<(String, String)> = p["AttributeDefinitions"]
            .as_array()
            .expect("definitions")
            .iter()
            .map(|d| {
                (
                    d["AttributeName"].as_str().unwrap_or("").to_owned(),
                    d["AttributeType"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        for name in ["id", "createdAt", "origin"] {
            assert!(
                defined.contains(&(name.to_owned(), "S".to_owned())),
                "{name}"
            );
        }
        assert_eq!(
            defined.len(),
            3,
            "CloudFormation refuses unused definitions"
        );
    }

    #[test]
    fn subnet_cidrs_split_the_vpc_into_eighths_like_fn_cidr() {
        assert_eq!(
            subnet_cidrs("10.0.0.0/24").unwrap_or_default(),
            [
                "10.0.0.0/27",
                "10.0.0.32/27",
                "10.0.0.64/27",
                "10.0.0.96/27",
                "10.0.0.128/27",
                "10.0.0.160/27"
            ]
        );
        assert_eq!(
            subnet_cidrs("10.3.0.0/20").unwrap_or_default(),
            [
                "10.3.0.0/23",
                "10.3.2.0/23",
                "10.3.4.0/23",
                "10.3.6.0/23",
                "10.3.8.0/23",
                "10.3.10.0/23"
            ]
        );
        assert_eq!(
            subnet_cidrs("172.16.0.0/16").unwrap_or_default().last(),
            Some(&"172.16.160.0/19".to_owned())
        );
        assert_eq!(
            subnet_cidrs("192.168.1.128/25").unwrap_or_default().last(),
            Some(&"192.168.1.208/28".to_owned())
        );
    }

    #[test]
    fn subnet_cidrs_refuse_what_does_not_split() {
        for bad in ["", "10.0.0.1/24", "10.0.0.0/15", "10.0.0.0/30", "x/24"] {
            assert_eq!(subnet_cidrs(bad), None, "{bad}");
        }
    }

    /// The network template of a one-provider spec with `extra` fields.
    fn network_of(kind: &str, extra: &str) -> Template {
        let yaml = format!(
            "providers:\n  - kind: {kind}\n    name: web-dev\n    owner: group:web\n    account: \"123456789012\"\n    region: us-west-2\n    environmentRole: arn:aws:iam::123456789012:role/opa-envprovisioning-role\n    platformRole: arn:aws:iam::111111111111:role/opa-platform-role\n    pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role\n{extra}"
        );
        let file = crate::spec::parse_str(&yaml, "test").expect("parses");
        let mut t = Template::new("t");
        let mut values = BTreeMap::new();
        let _ = network(&mut t, &file.providers[0], &mut values);
        t
    }

    /// Dangling references other than to the parts `network` does not
    /// make (the shared parameters and the log group).
    fn dangling(t: &Template) -> Vec<String> {
        t.dangling_references()
            .into_iter()
            .filter(|r| {
                ![params::PREFIX, params::ENVIRONMENT_NAME, ids::LOG_GROUP].contains(&r.as_str())
            })
            .collect()
    }

    fn count(t: &Template, kind: &str) -> usize {
        t.resources.values().filter(|r| r.kind == kind).count()
    }

    /// NAT gateway of private subnet `n`'s route table.
    fn nat_of_private_subnet(t: &Template, n: u32) -> Value {
        let assoc = &t.resources[&format!("PrivateSubnet{n}RouteTableAssociation")];
        let table = assoc.properties["RouteTableId"]["Ref"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let route = t
            .resources
            .values()
            .find(|r| {
                r.kind == "AWS::EC2::Route"
                    && r.properties["RouteTableId"] == fns::ref_(&table)
                    && r.properties.contains_key("NatGatewayId")
            })
            .unwrap_or_else(|| panic!("no NAT route in {table}"));
        route.properties["NatGatewayId"].clone()
    }

    /// Zone index (`Fn::Select` of `Fn::GetAZs`) of a NAT gateway's subnet.
    fn zone_of_nat(t: &Template, nat: &Value) -> Value {
        let id = nat["Ref"].as_str().unwrap_or_default();
        let subnet = t.resources[id].properties["SubnetId"]["Ref"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        t.resources[&subnet].properties["AvailabilityZone"].clone()
    }

    #[test]
    fn production_gets_a_nat_gateway_per_zone_routed_within_its_zone() {
        let t = network_of("ecs", "    lifecycle: production\n");
        assert_eq!(count(&t, "AWS::EC2::NatGateway"), 3);
        assert_eq!(count(&t, "AWS::EC2::EIP"), 3);
        // The public route table and one private table per NAT gateway.
        assert_eq!(count(&t, "AWS::EC2::RouteTable"), 4);
        let mut nats = BTreeSet::new();
        for n in 1..=3 {
            let nat = nat_of_private_subnet(&t, n);
            let private = &t.resources[&format!("PrivateSubnet{n}")];
            assert_eq!(
                zone_of_nat(&t, &nat),
                private.properties["AvailabilityZone"],
                "private subnet {n} leaves through a NAT gateway of another zone"
            );
            nats.insert(nat.to_string());
        }
        assert_eq!(nats.len(), 3);
        assert_eq!(dangling(&t), Vec::<String>::new());
    }

    #[test]
    fn other_lifecycles_keep_one_nat_gateway_with_the_same_ids() {
        for extra in [
            "",
            "    lifecycle: experimental\n",
            "    vpc: { natGateways: 1 }\n    lifecycle: production\n",
        ] {
            let t = network_of("ecs", extra);
            assert_eq!(count(&t, "AWS::EC2::NatGateway"), 1, "{extra}");
            assert_eq!(count(&t, "AWS::EC2::EIP"), 1, "{extra}");
            assert_eq!(count(&t, "AWS::EC2::RouteTable"), 2, "{extra}");
            // The logical ids of a one-gateway VPC are unchanged, so
            // existing stacks see no replacement.
            for id in [
                "NatGateway",
                "NatGatewayEip",
                "PrivateRouteTable",
                "PrivateDefaultRoute",
            ] {
                assert!(t.resources.contains_key(id), "{extra}: {id}");
            }
            for n in 1..=3 {
                assert_eq!(
                    nat_of_private_subnet(&t, n),
                    fns::ref_("NatGateway"),
                    "{extra}"
                );
            }
        }
    }

    #[test]
    fn nat_gateways_overrides_the_lifecycle_default() {
        let t = network_of("ecs", "    vpc: { natGateways: 3 }\n");
        assert_eq!(count(&t, "AWS::EC2::NatGateway"), 3);
        let t = network_of(
            "ecs",
            "    vpc: { natGateways: 2 }\n    lifecycle: production\n",
        );
        assert_eq!(count(&t, "AWS::EC2::NatGateway"), 2);
        assert_eq!(count(&t, "AWS::EC2::EIP"), 2);
        assert_eq!(nat_of_private_subnet(&t, 1), fns::ref_("NatGateway"));
        assert_eq!(nat_of_private_subnet(&t, 2), fns::ref_("NatGateway2"));
        // The third zone shares the first zone's gateway.
        assert_eq!(nat_of_private_subnet(&t, 3), fns::ref_("NatGateway"));
        assert_eq!(dangling(&t), Vec::<String>::new());
    }

    #[test]
    fn nat_gateways_are_validated() {
        let check = |value: Option<u32>, existing: bool| {
            let mut errors = crate::spec::ValidationErrors::default();
            validate_nat_gateways(value, existing, "providers[0].vpc.natGateways", &mut errors);
            errors
                .iter()
                .map(|e| (e.path.clone(), e.message.clone()))
                .collect::<Vec<_>>()
        };
        for ok in [None, Some(1), Some(2), Some(3)] {
            assert_eq!(check(ok, false), [], "{ok:?}");
        }
        assert_eq!(check(None, true), []);
        for bad in [0, 4, u32::MAX] {
            let e = check(Some(bad), false);
            assert_eq!(e.len(), 1, "{bad}");
            assert_eq!(e[0].0, "providers[0].vpc.natGateways");
            assert!(e[0].1.contains("1 to 3"), "{e:?}");
        }
        let e = check(Some(1), true);
        assert!(e[0].1.contains("existing VPC"), "{e:?}");
    }

    #[test]
    fn only_eks_subnets_carry_the_load_balancer_role_tags() {
        let keys = |t: &Template, id: &str| -> Vec<String> {
            t.resources[id].properties["Tags"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x["Key"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let eks = network_of("eks", "");
        assert_eq!(
            keys(&eks, "PublicSubnet2"),
            ["Name", "kubernetes.io/role/elb"]
        );
        assert_eq!(
            keys(&eks, "PrivateSubnet2"),
            ["Name", "kubernetes.io/role/internal-elb"]
        );
        let ecs = network_of("ecs", "");
        assert_eq!(keys(&ecs, "PublicSubnet2"), ["Name"]);
        assert_eq!(keys(&ecs, "PrivateSubnet2"), ["Name"]);
    }

    #[test]
    fn subnet_parameter_names() {
        assert_eq!(subnet_cidr_param(true, 1), "PublicSubnet1Cidr");
        assert_eq!(subnet_cidr_param(false, 3), "PrivateSubnet3Cidr");
    }
}
