//! The API budget: a token bucket per account/region that every request of
//! every client for that account/region draws from, retries included.
//!
//! It sits in the HTTP layer of the SDK clients (a wrapping
//! [`HttpClient`]), so whatever the engine does (planning, polling,
//! locking, auditing, catalog look-ups) and however the SDK retries, the
//! request rate towards one account/region stays within
//! [`ApiBudget::rate`] per second after an initial burst of
//! [`ApiBudget::burst`]. It also counts the requests it lets through, by
//! operation, so a run can report how many calls it made.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use tokio::time::Instant;

use super::AwsError;

/// How many requests per second one account/region may receive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiBudget {
    /// Sustained requests per second (> 0).
    pub rate: f64,
    /// Requests that may go at once before the rate applies (≥ 1).
    pub burst: u32,
}

impl Default for ApiBudget {
    /// 10 requests per second with a burst of 20: below the default
    /// CloudFormation and DynamoDB control-plane throttling limits of an
    /// account, leaving room for other tools in the same account.
    fn default() -> Self {
        Self {
            rate: 10.0,
            burst: 20,
        }
    }
}

impl ApiBudget {
    /// Check the values.
    pub fn validate(&self) -> Result<(), AwsError> {
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 100_000.0) {
            return Err(AwsError::InvalidOption {
                field: "api_budget.rate",
                value: self.rate.to_string(),
                allowed: "a number of requests per second above 0 and at most 100000",
            });
        }
        if self.burst == 0 {
            return Err(AwsError::InvalidOption {
                field: "api_budget.burst",
                value: "0".to_owned(),
                allowed: "at least 1",
            });
        }
        Ok(())
    }
}

/// A token bucket shared by the clients of one account/region, with
/// request counters.
#[derive(Clone)]
pub struct Bucket {
    inner: Arc<Mutex<BucketState>>,
    budget: ApiBudget,
}

struct BucketState {
    /// Tokens available; negative when requests are queued (each waits its
    /// turn: first come, first served).
    tokens: f64,
    last: Instant,
    counts: BTreeMap<String, u64>,
    waited: Duration,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("budget", &self.budget)
            .field("requests", &self.total_requests())
            .finish_non_exhaustive()
    }
}

impl Bucket {
    /// A full bucket.
    pub fn new(budget: ApiBudget) -> Self {
        Self {
            inner: Arc::new(Mutex::new(BucketState {
                tokens: f64::from(budget.burst),
                last: Instant::now(),
                counts: BTreeMap::new(),
                waited: Duration::ZERO,
            })),
            budget,
        }
    }

    /// The budget this bucket enforces.
    pub fn budget(&self) -> ApiBudget {
        self.budget
    }

    /// Take one token, counting the request as `operation`; returns how
    /// long the caller must wait before sending.
    fn reserve(&self, operation: String) -> Duration {
        let mut s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
        s.last = now;
        s.tokens = (s.tokens + elapsed * self.budget.rate).min(f64::from(self.budget.burst));
        s.tokens -= 1.0;
        *s.counts.entry(operation).or_default() += 1;
        if s.tokens >= 0.0 {
            Duration::ZERO
        } else {
            let wait = Duration::from_secs_f64(-s.tokens / self.budget.rate);
            s.waited += wait;
            wait
        }
    }

    /// Wait for a token (used by the HTTP layer; public for callers that
    /// make requests outside the SDK clients).
    pub async fn acquire(&self, operation: impl Into<String>) {
        let wait = self.reserve(operation.into());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Requests let through so far, by operation (e.g. `DescribeStacks`).
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .counts
            .clone()
    }

    /// Requests let through so far.
    pub fn total_requests(&self) -> u64 {
        self.request_counts().values().sum()
    }

    /// Total time requests spent waiting for the budget.
    pub fn waited(&self) -> Duration {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .waited
    }

    /// An HTTP client that draws from this bucket before every request
    /// sent by `inner`.
    pub(crate) fn wrap(&self, inner: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(BudgetedClient {
            inner,
            bucket: self.clone(),
        })
    }
}

#[derive(Debug)]
struct BudgetedClient {
    inner: SharedHttpClient,
    bucket: Bucket,
}

impl HttpClient for BudgetedClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(BudgetedConnector {
            inner: self.inner.http_connector(settings, components),
            bucket: self.bucket.clone(),
        })
    }
}

#[derive(Debug)]
struct BudgetedConnector {
    inner: SharedHttpConnector,
    bucket: Bucket,
}

impl HttpConnector for BudgetedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let bucket = self.bucket.clone();
        HttpConnectorFuture::new(async move {
            bucket.acquire(operation_name(&request)).await;
            inner.call(request).await
        })
    }
}

/// The AWS operation of a request: the `Action` of an awsQuery body
/// (CloudFormation, STS), the `X-Amz-Target` of an awsJson request
/// (DynamoDB), else `METHOD /first-path-segment` (REST protocols, e.g. EKS).
pub(crate) fn operation_name(request: &HttpRequest) -> String {
    if let Some(target) = request.headers().get("x-amz-target") {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    if let Some(body) = request.body().bytes()
        && let Some(action) = body
            .split(|b| *b == b'&')
            .find_map(|kv| kv.strip_prefix(b"Action="))
    {
        return String::from_utf8_lossy(action).into_owned();
    }
    let path = request
        .uri()
        .split("://")
        .nth(1)
        .map_or(request.uri(), |rest| {
            rest.find('/').map_or("/", |i| rest.get(i..).unwrap_or("/"))
        });
    let first = path
        .trim_start_matches('/')
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    format!("{} /{first}", request.method())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_rate() {
        let b = Bucket::new(ApiBudget {
            rate: 10.0,
            burst: 5,
        });
        let start = Instant::now();
        for _ in 0..5 {
            b.acquire("A").await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst goes at once");
        for _ in 0..10 {
            b.acquire("B").await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(999) && took <= Duration::from_millis(1001),
            "{took:?}"
        );
        assert_eq!(b.request_counts()["A"], 5);
        assert_eq!(b.request_counts()["B"], 10);
        assert_eq!(b.total_requests(), 15);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_budget() {
        let b = Bucket::new(ApiBudget {
            rate: 4.0,
            burst: 1,
        });
        let start = Instant::now();
        let tasks: Vec<_> = (0..9)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move { b.acquire("X").await })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        // 1 at once, then 8 at 4/s.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert!(b.waited() > Duration::ZERO);
    }

    #[test]
    fn operation_names() {
        let req = |uri: &str, body: &str, target: Option<&str>| {
            let mut r = http::Request::builder().method("POST").uri(uri);
            if let Some(t) = target {
                r = r.header("x-amz-target", t);
            }
            let plain = aws_smithy_runtime_api::http::Request::try_from(
                r.body(body.to_owned()).expect("request"),
            )
            .expect("convert");
            let req: HttpRequest = plain.map(Into::into);
            req
        };
        assert_eq!(
            operation_name(&req(
                "https://cloudformation.us-east-1.amazonaws.com/",
                "Action=DescribeStacks&Version=2010-05-15",
                None
            )),
            "DescribeStacks"
        );
        assert_eq!(
            operation_name(&req(
                "http://127.0.0.1:5000/",
                "{}",
                Some("DynamoDB_20120810.PutItem")
            )),
            "PutItem"
        );
        assert_eq!(
            operation_name(&req("http://127.0.0.1:5000/clusters/demo", "", None)),
            "POST /clusters"
        );
    }

    #[test]
    fn invalid_budgets_are_refused() {
        for (rate, burst) in [(0.0, 1), (-1.0, 1), (f64::NAN, 1), (1.0, 0)] {
            assert!(
                ApiBudget { rate, burst }.validate().is_err(),
                "{rate} {burst}"
            );
        }
        assert!(ApiBudget::default().validate().is_ok());
    }
}
