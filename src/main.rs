//! The command line: serve, check-config, keys {list, rotate, revoke, prune},
//! sessions {list, revoke}.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use slack_oidc_bridge::config::{Config, LogFormat};
use slack_oidc_bridge::keys::{self, Algorithm, KeyFile, Policy};

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
    /// A Slack person's sessions and token families (Redis store only).
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// List the person's live sessions and token families: application,
    /// created, last used.
    List {
        #[arg(long, env = "BRIDGE_CONFIG")]
        config: PathBuf,
        /// The person as issued in `sub`, like T0123ABCD:U0456EFGH.
        #[arg(long)]
        user: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Sign the person out everywhere: end every session and token family,
    /// and send logout tokens to the applications that registered a
    /// back-channel logout URI.
    Revoke {
        #[arg(long, env = "BRIDGE_CONFIG")]
        config: PathBuf,
        /// The person as issued in `sub`, like T0123ABCD:U0456EFGH.
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List the keys: kid, algorithm, state, created, and when each moves on.
    List {
        #[arg(long, env = "BRIDGE_CONFIG")]
        config: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Make the published `next` keys sign, retire the active ones, and
    /// publish fresh `next` keys. Refused while a `next` key is younger than
    /// one JWKS cache lifetime.
    Rotate {
        #[arg(long, env = "BRIDGE_CONFIG")]
        config: PathBuf,
        /// Rotate even if applications may not have seen the next key yet.
        #[arg(long)]
        now: bool,
        /// Rotate only this algorithm's keys (RS256, ES256, EdDSA).
        #[arg(long)]
        alg: Option<Algorithm>,
    },
    /// Revoke a compromised key: it leaves the JWKS at once and, if it was
    /// signing, the next key takes over.
    Revoke {
        #[arg(long, env = "BRIDGE_CONFIG")]
        config: PathBuf,
        kid: String,
    },
    /// Remove retired keys whose tokens have all expired.
    Prune {
        #[arg(long, env = "BRIDGE_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::CheckConfig { config } => check_config(&config),
        Command::Keys { command } => keys_command(command),
        Command::Sessions { command } => sessions_command(command),
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
    // Colour only for a person at a terminal: log files, journald and
    // container logs get plain text (and NO_COLOR is honoured).
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
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
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(slack_oidc_bridge::provider::subject::check_sectors(
            &config,
            &slack_oidc_bridge::outbound::client()?,
        ))?;
    let key_path = KeyFile::path_in(&config.keys.dir);
    if key_path.exists() {
        let missing = KeyFile::load(&key_path)?.missing_algorithms(&config.keys.algorithms);
        for alg in missing {
            println!("note: {alg} has no key yet; the server creates one on start");
        }
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

fn sessions_command(command: SessionsCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let out = match command {
        SessionsCommand::List { config, user, json } => {
            runtime.block_on(slack_oidc_bridge::admin::list(load(&config)?, &user, json))?
        }
        SessionsCommand::Revoke { config, user } => {
            runtime.block_on(slack_oidc_bridge::admin::revoke(load(&config)?, &user))?
        }
    };
    println!("{out}");
    Ok(())
}

fn keys_command(command: KeysCommand) -> anyhow::Result<()> {
    let policy = |path: &Path| load(path).map(|c| Policy::from_config(&c));
    let out = match command {
        KeysCommand::List { config, json } => keys::admin::list(&policy(&config)?, json)?,
        KeysCommand::Rotate { config, now, alg } => {
            keys::admin::rotate(&policy(&config)?, now, alg)?
        }
        KeysCommand::Revoke { config, kid } => keys::admin::revoke(&policy(&config)?, &kid)?,
        KeysCommand::Prune { config } => keys::admin::prune(&policy(&config)?)?,
    };
    println!("{out}");
    Ok(())
}
