//! `AWSEnvironment` entities, and every entity of a spec in catalog order.

use serde_json::{Map, Value, json};

use super::entity::{
    AWS_API_VERSION, Entity, KIND_ENVIRONMENT, KIND_PROVIDER, MANAGED_BY_ANNOTATION,
};
use super::error::CatalogError;
use crate::provider::{Registry, StackOutputs};
use crate::spec::{EnvironmentSpec, ValidSpec};

/// Default `metadata.category` of an environment.
pub const DEFAULT_CATEGORY: &str = "aws";
/// Default `metadata.classification` of an environment.
pub const DEFAULT_CLASSIFICATION: &str = "internal";
/// Default `metadata.level` of an environment.
pub const DEFAULT_LEVEL: u32 = 1;
/// Default `spec.lifecycle` of an environment.
pub const DEFAULT_LIFECYCLE: &str = "experimental";
/// Tag every environment entity carries.
pub const ENVIRONMENT_TAG: &str = "aws";

/// The entity reference of the `AWSEnvironmentProvider` entity of the
/// provider named `name` (`awsenvironmentprovider:default/<name>`).
pub fn provider_ref(name: &str) -> String {
    format!("{}:default/{name}", KIND_PROVIDER.to_ascii_lowercase())
}

/// The `AWSEnvironment` entity of one environment (stage) of a spec.
///
/// `environmentType`, `envTypeAccount` and `envTypeRegion` come from the
/// environment's first provider (validation makes all of them agree);
/// `spec.dependsOn` references every provider's entity. Provider names the
/// spec does not define are skipped here; [`entities`] reports them.
pub fn environment_entity(env: &EnvironmentSpec, spec: &ValidSpec) -> Entity {
    let first = env.providers.iter().find_map(|n| spec.provider(n));
    let (env_type, account, region) =
        first.map_or((String::new(), String::new(), String::new()), |p| {
            (
                p.kind.env_type().to_owned(),
                p.account.as_str().to_owned(),
                p.region.clone(),
            )
        });

    let mut tags = vec![ENVIRONMENT_TAG.to_owned()];
    for t in &env.tags {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    let description = env
        .description
        .clone()
        .unwrap_or_else(|| format!("AWS environment {} ({})", env.name, env.short_name));

    let mut m = Map::new();
    m.insert("name".into(), Value::String(env.name.clone()));
    m.insert("title".into(), Value::String(env.name.clone()));
    m.insert("description".into(), Value::String(description));
    m.insert(
        "tags".into(),
        Value::Array(tags.into_iter().map(Value::String).collect()),
    );
    m.insert(
        "annotations".into(),
        json!({ MANAGED_BY_ANNOTATION: "harmonix" }),
    );
    m.insert("shortName".into(), Value::String(env.short_name.clone()));
    m.insert("environmentType".into(), Value::String(env_type));
    m.insert("envTypeAccount".into(), Value::String(account));
    m.insert("envTypeRegion".into(), Value::String(region));
    m.insert(
        "category".into(),
        Value::String(
            env.category
                .clone()
                .unwrap_or_else(|| DEFAULT_CATEGORY.into()),
        ),
    );
    m.insert(
        "classification".into(),
        Value::String(
            env.classification
                .clone()
                .unwrap_or_else(|| DEFAULT_CLASSIFICATION.into()),
        ),
    );
    m.insert("level".into(), json!(env.level.unwrap_or(DEFAULT_LEVEL)));
    m.insert(
        "deploymentRequiresApproval".into(),
        Value::Bool(env.deployment_requires_approval.unwrap_or(false)),
    );

    let mut s = Map::new();
    s.insert("type".into(), Value::String("environment".into()));
    s.insert(
        "lifecycle".into(),
        Value::String(
            env.lifecycle
                .clone()
                .unwrap_or_else(|| DEFAULT_LIFECYCLE.into()),
        ),
    );
    s.insert("owner".into(), Value::String(env.owner.clone()));
    if let Some(system) = &env.system {
        s.insert("system".into(), Value::String(system.clone()));
    }
    s.insert(
        "dependsOn".into(),
        Value::Array(
            env.providers
                .iter()
                .filter(|n| spec.provider(n).is_some())
                .map(|n| Value::String(provider_ref(n)))
                .collect(),
        ),
    );

    Entity {
        api_version: AWS_API_VERSION.into(),
        kind: KIND_ENVIRONMENT.into(),
        metadata: m,
        spec: s,
    }
}

/// Every catalog entity of a spec, in file order: the entities of each
/// provider (one `AWSEnvironmentProvider`, and any more the kind adds; built by the provider
/// implementation from `outputs`, or from derived names where an output is
/// missing), then one `AWSEnvironment` per environment.
pub fn entities(
    spec: &ValidSpec,
    registry: &Registry,
    outputs: &StackOutputs,
) -> Result<Vec<Entity>, CatalogError> {
    let mut out = Vec::with_capacity(spec.providers().len() + spec.environments().len());
    for p in spec.providers() {
        let imp = registry
            .get(p.kind)
            .ok_or_else(|| CatalogError::UnknownKind {
                provider: p.name.clone(),
                kind: p.kind,
            })?;
        out.extend(imp.catalog_entities(p, outputs));
    }
    for env in spec.environments() {
        if let Some(missing) = env.providers.iter().find(|n| spec.provider(n).is_none()) {
            return Err(CatalogError::UnknownProvider {
                environment: env.name.clone(),
                provider: missing.clone(),
                defined: spec
                    .providers()
                    .map(|p| p.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        out.push(environment_entity(env, spec));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::spec;

    const SPEC: &str = r#"
providers:
  - kind: ecs
    name: shop-dev-ecs
    owner: group:shop
    account: "012345678901"
    region: eu-west-1
    environmentRole: arn:aws:iam::012345678901:role/opa-envprovisioning-role
    platformRole: arn:aws:iam::111111111111:role/opa-platform-role
    pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
  - kind: ecs-ec2
    name: shop-dev-batch
    owner: group:shop
    account: "012345678901"
    region: eu-west-1
    environmentRole: arn:aws:iam::012345678901:role/opa-envprovisioning-role
    platformRole: arn:aws:iam::111111111111:role/opa-platform-role
    pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
environments:
  - name: shop-dev
    shortName: dev
    owner: group:shop
    providers: [shop-dev-ecs, shop-dev-batch]
    tags: [shop, aws, shop]
  - name: shop-qa
    shortName: qa
    description: QA stage
    owner: group:qa
    system: shop
    lifecycle: production
    category: platform
    classification: public
    level: 2
    deploymentRequiresApproval: true
    providers: [shop-dev-batch]
"#;

    fn valid(yaml: &str) -> ValidSpec {
        let registry = Registry::builtin();
        spec::validate(spec::parse_str(yaml, "test").unwrap(), &registry, "test").unwrap()
    }

    #[test]
    fn environment_entity_defaults() {
        let v = valid(SPEC);
        let e = environment_entity(&v.environments()[0], &v);
        assert_eq!(e.api_version, AWS_API_VERSION);
        assert_eq!(e.kind, KIND_ENVIRONMENT);
        assert_eq!(
            Value::Object(e.metadata.clone()),
            json!({
                "name": "shop-dev",
                "title": "shop-dev",
                "description": "AWS environment shop-dev (dev)",
                "tags": ["aws", "shop"],
                "annotations": { "harmonix.dev/managed-by": "harmonix" },
                "shortName": "dev",
                "environmentType": "aws-ecs",
                "envTypeAccount": "012345678901",
                "envTypeRegion": "eu-west-1",
                "category": "aws",
                "classification": "internal",
                "level": 1,
                "deploymentRequiresApproval": false
            })
        );
        assert_eq!(
            Value::Object(e.spec.clone()),
            json!({
                "type": "environment",
                "lifecycle": "experimental",
                "owner": "group:shop",
                "dependsOn": [
                    "awsenvironmentprovider:default/shop-dev-ecs",
                    "awsenvironmentprovider:default/shop-dev-batch"
                ]
            })
        );
    }

    #[test]
    fn environment_entity_explicit_values() {
        let v = valid(SPEC);
        let e = environment_entity(&v.environments()[1], &v);
        assert_eq!(e.metadata["description"], "QA stage");
        assert_eq!(e.metadata["category"], "platform");
        assert_eq!(e.metadata["classification"], "public");
        assert_eq!(e.metadata["level"], 2);
        assert_eq!(e.metadata["deploymentRequiresApproval"], true);
        assert_eq!(e.spec["lifecycle"], "production");
        assert_eq!(e.spec["owner"], "group:qa");
        assert_eq!(e.spec["system"], "shop");
        assert_eq!(
            e.spec["dependsOn"],
            json!(["awsenvironmentprovider:default/shop-dev-batch"])
        );
        // Key order is stable: `system` before `dependsOn`.
        let keys: Vec<&String> = e.spec.keys().collect();
        assert_eq!(keys, ["type", "lifecycle", "owner", "system", "dependsOn"]);
    }

    #[test]
    fn entities_in_file_order() {
        let v = valid(SPEC);
        let all = entities(&v, &Registry::builtin(), &StackOutputs::new()).unwrap();
        let refs: Vec<String> = all.iter().map(Entity::entity_ref).collect();
        assert_eq!(
            refs,
            [
                "awsenvironmentprovider:default/shop-dev-ecs",
                "awsenvironmentprovider:default/shop-dev-batch",
                "awsenvironment:default/shop-dev",
                "awsenvironment:default/shop-qa",
            ]
        );
        assert_eq!(
            all,
            entities(&v, &Registry::builtin(), &StackOutputs::new()).unwrap()
        );
    }

    #[test]
    fn missing_provider_implementation_is_an_error() {
        let v = valid(SPEC);
        let mut registry = Registry::empty();
        registry.register(std::sync::Arc::new(crate::provider::EcsProvider));
        let err = entities(&v, &registry, &StackOutputs::new()).unwrap_err();
        assert!(
            matches!(&err, CatalogError::UnknownKind { provider, kind: crate::spec::ProviderKind::EcsEc2 } if provider == "shop-dev-batch"),
            "{err}"
        );
    }

    #[test]
    fn unknown_provider_in_environment_is_an_error() {
        // Validation rejects this; a spec built around it must not panic.
        let mut file = valid(SPEC).into_inner();
        file.environments[0].providers.push("nope".into());
        let v = ValidSpec::new_unchecked(file);
        let err = entities(&v, &Registry::builtin(), &StackOutputs::new()).unwrap_err();
        assert!(
            matches!(&err, CatalogError::UnknownProvider { environment, provider, .. } if environment == "shop-dev" && provider == "nope"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("defined: shop-dev-ecs, shop-dev-batch"),
            "{err}"
        );
        // The entity alone skips it.
        let e = environment_entity(&v.environments()[0], &v);
        assert_eq!(e.spec["dependsOn"].as_array().map(Vec::len), Some(2));
    }
}
