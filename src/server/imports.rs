//! `POST /imports/spend?institution=KEY&period=2023/24`: a spend-lines CSV as the request
//! body, streamed into an import job (`ingest::spend`), never held whole.
//!
//! Nothing of the body is read before the caller is authorised for it: the bearer token is
//! checked as for `/graphql` (none or a bad one: 401), then whether it may send spend lines at
//! all (403), the declared size (413), the query (400), the institution (404), and whether the
//! token's network stewards it, for that period (403). Only then is a job created and the
//! body streamed, through a small channel, to the CSV reader on its own thread; the reader
//! reads no faster than the job stages lines, so a slow database slows the upload rather than
//! filling memory. The answer comes once the whole body is read: 202 with the job's id (the
//! switch may still be running: `importJob(id)` follows it), 422 when lines were refused,
//! 413 past `limits.import_bytes`, 400 for a body cut short, 500 or 503 when the job failed on
//! the service's side; the job says why in each case.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::{AppState, graphql_http};
use crate::directory;
use crate::domain::{FinancialYear, IdOrKey};
use crate::error::{ApiError, ApiResult};
use crate::ingest::{jobs, spend};
use crate::policy;

/// Body chunks between the request and the CSV reader.
const QUEUE: usize = 8;

#[derive(Deserialize)]
struct SpendQuery {
    institution: Option<String>,
    period: Option<String>,
}

fn error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let mut r = HttpResponse::build(status);
    match status {
        StatusCode::UNAUTHORIZED => {
            r.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            r.insert_header((
                header::RETRY_AFTER,
                crate::error::RETRY_AFTER_SECONDS.to_string(),
            ));
        }
        _ => {}
    }
    r.content_type("application/json")
        .json(json!({ "errors": [{ "message": message, "extensions": { "code": code } }] }))
}

/// An error of the service, answered as `/graphql` would code it. Refusals go to the log
/// with their reason; internal causes too, and the client hears neither.
fn refused(e: &ApiError) -> HttpResponse {
    let status = match e {
        ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        ApiError::Forbidden { reason } => {
            tracing::info!(refusal.reason = %reason, "spend import refused before its body was read");
            StatusCode::FORBIDDEN
        }
        ApiError::BadUserInput { .. } => StatusCode::BAD_REQUEST,
        ApiError::NotFound(_) => StatusCode::NOT_FOUND,
        ApiError::Conflict(_) => StatusCode::CONFLICT,
        ApiError::Unavailable(cause) => {
            tracing::warn!(error.cause_chain = ?cause, "spend import: database unavailable");
            StatusCode::SERVICE_UNAVAILABLE
        }
        ApiError::Internal(cause) => {
            tracing::error!(error.cause_chain = ?cause, "spend import failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error(status, e.code(), &e.message())
}

/// `POST /imports/spend`.
pub(super) async fn spend(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let caller = match graphql_http::authenticate_caller(&req, &state).await {
        Ok(c) => c,
        Err((status, code, message)) => return error(status, code, &message),
    };
    if let Err(e) = policy::spend::may_upload_spend(&caller) {
        return refused(&e);
    }
    let limit = state.settings.limits.import_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > limit) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BAD_USER_INPUT",
            &format!("the body is {len} bytes; the limit is {limit} bytes (limits.import_bytes)"),
        );
    }
    if req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("multipart/"))
    {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            "send the CSV itself as the body (content-type: text/csv), not a form",
        );
    }
    let target = match target(&req, &state, &caller).await {
        Ok(t) => t,
        Err(e) => return refused(&e),
    };
    // Taken before the job is created, so a refused upload leaves no job; held by the job
    // until it has ended (its switch outlives the answer).
    let Ok(permit) = state.imports.clone().try_acquire_owned() else {
        let at_once = state.settings.limits.imports_at_once;
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            &format!(
                "{at_once} imports are running on this server (limits.imports_at_once); \
                 nothing was read: send the file again when one has ended"
            ),
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(crate::error::RETRY_AFTER_SECONDS),
        );
        return r;
    };
    let job = match spend::start(&state.db, &target).await {
        Ok(j) => j,
        Err(e) => return refused(&e),
    };
    stream(payload, &state, target, job.id, limit, permit).await
}

/// What the query names, authorised: the institution, its steward network (which must be
/// the caller's) and the period.
async fn target(
    req: &HttpRequest,
    state: &AppState,
    caller: &crate::auth::Caller,
) -> ApiResult<spend::Target> {
    let q = web::Query::<SpendQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_input("query", e))?;
    let institution = q
        .institution
        .as_deref()
        .ok_or_else(|| ApiError::bad_input("institution", "give ?institution=KEY"))?;
    let institution =
        IdOrKey::parse(institution).map_err(|e| ApiError::bad_input("institution", e))?;
    let period: FinancialYear = q
        .period
        .as_deref()
        .ok_or_else(|| ApiError::bad_input("period", "give &period=2023/24"))?
        .parse()
        .map_err(|e| ApiError::bad_input("period", e))?;
    let institution = directory::institution(&state.db, &institution)
        .await?
        .ok_or_else(|| ApiError::NotFound("institution".into()))?;
    let p = policy::spend::may_import_spend(caller, institution.steward_network_id, period)?;
    let network = directory::require_network(
        &state.db,
        "network",
        &IdOrKey::Id(institution.steward_network_id),
    )
    .await?;
    Ok(spend::Target {
        network,
        institution,
        period,
        by: p.subject.clone(),
    })
}

/// How the body ended, as the request saw it.
enum Body {
    Whole,
    TooLarge,
    Broken,
    /// The reader stopped taking it: the job failed on the service's side.
    Unread,
}

/// Streams the body into the job and answers once it is read.
async fn stream(
    mut payload: web::Payload,
    state: &AppState,
    target: spend::Target,
    job: String,
    limit: u64,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> HttpResponse {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (read_tx, read_rx) = oneshot::channel();
    let db = state.db.clone();
    let id = job.clone();
    // The job runs on its own, so a client that goes away midway cannot stop it halfway: it
    // sees the body end early and fails the job.
    let task = tokio::spawn(async move {
        let _ = spend::run(
            &db,
            &id,
            &target,
            spend::ChunkReader::new(rx),
            Some(read_tx),
        )
        .await;
        drop(permit);
    });
    let mut seen = 0u64;
    let body = loop {
        match payload.next().await {
            None => {
                let _ = tx.send(spend::Chunk::End).await;
                break Body::Whole;
            }
            Some(Err(e)) => {
                let _ = tx
                    .send(spend::Chunk::Broken(format!(
                        "the body could not be read: {e}"
                    )))
                    .await;
                break Body::Broken;
            }
            Some(Ok(chunk)) => {
                seen += chunk.len() as u64;
                if seen > limit {
                    let _ = tx
                        .send(spend::Chunk::Broken(format!(
                            "the body is larger than the limit of {limit} bytes (limits.import_bytes)"
                        )))
                        .await;
                    break Body::TooLarge;
                }
                if tx.send(spend::Chunk::Data(chunk.to_vec())).await.is_err() {
                    break Body::Unread;
                }
            }
        }
    };
    drop(tx);
    let read = read_rx.await.ok();
    if read.is_none() {
        // The job ended before reading did (an internal failure): wait for it to say so.
        let _ = task.await;
    }
    let job = match jobs::find(&state.db, &job).await {
        Ok(Some(j)) => j,
        Ok(None) => {
            return refused(&ApiError::Internal(anyhow::anyhow!(
                "import job {job} vanished"
            )));
        }
        Err(e) => return refused(&e),
    };
    let status = match (body, job.state) {
        (Body::TooLarge, _) => StatusCode::PAYLOAD_TOO_LARGE,
        (Body::Broken, _) => StatusCode::BAD_REQUEST,
        (Body::Unread, _)
            if job
                .failure
                .as_deref()
                .is_some_and(|f| f.contains("unavailable")) =>
        {
            StatusCode::SERVICE_UNAVAILABLE
        }
        (Body::Unread, _) => StatusCode::INTERNAL_SERVER_ERROR,
        (Body::Whole, entity::vocab::ImportState::Failed) if job.rows_rejected > 0 => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        (Body::Whole, entity::vocab::ImportState::Failed) => StatusCode::BAD_REQUEST,
        (Body::Whole, _) => StatusCode::ACCEPTED,
    };
    HttpResponse::build(status).content_type("application/json").json(json!({
        "jobId": job.id,
        "state": job.state.as_str(),
        "rowsRead": read.as_ref().map_or(job.rows_read, |r| jobs::count(r.rows_read)),
        "rowsRejected": read.as_ref().map_or(job.rows_rejected, |r| jobs::count(r.rows_rejected)),
        "failure": job.failure,
    }))
}
