//! `campaign-ops`: one-off operations on the table, run by an operator with AWS credentials (or
//! against DynamoDB Local). Each is safe to run again and while the functions serve traffic.
//!
//! ```text
//! TABLE_NAME=<table> cargo run -p ops -- backfill-first-appearances [--segments N]
//! TABLE_NAME=<table> cargo run -p ops -- settle-contests [--now <RFC 3339 instant>]
//! cargo run -p ops -- check-deploy [Name=Value ...]
//! TABLE_NAME=<table> cargo run -p ops -- audit
//! ```
//!
//! - `backfill-first-appearances`: records when members who predate first-appearance tracking
//!   first appeared — the earliest of their first ledger entry and first check-in — on their
//!   profile (docs/data-model.md, "Members"). Reads the whole table once (a parallel `Scan` of
//!   N segments, default 4).
//! - `settle-contests`: fires the settlement job once, as its schedule would (the same handler and
//!   event). `--now` settles as of a chosen instant; it needs `CAMPAIGN_DEV_CLOCK=1` (local runs
//!   only: a "now" in the future would settle running contests early).
//! - `check-deploy`: the pre-deploy check of the template's parameters (README, "Deploy with
//!   SAM"): the values you will pass to `sam deploy --parameter-overrides`, over the defaults,
//!   read by the very code a cold start runs (`Config::from_lookup`), so a zone that is not in the
//!   IANA database or a number out of range is refused here rather than by every cold start.
//!   CloudFormation's own rules (patterns, ranges) catch the rest at deploy time.
//! - `audit`: reads the whole table and checks every invariant the features define ([`audit`]):
//!   balances, the ledger's numbering and guards, stock, draws, contest prizes, referral caps,
//!   board and contest scores. Prints a report; exits non-zero on any violation.

pub mod audit;

pub const USAGE: &str = "usage: campaign-ops backfill-first-appearances [--segments N]
       campaign-ops settle-contests [--now <RFC 3339 instant>]   (TABLE_NAME must be set)
       campaign-ops check-deploy [Name=Value ...]               (the sam deploy parameter overrides)
       campaign-ops audit                                       (TABLE_NAME must be set)";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    BackfillFirstAppearances {
        segments: i32,
    },
    SettleContests {
        now: Option<chrono::DateTime<chrono::Utc>>,
    },
    CheckDeploy {
        overrides: Vec<(String, String)>,
    },
    Audit,
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    match args {
        [cmd, rest @ ..] if cmd == "backfill-first-appearances" => {
            let segments = match rest {
                [] => 4,
                [flag, n] if flag == "--segments" => n
                    .parse::<i32>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| format!("--segments must be 1-1000, not {n}"))?,
                _ => return Err(USAGE.to_owned()),
            };
            Ok(Command::BackfillFirstAppearances { segments })
        }
        [cmd, rest @ ..] if cmd == "settle-contests" => match rest {
            [] => Ok(Command::SettleContests { now: None }),
            [flag, at] if flag == "--now" => chrono::DateTime::parse_from_rfc3339(at)
                .map(|t| Command::SettleContests {
                    now: Some(t.with_timezone(&chrono::Utc)),
                })
                .map_err(|_| format!("--now must be an RFC 3339 instant, not {at}")),
            _ => Err(USAGE.to_owned()),
        },
        [cmd] if cmd == "audit" => Ok(Command::Audit),
        [cmd, rest @ ..] if cmd == "check-deploy" => rest
            .iter()
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
                _ => Err(format!("{pair}: expected Name=Value")),
            })
            .collect::<Result<_, _>>()
            .map(|overrides| Command::CheckDeploy { overrides }),
        _ => Err(USAGE.to_owned()),
    }
}

/// Which environment variable of the functions each template parameter becomes.
const PARAMETER_ENV: &[(&str, &str)] = &[
    ("BusinessTimeZone", "BUSINESS_TIME_ZONE"),
    ("PointsValidityMonths", "POINTS_VALIDITY_MONTHS"),
    ("HoldMinutes", "HOLD_MINUTES"),
    ("PurchaseRateBps", "PURCHASE_RATE_BPS"),
];

/// [`check_deploy`] on this repository's template.yaml.
pub fn check_deploy_repo(overrides: &[(String, String)]) -> Result<String, String> {
    let template = local_api::template::Template::load(&local_api::repo_root().join("template.yaml"))
        .map_err(|e| e.to_string())?;
    check_deploy(&template, overrides)
}

/// The pre-deploy check: `overrides` over the template's defaults. Answers what was checked, or
/// every problem found.
pub fn check_deploy(
    template: &local_api::template::Template,
    overrides: &[(String, String)],
) -> Result<String, String> {
    let mut values: std::collections::BTreeMap<String, Option<String>> =
        template.parameters().into_iter().collect();
    let mut problems = Vec::new();
    for (name, value) in overrides {
        match values.get_mut(name) {
            Some(slot) => *slot = Some(value.clone()),
            None => problems.push(format!("{name}: the template has no such parameter")),
        }
    }
    let value = |name: &str| values.get(name).cloned().flatten().unwrap_or_default();
    for required in ["JwtIssuer", "JwtAudience"] {
        if value(required).is_empty() {
            problems.push(format!("{required}: required (no default)"));
        }
    }
    let issuer = value("JwtIssuer");
    if !issuer.is_empty() && !issuer.starts_with("https://") {
        problems.push(format!("JwtIssuer: {issuer:?} is not an https:// URL"));
    }
    if !value("LocalDynamoDbEndpoint").is_empty() {
        problems.push("LocalDynamoDbEndpoint: for sam local runs only; leave it empty on AWS".into());
    }
    if value("LocalDevClock") != "0" {
        problems.push("LocalDevClock: for sam local runs only; leave it 0 on AWS".into());
    }
    // What a cold start does with these values, run now.
    let config = shared::Config::from_lookup(|env| {
        if env == "TABLE_NAME" {
            return Some("check".to_owned());
        }
        let (parameter, _) = PARAMETER_ENV.iter().find(|(_, e)| *e == env)?;
        Some(value(parameter))
    });
    let config = match config {
        Ok(config) => Some(config),
        Err(err) => {
            problems.push(err.to_string());
            None
        }
    };
    match (config, problems.is_empty()) {
        (Some(config), true) => Ok(format!(
            "ok: business zone {}, points valid {} months, holds {} minutes, {} bps a yuan, issuer {issuer}",
            config.business_zone, config.validity_months, config.hold_minutes, config.purchase_rate_bps
        )),
        _ => Err(problems.join("\n")),
    }
}

/// Audits the app's table in its business zone, drawing a progress line on stderr when it is a
/// terminal.
pub async fn audit_table(app: &shared::App) -> Result<audit::Report, String> {
    use std::io::IsTerminal;
    let store = &app.store;
    let estimate = store
        .client()
        .describe_table()
        .table_name(store.table())
        .send()
        .await
        .ok()
        .and_then(|t| t.table?.item_count)
        .unwrap_or(0);
    let tty = std::io::stderr().is_terminal();
    let report = audit::run(store.client(), store.table(), app.config.business_zone, |read| {
        if tty {
            eprint!("\r{}", progress_line(read, estimate));
        }
    })
    .await?;
    if tty {
        eprintln!();
    }
    Ok(report)
}

/// `read` items of about `estimate` (DynamoDB's item count, refreshed every few hours; 0 if
/// unknown) as a bar.
pub fn progress_line(read: usize, estimate: i64) -> String {
    let estimate = usize::try_from(estimate).unwrap_or(0);
    if estimate == 0 {
        return format!("scanning: {read} items");
    }
    let estimate = estimate.max(read);
    let filled = read * 30 / estimate;
    format!(
        "scanning [{}{}] {read}/~{estimate} items",
        "#".repeat(filled),
        " ".repeat(30 - filled)
    )
}

/// Runs a command; returns what to print.
pub async fn run(command: &Command, app: &shared::App) -> Result<String, String> {
    match command {
        Command::CheckDeploy { overrides } => check_deploy_repo(overrides),
        Command::SettleContests { now } => {
            if now.is_some() && !app.config.dev_clock {
                return Err("--now needs CAMPAIGN_DEV_CLOCK=1 (local runs only)".into());
            }
            let event =
                local_api::schedule::scheduled_event("SettleContestsFunction", chrono::Utc::now(), *now);
            let report = local_api::schedule::fire(app, "SettleContestsFunction", event).await?;
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())
        }
        Command::Audit => {
            let report = audit_table(app).await?;
            match report.is_clean() {
                true => Ok(report.render()),
                false => Err(report.render()),
            }
        }
        Command::BackfillFirstAppearances { segments } => {
            let report = app
                .store
                .backfill_first_appearances(*segments)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "first appearances: {} members with ledger entries or check-ins, {} profiles updated",
                report.members, report.updated
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn check(overrides: &[&str]) -> Result<String, String> {
        let template =
            local_api::template::Template::load(&local_api::repo_root().join("template.yaml")).unwrap();
        let Ok(Command::CheckDeploy { overrides }) = parse(&args(&[&["check-deploy"], overrides].concat()))
        else {
            panic!("parse");
        };
        check_deploy(&template, &overrides)
    }

    const ISSUER: &str = "JwtIssuer=https://cognito-idp.ap-east-1.amazonaws.com/ap-east-1_AbC";

    #[test]
    fn the_pre_deploy_check_passes_good_values_and_names_every_bad_one() {
        let ok = check(&[ISSUER, "JwtAudience=app,shop"]).unwrap();
        assert!(ok.contains("Asia/Shanghai"), "{ok}");
        let ok = check(&[
            ISSUER,
            "JwtAudience=app",
            "BusinessTimeZone=America/Argentina/Buenos_Aires",
        ])
        .unwrap();
        assert!(ok.contains("Buenos_Aires"), "{ok}");
        // Shaped like a zone (CloudFormation's pattern lets it through) but not in the IANA database.
        let err = check(&[ISSUER, "JwtAudience=app", "BusinessTimeZone=Asia/Atlantis"]).unwrap_err();
        assert!(
            err.contains("BUSINESS_TIME_ZONE") && err.contains("Asia/Atlantis"),
            "{err}"
        );
        let err = check(&[
            "JwtIssuer=http://issuer",
            "HoldMinutes=0",
            "Nope=1",
            "LocalDevClock=1",
        ])
        .unwrap_err();
        for expected in [
            "JwtAudience: required",
            "not an https:// URL",
            "HOLD_MINUTES",
            "Nope: the template",
            "LocalDevClock",
        ] {
            assert!(err.contains(expected), "{expected} in {err}");
        }
        let err = check(&[
            ISSUER,
            "JwtAudience=a",
            "LocalDynamoDbEndpoint=http://127.0.0.1:8000",
        ])
        .unwrap_err();
        assert!(err.contains("LocalDynamoDbEndpoint"), "{err}");
        assert!(parse(&args(&["check-deploy", "=x"])).is_err());
        assert!(parse(&args(&["check-deploy", "BusinessTimeZone"])).is_err());
    }

    #[test]
    fn the_progress_line_fills_with_the_items_read() {
        assert_eq!(progress_line(7, 0), "scanning: 7 items");
        assert_eq!(
            progress_line(50, 100),
            format!("scanning [{}{}] 50/~100 items", "#".repeat(15), " ".repeat(15))
        );
        // The estimate is hours old: never past full.
        assert_eq!(
            progress_line(120, 100),
            format!("scanning [{}] 120/~120 items", "#".repeat(30))
        );
    }

    #[test]
    fn parses_the_backfill_and_refuses_anything_else() {
        assert_eq!(
            parse(&args(&["backfill-first-appearances"])),
            Ok(Command::BackfillFirstAppearances { segments: 4 })
        );
        assert_eq!(
            parse(&args(&["backfill-first-appearances", "--segments", "16"])),
            Ok(Command::BackfillFirstAppearances { segments: 16 })
        );
        assert_eq!(parse(&args(&["audit"])), Ok(Command::Audit));
        assert!(parse(&args(&["audit", "--fix"])).is_err());
        assert_eq!(
            parse(&args(&["settle-contests"])),
            Ok(Command::SettleContests { now: None })
        );
        assert_eq!(
            parse(&args(&["settle-contests", "--now", "2026-12-01T00:02:00+08:00"])),
            Ok(Command::SettleContests {
                now: Some("2026-11-30T16:02:00Z".parse().unwrap())
            })
        );
        for bad in [
            &[][..],
            &["backfill"],
            &["backfill-first-appearances", "--segments"],
            &["backfill-first-appearances", "--segments", "0"],
            &["backfill-first-appearances", "--segments", "x"],
            &["backfill-first-appearances", "--limit", "2"],
            &["settle-contests", "--now"],
            &["settle-contests", "--now", "tomorrow"],
            &["settle-contests", "now"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
