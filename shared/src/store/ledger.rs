//! Reading a member's ledger history, newest first, by `seq`.

use super::{Store, StoreError, classify, from_item, keys};
use crate::domain::UserId;
use crate::domain::ledger::LedgerEntry;

/// One page of history. `next` is the `seq` to continue below, if there is more.
#[derive(Debug, Clone)]
pub struct LedgerPage {
    pub entries: Vec<LedgerEntry>,
    pub next: Option<u64>,
}

impl Store {
    /// Entries of `user` with `seq` < `before` (all if `None`), newest first, at most `limit`.
    ///
    /// The partition is always the caller's own: a cursor carries only a `seq`, so no cursor can
    /// reach another member's entries.
    pub async fn ledger_page(
        &self,
        user: &UserId,
        limit: u32,
        before: Option<u64>,
    ) -> Result<LedgerPage, StoreError> {
        let upper = match before {
            // No entry has a `seq` below 1: an empty page (never an inverted key range).
            Some(0 | 1) => {
                return Ok(LedgerPage {
                    entries: vec![],
                    next: None,
                });
            }
            Some(seq) => keys::ledger_entry(user, seq - 1).sk,
            None => keys::ledger_entry(user, u64::MAX).sk,
        };
        let query = self
            .query_between(keys::user_pk(user), keys::ledger_entry(user, 1).sk, upper)
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send();
        let out = self.bounded(query).await?.map_err(classify)?;
        let entries: Vec<LedgerEntry> = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        let next = match (out.last_evaluated_key, entries.last()) {
            (Some(_), Some(last)) if last.seq > 1 => Some(last.seq),
            _ => None,
        };
        Ok(LedgerPage { entries, next })
    }
}
