//! `campaign-draw-verify --reveal reveal.json --draw draw.json --spins spins.json --member <id>`:
//! re-derives every spin in `spins.json` (a page of `GET /v1/draws/{id}/spins`, or a list of
//! spins) from the revealed seed and the published odds. Exit status 0 when all match, 1 when
//! one does not (each mismatch printed), 2 on bad arguments.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    ExitCode::from(draw_verify::run(&args))
}
