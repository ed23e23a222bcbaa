//! The command line: thin on purpose; the work is in the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anchorfed::cli::{self, ImportReport};
use anchorfed::config::Settings;
use anchorfed::server::Application;
use anchorfed::{db, graphql, telemetry};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};

// The service allocates and frees many small objects per request (a page resolves a thousand
// fields); glibc's allocator spent about a quarter of the server's time in a returns read
// (`perf`, issue 13). mimalloc is a well-kept drop-in for exactly that pattern.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Check what is stored: list rows whose values are outside their vocabulary (exit 1 if any).
    Check,
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
    /// Load published geography: the ONS postcode lookup, the deprivation deciles.
    Geography {
        #[command(subcommand)]
        command: GeographyCommand,
    },
    /// Register trusted documents: operations clients run by id (trusted_documents.file).
    Documents {
        #[command(subcommand)]
        command: DocumentsCommand,
    },
}

#[derive(Subcommand)]
enum DocumentsCommand {
    /// Register the operation(s) in FILE (GraphQL) and print the id clients send as
    /// `documentId`; servers read the registry when they start.
    Add {
        file: PathBuf,
        /// A name for it, such as `dashboard-regional-impact` (default: sha256:<hex of the text>).
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Returns from a CSV: institution,period,metric,value,breakdown,method.
    Returns(ImportReturns),
    /// Supplier spend lines of one institution and period, from a CSV:
    /// supplier,supplier_id,postcode,district,amount,category,sme,vcse,sole_trader,anchor.
    Spend(ImportSpend),
}

#[derive(Args)]
struct ImportSpend {
    file: PathBuf,
    /// The institution's steward network (its key).
    #[arg(long)]
    network: String,
    /// The institution whose spend lines these are (its key).
    #[arg(long)]
    institution: String,
    /// The reporting period, such as 2023/24.
    #[arg(long)]
    period: String,
}

#[derive(Subcommand)]
enum GeographyCommand {
    /// Load a published file (all or nothing; loading a newer edition replaces what both name).
    Load {
        #[command(subcommand)]
        file: GeographyLoad,
    },
}

#[derive(Subcommand)]
enum GeographyLoad {
    /// The ONS National Statistics Postcode Lookup CSV (pcds, laua, lsoa11/lsoa21, doterm, …).
    Nspl { file: PathBuf },
    /// The English Indices of Deprivation's LSOA file as CSV (File 7: LSOA code, IMD rank and
    /// decile, …).
    Imd {
        file: PathBuf,
        /// The edition's year (default: 2019 for 2011 LSOAs, 2025 for 2021 LSOAs).
        #[arg(long)]
        edition: Option<i32>,
    },
}

#[derive(Args)]
struct ImportReturns {
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
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue a token and print it (the only time it is shown).
    Issue(cli::TokenIssue),
    /// Revoke a token by its id (jti); it is refused from the next request on.
    Revoke { jti: String },
}

fn main() -> ExitCode {
    let Cli { config, command } = Cli::parse();
    if let Command::ExportSchema = command {
        // Needs no settings, so it works wherever the binary does.
        print!("{}", graphql::sdl());
        return ExitCode::SUCCESS;
    }
    let settings = match settings_for(config.as_deref(), &command) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("anchorfed: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings);
    match run(command, settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("anchorfed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn settings_for(
    config: Option<&Path>,
    command: &Command,
) -> Result<Settings, anchorfed::config::ConfigError> {
    let mut settings = Settings::load(config)?;
    if matches!(
        command,
        Command::Token { .. }
            | Command::Import { .. }
            | Command::Documents { .. }
            | Command::Geography { .. }
    ) && std::env::var_os("ANCHORFED_LOG_LEVEL").is_none()
    {
        // A console command's output is its answer; routine progress would bury it.
        settings.log_level = "warn".into();
    }
    Ok(settings)
}

fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("Failed to start the async runtime")?;
    runtime.block_on(async move {
        match command {
            Command::Serve { demo, bind } => serve(settings, demo, bind).await,
            Command::Migrate => migrate(&settings).await,
            Command::Check => check(&settings).await,
            Command::ExportSchema => {
                print!("{}", graphql::sdl());
                Ok(())
            }
            Command::Token {
                command: TokenCommand::Issue(t),
            } => token_issue(&settings, t).await,
            Command::Token {
                command: TokenCommand::Revoke { jti },
            } => token_revoke(&settings, &jti).await,
            Command::Import {
                command: ImportCommand::Returns(i),
            } => import_returns(&settings, i).await,
            Command::Import {
                command: ImportCommand::Spend(i),
            } => import_spend(&settings, i).await,
            Command::Geography {
                command: GeographyCommand::Load { file },
            } => geography_load(&settings, file).await,
            Command::Documents {
                command: DocumentsCommand::Add { file, id },
            } => documents_add(&settings, &file, id.as_deref()),
        }
    })
}

async fn serve(mut settings: Settings, demo: bool, bind: Option<SocketAddr>) -> anyhow::Result<()> {
    if let Some(bind) = bind {
        settings.bind = bind;
    }
    let graphiql = settings.graphiql;
    let app = Application::build(settings, demo).await?;
    let addr = format!("http://127.0.0.1:{}/", app.port());
    // One line: scripts (and tests) read the address from the first line and may then close
    // the pipe, which a second line would find broken.
    if graphiql {
        println!(
            "anchorfed is serving GraphiQL at {addr} (GraphQL at {addr}graphql, the regional dashboard at {addr}dashboard)"
        );
    } else {
        println!(
            "anchorfed is serving GraphQL at {addr}graphql (the regional dashboard at {addr}dashboard)"
        );
    }
    app.run_until_stopped()
        .await
        .context("The server stopped with an error")
}

fn documents_add(settings: &Settings, file: &Path, id: Option<&str>) -> anyhow::Result<()> {
    let Some(registry) = &settings.trusted_documents.file else {
        anyhow::bail!(
            "set trusted_documents.file (or ANCHORFED_TRUSTED_DOCUMENTS__FILE) to the registry's path first"
        );
    };
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("Failed to read {}", file.display()))?;
    let id = anchorfed::server::documents::register(registry, &text, id)?;
    eprintln!(
        "registered in {}; servers read it when they start",
        registry.display()
    );
    println!("{id}");
    Ok(())
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let conn = db::connect(&settings.database_url(), 1, None).await?;
    db::migrate(&conn).await?;
    println!("migrations applied");
    Ok(())
}

async fn check(settings: &Settings) -> anyhow::Result<()> {
    let conn = db::connect(&settings.database_url(), 1, None).await?;
    let strays = anchorfed::integrity::stray_vocabulary(&conn)
        .await
        .map_err(anyhow::Error::from)?;
    for s in &strays {
        println!("{s}");
    }
    if strays.is_empty() {
        println!("every stored vocabulary value is known");
        Ok(())
    } else {
        anyhow::bail!("{} stored value(s) outside their vocabulary", strays.len())
    }
}

async fn token_issue(settings: &Settings, t: cli::TokenIssue) -> anyhow::Result<()> {
    let (token, id, expires) = cli::token_issue(settings, t).await?;
    eprintln!("token {id}, expires {expires}; it is shown only now:");
    println!("{token}");
    Ok(())
}

async fn token_revoke(settings: &Settings, jti: &str) -> anyhow::Result<()> {
    cli::token_revoke(settings, jti).await?;
    println!("revoked {jti}");
    Ok(())
}

async fn import_returns(settings: &Settings, i: ImportReturns) -> anyhow::Result<()> {
    let report =
        cli::import_returns(settings, &i.network, &i.file, i.idempotency_key, i.dry_run).await?;
    match report {
        ImportReport::Written { returns, key } => {
            println!("imported {returns} returns (idempotency key {key})")
        }
        ImportReport::Replayed { returns, key } => {
            println!("already imported with key {key}: {returns} returns, nothing written")
        }
        ImportReport::Checked { returns } => {
            println!("dry run: {returns} returns would be written")
        }
        ImportReport::Refused(problems) => {
            for p in &problems {
                eprintln!("{}: {p}", i.file.display());
            }
            anyhow::bail!("{} problem(s); nothing was written", problems.len());
        }
    }
    Ok(())
}

async fn import_spend(settings: &Settings, i: ImportSpend) -> anyhow::Result<()> {
    use anchorfed::ingest::spend;
    use entity::vocab::ImportState;
    let report =
        cli::import_spend(settings, &i.network, &i.institution, &i.period, &i.file).await?;
    let job = &report.job;
    match (job.state, &report.version) {
        (ImportState::Succeeded, Some(v)) if job.replayed => println!(
            "already imported as version {} of {} {}: nothing written (job {})",
            v.version, i.institution, v.period, job.id
        ),
        (ImportState::Succeeded, Some(v)) => {
            println!(
                "imported {} spend lines for {} {} as version {}: {} in all, {} lines ({}) with place unknown (job {})",
                v.lines,
                i.institution,
                v.period,
                v.version,
                pounds(v.total),
                v.place_unknown_lines,
                pounds(v.place_unknown_total),
                job.id
            );
            for u in spend::place_unknown_of(job) {
                println!("  line {}: place unknown: {}", u.line, u.reason);
            }
        }
        _ => {
            for p in spend::problems_of(job) {
                eprintln!("{}: {p}", i.file.display());
            }
            anyhow::bail!(
                "{} (job {})",
                job.failure.as_deref().unwrap_or("the import failed"),
                job.id
            );
        }
    }
    Ok(())
}

fn pounds(pence: i64) -> String {
    format!(
        "£{}",
        anchorfed::domain::quantity::from_minor_units(pence, 2)
    )
}

async fn geography_load(settings: &Settings, file: GeographyLoad) -> anyhow::Result<()> {
    use anchorfed::geography::Loaded;
    let (kind, path, what) = match file {
        GeographyLoad::Nspl { file } => (cli::GeographyFile::Nspl, file, "postcodes"),
        GeographyLoad::Imd { file, edition } => {
            (cli::GeographyFile::Imd { edition }, file, "LSOA deciles")
        }
    };
    match cli::geography_load(settings, kind, &path).await? {
        Loaded::Written { rows, note } => {
            println!("loaded {rows} {what} ({note})");
            Ok(())
        }
        Loaded::Refused {
            problems,
            rows_read,
            rows_rejected,
        } => {
            for p in &problems {
                eprintln!("{}: {p}", path.display());
            }
            if rows_read == 0 {
                anyhow::bail!("the file was refused; nothing was loaded")
            }
            anyhow::bail!("{rows_rejected} of {rows_read} rows have problems; nothing was loaded")
        }
    }
}
