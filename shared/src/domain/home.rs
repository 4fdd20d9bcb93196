//! The home screen (`GET /v1/me`) in at most two read round trips, whatever features land.
//!
//! 1. One batch read: the account, the profile, the default check-in campaign's streak and every
//!    feature's *home index* — a small configuration item (`CONFIG/CONTESTS`, `CONFIG/DRAWS`)
//!    that its admin routes rewrite whenever something starts, ends or changes title, and that
//!    each process caches like all configuration.
//! 2. One batch read of the member's own items for the entries those indexes list as live (my
//!    score in each active contest, my spins today in each open draw), only when there are any.
//!
//! A feature adds its field by adding its index key to read 1 and its member keys to read 2;
//! it never adds a round trip (docs/data-model.md, "The home screen").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Entries one index lists at most (the home screen's batch stays far below 100 keys).
pub const MAX_INDEX_ENTRIES: usize = 20;

/// A home index item: what is live, without a query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomeIndex {
    #[serde(default)]
    pub entries: Vec<IndexEntry>,
    #[serde(default)]
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub id: String,
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

impl HomeIndex {
    /// The entries live at `now` (`starts_at <= now < ends_at`), at most [`MAX_INDEX_ENTRIES`].
    pub fn live(&self, now: DateTime<Utc>) -> Vec<&IndexEntry> {
        self.entries
            .iter()
            .filter(|e| e.starts_at <= now && now < e.ends_at)
            .take(MAX_INDEX_ENTRIES)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, starts: &str, ends: &str) -> IndexEntry {
        IndexEntry {
            id: id.into(),
            title: id.into(),
            starts_at: starts.parse().unwrap(),
            ends_at: ends.parse().unwrap(),
        }
    }

    #[test]
    fn live_entries_have_started_and_not_ended() {
        let index = HomeIndex {
            entries: vec![
                entry("past", "2026-11-01T00:00:00Z", "2026-11-23T00:00:00Z"),
                entry("now", "2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z"),
                entry("later", "2026-11-23T00:00:01Z", "2026-12-01T00:00:00Z"),
            ],
            version: 3,
        };
        let ids: Vec<_> = index
            .live("2026-11-23T00:00:00Z".parse().unwrap())
            .iter()
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(ids, ["now"]);
    }

    #[test]
    fn at_most_twenty_are_listed() {
        let index = HomeIndex {
            entries: (0..25)
                .map(|i| entry(&format!("c{i}"), "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"))
                .collect(),
            version: 1,
        };
        assert_eq!(
            index.live("2026-11-23T00:00:00Z".parse().unwrap()).len(),
            MAX_INDEX_ENTRIES
        );
    }
}
