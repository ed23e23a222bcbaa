//! The GraphQL schema, one module per area, joined here; the limits async-graphql enforces
//! itself (depth, complexity) are set where the schema is built.

pub mod connection;
pub mod directory;
pub mod directory_writes;
pub mod identity;
pub mod impact;
pub mod loaders;
pub mod returns;
pub mod scalars;
pub mod sharing;

use std::sync::Arc;

use async_graphql::{Context, EmptySubscription, MergedObject, Schema, extensions};
use sea_orm::DatabaseConnection;

use crate::access_log::AccessLog;
use crate::auth::Keys;
use crate::config::Settings;

#[derive(MergedObject, Default)]
pub struct Query(
    identity::IdentityQuery,
    directory::DirectoryQuery,
    returns::ReturnsQuery,
    impact::ImpactQuery,
    sharing::SharingQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    directory_writes::DirectoryMutation,
    identity::TokenMutation,
    returns::ReturnsMutation,
    sharing::SharingMutation,
);

pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema the server runs, with the settings' limits.
pub fn build(
    settings: &Settings,
    db: DatabaseConnection,
    keys: Arc<Keys>,
    access_log: AccessLog,
) -> AppSchema {
    let mut b = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(settings.limits.depth)
        .limit_complexity(settings.limits.complexity)
        .limit_recursive_depth(64)
        .limit_directives(10)
        .extension(extensions::Tracing)
        .data(db)
        .data(keys)
        .data(access_log);
    if !settings.introspection {
        b = b.disable_introspection();
    }
    b.finish()
}

/// The SDL that `schema.graphql` must equal.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .finish()
        .sdl()
}

/// Records a read of returns or aggregates (or a refused one) in the access log.
pub(crate) async fn log_read(
    ctx: &Context<'_>,
    operation: &str,
    networks: Vec<i64>,
    refused: bool,
) {
    match ctx.data::<crate::access_log::AccessLog>() {
        Ok(log) => {
            log.record(crate::access_log::Entry::new(
                identity::caller(ctx),
                operation,
                networks,
                refused,
            ))
            .await
        }
        Err(_) => tracing::error!(operation, "no access log in the schema: read not recorded"),
    }
}
