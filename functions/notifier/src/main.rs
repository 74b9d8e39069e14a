//! Delivers the outbox: invoked by the table's DynamoDB Stream (INSERTs of outbox items only,
//! by the event source mapping's filter), it sends each notification by SMTP and answers the
//! records that failed (partial batch response) so that they are retried.
//!
//! `SMTP_HOST`, `SMTP_PORT`, `SENDER_ADDRESS`, and `SMTP_SECRET_ARN`: a Secrets Manager secret
//! `{"username": …, "password": …}` (Amazon SES SMTP credentials). `HOMEPORT_URL` is where
//! the links in the mails point.

use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use shared::notify::{Links, Mailer, SmtpConfig};
use shared::store::Store;

/// The SMTP login kept in the secret named by `SMTP_SECRET_ARN`, if one is configured.
async fn credentials() -> Result<Option<(String, String)>, Error> {
    let Ok(arn) = std::env::var("SMTP_SECRET_ARN") else {
        return Ok(None);
    };
    if arn.is_empty() {
        return Ok(None);
    }
    let config = aws_config::load_from_env().await;
    let secret = aws_sdk_secretsmanager::Client::new(&config)
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await?;
    let text = secret
        .secret_string()
        .ok_or("the SMTP secret has no string value")?;
    let value: Value = serde_json::from_str(text)?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("the SMTP secret has no {name:?}"))
    };
    Ok(Some((field("username")?, field("password")?)))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let store = Store::from_env().await?;
    let config = SmtpConfig {
        credentials: credentials().await?,
        ..SmtpConfig::from_env()?
    };
    let mailer = Mailer::new(&config)?;
    let links = Links::from_env();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Event>| {
        let (store, mailer, links) = (&store, &mailer, &links);
        async move { Ok::<_, Error>(notifier_function::handle(store, mailer, links, &event.payload).await) }
    }))
    .await
}
