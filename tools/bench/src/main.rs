//! The benchmark: one command that measures what issue 14 asks and writes the generated parts of
//! docs/PERFORMANCE.md and its charts (docs/perf/*.svg).
//!
//! ```text
//! scripts/bench.sh [--quick] [--profile NAME] [--no-build] [--only SECTION,…]
//! ```
//!
//! `scripts/bench.sh` installs what is missing and starts DynamoDB Local, then runs this with
//! `AWS_ENDPOINT_URL_DYNAMODB` set. Sections: `cold` (cold start, memory, CPU per request),
//! `routes` (round trips and capacity per route, the cost table, hot items), `scale` (boards of
//! 10k to 1M entries, settling 1M participants), `load` (our layer against a bare SDK loop).

mod chart;
mod cold;
mod doc;
mod load;
mod machine;
mod routes;
mod scale;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

/// What a run was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    pub profile: String,
    pub build: bool,
    pub only: Option<BTreeSet<String>>,
    pub doc: PathBuf,
}

const USAGE: &str =
    "usage: bench [--quick] [--profile NAME] [--no-build] [--only cold,routes,scale,load] [--doc PATH]";

fn options() -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        profile: "release".into(),
        build: true,
        only: None,
        doc: local_api::repo_root().join("docs/PERFORMANCE.md"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => o.quick = true,
            "--no-build" => o.build = false,
            "--profile" => o.profile = args.next().ok_or(USAGE)?,
            "--doc" => o.doc = args.next().ok_or(USAGE)?.into(),
            "--only" => o.only = Some(args.next().ok_or(USAGE)?.split(',').map(str::to_owned).collect()),
            _ => return Err(USAGE.into()),
        }
    }
    Ok(o)
}

impl Options {
    fn runs(&self, section: &str) -> bool {
        self.only.as_ref().is_none_or(|s| s.contains(section))
    }
}

/// Prints a progress line in place (long runs show where they are).
pub fn progress(what: &str) {
    let mut out = std::io::stderr();
    let _ = write!(out, "\r\x1b[2K{what}");
    let _ = out.flush();
}

/// Ends a progress line.
pub fn progress_done() {
    eprintln!();
}

/// The functions' packages, and the binaries the benchmark runs besides them.
fn packages() -> Vec<&'static str> {
    let mut p: Vec<&str> = cold::FUNCTIONS.iter().map(|f| f.binary).collect();
    p.extend(["bench-floor", "local-api"]);
    p
}

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("bench: {err}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let o = options()?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    println!("command: {command}");
    let facts = machine::facts();
    for (k, v) in &facts {
        println!("{k}: {v}");
    }
    let build = if o.build {
        let seconds = machine::build(&o.profile, &packages())?;
        println!(
            "build: {seconds:.0} s (profile {}, {} packages)",
            o.profile,
            packages().len()
        );
        Some(seconds)
    } else {
        None
    };
    let dir = machine::target_dir(&o.profile);
    let mut doc = std::fs::read_to_string(&o.doc).map_err(|e| format!("{}: {e}", o.doc.display()))?;
    let charts = o
        .doc
        .parent()
        .map(|d| d.join("perf"))
        .unwrap_or_else(|| "perf".into());
    std::fs::create_dir_all(&charts).map_err(|e| e.to_string())?;

    let env = e2e::TestEnv::new().await;
    let mut run_facts = vec![
        format!(
            "- command: `{}`",
            command.replace(&*local_api::repo_root().to_string_lossy(), ".")
        ),
        format!("- date: {}", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")),
        format!(
            "- profile: `{}`{}",
            o.profile,
            if o.quick { ", `--quick`" } else { "" }
        ),
    ];
    run_facts.extend(facts.iter().map(|(k, v)| format!("- {k}: {v}")));
    if let Some(s) = build {
        run_facts.push(format!(
            "- build of the {} benchmarked packages: {s:.0} s",
            packages().len()
        ));
    }

    cold::set_up(&env.app).await?;
    let warm = if o.quick { 50 } else { 200 };
    let mut cpu = None;
    if o.runs("cold") {
        let section = cold::run(&dir, &env.table, 20, warm).await?;
        println!("{}", section.markdown(&o.profile));
        chart::cold(&charts.join("cold-start.svg"), &section)?;
        doc = doc::replace(&doc, "cold", &section.markdown(&o.profile))?;
        cpu = Some(section.cpu());
    }
    if o.runs("routes") {
        let members = if o.quick { 8 } else { 32 };
        let measured = routes::run(&env, members).await?;
        let cpu = match cpu {
            Some(cpu) => cpu,
            None => cold::cpu_only(&dir, &env.table, warm).await?,
        };
        let prices = routes::prices()?;
        let memory = 256.0;
        let text = routes::markdown(&measured);
        println!("{text}");
        doc = doc::replace(&doc, "routes", &text)?;
        let text = routes::cost_markdown(&prices, &measured, &cpu, memory);
        println!("{text}");
        doc = doc::replace(&doc, "cost", &text)?;
        let text = routes::memory_markdown(&prices, &measured, &cpu);
        println!("{text}");
        doc = doc::replace(&doc, "memory", &text)?;
        let text = format!(
            "{}\nFrom {members} members per route (each its own request), at 1,000 requests a second spread \
             over many members. A conflict is assumed when two transactions meet on an item within {} ms.\n",
            routes::hot_markdown(&measured, 1000.0),
            routes::HOLD_ASSUMED_MS
        );
        println!("{text}");
        doc = doc::replace(&doc, "hot", &text)?;
    }

    if o.runs("scale") {
        let (sizes, prizes): (&[u64], u64) = if o.quick {
            (&[10_000, 100_000], 1_000)
        } else {
            (&[10_000, 100_000, 1_000_000], 1_000)
        };
        let section = scale::run(sizes, prizes).await?;
        let text = section.markdown();
        println!("{text}");
        chart::scale(&charts.join("scale.svg"), &section)?;
        doc = doc::replace(&doc, "scale", &text)?;
    }

    if o.runs("load") {
        let seconds = if o.quick { 5 } else { 15 };
        let section = load::run(&dir, &env, 16, seconds).await?;
        let text = section.markdown();
        println!("{text}");
        chart::load(&charts.join("load.svg"), &section)?;
        doc = doc::replace(&doc, "load", &text)?;
    }

    doc = doc::replace(&doc, "run", &run_facts.join("\n"))?;
    std::fs::write(&o.doc, doc).map_err(|e| e.to_string())?;
    println!("wrote {} and {}", o.doc.display(), charts.display());
    Ok(())
}
