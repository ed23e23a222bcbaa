//! The metric catalogue: what each metric measures, its unit and scale, its group, how it
//! aggregates and how disclosure control protects it. Ingestion checks values against it,
//! `impact` aggregates by it, and the API serves it.

use std::collections::BTreeMap;

use entity::metrics;
use sea_orm::{ConnectionTrait, EntityTrait};

use crate::error::ApiResult;

/// The metric catalogue, by code.
pub async fn load<C: ConnectionTrait>(db: &C) -> ApiResult<BTreeMap<String, metrics::Model>> {
    Ok(metrics::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|m| (m.code.clone(), m))
        .collect())
}
