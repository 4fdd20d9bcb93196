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
    env.assert_audit_clean().await;
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
    env.assert_audit_clean().await;
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
    env.assert_audit_clean().await;
}

/// A table with the program on (defaults) and codes for `members`.
async fn program_on(members: &[&str]) -> (TestEnv, std::collections::HashMap<String, String>) {
    let env = TestEnv::new().await;
    let on = Program {
        enabled: true,
        ..Program::default()
    };
    env.app
        .store
        .put_referral_program(on, at("2026-11-20T00:00:00Z"))
        .await
        .unwrap();
    let mut codes = std::collections::HashMap::new();
    for m in members {
        let code = env
            .app
            .store
            .referral_code(&e2e::user(m), at("2026-11-20T00:00:00Z"))
            .await
            .unwrap();
        codes.insert((*m).to_owned(), code);
    }
    (env, codes)
}

const NOW: &str = "2026-11-20T08:00:00Z";

async fn claim(env: &TestEnv, who: &str, code: &str) -> Result<String, shared::Error> {
    env.app
        .store
        .claim_referral(&e2e::user(who), code, None, at(NOW))
        .await
}

fn refusal(result: Result<String, shared::Error>) -> shared::domain::referrals::Refusal {
    match result {
        Err(shared::Error::Domain(shared::domain::DomainError::Referral(r))) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn balance(env: &TestEnv, who: &str) -> i64 {
    env.app
        .store
        .account(&e2e::user(who), at(NOW))
        .await
        .unwrap()
        .balance
}

#[tokio::test]
async fn a_claim_pays_the_invitee_once_and_the_rules_refuse_the_rest() {
    use shared::domain::referrals::Refusal;
    let (env, codes) = program_on(&["ann", "bob", "cy"]).await;
    // Bob claims Ann's code (typed loosely): paid 100, the referral pending.
    let loose = format!(" {}-{} ", &codes["ann"][..4], &codes["ann"][4..].to_lowercase());
    let answer: serde_json::Value = serde_json::from_str(&claim(&env, "bob", &loose).await.unwrap()).unwrap();
    assert_eq!(answer["invitee_reward"], 100);
    assert_eq!(answer["status"], "pending");
    assert_eq!(answer["balance"], 100);
    assert_eq!(balance(&env, "bob").await, 100);
    assert_eq!(
        balance(&env, "ann").await,
        0,
        "the referrer waits for the qualifying action"
    );
    // Again, or another code: the first code wins, forever; nothing more is paid.
    assert_eq!(
        refusal(claim(&env, "bob", &codes["ann"]).await),
        Refusal::AlreadyReferred
    );
    assert_eq!(
        refusal(claim(&env, "bob", &codes["cy"]).await),
        Refusal::AlreadyReferred
    );
    assert_eq!(balance(&env, "bob").await, 100);
    // Own code; a cycle (Ann has an invitee: she can no longer claim); an unknown code.
    assert_eq!(refusal(claim(&env, "cy", &codes["cy"]).await), Refusal::OwnCode);
    assert_eq!(refusal(claim(&env, "ann", &codes["bob"]).await), Refusal::Cycle);
    assert!(matches!(
        claim(&env, "cy", "ZZZZZZZZ").await,
        Err(shared::Error::Domain(shared::domain::DomainError::NotFound(_)))
    ));
    // The window: a member first seen 8 days ago cannot claim.
    env.app
        .store
        .post(
            &e2e::user("old"),
            shared::domain::ledger::Posting::new(1, shared::domain::ledger::Reason::Grant, "x", "seed#old"),
            at("2026-11-12T07:59:59Z"),
        )
        .await
        .unwrap();
    assert_eq!(
        refusal(claim(&env, "old", &codes["cy"]).await),
        Refusal::WindowPassed
    );
    // The program off: no new claims.
    env.app
        .store
        .put_referral_program(Program::default(), at(NOW))
        .await
        .unwrap();
    assert_eq!(
        refusal(claim(&env, "dee", &codes["cy"]).await),
        Refusal::ProgramOff
    );
    let page = env
        .app
        .store
        .my_referrals(&e2e::user("ann"), 20, None, at(NOW))
        .await
        .unwrap();
    assert_eq!(
        (page.claimed, page.rewards_pending, page.rewards_paid),
        (1, 100, 0)
    );
    assert_eq!(page.invitees.len(), 1);
    let bobs = env
        .app
        .store
        .my_referrals(&e2e::user("bob"), 20, None, at(NOW))
        .await
        .unwrap();
    assert_eq!(bobs.referred_by.as_deref(), Some("a***"));
    env.assert_audit_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_claims_end_in_one_referral_and_no_cycle() {
    use shared::domain::referrals::Refusal;
    // One invitee claiming two codes at once, ten times over: exactly one wins each time.
    let (env, codes) = program_on(&["a", "b"]).await;
    let env = Arc::new(env);
    for round in 0..10 {
        let who = format!("i{round}");
        let results = e2e::concurrently(2, {
            let (env, codes, who) = (env.clone(), codes.clone(), who.clone());
            move |i| {
                let (env, who) = (env.clone(), who.clone());
                let code = codes[if i == 0 { "a" } else { "b" }].clone();
                async move { claim(&env, &who, &code).await.is_ok() }
            }
        })
        .await;
        assert_eq!(results.iter().filter(|ok| **ok).count(), 1, "round {round}");
        assert_eq!(balance(&env, &who).await, 100);
    }
    // Two opposite claims at once (x claims y's code, y claims x's): one wins.
    for round in 0..10 {
        let (x, y) = (format!("x{round}"), format!("y{round}"));
        let mut pair = std::collections::HashMap::new();
        for m in [&x, &y] {
            let code = env.app.store.referral_code(&e2e::user(m), at(NOW)).await.unwrap();
            pair.insert(m.clone(), code);
        }
        let results = e2e::concurrently(2, {
            let (env, pair, x, y) = (env.clone(), pair.clone(), x.clone(), y.clone());
            move |i| {
                let env = env.clone();
                let (who, code) = if i == 0 {
                    (x.clone(), pair[&y].clone())
                } else {
                    (y.clone(), pair[&x].clone())
                };
                async move { claim(&env, &who, &code).await }
            }
        })
        .await;
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {results:?}");
        for r in results.into_iter().filter(|r| r.is_err()) {
            assert!(matches!(refusal(r), Refusal::Cycle | Refusal::AlreadyReferred));
        }
    }
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn a_three_cycle_never_closes_in_any_order() {
    use shared::domain::referrals::Refusal;
    // Claims a→b (b claims a's code), b→c, c→a, in each of the 6 orders: at most two succeed and
    // the refused one is a cycle or "already referred".
    let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    for order in orders {
        let (env, codes) = program_on(&["a", "b", "c"]).await;
        let claims = [("b", "a"), ("c", "b"), ("a", "c")];
        let mut ok = 0;
        for i in order {
            let (who, whose) = claims[i];
            match claim(&env, who, &codes[whose]).await {
                Ok(_) => ok += 1,
                Err(e) => assert!(matches!(
                    refusal(Err(e)),
                    Refusal::Cycle | Refusal::AlreadyReferred
                )),
            }
        }
        assert_eq!(ok, 2, "{order:?}");
        env.assert_audit_clean().await;
    }
}

#[tokio::test]
async fn claims_through_the_api_answer_problem_types_and_replay_by_key() {
    let (env, codes) = program_on(&["ann", "cy"]).await;
    let api = env.spawn_api().await;
    let claim = |who: &'static str, code: String, key: Option<&'static str>| {
        let api = &api;
        async move {
            let mut b = api
                .request(reqwest::Method::POST, "/v1/referrals/claim")
                .bearer_auth(member_token(who))
                .header("x-debug-now", NOW)
                .json(&serde_json::json!({ "code": code }));
            if let Some(key) = key {
                b = b.header("idempotency-key", key);
            }
            api.send(b).await
        }
    };
    let first = claim("bob", codes["ann"].clone(), Some("k1")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["referrer"], "a***");
    // A double tap with the key: the same answer, paid once.
    let again = claim("bob", codes["ann"].clone(), Some("k1")).await;
    assert_eq!(again.body, first.body);
    claim("bob", codes["cy"].clone(), Some("k1"))
        .await
        .assert_problem(409, "idempotency-key-reused");
    claim("bob", codes["cy"].clone(), None)
        .await
        .assert_problem(409, "already-referred");
    claim("cy", codes["cy"].clone(), None)
        .await
        .assert_problem(409, "own-referral-code");
    claim("ann", codes["cy"].clone(), None)
        .await
        .assert_problem(409, "referral-cycle");
    claim("dee", "ZZZZZZZZ".into(), None)
        .await
        .assert_problem(404, "not-found");
    claim("dee", "x".repeat(33), None)
        .await
        .assert_problem(422, "invalid-value");
    assert_eq!(balance(&env, "bob").await, 100);
    let page = api
        .get("/v1/referrals/me?limit=1", Some(&member_token("ann")), Some(NOW))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["claimed"], 1);
    assert_eq!(page.body["invitees"][0]["name"], "b***");
    assert_eq!(page.body["invitees"][0]["status"], "pending");
    api.get("/v1/referrals/me?limit=0", Some(&member_token("ann")), Some(NOW))
        .await
        .assert_problem(422, "invalid-value");
    api.get(
        "/v1/referrals/me?cursor=nope",
        Some(&member_token("ann")),
        Some(NOW),
    )
    .await
    .assert_problem(400, "invalid-request");
    // Admin only.
    api.get("/v1/admin/referral-program", Some(&member_token("ann")), None)
        .await
        .assert_problem(403, "forbidden");
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn my_invitees_page_newest_first() {
    let (env, codes) = program_on(&["host"]).await;
    for (i, who) in ["guest1", "guest2", "guest3"].iter().enumerate() {
        let now = at(&format!("2026-11-20T0{}:00:00Z", i + 1));
        env.app
            .store
            .claim_referral(&e2e::user(who), &codes["host"], None, now)
            .await
            .unwrap();
    }
    let api = env.spawn_api().await;
    let host = member_token("host");
    let first = api.get("/v1/referrals/me?limit=2", Some(&host), Some(NOW)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let names = |page: &serde_json::Value| -> Vec<String> {
        page["invitees"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&first.body), ["g***t3", "g***t2"]);
    assert_eq!(first.body["invitees"][0]["claimed_at"], "2026-11-20T03:00:00Z");
    assert_eq!(first.body["claimed"], 3);
    assert_eq!(first.body["rewards_pending"], 300);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = api
        .get(
            &format!("/v1/referrals/me?limit=2&cursor={cursor}"),
            Some(&host),
            Some(NOW),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(names(&second.body), ["g***t1"]);
    assert_eq!(second.body["invitees"][0]["claimed_at"], "2026-11-20T01:00:00Z");
    assert_eq!(second.body["next_cursor"], serde_json::Value::Null);
    // Another member's cursor pages only their own (empty) list.
    let other = api
        .get(
            &format!("/v1/referrals/me?cursor={cursor}"),
            Some(&member_token("guest1")),
            Some(NOW),
        )
        .await;
    assert_eq!(other.body["invitees"].as_array().unwrap().len(), 0);
    assert_eq!(other.body["referred_by"], "h***", "{}", other.body);
    env.assert_audit_clean().await;
}
