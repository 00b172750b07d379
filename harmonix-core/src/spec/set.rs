//! A set of validated spec files: what one run of the engine works on, and
//! what a plan file embeds so that `apply plan.json` needs nothing else.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{SpecError, ValidProvider, ValidSpec, from_value, load, validate};
use crate::provider::{Registry, StackDefinition};
use crate::render::RenderError;

/// A spec as stored in a plan file: where it came from and its content
/// (the parsed spec as JSON, legacy field names kept as written).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedSpec {
    /// File name or other origin, for messages.
    pub origin: String,
    /// The spec.
    pub spec: serde_json::Value,
}

/// Validated specs with their origins, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecSet {
    items: Vec<(String, ValidSpec)>,
}

/// The stacks of one provider of a [`SpecSet`].
#[derive(Debug, Clone)]
pub struct ProviderStacks<'a> {
    /// Index of the spec in the set.
    pub spec_index: usize,
    /// The provider.
    pub provider: ValidProvider<'a>,
    /// Its stacks, in dependency order.
    pub stacks: Vec<StackDefinition>,
}

impl SpecSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a validated spec.
    pub fn push(&mut self, origin: impl Into<String>, spec: ValidSpec) {
        self.items.push((origin.into(), spec));
    }

    /// Load and validate files (the first failure is returned; use
    /// [`crate::spec::load`] per file to report all).
    pub fn load<P: AsRef<Path>>(paths: &[P], registry: &Registry) -> Result<Self, SpecError> {
        let mut set = Self::new();
        for p in paths {
            let p = p.as_ref();
            set.push(p.display().to_string(), load(p, registry)?);
        }
        Ok(set)
    }

    /// The specs with their origins.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &ValidSpec)> {
        self.items.iter().map(|(o, s)| (o.as_str(), s))
    }

    /// Number of specs.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The specs in plan-file form.
    pub fn to_embedded(&self) -> Vec<EmbeddedSpec> {
        self.items
            .iter()
            .map(|(origin, s)| EmbeddedSpec {
                origin: origin.clone(),
                spec: serde_json::to_value(s.file()).unwrap_or(serde_json::Value::Null),
            })
            .collect()
    }

    /// Specs from a plan file, validated again.
    pub fn from_embedded(specs: &[EmbeddedSpec], registry: &Registry) -> Result<Self, SpecError> {
        let mut set = Self::new();
        for e in specs {
            let file = from_value(&e.spec, &e.origin)?;
            set.push(e.origin.clone(), validate(file, registry, &e.origin)?);
        }
        Ok(set)
    }

    /// Every provider with its stacks. Two providers (of any files) that
    /// render the same stack name in one account and region are an error.
    pub fn provider_stacks(
        &self,
        registry: &Registry,
    ) -> Result<Vec<ProviderStacks<'_>>, RenderError> {
        let mut out = Vec::new();
        let mut seen: BTreeMap<(String, String, String), &str> = BTreeMap::new();
        for (spec_index, (origin, spec)) in self.items.iter().enumerate() {
            for (index, p) in spec.providers().enumerate() {
                let imp = registry
                    .get(p.kind)
                    .ok_or_else(|| RenderError::UnknownKind {
                        kind: p.kind.to_string(),
                        index,
                    })?;
                let stacks = imp.stacks(p);
                for s in &stacks {
                    crate::render::check_quotas(s)?;
                    let key = (s.account.clone(), s.region.clone(), s.name.clone());
                    if let Some(first) = seen.insert(key, origin) {
                        return Err(RenderError::DuplicateStack {
                            stack: s.name.clone(),
                            account: s.account.clone(),
                            region: s.region.clone(),
                            first: first.to_owned(),
                            second: origin.clone(),
                        });
                    }
                }
                out.push(ProviderStacks {
                    spec_index,
                    provider: p,
                    stacks,
                });
            }
        }
        Ok(out)
    }

    /// Every stack of every spec, in order (see
    /// [`SpecSet::provider_stacks`]).
    pub fn stacks(&self, registry: &Registry) -> Result<Vec<StackDefinition>, RenderError> {
        Ok(self
            .provider_stacks(registry)?
            .into_iter()
            .flat_map(|p| p.stacks)
            .collect())
    }

    /// The spec at `index`.
    pub fn get(&self, index: usize) -> Option<&ValidSpec> {
        self.items.get(index).map(|(_, s)| s)
    }
}

impl FromIterator<(String, ValidSpec)> for SpecSet {
    fn from_iter<T: IntoIterator<Item = (String, ValidSpec)>>(iter: T) -> Self {
        Self {
            items: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render;

    fn example(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/specs")
            .join(name)
    }

    #[test]
    fn embedded_specs_round_trip_to_the_same_stacks() {
        let registry = Registry::builtin();
        let files = [
            "ecs.yaml",
            "eks-existing.yaml",
            "multi.yaml",
            "serverless.yaml",
        ];
        let paths: Vec<_> = files.iter().map(|f| example(f)).collect();
        let set = SpecSet::load(&paths, &registry).expect("examples load");
        let again =
            SpecSet::from_embedded(&set.to_embedded(), &registry).expect("embedded specs load");
        assert_eq!(again, set);
        let direct: Vec<_> = set
            .iter()
            .flat_map(|(_, s)| render::stacks(s, &registry).expect("render"))
            .collect();
        assert_eq!(set.stacks(&registry).expect("stacks"), direct);
    }

    #[test]
    fn the_same_stack_from_two_files_is_refused() {
        let registry = Registry::builtin();
        let p = example("ecs.yaml");
        let set = SpecSet::load(&[&p, &p], &registry).expect("load");
        let err = set.stacks(&registry).expect_err("duplicate");
        assert!(
            matches!(&err, RenderError::DuplicateStack { stack, .. } if stack.ends_with("-environment")),
            "{err}"
        );
    }
}
