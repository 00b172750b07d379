//! A stack definition: what a provider asks the engine to deploy.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::template::{Template, hex_sha256};

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
    /// Hex SHA-256 over template, parameters and tags (the hash tag itself
    /// excluded): equal hashes mean nothing to deploy.
    pub fn content_hash(&self) -> String {
        let mut buf = self.template.to_json();
        buf.push('\0');
        for (k, v) in &self.parameters {
            buf.push_str(k);
            buf.push('=');
            buf.push_str(v);
            buf.push('\0');
        }
        buf.push('\0');
        for (k, v) in self.tags.iter().filter(|(k, _)| *k != STACK_HASH_TAG) {
            buf.push_str(k);
            buf.push('=');
            buf.push_str(v);
            buf.push('\0');
        }
        hex_sha256(buf.as_bytes())
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
