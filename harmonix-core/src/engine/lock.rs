//! The environment lock: one DynamoDB item per environment in the
//! account/region's lock table ([`LOCK_TABLE`]), taken with a conditional
//! write so that only one `harmonix apply`/`destroy` runs against an
//! environment at a time.
//!
//! - The table exists before any environment does: [`ensure_lock_table`]
//!   creates it (partition key `lockId`, on-demand, encrypted) when missing.
//! - [`LockManager::acquire`] writes the item with the condition
//!   `attribute_not_exists(lockId) OR expiresAt < :now`. The item holds the
//!   holder (`holderId`, `host`, `pid`, `user`, `command`) and `acquiredAt`
//!   / `expiresAt` (epoch **milliseconds**, numbers). A held lock is
//!   [`LockError::Held`], naming the holder and the expiry.
//! - Take-over: a lease found expired is taken over; so is a lock whose
//!   holder ran on **this host** (same hostname) with a pid that is provably
//!   dead (Linux: `/proc/<pid>` absent), without waiting for the lease. That
//!   take-over is conditional on the dead holder's `holderId`, so a third
//!   process racing for the same lock cannot be overwritten. Both are
//!   logged with `tracing::warn!` and reported by [`LockGuard::took_over`].
//!   (Hosts sharing a hostname but not a pid namespace, such as containers
//!   with a fixed hostname, would defeat the pid check: give them distinct
//!   hostnames.)
//! - The [`LockGuard`] runs a heartbeat task extending `expiresAt` every
//!   lease/3, conditional on `holderId = :me`; a failed condition (or no
//!   successful extension before the lease ran out) marks the lock lost
//!   ([`LockGuard::lost`]). [`LockGuard::release`] deletes the item
//!   conditionally on `holderId = :me`; dropping the guard without
//!   releasing only stops the heartbeat, and the lease then expires.
//! - Expiry compares the writer's clock with the stored `expiresAt`: keep
//!   leases well above the clock skew between machines (the default lease
//!   is 5 minutes).
//!
//! Every DynamoDB call is bounded by a timeout ([`DEFAULT_CALL_TIMEOUT`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType, SseSpecification, TableStatus,
};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::operation::get_item::GetItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

use super::audit::{code_suffix, hex, rfc3339};

/// The lock table of an account/region.
pub const LOCK_TABLE: &str = "harmonix-locks";

/// How long [`ensure_lock_table`] waits for the table to become ACTIVE.
pub const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_mins(2);

/// How long one DynamoDB call may take by default.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A sensible lease for an apply: the heartbeat extends it while we run.
pub const DEFAULT_LEASE: Duration = Duration::from_mins(5);

/// How often [`LockManager::acquire`] retries when the lock item changes
/// under it (released or taken between its write and its read).
const ACQUIRE_ATTEMPTS: usize = 5;

// Attribute names of a lock item.
const A_LOCK_ID: &str = "lockId";
const A_HOLDER_ID: &str = "holderId";
const A_HOST: &str = "host";
const A_PID: &str = "pid";
const A_USER: &str = "user";
const A_COMMAND: &str = "command";
const A_ACQUIRED_AT: &str = "acquiredAt";
const A_EXPIRES_AT: &str = "expiresAt";

/// Who holds (or wants) a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Unique per process run (see [`Holder::current`]); the lock item's
    /// `holderId`, which every conditional update checks.
    pub id: String,
    /// Hostname of the machine.
    pub host: String,
    /// Process id on that machine.
    pub pid: u32,
    /// The OS user.
    pub user: String,
    /// The command being run, e.g. `harmonix apply dev.yaml`.
    pub command: String,
}

impl Holder {
    /// This process: a fresh random-looking id (hash of the time, pid and a
    /// counter), [`this_host`], the current pid, the user from `USER` /
    /// `USERNAME` / `LOGNAME` (`unknown` when none is set) and `command`.
    pub fn current(command: impl Into<String>) -> Self {
        let user = ["USER", "USERNAME", "LOGNAME"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            id: holder_id(),
            host: this_host(),
            pid: std::process::id(),
            user,
            command: command.into(),
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} pid {} (`{}`)",
            self.user, self.host, self.pid, self.command
        )
    }
}

/// A 16-hex-digit id from the time, the pid and a process-wide counter.
fn holder_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(n.to_le_bytes());
    hex(h.finalize().iter().take(8))
}

/// This machine's hostname (`/proc/sys/kernel/hostname`, `/etc/hostname`,
/// then `HOSTNAME` / `COMPUTERNAME`), or `unknown`.
pub fn this_host() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Whether process `pid` on this machine is provably gone: only on Linux
/// with `/proc` mounted, where `/proc/<pid>` is absent. Anywhere else the
/// answer is `false` (we cannot prove it).
pub fn pid_is_dead(pid: u32) -> bool {
    if !cfg!(target_os = "linux") || pid == 0 || pid == std::process::id() {
        return false;
    }
    let proc = std::path::Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

/// Taking, keeping or releasing a lock failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Someone else holds the lock.
    #[error(
        "environment lock `{lock_id}` is held by {holder} until {}; \
         wait for it to finish or for the lease to expire",
        rfc3339(*expires_at)
    )]
    Held {
        /// The lock, e.g. `<account>/<region>/<environment>`.
        lock_id: String,
        /// The current holder.
        holder: Holder,
        /// When its lease runs out unless renewed.
        expires_at: SystemTime,
    },
    /// We no longer hold the lock (its lease expired and someone else took
    /// it, or the item was removed).
    #[error("environment lock `{lock_id}` was lost: another process took it or it was removed")]
    Lost {
        /// The lock.
        lock_id: String,
    },
    /// The lock item has no usable value for an attribute we rely on.
    #[error(
        "environment lock `{lock_id}` in table `{table}` has no valid `{attribute}`; \
         delete the item to release it"
    )]
    Malformed {
        /// The lock.
        lock_id: String,
        /// The lock table.
        table: String,
        /// The attribute.
        attribute: &'static str,
    },
    /// The lock kept changing while we tried to take it.
    #[error("environment lock `{lock_id}` kept changing after {attempts} attempts to take it")]
    Contended {
        /// The lock.
        lock_id: String,
        /// How many attempts were made.
        attempts: usize,
    },
    /// The lock table did not become ACTIVE in time.
    #[error("lock table `{table}` was not ACTIVE within {after:?} (last status: {status})")]
    TableNotActive {
        /// The table.
        table: String,
        /// The timeout.
        after: Duration,
        /// The last status seen.
        status: String,
    },
    /// A DynamoDB call failed.
    #[error("DynamoDB {operation} on lock table `{table}` failed{}", code_suffix(code.as_deref()))]
    Aws {
        /// The operation, e.g. `PutItem`.
        operation: &'static str,
        /// The lock table.
        table: String,
        /// The AWS error code, when the service gave one.
        code: Option<String>,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A DynamoDB call did not answer in time.
    #[error("DynamoDB {operation} on lock table `{table}` did not answer within {after:?}")]
    Timeout {
        /// The operation.
        operation: &'static str,
        /// The lock table.
        table: String,
        /// The timeout.
        after: Duration,
    },
}

fn aws_error<E, R>(operation: &'static str, table: &str, err: SdkError<E, R>) -> LockError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    LockError::Aws {
        operation,
        table: table.to_owned(),
        code: err.code().map(str::to_owned),
        source: Box::new(err),
    }
}

/// Run one DynamoDB call with a timeout.
async fn timed<T, F>(
    operation: &'static str,
    table: &str,
    after: Duration,
    call: F,
) -> Result<T, LockError>
where
    F: std::future::Future<Output = T>,
{
    tokio::time::timeout(after, call)
        .await
        .map_err(|_| LockError::Timeout {
            operation,
            table: table.to_owned(),
            after,
        })
}

/// Make sure [`LOCK_TABLE`] exists and is ACTIVE (see
/// [`ensure_lock_table_named`]).
pub async fn ensure_lock_table(client: &Client) -> Result<(), LockError> {
    ensure_lock_table_named(client, LOCK_TABLE, TABLE_ACTIVE_TIMEOUT).await
}

/// Create the lock table `table` (partition key `lockId` of type S,
/// PAY_PER_REQUEST, server-side encryption enabled) unless it exists, and
/// wait at most `timeout` until it is ACTIVE. Idempotent: an existing
/// table, or one created concurrently (`ResourceInUseException`), is fine.
pub async fn ensure_lock_table_named(
    client: &Client,
    table: &str,
    timeout: Duration,
) -> Result<(), LockError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let call_timeout = timeout.min(DEFAULT_CALL_TIMEOUT);
    let status = describe_status(client, table, call_timeout).await?;
    if status.is_none() {
        let key = KeySchemaElement::builder()
            .attribute_name(A_LOCK_ID)
            .key_type(KeyType::Hash)
            .build()
            .map_err(|e| aws_build_error("CreateTable", table, e))?;
        let attr = AttributeDefinition::builder()
            .attribute_name(A_LOCK_ID)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| aws_build_error("CreateTable", table, e))?;
        let call = client
            .create_table()
            .table_name(table)
            .key_schema(key)
            .attribute_definitions(attr)
            .billing_mode(BillingMode::PayPerRequest)
            .sse_specification(SseSpecification::builder().enabled(true).build())
            .send();
        match timed("CreateTable", table, call_timeout, call).await? {
            Ok(_) => tracing::info!(table, "created the lock table"),
            Err(e)
                if e.as_service_error()
                    .is_some_and(CreateTableError::is_resource_in_use_exception) => {}
            Err(e) => return Err(aws_error("CreateTable", table, e)),
        }
    }
    // Right after CreateTable the table is CREATING (or, with eventual
    // consistency, not yet visible): look once more before sleeping.
    let mut last = match status {
        Some(s) => Some(s),
        None => describe_status(client, table, call_timeout).await?,
    };
    loop {
        if last.as_ref() == Some(&TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(LockError::TableNotActive {
                table: table.to_owned(),
                after: timeout,
                status: last.map_or_else(|| "not found".to_owned(), |s| s.as_str().to_owned()),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        last = describe_status(client, table, call_timeout).await?;
    }
}

fn aws_build_error(
    operation: &'static str,
    table: &str,
    e: aws_sdk_dynamodb::error::BuildError,
) -> LockError {
    LockError::Aws {
        operation,
        table: table.to_owned(),
        code: None,
        source: Box::new(e),
    }
}

/// The table's status, `None` when it does not exist.
async fn describe_status(
    client: &Client,
    table: &str,
    after: Duration,
) -> Result<Option<TableStatus>, LockError> {
    let call = client.describe_table().table_name(table).send();
    match timed("DescribeTable", table, after, call).await? {
        Ok(out) => Ok(Some(
            out.table()
                .and_then(|t| t.table_status())
                .cloned()
                .unwrap_or_else(|| TableStatus::from("UNKNOWN")),
        )),
        Err(e)
            if e.as_service_error()
                .is_some_and(DescribeTableError::is_resource_not_found_exception) =>
        {
            Ok(None)
        }
        Err(e) => Err(aws_error("DescribeTable", table, e)),
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn num(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

type Item = HashMap<String, AttributeValue>;

fn get_s(item: &Item, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n(item: &Item, key: &str) -> Option<u64> {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// The holder stored in a lock item; missing text fields read as `?`, a
/// missing pid as 0 (which is never judged dead).
fn holder_of(item: &Item) -> Holder {
    let text = |k| get_s(item, k).unwrap_or_else(|| "?".to_owned());
    Holder {
        id: text(A_HOLDER_ID),
        host: text(A_HOST),
        pid: get_n(item, A_PID)
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0),
        user: text(A_USER),
        command: text(A_COMMAND),
    }
}

/// Takes environment locks in one lock table.
#[derive(Debug, Clone)]
pub struct LockManager {
    client: Client,
    table: String,
    call_timeout: Duration,
}

impl LockManager {
    /// Locks in `table` (normally [`LOCK_TABLE`], made by
    /// [`ensure_lock_table`]) through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// Use `timeout` for each DynamoDB call instead of
    /// [`DEFAULT_CALL_TIMEOUT`].
    #[must_use]
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The lock table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Take `lock_id` (e.g. `<account>/<region>/<environment>`) for
    /// `holder` for `lease` (extended by the guard's heartbeat every
    /// lease/3). Fails with [`LockError::Held`] when someone else holds an
    /// unexpired lease, unless that holder is a dead process on this host
    /// (see the module docs). Leases below 300 ms are raised to 300 ms.
    /// Asking again with a holder that already holds the lock (same `id`)
    /// is [`LockError::Held`] too: the lock is not reentrant. Must run
    /// inside a tokio runtime (the heartbeat is a spawned task).
    pub async fn acquire(
        &self,
        lock_id: &str,
        holder: Holder,
        lease: Duration,
    ) -> Result<LockGuard, LockError> {
        let lease = lease.max(Duration::from_millis(300));
        for _ in 0..ACQUIRE_ATTEMPTS {
            let now = now_millis();
            if let Some(previous) = self.put(lock_id, &holder, lease, now, None).await? {
                let took_over = previous.map(|old| {
                    let old_holder = holder_of(&old);
                    tracing::warn!(
                        lock_id,
                        previous_holder = %old_holder,
                        "took over an expired environment lock"
                    );
                    old_holder
                });
                return Ok(self.guard(lock_id, holder, lease, now, took_over));
            }
            // The condition failed: see who holds it.
            let Some(item) = self.read(lock_id).await? else {
                continue; // released in between
            };
            let current = holder_of(&item);
            let expires = get_n(&item, A_EXPIRES_AT).ok_or_else(|| LockError::Malformed {
                lock_id: lock_id.to_owned(),
                table: self.table.clone(),
                attribute: A_EXPIRES_AT,
            })?;
            if current.host == this_host() && pid_is_dead(current.pid) {
                let now = now_millis();
                match self
                    .put(lock_id, &holder, lease, now, Some(&current.id))
                    .await?
                {
                    Some(_) => {
                        tracing::warn!(
                            lock_id,
                            previous_holder = %current,
                            "took over the environment lock of a dead process on this host"
                        );
                        return Ok(self.guard(lock_id, holder, lease, now, Some(current)));
                    }
                    None => continue, // someone else got there first
                }
            }
            if expires < now_millis() {
                continue; // expired meanwhile: try again
            }
            return Err(LockError::Held {
                lock_id: lock_id.to_owned(),
                holder: current,
                expires_at: UNIX_EPOCH + Duration::from_millis(expires),
            });
        }
        Err(LockError::Contended {
            lock_id: lock_id.to_owned(),
            attempts: ACQUIRE_ATTEMPTS,
        })
    }

    /// Check, without taking it, that nobody alive holds `lock_id`:
    /// [`LockError::Held`] naming the holder when someone does; `Ok` when
    /// the lock is free, expired, held by a dead process on this host, or
    /// the lock table does not exist. Read-only (one GetItem); used to
    /// refuse early when another run is working on an environment.
    pub async fn ensure_free(&self, lock_id: &str) -> Result<(), LockError> {
        let call = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(A_LOCK_ID, s(lock_id))
            .consistent_read(true)
            .send();
        let item = match timed("GetItem", &self.table, self.call_timeout, call).await? {
            Ok(out) => out.item,
            Err(e)
                if e.as_service_error()
                    .is_some_and(GetItemError::is_resource_not_found_exception) =>
            {
                None
            }
            Err(e) => return Err(aws_error("GetItem", &self.table, e)),
        };
        let Some(item) = item else {
            return Ok(());
        };
        let current = holder_of(&item);
        let Some(expires) = get_n(&item, A_EXPIRES_AT) else {
            return Ok(());
        };
        if expires < now_millis() || (current.host == this_host() && pid_is_dead(current.pid)) {
            return Ok(());
        }
        Err(LockError::Held {
            lock_id: lock_id.to_owned(),
            holder: current,
            expires_at: UNIX_EPOCH + Duration::from_millis(expires),
        })
    }

    /// The conditional PutItem: `Ok(Some(old item))` when written (the old
    /// item is `None` when there was none), `Ok(None)` when the condition
    /// failed. With `replacing`, the condition is `holderId = :old`
    /// instead of "absent or expired".
    async fn put(
        &self,
        lock_id: &str,
        holder: &Holder,
        lease: Duration,
        now: u64,
        replacing: Option<&str>,
    ) -> Result<Option<Option<Item>>, LockError> {
        let item = HashMap::from([
            (A_LOCK_ID.to_owned(), s(lock_id)),
            (A_HOLDER_ID.to_owned(), s(&holder.id)),
            (A_HOST.to_owned(), s(&holder.host)),
            (A_PID.to_owned(), num(u64::from(holder.pid))),
            (A_USER.to_owned(), s(&holder.user)),
            (A_COMMAND.to_owned(), s(&holder.command)),
            (A_ACQUIRED_AT.to_owned(), num(now)),
            (
                A_EXPIRES_AT.to_owned(),
                num(now.saturating_add(millis(lease))),
            ),
        ]);
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_values(ReturnValue::AllOld);
        req = match replacing {
            None => req
                .condition_expression("attribute_not_exists(lockId) OR expiresAt < :now")
                .expression_attribute_values(":now", num(now)),
            Some(old) => req
                .condition_expression("holderId = :old")
                .expression_attribute_values(":old", s(old)),
        };
        match timed("PutItem", &self.table, self.call_timeout, req.send()).await? {
            Ok(out) => Ok(Some(out.attributes.filter(|a| !a.is_empty()))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws_error("PutItem", &self.table, e)),
        }
    }

    /// The lock item (strongly consistent read), `None` when absent.
    async fn read(&self, lock_id: &str) -> Result<Option<Item>, LockError> {
        let call = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(A_LOCK_ID, s(lock_id))
            .consistent_read(true)
            .send();
        match timed("GetItem", &self.table, self.call_timeout, call).await? {
            Ok(out) => Ok(out.item),
            Err(e) => Err(aws_error("GetItem", &self.table, e)),
        }
    }

    fn guard(
        &self,
        lock_id: &str,
        holder: Holder,
        lease: Duration,
        now: u64,
        took_over: Option<Holder>,
    ) -> LockGuard {
        let expires_at = Arc::new(AtomicU64::new(now.saturating_add(millis(lease))));
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeat(
            self.clone(),
            lock_id.to_owned(),
            holder.id.clone(),
            lease,
            Arc::clone(&expires_at),
            Arc::clone(&lost),
        ));
        LockGuard {
            manager: self.clone(),
            lock_id: lock_id.to_owned(),
            holder,
            took_over,
            expires_at,
            lost,
            heartbeat,
        }
    }
}

/// Extend the lease every lease/3 while we hold it; stop (and mark it lost)
/// when the condition fails or the lease ran out without an extension.
async fn heartbeat(
    manager: LockManager,
    lock_id: String,
    me: String,
    lease: Duration,
    expires_at: Arc<AtomicU64>,
    lost: Arc<AtomicBool>,
) {
    let every = lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let new_expiry = now_millis().saturating_add(millis(lease));
        let call = manager
            .client
            .update_item()
            .table_name(&manager.table)
            .key(A_LOCK_ID, s(&lock_id))
            .update_expression("SET expiresAt = :exp")
            .condition_expression("holderId = :me")
            .expression_attribute_values(":exp", num(new_expiry))
            .expression_attribute_values(":me", s(&me))
            .send();
        match tokio::time::timeout(every.min(manager.call_timeout), call).await {
            Ok(Ok(_)) => expires_at.store(new_expiry, Ordering::SeqCst),
            Ok(Err(e))
                if e.as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                lost.store(true, Ordering::SeqCst);
                tracing::warn!(
                    lock_id,
                    "environment lock lost: another process holds it now"
                );
                return;
            }
            Ok(Err(e)) => {
                let e = aws_error("UpdateItem", &manager.table, e);
                tracing::warn!(lock_id, error = %e, "could not extend the environment lock");
            }
            Err(_) => {
                tracing::warn!(lock_id, "extending the environment lock timed out");
            }
        }
        if now_millis() >= expires_at.load(Ordering::SeqCst) {
            lost.store(true, Ordering::SeqCst);
            tracing::warn!(
                lock_id,
                "environment lock lost: its lease ran out before it could be extended"
            );
            return;
        }
    }
}

/// A held lock. Its heartbeat keeps the lease alive until
/// [`LockGuard::release`] or drop (which only stops the heartbeat: the
/// lease then expires by itself).
#[derive(Debug)]
pub struct LockGuard {
    manager: LockManager,
    lock_id: String,
    holder: Holder,
    took_over: Option<Holder>,
    expires_at: Arc<AtomicU64>,
    lost: Arc<AtomicBool>,
    heartbeat: JoinHandle<()>,
}

impl LockGuard {
    /// The lock id.
    pub fn lock_id(&self) -> &str {
        &self.lock_id
    }

    /// Us.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// The previous holder when the lock was taken over (expired lease, or
    /// a dead process on this host).
    pub fn took_over(&self) -> Option<&Holder> {
        self.took_over.as_ref()
    }

    /// Whether the heartbeat found the lock lost (taken by someone else,
    /// removed, or not extended in time). Stop working on the environment
    /// when this turns true.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// The lease's expiry as last written by us.
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.expires_at.load(Ordering::SeqCst))
    }

    /// Stop the heartbeat and delete the lock item, conditionally on still
    /// holding it: [`LockError::Lost`] when someone else holds it now. A
    /// heartbeat update still in flight cannot bring the item back: it is
    /// conditional on our `holderId` too.
    pub async fn release(self) -> Result<(), LockError> {
        self.heartbeat.abort();
        let m = &self.manager;
        let call = m
            .client
            .delete_item()
            .table_name(&m.table)
            .key(A_LOCK_ID, s(&self.lock_id))
            .condition_expression("holderId = :me")
            .expression_attribute_values(":me", s(&self.holder.id))
            .send();
        match timed("DeleteItem", &m.table, m.call_timeout, call).await? {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(DeleteItemError::is_conditional_check_failed_exception) =>
            {
                self.lost.store(true, Ordering::SeqCst);
                Err(LockError::Lost {
                    lock_id: self.lock_id.clone(),
                })
            }
            Err(e) => Err(aws_error("DeleteItem", &m.table, e)),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder() -> Holder {
        Holder {
            id: "abc".into(),
            host: "build-1".into(),
            pid: 4242,
            user: "alice".into(),
            command: "harmonix apply dev.yaml".into(),
        }
    }

    #[test]
    fn held_names_the_holder_and_the_expiry() {
        let e = LockError::Held {
            lock_id: "123456789012/eu-west-1/dev".into(),
            holder: holder(),
            expires_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        };
        assert_eq!(
            e.to_string(),
            "environment lock `123456789012/eu-west-1/dev` is held by \
             alice@build-1 pid 4242 (`harmonix apply dev.yaml`) until \
             2023-11-14T22:13:20.000Z; wait for it to finish or for the lease to expire"
        );
    }

    #[test]
    fn current_holder_ids_differ() {
        let a = Holder::current("x");
        let b = Holder::current("x");
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 16);
        assert_eq!(a.pid, std::process::id());
        assert!(!a.host.is_empty());
    }

    #[test]
    fn holder_of_tolerates_missing_fields() {
        let item = HashMap::from([
            (A_LOCK_ID.to_owned(), s("l")),
            (A_HOLDER_ID.to_owned(), s("id1")),
            (A_PID.to_owned(), AttributeValue::N("not a number".into())),
        ]);
        let h = holder_of(&item);
        assert_eq!(h.id, "id1");
        assert_eq!(h.pid, 0);
        assert_eq!(h.user, "?");
        assert!(!pid_is_dead(h.pid));
    }

    #[test]
    fn our_own_pid_is_alive() {
        assert!(!pid_is_dead(std::process::id()));
    }
}
