//! Errors of the plan/apply engine.
//!
//! Every variant names the stack (when there is one) and the AWS operation;
//! none ever holds credentials: AWS errors keep only the service's error
//! code and message, and the SDK error as `source`.

use std::time::Duration;

use aws_sdk_cloudformation::error::ProvideErrorMetadata;

/// An error of the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A stack changed since the plan was made: the reviewed change sets
    /// may no longer describe what would happen. Nothing was executed.
    #[error("the plan is stale: stack `{stack}` changed since planning ({detail}); plan again")]
    StalePlan {
        /// The stack that changed.
        stack: String,
        /// What changed (e.g. `status CREATE_COMPLETE -> UPDATE_COMPLETE`).
        detail: String,
    },
    /// A change set could not be created (CloudFormation reported it
    /// `FAILED` for another reason than "no changes").
    #[error("the change set for stack `{stack}` failed: {reason}")]
    ChangeSetFailed {
        /// The stack.
        stack: String,
        /// CloudFormation's status reason.
        reason: String,
    },
    /// A stack ended in a failure status.
    #[error("stack `{stack}` ended in {status}: {reason}")]
    StackFailed {
        /// The stack.
        stack: String,
        /// Its final status.
        status: String,
        /// The first failing resource's reason, or the stack's.
        reason: String,
    },
    /// A stack is in a state the engine cannot plan from (an operation in
    /// progress, or a failure that needs manual intervention).
    #[error("stack `{stack}` is {status}: {hint}")]
    StackNotReady {
        /// The stack.
        stack: String,
        /// Its current status.
        status: String,
        /// What to do.
        hint: &'static str,
    },
    /// Waiting took longer than allowed.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The limit.
        after: Duration,
    },
    /// A call to AWS failed (after the SDK's retries).
    #[error("{service} {operation}{} failed: {code}: {message}", stack.as_ref().map(|s| format!(" for stack `{s}`")).unwrap_or_default())]
    Aws {
        /// The service, e.g. `CloudFormation`.
        service: &'static str,
        /// The API operation, e.g. `DescribeStacks`.
        operation: &'static str,
        /// The stack concerned, when there is one.
        stack: Option<String>,
        /// The service error code (or the kind of transport failure).
        code: String,
        /// The service error message.
        message: String,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The stack definitions cannot be planned together.
    #[error("invalid input at `{path}`: {problem}")]
    InvalidInput {
        /// Where, e.g. `stacks[2].depends_on`.
        path: String,
        /// What is wrong, with the value and what is allowed.
        problem: String,
    },
    /// A live look-up a provider needs for its catalog entity failed or
    /// found the resource unusable.
    #[error("{what}: {reason}")]
    LookupFailed {
        /// What was looked up, e.g. ``EKS cluster `shared` ``.
        what: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A stack cannot be created: resources an earlier deletion kept hold
    /// the names its template fixes, and CloudFormation would fail the
    /// create with "already exists". Nothing was changed.
    #[error("stack `{stack}` cannot be created: {detail}")]
    RetainedResourcesExist {
        /// The stack.
        stack: String,
        /// Which resources, and what to do.
        detail: String,
    },
    /// A plan file is not a valid plan.
    #[error("invalid plan: {reason}")]
    InvalidPlan {
        /// Why.
        reason: String,
    },
}

impl EngineError {
    /// Wrap an SDK error of CloudFormation's `operation` (for `stack`).
    pub fn aws<E>(operation: &'static str, stack: Option<&str>, err: E) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        Self::aws_in("CloudFormation", operation, stack, err)
    }

    /// Wrap an SDK error of `service`'s `operation` (for `stack`).
    pub fn aws_in<E>(
        service: &'static str,
        operation: &'static str,
        stack: Option<&str>,
        err: E,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = err.code().unwrap_or("Unknown").to_owned();
        let message = err
            .message()
            .map_or_else(|| describe_without_metadata(&err), str::to_owned);
        Self::Aws {
            service,
            operation,
            stack: stack.map(str::to_owned),
            code,
            message,
            source: Box::new(err),
        }
    }

    /// The AWS error code, for [`EngineError::Aws`].
    pub fn aws_code(&self) -> Option<&str> {
        match self {
            Self::Aws { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The AWS error message, for [`EngineError::Aws`].
    pub fn aws_message(&self) -> Option<&str> {
        match self {
            Self::Aws { message, .. } => Some(message),
            _ => None,
        }
    }
}

/// A message for an error without service metadata (a transport failure,
/// a timeout): the innermost source's text. SDK errors never include
/// credentials in their messages.
fn describe_without_metadata(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        last = e.to_string();
        cur = e.source();
    }
    last
}
