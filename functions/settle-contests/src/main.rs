//! Lambda entry point: wiring only. The handler is `settle_contests::handle`.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let app = shared::App::init().await?;
    let app = &app;
    run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent>| async move {
            let deadline = settle_contests::deadline_of(&event.context);
            settle_contests::handle(app, event.payload, deadline).await
        },
    ))
    .await
}
