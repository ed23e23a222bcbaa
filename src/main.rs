//! The command line: thin on purpose; the work is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anchorfed::config::Settings;
use anchorfed::server::Application;
use anchorfed::{db, graphql, telemetry};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "anchorfed",
    version,
    about = "Regional federation of anchor-institution networks, over GraphQL"
)]
struct Cli {
    /// A TOML settings file (default: ./anchorfed.toml when present, or ANCHORFED_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve GraphQL at /graphql and GraphiQL at / (SQLite in ./data unless DATABASE_URL is set).
    Serve {
        /// Load the West Midlands demo data (idempotent).
        #[arg(long)]
        demo: bool,
        /// Address to listen on, such as 127.0.0.1:8080.
        #[arg(long)]
        bind: Option<SocketAddr>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL); schema.graphql must equal it.
    ExportSchema,
    /// Import a file (all or nothing).
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Issue or revoke tokens at the console (as an operator).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Returns from a CSV: institution,period,metric,value,breakdown,method.
    Returns {
        file: PathBuf,
        /// The steward network's key; every institution in the file must report through it.
        #[arg(long)]
        network: String,
        /// Default: the file's SHA-256, so the same file imported twice writes once.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Check the file and report, writing nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue a token and print it (the only time it is shown).
    Issue {
        /// OPERATOR, NETWORK_ADMIN, NETWORK_SUBMITTER, REGION_ANALYST or RESEARCHER.
        #[arg(long)]
        role: String,
        /// The network's key (admins and submitters).
        #[arg(long)]
        network: Option<String>,
        /// The region's GSS code (analysts).
        #[arg(long)]
        region: Option<String>,
        /// The organisation's key (researchers).
        #[arg(long)]
        org: Option<String>,
        /// A scope entry, repeatable: metrics:spend, years:2021/22-2023/24, network:KEY, read:impact, …
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Lifetime, such as 1h, 30d or 3600 (seconds); default 30 days.
        #[arg(long)]
        ttl: Option<String>,
        /// Who or what will hold it, for the record.
        #[arg(long)]
        subject: Option<String>,
    },
    /// Revoke a token by its id (jti); it is refused from the next request on.
    Revoke { jti: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::ExportSchema = cli.command {
        print!("{}", graphql::sdl());
        return ExitCode::SUCCESS;
    }
    let mut settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("anchorfed: {e}");
            return ExitCode::from(2);
        }
    };
    if matches!(cli.command, Command::Token { .. } | Command::Import { .. })
        && std::env::var_os("ANCHORFED_LOG_LEVEL").is_none()
    {
        // A console command's output is its answer; routine progress would bury it.
        settings.log_level = "warn".into();
    }
    telemetry::init(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("anchorfed: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { demo, bind } => {
                if let Some(bind) = bind {
                    settings.bind = bind;
                }
                let graphiql = settings.graphiql;
                let app = Application::build(settings, demo).await?;
                let addr = format!("http://127.0.0.1:{}/", app.port());
                if graphiql {
                    println!("anchorfed is serving GraphiQL at {addr} (GraphQL at {addr}graphql)");
                } else {
                    println!("anchorfed is serving GraphQL at {addr}graphql");
                }
                app.run_until_stopped().await?;
                Ok(())
            }
            Command::Migrate => {
                let conn = db::connect(&settings.database_url(), 1, None).await?;
                db::migrate(&conn).await?;
                println!("migrations applied");
                Ok(())
            }
            Command::ExportSchema => Ok(()),
            Command::Token {
                command:
                    TokenCommand::Issue {
                        role,
                        network,
                        region,
                        org,
                        scopes,
                        ttl,
                        subject,
                    },
            } => {
                let (token, id, expires) = anchorfed::cli::token_issue(
                    &settings,
                    anchorfed::cli::TokenIssue {
                        role,
                        network,
                        region,
                        org,
                        scopes,
                        ttl,
                        subject,
                    },
                )
                .await?;
                eprintln!("token {id}, expires {expires}; it is shown only now:");
                println!("{token}");
                Ok(())
            }
            Command::Token {
                command: TokenCommand::Revoke { jti },
            } => {
                anchorfed::cli::token_revoke(&settings, &jti).await?;
                println!("revoked {jti}");
                Ok(())
            }
            Command::Import {
                command:
                    ImportCommand::Returns {
                        file,
                        network,
                        idempotency_key,
                        dry_run,
                    },
            } => {
                use anchorfed::cli::ImportReport;
                match anchorfed::cli::import_returns(
                    &settings,
                    &network,
                    &file,
                    idempotency_key,
                    dry_run,
                )
                .await?
                {
                    ImportReport::Written { returns, key } => {
                        println!("imported {returns} returns (idempotency key {key})")
                    }
                    ImportReport::Replayed { returns, key } => {
                        println!(
                            "already imported with key {key}: {returns} returns, nothing written"
                        )
                    }
                    ImportReport::Checked { returns } => {
                        println!("dry run: {returns} returns would be written")
                    }
                    ImportReport::Refused(problems) => {
                        for p in &problems {
                            eprintln!("{}: {p}", file.display());
                        }
                        anyhow::bail!("{} problem(s); nothing was written", problems.len());
                    }
                }
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e: anyhow::Error = e;
            eprintln!("anchorfed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
