//! Business metrics in CloudWatch Embedded Metric Format (EMF).
//!
//! The store counts what it committed (a check-in, points by reason, a spin…) into the recorder of
//! the request or job it runs in ([`scope`]); the handler wrapper writes the recorder as EMF lines
//! once the answer is known. Each line is its own top-level JSON object on stdout, written
//! directly, never through the log formatter (a JSON formatter would wrap it in `message`, and
//! CloudWatch would silently not see the metric). Outside a scope (tests of the store, tools)
//! nothing is recorded. Replays and refusals record nothing: only commits count.
//!
//! Namespace [`NAMESPACE`]; every metric has the dimension `Stack` (the stack's name), and some a
//! second one ([`Metric::dimension`]). The dashboard in template.yaml shows every metric here.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;

pub const NAMESPACE: &str = "CampaignFunctions";

/// What is counted. Names are CloudWatch metric names: changing one breaks dashboards and alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// Requests a handler answered, and those answered 5xx (the rollback alarm's ratio).
    Requests,
    ServerErrors,
    CheckIns,
    MakeUps,
    /// Holds placed, captured and released (a release at expiry included).
    Holds,
    HoldCaptures,
    HoldReleases,
    Reversals,
    Spins,
    ShareBonuses,
    ContestsSettled,
    ContestPrizes,
    ReferralClaims,
    ReferralsQualified,
    ReferralRewards,
    /// Points credited and debited, by ledger reason (dimension `Reason`).
    PointsEarned,
    PointsSpent,
    /// Draw prizes won, by kind (dimension `PrizeKind`).
    Prizes,
    /// Problem answers, by problem `type` (dimension `ProblemType`).
    Errors,
}

impl Metric {
    pub const ALL: [Metric; 19] = [
        Metric::Requests,
        Metric::ServerErrors,
        Metric::CheckIns,
        Metric::MakeUps,
        Metric::Holds,
        Metric::HoldCaptures,
        Metric::HoldReleases,
        Metric::Reversals,
        Metric::Spins,
        Metric::ShareBonuses,
        Metric::ContestsSettled,
        Metric::ContestPrizes,
        Metric::ReferralClaims,
        Metric::ReferralsQualified,
        Metric::ReferralRewards,
        Metric::PointsEarned,
        Metric::PointsSpent,
        Metric::Prizes,
        Metric::Errors,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Requests => "Requests",
            Metric::ServerErrors => "ServerErrors",
            Metric::CheckIns => "CheckIns",
            Metric::MakeUps => "MakeUps",
            Metric::Holds => "Holds",
            Metric::HoldCaptures => "HoldCaptures",
            Metric::HoldReleases => "HoldReleases",
            Metric::Reversals => "Reversals",
            Metric::Spins => "Spins",
            Metric::ShareBonuses => "ShareBonuses",
            Metric::ContestsSettled => "ContestsSettled",
            Metric::ContestPrizes => "ContestPrizes",
            Metric::ReferralClaims => "ReferralClaims",
            Metric::ReferralsQualified => "ReferralsQualified",
            Metric::ReferralRewards => "ReferralRewards",
            Metric::PointsEarned => "PointsEarned",
            Metric::PointsSpent => "PointsSpent",
            Metric::Prizes => "Prizes",
            Metric::Errors => "Errors",
        }
    }

    /// The dimension besides `Stack`, for metrics counted per kind.
    pub fn dimension(self) -> Option<&'static str> {
        match self {
            Metric::PointsEarned | Metric::PointsSpent => Some("Reason"),
            Metric::Prizes => Some("PrizeKind"),
            Metric::Errors => Some("ProblemType"),
            _ => None,
        }
    }
}

/// The counts of one request or job.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recorder {
    counts: BTreeMap<(Metric, Option<String>), u64>,
}

/// A second dimension and its value.
type Group<'a> = (&'static str, &'a str);

tokio::task_local! {
    static RECORDER: RefCell<Recorder>;
}

impl Recorder {
    /// Adds `n` to `metric` (with its dimension's value, for a metric that has one).
    pub fn add(&mut self, metric: Metric, value: Option<&str>, n: u64) {
        let key = (metric, metric.dimension().and(value).map(str::to_owned));
        let count = self.counts.entry(key).or_default();
        *count = count.saturating_add(n);
    }

    pub fn get(&self, metric: Metric, value: Option<&str>) -> u64 {
        self.counts
            .get(&(metric, value.map(str::to_owned)))
            .copied()
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The EMF lines: one for the metrics without a second dimension, one per (dimension, value).
    pub fn lines(&self, stack: &str, timestamp_ms: i64) -> Vec<String> {
        let mut groups: BTreeMap<Option<Group<'_>>, Vec<(Metric, u64)>> = BTreeMap::new();
        for ((metric, value), count) in &self.counts {
            let group = match (metric.dimension(), value) {
                (Some(dimension), Some(value)) => Some((dimension, value.as_str())),
                _ => None,
            };
            groups.entry(group).or_default().push((*metric, *count));
        }
        groups
            .into_iter()
            .map(|(group, metrics)| {
                let mut dimensions = vec!["Stack"];
                let mut line = serde_json::Map::new();
                line.insert("Stack".into(), stack.into());
                if let Some((dimension, value)) = group {
                    dimensions.push(dimension);
                    line.insert(dimension.into(), value.into());
                }
                let definitions: Vec<serde_json::Value> = metrics
                    .iter()
                    .map(|(metric, _)| serde_json::json!({ "Name": metric.name(), "Unit": "Count" }))
                    .collect();
                for (metric, count) in &metrics {
                    line.insert(metric.name().into(), (*count).into());
                }
                line.insert(
                    "_aws".into(),
                    serde_json::json!({
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": NAMESPACE,
                            "Dimensions": [dimensions],
                            "Metrics": definitions,
                        }],
                    }),
                );
                serde_json::Value::Object(line).to_string()
            })
            .collect()
    }

    /// Writes the lines to stdout, each as its own line, in one write (lines of concurrent
    /// requests never interleave).
    pub fn write_to_stdout(&self, stack: &str) {
        if self.is_empty() {
            return;
        }
        let now = chrono::Utc::now().timestamp_millis();
        let mut text = String::new();
        for line in self.lines(stack, now) {
            text.push_str(&line);
            text.push('\n');
        }
        let mut out = std::io::stdout().lock();
        // A metric is not worth failing a request for.
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
}

/// Runs `work` with a recorder of its own; answers its output and what it recorded.
pub async fn scope<F: Future>(work: F) -> (F::Output, Recorder) {
    RECORDER
        .scope(RefCell::new(Recorder::default()), async move {
            let output = work.await;
            (output, RECORDER.with(RefCell::take))
        })
        .await
}

/// A value's serde name as a dimension value (`checkin`, `coupon`).
pub fn label<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "other".to_owned(),
    }
}

/// Counts `n` of `metric` in the current scope (nothing outside one).
pub fn count(metric: Metric, n: u64) {
    record(metric, None, n);
}

/// Counts `n` of `metric` for one value of its dimension.
pub fn count_by(metric: Metric, value: &str, n: u64) {
    record(metric, Some(value), n);
}

fn record(metric: Metric, value: Option<&str>, n: u64) {
    if n == 0 {
        return;
    }
    let _ = RECORDER.try_with(|recorder| recorder.borrow_mut().add(metric, value, n));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scope_collects_what_its_work_counted_and_nothing_leaks_outside() {
        count(Metric::CheckIns, 1); // outside any scope: dropped
        let ((), recorded) = scope(async {
            count(Metric::CheckIns, 1);
            count(Metric::CheckIns, 2);
            count_by(Metric::PointsEarned, "checkin", 10);
            count_by(Metric::PointsEarned, "milestone", 5);
            count(Metric::Spins, 0);
            tokio::task::yield_now().await;
            count_by(Metric::PointsEarned, "checkin", 1);
        })
        .await;
        assert_eq!(recorded.get(Metric::CheckIns, None), 3);
        assert_eq!(recorded.get(Metric::PointsEarned, Some("checkin")), 11);
        assert_eq!(recorded.get(Metric::PointsEarned, Some("milestone")), 5);
        assert_eq!(recorded.get(Metric::Spins, None), 0);
        let ((), again) = scope(async {}).await;
        assert!(again.is_empty());
    }

    #[test]
    fn lines_follow_the_embedded_metric_format() {
        let mut recorder = Recorder::default();
        recorder.add(Metric::CheckIns, None, 1);
        recorder.add(Metric::Requests, None, 1);
        recorder.add(Metric::PointsEarned, Some("checkin"), 10);
        recorder.add(Metric::PointsSpent, Some("checkin"), 3);
        recorder.add(Metric::Errors, Some("insufficient-points"), 1);
        let lines: Vec<serde_json::Value> = recorder
            .lines("prod", 1_795_420_800_000)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        for line in &lines {
            let directive = &line["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(line["_aws"]["Timestamp"], 1_795_420_800_000_i64);
            assert_eq!(directive["Namespace"], NAMESPACE);
            assert_eq!(line["Stack"], "prod");
            // Every dimension and every metric named in the directive is a member of the line.
            for dimension in directive["Dimensions"][0].as_array().unwrap() {
                assert!(line[dimension.as_str().unwrap()].is_string(), "{line}");
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                assert_eq!(metric["Unit"], "Count");
                assert!(line[metric["Name"].as_str().unwrap()].is_u64(), "{line}");
            }
        }
        let plain = &lines[0];
        assert_eq!(
            plain["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Stack"]])
        );
        assert_eq!(
            (plain["CheckIns"].as_u64(), plain["Requests"].as_u64()),
            (Some(1), Some(1))
        );
        let reason = lines.iter().find(|l| l["Reason"] == "checkin").unwrap();
        assert_eq!(
            reason["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Stack", "Reason"]])
        );
        assert_eq!(
            (reason["PointsEarned"].as_u64(), reason["PointsSpent"].as_u64()),
            (Some(10), Some(3))
        );
        let problem = lines
            .iter()
            .find(|l| l["ProblemType"] == "insufficient-points")
            .unwrap();
        assert_eq!(problem["Errors"], 1);
        assert!(problem.get("CheckIns").is_none());
    }

    #[test]
    fn a_value_for_a_metric_without_a_dimension_is_ignored() {
        let mut recorder = Recorder::default();
        recorder.add(Metric::Spins, Some("stray"), 2);
        assert_eq!(recorder.get(Metric::Spins, None), 2);
        assert_eq!(recorder.lines("s", 0).len(), 1);
    }

    #[test]
    fn every_metric_is_listed_once_with_a_distinct_name() {
        let names: std::collections::BTreeSet<_> = Metric::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), Metric::ALL.len());
    }
}
