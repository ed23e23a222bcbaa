//! The closed vocabularies stored in text columns, as enums. The stored strings are the ones
//! hand-written SQL compares with (`m.status = 'ACTIVE'`); `as_str` gives them for binding,
//! so no literal is copied. A stored value outside the vocabulary fails the read with a
//! `DbErr::Type` naming the enum and the value: never a silent fallback.

use sea_orm::entity::prelude::*;

/// One vocabulary: the enum, its `ActiveEnum` over a text column, and `as_str`.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $stored:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, EnumIter, DeriveActiveEnum)]
        #[sea_orm(rs_type = "String", db_type = "Text")]
        pub enum $name {
            $($(#[$vmeta])* #[sea_orm(string_value = $stored)] $variant,)+
        }

        impl $name {
            /// The stored string, for binding in hand-written SQL.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $stored,)+
                }
            }
        }
    };
}

vocabulary! {
    /// `grants.level`: what a grant gives.
    AccessLevel {
        Aggregate = "AGGREGATE",
        Detail = "DETAIL",
    }
}

vocabulary! {
    /// `grants.grantee_kind`: who a grant is to.
    GranteeKind {
        Region = "REGION",
        Organisation = "ORGANISATION",
        Public = "PUBLIC",
    }
}

vocabulary! {
    /// `returns.status`: where a return version stands.
    ReturnStatus {
        Submitted = "SUBMITTED",
        Approved = "APPROVED",
        Rejected = "REJECTED",
    }
}

vocabulary! {
    /// `memberships.status`: whether a membership counts yet.
    MembershipStatus {
        Active = "ACTIVE",
        Invited = "INVITED",
    }
}

vocabulary! {
    /// `metrics.aggregation`: how a metric aggregates across institutions.
    Aggregation {
        Sum = "SUM",
        Ratio = "RATIO",
        None = "NONE",
    }
}

vocabulary! {
    /// `metrics.disclosure`: how a metric's aggregates are protected.
    DisclosureClass {
        Magnitude = "MAGNITUDE",
        PeopleCount = "PEOPLE_COUNT",
    }
}

vocabulary! {
    /// `metrics.metric_group`: the unit grants and scopes speak in.
    MetricGroup {
        Spend = "SPEND",
        Employment = "EMPLOYMENT",
        LandAndAssets = "LAND_AND_ASSETS",
        Emissions = "EMISSIONS",
    }
}

vocabulary! {
    /// `institutions.sector`.
    Sector {
        LocalAuthority = "LOCAL_AUTHORITY",
        NhsTrust = "NHS_TRUST",
        IntegratedCareBoard = "INTEGRATED_CARE_BOARD",
        University = "UNIVERSITY",
        FeCollege = "FE_COLLEGE",
        HousingAssociation = "HOUSING_ASSOCIATION",
        Police = "POLICE",
        FireAndRescue = "FIRE_AND_RESCUE",
        CombinedAuthority = "COMBINED_AUTHORITY",
        PrivateBusiness = "PRIVATE_BUSINESS",
        Vcse = "VCSE",
        BusinessRepresentative = "BUSINESS_REPRESENTATIVE",
        Other = "OTHER",
    }
}

vocabulary! {
    /// `tokens.role` and `access_log.role`: what a token's holder is.
    Role {
        Operator = "OPERATOR",
        NetworkAdmin = "NETWORK_ADMIN",
        NetworkSubmitter = "NETWORK_SUBMITTER",
        RegionAnalyst = "REGION_ANALYST",
        Researcher = "RESEARCHER",
    }
}

vocabulary! {
    /// `grant_events.action`: what happened to a grant.
    GrantAction {
        Granted = "GRANTED",
        Revoked = "REVOKED",
    }
}

vocabulary! {
    /// `import_jobs.state`: where a file import stands.
    ImportState {
        Queued = "QUEUED",
        Running = "RUNNING",
        Succeeded = "SUCCEEDED",
        Failed = "FAILED",
    }
}

vocabulary! {
    /// `import_jobs.kind`: what a file import brings in.
    ImportKind {
        SpendLines = "SPEND_LINES",
    }
}

vocabulary! {
    /// `spend_lines.place`: where a supplier's place came from.
    PlaceSource {
        /// The postcode, through the postcode lookup.
        Postcode = "POSTCODE",
        /// The district given, for a line without a postcode.
        District = "DISTRICT",
        /// Nowhere: no postcode or district, or a postcode the lookup does not know (or
        /// knows to have ended before the period). Counted as "place unknown", never guessed.
        Unknown = "UNKNOWN",
    }
}
