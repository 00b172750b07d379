//! The crate-level error: every module's error in one type, each with a
//! stable [`Error::code`] that the CLI, the Python exceptions and the JS
//! errors expose unchanged.

use crate::aws::AwsError;
use crate::catalog::CatalogError;
use crate::engine::error::EngineError;
use crate::engine::lock::LockError;
use crate::fsio::WriteError;
use crate::render::RenderError;
use crate::spec::{SpecError, ValidationErrors};

/// Any error of the high-level API ([`crate::engine::Engine`]).
///
/// `Display` is the module error's own; [`std::error::Error::source`]
/// leads to the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A spec could not be read, parsed or validated.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Stacks could not be rendered.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// AWS configuration or the role chain failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// Planning, applying or reading stacks failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The environment lock could not be taken or kept.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Catalog entities could not be built or written.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A file could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The operation was cancelled before it started changing anything.
    #[error("cancelled")]
    Cancelled,
}

/// Stable error codes, as [`Error::code`] returns them.
pub mod codes {
    /// A spec is invalid (field paths in the error).
    pub const VALIDATION: &str = "HARMONIX_VALIDATION";
    /// A stack changed since the plan was made.
    pub const PLAN_STALE: &str = "HARMONIX_PLAN_STALE";
    /// A plan file is not valid (tampered, other format, does not match
    /// its specs).
    pub const INVALID_PLAN: &str = "HARMONIX_INVALID_PLAN";
    /// Another run holds the environment lock.
    pub const LOCK_HELD: &str = "HARMONIX_LOCK_HELD";
    /// The lock could not be taken or kept for another reason.
    pub const LOCK: &str = "HARMONIX_LOCK";
    /// A stack or change set failed.
    pub const STACK_FAILED: &str = "HARMONIX_STACK_FAILED";
    /// A stack is in a state that needs manual intervention.
    pub const STACK_NOT_READY: &str = "HARMONIX_STACK_NOT_READY";
    /// An AWS call failed.
    pub const AWS: &str = "HARMONIX_AWS";
    /// A role could not be assumed or returned no credentials.
    pub const CREDENTIALS: &str = "HARMONIX_CREDENTIALS";
    /// An option or input is out of range.
    pub const INVALID_INPUT: &str = "HARMONIX_INVALID_INPUT";
    /// A wait took longer than allowed.
    pub const TIMEOUT: &str = "HARMONIX_TIMEOUT";
    /// The catalog could not be built or written.
    pub const CATALOG: &str = "HARMONIX_CATALOG";
    /// A file could not be read or written.
    pub const IO: &str = "HARMONIX_IO";
    /// The operation was cancelled.
    pub const CANCELLED: &str = "HARMONIX_CANCELLED";
    /// Something in the target account the spec relies on but does not
    /// create is missing or configured so that the deploy would fail (e.g.
    /// an existing EKS cluster in authentication mode `CONFIG_MAP`); found
    /// before planning.
    pub const PRECONDITION: &str = "HARMONIX_PRECONDITION";
}

impl Error {
    /// The stable code of this error (see [`codes`]).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Spec(SpecError::Io { .. })
            | Self::Write(_)
            | Self::Read { .. }
            | Self::Render(RenderError::Write(_))
            | Self::Catalog(CatalogError::Write(_) | CatalogError::Io { .. }) => codes::IO,
            Self::Spec(_) => codes::VALIDATION,
            Self::Aws(AwsError::AssumeRole { .. } | AwsError::MissingCredentials { .. }) => {
                codes::CREDENTIALS
            }
            Self::Render(_) | Self::Aws(_) => codes::INVALID_INPUT,
            Self::Engine(e) => match e {
                EngineError::StalePlan { .. } => codes::PLAN_STALE,
                EngineError::InvalidPlan { .. } => codes::INVALID_PLAN,
                EngineError::ChangeSetFailed { .. } | EngineError::StackFailed { .. } => {
                    codes::STACK_FAILED
                }
                EngineError::StackNotReady { .. } | EngineError::RetainedResourcesExist { .. } => {
                    codes::STACK_NOT_READY
                }
                EngineError::Timeout { .. } => codes::TIMEOUT,
                EngineError::InvalidInput { .. } => codes::INVALID_INPUT,
                EngineError::EksClusterUnavailable { .. }
                | EngineError::EksAuthenticationMode { .. }
                | EngineError::EksVersionJump { .. } => codes::PRECONDITION,
                _ => codes::AWS,
            },
            Self::Lock(LockError::Held { .. }) => codes::LOCK_HELD,
            Self::Lock(_) => codes::LOCK,
            Self::Catalog(_) => codes::CATALOG,
            Self::Cancelled => codes::CANCELLED,
        }
    }

    /// The field-level problems of a validation error.
    pub fn validation_errors(&self) -> Option<&ValidationErrors> {
        match self {
            Self::Spec(e) => e.validation_errors(),
            _ => None,
        }
    }

    /// The stack an error is about, when there is one.
    pub fn stack(&self) -> Option<&str> {
        match self {
            Self::Engine(
                EngineError::StalePlan { stack, .. }
                | EngineError::ChangeSetFailed { stack, .. }
                | EngineError::StackFailed { stack, .. }
                | EngineError::StackNotReady { stack, .. },
            ) => Some(stack),
            Self::Engine(EngineError::Aws { stack, .. }) => stack.as_deref(),
            _ => None,
        }
    }
}

/// An error and its sources in one line (`a: b: c`), skipping a source
/// whose text the line already holds.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}
