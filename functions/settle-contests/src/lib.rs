//! `functions/settle-contests`: the every-minute scheduled job, run by an EventBridge schedule
//! (and locally by the local API at the template's rate, or at will with
//! `ops settle-contests --now`). Each run does two independent things:
//!
//! 1. The referral reconciler: every referrer step left due by an interrupted request (a payment
//!    after a qualifying action, an undo after a revoke) runs once (see `shared::store`
//!    `referral_rewards`); at most [`RECONCILE_LIMIT`] a run.
//! 2. Contest settlement: every contest past its end and grace is frozen once, each prize paid
//!    once through the ledger, the contest marked settled (see `shared::store` settlement). A run
//!    that nears its deadline checkpoints; the next run continues.
//!
//! Failures are `Diagnostic`s (after both parts ran), so the schedule's retry policy and the
//! on-failure destination see them.

use std::time::{Duration, Instant};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use lambda_runtime::{Context, Diagnostic};
use serde::Serialize;
use shared::App;
use shared::store::{ContestSettlement, ReconcileReport, StoreError};

/// Time kept back from the invocation's deadline: the last payment and the checkpoint fit in it.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// Longest run when the invocation has no deadline (local runs).
pub const LOCAL_RUN: Duration = Duration::from_secs(240);

/// Referrer steps one run takes on at most (the rest wait for the next minute).
pub const RECONCILE_LIMIT: usize = 500;

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub now: DateTime<Utc>,
    pub referrals: ReconcileReport,
    pub contests: Vec<ContestSettlement>,
}

/// When a run must stop: the invocation's deadline less [`DEADLINE_MARGIN`].
pub fn deadline_of(context: &Context) -> Instant {
    let now = Instant::now();
    let epoch_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    match context.deadline {
        0 => now + LOCAL_RUN,
        deadline => now + Duration::from_millis(deadline.saturating_sub(epoch_ms)),
    }
}

/// The instant a run settles at: the wall clock, or the event's `detail.now` when the dev clock
/// is on (local runs with a chosen "now").
pub fn now_of(app: &App, event: &EventBridgeEvent) -> Result<DateTime<Utc>, Diagnostic> {
    let chosen = event.detail.get("now").and_then(|v| v.as_str());
    match chosen.filter(|_| app.config.dev_clock) {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| Diagnostic {
                error_type: "InvalidEvent".into(),
                error_message: "detail.now must be an RFC 3339 instant".into(),
            }),
        None => Ok(Utc::now()),
    }
}

/// Settles what is due. `deadline` is when the invocation ends.
pub async fn handle(app: &App, event: EventBridgeEvent, deadline: Instant) -> Result<Report, Diagnostic> {
    let now = now_of(app, &event)?;
    let stop_at = deadline.checked_sub(DEADLINE_MARGIN).unwrap_or_else(Instant::now);
    // Every DynamoDB call ends before the invocation does.
    let app = app.until(deadline.checked_sub(Duration::from_secs(2)).unwrap_or(stop_at));
    // What the run paid and settled is written as business metrics (EMF), like a request's.
    let ((referrals, contests), recorded) = shared::metrics::scope(async {
        let referrals = app.store.reconcile_referrals(now, RECONCILE_LIMIT).await;
        (referrals, app.store.settle_due(now, stop_at).await)
    })
    .await;
    if let Some(stack) = &app.config.metrics_stack {
        recorded.write_to_stdout(stack);
    }
    match (referrals, contests) {
        (Ok(referrals), Ok(contests)) => {
            tracing::info!(?referrals, settled = ?contests, "scheduled run");
            Ok(Report {
                now,
                referrals,
                contests,
            })
        }
        (Err(err), _) | (_, Err(err)) => {
            let error_type = match &err {
                shared::Error::Store(StoreError::Unavailable(_) | StoreError::Contention(_)) => {
                    "StoreUnavailable"
                }
                shared::Error::Store(StoreError::Internal(_)) => "StoreFailure",
                shared::Error::Domain(_) => "DomainError",
            };
            tracing::error!(error = %err, "scheduled run failed");
            Err(Diagnostic {
                error_type: error_type.into(),
                error_message: err.to_string(),
            })
        }
    }
}
