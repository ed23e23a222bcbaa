//! A network's settings that its admins keep: the disclosure thresholds its institutions'
//! values are protected by (DESIGN.md: stewards raise them, never lower them).

use chrono::Utc;
use entity::disclosure_thresholds;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait,
};

use crate::error::{ApiError, ApiResult, ConflictOnUnique};
use crate::policy::disclosure::{DEFAULT, Thresholds};

/// A network's disclosure thresholds: the defaults, or what its admins raised them to.
pub async fn thresholds<C: ConnectionTrait>(db: &C, network_id: i64) -> ApiResult<Thresholds> {
    Ok(disclosure_thresholds::Entity::find_by_id(network_id)
        .one(db)
        .await?
        .map(|t| Thresholds {
            min_contributors: i64::from(t.min_contributors),
            dominance_percent: i64::from(t.dominance_percent),
            people_count_min: i64::from(t.people_count_min),
            people_count_round: i64::from(t.people_count_round),
        })
        .unwrap_or(DEFAULT))
}

/// Sets a network's thresholds. Each must be at least the default (stewards raise them,
/// never lower them) and at most a bound that keeps them meaningful.
pub async fn set_thresholds(
    db: &DatabaseConnection,
    network_id: i64,
    t: Thresholds,
    by: &str,
) -> ApiResult<Thresholds> {
    for (field, value, floor, ceiling) in [
        (
            "input.minContributors",
            t.min_contributors,
            DEFAULT.min_contributors,
            1000,
        ),
        (
            "input.dominancePercent",
            t.dominance_percent,
            DEFAULT.dominance_percent,
            100,
        ),
        (
            "input.peopleCountMin",
            t.people_count_min,
            DEFAULT.people_count_min,
            100_000,
        ),
        (
            "input.peopleCountRound",
            t.people_count_round,
            DEFAULT.people_count_round,
            1000,
        ),
    ] {
        if value < floor {
            return Err(ApiError::bad_input(
                field,
                format!(
                    "{value} is below the default {floor}: thresholds can be raised, never lowered"
                ),
            ));
        }
        if value > ceiling {
            return Err(ApiError::bad_input(
                field,
                format!("must be at most {ceiling}"),
            ));
        }
    }
    let int = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    let row = disclosure_thresholds::ActiveModel {
        network_id: Set(network_id),
        min_contributors: Set(int(t.min_contributors)),
        dominance_percent: Set(int(t.dominance_percent)),
        people_count_min: Set(int(t.people_count_min)),
        people_count_round: Set(int(t.people_count_round)),
        updated_at: Set(Utc::now()),
        updated_by: Set(by.into()),
    };
    let txn = crate::db::begin_write(db).await?;
    disclosure_thresholds::Entity::delete_by_id(network_id)
        .exec(&txn)
        .await?;
    row.insert(&txn)
        .await
        .conflict_on_unique("the network's threshold setting")?;
    txn.commit().await?;
    Ok(t)
}
