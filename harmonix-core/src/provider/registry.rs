//! The provider registry.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{EcsEc2Provider, EcsProvider, EksProvider, EnvironmentProvider, ServerlessProvider};
use crate::spec::ProviderKind;

/// Providers by kind. [`Registry::builtin`] has every provider of this crate;
/// embedders may [`register`](Registry::register) their own implementation
/// of a kind to replace the built-in one.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    providers: BTreeMap<ProviderKind, Arc<dyn EnvironmentProvider>>,
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every built-in provider.
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        r.register(Arc::new(EcsProvider));
        r.register(Arc::new(EcsEc2Provider));
        r.register(Arc::new(EksProvider));
        r.register(Arc::new(ServerlessProvider));
        r.register(Arc::new(super::BackstagePlatformProvider));
        r.register(Arc::new(super::VmImageProvider));
        r
    }

    /// Add (or replace) the provider for its kind.
    pub fn register(&mut self, provider: Arc<dyn EnvironmentProvider>) -> &mut Self {
        self.providers.insert(provider.kind(), provider);
        self
    }

    /// The provider for `kind`.
    pub fn get(&self, kind: ProviderKind) -> Option<&dyn EnvironmentProvider> {
        self.providers.get(&kind).map(AsRef::as_ref)
    }

    /// Registered kinds, sorted.
    pub fn kinds(&self) -> impl Iterator<Item = ProviderKind> + '_ {
        self.providers.keys().copied()
    }
}
