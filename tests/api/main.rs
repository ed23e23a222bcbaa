//! Integration tests: the real server on port 0 with a fresh database each, over HTTP.
//! Every database test runs twice, against SQLite and against PostgreSQL
//! (`PG_TEST_URL`, which `scripts/test` provides by starting a throwaway server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod cache;
mod cli;
mod dashboard;
mod demo_returns;
mod directory;
mod directory_writes;
mod disclosure;
mod exact;
mod http;
mod identity;
mod impact;
mod impact_model;
mod imports;
mod limits;
mod migrations;
mod outage;
mod read_costs;
mod returns;
mod schema;
mod sharing;
mod sharing_model;
mod spend;
mod spend_analysis;
mod vocab;
