use std::net::SocketAddr;
use std::sync::Arc;

use local_api::{Router, serve};
use shared::Context;
use tokio::net::TcpListener;

struct Options {
    addr: SocketAddr,
    template: String,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        addr: ([127, 0, 0, 1], 3000).into(),
        template: "template.yaml".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--addr" => options.addr = value.parse().map_err(|e| format!("--addr {value}: {e}"))?,
            "--template" => options.template = value,
            other => {
                return Err(format!(
                    "unknown option {other}; use --addr HOST:PORT --template FILE"
                ));
            }
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let options = options()?;
    let router = Arc::new(Router::from_template(&std::fs::read_to_string(
        &options.template,
    )?)?);
    let ctx = Arc::new(Context::from_env().await?);
    let listener = TcpListener::bind(options.addr).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    serve(listener, ctx, router).await?;
    Ok(())
}
