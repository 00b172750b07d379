//! The environment lock and the audit trail against the local emulator
//! (moto, see `/work/shared/EMULATOR.md`), through the real DynamoDB client
//! with an endpoint override and static dummy credentials.
//!
//! One emulator per test function: each function runs its scenarios in
//! sequence, on their own lock ids, to keep the run short on two cores.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use harmonix_core::engine::audit::{AuditRecord, AuditStatus, AuditWrite, AuditWriter};
use harmonix_core::engine::lock::{
    Holder, LOCK_TABLE, LockError, LockManager, ensure_lock_table, this_host,
};
use harmonix_tests::emulator::Emulator;
use serde_json::json;

/// A DynamoDB client for us-east-1 on the emulator, from an `SdkConfig`
/// built by hand (no environment, no profile).
fn client(emulator: &Emulator) -> Client {
    let config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(emulator.endpoint_url())
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "static",
        )))
        .build();
    Client::new(&config)
}

fn holder(id: &str, host: &str, pid: u32) -> Holder {
    Holder {
        id: id.to_owned(),
        host: host.to_owned(),
        pid,
        user: format!("user-{id}"),
        command: format!("harmonix apply {id}.yaml"),
    }
}

async fn item(client: &Client, lock_id: &str) -> Option<HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(LOCK_TABLE)
        .key("lockId", AttributeValue::S(lock_id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem on the lock table")
        .item
}

fn n(item: &HashMap<String, AttributeValue>, key: &str) -> u64 {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} is a number in {item:?}"))
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

#[tokio::test]
async fn lock_on_the_emulator() {
    let emulator = Emulator::start();
    let client = client(&emulator);

    // The table: created once, the second call is a no-op.
    ensure_lock_table(&client)
        .await
        .expect("lock table created");
    ensure_lock_table(&client).await.expect("idempotent");
    let table = client
        .describe_table()
        .table_name(LOCK_TABLE)
        .send()
        .await
        .expect("DescribeTable")
        .table
        .expect("table description");
    assert_eq!(table.table_status(), Some(&TableStatus::Active));
    let keys: Vec<(&str, &KeyType)> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type()))
        .collect();
    assert_eq!(keys, [("lockId", &KeyType::Hash)]);
    assert_eq!(
        table.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );

    let locks = LockManager::new(client.clone(), LOCK_TABLE);
    let other_host = "build-elsewhere";

    // Acquire, a second holder is refused with the first one named.
    let lock_id = "123456789012/us-east-1/dev";
    let a = holder("a", other_host, 1111);
    let guard = locks
        .acquire(lock_id, a.clone(), Duration::from_mins(1))
        .await
        .expect("first acquire");
    assert!(guard.took_over().is_none());
    assert!(!guard.lost());
    let stored = item(&client, lock_id).await.expect("lock item");
    assert_eq!(stored["holderId"], AttributeValue::S("a".into()));
    assert_eq!(stored["user"], AttributeValue::S("user-a".into()));
    assert_eq!(n(&stored, "pid"), 1111);
    assert!(n(&stored, "expiresAt") >= n(&stored, "acquiredAt") + 59_000);
    let err = locks
        .acquire(
            lock_id,
            holder("b", other_host, 2222),
            Duration::from_mins(1),
        )
        .await
        .expect_err("second acquire must fail");
    match &err {
        LockError::Held {
            lock_id: l,
            holder: h,
            expires_at,
        } => {
            assert_eq!(l, lock_id);
            assert_eq!(h, &a);
            let secs = expires_at
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            assert!(secs > Duration::from_secs(50), "{secs:?}");
        }
        other => panic!("expected Held, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("user-a@build-elsewhere pid 1111 (`harmonix apply a.yaml`)"),
        "{msg}"
    );

    // Release, then another holder gets it.
    guard.release().await.expect("release");
    assert!(item(&client, lock_id).await.is_none(), "item deleted");
    let guard = locks
        .acquire(
            lock_id,
            holder("b", other_host, 2222),
            Duration::from_mins(1),
        )
        .await
        .expect("acquire after release");
    assert!(guard.took_over().is_none());
    guard.release().await.expect("release b");

    // An expired lease is taken over (the guard is dropped: no heartbeat).
    let lock_id = "123456789012/us-east-1/expired";
    let old = holder("old", other_host, 3333);
    drop(
        locks
            .acquire(lock_id, old.clone(), Duration::from_secs(1))
            .await
            .expect("short lease"),
    );
    let err = locks
        .acquire(
            lock_id,
            holder("new", other_host, 4444),
            Duration::from_mins(1),
        )
        .await
        .expect_err("still held right after");
    assert!(matches!(err, LockError::Held { .. }), "{err:?}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let guard = locks
        .acquire(
            lock_id,
            holder("new", other_host, 4444),
            Duration::from_mins(1),
        )
        .await
        .expect("expired lease taken over");
    assert_eq!(guard.took_over(), Some(&old));
    guard.release().await.expect("release new");

    // A holder on this host whose pid is dead is taken over at once; a live
    // pid on this host, or a dead pid on another host, is not.
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn `true`");
    let dead_pid = child.id();
    child.wait().expect("`true` exits");
    let lock_id = "123456789012/us-east-1/dead-pid";
    let dead = holder("dead", &this_host(), dead_pid);
    drop(
        locks
            .acquire(lock_id, dead.clone(), Duration::from_mins(10))
            .await
            .expect("dead holder acquires"),
    );
    let guard = locks
        .acquire(
            lock_id,
            Holder::current("harmonix apply dev.yaml"),
            Duration::from_mins(1),
        )
        .await
        .expect("dead process's lock taken over");
    assert_eq!(guard.took_over(), Some(&dead));
    assert_eq!(
        item(&client, lock_id).await.expect("item")["holderId"],
        AttributeValue::S(guard.holder().id.clone())
    );
    drop(guard); // heartbeat stops; the item stays (our pid is alive)
    let err = locks
        .acquire(
            lock_id,
            holder("c", &this_host(), 5555),
            Duration::from_mins(1),
        )
        .await
        .expect_err("a live process on this host keeps its lock");
    assert!(matches!(err, LockError::Held { .. }), "{err:?}");

    let lock_id = "123456789012/us-east-1/dead-elsewhere";
    drop(
        locks
            .acquire(
                lock_id,
                holder("far", other_host, dead_pid),
                Duration::from_mins(10),
            )
            .await
            .expect("acquire"),
    );
    let err = locks
        .acquire(lock_id, Holder::current("x"), Duration::from_mins(1))
        .await
        .expect_err("a pid on another host proves nothing");
    assert!(matches!(err, LockError::Held { .. }), "{err:?}");

    // The heartbeat extends expiresAt.
    let lock_id = "123456789012/us-east-1/heartbeat";
    let guard = locks
        .acquire(
            lock_id,
            holder("hb", other_host, 6666),
            Duration::from_secs(2),
        )
        .await
        .expect("acquire");
    let first = n(&item(&client, lock_id).await.expect("item"), "expiresAt");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = n(&item(&client, lock_id).await.expect("item"), "expiresAt");
    assert!(later > first, "expiresAt extended: {first} -> {later}");
    assert!(later > now_ms() + 1000, "lease runs ahead of now");
    assert!(!guard.lost());
    guard.release().await.expect("release hb");

    // The heartbeat notices a lock taken away; release then says Lost.
    let lock_id = "123456789012/us-east-1/lost";
    let guard = locks
        .acquire(
            lock_id,
            holder("me", other_host, 7777),
            Duration::from_millis(900),
        )
        .await
        .expect("acquire");
    client
        .put_item()
        .table_name(LOCK_TABLE)
        .item("lockId", AttributeValue::S(lock_id.to_owned()))
        .item("holderId", AttributeValue::S("intruder".into()))
        .item(
            "expiresAt",
            AttributeValue::N((now_ms() + 60_000).to_string()),
        )
        .send()
        .await
        .expect("overwrite the lock");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(guard.lost(), "heartbeat saw the lock lost");
    let err = guard.release().await.expect_err("release of a lost lock");
    assert!(matches!(err, LockError::Lost { .. }), "{err:?}");
    assert_eq!(
        item(&client, lock_id).await.expect("intruder's item stays")["holderId"],
        AttributeValue::S("intruder".into())
    );

    // A lock item without expiresAt is reported, not guessed at.
    let lock_id = "123456789012/us-east-1/malformed";
    client
        .put_item()
        .table_name(LOCK_TABLE)
        .item("lockId", AttributeValue::S(lock_id.to_owned()))
        .item("holderId", AttributeValue::S("odd".into()))
        .send()
        .await
        .expect("write a malformed lock");
    let err = locks
        .acquire(
            lock_id,
            holder("m", other_host, 8888),
            Duration::from_mins(1),
        )
        .await
        .expect_err("malformed lock");
    assert!(
        matches!(
            err,
            LockError::Malformed {
                attribute: "expiresAt",
                ..
            }
        ),
        "{err:?}"
    );

    // A missing table is an error naming the DynamoDB call.
    let err = LockManager::new(client.clone(), "no-such-table")
        .acquire("x", holder("z", other_host, 1), Duration::from_secs(5))
        .await
        .expect_err("missing table");
    assert_eq!(
        err.to_string(),
        "DynamoDB PutItem on lock table `no-such-table` failed (ResourceNotFoundException)"
    );
}

#[tokio::test]
async fn audit_on_the_emulator() {
    let emulator = Emulator::start();
    let client = client(&emulator);
    let table = "opa-payments-dev-audit";
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute definition")
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key schema")
    };
    // Shaped like the table the providers render.
    client
        .create_table()
        .table_name(table)
        .attribute_definitions(attr("id"))
        .attribute_definitions(attr("createdAt"))
        .key_schema(key("id", KeyType::Hash))
        .key_schema(key("createdAt", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("audit table");

    let mut record = AuditRecord::new("apply", "opa-payments-dev");
    record.initiated_by = "alice".into();
    record.owner = "group:payments".into();
    record.assumed_role = "arn:aws:iam::123456789012:role/opa-provisioning".into();
    record.target_account = "123456789012".into();
    record.target_region = "us-east-1".into();
    record.prefix = "opa".into();
    record.provider_name = "payments-dev".into();
    record.status = AuditStatus::Success;
    record.message = "2 stacks deployed".into();
    record.set_request(&json!({
        "spec": "dev.yaml",
        "credentials": { "accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "wJalrXUtnFEMI" },
        "sessionToken": "FwoGZXIvYXdzEXAMPLE"
    }));

    let writer = AuditWriter::new(client.clone());
    assert_eq!(
        writer.write_outcome(table, &record).await.expect("write"),
        AuditWrite::Written
    );
    // A retried write does not duplicate.
    assert_eq!(
        writer.write_outcome(table, &record).await.expect("rewrite"),
        AuditWrite::AlreadyWritten
    );
    writer.write(table, &record).await.expect("write is Ok too");

    let items = client
        .scan()
        .table_name(table)
        .send()
        .await
        .expect("Scan")
        .items
        .unwrap_or_default();
    assert_eq!(items.len(), 1, "{items:?}");
    let got = &items[0];
    let s = |k: &str| {
        got.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_else(|| panic!("attribute {k} missing in {got:?}"))
    };
    assert_eq!(s("id"), record.id);
    assert_eq!(s("createdAt"), record.created_at);
    assert!(s("createdAt").ends_with('Z') && s("createdAt").contains('T'));
    assert_eq!(s("origin"), "harmonix");
    assert_eq!(s("actionType"), "apply");
    assert_eq!(s("actionName"), "opa-payments-dev");
    assert_eq!(s("initiatedBy"), "alice");
    assert_eq!(s("owner"), "group:payments");
    assert_eq!(
        s("assumedRole"),
        "arn:aws:iam::123456789012:role/opa-provisioning"
    );
    assert_eq!(s("targetAccount"), "123456789012");
    assert_eq!(s("targetRegion"), "us-east-1");
    assert_eq!(s("prefix"), "opa");
    assert_eq!(s("providerName"), "payments-dev");
    assert_eq!(s("status"), "SUCCESS");
    assert_eq!(s("message"), "2 stacks deployed");
    let request: serde_json::Value = serde_json::from_str(&s("request")).expect("request is JSON");
    assert_eq!(
        request,
        json!({ "spec": "dev.yaml", "credentials": "***", "sessionToken": "***" })
    );
    assert_eq!(got.len(), 15, "exactly the Harmonix attributes: {got:?}");

    // A second record (fresh id) is a second item.
    let mut started = AuditRecord::new("destroy", "opa-payments-dev");
    started.status = AuditStatus::Started;
    writer.write(table, &started).await.expect("second record");
    let count = client
        .scan()
        .table_name(table)
        .send()
        .await
        .expect("Scan")
        .count;
    assert_eq!(count, 2);

    // A missing table is an error naming the call and the table.
    let err = writer
        .write("no-such-audit", &started)
        .await
        .expect_err("missing table");
    assert_eq!(
        err.to_string(),
        "DynamoDB PutItem on audit table `no-such-audit` failed (ResourceNotFoundException)"
    );
}
