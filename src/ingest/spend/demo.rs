//! `serve --demo`'s spend lines: the sample postcode lookup and deprivation deciles
//! (`demo/geography/`, marked as samples), and the sample spend file
//! (`demo/spend-sample.csv`) imported for a few of the fictional Sandwell institutions for
//! 2022/23, each with its amounts varied so that they differ. Each import restates the
//! institution's (synthetic) 2022/23 return with spend derived from the lines ([`super::derive`]).
//! Loading again writes nothing new: the same file twice is one version.

use anyhow::Context;
use entity::{institutions, networks};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::domain::FinancialYear;
use crate::error::{ApiError, ApiResult};
use crate::geography::Loaded;

const NSPL: &str = include_str!("../../../demo/geography/nspl-sample.csv");
const IMD: &str = include_str!("../../../demo/geography/imd-sample.csv");
const SPEND: &str = include_str!("../../../demo/spend-sample.csv");

/// The institutions the demo imports spend lines for, and how each varies the sample: every
/// `nth` line's amount multiplied by `times`.
pub const INSTITUTIONS: [(&str, usize, i64); 3] = [
    ("sandwell-college", 1, 1),
    ("sandwell-homes", 2, 3),
    ("sandwell-council", 3, 7),
];

/// The period the demo's spend lines are for.
pub const PERIOD: u16 = 2022;

/// The sample file with every `nth` line's amount multiplied by `times`.
pub fn varied(nth: usize, times: i64) -> String {
    let mut out = String::with_capacity(SPEND.len());
    for (i, line) in SPEND.lines().enumerate() {
        let mut fields: Vec<String> = line.split(',').map(str::to_owned).collect();
        if i > 0 && i % nth == 0 && fields.len() > 4 {
            let (pounds, pence) = fields[4].split_once('.').unwrap_or((&fields[4], "0"));
            let p = pounds.parse::<i64>().unwrap_or(0) * 100
                + format!("{pence:0<2}")[..2].parse::<i64>().unwrap_or(0);
            let p = p * times;
            fields[4] = format!("{}.{:02}", p / 100, p % 100);
        }
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

fn refused(what: &str, loaded: &Loaded) -> ApiResult<()> {
    match loaded {
        Loaded::Written { .. } => Ok(()),
        Loaded::Refused { problems, .. } => Err(ApiError::Internal(anyhow::anyhow!(
            "the demo's {what} sample was refused: {problems:?}"
        ))),
    }
}

/// Loads the samples and imports the spend lines; returns how many files were switched in
/// now (none when they were loaded before).
pub async fn load(db: &DatabaseConnection) -> ApiResult<usize> {
    refused(
        "postcode",
        &crate::geography::nspl::load(db, std::io::Cursor::new(NSPL.as_bytes())).await?,
    )?;
    refused(
        "deprivation",
        &crate::geography::imd::load(db, std::io::Cursor::new(IMD.as_bytes()), None).await?,
    )?;
    let period = FinancialYear::new(PERIOD)
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("the demo's period is not a year")))?;
    let mut written = 0;
    for (key, nth, times) in INSTITUTIONS {
        let Some(institution) = institutions::Entity::find()
            .filter(institutions::Column::Key.eq(key))
            .one(db)
            .await
            .context("Failed to read a demo institution")?
        else {
            continue;
        };
        let network = networks::Entity::find_by_id(institution.steward_network_id)
            .one(db)
            .await
            .context("Failed to read a demo network")?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("{key} has no steward")))?;
        let target = super::Target {
            network,
            institution,
            period,
            by: "demo".into(),
        };
        let job = super::start(db, &target).await?;
        let body = std::io::Cursor::new(varied(nth, times).into_bytes());
        let job = super::run(db, &job.id, &target, body, None).await?;
        if job.state != entity::vocab::ImportState::Succeeded {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "the demo's spend lines for {key} were refused: {:?}",
                job.failure
            )));
        }
        written += usize::from(!job.replayed);
    }
    Ok(written)
}
