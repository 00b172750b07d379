//! The plan/apply engine over CloudFormation change sets: state reading,
//! planning, applying, destroying and status; the event stream; the
//! DynamoDB lock and the audit trail.

pub mod apply;
pub mod assets;
pub mod audit;
mod deployment;
pub mod error;
pub mod events;
#[cfg(test)]
mod failure_tests;
pub mod lock;
#[cfg(test)]
mod mock_support;
pub mod outputs;
pub mod plan;
pub mod preflight;
pub mod retained;
#[cfg(test)]
mod retained_tests;
pub mod state;

pub use deployment::{
    CatalogReport, DEPLOYMENT_PLAN_FORMAT, DeployReport, DeploymentPlan, Engine, EngineOptions,
    LockOptions, PlanKind, PlanSummary, ProviderAudit, StackOutputsReport, TargetPlan,
    TargetReport, TargetStatus, default_catalog_path, lock_id,
};
