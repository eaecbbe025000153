use agentd_core::usage::{NewUsage, UsageQuery};
use agentd_core::{ProjectId, UserId};
use agentd_store::Database;
use time::macros::{date, datetime};

use crate::contract;

fn attempt(principal: UserId, at: time::OffsetDateTime) -> NewUsage {
    NewUsage {
        at,
        run_id: Some(uuid::Uuid::now_v7()),
        conversation_id: None,
        principal,
        agent_type: "code".into(),
        project_id: None,
        provider: "openai".into(),
        model: "gpt-4o".into(),
        input_tokens: 1_000,
        cached_input_tokens: 200,
        cache_write_tokens: 0,
        output_tokens: 100,
        reasoning_tokens: 10,
        cost_nano_usd: Some(3_000_000),
        latency_ms: 1_200,
        ttft_ms: Some(300),
        outcome: "ok".into(),
        cache_hit: false,
        streamed: true,
    }
}

fn days(from: time::Date, to: time::Date, principal: Option<UserId>) -> UsageQuery {
    UsageQuery { principal, from, to }
}

async fn attempts_are_summed_per_day_model_agent_type_and_project(db: &Database) {
    let store = db.store();
    let alice = UserId::new();
    let project = ProjectId::new();
    let morning = datetime!(2026-11-20 08:00 UTC);
    store.record_usage(attempt(alice, morning)).await.unwrap();
    store
        .record_usage(NewUsage {
            outcome: "rate_limited".into(),
            input_tokens: 0,
            cached_input_tokens: 0,
            output_tokens: 0,
            reasoning_tokens: 0,
            cost_nano_usd: Some(0),
            ..attempt(alice, morning)
        })
        .await
        .unwrap();
    store
        .record_usage(NewUsage {
            cache_hit: true,
            cost_nano_usd: Some(0),
            input_tokens: 0,
            cached_input_tokens: 0,
            output_tokens: 0,
            reasoning_tokens: 0,
            ..attempt(alice, morning)
        })
        .await
        .unwrap();
    store
        .record_usage(NewUsage { project_id: Some(project), ..attempt(alice, morning) })
        .await
        .unwrap();
    store
        .record_usage(NewUsage {
            model: "gpt-4o-mini".into(),
            cost_nano_usd: None,
            ..attempt(alice, morning)
        })
        .await
        .unwrap();
    store.record_usage(attempt(alice, datetime!(2026-11-21 23:59:59 UTC))).await.unwrap();

    let buckets = store
        .usage_summary(&days(date!(2026 - 11 - 20), date!(2026 - 11 - 21), Some(alice)))
        .await
        .unwrap();
    assert_eq!(buckets.len(), 4, "{buckets:#?}");
    let first = &buckets[0];
    assert_eq!(
        (first.day, first.model.as_str(), first.project_id),
        (date!(2026 - 11 - 20), "gpt-4o", None)
    );
    assert_eq!((first.attempts, first.failures, first.cache_hits), (3, 1, 1));
    assert_eq!(
        (
            first.input_tokens,
            first.cached_input_tokens,
            first.output_tokens,
            first.reasoning_tokens
        ),
        (1_000, 200, 100, 10)
    );
    assert_eq!((first.cost_nano_usd, first.unpriced_attempts), (3_000_000, 0));
    assert_eq!(buckets[1].project_id, Some(project));
    let mini = &buckets[2];
    assert_eq!(
        (mini.model.as_str(), mini.cost_nano_usd, mini.unpriced_attempts),
        ("gpt-4o-mini", 0, 1)
    );
    assert_eq!(buckets[3].day, date!(2026 - 11 - 21));
}

async fn a_principal_sees_only_their_usage_and_admins_see_everyone(db: &Database) {
    let store = db.store();
    let (alice, bob) = (UserId::new(), UserId::new());
    let at = datetime!(2026-11-20 12:00 UTC);
    store.record_usage(attempt(alice, at)).await.unwrap();
    store.record_usage(attempt(bob, at)).await.unwrap();
    store.record_usage(attempt(bob, at)).await.unwrap();
    let day = date!(2026 - 11 - 20);
    let of_alice = store.usage_summary(&days(day, day, Some(alice))).await.unwrap();
    assert_eq!(of_alice.iter().map(|b| b.attempts).sum::<u64>(), 1);
    let everyone = store.usage_summary(&days(day, day, None)).await.unwrap();
    assert_eq!(everyone.iter().map(|b| b.attempts).sum::<u64>(), 3);
}

async fn days_outside_the_range_are_left_out(db: &Database) {
    let store = db.store();
    let alice = UserId::new();
    store.record_usage(attempt(alice, datetime!(2026-11-19 23:59:59.999999 UTC))).await.unwrap();
    store.record_usage(attempt(alice, datetime!(2026-11-20 00:00 UTC))).await.unwrap();
    store.record_usage(attempt(alice, datetime!(2026-11-21 00:00 UTC))).await.unwrap();
    let day = date!(2026 - 11 - 20);
    let buckets = store.usage_summary(&days(day, day, Some(alice))).await.unwrap();
    assert_eq!(buckets.len(), 1);
    assert_eq!((buckets[0].day, buckets[0].attempts), (day, 1));
}

contract!(
    usage: attempts_are_summed_per_day_model_agent_type_and_project,
    a_principal_sees_only_their_usage_and_admins_see_everyone,
    days_outside_the_range_are_left_out,
);
