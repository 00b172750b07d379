//! ECS environment providers: Fargate (`ecs`) and EC2 capacity (`ecs-ec2`).
//!
//! Creates, on top of [`common::foundation`](super::common::foundation): an
//! ECS cluster with Container Insights and KMS-encrypted, logged ECS Exec;
//! Fargate and Fargate Spot capacity providers; for `ecs-ec2` also an
//! instance role and profile, a launch template (ECS-optimized Amazon Linux
//! 2023 from the public SSM parameter, IMDSv2, encrypted volumes) and an
//! Auto Scaling group in the private subnets behind a managed-scaling
//! capacity provider.

use serde_json::{Value, json};

use super::common::{self, ids, outputs};
use super::names::{DerivedName, NameKind, Names};
use super::{EnvironmentProvider, StackDefinition, StackOutputs};
use crate::catalog::{Entity, ProviderEntity};
use crate::spec::{
    Ec2Capacity, ProviderKind, ProviderSpec, ResolvedVpc, ValidProvider, ValidationErrors,
};
use crate::template::{Output, Parameter, Resource, Template, fns};

/// Logical id of the ECS cluster.
pub const CLUSTER: &str = "Cluster";
/// Default EC2 instance type of `ecs-ec2`.
pub const DEFAULT_INSTANCE_TYPE: &str = "t3.medium";
/// Public SSM parameter with the current ECS-optimized AMI.
pub const ECS_AMI_PARAMETER: &str =
    "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id";

/// ECS on AWS Fargate.
#[derive(Debug, Clone, Copy, Default)]
pub struct EcsProvider;

/// ECS on EC2 instances.
#[derive(Debug, Clone, Copy, Default)]
pub struct EcsEc2Provider;

impl EnvironmentProvider for EcsProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Ecs
    }
    fn summary(&self) -> &'static str {
        "Amazon ECS cluster on AWS Fargate"
    }
    fn validate(&self, spec: &ProviderSpec, path: &str, errors: &mut ValidationErrors) {
        if spec.ecs.as_ref().is_some_and(|e| e.capacity.is_some()) {
            errors.push(
                format!("{path}.ecs.capacity"),
                None,
                "EC2 capacity is only allowed for kind `ecs-ec2`; kind `ecs` runs on Fargate",
            );
        }
    }
    fn derived_names(&self, spec: &ProviderSpec, path: &str) -> Vec<DerivedName> {
        ecs_names(spec, path, false)
    }
    fn stacks(&self, spec: ValidProvider<'_>) -> Vec<StackDefinition> {
        vec![ecs_stack(&spec, None)]
    }
    fn catalog_entity(&self, spec: ValidProvider<'_>, outputs: &StackOutputs) -> Entity {
        ecs_entity(&spec, outputs)
    }
}

impl EnvironmentProvider for EcsEc2Provider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::EcsEc2
    }
    fn summary(&self) -> &'static str {
        "Amazon ECS cluster on EC2 instances (Auto Scaling group capacity provider)"
    }
    fn validate(&self, spec: &ProviderSpec, path: &str, errors: &mut ValidationErrors) {
        if let ResolvedVpc::Existing {
            private_subnet_ids, ..
        } = spec.resolved_vpc()
            && private_subnet_ids.is_empty()
        {
            errors.push(
                format!("{path}.vpc.privateSubnetIds"),
                None,
                "kind `ecs-ec2` in an existing VPC needs the private subnet ids for its instances",
            );
        }
        if let Some(c) = spec.ecs.as_ref().and_then(|e| e.capacity.as_ref()) {
            super::common::validate_capacity(c, &format!("{path}.ecs.capacity"), errors);
        }
    }
    fn derived_names(&self, spec: &ProviderSpec, path: &str) -> Vec<DerivedName> {
        ecs_names(spec, path, true)
    }
    fn stacks(&self, spec: ValidProvider<'_>) -> Vec<StackDefinition> {
        let default = Ec2Capacity {
            instance_types: Vec::new(),
            min_size: None,
            desired_size: None,
            max_size: None,
        };
        let cap = spec
            .ecs
            .as_ref()
            .and_then(|e| e.capacity.clone())
            .unwrap_or(default);
        vec![ecs_stack(&spec, Some(&cap))]
    }
    fn catalog_entity(&self, spec: ValidProvider<'_>, outputs: &StackOutputs) -> Entity {
        ecs_entity(&spec, outputs)
    }
}

fn ecs_names(spec: &ProviderSpec, path: &str, ec2: bool) -> Vec<DerivedName> {
    let names = Names::of(spec);
    let at = format!("{path}.name");
    let mut v = names.derived(path);
    v.push(DerivedName::new(NameKind::EcsCluster, &names.cluster, &at));
    if matches!(spec.resolved_vpc(), ResolvedVpc::New { .. }) {
        v.push(DerivedName::new(
            NameKind::IamRole,
            format!("{}-flow-logs-role", names.base),
            &at,
        ));
    }
    if ec2 {
        v.push(DerivedName::new(
            NameKind::IamRole,
            format!("{}-ecs-instance-role", names.base),
            &at,
        ));
        v.push(DerivedName::new(
            NameKind::Ec2Group,
            format!("{}-ecs-instances", names.base),
            &at,
        ));
    }
    v
}

/// `arn:…:ecs:…:{kind}/{cluster}/*`: the services or tasks of this cluster.
/// ECS authorizes service and task actions against these ARNs, which
/// carry the cluster name, not against the cluster's ARN
/// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html#amazonelasticcontainerservice-resources-for-iam-policies).
fn in_cluster(kind: &str) -> Value {
    fns::sub(&format!(
        "arn:${{AWS::Partition}}:ecs:${{AWS::Region}}:${{AWS::AccountId}}:{kind}/${{Prefix}}-${{EnvironmentName}}-cluster/*"
    ))
}

/// `actions` on `*`, only for requests naming this cluster: for the
/// actions the reference gives no resource type of their own to scope by
/// (`ListServices`) or one a caller cannot name in advance (`ListTasks`
/// authorizes against container instances; Fargate has none), with
/// the `ecs:cluster` condition key. AWS's own guide answered the same for
/// `ListTasks`: https://github.com/awsdocs/amazon-ecs-developer-guide/issues/211.
fn on_cluster_condition(sid: &str, actions: &[&str]) -> Value {
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions,
        "Resource": "*",
        "Condition": { "ArnEquals": { "ecs:cluster": fns::get_att(CLUSTER, "Arn") } }
    })
}

/// ECS statements of the operations role: run and manage tasks and
/// services in this cluster only.
fn operations_statements() -> Vec<Value> {
    vec![
        common::allow(
            &["ecs:DescribeClusters"],
            vec![fns::get_att(CLUSTER, "Arn")],
        ),
        common::allow(
            &["ecs:DescribeServices", "ecs:UpdateService"],
            vec![in_cluster("service")],
        ),
        common::allow(
            &["ecs:DescribeTasks", "ecs:StopTask"],
            vec![in_cluster("task")],
        ),
        on_cluster_condition("ListInCluster", &["ecs:ListServices", "ecs:ListTasks"]),
        // No resource types: `*` only.
        common::allow(
            &["ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions"],
            vec![json!("*")],
        ),
    ]
}

/// ECS statements of the provisioning role: deploy services into this
/// cluster and pass roles under the environment's prefix.
fn provisioning_statements() -> Vec<Value> {
    let mut v = operations_statements();
    v.push(common::allow(
        &["ecs:CreateService", "ecs:DeleteService"],
        vec![in_cluster("service")],
    ));
    v.push(common::allow(
        &["ecs:TagResource"],
        vec![
            fns::get_att(CLUSTER, "Arn"),
            in_cluster("service"),
            in_cluster("task"),
        ],
    ));
    // `RunTask` authorizes against the task definition; the condition
    // keeps the tasks in this cluster.
    v.push(json!({
        "Sid": "RunTasksInCluster",
        "Effect": "Allow",
        "Action": ["ecs:RunTask"],
        "Resource": fns::sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task-definition/*"),
        "Condition": { "ArnEquals": { "ecs:cluster": fns::get_att(CLUSTER, "Arn") } }
    }));
    // Applications choose their task definition families; deregistering
    // has no resource type.
    v.push(json!({
        "Sid": "TaskDefinitions",
        "Effect": "Allow",
        "Action": ["ecs:RegisterTaskDefinition", "ecs:DeregisterTaskDefinition"],
        "Resource": ["*"]
    }));
    v.push(json!({
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": fns::sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${Prefix}-${EnvironmentName}-*"),
        "Condition": { "StringEquals": { "iam:PassedToService": "ecs-tasks.amazonaws.com" } }
    }));
    v
}

fn ecs_stack(spec: &ProviderSpec, ec2: Option<&Ec2Capacity>) -> StackDefinition {
    let what = if ec2.is_some() { "EC2" } else { "Fargate" };
    let (mut t, mut values) = common::base_template(
        &format!(
            "Harmonix ECS ({what}) environment: VPC, ECS cluster, KMS key, log group, audit table, operations and provisioning roles"
        ),
        spec,
    );
    let net = common::foundation(&mut t, spec, &mut values);
    let insights = spec
        .ecs
        .as_ref()
        .and_then(|e| e.container_insights)
        .unwrap_or(true);
    t.resource(
        CLUSTER,
        Resource::new("AWS::ECS::Cluster")
            .property("ClusterName", common::name_sub("-cluster"))
            .property(
                "ClusterSettings",
                json!([{ "Name": "containerInsights", "Value": if insights { "enabled" } else { "disabled" } }]),
            )
            .property(
                "Configuration",
                json!({
                    "ExecuteCommandConfiguration": {
                        "KmsKeyId": fns::get_att(ids::KMS_KEY, "Arn"),
                        "Logging": "OVERRIDE",
                        "LogConfiguration": {
                            "CloudWatchEncryptionEnabled": true,
                            "CloudWatchLogGroupName": fns::ref_(ids::LOG_GROUP)
                        }
                    }
                }),
            )
            .property("Tags", common::resource_tags(spec)),
    );
    let mut providers = vec![json!("FARGATE"), json!("FARGATE_SPOT")];
    let mut strategy = vec![json!({ "CapacityProvider": "FARGATE", "Weight": 1, "Base": 0 })];
    if let Some(cap) = ec2 {
        ec2_capacity(&mut t, spec, cap, &net);
        providers.push(fns::ref_("CapacityProvider"));
        strategy = vec![
            json!({ "CapacityProvider": fns::ref_("CapacityProvider"), "Weight": 1, "Base": 0 }),
        ];
    }
    t.resource(
        "ClusterCapacityProviders",
        Resource::new("AWS::ECS::ClusterCapacityProviderAssociations")
            .property("Cluster", fns::ref_(CLUSTER))
            .property("CapacityProviders", Value::Array(providers))
            .property("DefaultCapacityProviderStrategy", Value::Array(strategy)),
    );
    common::environment_roles(
        &mut t,
        spec,
        operations_statements(),
        provisioning_statements(),
    );
    common::ssm_parameter(
        &mut t,
        spec,
        "ClusterNameParameter",
        "cluster-name",
        fns::ref_(CLUSTER),
        "Environment ECS cluster name",
    );
    t.output(
        outputs::CLUSTER_NAME,
        Output::new(fns::ref_(CLUSTER)).description("ECS cluster name"),
    );
    t.output(
        outputs::CLUSTER_ARN,
        Output::new(fns::get_att(CLUSTER, "Arn")).description("ECS cluster ARN"),
    );
    common::environment_stack(spec, t, values)
}

fn ec2_capacity(t: &mut Template, spec: &ProviderSpec, cap: &Ec2Capacity, net: &common::Network) {
    let instance_type = cap
        .instance_types
        .first()
        .map_or(DEFAULT_INSTANCE_TYPE, String::as_str);
    let min = cap.min_size.unwrap_or(1);
    let desired = cap.desired_size.unwrap_or(2).max(min);
    let max = cap.max_size.unwrap_or(4).max(desired);
    t.parameter(
        "EcsAmiId",
        Parameter::of_type(
            "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
            "ECS-optimized AMI",
        )
        .default_value(ECS_AMI_PARAMETER),
    );
    t.resource(
        "InstanceRole",
        Resource::new("AWS::IAM::Role")
            .property("RoleName", common::name_sub("-ecs-instance-role"))
            .property("AssumeRolePolicyDocument", common::service_trust_policy("ec2.amazonaws.com"))
            .property(
                "ManagedPolicyArns",
                json!([
                    fns::sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"),
                    fns::sub("arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore")
                ]),
            )
            .property("Tags", common::resource_tags(spec)),
    );
    t.resource(
        "InstanceProfile",
        Resource::new("AWS::IAM::InstanceProfile")
            .property("Roles", json!([fns::ref_("InstanceRole")])),
    );
    t.resource(
        "InstanceSecurityGroup",
        Resource::new("AWS::EC2::SecurityGroup")
            .property("GroupDescription", "ECS container instances: no inbound traffic")
            .property("VpcId", net.vpc_id.clone())
            .property(
                "SecurityGroupEgress",
                json!([{ "IpProtocol": "-1", "CidrIp": "0.0.0.0/0", "Description": "Outbound to AWS APIs and images" }]),
            )
            .property("Tags", common::resource_tags(spec)),
    );
    // Volumes use the account's default EBS key: the Auto Scaling service-linked
    // role cannot use the environment key without a key-policy grant naming a
    // role that may not exist yet in a fresh account.
    let user_data = fns::sub("#!/bin/bash\necho ECS_CLUSTER=${Cluster} >> /etc/ecs/ecs.config\n");
    t.resource(
        "LaunchTemplate",
        Resource::new("AWS::EC2::LaunchTemplate")
            .property("LaunchTemplateName", common::name_sub("-ecs-instances"))
            .property(
                "LaunchTemplateData",
                json!({
                    "ImageId": fns::ref_("EcsAmiId"),
                    "InstanceType": instance_type,
                    "IamInstanceProfile": { "Arn": fns::get_att("InstanceProfile", "Arn") },
                    "SecurityGroupIds": [fns::ref_("InstanceSecurityGroup")],
                    "MetadataOptions": { "HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2 },
                    "BlockDeviceMappings": [{
                        "DeviceName": "/dev/xvda",
                        "Ebs": { "Encrypted": true, "VolumeSize": 30, "VolumeType": "gp3" }
                    }],
                    "Monitoring": { "Enabled": true },
                    "UserData": { "Fn::Base64": user_data }
                }),
            ),
    );
    t.resource(
        "AutoScalingGroup",
        Resource::new("AWS::AutoScaling::AutoScalingGroup")
            .property("AutoScalingGroupName", common::name_sub("-ecs-instances"))
            .property("MinSize", min.to_string())
            .property("DesiredCapacity", desired.to_string())
            .property("MaxSize", max.to_string())
            .property("NewInstancesProtectedFromScaleIn", false)
            .property("VPCZoneIdentifier", net.private_subnets.clone())
            .property(
                "LaunchTemplate",
                json!({ "LaunchTemplateId": fns::ref_("LaunchTemplate"), "Version": fns::get_att("LaunchTemplate", "LatestVersionNumber") }),
            )
            .property(
                "Tags",
                json!([{ "Key": "Name", "Value": common::name_sub("-ecs-instance"), "PropagateAtLaunch": true }]),
            ),
    );
    t.resource(
        "CapacityProvider",
        Resource::new("AWS::ECS::CapacityProvider")
            .property(
                "AutoScalingGroupProvider",
                json!({
                    "AutoScalingGroupArn": fns::ref_("AutoScalingGroup"),
                    "ManagedScaling": { "Status": "ENABLED", "TargetCapacity": 100 },
                    "ManagedTerminationProtection": "DISABLED"
                }),
            )
            .property("Tags", common::resource_tags(spec)),
    );
}

fn ecs_entity(spec: &ProviderSpec, all: &StackOutputs) -> Entity {
    let names = Names::of(spec);
    let out = all.get(&names.stack);
    provider_entity(spec, &names, out)
        .with_cluster(common::output_or(
            out,
            outputs::CLUSTER_NAME,
            &names.cluster,
        ))
        .finish()
}

/// Start a [`ProviderEntity`] with the fields every kind shares.
pub(crate) fn provider_entity(
    spec: &ProviderSpec,
    names: &Names,
    out: Option<&std::collections::BTreeMap<String, String>>,
) -> EntityDraft {
    let account = spec.account.as_str();
    let vpc = match spec.resolved_vpc() {
        ResolvedVpc::Existing { id, .. } => common::output_or(out, outputs::VPC_ID, id),
        ResolvedVpc::New { .. } => common::output_or(out, outputs::VPC_ID, ""),
    };
    let mut tags = vec![
        "aws".to_owned(),
        spec.kind.env_type().to_owned(),
        spec.kind.to_string(),
    ];
    tags.dedup();
    EntityDraft(ProviderEntity {
        name: spec.name.clone(),
        title: spec.name.clone(),
        description: spec
            .description
            .clone()
            .unwrap_or_else(|| format!("{} environment provider {}", spec.kind, spec.name)),
        tags,
        prefix: spec.prefix().to_owned(),
        env_type: spec.kind.env_type().to_owned(),
        aws_account: account.to_owned(),
        aws_region: spec.region.clone(),
        environment_role: spec.environment_role.clone(),
        vpc,
        cluster_name: String::new(),
        operation_role: common::output_or(
            out,
            outputs::OPERATIONS_ROLE_ARN,
            common::role_arn(&spec.region, account, &names.operations_role),
        ),
        provisioning_role: common::output_or(
            out,
            outputs::PROVISIONING_ROLE_ARN,
            common::role_arn(&spec.region, account, &names.provisioning_role),
        ),
        audit_table: common::output_or(out, outputs::AUDIT_TABLE, &names.audit_table),
        stack_name: names.stack.clone(),
        eks: None,
        extra: std::collections::BTreeMap::new(),
        lifecycle: spec.lifecycle().to_owned(),
        owner: spec.owner.clone(),
    })
}

/// A [`ProviderEntity`] being filled in.
#[derive(Debug, Clone)]
pub(crate) struct EntityDraft(pub ProviderEntity);

impl EntityDraft {
    pub(crate) fn with_cluster(mut self, name: String) -> Self {
        self.0.cluster_name = name;
        self
    }
    pub(crate) fn finish(self) -> Entity {
        self.0.into_entity()
    }
}

#[cfg(test)]
#[path = "ecs_tests.rs"]
mod tests;
