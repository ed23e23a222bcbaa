//! The directory's service functions: plain async functions over a connection, called by
//! the GraphQL resolvers and the DataLoaders. The directory is public (DESIGN.md: anyone reads
//! regions, networks, institutions), so nothing here consults the policy module.

pub mod demo;
pub mod settings;
pub mod writes;

use std::collections::HashMap;

use anyhow::Context;

use chrono::NaiveDate;
use entity::{
    geographies, institution_identifiers, institutions, memberships, networks, organisations,
    regions,
};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use crate::domain::{GssCode, IdOrKey, Identifier, Sector};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Page, PageArgs};
use crate::sql::Sql;
use entity::vocab::MembershipStatus;

pub async fn regions<C: ConnectionTrait>(db: &C) -> ApiResult<Vec<regions::Model>> {
    Ok(regions::Entity::find()
        .order_by_asc(regions::Column::Code)
        .all(db)
        .await
        .context("Failed to read the regions")?)
}

pub async fn region_by_code<C: ConnectionTrait>(
    db: &C,
    code: &GssCode,
) -> ApiResult<Option<regions::Model>> {
    Ok(regions::Entity::find()
        .filter(regions::Column::Code.eq(code.as_str()))
        .one(db)
        .await
        .context("Failed to read the region by code")?)
}

pub async fn regions_by_id<C: ConnectionTrait>(
    db: &C,
    ids: &[i64],
) -> ApiResult<HashMap<i64, regions::Model>> {
    Ok(regions::Entity::find()
        .filter(regions::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await
        .context("Failed to read regions by id")?
        .into_iter()
        .map(|r| (r.id, r))
        .collect())
}

pub async fn geographies_by_code<C: ConnectionTrait>(
    db: &C,
    codes: &[String],
) -> ApiResult<HashMap<String, geographies::Model>> {
    Ok(geographies::Entity::find()
        .filter(geographies::Column::Code.is_in(codes.iter().cloned()))
        .all(db)
        .await
        .context("Failed to read geographies by code")?
        .into_iter()
        .map(|g| (g.code.clone(), g))
        .collect())
}

#[derive(Debug, FromQueryResult)]
struct GroupedGeography {
    group_id: i64,
    code: String,
    name: String,
    kind: String,
    vintage: i32,
    parent_code: Option<String>,
}

impl GroupedGeography {
    fn split(self) -> (i64, geographies::Model) {
        (
            self.group_id,
            geographies::Model {
                code: self.code,
                name: self.name,
                kind: self.kind,
                vintage: self.vintage,
                parent_code: self.parent_code,
            },
        )
    }
}

/// Which link table joins owners to their districts.
#[derive(Debug, Clone, Copy)]
enum Link {
    /// `network_districts`, by `network_id`.
    Network,
    /// `region_districts`, by `region_id`.
    Region,
}

/// The districts linked to each owner in `ids` through a link table, in code order, in one
/// statement.
async fn linked_districts<C: ConnectionTrait>(
    db: &C,
    link: Link,
    ids: &[i64],
) -> ApiResult<HashMap<i64, Vec<geographies::Model>>> {
    let template = match link {
        Link::Network => {
            "SELECT l.network_id AS group_id, g.code, g.name, g.kind, g.vintage, g.parent_code \
             FROM network_districts l JOIN geographies g ON g.code = l.district_code \
             WHERE l.network_id IN ({}) ORDER BY l.network_id, g.code"
        }
        Link::Region => {
            "SELECT l.region_id AS group_id, g.code, g.name, g.kind, g.vintage, g.parent_code \
             FROM region_districts l JOIN geographies g ON g.code = l.district_code \
             WHERE l.region_id IN ({}) ORDER BY l.region_id, g.code"
        }
    };
    let statement = Sql::format(template, [Sql::list(ids.iter().copied())]);
    let rows = GroupedGeography::find_by_statement(statement.statement(db.get_database_backend()))
        .all(db)
        .await
        .context("Failed to read linked districts")?;
    Ok(group(rows.into_iter().map(GroupedGeography::split)))
}

/// The districts of each network in `ids`: its place.
pub async fn network_districts<C: ConnectionTrait>(
    db: &C,
    ids: &[i64],
) -> ApiResult<HashMap<i64, Vec<geographies::Model>>> {
    linked_districts(db, Link::Network, ids).await
}

/// The constituent districts of each region in `ids`.
pub async fn region_districts<C: ConnectionTrait>(
    db: &C,
    ids: &[i64],
) -> ApiResult<HashMap<i64, Vec<geographies::Model>>> {
    linked_districts(db, Link::Region, ids).await
}

fn group<K: std::hash::Hash + Eq, V>(rows: impl Iterator<Item = (K, V)>) -> HashMap<K, Vec<V>> {
    let mut out: HashMap<K, Vec<V>> = HashMap::new();
    for (k, v) in rows {
        out.entry(k).or_default().push(v);
    }
    out
}

pub async fn networks_page<C: ConnectionTrait>(
    db: &C,
    page: PageArgs,
) -> ApiResult<Page<networks::Model>> {
    let mut q = networks::Entity::find().order_by_asc(networks::Column::Id);
    if let Some(after) = page.after {
        q = q.filter(networks::Column::Id.gt(after));
    }
    let rows = q
        .limit(page.first + 1)
        .all(db)
        .await
        .context("Failed to read a page of networks")?;
    Ok(Page::from_overfetch(rows, page.first as usize))
}

pub async fn networks_count<C: ConnectionTrait>(db: &C) -> ApiResult<u64> {
    Ok(networks::Entity::find()
        .count(db)
        .await
        .context("Failed to count the networks")?)
}

pub async fn network<C: ConnectionTrait>(
    db: &C,
    id: &IdOrKey,
) -> ApiResult<Option<networks::Model>> {
    let q = networks::Entity::find();
    let q = match id {
        IdOrKey::Id(i) => q.filter(networks::Column::Id.eq(*i)),
        IdOrKey::Key(k) => q.filter(networks::Column::Key.eq(k.as_str())),
    };
    Ok(q.one(db).await.context("Failed to read the network")?)
}

/// Like [`network`], but a missing network is an error naming the argument.
pub async fn require_network<C: ConnectionTrait>(
    db: &C,
    field: &str,
    id: &IdOrKey,
) -> ApiResult<networks::Model> {
    network(db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{field}: network {}", describe(id))))
}

/// Like [`require_network`] for a list, in one statement: each missing network is an error
/// naming its place in `field` (`field[i]`).
pub async fn require_networks<C: ConnectionTrait>(
    db: &C,
    field: &str,
    ids: &[IdOrKey],
) -> ApiResult<Vec<networks::Model>> {
    let numbers: Vec<i64> = ids
        .iter()
        .filter_map(|i| match i {
            IdOrKey::Id(n) => Some(*n),
            IdOrKey::Key(_) => None,
        })
        .collect();
    let keys: Vec<String> = ids
        .iter()
        .filter_map(|i| match i {
            IdOrKey::Key(k) => Some(k.as_str().to_owned()),
            IdOrKey::Id(_) => None,
        })
        .collect();
    let found = networks::Entity::find()
        .filter(
            Condition::any()
                .add(networks::Column::Id.is_in(numbers))
                .add(networks::Column::Key.is_in(keys)),
        )
        .all(db)
        .await
        .context("Failed to read the networks named")?;
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            found
                .iter()
                .find(|n| match id {
                    IdOrKey::Id(x) => n.id == *x,
                    IdOrKey::Key(k) => n.key == k.as_str(),
                })
                .cloned()
                .ok_or_else(|| {
                    ApiError::NotFound(format!("{field}[{i}]: network {}", describe(id)))
                })
        })
        .collect()
}

pub async fn networks_by_id<C: ConnectionTrait>(
    db: &C,
    ids: &[i64],
) -> ApiResult<HashMap<i64, networks::Model>> {
    Ok(networks::Entity::find()
        .filter(networks::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await
        .context("Failed to read networks by id")?
        .into_iter()
        .map(|n| (n.id, n))
        .collect())
}

pub async fn institution<C: ConnectionTrait>(
    db: &C,
    id: &IdOrKey,
) -> ApiResult<Option<institutions::Model>> {
    let q = institutions::Entity::find();
    let q = match id {
        IdOrKey::Id(i) => q.filter(institutions::Column::Id.eq(*i)),
        IdOrKey::Key(k) => q.filter(institutions::Column::Key.eq(k.as_str())),
    };
    Ok(q.one(db).await.context("Failed to read the institution")?)
}

fn describe(id: &IdOrKey) -> String {
    match id {
        IdOrKey::Id(i) => format!("with id {i}"),
        IdOrKey::Key(k) => format!("`{k}`"),
    }
}

/// The filters of `institutions(filter: …)`, validated.
#[derive(Debug, Clone, Default)]
pub struct InstitutionFilter {
    /// Institutions that are members of this network on `on`.
    pub network: Option<i64>,
    pub sector: Option<Sector>,
    pub district: Option<GssCode>,
    /// A case-insensitive part of the name.
    pub name: Option<String>,
    pub identifier: Option<Identifier>,
    pub on: Option<NaiveDate>,
}

fn filtered(f: &InstitutionFilter) -> sea_orm::Select<institutions::Entity> {
    use institutions::Column as C;
    let mut q = institutions::Entity::find();
    if let Some(net) = f.network {
        let on = f.on.unwrap_or_else(today);
        q = q.filter(
            C::Id.in_subquery(
                Query::select()
                    .column(memberships::Column::InstitutionId)
                    .from(memberships::Entity)
                    .and_where(memberships::Column::NetworkId.eq(net))
                    .cond_where(active_on(on))
                    .to_owned(),
            ),
        );
    }
    if let Some(s) = f.sector {
        q = q.filter(C::Sector.eq(entity::vocab::Sector::from(s)));
    }
    if let Some(d) = &f.district {
        q = q.filter(C::HomeDistrictCode.eq(d.as_str()));
    }
    if let Some(name) = &f.name {
        let escaped: String = name
            .to_lowercase()
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        q = q.filter(
            Expr::expr(Func::lower(Expr::col(C::Name)))
                .like(LikeExpr::new(format!("%{escaped}%")).escape('\\')),
        );
    }
    if let Some(id) = &f.identifier {
        q = q.filter(
            C::Id.in_subquery(
                Query::select()
                    .column(institution_identifiers::Column::InstitutionId)
                    .from(institution_identifiers::Entity)
                    .and_where(institution_identifiers::Column::Scheme.eq(id.scheme().as_str()))
                    .and_where(institution_identifiers::Column::Value.eq(id.value()))
                    .to_owned(),
            ),
        );
    }
    q
}

/// The month an institution's financial year ends in, as stored; a value outside 1 to 12
/// is an internal error naming the row, never a silent March.
pub fn year_end_month(i: &institutions::Model) -> ApiResult<u8> {
    u8::try_from(i.year_end_month)
        .ok()
        .filter(|m| (1..=12).contains(m))
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "institutions row {} ({}), column year_end_month: {} is not a month",
                i.id,
                i.key,
                i.year_end_month
            ))
        })
}

/// The condition that a membership row counts on `on` (its `to` date is inclusive).
pub fn active_on(on: NaiveDate) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(memberships::Column::Status.eq(MembershipStatus::Active))
        .add(memberships::Column::FromDate.lte(on))
        .add(
            sea_orm::Condition::any()
                .add(memberships::Column::ToDate.is_null())
                .add(memberships::Column::ToDate.gte(on)),
        )
}

pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

pub async fn institutions_page<C: ConnectionTrait>(
    db: &C,
    filter: &InstitutionFilter,
    page: PageArgs,
) -> ApiResult<Page<institutions::Model>> {
    let mut q = filtered(filter).order_by_asc(institutions::Column::Id);
    if let Some(after) = page.after {
        q = q.filter(institutions::Column::Id.gt(after));
    }
    let rows = q
        .limit(page.first + 1)
        .all(db)
        .await
        .context("Failed to read a page of institutions")?;
    Ok(Page::from_overfetch(rows, page.first as usize))
}

pub async fn institutions_count<C: ConnectionTrait>(
    db: &C,
    filter: &InstitutionFilter,
) -> ApiResult<u64> {
    Ok(filtered(filter)
        .count(db)
        .await
        .context("Failed to count the institutions")?)
}

#[derive(Debug, FromQueryResult)]
struct GroupedInstitution {
    group_id: i64,
    id: i64,
    key: String,
    name: String,
    sector: entity::vocab::Sector,
    home_district_code: String,
    year_end_month: i16,
    steward_network_id: i64,
    record_key: i16,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl GroupedInstitution {
    fn split(self) -> (i64, institutions::Model) {
        (
            self.group_id,
            institutions::Model {
                id: self.id,
                key: self.key,
                name: self.name,
                sector: self.sector,
                home_district_code: self.home_district_code,
                year_end_month: self.year_end_month,
                steward_network_id: self.steward_network_id,
                record_key: self.record_key,
                created_at: self.created_at,
                updated_at: self.updated_at,
            },
        )
    }
}

const INSTITUTION_COLUMNS: &str = "i.id, i.key, i.name, i.sector, i.home_district_code, \
     i.year_end_month, i.steward_network_id, i.record_key, i.created_at, i.updated_at";

/// One page of members for each network in `network_ids`, all in one statement: a window
/// function numbers each network's members so every page is cut in SQL.
pub async fn members_pages<C: ConnectionTrait>(
    db: &C,
    network_ids: &[i64],
    on: NaiveDate,
    page: PageArgs,
) -> ApiResult<HashMap<i64, Page<institutions::Model>>> {
    let statement = Sql::format(
        "SELECT * FROM ( \
           SELECT m.network_id AS group_id, {}, \
             ROW_NUMBER() OVER (PARTITION BY m.network_id ORDER BY i.id) AS rn \
           FROM memberships m JOIN institutions i ON i.id = m.institution_id \
           WHERE m.network_id IN ({}) AND m.status = {} AND m.from_date <= {} \
             AND (m.to_date IS NULL OR m.to_date >= {}) AND i.id > {} \
         ) t WHERE rn <= {} ORDER BY group_id, id",
        [
            Sql::raw(INSTITUTION_COLUMNS),
            Sql::list(network_ids.iter().copied()),
            Sql::value(MembershipStatus::Active),
            Sql::value(on),
            Sql::value(on),
            Sql::value(page.after.unwrap_or(0)),
            Sql::value(page.first as i64 + 1),
        ],
    );
    pages_by_group(db, statement, network_ids, page)
        .await
        .context("Failed to read pages of members")
        .map_err(Into::into)
}

/// Runs a statement of institutions numbered within groups (`group_id`), and cuts a page for
/// each of `ids` (an empty one where a group has no rows).
async fn pages_by_group<C: ConnectionTrait>(
    db: &C,
    statement: Sql,
    ids: &[i64],
    page: PageArgs,
) -> Result<HashMap<i64, Page<institutions::Model>>, sea_orm::DbErr> {
    let rows =
        GroupedInstitution::find_by_statement(statement.statement(db.get_database_backend()))
            .all(db)
            .await?;
    let grouped = group(rows.into_iter().map(GroupedInstitution::split));
    Ok(ids
        .iter()
        .map(|id| {
            let rows = grouped.get(id).cloned().unwrap_or_default();
            (*id, Page::from_overfetch(rows, page.first as usize))
        })
        .collect())
}

#[derive(Debug, FromQueryResult)]
struct GroupCount {
    group_id: i64,
    n: i64,
}

/// How many members each network in `network_ids` has on `on`, in one statement.
pub async fn members_counts<C: ConnectionTrait>(
    db: &C,
    network_ids: &[i64],
    on: NaiveDate,
) -> ApiResult<HashMap<i64, u64>> {
    let statement = Sql::format(
        "SELECT m.network_id AS group_id, COUNT(DISTINCT m.institution_id) AS n \
         FROM memberships m WHERE m.network_id IN ({}) AND m.status = {} \
           AND m.from_date <= {} AND (m.to_date IS NULL OR m.to_date >= {}) \
         GROUP BY m.network_id",
        [
            Sql::list(network_ids.iter().copied()),
            Sql::value(MembershipStatus::Active),
            Sql::value(on),
            Sql::value(on),
        ],
    );
    let rows = GroupCount::find_by_statement(statement.statement(db.get_database_backend()))
        .all(db)
        .await
        .context("Failed to count members")?;
    Ok(counts(network_ids, rows))
}

fn counts(ids: &[i64], rows: Vec<GroupCount>) -> HashMap<i64, u64> {
    let found: HashMap<i64, u64> = rows
        .into_iter()
        .map(|r| (r.group_id, u64::try_from(r.n).unwrap_or(0)))
        .collect();
    ids.iter()
        .map(|id| (*id, found.get(id).copied().unwrap_or(0)))
        .collect()
}

/// One page of the institutions each network in `network_ids` stewards, in one statement.
pub async fn steward_pages<C: ConnectionTrait>(
    db: &C,
    network_ids: &[i64],
    page: PageArgs,
) -> ApiResult<HashMap<i64, Page<institutions::Model>>> {
    let statement = Sql::format(
        "SELECT * FROM ( \
           SELECT i.steward_network_id AS group_id, {}, \
             ROW_NUMBER() OVER (PARTITION BY i.steward_network_id ORDER BY i.id) AS rn \
           FROM institutions i WHERE i.steward_network_id IN ({}) AND i.id > {} \
         ) t WHERE rn <= {} ORDER BY group_id, id",
        [
            Sql::raw(INSTITUTION_COLUMNS),
            Sql::list(network_ids.iter().copied()),
            Sql::value(page.after.unwrap_or(0)),
            Sql::value(page.first as i64 + 1),
        ],
    );
    pages_by_group(db, statement, network_ids, page)
        .await
        .context("Failed to read pages of stewarded institutions")
        .map_err(Into::into)
}

pub async fn steward_counts<C: ConnectionTrait>(
    db: &C,
    network_ids: &[i64],
) -> ApiResult<HashMap<i64, u64>> {
    let statement = Sql::format(
        "SELECT steward_network_id AS group_id, COUNT(*) AS n FROM institutions \
         WHERE steward_network_id IN ({}) GROUP BY steward_network_id",
        [Sql::list(network_ids.iter().copied())],
    );
    let rows = GroupCount::find_by_statement(statement.statement(db.get_database_backend()))
        .all(db)
        .await
        .context("Failed to count stewarded institutions")?;
    Ok(counts(network_ids, rows))
}

pub async fn identifiers_of<C: ConnectionTrait>(
    db: &C,
    institution_ids: &[i64],
) -> ApiResult<HashMap<i64, Vec<institution_identifiers::Model>>> {
    let rows = institution_identifiers::Entity::find()
        .filter(
            institution_identifiers::Column::InstitutionId.is_in(institution_ids.iter().copied()),
        )
        .order_by_asc(institution_identifiers::Column::InstitutionId)
        .order_by_asc(institution_identifiers::Column::Scheme)
        .all(db)
        .await
        .context("Failed to read the institutions' identifiers")?;
    Ok(group(rows.into_iter().map(|r| (r.institution_id, r))))
}

pub async fn memberships_of<C: ConnectionTrait>(
    db: &C,
    institution_ids: &[i64],
) -> ApiResult<HashMap<i64, Vec<memberships::Model>>> {
    let rows = memberships::Entity::find()
        .filter(memberships::Column::InstitutionId.is_in(institution_ids.iter().copied()))
        .order_by_asc(memberships::Column::InstitutionId)
        .order_by_asc(memberships::Column::FromDate)
        .order_by_asc(memberships::Column::Id)
        .all(db)
        .await
        .context("Failed to read the institutions' memberships")?;
    Ok(group(rows.into_iter().map(|r| (r.institution_id, r))))
}

pub async fn organisations<C: ConnectionTrait>(db: &C) -> ApiResult<Vec<organisations::Model>> {
    Ok(organisations::Entity::find()
        .order_by_asc(organisations::Column::Key)
        .all(db)
        .await
        .context("Failed to read the organisations")?)
}

pub async fn organisation<C: ConnectionTrait>(
    db: &C,
    id: &IdOrKey,
) -> ApiResult<Option<organisations::Model>> {
    let q = organisations::Entity::find();
    let q = match id {
        IdOrKey::Id(i) => q.filter(organisations::Column::Id.eq(*i)),
        IdOrKey::Key(k) => q.filter(organisations::Column::Key.eq(k.as_str())),
    };
    Ok(q.one(db).await.context("Failed to read the organisation")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn institution(month: i16) -> institutions::Model {
        let now = chrono::Utc::now();
        institutions::Model {
            id: 7,
            key: "uni".into(),
            name: "A university".into(),
            sector: entity::vocab::Sector::University,
            home_district_code: "E08000025".into(),
            year_end_month: month,
            steward_network_id: 1,
            record_key: 0,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn a_stored_year_end_outside_the_calendar_is_named_not_defaulted() {
        assert_eq!(year_end_month(&institution(7)).unwrap(), 7);
        for bad in [0, 13, -1, 300] {
            match year_end_month(&institution(bad)) {
                Err(ApiError::Internal(e)) => {
                    let e = e.to_string();
                    assert!(
                        e.contains("institutions row 7 (uni), column year_end_month"),
                        "{e}"
                    );
                }
                other => panic!("{bad}: expected an internal error, got {other:?}"),
            }
        }
    }
}
