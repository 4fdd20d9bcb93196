//! Check-ins in the store: campaign configs, the streak state, check-in days, and the two
//! ledger transactions (check-in, make-up).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::points::{replay, to_json};
use super::tx::{put_if_absent, put_versioned};
use super::{
    Decision, IdempotencyRecord, IdempotentCall, Key, OnConflict, Plan, Respond, Snapshot, Store, StoreError,
    TxOutcome, Write,
};
use super::{classify, from_item, keys, to_item_with_key};
use crate::domain::checkin::{
    self, Campaign, CampaignConfig, CheckIn, DEFAULT_CAMPAIGN, LastCheckin, Milestone, MilestonePay,
    StreakState, StreakView,
};
use crate::domain::ledger::{Posting, Reason};
use crate::domain::referrals::Action;
use crate::domain::{DomainError, UserId};
use crate::metrics::{self, Metric};

/// One checked-in day as stored (and listed in the month view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckinDay {
    pub date: NaiveDate,
    pub made_up: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DayRecord {
    campaign_id: String,
    date: NaiveDate,
    made_up: bool,
    at: DateTime<Utc>,
}

/// The answer to a check-in. Serializes as the API's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckinOutcome {
    pub campaign_id: String,
    pub checked_in_now: bool,
    /// What the check-in credited, after multipliers.
    pub points_awarded: i64,
    pub milestone_bonus: Option<Milestone>,
    pub view: StreakView,
    pub balance: i64,
}

impl Serialize for CheckinOutcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Answer<'a> {
            campaign_id: &'a str,
            date: NaiveDate,
            checked_in_now: bool,
            points_awarded: i64,
            milestone_bonus: Option<Milestone>,
            current_streak: u32,
            best_streak: u32,
            tomorrow_reward: i64,
            balance: i64,
        }
        Answer {
            campaign_id: &self.campaign_id,
            date: self.view.today,
            checked_in_now: self.checked_in_now,
            points_awarded: self.points_awarded,
            milestone_bonus: self.milestone_bonus,
            current_streak: self.view.current_streak,
            best_streak: self.view.best_streak,
            tomorrow_reward: self.view.next_reward,
            balance: self.balance,
        }
        .serialize(serializer)
    }
}

/// The answer to a make-up. Serializes as the API's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakeupOutcome {
    pub campaign_id: String,
    pub date: NaiveDate,
    pub points_charged: i64,
    pub milestones: Vec<MilestonePay>,
    pub view: StreakView,
    pub balance: i64,
}

impl Serialize for MakeupOutcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Answer<'a> {
            campaign_id: &'a str,
            date: NaiveDate,
            points_charged: i64,
            milestones: &'a [MilestonePay],
            current_streak: u32,
            best_streak: u32,
            makeups_left_this_month: u32,
            balance: i64,
        }
        Answer {
            campaign_id: &self.campaign_id,
            date: self.date,
            points_charged: self.points_charged,
            milestones: &self.milestones,
            current_streak: self.view.current_streak,
            best_streak: self.view.best_streak,
            makeups_left_this_month: self.view.makeups_left_this_month,
            balance: self.balance,
        }
        .serialize(serializer)
    }
}

/// An answer that carries the member's balance, filled in from the account the transaction wrote.
pub(crate) trait WithBalance: Serialize + Send + 'static {
    fn set_balance(&mut self, balance: i64);
}

impl WithBalance for CheckinOutcome {
    fn set_balance(&mut self, balance: i64) {
        self.balance = balance;
    }
}

impl WithBalance for MakeupOutcome {
    fn set_balance(&mut self, balance: i64) {
        self.balance = balance;
    }
}

/// What a member write's decision carries: a fresh answer, or the one stored under its key.
pub(crate) enum Answer<T> {
    Fresh(T),
    Stored(IdempotencyRecord),
}

/// The record stored under the call's key, if the call has a key and it was used.
pub(crate) fn stored_answer(
    snapshot: &Snapshot,
    call: Option<&IdempotentCall>,
) -> Result<Option<IdempotencyRecord>, crate::Error> {
    match call {
        Some(call) => Ok(snapshot.get(&call.key)?),
        None => Ok(None),
    }
}

/// The decision for a member write: its postings and writes, and with an `Idempotency-Key` the
/// answer stored in the same transaction (even for a write of nothing, such as a repeat).
pub(crate) fn answer_plan<T: WithBalance + Clone>(
    postings: Vec<Posting>,
    writes: Vec<Write>,
    call: Option<&IdempotentCall>,
    answer: T,
) -> Decision<Answer<T>> {
    let Some(call) = call else {
        return if postings.is_empty() && writes.is_empty() {
            Decision::Nothing(Answer::Fresh(answer))
        } else {
            Decision::Write(Plan::new(postings, writes, Answer::Fresh(answer)))
        };
    };
    let mut stored = answer.clone();
    let respond: Respond = Box::new(move |_, account| {
        stored.set_balance(account.balance);
        to_json(&stored)
    });
    Decision::Write(Plan::idempotent(
        postings,
        writes,
        call,
        respond,
        Answer::Fresh(answer),
    ))
}

/// The JSON answer of a member write, or `None` when its business key was taken by another
/// request (the caller decides what that means).
pub(crate) fn finish<T: WithBalance>(
    outcome: TxOutcome<Answer<T>>,
    call: Option<&IdempotentCall>,
) -> Result<Option<String>, crate::Error> {
    let stored = |record, call: Option<&IdempotentCall>| match call {
        Some(call) => replay(record, call).map(Some),
        None => Err(StoreError::Internal("a stored answer without a key".into()).into()),
    };
    match outcome {
        TxOutcome::Committed {
            response: Some(json), ..
        } => Ok(Some(json)),
        TxOutcome::Committed {
            output: Answer::Fresh(mut answer),
            account,
            ..
        } => {
            answer.set_balance(account.balance);
            to_json(&answer).map(Some)
        }
        TxOutcome::Nothing(Answer::Fresh(answer)) => to_json(&answer).map(Some),
        TxOutcome::Nothing(Answer::Stored(record)) | TxOutcome::IdempotentReplay(record) => {
            stored(record, call)
        }
        TxOutcome::Committed {
            output: Answer::Stored(record),
            ..
        } => stored(record, call),
        TxOutcome::Replayed(_) => Ok(None),
    }
}

/// The month view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckinMonth {
    pub campaign_id: String,
    pub month: NaiveDate,
    pub days: Vec<CheckinDay>,
    pub view: StreakView,
}

/// A stored config, or the built-in `daily`, or 404.
fn campaign_from(id: &str, stored: Option<CampaignConfig>) -> Result<Campaign, crate::Error> {
    match stored {
        // A stored config was valid when stored; if it no longer validates that is our fault (a
        // rule or the zone data changed), not the member's: 500, without the config's details.
        Some(config) => config.validate_stored(id).map_err(|e| {
            StoreError::Internal(format!("stored campaign {id} no longer validates: {e}")).into()
        }),
        None if id == DEFAULT_CAMPAIGN => Ok(CampaignConfig::default_daily().validate(id)?),
        None => Err(DomainError::NotFound("campaign").into()),
    }
}

pub(super) fn read_campaign_and_state(
    snapshot: &Snapshot,
    user: &UserId,
    id: &str,
) -> Result<(Campaign, StreakState), crate::Error> {
    let campaign = campaign_from(id, snapshot.get(&keys::campaign(id))?)?;
    let state = snapshot.get(&keys::streak(user, id))?.unwrap_or_default();
    Ok((campaign, state))
}

impl Store {
    /// A campaign's config (the built-in one for `daily` until an admin stores another).
    pub async fn campaign_config(&self, id: &str) -> Result<CampaignConfig, crate::Error> {
        let stored: Option<CampaignConfig> = self
            .get_item(&keys::campaign(id), true)
            .await?
            .map(from_item)
            .transpose()?;
        match stored {
            Some(config) => Ok(config),
            None if id == DEFAULT_CAMPAIGN => Ok(CampaignConfig::default_daily()),
            None => Err(DomainError::NotFound("campaign").into()),
        }
    }

    /// Validates and stores a campaign's config (replacing any previous one).
    pub async fn put_campaign(&self, id: &str, config: &CampaignConfig) -> Result<Campaign, crate::Error> {
        let campaign = config.validate(id)?;
        let item = to_item_with_key(&keys::campaign(id), config)?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        self.retry_conflicts(|| put.clone().send())
            .await?
            .map_err(classify)?;
        self.cache.forget(&keys::campaign(id));
        Ok(campaign)
    }

    /// Checks `user` in to `campaign_id` at `now`: pays the ladder step (priced: tier ×
    /// windows) and any milestone exactly once. A repeat the same local day answers what today's
    /// check-in credited, with `checked_in_now: false`. With `call` (an `Idempotency-Key`), a
    /// replay answers the stored answer. Returns the answer's JSON.
    pub async fn check_in(
        &self,
        user: &UserId,
        campaign_id: &str,
        call: Option<&IdempotentCall>,
        now: DateTime<Utc>,
    ) -> Result<String, crate::Error> {
        // A check-in may qualify the member's referral (one extra action in its transaction).
        let mut extra = vec![
            keys::campaign(campaign_id),
            keys::streak(user, campaign_id),
            keys::referred_by(user),
        ];
        extra.extend(call.map(|c| c.key.clone()));
        let mut qualified = false;
        // Whether this pass checks in (a repeat with a fresh Idempotency-Key commits its answer
        // only: no check-in to count).
        let mut checked_in = false;
        // A lost race to the same business key means another request just checked in: the second
        // pass reads that state and answers as a repeat.
        // A check-in moves the boards (its points, its milestones, the `checkins` metric); a
        // make-up never does.
        let scored = self.scored(super::Scoring::checkin(now, campaign_id));
        for _ in 0..2 {
            let outcome = scored
                .ledger_transaction(user, &extra, now, |snapshot| {
                    qualified = false;
                    checked_in = false;
                    if let Some(record) = stored_answer(snapshot, call)? {
                        return Ok(Decision::Nothing(Answer::Stored(record)));
                    }
                    let (campaign, state) = read_campaign_and_state(snapshot, user, campaign_id)?;
                    let outcome = |checked_in_now, points_awarded, milestone_bonus, state: &StreakState| {
                        CheckinOutcome {
                            campaign_id: campaign_id.to_owned(),
                            checked_in_now,
                            points_awarded,
                            milestone_bonus,
                            view: checkin::view(&campaign, state, now),
                            balance: snapshot.account.balance,
                        }
                    };
                    match checkin::check_in(&campaign, &state, now)? {
                        CheckIn::Repeat { paid } => {
                            let answer = outcome(
                                false,
                                paid.map_or(0, |p| p.points),
                                paid.and_then(|p| p.milestone),
                                &state,
                            );
                            // A repeat only stores its answer (with an Idempotency-Key): it is
                            // no check-in, so it moves no `checkins` contest score.
                            Ok(match answer_plan(vec![], vec![], call, answer) {
                                Decision::Write(plan) => Decision::Write(plan.unscored()),
                                nothing => nothing,
                            })
                        }
                        CheckIn::New { insertion, reward } => {
                            let date = insertion.date;
                            let mut postings = Vec::new();
                            if reward > 0 {
                                let posting = Posting::new(
                                    reward,
                                    Reason::Checkin,
                                    format!("{campaign_id}:{date}"),
                                    keys::business::checkin(campaign_id, user, date),
                                );
                                postings.extend(snapshot.price(posting, now)?);
                            }
                            let points = postings.first().map_or(0, |p| p.delta);
                            let milestone = insertion.milestones.first().map(|m| Milestone {
                                days: m.days,
                                points: m.points,
                            });
                            postings.extend(milestone_postings(campaign_id, user, &insertion.milestones));
                            let mut after = insertion.state;
                            after.last = Some(LastCheckin {
                                date,
                                points,
                                milestone,
                            });
                            let mut writes = self.day_and_state_writes(
                                user,
                                campaign_id,
                                &state,
                                &after,
                                date,
                                false,
                                now,
                            )?;
                            if let Some(write) =
                                self.qualify_write(snapshot, user, Action::Checkin, None, now)?
                            {
                                writes.push(write);
                                qualified = true;
                            }
                            let answer = outcome(true, points, milestone, &after);
                            checked_in = true;
                            Ok(answer_plan(postings, writes, call, answer))
                        }
                    }
                })
                .await?;
            if outcome.committed() && checked_in {
                metrics::count(Metric::CheckIns, 1);
                metrics::count(Metric::ReferralsQualified, u64::from(qualified));
            }
            match finish(outcome, call)? {
                Some(json) => {
                    if qualified {
                        self.referrer_step_now(user, now).await;
                    }
                    return Ok(json);
                }
                None => continue,
            }
        }
        Err(StoreError::Contention(2).into())
    }

    /// Makes up `date` for `user`: charges the cost, joins the runs, pays milestones reached.
    /// With `call` (an `Idempotency-Key`), a replay answers the stored answer; without one, a
    /// second make-up of the same date is `409 not-missed`. Returns the answer's JSON.
    pub async fn make_up(
        &self,
        user: &UserId,
        campaign_id: &str,
        date: NaiveDate,
        call: Option<&IdempotentCall>,
        now: DateTime<Utc>,
    ) -> Result<String, crate::Error> {
        let mut extra = vec![keys::campaign(campaign_id), keys::streak(user, campaign_id)];
        extra.extend(call.map(|c| c.key.clone()));
        let outcome = self
            .ledger_transaction(user, &extra, now, |snapshot| {
                if let Some(record) = stored_answer(snapshot, call)? {
                    return Ok(Decision::Nothing(Answer::Stored(record)));
                }
                let (campaign, state) = read_campaign_and_state(snapshot, user, campaign_id)?;
                let made = checkin::make_up(&campaign, &state, date, now)?;
                let mut postings = Vec::new();
                if made.cost > 0 {
                    postings.push(Posting::new(
                        -made.cost,
                        Reason::Makeup,
                        format!("{campaign_id}:{date}"),
                        keys::business::makeup(campaign_id, user, date),
                    ));
                }
                postings.extend(milestone_postings(campaign_id, user, &made.insertion.milestones));
                let writes = self.day_and_state_writes(
                    user,
                    campaign_id,
                    &state,
                    &made.insertion.state,
                    date,
                    true,
                    now,
                )?;
                let answer = MakeupOutcome {
                    campaign_id: campaign_id.to_owned(),
                    date,
                    points_charged: made.cost,
                    milestones: made.insertion.milestones.clone(),
                    view: checkin::view(&campaign, &made.insertion.state, now),
                    balance: 0,
                };
                Ok(answer_plan(postings, writes, call, answer))
            })
            .await?;
        if outcome.committed() {
            metrics::count(Metric::MakeUps, 1);
        }
        // The same make-up landed first (a double tap without a key): the date is not missed now.
        finish(outcome, call)?.ok_or_else(|| DomainError::NotMissed.into())
    }

    /// The checked-in days of `month` (default: the campaign's current local month) and the
    /// streak as of `now`, in one round trip: a batch read and a query, in parallel. Without a
    /// month the query covers the months of the UTC date ± 1 day (every zone's today lies in
    /// there) and keeps the campaign's month once its zone is known.
    pub async fn checkin_month(
        &self,
        user: &UserId,
        campaign_id: &str,
        month: Option<NaiveDate>,
        now: DateTime<Utc>,
    ) -> Result<CheckinMonth, crate::Error> {
        let extra = [keys::campaign(campaign_id), keys::streak(user, campaign_id)];
        let utc_today = now.date_naive();
        let (lo, hi) = match month {
            Some(first) => (first, last_day_of_month(first)),
            None => (
                first_day_of_month(utc_today.pred_opt().unwrap_or(utc_today)),
                last_day_of_month(utc_today.succ_opt().unwrap_or(utc_today)),
            ),
        };
        let prefix = keys::checkin_day_prefix(campaign_id);
        let query = self
            .query_between(
                keys::user_pk(user),
                format!("{prefix}{lo}"),
                format!("{prefix}{hi}"),
            )
            .send();
        let (snapshot, days) = tokio::join!(self.read_snapshot(user, &extra, now), self.bounded(query));
        let (campaign, state) = read_campaign_and_state(&snapshot?, user, campaign_id)?;
        let first = month.unwrap_or_else(|| first_day_of_month(campaign.today(now)));
        let last = last_day_of_month(first);
        let days = days?
            .map_err(classify)?
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                from_item::<DayRecord>(item).map(|d| CheckinDay {
                    date: d.date,
                    made_up: d.made_up,
                })
            })
            .filter(|d| d.as_ref().map_or(true, |d| first <= d.date && d.date <= last))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CheckinMonth {
            campaign_id: campaign_id.to_owned(),
            month: first,
            days,
            view: checkin::view(&campaign, &state, now),
        })
    }

    /// The check-in day item (must not exist) and the new streak state (version-checked).
    #[allow(clippy::too_many_arguments)]
    fn day_and_state_writes(
        &self,
        user: &UserId,
        campaign_id: &str,
        before: &StreakState,
        after: &StreakState,
        date: NaiveDate,
        made_up: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Write>, StoreError> {
        let day = DayRecord {
            campaign_id: campaign_id.to_owned(),
            date,
            made_up,
            at: now,
        };
        let state_key: Key = keys::streak(user, campaign_id);
        let expected = (before.version > 0).then_some(before.version);
        Ok(vec![
            Write {
                action: put_if_absent(
                    &self.table,
                    to_item_with_key(&keys::checkin_day(user, campaign_id, date), &day)?,
                )?,
                on_conflict: OnConflict::Retry,
            },
            Write {
                action: put_versioned(&self.table, to_item_with_key(&state_key, after)?, expected)?,
                on_conflict: OnConflict::Retry,
            },
        ])
    }
}

fn milestone_postings<'a>(
    campaign_id: &'a str,
    user: &'a UserId,
    milestones: &'a [MilestonePay],
) -> impl Iterator<Item = Posting> + 'a {
    milestones.iter().map(move |m| {
        Posting::new(
            m.points,
            Reason::Milestone,
            format!("{campaign_id}:{}-day streak", m.days),
            keys::business::milestone(campaign_id, user, m.run_start, m.days),
        )
    })
}

fn first_day_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

fn last_day_of_month(d: NaiveDate) -> NaiveDate {
    first_day_of_month(d)
        .checked_add_months(chrono::Months::new(1))
        .and_then(|next| next.pred_opt())
        .unwrap_or(d)
}
