//! The template's `Schedule` events, run locally: each scheduled function fires at its rate with
//! the event EventBridge would send (`events/schedules/`), or once at will with a chosen "now"
//! (`detail.now`, honoured when the dev clock is on).

use std::sync::Arc;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use shared::App;

use crate::registry::{self, ScheduledFunction};
use crate::template::Schedule;

/// The scheduled event EventBridge sends, at `time`, with `now` in `detail` when given.
pub fn scheduled_event(function: &str, time: DateTime<Utc>, now: Option<DateTime<Utc>>) -> EventBridgeEvent {
    let detail = match now {
        Some(now) => serde_json::json!({ "now": now.to_rfc3339() }),
        None => serde_json::json!({}),
    };
    let event = serde_json::json!({
        "version": "0",
        "id": ulid::Ulid::from_datetime(time.into()).to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": "us-east-1",
        "resources": [format!("arn:aws:events:us-east-1:123456789012:rule/{function}")],
        "detail": detail,
    });
    serde_json::from_value(event).expect("a scheduled event")
}

/// Fires one scheduled function once.
pub async fn fire(app: &App, function: &str, event: EventBridgeEvent) -> Result<serde_json::Value, String> {
    let job = registry::scheduled()
        .into_iter()
        .find(|f| f.logical_id == function)
        .map(|f: ScheduledFunction| f.job)
        .ok_or_else(|| format!("no scheduled function {function}"))?;
    job(app, event).await
}

/// Fires every schedule at its rate, forever (the first time one period after the start).
pub fn spawn(app: Arc<App>, schedules: Vec<Schedule>) {
    for schedule in schedules {
        let app = app.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(schedule.every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let event = scheduled_event(&schedule.function, Utc::now(), None);
                match fire(&app, &schedule.function, event).await {
                    Ok(report) => tracing::info!(function = %schedule.function, %report, "scheduled run"),
                    Err(err) => tracing::error!(function = %schedule.function, %err, "scheduled run failed"),
                }
            }
        });
    }
}
