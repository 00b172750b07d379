//! Options of the `backstage-platform` kind (seed `001`): Backstage on
//! ECS Fargate with Aurora PostgreSQL behind an HTTPS load balancer, in
//! several stages.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Backstage platform options (kind `backstage-platform`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlatformSpec {}
