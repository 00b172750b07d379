//! Harmonix core: provision AWS environments for an internal developer
//! platform and describe them to Backstage.
//!
//! The way an environment flows through the crate:
//!
//! 1. [`spec`]: a YAML spec file is parsed (with limits) and validated; every
//!    problem names its field path.
//! 2. [`provider`]: the [`provider::Registry`] picks the
//!    [`provider::EnvironmentProvider`] for each provider's `kind`, which turns
//!    it into [`provider::StackDefinition`]s built with the typed
//!    [`template`] model.
//! 3. [`render`]: templates and parameters, byte-for-byte deterministic.
//! 4. [`catalog`]: stack outputs become Backstage entities merged into
//!    `catalog-info.yaml`.
//!
//! ```
//! use harmonix_core::{catalog, provider::{Registry, StackOutputs}, render, spec};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
//! # let tmp = tempfile::tempdir()?;
//! # let (spec_path, out, catalog_path) = (repo.join("examples/specs/ecs.yaml"), tmp.path().join("out"), tmp.path().join("catalog-info.yaml"));
//! let registry = Registry::builtin();
//! let valid = spec::load(&spec_path, &registry)?;
//! let stacks = render::stacks(&valid, &registry)?; // templates + parameters
//! render::write_stacks(&stacks, &out)?;
//! let entities = catalog::entities(&valid, &registry, &StackOutputs::new())?;
//! catalog::write_catalog(&catalog_path, &entities)?;
//! assert_eq!(entities[0].kind, "AWSEnvironmentProvider");
//! # Ok(())
//! # }
//! ```

pub mod aws;
pub mod catalog;
pub mod engine;
pub mod error;
pub mod fsio;
pub mod provider;
pub mod render;
pub mod schema;
pub mod spec;
pub mod template;

pub use error::{Error, error_chain};
