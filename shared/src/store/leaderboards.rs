//! Board reads as the app shows them: listings with public identities, and "my rank" with the
//! entries around me. A settled contest's board is its frozen result.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::boards::{BoardEntry, Scored, Team};
use super::{Key, Store, StoreError, from_item, keys};
use crate::domain::boards::{self, Board, Standing};
use crate::domain::contests::{Contest, Winner};
use crate::domain::members::{self, Profile};
use crate::domain::{DomainError, UserId};

/// A contest's frozen result: `CONTEST#<id>/RESULT`, written once by one conditional put. It holds
/// the prize-winning positions (member or team ids only; names are resolved when read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContestResult {
    pub contest_id: String,
    pub taken_at: DateTime<Utc>,
    pub team: bool,
    pub positions: Vec<Winner>,
}

/// One listed entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardRow {
    pub position: u64,
    pub rank: u64,
    /// The member's public identity (display name, masked id or `anonymous`), or the team's name.
    pub name: String,
    pub score: u64,
    pub reached_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardPage {
    pub board: String,
    /// The contest is settled: this is its frozen result.
    #[serde(rename = "final")]
    pub is_final: bool,
    pub entries: Vec<BoardRow>,
}

/// A neighbour of mine (no rank: only mine is counted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Neighbour {
    pub name: String,
    pub score: u64,
    pub reached_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MyStanding {
    pub board: String,
    pub ranked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reached_at: Option<DateTime<Utc>>,
    /// My team's name, on a team board.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Nearest first.
    pub above: Vec<Neighbour>,
    /// Nearest first.
    pub below: Vec<Neighbour>,
}

impl Store {
    /// The contest a contest board belongs to (404 when there is none); `None` for points boards.
    async fn board_contest(&self, board: &Board) -> Result<Option<Contest>, crate::Error> {
        let Some(id) = board.contest() else {
            return Ok(None);
        };
        let contest: Contest = self
            .config_item(&keys::contest(id))
            .await?
            .filter(|c: &Contest| !c.cancelled)
            .ok_or(DomainError::NotFound("contest"))?;
        if matches!(board, Board::ContestTeams(_)) && !contest.spec.counting().team {
            return Err(DomainError::NotFound("team board").into());
        }
        Ok(Some(contest))
    }

    /// The top `limit` of a board with public identities.
    pub async fn leaderboard(&self, board: &Board, limit: u32) -> Result<BoardPage, crate::Error> {
        let contest = self.board_contest(board).await?;
        let mut standings = self.board_top(board, limit).await?;
        let mut is_final = false;
        if let Some(contest) = contest.filter(|c| c.settled.is_some()) {
            // The frozen result stands for the positions it holds.
            if let Some(result) = self.contest_result(&contest.id).await? {
                is_final = true;
                let frozen: Vec<boards::Ranked> = result
                    .positions
                    .iter()
                    .take(limit as usize)
                    .map(|w| boards::Ranked {
                        position: w.position,
                        rank: w.rank,
                        standing: Standing {
                            id: w.id.clone(),
                            score: w.score,
                            reached_at: w.reached_at,
                        },
                    })
                    .collect();
                let rest = standings.split_off(frozen.len().min(standings.len()));
                standings = frozen;
                standings.extend(rest);
            }
        }
        let ids: Vec<String> = standings.iter().map(|r| r.standing.id.clone()).collect();
        let names = self.names(board, &ids).await?;
        let entries = standings
            .into_iter()
            .zip(names)
            .map(|(r, name)| BoardRow {
                position: r.position,
                rank: r.rank,
                name,
                score: r.standing.score,
                reached_at: r.standing.reached_at,
            })
            .collect();
        Ok(BoardPage {
            board: board.to_string(),
            is_final,
            entries,
        })
    }

    /// The frozen result of a contest, if settlement took it.
    pub async fn contest_result(&self, id: &str) -> Result<Option<ContestResult>, StoreError> {
        self.get_item(&keys::contest_result(id), true)
            .await?
            .map(from_item)
            .transpose()
    }

    /// My rank and score on a board, with up to `neighbours` entries on each side.
    pub async fn my_standing(
        &self,
        board: &Board,
        user: &UserId,
        neighbours: u32,
    ) -> Result<MyStanding, crate::Error> {
        let contest = self.board_contest(board).await?;
        let unranked = |team: Option<String>| MyStanding {
            board: board.to_string(),
            ranked: false,
            rank: None,
            score: None,
            reached_at: None,
            team,
            above: vec![],
            below: vec![],
        };
        // Whose entry: mine, or my team's.
        let (id, score, team_name) = match board {
            Board::ContestTeams(contest_id) => {
                let entry: Option<BoardEntry> = self.read_one(&keys::contest_entry(user, contest_id)).await?;
                let Some(team_id) = entry.and_then(|e| e.team) else {
                    return Ok(unranked(None));
                };
                let Some(team) = self.read_one::<Team>(&keys::team(contest_id, &team_id)).await? else {
                    return Ok(unranked(None));
                };
                (team_id, team.score(), Some(team.name))
            }
            Board::Contest(contest_id) => {
                let entry: Option<BoardEntry> = self.read_one(&keys::contest_entry(user, contest_id)).await?;
                (user.to_string(), entry.unwrap_or_default().score(), None)
            }
            _ => {
                let entry: Option<BoardEntry> = self.read_one(&keys::score(user, board)).await?;
                (user.to_string(), entry.unwrap_or_default().score(), None)
            }
        };
        let Some(reached_at) = score.reached_at.filter(|_| score.ranked()) else {
            return Ok(unranked(team_name));
        };
        let frozen_rank = match contest.filter(|c| c.settled.is_some()) {
            Some(c) => self
                .contest_result(&c.id)
                .await?
                .and_then(|r| r.positions.into_iter().find(|w| w.id == id).map(|w| w.rank)),
            None => None,
        };
        let key = boards::sort_key(score.score, reached_at, &id);
        let (rank, (above, below)) = tokio::try_join!(
            async {
                match frozen_rank {
                    Some(rank) => Ok(rank),
                    None => self.board_rank(board, score.score).await,
                }
            },
            self.board_neighbours(board, &key, neighbours)
        )?;
        let ids: Vec<String> = above.iter().chain(below.iter()).map(|s| s.id.clone()).collect();
        let mut names = self.names(board, &ids).await?.into_iter();
        let mut side = |standings: Vec<Standing>| -> Vec<Neighbour> {
            standings
                .into_iter()
                .map(|s| Neighbour {
                    name: names.next().unwrap_or_default(),
                    score: s.score,
                    reached_at: s.reached_at,
                })
                .collect()
        };
        let above = side(above);
        let below = side(below);
        Ok(MyStanding {
            board: board.to_string(),
            ranked: true,
            rank: Some(rank),
            score: Some(score.score),
            reached_at: Some(reached_at),
            team: team_name,
            above,
            below,
        })
    }

    /// Public names of board entries, in order: members' public identities, or team names.
    async fn names(&self, board: &Board, ids: &[String]) -> Result<Vec<String>, crate::Error> {
        let key_of = |id: &String| -> Result<Key, crate::Error> {
            Ok(match board {
                Board::ContestTeams(contest) => keys::team(contest, id),
                _ => keys::profile(&UserId::parse(id)?),
            })
        };
        let wanted: Vec<Key> = ids.iter().map(key_of).collect::<Result<_, _>>()?;
        let mut unique = wanted.clone();
        unique.sort_by(|a, b| (&a.pk, &a.sk).cmp(&(&b.pk, &b.sk)));
        unique.dedup();
        let found = self.read_items(unique).await?;
        ids.iter()
            .zip(wanted)
            .map(|(id, key)| {
                let item = found.get(&key).cloned();
                Ok(match board {
                    Board::ContestTeams(_) => item
                        .map(from_item::<Team>)
                        .transpose()?
                        .map(|t| t.name)
                        .unwrap_or_default(),
                    _ => {
                        let profile: Profile = item.map(from_item).transpose()?.unwrap_or_default();
                        members::public_name(&UserId::parse(id)?, &profile)
                    }
                })
            })
            .collect()
    }
}
