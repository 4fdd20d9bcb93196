//! Re-derives a member's spins of a draw from what the API answers: the revealed seed
//! (`GET /v1/draws/{id}/reveal`), the published odds (`GET /v1/draws/{id}`) and the member's
//! spins (`GET /v1/draws/{id}/spins`). The algorithm is `campaign-draw-v1` (docs/data-model.md,
//! "Draws"); `tools/verify_draw.py` is an independent implementation of it.

use chrono::{DateTime, Utc};
use serde_json::Value;
use shared::domain::draws::{self, DrawSpec, MemberOdds, Pity, Prize, PrizeKind, Why};

/// The command line (`--reveal FILE --draw FILE --spins FILE --member ID`): prints the verdict
/// and returns the exit status (0 all match, 1 a mismatch, 2 bad input).
pub fn run(args: &[String]) -> u8 {
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
        return 2;
    };
    let read = |path: &str| -> Result<Value, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
    };
    let (reveal, draw, spins) = match (read(&reveal), read(&draw), read(&spins)) {
        (Ok(r), Ok(d), Ok(s)) => (r, d, s),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("{e}");
            return 2;
        }
    };
    match verify(&reveal, &draw, &member, &spins) {
        Ok(n) => {
            println!("verified {n} spins: every outcome follows from the revealed seed");
            0
        }
        Err(problems) => {
            for p in problems {
                println!("MISMATCH {p}");
            }
            1
        }
    }
}

/// Checks every spin; returns how many were checked, or every mismatch found.
pub fn verify(reveal: &Value, draw: &Value, member: &str, spins: &Value) -> Result<usize, Vec<String>> {
    let mut problems = vec![];
    let seed = match reveal["server_seed"].as_str().and_then(from_hex) {
        Some(seed) => seed,
        None => return Err(vec!["the reveal has no 32-byte hex server_seed".into()]),
    };
    let commitment = draws::commitment(&seed);
    if reveal["commitment"].as_str() != Some(commitment.as_str()) {
        problems.push(format!(
            "SHA-256 of the seed is {commitment}, not the commitment published"
        ));
    }
    if let Some(published) = draw["commitment"].as_str().filter(|c| *c != commitment) {
        problems.push(format!(
            "the draw published commitment {published}, the seed hashes to {commitment}"
        ));
    }
    let Some(draw_id) = reveal["draw_id"].as_str() else {
        return Err(vec!["the reveal has no draw_id".into()]);
    };
    let spec = match odds(draw) {
        Ok(spec) => spec,
        Err(e) => return Err(vec![e]),
    };
    let list = spins.get("spins").unwrap_or(spins);
    let Some(list) = list.as_array() else {
        return Err(vec!["spins must be a list (or a page with `spins`)".into()]);
    };
    let mut sorted: Vec<&Value> = list.iter().collect();
    sorted.sort_by_key(|s| s["spin"].as_u64().unwrap_or(0));
    let mut previous: Option<(u64, MemberOdds, String)> = None;
    for spin in &sorted {
        if let Err(e) = check(&spec, &seed, draw_id, member, reveal, spin, &previous) {
            problems.push(e);
        }
        let n = spin["spin"].as_u64().unwrap_or(0);
        let recorded = recorded_odds(spin);
        let prize = spin["prize"]["prize_id"].as_str().unwrap_or_default().to_owned();
        previous = Some((n, recorded, prize));
    }
    match problems.is_empty() {
        true => Ok(sorted.len()),
        false => Err(problems),
    }
}

fn recorded_odds(spin: &Value) -> MemberOdds {
    let proof = &spin["proof"];
    MemberOdds {
        since_rare: proof["since_rare"].as_u64().unwrap_or(0) as u32,
        won: proof["won"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0) as u32))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn check(
    spec: &DrawSpec,
    seed: &[u8; 32],
    draw_id: &str,
    member: &str,
    reveal: &Value,
    spin: &Value,
    previous: &Option<(u64, MemberOdds, String)>,
) -> Result<(), String> {
    let n = spin["spin"].as_u64().ok_or("a spin without a number")?;
    let proof = &spin["proof"];
    let client_seed = proof["client_seed"].as_str().unwrap_or_default();
    let odds = recorded_odds(spin);
    // The member's state must follow from their previous spin (or be fresh on the first).
    let expected = match previous {
        Some((m, before, prize)) if *m + 1 == n => Some(before.after(spec, prize)),
        _ if n == 1 => Some(MemberOdds::default()),
        _ => None,
    };
    if let Some(expected) = expected.filter(|e| *e != odds) {
        return Err(format!(
            "spin {n}: recorded state {odds:?}, expected {expected:?}"
        ));
    }
    let out: Vec<&str> = proof["out_of_stock"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let at: Option<DateTime<Utc>> = spin["at"].as_str().and_then(|t| t.parse().ok());
    for prize in &out {
        let ran_out: Option<DateTime<Utc>> = reveal["ran_out"][prize].as_str().and_then(|t| t.parse().ok());
        match (ran_out, at) {
            (Some(r), Some(a)) if r <= a => {}
            _ => {
                return Err(format!(
                    "spin {n}: {prize} claimed out of stock before it ran out"
                ));
            }
        }
    }
    let message = draws::message(draw_id, member, n, client_seed);
    let outcome = draws::outcome(spec, seed, &message, &odds, |p| {
        !out.contains(&p.prize_id.as_str())
    });
    let why = match outcome.why {
        Why::Drawn => "drawn",
        Why::Pity => "pity",
        Why::OutOfStock => "out_of_stock",
        Why::MemberMax => "member_max",
    };
    let got = (
        proof["drawn"].as_str().unwrap_or_default(),
        spin["prize"]["prize_id"].as_str().unwrap_or_default(),
        proof["why"].as_str().unwrap_or_default(),
    );
    if got != (outcome.drawn.as_str(), outcome.prize.as_str(), why) {
        return Err(format!(
            "spin {n}: recorded {got:?}, the seed gives ({}, {}, {why})",
            outcome.drawn, outcome.prize
        ));
    }
    Ok(())
}

/// The published odds: prizes in order (id, weight, rare, per-member max), consolation, pity.
fn odds(draw: &Value) -> Result<DrawSpec, String> {
    let prizes = draw["prizes"].as_array().ok_or("the draw has no prizes")?;
    let prizes = prizes
        .iter()
        .map(|p| {
            Ok(Prize {
                prize_id: p["prize_id"]
                    .as_str()
                    .ok_or("a prize without prize_id")?
                    .to_owned(),
                name: String::new(),
                kind: PrizeKind::Nothing,
                value: None,
                weight: p["weight"].as_u64().ok_or("a prize without weight")? as u32,
                stock: None,
                per_member_max: p["per_member_max"].as_u64().map(|m| m as u32),
                rare: p["rare"].as_bool().unwrap_or(false),
                splits: None,
            })
        })
        .collect::<Result<Vec<_>, &str>>()?;
    Ok(DrawSpec {
        title: String::new(),
        description: String::new(),
        starts_at: DateTime::<Utc>::MIN_UTC,
        ends_at: DateTime::<Utc>::MAX_UTC,
        cost: 0,
        free_per_day: 0,
        daily_limit: 1,
        total_limit: None,
        prizes,
        consolation: draw["consolation"]
            .as_str()
            .ok_or("the draw has no consolation")?
            .to_owned(),
        pity: draw["pity"]["after"]
            .as_u64()
            .map(|after| Pity { after: after as u32 }),
        share_bonus: 0,
    })
}

fn from_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
