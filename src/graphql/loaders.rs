//! DataLoaders: every relation a resolver follows goes through one of these, so a nested
//! query costs a fixed number of statements however many parents it has. One `Loaders`
//! value serves every key type; a fresh one is made per request, so nothing cached outlives
//! the request that read it.

use std::collections::{BTreeSet, HashMap};

use async_graphql::dataloader::Loader;
use chrono::NaiveDate;
use entity::{
    geographies, institution_identifiers, institutions, memberships, networks, regions,
    return_values,
};
use sea_orm::DatabaseConnection;

use crate::auth::Caller;
use crate::directory;
use crate::domain::MetricGroup;
use crate::pagination::{Page, PageArgs};

pub struct Loaders {
    db: DatabaseConnection,
    /// Whose request this is: loaders of returns data ask the policy with it.
    caller: Caller,
    /// The metric catalogue, read at most once per request: a page's values name a dozen
    /// metrics hundreds of times, and a loader's key, future and batch per value cost more
    /// than the values themselves (issue 13).
    catalogue: tokio::sync::OnceCell<Catalogue>,
}

/// The metric catalogue by code.
pub type Catalogue = std::sync::Arc<HashMap<String, std::sync::Arc<crate::catalogue::Metric>>>;

impl Loaders {
    pub fn new(db: DatabaseConnection, caller: Caller) -> Self {
        Self {
            db,
            caller,
            catalogue: tokio::sync::OnceCell::new(),
        }
    }

    /// The metric catalogue as this request first read it.
    pub async fn catalogue(&self) -> Result<&Catalogue, async_graphql::Error> {
        self.catalogue
            .get_or_try_init(|| async {
                let all = crate::catalogue::metrics(&self.db).await?;
                Ok::<_, async_graphql::Error>(std::sync::Arc::new(
                    all.into_iter()
                        .map(|(code, m)| (code, std::sync::Arc::new(m)))
                        .collect(),
                ))
            })
            .await
    }
}

type LoadResult<K, V> = Result<HashMap<K, V>, async_graphql::Error>;

/// Keys that are one row's id, each its own type so a loader serves one relation.
macro_rules! id_keys {
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub struct $name(pub i64);
        )+
    };
}

id_keys!(
    NetworkId,
    RegionId,
    NetworkDistricts,
    RegionDistricts,
    IdentifiersOf,
    MembershipsOf,
    StewardCount,
    ValuesOf,
    InstitutionId,
    /// The metric groups a grant covers.
    GroupsOfGrant,
);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GeoCode(pub String);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MembersPage {
    pub network: i64,
    pub on: NaiveDate,
    pub page: PageArgs,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MembersCount {
    pub network: i64,
    pub on: NaiveDate,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StewardPage {
    pub network: i64,
    pub page: PageArgs,
}
/// Groups keys that share everything but their parent id, so each group is one statement.
fn grouped<K, G: std::hash::Hash + Eq + Copy>(
    keys: &[K],
    group: impl Fn(&K) -> (G, i64),
) -> HashMap<G, Vec<i64>> {
    let mut out: HashMap<G, Vec<i64>> = HashMap::new();
    for k in keys {
        let (g, id) = group(k);
        out.entry(g).or_default().push(id);
    }
    out
}

/// A loader of one value per id, from a service function that reads many ids in one
/// statement and returns them by id.
macro_rules! by_id {
    ($($key:ident => $value:ty, $read:path;)+) => {
        $(
            impl Loader<$key> for Loaders {
                type Value = $value;
                type Error = async_graphql::Error;
                async fn load(&self, keys: &[$key]) -> LoadResult<$key, Self::Value> {
                    let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
                    let found = $read(&self.db, &ids).await?;
                    Ok(found.into_iter().map(|(k, v)| ($key(k), v)).collect())
                }
            }
        )+
    };
}

by_id! {
    NetworkId => networks::Model, directory::networks_by_id;
    RegionId => regions::Model, directory::regions_by_id;
    NetworkDistricts => Vec<geographies::Model>, directory::network_districts;
    RegionDistricts => Vec<geographies::Model>, directory::region_districts;
    IdentifiersOf => Vec<institution_identifiers::Model>, directory::identifiers_of;
    GroupsOfGrant => BTreeSet<MetricGroup>, crate::sharing::groups_of;
    MembershipsOf => Vec<memberships::Model>, directory::memberships_of;
}

impl Loader<GeoCode> for Loaders {
    type Value = geographies::Model;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[GeoCode]) -> LoadResult<GeoCode, Self::Value> {
        let codes: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let found = directory::geographies_by_code(&self.db, &codes).await?;
        Ok(found.into_iter().map(|(k, v)| (GeoCode(k), v)).collect())
    }
}

impl Loader<MembersPage> for Loaders {
    type Value = Page<institutions::Model>;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[MembersPage]) -> LoadResult<MembersPage, Self::Value> {
        let mut out = HashMap::new();
        for ((on, page), ids) in grouped(keys, |k| ((k.on, k.page), k.network)) {
            for (network, p) in directory::members_pages(&self.db, &ids, on, page).await? {
                out.insert(MembersPage { network, on, page }, p);
            }
        }
        Ok(out)
    }
}

impl Loader<MembersCount> for Loaders {
    type Value = u64;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[MembersCount]) -> LoadResult<MembersCount, Self::Value> {
        let mut out = HashMap::new();
        for (on, ids) in grouped(keys, |k| (k.on, k.network)) {
            for (network, n) in directory::members_counts(&self.db, &ids, on).await? {
                out.insert(MembersCount { network, on }, n);
            }
        }
        Ok(out)
    }
}

impl Loader<StewardPage> for Loaders {
    type Value = Page<institutions::Model>;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[StewardPage]) -> LoadResult<StewardPage, Self::Value> {
        let mut out = HashMap::new();
        for (page, ids) in grouped(keys, |k| (k.page, k.network)) {
            for (network, p) in directory::steward_pages(&self.db, &ids, page).await? {
                out.insert(StewardPage { network, page }, p);
            }
        }
        Ok(out)
    }
}

impl Loader<StewardCount> for Loaders {
    type Value = u64;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[StewardCount]) -> LoadResult<StewardCount, Self::Value> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let found = directory::steward_counts(&self.db, &ids).await?;
        Ok(found
            .into_iter()
            .map(|(k, v)| (StewardCount(k), v))
            .collect())
    }
}

impl Loader<ValuesOf> for Loaders {
    type Value = Vec<return_values::Model>;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[ValuesOf]) -> LoadResult<ValuesOf, Self::Value> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let found = crate::returns::values_of(&self.db, &self.caller, &ids).await?;
        Ok(found.into_iter().map(|(k, v)| (ValuesOf(k), v)).collect())
    }
}

impl Loader<InstitutionId> for Loaders {
    type Value = institutions::Model;
    type Error = async_graphql::Error;
    async fn load(&self, keys: &[InstitutionId]) -> LoadResult<InstitutionId, Self::Value> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows = institutions::Entity::find()
            .filter(institutions::Column::Id.is_in(ids))
            .all(&self.db)
            .await
            .map_err(crate::error::ApiError::from)?;
        Ok(rows.into_iter().map(|i| (InstitutionId(i.id), i)).collect())
    }
}
