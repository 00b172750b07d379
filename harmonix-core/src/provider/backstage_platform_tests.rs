//! Unit tests of the `backstage-platform` provider.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::provider::test_support::{example, paths};
use crate::spec::platform::DEFAULT_HEALTH_CHECK_PATH;
use crate::spec::{SpecFile, ValidSpec, parse_str};

const HEAD: &str = r#"
providers:
  - kind: backstage-platform
    name: idp
    owner: group:platform
    account: "123456789012"
    region: us-east-1
    environmentRole: arn:aws:iam::123456789012:role/opa-envprovisioning-role
    platformRole: arn:aws:iam::111111111111:role/opa-platform-role
    pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
"#;

/// A minimal valid platform section (two stages), indented for `HEAD`.
const PLATFORM: &str = "    platform:
      image: { repository: backstage, tag: 1.4.0 }
      domain: { hostedZoneId: Z0123456789ABCDEFGHIJ, name: idp.example.com }
      stages:
        - name: dev
        - name: prod
";

fn spec_with(extra: &str) -> SpecFile {
    parse_str(&format!("{HEAD}{extra}"), "test").unwrap()
}

/// `HEAD` + `PLATFORM` with `from` replaced by `to` in the platform part.
fn platform_with(from: &str, to: &str) -> SpecFile {
    assert!(PLATFORM.contains(from), "{from}");
    spec_with(&PLATFORM.replacen(from, to, 1))
}

fn errors(file: &SpecFile) -> ValidationErrors {
    let mut e = ValidationErrors::default();
    BackstagePlatformProvider.validate(&file.providers[0], "providers[0]", &mut e);
    e
}

fn stacks(file: &SpecFile) -> Vec<StackDefinition> {
    let valid = ValidSpec::new_unchecked(file.clone());
    BackstagePlatformProvider.stacks(valid.providers().next().unwrap())
}

fn entities(file: &SpecFile, outputs: &StackOutputs) -> Vec<Entity> {
    let valid = ValidSpec::new_unchecked(file.clone());
    BackstagePlatformProvider.catalog_entities(valid.providers().next().unwrap(), outputs)
}

fn stack<'a>(all: &'a [StackDefinition], name: &str) -> &'a StackDefinition {
    all.iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no stack {name}"))
}

fn res<'a>(s: &'a StackDefinition, id: &str) -> &'a Resource {
    s.template
        .resources
        .get(id)
        .unwrap_or_else(|| panic!("{}: no resource {id}", s.name))
}

fn prop<'a>(s: &'a StackDefinition, id: &str, name: &str) -> &'a Value {
    res(s, id)
        .properties
        .get(name)
        .unwrap_or_else(|| panic!("{}: {id}.{name} missing", s.name))
}

fn of_type<'a>(s: &'a StackDefinition, kind: &str) -> Vec<&'a str> {
    s.template
        .resources
        .iter()
        .filter(|(_, r)| r.kind == kind)
        .map(|(id, _)| id.as_str())
        .collect()
}

/// Every string in a JSON value.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out);
        }),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Rendering

#[test]
fn example_renders_a_shared_stack_and_one_stack_per_stage() {
    let file = example("backstage-platform.yaml");
    let all = stacks(&file);
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["opa-idp-environment", "opa-idp-dev", "opa-idp-prod"],
        "shared stack first, then the stages in spec order"
    );
    let shared = &all[0];
    assert!(shared.depends_on.is_empty());
    for s in &all {
        assert!(
            s.template.dangling_references().is_empty(),
            "{}: {:?}",
            s.name,
            s.template.dangling_references()
        );
        assert_eq!(s.provider, "idp");
        assert_eq!(s.capabilities, ["CAPABILITY_NAMED_IAM"]);
        assert_eq!(s.tags["harmonix:environment"], "idp");
        assert_eq!(s.tags["harmonix:kind"], "backstage-platform");
        assert_eq!(s.tags["cost-center"], "platform");
        for (name, p) in &s.template.parameters {
            assert!(
                p.default.is_some() || s.parameters.contains_key(name),
                "{}: parameter {name} has no value",
                s.name
            );
        }
        for name in s.parameters.keys() {
            assert!(s.template.parameters.contains_key(name), "{name}");
        }
    }
    // The shared stack: key, log group, audit table, roles; no network.
    for id in [
        ids::KMS_KEY,
        ids::LOG_GROUP,
        ids::AUDIT_TABLE,
        ids::OPERATIONS_ROLE,
        ids::PROVISIONING_ROLE,
    ] {
        res(shared, id);
    }
    assert!(of_type(shared, "AWS::EC2::VPC").is_empty());
    assert_eq!(shared.parameters["EnvironmentName"], "idp");

    for (stage, host) in [("dev", "dev.idp.example.com"), ("prod", "idp.example.com")] {
        let s = stack(&all, &format!("opa-idp-{stage}"));
        assert_eq!(s.depends_on, ["opa-idp-environment"]);
        assert_eq!(s.tags["harmonix:stage"], stage);
        assert_eq!(s.parameters["EnvironmentName"], format!("idp-{stage}"));
        assert_eq!(s.parameters[stage_params::HOST_NAME], host);
        assert_eq!(s.parameters["VpcCidr"], "10.20.0.0/24");
        for kind in [
            "AWS::EC2::VPC",
            "AWS::KMS::Key",
            "AWS::Logs::LogGroup",
            "AWS::ECS::Cluster",
            "AWS::ECS::Service",
            "AWS::ECS::TaskDefinition",
            "AWS::RDS::DBCluster",
            "AWS::RDS::DBClusterParameterGroup",
            "AWS::SecretsManager::Secret",
            "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "AWS::CertificateManager::Certificate",
            "AWS::Route53::RecordSet",
            "AWS::S3::Bucket",
        ] {
            assert_eq!(of_type(s, kind).len(), 1, "{stage}: {kind}");
        }
        assert_eq!(of_type(s, "AWS::ElasticLoadBalancingV2::Listener").len(), 2);
        // Production lifecycle: a writer and a reader, but dev sets
        // `readers: 0`.
        let instances = if stage == "prod" { 2 } else { 1 };
        assert_eq!(
            of_type(s, "AWS::RDS::DBInstance").len(),
            instances,
            "{stage}"
        );
        assert_eq!(prop(s, ids::LOG_GROUP, "RetentionInDays"), 365);
        assert_eq!(
            prop(s, ids::LOG_GROUP, "KmsKeyId"),
            &fns::get_att(ids::KMS_KEY, "Arn")
        );
        for output in [
            OUTPUT_URL,
            OUTPUT_SERVICE_NAME,
            OUTPUT_LOAD_BALANCER_DNS,
            outputs::CLUSTER_NAME,
            outputs::VPC_ID,
        ] {
            assert!(s.template.outputs.contains_key(output), "{output}");
        }
    }
    let dev = stack(&all, "opa-idp-dev");
    let prod = stack(&all, "opa-idp-prod");
    assert_eq!(
        dev.parameters[stage_params::IMAGE],
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/backstage:1.5.0-rc.1"
    );
    assert_eq!(
        prod.parameters[stage_params::IMAGE],
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/backstage:1.4.0"
    );
    assert_eq!(
        (
            prod.parameters[stage_params::TASK_CPU].as_str(),
            prod.parameters[stage_params::TASK_MEMORY].as_str(),
            prod.parameters[stage_params::DESIRED_COUNT].as_str(),
            prod.parameters[stage_params::DATABASE_MIN_CAPACITY].as_str(),
            prod.parameters[stage_params::DATABASE_MAX_CAPACITY].as_str(),
        ),
        ("2048", "4096", "2", "1", "8")
    );
    assert_eq!(dev.parameters[stage_params::DATABASE_MIN_CAPACITY], "0.5");
}

#[test]
fn stages_share_one_template_and_differ_in_parameters() {
    let all = stacks(&example("backstage-platform.yaml"));
    let (dev, prod) = (&all[1], &all[2]);
    // Production lifecycle: prod has its default reader, dev sets none.
    let extra: Vec<&str> = prod
        .template
        .resources
        .keys()
        .filter(|id| !dev.template.resources.contains_key(*id))
        .map(String::as_str)
        .collect();
    assert_eq!(extra, ["DatabaseReader1"]);
    assert_eq!(
        dev.template.resources.len() + 1,
        prod.template.resources.len()
    );
    let mut differ = Vec::new();
    for (id, r) in &dev.template.resources {
        if r != res(prod, id) {
            differ.push(id.as_str());
        }
    }
    // Only the VPC pieces' `Name` tags (stage-specific names) differ.
    for id in &differ {
        let tags = &res(dev, id).properties["Tags"];
        assert!(tags.to_string().contains("opa-idp-dev"), "{id} differs");
        assert_eq!(
            tags.to_string().replace("opa-idp-dev", "opa-idp-prod"),
            res(prod, id).properties["Tags"].to_string()
        );
    }
    assert_eq!(dev.template.outputs, prod.template.outputs);
    assert_eq!(dev.template.parameters, prod.template.parameters);
    let changed: Vec<&str> = dev
        .parameters
        .iter()
        .filter(|(k, v)| prod.parameters.get(*k) != Some(v))
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        changed,
        [
            "DatabaseMaxCapacity",
            "DatabaseMinCapacity",
            "DesiredCount",
            "EnvironmentName",
            "HostName",
            "Image",
            "TaskCpu",
            "TaskMemory"
        ]
    );
}

#[test]
fn changing_the_dev_tag_changes_only_the_dev_stack() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/specs/backstage-platform.yaml"),
    )
    .unwrap();
    let before = stacks(&parse_str(&text, "before").unwrap());
    let promoted = text.replacen("imageTag: \"1.5.0-rc.1\"", "imageTag: \"1.5.0\"", 1);
    assert_ne!(promoted, text);
    let after = stacks(&parse_str(&promoted, "after").unwrap());
    let changed: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a.content_hash() != b.content_hash())
        .map(|(a, _)| a.name.as_str())
        .collect();
    assert_eq!(changed, ["opa-idp-dev"]);
    let (a, b) = (&before[1], &after[1]);
    assert_eq!(a.template, b.template, "a promotion changes no template");
    let params: Vec<&str> = a
        .parameters
        .iter()
        .filter(|(k, v)| b.parameters.get(*k) != Some(v))
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(params, [stage_params::IMAGE]);
    assert!(b.parameters[stage_params::IMAGE].ends_with("/backstage:1.5.0"));
    // The image reaches the container through the parameter.
    let image = &prop(b, stage_ids::TASK_DEFINITION, "ContainerDefinitions")[0]["Image"];
    assert_eq!(image, &fns::ref_(stage_params::IMAGE));

    // Promoting prod to a digest changes only prod.
    let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
    let pinned = text.replacen(
        "        - name: prod\n",
        &format!("        - name: prod\n          imageDigest: {digest}\n"),
        1,
    );
    let after = stacks(&parse_str(&pinned, "pinned").unwrap());
    assert!(errors(&parse_str(&pinned, "pinned").unwrap()).is_empty());
    let changed: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a.content_hash() != b.content_hash())
        .map(|(a, _)| a.name.as_str())
        .collect();
    assert_eq!(changed, ["opa-idp-prod"]);
    assert_eq!(
        after[2].parameters[stage_params::IMAGE],
        format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/backstage@{digest}")
    );
}

#[test]
fn rendering_is_deterministic() {
    let file = example("backstage-platform.yaml");
    let a: Vec<String> = stacks(&file).iter().map(|s| s.template.to_json()).collect();
    let b: Vec<String> = stacks(&file).iter().map(|s| s.template.to_json()).collect();
    assert_eq!(a, b);
}

#[test]
fn no_secret_value_in_templates_parameters_outputs_or_catalog() {
    let file = example("backstage-platform.yaml");
    let all = stacks(&file);
    for s in &all {
        for (name, p) in &s.template.parameters {
            assert!(
                !p.no_echo,
                "{}: {name} is NoEcho: secrets are no parameters",
                s.name
            );
            let lower = name.to_ascii_lowercase();
            assert!(
                !lower.contains("password") && !lower.contains("secret"),
                "{}: parameter {name}",
                s.name
            );
        }
        for (name, v) in &s.parameters {
            assert!(!v.to_ascii_lowercase().contains("password"), "{name}");
        }
        for (name, o) in &s.template.outputs {
            let text = o.value.to_string().to_ascii_lowercase();
            assert!(
                !text.contains("secret") && !text.contains("password"),
                "{}: output {name}",
                s.name
            );
        }
    }
    let dev = &all[1];
    // The secret is generated by Secrets Manager, never given.
    let secret = res(dev, stage_ids::DATABASE_SECRET);
    assert!(!secret.properties.contains_key("SecretString"));
    assert_eq!(
        secret.properties["GenerateSecretString"]["GenerateStringKey"],
        "password"
    );
    assert_eq!(
        secret.properties["KmsKeyId"],
        fns::get_att(ids::KMS_KEY, "Arn")
    );
    // The database reads it by dynamic reference.
    assert_eq!(
        prop(dev, stage_ids::DATABASE_CLUSTER, "MasterUserPassword"),
        &fns::sub("{{resolve:secretsmanager:${DatabaseSecret}:SecretString:password}}")
    );
    // The container by ARN, through the execution role.
    let container = &prop(dev, stage_ids::TASK_DEFINITION, "ContainerDefinitions")[0];
    let secrets: Vec<(&str, &Value)> = container["Secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["Name"].as_str().unwrap(), &s["ValueFrom"]))
        .collect();
    assert_eq!(
        secrets,
        [
            ("POSTGRES_HOST", &fns::sub("${DatabaseSecret}:host::")),
            ("POSTGRES_USER", &fns::sub("${DatabaseSecret}:username::")),
            (
                "POSTGRES_PASSWORD",
                &fns::sub("${DatabaseSecret}:password::")
            ),
        ]
    );
    let env = container["Environment"].to_string().to_ascii_lowercase();
    assert!(!env.contains("password"), "{env}");
    // Every string mentioning a password in the stage template is one of
    // these references or field names.
    let allowed = [
        "MasterUserPassword",
        "PasswordLength",
        "{{resolve:secretsmanager:${DatabaseSecret}:SecretString:password}}",
        "password",
        "POSTGRES_PASSWORD",
        "${DatabaseSecret}:password::",
    ];
    let mut all_strings = Vec::new();
    strings(
        &serde_json::to_value(&dev.template).unwrap(),
        &mut all_strings,
    );
    for s in all_strings
        .iter()
        .filter(|s| s.to_ascii_lowercase().contains("password"))
    {
        assert!(allowed.contains(&s.as_str()), "unexpected {s:?}");
    }

    // The catalog: no secret ARN, no password, with and without outputs.
    let mut outs = StackOutputs::new();
    for s in &all {
        let o: BTreeMap<String, String> = s
            .template
            .outputs
            .keys()
            .map(|k| (k.clone(), format!("value-of-{k}")))
            .collect();
        outs.insert(s.name.clone(), o);
    }
    for o in [StackOutputs::new(), outs] {
        for e in entities(&file, &o) {
            let text = e.to_value().to_string().to_ascii_lowercase();
            assert!(
                !text.contains("secretsmanager") && !text.contains("password"),
                "{text}"
            );
        }
    }
}

#[test]
fn database_is_encrypted_and_reachable_only_from_the_service() {
    let all = stacks(&example("backstage-platform.yaml"));
    let s = &all[1];
    use stage_ids::*;
    let key = fns::get_att(ids::KMS_KEY, "Arn");
    assert_eq!(prop(s, DATABASE_CLUSTER, "StorageEncrypted"), true);
    assert_eq!(prop(s, DATABASE_CLUSTER, "KmsKeyId"), &key);
    assert_eq!(prop(s, DATABASE_CLUSTER, "Engine"), AURORA_ENGINE);
    assert_eq!(prop(s, DATABASE_CLUSTER, "DeletionProtection"), true);
    assert_eq!(
        res(s, DATABASE_CLUSTER).deletion_policy.as_deref(),
        Some("Snapshot")
    );
    assert_eq!(
        prop(s, DATABASE_CLUSTER, "ServerlessV2ScalingConfiguration"),
        &json!({
            "MinCapacity": fns::ref_(stage_params::DATABASE_MIN_CAPACITY),
            "MaxCapacity": fns::ref_(stage_params::DATABASE_MAX_CAPACITY)
        })
    );
    assert_eq!(
        prop(s, DATABASE_CLUSTER, "VpcSecurityGroupIds"),
        &json!([fns::get_att(DATABASE_SECURITY_GROUP, "GroupId")])
    );
    assert_eq!(
        prop(s, DATABASE_SUBNET_GROUP, "SubnetIds"),
        &json!([
            fns::ref_("PrivateSubnet1"),
            fns::ref_("PrivateSubnet2"),
            fns::ref_("PrivateSubnet3")
        ])
    );
    assert_eq!(
        prop(s, DATABASE_INSTANCE, "DBInstanceClass"),
        "db.serverless"
    );
    assert_eq!(prop(s, DATABASE_INSTANCE, "PubliclyAccessible"), false);
    assert_eq!(
        prop(s, DATABASE_INSTANCE, "DBClusterIdentifier"),
        &fns::ref_(DATABASE_CLUSTER)
    );
    assert_eq!(
        prop(s, DATABASE_INSTANCE, "PerformanceInsightsKMSKeyId"),
        &key
    );
    assert_eq!(
        prop(s, DATABASE_SECRET_ATTACHMENT, "TargetId"),
        &fns::ref_(DATABASE_CLUSTER)
    );
    // No inline ingress, a no-traffic egress rule, and exactly one rule
    // that lets anything in: PostgreSQL from the service's group.
    let db_sg = res(s, DATABASE_SECURITY_GROUP);
    assert!(!db_sg.properties.contains_key("SecurityGroupIngress"));
    assert_eq!(db_sg.properties["SecurityGroupEgress"], no_egress());
    let into_db: Vec<&Resource> = s
        .template
        .resources
        .values()
        .filter(|r| {
            r.kind == "AWS::EC2::SecurityGroupIngress"
                && r.properties["GroupId"] == fns::get_att(DATABASE_SECURITY_GROUP, "GroupId")
        })
        .collect();
    assert_eq!(into_db.len(), 1);
    assert_eq!(
        into_db[0].properties["SourceSecurityGroupId"],
        fns::get_att(SERVICE_SECURITY_GROUP, "GroupId")
    );
    assert_eq!(into_db[0].properties["FromPort"], DATABASE_PORT);
    assert_eq!(into_db[0].properties["ToPort"], DATABASE_PORT);
    // The service takes the container port from the load balancer only.
    let into_service: Vec<&Resource> = s
        .template
        .resources
        .values()
        .filter(|r| {
            r.kind == "AWS::EC2::SecurityGroupIngress"
                && r.properties["GroupId"] == fns::get_att(SERVICE_SECURITY_GROUP, "GroupId")
        })
        .collect();
    assert_eq!(into_service.len(), 1);
    assert_eq!(
        into_service[0].properties["SourceSecurityGroupId"],
        fns::get_att(LOAD_BALANCER_SECURITY_GROUP, "GroupId")
    );
    assert!(
        !res(s, SERVICE_SECURITY_GROUP)
            .properties
            .contains_key("SecurityGroupIngress")
    );
    // No CIDR rule anywhere opens the database or the service port.
    for r in s.template.resources.values() {
        let text = serde_json::to_string(&r.properties).unwrap();
        if text.contains("0.0.0.0/0") {
            assert!(!text.contains("5432") && !text.contains("7007"), "{text}");
        }
    }
}

#[test]
fn database_accepts_tls_connections_only_and_backstage_connects_with_tls() {
    use stage_ids::*;
    for s in &stacks(&example("backstage-platform.yaml"))[1..] {
        let group = res(s, DATABASE_CLUSTER_PARAMETER_GROUP);
        assert_eq!(group.kind, "AWS::RDS::DBClusterParameterGroup");
        assert_eq!(
            group.properties["Parameters"],
            json!({ "rds.force_ssl": "1" })
        );
        // The family matches the cluster's engine and major version.
        let version = prop(s, DATABASE_CLUSTER, "EngineVersion").as_str().unwrap();
        let major = version.split('.').next().unwrap();
        assert_eq!(
            group.properties["Family"],
            json!(format!(
                "{}{major}",
                prop(s, DATABASE_CLUSTER, "Engine").as_str().unwrap()
            ))
        );
        assert_eq!(group.properties["Family"], json!("aurora-postgresql17"));
        assert!(group.properties["Description"].to_string().contains("TLS"));
        assert_eq!(
            prop(s, DATABASE_CLUSTER, "DBClusterParameterGroupName"),
            &fns::ref_(DATABASE_CLUSTER_PARAMETER_GROUP)
        );
        // Backstage's pg client: TLS, without verifying against Node's
        // CAs (which lack the RDS CAs).
        let env = &prop(s, TASK_DEFINITION, "ContainerDefinitions")[0]["Environment"];
        let mode: Vec<&Value> = env
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["Name"] == "PGSSLMODE")
            .map(|e| &e["Value"])
            .collect();
        assert_eq!(mode, [&json!("no-verify")]);
    }
}

/// The stage stack `stage` of `HEAD` + `PLATFORM` edited, with `lifecycle`.
fn stage_of(lifecycle: Option<&str>, extra: &str, stage: &str) -> StackDefinition {
    let head = match lifecycle {
        Some(l) => format!("{HEAD}    lifecycle: {l}\n"),
        None => HEAD.to_owned(),
    };
    let text = format!(
        "{head}{extra}{}",
        PLATFORM.replacen("- name: prod", &format!("- name: prod{stage}"), 1)
    );
    let file = parse_str(&text, "t").unwrap();
    assert!(errors(&file).is_empty(), "{}", errors(&file));
    stacks(&file).remove(2)
}

fn readers(s: &StackDefinition) -> Vec<&str> {
    s.template
        .resources
        .iter()
        .filter(|(id, r)| r.kind == "AWS::RDS::DBInstance" && *id != stage_ids::DATABASE_INSTANCE)
        .map(|(id, _)| id.as_str())
        .collect()
}

#[test]
fn production_gets_a_reader_in_a_second_zone_and_others_one_writer() {
    use stage_ids::*;
    let az = |i: u32| fns::select(i, fns::get_azs());
    let s = stage_of(Some("production"), "", "");
    assert_eq!(readers(&s), ["DatabaseReader1"]);
    let (writer, reader) = (res(&s, DATABASE_INSTANCE), res(&s, "DatabaseReader1"));
    assert_eq!(writer.properties["AvailabilityZone"], az(0));
    assert_eq!(writer.properties["PromotionTier"], json!(0));
    assert_eq!(reader.properties["AvailabilityZone"], az(1));
    assert_eq!(reader.properties["PromotionTier"], json!(1));
    // The first instance of a cluster is its writer.
    assert!(reader.depends_on.contains(DATABASE_INSTANCE));
    // Otherwise the same instance: class, engine, cluster, monitoring.
    for (k, v) in &writer.properties {
        if k != "AvailabilityZone" && k != "PromotionTier" {
            assert_eq!(&reader.properties[k], v, "{k}");
        }
    }
    assert_eq!(reader.properties.len(), writer.properties.len());
    assert!(s.template.dangling_references().is_empty());

    // Other lifecycles: one writer (still in the first zone).
    for lifecycle in [None, Some("experimental")] {
        let s = stage_of(lifecycle, "", "");
        assert!(readers(&s).is_empty(), "{lifecycle:?}");
        assert_eq!(
            res(&s, DATABASE_INSTANCE).properties["AvailabilityZone"],
            az(0)
        );
    }
    // Per-stage override both ways; readers spread over the three zones.
    let s = stage_of(
        Some("production"),
        "",
        "\n          database: { readers: 0 }",
    );
    assert!(readers(&s).is_empty());
    let s = stage_of(None, "", "\n          database: { readers: 3 }");
    assert_eq!(
        readers(&s),
        ["DatabaseReader1", "DatabaseReader2", "DatabaseReader3"]
    );
    for (n, zone) in [(1, 1), (2, 2), (3, 0)] {
        let r = res(&s, &database_reader(n));
        assert_eq!(r.properties["AvailabilityZone"], az(zone), "reader {n}");
        assert_eq!(r.properties["PromotionTier"], json!(1));
    }
    // An existing VPC's zones are unknown to the template: Aurora places
    // the instances.
    let s = stage_of(
        Some("production"),
        "    vpc: { mode: existing, id: vpc-0a1b2c3d, privateSubnetIds: [subnet-0a, subnet-0b], publicSubnetIds: [subnet-1a, subnet-1b] }\n",
        "",
    );
    assert_eq!(readers(&s), ["DatabaseReader1"]);
    for id in [DATABASE_INSTANCE, "DatabaseReader1"] {
        assert!(
            !res(&s, id).properties.contains_key("AvailabilityZone"),
            "{id}"
        );
    }
}

#[test]
fn load_balancer_serves_https_with_a_dns_validated_certificate_and_redirects_http() {
    let all = stacks(&example("backstage-platform.yaml"));
    let s = &all[2];
    use stage_ids::*;
    assert_eq!(prop(s, LOAD_BALANCER, "Scheme"), "internet-facing");
    assert_eq!(
        prop(s, LOAD_BALANCER, "Subnets"),
        &json!([
            fns::ref_("PublicSubnet1"),
            fns::ref_("PublicSubnet2"),
            fns::ref_("PublicSubnet3")
        ])
    );
    let attributes = prop(s, LOAD_BALANCER, "LoadBalancerAttributes").to_string();
    assert!(
        attributes.contains("\"access_logs.s3.enabled\""),
        "{attributes}"
    );
    assert!(
        attributes.contains("drop_invalid_header_fields"),
        "{attributes}"
    );
    assert_eq!(prop(s, HTTPS_LISTENER, "Port"), 443);
    assert_eq!(prop(s, HTTPS_LISTENER, "Protocol"), "HTTPS");
    assert_eq!(prop(s, HTTPS_LISTENER, "SslPolicy"), TLS_POLICY);
    assert_eq!(
        prop(s, HTTPS_LISTENER, "Certificates"),
        &json!([{ "CertificateArn": fns::ref_(CERTIFICATE) }])
    );
    assert_eq!(
        prop(s, HTTPS_LISTENER, "DefaultActions")[0]["TargetGroupArn"],
        fns::ref_(TARGET_GROUP)
    );
    let http = prop(s, HTTP_LISTENER, "DefaultActions");
    assert_eq!(http.as_array().map(Vec::len), Some(1));
    assert_eq!(http[0]["Type"], "redirect");
    assert_eq!(http[0]["RedirectConfig"]["Protocol"], "HTTPS");
    assert_eq!(http[0]["RedirectConfig"]["StatusCode"], "HTTP_301");
    assert_eq!(prop(s, CERTIFICATE, "ValidationMethod"), "DNS");
    assert_eq!(
        prop(s, CERTIFICATE, "DomainValidationOptions"),
        &json!([{
            "DomainName": fns::ref_(stage_params::HOST_NAME),
            "HostedZoneId": fns::ref_(stage_params::HOSTED_ZONE_ID)
        }])
    );
    assert_eq!(
        prop(s, DNS_RECORD, "Name"),
        &fns::ref_(stage_params::HOST_NAME)
    );
    assert_eq!(prop(s, DNS_RECORD, "Type"), "A");
    assert_eq!(
        prop(s, DNS_RECORD, "AliasTarget")["DNSName"],
        fns::get_att(LOAD_BALANCER, "DNSName")
    );
    assert_eq!(
        prop(s, TARGET_GROUP, "HealthCheckPath"),
        DEFAULT_HEALTH_CHECK_PATH
    );
    assert_eq!(prop(s, TARGET_GROUP, "TargetType"), "ip");
    // The access-log bucket: private, encrypted, TLS only, written by the
    // region's log delivery account; the load balancer waits for its policy.
    assert_eq!(
        prop(s, ACCESS_LOGS_BUCKET, "PublicAccessBlockConfiguration")["RestrictPublicBuckets"],
        true
    );
    let policy = prop(s, ACCESS_LOGS_BUCKET_POLICY, "PolicyDocument");
    assert_eq!(
        policy["Statement"][0]["Principal"],
        json!({ "AWS": "arn:aws:iam::127311923021:root" })
    );
    assert_eq!(policy["Statement"][1]["Effect"], "Deny");
    assert!(
        res(s, LOAD_BALANCER)
            .depends_on
            .contains(ACCESS_LOGS_BUCKET_POLICY)
    );
    // The service: private subnets, no public IP, behind the target group,
    // rolled back by the circuit breaker when a new image fails.
    let nc = &prop(s, SERVICE, "NetworkConfiguration")["AwsvpcConfiguration"];
    assert_eq!(nc["AssignPublicIp"], "DISABLED");
    assert_eq!(nc["Subnets"][0], fns::ref_("PrivateSubnet1"));
    assert_eq!(
        prop(s, SERVICE, "DeploymentConfiguration")["DeploymentCircuitBreaker"],
        json!({ "Enable": true, "Rollback": true })
    );
    for dep in [
        HTTPS_LISTENER,
        DATABASE_INSTANCE,
        DATABASE_SECRET_ATTACHMENT,
    ] {
        assert!(res(s, SERVICE).depends_on.contains(dep), "{dep}");
    }
    assert_eq!(
        prop(s, CLUSTER, "ClusterSettings"),
        &json!([{ "Name": "containerInsights", "Value": "enabled" }])
    );
}

#[test]
fn roles_are_scoped_to_the_stage_and_trust_only_service_principals() {
    let all = stacks(&example("backstage-platform.yaml"));
    let s = &all[1];
    use stage_ids::*;
    let statements = &prop(s, EXECUTION_ROLE, "Policies")[0]["PolicyDocument"]["Statement"];
    let by_action = |a: &str| {
        statements
            .as_array()
            .unwrap()
            .iter()
            .find(|st| st["Action"].to_string().contains(a))
            .unwrap_or_else(|| panic!("no statement for {a}"))["Resource"]
            .clone()
    };
    assert_eq!(by_action("ecr:GetAuthorizationToken"), json!(["*"]));
    assert_eq!(
        by_action("ecr:BatchGetImage"),
        json!([fns::sub(
            "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/${ImageRepository}"
        )])
    );
    assert_eq!(
        by_action("logs:PutLogEvents"),
        json!([fns::get_att(ids::LOG_GROUP, "Arn")])
    );
    assert_eq!(
        by_action("secretsmanager:GetSecretValue"),
        json!([fns::ref_(DATABASE_SECRET)])
    );
    assert_eq!(
        by_action("kms:Decrypt"),
        json!([fns::get_att(ids::KMS_KEY, "Arn")])
    );
    // Only GetAuthorizationToken, which has no resource-level permissions,
    // is on `*`.
    let star: Vec<String> = statements
        .as_array()
        .unwrap()
        .iter()
        .filter(|st| st["Resource"] == json!(["*"]))
        .map(|st| st["Action"].to_string())
        .collect();
    assert_eq!(star, [r#"["ecr:GetAuthorizationToken"]"#]);
    // The task role has no permissions.
    assert!(!res(s, TASK_ROLE).properties.contains_key("Policies"));
    assert!(
        !res(s, TASK_ROLE)
            .properties
            .contains_key("ManagedPolicyArns")
    );
    assert_eq!(
        prop(s, TASK_DEFINITION, "TaskRoleArn"),
        &fns::get_att(TASK_ROLE, "Arn")
    );
    // Every trust policy of every stack names exact principals.
    for st in &all {
        for (id, r) in &st.template.resources {
            let Some(doc) = r.properties.get("AssumeRolePolicyDocument") else {
                continue;
            };
            for statement in doc["Statement"].as_array().unwrap() {
                let principal = &statement["Principal"];
                let mut values = Vec::new();
                strings(principal, &mut values);
                assert!(
                    !values.iter().any(|v| v == "*"),
                    "{}/{id}: {principal}",
                    st.name
                );
            }
        }
    }
    // The shared roles name each stage's resources exactly.
    let ops = prop(&all[0], ids::OPERATIONS_ROLE, "Policies").to_string();
    for stage in ["dev", "prod"] {
        assert!(
            ops.contains(&format!(
                "cluster/${{Prefix}}-${{EnvironmentName}}-{stage}-cluster"
            )),
            "{ops}"
        );
        assert!(
            ops.contains(&format!(
                "service/${{Prefix}}-${{EnvironmentName}}-{stage}-cluster/backstage"
            )),
            "{ops}"
        );
    }
    let prov = prop(&all[0], ids::PROVISIONING_ROLE, "Policies").to_string();
    assert!(prov.contains("iam:PassRole") && prov.contains("ecs-tasks.amazonaws.com"));
}

#[test]
fn existing_vpc_stages_use_its_subnets() {
    let file = spec_with(&format!(
        "    vpc:\n      mode: existing\n      id: vpc-0123456789abcdef0\n      privateSubnetIds: [subnet-0a, subnet-0b]\n      publicSubnetIds: [subnet-1a, subnet-1b]\n{PLATFORM}"
    ));
    assert!(errors(&file).is_empty(), "{}", errors(&file));
    let all = stacks(&file);
    let s = &all[1];
    assert!(s.template.dangling_references().is_empty());
    assert!(of_type(s, "AWS::EC2::VPC").is_empty());
    assert_eq!(s.parameters["PublicSubnetIds"], "subnet-1a,subnet-1b");
    assert_eq!(
        prop(s, stage_ids::LOAD_BALANCER, "Subnets"),
        &fns::ref_("PublicSubnetIds")
    );
    assert_eq!(
        prop(s, stage_ids::DATABASE_SUBNET_GROUP, "SubnetIds"),
        &fns::ref_("PrivateSubnetIds")
    );
    let names = BackstagePlatformProvider.derived_names(&file.providers[0], "providers[0]");
    assert!(!names.iter().any(|n| n.value.ends_with("-flow-logs-role")));
    // Both subnet lists are required, two subnets each.
    let short = spec_with(&format!(
        "    vpc:\n      mode: existing\n      id: vpc-0123456789abcdef0\n      privateSubnetIds: [subnet-0a]\n{PLATFORM}"
    ));
    let e = errors(&short);
    assert_eq!(
        paths(&e),
        [
            "providers[0].vpc.privateSubnetIds",
            "providers[0].vpc.publicSubnetIds"
        ]
    );
}

#[test]
fn regions_pick_their_partition_suffix_and_log_delivery_principal() {
    let cn = parse_str(
        &format!(
            "{}{PLATFORM}",
            HEAD.replace("us-east-1", "cn-north-1")
                .replace("arn:aws:iam::123456789012", "arn:aws-cn:iam::123456789012")
        ),
        "cn",
    )
    .unwrap();
    let all = stacks(&cn);
    assert_eq!(
        all[1].parameters[stage_params::IMAGE],
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/backstage:1.4.0"
    );
    assert_eq!(
        prop(
            &all[1],
            stage_ids::ACCESS_LOGS_BUCKET_POLICY,
            "PolicyDocument"
        )["Statement"][0]["Principal"],
        json!({ "AWS": "arn:aws-cn:iam::638102146993:root" })
    );
    assert_eq!(
        common::elb_log_delivery_principal("ap-south-2"),
        json!({ "Service": "logdelivery.elasticloadbalancing.amazonaws.com" })
    );
    // The table is sorted and has one account per region.
    let regions: Vec<&str> = common::ELB_LOG_ACCOUNTS.iter().map(|(r, _)| *r).collect();
    let mut sorted = regions.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(regions, sorted);
    assert!(common::ELB_LOG_ACCOUNTS.iter().all(|(_, a)| a.len() == 12));
}

#[test]
fn fargate_sizes_match_the_documented_combinations() {
    assert_eq!(fargate_memory_sizes(256), Some(&[512, 1024, 2048][..]));
    assert_eq!(
        fargate_memory_sizes(2048).map(|m| (m[0], m[m.len() - 1], m.len())),
        Some((4096, 16384, 13))
    );
    assert_eq!(
        fargate_memory_sizes(4096).map(|m| (m[0], m[m.len() - 1])),
        Some((8192, 30720))
    );
    assert_eq!(
        fargate_memory_sizes(8192).map(|m| (m[0], m[m.len() - 1])),
        Some((16384, 61440))
    );
    assert_eq!(
        fargate_memory_sizes(16384).map(|m| (m[0], m[m.len() - 1])),
        Some((32768, 122_880))
    );
    assert_eq!(fargate_memory_sizes(3000), None);
    for (_, sizes) in FARGATE_SIZES {
        assert!(sizes.windows(2).all(|w| w[0] < w[1]));
    }
}

// ---------------------------------------------------------------------------
// Validation

#[test]
fn each_validation_path_names_the_field_the_value_and_what_is_allowed() {
    let digest = format!("sha256:{}", "a".repeat(64));
    let cases: Vec<(SpecFile, &str, Option<String>, &str)> = vec![
        (
            spec_with(""),
            "providers[0].platform",
            None,
            "needs a `platform` section",
        ),
        (
            platform_with("repository: backstage", "repository: Backstage"),
            "providers[0].platform.image.repository",
            Some("Backstage".into()),
            "ECR repository name",
        ),
        (
            platform_with("tag: 1.4.0", "tag: 1.4.0, digest: bad"),
            "providers[0].platform.image.digest",
            Some("bad".into()),
            "exactly one of `tag` and `digest`",
        ),
        (
            platform_with("repository: backstage, tag: 1.4.0", "repository: backstage"),
            "providers[0].platform.image",
            None,
            "exactly one of `tag`",
        ),
        (
            platform_with("tag: 1.4.0", "tag: '-1.4'"),
            "providers[0].platform.image.tag",
            Some("-1.4".into()),
            "not an image tag",
        ),
        (
            platform_with("tag: 1.4.0", "digest: sha256:abc"),
            "providers[0].platform.image.digest",
            Some("sha256:abc".into()),
            "64 lowercase hex",
        ),
        (
            platform_with(
                "hostedZoneId: Z0123456789ABCDEFGHIJ",
                "hostedZoneId: /hostedzone/Z01",
            ),
            "providers[0].platform.domain.hostedZoneId",
            Some("/hostedzone/Z01".into()),
            "hosted zone id",
        ),
        (
            platform_with("name: idp.example.com", "name: IDP.example.com"),
            "providers[0].platform.domain.name",
            Some("IDP.example.com".into()),
            "label `IDP`",
        ),
        (
            platform_with("name: idp.example.com", "name: localhost"),
            "providers[0].platform.domain.name",
            Some("localhost".into()),
            "at least two labels",
        ),
        (platform_with("        - name: prod\n", ""), "", None, ""),
        (
            platform_with("- name: prod", "- name: dev"),
            "providers[0].platform.stages[1].name",
            Some("dev".into()),
            "duplicate stage name: stages[0]",
        ),
        (
            platform_with("- name: prod", "- name: Prod"),
            "providers[0].platform.stages[1].name",
            Some("Prod".into()),
            "lowercase letter",
        ),
        (
            platform_with("- name: prod", "- name: environment"),
            "providers[0].platform.stages[1].name",
            Some("environment".into()),
            "reserved",
        ),
        (
            platform_with(
                "- name: prod",
                "- name: prod\n          hostName: prod.example.org",
            ),
            "providers[0].platform.stages[1].hostName",
            Some("prod.example.org".into()),
            "not in the domain `idp.example.com`",
        ),
        (
            platform_with(
                "- name: prod",
                "- name: prod\n          hostName: dev.idp.example.com",
            ),
            "providers[0].platform.stages[1].hostName",
            Some("dev.idp.example.com".into()),
            "already used by stages[0]",
        ),
        (
            platform_with("- name: prod", "- name: prod\n          imageTag: 'a b'"),
            "providers[0].platform.stages[1].imageTag",
            Some("a b".into()),
            "not an image tag",
        ),
        (
            platform_with(
                "- name: prod",
                &format!(
                    "- name: prod\n          imageTag: 1.5.0\n          imageDigest: {digest}"
                ),
            ),
            "providers[0].platform.stages[1].imageDigest",
            Some(digest.clone()),
            "at most one of `imageTag` and `imageDigest`",
        ),
        (
            platform_with(
                "- name: prod",
                "- name: prod\n          imageDigest: sha256:XYZ",
            ),
            "providers[0].platform.stages[1].imageDigest",
            Some("sha256:XYZ".into()),
            "image digest",
        ),
        (
            platform_with("- name: prod", "- name: prod\n          cpu: 3000"),
            "providers[0].platform.stages[1].cpu",
            Some("3000".into()),
            "allowed CPU units: 256, 512, 1024, 2048, 4096, 8192, 16384",
        ),
        (
            platform_with(
                "- name: prod",
                "- name: prod\n          cpu: 4096\n          memory: 4096",
            ),
            "providers[0].platform.stages[1].memory",
            Some("4096".into()),
            "8192 to 30720 MiB in steps of 1024",
        ),
        (
            // The default memory (2048) does not fit 4096 CPU units: the
            // error is on the field that was set.
            platform_with("- name: prod", "- name: prod\n          cpu: 4096"),
            "providers[0].platform.stages[1].cpu",
            Some("4096".into()),
            "with 4096 units memory is 8192",
        ),
        (
            platform_with("- name: prod", "- name: prod\n          desiredCount: 51"),
            "providers[0].platform.stages[1].desiredCount",
            Some("51".into()),
            "between 0 and 50",
        ),
        (
            platform_with(
                "- name: prod",
                "- name: prod\n          database: { minCapacity: 0.25 }",
            ),
            "providers[0].platform.stages[1].database.minCapacity",
            Some("0.25".into()),
            "steps of 0.5",
        ),
        (
            platform_with(
                "- name: prod",
                "- name: prod\n          database: { maxCapacity: 512 }",
            ),
            "providers[0].platform.stages[1].database.maxCapacity",
            Some("512".into()),
            "1 to 256 ACUs",
        ),
        (
            platform_with(
                "- name: prod",
                "- name: prod\n          database: { minCapacity: 4, maxCapacity: 2 }",
            ),
            "providers[0].platform.stages[1].database.maxCapacity",
            Some("2".into()),
            "at least the minimum (4 ACUs)",
        ),
        (
            platform_with(
                "- name: prod",
                "- name: prod\n          database: { minCapacity: 3 }",
            ),
            "providers[0].platform.stages[1].database.minCapacity",
            Some("3".into()),
            "maximum capacity (2 ACUs) must be at least the minimum (3 ACUs)",
        ),
        (
            platform_with(
                "- name: prod",
                "- name: prod\n          database: { readers: 16 }",
            ),
            "providers[0].platform.stages[1].database.readers",
            Some("16".into()),
            "at most 15 readers",
        ),
        (
            platform_with("domain:", "healthCheckPath: health\n      domain:"),
            "providers[0].platform.healthCheckPath",
            Some("health".into()),
            "health check path",
        ),
    ];
    for (file, path, value, message) in cases {
        let e = errors(&file);
        if path.is_empty() {
            // One stage is enough.
            assert!(e.is_empty(), "{e}");
            continue;
        }
        assert_eq!(paths(&e), [path], "{e}");
        let first = e.iter().next().unwrap();
        assert_eq!(first.value, value, "{path}");
        assert!(
            first.message.contains(message),
            "{path}: {:?} does not say {message:?}",
            first.message
        );
    }
}

#[test]
fn stages_are_required_and_limited_and_every_problem_is_reported() {
    let e = errors(&platform_with(
        "      stages:\n        - name: dev\n        - name: prod\n",
        "      stages: []\n",
    ));
    assert_eq!(paths(&e), ["providers[0].platform.stages"]);
    let many: String = (0..11).fold(String::new(), |acc, i| {
        acc + &format!("        - name: s{i}\n")
    });
    let e = errors(&platform_with(
        "        - name: dev\n        - name: prod\n",
        &many,
    ));
    assert_eq!(paths(&e), ["providers[0].platform.stages"]);
    assert_eq!(e.iter().next().unwrap().value.as_deref(), Some("11"));

    let e = errors(&spec_with(
        "    platform:
      image: { repository: Bad, tag: '1.0', digest: nope }
      domain: { hostedZoneId: nope, name: example.com }
      stages:
        - { name: dev, cpu: 100 }
        - { name: dev, desiredCount: 99, imageTag: '' }
",
    ));
    assert_eq!(
        paths(&e),
        [
            "providers[0].platform.image.repository",
            "providers[0].platform.image.digest",
            "providers[0].platform.domain.hostedZoneId",
            "providers[0].platform.stages[0].cpu",
            "providers[0].platform.stages[1].name",
            "providers[0].platform.stages[1].imageTag",
            "providers[0].platform.stages[1].desiredCount",
        ],
        "{e}"
    );
}

#[test]
fn valid_edges_pass_validation() {
    let digest = format!("sha256:{}", "f".repeat(64));
    for (from, to) in [
        (
            "repository: backstage",
            "repository: platform/back_stage.app-1",
        ),
        ("tag: 1.4.0", &format!("digest: {digest}")),
        ("tag: 1.4.0", "tag: _Latest.v-1"),
        (
            "- name: prod",
            "- name: prod\n          hostName: idp.example.com",
        ),
        (
            "- name: prod",
            "- name: prod\n          hostName: a.b.idp.example.com",
        ),
        (
            "- name: prod",
            "- name: prod\n          cpu: 256\n          memory: 512\n          desiredCount: 0",
        ),
        (
            "- name: prod",
            "- name: prod\n          cpu: 16384\n          memory: 122880\n          desiredCount: 50",
        ),
        (
            "- name: prod",
            "- name: prod\n          database: { minCapacity: 0, maxCapacity: 256 }",
        ),
        (
            "- name: prod",
            "- name: prod\n          database: { minCapacity: 1.5, maxCapacity: 1.5 }",
        ),
        (
            "- name: prod",
            "- name: prod\n          database: { readers: 15 }",
        ),
        (
            "- name: prod",
            "- name: prod\n          database: { readers: 0 }",
        ),
        ("- name: prod", "- name: a2345678901234567890"),
        (
            "domain:",
            "healthCheckPath: /healthcheck?full=1\n      domain:",
        ),
    ] {
        let file = platform_with(from, to);
        let e = errors(&file);
        assert!(e.is_empty(), "{to}: {e}");
    }
}

#[test]
fn derived_names_cover_every_named_resource_and_are_checked() {
    let file = example("backstage-platform.yaml");
    let names: Vec<(NameKind, String, String)> = BackstagePlatformProvider
        .derived_names(&file.providers[0], "providers[0]")
        .into_iter()
        .map(|n| (n.kind, n.value, n.path))
        .collect();
    for (kind, value, path) in [
        (NameKind::Stack, "opa-idp-environment", "providers[0].name"),
        (
            NameKind::IamRole,
            "opa-idp-operations-role",
            "providers[0].name",
        ),
        (
            NameKind::DynamoDbTable,
            "opa-idp-audit",
            "providers[0].name",
        ),
        (
            NameKind::Stack,
            "opa-idp-dev",
            "providers[0].platform.stages[0].name",
        ),
        (
            NameKind::Stack,
            "opa-idp-prod",
            "providers[0].platform.stages[1].name",
        ),
        (
            NameKind::EcsCluster,
            "opa-idp-prod-cluster",
            "providers[0].platform.stages[1].name",
        ),
        (
            NameKind::LogGroup,
            "/opa/idp-dev/environment",
            "providers[0].platform.stages[0].name",
        ),
        (
            NameKind::KmsAlias,
            "alias/opa-idp-dev",
            "providers[0].platform.stages[0].name",
        ),
        (
            NameKind::IamRole,
            "opa-idp-dev-execution-role",
            "providers[0].platform.stages[0].name",
        ),
        (
            NameKind::IamRole,
            "opa-idp-dev-task-role",
            "providers[0].platform.stages[0].name",
        ),
        (
            NameKind::IamRole,
            "opa-idp-dev-rds-monitoring-role",
            "providers[0].platform.stages[0].name",
        ),
        (
            NameKind::IamRole,
            "opa-idp-prod-flow-logs-role",
            "providers[0].platform.stages[1].name",
        ),
    ] {
        assert!(
            names.contains(&(kind, value.to_owned(), path.to_owned())),
            "{kind:?} {value} at {path}"
        );
    }
    for (kind, value, _) in &names {
        assert_eq!(kind.check(value), None);
    }
    // Every role and named resource of the rendered stacks is among them.
    for s in stacks(&file) {
        assert!(
            names
                .iter()
                .any(|(k, v, _)| *k == NameKind::Stack && *v == s.name)
        );
    }

    // The generic checks see stage-derived names: a long stage name makes
    // IAM role names too long, reported at the stage name.
    let long = platform_with("- name: prod", "- name: abcdefghijklmnopqrst");
    let mut file = long.clone();
    file.providers[0].name = "a-rather-long-platform-name".into();
    let problems = crate::spec::validate::problems(&file, &crate::provider::Registry::builtin());
    assert_eq!(
        paths(&problems),
        ["providers[0].platform.stages[1].name"],
        "{problems}"
    );
    assert!(
        problems
            .iter()
            .next()
            .unwrap()
            .message
            .contains("IAM role name")
    );
    // The Aurora identifier and entity name limits are checked here.
    let mut file = long;
    file.providers[0].name = "n".repeat(50);
    file.providers[0].prefix = Some("p".into());
    let e = errors(&file);
    assert_eq!(
        paths(&e),
        ["providers[0].platform.stages[1].name"; 2],
        "{e}"
    );
    assert!(
        e.iter()
            .any(|x| x.message.contains("Aurora cluster identifier"))
    );
    assert!(e.iter().any(|x| x.message.contains("catalog entity name")));
}

#[test]
fn validation_names_and_rendering_never_panic_on_odd_input() {
    let base = spec_with(PLATFORM).providers.remove(0);
    let mut odd = Vec::new();
    let weird = "ünïcødé/ä\u{0}${x}".repeat(40);
    let mut p = base.clone();
    p.name = String::new();
    p.prefix = Some(String::new());
    odd.push(p);
    let mut p = base.clone();
    if let Some(pl) = p.platform.as_mut() {
        pl.image.repository = weird.clone();
        pl.image.tag = Some(weird.clone());
        pl.image.digest = Some(weird.clone());
        pl.domain.hosted_zone_id = weird.clone();
        pl.domain.name = "..".into();
        pl.health_check_path = Some(weird.clone());
        for s in &mut pl.stages {
            s.name = weird.clone();
            s.host_name = Some(".".repeat(300));
            s.image_tag = Some(String::new());
            s.cpu = Some(u32::MAX);
            s.memory = Some(0);
            s.desired_count = Some(u32::MAX);
            s.database = Some(DatabaseSpec {
                min_capacity: Some(Acu(f64::NAN)),
                max_capacity: Some(Acu(f64::NEG_INFINITY)),
                readers: Some(u32::MAX),
            });
        }
    }
    odd.push(p);
    let mut p = base.clone();
    if let Some(pl) = p.platform.as_mut() {
        pl.stages.clear();
        pl.domain.name = String::new();
        pl.domain.hosted_zone_id = String::new();
        pl.image.repository = String::new();
    }
    odd.push(p);
    let mut p = base;
    p.platform = None;
    p.legacy_vpc_configuration = Some("Use Existing VPC".into());
    odd.push(p);
    for p in &odd {
        let mut e = ValidationErrors::default();
        BackstagePlatformProvider.validate(p, "providers[0]", &mut e);
        assert!(!e.is_empty() || p.name.is_empty());
        for err in &e {
            assert!(err.path.starts_with("providers[0]"), "{err}");
            assert!(!err.message.is_empty());
            assert!(
                err.value.as_deref().is_none_or(|v| v.chars().count() < 200),
                "{err}"
            );
        }
        assert!(
            !BackstagePlatformProvider
                .derived_names(p, "providers[0]")
                .is_empty()
        );
        let file = SpecFile {
            api_version: None,
            providers: vec![p.clone()],
            environments: Vec::new(),
        };
        assert!(!stacks(&file).is_empty());
        assert!(!entities(&file, &StackOutputs::new()).is_empty());
    }
}

// ---------------------------------------------------------------------------
// Catalog

#[test]
fn catalog_has_the_provider_and_a_resource_per_stage_with_its_url() {
    let file = example("backstage-platform.yaml");
    let e = entities(&file, &StackOutputs::new());
    let kinds: Vec<(&str, &str)> = e.iter().map(|x| (x.kind.as_str(), x.name())).collect();
    assert_eq!(
        kinds,
        [
            ("AWSEnvironmentProvider", "idp"),
            ("Resource", "idp-dev"),
            ("Resource", "idp-prod")
        ]
    );
    let provider = &e[0];
    assert_eq!(provider.metadata["envType"], "aws-backstage-platform");
    assert_eq!(provider.metadata["stackName"], "opa-idp-environment");
    assert_eq!(provider.metadata["stages"], "dev,prod");
    assert_eq!(provider.metadata["domain"], "idp.example.com");
    assert_eq!(provider.metadata["auditTable"], "opa-idp-audit");
    assert_eq!(
        BackstagePlatformProvider
            .catalog_entity(
                ValidSpec::new_unchecked(file.clone())
                    .providers()
                    .next()
                    .unwrap(),
                &StackOutputs::new()
            )
            .metadata,
        provider.metadata
    );

    let dev = &e[1];
    assert_eq!(dev.api_version, "backstage.io/v1alpha1");
    assert_eq!(dev.metadata["url"], "https://dev.idp.example.com");
    assert_eq!(
        dev.metadata["links"][0]["url"],
        "https://dev.idp.example.com"
    );
    assert_eq!(dev.metadata["stage"], "dev");
    assert_eq!(dev.metadata["stackName"], "opa-idp-dev");
    assert_eq!(dev.metadata["clusterName"], "opa-idp-dev-cluster");
    assert_eq!(dev.metadata["serviceName"], "backstage");
    assert_eq!(dev.metadata["databaseCluster"], "opa-idp-dev");
    assert_eq!(
        dev.metadata["image"],
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/backstage:1.5.0-rc.1"
    );
    assert_eq!(dev.metadata["loadBalancerDnsName"], "");
    assert_eq!(dev.spec["type"], STAGE_RESOURCE_TYPE);
    assert_eq!(dev.spec["owner"], "group:platform");
    assert_eq!(
        dev.spec["dependsOn"],
        json!(["awsenvironmentprovider:default/idp"])
    );
    assert_eq!(e[2].metadata["url"], "https://idp.example.com");

    // Outputs win over derived values.
    let mut outs = StackOutputs::new();
    outs.insert(
        "opa-idp-dev".into(),
        BTreeMap::from([
            (
                OUTPUT_LOAD_BALANCER_DNS.to_owned(),
                "lb-1.elb.amazonaws.com".to_owned(),
            ),
            (outputs::VPC_ID.to_owned(), "vpc-0abc".to_owned()),
            (outputs::CLUSTER_NAME.to_owned(), "c-1".to_owned()),
        ]),
    );
    let e = entities(&file, &outs);
    assert_eq!(
        e[1].metadata["loadBalancerDnsName"],
        "lb-1.elb.amazonaws.com"
    );
    assert_eq!(e[1].metadata["vpc"], "vpc-0abc");
    assert_eq!(e[1].metadata["clusterName"], "c-1");
    assert_eq!(e[2].metadata["vpc"], "");
}

#[test]
fn platform_roles_use_the_resource_types_ecs_and_rds_document() {
    let all = stacks(&example("backstage-platform.yaml"));
    let shared = stack(&all, "opa-idp-environment");
    let statements = |role: &str| {
        prop(shared, role, "Policies")[0]["PolicyDocument"]["Statement"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let has = |st: &Value, action: &str| {
        st["Action"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == action))
    };
    for role in [ids::OPERATIONS_ROLE, ids::PROVISIONING_ROLE] {
        let st = statements(role);
        // ListServices/ListTasks: `*` for requests naming a stage cluster.
        let list = st
            .iter()
            .find(|s| has(s, "ecs:ListTasks"))
            .expect("ListTasks");
        assert_eq!(list["Resource"], "*");
        assert_eq!(
            list["Condition"]["ArnEquals"]["ecs:cluster"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        assert!(
            st.iter()
                .filter(|s| has(s, "ecs:DescribeClusters"))
                .all(|s| !has(s, "ecs:ListTasks"))
        );
        // The stage stacks, readable.
        let stacks = st
            .iter()
            .find(|s| has(s, "cloudformation:DescribeStackEvents") && s["Sid"].is_null())
            .expect("stage stacks");
        assert!(
            stacks["Resource"]
                .to_string()
                .contains("stack/${Prefix}-${EnvironmentName}-dev/*")
        );
    }
    // Task definitions registered under the stages' families only.
    let prov = statements(ids::PROVISIONING_ROLE);
    let register = prov
        .iter()
        .find(|s| has(s, "ecs:RegisterTaskDefinition"))
        .expect("RegisterTaskDefinition");
    assert!(
        register["Resource"]
            .to_string()
            .contains("task-definition/${Prefix}-${EnvironmentName}-dev:*"),
        "{register}"
    );
    // Enhanced monitoring trusts RDS for this account only.
    let dev = stack(&all, "opa-idp-dev");
    let trust = &prop(
        dev,
        stage_ids::DATABASE_MONITORING_ROLE,
        "AssumeRolePolicyDocument",
    )["Statement"][0];
    assert_eq!(
        trust["Condition"]["StringEquals"]["aws:SourceAccount"],
        fns::ref_("AWS::AccountId")
    );
}

#[test]
fn stages_get_a_nat_gateway_per_zone_in_production_unless_they_set_their_own() {
    let nats = |file: &SpecFile| -> Vec<(String, usize)> {
        stacks(file)
            .iter()
            .filter(|s| !of_type(s, "AWS::EC2::VPC").is_empty())
            .map(|s| (s.name.clone(), of_type(s, "AWS::EC2::NatGateway").len()))
            .collect()
    };
    let file = spec_with(&format!("    lifecycle: production\n{PLATFORM}"));
    assert_eq!(
        nats(&file),
        [
            ("opa-idp-dev".to_owned(), 3),
            ("opa-idp-prod".to_owned(), 3)
        ]
    );
    let file = spec_with(&format!(
        "    lifecycle: production\n{}",
        PLATFORM.replacen(
            "- name: dev\n",
            "- name: dev\n          natGateways: 1\n",
            1
        )
    ));
    assert!(errors(&file).is_empty(), "{}", errors(&file));
    assert_eq!(
        nats(&file),
        [
            ("opa-idp-dev".to_owned(), 1),
            ("opa-idp-prod".to_owned(), 3)
        ]
    );
    // The example: a production platform, so both stages.
    assert_eq!(
        nats(&example("backstage-platform.yaml")),
        [
            ("opa-idp-dev".to_owned(), 3),
            ("opa-idp-prod".to_owned(), 3)
        ]
    );
    // Other lifecycles: one, unless a stage asks for more.
    let file = spec_with(&PLATFORM.replacen(
        "- name: prod\n",
        "- name: prod\n          natGateways: 2\n",
        1,
    ));
    assert_eq!(
        nats(&file),
        [
            ("opa-idp-dev".to_owned(), 1),
            ("opa-idp-prod".to_owned(), 2)
        ]
    );
}

#[test]
fn stage_nat_gateways_are_checked_with_their_path() {
    let file = platform_with("- name: prod\n", "- name: prod\n          natGateways: 4\n");
    assert_eq!(
        paths(&errors(&file)),
        ["providers[0].platform.stages[1].natGateways"]
    );
    let file = spec_with(&format!(
        "    vpc: {{ mode: existing, id: vpc-0a1b2c3d4e5f60718, privateSubnetIds: [subnet-0a1b2c3d, subnet-0e1f2a3b], publicSubnetIds: [subnet-1a1b2c3d, subnet-1e1f2a3b] }}\n{}",
        PLATFORM.replacen(
            "- name: dev\n",
            "- name: dev\n          natGateways: 1\n",
            1
        )
    ));
    let e = errors(&file);
    assert_eq!(paths(&e), ["providers[0].platform.stages[0].natGateways"]);
    assert!(e.iter().all(|x| x.message.contains("existing VPC")), "{e}");
}
