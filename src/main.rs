//! The command line: serve, check-config, keys {list, rotate}.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use slack_oidc_bridge::config::{Config, LogFormat};
use slack_oidc_bridge::keys::{KeyFile, KeyState};

#[derive(Parser)]
#[command(
    name = "slack-oidc-bridge",
    version,
    about = "An OpenID Provider that signs people in with Slack"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge.
    Serve {
        #[arg(long, env = "BRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file (and the key file, if there is one).
    CheckConfig {
        #[arg(long, env = "BRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List the keys: kid, algorithm, state, dates.
    List {
        #[arg(long, env = "BRIDGE_CONFIG")]
        config: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Promote the published `next` key to signing, retire the active one,
    /// and publish a fresh `next`.
    Rotate {
        #[arg(long, env = "BRIDGE_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::CheckConfig { config } => check_config(&config),
        Command::Keys {
            command: KeysCommand::List { config, json },
        } => keys_list(&config, json),
        Command::Keys {
            command: KeysCommand::Rotate { config },
        } => keys_rotate(&config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
}

fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
}

fn serve(path: &Path) -> anyhow::Result<()> {
    let config = load(path)?;
    init_tracing(&config);
    actix_web::rt::System::new().block_on(slack_oidc_bridge::serve(config))
}

fn check_config(path: &Path) -> anyhow::Result<()> {
    let config = load(path)?;
    let key_path = KeyFile::path_in(&config.keys.dir);
    if key_path.exists() {
        KeyFile::load(&key_path)?;
    }
    println!(
        "{}: OK ({} client{}, store {:?}, issuer {})",
        path.display(),
        config.clients.len(),
        if config.clients.len() == 1 { "" } else { "s" },
        config.store.backend,
        config.issuer
    );
    Ok(())
}

fn keys_list(path: &Path, json: bool) -> anyhow::Result<()> {
    let config = load(path)?;
    let file = KeyFile::load_or_create(&config.keys.dir)?;
    if json {
        let rows: Vec<_> = file
            .keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "kid": k.kid, "alg": k.alg.as_str(), "state": k.state.as_str(),
                    "created_at": k.created_at, "activated_at": k.activated_at, "retired_at": k.retired_at,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<44}  {:<6}  {:<8}  {:<20}",
        "KID", "ALG", "STATE", "CREATED (UTC)"
    );
    for k in &file.keys {
        println!(
            "{:<44}  {:<6}  {:<8}  {:<20}",
            k.kid,
            k.alg.as_str(),
            k.state.as_str(),
            utc(k.created_at)
        );
    }
    Ok(())
}

fn keys_rotate(path: &Path) -> anyhow::Result<()> {
    let config = load(path)?;
    let mut file = KeyFile::load_or_create(&config.keys.dir)?;
    file.rotate().map_err(anyhow::Error::msg)?;
    file.save(&config.keys.dir)?;
    let active = file
        .keys
        .iter()
        .find(|k| k.state == KeyState::Active)
        .map(|k| k.kid.as_str())
        .unwrap_or("?");
    println!("rotated: {active} now signs; restart or reload running servers to pick it up");
    Ok(())
}

fn utc(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}
