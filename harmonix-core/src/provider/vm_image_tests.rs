//! Unit tests of the `vm-image` provider.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::*;
use crate::provider::test_support::{
    entity_of, errors_of, example, paths, prop, render_nth, resource,
};
use crate::spec::{SpecFile, parse_str};

/// A minimal valid provider; tests append `vmImage` options.
const HEAD: &str = r#"providers:
  - kind: vm-image
    name: shop-web
    owner: group:shop
    account: "123456789012"
    region: us-east-1
    environmentRole: arn:aws:iam::123456789012:role/opa-envprovisioning-role
    platformRole: arn:aws:iam::111111111111:role/opa-platform-role
    pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
"#;

/// The smallest `vmImage` section.
const MINIMAL: &str = r"    vmImage:
      frontend: { imageId: ami-0123456789abcdef0, imageVersion: '1.0.0' }
      backend: { imageId: ami-0fedcba9876543210, imageVersion: '2.0.0' }
      loadBalancer: { certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666' }
";

/// `MINIMAL` with both images declared to have the CloudFormation helper
/// scripts (what `rollout.healthSignals` needs).
fn bootstrapped() -> String {
    MINIMAL
        .replace(
            "imageVersion: '1.0.0' }",
            "imageVersion: '1.0.0', cfnBootstrap: true }",
        )
        .replace(
            "imageVersion: '2.0.0' }",
            "imageVersion: '2.0.0', cfnBootstrap: true }",
        )
}

fn spec_with(extra: &str) -> SpecFile {
    parse_str(&format!("{HEAD}{extra}"), "test").unwrap()
}

fn render(file: &SpecFile) -> StackDefinition {
    render_nth(&VmImageProvider, file, 0)
}

fn example_file() -> SpecFile {
    example("vm-image.yaml")
}

/// `file` with `from` replaced by `to` in its YAML form.
fn edited(text: &str, from: &str, to: &str) -> SpecFile {
    assert!(text.contains(from), "{from} not in spec");
    parse_str(&text.replacen(from, to, 1), "test").unwrap()
}

fn example_text() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs/vm-image.yaml"),
    )
    .unwrap()
}

/// Logical ids whose resource differs between two renderings (added,
/// removed or changed).
fn changed_resources(a: &StackDefinition, b: &StackDefinition) -> BTreeSet<String> {
    let ids: BTreeSet<&String> = a
        .template
        .resources
        .keys()
        .chain(b.template.resources.keys())
        .collect();
    ids.into_iter()
        .filter(|id| a.template.resources.get(*id) != b.template.resources.get(*id))
        .cloned()
        .collect()
}

fn of_type<'a>(s: &'a StackDefinition, kind: &str) -> Vec<&'a str> {
    s.template
        .resources
        .iter()
        .filter(|(_, r)| r.kind == kind)
        .map(|(id, _)| id.as_str())
        .collect()
}

fn lt_data(s: &StackDefinition, role: Role) -> &Value {
    prop(s, &role.launch_template(), "LaunchTemplateData")
}

fn rolling(s: &StackDefinition, role: Role) -> &Value {
    &resource(s, &role.group()).update_policy.as_ref().unwrap()["AutoScalingRollingUpdate"]
}

fn skips(s: &StackDefinition, id: &str) -> Vec<String> {
    resource(s, id)
        .metadata
        .get("checkov")
        .and_then(|c| c.get("skip"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn example_renders_groups_behind_load_balancers() {
    let s = render(&example_file());
    assert_eq!(s.name, "opa-shop-web-environment");
    assert_eq!(s.capabilities, ["CAPABILITY_NAMED_IAM"]);
    assert!(
        s.template.dangling_references().is_empty(),
        "{:?}",
        s.template.dangling_references()
    );
    assert_eq!(
        of_type(&s, "AWS::AutoScaling::AutoScalingGroup"),
        ["BackendGroup", "FrontendGroup"]
    );
    assert_eq!(
        of_type(&s, "AWS::EC2::LaunchTemplate"),
        ["BackendLaunchTemplate", "FrontendLaunchTemplate"]
    );
    assert_eq!(
        of_type(&s, "AWS::ElasticLoadBalancingV2::LoadBalancer"),
        [BACKEND_LOAD_BALANCER, LOAD_BALANCER]
    );
    assert_eq!(of_type(&s, "AWS::IAM::InstanceProfile").len(), 2);
    assert_eq!(
        of_type(&s, "AWS::IAM::ServiceLinkedRole"),
        [AUTOSCALING_ROLE]
    );
    for id in [
        "EnvironmentKey",
        "EnvironmentLogGroup",
        "AuditTable",
        "Vpc",
        "OperationsRole",
        "ProvisioningRole",
        BACKEND_URL_PARAMETER,
    ] {
        resource(&s, id);
    }
    // The log group: retention from the spec, the environment key.
    assert_eq!(
        prop(&s, "EnvironmentLogGroup", "RetentionInDays"),
        &json!(30)
    );
    assert_eq!(
        prop(&s, "EnvironmentLogGroup", "KmsKeyId"),
        &fns::get_att("EnvironmentKey", "Arn")
    );
    // Only the shared template parameters: images live in the resources.
    assert!(
        s.parameters.keys().all(|k| k == "Prefix"
            || k == "EnvironmentName"
            || k == "VpcCidr"
            || k.contains("Subnet")),
        "{:?}",
        s.parameters
    );
    // Groups: private subnets, ELB health checks, sizes from the spec.
    let g = |p: &str| prop(&s, "BackendGroup", p).clone();
    assert_eq!(g("MinSize"), json!("2"));
    assert_eq!(g("DesiredCapacity"), json!("3"));
    assert_eq!(g("MaxSize"), json!("6"));
    assert_eq!(g("HealthCheckType"), json!("ELB"));
    assert_eq!(g("HealthCheckGracePeriod"), json!(300));
    assert_eq!(
        g("VPCZoneIdentifier"),
        json!([{ "Ref": "PrivateSubnet1" }, { "Ref": "PrivateSubnet2" }, { "Ref": "PrivateSubnet3" }])
    );
    assert_eq!(
        g("TargetGroupARNs"),
        json!([{ "Ref": "BackendTargetGroup" }])
    );
    assert_eq!(g("ServiceLinkedRoleARN"), autoscaling_role_arn());
    assert!(
        resource(&s, "BackendGroup")
            .depends_on
            .contains(AUTOSCALING_ROLE)
    );
    assert_eq!(
        g("LaunchTemplate"),
        json!({
            "LaunchTemplateId": { "Ref": "BackendLaunchTemplate" },
            "Version": { "Fn::GetAtt": ["BackendLaunchTemplate", "LatestVersionNumber"] }
        })
    );
    // The frontend load balancer: public subnets, HTTPS with the spec's
    // certificate, HTTP only redirects.
    assert_eq!(
        prop(&s, LOAD_BALANCER, "Subnets"),
        &json!([{ "Ref": "PublicSubnet1" }, { "Ref": "PublicSubnet2" }, { "Ref": "PublicSubnet3" }])
    );
    assert_eq!(prop(&s, LOAD_BALANCER, "Scheme"), &json!("internet-facing"));
    assert_eq!(
        prop(&s, BACKEND_LOAD_BALANCER, "Scheme"),
        &json!("internal")
    );
    assert_eq!(
        prop(&s, HTTPS_LISTENER, "Certificates"),
        &json!([{ "CertificateArn": "arn:aws:iam::123456789012:server-certificate/shop-web" }])
    );
    assert_eq!(prop(&s, HTTPS_LISTENER, "SslPolicy"), &json!(SSL_POLICY));
    assert_eq!(
        prop(&s, HTTP_LISTENER, "DefaultActions")[0]["Type"],
        json!("redirect")
    );
    let attrs = prop(&s, LOAD_BALANCER, "LoadBalancerAttributes");
    assert!(attrs.as_array().unwrap().contains(
        &json!({ "Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true" })
    ));
    assert!(
        attrs
            .as_array()
            .unwrap()
            .contains(&json!({ "Key": "deletion_protection.enabled", "Value": "true" }))
    );
    // Health checks of the roles' target groups.
    assert_eq!(prop(&s, "BackendTargetGroup", "Port"), &json!(9000));
    assert_eq!(
        prop(&s, "BackendTargetGroup", "HealthCheckPath"),
        &json!("/api/health")
    );
    assert_eq!(prop(&s, "FrontendTargetGroup", "Port"), &json!(8080));
}

#[test]
fn instances_need_imdsv2_and_encrypt_their_volumes_with_the_environment_key() {
    let s = render(&example_file());
    for role in Role::ALL {
        let d = lt_data(&s, role);
        assert_eq!(d["MetadataOptions"]["HttpTokens"], json!("required"));
        assert_eq!(d["MetadataOptions"]["HttpPutResponseHopLimit"], json!(1));
        let ebs = &d["BlockDeviceMappings"][0]["Ebs"];
        assert_eq!(ebs["Encrypted"], json!(true));
        assert_eq!(ebs["KmsKeyId"], fns::get_att("EnvironmentKey", "Arn"));
        assert_eq!(ebs["VolumeType"], json!("gp3"));
        assert_eq!(
            d["BlockDeviceMappings"][0]["DeviceName"],
            json!("/dev/xvda")
        );
        assert!(d.get("UserData").is_none(), "no user data without signals");
        assert!(d.get("KeyName").is_none(), "no SSH key");
        assert_eq!(
            d["IamInstanceProfile"]["Arn"],
            fns::get_att(&role.instance_profile(), "Arn")
        );
    }
    // The key names the groups' service-linked role and is made after it.
    let key = resource(&s, "EnvironmentKey");
    assert!(key.depends_on.contains(AUTOSCALING_ROLE));
    let statements = key.properties["KeyPolicy"]["Statement"].as_array().unwrap();
    let sids: Vec<&str> = statements
        .iter()
        .filter_map(|s| s["Sid"].as_str())
        .collect();
    assert!(sids.contains(&"AutoScalingVolumes") && sids.contains(&"AutoScalingVolumeGrants"));
    for st in statements {
        assert_ne!(st["Principal"], json!("*"));
        assert_ne!(st["Principal"]["AWS"], json!("*"));
    }
    let grant = statements
        .iter()
        .find(|s| s["Sid"] == "AutoScalingVolumeGrants")
        .unwrap();
    assert_eq!(grant["Principal"]["AWS"], autoscaling_role_arn());
    assert_eq!(
        grant["Condition"]["Bool"]["kms:GrantIsForAWSResource"],
        json!(true)
    );
    assert_eq!(
        prop(&s, AUTOSCALING_ROLE, "AWSServiceName"),
        &json!("autoscaling.amazonaws.com")
    );
    assert_eq!(
        prop(&s, AUTOSCALING_ROLE, "CustomSuffix"),
        &fns::sub("${Prefix}-${EnvironmentName}")
    );
}

#[test]
fn security_groups_chain_the_tiers() {
    let s = render(&example_file());
    // The load balancer: 443 and 80 from the allowed CIDRs; out to the
    // frontend instances only.
    let lb_in = prop(&s, LOAD_BALANCER_SG, "SecurityGroupIngress")
        .as_array()
        .unwrap();
    let ports: Vec<i64> = lb_in
        .iter()
        .filter_map(|r| r["FromPort"].as_i64())
        .collect();
    assert_eq!(ports, [443, 80]);
    assert!(lb_in.iter().all(|r| r["CidrIp"] == "0.0.0.0/0"));
    assert_eq!(
        prop(&s, LOAD_BALANCER_SG, "SecurityGroupEgress"),
        &json!([{
            "IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
            "Description": "To the frontend instances",
            "DestinationSecurityGroupId": { "Ref": "FrontendSecurityGroup" }
        }])
    );
    // Instances take traffic from their load balancer only.
    let rule = |id: &str| {
        let r = resource(&s, id);
        (
            r.properties["GroupId"].clone(),
            r.properties["SourceSecurityGroupId"].clone(),
            r.properties["FromPort"].clone(),
        )
    };
    assert_eq!(
        rule("FrontendIngressFromLoadBalancer"),
        (
            fns::ref_("FrontendSecurityGroup"),
            fns::ref_(LOAD_BALANCER_SG),
            json!(8080)
        )
    );
    assert_eq!(
        rule(BACKEND_LOAD_BALANCER_INGRESS),
        (
            fns::ref_(BACKEND_LOAD_BALANCER_SG),
            fns::ref_("FrontendSecurityGroup"),
            json!(80)
        )
    );
    assert_eq!(
        rule("BackendIngressFromLoadBalancer"),
        (
            fns::ref_("BackendSecurityGroup"),
            fns::ref_(BACKEND_LOAD_BALANCER_SG),
            json!(9000)
        )
    );
    // Nothing else reaches the backend side, and no group takes traffic
    // from a CIDR except the public load balancer.
    let ingress_rules = of_type(&s, "AWS::EC2::SecurityGroupIngress");
    assert_eq!(ingress_rules.len(), 3, "{ingress_rules:?}");
    for id in of_type(&s, "AWS::EC2::SecurityGroup") {
        if id != LOAD_BALANCER_SG {
            assert!(
                !resource(&s, id)
                    .properties
                    .contains_key("SecurityGroupIngress"),
                "{id}"
            );
        }
    }
    // Every rule is described (checkov CKV_AWS_23).
    for id in of_type(&s, "AWS::EC2::SecurityGroup") {
        for dir in ["SecurityGroupIngress", "SecurityGroupEgress"] {
            for r in resource(&s, id)
                .properties
                .get(dir)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                assert!(
                    r["Description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{id}"
                );
            }
        }
    }
    // The backend listener is internal HTTP (suppressed with a reason).
    assert_eq!(prop(&s, BACKEND_LISTENER, "Protocol"), &json!("HTTP"));
    assert_eq!(skips(&s, BACKEND_LISTENER), ["CKV_AWS_2", "CKV_AWS_103"]);
    assert_eq!(skips(&s, LOAD_BALANCER_SG), ["CKV_AWS_260"]);
    assert!(skips(&s, LOAD_BALANCER).is_empty());
}

#[test]
fn access_logs_go_to_a_private_bucket_of_the_stack_by_default() {
    let s = render(&example_file());
    let bucket = resource(&s, ACCESS_LOGS_BUCKET);
    assert_eq!(bucket.kind, "AWS::S3::Bucket");
    assert_eq!(bucket.deletion_policy.as_deref(), Some("Retain"));
    assert_eq!(
        bucket.properties["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"],
        json!(30),
        "the environment's log retention"
    );
    assert_eq!(
        bucket.properties["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"],
        json!(true)
    );
    assert_eq!(
        bucket.properties["VersioningConfiguration"]["Status"],
        json!("Enabled")
    );
    assert_eq!(skips(&s, ACCESS_LOGS_BUCKET), ["CKV_AWS_18"]);
    let statement = &prop(&s, ACCESS_LOGS_BUCKET_POLICY, "PolicyDocument")["Statement"];
    assert_eq!(statement.as_array().map(Vec::len), Some(1));
    assert_eq!(
        statement[0]["Principal"],
        json!({ "AWS": "arn:aws:iam::127311923021:root" }),
        "the us-east-1 log delivery account"
    );
    assert_eq!(statement[0]["Action"], json!("s3:PutObject"));
    assert_eq!(
        statement[0]["Resource"],
        fns::sub(
            "${AccessLogsBucket.Arn}/${Prefix}/${EnvironmentName}/*/AWSLogs/${AWS::AccountId}/*"
        )
    );
    for (lb, role) in [
        (LOAD_BALANCER, "frontend"),
        (BACKEND_LOAD_BALANCER, "backend"),
    ] {
        let attrs = prop(&s, lb, "LoadBalancerAttributes").as_array().unwrap();
        assert!(attrs.contains(&json!({ "Key": "access_logs.s3.enabled", "Value": "true" })));
        assert!(attrs.contains(
            &json!({ "Key": "access_logs.s3.bucket", "Value": { "Ref": ACCESS_LOGS_BUCKET } })
        ));
        assert!(attrs.contains(&json!({
            "Key": "access_logs.s3.prefix",
            "Value": fns::sub(&format!("${{Prefix}}/${{EnvironmentName}}/{role}"))
        })));
        assert!(
            resource(&s, lb)
                .depends_on
                .contains(ACCESS_LOGS_BUCKET_POLICY)
        );
    }
    // Regions without a documented log delivery account use the service.
    let text = format!("{HEAD}{MINIMAL}").replace("region: us-east-1", "region: mx-central-1");
    let s = render(&parse_str(&text, "t").unwrap());
    assert_eq!(
        prop(&s, ACCESS_LOGS_BUCKET_POLICY, "PolicyDocument")["Statement"][0]["Principal"],
        json!({ "Service": "logdelivery.elasticloadbalancing.amazonaws.com" })
    );
}

#[test]
fn instance_roles_are_scoped_to_their_role() {
    let s = render(&example_file());
    for role in Role::ALL {
        let r = resource(&s, &role.instance_role());
        assert_eq!(
            r.properties["AssumeRolePolicyDocument"]["Statement"][0]["Principal"],
            json!({ "Service": "ec2.amazonaws.com" })
        );
        assert!(!r.properties.contains_key("ManagedPolicyArns"));
        let statements = r.properties["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap();
        let ssm = statements
            .iter()
            .find(|st| st["Action"][0] == "ssm:GetParameter")
            .unwrap();
        let text = ssm["Resource"].to_string();
        assert!(
            text.contains(&format!("${{EnvironmentName}}/{}", role.key())),
            "{text}"
        );
        for st in statements {
            for a in st["Action"].as_array().unwrap() {
                let a = a.as_str().unwrap();
                assert!(!a.ends_with(":*") && a != "*", "{a}");
            }
            if st["Resource"] == json!(["*"]) {
                assert!(
                    st["Action"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|a| a.as_str().unwrap().starts_with("ssmmessages:")),
                    "{st}"
                );
            }
        }
        assert_eq!(
            prop(&s, &role.instance_profile(), "Roles"),
            &json!([{ "Ref": role.instance_role() }])
        );
    }
    // The operations role steers only this environment's groups.
    let ops = prop(&s, "OperationsRole", "Policies")[0]["PolicyDocument"]["Statement"].clone();
    let steer = ops
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["Action"].to_string().contains("StartInstanceRefresh"))
        .unwrap()
        .clone();
    assert_eq!(steer["Resource"], json!([groups_arn()]));
}

#[test]
fn rolling_update_keeps_the_minimum_healthy_count_in_service() {
    let s = render(&example_file());
    // Backend: desired 3, max 6, 100% → keep 3; one at a time, each
    // replacement launched first (within max).
    assert_eq!(
        rolling(&s, Role::Backend),
        &json!({
            "MinInstancesInService": 3,
            "MaxBatchSize": 1,
            "PauseTime": "PT300S",
            "WaitOnResourceSignals": false,
            "SuspendProcesses": ["AlarmNotification", "AZRebalance", "HealthCheck", "ReplaceUnhealthy", "ScheduledActions"]
        })
    );
    // Frontend: desired 2, max 4 → keep 2, batches of 1, pause = grace.
    let f = rolling(&s, Role::Frontend);
    assert_eq!(f["MinInstancesInService"], json!(2));
    assert_eq!(f["MaxBatchSize"], json!(1));
    assert_eq!(f["PauseTime"], json!("PT120S"));
    assert!(resource(&s, "FrontendGroup").creation_policy.is_none());

    // 50% of 3, rounded up: 2 in service; batches of 1 within max 3.
    let text = example_text()
        .replace("minHealthyPercentage: 100", "minHealthyPercentage: 50")
        .replace("maxSize: 6", "maxSize: 3");
    let s = render(&parse_str(&text, "t").unwrap());
    let b = rolling(&s, Role::Backend);
    assert_eq!(b["MinInstancesInService"], json!(2));
    assert_eq!(b["MaxBatchSize"], json!(1));
    // 50% of 2: 1 in service, so 1 old instance out at a time (not 2,
    // which would leave only a starting instance in service).
    let f = rolling(&s, Role::Frontend);
    assert_eq!(f["MinInstancesInService"], json!(1));
    assert_eq!(f["MaxBatchSize"], json!(1));
}

/// A group of `desired` (min 1) and `max` under `pct`: its validation
/// errors and, when valid, its rolling-update numbers.
fn rollout_case(desired: u32, max: u32, pct: u32) -> (Vec<String>, Option<(u64, u64)>) {
    let role = format!("minSize: 1, desiredSize: {desired}, maxSize: {max}");
    let extra = format!(
        "{}      rollout: {{ minHealthyPercentage: {pct} }}\n",
        MINIMAL
            .replace(
                "imageVersion: '1.0.0' }",
                &format!("imageVersion: '1.0.0', {role} }}")
            )
            .replace(
                "imageVersion: '2.0.0' }",
                &format!("imageVersion: '2.0.0', {role} }}")
            )
    );
    let file = spec_with(&extra);
    let errors: Vec<String> = paths(&errors_of(&VmImageProvider, &file))
        .into_iter()
        .map(str::to_owned)
        .collect();
    if !errors.is_empty() {
        return (errors, None);
    }
    let s = render(&file);
    let r = rolling(&s, Role::Frontend);
    let n = |k: &str| r[k].as_u64().unwrap();
    (
        errors,
        Some((n("MinInstancesInService"), n("MaxBatchSize"))),
    )
}

#[test]
fn rolling_batches_never_take_out_more_than_the_share_allows() {
    // (desired, max, percent) → (MinInstancesInService, MaxBatchSize).
    let valid = [
        ((1, 2, 100), (1, 1)),
        ((1, 2, 50), (1, 1)),
        ((1, 1, 0), (0, 1)),
        ((2, 3, 100), (2, 1)),
        ((2, 4, 100), (2, 1)),
        ((2, 2, 50), (1, 1)),
        ((2, 4, 50), (1, 1)),
        ((2, 2, 0), (0, 2)),
        ((3, 4, 100), (3, 1)),
        ((3, 3, 50), (2, 1)),
        ((3, 6, 50), (2, 1)),
        ((3, 3, 0), (0, 3)),
        ((4, 4, 50), (2, 2)),
    ];
    for ((desired, max, pct), expected) in valid {
        let (errors, numbers) = rollout_case(desired, max, pct);
        assert!(errors.is_empty(), "{desired}/{max} {pct}%: {errors:?}");
        let (in_service, batch) = numbers.unwrap();
        assert_eq!((in_service, batch), expected, "{desired}/{max} {pct}%");
        // AWS: MinInstancesInService below MaxSize; a batch takes out at
        // most desired − in service (1 when that is 0, launched first
        // within MaxSize).
        assert!(in_service < u64::from(max), "{desired}/{max} {pct}%");
        assert!(batch >= 1 && batch <= (u64::from(desired) - in_service).max(1));
        assert!(in_service + batch <= u64::from(max).max(u64::from(desired)));
    }
    // Keeping every instance (or, for 1 instance, any) in service needs
    // room for one more: validation says so instead of AWS failing the
    // update ("MinInstancesInService must be less than the autoscaling
    // group's MaxSize").
    for (desired, max, pct) in [
        (1, 1, 100),
        (1, 1, 50),
        (2, 2, 100),
        (3, 3, 100),
        (3, 3, 67),
    ] {
        let (errors, _) = rollout_case(desired, max, pct);
        assert_eq!(
            errors,
            [
                "providers[0].vmImage.frontend.maxSize",
                "providers[0].vmImage.backend.maxSize"
            ],
            "{desired}/{max} {pct}%"
        );
    }
}

#[test]
fn rolling_numbers() {
    assert_eq!(min_in_service(2, 100), 2);
    assert_eq!(min_in_service(3, 50), 2);
    assert_eq!(min_in_service(3, 0), 0);
    assert_eq!(min_in_service(10, 90), 9);
    assert_eq!(min_in_service(1, 1), 1);
    assert_eq!(min_in_service(0, 100), 0);
    assert_eq!(min_in_service(u32::MAX, 100), u32::MAX);
    assert_eq!(min_in_service(5, 1000), 5, "capped at 100%");
    for desired in 0..20 {
        for pct in [0, 1, 33, 50, 67, 99, 100] {
            let n = min_in_service(desired, pct);
            assert!(n <= desired);
            assert!(u64::from(n) * 100 >= u64::from(desired) * u64::from(pct));
            let b = max_batch(desired, n);
            assert!(b >= 1 && (b <= desired || desired == 0));
            assert!(n + b <= desired.max(n + 1), "{desired} {pct}");
        }
    }
}

#[test]
fn a_frontend_image_change_alters_only_frontend_resources() {
    let text = example_text();
    let before = render(&example_file());
    let after = render(&edited(
        &text,
        "imageId: ami-0a1b2c3d4e5f60718          # or imageParameter: an SSM parameter name\n        imageVersion: \"1.4.2\"",
        "imageId: ami-0fedcba9876543210\n        imageVersion: \"1.5.0\"",
    ));
    assert_eq!(
        changed_resources(&before, &after),
        BTreeSet::from([
            "FrontendGroup".to_owned(),
            "FrontendLaunchTemplate".to_owned()
        ])
    );
    assert_eq!(before.parameters, after.parameters);
    assert_eq!(before.tags, after.tags);
    let d = lt_data(&after, Role::Frontend);
    assert_eq!(d["ImageId"], json!("ami-0fedcba9876543210"));
    assert_eq!(
        prop(&after, "FrontendLaunchTemplate", "VersionDescription"),
        &json!("frontend 1.5.0")
    );
    let tags = prop(&after, "FrontendGroup", "Tags").as_array().unwrap();
    assert!(tags.contains(
        &json!({ "Key": "harmonix:image-version", "Value": "1.5.0", "PropagateAtLaunch": true })
    ));
    let changed_outputs: Vec<&String> = after
        .template
        .outputs
        .iter()
        .filter(|(k, v)| before.template.outputs.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(changed_outputs, ["FrontendImageVersion"]);
    assert_ne!(before.content_hash(), after.content_hash());

    // A version label alone (same image) also rolls exactly the frontend.
    let relabelled = render(&edited(
        &text,
        "imageVersion: \"1.4.2\"",
        "imageVersion: \"1.4.2-r2\"",
    ));
    assert_eq!(
        changed_resources(&before, &relabelled),
        BTreeSet::from([
            "FrontendGroup".to_owned(),
            "FrontendLaunchTemplate".to_owned()
        ])
    );
}

#[test]
fn a_backend_image_change_alters_only_backend_resources() {
    let text = example_text();
    let before = render(&example_file());
    let after = render(&edited(
        &text,
        "imageParameter: /opa/shop-web/images/backend/2.0.1\n        imageVersion: \"2.0.1\"",
        "imageParameter: /opa/shop-web/images/backend/2.1.0\n        imageVersion: \"2.1.0\"",
    ));
    assert_eq!(
        changed_resources(&before, &after),
        BTreeSet::from([
            "BackendGroup".to_owned(),
            "BackendLaunchTemplate".to_owned()
        ])
    );
    assert_eq!(
        lt_data(&after, Role::Backend)["ImageId"],
        json!("{{resolve:ssm:/opa/shop-web/images/backend/2.1.0}}")
    );
}

#[test]
fn other_changes_do_not_touch_the_launch_templates() {
    let text = example_text();
    let before = render(&example_file());
    let after = render(&edited(
        &text,
        "minSize: 2\n        desiredSize: 3",
        "minSize: 3\n        desiredSize: 3",
    ));
    assert_eq!(
        changed_resources(&before, &after),
        BTreeSet::from(["BackendGroup".to_owned()])
    );
}

#[test]
fn several_instance_types_make_a_mixed_instances_group() {
    let s = render(&example_file());
    let g = resource(&s, "FrontendGroup");
    assert!(!g.properties.contains_key("LaunchTemplate"));
    let mip = &g.properties["MixedInstancesPolicy"];
    assert_eq!(
        mip["LaunchTemplate"]["Overrides"],
        json!([{ "InstanceType": "t3.small" }, { "InstanceType": "t3a.small" }])
    );
    assert_eq!(
        mip["InstancesDistribution"]["OnDemandPercentageAboveBaseCapacity"],
        json!(100)
    );
    assert_eq!(
        mip["LaunchTemplate"]["LaunchTemplateSpecification"]["Version"],
        fns::get_att("FrontendLaunchTemplate", "LatestVersionNumber")
    );
    assert_eq!(
        lt_data(&s, Role::Frontend)["InstanceType"],
        json!("t3.small")
    );
}

#[test]
fn minimal_section_uses_the_defaults() {
    let s = render(&spec_with(MINIMAL));
    for role in Role::ALL {
        let d = lt_data(&s, role);
        assert_eq!(d["InstanceType"], json!("t3.small"));
        assert_eq!(d["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"], json!(20));
        let g = resource(&s, &role.group());
        assert_eq!(g.properties["MinSize"], json!("2"));
        assert_eq!(g.properties["DesiredCapacity"], json!("2"));
        assert_eq!(g.properties["MaxSize"], json!("4"));
        assert_eq!(g.properties["HealthCheckGracePeriod"], json!(300));
        assert_eq!(prop(&s, &role.target_group(), "Port"), &json!(8080));
        assert_eq!(
            prop(&s, &role.target_group(), "HealthCheckPath"),
            &json!("/health")
        );
        assert_eq!(rolling(&s, role)["MinInstancesInService"], json!(2));
    }
    assert_eq!(
        prop(&s, LOAD_BALANCER_SG, "SecurityGroupIngress")[0]["CidrIp"],
        json!("0.0.0.0/0")
    );
    assert!(s.template.dangling_references().is_empty());
}

#[test]
fn health_signals_gate_the_rollout() {
    let file = spec_with(&format!(
        "{}      rollout: {{ healthSignals: true, minHealthyPercentage: 50 }}\n",
        bootstrapped()
    ));
    assert!(errors_of(&VmImageProvider, &file).is_empty());
    let s = render(&file);
    for role in Role::ALL {
        let g = resource(&s, &role.group());
        assert_eq!(rolling(&s, role)["WaitOnResourceSignals"], json!(true));
        assert_eq!(
            rolling(&s, role)["MinSuccessfulInstancesPercent"],
            json!(100)
        );
        assert_eq!(rolling(&s, role)["MinInstancesInService"], json!(1));
        assert_eq!(
            g.creation_policy.as_ref().unwrap()["ResourceSignal"],
            json!({ "Count": 2, "Timeout": "PT300S" })
        );
        let user_data = lt_data(&s, role)["UserData"]["Fn::Base64"]["Fn::Sub"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(user_data.starts_with("#!/bin/bash\n"), "{user_data}");
        assert!(
            user_data.contains(&format!("--resource {}", role.group())),
            "{user_data}"
        );
        assert!(
            user_data.contains("'http://127.0.0.1:8080/health'"),
            "{user_data}"
        );
        assert!(user_data.contains("seq 1 31"), "{user_data}");
    }
    assert!(s.template.dangling_references().is_empty());
}

#[test]
fn health_signals_need_images_declared_with_the_helper_scripts() {
    let signals = "      rollout: { healthSignals: true }\n";
    // Neither image declared: an error per role, at the field to add.
    let errors = errors_of(&VmImageProvider, &spec_with(&format!("{MINIMAL}{signals}")));
    assert_eq!(
        paths(&errors),
        [
            "providers[0].vmImage.frontend.cfnBootstrap",
            "providers[0].vmImage.backend.cfnBootstrap"
        ]
    );
    let e = errors.iter().next().unwrap();
    assert_eq!(e.value, None);
    assert!(
        e.message.contains("cfnBootstrap: true")
            && e.message.contains("aws-cfn-bootstrap")
            && e.message.contains("Amazon Linux"),
        "{}",
        e.message
    );
    // Declared `false`, or on one role only.
    let one = MINIMAL.replace(
        "imageVersion: '1.0.0' }",
        "imageVersion: '1.0.0', cfnBootstrap: false }",
    );
    let one = one.replace(
        "imageVersion: '2.0.0' }",
        "imageVersion: '2.0.0', cfnBootstrap: true }",
    );
    let errors = errors_of(&VmImageProvider, &spec_with(&format!("{one}{signals}")));
    assert_eq!(
        paths(&errors),
        ["providers[0].vmImage.frontend.cfnBootstrap"]
    );
    assert_eq!(
        errors.iter().next().unwrap().value.as_deref(),
        Some("false")
    );
    // Declared on both: valid; without signals the field changes nothing.
    assert!(
        errors_of(
            &VmImageProvider,
            &spec_with(&format!("{}{signals}", bootstrapped()))
        )
        .is_empty()
    );
    let plain = render(&spec_with(MINIMAL));
    assert_eq!(plain.template, render(&spec_with(&bootstrapped())).template);
    // The example that uses signals declares both images.
    let internal = example("vm-image-internal.yaml");
    assert!(errors_of(&VmImageProvider, &internal).is_empty());
    let s = render(&internal);
    for role in Role::ALL {
        assert_eq!(rolling(&s, role)["WaitOnResourceSignals"], json!(true));
        assert!(resource(&s, &role.group()).creation_policy.is_some());
    }
}

#[test]
fn without_signals_batches_wait_the_grace_period_and_elb_health_checks_decide() {
    let s = render(&example_file());
    for role in Role::ALL {
        let g = resource(&s, &role.group());
        let r = rolling(&s, role);
        assert_eq!(r["WaitOnResourceSignals"], json!(false));
        // Only valid with WaitOnResourceSignals.
        assert!(r.get("MinSuccessfulInstancesPercent").is_none(), "{r}");
        assert_eq!(
            r["PauseTime"],
            json!(format!("PT{}S", g.properties["HealthCheckGracePeriod"]))
        );
        assert_eq!(g.properties["HealthCheckType"], json!("ELB"));
        assert!(g.creation_policy.is_none());
        assert!(lt_data(&s, role).get("UserData").is_none());
    }
}

#[test]
fn groups_wait_for_the_private_routes_before_instances_start() {
    let s = render(&example_file());
    let routes: Vec<&str> = s
        .template
        .resources
        .iter()
        .filter(|(_, r)| r.kind == "AWS::EC2::Route" && r.properties.contains_key("NatGatewayId"))
        .map(|(id, _)| id.as_str())
        .collect();
    assert!(!routes.is_empty());
    for role in Role::ALL {
        let deps = &resource(&s, &role.group()).depends_on;
        for id in &routes {
            assert!(
                deps.contains(*id),
                "{} waits for {id}: {deps:?}",
                role.group()
            );
            let nat = &resource(&s, id).properties["NatGatewayId"]["Ref"];
            assert!(deps.contains(nat.as_str().unwrap()), "{deps:?}");
        }
        for n in 1..=common::AZ_COUNT {
            assert!(
                deps.contains(&format!("PrivateSubnet{n}RouteTableAssociation")),
                "{deps:?}"
            );
            // The public side is not the instances' way out.
            assert!(!deps.contains(&format!("PublicSubnet{n}RouteTableAssociation")));
        }
        assert!(!deps.contains("PublicDefaultRoute"));
    }
    assert!(s.template.dangling_references().is_empty());
    // Existing VPC: no route of ours to wait for.
    let s = render(&spec_with(&format!(
        "    vpc: {{ mode: existing, id: vpc-0a1b2c3d, privateSubnetIds: [subnet-0a, subnet-0b], publicSubnetIds: [subnet-1a, subnet-1b] }}\n{MINIMAL}"
    )));
    for role in Role::ALL {
        let deps = &resource(&s, &role.group()).depends_on;
        assert_eq!(
            deps.iter().map(String::as_str).collect::<Vec<_>>(),
            [AUTOSCALING_ROLE, role_listener(role)],
            "{deps:?}"
        );
    }
}

fn role_listener(role: Role) -> &'static str {
    match role {
        Role::Frontend => HTTPS_LISTENER,
        Role::Backend => BACKEND_LISTENER,
    }
}

#[test]
fn route_dependencies_follow_one_nat_gateway_per_zone() {
    // What the VPC builder makes with a NAT gateway per AZ: a private
    // route table, NAT route and association per zone.
    let mut t = Template::new("t");
    for n in 1..=3 {
        t.resource(
            format!("PrivateRouteTable{n}"),
            Resource::new("AWS::EC2::RouteTable"),
        );
        t.resource(
            format!("NatGateway{n}"),
            Resource::new("AWS::EC2::NatGateway"),
        );
        t.resource(
            format!("PrivateDefaultRoute{n}"),
            Resource::new("AWS::EC2::Route")
                .property("RouteTableId", fns::ref_(&format!("PrivateRouteTable{n}")))
                .property("DestinationCidrBlock", "0.0.0.0/0")
                .property("NatGatewayId", fns::ref_(&format!("NatGateway{n}"))),
        );
        t.resource(
            format!("PrivateSubnet{n}RouteTableAssociation"),
            Resource::new("AWS::EC2::SubnetRouteTableAssociation")
                .property("RouteTableId", fns::ref_(&format!("PrivateRouteTable{n}"))),
        );
        t.resource(
            format!("PublicSubnet{n}RouteTableAssociation"),
            Resource::new("AWS::EC2::SubnetRouteTableAssociation")
                .property("RouteTableId", fns::ref_("PublicRouteTable")),
        );
    }
    t.resource(
        "PublicDefaultRoute",
        Resource::new("AWS::EC2::Route")
            .property("RouteTableId", fns::ref_("PublicRouteTable"))
            .property("GatewayId", fns::ref_("InternetGateway")),
    );
    let deps = private_route_dependencies(&t);
    let expected: std::collections::BTreeSet<String> = (1..=3)
        .flat_map(|n| {
            [
                format!("NatGateway{n}"),
                format!("PrivateDefaultRoute{n}"),
                format!("PrivateSubnet{n}RouteTableAssociation"),
            ]
        })
        .collect();
    assert_eq!(deps, expected);
}

#[test]
fn load_balancer_options() {
    let extra = MINIMAL.replace(
        "loadBalancer: { certificateArn: ",
        "loadBalancer: { scheme: internal, allowedCidrs: [10.0.0.0/8, 192.168.0.0/16], accessLogsBucket: my-elb-logs, deletionProtection: false, backendCertificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/backend', certificateArn: ",
    );
    let s = render(&spec_with(&extra));
    assert_eq!(prop(&s, LOAD_BALANCER, "Scheme"), &json!("internal"));
    assert_eq!(
        prop(&s, LOAD_BALANCER, "Subnets"),
        &json!([{ "Ref": "PrivateSubnet1" }, { "Ref": "PrivateSubnet2" }, { "Ref": "PrivateSubnet3" }])
    );
    let cidrs: Vec<&str> = prop(&s, LOAD_BALANCER_SG, "SecurityGroupIngress")
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["CidrIp"].as_str())
        .collect();
    assert_eq!(
        cidrs,
        [
            "10.0.0.0/8",
            "10.0.0.0/8",
            "192.168.0.0/16",
            "192.168.0.0/16"
        ]
    );
    assert!(
        skips(&s, LOAD_BALANCER_SG).is_empty(),
        "no world-open port 80"
    );
    assert!(!s.template.resources.contains_key(ACCESS_LOGS_BUCKET));
    assert!(!s.template.resources.contains_key(ACCESS_LOGS_BUCKET_POLICY));
    assert!(resource(&s, LOAD_BALANCER).depends_on.is_empty());
    let attrs = prop(&s, BACKEND_LOAD_BALANCER, "LoadBalancerAttributes");
    assert!(
        attrs
            .as_array()
            .unwrap()
            .contains(&json!({ "Key": "access_logs.s3.bucket", "Value": "my-elb-logs" }))
    );
    assert!(attrs.as_array().unwrap().contains(&json!({
        "Key": "access_logs.s3.prefix",
        "Value": fns::sub("${Prefix}/${EnvironmentName}/backend")
    })));
    assert!(
        attrs
            .as_array()
            .unwrap()
            .contains(&json!({ "Key": "deletion_protection.enabled", "Value": "false" }))
    );
    assert!(
        skips(&s, LOAD_BALANCER).is_empty(),
        "access logs on: nothing to suppress"
    );
    // HTTPS inside the VPC: port 443, the backend certificate, no skip.
    assert_eq!(prop(&s, BACKEND_LISTENER, "Protocol"), &json!("HTTPS"));
    assert_eq!(prop(&s, BACKEND_LISTENER, "Port"), &json!(443));
    assert!(skips(&s, BACKEND_LISTENER).is_empty());
    assert_eq!(
        prop(&s, BACKEND_LOAD_BALANCER_INGRESS, "FromPort"),
        &json!(443)
    );
    assert_eq!(
        prop(&s, BACKEND_URL_PARAMETER, "Value"),
        &fns::sub("https://${BackendLoadBalancer.DNSName}")
    );
}

#[test]
fn existing_vpc_places_everything_in_its_subnets() {
    let s = render(&spec_with(&format!(
        "    vpc: {{ mode: existing, id: vpc-0a1b2c3d, privateSubnetIds: [subnet-0a, subnet-0b], publicSubnetIds: [subnet-1a, subnet-1b] }}\n{MINIMAL}"
    )));
    assert!(!s.template.resources.contains_key("Vpc"));
    assert_eq!(
        prop(&s, "FrontendGroup", "VPCZoneIdentifier"),
        &fns::ref_("PrivateSubnetIds")
    );
    assert_eq!(
        prop(&s, LOAD_BALANCER, "Subnets"),
        &fns::ref_("PublicSubnetIds")
    );
    assert_eq!(
        prop(&s, "FrontendTargetGroup", "VpcId"),
        &fns::ref_("VpcId")
    );
    assert!(s.template.dangling_references().is_empty());
    for p in ["PrivateSubnetIds", "PublicSubnetIds"] {
        let param = &s.template.parameters[p];
        assert_eq!(param.kind, "List<AWS::EC2::Subnet::Id>");
        assert!(param.default.is_none());
    }
    assert_eq!(s.parameters["PublicSubnetIds"], "subnet-1a,subnet-1b");
    // An internal load balancer leaves the public subnets out.
    let s = render(&spec_with(&format!(
        "    vpc: {{ mode: existing, id: vpc-0a1b2c3d, privateSubnetIds: [subnet-0a, subnet-0b] }}\n{}",
        MINIMAL.replace("loadBalancer: {", "loadBalancer: { scheme: internal,")
    )));
    assert!(!s.template.parameters.contains_key("PublicSubnetIds"));
    assert!(!s.parameters.contains_key("PublicSubnetIds"));
    assert_eq!(
        prop(&s, LOAD_BALANCER, "Subnets"),
        &fns::ref_("PrivateSubnetIds")
    );
}

#[test]
fn rendering_is_deterministic() {
    let a = render(&example_file());
    let b = render(&example_file());
    assert_eq!(a.template.to_json(), b.template.to_json());
    assert_eq!(a.content_hash(), b.content_hash());
}

#[test]
fn stacks_of_an_incomplete_section_are_empty_not_a_panic() {
    let mut f = spec_with(MINIMAL);
    f.providers[0].vm_image = None;
    let valid = crate::spec::ValidSpec::new_unchecked(f);
    assert!(
        VmImageProvider
            .stacks(valid.providers().next().unwrap())
            .is_empty()
    );
}

/// Each case: extra provider YAML, the one expected error path, and the
/// value the error echoes.
#[test]
fn each_validation_path_has_a_bad_spec() {
    let with = |from: &str, to: &str| {
        assert!(MINIMAL.contains(from), "{from}");
        MINIMAL.replacen(from, to, 1)
    };
    let fe = "frontend: { imageId: ami-0123456789abcdef0, imageVersion: '1.0.0' }";
    let fe_with = |fields: &str| {
        with(
            fe,
            &format!(
                "frontend: {{ imageId: ami-0123456789abcdef0, imageVersion: '1.0.0', {fields} }}"
            ),
        )
    };
    let lb = "loadBalancer: { certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666' }";
    let lb_with = |fields: &str| {
        with(
            lb,
            &format!(
                "loadBalancer: {{ certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666', {fields} }}"
            ),
        )
    };
    let cert = |arn: &str| with(lb, &format!("loadBalancer: {{ certificateArn: '{arn}' }}"));
    let p = "providers[0].vmImage";
    let cases: Vec<(String, String, Option<&str>)> = vec![
        (String::new(), p.to_owned(), None),
        (
            with(fe, "frontend: { imageVersion: '1.0.0' }"),
            format!("{p}.frontend.imageId"),
            None,
        ),
        (
            with(
                fe,
                "frontend: { imageId: ami-0123456789abcdef0, imageParameter: /x, imageVersion: '1.0.0' }",
            ),
            format!("{p}.frontend.imageId"),
            Some("ami-0123456789abcdef0"),
        ),
        (
            with(fe, "frontend: { imageId: ami-XYZ, imageVersion: '1.0.0' }"),
            format!("{p}.frontend.imageId"),
            Some("ami-XYZ"),
        ),
        (
            with(
                fe,
                "frontend: { imageId: ami-0123456789ABCDEF0, imageVersion: '1.0.0' }",
            ),
            format!("{p}.frontend.imageId"),
            Some("ami-0123456789ABCDEF0"),
        ),
        (
            with(
                fe,
                "frontend: { imageParameter: 'images/web', imageVersion: '1.0.0' }",
            ),
            format!("{p}.frontend.imageParameter"),
            Some("images/web"),
        ),
        (
            with(
                fe,
                "frontend: { imageParameter: '/ssm/x', imageVersion: '1.0.0' }",
            ),
            format!("{p}.frontend.imageParameter"),
            Some("/ssm/x"),
        ),
        (
            with(
                fe,
                "frontend: { imageParameter: '/a b', imageVersion: '1.0.0' }",
            ),
            format!("{p}.frontend.imageParameter"),
            Some("/a b"),
        ),
        (
            with(
                fe,
                "frontend: { imageParameter: '/a//b', imageVersion: '1.0.0' }",
            ),
            format!("{p}.frontend.imageParameter"),
            Some("/a//b"),
        ),
        (
            with(
                fe,
                "frontend: { imageId: ami-0123456789abcdef0, imageVersion: '1.0 beta' }",
            ),
            format!("{p}.frontend.imageVersion"),
            Some("1.0 beta"),
        ),
        (
            with(
                fe,
                "frontend: { imageId: ami-0123456789abcdef0, imageVersion: '' }",
            ),
            format!("{p}.frontend.imageVersion"),
            Some(""),
        ),
        (
            fe_with("instanceTypes: [large]"),
            format!("{p}.frontend.instanceTypes[0]"),
            Some("large"),
        ),
        (
            fe_with("minSize: 3, desiredSize: 2"),
            format!("{p}.frontend.minSize"),
            Some("3"),
        ),
        (
            fe_with("desiredSize: 5, maxSize: 4"),
            format!("{p}.frontend.desiredSize"),
            Some("5"),
        ),
        (
            fe_with("minSize: 0, desiredSize: 0, maxSize: 0"),
            format!("{p}.frontend.maxSize"),
            Some("0"),
        ),
        (
            fe_with("maxSize: 1001"),
            format!("{p}.frontend.maxSize"),
            Some("1001"),
        ),
        (
            fe_with("desiredSize: 2, maxSize: 2"),
            format!("{p}.frontend.maxSize"),
            Some("2"),
        ),
        (
            fe_with("healthCheckGracePeriod: 3601"),
            format!("{p}.frontend.healthCheckGracePeriod"),
            Some("3601"),
        ),
        (fe_with("port: 0"), format!("{p}.frontend.port"), Some("0")),
        (
            fe_with("healthCheckPath: health"),
            format!("{p}.frontend.healthCheckPath"),
            Some("health"),
        ),
        (
            fe_with("healthCheckPath: '/a b'"),
            format!("{p}.frontend.healthCheckPath"),
            Some("/a b"),
        ),
        (
            fe_with("rootVolumeSize: 4"),
            format!("{p}.frontend.rootVolumeSize"),
            Some("4"),
        ),
        (
            fe_with("rootDeviceName: xvda"),
            format!("{p}.frontend.rootDeviceName"),
            Some("xvda"),
        ),
        (
            with(
                "backend: { imageId: ami-0fedcba9876543210, imageVersion: '2.0.0' }",
                "backend: { imageId: ami-1, imageVersion: '2.0.0' }",
            ),
            format!("{p}.backend.imageId"),
            Some("ami-1"),
        ),
        (
            cert("arn:aws:acm:eu-west-1:123456789012:certificate/abc"),
            format!("{p}.loadBalancer.certificateArn"),
            Some("arn:aws:acm:eu-west-1:123456789012:certificate/abc"),
        ),
        (
            cert("arn:aws:acm:us-east-1:210987654321:certificate/abc"),
            format!("{p}.loadBalancer.certificateArn"),
            Some("arn:aws:acm:us-east-1:210987654321:certificate/abc"),
        ),
        (
            cert("arn:aws:s3:::bucket"),
            format!("{p}.loadBalancer.certificateArn"),
            Some("arn:aws:s3:::bucket"),
        ),
        (
            cert("arn:aws-cn:acm:us-east-1:123456789012:certificate/abc"),
            format!("{p}.loadBalancer.certificateArn"),
            Some("arn:aws-cn:acm:us-east-1:123456789012:certificate/abc"),
        ),
        (
            cert("not-an-arn"),
            format!("{p}.loadBalancer.certificateArn"),
            Some("not-an-arn"),
        ),
        (
            cert("arn:aws:iam::123456789012:role/x"),
            format!("{p}.loadBalancer.certificateArn"),
            Some("arn:aws:iam::123456789012:role/x"),
        ),
        (
            lb_with("backendCertificateArn: 'arn:aws:acm:us-east-1:123456789012:cert/x'"),
            format!("{p}.loadBalancer.backendCertificateArn"),
            Some("arn:aws:acm:us-east-1:123456789012:cert/x"),
        ),
        (
            lb_with("allowedCidrs: [10.0.0.1/8]"),
            format!("{p}.loadBalancer.allowedCidrs[0]"),
            Some("10.0.0.1/8"),
        ),
        (
            lb_with("allowedCidrs: [0.0.0.0/0, nope]"),
            format!("{p}.loadBalancer.allowedCidrs[1]"),
            Some("nope"),
        ),
        (
            lb_with("accessLogsBucket: My_Bucket"),
            format!("{p}.loadBalancer.accessLogsBucket"),
            Some("My_Bucket"),
        ),
        (
            lb_with("accessLogsBucket: 192.168.1.1"),
            format!("{p}.loadBalancer.accessLogsBucket"),
            Some("192.168.1.1"),
        ),
        (
            format!("{MINIMAL}      rollout: {{ minHealthyPercentage: 101 }}\n"),
            format!("{p}.rollout.minHealthyPercentage"),
            Some("101"),
        ),
        (
            format!(
                "{}      rollout: {{ healthSignals: true }}\n",
                bootstrapped().replacen(
                    "cfnBootstrap: true }",
                    "cfnBootstrap: true, healthCheckGracePeriod: 30 }",
                    1
                )
            ),
            format!("{p}.frontend.healthCheckGracePeriod"),
            Some("30"),
        ),
        (
            format!(
                "{}      rollout: {{ healthSignals: true }}\n",
                bootstrapped()
                    .replacen("cfnBootstrap: true", "cfnBootstrap: false", 2)
                    .replacen("cfnBootstrap: false", "cfnBootstrap: true", 1)
            ),
            format!("{p}.backend.cfnBootstrap"),
            Some("false"),
        ),
        (
            format!(
                "    vpc: {{ mode: existing, id: vpc-0a1b2c3d, publicSubnetIds: [subnet-1a, subnet-1b] }}\n{MINIMAL}"
            ),
            "providers[0].vpc.privateSubnetIds".to_owned(),
            None,
        ),
        (
            format!(
                "    vpc: {{ mode: existing, id: vpc-0a1b2c3d, privateSubnetIds: [subnet-0a, subnet-0b] }}\n{MINIMAL}"
            ),
            "providers[0].vpc.publicSubnetIds".to_owned(),
            None,
        ),
    ];
    for (extra, path, value) in cases {
        let errors = errors_of(&VmImageProvider, &spec_with(&extra));
        assert_eq!(paths(&errors), [path.as_str()], "{extra}\n{errors}");
        let e = errors.iter().next().unwrap();
        assert_eq!(e.value.as_deref(), value, "{extra}");
        assert!(e.message.len() > 20, "{}", e.message);
    }
}

#[test]
fn messages_say_what_is_allowed() {
    let errors = errors_of(
        &VmImageProvider,
        &spec_with(&MINIMAL.replace(
            "frontend: { imageId: ami-0123456789abcdef0, imageVersion: '1.0.0' }",
            "frontend: { imageId: ami-0123456789abcdef0, imageVersion: '1.0.0', desiredSize: 2, maxSize: 2 }",
        )),
    );
    let msg = &errors.iter().next().unwrap().message;
    assert!(msg.contains("maxSize must be at least 3"), "{msg}");
    let errors = errors_of(
        &VmImageProvider,
        &spec_with(&MINIMAL.replace(
            "us-east-1:123456789012:certificate",
            "us-west-2:123456789012:certificate",
        )),
    );
    let msg = &errors.iter().next().unwrap().message;
    assert!(
        msg.contains("us-west-2") && msg.contains("its own region"),
        "{msg}"
    );
}

#[test]
fn image_parameter_names_fit_in_a_tag() {
    let name = |len: usize| format!("/{}", "p".repeat(len - 1));
    let spec = |n: &str| {
        spec_with(&MINIMAL.replace(
            "frontend: { imageId: ami-0123456789abcdef0,",
            &format!("frontend: {{ imageParameter: '{n}',"),
        ))
    };
    let ok = name(MAX_IMAGE_PARAMETER);
    assert!(errors_of(&VmImageProvider, &spec(&ok)).is_empty());
    let s = render(&spec(&ok));
    let tags = prop(&s, "FrontendGroup", "Tags").as_array().unwrap();
    let image = tags.iter().find(|t| t["Key"] == "harmonix:image").unwrap();
    assert_eq!(image["Value"].as_str().unwrap().chars().count(), 256);
    let errors = errors_of(&VmImageProvider, &spec(&name(MAX_IMAGE_PARAMETER + 1)));
    assert_eq!(
        paths(&errors),
        ["providers[0].vmImage.frontend.imageParameter"]
    );
    assert!(
        errors.iter().next().unwrap().message.contains("256"),
        "{errors}"
    );
}

#[test]
fn instance_tags_stay_within_the_aws_limit() {
    let tags = |n: usize| {
        let list: Vec<String> = (0..n).map(|i| format!("k{i:02}: v")).collect();
        spec_with(&format!("    tags: {{ {} }}\n{MINIMAL}", list.join(", ")))
    };
    // 43 own + 3 Harmonix + 4 instance tags = 50.
    assert!(errors_of(&VmImageProvider, &tags(43)).is_empty());
    let s = render(&tags(43));
    assert_eq!(
        prop(&s, "BackendGroup", "Tags").as_array().map(Vec::len),
        Some(50)
    );
    let errors = errors_of(&VmImageProvider, &tags(44));
    assert_eq!(paths(&errors), ["providers[0].tags"]);
    assert!(
        errors
            .iter()
            .next()
            .unwrap()
            .message
            .contains("harmonix:image-version")
    );
    // A `Name` tag of the spec is replaced, not added.
    let mut f = tags(43);
    f.providers[0].tags.insert("Name".into(), "mine".into());
    f.providers[0].tags.remove("k00");
    assert!(errors_of(&VmImageProvider, &f).is_empty());
}

#[test]
fn valid_edges_pass_validation() {
    let cases = [
        MINIMAL.to_owned(),
        MINIMAL.replace("imageId: ami-0123456789abcdef0", "imageId: ami-12345678"),
        MINIMAL.replace("imageId: ami-0123456789abcdef0", "imageParameter: /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"),
        MINIMAL.replace("imageId: ami-0123456789abcdef0", "imageParameter: web-image"),
        MINIMAL.replace("imageVersion: '1.0.0'", "imageVersion: '1.0.0-rc.1+build.7'"),
        MINIMAL.replace(
            "'arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666'",
            "'arn:aws:iam::123456789012:server-certificate/team/web'",
        ),
        format!("{MINIMAL}      rollout: {{ minHealthyPercentage: 0 }}\n"),
        format!("{}      rollout: {{ healthSignals: true }}\n", bootstrapped()),
        MINIMAL.replace(
            "frontend: { imageId: ami-0123456789abcdef0, imageVersion: '1.0.0' }",
            "frontend: { imageId: ami-0123456789abcdef0, imageVersion: '1.0.0', minSize: 0, desiredSize: 1, maxSize: 2, port: 65535, healthCheckGracePeriod: 0, rootVolumeSize: 16384, rootDeviceName: /dev/sda1 }",
        ),
        format!("    vpc: {{ mode: existing, id: vpc-0a1b2c3d, privateSubnetIds: [subnet-0a, subnet-0b] }}\n{}", MINIMAL.replace("loadBalancer: {", "loadBalancer: { scheme: internal,")),
    ];
    for extra in cases {
        let errors = errors_of(&VmImageProvider, &spec_with(&extra));
        assert!(errors.is_empty(), "{extra}\n{errors}");
    }
    let example_errors = errors_of(&VmImageProvider, &example_file());
    assert!(example_errors.is_empty(), "{example_errors}");
}

#[test]
fn the_whole_spec_validates_through_the_registry() {
    let registry = crate::provider::Registry::builtin();
    let valid = crate::spec::validate(example_file(), &registry, "example").unwrap();
    assert_eq!(valid.providers().len(), 1);
    // A section on the wrong kind, and a missing section, both with paths.
    let wrong = parse_str(
        &format!("{}{MINIMAL}", HEAD.replace("kind: vm-image", "kind: ecs")),
        "t",
    )
    .unwrap();
    let err = crate::spec::validate(wrong, &registry, "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("providers[0].vmImage"), "{err}");
}

#[test]
fn validation_and_names_never_panic_on_odd_input() {
    let odd = [
        "",
        "ü",
        "ami-",
        "ami-😀😀😀😀😀😀😀😀",
        "/",
        "//",
        "arn:",
        "arn:::::",
        "arn:aws:acm:::::::",
        "arn:aws:iam::123456789012:server-certificate/",
        "0.0.0.0/33",
        "-",
        ".",
        "a..b",
    ];
    for s in odd {
        let mut f = spec_with(MINIMAL);
        let vm = f.providers[0].vm_image.as_mut().unwrap();
        vm.frontend.image_id = Some(s.to_owned());
        vm.backend.image_id = None;
        vm.backend.image_parameter = Some(s.to_owned());
        vm.frontend.image_version = s.to_owned();
        vm.frontend.health_check_path = Some(s.to_owned());
        vm.frontend.root_device_name = Some(s.to_owned());
        vm.frontend.instance_types = vec![s.to_owned()];
        vm.frontend.min_size = Some(u32::MAX);
        vm.frontend.max_size = Some(u32::MAX);
        vm.frontend.health_check_grace_period = Some(u32::MAX);
        vm.load_balancer.certificate_arn = s.to_owned();
        vm.load_balancer.backend_certificate_arn = Some(s.to_owned());
        vm.load_balancer.allowed_cidrs = vec![s.to_owned()];
        vm.load_balancer.access_logs_bucket = Some(s.to_owned());
        vm.rollout = Some(crate::spec::vm_image::RolloutSpec {
            min_healthy_percentage: Some(u32::MAX),
            health_signals: Some(true),
        });
        f.providers[0].name = s.to_owned();
        f.providers[0].region = s.to_owned();
        let errors = errors_of(&VmImageProvider, &f);
        assert!(!errors.is_empty(), "{s:?}");
        let _ = VmImageProvider.derived_names(&f.providers[0], "providers[0]");
        // Rendering unvalidated input does not panic either.
        let valid = crate::spec::ValidSpec::new_unchecked(f);
        let _ = VmImageProvider.stacks(valid.providers().next().unwrap());
    }
}

#[test]
fn derived_names_cover_every_named_resource() {
    let f = example_file();
    let names = VmImageProvider.derived_names(&f.providers[0], "providers[0]");
    let has = |kind: NameKind, v: &str| names.iter().any(|n| n.kind == kind && n.value == v);
    assert!(has(NameKind::Stack, "opa-shop-web-environment"));
    assert!(has(NameKind::Ec2Group, "opa-shop-web-frontend"));
    assert!(has(NameKind::Ec2Group, "opa-shop-web-backend"));
    assert!(has(
        NameKind::IamRole,
        "opa-shop-web-frontend-instance-role"
    ));
    assert!(has(NameKind::IamRole, "opa-shop-web-backend-instance-role"));
    assert!(has(NameKind::IamRole, "opa-shop-web-flow-logs-role"));
    assert!(has(
        NameKind::IamRole,
        "AWSServiceRoleForAutoScaling_opa-shop-web"
    ));
    assert!(names.iter().all(|n| n.path == "providers[0].name"));
    // Every IAM role and group the template names is among them.
    let s = render(&f);
    for (id, r) in &s.template.resources {
        let named = r
            .properties
            .get("RoleName")
            .or_else(|| r.properties.get("AutoScalingGroupName"))
            .or_else(|| r.properties.get("LaunchTemplateName"));
        if let Some(Value::Object(sub)) = named {
            let text = sub["Fn::Sub"]
                .as_str()
                .unwrap()
                .replace("${Prefix}", "opa")
                .replace("${EnvironmentName}", "shop-web");
            assert!(names.iter().any(|n| n.value == text), "{id}: {text}");
        }
    }
}

#[test]
fn a_long_name_is_refused_for_the_service_linked_role() {
    let long = "a".repeat(36);
    let f = parse_str(
        &format!(
            "{}{MINIMAL}",
            HEAD.replace("name: shop-web", &format!("name: {long}"))
        ),
        "t",
    )
    .unwrap();
    let err = crate::spec::validate(f, &crate::provider::Registry::builtin(), "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("AWSServiceRoleForAutoScaling_opa-"), "{err}");
    assert!(err.contains("1–64"), "{err}");
}

#[test]
fn entity_without_outputs_uses_the_spec() {
    let e = entity_of(&VmImageProvider, &example_file(), &StackOutputs::new());
    let m = |k: &str| e.metadata[k].as_str().unwrap().to_owned();
    assert_eq!(e.kind, "AWSEnvironmentProvider");
    assert_eq!(m("envType"), "aws-vm-image");
    assert_eq!(m("frontendImageVersion"), "1.4.2");
    assert_eq!(m("backendImageVersion"), "2.0.1");
    assert_eq!(m("frontendImage"), "ami-0a1b2c3d4e5f60718");
    assert_eq!(m("backendImage"), "ssm:/opa/shop-web/images/backend/2.0.1");
    assert_eq!(m("frontendAutoScalingGroup"), "opa-shop-web-frontend");
    assert_eq!(m("backendAutoScalingGroup"), "opa-shop-web-backend");
    assert_eq!(m("loadBalancerDnsName"), "");
    assert_eq!(m("frontendUrl"), "");
    assert_eq!(m("stackName"), "opa-shop-web-environment");
    assert_eq!(m("auditTable"), "opa-shop-web-audit");
    assert_eq!(
        m("provisioningRole"),
        "arn:aws:iam::123456789012:role/opa-shop-web-provisioning-role"
    );
}

#[test]
fn entity_with_outputs_uses_them() {
    let mut outputs = StackOutputs::new();
    outputs.insert(
        "opa-shop-web-environment".into(),
        BTreeMap::from([
            ("VpcId".to_owned(), "vpc-0123456789abcdef0".to_owned()),
            (
                "LoadBalancerDnsName".to_owned(),
                "shop-123.us-east-1.elb.amazonaws.com".to_owned(),
            ),
            ("FrontendImageVersion".to_owned(), "1.4.1".to_owned()),
        ]),
    );
    let e = entity_of(&VmImageProvider, &example_file(), &outputs);
    assert_eq!(e.metadata["vpc"], json!("vpc-0123456789abcdef0"));
    assert_eq!(
        e.metadata["loadBalancerDnsName"],
        json!("shop-123.us-east-1.elb.amazonaws.com")
    );
    assert_eq!(
        e.metadata["frontendUrl"],
        json!("https://shop-123.us-east-1.elb.amazonaws.com")
    );
    assert_eq!(
        e.metadata["frontendImageVersion"],
        json!("1.4.1"),
        "the deployed version, as the stack reports it"
    );
    assert_eq!(e.metadata["backendImageVersion"], json!("2.0.1"));
}
