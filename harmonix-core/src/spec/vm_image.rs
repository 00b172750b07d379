//! Options of the `vm-image` kind (seed `002`): an application whose roles
//! run on versioned machine images.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Machine-image application options (kind `vm-image`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VmImageSpec {}
