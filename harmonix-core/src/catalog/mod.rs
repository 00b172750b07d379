//! Backstage catalog: the entities Harmonix writes, and the merge-and-write
//! of `catalog-info.yaml`.
//!
//! [`entities`] turns a validated spec (and the outputs of its deployed
//! stacks, if any) into one `AWSEnvironmentProvider` per provider and one
//! `AWSEnvironment` per environment; [`write_catalog`] merges them into an
//! existing `catalog-info.yaml`, keeping every document and field that is
//! not Harmonix's (see [`merge`] for the rules).
//!
//! ```
//! use harmonix_core::catalog::{self, WriteOutcome};
//! use harmonix_core::provider::{Registry, StackOutputs};
//! use harmonix_core::spec;
//!
//! let yaml = r#"
//! providers:
//!   - kind: ecs
//!     name: payments-dev
//!     owner: group:payments
//!     account: "012345678901"
//!     region: us-east-1
//!     environmentRole: arn:aws:iam::012345678901:role/opa-envprovisioning-role
//!     platformRole: arn:aws:iam::111111111111:role/opa-platform-role
//!     pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
//! environments:
//!   - name: payments-dev-env
//!     shortName: dev
//!     owner: group:payments
//!     providers: [payments-dev]
//! "#;
//! let registry = Registry::builtin();
//! let valid = spec::validate(spec::parse_str(yaml, "inline")?, &registry, "inline")?;
//! let entities = catalog::entities(&valid, &registry, &StackOutputs::new())?;
//! assert_eq!(entities.len(), 2);
//! assert_eq!(entities[1].kind, catalog::KIND_ENVIRONMENT);
//! assert_eq!(
//!     entities[1].spec["dependsOn"][0],
//!     "awsenvironmentprovider:default/payments-dev"
//! );
//!
//! // Foreign documents are kept byte for byte; ours are appended.
//! let existing = "# our web app\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: web\n";
//! let merged = catalog::merge(existing, &entities)?;
//! assert!(merged.starts_with(existing));
//! assert!(merged.contains("awsAccount: \"012345678901\""));
//! assert_eq!(catalog::merge(&merged, &entities)?, merged);
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("catalog-info.yaml");
//! assert_eq!(catalog::write_catalog(&path, &entities)?, WriteOutcome::Created);
//! assert_eq!(catalog::write_catalog(&path, &entities)?, WriteOutcome::Unchanged);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod entity;
mod environment;
mod error;
mod merge;

pub use entity::{
    AWS_API_VERSION, EksEntityFields, Entity, KIND_ENVIRONMENT, KIND_PROVIDER,
    MANAGED_BY_ANNOTATION, ProviderEntity,
};
pub use environment::{
    DEFAULT_CATEGORY, DEFAULT_CLASSIFICATION, DEFAULT_LEVEL, DEFAULT_LIFECYCLE, ENVIRONMENT_TAG,
    entities, environment_entity, provider_ref,
};
pub use error::CatalogError;
pub use merge::{MAX_CATALOG_BYTES, MAX_CATALOG_DOCUMENTS, WriteOutcome, merge, write_catalog};
