//! `chatgate`: the messenger channel gateway.

/// mimalloc: the webhook path allocates a little per request on every core; glibc malloc showed as ~11 % of the process in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "chatgate", version, about = "Messenger channel gateway for a contact centre")]
struct Cli {
    /// The accounts file.
    #[arg(long, global = true, env = "CHATGATE_CONFIG", default_value = "channels.toml")]
    config: PathBuf,
    /// Log format.
    #[arg(long, global = true, env = "CHATGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines (colours only on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, env = "CHATGATE_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the embedded queue keeps its file.
        #[arg(long, env = "CHATGATE_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        #[command(flatten)]
        limits: chatgate::commands::ServeLimits,
        /// Record every authentic webhook, redacted, into this folder (see `fixtures add`).
        #[arg(long, env = "CHATGATE_RECORD")]
        record: Option<PathBuf>,
    },
    /// Register, show or remove an account's webhook with its provider.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Turn recorded webhooks into fixtures.
    Fixtures {
        #[command(subcommand)]
        command: FixturesCommand,
    },
    /// Ask a running gateway's /healthz; exit 0 only when it answers 2xx (for container health checks).
    Health {
        #[arg(long, env = "CHATGATE_HEALTH_URL", default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
    /// Print the envelopes of one raw webhook body as JSON lines (no verification, no side effects).
    Normalize {
        #[arg(long)]
        channel: String,
        /// The account whose settings to use (default: the first of the channel).
        #[arg(long)]
        account: Option<String>,
        file: PathBuf,
    },
    /// Post recorded fixtures (`*.body` + `*.headers`) to a webhook URL, re-signed with the configured secret.
    Replay {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The webhook URL, e.g. http://127.0.0.1:8080/webhooks/telegram/support-bot
        #[arg(long)]
        to: String,
    },
    /// Print the JSON Schema of the event envelope (v1).
    Schema,
    /// Print the OpenAPI 3.1 document of the core API (committed as `schema/openapi.json`).
    Openapi,
    /// Web widget helpers.
    Widget {
        #[command(subcommand)]
        command: WidgetCommand,
    },
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Point the provider at URL (https) with the events chatgate models.
    Set {
        account: String,
        /// The public URL of the account's webhook route, e.g. https://chat.example.com/webhooks/telegram/support-bot
        #[arg(long)]
        url: String,
        /// Drop the updates the provider still holds (Telegram).
        #[arg(long)]
        drop_pending_updates: bool,
    },
    /// Show the registration as the provider sees it (URL, events, pending count, last error).
    Info { account: String },
    /// Remove the registration.
    Delete { account: String },
}

#[derive(Debug, Subcommand)]
enum FixturesCommand {
    /// Add a recorded webhook (`*.body` with its `*.headers`) as a fixture with its golden output for review.
    Add {
        file: PathBuf,
        #[arg(long)]
        channel: String,
        /// The fixture's name (default: after its first event's type).
        #[arg(long)]
        name: Option<String>,
        /// The fixtures folder.
        #[arg(long, default_value = "fixtures")]
        fixtures_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum WidgetCommand {
    /// Print the frame code (the script tag to paste into a site) of a web widget account.
    Snippet { account: String },
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    match cli.command {
        Command::Serve { listen, data_dir, limits, record } => {
            let token = std::env::var("CHATGATE_API_TOKEN").ok();
            chatgate::commands::serve(&cli.config, listen, &data_dir, token, limits, record.as_deref()).await
        }
        Command::Webhooks { command } => {
            use chatgate::webhooks::{Action, run};
            let (account, action) = match command {
                WebhooksCommand::Set { account, url, drop_pending_updates } => {
                    (account, Action::Set(chatgate_adapter::WebhookTarget { url, drop_pending_updates }))
                }
                WebhooksCommand::Info { account } => (account, Action::Info),
                WebhooksCommand::Delete { account } => (account, Action::Delete),
            };
            print!("{}", run(&cli.config, &account, action).await?);
            Ok(())
        }
        Command::Fixtures { command: FixturesCommand::Add { file, channel, name, fixtures_dir } } => {
            let added = chatgate::fixtures_cmd::add(&file, &channel, name.as_deref(), &fixtures_dir)?;
            print!("{}", chatgate::fixtures_cmd::summary(&added));
            Ok(())
        }
        Command::Health { url } => {
            println!("{}", chatgate::health::check(&url).await?);
            Ok(())
        }
        Command::Normalize { channel, account, file } => {
            chatgate::commands::normalize(&cli.config, &channel, account.as_deref(), &file)
        }
        Command::Replay { paths, to } => chatgate::commands::replay(&cli.config, &paths, &to).await,
        Command::Schema => {
            print!("{}", chatgate::commands::schema()?);
            Ok(())
        }
        Command::Openapi => {
            print!("{}", chatgate_server::openapi::json_text());
            Ok(())
        }
        Command::Widget { command: WidgetCommand::Snippet { account } } => {
            println!("{}", chatgate::commands::widget_snippet(&cli.config, &account)?);
            Ok(())
        }
    }
}
