use std::collections::BTreeMap;

use chrono::Duration;
use proptest::prelude::*;

use super::*;

fn rules() -> LedgerRules {
    LedgerRules::default()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn post(account: &Account, p: Posting, now: &str) -> Result<(Account, LedgerEntry), DomainError> {
    apply(account, &p, at(now), &rules(), "id".into())
}

fn earn(a: &Account, points: i64, now: &str) -> Account {
    post(
        a,
        Posting::new(points, Reason::Grant, "r", format!("k{points}{now}")),
        now,
    )
    .unwrap()
    .0
}

#[test]
fn earned_points_expire_at_the_end_of_month_plus_twelve_in_the_business_zone() {
    let r = rules();
    assert_eq!(r.bucket_for(at("2026-11-23T12:00:00+08:00")), day("2027-11-30"));
    // 2026-11-30T16:30Z is already December 1st in Shanghai.
    assert_eq!(r.bucket_for(at("2026-11-30T16:30:00Z")), day("2027-12-31"));
    assert_eq!(r.bucket_for(at("2027-01-31T12:00:00+08:00")), day("2028-01-31"));
    let a = earn(&Account::default(), 100, "2026-11-23T12:00:00+08:00");
    assert_eq!(a.buckets, BTreeMap::from([(day("2027-11-30"), 100)]));
    // Still valid on the last day, gone the next local day.
    assert!(housekeeping(&a, "u", at("2027-11-30T23:59:59+08:00"), &r).is_empty());
    let due = housekeeping(&a, "u", at("2027-12-01T00:00:00+08:00"), &r);
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].delta, due[0].reason), (-100, Reason::Expire));
    let (after, entry) = apply(&a, &due[0], at("2027-12-01T00:00:00+08:00"), &r, "e".into()).unwrap();
    assert_eq!(
        (after.balance, after.lifetime_earned, entry.balance_after),
        (0, 100, 0)
    );
}

#[test]
fn spending_takes_the_soonest_expiring_points_first() {
    let a = earn(&Account::default(), 100, "2026-01-10T12:00:00+08:00");
    let a = earn(&a, 50, "2026-03-10T12:00:00+08:00");
    let (a, _) = post(
        &a,
        Posting::new(-120, Reason::Makeup, "r", "spend"),
        "2026-04-01T12:00:00+08:00",
    )
    .unwrap();
    assert_eq!(a.buckets, BTreeMap::from([(day("2027-03-31"), 30)]));
    assert_eq!(a.balance, 30);
    assert_eq!(
        post(
            &a,
            Posting::new(-31, Reason::Makeup, "r", "s2"),
            "2026-04-01T12:00:00+08:00"
        )
        .unwrap_err(),
        DomainError::InsufficientPoints {
            balance: 30,
            needed: 31
        }
    );
}

#[test]
fn a_reversal_takes_its_own_bucket_first_and_may_leave_debt() {
    let a = earn(&Account::default(), 100, "2026-01-10T12:00:00+08:00");
    let a = earn(&a, 100, "2026-02-10T12:00:00+08:00");
    let reverse = |a: &Account, n: i64, bucket: &str, key: &str| {
        post(
            a,
            Posting::new(-n, Reason::Reversal, "r", key).with_kind(Kind::Reverse {
                bucket: Some(day(bucket)),
                forgiven: 0,
            }),
            "2026-03-01T12:00:00+08:00",
        )
        .unwrap()
        .0
    };
    let b = reverse(&a, 60, "2027-02-28", "r1");
    assert_eq!(
        b.buckets,
        BTreeMap::from([(day("2027-01-31"), 100), (day("2027-02-28"), 40)])
    );
    assert_eq!((b.balance, b.lifetime_earned), (140, 140));
    // Spend most of it, then reverse more than is left: debt, a negative balance, no spending.
    let (c, _) = post(
        &b,
        Posting::new(-130, Reason::Makeup, "r", "s"),
        "2026-03-01T12:00:00+08:00",
    )
    .unwrap();
    let d = reverse(&c, 40, "2027-02-28", "r2");
    assert_eq!((d.balance, d.debt, d.buckets.len()), (-30, 30, 0));
    assert!(matches!(
        post(
            &d,
            Posting::new(-1, Reason::Makeup, "r", "s3"),
            "2026-03-01T12:00:00+08:00"
        ),
        Err(DomainError::InsufficientPoints { .. })
    ));
    // New earnings pay the debt first.
    let e = earn(&d, 50, "2026-03-02T12:00:00+08:00");
    assert_eq!((e.balance, e.debt), (20, 0));
    assert_eq!(e.buckets, BTreeMap::from([(day("2027-03-31"), 20)]));
}

#[test]
fn holds_leave_the_balance_and_come_back_to_their_buckets() {
    let a = earn(&Account::default(), 100, "2026-01-10T12:00:00+08:00");
    let a = earn(&a, 100, "2026-02-10T12:00:00+08:00");
    let expires_at = at("2026-03-01T12:30:00+08:00");
    let hold = Posting::new(-150, Reason::Hold, "order-1", "hold#h1").with_kind(Kind::Hold {
        hold_id: "h1".into(),
        expires_at,
    });
    let (held, entry) = post(&a, hold, "2026-03-01T12:00:00+08:00").unwrap();
    assert_eq!((held.balance, entry.delta), (50, -150));
    assert_eq!(
        held.holds["h1"].parts,
        vec![(day("2027-01-31"), 100), (day("2027-02-28"), 50)]
    );
    // Release on time: back where they came from.
    let release = Posting::new(150, Reason::Release, "order-1", "release#h1")
        .with_kind(Kind::Release { hold_id: "h1".into() });
    let (back, _) = post(&held, release.clone(), "2026-03-01T12:10:00+08:00").unwrap();
    assert_eq!(back.buckets, a.buckets);
    assert_eq!(back.balance, 200);
    // Capture: the points are spent; a second capture or a release finds no hold.
    let capture = Posting::new(0, Reason::Capture, "order-1", "capture#h1")
        .with_kind(Kind::Capture { hold_id: "h1".into() });
    let (spent, entry) = post(&held, capture.clone(), "2026-03-01T12:10:00+08:00").unwrap();
    assert_eq!((spent.balance, entry.delta, spent.holds.len()), (50, 0, 0));
    assert_eq!(
        post(&spent, capture, "2026-03-01T12:11:00+08:00").unwrap_err(),
        DomainError::HoldNotActive
    );
    assert_eq!(
        post(&spent, release, "2026-03-01T12:11:00+08:00").unwrap_err(),
        DomainError::HoldNotActive
    );
    // A hold past its time is released by housekeeping, and its expired parts then expire.
    let late = housekeeping(&held, "u", at("2027-02-01T09:00:00+08:00"), &rules());
    let kinds: Vec<Reason> = late.iter().map(|p| p.reason).collect();
    assert_eq!(kinds, vec![Reason::Release, Reason::Expire]);
    assert_eq!(late[1].delta, -100, "the January bucket, released then expired");
}

#[test]
fn refuses_zero_oversized_and_overflow() {
    let a = Account {
        balance: i64::MAX - 5,
        buckets: BTreeMap::from([(day("2027-01-31"), i64::MAX - 5)]),
        ..Account::default()
    };
    assert_eq!(
        post(
            &a,
            Posting::new(6, Reason::Grant, "r", "k"),
            "2026-01-10T12:00:00+08:00"
        )
        .unwrap_err(),
        DomainError::Overflow
    );
    let z = Account::default();
    assert!(matches!(
        post(
            &z,
            Posting::new(0, Reason::Grant, "r", "k"),
            "2026-01-10T12:00:00Z"
        ),
        Err(DomainError::Invalid { .. })
    ));
    assert!(matches!(
        post(
            &z,
            Posting::new(MAX_POSTING + 1, Reason::Grant, "r", "k"),
            "2026-01-10T12:00:00Z"
        ),
        Err(DomainError::Invalid { .. })
    ));
    assert!(matches!(
        post(
            &z,
            Posting::new(i64::MIN, Reason::Grant, "r", "k"),
            "2026-01-10T12:00:00Z"
        ),
        Err(DomainError::Invalid { .. })
    ));
}

#[test]
fn expired_points_given_back_by_a_release_never_pay_debt() {
    // Review scenario: 100 earned in Nov 2026, 50 in Dec 2026; all 150 held just before Nov's
    // points expire; Dec's grant reversed after midnight (debt 50); then the hold is released.
    let a = earn(&Account::default(), 100, "2026-11-10T12:00:00+08:00");
    let a = earn(&a, 50, "2026-12-10T12:00:00+08:00");
    let hold = Posting::new(-150, Reason::Hold, "o", "hold#h").with_kind(Kind::Hold {
        hold_id: "h".into(),
        expires_at: at("2027-12-01T00:20:00+08:00"),
    });
    let (a, _) = post(&a, hold, "2027-11-30T23:50:00+08:00").unwrap();
    let reverse = Posting::new(-50, Reason::Reversal, "g2", "rev").with_kind(Kind::Reverse {
        bucket: Some(day("2027-12-31")),
        forgiven: 0,
    });
    let (a, _) = post(&a, reverse, "2027-12-01T00:05:00+08:00").unwrap();
    assert_eq!((a.balance, a.debt), (-50, 50));
    let release =
        Posting::new(150, Reason::Release, "o", "release#h").with_kind(Kind::Release { hold_id: "h".into() });
    let (a, _) = post(&a, release, "2027-12-01T00:10:00+08:00").unwrap();
    // December's 50 paid the debt; November's 100 went back to their expired bucket…
    assert_eq!(
        (a.debt, a.buckets.clone()),
        (0, BTreeMap::from([(day("2027-11-30"), 100)]))
    );
    // …and expire at once.
    let due = expire_due(&a, "u", at("2027-12-01T00:10:00+08:00"), &rules());
    let (a, _) = apply(&a, &due[0], at("2027-12-01T00:10:00+08:00"), &rules(), "e".into()).unwrap();
    assert_eq!((a.balance, a.debt, a.buckets.len()), (0, 0, 0));
}

#[test]
fn a_member_has_at_most_twenty_open_holds() {
    let mut a = earn(&Account::default(), 1_000, "2026-11-10T12:00:00+08:00");
    for i in 0..MAX_OPEN_HOLDS {
        let hold = Posting::new(-1, Reason::Hold, "o", format!("hold#{i}")).with_kind(Kind::Hold {
            hold_id: format!("h{i}"),
            expires_at: at("2026-11-10T12:30:00+08:00"),
        });
        a = post(&a, hold, "2026-11-10T12:00:00+08:00").unwrap().0;
    }
    let one_more = Posting::new(-1, Reason::Hold, "o", "hold#x").with_kind(Kind::Hold {
        hold_id: "hx".into(),
        expires_at: at("2026-11-10T12:30:00+08:00"),
    });
    assert_eq!(
        post(&a, one_more, "2026-11-10T12:00:00+08:00").unwrap_err(),
        DomainError::HoldLimitReached { max: MAX_OPEN_HOLDS }
    );
}

#[test]
fn releases_and_expiries_move_any_amount() {
    // Two grants of the maximum in one month make a bucket above MAX_POSTING; it still expires.
    let a = earn(&Account::default(), MAX_POSTING, "2026-11-10T12:00:00+08:00");
    let a = earn(&a, MAX_POSTING, "2026-11-11T12:00:00+08:00");
    let due = housekeeping(&a, "u", at("2027-12-01T00:00:00+08:00"), &rules());
    let (a, _) = apply(&a, &due[0], at("2027-12-01T00:00:00+08:00"), &rules(), "e".into()).unwrap();
    assert_eq!(a.balance, 0);
}

// ---- Property test against a reference model --------------------------------------------------

/// Naive model: a list of lots (last valid day, points), a debt, holds as lists of lots, growth.
#[derive(Default, Clone)]
struct Model {
    lots: Vec<(NaiveDate, i64)>,
    debt: i64,
    holds: BTreeMap<String, Vec<(NaiveDate, i64)>>,
    earned: i64,
    /// The hold the next `take` fills.
    pending_hold: Option<String>,
    /// Per bucket: points that expired, and the part of them reversals forgave.
    expired: BTreeMap<NaiveDate, i64>,
    forgiven: BTreeMap<NaiveDate, i64>,
    /// Per bucket reversed after its end: what had expired when the first such reversal came.
    expired_at_reversal: BTreeMap<NaiveDate, i64>,
    /// Buckets reversed while still valid (nothing forgiven; what expires later was available).
    reversed_while_valid: std::collections::BTreeSet<NaiveDate>,
}

impl Model {
    fn balance(&self) -> i64 {
        self.lots.iter().map(|l| l.1).sum::<i64>() - self.debt
    }
    fn totals(&self) -> BTreeMap<NaiveDate, i64> {
        let mut t = BTreeMap::new();
        for (d, p) in &self.lots {
            *t.entry(*d).or_insert(0) += p;
        }
        t.retain(|_, p| *p > 0);
        t
    }
    fn add(&mut self, d: NaiveDate, mut p: i64) {
        let pay = self.debt.min(p);
        self.debt -= pay;
        p -= pay;
        if p > 0 {
            self.lots.push((d, p));
        }
    }
    fn take(&mut self, mut n: i64, first: Option<NaiveDate>) -> i64 {
        self.lots.sort_by_key(|l| (Some(l.0) != first, l.0));
        let mut taken = Vec::new();
        for lot in self.lots.iter_mut() {
            let t = lot.1.min(n);
            if t > 0 {
                lot.1 -= t;
                n -= t;
                taken.push((lot.0, t));
            }
        }
        self.lots.retain(|l| l.1 > 0);
        if let Some(h) = self.pending_hold.take() {
            self.holds.insert(h, taken);
        }
        n
    }
    /// Gives a hold back: expired lots are simply gone, valid ones pay debt first.
    fn give_back(&mut self, id: &str, today: NaiveDate) {
        for (d, p) in self.holds.remove(id).unwrap() {
            if d >= today {
                self.add(d, p);
            } else {
                *self.expired.entry(d).or_insert(0) += p;
            }
        }
    }
    fn housekeeping(
        &mut self,
        today: NaiveDate,
        now: DateTime<Utc>,
        deadlines: &BTreeMap<String, DateTime<Utc>>,
    ) {
        let due: Vec<String> = self
            .holds
            .keys()
            .filter(|h| deadlines[*h] <= now)
            .cloned()
            .collect();
        for h in due {
            self.give_back(&h, today);
        }
        for (d, p) in self.lots.iter().filter(|l| l.0 < today) {
            *self.expired.entry(*d).or_insert(0) += p;
        }
        self.lots.retain(|l| l.0 >= today);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Earn(i64, bool),
    Spend(i64),
    Hold(i64),
    Capture(usize),
    Release(usize),
    Reverse(i64, usize),
    Jump(u32),
    /// To the last second of a local month or the first of the next: expiry boundaries.
    ToMonthStart(u32, u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => ((1i64..500), any::<bool>()).prop_map(|(n, c)| Op::Earn(n, c)),
        3 => (1i64..400).prop_map(Op::Spend),
        2 => (1i64..300).prop_map(Op::Hold),
        1 => (0usize..8).prop_map(Op::Capture),
        1 => (0usize..8).prop_map(Op::Release),
        2 => ((1i64..400), (0usize..8)).prop_map(|(n, g)| Op::Reverse(n, g)),
        3 => (0u32..120).prop_map(Op::Jump),
        2 => ((1u32..15), (0u32..3)).prop_map(|(m, s)| Op::ToMonthStart(m, s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// For any sequence of earnings, spends, holds, captures, releases, reversals and clock jumps,
    /// run as the store runs them (housekeeping before, expiries after): the balance equals the
    /// sum of the ledger and the model's; buckets, debt and growth equal the model's; no expired
    /// point is ever shown, spent or held; spending takes the soonest-expiring points first.
    #[test]
    fn matches_the_reference_model(ops in prop::collection::vec(op(), 1..80)) {
        let r = rules();
        let mut now = at("2026-01-15T04:00:00Z");
        let mut account = Account::default();
        let mut model = Model::default();
        let mut entries: Vec<LedgerEntry> = Vec::new();
        // Each grant's bucket and what is left of it to reverse.
        let mut grants: Vec<(NaiveDate, i64)> = Vec::new();
        // Buckets a reversal found beyond their history (ended over HISTORY_MONTHS ago): all forgiven.
        let mut beyond_history: std::collections::BTreeSet<NaiveDate> = std::collections::BTreeSet::new();
        let mut hold_ids: Vec<String> = Vec::new();
        let mut deadlines = BTreeMap::new();
        for (i, op) in ops.into_iter().enumerate() {
            let today = r.today(now);
            for p in housekeeping(&account, "u", now, &r) {
                let (next, e) = apply(&account, &p, now, &r, format!("h{i}")).unwrap();
                account = next;
                entries.push(e);
            }
            model.housekeeping(today, now, &deadlines);
            let before = account.buckets.clone();
            let posting = match &op {
                Op::Earn(n, checkin) => {
                    let reason = if *checkin { Reason::Checkin } else { Reason::Grant };
                    Some(Posting::new(*n, reason, "g", format!("g{i}")))
                }
                Op::Spend(n) => Some(Posting::new(-n, Reason::Makeup, "s", format!("s{i}"))),
                Op::Hold(n) => Some(
                    Posting::new(-n, Reason::Hold, "o", format!("hold{i}"))
                        .with_kind(Kind::Hold { hold_id: format!("h{i}"), expires_at: now + Duration::minutes(30) }),
                ),
                Op::Capture(k) => hold_ids.get(*k).map(|id| {
                    Posting::new(0, Reason::Capture, "o", format!("c{i}")).with_kind(Kind::Capture { hold_id: id.clone() })
                }),
                Op::Release(k) => hold_ids.get(*k).map(|id| {
                    let amount = account.holds.get(id).map_or(1, |h| h.amount);
                    Posting::new(amount, Reason::Release, "o", format!("r{i}")).with_kind(Kind::Release { hold_id: id.clone() })
                }),
                Op::Reverse(n, g) => grants.get(*g).filter(|(_, left)| *left > 0).map(|(b, left)| {
                    let take = (*n).min(*left);
                    let horizon = today.checked_sub_months(Months::new(HISTORY_MONTHS)).unwrap();
                    if *b < today && (*b < horizon || !account.history.contains_key(b)) {
                        beyond_history.insert(*b);
                    }
                    let forgiven = forgiven_part(&account, *b, take, today);
                    Posting::new(-(take - forgiven), Reason::Reversal, "v", format!("v{i}"))
                        .with_kind(Kind::Reverse { bucket: Some(*b), forgiven })
                }),
                Op::Jump(x) => {
                    now += Duration::minutes(i64::from(*x) * 10 + 1) + Duration::days(i64::from(*x % 7) * 9);
                    None
                }
                Op::ToMonthStart(months, seconds) => {
                    let first = today.with_day(1).unwrap().checked_add_months(Months::new(*months)).unwrap();
                    let local = first.and_hms_opt(0, 0, *seconds).unwrap();
                    now = local.and_local_timezone(r.zone).unwrap().with_timezone(&Utc) - Duration::seconds(1);
                    None
                }
            };
            let Some(posting) = posting else { continue };
            match apply(&account, &posting, now, &r, format!("e{i}")) {
                Ok((next, entry)) => {
                    match &op {
                        Op::Earn(n, _) => {
                            model.add(r.bucket_for(now), *n);
                            model.earned += n;
                            grants.push((r.bucket_for(now), *n));
                        }
                        Op::Spend(n) | Op::Hold(n) => {
                            // Which buckets the engine took from, by difference.
                            let used: Vec<NaiveDate> =
                                before.iter().filter(|(d, p)| next.buckets.get(d).copied().unwrap_or(0) < **p).map(|(d, _)| *d).collect();
                            prop_assert!(used.iter().all(|d| *d >= today), "an expired point was spent");
                            let last = *used.last().unwrap();
                            prop_assert!(before.keys().filter(|d| **d < last).all(|d| !next.buckets.contains_key(d)), "not soonest first");
                            if let Op::Hold(_) = op {
                                model.pending_hold = Some(format!("h{i}"));
                                hold_ids.push(format!("h{i}"));
                                deadlines.insert(format!("h{i}"), now + Duration::minutes(30));
                            }
                            prop_assert_eq!(model.take(*n, None), 0);
                        }
                        Op::Capture(k) => prop_assert!(model.holds.remove(&hold_ids[*k]).is_some()),
                        Op::Release(k) => model.give_back(&hold_ids[*k], today),
                        Op::Reverse(_, g) => {
                            let Kind::Reverse { forgiven, .. } = posting.kind else { unreachable!() };
                            let (bucket, left) = grants[*g];
                            let take = -entry.delta + forgiven;
                            prop_assert!(take > 0 && take <= left);
                            prop_assert!(forgiven == 0 || bucket < today, "forgiven before its bucket ended");
                            prop_assert_eq!(entry.forgiven, (forgiven > 0).then_some(forgiven));
                            grants[*g].1 -= take;
                            *model.forgiven.entry(bucket).or_insert(0) += forgiven;
                            if bucket < today {
                                let expired = model.expired.get(&bucket).copied().unwrap_or(0);
                                model.expired_at_reversal.entry(bucket).or_insert(expired);
                            } else {
                                model.reversed_while_valid.insert(bucket);
                            }
                            let short = model.take(take - forgiven, Some(bucket));
                            model.debt += short;
                            model.earned = (model.earned - take).max(0);
                        }
                        Op::Jump(_) | Op::ToMonthStart(..) => unreachable!(),
                    }
                    account = next;
                    entries.push(entry);
                }
                Err(DomainError::InsufficientPoints { needed, .. }) => {
                    prop_assert!(matches!(op, Op::Spend(_) | Op::Hold(_)));
                    prop_assert!(model.debt > 0 || needed > model.balance());
                }
                Err(DomainError::HoldNotActive) => {
                    let k = match op { Op::Capture(k) | Op::Release(k) => k, _ => usize::MAX };
                    prop_assert!(!model.holds.contains_key(&hold_ids[k]));
                }
                Err(DomainError::HoldLimitReached { .. }) => prop_assert!(model.holds.len() >= MAX_OPEN_HOLDS),
                Err(e) => prop_assert!(false, "unexpected {:?} for {:?}", e, op),
            }
            // What the store does after the plan: expiries that a release made due.
            for p in expire_due(&account, "u", now, &r) {
                let (next, e) = apply(&account, &p, now, &r, format!("x{i}")).unwrap();
                account = next;
                entries.push(e);
            }
            prop_assert!(account.buckets.keys().all(|d| *d >= today), "expired points shown");
            let sum: i64 = entries.iter().map(|e| e.delta).sum();
            prop_assert_eq!(account.balance, sum, "balance = Σ ledger");
            prop_assert_eq!(account.balance, model.balance());
            prop_assert_eq!(account.debt, model.debt);
            prop_assert_eq!(&account.buckets, &model.totals());
            prop_assert_eq!(account.lifetime_earned, model.earned);
            prop_assert!(account.debt == 0 || account.buckets.is_empty());
            prop_assert_eq!(account.seq, entries.len() as u64);
            // Expired points are never taken twice: a bucket's reversals never forgive more than
            // expired from it; and when all its grants were reversed after it ended (and nothing
            // expired from it since, such as a hold given back late), exactly that.
            for (bucket, forgiven) in &model.forgiven {
                if beyond_history.contains(bucket) {
                    continue;
                }
                let expired = model.expired.get(bucket).copied().unwrap_or(0);
                prop_assert!(*forgiven <= expired, "{} forgave {} of {} expired", bucket, forgiven, expired);
                let all_reversed = grants.iter().filter(|(b, _)| b == bucket).all(|(_, left)| *left == 0);
                let settled = model.expired_at_reversal.get(bucket) == Some(&expired)
                    && !model.reversed_while_valid.contains(bucket);
                if all_reversed && settled {
                    prop_assert_eq!(*forgiven, expired, "bucket {}", bucket);
                }
            }
        }
    }
}

// ---- Refunds of grants whose points expired ----------------------------------------------------

fn reversal(a: &Account, bucket: NaiveDate, amount: i64, now: &str, key: &str) -> (Account, LedgerEntry) {
    let forgiven = forgiven_part(a, bucket, amount, rules().today(at(now)));
    let posting = Posting::new(-(amount - forgiven), Reason::Reversal, "g", key).with_kind(Kind::Reverse {
        bucket: Some(bucket),
        forgiven,
    });
    post(a, posting, now).unwrap()
}

fn expire_all(a: &Account, now: &str) -> Account {
    let mut a = a.clone();
    for p in housekeeping(&a, "u", at(now), &rules()) {
        a = post(&a, p, now).unwrap().0;
    }
    a
}

/// The README's worked example.
#[test]
fn a_refund_after_expiry_forgives_the_grants_expired_share() {
    let nov = day("2027-11-30");
    let a = earn(&Account::default(), 100, "2026-11-05T12:00:00+08:00"); // grant A
    let a = earn(&a, 50, "2026-11-20T12:00:00+08:00"); // grant B, same bucket
    let (a, _) = post(
        &a,
        Posting::new(-60, Reason::Makeup, "r", "spend"),
        "2026-12-01T12:00:00+08:00",
    )
    .unwrap();
    // Before the bucket ends nothing is forgiven.
    assert_eq!(forgiven_part(&a, nov, 100, day("2027-11-30")), 0);
    let a = expire_all(&a, "2027-12-01T00:00:00+08:00");
    assert_eq!(
        a.history[&nov],
        BucketHistory {
            earned: 150,
            expired: 90
        }
    );
    // Refund A in January 2028: ⌈100 × 90 / 150⌉ = 60 forgiven, 40 taken (here: as debt).
    let (a, entry) = reversal(&a, nov, 100, "2028-01-10T12:00:00+08:00", "rA");
    assert_eq!((entry.delta, entry.forgiven), (-40, Some(60)));
    assert_eq!((a.balance, a.debt, a.lifetime_earned), (-40, 40, 50));
    assert_eq!(
        a.history[&nov],
        BucketHistory {
            earned: 50,
            expired: 30
        }
    );
    // Refund B: ⌈50 × 30 / 50⌉ = 30 forgiven, 20 taken. In all 90 forgiven = what expired, and
    // 60 taken = what was spent.
    let (a, entry) = reversal(&a, nov, 50, "2028-01-10T12:00:00+08:00", "rB");
    assert_eq!((entry.delta, entry.forgiven), (-20, Some(30)));
    assert_eq!((a.balance, a.lifetime_earned), (-60, 0));
    // A refund whose points all expired takes nothing: a zero entry that records the forgiveness.
    let b = earn(&Account::default(), 70, "2026-11-05T12:00:00+08:00");
    let b = expire_all(&b, "2027-12-01T00:00:00+08:00");
    let (b, entry) = reversal(&b, nov, 70, "2027-12-02T12:00:00+08:00", "rC");
    assert_eq!((entry.delta, entry.forgiven, b.balance), (0, Some(70), 0));
    // Rounding favours the member: ⌈1 × 1 / 3⌉ = 1.
    let c = Account {
        history: BTreeMap::from([(
            nov,
            BucketHistory {
                earned: 3,
                expired: 1,
            },
        )]),
        ..Account::default()
    };
    assert_eq!(forgiven_part(&c, nov, 1, day("2028-01-01")), 1);
    assert_eq!(forgiven_part(&c, nov, 3, day("2028-01-01")), 1);
    // Beyond the kept history the whole amount counts as expired, even where the history has
    // not been pruned yet (that happens at the next expiry); nothing forgiven for zero.
    assert_eq!(forgiven_part(&Account::default(), nov, 25, day("2030-01-01")), 25);
    assert_eq!(
        forgiven_part(&c, nov, 1, day("2029-11-30")),
        1,
        "24 months after: still its share"
    );
    assert_eq!(forgiven_part(&c, nov, 2, day("2029-11-30")), 1);
    assert_eq!(
        forgiven_part(&c, nov, 2, day("2029-12-01")),
        2,
        "older: all of it"
    );
    assert_eq!(forgiven_part(&c, nov, 0, day("2028-01-01")), 0);
}

#[test]
fn bucket_history_is_kept_for_two_years_after_the_bucket() {
    let a = earn(&Account::default(), 10, "2026-01-05T12:00:00+08:00"); // bucket 2027-01-31
    let a = earn(&a, 10, "2027-06-05T12:00:00+08:00"); // bucket 2028-06-30
    let a = expire_all(&a, "2029-01-31T12:00:00+08:00");
    assert!(
        a.history.contains_key(&day("2027-01-31")),
        "2 years to the day are kept"
    );
    let a = expire_all(&a, "2029-02-01T12:00:00+08:00");
    assert!(
        a.history.contains_key(&day("2027-01-31")),
        "pruned only by the next expiry"
    );
    let a = earn(&a, 10, "2029-03-05T12:00:00+08:00");
    let a = expire_all(&a, "2030-04-01T12:00:00+08:00");
    assert!(!a.history.contains_key(&day("2027-01-31")));
    assert!(a.history.contains_key(&day("2028-06-30")));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Grants into one bucket, some spending, the bucket ends, then refunds in any order and
    /// sizes: no refund forgives more than is left expired, and once every grant is refunded the
    /// bucket forgave exactly what expired from it and took exactly what had been spent.
    #[test]
    fn refunds_after_expiry_take_exactly_what_did_not_expire(
        grants in prop::collection::vec(1i64..500, 1..6),
        spends in prop::collection::vec(1i64..400, 0..4),
        refunds in prop::collection::vec((0usize..6, 1i64..600), 0..12),
    ) {
        let bucket = day("2027-11-30");
        let mut a = Account::default();
        for (i, g) in grants.iter().enumerate() {
            a = post(&a, Posting::new(*g, Reason::Grant, "g", format!("g{i}")), "2026-11-10T12:00:00+08:00").unwrap().0;
        }
        let mut spent = 0;
        for (i, s) in spends.iter().enumerate() {
            if let Ok((next, _)) = post(&a, Posting::new(-s, Reason::Makeup, "s", format!("s{i}")), "2027-03-01T12:00:00+08:00") {
                a = next;
                spent += s;
            }
        }
        let before = a.buckets.get(&bucket).copied().unwrap_or(0);
        a = expire_all(&a, "2027-12-01T00:00:00+08:00");
        let expired = before;
        let mut left = grants.clone();
        let (mut forgiven_total, mut taken_total) = (0, 0);
        let plan = refunds.iter().map(|(g, n)| (g % grants.len(), *n))
            .chain((0..grants.len()).map(|g| (g, i64::MAX)));
        for (k, (g, n)) in plan.enumerate() {
            let amount = n.min(left[g]);
            if amount == 0 {
                continue;
            }
            let (next, entry) = reversal(&a, bucket, amount, "2028-02-01T12:00:00+08:00", &format!("r{k}"));
            let forgiven = entry.forgiven.unwrap_or(0);
            prop_assert!(forgiven <= amount && forgiven <= expired - forgiven_total);
            forgiven_total += forgiven;
            taken_total += -entry.delta;
            left[g] -= amount;
            a = next;
        }
        prop_assert_eq!(forgiven_total, expired, "every expired point forgiven once");
        prop_assert_eq!(taken_total, spent, "and exactly what was spent taken back");
        prop_assert_eq!(a.balance, -spent);
        prop_assert_eq!(a.lifetime_earned, 0);
    }
}

// ---- Promises pinned by mutation testing ------------------------------------------------------

#[test]
fn only_earnings_grow_the_tier() {
    let earn = [
        Reason::Grant,
        Reason::Purchase,
        Reason::Checkin,
        Reason::Milestone,
    ];
    for reason in [
        Reason::Grant,
        Reason::Purchase,
        Reason::Checkin,
        Reason::Milestone,
        Reason::Makeup,
        Reason::Hold,
        Reason::Capture,
        Reason::Release,
        Reason::Reversal,
        Reason::Expire,
        Reason::TierChange,
    ] {
        assert_eq!(reason.is_earn(), earn.contains(&reason), "{reason:?}");
    }
}

#[test]
fn nothing_is_forgiven_while_a_bucket_is_valid_even_without_history() {
    // An account from before bucket histories were kept: its buckets have none.
    let a = Account::default();
    assert_eq!(
        forgiven_part(&a, day("2027-11-30"), 10, day("2027-11-30")),
        0,
        "its last day"
    );
    assert_eq!(
        forgiven_part(&a, day("2027-11-30"), 10, day("2027-12-01")),
        10,
        "then all"
    );
}

#[test]
fn points_valid_through_today_given_back_by_a_release_pay_debt() {
    // 100 earned in Nov 2026 (valid through 2027-11-30); all held on that last day; a reversal
    // of a December grant leaves debt; the release the same day pays it.
    let a = earn(&Account::default(), 100, "2026-11-10T12:00:00+08:00");
    let a = earn(&a, 50, "2026-12-10T12:00:00+08:00");
    let hold = Posting::new(-100, Reason::Hold, "o", "hold#h").with_kind(Kind::Hold {
        hold_id: "h".into(),
        expires_at: at("2027-11-30T13:00:00+08:00"),
    });
    let (a, _) = post(&a, hold, "2027-11-30T12:00:00+08:00").unwrap();
    assert_eq!(a.holds["h"].parts, vec![(day("2027-11-30"), 100)]);
    let reverse = Posting::new(-80, Reason::Reversal, "g", "rev").with_kind(Kind::Reverse {
        bucket: Some(day("2027-12-31")),
        forgiven: 0,
    });
    let (a, _) = post(&a, reverse, "2027-11-30T12:10:00+08:00").unwrap();
    assert_eq!(a.debt, 30);
    let release =
        Posting::new(100, Reason::Release, "o", "release#h").with_kind(Kind::Release { hold_id: "h".into() });
    let (a, _) = post(&a, release, "2027-11-30T12:20:00+08:00").unwrap();
    assert_eq!((a.debt, a.balance), (0, 70), "valid points paid the debt");
    assert_eq!(a.buckets, BTreeMap::from([(day("2027-11-30"), 70)]));
}

#[test]
fn business_keys_are_one_to_512_bytes() {
    let z = Account::default();
    let now = "2026-01-10T12:00:00Z";
    assert!(post(&z, Posting::new(1, Reason::Grant, "r", "k".repeat(512)), now).is_ok());
    for bad in [String::new(), "k".repeat(513)] {
        assert!(matches!(
            post(&z, Posting::new(1, Reason::Grant, "r", bad), now),
            Err(DomainError::Invalid {
                field: "business_key",
                ..
            })
        ));
    }
}

#[test]
fn a_hold_or_a_reversal_never_adds_points() {
    let a = earn(&Account::default(), 100, "2026-01-10T12:00:00+08:00");
    let now = "2026-01-10T13:00:00+08:00";
    let hold = Posting::new(5, Reason::Hold, "o", "hold#h").with_kind(Kind::Hold {
        hold_id: "h".into(),
        expires_at: at("2026-01-10T13:30:00+08:00"),
    });
    assert!(matches!(post(&a, hold, now), Err(DomainError::Invalid { .. })));
    let reverse = |delta, forgiven| {
        Posting::new(delta, Reason::Reversal, "g", "rev").with_kind(Kind::Reverse {
            bucket: Some(day("2027-01-31")),
            forgiven,
        })
    };
    assert!(matches!(
        post(&a, reverse(5, 0), now),
        Err(DomainError::Invalid { .. })
    ));
    assert!(matches!(
        post(&a, reverse(-5, -1), now),
        Err(DomainError::Invalid { .. })
    ));
    assert!(matches!(
        post(&a, reverse(-5, MAX_POSTING + 1), now),
        Err(DomainError::Invalid { .. })
    ));
    assert!(post(&a, reverse(-5, MAX_POSTING), now).is_ok());
}
