//! The directory's root fields: regions, networks, institutions and organisations, and the
//! filters they take. The directory is public; resolvers stay thin and go through the loaders.

use async_graphql::{Context, ID, InputObject, Object, Result};
use sea_orm::DatabaseConnection;

use super::connection::{connect, page_args};
use super::context::{db, id_or_key};
use super::enums::SectorGql;
use super::objects::{Conn, CountOf, Counted, Institution, Network, Organisation, Region};
use super::scalars::{Date, GssCode};
use crate::directory::{self, InstitutionFilter};
use crate::domain::{Identifier as DomainIdentifier, IdentifierScheme};
use crate::error::ApiError;

/// An identifier to look an institution up by, such as `{scheme: "ODS", value: "RRK"}`.
#[derive(InputObject)]
pub struct IdentifierInput {
    pub(crate) scheme: String,
    pub(crate) value: String,
}

/// Narrows `institutions`; every filter given must hold.
#[derive(InputObject, Default)]
pub struct InstitutionFilterInput {
    /// Members of this network (id or key) now, or on `on`.
    network: Option<ID>,
    sector: Option<SectorGql>,
    /// The home district.
    district: Option<GssCode>,
    /// A case-insensitive part of the name.
    name: Option<String>,
    identifier: Option<IdentifierInput>,
    /// With `network`: the date membership is checked on (default today).
    on: Option<Date>,
}

impl InstitutionFilterInput {
    async fn validate(self, db: &DatabaseConnection) -> Result<InstitutionFilter, ApiError> {
        let network = match &self.network {
            Some(id) => {
                let key = id_or_key("filter.network", id)?;
                Some(
                    directory::require_network(db, "filter.network", &key)
                        .await?
                        .id,
                )
            }
            None => None,
        };
        let identifier = match &self.identifier {
            Some(i) => {
                let scheme: IdentifierScheme = i
                    .scheme
                    .parse()
                    .map_err(|e| ApiError::bad_input("filter.identifier.scheme", e))?;
                Some(
                    DomainIdentifier::parse(scheme, &i.value)
                        .map_err(|e| ApiError::bad_input("filter.identifier.value", e))?,
                )
            }
            None => None,
        };
        if let Some(name) = &self.name
            && (name.trim().is_empty() || name.len() > 200)
        {
            return Err(ApiError::bad_input(
                "filter.name",
                "must be 1 to 200 characters",
            ));
        }
        Ok(InstitutionFilter {
            network,
            sector: self.sector.map(Into::into),
            district: self.district.map(|d| d.0),
            name: self.name.map(|n| n.trim().to_owned()),
            identifier,
            on: self.on.map(|d| d.0),
        })
    }
}

#[derive(Default)]
pub struct DirectoryQuery;

#[Object]
impl DirectoryQuery {
    /// Combined authorities and their districts.
    async fn regions(&self, ctx: &Context<'_>) -> Result<Vec<Region>> {
        Ok(directory::regions(db(ctx)?)
            .await?
            .into_iter()
            .map(Region)
            .collect())
    }

    /// A combined authority by its GSS code, such as `E47000007`.
    async fn region(&self, ctx: &Context<'_>, code: GssCode) -> Result<Option<Region>> {
        Ok(directory::region_by_code(db(ctx)?, &code.0)
            .await?
            .map(Region))
    }

    /// Every network, in the order they were registered.
    #[graphql(complexity = "(first.max(0) as usize) * child_complexity + 1")]
    async fn networks(
        &self,
        ctx: &Context<'_>,
        first: i32,
        after: Option<String>,
    ) -> Result<Conn<Network>> {
        let page = page_args(first, after.as_deref())?;
        let rows = directory::networks_page(db(ctx)?, page).await?;
        Ok(connect(rows, page.after, Counted(CountOf::Networks), |n| {
            (n.id, Network(n))
        }))
    }

    /// A network by id or key.
    async fn network(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Network>> {
        let key = id_or_key("id", &id)?;
        Ok(directory::network(db(ctx)?, &key).await?.map(Network))
    }

    /// Institutions, narrowed by the filter.
    #[graphql(complexity = "(first.max(0) as usize) * child_complexity + 1")]
    async fn institutions(
        &self,
        ctx: &Context<'_>,
        filter: Option<InstitutionFilterInput>,
        first: i32,
        after: Option<String>,
    ) -> Result<Conn<Institution>> {
        let page = page_args(first, after.as_deref())?;
        let db = db(ctx)?;
        let filter = filter.unwrap_or_default().validate(db).await?;
        let rows = directory::institutions_page(db, &filter, page).await?;
        Ok(connect(
            rows,
            page.after,
            Counted(CountOf::Institutions(filter)),
            |i| (i.id, Institution(i)),
        ))
    }

    /// An institution by id or key.
    async fn institution(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Institution>> {
        let key = id_or_key("id", &id)?;
        Ok(directory::institution(db(ctx)?, &key)
            .await?
            .map(Institution))
    }

    /// Registered grantees: the organisations grants and researcher tokens may name.
    async fn organisations(&self, ctx: &Context<'_>) -> Result<Vec<Organisation>> {
        Ok(directory::organisations(db(ctx)?)
            .await?
            .into_iter()
            .map(Organisation)
            .collect())
    }
}
