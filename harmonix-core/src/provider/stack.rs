//! A stack definition: what a provider asks the engine to deploy.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::template::{HashWriter, Template, hex_digest};

/// Stack tag holding [`StackDefinition::content_hash`]; a deployed stack
/// whose tag matches needs no change.
pub const STACK_HASH_TAG: &str = "harmonix:hash";

/// Outputs of deployed stacks: stack name → output key → value.
pub type StackOutputs = BTreeMap<String, BTreeMap<String, String>>;

/// One CloudFormation stack of an environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StackDefinition {
    /// Stack name.
    pub name: String,
    /// Name of the provider (spec `name`) this stack belongs to.
    pub provider: String,
    /// Target account.
    pub account: String,
    /// Target region.
    pub region: String,
    /// The template.
    #[serde(skip)]
    pub template: Template,
    /// Parameter values, by parameter name.
    pub parameters: BTreeMap<String, String>,
    /// Stack tags.
    pub tags: BTreeMap<String, String>,
    /// Names of stacks that must be deployed first.
    pub depends_on: Vec<String>,
    /// Capabilities the template needs (e.g. `CAPABILITY_NAMED_IAM`).
    pub capabilities: Vec<String>,
}

impl StackDefinition {
    /// A copy with an empty template (name, target, parameters, tags,
    /// dependencies and capabilities only).
    #[must_use]
    pub fn clone_without_template(&self) -> Self {
        Self {
            name: self.name.clone(),
            provider: self.provider.clone(),
            account: self.account.clone(),
            region: self.region.clone(),
            template: crate::template::Template::default(),
            parameters: self.parameters.clone(),
            tags: self.tags.clone(),
            depends_on: self.depends_on.clone(),
            capabilities: self.capabilities.clone(),
        }
    }

    /// Hex SHA-256 over the template (its compact canonical JSON),
    /// parameters and tags (the hash tag itself excluded): equal hashes
    /// mean nothing to deploy.
    pub fn content_hash(&self) -> String {
        use sha2::Digest as _;
        let mut h = HashWriter(sha2::Sha256::new());
        self.template.write_compact_json(&mut h);
        let mut put = |bytes: &[u8]| h.0.update(bytes);
        put(b"\0");
        for (k, v) in &self.parameters {
            put(k.as_bytes());
            put(b"=");
            put(v.as_bytes());
            put(b"\0");
        }
        put(b"\0");
        for (k, v) in self.tags.iter().filter(|(k, _)| *k != STACK_HASH_TAG) {
            put(k.as_bytes());
            put(b"=");
            put(v.as_bytes());
            put(b"\0");
        }
        hex_digest(&h.0.finalize())
    }

    /// Parameters in the CloudFormation CLI file format
    /// (`[{"ParameterKey": …, "ParameterValue": …}]`), pretty, sorted.
    pub fn parameters_json(&self) -> String {
        let list: Vec<_> = self
            .parameters
            .iter()
            .map(|(k, v)| serde_json::json!({ "ParameterKey": k, "ParameterValue": v }))
            .collect();
        let mut s = serde_json::to_string_pretty(&list).unwrap_or_default();
        s.push('\n');
        s
    }
}
