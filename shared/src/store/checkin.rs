//! Check-ins in the store: campaign configs, the streak state, check-in days, and the two
//! ledger transactions (check-in, make-up).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::tx::{put_if_absent, put_versioned};
use super::{Decision, Key, OnConflict, Plan, Snapshot, Store, StoreError, TxOutcome, Write};
use super::{classify, from_item, keys, to_item_with_key};
use crate::domain::checkin::{
    self, Campaign, CampaignConfig, CheckIn, DEFAULT_CAMPAIGN, MilestonePay, StreakState, StreakView,
};
use crate::domain::ledger::{Posting, Reason};
use crate::domain::{DomainError, UserId};

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

/// The answer to a check-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckinOutcome {
    pub campaign_id: String,
    pub checked_in_now: bool,
    pub points_awarded: i64,
    pub milestone_bonus: Option<MilestonePay>,
    pub view: StreakView,
    pub balance: i64,
}

/// The answer to a make-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakeupOutcome {
    pub campaign_id: String,
    pub date: NaiveDate,
    pub points_charged: i64,
    pub milestones: Vec<MilestonePay>,
    pub view: StreakView,
    pub balance: i64,
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
        Some(config) => config.validate(id).map_err(|e| {
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
            .await
            .map_err(classify)?;
        self.cache.forget(&keys::campaign(id));
        Ok(campaign)
    }

    /// Checks `user` in to `campaign_id` at `now`: pays the ladder step and any milestone exactly
    /// once, or answers with the unchanged state on a repeat.
    pub async fn check_in(
        &self,
        user: &UserId,
        campaign_id: &str,
        now: DateTime<Utc>,
    ) -> Result<CheckinOutcome, crate::Error> {
        let extra = [keys::campaign(campaign_id), keys::streak(user, campaign_id)];
        // A lost race to the same business key means another request just checked in: the second
        // pass reads that state and answers as a repeat.
        for _ in 0..2 {
            let outcome = self
                .ledger_transaction(user, &extra, now, |snapshot| {
                    let (campaign, state) = read_campaign_and_state(snapshot, user, campaign_id)?;
                    match checkin::check_in(&campaign, &state, now)? {
                        CheckIn::Repeat => Ok(Decision::Nothing(CheckinOutcome {
                            campaign_id: campaign_id.to_owned(),
                            checked_in_now: false,
                            points_awarded: 0,
                            milestone_bonus: None,
                            view: checkin::view(&campaign, &state, now),
                            balance: snapshot.account.balance,
                        })),
                        CheckIn::New { insertion, reward } => {
                            let date = insertion.date;
                            let mut postings = Vec::new();
                            if reward > 0 {
                                postings.push(Posting::new(
                                    reward,
                                    Reason::Checkin,
                                    format!("{campaign_id}:{date}"),
                                    keys::business::checkin(campaign_id, user, date),
                                ));
                            }
                            postings.extend(milestone_postings(campaign_id, user, &insertion.milestones));
                            let writes = self.day_and_state_writes(
                                user,
                                campaign_id,
                                &state,
                                &insertion.state,
                                date,
                                false,
                                now,
                            )?;
                            Ok(Decision::Write(Plan::new(
                                postings,
                                writes,
                                CheckinOutcome {
                                    campaign_id: campaign_id.to_owned(),
                                    checked_in_now: true,
                                    points_awarded: reward,
                                    milestone_bonus: insertion.milestones.first().copied(),
                                    view: checkin::view(&campaign, &insertion.state, now),
                                    balance: 0,
                                },
                            )))
                        }
                    }
                })
                .await?;
            match outcome {
                TxOutcome::Committed {
                    mut output,
                    account,
                    entries,
                    ..
                } => {
                    output.balance = account.balance;
                    // What was credited, after any multipliers.
                    output.points_awarded = entries
                        .iter()
                        .filter(|e| e.reason == Reason::Checkin)
                        .map(|e| e.delta)
                        .sum();
                    return Ok(output);
                }
                TxOutcome::Nothing(output) => return Ok(output),
                TxOutcome::Replayed(_) | TxOutcome::IdempotentReplay(_) => continue,
            }
        }
        Err(StoreError::Contention(2).into())
    }

    /// Makes up `date` for `user`: charges the cost, joins the runs, pays milestones reached.
    pub async fn make_up(
        &self,
        user: &UserId,
        campaign_id: &str,
        date: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<MakeupOutcome, crate::Error> {
        let extra = [keys::campaign(campaign_id), keys::streak(user, campaign_id)];
        let outcome = self
            .ledger_transaction(user, &extra, now, |snapshot| {
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
                Ok(Decision::Write(Plan::new(
                    postings,
                    writes,
                    MakeupOutcome {
                        campaign_id: campaign_id.to_owned(),
                        date,
                        points_charged: made.cost,
                        milestones: made.insertion.milestones.clone(),
                        view: checkin::view(&campaign, &made.insertion.state, now),
                        balance: 0,
                    },
                )))
            })
            .await?;
        match outcome {
            TxOutcome::Committed {
                mut output, account, ..
            } => {
                output.balance = account.balance;
                Ok(output)
            }
            // The same make-up landed first (a double tap): the date is no longer missed.
            TxOutcome::Replayed(_) | TxOutcome::IdempotentReplay(_) | TxOutcome::Nothing(_) => {
                Err(DomainError::NotMissed.into())
            }
        }
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
        let (snapshot, days) = tokio::join!(self.read_snapshot(user, &extra, now), query);
        let (campaign, state) = read_campaign_and_state(&snapshot?, user, campaign_id)?;
        let first = month.unwrap_or_else(|| first_day_of_month(campaign.today(now)));
        let last = last_day_of_month(first);
        let days = days
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
