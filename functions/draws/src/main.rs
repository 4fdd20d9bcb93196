//! Lambda entry point: wiring only. The handler is `draws::handle`.

use std::convert::Infallible;

use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let app = shared::App::init().await?;
    let app = &app;
    run(service_fn(move |req| async move {
        Ok::<_, Infallible>(draws::handle(app, req).await)
    }))
    .await
}
