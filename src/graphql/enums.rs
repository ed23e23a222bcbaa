//! The domain's and the store's vocabularies as GraphQL enums, shared by the area modules.
//! Each mirrors its Rust enum through `remote`, which derives `From` both ways, variant for
//! variant; the GraphQL names, values and descriptions are these declarations'.

use async_graphql::Enum;

/// What a token's holder is.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Role", remote = "crate::domain::Role")]
pub enum RoleGql {
    Operator,
    NetworkAdmin,
    NetworkSubmitter,
    RegionAnalyst,
    Researcher,
}

/// The sector of an anchor institution.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Sector", remote = "crate::domain::Sector")]
pub enum SectorGql {
    LocalAuthority,
    NhsTrust,
    IntegratedCareBoard,
    University,
    FeCollege,
    HousingAssociation,
    Police,
    FireAndRescue,
    CombinedAuthority,
    PrivateBusiness,
    Vcse,
    BusinessRepresentative,
    Other,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "MetricGroup", remote = "crate::domain::MetricGroup")]
pub enum MetricGroupGql {
    Spend,
    Employment,
    LandAndAssets,
    Emissions,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "AccessLevel", remote = "crate::domain::AccessLevel")]
pub enum AccessLevelGql {
    /// The grantee's totals may count the values, under disclosure control.
    Aggregate,
    /// The grantee sees the values themselves.
    Detail,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::vocab::GranteeKind")]
pub enum GranteeKind {
    Region,
    Organisation,
    Public,
}

/// Whether a membership counts yet.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::vocab::MembershipStatus")]
pub enum MembershipStatus {
    /// It counts from its `from` date.
    Active,
    /// Invited by a network that is not the steward; it counts once the steward accepts.
    Invited,
}

/// Where a return stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::vocab::ReturnStatus")]
pub enum ReturnStatus {
    Submitted,
    Approved,
    Rejected,
}

/// How a metric aggregates across institutions.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::vocab::Aggregation")]
pub enum Aggregation {
    Sum,
    /// A ratio of two other metrics' sums over the same contributors.
    Ratio,
    None,
}

/// How a metric's aggregates are protected.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::vocab::DisclosureClass")]
pub enum DisclosureClass {
    /// An organisation's amount (spend, headcount, land).
    Magnitude,
    /// A count of people in a small group.
    PeopleCount,
}
