//! The domain's vocabularies as GraphQL enums, shared by the area modules.

use async_graphql::Enum;

use crate::domain;

/// What a token's holder is.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Role")]
pub enum RoleGql {
    Operator,
    NetworkAdmin,
    NetworkSubmitter,
    RegionAnalyst,
    Researcher,
}

impl From<domain::Role> for RoleGql {
    fn from(r: domain::Role) -> Self {
        match r {
            domain::Role::Operator => Self::Operator,
            domain::Role::NetworkAdmin => Self::NetworkAdmin,
            domain::Role::NetworkSubmitter => Self::NetworkSubmitter,
            domain::Role::RegionAnalyst => Self::RegionAnalyst,
            domain::Role::Researcher => Self::Researcher,
        }
    }
}

impl From<RoleGql> for domain::Role {
    fn from(r: RoleGql) -> Self {
        match r {
            RoleGql::Operator => Self::Operator,
            RoleGql::NetworkAdmin => Self::NetworkAdmin,
            RoleGql::NetworkSubmitter => Self::NetworkSubmitter,
            RoleGql::RegionAnalyst => Self::RegionAnalyst,
            RoleGql::Researcher => Self::Researcher,
        }
    }
}
