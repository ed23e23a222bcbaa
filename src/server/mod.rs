//! The actix-web application: GraphQL over HTTP, GraphiQL, health, readiness and metrics.
//! `Application::build` binds before it returns, so tests can bind port 0 and read the
//! real port back.

mod document;
mod graphql_http;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use async_graphql::http::GraphiQLSource;
use sea_orm::DatabaseConnection;
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
    pub metrics: Metrics,
    operation_labels: graphql_http::OperationLabels,
}

pub struct Application {
    server: Server,
    port: u16,
    db: DatabaseConnection,
    access_log: AccessLog,
}

impl Application {
    /// Connects, migrates, optionally loads the demo data, and binds the listener.
    pub async fn build(settings: Settings, demo: bool) -> anyhow::Result<Self> {
        let metrics = Metrics::new().context("Failed to register metrics")?;
        let db = db::connect(
            &settings.database_url(),
            settings.db_max_connections,
            Some(&metrics),
        )
        .await?;
        db::migrate(&db).await?;
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
        let schema = graphql::build(&settings, db.clone(), keys.clone(), access_log.clone());
        let shutdown = settings.shutdown_timeout_seconds;
        let state = web::Data::new(AppState {
            settings,
            keys,
            db: db.clone(),
            schema,
            metrics,
            operation_labels: Default::default(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::<RequestSpan>::new())
                .app_data(state.clone())
                .route("/", web::get().to(graphiql))
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics_text))
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
            db,
            access_log,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Serves until SIGINT or SIGTERM, then lets requests in flight finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let r = self.server.await;
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

/// `serve --demo`: the West Midlands directory, synthetic returns and public grants.
async fn load_demo(db: &DatabaseConnection) -> anyhow::Result<()> {
    directory::demo::load(db)
        .await
        .context("Failed to load the demo directory")?;
    let n = crate::ingest::demo::load(db)
        .await
        .map_err(ApiError::into_anyhow)
        .context("Failed to load the synthetic demo returns")?;
    tracing::info!(demo.returns = n, "synthetic demo returns loaded");
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
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .title("anchorfed")
                .finish(),
        )
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

async fn metrics_text(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
