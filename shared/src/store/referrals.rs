//! Referrals: the program configuration and each member's code, made on first need by one shared
//! creator (`GET /v1/me` and the referral routes), unique by conditional write, stable forever.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::points::CONFIG_ATTEMPTS;
use super::tx::put_if_absent;
use super::{Store, StoreError, keys, to_item_with_key};
use crate::domain::UserId;
use crate::domain::ids;
use crate::domain::referrals::Program;

/// A member's referrer side (`USER#<user>/REFERRER`), created with their code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referrer {
    pub code: String,
    /// Members who claimed the code (a claimer with invitees can never claim: no cycles).
    #[serde(default)]
    pub invitees: u64,
    pub created_at: Option<DateTime<Utc>>,
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
