//! The invariant audit (`campaign-ops audit`): clean on a table the API made, and each check
//! catches the corruption it is there for. The table is scanned once; each corruption is applied
//! to a copy of the scanned items (exactly what a scan of a corrupted table would return).

use e2e::TestEnv;
use e2e::story::{self, ALICE, BOB, CONTEST, DRAW, PURCHASE_KEY};
use ops::audit::{self, Item, Report};
use serde_json::{Value, json};

fn find<'a>(items: &'a mut [Item], pk: &str, sk: &str) -> &'a mut Item {
    items
        .iter_mut()
        .find(|i| i.pk.starts_with(pk) && i.sk.starts_with(sk))
        .unwrap_or_else(|| panic!("no item {pk} / {sk}"))
}

fn set(items: &mut [Item], pk: &str, sk: &str, field: &str, value: Value) {
    find(items, pk, sk).body[field] = value;
}

fn add(items: &mut [Item], pk: &str, sk: &str, field: &str, by: i64) {
    let item = find(items, pk, sk);
    let now = item.body[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} of {pk} / {sk}: {}", item.body));
    item.body[field] = json!(now + by);
}

fn remove(items: &mut Vec<Item>, pk: &str, sk: &str) {
    let at = items
        .iter()
        .position(|i| i.pk.starts_with(pk) && i.sk.starts_with(sk))
        .unwrap_or_else(|| panic!("no item {pk} / {sk}"));
    items.remove(at);
}

fn checks_found(report: &Report) -> Vec<&'static str> {
    let mut found: Vec<&'static str> = report.violations.iter().map(|v| v.check).collect();
    found.dedup();
    found
}

#[tokio::test]
async fn the_audit_is_clean_on_what_the_api_wrote_and_catches_each_corruption() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let told = story::tell(&env, &api).await;
    let items = audit::scan(env.app.store.client(), &env.table, 3, |_| {})
        .await
        .unwrap();
    let zone = env.app.config.business_zone;
    let clean = audit::audit(&items, zone);
    assert!(clean.is_clean(), "{}", clean.render());
    // Every check looked at something: none passes for want of subjects.
    for check in [
        "ledger.seq",
        "ledger.running",
        "ledger.balance",
        "ledger.guard",
        "ledger.once",
        "ledger.holds",
        "checkin.days",
        "reversal.total",
        "draw.spins",
        "draw.payment",
        "draw.stock",
        "contest.prize",
        "referral.paid",
        "referral.caps",
        "board.score",
        "contest.score",
        "board.counter",
    ] {
        assert!(
            clean.checked.get(check).copied().unwrap_or(0) > 0,
            "{check} checked nothing:\n{}",
            clean.render()
        );
    }

    // A reversal names the grant it takes back, so the audit never guesses between two callers'
    // grants with the same key.
    let refund = items
        .iter()
        .find(|i| i.pk == format!("USER#{BOB}") && i.body["reason"] == "reversal")
        .expect("bob's refund");
    assert_eq!(
        refund.body["reverses"],
        json!(format!("grant#service:{}#{PURCHASE_KEY}", story::SHOP))
    );
    let (alice, bob) = (format!("USER#{ALICE}"), format!("USER#{BOB}"));
    type Corrupt = Box<dyn Fn(&mut Vec<Item>)>;
    let cases: Vec<(&str, &str, Corrupt)> = vec![
        ("a balance off by one", "ledger.balance", {
            let bob = bob.clone();
            Box::new(move |i| add(i, &bob, "ACCOUNT", "balance", 1))
        }),
        ("a bucket that does not add up", "ledger.balance", {
            let bob = bob.clone();
            Box::new(move |i| add(i, &bob, "ACCOUNT", "debt", 5))
        }),
        ("a lost ledger entry", "ledger.seq", {
            let bob = bob.clone();
            Box::new(move |i| remove(i, &bob, "LEDGER#00000000000000000002"))
        }),
        ("a running balance that skips", "ledger.running", {
            let alice = alice.clone();
            Box::new(move |i| add(i, &alice, "LEDGER#00000000000000000001", "balance_after", 7))
        }),
        ("a guard gone", "ledger.guard", {
            Box::new(move |i| {
                remove(
                    i,
                    &format!("PAID#grant#service:{}#{PURCHASE_KEY}", story::SHOP),
                    "PAID",
                )
            })
        }),
        ("a business key paid twice", "ledger.once", {
            let alice = alice.clone();
            Box::new(move |i| {
                set(
                    i,
                    &alice,
                    "LEDGER#00000000000000000001",
                    "business_key",
                    json!(format!("grant#service:{}#{PURCHASE_KEY}", story::SHOP)),
                )
            })
        }),
        ("an open hold without its index", "ledger.holds", {
            let hold = told.bob_hold.clone();
            Box::new(move |i| remove(i, &format!("HOLD#{hold}"), "HOLD"))
        }),
        ("a check-in paid for a day not checked in", "checkin.days", {
            let alice = alice.clone();
            Box::new(move |i| remove(i, &alice, "CHECKIN#daily#"))
        }),
        ("a capped tier over its cap", "tier.seats", {
            Box::new(move |i| {
                let mut ladder = story::event_body("put-v1-admin-tiers");
                ladder["tiers"][1]["max_members"] = json!(1);
                let name = ladder["tiers"][1]["name"].clone();
                i.push(Item {
                    pk: "CONFIG".into(),
                    sk: "TIERS".into(),
                    body: json!({
                        "pk": "CONFIG", "sk": "TIERS", "version": 3,
                        "config": ladder, "seats": { name.as_str().unwrap(): 2 }
                    }),
                });
            })
        }),
        ("more reversed than granted", "reversal.total", {
            Box::new(move |i| {
                add(
                    i,
                    &format!("REVERSED#grant#service:{}#{PURCHASE_KEY}", story::SHOP),
                    "REVERSED",
                    "total",
                    1_000,
                )
            })
        }),
        ("a spin record lost", "draw.spins", {
            let alice = alice.clone();
            Box::new(move |i| remove(i, &alice, &format!("SPIN#{DRAW}#0000000002")))
        }),
        ("a stock unit taken without a winner", "draw.stock", {
            Box::new(move |i| add(i, &format!("DRAW#{DRAW}#STOCK#earbuds#0"), "STOCK", "taken", 1))
        }),
        ("a paid spin's charge missing", "draw.payment", {
            Box::new(move |i| remove(i, &format!("PAID#spin#{DRAW}#{ALICE}#2"), "PAID"))
        }),
        ("a contest prize paid the wrong amount", "contest.prize", {
            Box::new(move |i| add(i, &format!("PAID#contest#{CONTEST}#{BOB}"), "PAID", "delta", 1))
        }),
        (
            "a referral payment counted twice for the caps",
            "referral.caps",
            {
                let alice = alice.clone();
                Box::new(move |i| {
                    let item = find(i, &alice, "REFERRER");
                    let ever = item.body["paid"]["ever"].as_i64().unwrap();
                    item.body["paid"]["ever"] = json!(ever + 1);
                })
            },
        ),
        ("a paid referral without its payment", "referral.paid", {
            Box::new(move |i| remove(i, &format!("PAID#referral-referrer#{BOB}"), "PAID"))
        }),
        ("a board score the ledger does not explain", "board.score", {
            let bob = bob.clone();
            Box::new(move |i| add(i, &bob, "SCORE#all-time", "score", 3))
        }),
        ("a contest score the ledger does not explain", "contest.score", {
            let bob = bob.clone();
            Box::new(move |i| add(i, &bob, &format!("CONTEST#{CONTEST}"), "score", 3))
        }),
        (
            "a referrals contest the referrer's entry does not reflect",
            "contest.score",
            {
                // Alice's referral of Bob was paid while this contest ran: it owes her 1, and her
                // entry (none) says 0.
                Box::new(move |i| {
                    i.push(Item {
                        pk: "CONTEST#invites".into(),
                        sk: "CONFIG".into(),
                        body: json!({
                            "pk": "CONTEST#invites", "sk": "CONFIG", "id": "invites", "version": 1,
                            "created_at": "2026-11-23T00:00:00Z", "updated_at": "2026-11-23T00:00:00Z",
                            "spec": {
                                "title": "Invites", "starts_at": "2026-11-23T00:00:00Z",
                                "ends_at": "2026-12-30T00:00:00Z", "metric": "referrals",
                                "entry": "everyone", "prizes": []
                            }
                        }),
                    });
                })
            },
        ),
        ("a bucket counter off", "board.counter", {
            Box::new(move |i| {
                let item = i
                    .iter_mut()
                    .find(|i| i.pk.starts_with("BOARD#all-time#COUNT#"))
                    .expect("an all-time counter");
                let n = item.body["n"].as_i64().unwrap();
                item.body["n"] = json!(n + 1);
            })
        }),
    ];
    for (what, check, corrupt) in &cases {
        let mut broken = items.clone();
        corrupt(&mut broken);
        let report = audit::audit(&broken, zone);
        assert!(
            report.violations.iter().any(|v| v.check == *check),
            "{what}: expected a {check} violation, found {:?}\n{}",
            checks_found(&report),
            report.render()
        );
        assert!(report.render().contains(&format!("VIOLATION {check}")), "{what}");
    }
}

#[tokio::test]
async fn the_command_exits_non_zero_on_a_violation_and_names_it() {
    let env = TestEnv::new().await;
    env.seed_points("u-cmd", 40).await;
    let run = |table: &str| {
        std::process::Command::new(e2e::runtime::binary("campaign-ops"))
            .arg("audit")
            .env("TABLE_NAME", table)
            .output()
            .expect("campaign-ops runs")
    };
    let out = run(&env.table);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("clean: every invariant holds"), "{stdout}");
    // Break the balance behind the ledger's back.
    env.app
        .store
        .client()
        .update_item()
        .table_name(&env.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("USER#u-cmd".into()),
        )
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("ACCOUNT".into()))
        .update_expression("SET balance = :b")
        .expression_attribute_values(":b", aws_sdk_dynamodb::types::AttributeValue::N("41".into()))
        .send()
        .await
        .unwrap();
    let out = run(&env.table);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("VIOLATION ledger.balance: USER#u-cmd"),
        "{stderr}"
    );
}
