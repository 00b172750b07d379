//! The current state of the stacks of one account/region, read with
//! paginated `DescribeStacks` calls without a stack name: one call per page
//! (CloudFormation returns up to 100 stacks per page, moto 50), shared by
//! every provider, never one call per stack.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::primitives::{DateTime, DateTimeFormat};
use aws_sdk_cloudformation::types::Stack;
use serde::{Deserialize, Serialize};

use super::error::EngineError;
use crate::provider::{STACK_HASH_TAG, StackDefinition};

/// What a deployed stack looks like now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackState {
    /// Stack name.
    pub name: String,
    /// Stack id (ARN).
    pub stack_id: String,
    /// Stack status, e.g. `CREATE_COMPLETE`.
    pub status: String,
    /// Status reason, when CloudFormation gives one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status_reason: Option<String>,
    /// Value of the [`STACK_HASH_TAG`] tag.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hash: Option<String>,
    /// `LastUpdatedTime`, or `CreationTime` for a never-updated stack
    /// (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_updated: Option<String>,
    /// Outputs by key.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
}

impl StackState {
    /// Build from a `DescribeStacks` entry; `None` without a name.
    pub fn from_stack(stack: &Stack) -> Option<Self> {
        let name = stack.stack_name()?.to_owned();
        let hash = stack
            .tags()
            .iter()
            .find(|t| t.key() == Some(STACK_HASH_TAG))
            .and_then(|t| t.value())
            .map(str::to_owned);
        let last_updated = stack
            .last_updated_time()
            .or(stack.creation_time())
            .and_then(format_time);
        let outputs = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect();
        Some(Self {
            name,
            stack_id: stack.stack_id().unwrap_or_default().to_owned(),
            status: stack
                .stack_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            status_reason: stack.stack_status_reason().map(str::to_owned),
            hash,
            last_updated,
            outputs,
        })
    }

    /// Whether the stack is stable and its hash tag equals the definition's
    /// content hash: nothing to deploy.
    pub fn in_sync_with(&self, def: &StackDefinition) -> bool {
        self.in_sync_with_hash(&def.content_hash())
    }

    /// [`StackState::in_sync_with`] given the definition's content hash.
    pub fn in_sync_with_hash(&self, hash: &str) -> bool {
        is_stable(&self.status) && self.hash.as_deref() == Some(hash)
    }
}

/// Format a timestamp as RFC 3339.
pub(crate) fn format_time(t: &DateTime) -> Option<String> {
    t.fmt(DateTimeFormat::DateTime).ok()
}

/// Statuses from which a stack can be updated and whose tags describe what
/// is deployed.
pub fn is_stable(status: &str) -> bool {
    matches!(
        status,
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "UPDATE_ROLLBACK_COMPLETE" | "IMPORT_COMPLETE"
    )
}

/// Whether a status means an operation is still running.
pub fn is_in_progress(status: &str) -> bool {
    status.ends_with("_IN_PROGRESS")
}

/// Stacks of an account/region by name.
pub type StateMap = BTreeMap<String, StackState>;

/// Read every stack of the client's account/region (all pages of
/// `DescribeStacks`), skipping `DELETE_COMPLETE` ones.
///
/// Should two live stacks share a name (CloudFormation keeps names unique
/// among live stacks; some emulators make a second `REVIEW_IN_PROGRESS`
/// stack for a second `CREATE` change set), the one that holds resources
/// wins, then the newest: the result never depends on listing order.
pub async fn read_state(client: &Client) -> Result<StateMap, EngineError> {
    let mut map = StateMap::new();
    for s in describe_all(client).await? {
        if s.status == "DELETE_COMPLETE" {
            continue;
        }
        let rank = |x: &StackState| (x.status != "REVIEW_IN_PROGRESS", x.last_updated.clone());
        match map.get(&s.name) {
            Some(old) if rank(old) >= rank(&s) => {}
            _ => {
                map.insert(s.name.clone(), s);
            }
        }
    }
    Ok(map)
}

/// Every stack `DescribeStacks` lists (all pages), deleted ones included
/// when CloudFormation lists them.
pub(crate) async fn describe_all(client: &Client) -> Result<Vec<StackState>, EngineError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let resp = client
            .describe_stacks()
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| EngineError::aws("DescribeStacks", None, e))?;
        out.extend(resp.stacks().iter().filter_map(StackState::from_stack));
        match resp.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => break,
        }
    }
    Ok(out)
}

/// Whether a definition's deployed stack matches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Drift {
    /// Deployed, stable, hash tag equal to the definition's content hash.
    InSync,
    /// Deployed, but the hash tag differs (or is missing), or the stack is
    /// not in a stable status.
    Drifted,
    /// Not deployed.
    Missing,
}

/// Status of one defined stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackStatusReport {
    /// Stack name.
    pub name: String,
    /// Current state, when deployed.
    pub state: Option<StackState>,
    /// Drift against the definition.
    pub drift: Drift,
    /// Last update (or creation) time, when deployed.
    pub last_updated: Option<String>,
}

/// Status of the given stacks (one account/region), from one paginated
/// state read.
pub async fn status(
    defs: &[StackDefinition],
    client: &Client,
) -> Result<Vec<StackStatusReport>, EngineError> {
    let state = read_state(client).await?;
    Ok(status_from_state(defs, &state))
}

/// [`status`] over an already read state.
pub fn status_from_state(defs: &[StackDefinition], state: &StateMap) -> Vec<StackStatusReport> {
    defs.iter()
        .map(|d| {
            let st = state.get(&d.name).cloned();
            let drift = match &st {
                // Only a change set waiting for review: nothing deployed.
                None => Drift::Missing,
                Some(s) if s.status == "REVIEW_IN_PROGRESS" => Drift::Missing,
                Some(s) if s.in_sync_with(d) => Drift::InSync,
                Some(_) => Drift::Drifted,
            };
            StackStatusReport {
                name: d.name.clone(),
                last_updated: st.as_ref().and_then(|s| s.last_updated.clone()),
                state: st,
                drift,
            }
        })
        .collect()
}
