use chrono::TimeZone;

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

const NOW: &str = "2026-11-23T00:00:00Z";

fn spec() -> ContestSpec {
    ContestSpec {
        title: " Autumn sprint ".into(),
        description: String::new(),
        starts_at: at("2026-11-24T00:00:00Z"),
        ends_at: at("2026-12-01T00:00:00Z"),
        metric: Metric::PointsEarned,
        reasons: None,
        campaign: None,
        entry: EntryMode::OptIn,
        format: Format::Solo,
        team_size: None,
        prizes: vec![
            Prize {
                from: 1,
                to: 1,
                points: Some(1_000),
                item: None,
            },
            Prize {
                from: 2,
                to: 3,
                points: None,
                item: Some("mug".into()),
            },
        ],
        grace_seconds: None,
    }
}

fn stored(spec: ContestSpec) -> Contest {
    Contest {
        id: "c1".into(),
        spec,
        cancelled: false,
        settled: None,
        progress: None,
        created_at: at(NOW),
        updated_at: at(NOW),
        version: 1,
    }
}

fn check(s: ContestSpec) -> Result<ContestSpec, DomainError> {
    validate("c1", s, None, at(NOW), 30)
}

fn field(r: Result<ContestSpec, DomainError>) -> &'static str {
    match r {
        Err(DomainError::Invalid { field, .. }) => field,
        other => panic!("expected invalid, got {other:?}"),
    }
}

#[test]
fn at_most_four_counted_reasons_are_given() {
    let with = |reasons: Vec<Reason>| {
        check(ContestSpec {
            reasons: Some(reasons),
            ..spec()
        })
    };
    assert_eq!(
        with(vec![Reason::Checkin, Reason::Purchase]).unwrap().reasons,
        Some(vec![Reason::Purchase, Reason::Checkin])
    );
    assert_eq!(
        with(vec![Reason::Purchase; 4]).unwrap().reasons,
        Some(vec![Reason::Purchase])
    );
    assert_eq!(field(with(vec![Reason::Purchase; 5])), "reasons");
    assert_eq!(all_counted().len(), COUNTED_REASONS);
}

#[test]
fn a_valid_contest_is_normalized() {
    let s = check(spec()).unwrap();
    assert_eq!(s.title, "Autumn sprint");
    assert_eq!(s.settle_after(), at("2026-12-01T00:01:00Z"));
    assert_eq!(s.last_prize_position(), 3);
    assert_eq!(s.prize_for(1).unwrap().points, Some(1_000));
    assert_eq!(s.prize_for(3).unwrap().item.as_deref(), Some("mug"));
    assert!(s.prize_for(4).is_none() && s.prize_for(0).is_none());
    let c = s.counting();
    assert_eq!(
        c.reasons,
        [
            Reason::Purchase,
            Reason::Checkin,
            Reason::Milestone,
            Reason::Referral
        ]
    );
    assert!(c.opt_in && !c.team && c.campaign.is_none());
    let checkins = check(ContestSpec {
        metric: Metric::Checkins,
        ..spec()
    })
    .unwrap();
    assert_eq!(checkins.campaign.as_deref(), Some("daily"));
    assert_eq!(checkins.counting().campaign.as_deref(), Some("daily"));
    assert!(checkins.counting().reasons.is_empty());
    // `referrals`: no reasons, no campaign.
    let referrals = check(ContestSpec {
        metric: Metric::Referrals,
        ..spec()
    })
    .unwrap();
    let counting = referrals.counting();
    assert_eq!(counting.metric, Metric::Referrals);
    assert!(counting.reasons.is_empty() && counting.campaign.is_none());
    assert_eq!(
        field(check(ContestSpec {
            metric: Metric::Referrals,
            reasons: Some(vec![Reason::Purchase]),
            ..spec()
        })),
        "reasons"
    );
    assert_eq!(
        field(check(ContestSpec {
            metric: Metric::Referrals,
            campaign: Some("daily".into()),
            ..spec()
        })),
        "campaign"
    );
    let everyone = ContestSpec {
        entry: EntryMode::Everyone,
        ..spec()
    };
    assert!(!everyone.counting().opt_in);
    let narrowed = check(ContestSpec {
        reasons: Some(vec![Reason::Checkin, Reason::Purchase, Reason::Checkin]),
        ..spec()
    })
    .unwrap();
    assert_eq!(narrowed.reasons.unwrap(), [Reason::Purchase, Reason::Checkin]);
    assert_eq!(
        ContestSpec {
            grace_seconds: Some(5),
            ..spec()
        }
        .grace(),
        Duration::seconds(5)
    );
}

#[test]
fn the_start_lies_beyond_the_cache_time() {
    let soon = ContestSpec {
        starts_at: at(NOW) + Duration::seconds(59),
        ..spec()
    };
    assert_eq!(field(check(soon.clone())), "starts_at");
    let ok = ContestSpec {
        starts_at: at(NOW) + Duration::seconds(60),
        ..spec()
    };
    assert!(check(ok).is_ok());
    assert!(validate("c1", soon, None, at(NOW), 0).is_ok());
}

#[test]
fn invalid_specs() {
    let cases: Vec<(ContestSpec, &str)> = vec![
        (
            ContestSpec {
                title: "  ".into(),
                ..spec()
            },
            "title",
        ),
        (
            ContestSpec {
                title: "x".repeat(81),
                ..spec()
            },
            "title",
        ),
        (
            ContestSpec {
                title: "a\u{7}".into(),
                ..spec()
            },
            "title",
        ),
        (
            ContestSpec {
                description: "d".repeat(2_001),
                ..spec()
            },
            "description",
        ),
        (
            ContestSpec {
                ends_at: at("2026-11-24T00:00:00Z"),
                ..spec()
            },
            "ends_at",
        ),
        (
            ContestSpec {
                ends_at: at("2027-11-26T00:00:00Z"),
                ..spec()
            },
            "ends_at",
        ),
        (
            ContestSpec {
                campaign: Some("daily".into()),
                ..spec()
            },
            "campaign",
        ),
        (
            ContestSpec {
                reasons: Some(vec![]),
                ..spec()
            },
            "reasons",
        ),
        (
            ContestSpec {
                reasons: Some(vec![Reason::Grant]),
                ..spec()
            },
            "reasons",
        ),
        (
            ContestSpec {
                metric: Metric::Checkins,
                reasons: Some(vec![Reason::Checkin]),
                ..spec()
            },
            "reasons",
        ),
        (
            ContestSpec {
                metric: Metric::Checkins,
                campaign: Some("a#b".into()),
                ..spec()
            },
            "campaign",
        ),
        (
            ContestSpec {
                team_size: Some(5),
                ..spec()
            },
            "team_size",
        ),
        (
            ContestSpec {
                format: Format::Team,
                ..spec()
            },
            "team_size",
        ),
        (
            ContestSpec {
                format: Format::Team,
                team_size: Some(51),
                ..spec()
            },
            "team_size",
        ),
        (
            ContestSpec {
                format: Format::Team,
                team_size: Some(0),
                ..spec()
            },
            "team_size",
        ),
        (
            ContestSpec {
                format: Format::Team,
                team_size: Some(5),
                entry: EntryMode::Everyone,
                ..spec()
            },
            "entry",
        ),
        (
            ContestSpec {
                grace_seconds: Some(0),
                ..spec()
            },
            "grace_seconds",
        ),
        (
            ContestSpec {
                grace_seconds: Some(86_401),
                ..spec()
            },
            "grace_seconds",
        ),
    ];
    for (s, expected) in cases {
        assert_eq!(field(check(s.clone())), expected, "{s:?}");
    }
    assert_eq!(field(validate("a b", spec(), None, at(NOW), 30)), "id");
    assert!(
        check(ContestSpec {
            grace_seconds: Some(86_400),
            ..spec()
        })
        .is_ok()
    );
    assert!(
        check(ContestSpec {
            ends_at: at("2027-11-25T00:00:00Z"),
            ..spec()
        })
        .is_ok()
    );
}

#[test]
fn invalid_prizes() {
    let prize = |from, to, points: Option<i64>, item: Option<&str>| Prize {
        from,
        to,
        points,
        item: item.map(str::to_owned),
    };
    let bad = [
        vec![prize(0, 1, Some(1), None)],
        vec![prize(2, 1, Some(1), None)],
        vec![prize(1, 1_001, Some(1), None)],
        vec![prize(1, 3, Some(1), None), prize(3, 4, Some(1), None)],
        vec![prize(1, 1, None, None)],
        vec![prize(1, 1, Some(1), Some("mug"))],
        vec![prize(1, 1, Some(0), None)],
        vec![prize(1, 1, Some(MAX_POSTING + 1), None)],
        vec![prize(1, 1, None, Some("  "))],
        vec![prize(1, 1, None, Some(&"m".repeat(101)))],
        (1..=21).map(|i| prize(i, i, Some(1), None)).collect(),
    ];
    for prizes in bad {
        assert_eq!(
            field(check(ContestSpec {
                prizes: prizes.clone(),
                ..spec()
            })),
            "prizes",
            "{prizes:?}"
        );
    }
    let team = ContestSpec {
        format: Format::Team,
        team_size: Some(5),
        prizes: vec![prize(1, 21, Some(1), None)],
        ..spec()
    };
    assert_eq!(field(check(team.clone())), "prizes");
    assert!(
        check(ContestSpec {
            prizes: vec![prize(1, 20, Some(1), None)],
            ..team
        })
        .is_ok()
    );
    assert!(
        check(ContestSpec {
            prizes: vec![prize(1, 1_000, Some(MAX_POSTING), None)],
            ..spec()
        })
        .is_ok()
    );
    assert!(
        check(ContestSpec {
            prizes: (1..=20).map(|i| prize(i, i, Some(1), None)).collect(),
            ..spec()
        })
        .is_ok()
    );
    assert!(
        check(ContestSpec {
            prizes: vec![prize(4, 5, None, Some(&"m".repeat(100)))],
            ..spec()
        })
        .is_ok()
    );
}

#[test]
fn before_the_start_anything_valid_may_change() {
    let old = stored(check(spec()).unwrap());
    let now = at("2026-11-23T12:00:00Z");
    let changed = ContestSpec {
        title: "Other".into(),
        metric: Metric::Checkins,
        ..spec()
    };
    assert!(validate("c1", changed, Some(&old), now, 30).is_ok());
    // Keeping a start that is still far enough ahead is fine; one too close is not, and moving
    // it needs the lead again.
    let late = at("2026-11-23T23:59:30Z");
    assert!(validate("c1", spec(), Some(&old), at("2026-11-23T23:58:00Z"), 30).is_ok());
    assert_eq!(field(validate("c1", spec(), Some(&old), late, 30)), "starts_at");
    let moved = ContestSpec {
        starts_at: at("2026-11-23T12:00:30Z"),
        ..spec()
    };
    assert_eq!(field(validate("c1", moved, Some(&old), now, 30)), "starts_at");
    let cancelled = Contest {
        cancelled: true,
        ..old
    };
    assert_eq!(field(validate("c1", spec(), Some(&cancelled), now, 30)), "id");
}

#[test]
fn after_the_start_only_a_longer_run_and_more_prizes() {
    let old = stored(check(spec()).unwrap());
    let now = at("2026-11-25T00:00:00Z");
    let longer = ContestSpec {
        ends_at: at("2026-12-02T00:00:00Z"),
        ..old.spec.clone()
    };
    assert!(validate("c1", longer, Some(&old), now, 30).is_ok());
    let mut more = old.spec.clone();
    more.prizes.push(Prize {
        from: 4,
        to: 10,
        points: Some(10),
        item: None,
    });
    assert!(validate("c1", more, Some(&old), now, 30).is_ok());
    let shorter = ContestSpec {
        ends_at: at("2026-11-30T00:00:00Z"),
        ..old.spec.clone()
    };
    assert_eq!(field(validate("c1", shorter, Some(&old), now, 30)), "ends_at");
    let retitled = ContestSpec {
        title: "New".into(),
        ..old.spec.clone()
    };
    assert_eq!(field(validate("c1", retitled, Some(&old), now, 30)), "contest");
    let mut fewer = old.spec.clone();
    fewer.prizes.pop();
    assert_eq!(field(validate("c1", fewer, Some(&old), now, 30)), "prizes");
    let mut changed_prize = old.spec.clone();
    changed_prize.prizes[0].points = Some(1);
    assert_eq!(
        field(validate("c1", changed_prize, Some(&old), now, 30)),
        "prizes"
    );
    // An extension must reach every warm function before the current end.
    let near_end = at("2026-11-30T23:59:30Z");
    let longer = ContestSpec {
        ends_at: at("2026-12-02T00:00:00Z"),
        ..old.spec.clone()
    };
    assert_eq!(field(validate("c1", longer, Some(&old), near_end, 30)), "ends_at");
    assert!(validate("c1", old.spec.clone(), Some(&old), near_end, 30).is_ok());
    let ended = at("2026-12-01T00:00:00Z");
    assert_eq!(
        field(validate("c1", old.spec.clone(), Some(&old), ended, 30)),
        "id"
    );
}

#[test]
fn status_and_due() {
    let mut c = stored(check(spec()).unwrap());
    assert_eq!(c.status(at(NOW)), Status::Upcoming);
    assert_eq!(c.status(at("2026-11-24T00:00:00Z")), Status::Running);
    assert_eq!(c.status(at("2026-12-01T00:00:00Z")), Status::Ended);
    assert!(!c.due(at("2026-12-01T00:00:59Z")));
    assert!(c.due(at("2026-12-01T00:01:00Z")));
    c.settled = Some(Settled {
        at: at("2026-12-01T00:02:00Z"),
        ..Settled::default()
    });
    assert_eq!(c.status(at("2026-12-02T00:00:00Z")), Status::Settled);
    assert!(!c.due(at("2026-12-02T00:00:00Z")));
    c.settled = None;
    c.cancelled = true;
    assert_eq!(c.status(at(NOW)), Status::Cancelled);
    assert!(!c.due(at("2026-12-02T00:00:00Z")));
}

fn window(id: &str, start: &str, end: &str) -> Contest {
    let mut c = stored(ContestSpec {
        starts_at: at(start),
        ends_at: at(end),
        ..spec()
    });
    c.id = id.into();
    c
}

#[test]
fn the_index_caps_running_contests_and_drops_ended_ones() {
    let now = at(NOW);
    let mut index = ContestIndex::default();
    for i in 0..5 {
        index = index
            .with(
                &window(&format!("c{i}"), "2026-11-24T00:00:00Z", "2026-11-30T00:00:00Z"),
                now,
            )
            .unwrap();
    }
    assert_eq!(index.version, 5);
    let sixth = window("c5", "2026-11-29T00:00:00Z", "2026-12-05T00:00:00Z");
    assert_eq!(
        index.with(&sixth, now),
        Err(DomainError::TooManyContests {
            max_active: 5,
            max_listed: 20
        })
    );
    // Windows are [start, end): one that starts when the others end does not overlap them.
    let after = window("c5", "2026-11-30T00:00:00Z", "2026-12-05T00:00:00Z");
    let index = index.with(&after, now).unwrap();
    assert_eq!(index.entries.len(), 6);
    // Putting one again replaces it; a cancelled one leaves.
    let again = index.with(&after, now).unwrap();
    assert_eq!(again.entries.len(), 6);
    let cancelled = Contest {
        cancelled: true,
        ..after.clone()
    };
    assert_eq!(index.with(&cancelled, now).unwrap().entries.len(), 5);
    // Once ended, entries are dropped on the next write.
    let later = at("2026-11-30T00:00:00Z");
    let pruned = index
        .with(
            &window("x", "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z"),
            later,
        )
        .unwrap();
    let ids: Vec<_> = pruned.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["c5", "x"]);
    // Settled contests leave too.
    let settled = Contest {
        settled: Some(Settled {
            at: later,
            ..Settled::default()
        }),
        ..after
    };
    assert_eq!(pruned.with(&settled, later).unwrap().entries.len(), 1);
}

#[test]
fn the_index_lists_at_most_twenty() {
    let now = at(NOW);
    let mut index = ContestIndex::default();
    for i in 0..20 {
        let start = at("2026-11-24T00:00:00Z") + Duration::days(i);
        let mut c = window(&format!("c{i}"), NOW, NOW);
        c.spec.starts_at = start;
        c.spec.ends_at = start + Duration::days(1);
        index = index.with(&c, now).unwrap();
    }
    let mut c = window("c20", NOW, NOW);
    c.spec.starts_at = at("2027-01-01T00:00:00Z");
    c.spec.ends_at = at("2027-01-02T00:00:00Z");
    assert!(matches!(
        index.with(&c, now),
        Err(DomainError::TooManyContests { .. })
    ));
}

#[test]
fn what_an_activity_counts_in() {
    let now = at(NOW);
    let index = ContestIndex::default()
        .with(&window("a", "2026-11-24T00:00:00Z", "2026-11-26T00:00:00Z"), now)
        .unwrap()
        .with(&window("b", "2026-11-25T00:00:00Z", "2026-11-27T00:00:00Z"), now)
        .unwrap();
    let ids = |at: DateTime<Utc>, now: DateTime<Utc>| {
        index
            .counting_at(at, now)
            .iter()
            .map(|e| e.id.clone())
            .collect::<Vec<_>>()
    };
    let t = at("2026-11-25T12:00:00Z");
    assert_eq!(ids(t, t), ["a", "b"]);
    assert_eq!(ids(at("2026-11-24T00:00:00Z"), t), ["a"]);
    assert!(ids(at("2026-11-23T23:59:59Z"), t).is_empty());
    // A reversal after "a" ended leaves "a" alone.
    assert_eq!(ids(t, at("2026-11-26T00:00:00Z")), ["b"]);
    assert!(ids(at("2026-11-27T00:00:00Z"), at("2026-11-27T00:00:00Z")).is_empty());
}

fn standing(id: &str, score: u64, secs: i64) -> Standing {
    Standing {
        id: id.into(),
        score,
        reached_at: Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap(),
    }
}

#[test]
fn winners_take_positions_and_ties_go_by_time() {
    let s = check(spec()).unwrap();
    let standings = [
        standing("a", 90, 5),
        standing("b", 50, 2),
        standing("c", 50, 1),
        standing("d", 50, 3),
        standing("e", 40, 0),
    ];
    let mut ordered = standings.to_vec();
    ordered.sort_by(Standing::order);
    let w = winners(&s, &ordered);
    let got: Vec<_> = w
        .iter()
        .map(|w| (w.position, w.rank, w.id.as_str(), w.score))
        .collect();
    // Positions 1-3 win; "d" shares rank 2 but reached 50 last, so position 4 and no prize.
    assert_eq!(got, [(1, 1, "a", 90), (2, 2, "c", 50), (3, 2, "b", 50)]);
    // Gaps in the prize table leave positions without a prize.
    let gap = ContestSpec {
        prizes: vec![Prize {
            from: 2,
            to: 2,
            points: Some(5),
            item: None,
        }],
        ..s.clone()
    };
    let w = winners(&gap, &ordered);
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].position, w[0].id.as_str()), (2, "c"));
    assert!(
        winners(
            &ContestSpec {
                prizes: vec![],
                ..s.clone()
            },
            &ordered
        )
        .is_empty()
    );
    assert_eq!(winners(&s, &ordered[..1]).len(), 1);
}

#[test]
fn team_names_follow_the_display_name_rules() {
    assert_eq!(team_name("  Red   Pandas ").unwrap(), "Red Pandas");
    assert!(matches!(
        team_name(""),
        Err(DomainError::Invalid { field: "name", .. })
    ));
    assert!(matches!(
        team_name("a\u{200b}b"),
        Err(DomainError::Invalid { field: "name", .. })
    ));
    assert!(team_name("anonymous").is_err());
}

#[test]
fn the_home_screen_reads_the_contest_index() {
    let index = ContestIndex::default()
        .with(
            &window("a", "2026-11-24T00:00:00Z", "2026-11-26T00:00:00Z"),
            at(NOW),
        )
        .unwrap();
    let json = serde_json::to_value(&index).unwrap();
    let home: crate::domain::home::HomeIndex = serde_json::from_value(json).unwrap();
    assert_eq!(home.entries[0].id, "a");
    assert_eq!(home.version, 1);
}

fn winner(position: u64, id: &str, members: &[&str]) -> Winner {
    Winner {
        position,
        rank: position,
        id: id.into(),
        score: 100 - position,
        reached_at: at(NOW),
        members: members.iter().map(|m| (*m).to_owned()).collect(),
    }
}

#[test]
fn payouts_follow_positions_and_pay_each_team_member() {
    let s = check(spec()).unwrap();
    let solo = payouts(
        &s,
        &[winner(1, "u1", &[]), winner(2, "u2", &[]), winner(4, "u4", &[])],
        false,
    );
    let got: Vec<_> = solo
        .iter()
        .map(|p| {
            (
                p.position,
                p.user_id.as_str(),
                p.points,
                p.item.as_deref(),
                p.team_id.is_some(),
            )
        })
        .collect();
    // Position 4 has no prize.
    assert_eq!(
        got,
        [
            (1, "u1", Some(1_000), None, false),
            (2, "u2", None, Some("mug"), false)
        ]
    );
    let team = payouts(&s, &[winner(1, "t1", &["m2", "m1", "m2"])], true);
    let got: Vec<_> = team
        .iter()
        .map(|p| (p.user_id.as_str(), p.team_id.as_deref(), p.points))
        .collect();
    // Every member once, in id order, each with the position's prize.
    assert_eq!(
        got,
        [("m1", Some("t1"), Some(1_000)), ("m2", Some("t1"), Some(1_000))]
    );
}

#[test]
fn totals_leave_out_the_unpaid() {
    let s = check(spec()).unwrap();
    let all = payouts(
        &s,
        &[winner(1, "u1", &[]), winner(2, "u2", &[]), winner(3, "u3", &[])],
        false,
    );
    let done = Settled::totals(&all, &[], at(NOW));
    assert_eq!(
        (done.winners, done.points_paid, done.to_fulfil, done.unpaid),
        (3, 1_000, 2, 0)
    );
    let unpaid = [Unpaid {
        position: 1,
        user_id: "u1".into(),
        reason: "x".into(),
    }];
    let done = Settled::totals(&all, &unpaid, at(NOW));
    assert_eq!(
        (done.winners, done.points_paid, done.to_fulfil, done.unpaid),
        (2, 0, 2, 1)
    );
    // Unpaid is matched by member and position both.
    let other = [Unpaid {
        position: 2,
        user_id: "u1".into(),
        reason: "x".into(),
    }];
    assert_eq!(Settled::totals(&all, &other, at(NOW)).points_paid, 1_000);
    assert_eq!(done.at, at(NOW));
}

#[test]
fn a_top_is_complete_only_when_the_counters_agree() {
    let counters = |pairs: &[(u64, u64)]| pairs.iter().copied().collect::<BTreeMap<u64, u64>>();
    let top = [standing("a", 500, 0), standing("b", 90, 0), standing("c", 50, 0)];
    // Buckets: 500 → 500, 90 → 90, 50 → 50, 40 → 40.
    let full = counters(&[(500, 1), (90, 1), (50, 1), (40, 7)]);
    assert!(top_is_complete(&top, 3, &full, 1));
    // Someone else scored above the last winner and the index does not show it.
    assert!(!top_is_complete(
        &top,
        3,
        &counters(&[(500, 1), (90, 2), (50, 1)]),
        1
    ));
    // The boundary bucket holds more than the index shows there.
    assert!(!top_is_complete(
        &top,
        3,
        &counters(&[(500, 1), (90, 1), (50, 2)]),
        1
    ));
    assert!(top_is_complete(
        &top,
        3,
        &counters(&[(500, 1), (90, 1), (50, 2)]),
        2
    ));
    // Fewer prizes than candidates: the boundary is the last prize position's bucket.
    assert!(top_is_complete(
        &top,
        2,
        &counters(&[(500, 1), (90, 1), (50, 9)]),
        1
    ));
    assert!(!top_is_complete(&top, 2, &counters(&[(500, 2), (90, 1)]), 1));
    // Fewer entries than prizes: the index must show the whole board.
    assert!(top_is_complete(
        &top,
        5,
        &counters(&[(500, 1), (90, 1), (50, 1)]),
        0
    ));
    assert!(!top_is_complete(&top, 5, &full, 0));
    // No prizes: nothing to check.
    assert!(top_is_complete(&[], 0, &full, 0));
    assert!(top_is_complete(&[], 1, &BTreeMap::new(), 0));
    assert!(!top_is_complete(&[], 1, &full, 0));
}

#[test]
fn boundaries_are_exact() {
    let old = stored(check(spec()).unwrap());
    let start = old.spec.starts_at;
    // At the start instant the contest has started: its rules stand.
    let retitled = ContestSpec {
        title: "Other".into(),
        ..old.spec.clone()
    };
    assert_eq!(field(validate("c1", retitled, Some(&old), start, 30)), "contest");
    // Moving the start to exactly the lead ahead is allowed.
    let now = at(NOW);
    let moved = ContestSpec {
        starts_at: now + Duration::seconds(60),
        ..old.spec.clone()
    };
    assert!(validate("c1", moved, Some(&old), now, 30).is_ok());
    // An extension asked exactly the lead before the current end is allowed.
    let longer = ContestSpec {
        ends_at: old.spec.ends_at + Duration::days(1),
        ..old.spec.clone()
    };
    let asked = old.spec.ends_at - Duration::seconds(60);
    assert!(validate("c1", longer, Some(&old), asked, 30).is_ok());
    // Titles of 80 characters and descriptions of 2000 are fine; one more is not.
    let long = |title: usize, description: usize| ContestSpec {
        title: "t".repeat(title),
        description: "d".repeat(description),
        ..spec()
    };
    assert!(check(long(80, 2_000)).is_ok());
    assert_eq!(field(check(long(81, 0))), "title");
    assert_eq!(field(check(long(1, 2_001))), "description");
    // A contest ending exactly now is no longer listed, nor counted.
    let ending = window("e", "2026-11-22T00:00:00Z", NOW);
    let index = ContestIndex::default()
        .with(&ending, now - Duration::seconds(1))
        .unwrap();
    assert_eq!(index.entries.len(), 1);
    assert!(index.with(&ending, now).unwrap().entries.is_empty());
    let during = now - Duration::seconds(1);
    assert_eq!(index.counting_at(during, during).len(), 1);
    assert!(index.counting_at(during, now).is_empty());
}
