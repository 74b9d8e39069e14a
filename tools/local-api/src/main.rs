use std::net::SocketAddr;
use std::sync::Arc;

use local_api::streams::{self, StreamSource};
use local_api::{Router, serve};
use shared::Context;
use shared::notify::{Links, Mailer, SmtpConfig};
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const RESTART_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

struct Options {
    addr: SocketAddr,
    template: String,
    /// Feed the stream-triggered functions (the notifier) from the table's stream.
    streams: bool,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        addr: ([127, 0, 0, 1], 3000).into(),
        template: "template.yaml".into(),
        streams: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--streams" {
            options.streams = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--addr" => options.addr = value.parse().map_err(|e| format!("--addr {value}: {e}"))?,
            "--template" => options.template = value,
            other => {
                return Err(format!(
                    "unknown option {other}; use --addr HOST:PORT --template FILE [--streams]"
                ));
            }
        }
    }
    Ok(options)
}

/// Runs each stream event source of the template against the table, as Lambda's event source
/// mappings would: the notifier with `SMTP_HOST`/`SMTP_PORT` (MailDev locally). DynamoDB Local
/// serves the Streams API on the DynamoDB endpoint.
async fn start_streams(ctx: &Context, template: &str) -> Result<(), BoxError> {
    let config = aws_config::load_from_env().await;
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB_STREAMS")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL_DYNAMODB"))
        .ok();
    let mut streams_config = aws_sdk_dynamodbstreams::config::Builder::from(&config);
    streams_config.set_endpoint_url(endpoint);
    let streams_client = aws_sdk_dynamodbstreams::Client::from_conf(streams_config.build());
    for source in StreamSource::from_template(template)? {
        if source.function != "notifier" {
            return Err(format!("function {} is not linked into the local runner", source.function).into());
        }
        let mailer = Arc::new(Mailer::new(&SmtpConfig::from_env()?)?);
        let (store, links) = (ctx.store.clone(), Arc::new(Links::from_env()));
        let (dynamodb, table) = (ctx.store.client().clone(), ctx.store.table().to_owned());
        let streams_client = streams_client.clone();
        tokio::spawn(async move {
            let invoke = |event| {
                let (store, mailer, links) = (store.clone(), mailer.clone(), links.clone());
                async move { notifier_function::handle(&store, &mailer, &links, &event).await }
            };
            // A failed read of the stream starts the reader over from the starting position:
            // what was delivered is marked sent, so nothing is sent twice.
            loop {
                let run = streams::run(
                    source.clone(),
                    dynamodb.clone(),
                    streams_client.clone(),
                    table.clone(),
                    invoke,
                );
                if let Err(err) = run.await {
                    tracing::error!(%err, "reading the stream failed; starting over in {RESTART_DELAY:?}");
                }
                tokio::time::sleep(RESTART_DELAY).await;
            }
        });
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let options = options()?;
    let template = std::fs::read_to_string(&options.template)?;
    let router = Arc::new(Router::from_template(&template)?);
    let ctx = Arc::new(Context::from_env().await?);
    if options.streams {
        start_streams(&ctx, &template).await?;
    }
    let listener = TcpListener::bind(options.addr).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    serve(listener, ctx, router).await?;
    Ok(())
}
