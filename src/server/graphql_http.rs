//! GraphQL over HTTP, by the specification (graphql.github.io/graphql-over-http): content
//! negotiation between `application/graphql-response+json` and `application/json`, the
//! status codes it sets, `GET` for queries only, and the limits async-graphql lacks (body
//! size, batch size, aliases, root fields). async-graphql's stock actix responder answers 200
//! to everything and runs mutations sent by `GET`, hence this handler.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use async_graphql::dataloader::DataLoader;
use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{BatchRequest, Request, ServerError, Variables};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tracing::Instrument as _;
use tracing_actix_web::RequestId;

use super::documents::TrustedDocuments;
use super::{AppState, document, rate_limit};
use crate::auth::{self, Caller};
use crate::config::Limits;
use crate::graphql::cost::PriceOnly;
use crate::graphql::loaders::Loaders;

mod uploads;

pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaType {
    GraphqlResponseJson,
    Json,
}

impl MediaType {
    fn as_str(self) -> &'static str {
        match self {
            MediaType::GraphqlResponseJson => GRAPHQL_RESPONSE_JSON,
            MediaType::Json => "application/json",
        }
    }
}

/// A failure before any operation ran: the response carries `errors` and no `data`.
struct RequestFailure {
    status: StatusCode,
    code: &'static str,
    message: String,
    allow: Option<&'static str>,
}

impl RequestFailure {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    fn bad_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", message)
    }

    fn with_allow(self, allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..self
        }
    }

    /// The failure as the body of one operation: `errors` and no `data`.
    fn body(&self) -> Json {
        json!({ "errors": [error_json(self.code, &self.message)] })
    }

    /// The failure as the whole response, with `Allow` when the method was wrong.
    fn respond(&self, media: MediaType) -> HttpResponse {
        respond(media, self.status, &self.body(), self.allow)
    }
}

/// Any method other than `GET` and `POST` on `/graphql`.
pub(super) async fn method_not_allowed() -> HttpResponse {
    RequestFailure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "BAD_USER_INPUT",
        "use GET for queries or POST",
    )
    .with_allow("GET, POST")
    .respond(MediaType::GraphqlResponseJson)
}

/// Picks the response media type from `Accept`. No header, or one that takes anything, gets
/// `application/graphql-response+json`, as the specification allows since 2025.
fn negotiate(req: &HttpRequest) -> Option<MediaType> {
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Some(MediaType::GraphqlResponseJson);
    };
    let mut best: Option<(f32, MediaType)> = None;
    for part in accept.split(',') {
        let mut pieces = part.split(';');
        let mime = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = pieces
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if q <= 0.0 {
            continue;
        }
        let media = match mime.as_str() {
            GRAPHQL_RESPONSE_JSON | "application/*" | "*/*" => MediaType::GraphqlResponseJson,
            "application/json" => MediaType::Json,
            _ => continue,
        };
        // Prefer the higher q; on a tie prefer graphql-response+json.
        let better = match best {
            None => true,
            Some((bq, bm)) => {
                q > bq
                    || (q == bq && media == MediaType::GraphqlResponseJson && bm == MediaType::Json)
            }
        };
        if better {
            best = Some((q, media));
        }
    }
    best.map(|(_, m)| m)
}

#[derive(Debug, Deserialize)]
struct GetParams {
    query: Option<String>,
    #[serde(rename = "documentId")]
    document_id: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostParams {
    query: Option<String>,
    #[serde(rename = "documentId")]
    document_id: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<Json>,
    extensions: Option<Json>,
}

/// Where a request's document may come from: its own `query`, or a trusted document by id.
#[derive(Clone, Copy)]
struct Sources<'a> {
    trusted: &'a TrustedDocuments,
    /// The caller may run trusted documents only.
    trusted_only: bool,
}

impl Sources<'_> {
    fn document(
        &self,
        query: Option<String>,
        document_id: Option<String>,
    ) -> Result<String, RequestFailure> {
        match (query.filter(|q| !q.trim().is_empty()), document_id) {
            (Some(_), Some(_)) => Err(RequestFailure::bad_input(
                "send either `query` or `documentId`, not both",
            )),
            (None, Some(id)) => self.trusted.get(&id).map(str::to_owned).ok_or_else(|| {
                RequestFailure::new(
                    StatusCode::BAD_REQUEST,
                    "NOT_FOUND",
                    format!("no trusted document is registered as `{id}`"),
                )
            }),
            (Some(_), None) if self.trusted_only => Err(trusted_only()),
            (Some(q), None) => Ok(q),
            (None, None) => Err(RequestFailure::bad_input("the request has no `query`")),
        }
    }
}

fn trusted_only() -> RequestFailure {
    RequestFailure::new(
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
        "without a token, this server runs registered operations only: send {\"documentId\": …}, or a bearer token",
    )
}

fn to_request(
    sources: Sources<'_>,
    query: Option<String>,
    document_id: Option<String>,
    operation_name: Option<String>,
    variables: Option<Json>,
) -> Result<Request, RequestFailure> {
    let query = sources.document(query, document_id)?;
    let mut r = Request::new(query);
    if let Some(name) = operation_name {
        r = r.operation_name(name);
    }
    match variables {
        None | Some(Json::Null) => {}
        Some(v @ Json::Object(_)) => r = r.variables(Variables::from_json(v)),
        Some(_) => {
            return Err(RequestFailure::bad_input(
                "`variables` must be a JSON object",
            ));
        }
    }
    Ok(r)
}

fn from_get(req: &HttpRequest, sources: Sources<'_>) -> Result<BatchRequest, RequestFailure> {
    let params = web::Query::<GetParams>::from_query(req.query_string())
        .map_err(|e| RequestFailure::bad_input(format!("bad query string: {e}")))?;
    let params = params.into_inner();
    let variables = params
        .variables
        .map(|v| serde_json::from_str::<Json>(&v))
        .transpose()
        .map_err(|e| RequestFailure::bad_input(format!("`variables` is not JSON: {e}")))?;
    if let Some(ext) = params.extensions {
        serde_json::from_str::<Json>(&ext)
            .map_err(|e| RequestFailure::bad_input(format!("`extensions` is not JSON: {e}")))?;
    }
    Ok(BatchRequest::Single(to_request(
        sources,
        params.query,
        params.document_id,
        params.operation_name,
        variables,
    )?))
}

async fn read_body(
    payload: &mut web::Payload,
    limit: usize,
) -> Result<web::BytesMut, RequestFailure> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| RequestFailure::bad_input(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(RequestFailure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "QUERY_TOO_COMPLEX",
                format!("the request body is larger than the limit of {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn from_post(
    req: &HttpRequest,
    payload: &mut web::Payload,
    limits: &Limits,
    sources: Sources<'_>,
) -> Result<BatchRequest, RequestFailure> {
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime: Option<mime::Mime> = ctype.parse().ok();
    let is_json = mime
        .as_ref()
        .is_some_and(|m| m.type_() == mime::APPLICATION && m.subtype() == mime::JSON);
    if !is_json {
        return Err(RequestFailure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            format!(
                "unsupported content type `{ctype}`: send application/json (or multipart/form-data for uploads)"
            ),
        ));
    }
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limits.body_bytes
    {
        return Err(RequestFailure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "QUERY_TOO_COMPLEX",
            format!(
                "the request body is larger than the limit of {} bytes",
                limits.body_bytes
            ),
        ));
    }
    let body = read_body(payload, limits.body_bytes).await?;
    let json: Json = serde_json::from_slice(&body)
        .map_err(|e| RequestFailure::bad_input(format!("the body is not valid JSON: {e}")))?;
    let one = |v: Json| -> Result<Request, RequestFailure> {
        let p: PostParams = serde_json::from_value(v)
            .map_err(|e| RequestFailure::bad_input(format!("not a GraphQL request: {e}")))?;
        let _ = p.extensions;
        to_request(
            sources,
            p.query,
            p.document_id,
            p.operation_name,
            p.variables,
        )
    };
    match json {
        Json::Array(items) => {
            if items.is_empty() {
                return Err(RequestFailure::bad_input("the batch is empty"));
            }
            if items.len() > limits.batch {
                return Err(RequestFailure::new(
                    StatusCode::BAD_REQUEST,
                    "QUERY_TOO_COMPLEX",
                    format!(
                        "the batch has {} operations; the limit is {}",
                        items.len(),
                        limits.batch
                    ),
                ));
            }
            Ok(BatchRequest::Batch(
                items.into_iter().map(one).collect::<Result<_, _>>()?,
            ))
        }
        v => Ok(BatchRequest::Single(one(v)?)),
    }
}

/// What `precheck` learnt of the operation that will run.
struct Checked {
    name: Option<String>,
    /// A query's answer is bounded by `limits.response_bytes`; a mutation's is bounded by its
    /// input, and it has already written when its answer is known.
    is_query: bool,
}

/// Parses the request's document and applies the checks that come before execution:
/// `GET` only for queries, and the limits counted in one pass over the document
/// (`document`), which must refuse a fragment explosion before async-graphql expands it. Returns the name of the
/// operation that will run, when it has one.
fn precheck(
    req: &mut Request,
    method: &Method,
    limits: &Limits,
) -> Result<Checked, RequestFailure> {
    let op_name = req.operation_name.clone();
    let parsed = crate::graphql::spans::parse().in_scope(|| req.parsed_query().map(|_| ()));
    if let Err(e) = parsed {
        return Err(RequestFailure::bad_input(e.message));
    }
    let doc = match req.parsed_query() {
        Ok(doc) => doc,
        Err(e) => {
            return Err(RequestFailure::bad_input(e.message));
        }
    };
    // A lone named operation is kept in `Multiple`, and runs without `operationName`.
    let (op, name) = match (&doc.operations, op_name.as_deref()) {
        (DocumentOperations::Single(op), _) => (Some(op), None),
        (DocumentOperations::Multiple(ops), Some(name)) => (ops.get(name), Some(name.to_owned())),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            let (n, op) = ops.iter().next().map(|(n, op)| (n.to_string(), op)).unzip();
            (op, n)
        }
        (DocumentOperations::Multiple(_), None) => (None, None),
    };
    // An undeterminable operation is reported by execution, which knows the exact reason.
    let Some(op) = op else {
        return Ok(Checked {
            name,
            is_query: true,
        });
    };
    if *method == Method::GET && op.node.ty != OperationType::Query {
        return Err(RequestFailure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_USER_INPUT",
            "only queries may be sent with GET; send mutations with POST",
        )
        .with_allow("POST"));
    }
    let bounds = document::Bounds {
        aliases: limits.aliases,
        root_fields: limits.root_fields,
        fields: limits.complexity,
        fragments: limits.fragments,
    };
    if let Err(r) = document::check(doc, &op.node.selection_set.node, bounds) {
        let code = if r.is_limit() {
            "QUERY_TOO_COMPLEX"
        } else {
            "BAD_USER_INPUT"
        };
        return Err(RequestFailure::new(
            StatusCode::BAD_REQUEST,
            code,
            r.message(&bounds),
        ));
    }
    Ok(Checked {
        name,
        is_query: op.node.ty == OperationType::Query,
    })
}

fn error_json(code: &str, message: &str) -> Json {
    json!({ "message": message, "extensions": { "code": code } })
}

fn is_input_coercion(message: &str) -> bool {
    message.starts_with("Failed to parse")
        || message.starts_with("Invalid value")
        || message.starts_with("Expected input type")
}

/// Gives every error an `extensions.code`. Errors async-graphql raised itself have none:
/// before execution they are the client's document (parse, validation, limits); during
/// execution, input coercion is the client's too and anything else is internal.
fn code_errors(errors: &mut [ServerError], request_level: bool) {
    for e in errors {
        let has_code = e
            .extensions
            .as_ref()
            .is_some_and(|x| x.get("code").is_some());
        if has_code {
            continue;
        }
        let code = if e.message.starts_with("Query is too complex")
            || e.message.starts_with("Query is nested too deep")
            || e.message.contains("too many directives")
            || e.message.contains("recursion depth")
        {
            "QUERY_TOO_COMPLEX"
        } else if request_level
            || e.message.starts_with("Failed to parse")
            || e.message.starts_with("Invalid value")
        {
            "BAD_USER_INPUT"
        } else {
            "INTERNAL"
        };
        e.extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
}

struct Executed {
    /// The response's JSON text: written once, straight from async-graphql's answer (not
    /// through a `serde_json::Value` of the whole answer first, which copied a large page
    /// twice).
    body: String,
    request_error: bool,
    codes: Vec<String>,
}

async fn execute_one(
    state: &AppState,
    req: Request,
    caller: &Caller,
    request_id: Option<&str>,
) -> Executed {
    let mut req = req;
    if !state.settings.introspection_anonymous && caller.principal().is_none() {
        req = req.disable_introspection();
    }
    let mut req = req
        .data(DataLoader::new(
            Loaders::new(state.db.clone(), caller.clone()),
            tokio::spawn,
        ))
        .data(caller.clone());
    let now = chrono::Utc::now();
    let keep = match kept_answer(state, &mut req, caller, now).await {
        Ok(answer) => return answer,
        Err(keep) => keep,
    };
    let mut req = match &keep {
        Some((_, _, kept)) => req.data(state.access_log.keeping(kept.clone())),
        None => req,
    };
    let operation = req.operation_name.clone();
    let span = crate::graphql::spans::execute(req.parsed_query().ok(), operation.as_deref());
    let mut resp = state.schema.execute(req).instrument(span).await;
    // A response with no data whose errors are all the request's own (raised before any
    // field ran, or coercing the client's variables, which async-graphql does lazily) is a
    // request error in the specification's terms.
    let request_error = resp.data == async_graphql::Value::Null
        && !resp.errors.is_empty()
        && resp
            .errors
            .iter()
            .all(|e| e.path.is_empty() || is_input_coercion(&e.message));
    code_errors(&mut resp.errors, request_error);
    crate::error::report(&mut resp.errors, request_id);
    let codes: Vec<String> = resp
        .errors
        .iter()
        .filter_map(|e| {
            e.extensions
                .as_ref()?
                .get("code")
                .map(|v| v.to_string().trim_matches('"').to_owned())
        })
        .collect();
    let failed = |e: serde_json::Error| {
        tracing::error!(request_id, error = %e, "a GraphQL response could not be serialized");
        let mut error = error_json("INTERNAL", "internal error");
        error["extensions"]["requestId"] = request_id.into();
        json!({ "errors": [error] }).to_string()
    };
    let body = if request_error {
        // A request error has no `data` at all, not `null`; such answers are small.
        match serde_json::to_value(&resp) {
            Ok(mut v) => {
                if let Some(obj) = v.as_object_mut() {
                    obj.remove("data");
                }
                v.to_string()
            }
            Err(e) => failed(e),
        }
    } else {
        serde_json::to_string(&resp).unwrap_or_else(failed)
    };
    if let (Some(cache), Some((key, at, kept))) = (&state.cache, keep)
        && !request_error
        && codes.is_empty()
    {
        let reads = kept
            .lock()
            .map(|mut k| std::mem::take(&mut *k))
            .unwrap_or_default();
        cache.put(key, body.clone(), reads, now, at);
    }
    Executed {
        body,
        request_error,
        codes,
    }
}

/// What the response cache needs to keep an answer: its key, the data version it was made at,
/// and the access-log entries its making records.
type Keep = Option<(
    crate::cache::Key,
    crate::cache::Freshness,
    std::sync::Arc<std::sync::Mutex<Vec<crate::cache::Read>>>,
)>;

/// The response cache's side of a request: `Ok` with a kept answer to this caller's same read,
/// made at the data's present version (its access-log entries recorded again), or `Err` with
/// what keeping this request's answer needs (`None` when it may not be kept).
async fn kept_answer(
    state: &AppState,
    req: &mut Request,
    caller: &Caller,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Executed, Keep> {
    let Some(cache) = &state.cache else {
        return Err(None);
    };
    let query = req.query.clone();
    let variables = req.variables.clone();
    let operation = req.operation_name.clone();
    let key = req.parsed_query().ok().and_then(|doc| {
        crate::cache::Key::of(caller, &query, &variables, operation.as_deref(), doc, now)
    });
    let Some(key) = key else {
        return Err(None);
    };
    let at = match crate::cache::freshness(&state.db, now).await {
        Ok(at) => at,
        Err(e) => {
            // Without the version, nothing is given from the cache or kept in it.
            tracing::warn!(error = ?e, "response cache skipped");
            return Err(None);
        }
    };
    let Some(answer) = cache.get(&key, now, at) else {
        return Err(Some((key, at, Default::default())));
    };
    for r in &answer.reads {
        state
            .access_log
            .record(crate::access_log::Entry::new(
                caller,
                &r.operation,
                r.networks.clone(),
                r.refused,
            ))
            .await;
    }
    Ok(Executed {
        body: answer.body.clone(),
        request_error: false,
        codes: vec![],
    })
}

/// Authenticates the request once: no `Authorization` header is an anonymous caller; a header
/// that is not a good bearer token is refused with 401, never read as anonymous.
async fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Caller, RequestFailure> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(Caller::Anonymous);
    };
    let refuse =
        |message: &str| RequestFailure::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message);
    let value = value
        .to_str()
        .map_err(|_| refuse("the Authorization header is not text"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| refuse("use `Authorization: Bearer <token>`"))?;
    match auth::authenticate(&state.db, &state.keys, token).await {
        Ok(p) => Ok(Caller::Token(Box::new(p))),
        Err(e) => {
            if let auth::AuthError::Internal(cause) = &e {
                if crate::error::is_unavailable(cause) {
                    // A token that cannot be checked during an outage is not a bad token.
                    tracing::warn!(error.cause_chain = ?cause, "token check failed: database unavailable");
                    return Err(RequestFailure::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "UNAVAILABLE",
                        format!(
                            "the database is unavailable; try again in {} seconds",
                            crate::error::RETRY_AFTER_SECONDS
                        ),
                    ));
                }
                tracing::error!(error.cause_chain = ?cause, "token check failed");
            } else {
                tracing::info!(auth.refused = %e.detail(), "bearer token refused");
            }
            Err(refuse(e.client_message()))
        }
    }
}

/// The caller of a request outside GraphQL (the streamed imports), authenticated as every
/// GraphQL request is; otherwise the status, code and message to refuse it with.
pub(super) async fn authenticate_caller(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Caller, (StatusCode, &'static str, String)> {
    authenticate(req, state)
        .await
        .map_err(|f| (f.status, f.code, f.message))
}

/// Keeps the operation-name label set bounded: names are client input.
pub struct OperationLabels(Mutex<HashSet<String>>);

impl Default for OperationLabels {
    fn default() -> Self {
        Self(Mutex::new(HashSet::new()))
    }
}

impl OperationLabels {
    const MAX: usize = 200;

    fn label(&self, name: Option<&str>) -> String {
        let Some(name) = name else {
            return "anonymous".into();
        };
        if name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return "invalid".into();
        }
        let Ok(mut seen) = self.0.lock() else {
            return "other".into();
        };
        if seen.contains(name) || seen.len() < Self::MAX {
            seen.insert(name.to_owned());
            name.to_owned()
        } else {
            "other".into()
        }
    }
}

fn respond(media: MediaType, status: StatusCode, body: &Json, allow: Option<&str>) -> HttpResponse {
    respond_text(media, status, body.to_string(), allow)
}

fn respond_text(
    media: MediaType,
    status: StatusCode,
    body: String,
    allow: Option<&str>,
) -> HttpResponse {
    let mut b = HttpResponse::build(status);
    b.insert_header((
        header::CONTENT_TYPE,
        format!("{}; charset=utf-8", media.as_str()),
    ));
    if let Some(allow) = allow {
        b.insert_header((header::ALLOW, allow));
    }
    b.body(body)
}

/// `GET /graphql` and `POST /graphql`: negotiate, authenticate, read the request, then run
/// one operation or a batch.
pub async fn handle(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let Some(media) = negotiate(&req) else {
        return RequestFailure::new(
            StatusCode::NOT_ACCEPTABLE,
            "BAD_USER_INPUT",
            "send Accept: application/graphql-response+json or application/json",
        )
        .respond(MediaType::Json);
    };
    let caller = match authenticate(&req, &state).await {
        Ok(c) => c,
        Err(f) if f.status == StatusCode::SERVICE_UNAVAILABLE => {
            return retry_later(unreadable(&state, &f, media));
        }
        Err(f) => return unauthenticated(&state, &f, media),
    };
    if let Some(p) = caller.principal() {
        tracing::Span::current().record("auth.subject", p.subject.as_str());
    }
    let limits = &state.settings.limits;
    let trusted_only =
        state.settings.trusted_documents.anonymous_only && caller.principal().is_none();
    let read = match uploads::admit(&req, &caller, limits) {
        Err(f) => return uploads::refused(&state, &f, media),
        // A multipart request carries its own document, never a registered one.
        Ok(Some(_)) if trusted_only => Err(self::trusted_only()),
        Ok(Some(ctype)) => uploads::read(&req, &mut payload, &ctype, &caller, limits).await,
        Ok(None) => read_request(&req, &mut payload, &state, &caller).await,
    };
    let batch = match read {
        Ok(b) => b,
        Err(f) => return unreadable(&state, &f, media),
    };
    if let Some(limiter) = &state.rate_limiter
        && let rate_limit::Decision::Limited {
            budget,
            retry_after,
        } = limiter.charge(&caller, &req, parse_fee(&batch))
    {
        let resp = rate_limited(&state, &caller, media, &budget, retry_after);
        record(&state, "none", started, true, &["RATE_LIMITED".to_owned()]);
        return resp;
    }
    let run = Run {
        state: &state,
        http: &req,
        caller: &caller,
        method: req.method(),
        media,
        started,
        request_id: req.extensions().get::<RequestId>().map(|id| id.to_string()),
    };
    match batch {
        BatchRequest::Single(r) => run.single(r).await,
        BatchRequest::Batch(rs) => run.batch(rs).await,
    }
}

/// 401, with the challenge the bearer scheme asks for.
fn unauthenticated(state: &AppState, f: &RequestFailure, media: MediaType) -> HttpResponse {
    state
        .metrics
        .requests
        .with_label_values(&["none", "unauthenticated"])
        .inc();
    let mut resp = f.respond(media);
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    resp
}

/// A request that could not be read as GraphQL (query string, body, content type, batch).
fn unreadable(state: &AppState, f: &RequestFailure, media: MediaType) -> HttpResponse {
    state
        .metrics
        .requests
        .with_label_values(&["none", "refused"])
        .inc();
    state
        .metrics
        .errors
        .with_label_values(&["none", f.code])
        .inc();
    f.respond(media)
}

async fn read_request(
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: &AppState,
    caller: &Caller,
) -> Result<BatchRequest, RequestFailure> {
    let sources = Sources {
        trusted: &state.trusted_documents,
        trusted_only: state.settings.trusted_documents.anonymous_only
            && caller.principal().is_none(),
    };
    if *req.method() == Method::GET {
        from_get(req, sources)
    } else {
        from_post(req, payload, &state.settings.limits, sources).await
    }
}

/// What running a request's operations needs to know about it.
struct Run<'a> {
    state: &'a AppState,
    http: &'a HttpRequest,
    caller: &'a Caller,
    method: &'a Method,
    media: MediaType,
    started: Instant,
    request_id: Option<String>,
}

impl Run<'_> {
    async fn single(&self, mut r: Request) -> HttpResponse {
        // Method-not-allowed must be answered as such, before anything runs.
        let checked = precheck(&mut r, self.method, &self.state.settings.limits);
        let name = match &checked {
            Ok(c) => c.name.clone(),
            Err(_) => r.operation_name.clone(),
        };
        let label = self.state.operation_labels.label(name.as_deref());
        tracing::Span::current().record("graphql.operation", label.as_str());
        let checked = match checked {
            Ok(c) => c,
            Err(f) => {
                record(self.state, &label, self.started, true, &[f.code.to_owned()]);
                return f.respond(self.media);
            }
        };
        let budget = match self.admit(&mut [&mut r], false).await {
            Ok(b) => b,
            Err((code, resp)) => {
                record(self.state, &label, self.started, true, &[code.to_owned()]);
                return resp;
            }
        };
        let out = match self.within_time(self.execute(r)).await {
            Ok(out) => out,
            Err(f) => {
                record(self.state, &label, self.started, true, &[f.code.to_owned()]);
                return f.respond(self.media);
            }
        };
        let status = if out.request_error && self.media == MediaType::GraphqlResponseJson {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        let text = out.body;
        if checked.is_query
            && let Err(f) = self.within_size(&text)
        {
            record(self.state, &label, self.started, true, &[f.code.to_owned()]);
            return f.respond(self.media);
        }
        record(
            self.state,
            &label,
            self.started,
            out.request_error,
            &out.codes,
        );
        let status = if outage(&out.codes) {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            status
        };
        retry_later(with_budget(
            respond_text(self.media, status, text, None),
            budget,
        ))
    }

    /// A batch answers 200 with one result per operation, unless one of them may not be sent
    /// with this method, which refuses the whole batch, or the batch costs more than one
    /// operation may, or more than the caller has left: those refuse it before any runs.
    async fn batch(&self, rs: Vec<Request>) -> HttpResponse {
        let label = "batch";
        tracing::Span::current().record("graphql.operation", label);
        let mut slots: Vec<Result<Request, RequestFailure>> = Vec::with_capacity(rs.len());
        let mut all_queries = true;
        for mut r in rs {
            match precheck(&mut r, self.method, &self.state.settings.limits) {
                Ok(c) => {
                    all_queries &= c.is_query;
                    slots.push(Ok(r));
                }
                Err(f) if f.status == StatusCode::METHOD_NOT_ALLOWED => {
                    return f.respond(self.media);
                }
                Err(f) => slots.push(Err(f)),
            }
        }
        let mut runnable: Vec<&mut Request> =
            slots.iter_mut().filter_map(|s| s.as_mut().ok()).collect();
        let budget = match self.admit(&mut runnable, true).await {
            Ok(b) => b,
            Err((code, resp)) => {
                record(self.state, label, self.started, true, &[code.to_owned()]);
                return resp;
            }
        };
        let run_all = async {
            let mut bodies = Vec::with_capacity(slots.len());
            let mut codes = vec![];
            let mut any_request_error = false;
            for slot in slots {
                match slot {
                    Ok(r) => {
                        let out = self.execute(r).await;
                        any_request_error |= out.request_error;
                        codes.extend(out.codes);
                        bodies.push(out.body);
                    }
                    Err(f) => {
                        any_request_error = true;
                        codes.push(f.code.to_owned());
                        bodies.push(f.body().to_string());
                    }
                }
            }
            (bodies, codes, any_request_error)
        };
        let (bodies, codes, any_request_error) = match self.within_time(run_all).await {
            Ok(v) => v,
            Err(f) => {
                record(self.state, label, self.started, true, &[f.code.to_owned()]);
                return f.respond(self.media);
            }
        };
        let text = format!("[{}]", bodies.join(","));
        if all_queries && let Err(f) = self.within_size(&text) {
            record(self.state, label, self.started, true, &[f.code.to_owned()]);
            return f.respond(self.media);
        }
        record(self.state, label, self.started, any_request_error, &codes);
        let status = if outage(&codes) {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        retry_later(with_budget(
            respond_text(self.media, status, text, None),
            budget,
        ))
    }

    async fn execute(&self, r: Request) -> Executed {
        execute_one(self.state, r, self.caller, self.request_id.as_deref()).await
    }

    /// Prices the operations without running them (a batch by their sum), refuses what costs
    /// more than the complexity limit, and charges the rest to the caller's rate limit.
    async fn admit(
        &self,
        ops: &mut [&mut Request],
        batch: bool,
    ) -> Result<Option<rate_limit::Budget>, (&'static str, HttpResponse)> {
        let limit = self.state.settings.limits.complexity;
        let mut total = 0usize;
        for r in ops.iter_mut() {
            let cost = price(self.state, r, self.caller).await;
            if cost > limit {
                let e = crate::graphql::cost::too_complex(cost, limit);
                let f =
                    RequestFailure::new(StatusCode::BAD_REQUEST, "QUERY_TOO_COMPLEX", e.message);
                return Err((f.code, f.respond(self.media)));
            }
            total = total.saturating_add(cost);
        }
        if batch && total > limit {
            let f = RequestFailure::new(
                StatusCode::BAD_REQUEST,
                "QUERY_TOO_COMPLEX",
                format!(
                    "the batch's operations cost {total} together; the limit is {limit} (send fewer or smaller operations)"
                ),
            );
            return Err((f.code, f.respond(self.media)));
        }
        let Some(limiter) = &self.state.rate_limiter else {
            return Ok(None);
        };
        match limiter.charge(self.caller, self.http, total) {
            rate_limit::Decision::Allowed(b) => Ok(Some(b)),
            rate_limit::Decision::Limited {
                budget,
                retry_after,
            } => Err((
                "RATE_LIMITED",
                rate_limited(self.state, self.caller, self.media, &budget, retry_after),
            )),
        }
    }

    /// Runs `work` within the request time limit; work still running then is dropped, which
    /// stops it (PostgreSQL's `statement_timeout` ends a statement already sent).
    async fn within_time<T>(&self, work: impl Future<Output = T>) -> Result<T, RequestFailure> {
        let secs = self.state.settings.limits.request_timeout_seconds;
        tokio::time::timeout(Duration::from_secs(secs), work)
            .await
            .map_err(|_| {
                tracing::warn!(limit.seconds = secs, "request stopped at the time limit");
                RequestFailure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "TIMEOUT",
                    format!(
                        "the request ran longer than the limit of {secs} s and was stopped (ask for less, or split it)"
                    ),
                )
            })
    }

    fn within_size(&self, text: &str) -> Result<(), RequestFailure> {
        let limit = self.state.settings.limits.response_bytes;
        if text.len() <= limit {
            return Ok(());
        }
        Err(RequestFailure::new(
            StatusCode::BAD_REQUEST,
            "QUERY_TOO_COMPLEX",
            format!(
                "the answer would be {} bytes; the limit is {limit} (ask for fewer fields, cells or smaller pages)",
                text.len()
            ),
        ))
    }
}

/// An operation's cost, found by validating it without running it. One that does not
/// validate costs nothing here: running it reports why, and runs nothing.
async fn price(state: &AppState, r: &mut Request, caller: &Caller) -> usize {
    let priced = PriceOnly::default();
    let mut probe = Request::new(r.query.clone()).variables(r.variables.clone());
    // The document precheck parsed, not a second parse: parsing is most of a refusal's cost.
    if let Ok(doc) = r.parsed_query() {
        probe.set_parsed_query(doc.clone());
    }
    if let Some(name) = &r.operation_name {
        probe = probe.operation_name(name.clone());
    }
    let _ = state
        .pricing
        .execute(probe.data(priced.clone()).data(caller.clone()))
        .await;
    priced.cost().unwrap_or(0)
}

/// 429, with when to retry and the caller's budget.
fn rate_limited(
    state: &AppState,
    caller: &Caller,
    media: MediaType,
    budget: &rate_limit::Budget,
    retry_after: u64,
) -> HttpResponse {
    let f = RequestFailure::new(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        format!(
            "this caller has spent its budget of query cost ({} at once, {} a minute); retry in {retry_after} s",
            budget.limit,
            state
                .settings
                .rate_limit_per_minute(caller.principal().is_some()),
        ),
    );
    let mut resp = f.respond(media);
    budget.write(resp.headers_mut());
    if let Ok(v) = header::HeaderValue::from_str(&retry_after.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// What reading a request's documents costs before they are priced: parsing is work a
/// refused request does too, so it is paid for first, and a caller whose budget is spent is
/// turned away before anything is parsed. 1 for each 100 bytes of document (a full 1 MB
/// body: 10,486), at least 1.
fn parse_fee(batch: &BatchRequest) -> usize {
    let bytes: usize = match batch {
        BatchRequest::Single(r) => r.query.len(),
        BatchRequest::Batch(rs) => rs.iter().map(|r| r.query.len()).sum(),
    };
    (bytes / 100).max(1)
}

fn with_budget(mut resp: HttpResponse, budget: Option<rate_limit::Budget>) -> HttpResponse {
    if let Some(b) = budget {
        b.write(resp.headers_mut());
    }
    resp
}

/// Whether an answer met a database outage: then it is the server's failure, not the client's.
fn outage(codes: &[String]) -> bool {
    codes.iter().any(|c| c == "UNAVAILABLE")
}

/// A 503 asks the client to come back (`Retry-After`), so a dashboard or a load balancer can
/// tell an outage from a fault.
fn retry_later(mut resp: HttpResponse) -> HttpResponse {
    if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(crate::error::RETRY_AFTER_SECONDS),
        );
    }
    resp
}

fn record(state: &AppState, label: &str, started: Instant, request_error: bool, codes: &[String]) {
    let outcome = if request_error {
        "refused"
    } else if codes.is_empty() {
        "ok"
    } else {
        "partial"
    };
    state
        .metrics
        .requests
        .with_label_values(&[label, outcome])
        .inc();
    state
        .metrics
        .latency
        .with_label_values(&[label])
        .observe(started.elapsed().as_secs_f64());
    for c in codes {
        state
            .metrics
            .errors
            .with_label_values(&[label, c.as_str()])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn accept(v: Option<&str>) -> Option<MediaType> {
        let mut r = TestRequest::default();
        if let Some(v) = v {
            r = r.insert_header((header::ACCEPT, v));
        }
        negotiate(&r.to_http_request())
    }

    #[test]
    fn negotiates_media_types() {
        assert_eq!(accept(None), Some(MediaType::GraphqlResponseJson));
        assert_eq!(accept(Some("*/*")), Some(MediaType::GraphqlResponseJson));
        assert_eq!(accept(Some("application/json")), Some(MediaType::Json));
        assert_eq!(
            accept(Some("application/json, application/graphql-response+json")),
            Some(MediaType::GraphqlResponseJson)
        );
        assert_eq!(
            accept(Some(
                "application/graphql-response+json;q=0.5, application/json"
            )),
            Some(MediaType::Json)
        );
        assert_eq!(accept(Some("text/html")), None);
    }

    #[test]
    fn operation_labels_stay_bounded() {
        let l = OperationLabels::default();
        assert_eq!(l.label(None), "anonymous");
        assert_eq!(l.label(Some("bad name")), "invalid");
        for i in 0..OperationLabels::MAX {
            assert_eq!(l.label(Some(&format!("op{i}"))), format!("op{i}"));
        }
        assert_eq!(l.label(Some("one_more")), "other");
        assert_eq!(l.label(Some("op3")), "op3");
    }
}
