//! Commands: `serve`, `check`, `send-test`, `healthcheck`, and the `sink` development upstream.
//! `anyhow` lives here, at the binary's edge; the library speaks typed errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod admin;
mod dev;
mod trust;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use hookgate::config::Config;

/// Exit code for a configuration that does not load (EX_USAGE, like `nginx -t`).
const EXIT_BAD_CONFIG: u8 = 64;

/// hookgate: verify, dedupe and durably queue webhooks, then deliver them upstream.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "HOOKGATE_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(short, long, env = "HOOKGATE_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file and exit (0 good, 64 bad).
    Check {
        #[arg(short, long, env = "HOOKGATE_CONFIG")]
        config: PathBuf,
    },
    /// Sign a sample event exactly as the route's provider would and send it to the gateway.
    SendTest {
        #[arg(short, long, env = "HOOKGATE_CONFIG")]
        config: PathBuf,
        /// Route name.
        #[arg(long)]
        route: String,
        /// JSON body to send instead of the sample.
        #[arg(long)]
        payload: Option<PathBuf>,
        /// Gateway URL (default: the configured listener, host `localhost`).
        #[arg(long)]
        url: Option<String>,
        /// Verify the gateway's certificate against this PEM bundle (default: trust exactly
        /// the certificate in `server.tls.cert`).
        #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
        ca: Option<PathBuf>,
        /// Do not verify the gateway's certificate at all.
        #[arg(long)]
        insecure: bool,
    },
    /// Dead-letter queue: list, show, replay, purge (through the admin API).
    Dlq {
        #[arg(short, long, env = "HOOKGATE_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(flatten)]
        target: admin::Target,
        #[command(subcommand)]
        op: admin::Dlq,
    },
    /// Recent delivery attempts of a route: status, latency, first 4 KB of the answer.
    Deliveries {
        #[arg(short, long, env = "HOOKGATE_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        target: admin::Target,
        #[arg(long)]
        route: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Resume a route's suspended upstream(s) now.
    Resume {
        #[arg(short, long, env = "HOOKGATE_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        target: admin::Target,
        #[arg(long)]
        route: String,
        /// One upstream of a fan-out route.
        #[arg(long)]
        upstream: Option<String>,
    },
    /// Exit 0 when the admin `/healthz` answers 200 (for container health checks).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:9090/healthz")]
        url: String,
    },
    /// Development upstream: print every request it receives and answer 200.
    Sink {
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
    },
}

/// Runs the chosen command and maps failures to exit codes.
pub fn main(args: Args) -> ExitCode {
    // Held to the end: dropping it writes out the lines still queued.
    let _log = hookgate::logging::init(match args.log_format {
        LogFormat::Text => hookgate::logging::Format::Text,
        LogFormat::Json => hookgate::logging::Format::Json,
    });
    let config_path = match &args.command {
        Command::Serve { config }
        | Command::Check { config }
        | Command::SendTest { config, .. }
        | Command::Deliveries { config, .. }
        | Command::Resume { config, .. } => Some(config.clone()),
        Command::Dlq { config, .. } => config.clone(),
        _ => None,
    };
    let config = match config_path.as_deref().map(load).transpose() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = runtime().and_then(|rt| rt.block_on(dispatch(args.command, config)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    match Config::load(path) {
        Ok(c) => {
            c.warnings.iter().for_each(|w| tracing::warn!("{w}"));
            Ok(c)
        }
        Err(e) => {
            eprintln!("hookgate: bad config: {e}");
            Err(ExitCode::from(EXIT_BAD_CONFIG))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

async fn dispatch(command: Command, config: Option<Config>) -> anyhow::Result<()> {
    match (command, config) {
        (Command::Serve { .. }, Some(c)) => serve(c).await,
        (Command::Check { config }, Some(c)) => {
            println!("{}: ok ({} routes)", config.display(), c.routes.len());
            Ok(())
        }
        (
            Command::SendTest {
                route,
                payload,
                url,
                ca,
                insecure,
                ..
            },
            Some(c),
        ) => {
            let opts = dev::SendTest {
                route,
                payload,
                url,
                ca,
                insecure,
            };
            dev::send_test(&c, opts).await
        }
        (Command::Dlq { target, op, .. }, Some(c)) => admin::dlq(&c, &target, op).await,
        (
            Command::Deliveries {
                target,
                route,
                limit,
                ..
            },
            Some(c),
        ) => admin::deliveries(&c, &target, &route, limit).await,
        (
            Command::Resume {
                target,
                route,
                upstream,
                ..
            },
            Some(c),
        ) => admin::resume(&c, &target, &route, upstream.as_deref()).await,
        (Command::Healthcheck { url }, _) => dev::healthcheck(&url).await,
        (Command::Sink { listen }, _) => dev::sink(listen).await,
        (_, None) => bail!("this command needs --config"),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let ingress = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding server.listen {}", config.server.listen))?;
    let admin = tokio::net::TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("binding admin.listen {}", config.admin.listen))?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(hookgate::shutdown::on_signal(tx));
    let (reload_tx, reloads) = tokio::sync::mpsc::channel(1);
    tokio::spawn(hookgate::shutdown::on_hangup(
        config.source.clone(),
        reload_tx,
    ));
    hookgate::run_reloadable(config, hookgate::Listeners { ingress, admin }, rx, reloads).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Args::command().debug_assert();
    }
}
