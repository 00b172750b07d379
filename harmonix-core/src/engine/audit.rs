//! The audit trail: one DynamoDB item per Harmonix action (plan, apply,
//! destroy, ...) in the environment's own audit table, the table every
//! provider renders (`Names::of(spec).audit_table`, e.g.
//! `opa-payments-dev-audit`, partition key `id`, sort key `createdAt`).
//!
//! Records carry the Harmonix audit attributes (`id`, `createdAt`, `origin`,
//! `actionType`, `actionName`, `initiatedBy`, `owner`, `assumedRole`,
//! `targetAccount`, `targetRegion`, `prefix`, `providerName`, `request`,
//! `status`, `message`). The `request` attribute is the JSON of the request
//! with secrets replaced by `"***"` (see [`redact`]): it is only settable
//! through [`AuditRecord::set_request`], which redacts.
//!
//! Writes are conditional on `attribute_not_exists(id)`: a write retried
//! after a timeout (when the first attempt did land) never duplicates the
//! record; that case is reported as [`AuditWrite::AlreadyWritten`] by
//! [`AuditWriter::write_outcome`] and as `Ok(())` by [`AuditWriter::write`].
//!
//! [`latest`] reads the newest records back (Query on the table's
//! [`AUDIT_BY_TIME_INDEX`], newest first, page by page).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::QueryError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How long one DynamoDB call of the writer may take by default.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The `origin` attribute of every record Harmonix writes.
pub const ORIGIN: &str = "harmonix";

/// The audit table's index by time: partition key `origin` (every record
/// has [`ORIGIN`]), sort key `createdAt`.
pub const AUDIT_BY_TIME_INDEX: &str = "byCreatedAt";

/// The most records [`latest`] returns.
pub const MAX_LATEST: usize = 1000;

/// What replaces a secret value in [`redact`].
pub const REDACTED: &str = "***";

/// Key fragments (compared case-insensitively, ignoring `_` and `-`) that
/// mark a JSON value as secret.
const SECRET_KEY_PARTS: [&str; 8] = [
    "secret",
    "password",
    "token",
    "credential",
    "accesskey",
    "sessiontoken",
    "privatekey",
    "authorization",
];

/// The outcome of an audited action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditStatus {
    /// The action started (written before it runs).
    Started,
    /// The action finished successfully.
    Success,
    /// The action failed; `message` says why.
    Failed,
}

impl AuditStatus {
    /// The stored form: `STARTED`, `SUCCESS` or `FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "STARTED",
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
        }
    }
}

impl fmt::Display for AuditStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audit record. Make it with [`AuditRecord::new`] (which fills `id`,
/// `createdAt` and `origin`), then set the other fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditRecord {
    /// Unique id, UUID-shaped (`8-4-4-4-12` hex digits).
    pub id: String,
    /// When the record was made, RFC 3339 UTC with milliseconds.
    pub created_at: String,
    /// Always [`ORIGIN`] for records made here.
    pub origin: String,
    /// `plan`, `apply`, `destroy`, ...
    pub action_type: String,
    /// What was acted on, e.g. the environment or stack name.
    pub action_name: String,
    /// Who started the action (user or pipeline identity).
    pub initiated_by: String,
    /// The environment's owner.
    pub owner: String,
    /// The role ARN the action ran as.
    pub assumed_role: String,
    /// The target AWS account id.
    pub target_account: String,
    /// The target AWS region.
    pub target_region: String,
    /// The environment's resource name prefix.
    pub prefix: String,
    /// The environment provider's name.
    pub provider_name: String,
    /// The request as redacted JSON text (see [`AuditRecord::set_request`]).
    request: String,
    /// `STARTED`, `SUCCESS` or `FAILED`.
    pub status: AuditStatus,
    /// A human-readable summary or the error.
    pub message: String,
}

impl AuditRecord {
    /// A record for `action_type` (`apply`, ...) on `action_name`, with a
    /// fresh id, the current time, origin `harmonix`, status
    /// [`AuditStatus::Started`], request `{}` and every other field empty.
    pub fn new(action_type: impl Into<String>, action_name: impl Into<String>) -> Self {
        Self {
            id: new_id(),
            created_at: rfc3339(SystemTime::now()),
            origin: ORIGIN.to_owned(),
            action_type: action_type.into(),
            action_name: action_name.into(),
            initiated_by: String::new(),
            owner: String::new(),
            assumed_role: String::new(),
            target_account: String::new(),
            target_region: String::new(),
            prefix: String::new(),
            provider_name: String::new(),
            request: "{}".to_owned(),
            status: AuditStatus::Started,
            message: String::new(),
        }
    }

    /// Store `request` as the record's `request` attribute, with every
    /// secret-looking value replaced (see [`redact`]).
    pub fn set_request(&mut self, request: &Value) {
        self.request = redacted(request).to_string();
    }

    /// The stored (redacted) request JSON.
    pub fn request(&self) -> &str {
        &self.request
    }

    /// The DynamoDB item: every attribute as a string (`S`).
    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        HashMap::from([
            ("id".to_owned(), s(&self.id)),
            ("createdAt".to_owned(), s(&self.created_at)),
            ("origin".to_owned(), s(&self.origin)),
            ("actionType".to_owned(), s(&self.action_type)),
            ("actionName".to_owned(), s(&self.action_name)),
            ("initiatedBy".to_owned(), s(&self.initiated_by)),
            ("owner".to_owned(), s(&self.owner)),
            ("assumedRole".to_owned(), s(&self.assumed_role)),
            ("targetAccount".to_owned(), s(&self.target_account)),
            ("targetRegion".to_owned(), s(&self.target_region)),
            ("prefix".to_owned(), s(&self.prefix)),
            ("providerName".to_owned(), s(&self.provider_name)),
            ("request".to_owned(), s(&self.request)),
            ("status".to_owned(), s(self.status.as_str())),
            ("message".to_owned(), s(&self.message)),
        ])
    }
}

/// What a conditional audit write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditWrite {
    /// The record was stored.
    Written,
    /// A record with the same `id` and `createdAt` was already there (a
    /// retried write): nothing was changed.
    AlreadyWritten,
}

/// An audit write failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The DynamoDB call failed.
    #[error("DynamoDB {operation} on audit table `{table}` failed{}", code_suffix(code.as_deref()))]
    Aws {
        /// The DynamoDB operation, e.g. `PutItem`.
        operation: &'static str,
        /// The audit table.
        table: String,
        /// The AWS error code, when the service gave one.
        code: Option<String>,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The DynamoDB call did not answer in time.
    #[error("DynamoDB {operation} on audit table `{table}` did not answer within {after:?}")]
    Timeout {
        /// The DynamoDB operation.
        operation: &'static str,
        /// The audit table.
        table: String,
        /// The timeout that elapsed.
        after: Duration,
    },
}

pub(crate) fn code_suffix(code: Option<&str>) -> String {
    code.map(|c| format!(" ({c})")).unwrap_or_default()
}

/// Writes [`AuditRecord`]s to an environment's audit table.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    client: Client,
    call_timeout: Duration,
}

impl AuditWriter {
    /// A writer using `client` (configured for the target account and
    /// region) and [`DEFAULT_CALL_TIMEOUT`] per call.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// Use `timeout` for each DynamoDB call instead of the default.
    #[must_use]
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Store `record` in `table_name` (the environment's audit table,
    /// `Names::of(spec).audit_table`). A record that is already there (a
    /// retried write) is `Ok(())` and is not duplicated.
    pub async fn write(&self, table_name: &str, record: &AuditRecord) -> Result<(), AuditError> {
        self.write_outcome(table_name, record).await.map(|_| ())
    }

    /// Like [`AuditWriter::write`], telling whether the record was new.
    pub async fn write_outcome(
        &self,
        table_name: &str,
        record: &AuditRecord,
    ) -> Result<AuditWrite, AuditError> {
        let call = self
            .client
            .put_item()
            .table_name(table_name)
            .set_item(Some(record.to_item()))
            .condition_expression("attribute_not_exists(id)")
            .send();
        let result = tokio::time::timeout(self.call_timeout, call)
            .await
            .map_err(|_| AuditError::Timeout {
                operation: "PutItem",
                table: table_name.to_owned(),
                after: self.call_timeout,
            })?;
        match result {
            Ok(_) => Ok(AuditWrite::Written),
            Err(e)
                if e.as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                tracing::debug!(
                    table = table_name,
                    id = %record.id,
                    "audit record already written; not duplicated"
                );
                Ok(AuditWrite::AlreadyWritten)
            }
            Err(e) => Err(aws_error("PutItem", table_name, e)),
        }
    }
}

/// The newest `limit` records (at most [`MAX_LATEST`]) of `table_name`,
/// newest first, each as its attributes (`S` and `N` as JSON strings and
/// numbers, `BOOL` and `NULL` as themselves; other types are left out).
/// `Ok(None)` when the table does not exist (the environment was never
/// deployed).
///
/// A Query on [`AUDIT_BY_TIME_INDEX`] with `ScanIndexForward=false`,
/// following `LastEvaluatedKey` until `limit` records are read. The index
/// is eventually consistent: a record written a moment ago may be missing.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Query.html>
pub async fn latest(
    client: &Client,
    table_name: &str,
    limit: usize,
    call_timeout: Duration,
) -> Result<Option<Vec<serde_json::Map<String, Value>>>, AuditError> {
    let limit = limit.min(MAX_LATEST);
    let mut out = Vec::with_capacity(limit);
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    while out.len() < limit {
        let page = limit - out.len();
        let call = client
            .query()
            .table_name(table_name)
            .index_name(AUDIT_BY_TIME_INDEX)
            .key_condition_expression("#o = :o")
            .expression_attribute_names("#o", "origin")
            .expression_attribute_values(":o", AttributeValue::S(ORIGIN.to_owned()))
            .scan_index_forward(false)
            .limit(i32::try_from(page).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start.take())
            .send();
        let result = tokio::time::timeout(call_timeout, call)
            .await
            .map_err(|_| AuditError::Timeout {
                operation: "Query",
                table: table_name.to_owned(),
                after: call_timeout,
            })?;
        let resp = match result {
            Ok(r) => r,
            Err(e)
                if e.as_service_error()
                    .is_some_and(QueryError::is_resource_not_found_exception) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(aws_error("Query", table_name, e)),
        };
        out.extend(resp.items().iter().map(item_json));
        match resp.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    out.truncate(limit);
    Ok(Some(out))
}

/// An item's attributes as JSON (see [`latest`]).
fn item_json(item: &HashMap<String, AttributeValue>) -> serde_json::Map<String, Value> {
    let mut keys: Vec<&String> = item.keys().collect();
    keys.sort();
    keys.into_iter()
        .filter_map(|k| {
            let v = match &item[k] {
                AttributeValue::S(s) => Value::String(s.clone()),
                AttributeValue::N(n) => n
                    .parse::<serde_json::Number>()
                    .map_or_else(|_| Value::String(n.clone()), Value::Number),
                AttributeValue::Bool(b) => Value::Bool(*b),
                AttributeValue::Null(_) => Value::Null,
                _ => return None,
            };
            Some((k.clone(), v))
        })
        .collect()
}

fn aws_error<E, R>(operation: &'static str, table: &str, err: SdkError<E, R>) -> AuditError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    AuditError::Aws {
        operation,
        table: table.to_owned(),
        code: err.code().map(str::to_owned),
        source: Box::new(err),
    }
}

/// Replace, in place, the value of every object key that looks secret
/// (`secret`, `password`, `token`, `credential`, `accessKey`,
/// `sessionToken`, `privateKey`, `authorization`; case-insensitive, `_` and
/// `-` ignored, anywhere in the key) with `"***"`, at any depth.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_secret_key(key) {
                    *v = Value::String(REDACTED.to_owned());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// A redacted copy of `value` (see [`redact`]).
pub fn redacted(value: &Value) -> Value {
    let mut v = value.clone();
    redact(&mut v);
    v
}

fn is_secret_key(key: &str) -> bool {
    let normalized: String = key
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_KEY_PARTS.iter().any(|p| normalized.contains(p))
}

/// A fresh UUID-shaped id (`8-4-4-4-12` lowercase hex) from a SHA-256 of
/// the time, the process id and a process-wide counter: unique per process
/// and, in practice, across processes.
pub fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(n.to_le_bytes());
    h.update(format!("{:?}", std::thread::current().id()).as_bytes());
    let digest = h.finalize();
    let hex = hex(digest.iter().take(16));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex<'a>(bytes: impl Iterator<Item = &'a u8>) -> String {
    use std::fmt::Write as _;
    bytes.fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// `t` as RFC 3339 UTC with milliseconds, e.g. `2023-11-14T22:13:20.000Z`.
/// Times before 1970 are written as the epoch.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let millis = d.subsec_millis();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    mod latest_records {
        use super::super::*;
        use aws_sdk_dynamodb::operation::query::QueryOutput;
        use aws_sdk_dynamodb::types::error::ResourceNotFoundException;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        fn item(id: &str, at: &str) -> HashMap<String, AttributeValue> {
            let mut r = AuditRecord::new("apply", "payments-dev");
            r.id = id.to_owned();
            r.created_at = at.to_owned();
            r.status = AuditStatus::Success;
            r.to_item()
        }

        fn key(id: &str, at: &str) -> HashMap<String, AttributeValue> {
            HashMap::from([
                ("id".to_owned(), AttributeValue::S(id.to_owned())),
                ("createdAt".to_owned(), AttributeValue::S(at.to_owned())),
                ("origin".to_owned(), AttributeValue::S(ORIGIN.to_owned())),
            ])
        }

        fn by_time(r: &aws_sdk_dynamodb::operation::query::QueryInput) -> bool {
            r.table_name() == Some("opa-payments-dev-audit")
                && r.index_name() == Some(AUDIT_BY_TIME_INDEX)
                && r.scan_index_forward() == Some(false)
                && r.key_condition_expression() == Some("#o = :o")
                && r.expression_attribute_names()
                    .is_some_and(|n| n.get("#o").map(String::as_str) == Some("origin"))
                && r.expression_attribute_values()
                    .is_some_and(|v| v.get(":o") == Some(&AttributeValue::S("harmonix".into())))
        }

        #[tokio::test]
        async fn newest_first_across_pages_up_to_the_limit() {
            let first = mock!(aws_sdk_dynamodb::Client::query)
                .match_requests(|r| {
                    by_time(r) && r.exclusive_start_key().is_none() && r.limit() == Some(5)
                })
                .then_output(|| {
                    QueryOutput::builder()
                        .items(item("b", "2026-12-08T10:00:02.000Z"))
                        .items(item("a", "2026-12-08T10:00:01.000Z"))
                        .set_last_evaluated_key(Some(key("a", "2026-12-08T10:00:01.000Z")))
                        .build()
                });
            let second = mock!(aws_sdk_dynamodb::Client::query)
                .match_requests(|r| {
                    by_time(r)
                        && r.exclusive_start_key()
                            .and_then(|k| k.get("id"))
                            .is_some_and(|v| v == &AttributeValue::S("a".into()))
                        && r.limit() == Some(3)
                })
                .then_output(|| {
                    QueryOutput::builder()
                        .items(item("0", "2026-12-07T09:00:00.000Z"))
                        .build()
                });
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&first, &second]);
            let got = latest(&client, "opa-payments-dev-audit", 5, DEFAULT_CALL_TIMEOUT)
                .await
                .expect("query")
                .expect("table exists");
            assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
            let ids: Vec<&str> = got.iter().map(|i| i["id"].as_str().unwrap_or("")).collect();
            assert_eq!(ids, ["b", "a", "0"]);
            assert_eq!(got[0]["status"], "SUCCESS");
            assert_eq!(got[0]["actionType"], "apply");
            assert_eq!(got[0]["createdAt"], "2026-12-08T10:00:02.000Z");
        }

        #[tokio::test]
        async fn stops_once_the_limit_is_read() {
            let page = mock!(aws_sdk_dynamodb::Client::query)
                .match_requests(|r| by_time(r) && r.limit() == Some(2))
                .then_output(|| {
                    QueryOutput::builder()
                        .items(item("b", "2026-12-08T10:00:02.000Z"))
                        .items(item("a", "2026-12-08T10:00:01.000Z"))
                        .set_last_evaluated_key(Some(key("a", "2026-12-08T10:00:01.000Z")))
                        .build()
                });
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&page]);
            let got = latest(&client, "opa-payments-dev-audit", 2, DEFAULT_CALL_TIMEOUT)
                .await
                .expect("query")
                .expect("table exists");
            assert_eq!(page.num_calls(), 1);
            assert_eq!(got.len(), 2);
        }

        #[tokio::test]
        async fn a_missing_table_is_none_and_other_errors_name_the_table() {
            let missing = mock!(aws_sdk_dynamodb::Client::query)
                .match_requests(|r| r.table_name() == Some("opa-payments-dev-audit"))
                .then_error(|| {
                    QueryError::ResourceNotFoundException(
                        ResourceNotFoundException::builder()
                            .message("Requested resource not found")
                            .build(),
                    )
                });
            let denied = mock!(aws_sdk_dynamodb::Client::query)
                .match_requests(|r| r.table_name() == Some("other-audit"))
                .then_error(|| {
                    QueryError::generic(
                        aws_sdk_dynamodb::error::ErrorMetadata::builder()
                            .code("AccessDeniedException")
                            .message("not authorized to perform: dynamodb:Query")
                            .build(),
                    )
                });
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&missing, &denied]);
            let none = latest(&client, "opa-payments-dev-audit", 10, DEFAULT_CALL_TIMEOUT)
                .await
                .expect("missing table is not an error");
            assert!(none.is_none());
            let err = latest(&client, "other-audit", 10, DEFAULT_CALL_TIMEOUT)
                .await
                .expect_err("access denied");
            let text = err.to_string();
            assert!(
                text.contains("Query") && text.contains("other-audit"),
                "{text}"
            );
            assert!(text.contains("AccessDeniedException"), "{text}");
        }
    }

    #[test]
    fn rfc3339_known_instants() {
        let at = |s: u64, ms: u64| UNIX_EPOCH + Duration::from_millis(s * 1000 + ms);
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(951_782_400, 0)), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(at(1_700_000_000, 7)), "2023-11-14T22:13:20.007Z");
        assert_eq!(rfc3339(at(1_709_251_199, 999)), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339(at(4_102_444_800, 0)), "2100-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn rfc3339_sorts_like_time() {
        let a = rfc3339(UNIX_EPOCH + Duration::from_millis(1_700_000_000_999));
        let b = rfc3339(UNIX_EPOCH + Duration::from_secs(1_700_000_001));
        assert!(a < b, "{a} < {b}");
    }

    #[test]
    fn ids_are_uuid_shaped_and_unique() {
        let ids: std::collections::BTreeSet<String> = (0..1000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            let parts: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(parts, [8, 4, 4, 4, 12], "{id}");
            assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn redact_replaces_secret_values_at_any_depth() {
        let mut v = json!({
            "environment": "dev",
            "clientSecret": "s3cr3t",
            "Password": 1234,
            "auth": { "accessKeyId": "AKIA", "SessionToken": "tok", "region": "eu-west-1" },
            "roles": [ { "name": "ops", "aws_secret_access_key": "x" } ],
            "CREDENTIALS": { "nested": "whole object goes" },
            "api-token": null,
            "tokens": ["a", "b"],
            "owner": "team-a"
        });
        redact(&mut v);
        assert_eq!(
            v,
            json!({
                "environment": "dev",
                "clientSecret": "***",
                "Password": "***",
                "auth": { "accessKeyId": "***", "SessionToken": "***", "region": "eu-west-1" },
                "roles": [ { "name": "ops", "aws_secret_access_key": "***" } ],
                "CREDENTIALS": "***",
                "api-token": "***",
                "tokens": "***",
                "owner": "team-a"
            })
        );
    }

    #[test]
    fn redact_leaves_non_objects_alone() {
        for v in [json!("password"), json!(3), json!(null), json!(["token"])] {
            assert_eq!(redacted(&v), v);
        }
    }

    #[test]
    fn set_request_redacts_and_item_has_every_attribute() {
        let mut r = AuditRecord::new("apply", "shop-dev");
        r.set_request(&json!({ "spec": "dev.yaml", "secretAccessKey": "Sekret-Value-QQ" }));
        assert_eq!(
            r.request(),
            r#"{"spec":"dev.yaml","secretAccessKey":"***"}"#
        );
        r.status = AuditStatus::Success;
        let item = r.to_item();
        let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "actionName",
                "actionType",
                "assumedRole",
                "createdAt",
                "id",
                "initiatedBy",
                "message",
                "origin",
                "owner",
                "prefix",
                "providerName",
                "request",
                "status",
                "targetAccount",
                "targetRegion"
            ]
        );
        assert_eq!(item["status"], AttributeValue::S("SUCCESS".into()));
        assert_eq!(item["origin"], AttributeValue::S("harmonix".into()));
        assert!(!format!("{item:?}").contains("Sekret-Value-QQ"));
    }
}
