//! anchorfed: a GraphQL service that joins local anchor-institution networks into a
//! regional federation. See `DESIGN.md` in the shared folder and the README.

pub mod access_log;
pub mod analytics;
pub mod auth;
pub mod cache;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod directory;
pub mod domain;
pub mod error;
pub mod geography;
pub mod graphql;
pub mod ingest;
pub mod integrity;
pub mod pagination;
pub mod policy;
pub mod returns;
pub mod server;
pub mod sharing;
pub mod sql;
pub mod telemetry;
