//! The actix-web application: GraphQL over HTTP, GraphiQL, health, readiness and metrics.
//! `Application::build` binds before it returns, so tests can bind port 0 and read the
//! real port back.

mod document;
pub mod documents;
mod graphql_http;
mod imports;
mod rate_limit;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context;
use async_graphql::http::GraphiQLSource;
use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;
use tracing_actix_web::TracingLogger;

pub use graphql_http::GRAPHQL_RESPONSE_JSON;

use crate::access_log::AccessLog;
use crate::auth::Keys;
use crate::config::Settings;
use crate::error::ApiError;
use crate::graphql::{self, AppSchema};
use crate::telemetry::{Metrics, RequestSpan};
use crate::{db, directory};

/// What every request handler shares.
pub struct AppState {
    pub settings: Settings,
    pub keys: Arc<Keys>,
    pub db: DatabaseConnection,
    pub schema: AppSchema,
    /// The schema that prices operations before `schema` runs them.
    pub pricing: AppSchema,
    /// Answers to repeated reads (`cache.enabled`).
    pub cache: Option<crate::cache::ResponseCache>,
    pub access_log: AccessLog,
    pub metrics: Metrics,
    rate_limiter: Option<rate_limit::RateLimiter>,
    /// Permits for spend imports running at once (`limits.imports_at_once`).
    imports: Arc<tokio::sync::Semaphore>,
    trusted_documents: documents::TrustedDocuments,
    operation_labels: graphql_http::OperationLabels,
}

pub struct Application {
    server: Server,
    port: u16,
    /// `/metrics` on its own address (`metrics.bind`), and the port it listens on.
    metrics_server: Option<(Server, u16)>,
    db: DatabaseConnection,
    access_log: AccessLog,
}

impl Application {
    /// Connects, migrates, optionally loads the demo data, and binds the listener.
    // Long because it wires every part of the server in the order they depend on each other;
    // each step is one call with its own error context.
    pub async fn build(settings: Settings, demo: bool) -> anyhow::Result<Self> {
        let metrics = Metrics::new().context("Failed to register metrics")?;
        let db = db::connect_limited(
            &settings.database_url(),
            settings.db_max_connections,
            Some(&metrics),
            Some(Duration::from_secs(settings.limits.request_timeout_seconds)),
        )
        .await?;
        db::migrate(&db).await?;
        // Imports a stopped process left running are failed, and their staged rows removed.
        crate::ingest::jobs::reap(&db)
            .await
            .map_err(ApiError::into_anyhow)
            .context("Failed to reap abandoned import jobs")?;
        if demo {
            load_demo(&db).await?;
        }
        let keys = Arc::new(
            Keys::load(&settings.auth, &settings.data_dir)
                .context("Failed to load the token keys")?,
        );
        let listener = TcpListener::bind(settings.bind).with_context(|| {
            format!(
                "Failed to listen on {} (is another server using it?)",
                settings.bind
            )
        })?;
        let port = listener
            .local_addr()
            .context("Failed to read the listener's address")?
            .port();
        let access_log = AccessLog::start(db.clone());
        let noise = crate::analytics::release::noise_key(&db).await?;
        let schema = graphql::build(
            &settings,
            db.clone(),
            keys.clone(),
            access_log.clone(),
            noise,
        );
        let pricing = graphql::pricing(&settings);
        let mut cache = settings.cache.enabled.then(|| {
            crate::cache::ResponseCache::new(
                settings.cache.max_bytes,
                Duration::from_secs(settings.cache.ttl_seconds.max(1)),
            )
        });
        if cache.is_some() {
            let missing = crate::cache::untracked_tables(&db).await?;
            if !missing.is_empty() {
                // A kept answer could outlive a change to these tables: serve without.
                tracing::error!(
                    tables = %missing.join(", "),
                    "tables without their data-version trigger (rebuilt by hand?): the response cache is off; recreate the triggers (migration m20261130_000012_data_version)"
                );
                cache = None;
            }
        }
        let shutdown = settings.shutdown_timeout_seconds;
        let rate_limiter = rate_limit::RateLimiter::new(&settings.rate_limit);
        let trusted_documents =
            documents::TrustedDocuments::load(settings.trusted_documents.file.as_deref())?;
        tracing::info!(
            trusted_documents = trusted_documents.len(),
            trusted_documents.from_file = trusted_documents.registered(),
            "trusted documents registered (the dashboard's built in)"
        );
        let imports = Arc::new(tokio::sync::Semaphore::new(settings.limits.imports_at_once));
        let state = web::Data::new(AppState {
            imports,
            settings,
            keys,
            db: db.clone(),
            schema,
            pricing,
            cache,
            access_log: access_log.clone(),
            metrics,
            rate_limiter,
            trusted_documents,
            operation_labels: Default::default(),
        });
        let metrics_server = match state.settings.metrics.bind {
            Some(bind) if state.settings.metrics.enabled => {
                Some(metrics_server(bind, state.clone(), shutdown)?)
            }
            _ => None,
        };
        let server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::<RequestSpan>::new())
                .app_data(state.clone())
                .route("/", web::get().to(graphiql))
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics_text))
                .route("/imports/spend", web::post().to(imports::spend))
                .configure(crate::dashboard::configure)
                .service(
                    web::resource("/graphql")
                        .route(web::get().to(graphql_http::handle))
                        .route(web::post().to(graphql_http::handle))
                        .default_service(web::to(graphql_http::method_not_allowed)),
                )
        })
        .shutdown_timeout(shutdown)
        .listen(listener)
        .context("Failed to start the HTTP server")?
        .run();
        Ok(Self {
            server,
            port,
            metrics_server,
            db,
            access_log,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port `/metrics` listens on when it has its own address.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(_, p)| *p)
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Serves until SIGINT or SIGTERM, then lets requests in flight finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics_server.map(|(server, _)| {
            let handle = server.handle();
            tokio::spawn(server);
            handle
        });
        let r = self.server.await;
        if let Some(m) = metrics {
            m.stop(true).await;
        }
        // Every read the stopped server logged reaches the database before the pool closes.
        self.access_log.flush().await;
        // Closing the pool lets SQLite checkpoint its WAL and PostgreSQL end sessions cleanly.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.db.close()).await;
        r
    }

    /// A handle to stop the server gracefully (used by tests and signal handling).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// `serve --demo`: the West Midlands directory, synthetic returns, sample spend lines (and the
/// returns' spend derived from them) and public grants.
async fn load_demo(db: &DatabaseConnection) -> anyhow::Result<()> {
    directory::demo::load(db)
        .await
        .context("Failed to load the demo directory")?;
    let n = crate::ingest::demo::load(db)
        .await
        .map_err(ApiError::into_anyhow)
        .context("Failed to load the synthetic demo returns")?;
    tracing::info!(demo.returns = n, "synthetic demo returns loaded");
    let s = crate::ingest::spend::demo::load(db)
        .await
        .map_err(ApiError::into_anyhow)
        .context("Failed to load the demo's spend lines")?;
    tracing::info!(
        demo.spend_files = s,
        "demo spend lines loaded (2022/23 returns' spend derived from them)"
    );
    let g = crate::sharing::demo_grants(db)
        .await
        .map_err(ApiError::into_anyhow)
        .context("Failed to make the demo's public grants")?;
    tracing::info!(demo.grants = g, "demo public grants (AGGREGATE) in force");
    Ok(())
}

async fn graphiql(state: web::Data<AppState>) -> HttpResponse {
    if !state.settings.graphiql {
        return HttpResponse::NotFound()
            .body("GraphiQL is switched off on this server; POST /graphql\n");
    }
    let page = GraphiQLSource::build()
        .endpoint("/graphql")
        .title("anchorfed")
        .finish();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(with_dashboard_link(&page))
}

/// GraphiQL's page with a link to the regional dashboard in a corner.
fn with_dashboard_link(page: &str) -> String {
    const LINK: &str = "<a href=\"/dashboard\" style=\"position:fixed;right:12px;bottom:12px;\
        z-index:10;padding:6px 10px;background:#fff;color:#0b4f8a;border:1px solid #0b4f8a;\
        border-radius:4px;font:14px sans-serif\">Regional dashboard</a>";
    match page.rfind("</body>") {
        Some(at) => format!("{}{LINK}{}", &page[..at], &page[at..]),
        None => format!("{page}{LINK}"),
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.db.ping().await {
        Ok(()) => HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready\n"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed: database unreachable");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain")
                .body("database unavailable\n")
        }
    }
}

/// `/metrics` on its own address: nothing else is served there.
fn metrics_server(
    bind: std::net::SocketAddr,
    state: web::Data<AppState>,
    shutdown: u64,
) -> anyhow::Result<(Server, u16)> {
    let listener = TcpListener::bind(bind)
        .with_context(|| format!("Failed to listen on {bind} for /metrics (metrics.bind)"))?;
    let port = listener
        .local_addr()
        .context("Failed to read the metrics listener's address")?
        .port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(metrics_own_address))
    })
    .workers(1)
    .shutdown_timeout(shutdown)
    .listen(listener)
    .context("Failed to start the metrics server")?
    .run();
    Ok((server, port))
}

/// `/metrics` on the main address: only when switched on without an address of its own,
/// and then behind `metrics.token` (settings refuse it public there).
async fn metrics_text(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let m = &state.settings.metrics;
    if !m.enabled || m.bind.is_some() {
        return HttpResponse::NotFound()
            .content_type("text/plain")
            .body("metrics are not served on this address\n");
    }
    metrics_for(&req, &state)
}

async fn metrics_own_address(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    metrics_for(&req, &state)
}

fn metrics_for(req: &HttpRequest, state: &AppState) -> HttpResponse {
    if let Some(token) = &state.settings.metrics.token {
        let given = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.expose_secret().as_bytes()) {
            return HttpResponse::Unauthorized()
                .insert_header(("www-authenticate", "Bearer"))
                .content_type("text/plain")
                .body("send the metrics token: Authorization: Bearer <metrics.token>\n");
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        let y = b.get(i % b.len().max(1)).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_tokens() {
        assert!(constant_time_eq(b"abcdef", b"abcdef"));
        assert!(!constant_time_eq(b"abcdef", b"abcdeg"));
        assert!(!constant_time_eq(b"abc", b"abcdef"));
        assert!(!constant_time_eq(b"", b"abcdef"));
    }
}
