//! Which handler serves which function of `template.yaml`. A test checks that this registry and
//! the template name the same functions and routes.

use std::future::Future;
use std::pin::Pin;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use shared::App;
use shared::http::{Request, Response};

pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Response> + Send + 'a>>;
pub type Handler = for<'a> fn(&'a App, Request) -> HandlerFuture<'a>;

/// An HTTP function: its logical id in template.yaml, its routes, its handler.
pub struct Function {
    pub logical_id: &'static str,
    pub routes: &'static [&'static str],
    pub handler: Handler,
}

fn points(app: &App, req: Request) -> HandlerFuture<'_> {
    Box::pin(points::handle(app, req))
}

fn checkin(app: &App, req: Request) -> HandlerFuture<'_> {
    Box::pin(checkin::handle(app, req))
}

fn points_admin(app: &App, req: Request) -> HandlerFuture<'_> {
    Box::pin(points_admin::handle(app, req))
}

fn members(app: &App, req: Request) -> HandlerFuture<'_> {
    Box::pin(members::handle(app, req))
}

fn leaderboards(app: &App, req: Request) -> HandlerFuture<'_> {
    Box::pin(leaderboards::handle(app, req))
}

fn contests(app: &App, req: Request) -> HandlerFuture<'_> {
    Box::pin(contests::handle(app, req))
}

fn referrals(app: &App, req: Request) -> HandlerFuture<'_> {
    Box::pin(referrals::handle(app, req))
}

fn draws(app: &App, req: Request) -> HandlerFuture<'_> {
    Box::pin(draws::handle(app, req))
}

/// What a scheduled function answered (its JSON result, or its `Diagnostic` as text).
pub type JobFuture<'a> = Pin<Box<dyn Future<Output = Result<serde_json::Value, String>> + Send + 'a>>;
pub type Job = for<'a> fn(&'a App, EventBridgeEvent) -> JobFuture<'a>;

/// A function run by a `Schedule` event of the template.
pub struct ScheduledFunction {
    pub logical_id: &'static str,
    pub job: Job,
}

fn settle_contests(app: &App, event: EventBridgeEvent) -> JobFuture<'_> {
    Box::pin(async move {
        let deadline = std::time::Instant::now() + settle_contests::LOCAL_RUN;
        match settle_contests::handle(app, event, deadline).await {
            Ok(report) => serde_json::to_value(report).map_err(|e| e.to_string()),
            Err(diagnostic) => Err(format!("{}: {}", diagnostic.error_type, diagnostic.error_message)),
        }
    })
}

pub fn scheduled() -> Vec<ScheduledFunction> {
    vec![ScheduledFunction {
        logical_id: "SettleContestsFunction",
        job: settle_contests,
    }]
}

pub fn functions() -> Vec<Function> {
    vec![
        Function {
            logical_id: "PointsFunction",
            routes: points::ROUTES,
            handler: points,
        },
        Function {
            logical_id: "CheckinFunction",
            routes: checkin::ROUTES,
            handler: checkin,
        },
        Function {
            logical_id: "PointsAdminFunction",
            routes: points_admin::ROUTES,
            handler: points_admin,
        },
        Function {
            logical_id: "MembersFunction",
            routes: members::ROUTES,
            handler: members,
        },
        Function {
            logical_id: "LeaderboardsFunction",
            routes: leaderboards::ROUTES,
            handler: leaderboards,
        },
        Function {
            logical_id: "ContestsFunction",
            routes: contests::ROUTES,
            handler: contests,
        },
        Function {
            logical_id: "ReferralsFunction",
            routes: referrals::ROUTES,
            handler: referrals,
        },
        Function {
            logical_id: "DrawsFunction",
            routes: draws::ROUTES,
            handler: draws,
        },
    ]
}

/// The handler that serves an API Gateway route key such as `GET /v1/points`.
pub fn handler_for(route_key: &str) -> Option<Handler> {
    functions()
        .into_iter()
        .find(|f| f.routes.contains(&route_key))
        .map(|f| f.handler)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::template::Template;

    #[test]
    fn registry_and_template_name_the_same_routes() {
        let template = Template::load(&crate::repo_root().join("template.yaml")).unwrap();
        let from_template: BTreeSet<(String, String)> = template
            .routes()
            .unwrap()
            .iter()
            .map(|r| (r.function.clone(), r.key()))
            .collect();
        let from_registry: BTreeSet<(String, String)> = functions()
            .iter()
            .flat_map(|f| {
                f.routes
                    .iter()
                    .map(|r| (f.logical_id.to_owned(), (*r).to_owned()))
            })
            .collect();
        assert_eq!(from_template, from_registry);
        let scheduled: BTreeSet<String> = template
            .schedules()
            .unwrap()
            .into_iter()
            .map(|s| s.function)
            .collect();
        let registered: BTreeSet<String> = super::scheduled()
            .iter()
            .map(|s| s.logical_id.to_owned())
            .collect();
        assert_eq!(scheduled, registered);
    }
}
