//! EKS environment provider.

use crate::catalog::Entity;
use crate::spec::{ProviderKind, ProviderSpec, ValidProvider, ValidationErrors};

use super::{DerivedName, EnvironmentProvider, StackDefinition, StackOutputs};

/// Amazon EKS environments.
#[derive(Debug, Clone, Copy, Default)]
pub struct EksProvider;

impl EnvironmentProvider for EksProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Eks
    }
    fn summary(&self) -> &'static str {
        "Amazon EKS cluster (Fargate or managed nodes) or an existing cluster"
    }
    fn validate(&self, _spec: &ProviderSpec, _path: &str, _errors: &mut ValidationErrors) {
        todo!("EKS")
    }
    fn derived_names(&self, _spec: &ProviderSpec, _path: &str) -> Vec<DerivedName> {
        todo!("EKS")
    }
    fn stacks(&self, _spec: ValidProvider<'_>) -> Vec<StackDefinition> {
        todo!("EKS")
    }
    fn catalog_entity(&self, _spec: ValidProvider<'_>, _outputs: &StackOutputs) -> Entity {
        todo!("EKS")
    }
}
