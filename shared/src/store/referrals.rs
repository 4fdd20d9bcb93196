//! Referrals: the program configuration and each member's code, made on first need by one shared
//! creator (`GET /v1/me` and the referral routes), unique by conditional write, stable forever.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};

use super::points::CONFIG_ATTEMPTS;
use super::tx::put_if_absent;
use super::{Decision, OnConflict, Store, StoreError, Write, keys, to_item_with_key};
use crate::domain::ids;
use crate::domain::ledger::{Posting, Reason};
use crate::domain::members::{self, Profile};
use crate::domain::referrals::{
    ClaimFacts, Due, PaidCounts, Program, Qualifying, Refusal, Status, check_claim,
};
use crate::domain::{DomainError, UserId};
use crate::metrics::{self, Metric};

/// A member's referrer side (`USER#<user>/REFERRER`), created with their code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referrer {
    pub code: String,
    /// Members who claimed the code (a claimer with invitees can never claim: no cycles).
    #[serde(default)]
    pub invitees: u64,
    pub created_at: Option<DateTime<Utc>>,
    /// Referrer rewards not paid yet (claimed referrals waiting for their qualifying action).
    #[serde(default)]
    pub pending_points: i64,
    /// Referrer rewards paid (and not taken back).
    #[serde(default)]
    pub paid_points: i64,
    /// Payments counted for the caps (revokes and reversals never give a slot back).
    #[serde(default)]
    pub paid: PaidCounts,
    #[serde(default)]
    pub version: u64,
}

/// Where a code leads (`REFCODE#<code>/CODE`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CodeOwner {
    user_id: String,
}

/// The stored program with its version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredProgram {
    #[serde(flatten)]
    pub program: Program,
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// The referral program (off, with the documented defaults, until an admin puts one).
    pub async fn referral_program(&self) -> Result<Program, StoreError> {
        Ok(self
            .config_item::<StoredProgram>(&keys::referral_program())
            .await?
            .map(|p| p.program)
            .unwrap_or_default())
    }

    /// Replaces the program (422 when invalid); a version-checked put, again on a lost race.
    pub async fn put_referral_program(
        &self,
        program: Program,
        now: DateTime<Utc>,
    ) -> Result<StoredProgram, crate::Error> {
        program.validate()?;
        for attempt in 0..CONFIG_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            let current: Option<StoredProgram> = self.read_one(&keys::referral_program()).await?;
            let version = current.as_ref().map_or(0, |p| p.version);
            let next = StoredProgram {
                program: program.clone(),
                version: version + 1,
                updated_at: now,
            };
            let item = to_item_with_key(&keys::referral_program(), &next)?;
            if self
                .put_if_version(item, (version > 0).then_some(version))
                .await?
            {
                self.cache.forget(&keys::referral_program());
                return Ok(next);
            }
        }
        Err(StoreError::Contention(CONFIG_ATTEMPTS).into())
    }

    /// The member's code, made on first need: the code item and the member's referrer item are
    /// put, each only if absent, in one transaction. Concurrent first calls all answer the one
    /// code that won; a code another member holds is never reused (a new one is drawn).
    pub async fn referral_code(&self, user: &UserId, now: DateTime<Utc>) -> Result<String, crate::Error> {
        for attempt in 0..CONFIG_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            if let Some(me) = self.read_one::<Referrer>(&keys::referrer(user)).await? {
                return Ok(me.code);
            }
            if let Some(code) = self.create_referral_code(user, now).await? {
                return Ok(code);
            }
        }
        Err(StoreError::Contention(CONFIG_ATTEMPTS).into())
    }

    /// One attempt at making the member's code; `None` when a concurrent call made theirs (or,
    /// rarely, the drawn code was taken): read again.
    pub(crate) async fn create_referral_code(
        &self,
        user: &UserId,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, crate::Error> {
        let code = ids::code_from(rand::random());
        let owner = CodeOwner {
            user_id: user.to_string(),
        };
        let me = Referrer {
            code: code.clone(),
            invitees: 0,
            created_at: Some(now),
            pending_points: 0,
            paid_points: 0,
            paid: PaidCounts::default(),
            version: 1,
        };
        let actions = vec![
            put_if_absent(
                &self.table,
                to_item_with_key(&keys::referral_code(&code), &owner)?,
            )?,
            put_if_absent(&self.table, to_item_with_key(&keys::referrer(user), &me)?)?,
        ];
        Ok(self.transact_or_lost(actions).await?.then_some(code))
    }

    /// Whose code this is (`None` for an unknown code; input as typed, see `ids::normalize_code`).
    pub async fn referral_code_owner(&self, code: &str) -> Result<Option<UserId>, crate::Error> {
        let Some(code) = ids::normalize_code(code) else {
            return Ok(None);
        };
        let owner: Option<CodeOwner> = self.read_one(&keys::referral_code(&code)).await?;
        Ok(owner.map(|o| UserId::parse(&o.user_id)).transpose()?)
    }
}

/// A member's referral as an invitee (`USER#<invitee>/REFERRED_BY`): who referred them and what
/// was fixed at the claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    pub invitee: String,
    pub referrer: String,
    pub code: String,
    pub claimed_at: DateTime<Utc>,
    pub invitee_reward: i64,
    pub referrer_reward: i64,
    pub qualifying: Qualifying,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualified_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<DateTime<Utc>>,
    /// The purchase grant (its business key) that qualified it, for a reversal to recognise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifying_ref: Option<String>,
    /// While the referrer side counts it (paid or capped, not undone): the instant its points
    /// and contests count at (when it qualified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_at: Option<DateTime<Utc>>,
    /// When it was revoked or reversed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// The referrer step still to run (indexed on `gsi1` for the reconciler while set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<Due>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1sk: Option<String>,
    pub version: u64,
}

impl Referral {
    /// The next version of this referral with `due` as its referrer step (indexed from `at`).
    pub(crate) fn next(&self, due: Option<Due>, at: DateTime<Utc>) -> Result<Referral, crate::Error> {
        let invitee = UserId::parse(&self.invitee)?;
        let (gsi1pk, gsi1sk) = match due {
            Some(_) => {
                let (pk, sk) = keys::referral_due(&invitee, at);
                (Some(pk), Some(sk))
            }
            None => (None, None),
        };
        Ok(Referral {
            due,
            gsi1pk,
            gsi1sk,
            version: self.version + 1,
            ..self.clone()
        })
    }
}

/// The referrer's list of invitees (`USER#<referrer>/INVITEE#<claimed at, ms>#<invitee>`), for
/// paging `GET /v1/referrals/me`; each one's status lives on their own referral.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct InviteeLine {
    invitee: String,
    claimed_at: DateTime<Utc>,
}

/// What a claim answers.
#[derive(Debug, Clone, Serialize)]
pub struct Claimed {
    /// The referrer's public identity.
    pub referrer: String,
    pub invitee_reward: i64,
    pub status: Status,
    pub balance: i64,
}

impl super::checkin::WithBalance for Claimed {
    fn set_balance(&mut self, balance: i64) {
        self.balance = balance;
    }
}

impl Store {
    /// The invitee claims a code: their reward is paid and the referral recorded in one ledger
    /// transaction, which also adds to the referrer's invitee count and checks the invitee's own
    /// is still 0 (no cycle can ever close, whatever the order or timing of claims). Two read
    /// round trips: the code's owner, then one batch.
    pub async fn claim_referral(
        &self,
        invitee: &UserId,
        code: &str,
        call: Option<&super::IdempotentCall>,
        now: DateTime<Utc>,
    ) -> Result<String, crate::Error> {
        use super::checkin::{answer_plan, finish, stored_answer};
        let referrer = self
            .referral_code_owner(code)
            .await?
            .ok_or(DomainError::NotFound("referral code"))?;
        let code = ids::normalize_code(code).unwrap_or_default();
        let mut extra = vec![
            keys::referral_program(),
            keys::referred_by(invitee),
            keys::referrer(invitee),
            keys::referrer(&referrer),
            keys::profile(invitee),
            keys::profile(&referrer),
        ];
        if let Some(call) = call {
            extra.push(call.key.clone());
        }
        // The invitee's reward counts on the points boards (a referral bonus is earned).
        let mut immediate = false;
        let outcome = self
            .scored(super::Scoring::earn(now))
            .ledger_transaction(invitee, &extra, now, |snap| {
                immediate = false;
                if let Some(record) = stored_answer(snap, call)? {
                    return Ok(Decision::Nothing(super::checkin::Answer::Stored(record)));
                }
                let program = snap
                    .get::<StoredProgram>(&keys::referral_program())?
                    .map(|p| p.program)
                    .unwrap_or_default();
                let profile: Profile = snap.get(&keys::profile(invitee))?.unwrap_or_default();
                let first_seen = members::registered_at(&profile, snap.account.first_seen)
                    .or((!snap.exists).then_some(now))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC);
                let mine: Option<Referrer> = snap.get(&keys::referrer(invitee))?;
                let facts = ClaimFacts {
                    invitee: invitee.as_str(),
                    referrer: referrer.as_str(),
                    first_seen,
                    referred: snap.get::<Referral>(&keys::referred_by(invitee))?.is_some(),
                    invitees: mine.as_ref().map_or(0, |m| m.invitees),
                };
                check_claim(&program, &facts, now).map_err(DomainError::Referral)?;
                let status = match program.qualifying {
                    Qualifying::Immediately => Status::Qualified,
                    _ => Status::Pending,
                };
                let referral = Referral {
                    invitee: invitee.to_string(),
                    referrer: referrer.to_string(),
                    code: code.clone(),
                    claimed_at: now,
                    invitee_reward: program.invitee_reward,
                    referrer_reward: program.referrer_reward,
                    qualifying: program.qualifying,
                    status,
                    qualified_at: (status == Status::Qualified).then_some(now),
                    paid_at: None,
                    qualifying_ref: None,
                    counted_at: None,
                    ended_at: None,
                    due: None,
                    gsi1pk: None,
                    gsi1sk: None,
                    version: 0,
                };
                let referral = match status {
                    Status::Qualified => referral.next(Some(Due::Settle), now)?,
                    _ => referral.next(None, now)?,
                };
                immediate = status == Status::Qualified;
                let mut postings = Vec::new();
                if program.invitee_reward > 0 {
                    let mut posting = Posting::new(
                        program.invitee_reward,
                        Reason::Referral,
                        format!("referral:{code}"),
                        keys::business::referral_invitee(invitee),
                    );
                    posting.by = Some("referral".into());
                    postings.push(posting);
                }
                let writes = self.claim_writes(invitee, &referrer, &referral, mine.is_some())?;
                let referrer_profile: Profile = snap.get(&keys::profile(&referrer))?.unwrap_or_default();
                let answer = Claimed {
                    referrer: members::public_name(&referrer, &referrer_profile),
                    invitee_reward: program.invitee_reward,
                    status,
                    balance: 0,
                };
                Ok(answer_plan(postings, writes, call, answer))
            })
            .await?;
        if outcome.committed() {
            metrics::count(Metric::ReferralClaims, 1);
            metrics::count(Metric::ReferralsQualified, u64::from(immediate));
        }
        // The business key is the invitee's: taken means referred already (a concurrent claim).
        let answer = finish(outcome, call)?
            .ok_or_else(|| crate::Error::from(DomainError::Referral(Refusal::AlreadyReferred)))?;
        // `immediately`: the referrer's step runs right after (the reconciler repairs it if not).
        if immediate {
            self.referrer_step_now(invitee, now).await;
        }
        Ok(answer)
    }

    /// The claim's own writes: the referral (put if absent: the first code wins), the invitee's
    /// invitee count still 0, the referrer's count + 1, and the referrer's list line.
    fn claim_writes(
        &self,
        invitee: &UserId,
        referrer: &UserId,
        referral: &Referral,
        invitee_has_referrer_item: bool,
    ) -> Result<Vec<Write>, crate::Error> {
        let retry = |action| Write {
            action,
            on_conflict: OnConflict::Retry,
        };
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(keys::referrer(invitee).to_item()));
        let check = match invitee_has_referrer_item {
            true => check
                .condition_expression("invitees = :zero")
                .expression_attribute_values(":zero", AttributeValue::N("0".into())),
            false => check.condition_expression("attribute_not_exists(pk)"),
        };
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::referrer(referrer).to_item()))
            .condition_expression("attribute_exists(pk)")
            .update_expression("ADD invitees :one, version :one, pending_points :reward")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":reward", AttributeValue::N(referral.referrer_reward.to_string()))
            .build()
            .map_err(StoreError::internal)?;
        let line = InviteeLine {
            invitee: invitee.to_string(),
            claimed_at: referral.claimed_at,
        };
        Ok(vec![
            retry(put_if_absent(
                &self.table,
                to_item_with_key(&keys::referred_by(invitee), referral)?,
            )?),
            retry(
                TransactWriteItem::builder()
                    .condition_check(check.build().map_err(StoreError::internal)?)
                    .build(),
            ),
            retry(TransactWriteItem::builder().update(count).build()),
            retry(put_if_absent(
                &self.table,
                to_item_with_key(&keys::invitee_line(referrer, referral.claimed_at, invitee), &line)?,
            )?),
        ])
    }
}

/// One invitee as the referrer sees them.
#[derive(Debug, Clone, Serialize)]
pub struct InviteeView {
    pub name: String,
    pub status: Status,
    pub claimed_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qualified_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<DateTime<Utc>>,
}

/// `GET /v1/referrals/me`.
#[derive(Debug, Clone, Serialize)]
pub struct MyReferrals {
    pub code: String,
    /// Friends who claimed my code.
    pub claimed: u64,
    /// My referrer rewards: paid, and waiting for friends' qualifying actions.
    pub rewards_paid: i64,
    pub rewards_pending: i64,
    /// Who referred me (public identity), if anyone.
    pub referred_by: Option<String>,
    /// My invitees, newest first (a page).
    pub invitees: Vec<InviteeView>,
    /// Where the next page starts (the claim instant, ms), if there is one.
    #[serde(skip)]
    pub next_before: Option<u64>,
}

impl Store {
    /// My code (made on first need), counts, who referred me, and a page of my invitees before
    /// `before` (claim instant, ms; newest first).
    pub async fn my_referrals(
        &self,
        user: &UserId,
        limit: u32,
        before: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<MyReferrals, crate::Error> {
        let code = self.referral_code(user, now).await?;
        let (lines, invitees, next_before) = self.invitee_page(user, limit, before).await?;
        let mut wanted = vec![keys::referrer(user), keys::referred_by(user)];
        for invitee in &invitees {
            wanted.push(keys::referred_by(invitee));
            wanted.push(keys::profile(invitee));
        }
        let found = self.read_items(wanted).await?;
        let get = |key: &super::Key| found.get(key).cloned();
        let me: Referrer = get(&keys::referrer(user))
            .map(super::from_item)
            .transpose()?
            .unwrap_or_default();
        let mine: Option<Referral> = get(&keys::referred_by(user)).map(super::from_item).transpose()?;
        let referred_by = match mine {
            Some(referral) => {
                let referrer = UserId::parse(&referral.referrer)?;
                let profile: Profile = self
                    .read_one(&keys::profile(&referrer))
                    .await?
                    .unwrap_or_default();
                Some(members::public_name(&referrer, &profile))
            }
            None => None,
        };
        let mut views = Vec::new();
        for (invitee, line) in invitees.iter().zip(&lines) {
            let referral: Option<Referral> = get(&keys::referred_by(invitee))
                .map(super::from_item)
                .transpose()?;
            let profile: Profile = get(&keys::profile(invitee))
                .map(super::from_item)
                .transpose()?
                .unwrap_or_default();
            let Some(referral) = referral else { continue };
            views.push(InviteeView {
                name: members::public_name(invitee, &profile),
                status: referral.status,
                claimed_at: line.claimed_at,
                qualified_at: referral.qualified_at,
                paid_at: referral.paid_at,
            });
        }
        Ok(MyReferrals {
            code,
            claimed: me.invitees,
            rewards_paid: me.paid_points,
            rewards_pending: me.pending_points,
            referred_by,
            invitees: views,
            next_before,
        })
    }
}

/// One referral as an admin sees it: both members' ids, every date, what is due.
#[derive(Debug, Clone, Serialize)]
pub struct AdminReferral {
    pub invitee_id: String,
    pub referrer_id: String,
    pub code: String,
    pub status: Status,
    pub invitee_reward: i64,
    pub referrer_reward: i64,
    pub qualifying: Qualifying,
    pub claimed_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qualified_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// The referrer step not run yet (the reconciler runs it if the request that made it due
    /// could not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due: Option<Due>,
}

impl From<&Referral> for AdminReferral {
    fn from(r: &Referral) -> Self {
        AdminReferral {
            invitee_id: r.invitee.clone(),
            referrer_id: r.referrer.clone(),
            code: r.code.clone(),
            status: r.status,
            invitee_reward: r.invitee_reward,
            referrer_reward: r.referrer_reward,
            qualifying: r.qualifying,
            claimed_at: r.claimed_at,
            qualified_at: r.qualified_at,
            paid_at: r.paid_at,
            ended_at: r.ended_at,
            due: r.due,
        }
    }
}

/// `GET /v1/admin/referrals/{user_id}`.
#[derive(Debug, Clone, Serialize)]
pub struct AdminReferrals {
    pub user_id: String,
    /// The member's code, if one was made (an admin view never makes one).
    pub code: Option<String>,
    pub claimed: u64,
    pub rewards_paid: i64,
    pub rewards_pending: i64,
    /// Referrer payments counted for the caps: this month (business zone) and ever.
    pub paid_this_month: u32,
    pub paid_ever: u32,
    /// Who referred them.
    pub referred_by: Option<AdminReferral>,
    /// Whom they referred, newest first (a page).
    pub invitees: Vec<AdminReferral>,
    #[serde(skip)]
    pub next_before: Option<u64>,
}

impl Store {
    /// A page of `user`'s invitee lines before `before` (claim instant, ms; newest first): the
    /// lines, their invitees, and where the next page starts.
    async fn invitee_page(
        &self,
        user: &UserId,
        limit: u32,
        before: Option<u64>,
    ) -> Result<(Vec<InviteeLine>, Vec<UserId>, Option<u64>), crate::Error> {
        let upper = match before {
            Some(ms) => format!("{}{:015}", keys::INVITEE_PREFIX, ms),
            None => format!("{}~", keys::INVITEE_PREFIX),
        };
        let query = self
            .query_between(keys::user_pk(user), keys::INVITEE_PREFIX.to_owned(), upper)
            .scan_index_forward(false)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX));
        let mut lines: Vec<InviteeLine> = Vec::new();
        let out = self.bounded(query.send()).await?.map_err(super::classify)?;
        for item in out.items.unwrap_or_default() {
            lines.push(super::from_item(item)?);
        }
        let more = lines.len() > limit as usize;
        lines.truncate(limit as usize);
        let invitees: Vec<UserId> = lines
            .iter()
            .map(|l| UserId::parse(&l.invitee))
            .collect::<Result<_, _>>()?;
        let next_before = match more {
            true => lines
                .last()
                .map(|l| l.claimed_at.timestamp_millis().max(0) as u64),
            false => None,
        };
        Ok((lines, invitees, next_before))
    }

    /// The admin view of `user`'s referrals: who referred them, a page of whom they referred
    /// (each status), their counts. Two round trips: the page query, then one batch read.
    pub async fn admin_referrals(
        &self,
        user: &UserId,
        limit: u32,
        before: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<AdminReferrals, crate::Error> {
        let (_, invitees, next_before) = self.invitee_page(user, limit, before).await?;
        let mut wanted = vec![keys::referrer(user), keys::referred_by(user)];
        wanted.extend(invitees.iter().map(keys::referred_by));
        let found = self.read_items(wanted).await?;
        let get = |key: &super::Key| found.get(key).cloned();
        let me: Option<Referrer> = get(&keys::referrer(user)).map(super::from_item).transpose()?;
        let referred_by: Option<Referral> =
            get(&keys::referred_by(user)).map(super::from_item).transpose()?;
        let mut views = Vec::new();
        for invitee in &invitees {
            if let Some(referral) = get(&keys::referred_by(invitee))
                .map(super::from_item::<Referral>)
                .transpose()?
            {
                views.push(AdminReferral::from(&referral));
            }
        }
        let month = crate::domain::referrals::month_of(self.rules.today(now));
        let paid = me.as_ref().map(|m| m.paid.clone()).unwrap_or_default();
        Ok(AdminReferrals {
            user_id: user.to_string(),
            code: me.as_ref().map(|m| m.code.clone()),
            claimed: me.as_ref().map_or(0, |m| m.invitees),
            rewards_paid: me.as_ref().map_or(0, |m| m.paid_points),
            rewards_pending: me.as_ref().map_or(0, |m| m.pending_points),
            paid_this_month: if paid.month == month { paid.this_month } else { 0 },
            paid_ever: paid.ever,
            referred_by: referred_by.as_ref().map(AdminReferral::from),
            invitees: views,
            next_before,
        })
    }
}
