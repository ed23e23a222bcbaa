//! File uploads: the GraphQL multipart request (graphql-multipart-request-spec), read so that
//! nobody gets a byte of a file read, buffered or parsed before they are authorised for it.
//!
//! 1. From the headers alone ([`admit`]): the caller must be one who may submit returns at all
//!    (`policy::returns::may_upload_returns`), and a declared length must be within
//!    `limits.upload_bytes`. A stranger is turned away before the body is touched.
//! 2. From the `operations` part, which the specification sends before the files: every
//!    `importReturns` in it must name the caller's own network
//!    (`policy::returns::may_upload_returns_to`), before the first file part is read.
//! 3. The body is counted as it streams, and the files are held once, in memory.
//!
//! The resolver still decides the submission itself, as it does for `submitReturns`.

use std::collections::{HashMap, HashSet};
use std::pin::pin;

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{BatchRequest, Request, UploadValue, Value};
use futures_util::StreamExt;
use futures_util::future::{Either, select};

use super::{AppState, MediaType, RequestFailure, unreadable};
use crate::auth::Caller;
use crate::config::Limits;
use crate::error::ApiError;
use crate::policy;

/// At most this many files in one request.
const MAX_FILES: usize = 4;

/// The mutation that takes a file, and its argument naming the network.
const IMPORT_FIELD: &str = "importReturns";
const NETWORK_ARGUMENT: &str = "networkId";

fn refusal(e: &ApiError) -> RequestFailure {
    let status = match e {
        ApiError::Forbidden { reason } => {
            tracing::info!(refusal.reason = %reason, "upload refused before its files were read");
            StatusCode::FORBIDDEN
        }
        ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    RequestFailure::new(status, e.code(), e.message())
}

fn too_large(limit: usize) -> RequestFailure {
    RequestFailure::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "QUERY_TOO_COMPLEX",
        format!("the upload is larger than the limit of {limit} bytes (limits.upload_bytes)"),
    )
}

/// Admits an upload from its headers alone, before a byte of its body is read: `Ok(Some(content
/// type))` for a multipart form to read with [`read`], `Ok(None)` for a request that is not
/// an upload (or not one this server reads, which the ordinary path refuses).
pub(super) fn admit(
    req: &HttpRequest,
    caller: &Caller,
    limits: &Limits,
) -> Result<Option<String>, RequestFailure> {
    let Some(ctype) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let Some(mime) = ctype
        .parse::<mime::Mime>()
        .ok()
        .filter(|m| m.type_() == mime::MULTIPART)
    else {
        return Ok(None);
    };
    if *req.method() != Method::POST {
        return Ok(None);
    }
    policy::returns::may_upload_returns(caller).map_err(|e| refusal(&e))?;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(len) = declared.filter(|len| *len > limits.upload_bytes) {
        return Err(RequestFailure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "QUERY_TOO_COMPLEX",
            format!(
                "the upload is {len} bytes; the limit is {} bytes (limits.upload_bytes)",
                limits.upload_bytes
            ),
        ));
    }
    Ok((mime.subtype() == mime::FORM_DATA).then(|| ctype.to_owned()))
}

/// An upload turned away; an anonymous one gets the bearer challenge.
pub(super) fn refused(state: &AppState, f: &RequestFailure, media: MediaType) -> HttpResponse {
    let mut resp = unreadable(state, f, media);
    if f.status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    resp
}

/// Reads an admitted upload. A browser can send `multipart/form-data` cross-site without a
/// preflight, so uploads must carry a header no simple request can: `GraphQL-Require-Preflight`
/// (any value), which turns a forged cross-site upload away.
pub(super) async fn read(
    req: &HttpRequest,
    payload: &mut web::Payload,
    ctype: &str,
    caller: &Caller,
    limits: &Limits,
) -> Result<BatchRequest, RequestFailure> {
    if !req.headers().contains_key("graphql-require-preflight") {
        return Err(RequestFailure::bad_input(
            "uploads need the `GraphQL-Require-Preflight` header (any value), so a browser cannot send one cross-site",
        ));
    }
    let boundary = multer::parse_boundary(ctype)
        .map_err(|e| RequestFailure::bad_input(format!("not a GraphQL multipart request: {e}")))?;
    // The multipart parser wants a stream it can send between threads, which actix's payload
    // is not: the body reaches it through a small channel, so it is read only as fast as it
    // is parsed, and no further once the parser stops (a refusal, an error, the end).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<web::Bytes>(4);
    let limit = limits.upload_bytes;
    let pump = async move {
        let mut seen = 0usize;
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| RequestFailure::bad_input(format!("could not read the body: {e}")))?;
            seen += chunk.len();
            if seen > limit {
                return Err(too_large(limit));
            }
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
        Ok(())
    };
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
        .map(Ok::<web::Bytes, std::convert::Infallible>);
    let parse = parse(body, boundary, caller, limits);
    match select(pin!(parse), pin!(pump)).await {
        Either::Left((parsed, _)) => parsed,
        Either::Right((Err(f), _)) => Err(f),
        Either::Right((Ok(()), parse)) => parse.await,
    }
}

async fn parse(
    body: impl futures_util::Stream<Item = Result<web::Bytes, std::convert::Infallible>>
    + Send
    + 'static,
    boundary: String,
    caller: &Caller,
    limits: &Limits,
) -> Result<BatchRequest, RequestFailure> {
    let size = multer::SizeLimit::new()
        .whole_stream(limits.upload_bytes as u64)
        .per_field(limits.upload_bytes as u64)
        .for_field("operations", limits.body_bytes as u64)
        .for_field("map", limits.body_bytes as u64);
    let mut form = multer::Multipart::with_constraints(
        body,
        boundary,
        multer::Constraints::new().size_limit(size),
    );
    let unreadable = |e: multer::Error| match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            too_large(limits.upload_bytes)
        }
        e => RequestFailure::bad_input(format!("not a GraphQL multipart request: {e}")),
    };
    let mut batch: Option<BatchRequest> = None;
    let mut map: Option<HashMap<String, Vec<String>>> = None;
    let mut files = 0;
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("operations") => {
                let bytes = field.bytes().await.map_err(unreadable)?;
                batch = Some(operations(&bytes, limits)?);
            }
            Some("map") => {
                let bytes = field.bytes().await.map_err(unreadable)?;
                map = Some(serde_json::from_slice(&bytes).map_err(|e| {
                    RequestFailure::bad_input(format!("the `map` part is not a JSON map: {e}"))
                })?);
            }
            name => {
                let (Some(batch), Some(map)) = (batch.as_mut(), map.as_mut()) else {
                    return Err(RequestFailure::bad_input(
                        "the `operations` and `map` parts must come before the files",
                    ));
                };
                if files == 0 {
                    authorise(batch, caller)?;
                }
                files += 1;
                if files > MAX_FILES {
                    return Err(RequestFailure::bad_input(format!(
                        "at most {MAX_FILES} files in one request"
                    )));
                }
                let name = name.unwrap_or_default().to_owned();
                let Some(paths) = map.remove(&name) else {
                    return Err(RequestFailure::bad_input(format!(
                        "the file part `{name}` is not in `map`"
                    )));
                };
                let upload = UploadValue {
                    filename: field.file_name().unwrap_or_default().to_owned(),
                    content_type: field.content_type().map(ToString::to_string),
                    content: field.bytes().await.map_err(unreadable)?,
                };
                place(batch, &paths, &upload)?;
            }
        }
    }
    let batch =
        batch.ok_or_else(|| RequestFailure::bad_input("the `operations` part is missing"))?;
    match map {
        None => Err(RequestFailure::bad_input("the `map` part is missing")),
        Some(m) if !m.is_empty() => Err(RequestFailure::bad_input(format!(
            "`map` names files that were not sent: {}",
            m.keys().cloned().collect::<Vec<_>>().join(", ")
        ))),
        Some(_) => Ok(batch),
    }
}

/// The `operations` part: one GraphQL request or a batch, as a JSON body would carry it.
fn operations(bytes: &[u8], limits: &Limits) -> Result<BatchRequest, RequestFailure> {
    let batch: BatchRequest = serde_json::from_slice(bytes).map_err(|e| {
        RequestFailure::bad_input(format!(
            "the `operations` part is not a GraphQL request: {e}"
        ))
    })?;
    if let BatchRequest::Batch(rs) = &batch
        && rs.len() > limits.batch
    {
        return Err(RequestFailure::new(
            StatusCode::BAD_REQUEST,
            "QUERY_TOO_COMPLEX",
            format!(
                "the batch has {} operations; the limit is {}",
                rs.len(),
                limits.batch
            ),
        ));
    }
    Ok(batch)
}

/// Puts a file where `map` says, at `variables.…` (or `N.variables.…` in a batch).
fn place(
    batch: &mut BatchRequest,
    paths: &[String],
    upload: &UploadValue,
) -> Result<(), RequestFailure> {
    for path in paths {
        let copy = upload
            .try_clone()
            .map_err(|e| RequestFailure::bad_input(format!("could not hold the file: {e}")))?;
        match batch {
            BatchRequest::Single(r) => r.set_upload(path, copy),
            BatchRequest::Batch(rs) => {
                let target = path
                    .split_once('.')
                    .and_then(|(i, rest)| Some((rs.get_mut(i.parse::<usize>().ok()?)?, rest)));
                match target {
                    Some((r, rest)) => r.set_upload(rest, copy),
                    None => {
                        return Err(RequestFailure::bad_input(format!(
                            "`map` path `{path}` names no operation of the batch"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Before the first file is read: every `importReturns` of the operations that will run must
/// name a network the caller may submit for. What cannot be read here (a document that does
/// not parse, an operation that cannot be chosen, a network given some other way) is left to
/// execution, which refuses it before the file is parsed.
fn authorise(batch: &BatchRequest, caller: &Caller) -> Result<(), RequestFailure> {
    let requests: Vec<&Request> = match batch {
        BatchRequest::Single(r) => vec![r],
        BatchRequest::Batch(rs) => rs.iter().collect(),
    };
    for r in requests {
        for named in networks_named(r) {
            policy::returns::may_upload_returns_to(caller, &named).map_err(|e| refusal(&e))?;
        }
    }
    Ok(())
}

/// The `networkId` of every `importReturns` in the mutation `r` will run.
fn networks_named(r: &Request) -> Vec<String> {
    let Ok(doc) = async_graphql::parser::parse_query(&r.query) else {
        return vec![];
    };
    let op = match (&doc.operations, r.operation_name.as_deref()) {
        (DocumentOperations::Single(op), _) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        (DocumentOperations::Multiple(_), None) => None,
    };
    let Some(op) = op.filter(|op| op.node.ty == OperationType::Mutation) else {
        return vec![];
    };
    let mut out = vec![];
    let mut seen = HashSet::new();
    collect(&doc, &op.node.selection_set.node, r, &mut seen, &mut out);
    out
}

/// Root fields through fragments, each fragment visited once (however often it is spread),
/// so the walk is linear in the document.
fn collect<'d>(
    doc: &'d ExecutableDocument,
    set: &'d SelectionSet,
    r: &Request,
    seen: &mut HashSet<&'d str>,
    out: &mut Vec<String>,
) {
    for sel in &set.items {
        match &sel.node {
            Selection::Field(f) if f.node.name.node == IMPORT_FIELD => {
                let value = f.node.get_argument(NETWORK_ARGUMENT).and_then(|v| {
                    v.node
                        .clone()
                        .into_const_with(|name| r.variables.get(&name).cloned().ok_or(()))
                        .ok()
                });
                match value {
                    Some(Value::String(s)) => out.push(s),
                    Some(Value::Number(n)) => out.push(n.to_string()),
                    _ => {}
                }
            }
            Selection::Field(_) => {}
            Selection::InlineFragment(i) => collect(doc, &i.node.selection_set.node, r, seen, out),
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.as_str();
                if seen.insert(name)
                    && let Some(f) = doc.fragments.get(&s.node.fragment_name.node)
                {
                    collect(doc, &f.node.selection_set.node, r, seen, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(query: &str, variables: serde_json::Value) -> Vec<String> {
        let r = Request::new(query).variables(async_graphql::Variables::from_json(variables));
        networks_named(&r)
    }

    #[test]
    fn finds_the_networks_an_upload_names() {
        let m = "mutation($n: ID!, $f: Upload!) { a: importReturns(networkId: $n, file: $f) { dryRun } \
                 b: importReturns(networkId: \"sandwell\", file: $f) { dryRun } ...F } \
                 fragment F on Mutation { ... on Mutation { importReturns(networkId: 7, file: $f) { dryRun } } }";
        assert_eq!(
            named(m, serde_json::json!({"n": "birmingham"})),
            ["birmingham", "sandwell", "7"]
        );
        // Queries take no files; an unparsable document is execution's to report.
        assert!(named("{ viewer { role } }", serde_json::json!({})).is_empty());
        assert!(named("mutation {", serde_json::json!({})).is_empty());
        // A missing variable names nothing here; execution refuses it.
        assert!(named(m.replace("...F", "").as_str(), serde_json::json!({})).len() == 1);
    }

    #[test]
    fn each_fragment_is_walked_once() {
        // 40 levels of fragments each spreading the next twice: 2^40 spreads, 40 visits.
        let mut q = String::from("mutation { ...F0 }");
        for i in 0..40 {
            q.push_str(&format!(
                " fragment F{i} on Mutation {{ ...F{n} ...F{n} }}",
                n = i + 1
            ));
        }
        q.push_str(
            " fragment F40 on Mutation { importReturns(networkId: \"x\", file: null) { dryRun } }",
        );
        assert_eq!(named(&q, serde_json::json!({})), ["x"]);
    }
}
