//! The GraphQL schema, one module per area, joined here; the limits async-graphql enforces
//! itself (depth, complexity) are set where the schema is built.

pub mod catalogue;
mod cells;
pub mod connection;
pub mod context;
pub mod cost;
pub mod directory;
pub mod directory_writes;
pub mod enums;
pub mod identity;
pub mod impact;
pub mod imports;
pub mod loaders;
pub mod objects;
pub mod returns;
pub mod scalars;
pub mod sharing;
pub mod spans;
pub mod spend;

use std::sync::Arc;

use async_graphql::{EmptySubscription, MergedObject, Schema};
use sea_orm::DatabaseConnection;

use crate::access_log::AccessLog;
use crate::auth::Keys;
use crate::config::Settings;
use crate::policy::disclosure::NoiseKey;

#[derive(MergedObject, Default)]
pub struct Query(
    identity::IdentityQuery,
    directory::DirectoryQuery,
    returns::ReturnsQuery,
    impact::ImpactQuery,
    sharing::SharingQuery,
    imports::ImportsQuery,
    spend::SpendQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    directory_writes::DirectoryMutation,
    identity::TokenMutation,
    returns::ReturnsMutation,
    sharing::SharingMutation,
);

pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema the server runs, with the settings' limits. It has no extensions: with
/// one, async-graphql sends every field through the extension chain, which cost a large page
/// more than resolving it (issue 13). Spans come from the HTTP layer (`spans`); prices from
/// [`pricing`], which refuses what costs too much before this runs it.
pub fn build(
    settings: &Settings,
    db: DatabaseConnection,
    keys: Arc<Keys>,
    access_log: AccessLog,
    noise: NoiseKey,
) -> AppSchema {
    let mut b = limited(settings)
        // Pricing has refused anything dearer already; this only backs it up.
        .limit_complexity(settings.limits.complexity)
        .data(db)
        .data(keys)
        .data(access_log)
        .data(noise)
        .data(crate::analytics::impact::Slots::for_pool(
            settings.db_max_connections,
        ));
    if !settings.introspection {
        b = b.disable_introspection();
    }
    b.finish()
}

/// The same schema for pricing operations without running them (`cost::PriceOnly`), and
/// refusing, with the figures, those over the complexity limit.
pub fn pricing(settings: &Settings) -> AppSchema {
    let mut b = limited(settings).extension(cost::Pricing::new(settings.limits.complexity));
    if !settings.introspection {
        b = b.disable_introspection();
    }
    b.finish()
}

fn limited(
    settings: &Settings,
) -> async_graphql::SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(settings.limits.depth)
        .limit_recursive_depth(64)
        .limit_directives(10)
}

/// The SDL that `schema.graphql` must equal.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .finish()
        .sdl()
}
