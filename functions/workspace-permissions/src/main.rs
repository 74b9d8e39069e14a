use std::convert::Infallible;

use lambda_http::{Error, Request, run, service_fn};
use shared::Context;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let ctx = Context::from_env().await?;
    run(service_fn(|request: Request| {
        let ctx = &ctx;
        async move { Ok::<_, Infallible>(workspace_permissions_function::handle(ctx, request).await) }
    }))
    .await
}
