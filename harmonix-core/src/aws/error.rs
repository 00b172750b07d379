//! Errors of the AWS client layer.

use std::fmt;

use aws_sdk_sts::error::SdkError;
use aws_sdk_sts::operation::assume_role::AssumeRoleError;

/// Which link of the role chain an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RoleStep {
    /// The optional intermediate role ([`super::AwsOptions::pipeline_role`]).
    PipelineRole,
    /// The environment's `environmentRole` in the target account.
    EnvironmentRole,
}

impl fmt::Display for RoleStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PipelineRole => "pipeline role",
            Self::EnvironmentRole => "environment role",
        })
    }
}

/// What went wrong while configuring AWS clients or assuming roles.
///
/// Messages name the role ARN, the step and the session name; they never
/// contain credentials (nor the external id, which is treated as a secret).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AwsError {
    /// An option of [`super::AwsOptions`] is out of range.
    #[error("invalid AWS option `{field}` = {value}: {allowed}")]
    InvalidOption {
        /// Field path of the option, e.g. `session.duration`.
        field: &'static str,
        /// The value given (redacted for secrets).
        value: String,
        /// What is allowed.
        allowed: &'static str,
    },
    /// A role ARN is not an IAM role ARN.
    #[error(
        "invalid {step} ARN `{role_arn}`: expected arn:<partition>:iam::<12-digit account>:role/<name>"
    )]
    InvalidRoleArn {
        /// Which role.
        step: RoleStep,
        /// The value given.
        role_arn: String,
    },
    /// The target is inconsistent (bad account id, region, or a role ARN in
    /// another account than the target account).
    #[error("invalid target for environment `{environment}`: {field} = `{value}`: {allowed}")]
    InvalidTarget {
        /// The environment name of the target.
        environment: String,
        /// The offending field (`account`, `region`, `role_arn`).
        field: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// `sts:AssumeRole` failed.
    #[error("cannot assume the {step} `{role_arn}` (session `{session_name}`)")]
    AssumeRole {
        /// Which link of the chain failed.
        step: RoleStep,
        /// The role that could not be assumed.
        role_arn: String,
        /// The session name that was requested.
        session_name: String,
        /// The SDK error (service error code and message, or transport error).
        #[source]
        source: Box<SdkError<AssumeRoleError>>,
    },
    /// `sts:AssumeRole` answered without usable credentials.
    #[error("AssumeRole of the {step} `{role_arn}` returned no usable credentials: {reason}")]
    MissingCredentials {
        /// Which link of the chain.
        step: RoleStep,
        /// The role assumed.
        role_arn: String,
        /// What was missing or malformed.
        reason: &'static str,
    },
}
