//! The store goes away in the middle of a concurrent load — check-ins, spins, grants, joins and
//! referral claims from 16 callers at once — first refusing connections, then hanging them, and
//! comes back. While it is away every request answers 503 problem+json with `Retry-After`, within
//! the request's deadline (no hang, no panic, no 500); afterwards every refused request, sent
//! again as the app would (same idempotency key), completes, and the audit is clean.
//! (The switch sits in front of the shared DynamoDB Local; the emulator itself is never stopped.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::outage::{Mode, Outage};
use e2e::{TestApi, TestEnv, admin_token, member_token, service_token};
use reqwest::Method;
use serde_json::{Value, json};

const DEADLINE_MS: u64 = 1_500;
/// Callers at once (`LOAD_WORKERS`, default 16; `HEAVY=1 scripts/test.sh` runs 64).
fn workers() -> usize {
    std::env::var("LOAD_WORKERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(16)
}
const ROUNDS: usize = 24;

/// One request of the load, as the app or the shop's backend would send it (and send it again).
#[derive(Debug, Clone)]
struct Op {
    method: Method,
    path: String,
    token: String,
    key: String,
    now: String,
    body: Value,
}

#[derive(Debug, Clone)]
struct Answered {
    op: Op,
    started: Instant,
    took: Duration,
    status: u16,
    retry_after: bool,
    body: Value,
}

fn op(worker: usize, round: usize, codes: &[String]) -> Op {
    let member = format!("m-{worker}");
    // A day of the draw and the contest for each round: check-ins and daily spin limits move on.
    let day = chrono::DateTime::parse_from_rfc3339("2026-11-25T02:00:00Z").unwrap()
        + chrono::Duration::days(round as i64);
    let now = day.to_rfc3339();
    let key = format!("outage-{worker}-{round}");
    let (method, path, token, body) = match (worker + round) % 5 {
        0 => (
            Method::POST,
            "/v1/checkins".to_owned(),
            member_token(&member),
            json!({}),
        ),
        1 => (
            Method::POST,
            "/v1/draws/double12/spins".to_owned(),
            member_token(&member),
            json!({ "client_seed": key }),
        ),
        2 => (
            Method::POST,
            "/v1/admin/points/grants".to_owned(),
            service_token("shop"),
            json!({ "user_id": member, "order_amount_cents": 5_000, "reason": "order paid", "ref": key }),
        ),
        3 => (
            Method::POST,
            "/v1/contests/winter/entries".to_owned(),
            member_token(&member),
            json!({}),
        ),
        _ => (
            Method::POST,
            "/v1/referrals/claim".to_owned(),
            member_token(&format!("n-{worker}-{round}")),
            json!({ "code": codes[worker] }),
        ),
    };
    Op {
        method,
        path,
        token,
        key,
        now,
        body,
    }
}

async fn send(api: &TestApi, op: &Op) -> Answered {
    let started = Instant::now();
    let b = api
        .request(op.method.clone(), &op.path)
        .bearer_auth(&op.token)
        .header("idempotency-key", &op.key)
        .header("x-debug-now", &op.now)
        .json(&op.body);
    let reply = api.send(b).await;
    Answered {
        op: op.clone(),
        started,
        took: started.elapsed(),
        status: reply.status,
        retry_after: reply.headers.get("retry-after").is_some(),
        body: reply.body,
    }
}

async fn setup(api: &TestApi) -> Vec<String> {
    let admin = admin_token("ops");
    let at = "2026-11-23T08:00:00Z";
    let r = api
        .send_json(
            Method::PUT,
            "/v1/admin/draws/double12",
            &admin,
            at,
            &e2e::story::event_body("put-v1-admin-draws-draw_id"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut contest = e2e::story::event_body("put-v1-admin-contests-contest_id");
    contest["ends_at"] = json!("2026-12-25T00:00:00+08:00");
    let r = api
        .send_json(Method::PUT, "/v1/admin/contests/winter", &admin, at, &contest)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api
        .send_json(
            Method::PUT,
            "/v1/admin/referral-program",
            &admin,
            at,
            &e2e::story::event_body("put-v1-admin-referral-program"),
        )
        .await;
    assert!(r.status < 300, "{}", r.body);
    let mut codes = Vec::new();
    for worker in 0..workers() {
        // The home screen makes the code on a first need; when that write fails (a lost answer
        // the SDK gave up on) the screen is served without it, and the next launch makes it.
        let mut code = None;
        for _ in 0..5 {
            let me = api
                .get("/v1/me", Some(&member_token(&format!("m-{worker}"))), Some(at))
                .await;
            code = me.body["referral_code"].as_str().map(str::to_owned);
            if code.is_some() {
                break;
            }
        }
        codes.push(code.expect("a referral code within five home screens"));
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_mid_load_answers_503_in_time_and_the_load_completes_after() {
    let outage = Outage::start(&e2e::endpoint()).await;
    let env = TestEnv::with_endpoint(&outage.endpoint).await;
    let deadline = DEADLINE_MS.to_string();
    let table = env.table.clone();
    let config = shared::Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some(table.clone()),
        "CAMPAIGN_DEV_CLOCK" => Some("1".into()),
        "REQUEST_DEADLINE_MS" => Some(deadline.clone()),
        _ => None,
    })
    .unwrap();
    let app = shared::App::new(config, shared::store::local_client(&outage.endpoint));
    let api = e2e::spawn_api(app).await;
    let codes = Arc::new(setup(&api).await);

    let answers: Arc<Mutex<Vec<Answered>>> = Arc::default();
    let callers: Vec<_> = (0..workers())
        .map(|worker| {
            let (api, answers, codes) = (api.clone(), answers.clone(), codes.clone());
            tokio::spawn(async move {
                for round in 0..ROUNDS {
                    let answered = send(&api, &op(worker, round, &codes)).await;
                    answers.lock().unwrap().push(answered);
                    tokio::time::sleep(Duration::from_millis(120)).await;
                }
            })
        })
        .collect();
    // The load runs; then the store refuses for 3 s, comes back for a moment, hangs for 4 s.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let refused_from = Instant::now();
    outage.for_a_while(Mode::Refuse, Duration::from_secs(3)).await;
    let refused_until = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hung_from = Instant::now();
    outage.for_a_while(Mode::Hang, Duration::from_secs(4)).await;
    let hung_until = Instant::now();
    for w in callers {
        w.await.expect("a worker panicked");
    }

    let answers = answers.lock().unwrap().clone();
    let limit = Duration::from_millis(DEADLINE_MS + 1_000);
    let margin = Duration::from_millis(50);
    let (mut in_refusal, mut in_hang) = (0, 0);
    for a in &answers {
        let what = format!(
            "{} {} ({}): {} {}",
            a.op.method, a.op.path, a.op.key, a.status, a.body
        );
        assert!(a.status != 500 && a.status < 600, "{what}");
        assert!(
            a.took <= limit,
            "{what}: took {:?}, the deadline is {DEADLINE_MS} ms",
            a.took
        );
        if a.status == 503 {
            assert!(a.retry_after, "{what}: 503 without Retry-After");
            assert_eq!(a.body["type"], "unavailable", "{what}");
        }
        let within =
            |from: Instant, until: Instant| a.started >= from + margin && a.started + a.took <= until;
        if within(refused_from, refused_until) {
            in_refusal += 1;
            assert_eq!(a.status, 503, "{what}: while the store refused connections");
        }
        if within(hung_from, hung_until) {
            in_hang += 1;
            assert_eq!(a.status, 503, "{what}: while the store hung");
        }
    }
    assert!(
        in_refusal >= workers() / 2,
        "{in_refusal} requests fell wholly inside the refusal"
    );
    assert!(
        in_hang >= workers() / 2,
        "{in_hang} requests fell wholly inside the hang"
    );

    // The store is back: every refused request, sent again, completes. It is sent later, as an
    // app retries: on the dev clock, after every round (a member's time never runs backwards, so
    // the audit can tell a join from the earns before it by their instants; one second apart, as
    // two requests of one member are never at the same instant).
    let mut again = 0;
    for a in answers.iter().filter(|a| a.status == 503) {
        again += 1;
        let resent_at = chrono::DateTime::parse_from_rfc3339("2026-12-20T02:00:00Z").unwrap()
            + chrono::Duration::seconds(again as i64);
        let later = Op {
            now: resent_at.to_rfc3339(),
            ..a.op.clone()
        };
        let done = send(&api, &later).await;
        assert!(
            done.status < 500,
            "{} {} ({}) after the outage: {} {}",
            a.op.method,
            a.op.path,
            a.op.key,
            done.status,
            done.body
        );
    }
    assert!(again >= in_refusal + in_hang);
    eprintln!(
        "{} requests: {in_refusal} wholly inside the refusal, {in_hang} inside the hang, {again} answered 503 and sent again",
        answers.len()
    );
    // Something of each kind went through.
    for path in [
        "/v1/checkins",
        "/v1/draws/double12/spins",
        "/v1/admin/points/grants",
        "/v1/contests/winter/entries",
        "/v1/referrals/claim",
    ] {
        assert!(
            answers.iter().any(|a| a.op.path == path && a.status < 300),
            "no {path} succeeded"
        );
    }
    let report = env.assert_audit_clean().await;
    assert!(report.checked["draw.spins"] > 0 && report.checked["referral.paid"] > 0);
}

/// A third of the writes' answers are lost on their way back (the SDK sends them again), and then the app
/// loses every answer too and sends each request again with its idempotency key: spins, claims and
/// grants answer exactly their first answer, and nothing is paid, won or charged twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_answers_at_every_layer_pay_once() {
    use e2e::fault::{Fault, FaultProxy};
    let proxy = FaultProxy::start(
        e2e::endpoint(),
        Arc::new(|op, nth| {
            (matches!(op, "TransactWriteItems" | "PutItem" | "UpdateItem") && nth % 3 == 0)
                .then_some(Fault::LoseResponse)
        }),
    )
    .await;
    let env = TestEnv::with_endpoint(&proxy.endpoint).await;
    let api = e2e::spawn_api(env.app.clone()).await;
    let codes = Arc::new(setup(&api).await);
    let (workers, rounds) = (8, 10);
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (api, codes) = (api.clone(), codes.clone());
            tokio::spawn(async move {
                let mut answered = Vec::new();
                for round in 0..rounds {
                    // A 503 (the SDK gave up on lost answers) is sent again, as the app would.
                    let op = op(worker, round, &codes);
                    let mut answer = send(&api, &op).await;
                    for _ in 0..10 {
                        if answer.status != 503 {
                            break;
                        }
                        assert!(answer.retry_after, "{}: 503 without Retry-After", op.path);
                        answer = send(&api, &op).await;
                    }
                    answered.push(answer);
                }
                answered
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.extend(t.await.expect("a worker panicked"));
    }
    assert!(proxy.calls("TransactWriteItems") > 0);
    for first in &answers {
        assert!(
            first.status < 500,
            "{} ({}): {} {}",
            first.op.path,
            first.op.key,
            first.status,
            first.body
        );
        let again = send(&api, &first.op).await;
        let what = format!("{} ({}) sent again", first.op.path, first.op.key);
        assert_eq!(again.status, first.status, "{what}: {}", again.body);
        let replays_verbatim = ["/spins", "/grants", "/claim"]
            .iter()
            .any(|p| first.op.path.ends_with(p));
        if replays_verbatim && first.status < 300 {
            assert_eq!(again.body, first.body, "{what}");
        }
    }
    for path in [
        "/v1/draws/double12/spins",
        "/v1/admin/points/grants",
        "/v1/referrals/claim",
    ] {
        assert!(
            answers.iter().any(|a| a.op.path == path && a.status < 300),
            "no {path} succeeded"
        );
    }
    env.assert_audit_clean().await;
}
