//! `campaign-draw-verify --reveal reveal.json --draw draw.json --spins spins.json --member <id>`:
//! re-derives every spin in `spins.json` (a page of `GET /v1/draws/{id}/spins`, or a list of
//! spins) from the revealed seed and the published odds. Exit status 0 when all match, 1 when
//! one does not (each mismatch printed), 2 on bad arguments.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (Some(reveal), Some(draw), Some(spins), Some(member)) =
        (arg("--reveal"), arg("--draw"), arg("--spins"), arg("--member"))
    else {
        eprintln!("usage: campaign-draw-verify --reveal FILE --draw FILE --spins FILE --member ID");
        return ExitCode::from(2);
    };
    let read = |path: &str| -> Result<serde_json::Value, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
    };
    let (reveal, draw, spins) = match (read(&reveal), read(&draw), read(&spins)) {
        (Ok(r), Ok(d), Ok(s)) => (r, d, s),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match draw_verify::verify(&reveal, &draw, &member, &spins) {
        Ok(n) => {
            println!("verified {n} spins: every outcome follows from the revealed seed");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in problems {
                println!("MISMATCH {p}");
            }
            ExitCode::from(1)
        }
    }
}
