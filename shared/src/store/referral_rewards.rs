//! The referrer's side of a referral: qualification, payment (or `capped`), revokes and
//! reversals, and the reconciler that finishes what an interrupted step left.
//!
//! - The invitee's qualifying action (purchase or check-in) writes one extra action in its own
//!   transaction: the referral becomes `qualified` with the referrer step `due` (and indexed on
//!   `gsi1`, `REFERRALS#DUE#<shard>`). No second account is in that transaction.
//! - The referrer step is its own ledger operation on the referrer's account, run right after:
//!   it pays `referral-referrer#<invitee>` within the caps (or records `capped`), counts it for
//!   the `referrals` contest metric, and clears `due` — all in one transaction conditioned on the
//!   referral's version, so it happens once.
//! - If the process stops between the two, the referral stays `due`: the scheduled reconciler
//!   (`functions/referral-reconciler`, every minute) queries the index and runs the step. No hot
//!   path queries anything.
//! - A revoke (invitee's account) or a full reversal of the qualifying purchase after the step
//!   marks the undo `due` the same way; the undo takes the referrer's reward back once
//!   (`referral-referrer-reversal#<invitee>`) and removes it from running contests.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::referrals::{AdminReferral, Referral, Referrer, StoredProgram};
use super::tx::put_versioned;
use super::{
    Decision, OnConflict, Plan, Scoring, Snapshot, Store, StoreError, TxOutcome, Write, classify, from_item,
    keys, to_item_with_key,
};
use crate::domain::ledger::{self, Kind, Posting, Reason};
use crate::domain::referrals::{
    Action, AfterReversal, Due, Status, after_full_reversal, month_of, qualifies,
};
use crate::domain::{DomainError, UserId};
use crate::metrics::{self, Metric};

/// What a referrer step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferrerStep {
    /// Nothing was due (done already, or the referral moved on).
    Nothing,
    /// The referrer was paid.
    Paid,
    /// The referrer was over a cap: recorded `capped`, nothing paid.
    Capped,
    /// The referrer side was undone (reward taken back if it was paid).
    Undone,
}

/// What a reconciler run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Referrals found with a step due.
    pub due: usize,
    pub paid: usize,
    pub capped: usize,
    pub undone: usize,
    /// Steps that failed this run (left due for the next).
    pub failed: usize,
}

/// Referral steps younger than this are left to the request that made them due (it runs the
/// step right after); the reconciler takes older ones.
pub const RECONCILE_AFTER_SECONDS: i64 = 30;

impl Store {
    /// The referral write of an invitee's `action` at `now`, if it qualifies their referral: the
    /// one extra action of the qualifying transaction. `reference` is the purchase grant's
    /// business key (for a later reversal to recognise).
    pub(crate) fn qualify_write(
        &self,
        snap: &Snapshot,
        invitee: &UserId,
        action: Action,
        reference: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Write>, crate::Error> {
        let Some(referral) = snap.get::<Referral>(&keys::referred_by(invitee))? else {
            return Ok(None);
        };
        if !qualifies(
            referral.status,
            referral.qualifying,
            referral.claimed_at,
            action,
            now,
        ) {
            return Ok(None);
        }
        let next = Referral {
            status: Status::Qualified,
            qualified_at: Some(now),
            qualifying_ref: reference.map(str::to_owned),
            ..referral.next(Some(Due::Settle), now)?
        };
        Ok(Some(self.referral_write(&next, referral.version)?))
    }

    /// The referral write of a reversal of the purchase grant `grant_key` that leaves nothing of
    /// it, if that purchase qualified the referral; `true` when it makes an undo due.
    pub(crate) fn reversal_write(
        &self,
        snap: &Snapshot,
        invitee: &UserId,
        grant_key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(Write, bool)>, crate::Error> {
        let Some(referral) = snap.get::<Referral>(&keys::referred_by(invitee))? else {
            return Ok(None);
        };
        if referral.qualifying_ref.as_deref() != Some(grant_key) {
            return Ok(None);
        }
        let next = match after_full_reversal(referral.status) {
            AfterReversal::Keep => return Ok(None),
            // Back to waiting for the next qualifying purchase.
            AfterReversal::Wait => Referral {
                status: Status::Pending,
                qualified_at: None,
                qualifying_ref: None,
                ..referral.next(None, now)?
            },
            AfterReversal::Undo => Referral {
                status: Status::Reversed,
                ended_at: Some(now),
                ..referral.next(referral.counted_at.map(|_| Due::Undo), now)?
            },
        };
        let undo = next.due == Some(Due::Undo);
        Ok(Some((self.referral_write(&next, referral.version)?, undo)))
    }

    /// The referral's versioned put (a lost race reads again).
    pub(crate) fn referral_write(&self, next: &Referral, expected: u64) -> Result<Write, crate::Error> {
        let invitee = UserId::parse(&next.invitee)?;
        let item = to_item_with_key(&keys::referred_by(&invitee), next)?;
        Ok(Write {
            action: put_versioned(&self.table, item, (expected > 0).then_some(expected))?,
            on_conflict: OnConflict::Retry,
        })
    }

    /// Runs the referrer step of `invitee`'s referral right after the request that made it due;
    /// a failure is only logged: the referral stays due and the reconciler runs it.
    pub(crate) async fn referrer_step_now(&self, invitee: &UserId, now: DateTime<Utc>) {
        if let Err(err) = self.referrer_step(invitee, now).await {
            tracing::warn!(error = %err, %invitee, "referrer step left to the reconciler");
        }
    }

    /// The referrer step due on `invitee`'s referral, if any: pay (or cap) a qualified referral,
    /// or undo a settled one that was revoked or reversed. One ledger transaction on the
    /// referrer's account, conditioned on the referral's version: it happens once, whoever runs
    /// it and however often.
    pub async fn referrer_step(
        &self,
        invitee: &UserId,
        now: DateTime<Utc>,
    ) -> Result<ReferrerStep, crate::Error> {
        for attempt in 0..3 {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            let Some(referral) = self
                .get_item(&keys::referred_by(invitee), true)
                .await?
                .map(from_item::<Referral>)
                .transpose()?
            else {
                return Ok(ReferrerStep::Nothing);
            };
            let Some(due) = referral.due else {
                return Ok(ReferrerStep::Nothing);
            };
            let referrer = UserId::parse(&referral.referrer)?;
            // Its points and contests count at the instant it qualified.
            let scoring = match due {
                Due::Settle => Scoring::referral(referral.qualified_at.unwrap_or(referral.claimed_at), 1),
                Due::Undo => Scoring::referral(referral.counted_at.unwrap_or(referral.claimed_at), -1),
            };
            let extra = [
                keys::referred_by(invitee),
                keys::referrer(&referrer),
                keys::referral_program(),
            ];
            let outcome = self
                .scored(scoring)
                .ledger_transaction(&referrer, &extra, now, |snap| {
                    let current: Option<Referral> = snap.get(&keys::referred_by(invitee))?;
                    match current {
                        // It moved since it was read: read again.
                        Some(current) if current.version == referral.version => {
                            self.plan_step(snap, invitee, &current, now)
                        }
                        _ => Ok(Decision::Nothing(None)),
                    }
                })
                .await?;
            match outcome {
                TxOutcome::Committed {
                    output: Some(output), ..
                } => {
                    if output == ReferrerStep::Paid {
                        metrics::count(Metric::ReferralRewards, 1);
                    }
                    return Ok(output);
                }
                TxOutcome::Nothing(Some(output)) => return Ok(output),
                TxOutcome::Committed { output: None, .. } => continue,
                TxOutcome::Nothing(None) => continue,
                // Its business key was taken: a concurrent run of the same step (or a resent one
                // whose answer was lost) did it, in the same transaction as the referral's write.
                TxOutcome::Replayed(_) => return Ok(ReferrerStep::Nothing),
                TxOutcome::IdempotentReplay(_) => {
                    return Err(StoreError::Internal("a referrer step has no idempotency key".into()).into());
                }
            }
        }
        Err(StoreError::Contention(3).into())
    }

    /// The referrer step's plan, on the referrer's snapshot.
    fn plan_step(
        &self,
        snap: &Snapshot,
        invitee: &UserId,
        referral: &Referral,
        now: DateTime<Utc>,
    ) -> Result<Decision<Option<ReferrerStep>>, crate::Error> {
        let referrer = UserId::parse(&referral.referrer)?;
        let stored: Option<Referrer> = snap.get(&keys::referrer(&referrer))?;
        let expected = stored.as_ref().map(|r| r.version);
        let mut me = stored.unwrap_or_default();
        me.version += 1;
        let reward = referral.referrer_reward;
        let mut postings = Vec::new();
        let (next, step) = match referral.due {
            None => return Ok(Decision::Nothing(Some(ReferrerStep::Nothing))),
            Some(Due::Settle) => {
                let program = snap
                    .get::<StoredProgram>(&keys::referral_program())?
                    .map(|p| p.program)
                    .unwrap_or_default();
                let month = month_of(self.rules.today(now));
                let qualified_at = referral.qualified_at.unwrap_or(referral.claimed_at);
                me.pending_points = me.pending_points.saturating_sub(reward).max(0);
                let mut next = Referral {
                    counted_at: Some(qualified_at),
                    ..referral.next(None, now)?
                };
                // Caps count payments in the month of payment (business zone).
                let step = if me.paid.allows(&program, &month) {
                    me.paid = me.paid.paid(&month);
                    me.paid_points = me.paid_points.checked_add(reward).ok_or(DomainError::Overflow)?;
                    next.status = Status::Paid;
                    next.paid_at = Some(now);
                    if reward > 0 {
                        let mut posting = Posting::new(
                            reward,
                            Reason::Referral,
                            format!("referral:{invitee}"),
                            keys::business::referral_referrer(invitee),
                        );
                        posting.by = Some("referral".into());
                        postings.push(posting);
                    }
                    ReferrerStep::Paid
                } else {
                    next.status = Status::Capped;
                    ReferrerStep::Capped
                };
                (next, step)
            }
            Some(Due::Undo) => {
                let next = Referral {
                    counted_at: None,
                    ..referral.next(None, now)?
                };
                if let (Some(paid_at), Some(_)) = (referral.paid_at, referral.counted_at)
                    && reward > 0
                {
                    postings.push(self.reward_reversal(
                        snap,
                        invitee,
                        (paid_at, reward),
                        (
                            keys::business::referral_referrer_reversal(invitee),
                            keys::business::referral_referrer(invitee),
                        ),
                        "referral",
                        now,
                    ));
                    me.paid_points = me.paid_points.saturating_sub(reward).max(0);
                }
                (next, ReferrerStep::Undone)
            }
        };
        let writes = vec![
            self.referral_write(&next, referral.version)?,
            Write {
                action: put_versioned(
                    &self.table,
                    to_item_with_key(&keys::referrer(&referrer), &me)?,
                    expected,
                )?,
                on_conflict: OnConflict::Retry,
            },
        ];
        Ok(Decision::Write(Plan::new(postings, writes, Some(step))))
    }

    /// An admin revokes `invitee`'s referral (fraud): the invitee's reward is reversed through
    /// the ledger (`referral-revoke#<invitee>`; spent points become debt), a referrer reward not
    /// paid yet never will be, and a paid one is taken back by the undo step that follows. Once:
    /// a second revoke is `409 referral-revoked`. Racing the qualifying action or the referrer's
    /// payment, exactly one order wins (each writes the referral on its version).
    pub async fn revoke_referral(
        &self,
        invitee: &UserId,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<AdminReferral, crate::Error> {
        let referral: Referral = self
            .get_item(&keys::referred_by(invitee), true)
            .await?
            .map(from_item)
            .transpose()?
            .ok_or(DomainError::NotFound("referral"))?;
        if referral.status == Status::Revoked {
            return Err(DomainError::ReferralRevoked.into());
        }
        let referrer = UserId::parse(&referral.referrer)?;
        let extra = [keys::referred_by(invitee)];
        // The invitee's reward counted on the boards when claimed: its reversal lowers them.
        let outcome = self
            .scored(Scoring::reversal(referral.claimed_at, Reason::Referral))
            .ledger_transaction(invitee, &extra, now, |snap| {
                let current: Referral = snap
                    .get(&keys::referred_by(invitee))?
                    .ok_or(DomainError::NotFound("referral"))?;
                if current.status == Status::Revoked {
                    return Err(DomainError::ReferralRevoked.into());
                }
                let mut postings = Vec::new();
                let reward = current.invitee_reward;
                if reward > 0 {
                    postings.push(self.reward_reversal(
                        snap,
                        invitee,
                        (current.claimed_at, reward),
                        (
                            keys::business::referral_revoke(invitee),
                            keys::business::referral_invitee(invitee),
                        ),
                        by,
                        now,
                    ));
                }
                let next = Referral {
                    status: Status::Revoked,
                    ended_at: Some(now),
                    ..current.next(current.counted_at.map(|_| Due::Undo), now)?
                };
                let mut writes = vec![self.referral_write(&next, current.version)?];
                // A referrer reward still waiting is no longer pending.
                if matches!(current.status, Status::Pending | Status::Qualified) {
                    writes.push(self.pending_release(&referrer, current.referrer_reward)?);
                }
                Ok(Decision::Write(Plan::new(postings, writes, next)))
            })
            .await?;
        let revoked = match outcome {
            TxOutcome::Committed { output, .. } => output,
            // The revoke's business key was taken: revoked by a concurrent call.
            TxOutcome::Replayed(_) => return Err(DomainError::ReferralRevoked.into()),
            TxOutcome::Nothing(_) | TxOutcome::IdempotentReplay(_) => {
                return Err(StoreError::Internal("a revoke wrote nothing".into()).into());
            }
        };
        if revoked.due != Some(Due::Undo) {
            return Ok(AdminReferral::from(&revoked));
        }
        self.referrer_step_now(invitee, now).await;
        let after: Option<Referral> = self
            .get_item(&keys::referred_by(invitee), true)
            .await?
            .map(from_item)
            .transpose()?;
        Ok(AdminReferral::from(after.as_ref().unwrap_or(&revoked)))
    }

    /// The reversal of a referral `reward` paid at `paid_at` (a revoke's or an undo's): taken
    /// from the reward's bucket, its share that expired forgiven (never taken twice), debt if it
    /// was spent.
    fn reward_reversal(
        &self,
        snap: &Snapshot,
        invitee: &UserId,
        (paid_at, reward): (DateTime<Utc>, i64),
        // The reversal's own key, and the key of the reward it takes back.
        (business_key, reverses): (String, String),
        by: &str,
        now: DateTime<Utc>,
    ) -> Posting {
        let bucket = self.rules.bucket_for(paid_at);
        let forgiven = ledger::forgiven_part(&snap.account, bucket, reward, self.rules.today(now));
        let mut posting = Posting::new(
            -(reward - forgiven),
            Reason::Reversal,
            format!("referral:{invitee}"),
            business_key,
        )
        .with_kind(Kind::Reverse {
            bucket: Some(bucket),
            forgiven,
        });
        posting.by = Some(by.to_owned());
        posting.reverses = Some(reverses);
        posting
    }

    /// The referrer's pending rewards less `reward` (an `ADD` that also moves the version, so a
    /// concurrent versioned put of the item reads again).
    fn pending_release(&self, referrer: &UserId, reward: i64) -> Result<Write, crate::Error> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::referrer(referrer).to_item()))
            .condition_expression("attribute_exists(pk)")
            .update_expression("ADD pending_points :less, version :one")
            .expression_attribute_values(":less", AttributeValue::N((-reward).to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .build()
            .map_err(StoreError::internal)?;
        Ok(Write {
            action: TransactWriteItem::builder().update(update).build(),
            on_conflict: OnConflict::Retry,
        })
    }

    /// Invitees whose referral has had a referrer step due since before `before`, oldest first per
    /// index partition (at most `limit`).
    pub async fn referrals_due(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<UserId>, StoreError> {
        let mut due = Vec::new();
        for shard in 0..keys::REFERRAL_DUE_SHARDS {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :p AND gsi1sk < :t")
                .expression_attribute_values(":p", AttributeValue::S(keys::referrals_due(shard)))
                .expression_attribute_values(":t", AttributeValue::S(keys::instant(before)))
                .projection_expression("invitee");
            let mut start = None;
            loop {
                let page = query.clone().set_exclusive_start_key(start.take()).send();
                let out = self.bounded(page).await?.map_err(classify)?;
                for item in out.items.unwrap_or_default() {
                    if let Some(AttributeValue::S(invitee)) = item.get("invitee") {
                        due.push(UserId::parse(invitee).map_err(StoreError::internal)?);
                    }
                }
                match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                    Some(key) if due.len() < limit => start = Some(key),
                    _ => break,
                }
            }
        }
        due.truncate(limit);
        Ok(due)
    }

    /// The reconciler: runs every referrer step due for longer than
    /// [`RECONCILE_AFTER_SECONDS`] (the request that made it due normally ran it already), until
    /// `limit` or the deadline. A failed step stays due for the next run.
    pub async fn reconcile_referrals(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<ReconcileReport, crate::Error> {
        let before = now - chrono::Duration::seconds(RECONCILE_AFTER_SECONDS);
        let due = self.referrals_due(before, limit).await?;
        let mut report = ReconcileReport {
            due: due.len(),
            ..ReconcileReport::default()
        };
        for invitee in due {
            if self.past_deadline() {
                report.failed += 1;
                continue;
            }
            match self.referrer_step(&invitee, now).await {
                Ok(ReferrerStep::Paid) => report.paid += 1,
                Ok(ReferrerStep::Capped) => report.capped += 1,
                Ok(ReferrerStep::Undone) => report.undone += 1,
                Ok(ReferrerStep::Nothing) => {}
                Err(err) => {
                    tracing::warn!(error = %err, %invitee, "referrer step failed; due for the next run");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }
}
