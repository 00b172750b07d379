//! Helpers shared by the providers' unit tests.

use serde_json::Value;

use super::{EnvironmentProvider, StackDefinition, StackOutputs};
use crate::catalog::Entity;
use crate::spec::{self, SpecFile, ValidSpec, ValidationErrors};
use crate::template::Resource;

/// An example spec from `examples/specs/`.
pub(crate) fn example(name: &str) -> SpecFile {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/specs")
        .join(name);
    spec::read_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The single stack `provider` renders for the provider at `index`.
pub(crate) fn render_nth(
    provider: &dyn EnvironmentProvider,
    file: &SpecFile,
    index: usize,
) -> StackDefinition {
    let valid = ValidSpec::new_unchecked(file.clone());
    let p = valid
        .providers()
        .nth(index)
        .unwrap_or_else(|| panic!("no provider {index}"));
    let mut stacks = provider.stacks(p);
    assert_eq!(stacks.len(), 1, "one stack per provider");
    stacks.remove(0)
}

/// The catalog entity of the first provider.
pub(crate) fn entity_of(
    provider: &dyn EnvironmentProvider,
    file: &SpecFile,
    outputs: &StackOutputs,
) -> Entity {
    let valid = ValidSpec::new_unchecked(file.clone());
    let p = valid
        .providers()
        .next()
        .unwrap_or_else(|| panic!("no provider"));
    provider.catalog_entity(p, outputs)
}

/// The kind-specific problems of the first provider.
pub(crate) fn errors_of(provider: &dyn EnvironmentProvider, file: &SpecFile) -> ValidationErrors {
    let mut errors = ValidationErrors::default();
    let p = file
        .providers
        .first()
        .unwrap_or_else(|| panic!("no provider"));
    provider.validate(p, "providers[0]", &mut errors);
    errors
}

/// The paths of `errors`.
pub(crate) fn paths(errors: &ValidationErrors) -> Vec<&str> {
    errors.iter().map(|e| e.path.as_str()).collect()
}

/// Resource `id` of the stack's template.
pub(crate) fn resource<'a>(s: &'a StackDefinition, id: &str) -> &'a Resource {
    s.template
        .resources
        .get(id)
        .unwrap_or_else(|| panic!("resource {id} missing"))
}

/// Property `name` of resource `id`.
pub(crate) fn prop<'a>(s: &'a StackDefinition, id: &str, name: &str) -> &'a Value {
    resource(s, id)
        .properties
        .get(name)
        .unwrap_or_else(|| panic!("{id}.{name} missing"))
}
