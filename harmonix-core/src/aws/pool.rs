//! The pool of per-target clients.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use tokio::sync::OnceCell;

use super::budget::Bucket;
use super::chain::{ChainStep, RoleChainProvider, StsHook};
use super::options::CHAINED_ROLE_MAX_DURATION;
use super::{AwsError, AwsOptions, RoleStep, session_name};

/// Where an environment is deployed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// 12-digit AWS account id of the environment.
    pub account: String,
    /// AWS region, e.g. `eu-west-1`.
    pub region: String,
    /// The environment's `environmentRole`: a role in `account`.
    pub role_arn: String,
    /// The environment's name (used in the role session name).
    pub environment: String,
}

/// AWS clients acting as a target's environment role, in its region.
///
/// Their credentials come from a [`RoleChainProvider`] and are refreshed
/// before they expire. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Clients {
    /// CloudFormation.
    pub cloudformation: aws_sdk_cloudformation::Client,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// EKS.
    pub eks: aws_sdk_eks::Client,
    /// S3 (path-style addressing behind an endpoint override, which an
    /// emulator on a loopback address needs).
    pub s3: aws_sdk_s3::Client,
    /// STS (e.g. `GetCallerIdentity`).
    pub sts: aws_sdk_sts::Client,
    /// The role session name (see [`session_name`]).
    pub session_name: String,
    /// The environment role these clients act as.
    pub role_arn: String,
    /// The refreshing credentials behind these clients, to build other SDK
    /// clients for the same target (with `IdentityCache::no_cache()`: the
    /// provider is the cache).
    pub credentials: RoleChainProvider,
    /// The API budget of the target's account/region, shared with every
    /// other target in it; also counts the requests made.
    pub budget: Bucket,
    /// The configuration these clients were built from (credentials,
    /// region, endpoint, retries and the budgeted HTTP client), to build
    /// other SDK clients for the same target.
    pub config: SdkConfig,
}

/// Cache key: one set of clients per account, region, role chain and
/// session name (two environments sharing an account, region and role still
/// get their own session names, so CloudTrail tells them apart).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    account: String,
    region: String,
    chain: Vec<String>,
    session_name: String,
}

/// Builds and caches [`Clients`] per [`Target`]: base credentials (the
/// standard AWS chain) → optional [`AwsOptions::pipeline_role`] → the
/// target's environment role, with `sts:AssumeRole`.
///
/// Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct ClientPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    base: SdkConfig,
    opts: AwsOptions,
    caller: String,
    clients: Mutex<HashMap<PoolKey, Arc<OnceCell<Clients>>>>,
    budgets: Mutex<HashMap<(String, String), Bucket>>,
    calls: Arc<AtomicU64>,
    sts_hook: Option<StsHook>,
}

impl fmt::Debug for ClientPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self
            .inner
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("ClientPool")
            .field("opts", &self.inner.opts)
            .field("caller", &self.inner.caller)
            .field("cached_targets", &cached)
            .field("assume_role_calls", &self.assume_role_calls())
            .finish_non_exhaustive()
    }
}

impl ClientPool {
    /// A pool on the standard AWS configuration chain
    /// (`aws_config::defaults(BehaviorVersion::latest())`: environment,
    /// profiles, web identity, container and instance credentials,
    /// `AWS_ENDPOINT_URL`, `AWS_MAX_ATTEMPTS`), with `opts` applied on top.
    pub async fn load(opts: AwsOptions) -> Result<Self, AwsError> {
        opts.validate()?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(url) = &opts.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(region) = &opts.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let base = loader.load().await;
        Self::from_sdk_config(base, opts)
    }

    /// A pool on a given base configuration (its credentials are the first
    /// link of the chain), with `opts` applied on top: the endpoint override
    /// and `max_attempts` replace the base's.
    pub fn from_sdk_config(base: SdkConfig, opts: AwsOptions) -> Result<Self, AwsError> {
        opts.validate()?;
        if let Some(arn) = &opts.pipeline_role {
            role_account(arn).ok_or_else(|| AwsError::InvalidRoleArn {
                step: RoleStep::PipelineRole,
                role_arn: arn.clone(),
            })?;
        }
        let mut builder = base.to_builder();
        if let Some(url) = &opts.endpoint_url {
            builder = builder.endpoint_url(url);
        }
        if let Some(n) = opts.max_attempts {
            let retry = base
                .retry_config()
                .cloned()
                .unwrap_or_else(RetryConfig::standard)
                .with_max_attempts(n);
            builder = builder.retry_config(retry);
        }
        let caller = opts.resolved_caller();
        Ok(Self {
            inner: Arc::new(PoolInner {
                base: builder.build(),
                opts,
                caller,
                clients: Mutex::new(HashMap::new()),
                budgets: Mutex::new(HashMap::new()),
                calls: Arc::new(AtomicU64::new(0)),
                sts_hook: None,
            }),
        })
    }

    /// Let tests customize every STS client of the role chains (mock
    /// interceptors). Only on a pool without clients yet.
    #[cfg(test)]
    pub(crate) fn with_sts_hook(mut self, hook: StsHook) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.sts_hook = Some(hook);
        }
        self
    }

    /// Who runs Harmonix, as used in session names.
    pub fn caller(&self) -> &str {
        &self.inner.caller
    }

    /// How many `sts:AssumeRole` requests this pool has sent (every link of
    /// every chain, refreshes included): shows the cache at work.
    pub fn assume_role_calls(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    /// The API budget of an account/region (made on first use).
    pub fn budget(&self, account: &str, region: &str) -> Bucket {
        let mut map = self
            .inner
            .budgets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry((account.to_owned(), region.to_owned()))
            .or_insert_with(|| Bucket::new(self.inner.opts.api_budget))
            .clone()
    }

    /// Requests sent so far to every account/region, by operation.
    pub fn request_counts(&self) -> std::collections::BTreeMap<String, u64> {
        let buckets: Vec<Bucket> = self
            .inner
            .budgets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let mut out = std::collections::BTreeMap::new();
        for b in buckets {
            for (op, n) in b.request_counts() {
                *out.entry(op).or_default() += n;
            }
        }
        out
    }

    /// The clients for `target`, built on first use (assuming the role chain
    /// once, so a role that cannot be assumed fails here) and reused after.
    pub async fn clients(&self, target: &Target) -> Result<Clients, AwsError> {
        validate_target(target)?;
        let session_name = session_name(&self.inner.caller, &target.environment);
        let mut chain: Vec<String> = self.inner.opts.pipeline_role.iter().cloned().collect();
        chain.push(target.role_arn.clone());
        let key = PoolKey {
            account: target.account.clone(),
            region: target.region.clone(),
            chain,
            session_name: session_name.clone(),
        };
        let cell = {
            let mut map = self
                .inner
                .clients
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(map.entry(key).or_default())
        };
        cell.get_or_try_init(|| self.build(target, session_name))
            .await
            .cloned()
    }

    async fn build(&self, target: &Target, session_name: String) -> Result<Clients, AwsError> {
        let inner = &self.inner;
        let session = &inner.opts.session;
        let region = Region::new(target.region.clone());
        let base = inner.base.to_builder().region(region).build();

        let mut steps = Vec::with_capacity(2);
        if let Some(arn) = &inner.opts.pipeline_role {
            steps.push(ChainStep {
                step: RoleStep::PipelineRole,
                role_arn: arn.clone(),
                account: role_account(arn).unwrap_or_default().to_owned(),
                duration: session.duration,
                external_id: None,
                source_identity: session.source_identity.clone(),
            });
        }
        let chained = !steps.is_empty();
        steps.push(ChainStep {
            step: RoleStep::EnvironmentRole,
            role_arn: target.role_arn.clone(),
            account: target.account.clone(),
            duration: if chained {
                session.duration.min(CHAINED_ROLE_MAX_DURATION)
            } else {
                session.duration
            },
            external_id: session.external_id.clone(),
            // Set once, at the start of the chain; it then persists.
            source_identity: if chained {
                None
            } else {
                session.source_identity.clone()
            },
        });

        let provider = RoleChainProvider::new(
            base.clone(),
            steps,
            session_name.clone(),
            Arc::clone(&inner.calls),
            inner.sts_hook.clone(),
        );
        // Assume now: configuration errors surface here, with the role named.
        provider.credentials().await?;

        let budget = self.budget(&target.account, &target.region);
        let http = base.http_client().unwrap_or_else(default_http_client);
        let config = base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider.clone()))
            // The provider is the cache (refreshing ahead of expiry); an SDK
            // cache in front of it would hold credentials until they lapse.
            .identity_cache(IdentityCache::no_cache())
            .http_client(budget.wrap(http))
            .build();
        tracing::debug!(
            account = %target.account,
            region = %target.region,
            role_arn = %target.role_arn,
            session_name = %session_name,
            "AWS clients ready"
        );
        Ok(Clients {
            cloudformation: aws_sdk_cloudformation::Client::new(&config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            eks: aws_sdk_eks::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&config)
                    .force_path_style(config.endpoint_url().is_some())
                    .build(),
            ),
            sts: aws_sdk_sts::Client::new(&config),
            session_name,
            role_arn: target.role_arn.clone(),
            credentials: provider,
            budget,
            config,
        })
    }
}

/// The SDK's default HTTPS client (hyper 1 with rustls on aws-lc), for
/// configurations that do not set one.
fn default_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_https()
}

/// The account of an IAM role ARN
/// (`arn:<partition>:iam::<12 digits>:role/<path/name>`), `None` when `arn`
/// is not one.
pub(crate) fn role_account(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let name = resource.strip_prefix("role/")?;
    (prefix == "arn"
        && partition.starts_with("aws")
        && service == "iam"
        && region.is_empty()
        && is_account_id(account)
        && !name.is_empty()
        && !name.ends_with('/'))
    .then_some(account)
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn validate_target(target: &Target) -> Result<(), AwsError> {
    let invalid = |field, value: &str, allowed: String| AwsError::InvalidTarget {
        environment: target.environment.clone(),
        field,
        value: value.to_owned(),
        allowed,
    };
    if !is_account_id(&target.account) {
        return Err(invalid(
            "account",
            &target.account,
            "a 12-digit AWS account id".to_owned(),
        ));
    }
    if target.region.is_empty()
        || !target
            .region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid(
            "region",
            &target.region,
            "an AWS region name such as eu-west-1".to_owned(),
        ));
    }
    match role_account(&target.role_arn) {
        None => Err(AwsError::InvalidRoleArn {
            step: RoleStep::EnvironmentRole,
            role_arn: target.role_arn.clone(),
        }),
        Some(account) if account != target.account => Err(invalid(
            "role_arn",
            &target.role_arn,
            format!("a role in the target account {}", target.account),
        )),
        Some(_) => Ok(()),
    }
}
