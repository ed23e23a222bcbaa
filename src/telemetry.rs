//! Logs (tracing, text or JSON lines), request spans with request ids, and Prometheus
//! metrics. Each `Application` owns its own registry so that servers started side by side
//! in one process (the tests) count apart.

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, body::MessageBody};
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{LogFormat, Settings};

/// Installs the global tracing subscriber, writing to stderr in either format (stdout is for
/// what a command prints, such as the address it serves on or a token it issued). Safe to
/// call more than once (later calls do nothing).
pub fn init(settings: &Settings) {
    let filter =
        EnvFilter::try_new(&settings.log_level)
            .unwrap_or_else(|_| EnvFilter::new("info"))
            // sqlx logs a notice on every migration run against PostgreSQL.
            .add_directive("sqlx::postgres::notice=warn".parse().unwrap_or_else(|_| {
                tracing_subscriber::filter::Directive::from(tracing::Level::WARN)
            }));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match settings.log_format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(fmt::layer().with_target(true).with_writer(std::io::stderr))
            .try_init(),
    };
}

/// The request span: tracing-actix-web's fields (`request_id`, method, route, status,
/// latency) plus the GraphQL operation name and the caller's subject, which the handler fills
/// in. An `INTERNAL` error's `extensions.requestId` is this span's `request_id`.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        tracing_actix_web::root_span!(
            request,
            graphql.operation = tracing::field::Empty,
            auth.subject = tracing::field::Empty
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// The service's metrics.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub errors: IntCounterVec,
    pub latency: HistogramVec,
    pub db_statements: IntCounter,
    pub db_statement_seconds: prometheus::Histogram,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("anchorfed".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "graphql_requests_total",
                "GraphQL operations by name and outcome",
            ),
            &["operation", "outcome"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "graphql_errors_total",
                "GraphQL errors by operation and code",
            ),
            &["operation", "code"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "graphql_request_duration_seconds",
                "GraphQL operation latency",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["operation"],
        )?;
        let db_statements = IntCounter::new("db_statements_total", "SQL statements executed")?;
        let db_statement_seconds = prometheus::Histogram::with_opts(
            HistogramOpts::new("db_statement_duration_seconds", "SQL statement latency").buckets(
                vec![0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0],
            ),
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(db_statements.clone()))?;
        registry.register(Box::new(db_statement_seconds.clone()))?;
        Ok(Self {
            registry,
            requests,
            errors,
            latency,
            db_statements,
            db_statement_seconds,
        })
    }

    /// Counts one SQL statement; called by the database driver's metric hook.
    pub fn record_statement(&self, seconds: f64) {
        self.db_statements.inc();
        self.db_statement_seconds.observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let encoder = prometheus::TextEncoder::new();
        encoder
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# metrics could not be encoded: {e}\n"))
    }
}
