//! What every resolver reads from the request's context: the database, the loaders, the
//! caller, the signing keys, and the access log. Resolvers in every area module use these, so
//! they live below all of them: no area module imports another for its plumbing.

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, ID, Result};
use sea_orm::DatabaseConnection;

use super::loaders::Loaders;
use crate::access_log::{AccessLog, Entry};
use crate::auth::{Caller, Keys};
use crate::domain::IdOrKey;
use crate::error::ApiError;
use crate::policy::disclosure::NoiseKey;

pub(crate) fn db<'a>(ctx: &Context<'a>) -> Result<&'a DatabaseConnection> {
    ctx.data::<DatabaseConnection>()
}

pub(crate) fn loaders<'a>(ctx: &Context<'a>) -> Result<&'a DataLoader<Loaders>> {
    ctx.data::<DataLoader<Loaders>>()
}

pub(crate) fn id_or_key(field: &str, id: &ID) -> Result<IdOrKey, ApiError> {
    IdOrKey::parse(id).map_err(|e| ApiError::bad_input(field, e))
}

pub(crate) fn caller<'a>(ctx: &Context<'a>) -> &'a Caller {
    static ANONYMOUS: Caller = Caller::Anonymous;
    ctx.data_opt::<Caller>().unwrap_or(&ANONYMOUS)
}

pub(crate) fn noise_key<'a>(ctx: &Context<'a>) -> Result<&'a NoiseKey> {
    ctx.data::<NoiseKey>()
}

pub(crate) fn keys<'a>(ctx: &Context<'a>) -> Result<&'a Arc<Keys>> {
    ctx.data::<Arc<Keys>>()
}

/// A stored value that does not read back as it was written: the service's fault.
pub(crate) fn internal(what: &str) -> async_graphql::Error {
    ApiError::Internal(anyhow::anyhow!("{what}")).into()
}

/// Records a read of returns or aggregates (or a refused one) in the access log.
pub(crate) async fn log_read(
    ctx: &Context<'_>,
    operation: &str,
    networks: Vec<i64>,
    refused: bool,
) {
    match ctx.data::<AccessLog>() {
        Ok(log) => {
            log.record(Entry::new(caller(ctx), operation, networks, refused))
                .await
        }
        Err(_) => tracing::error!(operation, "no access log in the schema: read not recorded"),
    }
}
