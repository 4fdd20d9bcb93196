//! Round trips and capacity per route, the cost table and the hot items, from the DynamoDB
//! requests each route makes (recorded by a proxy in front of DynamoDB Local).
//! Capacity by DynamoDB's published rules: `e2e::capacity`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use e2e::capacity::{Capacity as Cost, capacity as cost};
use e2e::fault::FaultProxy;
use serde::Deserialize;

use crate::cold::event_for;
use crate::doc;

/// A measured route: its sample event, and set-up for each member.
pub struct Route {
    pub route: &'static str,
    pub event: &'static str,
    /// Points each member gets first (a hold needs a balance).
    pub seed_points: i64,
}

pub const ROUTES: [Route; 13] = [
    Route {
        route: "POST /v1/checkins",
        event: "post-v1-checkins.json",
        seed_points: 0,
    },
    Route {
        route: "GET /v1/me",
        event: "get-v1-me.json",
        seed_points: 0,
    },
    Route {
        route: "GET /v1/points",
        event: "get-v1-points.json",
        seed_points: 0,
    },
    Route {
        route: "GET /v1/points/ledger",
        event: "get-v1-points-ledger.json",
        seed_points: 0,
    },
    Route {
        route: "POST /v1/admin/points/grants",
        event: "post-v1-admin-points-grants.json",
        seed_points: 0,
    },
    Route {
        route: "POST /v1/admin/points/holds",
        event: "post-v1-admin-points-holds.json",
        seed_points: 500,
    },
    Route {
        route: "GET /v1/me/profile",
        event: "get-v1-me-profile.json",
        seed_points: 0,
    },
    Route {
        route: "GET /v1/leaderboards/{board}",
        event: "get-v1-leaderboards-board.json",
        seed_points: 0,
    },
    Route {
        route: "GET /v1/leaderboards/{board}/me",
        event: "get-v1-leaderboards-board-me.json",
        seed_points: 0,
    },
    Route {
        route: "POST /v1/contests/{id}/entries",
        event: "post-v1-contests-contest_id-entries.json",
        seed_points: 0,
    },
    Route {
        route: "GET /v1/referrals/me",
        event: "get-v1-referrals-me.json",
        seed_points: 0,
    },
    Route {
        route: "POST /v1/draws/{id}/spins",
        event: "post-v1-draws-draw_id-spins.json",
        seed_points: 0,
    },
    Route {
        route: "settlement run (nothing due)",
        event: "schedules/settle-contests.json",
        seed_points: 0,
    },
];

/// The routes the hot-item analysis and the load section look at.
pub const HOT: [&str; 4] = [
    "POST /v1/checkins",
    "POST /v1/admin/points/grants",
    "POST /v1/contests/{id}/entries",
    "POST /v1/draws/{id}/spins",
];

/// Prices and assumptions (tools/bench/prices.json).
#[derive(Debug, Clone, Deserialize)]
pub struct Prices {
    pub region: String,
    pub date: String,
    pub source: String,
    pub dynamodb_write_request_unit_per_million: f64,
    pub dynamodb_read_request_unit_per_million: f64,
    pub lambda_arm64_gb_second: f64,
    pub lambda_request_per_million: f64,
    pub http_api_request_per_million: f64,
    pub assumptions: Assumptions,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Assumptions {
    pub dynamodb_round_trip_ms: f64,
    pub full_vcpu_at_memory_mb: f64,
    pub note: String,
}

pub fn prices() -> Result<Prices, String> {
    let path = local_api::repo_root().join("tools/bench/prices.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// What one route costs: per request (the first measured member), and per member for the hot
/// analysis.
pub struct Measured {
    pub route: &'static str,
    pub cost: Cost,
    pub samples: Vec<Cost>,
}

/// Measures every route for `members` members each (after one that warms the caches), on a
/// table the functions' set-up events have run on (`cold::set_up`).
pub async fn run(env: &e2e::TestEnv, members: usize) -> Result<Vec<Measured>, String> {
    let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
    let app = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
    let client = env.app.store.client().clone();
    let mut out = Vec::new();
    for (r, route) in ROUTES.iter().enumerate() {
        let mut samples = Vec::new();
        for m in 0..=members {
            crate::progress(&format!("routes: {} {m}/{members}", route.route));
            let user = format!("route-{r}-{m}");
            if route.seed_points > 0 {
                env.seed_points(&user, route.seed_points).await;
            }
            let (_, calls) = e2e::capacity::run_event(&app, &proxy, &event_for(route.event, &user)).await?;
            if m > 0 {
                samples.push(cost(&client, &env.table, &calls).await);
            }
        }
        out.push(Measured {
            route: route.route,
            cost: samples[0].clone(),
            samples,
        });
    }
    crate::progress_done();
    Ok(out)
}

fn calls_text(calls: &BTreeMap<String, usize>) -> String {
    calls
        .iter()
        .map(|(op, n)| {
            if *n == 1 {
                op.clone()
            } else {
                format!("{n}× {op}")
            }
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

pub fn markdown(measured: &[Measured]) -> String {
    let rows: Vec<Vec<String>> = measured
        .iter()
        .map(|m| {
            vec![
                format!("`{}`", m.route),
                m.cost.calls.values().sum::<usize>().to_string(),
                calls_text(&m.cost.calls),
                m.cost.transact_actions.to_string(),
                format!("{:.1}", m.cost.read_units),
                format!("{:.1}", m.cost.write_units),
                format!("{:.1}", m.cost.local_units),
            ]
        })
        .collect();
    doc::table(
        &[
            "route",
            "round trips",
            "DynamoDB requests",
            "transaction actions",
            "read units",
            "write units",
            "DynamoDB Local's units",
        ],
        &rows,
    )
}

// ---- cost ----

/// Lambda duration on AWS, estimated: the round trips at the assumed latency, plus the measured
/// CPU time stretched by the share of a vCPU the memory buys.
pub fn lambda_ms(p: &Prices, round_trips: usize, cpu_ms: f64, memory_mb: f64) -> f64 {
    let stretch = (p.assumptions.full_vcpu_at_memory_mb / memory_mb).max(1.0);
    round_trips as f64 * p.assumptions.dynamodb_round_trip_ms + cpu_ms * stretch
}

/// $ per million calls: DynamoDB, Lambda (duration, billed by the ms, and requests), HTTP API.
pub fn dollars(p: &Prices, c: &Cost, cpu_ms: f64, memory_mb: f64, http: bool) -> [f64; 4] {
    let round_trips = c.calls.values().sum();
    let dynamo = c.read_units * p.dynamodb_read_request_unit_per_million
        + c.write_units * p.dynamodb_write_request_unit_per_million;
    let billed_ms = lambda_ms(p, round_trips, cpu_ms, memory_mb).ceil();
    let lambda = billed_ms / 1000.0 * memory_mb / 1024.0 * p.lambda_arm64_gb_second * 1e6
        + p.lambda_request_per_million;
    let api = if http { p.http_api_request_per_million } else { 0.0 };
    [dynamo, lambda, api, dynamo + lambda + api]
}

/// The cost table at `memory_mb`, with CPU per request from the cold-start section's warm runs
/// (by function), and the memory recommendation.
pub fn cost_markdown(
    p: &Prices,
    measured: &[Measured],
    cpu: &BTreeMap<String, f64>,
    memory_mb: f64,
) -> String {
    let mut rows = Vec::new();
    for m in measured {
        let function = function_of(m.route);
        let cpu_ms = cpu.get(function).copied().unwrap_or(1.0);
        let http = !m.route.starts_with("settlement");
        let [dynamo, lambda, api, total] = dollars(p, &m.cost, cpu_ms, memory_mb, http);
        let parts = [("DynamoDB", dynamo), ("Lambda", lambda), ("HTTP API", api)];
        let top = parts.iter().fold(parts[0], |a, b| if b.1 > a.1 { *b } else { a });
        rows.push(vec![
            format!("`{}`", m.route),
            format!("{cpu_ms:.2}"),
            format!(
                "{:.1}",
                lambda_ms(p, m.cost.calls.values().sum(), cpu_ms, memory_mb)
            ),
            format!("{dynamo:.2}"),
            format!("{lambda:.2}"),
            format!("{api:.2}"),
            format!("**{total:.2}**"),
            format!("{} ({:.0} %)", top.0, 100.0 * top.1 / total),
        ]);
    }
    let table = doc::table(
        &[
            "route",
            "CPU ms / request (measured)",
            "Lambda ms (estimated)",
            "DynamoDB $",
            "Lambda $",
            "HTTP API $",
            "total $ / million",
            "largest part",
        ],
        &rows,
    );
    format!(
        "{table}\nPrices: {region}, {date} (`tools/bench/prices.json`: {source}). Memory {memory_mb:.0} MB. \
         Lambda duration is estimated as {rt} ms per DynamoDB round trip (assumed) plus the measured CPU time \
         stretched by the vCPU share of the memory; {note}\n",
        region = p.region,
        date = p.date,
        source = p.source,
        rt = p.assumptions.dynamodb_round_trip_ms,
        note = p.assumptions.note,
    )
}

/// The memory that costs least per call among those that keep the CPU part of the duration no
/// longer than the DynamoDB part, for the busiest routes; and the table behind the choice.
pub fn memory_markdown(p: &Prices, measured: &[Measured], cpu: &BTreeMap<String, f64>) -> String {
    let sizes = [128.0, 256.0, 512.0, 1024.0];
    let mut rows = Vec::new();
    let mut fits: BTreeSet<u64> = sizes.iter().map(|s| *s as u64).collect();
    for m in measured
        .iter()
        .filter(|m| HOT.contains(&m.route) || m.route == "GET /v1/me")
    {
        let cpu_ms = cpu.get(function_of(m.route)).copied().unwrap_or(1.0);
        let round_trips: usize = m.cost.calls.values().sum();
        let mut row = vec![format!("`{}`", m.route)];
        for memory in sizes {
            let [.., total] = dollars(p, &m.cost, cpu_ms, memory, true);
            let ms = lambda_ms(p, round_trips, cpu_ms, memory);
            let cpu_part = ms - round_trips as f64 * p.assumptions.dynamodb_round_trip_ms;
            if cpu_part > round_trips as f64 * p.assumptions.dynamodb_round_trip_ms {
                fits.remove(&(memory as u64));
            }
            row.push(format!("{ms:.1} ms, ${total:.2}"));
        }
        rows.push(row);
    }
    let pick = fits.iter().next().copied().unwrap_or(1024);
    let table = doc::table(&["route", "128 MB", "256 MB", "512 MB", "1024 MB"], &rows);
    format!(
        "{table}\n**Recommended `MemorySize`: {pick} MB**: the smallest size at which, for each of these \
         routes, the CPU part of the estimated duration is no longer than its DynamoDB part (a smaller \
         size costs about the same per call, since duration grows as memory shrinks, and answers slower).\n"
    )
}

/// The function serving a measured route (by the cold-start section's binary names).
pub fn function_of(route: &str) -> &'static str {
    match route {
        r if r.starts_with("POST /v1/checkins") => "checkin",
        "GET /v1/me" | "GET /v1/points" | "GET /v1/points/ledger" => "points",
        r if r.starts_with("POST /v1/admin/points") => "points-admin",
        "GET /v1/me/profile" => "members",
        r if r.starts_with("GET /v1/leaderboards") => "leaderboards",
        r if r.contains("/contests") => "contests",
        r if r.contains("/referrals") => "referrals",
        r if r.contains("/draws") => "draws",
        _ => "settle-contests",
    }
}

// ---- hot items ----

/// How long a transaction is assumed to hold its items (DynamoDB does not publish it; its two
/// phases take milliseconds each): another transaction on one of them within that time conflicts.
pub const HOLD_ASSUMED_MS: f64 = 10.0;
/// DynamoDB's per-partition write limit.
pub const PARTITION_WCU: f64 = 1000.0;

/// Whether a key names a sampled member (`route-…`): such items and partitions are the member's
/// own, written at that member's pace whatever the total rate.
fn own(key: &str) -> bool {
    key.contains("route-")
}

/// The key with the largest value.
fn busiest<K>(m: &BTreeMap<K, f64>) -> (Option<&K>, f64) {
    m.iter()
        .fold((None, 0.0), |a, (k, v)| if *v > a.1 { (Some(k), *v) } else { a })
}

/// The busiest item and partition that members share, per hot route, at `rate` requests a
/// second spread over many members: an item shared by a fraction f of the sampled requests is
/// written f × rate times a second.
pub fn hot_markdown(measured: &[Measured], rate: f64) -> String {
    let mut rows = Vec::new();
    for m in measured.iter().filter(|m| HOT.contains(&m.route)) {
        let n = m.samples.len() as f64;
        let mut item_share: BTreeMap<(String, String), f64> = BTreeMap::new();
        let mut partition_wcu: BTreeMap<String, f64> = BTreeMap::new();
        let mut own_wcu = 0.0;
        for s in &m.samples {
            let mut seen = BTreeSet::new();
            for t in &s.touches {
                if own(&t.pk) {
                    own_wcu += t.write_units / n;
                } else {
                    if seen.insert((t.pk.clone(), t.sk.clone())) {
                        *item_share.entry((t.pk.clone(), t.sk.clone())).or_default() += 1.0 / n;
                    }
                    *partition_wcu.entry(format!("table `{}`", t.pk)).or_default() += t.write_units / n;
                }
                for (index, pk, units) in t.index_writes.iter().filter(|i| !own(&i.1)) {
                    *partition_wcu.entry(format!("{index} `{pk}`")).or_default() += units / n;
                }
            }
        }
        let (item, share) = busiest(&item_share);
        let (partition, wcu) = busiest(&partition_wcu);
        let item_rate = share * rate;
        let conflict = 1.0 - (-item_rate * HOLD_ASSUMED_MS / 1000.0).exp();
        let wcu_rate = wcu * rate;
        rows.push(vec![
            format!("`{}`", m.route),
            format!("{own_wcu:.0}"),
            item.map_or("none".into(), |(pk, sk)| format!("`{pk}` / `{sk}`")),
            format!("{item_rate:.0}"),
            format!("{:.0} %", 100.0 * conflict),
            partition.map_or("none".into(), String::clone),
            format!("{wcu_rate:.0}"),
            if wcu_rate <= PARTITION_WCU {
                "under".into()
            } else {
                "**over**".into()
            },
        ]);
    }
    doc::table(
        &[
            "route",
            "WCU on the member's own items (per request)",
            "busiest shared item (pk / sk)",
            "its writes / s",
            "chance a transaction on it conflicts",
            "busiest shared partition",
            "its WCU / s",
            "vs 1,000 WCU / partition",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_naming_a_sampled_member_is_its_own() {
        assert!(own("USER#route-3-7"));
        assert!(!own("DRAW#double12#STOCK#earbuds#0"));
    }
}
