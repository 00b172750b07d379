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

pub mod catalog;
pub mod fsio;
pub mod provider;
pub mod render;
pub mod schema;
pub mod spec;
pub mod template;
