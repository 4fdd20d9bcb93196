use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

const SH: Tz = chrono_tz::Asia::Shanghai;

#[test]
fn board_segments_round_trip() {
    let now = at("2026-11-23T01:00:00Z");
    for (segment, shown) in [
        ("all-time", "all-time"),
        ("weekly", "weekly:2026-W48"),
        ("weekly:2026-W47", "weekly:2026-W47"),
        ("monthly", "monthly:2026-11"),
        ("monthly:2026-01", "monthly:2026-01"),
        ("contest:autumn-1", "contest:autumn-1"),
        ("contest:autumn-1:teams", "contest:autumn-1:teams"),
    ] {
        let board = Board::parse(segment, now, SH).unwrap();
        assert_eq!(board.to_string(), shown, "{segment}");
        assert_eq!(Board::parse(shown, now, SH).unwrap(), board);
    }
    assert_eq!(
        Board::parse("contest:a:teams", now, SH).unwrap().contest(),
        Some("a")
    );
    assert_eq!(Board::AllTime.contest(), None);
}

#[test]
fn bad_board_segments_are_invalid() {
    let now = at("2026-11-23T01:00:00Z");
    for bad in [
        "",
        "daily",
        "weekly:2026-W54",
        "weekly:2026-W00",
        "weekly:2026-47",
        "weekly:26-W47",
        "weekly:2026-W4",
        "weekly:+026-W47",
        "weekly:02026-W47",
        "monthly:02026-11",
        "monthly:2026-13",
        "monthly:2026-00",
        "monthly:2026-1",
        "monthly:1969-12",
        "contest:",
        "contest:a#b",
        "contest:a:team",
        "team:a",
    ] {
        assert!(
            matches!(
                Board::parse(bad, now, SH),
                Err(DomainError::Invalid { field: "board", .. })
            ),
            "{bad:?}"
        );
    }
    // 2026 has 53 ISO weeks.
    assert!(Board::parse("weekly:2026-W53", now, SH).is_ok());
    assert!(Board::parse("weekly:2027-W53", now, SH).is_err());
}

#[test]
fn periods_follow_the_business_zone_and_monday_weeks() {
    // Sunday 2026-11-22 16:00 UTC is Monday 00:00 in Shanghai: a new week there, not in UTC.
    let t = at("2026-11-22T16:00:00Z");
    assert_eq!(Board::week_of(t, SH).to_string(), "weekly:2026-W48");
    assert_eq!(Board::week_of(t, chrono_tz::UTC).to_string(), "weekly:2026-W47");
    let t = at("2026-11-30T16:00:00Z");
    assert_eq!(Board::month_of(t, SH).to_string(), "monthly:2026-12");
    assert_eq!(Board::month_of(t, chrono_tz::UTC).to_string(), "monthly:2026-11");
    // The ISO year of the first days of January can be the previous one.
    assert_eq!(
        Board::week_of(at("2027-01-01T04:00:00Z"), SH).to_string(),
        "weekly:2026-W53"
    );
    let periods = Board::periods_at(t, SH);
    assert_eq!(periods[0], Board::AllTime);
    assert_eq!(periods[2].to_string(), "monthly:2026-12");
}

#[test]
fn what_counts() {
    for reason in [Reason::Purchase, Reason::Checkin, Reason::Milestone] {
        assert!(counts(reason), "{reason:?}");
    }
    for reason in [
        Reason::Grant,
        Reason::Makeup,
        Reason::Hold,
        Reason::Capture,
        Reason::Release,
        Reason::Reversal,
        Reason::Expire,
        Reason::TierChange,
    ] {
        assert!(!counts(reason), "{reason:?}");
    }
}

#[test]
fn buckets() {
    assert_eq!(bucket(1), 1);
    assert_eq!(bucket(99), 99);
    assert_eq!(bucket(100), 100);
    assert_eq!(bucket(109), 100);
    assert_eq!(bucket(110), 110);
    assert_eq!(bucket(999), 990);
    assert_eq!(bucket(1_234), 1_200);
    assert_eq!(bucket(56_789), 56_000);
    assert_eq!(bucket_width(99), 1);
    assert_eq!(bucket_width(100), 10);
    assert_eq!(bucket_width(1_000), 100);
    assert_eq!(bucket_top(1_234), 1_299);
    assert_eq!(bucket_top(42), 42);
    assert_eq!(bucket_top(MAX_SCORE), MAX_SCORE);
    assert_eq!(bucket(MAX_SCORE), 9_200_000_000_000_000_000);
}

#[test]
fn sort_keys_order_like_listings_and_read_back() {
    let t1 = at("2026-11-23T01:00:00Z");
    let t2 = at("2026-11-23T01:00:00.001Z");
    let mut keys = [
        sort_key(5, t1, "b"),
        sort_key(10, t2, "a"),
        sort_key(10, t1, "c"),
        sort_key(5, t1, "a"),
        sort_key(MAX_SCORE, t2, "z"),
    ];
    keys.sort();
    let read: Vec<_> = keys.iter().map(|k| parse_sort_key(k).unwrap()).collect();
    let ids: Vec<_> = read.iter().map(|(_, _, id)| id.as_str()).collect();
    assert_eq!(ids, ["z", "c", "a", "a", "b"]);
    assert_eq!(read[1], (10, t1, "c".to_owned()));
    assert_eq!(read[2].1, t2);
    assert!(sort_key(7, t1, "x").starts_with(&score_prefix(7)));
    assert!(score_prefix(8) < score_prefix(7));
    assert_eq!(parse_sort_key("x#1#a"), None);
    assert_eq!(parse_sort_key("1#x#a"), None);
    assert_eq!(parse_sort_key("1#1"), None);
}

#[test]
fn scores_never_go_below_zero_and_remember_when_they_moved() {
    let (t1, t2) = (at("2026-11-23T01:00:00Z"), at("2026-11-23T02:00:00Z"));
    let s = Score::default().apply(30, t1).unwrap();
    assert_eq!((s.score, s.reached_at), (30, Some(t1)));
    assert!(s.ranked());
    let same = s.apply(0, t2).unwrap();
    assert_eq!(same.reached_at, Some(t1));
    let down = s.apply(-50, t2).unwrap();
    assert_eq!((down.score, down.reached_at), (0, Some(t2)));
    assert!(!down.ranked());
    assert_eq!(Score::default().apply(-5, t2).unwrap(), Score::default());
    let top = Score {
        score: MAX_SCORE,
        reached_at: Some(t1),
    };
    assert_eq!(top.apply(1, t2), Err(DomainError::Overflow));
    assert_eq!(top.apply(0, t2).unwrap().score, MAX_SCORE);
}

#[test]
fn counters_move_only_between_buckets() {
    assert_eq!(counter_moves(0, 0), vec![]);
    assert_eq!(counter_moves(0, 5), vec![(5, 1)]);
    assert_eq!(counter_moves(5, 0), vec![(5, -1)]);
    assert_eq!(counter_moves(5, 6), vec![(5, -1), (6, 1)]);
    assert_eq!(counter_moves(1_201, 1_299), vec![]);
    assert_eq!(counter_moves(1_299, 1_300), vec![(1_200, -1), (1_300, 1)]);
}

#[test]
fn shards_are_stable_and_spread() {
    assert_eq!(shard_of("u1"), shard_of("u1"));
    // Pinned: a different hash would move every stored entry to another partition.
    assert_eq!(shard_of(""), 0x811c_9dc5 % SHARDS);
    assert_eq!(shard_of("a"), 0xe40c_292c % SHARDS);
    let mut seen = [0u32; SHARDS as usize];
    for i in 0..800 {
        seen[shard_of(&format!("member-{i}")) as usize] += 1;
    }
    assert!(seen.iter().all(|n| (60..=140).contains(n)), "{seen:?}");
}

fn standing(id: &str, score: u64, secs: i64) -> Standing {
    Standing {
        id: id.into(),
        score,
        reached_at: Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap(),
    }
}

#[test]
fn equal_scores_share_a_rank_and_list_by_who_reached_first() {
    let top = merge_top(
        vec![
            vec![standing("a", 50, 3), standing("b", 40, 1)],
            vec![standing("c", 50, 1), standing("d", 40, 2)],
            vec![standing("e", 30, 0)],
        ],
        4,
    );
    let got: Vec<_> = top
        .iter()
        .map(|r| (r.position, r.rank, r.standing.id.as_str()))
        .collect();
    assert_eq!(got, [(1, 1, "c"), (2, 1, "a"), (3, 3, "b"), (4, 3, "d")]);
    let tied = merge_top(vec![vec![standing("y", 7, 5), standing("x", 7, 5)]], 10);
    assert_eq!(tied[0].standing.id, "x");
    assert_eq!(rank_in_order(vec![standing("p", 9, 0)], 12)[0].rank, 12);
    assert_eq!(rank_from_counts(4, 2), 7);
}

#[test]
fn neighbours_are_the_nearest_on_each_side() {
    // Me: score 50 reached at 10.
    let above = vec![
        vec![standing("a1", 60, 0), standing("a2", 90, 0)],
        vec![standing("b1", 50, 5)],
    ];
    let below = vec![
        vec![standing("c1", 50, 20), standing("c2", 10, 0)],
        vec![standing("d1", 40, 0)],
    ];
    let (up, down) = merge_neighbours(above, below, 2);
    let ids = |v: &[Standing]| v.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&up), ["b1", "a1"]);
    assert_eq!(ids(&down), ["c1", "d1"]);
}

/// A board kept the way the store keeps it: per shard, an index ordered by sort key and a counter
/// per bucket.
#[derive(Default)]
struct Model {
    scores: HashMap<String, Score>,
    index: HashMap<u32, BTreeMap<String, ()>>,
    counters: HashMap<(u32, u64), i64>,
}

impl Model {
    fn earn(&mut self, id: &str, delta: i64, at: DateTime<Utc>) {
        let before = self.scores.get(id).cloned().unwrap_or_default();
        let after = before.apply(delta, at).unwrap();
        let shard = shard_of(id);
        let index = self.index.entry(shard).or_default();
        if before.ranked() {
            index.remove(&sort_key(before.score, before.reached_at.unwrap(), id));
        }
        if after.ranked() {
            index.insert(sort_key(after.score, after.reached_at.unwrap(), id), ());
        }
        for (b, d) in counter_moves(before.score, after.score) {
            *self.counters.entry((shard, b)).or_default() += d;
        }
        self.scores.insert(id.to_owned(), after);
    }

    fn shard_tops(&self, limit: usize) -> Vec<Vec<Standing>> {
        self.index
            .values()
            .map(|index| {
                index
                    .keys()
                    .take(limit)
                    .map(|k| {
                        let (score, reached_at, id) = parse_sort_key(k).unwrap();
                        Standing {
                            id,
                            score,
                            reached_at,
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// My rank the way the store reads it: counters above my bucket + an index count in my bucket.
    fn rank(&self, score: u64) -> u64 {
        let mine = bucket(score);
        let higher_buckets: i64 = self
            .counters
            .iter()
            .filter(|((_, b), _)| *b > mine)
            .map(|(_, n)| *n)
            .sum();
        let (low, high) = (score_prefix(bucket_top(score)), score_prefix(score));
        let in_bucket = self
            .index
            .values()
            .map(|index| index.range(low.clone()..high.clone()).count() as u64)
            .sum::<u64>();
        rank_from_counts(higher_buckets as u64, in_bucket)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn sharded_top_and_my_rank_equal_the_reference(
        ops in prop::collection::vec((0usize..40, prop_oneof![0i64..300, -400i64..0, 90i64..2_000]), 1..300),
        limit in 1usize..50,
    ) {
        let mut model = Model::default();
        for (i, (member, delta)) in ops.iter().enumerate() {
            // Some earns share an instant, so time ties are broken by id.
            let at = Utc.timestamp_opt(1_700_000_000 + (i as i64 / 3), 0).unwrap();
            model.earn(&format!("m{member}"), *delta, at);
        }
        let mut reference: Vec<Standing> = model
            .scores
            .iter()
            .filter(|(_, s)| s.ranked())
            .map(|(id, s)| Standing { id: id.clone(), score: s.score, reached_at: s.reached_at.unwrap() })
            .collect();
        reference.sort_by(Standing::order);
        let top = merge_top(model.shard_tops(limit), limit);
        prop_assert_eq!(top.len(), reference.len().min(limit));
        for (i, ranked) in top.iter().enumerate() {
            prop_assert_eq!(&ranked.standing, &reference[i]);
            prop_assert_eq!(ranked.position, i as u64 + 1);
            let higher = reference.iter().filter(|s| s.score > ranked.standing.score).count() as u64;
            prop_assert_eq!(ranked.rank, higher + 1);
        }
        for me in &reference {
            let higher = reference.iter().filter(|s| s.score > me.score).count() as u64;
            prop_assert_eq!(model.rank(me.score), higher + 1, "rank of {}", me.id);
        }
        prop_assert!(model.counters.values().all(|n| *n >= 0));
        prop_assert_eq!(model.counters.values().sum::<i64>(), reference.len() as i64);
    }
}

fn posting(delta: i64, reason: Reason) -> Posting {
    Posting::new(delta, reason, "r", format!("k{delta}"))
}

#[test]
fn what_an_operation_moves() {
    let earn = [
        posting(10, Reason::Checkin),
        posting(5, Reason::Milestone),
        posting(7, Reason::Grant),
        posting(-3, Reason::Expire),
        posting(4, Reason::Release),
    ];
    let a = Activity {
        postings: &earn,
        checkin: Some("daily"),
        reverses: None,
        referrals: 0,
    };
    assert_eq!(a.points(|_| true), 15);
    assert_eq!(a.points(|r| r == Reason::Checkin), 10);
    let points = Counting {
        metric: Metric::PointsEarned,
        reasons: vec![Reason::Milestone],
        campaign: None,
        opt_in: true,
        team: false,
    };
    assert_eq!(a.for_contest(&points), 5);
    let checkins = Counting {
        metric: Metric::Checkins,
        reasons: vec![],
        campaign: Some("daily".into()),
        opt_in: true,
        team: false,
    };
    assert_eq!(a.for_contest(&checkins), 1);
    let other = Counting {
        campaign: Some("other".into()),
        ..checkins.clone()
    };
    assert_eq!(a.for_contest(&other), 0);
    // A check-in worth nothing still counts as a check-in.
    let zero = Activity {
        postings: &[],
        checkin: Some("daily"),
        reverses: None,
        referrals: 0,
    };
    assert_eq!((zero.points(|_| true), zero.for_contest(&checkins)), (0, 1));
    let none = Activity {
        postings: &[],
        checkin: None,
        reverses: None,
        referrals: 0,
    };
    assert_eq!(
        none.for_contest(&Counting {
            campaign: None,
            ..checkins.clone()
        }),
        0
    );
    // A negative "earn" never counts.
    let debit = [posting(-5, Reason::Purchase)];
    let d = Activity {
        postings: &debit,
        checkin: None,
        reverses: None,
        referrals: 0,
    };
    assert_eq!(d.points(|_| true), 0);
}

#[test]
fn a_reversal_lowers_what_the_earn_raised() {
    let reversal = [posting(-30, Reason::Reversal).with_kind(Kind::Reverse {
        bucket: None,
        forgiven: 20,
    })];
    let of = |reason| Activity {
        postings: &reversal,
        checkin: None,
        reverses: reason,
        referrals: 0,
    };
    assert_eq!(of(Some(Reason::Purchase)).points(|_| true), -50);
    assert_eq!(of(Some(Reason::Purchase)).points(|r| r == Reason::Checkin), 0);
    assert_eq!(of(Some(Reason::Grant)).points(|_| true), 0);
    assert_eq!(of(None).points(|_| true), 0);
    let checkins = Counting {
        metric: Metric::Checkins,
        reasons: vec![],
        campaign: Some("daily".into()),
        opt_in: true,
        team: false,
    };
    let reversed_checkin = Activity {
        postings: &reversal,
        checkin: Some("daily"),
        reverses: Some(Reason::Checkin),
        referrals: 0,
    };
    assert_eq!(reversed_checkin.for_contest(&checkins), 0);
    // A reversal posting in an operation that reverses nothing never counts.
    let plain = [posting(-30, Reason::Reversal)];
    let p = Activity {
        postings: &plain,
        checkin: None,
        reverses: Some(Reason::Purchase),
        referrals: 0,
    };
    assert_eq!(p.points(|_| true), 0);
}

#[test]
fn referral_rewards_count_and_the_referrals_metric_counts_settled_referrals() {
    let paid = [posting(80, Reason::Referral)];
    let settled = Activity {
        postings: &paid,
        checkin: None,
        reverses: None,
        referrals: 1,
    };
    assert_eq!(settled.points(|_| true), 80);
    let referrals = Counting {
        metric: Metric::Referrals,
        reasons: vec![],
        campaign: None,
        opt_in: false,
        team: false,
    };
    assert_eq!(settled.for_contest(&referrals), 1);
    let points = Counting {
        metric: Metric::PointsEarned,
        reasons: vec![Reason::Purchase, Reason::Referral],
        ..referrals.clone()
    };
    assert_eq!(settled.for_contest(&points), 80);
    // The undo: the reward's reversal lowers the points; the metric goes down by one.
    let back = [posting(-80, Reason::Reversal).with_kind(Kind::Reverse {
        bucket: None,
        forgiven: 0,
    })];
    let undone = Activity {
        postings: &back,
        checkin: None,
        reverses: Some(Reason::Referral),
        referrals: -1,
    };
    assert_eq!(
        (undone.points(|_| true), undone.for_contest(&referrals)),
        (-80, -1)
    );
    // A capped referral: nothing paid, still counted for the metric.
    let capped = Activity {
        postings: &[],
        checkin: None,
        reverses: None,
        referrals: 1,
    };
    assert_eq!(
        (capped.for_contest(&points), capped.for_contest(&referrals)),
        (0, 1)
    );
    assert!(counts(Reason::Referral));
}
