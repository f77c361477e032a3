//! Scalefog with one app routed straight to a given upstream, for `bench/router.sh`.
//!
//! Routes are normally set by the deploy engine after it starts a container; a benchmark of
//! the router alone needs neither Docker nor a build, so this program builds the real
//! `Application` (the same code `scalefog serve` runs) in a temporary data dir and sets one
//! route on its route table, exactly as the deploy engine would.
//!
//! Usage: `router_bench <proxy_listen> <app> <upstream ip:port>[,<ip:port>…]` (several upstreams
//! are replicas, balanced as the deploy engine's would be); stops on SIGTERM/SIGINT.
//! Logging follows `SCALEFOG_LOG` (default `warn`: no access log lines, like `access_log off`).

use scalefog::config::Config;
use scalefog::routing::{Backends, Balance, Target};
use scalefog::startup::{Application, shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, app, upstream] = args.as_slice() else {
        anyhow::bail!("usage: router_bench <proxy_listen> <app> <upstream ip:port>[,<ip:port>…]");
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCALEFOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let dir = tempfile::tempdir()?;
    let mut config = Config::for_tests(&dir.path().join("data"));
    config.proxy_listen = listen.parse()?;
    let addrs = upstream
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<_>, _>>()?;
    // `SCALEFOG_BALANCE=rr` for round robin instead of the default (least connections), for
    // comparing the two (bench/balance.sh).
    let balance = match std::env::var("SCALEFOG_BALANCE").as_deref() {
        Ok("rr") => Balance::RoundRobin,
        _ => Balance::LeastConnections,
    };
    let backends = Backends::with_balance(addrs, balance)
        .ok_or_else(|| anyhow::anyhow!("no upstream given"))?;
    let application = Application::build(config).await?;
    application
        .services()
        .routes
        .set_app(app, Target::Serving(backends));
    println!(
        "routing http://{app}.localhost:{} to {upstream}",
        application.proxy_port()
    );
    application.run_until_stopped(shutdown_signal()).await
}
