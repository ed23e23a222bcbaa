//! The regional dashboard (`GET /dashboard`): a page served by the binary itself, its
//! assets embedded at build time, that reads the public GraphQL API as any client would,
//! with the caller's token when one is given.
//!
//! The page runs only the operations listed in [`DOCUMENTS`]: they are the service's
//! built-in trusted documents, registered on every server under these ids, so the page
//! sends `{"documentId": "dashboard-headline", "variables": …}` and works where
//! `trusted_documents.anonymous_only` is on. `docs/dashboard.md` describes the page.

use actix_web::http::header;
use actix_web::{HttpResponse, guard, web};

/// The dashboard's GraphQL operations, by id: the one list of them. Each file holds one
/// named operation; the page (`assets/dashboard/app.js`) names the same ids.
pub const DOCUMENTS: &[(&str, &str)] = &[
    (
        "dashboard-context",
        include_str!("../../assets/dashboard/documents/context.graphql"),
    ),
    (
        "dashboard-headline",
        include_str!("../../assets/dashboard/documents/headline.graphql"),
    ),
    (
        "dashboard-networks",
        include_str!("../../assets/dashboard/documents/networks.graphql"),
    ),
    (
        "dashboard-trends",
        include_str!("../../assets/dashboard/documents/trends.graphql"),
    ),
    (
        "dashboard-districts",
        include_str!("../../assets/dashboard/documents/districts.graphql"),
    ),
];

/// One embedded file: its path under `/dashboard/`, media type and bytes.
struct Asset {
    path: &'static str,
    media_type: &'static str,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// Everything the page loads. Vendored libraries keep their licence files beside them
/// (`assets/dashboard/vendor/*/LICENSE`); they are not served.
const ASSETS: &[Asset] = &[
    Asset {
        path: "",
        media_type: "text/html; charset=utf-8",
        body: include_bytes!("../../assets/dashboard/index.html"),
    },
    Asset {
        path: "app.js",
        media_type: JS,
        body: include_bytes!("../../assets/dashboard/app.js"),
    },
    Asset {
        path: "style.css",
        media_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/dashboard/style.css"),
    },
    Asset {
        path: "vendor/d3.min.js",
        media_type: JS,
        body: include_bytes!("../../assets/dashboard/vendor/d3/d3.min.js"),
    },
    Asset {
        path: "vendor/plot.umd.min.js",
        media_type: JS,
        body: include_bytes!("../../assets/dashboard/vendor/plot/plot.umd.min.js"),
    },
    Asset {
        path: "districts.geojson",
        media_type: "application/geo+json",
        body: include_bytes!("../../demo/geography/wmca-districts.geojson"),
    },
];

/// What the page may load and where it may send: only this server. Inline styles are
/// allowed because the charting library sets them on the SVG it draws; inline scripts
/// are not.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// Registers the page and its assets under `/dashboard` (GET and HEAD), compressed when
/// the client accepts it.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let read = || web::route().guard(guard::Any(guard::Get()).or(guard::Head()));
    cfg.service(
        web::scope("/dashboard")
            .wrap(actix_web::middleware::Compress::default())
            .route("", read().to(index))
            .route("/", read().to(index))
            .route("/{file:.+}", read().to(asset)),
    );
}

async fn index() -> HttpResponse {
    serve("")
}

async fn asset(path: web::Path<String>) -> HttpResponse {
    serve(&path.into_inner())
}

fn serve(path: &str) -> HttpResponse {
    let Some(a) = ASSETS.iter().find(|a| a.path == path) else {
        return HttpResponse::NotFound()
            .content_type("text/plain")
            .body("no such dashboard file\n");
    };
    HttpResponse::Ok()
        .content_type(a.media_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // Assets change only with the binary; revalidating each load costs little on loopback
        // and never serves a page with the previous binary's script.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(a.body)
}

/// Every embedded file: its address and its size uncompressed (`examples/dashboard_timing.rs`
/// fetches each one compressed for BENCHMARKS.md).
pub fn assets() -> impl Iterator<Item = (String, usize)> {
    ASSETS
        .iter()
        .map(|a| (format!("/dashboard/{}", a.path), a.body.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_document_parses_and_is_one_named_operation() {
        for (id, text) in DOCUMENTS {
            let doc = async_graphql::parser::parse_query(text)
                .unwrap_or_else(|e| panic!("{id} does not parse: {e}"));
            let ops: Vec<_> = doc.operations.iter().collect();
            assert_eq!(ops.len(), 1, "{id} must hold one operation");
            assert!(ops[0].0.is_some(), "{id}'s operation must be named");
        }
    }

    #[test]
    fn the_page_names_exactly_the_registered_documents() {
        let js = std::str::from_utf8(
            ASSETS
                .iter()
                .find(|a| a.path == "app.js")
                .map(|a| a.body)
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        let mut used: Vec<&str> = js
            .split('"')
            .filter(|s| s.starts_with("dashboard-") && !s.contains(' '))
            .collect();
        used.sort_unstable();
        used.dedup();
        let mut registered: Vec<&str> = DOCUMENTS.iter().map(|(id, _)| *id).collect();
        registered.sort_unstable();
        assert_eq!(used, registered);
    }

    #[test]
    fn index_links_only_embedded_assets() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap_or_default();
        for part in html.split("/dashboard/").skip(1) {
            let path = part.split('"').next().unwrap_or_default();
            assert!(
                ASSETS.iter().any(|a| a.path == path),
                "index.html links /dashboard/{path}, which is not embedded"
            );
        }
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
