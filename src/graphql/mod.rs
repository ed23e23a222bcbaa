//! The GraphQL schema, one module per area, joined here; the limits async-graphql enforces
//! itself (depth, complexity) are set where the schema is built.

pub mod connection;
pub mod directory;
pub mod loaders;
pub mod scalars;

use async_graphql::{EmptyMutation, EmptySubscription, MergedObject, Schema, extensions};
use sea_orm::DatabaseConnection;

use crate::config::Settings;

#[derive(MergedObject, Default)]
pub struct Query(directory::DirectoryQuery);

pub type AppSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Builds the schema the server runs, with the settings' limits.
pub fn build(settings: &Settings, db: DatabaseConnection) -> AppSchema {
    let mut b = Schema::build(Query::default(), EmptyMutation, EmptySubscription)
        .limit_depth(settings.limits.depth)
        .limit_complexity(settings.limits.complexity)
        .limit_recursive_depth(64)
        .limit_directives(10)
        .extension(extensions::Tracing)
        .data(db);
    if !settings.introspection {
        b = b.disable_introspection();
    }
    b.finish()
}

/// The SDL that `schema.graphql` must equal.
pub fn sdl() -> String {
    Schema::build(Query::default(), EmptyMutation, EmptySubscription)
        .finish()
        .sdl()
}
