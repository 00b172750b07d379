//! Environment providers: the [`EnvironmentProvider`] trait, the
//! [`Registry`] keyed by [`ProviderKind`], and one module per kind.
//!
//! A provider is pure: a validated spec in, stack definitions and catalog
//! entities out. Adding a kind means one new module here, one variant of
//! [`ProviderKind`] and one line in [`Registry::builtin`].

pub mod account;
mod backstage_platform;
pub mod common;
mod ecs;
mod eks;
pub mod names;
mod registry;
#[cfg(test)]
mod retention_tests;
mod serverless;
mod stack;
#[cfg(test)]
mod test_support;
mod vm_image;

pub use account::{AccountSetting, BOOTSTRAP_STACK, bootstrap_stack};
pub use backstage_platform::BackstagePlatformProvider;
pub use ecs::{EcsEc2Provider, EcsProvider};
pub use eks::EksProvider;
pub use names::{DerivedName, NameKind, Names};
pub use registry::Registry;
pub use serverless::ServerlessProvider;
pub use stack::{STACK_HASH_TAG, StackDefinition, StackOutputs};
pub use vm_image::VmImageProvider;

use crate::catalog::Entity;
use crate::spec::{ProviderKind, ProviderSpec, ValidProvider, ValidationErrors};

/// Turns a validated provider spec into CloudFormation stacks and, given
/// their outputs, into Backstage catalog entities.
pub trait EnvironmentProvider: Send + Sync + std::fmt::Debug {
    /// The kind this provider implements.
    fn kind(&self) -> ProviderKind;

    /// One line for `harmonix` help and docs.
    fn summary(&self) -> &'static str;

    /// Checks specific to this kind, beyond the shared ones. `path` is the
    /// provider's own path (`providers[2]`); push errors below it. Runs on
    /// unvalidated input: must not panic on anything.
    fn validate(&self, spec: &ProviderSpec, path: &str, errors: &mut ValidationErrors);

    /// Every physical name this provider derives from the spec, for length
    /// and collision checks. Runs on unvalidated input: must not panic.
    fn derived_names(&self, spec: &ProviderSpec, path: &str) -> Vec<DerivedName>;

    /// The stacks that make up the environment, in dependency order.
    fn stacks(&self, spec: ValidProvider<'_>) -> Vec<StackDefinition>;

    /// The `AWSEnvironmentProvider` entity, from the stacks' outputs where
    /// present and from the derived names otherwise. The results of
    /// [`EnvironmentProvider::lookups`] are in `outputs` under
    /// [`Lookup::key`].
    fn catalog_entity(&self, spec: ValidProvider<'_>, outputs: &StackOutputs) -> Entity;

    /// Every catalog entity of this provider: the provider entity first,
    /// then any more the kind describes (e.g. one `Resource` per stage).
    /// Default: just [`EnvironmentProvider::catalog_entity`].
    fn catalog_entities(&self, spec: ValidProvider<'_>, outputs: &StackOutputs) -> Vec<Entity> {
        vec![self.catalog_entity(spec, outputs)]
    }

    /// Live facts the catalog entity needs beyond stack outputs, which the
    /// engine looks up after deploying (the only AWS reads a provider can
    /// ask for). Default: none.
    fn lookups(&self, spec: ValidProvider<'_>) -> Vec<Lookup> {
        let _ = spec;
        Vec::new()
    }

    /// Settings of the whole account/region this environment needs, which
    /// live in the bootstrap stack ([`account`]) rather than in the
    /// environment's own: the engine makes sure that stack is deployed
    /// before applying the environment. Default: none.
    fn account_settings(&self, spec: ValidProvider<'_>) -> Vec<AccountSetting> {
        let _ = spec;
        Vec::new()
    }

    /// Checks of live AWS state the engine makes before planning a deploy:
    /// what the stacks rely on but do not create, so that a target that
    /// cannot take them is refused with a clear error before any change
    /// set exists, instead of failing halfway through an apply. Read-only.
    /// Default: none.
    fn preflight(&self, spec: ValidProvider<'_>) -> Vec<Preflight> {
        let _ = spec;
        Vec::new()
    }
}

/// A pre-plan check a provider asks the engine for (see
/// [`EnvironmentProvider::preflight`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preflight {
    /// `eks:DescribeCluster`: the cluster exists and is `ACTIVE` and, when
    /// the stack creates access entries on it, its authentication mode
    /// allows them (`API` or `API_AND_CONFIG_MAP`).
    EksCluster {
        /// Cluster name.
        name: String,
        /// The cluster's region (for the commands in error messages).
        region: String,
        /// The access the stack's access entries give, i.e. what the
        /// cluster's `aws-auth` ConfigMap would have to map instead.
        /// Empty: the stack creates no access entries.
        access_entries: Vec<AccessGrant>,
    },
    /// `eks:DescribeCluster` of a cluster the stack creates: when it
    /// already exists, the spec's version is at most one minor version
    /// above the running one (EKS updates one minor version at a time). A
    /// cluster not found passes: the stack creates it.
    EksVersionStep {
        /// Cluster name.
        name: String,
        /// The cluster's region.
        region: String,
        /// The Kubernetes version the spec asks for, e.g. `1.36`.
        version: String,
    },
}

/// Kubernetes access an environment gives an IAM role on a cluster,
/// spelled for both mechanisms: an EKS access entry, or an `aws-auth`
/// `mapRoles` entry plus a binding of its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessGrant {
    /// The IAM role (ARN without a path, as `aws-auth` requires).
    pub role_arn: String,
    /// The Kubernetes user name to map the role to.
    pub username: String,
    /// The Kubernetes group to map the role to.
    pub group: String,
    /// The Kubernetes `ClusterRole` the group is bound to (`view` for the
    /// access entry's `AmazonEKSViewPolicy`).
    pub cluster_role: String,
    /// The EKS access policy of the access entry.
    pub access_policy: String,
}

/// A read of live AWS state that a provider asks the engine for (see
/// [`EnvironmentProvider::lookups`]). Results are string maps stored in
/// the [`StackOutputs`] under [`Lookup::key`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Lookup {
    /// `eks:DescribeCluster`. The engine requires the cluster to be
    /// `ACTIVE`; result keys: `status`, `arn`, `endpoint`, `oidcIssuer`,
    /// `version`.
    EksCluster {
        /// Cluster name.
        name: String,
    },
}

impl Lookup {
    /// Where the result goes in [`StackOutputs`] (a name no stack can
    /// have: stack names have no `:`).
    pub fn key(&self) -> String {
        match self {
            Self::EksCluster { name } => format!("eks:cluster/{name}"),
        }
    }
}
