//! The role chain as a caching credentials provider.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use tokio::sync::Mutex;

use super::{AwsError, RoleStep};

/// Credentials are re-assumed when they expire within this margin, so a
/// request never starts with credentials about to lapse.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_mins(5);

/// Name under which chained credentials report their provider.
const PROVIDER_NAME: &str = "harmonix-role-chain";

/// A customization of every STS client the chain builds (tests add a mock
/// interceptor with it).
pub(crate) type StsHook =
    Arc<dyn Fn(aws_sdk_sts::config::Builder) -> aws_sdk_sts::config::Builder + Send + Sync>;

/// One `sts:AssumeRole` of the chain.
#[derive(Clone)]
pub(crate) struct ChainStep {
    pub(crate) step: RoleStep,
    pub(crate) role_arn: String,
    /// Account of `role_arn`, attached to the credentials it yields.
    pub(crate) account: String,
    pub(crate) duration: Duration,
    pub(crate) external_id: Option<String>,
    pub(crate) source_identity: Option<String>,
}

impl fmt::Debug for ChainStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainStep")
            .field("step", &self.step)
            .field("role_arn", &self.role_arn)
            .field("duration", &self.duration)
            .field(
                "external_id",
                &self.external_id.as_ref().map(|_| "** redacted **"),
            )
            .field("source_identity", &self.source_identity)
            .finish_non_exhaustive()
    }
}

/// Base credentials → each step's role in turn, the final credentials
/// cached until [`REFRESH_BEFORE_EXPIRY`] before they expire, then the
/// whole chain is assumed again (AWS caps chained sessions at one hour, so a
/// long apply needs fresh sessions rather than a longer one).
///
/// Cheap to clone (shared cache). Implements [`ProvideCredentials`], so the
/// SDK clients built on it refresh transparently.
#[derive(Clone)]
pub struct RoleChainProvider {
    inner: Arc<ChainInner>,
}

struct ChainInner {
    /// Base configuration (region of the target, endpoint, retries).
    base: SdkConfig,
    /// STS client on the base credentials (built once so base credentials
    /// stay cached by the SDK).
    first: aws_sdk_sts::Client,
    steps: Vec<ChainStep>,
    session_name: String,
    cache: Mutex<Option<Credentials>>,
    calls: Arc<AtomicU64>,
    hook: Option<StsHook>,
}

impl fmt::Debug for RoleChainProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoleChainProvider")
            .field("steps", &self.inner.steps)
            .field("session_name", &self.inner.session_name)
            .finish_non_exhaustive()
    }
}

impl RoleChainProvider {
    pub(crate) fn new(
        base: SdkConfig,
        steps: Vec<ChainStep>,
        session_name: String,
        calls: Arc<AtomicU64>,
        hook: Option<StsHook>,
    ) -> Self {
        let first = sts_client(&base, None, hook.as_ref());
        Self {
            inner: Arc::new(ChainInner {
                base,
                first,
                steps,
                session_name,
                cache: Mutex::new(None),
                calls,
                hook,
            }),
        }
    }

    /// The role session name used at every step.
    pub fn session_name(&self) -> &str {
        &self.inner.session_name
    }

    /// Credentials of the last role of the chain: the cached ones while
    /// they are valid for more than [`REFRESH_BEFORE_EXPIRY`], else freshly
    /// assumed (concurrent callers wait for one refresh).
    pub async fn credentials(&self) -> Result<Credentials, AwsError> {
        let mut cache = self.inner.cache.lock().await;
        if let Some(creds) = cache.as_ref()
            && is_fresh(creds, SystemTime::now())
        {
            return Ok(creds.clone());
        }
        let creds = self.assume_chain().await?;
        *cache = Some(creds.clone());
        Ok(creds)
    }

    async fn assume_chain(&self) -> Result<Credentials, AwsError> {
        let inner = &self.inner;
        let mut current: Option<Credentials> = None;
        for step in &inner.steps {
            let client = match &current {
                None => inner.first.clone(),
                Some(creds) => sts_client(&inner.base, Some(creds.clone()), inner.hook.as_ref()),
            };
            current = Some(self.assume(&client, step).await?);
        }
        // A chain always has the environment role; an empty one cannot be
        // built by the pool, but answer with an error rather than panic.
        current.ok_or(AwsError::MissingCredentials {
            step: RoleStep::EnvironmentRole,
            role_arn: String::new(),
            reason: "empty role chain",
        })
    }

    async fn assume(
        &self,
        client: &aws_sdk_sts::Client,
        step: &ChainStep,
    ) -> Result<Credentials, AwsError> {
        let session_name = &self.inner.session_name;
        tracing::debug!(
            step = %step.step,
            role_arn = %step.role_arn,
            session_name = %session_name,
            "assuming role"
        );
        let seconds = i32::try_from(step.duration.as_secs()).unwrap_or(i32::MAX);
        let mut request = client
            .assume_role()
            .role_arn(&step.role_arn)
            .role_session_name(session_name)
            .duration_seconds(seconds);
        if let Some(id) = &step.external_id {
            request = request.external_id(id);
        }
        if let Some(id) = &step.source_identity {
            request = request.source_identity(id);
        }
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let output = request.send().await.map_err(|e| AwsError::AssumeRole {
            step: step.step,
            role_arn: step.role_arn.clone(),
            session_name: session_name.clone(),
            source: Box::new(e),
        })?;
        let missing = |reason| AwsError::MissingCredentials {
            step: step.step,
            role_arn: step.role_arn.clone(),
            reason,
        };
        let creds = output
            .credentials()
            .ok_or_else(|| missing("no Credentials in the response"))?;
        if creds.access_key_id().is_empty() || creds.secret_access_key().is_empty() {
            return Err(missing("empty access key id or secret access key"));
        }
        let expiry = SystemTime::try_from(*creds.expiration())
            .map_err(|_| missing("expiration out of range"))?;
        Ok(Credentials::builder()
            .access_key_id(creds.access_key_id())
            .secret_access_key(creds.secret_access_key())
            .session_token(creds.session_token())
            .expiry(expiry)
            .account_id(step.account.as_str())
            .provider_name(PROVIDER_NAME)
            .build())
    }
}

/// Whether `creds` stay valid past `now + REFRESH_BEFORE_EXPIRY`.
fn is_fresh(creds: &Credentials, now: SystemTime) -> bool {
    creds
        .expiry()
        .is_none_or(|expiry| expiry > now + REFRESH_BEFORE_EXPIRY)
}

/// An STS client on `base`, with `creds` instead of the base credentials
/// when given.
fn sts_client(
    base: &SdkConfig,
    creds: Option<Credentials>,
    hook: Option<&StsHook>,
) -> aws_sdk_sts::Client {
    let mut builder = aws_sdk_sts::config::Builder::from(base);
    if let Some(creds) = creds {
        builder = builder.credentials_provider(SharedCredentialsProvider::new(creds));
    }
    if let Some(hook) = hook {
        builder = hook(builder);
    }
    aws_sdk_sts::Client::from_conf(builder.build())
}

impl ProvideCredentials for RoleChainProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.credentials()
                .await
                .map_err(CredentialsError::provider_error)
        })
    }
}
