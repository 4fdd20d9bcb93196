//! Scale: a contest board grown to each size in turn (seeded straight into the table, in the
//! shape the earn path writes: `e2e::scale`), with the top 100 and my rank read at each size;
//! then the contest settled with its 1,000 prizes in one invocation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::fault::FaultProxy;
use e2e::scale::{AFTER, DURING, contest_spec, cost_of, member, seed};
use shared::store::SettleOutcome;

use crate::doc;

/// One read at one size.
#[derive(Debug, Clone)]
pub struct Read {
    pub round_trips: usize,
    pub capacity: f64,
    pub latency: Duration,
}

/// What one size measured.
#[derive(Debug, Clone)]
pub struct Size {
    pub entries: u64,
    pub seed_seconds: f64,
    pub top: Read,
    pub mine: Read,
}

pub struct Section {
    pub sizes: Vec<Size>,
    pub prizes: u64,
    pub settle: Read,
    pub settle_transactions: usize,
}

const CONTEST: &str = "scale";

async fn read(api: &e2e::TestApi, proxy: &FaultProxy, path: &str, who: &str) -> Result<Read, String> {
    let token = e2e::member_token(who);
    // Warm (configuration cache), then five timed reads; the last one's calls are counted.
    let warm = api.get(path, Some(&token), Some(DURING)).await;
    if warm.status != 200 {
        return Err(format!("{path}: {} {}", warm.status, warm.body));
    }
    let mut latencies = Vec::new();
    let mut cost = None;
    for _ in 0..5 {
        let before = proxy.total();
        let started = Instant::now();
        let r = api.get(path, Some(&token), Some(DURING)).await;
        latencies.push(started.elapsed());
        if r.status != 200 {
            return Err(format!("{path}: {} {}", r.status, r.body));
        }
        cost = Some(cost_of(proxy, before));
    }
    let cost = cost.expect("five reads");
    Ok(Read {
        round_trips: cost.round_trips(),
        capacity: cost.capacity,
        latency: doc::median(&mut latencies),
    })
}

pub async fn run(sizes: &[u64], prizes: u64) -> Result<Section, String> {
    let env = e2e::TestEnv::new().await;
    env.app
        .store
        .put_contest(
            CONTEST,
            contest_spec(prizes),
            "2026-11-23T00:00:00Z".parse().expect("time"),
        )
        .await
        .map_err(|e| e.to_string())?;
    let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
    let app = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
    let api = e2e::spawn_api(app.clone()).await;
    let mut out = Vec::new();
    let mut seeded = 0;
    for &n in sizes {
        let started = Instant::now();
        let label = format!("scale: seeding {n} entries");
        seed(
            env.app.store.client(),
            &env.table,
            CONTEST,
            (seeded, n),
            &|done| {
                crate::progress(&format!("{label}: {} written", seeded + done));
            },
        )
        .await;
        crate::progress_done();
        let seed_seconds = started.elapsed().as_secs_f64();
        seeded = n;
        let top = read(
            &api,
            &proxy,
            &format!("/v1/leaderboards/contest:{CONTEST}?limit=100"),
            &member(0),
        )
        .await?;
        let mine = read(
            &api,
            &proxy,
            &format!("/v1/leaderboards/contest:{CONTEST}/me?neighbours=2"),
            &member(n / 2),
        )
        .await?;
        println!("scale: {n} entries: top 100 {top:?}, my rank {mine:?}");
        out.push(Size {
            entries: n,
            seed_seconds,
            top,
            mine,
        });
    }
    crate::progress(&format!("scale: settling {seeded} participants, {prizes} prizes"));
    let before = proxy.total();
    let started = Instant::now();
    let outcome = app
        .store
        // Lambda's longest timeout: the settlement must finish in one invocation.
        .settle_contest(
            CONTEST,
            AFTER.parse().expect("time"),
            Instant::now() + Duration::from_secs(900),
        )
        .await
        .map_err(|e| e.to_string())?;
    let latency = started.elapsed();
    crate::progress_done();
    if !matches!(outcome, SettleOutcome::Settled { .. }) {
        return Err(format!(
            "the settlement did not finish in one invocation: {outcome:?}"
        ));
    }
    let cost = cost_of(&proxy, before);
    Ok(Section {
        sizes: out,
        prizes,
        settle_transactions: cost.calls.get("TransactWriteItems").copied().unwrap_or(0),
        settle: Read {
            round_trips: cost.round_trips(),
            capacity: cost.capacity,
            latency,
        },
    })
}

impl Section {
    /// The largest ratio, from the smallest size to the largest, of round trips or capacity.
    pub fn worst_growth(&self) -> f64 {
        let (Some(first), Some(last)) = (self.sizes.first(), self.sizes.last()) else {
            return 1.0;
        };
        let ratio = |a: f64, b: f64| if a > 0.0 { b / a } else { 1.0 };
        [
            ratio(first.top.round_trips as f64, last.top.round_trips as f64),
            ratio(first.top.capacity, last.top.capacity),
            ratio(first.mine.round_trips as f64, last.mine.round_trips as f64),
            ratio(first.mine.capacity, last.mine.capacity),
        ]
        .into_iter()
        .fold(0.0, f64::max)
    }

    pub fn markdown(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .sizes
            .iter()
            .map(|s| {
                vec![
                    format!("{}", s.entries),
                    format!("{:.0}", s.seed_seconds),
                    s.top.round_trips.to_string(),
                    format!("{:.1}", s.top.capacity),
                    doc::ms(s.top.latency),
                    s.mine.round_trips.to_string(),
                    format!("{:.1}", s.mine.capacity),
                    doc::ms(s.mine.latency),
                ]
            })
            .collect();
        let table = doc::table(
            &[
                "board entries",
                "seeded in s",
                "top 100: round trips",
                "capacity units",
                "ms",
                "my rank: round trips",
                "capacity units",
                "ms",
            ],
            &rows,
        );
        let last = self.sizes.last().map_or(0, |s| s.entries);
        format!(
            "{table}\nCapacity as DynamoDB Local reports it for these reads (queries and gets; a regression \
             threshold); latency is DynamoDB Local on this machine, context only. Target: round trips and \
             capacity within 2× from the smallest board to the largest: **{growth}**.\n\n\
             Settling the contest with {last} participants and {prizes} prizes, in one call of the settlement \
             (the 900 s of Lambda's longest timeout as its deadline): **{rt} round trips** ({tx} ledger \
             transactions), {cap:.0} capacity units as DynamoDB Local reports them, {secs:.1} s.\n",
            growth = doc::times(self.worst_growth()),
            prizes = self.prizes,
            rt = self.settle.round_trips,
            tx = self.settle_transactions,
            cap = self.settle.capacity,
            secs = self.settle.latency.as_secs_f64(),
        )
    }
}
