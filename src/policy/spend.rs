//! Who brings supplier spend lines in, and who follows the import. Spend lines are more
//! sensitive than returns (a sole trader's name is personal data; a supplier's amounts are
//! commercial): only the steward network's own admins and submitters, with `write:returns`,
//! import them, and nobody reads another institution's lines line by line through any grant.
//! There is no read of lines here at all; aggregates of them will go through disclosure
//! control like every other aggregate.
//!
//! The decisions are those for returns (`policy::returns`), called, not restated, with the
//! spend metric group and the period added: a token narrowed to other metric groups or years
//! may not send spend lines for them.

use crate::auth::{Caller, Principal};
use crate::domain::{AsOf, FinancialYear, MetricGroup};
use crate::error::ApiError;
use crate::sql::Sql;

use super::returns;

fn forbid(p: &Principal, what: &str) -> ApiError {
    ApiError::Forbidden {
        reason: format!("{p:?}: {what}"),
    }
}

/// Sending a spend file at all, decided from the token alone before a byte of the body is
/// read: whoever may upload returns (a network's admins and submitters with `write:returns`,
/// within their network scope), with spend within their metric scopes.
pub fn may_upload_spend(caller: &Caller) -> Result<&Principal, ApiError> {
    let p = returns::may_upload_returns(caller)?;
    if !p.scopes.allows_metric_group(MetricGroup::Spend) {
        return Err(forbid(
            p,
            "upload spend lines: token scopes leave out metrics:spend",
        ));
    }
    Ok(p)
}

/// Importing spend lines of an institution stewarded by `steward_network` for `period`: its
/// steward network's admins and submitters, as for submitting its returns, with spend and the
/// period within their scopes.
pub fn may_import_spend(
    caller: &Caller,
    steward_network: i64,
    period: FinancialYear,
) -> Result<&Principal, ApiError> {
    let p = returns::may_submit_returns(caller, steward_network)?;
    if !returns::may_submit_value(p, MetricGroup::Spend, period) {
        return Err(forbid(
            p,
            &format!("import spend lines for {period}: outside the token's scopes"),
        ));
    }
    Ok(p)
}

/// Following an import job (its state, its problems, what it wrote): those who may import
/// that file, as [`may_import_spend`] decides for the job's network and period (a token
/// scoped to other metric groups or years may not read its totals or problems either).
/// Anyone else is told there is no such job.
pub fn may_follow_import(
    caller: &Caller,
    network: i64,
    period: Option<FinancialYear>,
) -> Result<&Principal, ApiError> {
    match period {
        Some(period) => may_import_spend(caller, network, period),
        None => {
            let p = returns::may_submit_returns(caller, network)?;
            if !p.scopes.allows_metric_group(MetricGroup::Spend) {
                return Err(forbid(
                    p,
                    "follow an import: token scopes leave out metrics:spend",
                ));
            }
            Ok(p)
        }
    }
}

/// Reading an institution's suppliers for `period` (`topSuppliers`): whoever sees that
/// institution's return for the period, as it stands now, with its spend at DETAIL. The rules
/// are the returns' ([`returns::returns_visible`] for the return, [`returns::value_level`]
/// for its spend): the steward network's readers, fellow members' admins on the period's last
/// day, DETAIL grants covering spend and the year, all narrowed by the token's scopes. Every
/// spend file restates its return, so an institution with lines for the period has one.
///
/// A statement selecting `n`, the number of such returns (0 or 1): 0 refuses. A token whose
/// verbs leave out `read:returns` is refused before any statement.
pub fn suppliers_readable(
    caller: &Caller,
    institution: i64,
    period: FinancialYear,
) -> Result<Sql, ApiError> {
    let reach = returns::reach(caller);
    let candidates = returns::candidates(caller, &reach);
    let rows = returns::ReturnRows::of_institutions("cand");
    let visible = returns::returns_visible(caller, &reach, &rows, AsOf::Now)?;
    let spend = returns::value_level(
        caller,
        &reach,
        &rows,
        Sql::value(MetricGroup::Spend.as_str()),
    );
    Ok(Sql::format(
        "WITH {}, {} SELECT COUNT(*) AS n FROM {} WHERE r.institution_id = {} AND r.period = {} \
           AND ({}) AND {} = 2",
        [
            reach.cte(),
            candidates,
            rows.from(),
            Sql::value(institution),
            Sql::value(period.to_string()),
            visible,
            spend,
        ],
    ))
}

/// The refusal of `topSuppliers`, in words.
pub fn suppliers_refused(caller: &Caller, institution: &str, period: FinancialYear) -> ApiError {
    let what = format!(
        "topSuppliers: the suppliers of {institution} for {period} are shown only to those who \
         see its returns for the period at DETAIL, spend included"
    );
    match caller.principal() {
        Some(p) => forbid(p, &what),
        None => ApiError::Forbidden { reason: what },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;
    use crate::policy::tests::principal;

    fn year(s: &str) -> FinancialYear {
        s.parse().unwrap()
    }

    #[test]
    fn only_the_stewards_writers_import_spend() {
        let fy = year("2023/24");
        for role in Role::ALL {
            let own = principal(
                role,
                role.anchor().filter(|a| *a == "network").map(|_| 1),
                "",
            );
            let writer = matches!(role, Role::NetworkAdmin | Role::NetworkSubmitter);
            assert_eq!(may_upload_spend(&own).is_ok(), writer, "{role}");
            assert_eq!(may_import_spend(&own, 1, fy).is_ok(), writer, "{role}");
            assert_eq!(
                may_follow_import(&own, 1, Some(fy)).is_ok(),
                writer,
                "{role}"
            );
            // Never for an institution another network stewards, whatever the role.
            assert!(may_import_spend(&own, 2, fy).is_err(), "{role}");
            assert!(may_follow_import(&own, 2, Some(fy)).is_err(), "{role}");
        }
        // A writer whose scopes leave out spend, or the job's year, follows none of its jobs.
        for scopes in ["metrics:emissions", "years:2019/20"] {
            let narrowed = principal(Role::NetworkAdmin, Some(1), scopes);
            assert!(
                may_follow_import(&narrowed, 1, Some(fy)).is_err(),
                "{scopes}"
            );
        }
        let emissions = principal(
            Role::NetworkSubmitter,
            Some(1),
            "metrics:emissions write:returns",
        );
        assert!(may_follow_import(&emissions, 1, None).is_err());
        let anonymous = Caller::Anonymous;
        assert!(matches!(
            may_upload_spend(&anonymous),
            Err(ApiError::Unauthenticated(_))
        ));
        assert!(matches!(
            may_import_spend(&anonymous, 1, fy),
            Err(ApiError::Unauthenticated(_))
        ));
    }

    #[test]
    fn suppliers_need_read_returns_and_ask_the_returns_rules() {
        let fy = year("2022/23");
        let impact_only = principal(Role::NetworkAdmin, Some(1), "read:impact");
        assert!(matches!(
            suppliers_readable(&impact_only, 7, fy),
            Err(ApiError::Forbidden { .. })
        ));
        let admin = principal(Role::NetworkAdmin, Some(1), "");
        let sql = suppliers_readable(&admin, 7, fy).unwrap();
        // The returns' own predicates: the current version for the steward, the spend level.
        assert!(sql.text().contains("r.current_steward"), "{}", sql.text());
        assert!(sql.text().contains("CASE"), "{}", sql.text());
        assert!(matches!(
            suppliers_refused(&Caller::Anonymous, "x", fy),
            ApiError::Forbidden { .. }
        ));
    }

    #[test]
    fn scopes_narrow_spend_imports() {
        let fy = year("2023/24");
        let ok = |scopes: &str| {
            let c = principal(Role::NetworkSubmitter, Some(1), scopes);
            (
                may_upload_spend(&c).is_ok(),
                may_import_spend(&c, 1, fy).is_ok(),
            )
        };
        assert_eq!(ok("write:returns"), (true, true));
        assert_eq!(ok("metrics:spend years:2023/24"), (true, true));
        assert_eq!(
            ok("read:returns read:impact"),
            (false, false),
            "no write verb"
        );
        assert_eq!(ok("metrics:employment"), (false, false), "spend left out");
        assert_eq!(ok("years:2021/22-2022/23"), (true, false), "another year");
        assert_eq!(ok("network:n2"), (false, false), "another network");
    }
}
