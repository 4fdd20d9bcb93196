use super::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

const NOW: &str = "2026-11-24T00:00:00Z";

fn prize(id: &str, kind: PrizeKind, weight: u32) -> Prize {
    Prize {
        prize_id: id.into(),
        name: id.to_uppercase(),
        kind,
        value: (kind == PrizeKind::Points).then_some(10),
        weight,
        stock: None,
        per_member_max: None,
        rare: false,
        splits: None,
    }
}

fn spec() -> DrawSpec {
    DrawSpec {
        title: "Spring lottery".into(),
        description: String::new(),
        starts_at: at("2026-11-25T00:00:00Z"),
        ends_at: at("2026-12-25T00:00:00Z"),
        cost: 20,
        free_per_day: 1,
        daily_limit: 5,
        total_limit: None,
        prizes: vec![
            Prize {
                stock: Some(3),
                rare: true,
                ..prize("phone", PrizeKind::Physical, 5)
            },
            prize("points", PrizeKind::Points, 20),
            prize("thanks", PrizeKind::Nothing, 75),
        ],
        consolation: "thanks".into(),
        pity: None,
        share_bonus: 1,
    }
}

fn invalid(s: &DrawSpec, current: Option<&DrawSpec>, now: &str) -> &'static str {
    match validate(s, current, at(now)) {
        Err(DomainError::Invalid { field, .. }) => field,
        other => panic!("expected invalid, got {other:?}"),
    }
}

const SEED: [u8; 32] = {
    let mut s = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        s[i] = i as u8;
        i += 1;
    }
    s
};

#[test]
fn a_valid_draw_and_its_defaults() {
    assert_eq!(validate(&spec(), None, at(NOW)), Ok(()));
    let put: DrawSpec = serde_json::from_value(serde_json::json!({
        "title": "T", "starts_at": "2026-11-25T00:00:00Z", "ends_at": "2026-11-26T00:00:00Z",
        "daily_limit": 3, "consolation": "x",
        "prizes": [{ "prize_id": "x", "name": "X", "kind": "nothing", "weight": 1 }]
    }))
    .unwrap();
    assert_eq!((put.cost, put.free_per_day, put.share_bonus), (0, 0, 1));
    assert_eq!(validate(&put, None, at(NOW)), Ok(()));
    assert!(serde_json::from_value::<DrawSpec>(serde_json::json!({ "title": "T", "odds": 1 })).is_err());
}

#[test]
fn invalid_draws() {
    let bad = |change: fn(&mut DrawSpec)| {
        let mut s = spec();
        change(&mut s);
        invalid(&s, None, NOW)
    };
    assert_eq!(bad(|s| s.title = " ".into()), "title");
    assert_eq!(bad(|s| s.ends_at = s.starts_at), "ends_at");
    assert_eq!(bad(|s| s.ends_at = s.starts_at + Duration::days(367)), "ends_at");
    assert_eq!(bad(|s| s.cost = -1), "cost");
    assert_eq!(bad(|s| s.daily_limit = 0), "daily_limit");
    assert_eq!(bad(|s| s.daily_limit = MAX_DAILY_LIMIT + 1), "daily_limit");
    assert_eq!(bad(|s| s.free_per_day = 6), "free_per_day");
    assert_eq!(bad(|s| s.share_bonus = 6), "share_bonus");
    assert_eq!(bad(|s| s.total_limit = Some(0)), "total_limit");
    assert_eq!(bad(|s| s.prizes.clear()), "prizes");
    assert_eq!(bad(|s| s.prizes[1].prize_id = "phone".into()), "prize_id");
    assert_eq!(bad(|s| s.prizes[1].prize_id = "a b".into()), "prize_id");
    assert_eq!(bad(|s| s.prizes[1].weight = MAX_WEIGHT + 1), "weight");
    assert_eq!(bad(|s| s.prizes[1].value = None), "value");
    assert_eq!(bad(|s| s.prizes[2].value = Some(1)), "value");
    assert_eq!(bad(|s| s.prizes[0].stock = Some(MAX_STOCK + 1)), "stock");
    assert_eq!(bad(|s| s.prizes[0].per_member_max = Some(0)), "per_member_max");
    assert_eq!(bad(|s| s.prizes.iter_mut().for_each(|p| p.weight = 0)), "weight");
    assert_eq!(bad(|s| s.consolation = "nope".into()), "consolation");
    assert_eq!(bad(|s| s.consolation = "phone".into()), "consolation");
    assert_eq!(bad(|s| s.pity = Some(Pity { after: 1 })), "pity");
    assert_eq!(
        bad(|s| {
            s.pity = Some(Pity { after: 10 });
            s.prizes[0].rare = false;
        }),
        "pity"
    );
    assert_eq!(
        bad(|s| {
            s.prizes[2].kind = PrizeKind::Coupon;
            s.prizes[2].stock = Some(5);
        }),
        "stock"
    );
    assert_eq!(bad(|s| s.prizes[0].splits = Some(0)), "splits");
    assert_eq!(bad(|s| s.prizes[0].splits = Some(MAX_SPLITS + 1)), "splits");
    assert_eq!(bad(|s| s.prizes[1].splits = Some(2)), "splits");
    assert_eq!(
        bad(|s| {
            s.prizes = (0..12)
                .map(|i| Prize {
                    stock: Some(10),
                    splits: Some(8),
                    ..prize(&format!("p{i}"), PrizeKind::Physical, 1)
                })
                .chain([prize("thanks", PrizeKind::Nothing, 1)])
                .collect();
            s.consolation = "thanks".into();
        }),
        "splits"
    );
    assert_eq!(
        bad(|s| {
            s.prizes[2].kind = PrizeKind::Coupon;
        }),
        "consolation"
    );
    // The edges are allowed.
    let mut edges = spec();
    edges.prizes[0].splits = Some(MAX_SPLITS);
    edges.cost = 0;
    edges.free_per_day = 5;
    edges.share_bonus = 0;
    edges.pity = Some(Pity { after: 2 });
    edges.prizes[0].stock = Some(MAX_STOCK);
    assert_eq!(validate(&edges, None, at(NOW)), Ok(()));
}

/// Each limit refused one past its edge and allowed at it (the mutants of `validate` showed which
/// edges no test pinned).
#[test]
fn every_limit_holds_exactly_at_its_edge() {
    let check = |change: &dyn Fn(&mut DrawSpec)| {
        let mut s = spec();
        change(&mut s);
        match validate(&s, None, at(NOW)) {
            Ok(()) => "ok",
            Err(_) => invalid(&s, None, NOW),
        }
    };
    assert_eq!(check(&|s| s.title = "x".repeat(80)), "ok");
    assert_eq!(check(&|s| s.title = "x".repeat(81)), "title");
    assert_eq!(check(&|s| s.title = "a\u{7}b".into()), "title");
    assert_eq!(check(&|s| s.description = "d".repeat(500)), "ok");
    assert_eq!(check(&|s| s.description = "d".repeat(501)), "description");
    assert_eq!(check(&|s| s.description = "line\nline".into()), "ok");
    assert_eq!(check(&|s| s.description = "tab\there".into()), "description");
    assert_eq!(
        check(&|s| s.ends_at = s.starts_at + Duration::days(MAX_DAYS)),
        "ok"
    );
    assert_eq!(
        check(&|s| s.ends_at = s.starts_at + Duration::days(MAX_DAYS) + Duration::seconds(1)),
        "ends_at"
    );
    assert_eq!(check(&|s| s.share_bonus = s.daily_limit), "ok");
    assert_eq!(check(&|s| s.free_per_day = s.daily_limit), "ok");
    assert_eq!(
        check(&|s| {
            s.pity = Some(Pity { after: 1_000 });
            s.prizes[0].weight = 0;
        }),
        "pity"
    );
    assert_eq!(check(&|s| s.pity = Some(Pity { after: 1_000 })), "ok");
    assert_eq!(check(&|s| s.pity = Some(Pity { after: 1_001 })), "pity");
    let many = |n: usize| {
        move |s: &mut DrawSpec| {
            s.prizes = (0..n - 1)
                .map(|i| prize(&format!("p{i}"), PrizeKind::Nothing, 1))
                .chain([prize("thanks", PrizeKind::Nothing, 1)])
                .collect();
        }
    };
    assert_eq!(check(&many(MAX_PRIZES)), "ok");
    assert_eq!(check(&many(MAX_PRIZES + 1)), "prizes");
    assert_eq!(check(&|s| s.prizes[1].name = "n".repeat(80)), "ok");
    assert_eq!(check(&|s| s.prizes[1].name = "n".repeat(81)), "name");
    assert_eq!(check(&|s| s.prizes[1].name = " ".into()), "name");
    assert_eq!(check(&|s| s.prizes[1].name = "a\u{1b}b".into()), "name");
    assert_eq!(check(&|s| s.prizes[1].weight = MAX_WEIGHT), "ok");
    assert_eq!(check(&|s| s.prizes[1].value = Some(0)), "value");
    assert_eq!(check(&|s| s.prizes[1].value = Some(MAX_POSTING)), "ok");
    assert_eq!(check(&|s| s.prizes[1].value = Some(MAX_POSTING + 1)), "value");
    // 90 stock items exactly: 11 prizes of 8 and one of 2.
    let items = |last: u32| {
        move |s: &mut DrawSpec| {
            s.prizes = (0..12)
                .map(|i| Prize {
                    stock: Some(10),
                    splits: Some(if i == 11 { last } else { 8 }),
                    ..prize(&format!("p{i}"), PrizeKind::Physical, 1)
                })
                .chain([prize("thanks", PrizeKind::Nothing, 1)])
                .collect();
            s.consolation = "thanks".into();
        }
    };
    assert_eq!(check(&items(2)), "ok");
    assert_eq!(check(&items(3)), "splits");
}

#[test]
fn a_started_draw_keeps_its_odds_and_only_gains_stock() {
    let old = spec();
    let started = "2026-11-26T00:00:00Z";
    // Before the start anything valid goes.
    let mut before = spec();
    before.prizes[1].weight = 50;
    assert_eq!(validate(&before, Some(&old), at(NOW)), Ok(()));
    assert_eq!(invalid(&before, Some(&old), started), "prizes");
    let mut later_end = spec();
    later_end.ends_at = at("2026-12-31T00:00:00Z");
    later_end.prizes[0].stock = Some(10);
    assert_eq!(validate(&later_end, Some(&old), at(started)), Ok(()));
    let mut fewer = spec();
    fewer.prizes[0].stock = Some(2);
    assert_eq!(invalid(&fewer, Some(&old), started), "stock");
    let mut unlimited = spec();
    unlimited.prizes[0].stock = None;
    assert_eq!(validate(&unlimited, Some(&old), at(started)), Ok(()));
    let mut limited = spec();
    limited.prizes[1].stock = Some(100);
    assert_eq!(invalid(&limited, Some(&old), started), "stock");
    let mut moved = spec();
    moved.starts_at = at("2026-11-25T01:00:00Z");
    assert_eq!(invalid(&moved, Some(&old), started), "starts_at");
    let mut pity = spec();
    pity.pity = Some(Pity { after: 5 });
    assert_eq!(invalid(&pity, Some(&old), started), "prizes");
    let mut rare = spec();
    rare.prizes[1].rare = true;
    assert_eq!(invalid(&rare, Some(&old), started), "prizes");
    let mut consolation = spec();
    consolation.consolation = "points".into();
    assert_eq!(validate(&consolation, Some(&old), at(NOW)), Ok(()));
    assert_eq!(invalid(&consolation, Some(&old), started), "prizes");
}

#[test]
fn the_algorithm_matches_its_specification() {
    // Values computed independently with Python's hmac and hashlib from the written spec.
    let m = message("spring", "u-ann", 1, "lucky");
    assert_eq!(m, "campaign-draw-v1\nspring\nu-ann\n1\nlucky");
    assert_eq!(uniform(&SEED, &m, "draw", 100), 81);
    assert_eq!(uniform(&SEED, &m, "draw", 1_000_003), 156_458);
    assert_eq!(uniform(&SEED, &m, "pity", 7), 4);
    assert_eq!(
        commitment(&SEED),
        "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"
    );
    assert_eq!(uniform(&SEED, &m, "draw", 1), 0);
    assert_eq!(pick(&[5, 20, 75], 0), Some(0));
    assert_eq!(pick(&[5, 20, 75], 4), Some(0));
    assert_eq!(pick(&[5, 20, 75], 5), Some(1));
    assert_eq!(pick(&[5, 20, 75], 24), Some(1));
    assert_eq!(pick(&[5, 20, 75], 25), Some(2));
    assert_eq!(pick(&[5, 20, 75], 99), Some(2));
    assert_eq!(pick(&[5, 20, 75], 100), None);
    assert_eq!(pick(&[0, 3], 0), Some(1));
    assert_eq!(validate_client_seed(""), Ok(()));
    assert!(validate_client_seed(&"x".repeat(65)).is_err());
    assert!(validate_client_seed("tab\there").is_err());
}

#[test]
fn outcomes_follow_the_weights_chi_square_over_100k_spins() {
    let s = spec();
    let mut counts = [0u64; 3];
    let n = 100_000u64;
    for spin in 1..=n {
        let m = message("spring", "u-ann", spin, "");
        let o = outcome(&s, &SEED, &m, &MemberOdds::default(), |_| true);
        assert_eq!(o.why, Why::Drawn);
        let i = s.prizes.iter().position(|p| p.prize_id == o.prize).unwrap();
        counts[i] += 1;
    }
    let total = s.total_weight() as f64;
    let chi2: f64 = s
        .prizes
        .iter()
        .zip(counts)
        .map(|(p, c)| {
            let expected = n as f64 * f64::from(p.weight) / total;
            (c as f64 - expected).powi(2) / expected
        })
        .sum();
    // 2 degrees of freedom: 13.82 is the 0.1 % critical value.
    assert!(chi2 < 13.82, "chi-square {chi2} for {counts:?}");
}

#[test]
fn pity_triggers_exactly_when_due() {
    let mut s = spec();
    s.pity = Some(Pity { after: 4 });
    // Every 4th spin since the last rare one is rare (by pity when the draw was not), then the
    // count starts again.
    let mut odds = MemberOdds::default();
    let mut rare_at = Vec::new();
    let mut spin = 0u64;
    while rare_at.len() < 5 {
        spin += 1;
        let m = message("spring", "u-ann", spin, "");
        let o = outcome(&s, &SEED, &m, &odds, |_| true);
        let due = odds.since_rare + 1 >= 4;
        let rare = s.prize(&o.prize).unwrap().rare;
        if due {
            assert!(rare, "spin {spin}: pity was due: {o:?}");
            if o.drawn != o.prize {
                assert_eq!(o.why, Why::Pity);
            }
        } else if !rare {
            assert_eq!((o.why, &o.drawn), (Why::Drawn, &o.prize));
        }
        if rare {
            rare_at.push((spin, odds.since_rare));
        }
        odds = odds.after(&s, &o.prize);
    }
    assert!(rare_at.iter().all(|(_, since)| *since < 4), "{rare_at:?}");
    assert!(
        rare_at.iter().any(|(_, since)| *since == 3),
        "pity fired: {rare_at:?}"
    );
    // No rare prize in stock: the consolation, and pity stays due.
    let due = MemberOdds {
        since_rare: 3,
        won: BTreeMap::new(),
    };
    let m = message("spring", "u-ann", 1, "");
    let o = outcome(&s, &SEED, &m, &due, |p| !p.rare);
    assert_eq!((o.prize.as_str(), o.why), ("thanks", Why::OutOfStock));
    assert_eq!(due.after(&s, &o.prize).since_rare, 4);
    // Not due: no pity, whatever is drawn.
    let calm = MemberOdds {
        since_rare: 1,
        won: BTreeMap::new(),
    };
    assert_ne!(outcome(&s, &SEED, &m, &calm, |_| true).why, Why::Pity);
}

#[test]
fn stock_out_and_the_member_max_fall_back_to_the_consolation() {
    let mut s = spec();
    s.prizes[1].per_member_max = Some(2);
    // Find spins that draw each prize.
    let drawing = |id: &str| {
        (1..)
            .map(|spin| message("spring", "u-bob", spin, "seed"))
            .find(|m| outcome(&s, &SEED, m, &MemberOdds::default(), |_| true).drawn == id)
            .unwrap()
    };
    let phone = drawing("phone");
    let out = outcome(&s, &SEED, &phone, &MemberOdds::default(), |p| {
        p.prize_id != "phone"
    });
    assert_eq!(
        (out.drawn.as_str(), out.prize.as_str(), out.why),
        ("phone", "thanks", Why::OutOfStock)
    );
    let points = drawing("points");
    let twice = MemberOdds {
        since_rare: 0,
        won: BTreeMap::from([("points".to_owned(), 2)]),
    };
    let over = outcome(&s, &SEED, &points, &twice, |_| true);
    assert_eq!((over.prize.as_str(), over.why), ("thanks", Why::MemberMax));
    let once = MemberOdds {
        since_rare: 0,
        won: BTreeMap::from([("points".to_owned(), 1)]),
    };
    assert_eq!(outcome(&s, &SEED, &points, &once, |_| true).prize, "points");
    // The same inputs always give the same outcome; another client seed may not.
    let a = outcome(&s, &SEED, &points, &MemberOdds::default(), |_| true);
    assert_eq!(a, outcome(&s, &SEED, &points, &MemberOdds::default(), |_| true));
    assert_eq!(twice.after(&s, "points").won["points"], 3);
    assert_eq!(twice.after(&s, "phone").since_rare, 0);
}

#[test]
fn stock_spreads_over_its_items_and_members_start_at_their_own() {
    assert_eq!(split_shares(10, 3), [4, 3, 3]);
    assert_eq!(split_shares(2, 4), [1, 1, 0, 0]);
    assert_eq!(split_shares(9, 1), [9]);
    assert_eq!(split_shares(7, 0), [7]);
    let order = split_order("u-ann", 3);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, [0, 1, 2], "every item once");
    assert_eq!(order[1], (order[0] + 1) % 3);
    let starts: std::collections::BTreeSet<u32> =
        (0..40).map(|i| split_order(&format!("m{i}"), 3)[0]).collect();
    assert_eq!(starts.len(), 3, "members spread over the items");
    assert_eq!(split_order("u-ann", 1), [0]);
    // Code numbers: ranges in the order the item hands them out.
    let ranges = [(1, 3), (10, 2)];
    let numbers: Vec<Option<u64>> = (0..6).map(|u| code_number(&ranges, u)).collect();
    assert_eq!(numbers, [Some(1), Some(2), Some(3), Some(10), Some(11), None]);
    assert_eq!(validate_code("SPRING-001_a"), Ok(()));
    for bad in ["", "a b", "x".repeat(25).as_str(), "é"] {
        assert!(validate_code(bad).is_err(), "{bad:?}");
    }
    assert_eq!(validate_code(&"x".repeat(24)), Ok(()));
    let p = |kind, stock, splits| Prize {
        stock,
        splits,
        ..prize("p", kind, 1)
    };
    assert_eq!(p(PrizeKind::Physical, None, None).split_count(), 0);
    assert_eq!(p(PrizeKind::Physical, Some(3), None).split_count(), 1);
    assert_eq!(p(PrizeKind::Physical, Some(3), Some(4)).split_count(), 4);
    assert_eq!(p(PrizeKind::Coupon, None, None).split_count(), 1);
    assert!(is_open(&spec(), at("2026-11-25T00:00:00Z")));
    assert!(!is_open(&spec(), at("2026-11-24T23:59:59Z")));
    assert!(!is_open(&spec(), at("2026-12-25T00:00:00Z")));
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

#[test]
fn the_day_allows_free_then_paid_spins_up_to_the_limits() {
    let mut s = spec();
    s.total_limit = Some(7);
    let d1 = day("2026-11-25");
    let fresh = MemberDraw::default();
    // 1 free a day + 2 extra (tier), 5 a day in all.
    assert_eq!(
        fresh.allowance(&s, d1, 2),
        Allowance {
            spins_left_today: 5,
            free_spins_left_today: 3
        }
    );
    let mut state = fresh;
    let mut paid = vec![];
    for _ in 0..5 {
        let (payment, next) = state.spin(&s, d1, 2).unwrap();
        assert_eq!(next.version, state.version + 1);
        paid.push(payment);
        state = next;
    }
    assert_eq!(
        paid,
        [
            Payment::Free,
            Payment::Free,
            Payment::Free,
            Payment::Paid,
            Payment::Paid
        ]
    );
    assert_eq!((state.spins, state.day_spins, state.day_free), (5, 5, 3));
    assert_eq!(
        state.spin(&s, d1, 2),
        Err(DomainError::DrawLimit {
            which: "daily",
            limit: 5
        })
    );
    // A share adds a free spin but not past the daily limit; once a day.
    let shared = state.share(&s, d1).unwrap();
    assert_eq!(shared.version, state.version + 1, "written on the next version");
    assert!(state.version > 0);
    assert_eq!(shared.allowance(&s, d1, 2).free_spins_left_today, 0);
    assert_eq!(shared.share(&s, d1), Err(DomainError::AlreadySharedToday));
    // The next day: counters start again; the total limit of 7 leaves 2.
    let d2 = day("2026-11-26");
    assert_eq!(
        shared.allowance(&s, d2, 0),
        Allowance {
            spins_left_today: 2,
            free_spins_left_today: 1
        }
    );
    let (p1, s1) = shared.spin(&s, d2, 0).unwrap();
    assert!(!s1.shared && s1.day_bonus == 0 && s1.day == Some(d2));
    let after_share = s1.share(&s, d2).unwrap();
    assert_eq!(after_share.day_bonus, 1);
    let (p2, s2) = after_share.spin(&s, d2, 0).unwrap();
    assert_eq!((p1, p2), (Payment::Free, Payment::Free));
    assert_eq!(
        s2.spin(&s, day("2026-11-27"), 0),
        Err(DomainError::DrawLimit {
            which: "total",
            limit: 7
        })
    );
    // A free draw (cost 0): every spin within the limit is free.
    let mut free = spec();
    free.cost = 0;
    free.free_per_day = 0;
    assert_eq!(
        MemberDraw::default()
            .allowance(&free, d1, 0)
            .free_spins_left_today,
        5
    );
    // No share bonus: sharing is refused.
    let mut off = spec();
    off.share_bonus = 0;
    assert_eq!(
        MemberDraw::default().share(&off, d1),
        Err(DomainError::DrawSharesOff)
    );
}

#[test]
fn the_index_lists_draws_not_ended_up_to_twenty() {
    let now = at(NOW);
    let mut index = DrawIndex::default();
    for i in 0..MAX_OPEN_DRAWS {
        index = index.with(&format!("d{i}"), &spec(), now).unwrap();
    }
    assert_eq!(index.entries.len(), MAX_OPEN_DRAWS);
    assert_eq!(index.version, MAX_OPEN_DRAWS as u64);
    assert_eq!(
        index.with("one-more", &spec(), now),
        Err(DomainError::TooManyDraws { max: MAX_OPEN_DRAWS })
    );
    // A change of a listed draw replaces it; an ended draw drops out.
    let mut renamed = spec();
    renamed.title = "Renamed".into();
    let changed = index.with("d0", &renamed, now).unwrap();
    assert_eq!(changed.entries.len(), MAX_OPEN_DRAWS);
    assert!(changed.entries.iter().any(|e| e.title == "Renamed"));
    let later = at("2026-12-25T00:00:00Z");
    let mut next = spec();
    next.starts_at = later;
    next.ends_at = at("2026-12-26T00:00:00Z");
    let after = index.with("fresh", &next, later).unwrap();
    assert_eq!(
        after.entries.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["fresh"]
    );
    assert_eq!(after.open(later).len(), 1);
    assert!(after.open(at("2026-12-26T00:00:00Z")).is_empty());
    let listed = &after.entries[0];
    let limits = listed.limits();
    assert_eq!((limits.daily_limit, limits.free_per_day, limits.cost), (5, 1, 20));
    // An ended draw put again is not listed.
    let ended = index.with("d1", &spec(), later).unwrap();
    assert!(ended.entries.iter().all(|e| e.id != "d1"));
}
