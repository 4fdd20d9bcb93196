use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Days, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;

use super::*;

fn daily() -> Campaign {
    CampaignConfig::default_daily().validate("daily").unwrap()
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Checks in at `now` and returns (reward, milestone days, new state).
fn checkin_at(c: &Campaign, s: &StreakState, now: &str) -> (i64, Vec<u32>, StreakState) {
    match check_in(c, s, instant(now)).unwrap() {
        CheckIn::New { insertion, reward } => (
            reward,
            insertion.milestones.iter().map(|m| m.days).collect(),
            insertion.state,
        ),
        CheckIn::Repeat { .. } => (0, vec![], s.clone()),
    }
}

#[test]
fn the_default_campaign_is_valid_and_cycles() {
    let c = daily();
    assert_eq!(c.zone, chrono_tz::Asia::Shanghai);
    let rewards: Vec<i64> = (1..=9).map(|p| c.reward(p)).collect();
    assert_eq!(rewards, vec![5, 5, 10, 10, 15, 15, 30, 5, 5]);
    let mut hold = CampaignConfig::default_daily();
    hold.after_ladder = "hold_last".into();
    let hold = hold.validate("h").unwrap();
    assert_eq!((hold.reward(7), hold.reward(8), hold.reward(400)), (30, 30, 30));
}

#[test]
fn a_campaign_has_at_most_ten_milestones() {
    let with = |n: u32| {
        let mut c = CampaignConfig::default_daily();
        c.milestones = (1..=n).map(|days| Milestone { days, points: 1 }).collect();
        c.validate("x")
    };
    assert_eq!(with(MAX_MILESTONES as u32).unwrap().milestones.len(), 10);
    assert!(matches!(
        with(MAX_MILESTONES as u32 + 1).unwrap_err(),
        DomainError::Invalid {
            field: "milestones",
            ..
        }
    ));
    // A campaign stored before the limit (at most 50 then) is still served.
    let mut old = CampaignConfig::default_daily();
    old.milestones = (1..=50).map(|days| Milestone { days, points: 1 }).collect();
    assert_eq!(old.validate_stored("x").unwrap().milestones.len(), 50);
    old.milestones.push(Milestone { days: 51, points: 1 });
    assert!(old.validate_stored("x").is_err());
}

#[test]
fn invalid_configs_are_refused() {
    let base = CampaignConfig::default_daily();
    let bad = |f: &dyn Fn(&mut CampaignConfig)| {
        let mut c = base.clone();
        f(&mut c);
        c.validate("x").unwrap_err()
    };
    assert!(matches!(
        bad(&|c| c.time_zone = "Mars/Base".into()),
        DomainError::Invalid {
            field: "time_zone",
            ..
        }
    ));
    assert!(matches!(
        bad(&|c| c.ladder.clear()),
        DomainError::Invalid { field: "ladder", .. }
    ));
    assert!(matches!(
        bad(&|c| c.ladder[0] = -1),
        DomainError::Invalid { field: "ladder", .. }
    ));
    assert!(matches!(
        bad(&|c| c.after_ladder = "loop".into()),
        DomainError::Invalid { .. }
    ));
    assert!(matches!(
        bad(&|c| c.milestones.push(Milestone { days: 7, points: 1 })),
        DomainError::Invalid { .. }
    ));
    assert!(matches!(
        bad(&|c| c.milestones[0].days = 0),
        DomainError::Invalid { .. }
    ));
    assert!(matches!(
        bad(&|c| c.makeup.lookback_days = 32),
        DomainError::Invalid { .. }
    ));
    assert!(matches!(
        bad(&|c| c.makeup.cost = -5),
        DomainError::Invalid { .. }
    ));
    assert!(matches!(
        bad(&|c| c.start_date = Some("2026-02-30".into())),
        DomainError::Invalid { .. }
    ));
    assert!(matches!(
        bad(&|c| {
            c.start_date = Some("2026-12-01".into());
            c.end_date = Some("2026-11-01".into());
        }),
        DomainError::Invalid {
            field: "end_date",
            ..
        }
    ));
    assert!(base.validate("a#b").is_err());
}

#[test]
fn dates_and_months_are_strict() {
    assert_eq!(parse_date("d", "2026-11-23").unwrap(), date("2026-11-23"));
    for bad in ["2026-11-31", "2026-1-5", "26-11-23", "2026-11-23T00:00:00", ""] {
        assert!(parse_date("d", bad).is_err(), "{bad}");
    }
    assert_eq!(parse_month("m", "2026-11").unwrap(), date("2026-11-01"));
    for bad in ["2026-13", "2026-1", "2026-11-01", "november"] {
        assert!(parse_month("m", bad).is_err(), "{bad}");
    }
}

#[test]
fn the_day_turns_at_local_midnight() {
    let c = daily(); // Asia/Shanghai, UTC+8
    let s = StreakState::default();
    let (_, _, s) = checkin_at(&c, &s, "2026-11-23T23:59:59+08:00");
    assert!(matches!(
        check_in(&c, &s, instant("2026-11-23T23:59:59+08:00")).unwrap(),
        CheckIn::Repeat { .. }
    ));
    let (reward, _, s) = checkin_at(&c, &s, "2026-11-24T00:00:00+08:00");
    assert_eq!(reward, 5, "second day of the ladder");
    assert_eq!(s.current(date("2026-11-24")), 2);
    // One second earlier in UTC terms is still the previous local day.
    assert_eq!(c.today(instant("2026-11-23T15:59:59Z")), date("2026-11-23"));
    assert_eq!(c.today(instant("2026-11-23T16:00:00Z")), date("2026-11-24"));
}

fn campaign_in(zone: &str) -> Campaign {
    let mut cfg = CampaignConfig::default_daily();
    cfg.time_zone = zone.into();
    cfg.validate("z").unwrap()
}

#[test]
fn new_york_across_both_dst_transitions() {
    let c = campaign_in("America/New_York");
    // Spring forward 2026-03-08 (23-hour day), fall back 2026-11-01 (25-hour day).
    for (evening_before, late_on_day, next_morning) in [
        (
            "2026-03-07T23:30:00-05:00",
            "2026-03-08T23:30:00-04:00",
            "2026-03-09T00:10:00-04:00",
        ),
        (
            "2026-10-31T23:30:00-04:00",
            "2026-11-01T23:30:00-05:00",
            "2026-11-02T00:10:00-05:00",
        ),
    ] {
        let s = StreakState::default();
        let (_, _, s) = checkin_at(&c, &s, evening_before);
        let (_, _, s) = checkin_at(&c, &s, late_on_day);
        let (_, _, s) = checkin_at(&c, &s, next_morning);
        let today = c.today(instant(next_morning));
        assert_eq!(
            s.current(today),
            3,
            "three local days in a row around {late_on_day}"
        );
    }
    // 01:30 happens twice on 2026-11-01: both are the same local day.
    let first = Utc.with_ymd_and_hms(2026, 11, 1, 5, 30, 0).unwrap();
    let second = Utc.with_ymd_and_hms(2026, 11, 1, 6, 30, 0).unwrap();
    assert_eq!(c.today(first), c.today(second));
    let s = StreakState::default();
    let CheckIn::New { insertion, .. } = check_in(&c, &s, first).unwrap() else {
        panic!()
    };
    assert!(matches!(
        check_in(&c, &insertion.state, second).unwrap(),
        CheckIn::Repeat { .. }
    ));
}

#[test]
fn zones_west_of_utc_and_at_utc_plus_14() {
    let la = campaign_in("America/Los_Angeles");
    let kiritimati = campaign_in("Pacific/Kiritimati"); // UTC+14
    let t = instant("2026-11-23T09:00:00Z");
    assert_eq!(la.today(t), date("2026-11-23")); // 01:00 local
    assert_eq!(kiritimati.today(t), date("2026-11-23")); // 23:00 local
    let t2 = instant("2026-11-23T10:00:00Z");
    assert_eq!(kiritimati.today(t2), date("2026-11-24")); // 00:00 local: a new day
    let s = StreakState::default();
    let (_, _, s) = checkin_at(&kiritimati, &s, "2026-11-23T09:59:59Z");
    let (reward, _, s) = checkin_at(&kiritimati, &s, "2026-11-23T10:00:00Z");
    assert_eq!((reward, s.current(date("2026-11-24"))), (5, 2));
    // Los Angeles: 23:59 local on the 23rd is 07:59Z on the 24th.
    let s = StreakState::default();
    let (_, _, s) = checkin_at(&la, &s, "2026-11-24T07:59:00Z");
    assert!(s.checked_in(date("2026-11-23")));
    let (_, _, s) = checkin_at(&la, &s, "2026-11-24T08:00:00Z");
    assert!(s.checked_in(date("2026-11-24")));
}

#[test]
fn streak_survives_the_next_day_then_breaks() {
    let c = daily();
    let (_, _, s) = checkin_at(&c, &StreakState::default(), "2026-11-20T12:00:00+08:00");
    assert_eq!(s.current(date("2026-11-21")), 1, "yesterday still counts");
    assert_eq!(s.current(date("2026-11-22")), 0, "a missed day breaks it");
    let (reward, _, s) = checkin_at(&c, &s, "2026-11-22T12:00:00+08:00");
    assert_eq!((reward, s.current(date("2026-11-22")), s.best), (5, 1, 1));
}

#[test]
fn milestone_at_day_seven_and_makeup_joins_without_double_pay() {
    let c = daily();
    let mut s = StreakState::default();
    // Days 1-3, miss day 4, days 5-11.
    let mut paid = Vec::new();
    for day in (1..=3).chain(5..=11) {
        let (_, ms, next) = checkin_at(&c, &s, &format!("2026-11-{day:02}T09:00:00+08:00"));
        paid.extend(ms);
        s = next;
    }
    assert_eq!(paid, vec![7], "the run 5..11 reached 7");
    assert_eq!(s.current(date("2026-11-11")), 7);
    // Make up day 4 on day 11: joins 1..3 and 5..11 into an 11-day run; 7 is not paid again.
    let m = make_up(&c, &s, date("2026-11-04"), instant("2026-11-11T20:00:00+08:00")).unwrap();
    assert_eq!(m.cost, 20);
    assert!(m.insertion.milestones.is_empty());
    assert_eq!(m.insertion.state.current(date("2026-11-11")), 11);
    assert_eq!(m.insertion.state.best, 11);
    assert_eq!(m.insertion.state.makeups_in(date("2026-11-11")), 1);
    // A join that makes a run reach 7 for the first time pays it once, keyed by the joined start.
    let mut s = StreakState::default();
    for day in [1, 2, 3, 5, 6, 7] {
        s = checkin_at(&c, &s, &format!("2026-11-{day:02}T09:00:00+08:00")).2;
    }
    let m = make_up(&c, &s, date("2026-11-04"), instant("2026-11-07T20:00:00+08:00")).unwrap();
    assert_eq!(
        m.insertion.milestones,
        vec![MilestonePay {
            days: 7,
            points: 50,
            run_start: date("2026-11-01")
        }]
    );
}

#[test]
fn makeup_rules() {
    let c = daily();
    let mut s = StreakState::default();
    for day in [10, 12] {
        s = checkin_at(&c, &s, &format!("2026-11-{day:02}T09:00:00+08:00")).2;
    }
    let now = instant("2026-11-14T09:00:00+08:00");
    let err = |d: &str, s: &StreakState| make_up(&c, s, date(d), now).unwrap_err();
    assert_eq!(
        err("2026-11-14", &s),
        DomainError::OutsideMakeupWindow { lookback_days: 7 },
        "today"
    );
    assert_eq!(
        err("2026-11-15", &s),
        DomainError::OutsideMakeupWindow { lookback_days: 7 },
        "future"
    );
    assert_eq!(
        err("2026-11-06", &s),
        DomainError::OutsideMakeupWindow { lookback_days: 7 },
        "8 days back"
    );
    assert_eq!(err("2026-11-12", &s), DomainError::NotMissed);
    let s1 = make_up(&c, &s, date("2026-11-07"), now).unwrap().insertion.state;
    let s2 = make_up(&c, &s1, date("2026-11-11"), now).unwrap().insertion.state;
    assert_eq!(
        err("2026-11-13", &s2),
        DomainError::MakeupLimitReached { per_month: 2 }
    );
    // The limit belongs to the month the make-up is made in: on Dec 1 there are 2 again, and the
    // date made up may lie in November.
    let dec = instant("2026-12-01T09:00:00+08:00");
    let s3 = make_up(&c, &s2, date("2026-11-30"), dec).unwrap().insertion.state;
    assert_eq!(s3.makeups_in(date("2026-12-01")), 1);
    assert_eq!(view(&c, &s3, dec).makeups_left_this_month, 1);
}

#[test]
fn campaign_dates_bound_checkins() {
    let mut cfg = CampaignConfig::default_daily();
    cfg.start_date = Some("2026-11-10".into());
    cfg.end_date = Some("2026-11-20".into());
    let c = cfg.validate("spring").unwrap();
    let s = StreakState::default();
    assert_eq!(
        check_in(&c, &s, instant("2026-11-09T12:00:00+08:00")).unwrap_err(),
        DomainError::CampaignNotActive
    );
    assert_eq!(
        check_in(&c, &s, instant("2026-11-21T12:00:00+08:00")).unwrap_err(),
        DomainError::CampaignNotActive
    );
    let s = checkin_at(&c, &s, "2026-11-11T12:00:00+08:00").2;
    assert_eq!(
        make_up(&c, &s, date("2026-11-20"), instant("2026-11-22T12:00:00+08:00")).unwrap(),
        make_up(&c, &s, date("2026-11-20"), instant("2026-11-22T12:00:00+08:00")).unwrap(),
        "the last day can be made up after the end"
    );
    assert_eq!(
        make_up(&c, &s, date("2026-11-21"), instant("2026-11-23T12:00:00+08:00")).unwrap_err(),
        DomainError::OutsideMakeupWindow { lookback_days: 7 },
        "after the end"
    );
    assert_eq!(
        make_up(&c, &s, date("2026-11-09"), instant("2026-11-12T12:00:00+08:00")).unwrap_err(),
        DomainError::OutsideMakeupWindow { lookback_days: 7 },
        "before the start"
    );
}

#[test]
fn old_runs_are_pruned_but_best_is_kept() {
    let c = daily();
    let mut s = StreakState::default();
    for day in 1..=5 {
        s = checkin_at(&c, &s, &format!("2026-10-{day:02}T09:00:00+08:00")).2;
    }
    s = checkin_at(&c, &s, "2026-11-20T09:00:00+08:00").2;
    assert_eq!(
        s.runs,
        vec![Run {
            start: date("2026-11-20"),
            end: date("2026-11-20")
        }]
    );
    assert_eq!(s.best, 5);
}

// ---- The reference model ---------------------------------------------------------------------

/// A deliberately naive model: a set of dates and the rules of docs/checkin.md, recomputed by
/// walking the set.
#[derive(Default)]
struct Model {
    dates: BTreeSet<NaiveDate>,
    paid: BTreeSet<(NaiveDate, u32)>,
    makeups: BTreeMap<(i32, u32), u32>,
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Repeat,
    Paid { reward: i64, milestones: Vec<u32> },
    Refused(DomainError),
}

impl Model {
    fn walk(&self, from: NaiveDate, back: bool) -> u32 {
        let mut n = 0;
        let mut d = from;
        while self.dates.contains(&d) {
            n += 1;
            d = if back {
                d.pred_opt().unwrap()
            } else {
                d.succ_opt().unwrap()
            };
        }
        n
    }

    fn add(&mut self, c: &Campaign, d: NaiveDate) -> (u32, Vec<u32>) {
        let a = self.walk(d.pred_opt().unwrap(), true);
        let b = self.walk(d.succ_opt().unwrap(), false);
        self.dates.insert(d);
        let length = a + b + 1;
        let start = d - Days::new(u64::from(a));
        let mut paid = Vec::new();
        for &n in c.milestones.keys() {
            if n > a.max(b) && n <= length && self.paid.insert((start, n)) {
                paid.push(n);
            }
        }
        (a + 1, paid)
    }

    fn check_in(&mut self, c: &Campaign, today: NaiveDate) -> Outcome {
        if self.dates.contains(&today) {
            return Outcome::Repeat;
        }
        let (position, milestones) = self.add(c, today);
        Outcome::Paid {
            reward: c.reward(position),
            milestones,
        }
    }

    fn make_up(&mut self, c: &Campaign, today: NaiveDate, d: NaiveDate, balance: i64) -> Outcome {
        let back = (today - d).num_days();
        if back < 1 || back > i64::from(c.makeup.lookback_days) {
            return Outcome::Refused(DomainError::OutsideMakeupWindow {
                lookback_days: c.makeup.lookback_days,
            });
        }
        if self.dates.contains(&d) {
            return Outcome::Refused(DomainError::NotMissed);
        }
        let month = (today.year(), today.month());
        if self.makeups.get(&month).copied().unwrap_or(0) >= c.makeup.max_per_month {
            return Outcome::Refused(DomainError::MakeupLimitReached {
                per_month: c.makeup.max_per_month,
            });
        }
        if balance < c.makeup.cost {
            return Outcome::Refused(DomainError::InsufficientPoints {
                balance,
                needed: c.makeup.cost,
            });
        }
        *self.makeups.entry(month).or_insert(0) += 1;
        let (_, milestones) = self.add(c, d);
        Outcome::Paid {
            reward: -c.makeup.cost,
            milestones,
        }
    }

    fn current(&self, today: NaiveDate) -> u32 {
        let t = self.walk(today, true);
        if t > 0 {
            t
        } else {
            self.walk(today.pred_opt().unwrap(), true)
        }
    }

    fn best(&self) -> u32 {
        self.dates.iter().map(|d| self.walk(*d, false)).max().unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
enum Op {
    CheckIn,
    MakeUp(u8),
}

fn campaign_strategy() -> impl Strategy<Value = Campaign> {
    (
        prop::collection::vec(0i64..20, 1..8),
        any::<bool>(),
        prop::collection::btree_map(
            prop::sample::select(vec![2u32, 3, 5, 7, 10, 14, 30]),
            1i64..100,
            0..4,
        ),
        0u32..=10,
        0u32..=3,
        0i64..=30,
    )
        .prop_map(|(ladder, hold, milestones, lookback, per_month, cost)| {
            CampaignConfig {
                time_zone: "America/New_York".into(),
                ladder,
                after_ladder: if hold { "hold_last".into() } else { "cycle".into() },
                milestones: milestones
                    .into_iter()
                    .map(|(days, points)| Milestone { days, points })
                    .collect(),
                makeup: MakeupRules {
                    lookback_days: lookback,
                    max_per_month: per_month,
                    cost,
                },
                start_date: None,
                end_date: None,
            }
            .validate("p")
            .unwrap()
        })
}

fn ops_strategy() -> impl Strategy<Value = Vec<(u8, u8, Op)>> {
    let op = prop_oneof![3 => Just(Op::CheckIn), 2 => (1u8..=12).prop_map(Op::MakeUp)];
    prop::collection::vec((0u8..=3, 0u8..24, op), 1..80)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// For random campaigns and random sequences of check-ins, repeats and make-ups over random
    /// dates (in a DST zone), the streak, best streak, points paid and milestones paid equal the
    /// reference model's, and no milestone business key is ever produced twice.
    #[test]
    fn matches_the_reference_model(c in campaign_strategy(), ops in ops_strategy(), start_balance in 0i64..60) {
        let mut model = Model::default();
        let mut state = StreakState::default();
        let mut balance = start_balance;
        let mut model_balance = start_balance;
        let mut keys = BTreeSet::new();
        let mut day = date("2026-02-20");
        for (advance, hour, op) in ops {
            day = day + Days::new(u64::from(advance));
            // 02:30 does not exist on the spring-forward day: take 03:30 then.
            let local = |h: u8| c.zone.from_local_datetime(&day.and_hms_opt(u32::from(h), 30, 0).unwrap()).earliest();
            let now = local(hour).or_else(|| local(hour + 1)).unwrap().with_timezone(&Utc);
            let today = c.today(now);
            prop_assert_eq!(today, day);
            let (actual, expected) = match op {
                Op::CheckIn => {
                    let actual = match check_in(&c, &state, now).unwrap() {
                        CheckIn::Repeat { .. } => Outcome::Repeat,
                        CheckIn::New { insertion, reward } => {
                            for m in &insertion.milestones {
                                prop_assert!(keys.insert((m.run_start, m.days)), "milestone key twice");
                            }
                            balance += reward + insertion.milestones.iter().map(|m| m.points).sum::<i64>();
                            let milestones = insertion.milestones.iter().map(|m| m.days).collect();
                            state = insertion.state;
                            Outcome::Paid { reward, milestones }
                        }
                    };
                    (actual, model.check_in(&c, today))
                }
                Op::MakeUp(back) => {
                    let target = today - Days::new(u64::from(back));
                    let actual = match make_up(&c, &state, target, now) {
                        Err(e) => Outcome::Refused(e),
                        // The ledger refuses a debit above the balance; nothing changes.
                        Ok(m) if m.cost > balance => {
                            Outcome::Refused(DomainError::InsufficientPoints { balance, needed: m.cost })
                        }
                        Ok(m) => {
                            for ms in &m.insertion.milestones {
                                prop_assert!(keys.insert((ms.run_start, ms.days)), "milestone key twice");
                            }
                            balance += -m.cost + m.insertion.milestones.iter().map(|x| x.points).sum::<i64>();
                            let milestones = m.insertion.milestones.iter().map(|x| x.days).collect();
                            state = m.insertion.state;
                            Outcome::Paid { reward: -m.cost, milestones }
                        }
                    };
                    (actual, model.make_up(&c, today, target, model_balance))
                }
            };
            if let Outcome::Paid { reward, milestones } = &expected {
                model_balance += reward + milestones.iter().map(|n| c.milestones[n]).sum::<i64>();
            }
            prop_assert_eq!(&actual, &expected, "on {}", today);
            prop_assert_eq!(balance, model_balance);
            prop_assert_eq!(state.current(today), model.current(today));
            prop_assert_eq!(state.best, model.best());
            prop_assert_eq!(view(&c, &state, now).checked_in_today, model.dates.contains(&today));
        }
    }
}

// ---- Promises pinned by mutation testing ------------------------------------------------------

fn config_with(f: impl Fn(&mut CampaignConfig)) -> Result<Campaign, DomainError> {
    let mut c = CampaignConfig::default_daily();
    f(&mut c);
    c.validate("x")
}

#[test]
fn the_exact_limits_of_a_campaign_config() {
    assert!(config_with(|c| c.ladder = vec![1; 365]).is_ok());
    assert!(config_with(|c| c.ladder = vec![1; 366]).is_err());
    assert!(config_with(|c| c.makeup.lookback_days = MAX_LOOKBACK_DAYS).is_ok());
    assert!(config_with(|c| c.makeup.lookback_days = MAX_LOOKBACK_DAYS + 1).is_err());
    assert!(config_with(|c| c.makeup.max_per_month = 31).is_ok());
    assert!(config_with(|c| c.makeup.max_per_month = 32).is_err());
    // A one-day campaign: start and end on the same date.
    let one_day = config_with(|c| {
        c.start_date = Some("2026-12-24".into());
        c.end_date = Some("2026-12-24".into());
    })
    .unwrap();
    assert_eq!(
        (one_day.start, one_day.end),
        (Some(date("2026-12-24")), Some(date("2026-12-24")))
    );
    assert!(
        config_with(|c| {
            c.start_date = Some("2026-12-24".into());
            c.end_date = Some("2026-12-23".into());
        })
        .is_err()
    );
}

#[test]
fn a_campaigns_first_day_can_be_made_up() {
    let c = config_with(|c| c.start_date = Some("2026-11-20".into())).unwrap();
    let now = instant("2026-11-22T12:00:00+08:00");
    assert!(make_up(&c, &StreakState::default(), date("2026-11-20"), now).is_ok());
    assert_eq!(
        make_up(&c, &StreakState::default(), date("2026-11-19"), now).unwrap_err(),
        DomainError::OutsideMakeupWindow { lookback_days: 7 }
    );
}

#[test]
fn the_monthly_makeup_limit_survives_a_checkin() {
    let c = config_with(|c| c.makeup.max_per_month = 1).unwrap();
    let s = StreakState::default();
    let (_, _, s) = checkin_at(&c, &s, "2026-11-20T09:00:00+08:00");
    let s = make_up(&c, &s, date("2026-11-19"), instant("2026-11-20T10:00:00+08:00"))
        .unwrap()
        .insertion
        .state;
    // A check-in the next day rewrites the state; this month's make-up still counts.
    let (_, _, s) = checkin_at(&c, &s, "2026-11-21T09:00:00+08:00");
    assert_eq!(s.makeups_in(date("2026-11-21")), 1);
    assert_eq!(
        make_up(&c, &s, date("2026-11-17"), instant("2026-11-21T10:00:00+08:00")).unwrap_err(),
        DomainError::MakeupLimitReached { per_month: 1 }
    );
}

#[test]
fn every_change_of_the_streak_state_moves_its_version() {
    let c = daily();
    let (_, _, s1) = checkin_at(&c, &StreakState::default(), "2026-11-20T09:00:00+08:00");
    let (_, _, s2) = checkin_at(&c, &s1, "2026-11-21T09:00:00+08:00");
    let s3 = make_up(&c, &s2, date("2026-11-19"), instant("2026-11-21T10:00:00+08:00"))
        .unwrap()
        .insertion
        .state;
    assert_eq!((s1.version, s2.version, s3.version), (1, 2, 3));
}

#[test]
fn a_makeup_at_the_edge_of_the_window_joins_the_run_before_it() {
    // Look-back of 31 days: a run ending 31 days ago must still be kept after later check-ins.
    let c = config_with(|c| {
        c.makeup.lookback_days = 31;
        c.milestones = vec![Milestone { days: 2, points: 7 }];
    })
    .unwrap();
    let (_, _, s) = checkin_at(&c, &StreakState::default(), "2026-10-01T09:00:00+08:00");
    let (_, _, s) = checkin_at(&c, &s, "2026-11-01T09:00:00+08:00");
    let m = make_up(&c, &s, date("2026-10-02"), instant("2026-11-01T10:00:00+08:00")).unwrap();
    assert_eq!(m.insertion.state.best, 2, "joined with the run of 1 October");
    assert_eq!(m.insertion.milestones.len(), 1);
}

#[test]
fn a_repeat_answers_what_todays_checkin_recorded() {
    let c = daily();
    let (_, _, mut s) = checkin_at(&c, &StreakState::default(), "2026-11-20T09:00:00+08:00");
    let paid = LastCheckin {
        date: date("2026-11-20"),
        points: 11,
        milestone: None,
    };
    s.last = Some(paid);
    assert_eq!(
        check_in(&c, &s, instant("2026-11-20T21:00:00+08:00")).unwrap(),
        CheckIn::Repeat { paid: Some(paid) }
    );
    // A record of another day is never today's answer.
    s.last = Some(LastCheckin {
        date: date("2026-11-19"),
        ..paid
    });
    assert_eq!(
        check_in(&c, &s, instant("2026-11-20T21:00:00+08:00")).unwrap(),
        CheckIn::Repeat { paid: None }
    );
}

#[test]
fn the_view_shows_what_the_next_checkin_pays() {
    let c = daily(); // 5, 5, 10, …
    let (_, _, s) = checkin_at(&c, &StreakState::default(), "2026-11-20T09:00:00+08:00");
    let (_, _, s) = checkin_at(&c, &s, "2026-11-21T09:00:00+08:00");
    let v = view(&c, &s, instant("2026-11-21T12:00:00+08:00"));
    assert_eq!((v.current_streak, v.next_reward), (2, 10), "day 3 of the ladder");
}

#[test]
fn a_zone_change_back_across_a_month_keeps_that_months_makeup_count() {
    let in_zone = |zone: &str| {
        config_with(|c| {
            c.time_zone = zone.into();
            c.makeup.max_per_month = 1;
        })
        .unwrap()
    };
    let kiritimati = in_zone("Pacific/Kiritimati"); // UTC+14
    // 23:00 on 30 November there: November's one make-up.
    let s = make_up(
        &kiritimati,
        &StreakState::default(),
        date("2026-11-28"),
        instant("2026-11-30T09:00:00Z"),
    )
    .unwrap()
    .insertion
    .state;
    // 00:30 on 1 December there: a check-in rewrites the state in the new month.
    let (_, _, s) = checkin_at(&kiritimati, &s, "2026-11-30T10:30:00Z");
    // The admin moves the campaign to UTC: it is 30 November again, and November's make-up counts.
    let utc = in_zone("Etc/UTC");
    assert_eq!(
        make_up(&utc, &s, date("2026-11-27"), instant("2026-11-30T11:00:00Z")).unwrap_err(),
        DomainError::MakeupLimitReached { per_month: 1 }
    );
}
