//! `campaign-ops`: one-off operations on the table, run by an operator with AWS credentials (or
//! against DynamoDB Local). Each is safe to run again and while the functions serve traffic.
//!
//! ```text
//! TABLE_NAME=<table> cargo run -p ops -- backfill-first-appearances [--segments N]
//! TABLE_NAME=<table> cargo run -p ops -- settle-contests [--now <RFC 3339 instant>]
//! ```
//!
//! - `backfill-first-appearances`: records when members who predate first-appearance tracking
//!   first appeared — the earliest of their first ledger entry and first check-in — on their
//!   profile (docs/data-model.md, "Members"). Reads the whole table once (a parallel `Scan` of
//!   N segments, default 4).
//! - `settle-contests`: fires the settlement job once, as its schedule would (the same handler and
//!   event). `--now` settles as of a chosen instant; it needs `CAMPAIGN_DEV_CLOCK=1` (local runs
//!   only: a "now" in the future would settle running contests early).

pub const USAGE: &str = "usage: campaign-ops backfill-first-appearances [--segments N]
       campaign-ops settle-contests [--now <RFC 3339 instant>]   (TABLE_NAME must be set)";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    BackfillFirstAppearances {
        segments: i32,
    },
    SettleContests {
        now: Option<chrono::DateTime<chrono::Utc>>,
    },
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
        _ => Err(USAGE.to_owned()),
    }
}

/// Runs a command; returns what to print.
pub async fn run(command: &Command, app: &shared::App) -> Result<String, String> {
    match command {
        Command::SettleContests { now } => {
            if now.is_some() && !app.config.dev_clock {
                return Err("--now needs CAMPAIGN_DEV_CLOCK=1 (local runs only)".into());
            }
            let event =
                local_api::schedule::scheduled_event("SettleContestsFunction", chrono::Utc::now(), *now);
            let report = local_api::schedule::fire(app, "SettleContestsFunction", event).await?;
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())
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
