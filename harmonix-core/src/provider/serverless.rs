//! Serverless (API Gateway + Lambda) environment provider.

use crate::catalog::Entity;
use crate::spec::{ProviderKind, ProviderSpec, ValidProvider, ValidationErrors};

use super::{DerivedName, EnvironmentProvider, StackDefinition, StackOutputs};

/// Serverless environments: API Gateway REST API and Lambda.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerlessProvider;

impl EnvironmentProvider for ServerlessProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Serverless
    }
    fn summary(&self) -> &'static str {
        "Amazon API Gateway REST API with AWS Lambda"
    }
    fn validate(&self, _spec: &ProviderSpec, _path: &str, _errors: &mut ValidationErrors) {
        todo!("serverless")
    }
    fn derived_names(&self, _spec: &ProviderSpec, _path: &str) -> Vec<DerivedName> {
        todo!("serverless")
    }
    fn stacks(&self, _spec: ValidProvider<'_>) -> Vec<StackDefinition> {
        todo!("serverless")
    }
    fn catalog_entity(&self, _spec: ValidProvider<'_>, _outputs: &StackOutputs) -> Entity {
        todo!("serverless")
    }
}
