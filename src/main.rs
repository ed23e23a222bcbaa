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
