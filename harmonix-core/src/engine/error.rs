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
    /// An existing EKS cluster the spec attaches to cannot be used: not
    /// found in the target account and region, or not `ACTIVE`. Found
    /// before planning; nothing was changed.
    #[error("EKS cluster `{cluster}` in {region}: {reason}")]
    EksClusterUnavailable {
        /// The cluster name.
        cluster: String,
        /// Its region.
        region: String,
        /// Why it cannot be used, with what to do.
        reason: String,
    },
    /// The spec asks for a Kubernetes version more than one minor version
    /// above what the deployed cluster runs: EKS would refuse the update
    /// halfway through the apply. Found before planning.
    #[error(
        "EKS cluster `{cluster}` in {region} runs Kubernetes {current} and the spec asks for {wanted}, but EKS updates a cluster one minor version at a time (https://docs.aws.amazon.com/eks/latest/userguide/update-cluster.html): set `eks.kubernetesVersion: \"{next}\"`{hint}, apply, and take one minor version per apply up to {wanted}"
    )]
    EksVersionJump {
        /// The cluster name.
        cluster: String,
        /// Its region.
        region: String,
        /// The version it runs.
        current: String,
        /// The version the spec asks for.
        wanted: String,
        /// The next version to go to.
        next: String,
        /// Extra advice for the next step (e.g. extended support), or empty.
        hint: String,
    },
    /// An existing EKS cluster's authentication mode (`CONFIG_MAP`: the
    /// `aws-auth` ConfigMap only) does not allow the EKS access entries
    /// the stack would create: the apply would fail on them. Found before
    /// planning; nothing was changed.
    #[error("{}", eks_authentication_mode_message(cluster, region, mode, grants))]
    EksAuthenticationMode {
        /// The cluster name.
        cluster: String,
        /// Its region.
        region: String,
        /// Its authentication mode, as `DescribeCluster` reports it.
        mode: String,
        /// The access the stack's access entries would give: what
        /// `aws-auth` has to map instead.
        grants: Vec<crate::provider::AccessGrant>,
    },
}

/// The message of [`EngineError::EksAuthenticationMode`]: both ways out,
/// with the command and the `aws-auth` entries to add.
///
/// `API_AND_CONFIG_MAP` lets both methods add principals, and "Once the
/// access entry method is enabled, it cannot be disabled"; the switch is
/// `aws eks update-cluster-config --name my-cluster --access-config
/// authenticationMode=API_AND_CONFIG_MAP`
/// (<https://docs.aws.amazon.com/eks/latest/userguide/grant-k8s-access.html#set-cam>,
/// <https://docs.aws.amazon.com/eks/latest/userguide/setting-up-access-entries.html>).
/// `mapRoles` entries take `rolearn` (no path), `username` and `groups`,
/// a group being one a `clusterrolebinding` names
/// (<https://docs.aws.amazon.com/eks/latest/userguide/auth-configmap.html>).
fn eks_authentication_mode_message(
    cluster: &str,
    region: &str,
    mode: &str,
    grants: &[crate::provider::AccessGrant],
) -> String {
    use std::fmt::Write as _;
    let roles = grants
        .iter()
        .map(|g| format!("`{}` ({})", g.role_arn, g.access_policy))
        .collect::<Vec<_>>()
        .join(", ");
    let mut m = format!(
        "EKS cluster `{cluster}` in {region} has authentication mode {mode}, but the environment gives {roles} access through EKS access entries, which need mode API or API_AND_CONFIG_MAP. Either switch the cluster to API_AND_CONFIG_MAP, which keeps every `aws-auth` mapping working (one-way: a cluster cannot go back to CONFIG_MAP), wait until it is ACTIVE again and plan again:\n  aws eks update-cluster-config --region {region} --name {cluster} --access-config authenticationMode=API_AND_CONFIG_MAP\nor keep CONFIG_MAP: set `eks.existingCluster.accessEntries: false` and add to the `mapRoles` of the `aws-auth` ConfigMap (namespace kube-system):\n"
    );
    for g in grants {
        let _ = write!(
            m,
            "  - rolearn: {}\n    username: {}\n    groups:\n      - {}\n",
            g.role_arn, g.username, g.group
        );
    }
    let mut bound = std::collections::BTreeSet::new();
    for g in grants {
        if bound.insert((&g.group, &g.cluster_role)) {
            let _ = writeln!(
                m,
                "and bind the group: kubectl create clusterrolebinding {} --clusterrole={} --group={}",
                g.group, g.cluster_role, g.group
            );
        }
    }
    m.truncate(m.trim_end().len());
    m
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
