//! Cold start: each function's release binary, started as Lambda starts it (the fake Runtime API of
//! `e2e::runtime`), serves one event; side by side with the floor (`tools/bench-floor`), which
//! makes the same DynamoDB calls. Then warm events on one process: CPU time and wall time per
//! request, and peak memory.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::fault::FaultProxy;
use e2e::runtime::{Outcome, Sandbox};
use serde_json::{Value, json};

use crate::doc::{self, median};
use crate::machine;

/// A function and the sample event (events/…) its measured invocations are made of.
pub struct Function {
    pub logical_id: &'static str,
    pub binary: &'static str,
    pub event: &'static str,
    /// Sample events to run first, once (in-process), so the measured event succeeds.
    pub setup: &'static [&'static str],
}

pub const FUNCTIONS: [Function; 9] = [
    Function {
        logical_id: "CheckinFunction",
        binary: "checkin",
        event: "post-v1-checkins.json",
        setup: &[],
    },
    Function {
        logical_id: "PointsFunction",
        binary: "points",
        event: "get-v1-me.json",
        setup: &[],
    },
    Function {
        logical_id: "PointsAdminFunction",
        binary: "points-admin",
        event: "post-v1-admin-points-grants.json",
        setup: &[],
    },
    Function {
        logical_id: "MembersFunction",
        binary: "members",
        event: "get-v1-me-profile.json",
        setup: &[],
    },
    Function {
        logical_id: "LeaderboardsFunction",
        binary: "leaderboards",
        event: "get-v1-leaderboards-board-me.json",
        setup: &[],
    },
    Function {
        logical_id: "ContestsFunction",
        binary: "contests",
        event: "post-v1-contests-contest_id-entries.json",
        setup: &["put-v1-admin-contests-contest_id.json"],
    },
    Function {
        logical_id: "ReferralsFunction",
        binary: "referrals",
        event: "get-v1-referrals-me.json",
        setup: &[],
    },
    Function {
        logical_id: "DrawsFunction",
        binary: "draws",
        event: "post-v1-draws-draw_id-spins.json",
        setup: &["put-v1-admin-draws-draw_id.json"],
    },
    Function {
        logical_id: "SettleContestsFunction",
        binary: "settle-contests",
        event: "schedules/settle-contests.json",
        setup: &[],
    },
];

pub use e2e::story::event_for;

/// Runs the setup events of every function once, in-process, on `app`.
pub async fn set_up(app: &shared::App) -> Result<(), String> {
    for f in &FUNCTIONS {
        for file in f.setup {
            let text = std::fs::read_to_string(local_api::repo_root().join("events").join(file))
                .map_err(|e| format!("{file}: {e}"))?;
            e2e::capacity::handle_event(app, &text)
                .await
                .map_err(|e| format!("setup {file}: {e}"))?;
        }
    }
    Ok(())
}

/// The environment a function binary gets (Lambda's own variables are set by the sandbox).
pub fn vars(table: &str, endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("TABLE_NAME", table.to_owned()),
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoint.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("CAMPAIGN_DEV_CLOCK", "1".to_owned()),
        ("BUSINESS_TIME_ZONE", "Asia/Shanghai".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "WARN".to_owned()),
    ]
}

/// Whether an invocation succeeded: an HTTP answer of 2xx, or a job's result.
fn succeeded(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Response(r) => r
            .get("statusCode")
            .and_then(Value::as_u64)
            .is_none_or(|s| (200..300).contains(&s)),
        Outcome::Error(_) => false,
    }
}

/// One cold start: init time, first-event time, peak memory.
#[derive(Debug, Clone, Copy)]
pub struct Cold {
    pub init: Duration,
    pub first: Duration,
    pub rss: u64,
}

/// Starts `binary`, waits for its first poll, sends `event` and measures.
pub async fn cold_once(
    binary: &Path,
    name: &str,
    vars: &[(&str, String)],
    event: &str,
) -> Result<Cold, String> {
    let sandbox = Sandbox::start(binary.to_path_buf(), name, vars).await;
    let init = sandbox
        .wait_for_init(Duration::from_secs(20))
        .await
        .ok_or(format!("{name}: no poll within 20 s"))?;
    let started = Instant::now();
    let (_, outcome) = sandbox.invoke(event).await;
    let first = started.elapsed();
    if !succeeded(&outcome) {
        return Err(format!("{name}: the first event failed: {outcome:?}"));
    }
    let rss = machine::peak_rss(sandbox.pid()).unwrap_or(0);
    Ok(Cold { init, first, rss })
}

/// The DynamoDB requests one invocation made, recorded through a proxy: `(operation, body)`.
pub async fn record(
    binary: &Path,
    name: &str,
    table: &str,
    event: &str,
) -> Result<Vec<(String, String)>, String> {
    let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
    let sandbox = Sandbox::start(binary.to_path_buf(), name, &vars(table, &proxy.endpoint)).await;
    sandbox
        .wait_for_init(Duration::from_secs(20))
        .await
        .ok_or(format!("{name}: no poll"))?;
    let before = proxy.total();
    let (_, outcome) = sandbox.invoke(event).await;
    if !succeeded(&outcome) {
        return Err(format!("{name}: the recorded event failed: {outcome:?}"));
    }
    Ok(proxy
        .since(before)
        .into_iter()
        .map(|c| (c.operation, c.body))
        .collect())
}

/// A recorded request body without its `ClientRequestToken`: a transaction sent again for another
/// member must not be taken for a retry of the recorded one (DynamoDB refuses a token reused with
/// other parameters).
pub fn without_token(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(mut o)) => {
            o.remove("ClientRequestToken");
            Value::Object(o).to_string()
        }
        _ => body.to_owned(),
    }
}

/// The floor's event replaying `calls` with `from` replaced by `to`.
pub fn replay_event(calls: &[(String, String)], from: &str, to: &str) -> String {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(op, body)| json!({ "op": op, "body": without_token(body).replace(from, to) }))
        .collect();
    json!({ "replay": calls }).to_string()
}

/// Warm figures of one process: per request CPU time and wall time, over `n` requests.
#[derive(Debug, Clone, Copy)]
pub struct Warm {
    pub cpu: Duration,
    pub wall: Duration,
    pub rss: u64,
}

/// Starts `binary`, sends one event, then `n` more (`event(i)`), and measures those `n`.
pub async fn warm(
    binary: &Path,
    name: &str,
    vars: &[(&str, String)],
    n: usize,
    event: impl Fn(usize) -> String,
) -> Result<Warm, String> {
    let sandbox = Sandbox::start(binary.to_path_buf(), name, vars).await;
    sandbox
        .wait_for_init(Duration::from_secs(20))
        .await
        .ok_or(format!("{name}: no poll"))?;
    sandbox.invoke(&event(0)).await;
    let cpu_before = machine::cpu_seconds(sandbox.pid()).unwrap_or(0.0);
    let mut walls = Vec::with_capacity(n);
    for i in 1..=n {
        let started = Instant::now();
        let (_, outcome) = sandbox.invoke(&event(i)).await;
        walls.push(started.elapsed());
        if !succeeded(&outcome) {
            return Err(format!("{name}: warm event {i} failed: {outcome:?}"));
        }
    }
    let cpu = machine::cpu_seconds(sandbox.pid()).unwrap_or(0.0) - cpu_before;
    Ok(Warm {
        cpu: Duration::from_secs_f64(cpu / n as f64),
        wall: median(&mut walls),
        rss: machine::peak_rss(sandbox.pid()).unwrap_or(0),
    })
}

/// What the section measured for one function.
#[derive(Debug, Clone)]
pub struct Row {
    pub function: &'static str,
    pub binary: &'static str,
    pub bytes: u64,
    pub calls: usize,
    pub init: Duration,
    pub first: Duration,
    pub floor_first: Duration,
    pub rss: u64,
    pub warm: Warm,
}

/// The whole section: every function and the floor, `runs` cold starts each.
pub struct Section {
    pub rows: Vec<Row>,
    pub floor_init: Duration,
    pub floor_rss: u64,
    pub floor_bytes: u64,
    pub runs: usize,
    pub warm_runs: usize,
}

pub async fn run(dir: &Path, table: &str, runs: usize, warm_runs: usize) -> Result<Section, String> {
    let endpoint = e2e::endpoint();
    let vars = vars(table, &endpoint);
    let floor = dir.join("bench-floor");
    let floor_bytes = std::fs::metadata(&floor)
        .map_err(|e| format!("{}: {e}", floor.display()))?
        .len();
    // The floor's own cold starts: init and memory.
    let mut inits = Vec::new();
    let mut rss = 0;
    for _ in 0..runs {
        let c = cold_once(&floor, "bench-floor", &vars, "{}").await?;
        inits.push(c.init);
        rss = rss.max(c.rss);
    }
    let floor_init = median(&mut inits);
    let mut rows = Vec::new();
    for (k, f) in FUNCTIONS.iter().enumerate() {
        let binary = dir.join(f.binary);
        let bytes = std::fs::metadata(&binary)
            .map_err(|e| format!("{}: {e}", binary.display()))?
            .len();
        let recorded_user = format!("bench-rec-{k}");
        let calls = record(&binary, f.logical_id, table, &event_for(f.event, &recorded_user)).await?;
        let (mut inits, mut firsts, mut floor_firsts) = (Vec::new(), Vec::new(), Vec::new());
        let mut peak = 0;
        for run in 0..runs {
            crate::progress(&format!("cold start {} {}/{runs}", f.binary, run + 1));
            let c = cold_once(
                &binary,
                f.logical_id,
                &vars,
                &event_for(f.event, &format!("bench-c{run}-{k}")),
            )
            .await?;
            inits.push(c.init);
            firsts.push(c.first);
            peak = peak.max(c.rss);
            let replay = replay_event(&calls, &recorded_user, &format!("bench-f{run}-{k}"));
            let floor_cold = cold_once(&floor, "bench-floor", &vars, &replay).await?;
            floor_firsts.push(floor_cold.first);
        }
        let warm = warm(&binary, f.logical_id, &vars, warm_runs, |i| {
            event_for(f.event, &format!("bench-w{i}-{k}"))
        })
        .await?;
        rows.push(Row {
            function: f.logical_id,
            binary: f.binary,
            bytes,
            calls: calls.len(),
            init: median(&mut inits),
            first: median(&mut firsts),
            floor_first: median(&mut floor_firsts),
            rss: peak.max(warm.rss),
            warm,
        });
    }
    crate::progress_done();
    Ok(Section {
        rows,
        floor_init,
        floor_rss: rss,
        floor_bytes,
        runs,
        warm_runs,
    })
}

impl Section {
    /// The worst init relative to the floor's.
    pub fn worst_init_ratio(&self) -> f64 {
        self.rows
            .iter()
            .map(|r| r.init.as_secs_f64() / self.floor_init.as_secs_f64())
            .fold(0.0, f64::max)
    }

    pub fn peak_rss(&self) -> u64 {
        self.rows.iter().map(|r| r.rss).max().unwrap_or(0)
    }

    pub fn markdown(&self, profile: &str) -> String {
        let mut rows = vec![vec![
            "floor (`tools/bench-floor`)".to_owned(),
            doc::mib(self.floor_bytes),
            doc::ms(self.floor_init),
            "1.00×".to_owned(),
            "–".to_owned(),
            "–".to_owned(),
            "–".to_owned(),
            doc::mib(self.floor_rss),
            "–".to_owned(),
            "–".to_owned(),
        ]];
        for r in &self.rows {
            rows.push(vec![
                format!("{} (`{}`)", r.function, r.binary),
                doc::mib(r.bytes),
                doc::ms(r.init),
                doc::times(r.init.as_secs_f64() / self.floor_init.as_secs_f64()),
                r.calls.to_string(),
                doc::ms(r.first),
                doc::ms(r.floor_first),
                doc::mib(r.rss),
                doc::ms(r.warm.wall),
                format!("{:.3}", r.warm.cpu.as_secs_f64() * 1000.0),
            ]);
        }
        let table = doc::table(
            &[
                "function",
                "binary MiB (x86_64)",
                "init ms (median)",
                "init vs floor",
                "DynamoDB calls (1st event)",
                "1st event ms",
                "floor, same calls, ms",
                "peak RSS MiB",
                "warm ms (median)",
                "warm CPU ms / request",
            ],
            &rows,
        );
        format!(
            "{table}\nProfile `{profile}`, x86_64; medians of {runs} cold starts per binary (a fresh process \
             each), {warm} warm requests per function on one process. Target: init ≤ 1.20× the floor \
             (worst: {worst}); peak RSS ≤ 32 MiB (largest: {peak} MiB).\n",
            runs = self.runs,
            warm = self.warm_runs,
            worst = doc::times(self.worst_init_ratio()),
            peak = doc::mib(self.peak_rss()),
        )
    }
}

/// CPU time per warm request of each function (by binary name), in ms, over `n` requests: what
/// the cost table needs when the cold-start section is not run.
pub async fn cpu_only(
    dir: &Path,
    table: &str,
    n: usize,
) -> Result<std::collections::BTreeMap<String, f64>, String> {
    let vars = vars(table, &e2e::endpoint());
    let mut out = std::collections::BTreeMap::new();
    for (k, f) in FUNCTIONS.iter().enumerate() {
        crate::progress(&format!("CPU per request: {}", f.binary));
        let w = warm(&dir.join(f.binary), f.logical_id, &vars, n, |i| {
            event_for(f.event, &format!("bench-cpu{i}-{k}"))
        })
        .await?;
        out.insert(f.binary.to_owned(), w.cpu.as_secs_f64() * 1000.0);
    }
    crate::progress_done();
    Ok(out)
}

impl Section {
    /// CPU time per warm request by binary name, in ms.
    pub fn cpu(&self) -> std::collections::BTreeMap<String, f64> {
        self.rows
            .iter()
            .map(|r| (r.binary.to_owned(), r.warm.cpu.as_secs_f64() * 1000.0))
            .collect()
    }
}
