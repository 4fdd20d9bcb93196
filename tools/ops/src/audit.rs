//! `campaign-ops audit`: reads the whole table once (a parallel `Scan`) and checks every invariant
//! the features define, from the stored items alone. Read-only; safe to run while the functions
//! serve traffic (a scan is not a snapshot, so on a live table a check may see one half of a
//! transaction that committed mid-scan: re-run before believing a single violation; on a quiet
//! table, as in the tests, a violation is a bug).
//!
//! The checks, by the name the report uses (docs/TESTING.md, "The audit"):
//!
//! | check | what must hold |
//! |---|---|
//! | `ledger.seq` | a member's entries are numbered 1..=`seq` of the account, without gaps |
//! | `ledger.running` | each entry's `balance_after` = the previous one's + its `delta` |
//! | `ledger.balance` | the account's balance = Σ its entries' deltas = Σ buckets − debt; buckets > 0, debt ≥ 0 |
//! | `ledger.guard` | each entry has the guard of its business key, naming it (member, seq, id, delta); each guard names an entry |
//! | `ledger.once` | no business key appears on two entries |
//! | `ledger.holds` | each open hold has its index item, naming the member and the amount |
//! | `checkin.days` | each check-in payment is a day checked in, each make-up charge a day made up |
//! | `tier.seats` | no capped tier counts more members than its cap |
//! | `reversal.total` | what was reversed of a grant (its counter, and the reversal entries) ≤ the grant |
//! | `draw.stock` | each stock item: `taken` ≤ `total`; per prize, Σ `taken` = the spins that won it (so awards ≤ stock ever added) |
//! | `draw.coupon` | each coupon won by exactly the spin that names it; no code in two spins |
//! | `draw.spins` | a member's draw state counts their spin records, numbered 1..=n |
//! | `draw.payment` | each paid spin's cost and each points prize is the ledger entry of its key, for that amount; a physical prize has its fulfilment |
//! | `draw.member_max` | no member won a prize more often than its `per_member_max` |
//! | `contest.prize` | each payout of a settled contest's snapshot paid once, the snapshot's amount (points) or one fulfilment (items); nothing paid outside the snapshot; the recorded totals agree |
//! | `referral.caps` | a referrer's paid rewards per business month and ever within the program's caps, and as counted on the referrer item |
//! | `referral.paid` | a paid referral has its referrer payment; a referral's invitee reward paid once, for the amount fixed at the claim |
//! | `board.score` | each points-board score (all-time, week, month) = what the member's ledger earned on it, per the reason table |
//! | `contest.score` | each contest entry = what the member's ledger, check-ins and referrals say for its window and metric |
//! | `contest.team` | a team's members are the entries naming it; its score = Σ their scores |
//! | `board.counter` | each board's bucket counters = the entries with a positive score in that bucket |

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared::domain::boards::{self, Board};
use shared::domain::contests::{self, Contest, Counting, Metric};
use shared::domain::draws::{MemberDraw, PrizeKind};
use shared::domain::ledger::{Account, LedgerEntry, Reason};
use shared::domain::referrals::{Program, Status};
use shared::store::keys::business;
use shared::store::{BoardEntry, ContestResult, GuardRecord, Team};

/// A member's business key, built by the store's own key builders (an id that is no member id
/// cannot have one: an empty key, which no guard has).
fn business_key(user: &str, build: impl Fn(&shared::domain::UserId) -> String) -> String {
    shared::domain::UserId::parse(user)
        .map(|u| build(&u))
        .unwrap_or_default()
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The check's name (`ledger.seq`, …).
    pub check: &'static str,
    /// The item (`pk / sk`) or the member it is about.
    pub subject: String,
    pub detail: String,
}

/// What an audit found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Items read.
    pub items: usize,
    /// How many subjects each check looked at.
    pub checked: BTreeMap<&'static str, u64>,
    pub violations: Vec<Violation>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    fn saw(&mut self, check: &'static str) {
        *self.checked.entry(check).or_default() += 1;
    }

    fn fail(&mut self, check: &'static str, subject: impl Into<String>, detail: impl Into<String>) {
        self.violations.push(Violation {
            check,
            subject: subject.into(),
            detail: detail.into(),
        });
    }

    /// A check that holds when `ok`.
    fn expect(
        &mut self,
        check: &'static str,
        ok: bool,
        subject: impl Into<String>,
        detail: impl FnOnce() -> String,
    ) {
        self.saw(check);
        if !ok {
            self.fail(check, subject, detail());
        }
    }

    /// The report a person reads: what was checked, then every violation (at most 50 a check).
    pub fn render(&self) -> String {
        let mut out = format!("audit: {} items read\n", self.items);
        for (check, n) in &self.checked {
            let bad = self.violations.iter().filter(|v| v.check == *check).count();
            let verdict = if bad == 0 {
                "ok".to_owned()
            } else {
                format!("{bad} VIOLATED")
            };
            let _ = writeln!(out, "  {check:<17} {n:>9} checked  {verdict}");
        }
        let mut shown: HashMap<&str, usize> = HashMap::new();
        for v in &self.violations {
            let n = shown.entry(v.check).or_default();
            *n += 1;
            if *n <= 50 {
                let _ = writeln!(out, "VIOLATION {}: {}: {}", v.check, v.subject, v.detail);
            }
        }
        match self.violations.len() {
            0 => out.push_str("clean: every invariant holds\n"),
            n => {
                let _ = writeln!(out, "{n} violations");
            }
        }
        out
    }
}

/// A stored item: its keys and its attributes as JSON.
#[derive(Debug, Clone)]
pub struct Item {
    pub pk: String,
    pub sk: String,
    pub body: Value,
}

impl Item {
    pub fn from_dynamo(item: HashMap<String, AttributeValue>) -> Result<Item, String> {
        let body: Value = serde_dynamo::from_item(item).map_err(|e| e.to_string())?;
        let key = |name: &str| {
            body.get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Item {
            pk: key("pk"),
            sk: key("sk"),
            body,
        })
    }

    fn subject(&self) -> String {
        format!("{} / {}", self.pk, self.sk)
    }
}

/// Reads the whole table with a parallel scan of `segments`, calling `progress` with the items read
/// so far after each page.
pub async fn scan(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    segments: i32,
    progress: impl Fn(usize) + Send + Sync,
) -> Result<Vec<Item>, String> {
    let read = std::sync::atomic::AtomicUsize::new(0);
    let pages = (0..segments).map(|segment| {
        let (read, progress) = (&read, &progress);
        async move {
            let mut items = Vec::new();
            let mut start: Option<HashMap<String, AttributeValue>> = None;
            loop {
                let page = client
                    .scan()
                    .table_name(table)
                    .consistent_read(true)
                    .segment(segment)
                    .total_segments(segments)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| format!("scan: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
                let got = page.items.unwrap_or_default();
                let total = read.fetch_add(got.len(), std::sync::atomic::Ordering::Relaxed) + got.len();
                progress(total);
                for item in got {
                    items.push(Item::from_dynamo(item)?);
                }
                match page.last_evaluated_key {
                    Some(key) if !key.is_empty() => start = Some(key),
                    _ => return Ok::<_, String>(items),
                }
            }
        }
    });
    let parts = futures_util::future::try_join_all(pages).await?;
    Ok(parts.into_iter().flatten().collect())
}

/// Scans `table` and audits it; `zone` is the business zone the functions run with.
pub async fn run(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    zone: Tz,
    progress: impl Fn(usize) + Send + Sync,
) -> Result<Report, String> {
    let items = scan(client, table, 4, progress).await?;
    Ok(audit(&items, zone))
}

fn parse<T: DeserializeOwned>(item: &Item, report: &mut Report) -> Option<T> {
    match serde_json::from_value(item.body.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            report.fail("item.shape", item.subject(), format!("unreadable: {e}"));
            None
        }
    }
}

#[derive(Deserialize)]
struct Counter {
    #[serde(default)]
    n: i64,
}

#[derive(Deserialize)]
struct HoldIndex {
    user_id: String,
    amount: i64,
}

#[derive(Deserialize)]
struct Reversed {
    #[serde(default)]
    total: i64,
}

#[derive(Deserialize)]
struct StockItem {
    #[serde(default)]
    total: u64,
    #[serde(default)]
    taken: u64,
}

#[derive(Deserialize)]
struct StoredDraw {
    id: String,
    spec: shared::domain::draws::DrawSpec,
}

#[derive(Deserialize)]
struct SpinRecord {
    draw_id: String,
    spin: u64,
    cost: i64,
    prize: WonPrize,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    fulfilment_id: Option<String>,
}

#[derive(Deserialize)]
struct WonPrize {
    prize_id: String,
    kind: PrizeKind,
    #[serde(default)]
    value: Option<i64>,
}

#[derive(Deserialize)]
struct CouponItem {
    code: String,
    draw_id: String,
    prize_id: String,
    #[serde(default)]
    winner: Option<String>,
    #[serde(default)]
    spin: Option<u64>,
}

#[derive(Deserialize)]
struct FulfilmentItem {
    fulfilment_id: String,
    source: String,
    user_id: String,
}

#[derive(Deserialize)]
struct DayRecord {
    campaign_id: String,
    date: chrono::NaiveDate,
    made_up: bool,
    at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct ReferralItem {
    invitee: String,
    referrer: String,
    claimed_at: DateTime<Utc>,
    invitee_reward: i64,
    referrer_reward: i64,
    status: Status,
    #[serde(default)]
    qualified_at: Option<DateTime<Utc>>,
    #[serde(default)]
    paid_at: Option<DateTime<Utc>>,
    #[serde(default)]
    counted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    ended_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct ReferrerItem {
    #[serde(default)]
    paid: shared::domain::referrals::PaidCounts,
}

#[derive(Deserialize)]
struct StoredProgram {
    #[serde(flatten)]
    program: Program,
}

/// Everything of one member, by kind.
#[derive(Default)]
struct Member {
    account: Option<Account>,
    entries: Vec<LedgerEntry>,
    scores: BTreeMap<String, u64>,
    contest_entries: BTreeMap<String, BoardEntry>,
    draws: BTreeMap<String, MemberDraw>,
    spins: BTreeMap<String, Vec<SpinRecord>>,
    checkins: Vec<DayRecord>,
    referrer: Option<ReferrerItem>,
}

/// Checks every invariant over the items of one table.
pub fn audit(items: &[Item], zone: Tz) -> Report {
    let mut report = Report {
        items: items.len(),
        ..Report::default()
    };
    let mut members: BTreeMap<String, Member> = BTreeMap::new();
    let mut guards: BTreeMap<String, GuardRecord> = BTreeMap::new();
    let mut holds: BTreeMap<String, HoldIndex> = BTreeMap::new();
    let mut reversed: BTreeMap<String, i64> = BTreeMap::new();
    let mut draws: BTreeMap<String, StoredDraw> = BTreeMap::new();
    // (draw, prize) → (Σ total, Σ taken)
    let mut stock: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let mut coupons: BTreeMap<String, CouponItem> = BTreeMap::new();
    let mut fulfilments: BTreeMap<String, FulfilmentItem> = BTreeMap::new();
    let mut contests_by_id: BTreeMap<String, Contest> = BTreeMap::new();
    let mut results: BTreeMap<String, ContestResult> = BTreeMap::new();
    let mut teams: Vec<Team> = Vec::new();
    let mut counters: BTreeMap<(String, u32, u64), i64> = BTreeMap::new();
    let mut referrals: BTreeMap<String, ReferralItem> = BTreeMap::new();
    let mut program: Option<Program> = None;
    let mut tiers: Option<shared::domain::tiers::TierState> = None;

    for item in items {
        let (pk, sk) = (item.pk.as_str(), item.sk.as_str());
        if let Some(user) = pk.strip_prefix("USER#") {
            let m = members.entry(user.to_owned()).or_default();
            if sk == "ACCOUNT" {
                m.account = parse(item, &mut report);
            } else if sk.starts_with("LEDGER#") {
                m.entries.extend(parse::<LedgerEntry>(item, &mut report));
            } else if let Some(board) = sk.strip_prefix("SCORE#") {
                if let Some(e) = parse::<BoardEntry>(item, &mut report) {
                    m.scores.insert(board.to_owned(), e.score);
                }
            } else if let Some(contest) = sk.strip_prefix("CONTEST#") {
                if let Some(e) = parse::<BoardEntry>(item, &mut report) {
                    m.contest_entries.insert(contest.to_owned(), e);
                }
            } else if let Some(draw) = sk.strip_prefix("DRAW#") {
                if let Some(d) = parse::<MemberDraw>(item, &mut report) {
                    m.draws.insert(draw.to_owned(), d);
                }
            } else if sk.starts_with("SPIN#") {
                if let Some(s) = parse::<SpinRecord>(item, &mut report) {
                    m.spins.entry(s.draw_id.clone()).or_default().push(s);
                }
            } else if sk.starts_with("CHECKIN#") {
                m.checkins.extend(parse::<DayRecord>(item, &mut report));
            } else if sk == "REFERRER" {
                m.referrer = parse(item, &mut report);
            } else if sk == "REFERRED_BY"
                && let Some(r) = parse::<ReferralItem>(item, &mut report)
            {
                referrals.insert(r.invitee.clone(), r);
            }
        } else if sk == "PAID" {
            if let Some(g) = parse::<GuardRecord>(item, &mut report) {
                guards.insert(g.business_key.clone(), g);
            }
        } else if let (Some(id), "HOLD") = (pk.strip_prefix("HOLD#"), sk) {
            if let Some(h) = parse(item, &mut report) {
                holds.insert(id.to_owned(), h);
            }
        } else if let (Some(key), "REVERSED") = (pk.strip_prefix("REVERSED#"), sk) {
            if let Some(r) = parse::<Reversed>(item, &mut report) {
                reversed.insert(key.to_owned(), r.total);
            }
        } else if sk == "STOCK" {
            // DRAW#<draw>#STOCK#<prize>#<split>
            let parts: Vec<&str> = pk.split('#').collect();
            if let (["DRAW", draw, "STOCK", prize, _split], Some(s)) =
                (parts.as_slice(), parse::<StockItem>(item, &mut report))
            {
                report.expect("draw.stock", s.taken <= s.total, item.subject(), || {
                    format!("taken {} > total {}", s.taken, s.total)
                });
                let sum = stock.entry((draw.to_string(), prize.to_string())).or_default();
                sum.0 += s.total;
                sum.1 += s.taken;
            }
        } else if let (Some(_), "CONFIG") = (pk.strip_prefix("DRAW#"), sk) {
            if let Some(d) = parse::<StoredDraw>(item, &mut report) {
                draws.insert(d.id.clone(), d);
            }
        } else if sk == "COUPON" {
            if let Some(c) = parse::<CouponItem>(item, &mut report) {
                coupons.insert(c.code.clone(), c);
            }
        } else if sk == "FULFILMENT" {
            if let Some(f) = parse::<FulfilmentItem>(item, &mut report) {
                fulfilments.insert(f.fulfilment_id.clone(), f);
            }
        } else if pk.starts_with("CONTEST#") && sk == "CONFIG" {
            if let Some(c) = parse::<Contest>(item, &mut report) {
                contests_by_id.insert(c.id.clone(), c);
            }
        } else if pk.starts_with("CONTEST#") && sk == "RESULT" {
            if let Some(r) = parse::<ContestResult>(item, &mut report) {
                results.insert(r.contest_id.clone(), r);
            }
        } else if sk == "TEAM" {
            teams.extend(parse::<Team>(item, &mut report));
        } else if let Some(rest) = pk.strip_prefix("BOARD#") {
            let place = rest.rsplit_once("#COUNT#");
            let bucket = shared::store::keys::bucket_of_sk(sk);
            match (place, bucket, parse::<Counter>(item, &mut report)) {
                (Some((board, shard)), Some(bucket), Some(c)) => {
                    let shard = shard.parse().unwrap_or(u32::MAX);
                    *counters.entry((board.to_owned(), shard, bucket)).or_default() += c.n;
                }
                _ => report.fail("item.shape", item.subject(), "not a bucket counter"),
            }
        } else if pk == "CONFIG" && sk == "TIERS" {
            tiers = parse(item, &mut report);
        } else if pk == "CONFIG" && sk == "REFERRAL_PROGRAM" {
            program = parse::<StoredProgram>(item, &mut report).map(|p| p.program);
        }
    }

    // The ledger.
    let mut entry_of_key: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for (user, m) in &mut members {
        m.entries.sort_by_key(|e| e.seq);
        check_ledger(&mut report, user, m, &guards, &mut entry_of_key);
    }
    for (key, g) in &guards {
        let names_entry = entry_of_key.get(key) == Some(&(g.user_id.clone(), g.seq));
        report.expect("ledger.guard", names_entry, format!("PAID#{key}"), || {
            format!(
                "names entry {} of {} that does not carry this key",
                g.seq, g.user_id
            )
        });
    }
    for (id, h) in &holds {
        let open = members
            .get(&h.user_id)
            .and_then(|m| m.account.as_ref())
            .and_then(|a| a.holds.get(id));
        // A closed hold keeps its index item (captures and releases look it up); an open one
        // must have one naming the same member and amount.
        if let Some(open) = open {
            report.expect(
                "ledger.holds",
                open.amount == h.amount,
                format!("HOLD#{id}"),
                || {
                    format!(
                        "index says {} points, the account's hold {}",
                        h.amount, open.amount
                    )
                },
            );
        }
    }
    for (user, m) in &members {
        for (id, hold) in m.account.iter().flat_map(|a| a.holds.iter()) {
            let indexed = holds.get(id).is_some_and(|h| &h.user_id == user);
            report.expect("ledger.holds", indexed, format!("USER#{user} hold {id}"), || {
                format!(
                    "open hold of {} points has no index item naming the member",
                    hold.amount
                )
            });
        }
    }
    check_reversals(&mut report, &members, &guards, &reversed);
    check_checkin_days(&mut report, &members);
    if let Some(state) = &tiers {
        let config = state.config();
        for (name, seated) in &state.seats {
            let cap = config
                .tiers
                .iter()
                .find(|t| &t.name == name)
                .and_then(|t| t.max_members);
            report.expect(
                "tier.seats",
                cap.is_none_or(|cap| *seated <= u64::from(cap)),
                format!("CONFIG / TIERS {name}"),
                || format!("{seated} seated, cap {cap:?}"),
            );
        }
    }
    check_draws(
        &mut report,
        &members,
        &draws,
        &stock,
        &coupons,
        &fulfilments,
        &guards,
    );
    check_contest_prizes(&mut report, &contests_by_id, &results, &guards, &fulfilments);
    check_referrals(&mut report, &members, &referrals, &guards, program.as_ref(), zone);
    check_scores(&mut report, &members, &referrals, &contests_by_id, zone);
    check_teams_and_counters(&mut report, &members, &teams, &counters);
    report
}

fn check_ledger(
    report: &mut Report,
    user: &str,
    m: &Member,
    guards: &BTreeMap<String, GuardRecord>,
    entry_of_key: &mut BTreeMap<String, (String, u64)>,
) {
    let subject = format!("USER#{user}");
    let Some(account) = &m.account else {
        if !m.entries.is_empty() {
            report.fail(
                "ledger.seq",
                subject,
                format!("{} entries without an account", m.entries.len()),
            );
        }
        return;
    };
    let numbers: Vec<u64> = m.entries.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=account.seq).collect();
    report.expect("ledger.seq", numbers == expected, &subject, || {
        let have: BTreeSet<u64> = numbers.iter().copied().collect();
        let missing: Vec<u64> = expected
            .iter()
            .filter(|n| !have.contains(n))
            .take(5)
            .copied()
            .collect();
        format!(
            "account seq {}, {} entries; missing {missing:?}, beyond {:?}",
            account.seq,
            numbers.len(),
            numbers
                .iter()
                .filter(|n| **n > account.seq || **n == 0)
                .take(5)
                .collect::<Vec<_>>()
        )
    });
    let mut running: i64 = 0;
    let mut sum_ok = true;
    for e in &m.entries {
        running = running.saturating_add(e.delta);
        report.expect(
            "ledger.running",
            e.balance_after == running,
            format!("{subject} LEDGER#{}", e.seq),
            || {
                format!(
                    "balance_after {} but the deltas so far sum to {running}",
                    e.balance_after
                )
            },
        );
        if e.balance_after != running {
            running = e.balance_after;
            sum_ok = false;
        }
        let guard = guards.get(&e.business_key);
        let guarded = guard.is_some_and(|g| {
            g.user_id == user && g.seq == e.seq && g.entry_id == e.entry_id && g.delta == e.delta
        });
        report.expect(
            "ledger.guard",
            guarded,
            format!("{subject} LEDGER#{}", e.seq),
            || match guard {
                None => format!("no guard PAID#{}", e.business_key),
                Some(g) => format!(
                    "guard PAID#{} names {} seq {} delta {}, the entry is delta {}",
                    e.business_key, g.user_id, g.seq, g.delta, e.delta
                ),
            },
        );
        let first = entry_of_key.insert(e.business_key.clone(), (user.to_owned(), e.seq));
        report.expect(
            "ledger.once",
            first.is_none(),
            format!("{subject} LEDGER#{}", e.seq),
            || {
                let (u, s) = first.clone().unwrap_or_default();
                format!("business key {} already paid by {u} entry {s}", e.business_key)
            },
        );
    }
    let sum: i64 = m.entries.iter().map(|e| e.delta).sum();
    let buckets: i64 = account.buckets.values().sum();
    report.expect(
        "ledger.balance",
        sum_ok && account.balance == sum && account.balance == buckets - account.debt,
        &subject,
        || {
            format!(
                "balance {}, Σ deltas {sum}, Σ buckets {buckets} − debt {}",
                account.balance, account.debt
            )
        },
    );
    report.expect(
        "ledger.balance",
        account.debt >= 0 && account.buckets.values().all(|p| *p > 0),
        &subject,
        || format!("debt {} and buckets {:?}", account.debt, account.buckets),
    );
}

fn check_checkin_days(report: &mut Report, members: &BTreeMap<String, Member>) {
    for (user, m) in members {
        let days: BTreeMap<(&str, chrono::NaiveDate), bool> = m
            .checkins
            .iter()
            .map(|d| ((d.campaign_id.as_str(), d.date), d.made_up))
            .collect();
        for e in &m.entries {
            let (kind, made_up) = match e.business_key.split_once('#') {
                Some(("checkin", rest)) => (rest, false),
                Some(("makeup", rest)) => (rest, true),
                _ => continue,
            };
            // <campaign>#<user>#<date>: the campaign is a slug, the date comes last.
            let day = kind
                .split_once('#')
                .zip(kind.rsplit_once('#'))
                .and_then(|((campaign, _), (_, date))| Some((campaign, date.parse().ok()?)));
            let found = day.and_then(|d| days.get(&d).copied());
            report.expect(
                "checkin.days",
                found == Some(made_up),
                format!("USER#{user} LEDGER#{}", e.seq),
                || format!("{} but the day is {found:?} (made up?)", e.business_key),
            );
        }
    }
}

/// The grant a reversal entry takes back: the entry of the key it names (`reverses`); for a
/// reversal written before that was recorded, the member's one `grant#<caller>#<ref>` entry
/// (none when two callers' grants share the key: then it is not judged).
fn reversed_grant<'a>(m: &'a Member, reversal: &LedgerEntry) -> Option<&'a LedgerEntry> {
    if let Some(key) = &reversal.reverses {
        return m.entries.iter().find(|e| &e.business_key == key);
    }
    let suffix = format!("#{}", reversal.reference);
    let mut grants = m
        .entries
        .iter()
        .filter(|e| e.business_key.starts_with("grant#") && e.business_key.ends_with(&suffix));
    match (grants.next(), grants.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// What a reversal took back of its grant, counting the forgiven expired share.
fn taken_back(e: &LedgerEntry) -> i64 {
    -e.delta + e.forgiven.unwrap_or(0)
}

fn check_reversals(
    report: &mut Report,
    members: &BTreeMap<String, Member>,
    guards: &BTreeMap<String, GuardRecord>,
    reversed: &BTreeMap<String, i64>,
) {
    for (key, total) in reversed {
        let grant = guards.get(key).map(|g| g.delta).unwrap_or(0);
        report.expect(
            "reversal.total",
            *total <= grant && *total >= 0,
            format!("REVERSED#{key}"),
            || format!("{total} reversed of a grant of {grant}"),
        );
    }
    for (user, m) in members {
        let mut by_grant: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for e in m
            .entries
            .iter()
            .filter(|e| e.business_key.starts_with("reversal#"))
        {
            if let Some(grant) = reversed_grant(m, e) {
                let sum = by_grant.entry(&grant.business_key).or_insert((0, grant.delta));
                sum.0 += taken_back(e);
            }
        }
        for (grant, (taken, amount)) in by_grant {
            report.expect(
                "reversal.total",
                taken <= amount,
                format!("USER#{user} {grant}"),
                || format!("reversal entries take back {taken} of a grant of {amount}"),
            );
        }
    }
}

fn check_draws(
    report: &mut Report,
    members: &BTreeMap<String, Member>,
    draws: &BTreeMap<String, StoredDraw>,
    stock: &BTreeMap<(String, String), (u64, u64)>,
    coupons: &BTreeMap<String, CouponItem>,
    fulfilments: &BTreeMap<String, FulfilmentItem>,
    guards: &BTreeMap<String, GuardRecord>,
) {
    let mut won: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut codes: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for (user, m) in members {
        for (draw, state) in &m.draws {
            let numbers: Vec<u64> = {
                let mut n: Vec<u64> = m
                    .spins
                    .get(draw)
                    .iter()
                    .flat_map(|s| s.iter())
                    .map(|s| s.spin)
                    .collect();
                n.sort_unstable();
                n
            };
            report.expect(
                "draw.spins",
                numbers == (1..=state.spins).collect::<Vec<_>>(),
                format!("USER#{user} / DRAW#{draw}"),
                || format!("state counts {} spins; records {numbers:?}", state.spins),
            );
        }
        for (draw, spins) in &m.spins {
            if !m.draws.contains_key(draw) {
                report.fail(
                    "draw.spins",
                    format!("USER#{user}"),
                    format!("spins of {draw} without a draw state"),
                );
            }
            let mut per_prize: BTreeMap<&str, u32> = BTreeMap::new();
            for s in spins {
                let subject = format!("USER#{user} / SPIN#{draw}#{}", s.spin);
                *won.entry((draw.clone(), s.prize.prize_id.clone())).or_default() += 1;
                *per_prize.entry(&s.prize.prize_id).or_default() += 1;
                let paid = |key: String, amount: i64| {
                    guards
                        .get(&key)
                        .is_some_and(|g| g.user_id == *user && g.delta == amount)
                };
                if s.cost > 0 {
                    let key = business_key(user, |u| business::spin(draw, u, s.spin));
                    report.expect("draw.payment", paid(key.clone(), -s.cost), &subject, || {
                        format!("cost {} not charged once as {key}", s.cost)
                    });
                }
                match s.prize.kind {
                    PrizeKind::Points => {
                        let key = business_key(user, |u| business::spin_prize(draw, u, s.spin));
                        let value = s.prize.value.unwrap_or(0);
                        report.expect(
                            "draw.payment",
                            value == 0 || paid(key.clone(), value),
                            &subject,
                            || format!("points prize {value} not paid once as {key}"),
                        );
                    }
                    PrizeKind::Coupon => {
                        let code = s.code.clone().unwrap_or_default();
                        let coupon = coupons.get(&code);
                        let ok = coupon.is_some_and(|c| {
                            c.winner.as_deref() == Some(user.as_str())
                                && c.spin == Some(s.spin)
                                && c.draw_id == *draw
                                && c.prize_id == s.prize.prize_id
                        });
                        report.expect("draw.coupon", ok, &subject, || {
                            format!("coupon {code:?} does not name this spin")
                        });
                        if !code.is_empty()
                            && let Some(first) = codes.insert(code.clone(), (user.clone(), s.spin))
                        {
                            report.fail(
                                "draw.coupon",
                                &subject,
                                format!("code {code} also won by {} spin {}", first.0, first.1),
                            );
                        }
                    }
                    PrizeKind::Physical => {
                        let id = s.fulfilment_id.clone().unwrap_or_default();
                        let ok = fulfilments.get(&id).is_some_and(|f| f.user_id == *user);
                        report.expect("draw.payment", ok, &subject, || {
                            format!("no fulfilment {id:?} for the member")
                        });
                    }
                    PrizeKind::Nothing => {}
                }
            }
            if let Some(d) = draws.get(draw) {
                for prize in &d.spec.prizes {
                    if let Some(max) = prize.per_member_max {
                        let n = per_prize.get(prize.prize_id.as_str()).copied().unwrap_or(0);
                        report.expect(
                            "draw.member_max",
                            n <= max,
                            format!("USER#{user} / DRAW#{draw}"),
                            || format!("won {} {n} times, at most {max}", prize.prize_id),
                        );
                    }
                }
            }
        }
    }
    for (code, c) in coupons {
        if let Some(winner) = &c.winner {
            let spun = members
                .get(winner)
                .and_then(|m| m.spins.get(&c.draw_id))
                .is_some_and(|s| s.iter().any(|s| s.code.as_deref() == Some(code.as_str())));
            report.expect("draw.coupon", spun, format!("COUPON#{code}"), || {
                format!("won by {winner} but no spin of theirs names it")
            });
        }
    }
    for d in draws.values() {
        for prize in d.spec.prizes.iter().filter(|p| p.stocked()) {
            let key = (d.id.clone(), prize.prize_id.clone());
            let (total, taken) = stock.get(&key).copied().unwrap_or((0, 0));
            let awarded = won.get(&key).copied().unwrap_or(0);
            report.expect(
                "draw.stock",
                taken == awarded && awarded <= total,
                format!("DRAW#{} prize {}", d.id, prize.prize_id),
                || format!("{awarded} spins won it; its items say {taken} taken of {total}"),
            );
        }
    }
}

fn check_contest_prizes(
    report: &mut Report,
    contests_by_id: &BTreeMap<String, Contest>,
    results: &BTreeMap<String, ContestResult>,
    guards: &BTreeMap<String, GuardRecord>,
    fulfilments: &BTreeMap<String, FulfilmentItem>,
) {
    for (id, contest) in contests_by_id {
        let subject = format!("CONTEST#{id}");
        let prefix = format!("contest#{id}#");
        let paid: BTreeMap<&str, i64> = guards
            .iter()
            .filter_map(|(k, g)| k.strip_prefix(&prefix).map(|user| (user, g.delta)))
            .collect();
        let source = format!("contest:{id}");
        let shipped: BTreeSet<&str> = fulfilments
            .values()
            .filter(|f| f.source == source)
            .map(|f| f.user_id.as_str())
            .collect();
        let Some(result) = results.get(id) else {
            report.expect(
                "contest.prize",
                paid.is_empty() && shipped.is_empty(),
                &subject,
                || {
                    format!(
                        "{} prizes paid without a frozen result",
                        paid.len() + shipped.len()
                    )
                },
            );
            continue;
        };
        let payouts = contests::payouts(&contest.spec, &result.positions, result.team);
        let mut owed: BTreeMap<&str, i64> = BTreeMap::new();
        let mut items: BTreeSet<&str> = BTreeSet::new();
        for p in &payouts {
            if let Some(points) = p.points {
                *owed.entry(&p.user_id).or_default() += points;
            }
            if p.item.is_some() {
                items.insert(&p.user_id);
            }
        }
        for (user, amount) in &paid {
            report.expect(
                "contest.prize",
                owed.get(user) == Some(amount),
                format!("{subject} {user}"),
                || format!("paid {amount}; the snapshot owes {:?}", owed.get(user)),
            );
        }
        for user in &shipped {
            report.expect(
                "contest.prize",
                items.contains(user),
                format!("{subject} {user}"),
                || "a fulfilment the snapshot does not owe".into(),
            );
        }
        if let Some(settled) = &contest.settled {
            let unpaid = |user: &str, position: u64| {
                contest
                    .progress
                    .iter()
                    .flat_map(|p| p.unpaid.iter())
                    .any(|u| u.user_id == user && u.position == position)
            };
            let mut missing = 0;
            for p in &payouts {
                let done = p.points.is_none_or(|_| paid.contains_key(p.user_id.as_str()))
                    && (p.item.is_none() || shipped.contains(p.user_id.as_str()));
                if !done && !unpaid(&p.user_id, p.position) {
                    missing += 1;
                }
            }
            let points: i64 = paid.values().sum();
            report.expect(
                "contest.prize",
                missing <= settled.unpaid && points == settled.points_paid,
                &subject,
                || {
                    format!(
                        "settled: {} points paid, {} unpaid recorded; the ledger has {points} paid, {missing} payouts missing",
                        settled.points_paid, settled.unpaid
                    )
                },
            );
        }
    }
}

fn check_referrals(
    report: &mut Report,
    members: &BTreeMap<String, Member>,
    referrals: &BTreeMap<String, ReferralItem>,
    guards: &BTreeMap<String, GuardRecord>,
    program: Option<&Program>,
    zone: Tz,
) {
    for (invitee, r) in referrals {
        let subject = format!("USER#{invitee} / REFERRED_BY");
        let rewarded = guards.get(&business_key(invitee, business::referral_invitee));
        report.expect(
            "referral.paid",
            r.invitee_reward == 0
                || rewarded.is_some_and(|g| g.user_id == *invitee && g.delta == r.invitee_reward),
            &subject,
            || {
                format!(
                    "invitee reward {} not paid once: {:?}",
                    r.invitee_reward,
                    rewarded.map(|g| g.delta)
                )
            },
        );
        let paid = guards.get(&business_key(invitee, business::referral_referrer));
        let should =
            matches!(r.status, Status::Paid) || (matches!(r.status, Status::Reversed) && paid.is_some());
        if should {
            report.expect(
                "referral.paid",
                paid.is_some_and(|g| g.user_id == r.referrer && g.delta == r.referrer_reward),
                &subject,
                || {
                    format!(
                        "status {:?}: referrer payment {:?}",
                        r.status,
                        paid.map(|g| g.delta)
                    )
                },
            );
        } else {
            report.expect(
                "referral.paid",
                paid.is_none() || matches!(r.status, Status::Revoked),
                &subject,
                || format!("status {:?} but the referrer was paid", r.status),
            );
        }
    }
    for (user, m) in members {
        let payments: Vec<&LedgerEntry> = m
            .entries
            .iter()
            .filter(|e| e.business_key.starts_with("referral-referrer#"))
            .collect();
        if payments.is_empty() && m.referrer.is_none() {
            continue;
        }
        let subject = format!("USER#{user} / REFERRER");
        let mut by_month: BTreeMap<(i32, u32), u32> = BTreeMap::new();
        for e in &payments {
            let day = e.at.with_timezone(&zone).date_naive();
            *by_month.entry((day.year(), day.month())).or_default() += 1;
        }
        if let Some(p) = program {
            let most = by_month.values().copied().max().unwrap_or(0);
            report.expect(
                "referral.caps",
                most <= p.monthly_cap && payments.len() as u64 <= u64::from(p.lifetime_cap),
                &subject,
                || {
                    format!(
                        "{} payments, {most} in one month; caps {} a month, {} ever",
                        payments.len(),
                        p.monthly_cap,
                        p.lifetime_cap
                    )
                },
            );
        }
        if let Some(referrer) = &m.referrer {
            report.expect(
                "referral.caps",
                u64::from(referrer.paid.ever) == payments.len() as u64,
                &subject,
                || {
                    format!(
                        "counts {} payments ever; the ledger has {}",
                        referrer.paid.ever,
                        payments.len()
                    )
                },
            );
        }
    }
}

/// How one ledger entry moves the boards: the instant it counts at, the earned reason it is about
/// (a reversal's: the earn's), and by how much.
struct Move {
    at: DateTime<Utc>,
    written: DateTime<Utc>,
    reason: Reason,
    delta: i64,
}

fn moves(m: &Member, referrals: &BTreeMap<String, ReferralItem>) -> Vec<Move> {
    let makeups: BTreeSet<DateTime<Utc>> = m
        .entries
        .iter()
        .filter(|e| e.reason == Reason::Makeup)
        .map(|e| e.at)
        .collect();
    let qualified = |invitee: &str| referrals.get(invitee).and_then(|r| r.qualified_at);
    let mut out = Vec::new();
    for e in &m.entries {
        let key = e.business_key.as_str();
        let counted = |at: DateTime<Utc>, reason: Reason, delta: i64| Move {
            at,
            written: e.at,
            reason,
            delta,
        };
        let mv = match e.reason {
            // A make-up's milestones never count.
            Reason::Milestone if makeups.contains(&e.at) => None,
            Reason::Referral if e.delta > 0 => match key.strip_prefix("referral-referrer#") {
                Some(invitee) => qualified(invitee).map(|at| counted(at, Reason::Referral, e.delta)),
                None => Some(counted(e.at, Reason::Referral, e.delta)),
            },
            r if boards::counts(r) && e.delta > 0 => Some(counted(e.at, r, e.delta)),
            Reason::Reversal => {
                if let Some(invitee) = key.strip_prefix("referral-revoke#") {
                    referrals
                        .get(invitee)
                        .map(|r| counted(r.claimed_at, Reason::Referral, -taken_back(e)))
                } else if let Some(invitee) = key.strip_prefix("referral-referrer-reversal#") {
                    qualified(invitee).map(|at| counted(at, Reason::Referral, -taken_back(e)))
                } else {
                    reversed_grant(m, e)
                        .filter(|g| boards::counts(g.reason))
                        .map(|g| counted(g.at, g.reason, -taken_back(e)))
                }
            }
            _ => None,
        };
        out.extend(mv);
    }
    out
}

fn apply(score: u64, delta: i64) -> u64 {
    match delta >= 0 {
        true => score.saturating_add(delta.unsigned_abs()),
        false => score.saturating_sub(delta.unsigned_abs()),
    }
}

/// (counts at, written at, by how much).
type CountMove = (DateTime<Utc>, DateTime<Utc>, i64);

/// The referrer's `referrals` metric moves, in the order they were written: (the instant the
/// referral qualified, when the step was written, ±1). `None` when the history cannot be told: a
/// referral settled as `capped` and then revoked or reversed leaves no record that it was counted.
fn referral_counts(
    user: &str,
    m: &Member,
    referrals: &BTreeMap<String, ReferralItem>,
) -> Option<Vec<CountMove>> {
    let entry_at = |key: String| m.entries.iter().find(|e| e.business_key == key).map(|e| e.at);
    let mut moves = Vec::new();
    for r in referrals.values().filter(|r| r.referrer == user) {
        let qualified = r.qualified_at.or(r.counted_at).unwrap_or(r.claimed_at);
        let paid = entry_at(business_key(&r.invitee, business::referral_referrer)).or(r.paid_at);
        match r.status {
            // Counted; a capped one's step is dated by its qualification (same request, or the
            // reconciler within a minute).
            Status::Paid | Status::Capped => moves.push((qualified, paid.unwrap_or(qualified), 1)),
            Status::Revoked | Status::Reversed => match paid {
                Some(paid) => {
                    let undone = entry_at(business_key(&r.invitee, business::referral_referrer_reversal))
                        .or(r.ended_at)
                        .unwrap_or(paid);
                    moves.push((qualified, paid, 1));
                    moves.push((qualified, undone, -1));
                }
                None if r.qualified_at.is_some() => return None,
                None => {}
            },
            Status::Pending | Status::Qualified => {}
        }
    }
    moves.sort_by_key(|(_, written, _)| *written);
    Some(moves)
}

fn check_scores(
    report: &mut Report,
    members: &BTreeMap<String, Member>,
    referrals: &BTreeMap<String, ReferralItem>,
    contests_by_id: &BTreeMap<String, Contest>,
    zone: Tz,
) {
    let counting: Vec<(&Contest, Counting)> = contests_by_id
        .values()
        .filter(|c| !c.cancelled)
        .map(|c| (c, c.spec.counting()))
        .collect();
    for (user, m) in members {
        let moves = moves(m, referrals);
        let mut boards_expected: BTreeMap<String, u64> = BTreeMap::new();
        let mut contest_expected: BTreeMap<&str, u64> = BTreeMap::new();
        for mv in &moves {
            for board in Board::periods_at(mv.at, zone) {
                let s = boards_expected.entry(board.to_string()).or_default();
                *s = apply(*s, mv.delta);
            }
            for (contest, counting) in &counting {
                let spec = &contest.spec;
                let live = spec.starts_at <= mv.at && mv.at < spec.ends_at && mv.written < spec.ends_at;
                let joined = m.contest_entries.get(&contest.id).and_then(|e| e.joined_at);
                let member_counts = !counting.opt_in || joined.is_some_and(|j| j <= mv.at);
                if live
                    && member_counts
                    && counting.metric == Metric::PointsEarned
                    && counting.reasons.contains(&mv.reason)
                {
                    let s = contest_expected.entry(&contest.id).or_default();
                    *s = apply(*s, mv.delta);
                }
            }
        }
        // The `referrals` metric: +1 when a referral of theirs is settled (paid or capped), -1
        // when a settled one is undone, at the instant it qualified, while the contest runs.
        let referral_counts = referral_counts(user, m, referrals);
        for (at, written, delta) in referral_counts.iter().flatten() {
            for (contest, counting) in &counting {
                let spec = &contest.spec;
                let joined = m.contest_entries.get(&contest.id).and_then(|e| e.joined_at);
                let member_counts = !counting.opt_in || joined.is_some_and(|j| j <= *at);
                if counting.metric == Metric::Referrals
                    && spec.starts_at <= *at
                    && *at < spec.ends_at
                    && *written < spec.ends_at
                    && member_counts
                {
                    let s = contest_expected.entry(&contest.id).or_default();
                    *s = apply(*s, *delta);
                }
            }
        }
        for day in m.checkins.iter().filter(|d| !d.made_up) {
            for (contest, counting) in &counting {
                let spec = &contest.spec;
                let joined = m.contest_entries.get(&contest.id).and_then(|e| e.joined_at);
                let member_counts = !counting.opt_in || joined.is_some_and(|j| j <= day.at);
                if counting.metric == Metric::Checkins
                    && counting.campaign.as_deref() == Some(day.campaign_id.as_str())
                    && spec.starts_at <= day.at
                    && day.at < spec.ends_at
                    && member_counts
                {
                    *contest_expected.entry(&contest.id).or_default() += 1;
                }
            }
        }
        let names: BTreeSet<&String> = boards_expected.keys().chain(m.scores.keys()).collect();
        for board in names {
            let want = boards_expected.get(board).copied().unwrap_or(0);
            let have = m.scores.get(board).copied().unwrap_or(0);
            report.expect(
                "board.score",
                want == have,
                format!("USER#{user} / SCORE#{board}"),
                || format!("score {have}; the ledger earned {want} on it"),
            );
        }
        for (contest, counting) in &counting {
            if counting.metric == Metric::Referrals && referral_counts.is_none() {
                continue;
            }
            let want = contest_expected.get(contest.id.as_str()).copied().unwrap_or(0);
            let have = m.contest_entries.get(&contest.id).map(|e| e.score).unwrap_or(0);
            if want == 0 && have == 0 {
                continue;
            }
            report.expect(
                "contest.score",
                want == have,
                format!("USER#{user} / CONTEST#{}", contest.id),
                || format!("score {have}; the ledger and check-ins say {want}"),
            );
        }
    }
}

fn check_teams_and_counters(
    report: &mut Report,
    members: &BTreeMap<String, Member>,
    teams: &[Team],
    counters: &BTreeMap<(String, u32, u64), i64>,
) {
    let mut expected: BTreeMap<(String, u32, u64), i64> = BTreeMap::new();
    let mut count = |board: String, id: &str, score: u64| {
        if score > 0 {
            *expected
                .entry((board, boards::shard_of(id), boards::bucket(score)))
                .or_default() += 1;
        }
    };
    for (user, m) in members {
        for (board, score) in &m.scores {
            count(board.clone(), user, *score);
        }
        for (contest, e) in &m.contest_entries {
            count(Board::Contest(contest.clone()).to_string(), user, e.score);
        }
    }
    for team in teams {
        count(
            Board::ContestTeams(team.contest_id.clone()).to_string(),
            &team.team_id,
            team.score,
        );
        let mut in_team: Vec<&str> = Vec::new();
        let mut sum: u64 = 0;
        for (user, m) in members {
            if let Some(e) = m
                .contest_entries
                .get(&team.contest_id)
                .filter(|e| e.team.as_deref() == Some(&team.team_id))
            {
                in_team.push(user);
                sum += e.score;
            }
        }
        let mut listed: Vec<&str> = team.members.iter().map(String::as_str).collect();
        listed.sort_unstable();
        in_team.sort_unstable();
        report.expect(
            "contest.team",
            listed == in_team && sum == team.score,
            format!("CONTEST#{}#TEAM#{}", team.contest_id, team.team_id),
            || {
                format!(
                    "members {listed:?}, score {}; entries naming it {in_team:?}, Σ {sum}",
                    team.score
                )
            },
        );
    }
    let places: BTreeSet<&(String, u32, u64)> = expected.keys().chain(counters.keys()).collect();
    for place in places {
        let want = expected.get(place).copied().unwrap_or(0);
        let have = counters.get(place).copied().unwrap_or(0);
        let (board, shard, bucket) = place;
        report.expect(
            "board.counter",
            want == have,
            format!("BOARD#{board}#COUNT#{shard} / BUCKET#{bucket}"),
            || format!("counter {have}; {want} entries in the bucket"),
        );
    }
}
