use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    run(service_fn(|request: Request| async move {
        Ok::<_, std::convert::Infallible>(schema_function::handle(request).await)
    }))
    .await
}
