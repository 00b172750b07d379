//! Rendering: validated spec → stack definitions → files on disk.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::fsio::{WriteError, write_atomic};
use crate::provider::{Registry, StackDefinition};
use crate::spec::ValidSpec;
use crate::template::quotas::{QuotaProblem, stack_problems};

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// No provider is registered for a kind used in the spec.
    #[error("no provider registered for kind `{kind}` (providers[{index}])")]
    UnknownKind {
        /// The kind.
        kind: String,
        /// Index of the provider in the spec.
        index: usize,
    },
    /// Two providers render the same stack in one account and region.
    #[error(
        "stack `{stack}` in account {account} / {region} is rendered from both {first} and {second}"
    )]
    DuplicateStack {
        /// The stack name.
        stack: String,
        /// The account.
        account: String,
        /// The region.
        region: String,
        /// Where it was rendered first.
        first: String,
        /// Where it was rendered again.
        second: String,
    },
    /// A stack would be refused by CloudFormation: it exceeds a documented
    /// template or stack quota ([`crate::template::quotas`]).
    #[error(
        "stack `{stack}` would be refused by CloudFormation: {}",
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Quota {
        /// The stack.
        stack: String,
        /// Every quota it exceeds.
        problems: Vec<QuotaProblem>,
    },
    /// Writing an output file failed.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// [`RenderError::Quota`] when `def` exceeds any of CloudFormation's
/// documented quotas (template size, resources, parameters, outputs,
/// names, description, parameter values, tags).
pub fn check_quotas(def: &StackDefinition) -> Result<(), RenderError> {
    let mut problems = def.template.quota_problems();
    problems.extend(stack_problems(&def.parameters, &def.tags));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(RenderError::Quota {
            stack: def.name.clone(),
            problems,
        })
    }
}

/// The stacks of every provider of a validated spec, in file order.
pub fn stacks(spec: &ValidSpec, registry: &Registry) -> Result<Vec<StackDefinition>, RenderError> {
    let mut out = Vec::new();
    for (index, p) in spec.providers().enumerate() {
        let provider = registry
            .get(p.kind)
            .ok_or_else(|| RenderError::UnknownKind {
                kind: p.kind.to_string(),
                index,
            })?;
        let stacks = provider.stacks(p);
        stacks.iter().try_for_each(check_quotas)?;
        out.extend(stacks);
    }
    Ok(out)
}

/// One entry of `manifest.json` written by [`write_stacks`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestEntry<'a> {
    /// The stack (without its template).
    #[serde(flatten)]
    pub stack: &'a StackDefinition,
    /// Template file name, relative to the output directory.
    pub template_file: String,
    /// Parameters file name, relative to the output directory.
    pub parameters_file: String,
    /// [`StackDefinition::content_hash`].
    pub hash: String,
}

/// Write `<stack>.template.json`, `<stack>.parameters.json` and a
/// `manifest.json` listing them into `dir`. Returns the files written.
pub fn write_stacks(stacks: &[StackDefinition], dir: &Path) -> Result<Vec<PathBuf>, RenderError> {
    let mut written = Vec::new();
    let mut manifest = Vec::new();
    for s in stacks {
        let template_file = format!("{}.template.json", s.name);
        let parameters_file = format!("{}.parameters.json", s.name);
        let t = dir.join(&template_file);
        write_atomic(&t, s.template.to_json().as_bytes())?;
        written.push(t);
        let p = dir.join(&parameters_file);
        write_atomic(&p, s.parameters_json().as_bytes())?;
        written.push(p);
        manifest.push(ManifestEntry {
            stack: s,
            template_file,
            parameters_file,
            hash: s.content_hash(),
        });
    }
    let m = dir.join("manifest.json");
    let mut json = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    json.push('\n');
    write_atomic(&m, json.as_bytes())?;
    written.push(m);
    Ok(written)
}
