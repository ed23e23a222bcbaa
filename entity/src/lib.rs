//! sea-orm entities, one file a table. No GraphQL derives here: the public API is
//! shaped in `src/graphql`, so the database and the contract can change apart.

pub mod access_log;
pub mod access_log_networks;
pub mod cell_decisions;
pub mod disclosure_keys;
pub mod disclosure_thresholds;
pub mod equivalences;
pub mod geographies;
pub mod grant_events;
pub mod grant_metric_groups;
pub mod grants;
pub mod import_jobs;
pub mod institution_identifiers;
pub mod institutions;
pub mod lsoa_deprivation;
pub mod memberships;
pub mod metrics;
pub mod network_districts;
pub mod networks;
pub mod organisations;
pub mod postcodes;
pub mod region_districts;
pub mod regions;
pub mod released_cells;
pub mod return_values;
pub mod returns;
pub mod spend_files;
pub mod spend_lines;
pub mod stewardships;
pub mod submission_batches;
pub mod tokens;
pub mod vocab;
