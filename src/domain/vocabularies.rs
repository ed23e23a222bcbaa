//! The closed vocabularies, listed once each: every other form (the stored enums' mapping,
//! the names, `ALL`) follows from these lists. Their rules live beside their other types.

vocabulary! {
    /// The level of a grant (DESIGN.md's visibility, less `NONE`, which no grant gives).
    AccessLevel stored as entity::vocab::AccessLevel {
        /// The value may count towards totals the reader sees, under disclosure control.
        Aggregate = "AGGREGATE",
        /// The reader sees the value itself.
        Detail = "DETAIL",
    }
}

vocabulary! {
    /// A group of metrics, the unit grants and scopes speak in.
    MetricGroup stored as entity::vocab::MetricGroup {
        Spend = "SPEND",
        Employment = "EMPLOYMENT",
        LandAndAssets = "LAND_AND_ASSETS",
        Emissions = "EMISSIONS",
    }
}

vocabulary! {
    /// What a token's holder is.
    Role stored as entity::vocab::Role {
        Operator = "OPERATOR",
        NetworkAdmin = "NETWORK_ADMIN",
        NetworkSubmitter = "NETWORK_SUBMITTER",
        RegionAnalyst = "REGION_ANALYST",
        Researcher = "RESEARCHER",
    }
}

vocabulary! {
    /// The sector of an anchor institution (DESIGN.md's list).
    Sector stored as entity::vocab::Sector {
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
