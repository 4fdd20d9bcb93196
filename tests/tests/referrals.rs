//! Referrals against DynamoDB Local (first part of the feature): the program's configuration and
//! members' codes — made on first need by one creator, one code however many first calls race,
//! stable, looked up however it is typed.

use std::sync::Arc;

use e2e::{TestEnv, member_token};
use shared::domain::referrals::{Program, Qualifying};

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap()
}

#[tokio::test]
async fn the_program_is_off_until_put_and_put_programs_are_checked() {
    let env = TestEnv::new().await;
    let store = &env.app.store;
    let off = store.referral_program().await.unwrap();
    assert!(!off.enabled);
    let bad = Program {
        monthly_cap: 500,
        ..Program::default()
    };
    assert!(
        store
            .put_referral_program(bad, at("2026-11-23T00:00:00Z"))
            .await
            .is_err()
    );
    let program = Program {
        qualifying: Qualifying::FirstCheckin,
        enabled: true,
        ..Program::default()
    };
    let stored = store
        .put_referral_program(program.clone(), at("2026-11-23T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(store.referral_program().await.unwrap(), program);
    let again = store
        .put_referral_program(program, at("2026-11-23T00:01:00Z"))
        .await
        .unwrap();
    assert_eq!(again.version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_calls_make_one_code() {
    let env = TestEnv::new().await;
    let on = Program {
        enabled: true,
        ..Program::default()
    };
    env.app
        .store
        .put_referral_program(on, at("2026-11-23T00:00:00Z"))
        .await
        .unwrap();
    let api = Arc::new(env.spawn_api().await);
    let store = env.app.store.clone();
    // Ten home screens and ten direct calls of the creator, all at once, for one new member.
    let codes = e2e::concurrently(20, move |i| {
        let (api, store) = (api.clone(), store.clone());
        async move {
            if i % 2 == 0 {
                let home = api
                    .get(
                        "/v1/me",
                        Some(&member_token("newbie")),
                        Some("2026-11-23T09:00:00Z"),
                    )
                    .await;
                assert_eq!(home.status, 200, "{}", home.body);
                home.body["referral_code"].as_str().unwrap().to_owned()
            } else {
                store
                    .referral_code(&e2e::user("newbie"), at("2026-11-23T09:00:00Z"))
                    .await
                    .unwrap()
            }
        }
    })
    .await;
    assert!(codes.iter().all(|c| *c == codes[0]), "{codes:?}");
    let code = &codes[0];
    assert_eq!(code.len(), 8);
    // One code item, one owner: the member; looked up however it is typed.
    let typed = format!("{}-{} ", &code[..4], &code[4..]).to_lowercase();
    let owner = env.app.store.referral_code_owner(&typed).await.unwrap();
    assert_eq!(owner, Some(e2e::user("newbie")));
    assert_eq!(
        env.app.store.referral_code_owner("not a code").await.unwrap(),
        None
    );
    assert_eq!(env.app.store.referral_code_owner("ZZZZZZZZ").await.unwrap(), None);
    let scan = env
        .app
        .store
        .client()
        .scan()
        .table_name(&env.table)
        .filter_expression("begins_with(pk, :p)")
        .expression_attribute_values(
            ":p",
            aws_sdk_dynamodb::types::AttributeValue::S("REFCODE#".into()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(scan.count(), 1, "one code item");
    // Stable: a later home screen shows the same code.
    let later = env.spawn_api().await;
    let home = later
        .get(
            "/v1/me",
            Some(&member_token("newbie")),
            Some("2026-11-30T09:00:00Z"),
        )
        .await;
    assert_eq!(home.body["referral_code"], code.as_str());
}

#[tokio::test]
async fn no_code_is_made_while_the_program_is_off() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let home = api
        .get(
            "/v1/me",
            Some(&member_token("quiet")),
            Some("2026-11-23T09:00:00Z"),
        )
        .await;
    assert_eq!(home.status, 200);
    assert_eq!(home.body["referral_code"], serde_json::Value::Null);
}
