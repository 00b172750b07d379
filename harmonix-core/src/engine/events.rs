//! Progress events of planning and applying.
//!
//! Delivery is a callback: the engine calls an [`EventSink`]
//! (`&dyn Fn(&Event) + Send + Sync`) synchronously, in order, from the task
//! running the engine; the callback must return quickly (write a JSON
//! line, print, or forward into a channel). [`ignore_events`] drops them.
//! Events serialize to JSON objects tagged by `"event"`, e.g.
//! `{"event":"stackDone","stack":"a","status":"CREATE_COMPLETE"}`.

use serde::Serialize;

use super::plan::ActionKind;
use super::retained::RetainedResource;

/// Where events go.
pub type EventSink<'a> = &'a (dyn Fn(&Event) + Send + Sync);

/// An event sink that drops every event.
pub fn ignore_events(_: &Event) {}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
#[non_exhaustive]
pub enum Event {
    /// A stack was planned.
    #[serde(rename_all = "camelCase")]
    Planned {
        /// Stack name.
        stack: String,
        /// What will be done.
        action: ActionKind,
        /// Number of resource changes.
        changes: usize,
    },
    /// Planning waits for a stack whose operation is still running (for
    /// example one left by an interrupted apply).
    #[serde(rename_all = "camelCase")]
    Waiting {
        /// Stack name.
        stack: String,
        /// Its current status, e.g. `UPDATE_IN_PROGRESS`.
        status: String,
    },
    /// A change set is ready for review.
    #[serde(rename_all = "camelCase")]
    ChangeSetReady {
        /// Stack name.
        stack: String,
        /// The change set id (ARN).
        change_set_id: String,
    },
    /// Execution of a stack started.
    #[serde(rename_all = "camelCase")]
    Started {
        /// Stack name.
        stack: String,
        /// What is being done.
        action: ActionKind,
    },
    /// A resource of an in-flight stack changed status.
    #[serde(rename_all = "camelCase")]
    ResourceProgress {
        /// Stack name.
        stack: String,
        /// Logical id of the resource.
        logical_id: String,
        /// Resource type.
        resource_type: String,
        /// Resource status, e.g. `CREATE_IN_PROGRESS`.
        status: String,
        /// Status reason, when given.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A stack reached its target status.
    #[serde(rename_all = "camelCase")]
    StackDone {
        /// Stack name.
        stack: String,
        /// Final status.
        status: String,
    },
    /// A deleted stack kept a resource (its template's `DeletionPolicy`).
    #[serde(rename_all = "camelCase")]
    Kept {
        /// The resource.
        #[serde(flatten)]
        resource: RetainedResource,
    },
    /// A stack failed.
    #[serde(rename_all = "camelCase")]
    StackFailed {
        /// Stack name.
        stack: String,
        /// Final status, when it got one.
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<String>,
        /// Why.
        reason: String,
    },
    /// A stack was not executed because a stack it depends on failed.
    #[serde(rename_all = "camelCase")]
    Skipped {
        /// Stack name.
        stack: String,
        /// The stack whose failure (or skip) caused this.
        because: String,
    },
    /// An environment lock was taken.
    #[serde(rename_all = "camelCase")]
    Locked {
        /// The lock id, `<account>/<region>/<prefix>-<name>`.
        lock: String,
    },
    /// The catalog file was written.
    #[serde(rename_all = "camelCase")]
    CatalogWritten {
        /// The file.
        path: String,
        /// `created`, `updated` or `unchanged`.
        outcome: String,
    },
    /// Something went wrong that does not stop the run.
    #[serde(rename_all = "camelCase")]
    Warning {
        /// What.
        message: String,
    },
    /// Planning or applying finished.
    #[serde(rename_all = "camelCase")]
    Finished {
        /// Stacks that succeeded (or needed nothing).
        succeeded: usize,
        /// Stacks that failed.
        failed: usize,
        /// Stacks skipped.
        skipped: usize,
    },
}
