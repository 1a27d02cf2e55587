//! The mailbox contract, run against Valkey Streams (one server, and a three-primary
//! Valkey Cluster) and the embedded mailbox (on SQLite and on PostgreSQL). Each test
//! names the pitfall it guards against.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stella_test_harness as common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use stella_store::mailbox::{ConsumerName, Envelope, Role};
use stella_store::{StoreError, TenantId};

use common::TestMailbox;

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod valkey {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(mailbox) = crate::common::valkey_mailbox().await else { return };
                    super::$test(&mailbox).await;
                    mailbox.finish().await;
                }
            )*
        }
        mod valkey_cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(mailbox) = crate::common::valkey_cluster_mailbox().await else { return };
                    super::$test(&mailbox).await;
                    mailbox.finish().await;
                }
            )*
        }
        mod embedded_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = crate::common::sqlite().await;
                    let mailbox = crate::common::embedded_mailbox(db).await;
                    super::$test(&mailbox).await;
                    mailbox.finish().await;
                }
            )*
        }
        mod embedded_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(db) = crate::common::postgres().await else { return };
                    let mailbox = crate::common::embedded_mailbox(db).await;
                    super::$test(&mailbox).await;
                    mailbox.finish().await;
                }
            )*
        }
    };
}

conformance!(
    sent_entries_are_received_once_and_gone_after_ack,
    unacked_entries_are_taken_over_after_their_consumer_dies,
    a_restarted_consumer_drains_its_own_pending_entries_first,
    a_huge_backlog_does_not_starve_another_tenant,
    delayed_entries_wait_until_due,
    duplicate_sends_are_dropped,
    retry_later_acks_and_schedules_the_next_attempt_atomically,
    dead_letters_keep_their_error_and_can_be_replayed_or_discarded,
    a_poison_entry_is_dead_lettered_after_max_deliveries_and_nothing_else_stalls,
    two_live_processes_cannot_share_a_consumer_name,
    touched_entries_are_not_taken_over,
    concurrent_consumers_never_receive_the_same_entry,
    acked_entries_leave_nothing_pending,
);

fn role() -> Role {
    Role::parse("worker").unwrap()
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

fn consumer(name: &str) -> ConsumerName {
    ConsumerName::parse(name).unwrap()
}

fn envelope(tenant_id: &str, key: &str, now: DateTime<Utc>) -> Envelope {
    Envelope::new(
        tenant(tenant_id),
        role(),
        "noop.run",
        json!({ "key": key }),
        key,
        now,
    )
}

fn keys(deliveries: &[stella_store::mailbox::Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| d.envelope.idempotency_key.clone())
        .collect()
}

async fn sent_entries_are_received_once_and_gone_after_ack(m: &TestMailbox) {
    let mb = m.mailbox.as_ref();
    let now = Utc::now();
    let sent: Vec<_> = (0..3)
        .map(|i| envelope("acme", &format!("k{i}"), now))
        .collect();
    assert_eq!(mb.send(&sent, now).await.unwrap(), 3);
    let stats = mb.stats(&role(), now).await.unwrap();
    assert_eq!((stats.ready, stats.pending), (3, 0));
    // The queue's age: seen 5 s later, the oldest ready entry has waited about 5 s (on
    // Valkey the server's clock stamped it when it was appended).
    let later = now + chrono::Duration::seconds(5);
    let aged = mb.stats(&role(), later).await.unwrap();
    assert!(
        (4_000..=7_000).contains(&aged.oldest_ready_ms),
        "oldest ready {} ms",
        aged.oldest_ready_ms
    );

    let got = mb
        .receive(&role(), &consumer("a"), 10, false, now)
        .await
        .unwrap();
    assert_eq!(keys(&got), ["k0", "k1", "k2"]);
    assert_eq!(got[0].envelope, sent[0]);
    assert!(got.iter().all(|d| d.deliveries == 1));
    let stats = mb.stats(&role(), now).await.unwrap();
    assert_eq!((stats.ready, stats.pending), (0, 3));
    // Nothing is ready any more: no age, however late one looks.
    assert_eq!(mb.stats(&role(), later).await.unwrap().oldest_ready_ms, 0);
    // A read-only holder (a console) sees the same through the `Inspect` capability
    // alone, upcast from the whole mailbox.
    let inspect: std::sync::Arc<dyn stella_store::mailbox::Inspect> = m.mailbox.clone();
    let seen = inspect.stats(&role(), now).await.unwrap();
    assert_eq!((seen.ready, seen.pending), (0, 3));
    assert!(mb
        .receive(&role(), &consumer("b"), 10, false, now)
        .await
        .unwrap()
        .is_empty());

    let receipts: Vec<_> = got.iter().map(|d| d.receipt.clone()).collect();
    mb.ack(&role(), &receipts).await.unwrap();
    let stats = mb.stats(&role(), now).await.unwrap();
    assert_eq!((stats.ready, stats.pending), (0, 0));
    assert!(mb
        .receive(&role(), &consumer("a"), 10, true, now)
        .await
        .unwrap()
        .is_empty());
}

async fn unacked_entries_are_taken_over_after_their_consumer_dies(m: &TestMailbox) {
    let mb = m.mailbox.as_ref();
    let now = Utc::now();
    mb.send(&[envelope("acme", "k", now)], now).await.unwrap();
    let first = mb
        .receive(&role(), &consumer("dies"), 10, false, now)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    // Not idle long enough yet: nobody takes it.
    let early = mb
        .claim_abandoned(
            &role(),
            &consumer("rescuer"),
            Duration::from_secs(60),
            10,
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(early.deliveries.is_empty());

    tokio::time::sleep(Duration::from_millis(60)).await;
    let later = Utc::now();
    let claimed = mb
        .claim_abandoned(
            &role(),
            &consumer("rescuer"),
            Duration::from_millis(50),
            10,
            later,
        )
        .await
        .unwrap();
    assert_eq!(keys(&claimed.deliveries), ["k"]);
    assert_eq!(claimed.deliveries[0].deliveries, 2);
    mb.ack(&role(), &[claimed.deliveries[0].receipt.clone()])
        .await
        .unwrap();
    assert_eq!(mb.stats(&role(), later).await.unwrap().pending, 0);
}

async fn a_restarted_consumer_drains_its_own_pending_entries_first(m: &TestMailbox) {
    let mb = m.mailbox.as_ref();
    let now = Utc::now();
    let batch: Vec<_> = (0..4)
        .map(|i| envelope("acme", &format!("k{i}"), now))
        .collect();
    mb.send(&batch, now).await.unwrap();
    let held = mb
        .receive(&role(), &consumer("w1"), 2, false, now)
        .await
        .unwrap();
    assert_eq!(keys(&held), ["k0", "k1"]);

    // The process restarts under the same name: its pending entries come back first,
    // and reading them does not hand out anything new.
    let pending = mb
        .receive(&role(), &consumer("w1"), 10, true, now)
        .await
        .unwrap();
    assert_eq!(keys(&pending), ["k0", "k1"]);
    assert_eq!(pending[0].receipt, held[0].receipt);
    assert!(pending.iter().all(|d| d.deliveries >= 1));
    let receipts: Vec<_> = pending.iter().map(|d| d.receipt.clone()).collect();
    mb.ack(&role(), &receipts).await.unwrap();
    let rest = mb
        .receive(&role(), &consumer("w1"), 10, false, now)
        .await
        .unwrap();
    assert_eq!(keys(&rest), ["k2", "k3"]);
}

async fn a_huge_backlog_does_not_starve_another_tenant(m: &TestMailbox) {
    let mb = m.mailbox.as_ref();
    let now = Utc::now();
    let backlog: Vec<_> = (0..2000)
        .map(|i| envelope("big", &format!("b{i}"), now))
        .collect();
    mb.send(&backlog, now).await.unwrap();
    mb.send(&[envelope("small", "s0", now)], now).await.unwrap();
    // Whose backlog it is: the busiest tenants, most first.
    let stats = mb.stats(&role(), now).await.unwrap();
    assert_eq!(
        stats.busiest,
        [(tenant("big"), 2000), (tenant("small"), 1)],
        "busiest tenants"
    );
    let batch = mb
        .receive(&role(), &consumer("w"), 16, false, now)
        .await
        .unwrap();
    assert_eq!(batch.len(), 16);
    assert!(
        keys(&batch).contains(&"s0".to_string()),
        "the small tenant's entry waited behind the backlog: {:?}",
        keys(&batch)
    );
    // Within a tenant, order is kept.
    let big: Vec<_> = keys(&batch)
        .into_iter()
        .filter(|k| k.starts_with('b'))
        .collect();
    let expected: Vec<_> = (0..big.len()).map(|i| format!("b{i}")).collect();
    assert_eq!(big, expected);
}

async fn delayed_entries_wait_until_due(m: &TestMailbox) {
    let mb = m.mailbox.as_ref();
    let now = Utc::now();
    let mut later = envelope("acme", "later", now);
    later.not_before = now + chrono::Duration::hours(1);
    mb.send(&[later.clone(), envelope("acme", "now", now)], now)
        .await
        .unwrap();
    mb.promote_due(&role(), now).await.unwrap();
    let got = mb
        .receive(&role(), &consumer("w"), 10, false, now)
        .await
        .unwrap();
    assert_eq!(keys(&got), ["now"]);
    assert_eq!(mb.stats(&role(), now).await.unwrap().delayed, 1);

    let due = now + chrono::Duration::hours(2);
    mb.promote_due(&role(), due).await.unwrap();
    let got = mb
        .receive(&role(), &consumer("w"), 10, false, due)
        .await
        .unwrap();
    assert_eq!(keys(&got), ["later"]);
    assert_eq!(got[0].envelope.not_before, later.not_before);
    assert_eq!(mb.stats(&role(), due).await.unwrap().delayed, 0);
}

async fn duplicate_sends_are_dropped(m: &TestMailbox) {
    let mb = m.mailbox.as_ref();
    let now = Utc::now();
    let original = envelope("acme", "k", now);
    assert_eq!(
        mb.send(std::slice::from_ref(&original), now).await.unwrap(),
        1
    );
    // The outbox relay crashed after sending and sends again: same key, same attempt.
    let mut again = envelope("acme", "k", now);
    assert_eq!(mb.send(&[again.clone()], now).await.unwrap(), 0);
    // The same key in another tenant is another message.
    assert_eq!(
        mb.send(&[envelope("globex", "k", now)], now).await.unwrap(),
        1
    );
    // The next attempt of the same message is new.
    again.attempt = 1;
    assert_eq!(mb.send(&[again], now).await.unwrap(), 1);
    let got = mb
        .receive(&role(), &consumer("w"), 10, false, now)
        .await
        .unwrap();
    assert_eq!(got.len(), 3);
}

async fn retry_later_acks_and_schedules_the_next_attempt_atomically(m: &TestMailbox) {
    let mb = m.mailbox.as_ref();
    let now = Utc::now();
    mb.send(&[envelope("acme", "k", now)], now).await.unwrap();
    let got = mb
        .receive(&role(), &consumer("w"), 10, false, now)
        .await
        .unwrap();
    let retry_at = now + chrono::Duration::seconds(30);
    let next = got[0].envelope.next_attempt(retry_at, now);
    mb.retry_later(&got[0], &next, now).await.unwrap();
    let stats = mb.stats(&role(), now).await.unwrap();
    assert_eq!((stats.ready, stats.pending, stats.delayed), (0, 0, 1));
    assert!(mb
        .receive(&role(), &consumer("w"), 10, false, now)
        .await
        .unwrap()
        .is_empty());

    let due = retry_at + chrono::Duration::seconds(1);
    mb.promote_due(&role(), due).await.unwrap();
    let again = mb
        .receive(&role(), &consumer("w"), 10, false, due)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].envelope.attempt, 1);
    assert_eq!(again[0].envelope.idempotency_key, "k");
    assert_eq!(again[0].deliveries, 1);
}

async fn dead_letters_keep_their_error_and_can_be_replayed_or_discarded(m: &TestMailbox) {
    let mb = m.mailbox.as_ref();
    let now = Utc::now();
    mb.send(
        &[envelope("acme", "a", now), envelope("acme", "b", now)],
        now,
    )
    .await
    .unwrap();
    let got = mb
        .receive(&role(), &consumer("w"), 10, false, now)
        .await
        .unwrap();
    for delivery in &got {
        mb.dead_letter(delivery, "handler failed 5 times: boom", now)
            .await
            .unwrap();
    }
    let stats = mb.stats(&role(), now).await.unwrap();
    assert_eq!((stats.ready, stats.pending, stats.dead), (0, 0, 2));
    let dead = mb.dead_letters(&role(), 10).await.unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].error, "handler failed 5 times: boom");
    assert_eq!(dead[0].envelope.idempotency_key, "a");
    assert_eq!(dead[0].deliveries, 1);

    mb.replay_dead_letter(&role(), &dead[0].id, now)
        .await
        .unwrap();
    mb.discard_dead_letter(&role(), &dead[1].id).await.unwrap();
    assert!(mb.dead_letters(&role(), 10).await.unwrap().is_empty());
    let replayed = mb
        .receive(&role(), &consumer("w"), 10, false, now)
        .await
        .unwrap();
    assert_eq!(keys(&replayed), ["a"]);
    assert_eq!(replayed[0].envelope.attempt, 0);

    let missing = mb
        .discard_dead_letter(&role(), &dead[1].id)
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");
    let missing = mb
        .replay_dead_letter(&role(), "no-such-id", now)
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");
}

async fn a_poison_entry_is_dead_lettered_after_max_deliveries_and_nothing_else_stalls(
    m: &TestMailbox,
) {
    let mb = m.mailbox.as_ref();
    let now = Utc::now();
    mb.send(&[envelope("acme", "poison", now)], now)
        .await
        .unwrap();
    // Every consumer that takes it dies (max_deliveries is 3 in these tests).
    let first = mb
        .receive(&role(), &consumer("c0"), 10, false, now)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let mut handed_out = 1;
    for round in 1..10 {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let claimed = mb
            .claim_abandoned(
                &role(),
                &consumer(&format!("c{round}")),
                Duration::from_millis(10),
                10,
                Utc::now(),
            )
            .await
            .unwrap();
        if claimed.deliveries.is_empty() {
            assert_eq!(claimed.dead_lettered.len(), 1);
            assert_eq!(claimed.dead_lettered[0].0.idempotency_key, "poison");
            break;
        }
        handed_out += 1;
    }
    assert_eq!(handed_out, 3, "handed out more often than max_deliveries");
    let dead = mb.dead_letters(&role(), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].deliveries, 4);
    assert!(
        dead[0].error.contains("delivered 4 times"),
        "{}",
        dead[0].error
    );
    assert_eq!(mb.stats(&role(), Utc::now()).await.unwrap().pending, 0);

    // The queue still flows.
    let later = Utc::now();
    mb.send(&[envelope("acme", "healthy", later)], later)
        .await
        .unwrap();
    let got = mb
        .receive(&role(), &consumer("c9"), 10, false, later)
        .await
        .unwrap();
    assert_eq!(keys(&got), ["healthy"]);
}

async fn two_live_processes_cannot_share_a_consumer_name(m: &TestMailbox) {
    let mb = m.mailbox.as_ref();
    let name = consumer("host-1-abc");
    mb.register(&name, "instance-1").await.unwrap();
    mb.register(&name, "instance-1").await.unwrap();
    let err = mb.register(&name, "instance-2").await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("host-1-abc"), "{err}");
    mb.renew(&name, "instance-1").await.unwrap();
    assert!(matches!(
        mb.renew(&name, "instance-2").await,
        Err(StoreError::Conflict(_))
    ));
    mb.unregister(&name, "instance-2").await.unwrap();
    assert!(matches!(
        mb.register(&name, "instance-2").await,
        Err(StoreError::Conflict(_))
    ));
    mb.unregister(&name, "instance-1").await.unwrap();
    mb.register(&name, "instance-2").await.unwrap();
}

async fn touched_entries_are_not_taken_over(m: &TestMailbox) {
    let mb = m.mailbox.as_ref();
    let now = Utc::now();
    mb.send(&[envelope("acme", "slow", now)], now)
        .await
        .unwrap();
    let got = mb
        .receive(&role(), &consumer("slow-worker"), 10, false, now)
        .await
        .unwrap();
    // Idle past min_idle, then touched: the touch must reset it. Wide margins keep a
    // loaded machine from letting the entry go idle again between touch and claim.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let at = Utc::now();
    mb.touch(
        &role(),
        &consumer("slow-worker"),
        &[got[0].receipt.clone()],
        at,
    )
    .await
    .unwrap();
    let claimed = mb
        .claim_abandoned(
            &role(),
            &consumer("thief"),
            Duration::from_millis(500),
            10,
            at,
        )
        .await
        .unwrap();
    assert!(
        claimed.deliveries.is_empty(),
        "a live, touched entry was taken over"
    );
}

async fn concurrent_consumers_never_receive_the_same_entry(m: &TestMailbox) {
    let now = Utc::now();
    let batch: Vec<_> = (0..300)
        .map(|i| envelope(["acme", "globex", "initech"][i % 3], &format!("k{i}"), now))
        .collect();
    m.mailbox.send(&batch, now).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let mb = m.mailbox.clone();
        tasks.push(tokio::spawn(async move {
            let me = consumer(&format!("w{w}"));
            let mut mine = Vec::new();
            loop {
                let got = mb
                    .receive(&role(), &me, 7, false, Utc::now())
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                let receipts: Vec<_> = got.iter().map(|d| d.receipt.clone()).collect();
                mine.extend(got.into_iter().map(|d| d.envelope.idempotency_key));
                mb.ack(&role(), &receipts).await.unwrap();
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 300, "some entries were received twice or never");
    assert_eq!(unique.len(), 300);
}

async fn acked_entries_leave_nothing_pending(m: &TestMailbox) {
    let mb = m.mailbox.as_ref();
    let now = Utc::now();
    for round in 0..5 {
        let batch: Vec<_> = (0..50)
            .map(|i| envelope("acme", &format!("r{round}-{i}"), now))
            .collect();
        mb.send(&batch, now).await.unwrap();
        let got = mb
            .receive(&role(), &consumer("w"), 100, false, now)
            .await
            .unwrap();
        let receipts: Vec<_> = got.iter().map(|d| d.receipt.clone()).collect();
        mb.ack(&role(), &receipts).await.unwrap();
    }
    let stats = mb.stats(&role(), now).await.unwrap();
    assert_eq!((stats.ready, stats.pending), (0, 0));
    if let Some((valkey, prefix)) = m.valkey() {
        // Acknowledged entries are deleted, not just acknowledged: the stream does not
        // grow, and no trimming can leave ghost entries in the pending list.
        let mut conn = valkey.conn().await.unwrap();
        let stream = if valkey.is_cluster() {
            format!("{prefix}:mb:{{worker}}:t:acme")
        } else {
            format!("{prefix}:mb:worker:t:acme")
        };
        // The stream exists (under the layout's name: tagged on a cluster) and is empty.
        let (exists, len): (u64, u64) = deadpool_redis::redis::pipe()
            .cmd("EXISTS")
            .arg(&stream)
            .cmd("XLEN")
            .arg(&stream)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!((exists, len), (1, 0), "{stream}");
    }
}
