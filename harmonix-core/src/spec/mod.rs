//! The environment spec: types, parsing with limits, and validation.
//!
//! ```
//! use harmonix_core::spec::{self, ValidSpec};
//! use harmonix_core::provider::Registry;
//!
//! let yaml = r#"
//! providers:
//!   - kind: ecs
//!     name: payments-dev
//!     owner: group:payments
//!     account: "123456789012"
//!     region: us-east-1
//!     environmentRole: arn:aws:iam::123456789012:role/opa-envprovisioning-role
//!     platformRole: arn:aws:iam::111111111111:role/opa-platform-role
//!     pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
//! "#;
//! let file = spec::parse_str(yaml, "inline").unwrap();
//! let valid: ValidSpec = spec::validate(file, &Registry::builtin(), "inline").unwrap();
//! assert_eq!(valid.providers().count(), 1);
//! ```

pub(crate) mod arn;
pub(crate) mod cidr;
mod error;
mod model;
mod parse;
pub mod platform;
pub(crate) mod regions;
mod set;
pub mod validate;
pub mod vm_image;

pub use error::{SpecError, ValidationError, ValidationErrors};
pub use model::*;
pub use parse::{MAX_SPEC_BYTES, from_value, parse_bytes, parse_str, read_file};
pub use set::{EmbeddedSpec, ProviderStacks, SpecSet};
pub use validate::validate;

use std::ops::Deref;
use std::path::Path;

use crate::provider::Registry;

/// A spec file that passed [`validate`]. Only validated specs reach the
/// providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSpec {
    file: SpecFile,
}

impl ValidSpec {
    pub(crate) fn new_unchecked(file: SpecFile) -> Self {
        Self { file }
    }
    /// The validated providers, in file order.
    pub fn providers(&self) -> impl ExactSizeIterator<Item = ValidProvider<'_>> {
        self.file.providers.iter().map(ValidProvider)
    }
    /// The provider with this name.
    pub fn provider(&self, name: &str) -> Option<ValidProvider<'_>> {
        self.providers().find(|p| p.name == name)
    }
    /// The declared environments (stages).
    pub fn environments(&self) -> &[EnvironmentSpec] {
        &self.file.environments
    }
    /// The underlying spec.
    pub fn file(&self) -> &SpecFile {
        &self.file
    }
    /// Give back the spec.
    pub fn into_inner(self) -> SpecFile {
        self.file
    }
}

/// A provider spec from a [`ValidSpec`]. Dereferences to [`ProviderSpec`];
/// its accessors apply the defaults and the legacy field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidProvider<'a>(&'a ProviderSpec);

impl Deref for ValidProvider<'_> {
    type Target = ProviderSpec;
    fn deref(&self) -> &ProviderSpec {
        self.0
    }
}

impl<'a> ValidProvider<'a> {
    /// The spec as written.
    pub fn spec(&self) -> &'a ProviderSpec {
        self.0
    }
}

/// The VPC an environment uses, after defaults and legacy names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedVpc<'a> {
    /// Create a VPC with this CIDR.
    New {
        /// The CIDR block.
        cidr: &'a str,
    },
    /// Use this existing VPC.
    Existing {
        /// The `vpc-…` id.
        id: &'a str,
        /// Its private subnets, if given.
        private_subnet_ids: &'a [String],
        /// Its public subnets, if given.
        public_subnet_ids: &'a [String],
    },
}

impl ProviderSpec {
    /// The name prefix (default `opa`).
    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(DEFAULT_PREFIX)
    }
    /// The Backstage lifecycle (default `experimental`).
    pub fn lifecycle(&self) -> &str {
        self.lifecycle.as_deref().unwrap_or("experimental")
    }
    /// Log retention in days (default 90).
    pub fn log_retention_days(&self) -> u32 {
        self.log_retention_days
            .unwrap_or(DEFAULT_LOG_RETENTION_DAYS)
    }
    /// The VPC mode, from `vpc.mode` or the legacy `vpc_configuration`.
    pub fn vpc_mode(&self) -> VpcMode {
        if let Some(v) = &self.vpc {
            return v.mode;
        }
        match self
            .legacy_vpc_configuration
            .as_deref()
            .map(legacy_vpc_mode)
        {
            Some(Some(mode)) => mode,
            _ if self.legacy_vpc_id.is_some() => VpcMode::Existing,
            _ => VpcMode::New,
        }
    }
    /// The VPC after defaults and legacy names.
    pub fn resolved_vpc(&self) -> ResolvedVpc<'_> {
        match self.vpc_mode() {
            VpcMode::New => ResolvedVpc::New {
                cidr: self
                    .vpc
                    .as_ref()
                    .and_then(|v| v.cidr.as_deref())
                    .or(self.legacy_cidr.as_deref())
                    .unwrap_or(DEFAULT_VPC_CIDR),
            },
            VpcMode::Existing => {
                let vpc = self.vpc.as_ref();
                ResolvedVpc::Existing {
                    id: vpc
                        .and_then(|v| v.id.as_deref())
                        .or(self.legacy_vpc_id.as_deref())
                        .unwrap_or_default(),
                    private_subnet_ids: vpc.map_or(&[], |v| v.private_subnet_ids.as_slice()),
                    public_subnet_ids: vpc.map_or(&[], |v| v.public_subnet_ids.as_slice()),
                }
            }
        }
    }
}

/// Map a legacy `vpc_configuration` value to a mode; `None` if unknown.
pub fn legacy_vpc_mode(v: &str) -> Option<VpcMode> {
    match v.trim().to_ascii_lowercase().as_str() {
        "new" | "create new vpc" | "create" => Some(VpcMode::New),
        "existing" | "use existing vpc" | "use existing" => Some(VpcMode::Existing),
        _ => None,
    }
}

/// Read, parse and validate one spec file.
pub fn load(path: &Path, registry: &Registry) -> Result<ValidSpec, SpecError> {
    let file = read_file(path)?;
    validate(file, registry, &path.display().to_string())
}
