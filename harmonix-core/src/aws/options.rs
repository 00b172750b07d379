//! Options of the AWS client layer.

use std::fmt;
use std::time::Duration;

use super::AwsError;
use super::budget::ApiBudget;

/// Shortest session AWS accepts for `sts:AssumeRole`.
pub const MIN_SESSION_DURATION: Duration = Duration::from_mins(15);
/// Longest session AWS accepts for `sts:AssumeRole` from long-term credentials
/// (the role's own `MaxSessionDuration` may be lower).
pub const MAX_SESSION_DURATION: Duration = Duration::from_hours(12);
/// AWS caps sessions of chained roles (a role assumed with role credentials)
/// at one hour; longer requests are refused, so chained steps are clamped.
pub const CHAINED_ROLE_MAX_DURATION: Duration = Duration::from_hours(1);

/// How Harmonix reaches AWS.
///
/// Everything else (credentials, region, profile, retries, `AWS_ENDPOINT_URL`)
/// comes from the standard AWS configuration chain.
#[derive(Clone, Default)]
pub struct AwsOptions {
    /// Explicit endpoint for every service (STS included), overriding the
    /// resolved AWS endpoints; `None` keeps what the standard chain says
    /// (which honours `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`).
    pub endpoint_url: Option<String>,
    /// Region of the base configuration (where STS is called for the
    /// first role of the chain); `None` keeps the standard chain's
    /// (`AWS_REGION`, profile). Targets always use their own region.
    pub region: Option<String>,
    /// Optional intermediate role (ARN) assumed with the base credentials
    /// before the environment role, e.g. a central deployment role that
    /// is the only principal trusted by every environment role.
    pub pipeline_role: Option<String>,
    /// Parameters of the role sessions.
    pub session: SessionOptions,
    /// Who runs Harmonix, used in role session names (and so in CloudTrail).
    /// `None`: `GITLAB_USER_LOGIN`, else `GITHUB_ACTOR`, else `USER`, else
    /// `unknown`.
    pub caller: Option<String>,
    /// Maximum attempts per AWS request (the first try included); `None`
    /// keeps the standard chain's value (`AWS_MAX_ATTEMPTS`, default 3).
    pub max_attempts: Option<u32>,
    /// Requests per second allowed towards one account/region, shared by
    /// every client and task working on it (see [`ApiBudget`]).
    pub api_budget: ApiBudget,
}

impl fmt::Debug for AwsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsOptions")
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("pipeline_role", &self.pipeline_role)
            .field("session", &self.session)
            .field("caller", &self.caller)
            .field("max_attempts", &self.max_attempts)
            .field("api_budget", &self.api_budget)
            .finish()
    }
}

/// Parameters of every `sts:AssumeRole` call.
#[derive(Clone)]
pub struct SessionOptions {
    /// Requested session length (default one hour, allowed 15 min to
    /// 12 h). Chained steps (the environment role after a pipeline role)
    /// are clamped to [`CHAINED_ROLE_MAX_DURATION`]. Credentials are
    /// refreshed transparently before they expire, so applies may run longer.
    pub duration: Duration,
    /// External id passed when assuming the environment role (for trust
    /// policies with an `sts:ExternalId` condition). Treated as a secret:
    /// never shown by `Debug` nor in errors.
    pub external_id: Option<String>,
    /// Source identity set on the first role of the chain (it then sticks to
    /// every chained session and shows in CloudTrail).
    pub source_identity: Option<String>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            duration: Duration::from_hours(1),
            external_id: None,
            source_identity: None,
        }
    }
}

impl fmt::Debug for SessionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionOptions")
            .field("duration", &self.duration)
            .field(
                "external_id",
                &self.external_id.as_ref().map(|_| "** redacted **"),
            )
            .field("source_identity", &self.source_identity)
            .finish()
    }
}

impl AwsOptions {
    /// Check every option against what AWS accepts.
    pub fn validate(&self) -> Result<(), AwsError> {
        if let Some(url) = &self.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(AwsError::InvalidOption {
                field: "endpoint_url",
                value: format!("`{url}`"),
                allowed: "an http:// or https:// URL",
            });
        }
        let d = self.session.duration;
        if d < MIN_SESSION_DURATION || d > MAX_SESSION_DURATION || d.subsec_nanos() != 0 {
            return Err(AwsError::InvalidOption {
                field: "session.duration",
                value: format!("{d:?}"),
                allowed: "whole seconds from 900 (15 min) to 43200 (12 h)",
            });
        }
        if let Some(id) = &self.session.external_id {
            let n = id.chars().count();
            if !(2..=1224).contains(&n)
                || !id.chars().all(|c| is_sts_char(c) || c == ':' || c == '/')
            {
                return Err(AwsError::InvalidOption {
                    field: "session.external_id",
                    value: "** redacted **".to_owned(),
                    allowed: "2 to 1224 characters among letters, digits and _+=,.@:/-",
                });
            }
        }
        if let Some(id) = &self.session.source_identity {
            let n = id.chars().count();
            if !(2..=64).contains(&n) || !id.chars().all(is_sts_char) {
                return Err(AwsError::InvalidOption {
                    field: "session.source_identity",
                    value: format!("`{id}`"),
                    allowed: "2 to 64 characters among letters, digits and _+=,.@-",
                });
            }
        }
        self.api_budget.validate()?;
        if self.max_attempts == Some(0) {
            return Err(AwsError::InvalidOption {
                field: "max_attempts",
                value: "0".to_owned(),
                allowed: "at least 1 (the first try counts)",
            });
        }
        Ok(())
    }

    /// The caller name used in session names: [`Self::caller`] or the
    /// CI/user environment variables (see there).
    pub fn resolved_caller(&self) -> String {
        self.caller
            .clone()
            .filter(|c| !c.trim().is_empty())
            .or_else(|| {
                ["GITLAB_USER_LOGIN", "GITHUB_ACTOR", "USER"]
                    .iter()
                    .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
            })
            .unwrap_or_else(|| "unknown".to_owned())
    }
}

/// Characters STS accepts in session names and source identities
/// (`[\w+=,.@-]`, `\w` being ASCII letters, digits and `_`).
pub(crate) fn is_sts_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}
