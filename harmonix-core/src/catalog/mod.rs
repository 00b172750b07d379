//! Backstage catalog: the entities Harmonix writes, and the merge-and-write
//! of `catalog-info.yaml`.

mod entity;

pub use entity::{
    AWS_API_VERSION, EksEntityFields, Entity, KIND_ENVIRONMENT, KIND_PROVIDER,
    MANAGED_BY_ANNOTATION, ProviderEntity,
};
