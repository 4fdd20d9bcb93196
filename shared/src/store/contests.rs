//! Contests: the admin's configuration (the contest item and the contests index, written in one
//! transaction so two admins cannot both pass the cap), members joining, teams, and the
//! fulfilment records of non-points prizes. Settlement is in `settlement.rs`.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::boards::{BoardEntry, Team};
use super::points::CONFIG_ATTEMPTS;
use super::tx::{put_if_absent, put_versioned};
use super::{ContestResult, Item, Key, Store, StoreError, classify, from_item, keys, to_item_with_key};
use crate::domain::contests::{self, Contest, ContestIndex, ContestSpec, Format, Prize, Status, Unpaid};
use crate::domain::ids;
use crate::domain::members::{self, Profile};
use crate::domain::{DomainError, UserId};

/// Lost races a team join retries (a full team of joiners racing for one item).
const TEAM_ATTEMPTS: u32 = 64;

/// Contests the admin listing returns from each of its two partitions.
pub const ADMIN_LIST_LIMIT: i32 = 100;

/// A team as its members see it: no user ids, public names only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamView {
    pub team_id: String,
    pub name: String,
    /// The code that lets others join (shown to members of the team only).
    pub code: String,
    pub members: Vec<String>,
    pub size: usize,
    pub max_size: u32,
    pub score: u64,
}

/// My result in a settled contest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MyResult {
    pub position: u64,
    pub rank: u64,
    pub score: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prize: Option<Prize>,
    /// False when settlement could not pay this prize (recorded; an operator follows up).
    pub paid: bool,
}

/// A contest as a member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContestView {
    pub contest_id: String,
    pub status: Status,
    #[serde(flatten)]
    pub spec: ContestSpec,
    pub joined: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<DateTime<Utc>>,
    /// My score (when I am in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<TeamView>,
    /// After settlement: my final position and prize, if I won one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<MyResult>,
}

/// A live contest on the home screen (`GET /v1/me`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContestCard {
    pub contest_id: String,
    pub title: String,
    pub ends_at: DateTime<Utc>,
    /// In the contest: joined, or every member is in (`entry: everyone`).
    pub joined: bool,
    pub score: u64,
}

/// A contest as the admin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminContest {
    pub status: Status,
    #[serde(flatten)]
    pub contest: Contest,
}

/// One row of the winners export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResultRow {
    pub position: u64,
    pub rank: u64,
    pub score: u64,
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// `paid` (points), `to_fulfil` (an item, see the fulfilments), `unpaid` (recorded and
    /// skipped) or `pending` (settlement has not reached it yet).
    pub status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Results {
    pub contest_id: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<DateTime<Utc>>,
    pub winners: Vec<ResultRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unpaid: Vec<Unpaid>,
}

/// Where a fulfilment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FulfilmentStatus {
    ToFulfil,
    Shipped,
}

impl FulfilmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FulfilmentStatus::ToFulfil => "to_fulfil",
            FulfilmentStatus::Shipped => "shipped",
        }
    }
}

/// A non-points prize to hand over: `FULFILMENT#<id>`, listed by source and status on `gsi1`.
/// Contests write them at settlement (`contest:<id>`); draws will reuse them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fulfilment {
    pub fulfilment_id: String,
    /// What it came from: `contest:<id>` (later `draw:<id>`).
    pub source: String,
    pub user_id: String,
    pub item: String,
    /// Why (e.g. `position 2`).
    pub detail: String,
    pub status: FulfilmentStatus,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_at: Option<DateTime<Utc>>,
}

impl Fulfilment {
    pub(crate) fn item(&self) -> Result<Item, StoreError> {
        let mut item = to_item_with_key(&keys::fulfilment(&self.fulfilment_id), self)?;
        item.insert(
            "gsi1pk".into(),
            AttributeValue::S(keys::fulfilments_of(&self.source, self.status.as_str())),
        );
        item.insert(
            "gsi1sk".into(),
            AttributeValue::S(format!(
                "{}#{}",
                keys::instant(self.created_at),
                self.fulfilment_id
            )),
        );
        Ok(item)
    }
}

/// The stored item of a contest: listed on `gsi1` as pending (by when it may be settled) until
/// it is settled or cancelled.
pub(crate) fn contest_item(contest: &Contest) -> Result<Item, StoreError> {
    let mut item = to_item_with_key(&keys::contest(&contest.id), contest)?;
    let pending = !contest.cancelled && contest.settled.is_none();
    let partition = match pending {
        true => keys::CONTESTS_PENDING,
        false => keys::CONTESTS_DONE,
    };
    item.insert("gsi1pk".into(), AttributeValue::S(partition.to_owned()));
    item.insert(
        "gsi1sk".into(),
        AttributeValue::S(keys::contest_by_settlement(
            contest.spec.settle_after(),
            &contest.id,
        )),
    );
    Ok(item)
}

fn expected(version: u64) -> Option<u64> {
    (version > 0).then_some(version)
}

impl Store {
    /// Seconds a warm function may serve a configuration item from its cache.
    pub fn config_cache_seconds(&self) -> u32 {
        u32::try_from(self.cache.ttl().as_secs()).unwrap_or(u32::MAX)
    }

    /// A contest, strongly consistent (cancelled ones too).
    pub async fn contest(&self, id: &str) -> Result<Option<Contest>, StoreError> {
        self.read_one(&keys::contest(id)).await
    }

    /// A contest members may see: not cancelled (404 otherwise).
    async fn visible_contest(&self, id: &str) -> Result<Contest, crate::Error> {
        ids::validate_slug("contest_id", id).map_err(|_| DomainError::NotFound("contest"))?;
        Ok(self
            .contest(id)
            .await?
            .filter(|c| !c.cancelled)
            .ok_or(DomainError::NotFound("contest"))?)
    }

    /// Creates or changes a contest (see `contests::validate`), and the contests index with it in
    /// one transaction conditioned on both versions. A repeat of the same spec changes nothing.
    pub async fn put_contest(
        &self,
        id: &str,
        spec: ContestSpec,
        now: DateTime<Utc>,
    ) -> Result<(Contest, bool), crate::Error> {
        for attempt in 0..CONFIG_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            let index_key = keys::contests_index();
            let (existing, index) =
                tokio::try_join!(self.contest(id), self.read_one::<ContestIndex>(&index_key))?;
            let spec = contests::validate(
                id,
                spec.clone(),
                existing.as_ref(),
                now,
                self.config_cache_seconds(),
            )?;
            if let Some(existing) = existing.as_ref().filter(|c| c.spec == spec) {
                return Ok((existing.clone(), false));
            }
            let contest = Contest {
                id: id.to_owned(),
                spec,
                cancelled: false,
                settled: None,
                progress: None,
                created_at: existing.as_ref().map_or(now, |c| c.created_at),
                updated_at: now,
                version: existing.as_ref().map_or(0, |c| c.version) + 1,
            };
            if self
                .write_contest(&contest, index.unwrap_or_default(), now)
                .await?
            {
                return Ok((contest, existing.is_none()));
            }
        }
        Err(StoreError::Contention(CONFIG_ATTEMPTS).into())
    }

    /// Cancels a contest that has not started (409 `contest-started` after its start). Cancelling
    /// twice answers the cancelled contest.
    pub async fn cancel_contest(&self, id: &str, now: DateTime<Utc>) -> Result<Contest, crate::Error> {
        for attempt in 0..CONFIG_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            let index_key = keys::contests_index();
            let (existing, index) =
                tokio::try_join!(self.contest(id), self.read_one::<ContestIndex>(&index_key))?;
            let existing = existing.ok_or(DomainError::NotFound("contest"))?;
            if existing.cancelled {
                return Ok(existing);
            }
            // A settled contest (or one settling) has started, whatever the clock says (a dev
            // clock set back, a skewed host).
            if now >= existing.spec.starts_at || existing.settled.is_some() || existing.progress.is_some() {
                return Err(DomainError::ContestStarted.into());
            }
            let contest = Contest {
                cancelled: true,
                updated_at: now,
                version: existing.version + 1,
                ..existing
            };
            if self
                .write_contest(&contest, index.unwrap_or_default(), now)
                .await?
            {
                return Ok(contest);
            }
        }
        Err(StoreError::Contention(CONFIG_ATTEMPTS).into())
    }

    /// The contest and the index in one transaction; false on a lost race.
    async fn write_contest(
        &self,
        contest: &Contest,
        index: ContestIndex,
        now: DateTime<Utc>,
    ) -> Result<bool, crate::Error> {
        let next = index.with(contest, now)?;
        let actions = vec![
            put_versioned(&self.table, contest_item(contest)?, expected(contest.version - 1))?,
            put_versioned(
                &self.table,
                to_item_with_key(&keys::contests_index(), &next)?,
                expected(index.version),
            )?,
        ];
        let written = self.transact_or_lost(actions).await?;
        if written {
            self.cache.forget(&keys::contests_index());
            self.cache.forget(&keys::contest(&contest.id));
        }
        Ok(written)
    }

    /// The admin listing: contests not settled yet (by settlement time), then the
    /// [`ADMIN_LIST_LIMIT`] most recent settled or cancelled ones; `status` filters.
    pub async fn admin_contests(
        &self,
        status: Option<Status>,
        now: DateTime<Utc>,
    ) -> Result<Vec<AdminContest>, StoreError> {
        let (pending, done) = tokio::try_join!(
            self.contests_in(keys::CONTESTS_PENDING, true),
            self.contests_in(keys::CONTESTS_DONE, false)
        )?;
        Ok(pending
            .into_iter()
            .chain(done)
            .map(|contest| AdminContest {
                status: contest.status(now),
                contest,
            })
            .filter(|c| status.is_none_or(|s| s == c.status))
            .collect())
    }

    async fn contests_in(&self, partition: &str, oldest_first: bool) -> Result<Vec<Contest>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", AttributeValue::S(partition.to_owned()))
            .scan_index_forward(oldest_first)
            .limit(ADMIN_LIST_LIMIT);
        let out = self.bounded(query.send()).await?.map_err(classify)?;
        out.items.unwrap_or_default().into_iter().map(from_item).collect()
    }

    /// Contests past their end and grace, not settled or cancelled: what settlement works on.
    pub async fn contests_due(&self, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :p AND gsi1sk <= :t")
            .expression_attribute_values(":p", AttributeValue::S(keys::CONTESTS_PENDING.to_owned()))
            // Every contest whose settlement time is at or before `now` (`~` sorts after `#`).
            .expression_attribute_values(":t", AttributeValue::S(format!("{}~", keys::instant(now))))
            .projection_expression("#id")
            .expression_attribute_names("#id", "id");
        let mut due = Vec::new();
        self.query_pages(query, |page| {
            for item in page.items.unwrap_or_default() {
                if let Some(AttributeValue::S(id)) = item.get("id") {
                    due.push(id.clone());
                }
            }
            Ok(())
        })
        .await?;
        Ok(due)
    }

    /// The contests listed now (upcoming and running) with my entry in each: one cached index
    /// read and one batch read.
    pub async fn member_contests(
        &self,
        user: &UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<ContestView>, crate::Error> {
        let index: ContestIndex = self
            .config_item(&keys::contests_index())
            .await?
            .unwrap_or_default();
        let listed: Vec<String> = index
            .entries
            .iter()
            .filter(|e| e.ends_at > now)
            .map(|e| e.id.clone())
            .collect();
        let mut wanted = Vec::new();
        for id in &listed {
            wanted.push(keys::contest(id));
            wanted.push(keys::contest_entry(user, id));
        }
        let found = self.read_items(wanted).await?;
        let mut views = Vec::new();
        for id in &listed {
            let Some(contest) = found
                .get(&keys::contest(id))
                .cloned()
                .map(from_item::<Contest>)
                .transpose()?
                .filter(|c| !c.cancelled)
            else {
                continue;
            };
            let entry = found
                .get(&keys::contest_entry(user, id))
                .cloned()
                .map(from_item::<BoardEntry>)
                .transpose()?;
            views.push(view(contest, entry, None, None, now));
        }
        Ok(views)
    }

    /// The home screen's contests: the live ones its first read listed, with my entry in each
    /// (the home screen's second read: one batch of my own items). `index` is the contests index
    /// the first read saw (who is in without joining).
    pub(crate) fn contest_cards(
        &self,
        user: &UserId,
        live: &[crate::domain::home::IndexEntry],
        index: &ContestIndex,
        found: &std::collections::HashMap<Key, Item>,
    ) -> Result<Vec<ContestCard>, crate::Error> {
        let mut cards = Vec::new();
        for contest in live {
            let entry: Option<BoardEntry> = found
                .get(&keys::contest_entry(user, &contest.id))
                .cloned()
                .map(from_item)
                .transpose()?;
            let opt_in = index
                .entries
                .iter()
                .find(|l| l.id == contest.id)
                .is_none_or(|l| l.counting.opt_in);
            let joined = !opt_in || entry.as_ref().is_some_and(|e| e.joined_at.is_some());
            cards.push(ContestCard {
                contest_id: contest.id.clone(),
                title: contest.title.clone(),
                ends_at: contest.ends_at,
                joined,
                score: entry.map_or(0, |e| e.score),
            });
        }
        Ok(cards)
    }

    /// One contest with my entry, my team, and after settlement my final position and prize.
    pub async fn member_contest(
        &self,
        user: &UserId,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<ContestView, crate::Error> {
        // The contest and my entry in one wave.
        let entry_key = keys::contest_entry(user, id);
        let (contest, entry) = tokio::try_join!(self.visible_contest(id), async {
            Ok(self.read_one(&entry_key).await?)
        })?;
        let entry: Option<BoardEntry> = entry;
        let team = match entry.as_ref().and_then(|e| e.team.as_ref()) {
            Some(team) => self.team_view(&contest, team).await?,
            None => None,
        };
        let result = match &contest.settled {
            Some(_) => self.contest_result(id).await?,
            None => None,
        };
        let mine = result.map(|r| my_result(&contest, &r, user));
        Ok(view(contest, entry, team, mine.flatten(), now))
    }

    async fn team_view(&self, contest: &Contest, team_id: &str) -> Result<Option<TeamView>, crate::Error> {
        let Some(team) = self.read_one::<Team>(&keys::team(&contest.id, team_id)).await? else {
            return Ok(None);
        };
        let users: Vec<UserId> = team
            .members
            .iter()
            .map(|m| UserId::parse(m))
            .collect::<Result<_, _>>()?;
        let profiles = self.read_items(users.iter().map(keys::profile).collect()).await?;
        let mut names = Vec::new();
        for user in &users {
            let profile: Profile = profiles
                .get(&keys::profile(user))
                .cloned()
                .map(from_item)
                .transpose()?
                .unwrap_or_default();
            names.push(members::public_name(user, &profile));
        }
        Ok(Some(TeamView {
            team_id: team.team_id,
            name: team.name,
            code: team.code,
            size: names.len(),
            members: names,
            max_size: contest.spec.team_size.unwrap_or(0),
            score: team.score,
        }))
    }

    /// Joins an opt-in contest (an `everyone` contest counts me anyway; joining records when).
    /// Joining twice answers the first join. Team contests are joined through a team.
    pub async fn join_contest(
        &self,
        user: &UserId,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<ContestView, crate::Error> {
        let contest = self.visible_contest(id).await?;
        if contest.spec.format == Format::Team {
            return Err(DomainError::invalid("contest_id", "a team contest: create or join a team").into());
        }
        for attempt in 0..CONFIG_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            let key = keys::contest_entry(user, id);
            let entry: Option<BoardEntry> = self.read_one(&key).await?;
            if let Some(entry) = entry.as_ref().filter(|e| e.joined_at.is_some()) {
                return Ok(view(contest, Some(entry.clone()), None, None, now));
            }
            open_for_joining(&contest, now)?;
            let current = entry.unwrap_or_default();
            let next = BoardEntry {
                joined_at: Some(now),
                version: current.version + 1,
                ..current.clone()
            };
            if self
                .put_if_version(to_item_with_key(&key, &next)?, expected(current.version))
                .await?
            {
                return Ok(view(contest, Some(next), None, None, now));
            }
        }
        Err(StoreError::Contention(CONFIG_ATTEMPTS).into())
    }

    /// Creates a team (named by the display-name rules) and joins its creator, in one
    /// transaction with the team's join code.
    pub async fn create_team(
        &self,
        user: &UserId,
        id: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<ContestView, crate::Error> {
        let contest = self.team_contest(id).await?;
        let name = contests::team_name(name)?;
        for attempt in 0..CONFIG_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            open_for_joining(&contest, now)?;
            let entry_key = keys::contest_entry(user, id);
            let current: BoardEntry = self.read_one(&entry_key).await?.unwrap_or_default();
            if current.team.is_some() {
                return Err(DomainError::AlreadyInTeam.into());
            }
            let random: u64 = rand::random();
            let team = Team {
                team_id: ulid::Ulid::from_parts(now.timestamp_millis().max(0) as u64, u128::from(random))
                    .to_string(),
                contest_id: id.to_owned(),
                name: name.clone(),
                code: ids::code_from(random),
                members: vec![user.to_string()],
                score: 0,
                reached_at: None,
                created_at: now,
                version: 1,
                gsi2pk: None,
                gsi2sk: None,
            };
            let next = BoardEntry {
                joined_at: Some(current.joined_at.unwrap_or(now)),
                team: Some(team.team_id.clone()),
                version: current.version + 1,
                ..current.clone()
            };
            let code = TeamCode {
                contest_id: id.to_owned(),
                team_id: team.team_id.clone(),
            };
            let actions = vec![
                put_if_absent(
                    &self.table,
                    to_item_with_key(&keys::team(id, &team.team_id), &team)?,
                )?,
                put_if_absent(
                    &self.table,
                    to_item_with_key(&keys::team_code(&team.code), &code)?,
                )?,
                put_versioned(
                    &self.table,
                    to_item_with_key(&entry_key, &next)?,
                    expected(current.version),
                )?,
            ];
            // A lost race (or, once in a trillion, a code taken): read again with a new code.
            if self.transact_or_lost(actions).await? {
                let team_view = self.team_view(&contest, &team.team_id).await?;
                return Ok(view(contest, Some(next), team_view, None, now));
            }
        }
        Err(StoreError::Contention(CONFIG_ATTEMPTS).into())
    }

    /// Joins the team whose code this is (case-insensitive, dashes ignored). 404 for a code of
    /// another contest, 409 `team-full`, 409 `already-in-team` when in another team; joining my
    /// own team again answers it.
    pub async fn join_team(
        &self,
        user: &UserId,
        id: &str,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<ContestView, crate::Error> {
        let contest = self.team_contest(id).await?;
        let code = ids::normalize_code(code).ok_or(DomainError::NotFound("team"))?;
        let team_id = self
            .read_one::<TeamCode>(&keys::team_code(&code))
            .await?
            .filter(|c| c.contest_id == id)
            .ok_or(DomainError::NotFound("team"))?
            .team_id;
        let max = contest.spec.team_size.unwrap_or(0);
        // A team's code goes round a group chat: up to 50 members may join one team at once, each
        // a version-checked write of the team. Lost races retry (until the request's deadline).
        for attempt in 0..TEAM_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            let entry_key = keys::contest_entry(user, id);
            let team_key = keys::team(id, &team_id);
            let (current, team) = tokio::try_join!(
                self.read_one::<BoardEntry>(&entry_key),
                self.read_one::<Team>(&team_key)
            )?;
            let current = current.unwrap_or_default();
            let team = team.ok_or(DomainError::NotFound("team"))?;
            match &current.team {
                Some(mine) if *mine == team_id => {
                    let team_view = self.team_view(&contest, &team_id).await?;
                    return Ok(view(contest, Some(current), team_view, None, now));
                }
                Some(_) => return Err(DomainError::AlreadyInTeam.into()),
                None => {}
            }
            open_for_joining(&contest, now)?;
            if team.members.len() >= max as usize {
                return Err(DomainError::TeamFull { max }.into());
            }
            let mut members = team.members.clone();
            members.push(user.to_string());
            let joined = Team {
                members,
                version: team.version + 1,
                ..team.clone()
            };
            let next = BoardEntry {
                joined_at: Some(current.joined_at.unwrap_or(now)),
                team: Some(team_id.clone()),
                version: current.version + 1,
                ..current.clone()
            };
            let actions = vec![
                put_versioned(
                    &self.table,
                    to_item_with_key(&team_key, &joined)?,
                    Some(team.version),
                )?,
                put_versioned(
                    &self.table,
                    to_item_with_key(&entry_key, &next)?,
                    expected(current.version),
                )?,
            ];
            if self.transact_or_lost(actions).await? {
                let team_view = self.team_view(&contest, &team_id).await?;
                return Ok(view(contest, Some(next), team_view, None, now));
            }
        }
        Err(StoreError::Contention(TEAM_ATTEMPTS).into())
    }

    /// Leaves my team (and so the contest) before the start; the last member out deletes the
    /// team and its code. 409 `contest-started` after the start, 404 when not in a team.
    pub async fn leave_team(&self, user: &UserId, id: &str, now: DateTime<Utc>) -> Result<(), crate::Error> {
        let contest = self.team_contest(id).await?;
        for attempt in 0..CONFIG_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            if now >= contest.spec.starts_at {
                return Err(DomainError::ContestStarted.into());
            }
            let entry_key = keys::contest_entry(user, id);
            let current: BoardEntry = self
                .read_one(&entry_key)
                .await?
                .ok_or(DomainError::NotFound("team membership"))?;
            let team_id = current
                .team
                .clone()
                .ok_or(DomainError::NotFound("team membership"))?;
            let team_key = keys::team(id, &team_id);
            let team: Team = self
                .read_one(&team_key)
                .await?
                .ok_or(DomainError::NotFound("team"))?;
            let members: Vec<String> = team
                .members
                .iter()
                .filter(|m| **m != user.as_str())
                .cloned()
                .collect();
            let mut actions = vec![delete_versioned(&self.table, &entry_key, current.version)?];
            if members.is_empty() {
                actions.push(delete_versioned(&self.table, &team_key, team.version)?);
                let code = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(keys::team_code(&team.code).to_item()))
                    .build()
                    .map_err(StoreError::internal)?;
                actions.push(TransactWriteItem::builder().delete(code).build());
            } else {
                let left = Team {
                    members,
                    version: team.version + 1,
                    ..team.clone()
                };
                actions.push(put_versioned(
                    &self.table,
                    to_item_with_key(&team_key, &left)?,
                    Some(team.version),
                )?);
            }
            if self.transact_or_lost(actions).await? {
                return Ok(());
            }
        }
        Err(StoreError::Contention(CONFIG_ATTEMPTS).into())
    }

    async fn team_contest(&self, id: &str) -> Result<Contest, crate::Error> {
        let contest = self.visible_contest(id).await?;
        if contest.spec.format != Format::Team {
            return Err(DomainError::invalid("contest_id", "not a team contest").into());
        }
        Ok(contest)
    }

    /// The winners export: every paid or to-be-paid prize of a settled (or settling) contest.
    pub async fn contest_results(&self, id: &str, now: DateTime<Utc>) -> Result<Results, crate::Error> {
        let contest = self.contest(id).await?.ok_or(DomainError::NotFound("contest"))?;
        let result = self.contest_result(id).await?;
        // Settlement keeps its progress (and the unpaid winners) on the contest.
        let progress = contest.progress.clone().unwrap_or_default();
        let done = contest.settled.is_some();
        let unpaid = progress.unpaid.clone();
        let mut winners = Vec::new();
        if let Some(result) = &result {
            let scores: std::collections::HashMap<(u64, &str), (u64, u64)> = result
                .positions
                .iter()
                .map(|w| ((w.position, w.id.as_str()), (w.rank, w.score)))
                .collect();
            let payouts = contests::payouts(&contest.spec, &result.positions, result.team);
            for (i, p) in payouts.iter().enumerate() {
                let owner = p.team_id.as_deref().unwrap_or(&p.user_id);
                let (rank, score) = scores.get(&(p.position, owner)).copied().unwrap_or_default();
                let status = if unpaid
                    .iter()
                    .any(|u| u.user_id == p.user_id && u.position == p.position)
                {
                    "unpaid"
                } else if !done && (i as u64) >= progress.next {
                    "pending"
                } else if p.item.is_some() {
                    "to_fulfil"
                } else {
                    "paid"
                };
                winners.push(ResultRow {
                    position: p.position,
                    rank,
                    score,
                    user_id: p.user_id.clone(),
                    team_id: p.team_id.clone(),
                    points: p.points,
                    item: p.item.clone(),
                    status,
                });
            }
        }
        Ok(Results {
            contest_id: id.to_owned(),
            status: contest.status(now),
            taken_at: result.map(|r| r.taken_at),
            winners,
            unpaid,
        })
    }

    /// Records a fulfilment once (a repeat of the same id changes nothing).
    pub(crate) async fn record_fulfilment(&self, fulfilment: &Fulfilment) -> Result<(), StoreError> {
        self.put_if_version(fulfilment.item()?, None).await.map(|_| ())
    }

    /// Fulfilments of one source in one status, oldest first.
    pub async fn fulfilments(
        &self,
        source: &str,
        status: FulfilmentStatus,
        limit: i32,
    ) -> Result<Vec<Fulfilment>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(
                ":p",
                AttributeValue::S(keys::fulfilments_of(source, status.as_str())),
            )
            .limit(limit);
        let out = self.bounded(query.send()).await?.map_err(classify)?;
        out.items.unwrap_or_default().into_iter().map(from_item).collect()
    }

    /// Marks a fulfilment shipped, once: 409 `already-shipped` the second time, 404 when unknown.
    pub async fn ship_fulfilment(&self, id: &str, now: DateTime<Utc>) -> Result<Fulfilment, crate::Error> {
        ids::validate_slug("fulfilment_id", id).map_err(|_| DomainError::NotFound("fulfilment"))?;
        for attempt in 0..CONFIG_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            let current: Fulfilment = self
                .read_one(&keys::fulfilment(id))
                .await?
                .ok_or(DomainError::NotFound("fulfilment"))?;
            if current.status == FulfilmentStatus::Shipped {
                return Err(DomainError::AlreadyShipped.into());
            }
            let shipped = Fulfilment {
                status: FulfilmentStatus::Shipped,
                shipped_at: Some(now),
                ..current
            };
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(shipped.item()?))
                .condition_expression("#s = :s")
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(
                    ":s",
                    AttributeValue::S(FulfilmentStatus::ToFulfil.as_str().into()),
                );
            match self.retry_conflicts(|| put.clone().send()).await? {
                Ok(_) => return Ok(shipped),
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(err) => return Err(classify(err).into()),
            }
        }
        Err(StoreError::Contention(CONFIG_ATTEMPTS).into())
    }
}

/// Where a team code leads: `TEAMCODE#<code>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TeamCode {
    contest_id: String,
    team_id: String,
}

/// Joining (an entry or a team) is open until the end.
fn open_for_joining(contest: &Contest, now: DateTime<Utc>) -> Result<(), DomainError> {
    match now >= contest.spec.ends_at || contest.settled.is_some() {
        true => Err(DomainError::ContestClosed("the contest has ended")),
        false => Ok(()),
    }
}

fn delete_versioned(table: &str, key: &Key, version: u64) -> Result<TransactWriteItem, StoreError> {
    let delete = Delete::builder()
        .table_name(table)
        .set_key(Some(key.to_item()))
        .condition_expression("#v = :v")
        .expression_attribute_names("#v", "version")
        .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
        .build()
        .map_err(StoreError::internal)?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

fn view(
    contest: Contest,
    entry: Option<BoardEntry>,
    team: Option<TeamView>,
    result: Option<MyResult>,
    now: DateTime<Utc>,
) -> ContestView {
    let counting = contest.spec.counting();
    let joined_at = entry.as_ref().and_then(|e| e.joined_at);
    let joined = joined_at.is_some() || !counting.opt_in;
    ContestView {
        contest_id: contest.id.clone(),
        status: contest.status(now),
        joined,
        joined_at,
        score: joined.then(|| entry.as_ref().map_or(0, |e| e.score)),
        team,
        result,
        spec: contest.spec,
    }
}

/// My line of a frozen result: my position (or my team's), and whether its prize was paid.
fn my_result(contest: &Contest, result: &ContestResult, user: &UserId) -> Option<MyResult> {
    let winner = result.positions.iter().find(|w| match result.team {
        true => w.members.iter().any(|m| m == user.as_str()),
        false => w.id == user.as_str(),
    })?;
    let unpaid = contest
        .progress
        .as_ref()
        .is_some_and(|p| p.unpaid.iter().any(|u| u.user_id == user.as_str()));
    Some(MyResult {
        position: winner.position,
        rank: winner.rank,
        score: winner.score,
        prize: contest.spec.prize_for(winner.position).cloned(),
        paid: !unpaid,
    })
}
