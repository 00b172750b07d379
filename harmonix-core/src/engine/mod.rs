//! The plan/apply engine over CloudFormation change sets: state reading,
//! planning, applying, destroying and status; the event stream; the
//! DynamoDB lock and the audit trail.

pub mod apply;
pub mod audit;
pub mod error;
pub mod events;
pub mod lock;
pub mod plan;
pub mod state;
