//! Overhead of our layer: the local API (release build, every handler in one process, as a
//! developer runs it) under concurrent load from `wrk`, for check-in, grant and spin; side by side
//! in the same run with a bare SDK loop (`bench-floor load`) sending the same DynamoDB requests at
//! the same concurrency. The store is the floor.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use e2e::fault::FaultProxy;
use serde_json::{Value, json};

use crate::cold::event_for;
use crate::doc;

/// The routes under load: (route, sample event).
pub const ROUTES: [(&str, &str); 3] = [
    ("POST /v1/checkins", "post-v1-checkins.json"),
    ("POST /v1/admin/points/grants", "post-v1-admin-points-grants.json"),
    ("POST /v1/draws/{id}/spins", "post-v1-draws-draw_id-spins.json"),
];

/// One side of one route.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub failed: u64,
}

pub struct Row {
    pub route: &'static str,
    pub ours: Figures,
    pub floor: Figures,
}

pub struct Section {
    pub rows: Vec<Row>,
    pub concurrency: usize,
    pub seconds: u64,
}

/// A wrk duration (`812.00us`, `5.12ms`, `1.20s`) in ms.
pub fn wrk_ms(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

/// What `wrk --latency` printed.
pub fn parse_wrk(out: &str) -> Figures {
    let mut f = Figures::default();
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => f.p50_ms = wrk_ms(v).unwrap_or(0.0),
            ["99%", v] => f.p99_ms = wrk_ms(v).unwrap_or(0.0),
            ["Requests/sec:", v] => f.rps = v.parse().unwrap_or(0.0),
            [n, "requests", "in", ..] => f.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => f.failed = n.parse().unwrap_or(0),
            _ => {}
        }
    }
    f
}

/// A Lua string literal.
fn lua(s: &str) -> String {
    format!("{s:?}")
}

/// The wrk script sending `n` requests made from a sample event, each for its own member.
fn script(file: &str, route: usize, n: usize) -> String {
    let mut out = String::from("local reqs = {\n");
    for i in 0..n {
        let user = format!("load-a{i}-{route}");
        let event: Value = serde_json::from_str(&event_for(file, &user)).expect("event");
        let (method, _) = event["routeKey"]
            .as_str()
            .unwrap_or("GET /")
            .split_once(' ')
            .expect("route key");
        let path = event["rawPath"].as_str().unwrap_or("/");
        let body = event["body"].as_str().unwrap_or("");
        // The member's token: the sample's claims, as the local API reads them.
        let sub = event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
            .as_str()
            .unwrap_or(&user);
        let token = if sub == user {
            e2e::member_token(&user)
        } else {
            e2e::service_token(sub)
        };
        let mut headers = vec![format!("[\"authorization\"]={}", lua(&format!("Bearer {token}")))];
        for name in ["x-debug-now", "idempotency-key", "content-type"] {
            if let Some(v) = event["headers"][name].as_str() {
                headers.push(format!("[{}]={}", lua(name), lua(v)));
            }
        }
        out.push_str(&format!(
            "{{{}, {}, {{{}}}, {}}},\n",
            lua(method),
            lua(path),
            headers.join(","),
            lua(body)
        ));
    }
    out.push_str(
        r#"}
local next_id = 1
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end
function init(args)
  i = id
end
function request()
  local r = reqs[i]
  if r == nil then
    r = reqs[1]
  end
  i = i + 2
  return wrk.format(r[1], r[2], r[3], r[4])
end
"#,
    );
    out
}

struct Api(Child);

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_api(dir: &Path, table: &str) -> Result<(Api, u16), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = Command::new(dir.join("local-api"))
        .current_dir(local_api::repo_root())
        .env("TABLE_NAME", table)
        .env("LOCAL_API_PORT", port.to_string())
        .env("CAMPAIGN_DEV_CLOCK", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("local-api: {e}"))?;
    let api = Api(child);
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok((api, port));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the local API did not open its port".into())
}

pub async fn run(
    dir: &Path,
    env: &e2e::TestEnv,
    concurrency: usize,
    seconds: u64,
) -> Result<Section, String> {
    let which = Command::new("wrk").arg("--version").output();
    if which.is_err() {
        return Err("wrk is not installed: run WITH_BENCH=1 scripts/setup.sh (scripts/bench.sh does)".into());
    }
    let (api, port) = start_api(dir, &env.table).await?;
    // Record each route's DynamoDB requests once (warm caches first), for the bare loop.
    let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
    let app = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
    let work = std::env::temp_dir().join(format!("bench-load-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for (r, (route, file)) in ROUTES.iter().enumerate() {
        let mut recorded = Vec::new();
        for m in 0..2 {
            let user = format!("loadrec{m}-{r}");
            recorded = e2e::capacity::run_event(&app, &proxy, &event_for(file, &user))
                .await?
                .1;
        }
        let calls: Vec<Value> = recorded
            .iter()
            .map(|c| json!([c.operation, crate::cold::without_token(&c.body)]))
            .collect();
        // Ours: wrk against the local API.
        crate::progress(&format!("load: {route} through the local API ({seconds} s)"));
        let lua_path = work.join(format!("route{r}.lua"));
        std::fs::write(&lua_path, script(file, r, 3_000 * seconds as usize)).map_err(|e| e.to_string())?;
        let out = Command::new("wrk")
            .args([
                "--latency",
                "-t2",
                &format!("-c{concurrency}"),
                &format!("-d{seconds}s"),
            ])
            .arg("-s")
            .arg(&lua_path)
            .arg(format!("http://127.0.0.1:{port}"))
            .output()
            .map_err(|e| format!("wrk: {e}"))?;
        let ours = parse_wrk(&String::from_utf8_lossy(&out.stdout));
        // The floor: the same DynamoDB requests from a bare SDK loop.
        crate::progress(&format!("load: {route} from a bare SDK loop ({seconds} s)"));
        let plan = json!({
            "calls": calls,
            "from": format!("loadrec1-{r}"),
            "prefix": format!("load-f{r}-"),
            "table": env.table,
            "concurrency": concurrency,
            "seconds": seconds,
        });
        let plan_path = work.join(format!("plan{r}.json"));
        std::fs::write(&plan_path, plan.to_string()).map_err(|e| e.to_string())?;
        let out = Command::new(dir.join("bench-floor"))
            .arg("load")
            .arg(&plan_path)
            .env("AWS_ENDPOINT_URL_DYNAMODB", e2e::endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("TABLE_NAME", &env.table)
            .output()
            .map_err(|e| format!("bench-floor: {e}"))?;
        let v: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("bench-floor load: {e}: {}", String::from_utf8_lossy(&out.stderr)))?;
        let floor = Figures {
            requests: v["requests"].as_u64().unwrap_or(0),
            rps: v["rps"].as_f64().unwrap_or(0.0),
            p50_ms: v["p50_ms"].as_f64().unwrap_or(0.0),
            p99_ms: v["p99_ms"].as_f64().unwrap_or(0.0),
            failed: v["failed"].as_u64().unwrap_or(0),
        };
        println!(
            "load {route}: ours {ours:?}, floor {floor:?} (first failure: {})",
            v["first_error"]
        );
        rows.push(Row { route, ours, floor });
    }
    crate::progress_done();
    drop(api);
    let _ = std::fs::remove_dir_all(&work);
    Ok(Section {
        rows,
        concurrency,
        seconds,
    })
}

impl Section {
    /// The worst ratio of ours to the floor: throughput (floor / ours) and p50 (ours / floor).
    pub fn worst_ratio(&self) -> f64 {
        self.rows
            .iter()
            .flat_map(|r| {
                [
                    r.floor.rps / r.ours.rps.max(f64::MIN_POSITIVE),
                    r.ours.p50_ms / r.floor.p50_ms.max(f64::MIN_POSITIVE),
                ]
            })
            .fold(0.0, f64::max)
    }

    pub fn markdown(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    format!("`{}`", r.route),
                    format!("{:.0}", r.ours.rps),
                    format!("{:.2}", r.ours.p50_ms),
                    format!("{:.2}", r.ours.p99_ms),
                    format!("{:.0}", r.floor.rps),
                    format!("{:.2}", r.floor.p50_ms),
                    format!("{:.2}", r.floor.p99_ms),
                    doc::times(r.floor.rps / r.ours.rps.max(f64::MIN_POSITIVE)),
                    format!("{} / {}", r.ours.failed, r.floor.failed),
                ]
            })
            .collect();
        let table = doc::table(
            &[
                "route",
                "ours: req/s",
                "p50 ms",
                "p99 ms",
                "bare SDK loop: req/s",
                "p50 ms",
                "p99 ms",
                "floor ÷ ours (req/s)",
                "failed (ours / floor)",
            ],
            &rows,
        );
        format!(
            "{table}\n{c} connections (`wrk -t2 -c{c} --latency`, a fresh member per request) for {s} s per side; \
             the bare loop runs {c} tasks. Everything (wrk, the local API, the loop, DynamoDB Local) shares this \
             machine's cores. Target: our layer ≤ 1.50× the floor (worst: **{w}**).\n",
            c = self.concurrency,
            s = self.seconds,
            w = doc::times(self.worst_ratio()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_wrk_prints() {
        let out = "Running 5s test @ http://127.0.0.1:1\n  2 threads and 16 connections\n  Latency Distribution\n     50%    5.12ms\n     75%    7.00ms\n     90%    9.00ms\n     99%  812.00us\n  2000 requests in 5.00s, 1.00MB read\n  Non-2xx or 3xx responses: 3\nRequests/sec:    400.12\n";
        let f = parse_wrk(out);
        assert_eq!(f.requests, 2000);
        assert_eq!(f.failed, 3);
        assert!((f.p50_ms - 5.12).abs() < 1e-9);
        assert!((f.p99_ms - 0.812).abs() < 1e-9);
        assert!((f.rps - 400.12).abs() < 1e-9);
        assert_eq!(wrk_ms("1.5s"), Some(1500.0));
    }
}
