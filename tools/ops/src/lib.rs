//! `campaign-ops`: one-off operations on the table, run by an operator with AWS credentials (or
//! against DynamoDB Local). Each is safe to run again and while the functions serve traffic.
//!
//! ```text
//! TABLE_NAME=<table> cargo run -p ops -- backfill-first-appearances [--segments N]
//! ```
//!
//! - `backfill-first-appearances`: records when members who predate first-appearance tracking
//!   first appeared — the earliest of their first ledger entry and first check-in — on their
//!   profile (docs/data-model.md, "Members"). Reads the whole table once (a parallel `Scan` of
//!   N segments, default 4).

use shared::store::Store;

pub const USAGE: &str =
    "usage: campaign-ops backfill-first-appearances [--segments N]   (TABLE_NAME must be set)";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    BackfillFirstAppearances { segments: i32 },
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
        _ => Err(USAGE.to_owned()),
    }
}

/// Runs a command; returns what to print.
pub async fn run(command: &Command, store: &Store) -> Result<String, shared::Error> {
    match command {
        Command::BackfillFirstAppearances { segments } => {
            let report = store.backfill_first_appearances(*segments).await?;
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
        for bad in [
            &[][..],
            &["backfill"],
            &["backfill-first-appearances", "--segments"],
            &["backfill-first-appearances", "--segments", "0"],
            &["backfill-first-appearances", "--segments", "x"],
            &["backfill-first-appearances", "--limit", "2"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
