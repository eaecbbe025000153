use agentd_core::usage::UsageQuery;
use agentd_llm::config::ModelSettings;
use agentd_llm::{ChatResponse, LlmClient, Price, StreamEvent, Usage};
use agentd_store::Backend;
use agentd_test_support::TestDatabase;
use agentd_test_support::llm::{FakeUsage, Protocol, Reply};
use futures::StreamExt;

use crate::{ctx, harness, hello};

const REPORTED: FakeUsage =
    FakeUsage { input: 1_000, cached: 400, cache_write: 100, output: 50, reasoning: 20 };

async fn answer(protocol: Protocol, stream: bool) -> ChatResponse {
    let h = harness(&[protocol], |_, _| {}).await;
    let reply = Reply::text("counted").with_usage(REPORTED);
    if stream {
        h.fake(0).push([reply.streamed()]);
        let items: Vec<_> = h.router.chat_stream(hello(), &ctx()).await.unwrap().collect().await;
        match items.last() {
            Some(Ok(StreamEvent::Completed(r))) => r.clone(),
            other => panic!("{other:?}"),
        }
    } else {
        h.fake(0).push([reply]);
        h.router.chat(hello(), &ctx()).await.unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn usage_is_normalised_per_provider_with_cached_tokens_counted_once() {
    // The same tokens, reported in each protocol's terms (see the fake's renderer):
    // OpenAI and Gemini include cached tokens in the prompt count, Anthropic reports them apart;
    // Anthropic folds reasoning into output, Gemini reports thoughts apart.
    let expected = [
        (
            Protocol::Openai,
            Usage {
                input_tokens: 1_400,
                cached_input_tokens: 400,
                cache_write_tokens: 0,
                output_tokens: 70,
                reasoning_tokens: 20,
            },
        ),
        (
            Protocol::Anthropic,
            Usage {
                input_tokens: 1_500,
                cached_input_tokens: 400,
                cache_write_tokens: 100,
                output_tokens: 70,
                reasoning_tokens: 0,
            },
        ),
        (
            Protocol::Gemini,
            Usage {
                input_tokens: 1_400,
                cached_input_tokens: 400,
                cache_write_tokens: 0,
                output_tokens: 70,
                reasoning_tokens: 20,
            },
        ),
    ];
    for (protocol, usage) in expected {
        for stream in [false, true] {
            assert_eq!(
                answer(protocol, stream).await.usage,
                usage,
                "{protocol:?}, stream: {stream}"
            );
        }
    }
}

fn price(input: &str, output: &str, cached: &str) -> Price {
    Price {
        input: input.parse().unwrap(),
        output: output.parse().unwrap(),
        cached_input: Some(cached.parse().unwrap()),
        cache_write: None,
    }
}

#[tokio::test(start_paused = true)]
async fn each_attempt_is_recorded_with_its_cost_and_unpriced_models_have_none() {
    let h = harness(&[Protocol::Openai, Protocol::Anthropic], |s, _| {
        s.breaker.consecutive_failures = 10;
        s.models.insert(
            "p0/m".into(),
            ModelSettings { context_window: None, price: Some(price("2.5", "10", "1.25")) },
        );
    })
    .await;
    h.fake(0).push([Reply::status(500), Reply::text("priced").with_usage(REPORTED)]);
    let mut context = ctx();
    context.run_id = Some(uuid::Uuid::now_v7());
    context.project_id = Some(agentd_core::ProjectId::new());
    h.router.chat(hello(), &context).await.unwrap();
    let records = h.records().await;
    assert_eq!(records.len(), 2);
    assert_eq!((records[0].outcome.as_str(), records[1].outcome.as_str()), ("server_error", "ok"));
    let ok = &records[1];
    assert_eq!(
        (ok.principal, ok.run_id, ok.project_id),
        (context.principal, context.run_id, context.project_id)
    );
    assert_eq!(
        (ok.provider.as_str(), ok.model.as_str(), ok.agent_type.as_str()),
        ("p0", "m", "code")
    );
    // (1000 uncached × 2.5 + 400 cached × 1.25 + 70 output × 10) / 1M = 0.0037 USD.
    assert_eq!(ok.cost_nano_usd, Some(3_700_000));
    assert_eq!((ok.input_tokens, ok.cached_input_tokens, ok.output_tokens), (1_400, 400, 70));

    // p1/m has no price: unpriced, not free.
    let h = harness(&[Protocol::Anthropic], |_, _| {}).await;
    h.fake(0).push([Reply::text("unpriced")]);
    h.router.chat(hello(), &ctx()).await.unwrap();
    assert_eq!(h.records().await[0].cost_nano_usd, None);
}

#[tokio::test]
async fn the_ledger_writes_every_attempt_to_the_store() {
    let database = TestDatabase::of(Backend::Sqlite).await.unwrap();
    let db = database.open().await;
    let store: std::sync::Arc<dyn agentd_core::UsageStore> = db.store();
    let ledger = agentd_llm::UsageLedger::spawn(store.clone());
    let h = harness(&[Protocol::Gemini], |_, _| {}).await;
    let router = agentd_llm::LlmRouter::builder({
        let mut s = agentd_llm::LlmSettings::default();
        let mut p = agentd_llm::ProviderSettings::new(agentd_llm::ProviderKind::Gemini);
        p.base_url = Some(h.fake(0).base_url());
        s.providers.insert("g".into(), p);
        s.default_model = Some("g/gemini-test".into());
        s
    })
    .ledger(ledger.clone())
    .build()
    .unwrap();
    h.fake(0).push([Reply::text("stored").with_usage(REPORTED)]);
    let context = ctx();
    router.chat(hello(), &context).await.unwrap();
    ledger.flush().await;
    let today = time::OffsetDateTime::now_utc().date();
    let buckets = store
        .usage_summary(&UsageQuery {
            principal: Some(context.principal),
            from: today.previous_day().unwrap(),
            to: today.next_day().unwrap(),
        })
        .await
        .unwrap();
    assert_eq!(buckets.len(), 1);
    assert_eq!(
        (buckets[0].model.as_str(), buckets[0].attempts, buckets[0].input_tokens),
        ("gemini-test", 1, 1_400)
    );
    assert_eq!(buckets[0].unpriced_attempts, 1);
}
