//! What the busiest routes cost, pinned: round trips, transaction actions, and capacity units by
//! DynamoDB's published rules (`e2e::capacity`), plus DynamoDB Local's own figure as a regression
//! threshold. The benchmark (scripts/bench.sh, docs/PERFORMANCE.md) publishes the same figures;
//! here a change that makes a route dearer fails CI. Each route runs for a fresh member after one
//! that warms the configuration cache.

use std::sync::Arc;

use e2e::TestEnv;
use e2e::capacity::{Capacity, capacity, handle_event, run_event};
use e2e::fault::FaultProxy;
use e2e::story::event_for;

/// A route's sample event, set-up events, points the member gets first, and its ceilings:
/// round trips, transaction actions, read units, write units, DynamoDB Local's units.
struct Pin {
    event: &'static str,
    setup: &'static [&'static str],
    seed_points: i64,
    max: (usize, usize, f64, f64, f64),
}

const PINS: [Pin; 9] = [
    Pin {
        event: "post-v1-checkins.json",
        setup: &[],
        seed_points: 0,
        max: (2, 12, 7.0, 27.0, 12.0),
    },
    Pin {
        event: "get-v1-me.json",
        setup: &[],
        seed_points: 0,
        max: (2, 0, 4.0, 1.0, 1.0),
    },
    Pin {
        event: "get-v1-points.json",
        setup: &[],
        seed_points: 0,
        max: (1, 0, 1.0, 0.0, 0.0),
    },
    Pin {
        event: "post-v1-admin-points-grants.json",
        setup: &[],
        seed_points: 0,
        max: (2, 10, 6.0, 23.0, 12.0),
    },
    Pin {
        event: "post-v1-admin-points-holds.json",
        setup: &[],
        seed_points: 500,
        max: (2, 5, 2.0, 10.0, 5.0),
    },
    Pin {
        event: "get-v1-leaderboards-board.json",
        setup: &[],
        seed_points: 0,
        max: (9, 0, 14.0, 0.0, 4.0),
    },
    Pin {
        event: "get-v1-leaderboards-board-me.json",
        setup: &[],
        seed_points: 0,
        max: (1, 0, 1.0, 0.0, 1.0),
    },
    Pin {
        event: "post-v1-contests-contest_id-entries.json",
        setup: &["put-v1-admin-contests-contest_id.json"],
        seed_points: 0,
        max: (3, 0, 2.0, 1.0, 3.0),
    },
    Pin {
        event: "schedules/settle-contests.json",
        setup: &[],
        seed_points: 0,
        max: (5, 0, 2.5, 0.0, 0.0),
    },
];

async fn measure(env: &TestEnv, app: &shared::App, proxy: &FaultProxy, pin: &Pin, n: usize) -> Capacity {
    for file in pin.setup {
        let text = std::fs::read_to_string(local_api::repo_root().join("events").join(file)).unwrap();
        handle_event(&env.app, &text).await.unwrap();
    }
    let mut last = None;
    for m in 0..2 {
        let user = format!("cap-{n}-{m}");
        if pin.seed_points > 0 {
            env.seed_points(&user, pin.seed_points).await;
        }
        let (_, calls) = run_event(app, proxy, &event_for(pin.event, &user))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", pin.event));
        last = Some(capacity(env.app.store.client(), &env.table, &calls).await);
    }
    last.expect("two runs")
}

#[tokio::test]
async fn the_busiest_routes_cost_no_more_than_pinned() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
    let app = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
    let mut over = Vec::new();
    for (n, pin) in PINS.iter().enumerate() {
        let c = measure(&env, &app, &proxy, pin, n).await;
        let got = (
            c.calls.values().sum::<usize>(),
            c.transact_actions,
            c.read_units,
            c.write_units,
            c.local_units,
        );
        println!("{}: {got:?} (ceiling {:?})", pin.event, pin.max);
        let (rt, actions, read, write, local) = pin.max;
        if got.0 > rt || got.1 > actions || got.2 > read || got.3 > write || got.4 > local {
            over.push(format!("{}: {got:?} over {:?}", pin.event, pin.max));
        }
        // Nothing is free: every route makes at least one call and prices it.
        assert!(got.0 >= 1 && got.2 + got.3 > 0.0, "{}: {got:?}", pin.event);
    }
    assert!(over.is_empty(), "dearer than pinned:\n{}", over.join("\n"));
    env.assert_audit_clean().await;
}

/// A spin's cost depends on what it wins (a stocked prize adds its stock shard and fulfilment,
/// points a ledger posting): the ceilings per prize kind, the same five figures as above. A roll
/// of the sample's coupon finds no codes loaded here and pays the consolation ("nothing") after
/// reading them: the third round trip of some "nothing" spins.
fn spin_ceiling(kind: &str) -> (usize, usize, f64, f64, f64) {
    match kind {
        "nothing" => (3, 4, 11.0, 8.0, 9.0),
        "points" => (2, 6, 5.0, 12.0, 6.0),
        "physical" => (2, 6, 5.0, 13.0, 14.0),
        other => panic!("a prize this test does not expect: {other}"),
    }
}

#[tokio::test]
async fn spins_cost_no_more_than_pinned_for_what_they_win() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
    let app = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
    let draw = std::fs::read_to_string(local_api::repo_root().join("events/put-v1-admin-draws-draw_id.json"))
        .unwrap();
    handle_event(&env.app, &draw).await.unwrap();
    let mut seen = std::collections::BTreeMap::new();
    let mut over = Vec::new();
    // The first spin warms the configuration cache; 40 members then spin once each (the free spin).
    for m in 0..=40 {
        let (answer, calls) = run_event(
            &app,
            &proxy,
            &event_for("post-v1-draws-draw_id-spins.json", &format!("spin-{m}")),
        )
        .await
        .unwrap();
        if m == 0 {
            continue;
        }
        let kind = answer["spin"]["prize"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let c = capacity(env.app.store.client(), &env.table, &calls).await;
        let got = (
            c.calls.values().sum::<usize>(),
            c.transact_actions,
            c.read_units,
            c.write_units,
            c.local_units,
        );
        println!("{kind}: {got:?}");
        let max = spin_ceiling(&kind);
        if got.0 > max.0 || got.1 > max.1 || got.2 > max.2 || got.3 > max.3 || got.4 > max.4 {
            over.push(format!("{kind}: {got:?} over {max:?}"));
        }
        *seen.entry(kind).or_insert(0) += 1;
    }
    println!("{seen:?}");
    assert!(over.is_empty(), "dearer than pinned:\n{}", over.join("\n"));
    // The draw's weights (50 % nothing, 30 % points) make both all but certain among 40 spins.
    assert!(
        seen.contains_key("nothing") && seen.contains_key("points"),
        "{seen:?}"
    );
    env.assert_audit_clean().await;
}
