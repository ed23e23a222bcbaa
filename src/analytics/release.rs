//! What an `impact` answer may release of its cells with aggregate-only contributors, beyond
//! each cell's own rules ([`crate::policy::disclosure`]), and what the service remembers of
//! what it released:
//!
//! - **Published dimensions.** Such a cell is shown for one network or a whole region (and
//!   their crossings with sector, district and year), not for a chosen set of networks: sets
//!   of networks that differ by one would otherwise difference out that network's members.
//! - **Published geographies.** The spend analysis's spend in a geography, with
//!   aggregate-only contributors, is shown for the region, one network's area or one
//!   district, not a chosen set of districts: sets that differ by one district, asked
//!   many ways, would average the noise out of the spend there.
//! - **`asOf`.** Such a cell is shown as it stands now; at an earlier instant it would isolate
//!   a restatement.
//! - **The differencing guard.** Every released cell's aggregate-only contributors are kept
//!   per audience (`released_cells`); a new cell whose contributors differ from a released
//!   one's (same metric, breakdown and period) by at least one and fewer than the threshold
//!   is withheld. Every audience is checked against every audience's releases: one person
//!   can read as the public and hold tokens of more than one audience.
//! - **The last released count.** A cell the guard would withhold because it differs from a
//!   released cell by one or two contributors more (one more reporter) shows that released
//!   cell's contributors instead, recomputed at its place, so a reporting season does not
//!   leave the period's total withheld: it lags by the reporters since.
//! - **Decisions on values, kept.** Whether a cell's aggregate-only contributors pass the
//!   rules that look at their values (dominance, small counts of people) is decided the first
//!   time the set is asked for at a place, and kept (`cell_decisions`): a network moving values
//!   it controls cannot search for the point where the decision flips. At most
//!   [`DECISIONS_PER_PLACE`] sets are decided per place, metric, breakdown and period; later
//!   sets are withheld, so planting new sets does not buy more answers without end.
//! - **Counts.** Such a cell's `contributors` and `eligible` are rounded; one that shows no
//!   value shows no contributors either and reads as withheld, so an empty cell and a
//!   withheld one look alike.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use base64::Engine as _;
use chrono::Utc;
use entity::{cell_decisions, disclosure_keys, released_cells};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set};
use sha2::{Digest, Sha256};

use super::impact::{self, Cell, Pending, Spec};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::policy::disclosure::{self, Audience, NoiseKey, Reason};

/// What the request asked, as far as release depends on it.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    /// One network, or a whole region (not a chosen set of networks).
    pub published_scope: bool,
    /// `asOf` was given and is in the past.
    pub past_as_of: bool,
}

/// How many contributor sets the rules that look at values decide at one place, for one
/// metric, breakdown and period. Each decision tells a reader one yes or no about values; a
/// place whose contributors change as returns arrive through a year needs a handful.
pub const DECISIONS_PER_PLACE: usize = 12;

/// One process decides at a time, so two concurrent answers cannot each release one of a
/// pair of cells that differ by one contributor. (Several processes on one database would
/// need a database lock here: docs/access.md says so.)
static DECIDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Applies the release rules to `cells` for `caller`, and remembers what it released.
pub async fn release<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    spec: &Spec,
    key: &NoiseKey,
    asked: Asked,
    cells: &mut [Cell],
) -> ApiResult<()> {
    for c in cells.iter_mut().filter(|c| c.pending.is_some()) {
        if c.key.network == 0 && !asked.published_scope {
            withhold(c, Reason::Scope);
            c.pending = None;
        } else if asked.past_as_of {
            withhold(c, Reason::AsOf);
            c.pending = None;
        } else if spec
            .lines
            .as_ref()
            .is_some_and(|l| !l.published_geography && l.geographic(&c.metric))
        {
            withhold(c, Reason::Geography);
            c.pending = None;
        }
    }
    guard(db, &Audience::of(caller), spec, key, cells).await?;
    for c in cells
        .iter_mut()
        .filter(|c| c.aggregate_only > 0 || c.eligible_aggregate_only > 0)
    {
        c.eligible = disclosure::round_count(c.eligible);
        if c.value.is_none() {
            c.contributors = 0;
            c.derived = 0;
            c.suppressed = c.suppressed.or(Some(Reason::Protected));
        } else {
            c.contributors = disclosure::round_count(c.contributors);
            c.derived = disclosure::round_count(c.derived).min(c.contributors);
        }
    }
    Ok(())
}

/// A cell with enough aggregate-only contributors, not withheld for what was asked: the
/// guard and the kept decisions decide it.
fn to_decide(c: &Cell) -> bool {
    c.aggregate_only > 0 && c.pending.is_some()
}

fn withhold(c: &mut Cell, why: Reason) {
    c.value = None;
    c.suppressed = Some(why);
}

/// A cell's identity for the guard: metric (a ratio's part), breakdown, period.
type Slot = (String, String, String);

/// A cell's slots: its own metric's, or a ratio's two parts'. A spend-analysis figure that a
/// return metric also holds (the total, SME and VCSE spend) takes that metric's slot, so an
/// `impact` cell and a `spendAnalysis` cell whose contributors differ by one institution (one
/// that typed its spend, one that imported lines) are guarded against each other.
fn slots(spec: &Spec, c: &Cell) -> Vec<Slot> {
    let breakdown = c.breakdown.clone().unwrap_or_default();
    let metrics = match spec.ratio_parts.get(&c.metric) {
        Some((num, den)) => vec![num.clone(), den.clone()],
        None => vec![c.metric.clone()],
    };
    metrics
        .into_iter()
        .map(|m| match super::spend::restated_metric(&m) {
            Some(code) if spec.lines.is_some() => code.to_owned(),
            _ => m,
        })
        .map(|m| (m, breakdown.clone(), c.key.period.clone()))
        .collect()
}

/// A release remembered, or made earlier in this answer: its members, ascending.
type Released = Vec<i64>;

/// The differencing guard and the kept decisions, over the cells still to decide.
async fn guard<C: ConnectionTrait>(
    db: &C,
    audience: &Audience,
    spec: &Spec,
    key: &NoiseKey,
    cells: &mut [Cell],
) -> ApiResult<()> {
    let mut order: Vec<usize> = (0..cells.len()).filter(|&i| to_decide(&cells[i])).collect();
    if order.is_empty() {
        return Ok(());
    }
    // Larger cells first, so a total wins over a crossing that differs from it by little.
    order.sort_by(|&a, &b| {
        (
            cells[b].members.len(),
            &cells[a].metric,
            &cells[a].key,
            &cells[a].breakdown,
        )
            .cmp(&(
                cells[a].members.len(),
                &cells[b].metric,
                &cells[b].key,
                &cells[b].breakdown,
            ))
    });
    let _deciding = DECIDING.lock().await;
    let mut released = remembered(db, spec, cells, &order).await?;
    let mut decisions = Decisions::load(db, cells, &order).await?;
    let mut new_rows = vec![];
    for &i in &order {
        let c = &cells[i];
        let threshold = c.thresholds.differencing();
        let slots = slots(spec, c);
        let knows = impact::knowers(c)?;
        let clash = slots.iter().any(|slot| {
            released.get(slot).is_some_and(|rs| {
                rs.iter()
                    .any(|r| disclosure::too_close_for_any_view(r, &c.members, &knows, threshold))
            })
        });
        if clash {
            match last_released(spec, key, &released, &cells[i], &knows, &mut decisions)? {
                Some(shown) => {
                    for slot in slots {
                        new_rows.push(row(audience, &slot, &shown.members));
                    }
                    cells[i] = shown;
                }
                None => withhold(&mut cells[i], Reason::Differencing),
            }
            continue;
        }
        let Some(pending) = cells[i].pending.clone() else {
            continue;
        };
        if !decisions.decide(&cells[i], &pending) {
            withhold(&mut cells[i], Reason::Protected);
            continue;
        }
        cells[i].value = Some(pending.value);
        cells[i].suppressed = None;
        let c = &cells[i];
        for slot in slots {
            let members = c.members.clone();
            new_rows.push(row(audience, &slot, &members));
            released.entry(slot).or_default().push(members);
        }
    }
    decisions.remember(db).await?;
    remember(db, new_rows).await
}

/// The cell over the largest released subset of its aggregate-only contributors that it is too
/// close to (as some network sees it), released in each of its slots and of at least the
/// minimum contributors, when that shows a value: else `None`. Standing in for every subset
/// it is too close to, whoever the extra contributors are, the figure does not say whether
/// one more institution reported.
fn last_released(
    spec: &Spec,
    key: &NoiseKey,
    released: &BTreeMap<Slot, Vec<Released>>,
    c: &Cell,
    knows: &BTreeMap<i64, Vec<i64>>,
    decisions: &mut Decisions,
) -> ApiResult<Option<Cell>> {
    let threshold = c.thresholds.differencing();
    let minimum = usize::try_from(c.thresholds.min_contributors).unwrap_or(usize::MAX);
    let slots = slots(spec, c);
    let Some(first) = slots.first().and_then(|s| released.get(s)) else {
        return Ok(None);
    };
    let subset = |r: &Released| {
        r.len() < c.members.len()
            && r.len() >= minimum
            && r.iter().all(|m| c.members.binary_search(m).is_ok())
            && disclosure::too_close_for_any_view(r, &c.members, knows, threshold)
    };
    let Some(best) = first
        .iter()
        .filter(|r| subset(r))
        .filter(|r| {
            slots[1..]
                .iter()
                .all(|s| released.get(s).is_some_and(|rs| rs.contains(r)))
        })
        .max_by_key(|r| r.len())
    else {
        return Ok(None);
    };
    let Some(mut shown) = impact::over_subset(spec, key, c, best)? else {
        return Ok(None);
    };
    let Some(pending) = shown.pending.clone() else {
        return Ok(None);
    };
    if !decisions.decide(&shown, &pending) {
        return Ok(None);
    }
    shown.value = Some(pending.value);
    shown.suppressed = None;
    Ok(Some(shown))
}

/// Where a kept decision applies: metric, breakdown, period and place.
type DecisionPlace = (String, String, String, String);

/// The decisions kept for the places of this answer's cells, and those it makes.
struct Decisions {
    /// Per place: each contributor set's digest, and whether it is shown.
    kept: BTreeMap<DecisionPlace, BTreeMap<String, bool>>,
    new: Vec<cell_decisions::ActiveModel>,
}

impl Decisions {
    async fn load<C: ConnectionTrait>(db: &C, cells: &[Cell], order: &[usize]) -> ApiResult<Self> {
        let mut wanted: BTreeSet<DecisionPlace> = BTreeSet::new();
        for &i in order {
            if let Some(p) = &cells[i].pending {
                wanted.insert(place_of(&cells[i], p));
            }
        }
        let metrics: BTreeSet<&String> = wanted.iter().map(|w| &w.0).collect();
        let periods: BTreeSet<&String> = wanted.iter().map(|w| &w.2).collect();
        let places: BTreeSet<&String> = wanted.iter().map(|w| &w.3).collect();
        let mut kept: BTreeMap<DecisionPlace, BTreeMap<String, bool>> = BTreeMap::new();
        if !wanted.is_empty() {
            let rows: Vec<(String, String, String, String, String, bool)> =
                cell_decisions::Entity::find()
                    .select_only()
                    .columns([
                        cell_decisions::Column::Metric,
                        cell_decisions::Column::Breakdown,
                        cell_decisions::Column::Period,
                        cell_decisions::Column::Place,
                        cell_decisions::Column::Digest,
                        cell_decisions::Column::Shown,
                    ])
                    .filter(cell_decisions::Column::Metric.is_in(metrics.into_iter().cloned()))
                    .filter(cell_decisions::Column::Period.is_in(periods.into_iter().cloned()))
                    .filter(cell_decisions::Column::Place.is_in(places.into_iter().cloned()))
                    .into_tuple()
                    .all(db)
                    .await
                    .context("Failed to read the kept disclosure decisions")?;
            for (metric, breakdown, period, place, digest, shown) in rows {
                let at = (metric, breakdown, period, place);
                if wanted.contains(&at) {
                    kept.entry(at).or_default().insert(digest, shown);
                }
            }
        }
        Ok(Self { kept, new: vec![] })
    }

    /// Whether `c` is shown: as decided before for its contributors at its place; decided now
    /// when there is room; withheld when its place has decided as many sets as it may.
    fn decide(&mut self, c: &Cell, p: &Pending) -> bool {
        let at = place_of(c, p);
        let digest = digest(&c.members);
        let sets = self.kept.entry(at.clone()).or_default();
        if let Some(&shown) = sets.get(&digest) {
            return shown;
        }
        if sets.len() >= DECISIONS_PER_PLACE {
            return false;
        }
        sets.insert(digest.clone(), p.even);
        let (metric, breakdown, period, place) = at;
        self.new.push(cell_decisions::ActiveModel {
            metric: Set(metric),
            breakdown: Set(breakdown),
            period: Set(period),
            place: Set(place),
            digest: Set(digest),
            shown: Set(p.even),
            decided_at: Set(Utc::now()),
            ..Default::default()
        });
        p.even
    }

    async fn remember<C: ConnectionTrait>(self, db: &C) -> ApiResult<()> {
        let mut rows = self.new.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<_> = rows.by_ref().take(200).collect();
            cell_decisions::Entity::insert_many(chunk)
                .on_conflict(
                    OnConflict::columns([
                        cell_decisions::Column::Metric,
                        cell_decisions::Column::Period,
                        cell_decisions::Column::Breakdown,
                        cell_decisions::Column::Place,
                        cell_decisions::Column::Digest,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(db)
                .await
                .context("Failed to keep the disclosure decisions")?;
        }
        Ok(())
    }
}

fn place_of(c: &Cell, p: &Pending) -> DecisionPlace {
    (
        c.metric.clone(),
        c.breakdown.clone().unwrap_or_default(),
        c.key.period.clone(),
        p.place.clone(),
    )
}

/// SHA-256 of the ids, ascending and comma-separated, hex: a contributor set's name.
fn digest(members: &[i64]) -> String {
    let text = members
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The releases a new cell of `order` could clash with: same slot, size within its threshold,
/// of any audience.
async fn remembered<C: ConnectionTrait>(
    db: &C,
    spec: &Spec,
    cells: &[Cell],
    order: &[usize],
) -> ApiResult<BTreeMap<Slot, Vec<Released>>> {
    let metrics: BTreeSet<String> = order
        .iter()
        .flat_map(|&i| slots(spec, &cells[i]))
        .map(|(metric, ..)| metric)
        .collect();
    let periods: BTreeSet<String> = order.iter().map(|&i| cells[i].key.period.clone()).collect();
    let q = released_cells::Entity::find()
        .select_only()
        .columns([
            released_cells::Column::Id,
            released_cells::Column::Metric,
            released_cells::Column::Breakdown,
            released_cells::Column::Period,
            released_cells::Column::Size,
        ])
        .filter(released_cells::Column::Metric.is_in(metrics))
        .filter(released_cells::Column::Period.is_in(periods));
    let light: Vec<(i64, String, String, String, i32)> = q
        .into_tuple()
        .all(db)
        .await
        .context("Failed to read the released cells")?;
    // Sizes each slot's new cells have, to fetch only releases near one of them.
    let mut wanted: BTreeMap<Slot, Vec<(usize, usize, usize)>> = BTreeMap::new();
    for &i in order {
        let c = &cells[i];
        let t = usize::try_from(c.thresholds.differencing()).unwrap_or(0);
        // A release smaller by more than the threshold is still close for a network that
        // knows enough of the difference: by as many as the most of this cell's contributors
        // any one network knows.
        let mut known: BTreeMap<i64, usize> = BTreeMap::new();
        for nets in impact::knowers(c)?.into_values() {
            for n in nets {
                *known.entry(n).or_default() += 1;
            }
        }
        let known = known.into_values().max().unwrap_or(0);
        for slot in slots(spec, c) {
            wanted
                .entry(slot)
                .or_default()
                .push((c.members.len(), t, known));
        }
    }
    let near: Vec<i64> = light
        .into_iter()
        .filter(|(_, metric, breakdown, period, size)| {
            let size = usize::try_from(*size).unwrap_or(0);
            wanted
                .get(&(metric.clone(), breakdown.clone(), period.clone()))
                .is_some_and(|ws| {
                    ws.iter()
                        .any(|&(n, t, known)| size + t + known > n && size < n + t)
                })
        })
        .map(|(id, ..)| id)
        .collect();
    let mut out: BTreeMap<Slot, Vec<Released>> = BTreeMap::new();
    for chunk in near.chunks(500) {
        let rows = released_cells::Entity::find()
            .filter(released_cells::Column::Id.is_in(chunk.iter().copied()))
            .all(db)
            .await
            .context("Failed to read the released cells' contributors")?;
        for r in rows {
            let members = parse_members(&r.members)
                .with_context(|| format!("released_cells row {}: members `{}`", r.id, r.members))?;
            out.entry((r.metric, r.breakdown, r.period))
                .or_default()
                .push(members);
        }
    }
    Ok(out)
}

fn parse_members(text: &str) -> anyhow::Result<Vec<i64>> {
    if text.is_empty() {
        return Ok(vec![]);
    }
    let mut ids = text
        .split(',')
        .map(|m| m.parse::<i64>().context("not an institution id"))
        .collect::<anyhow::Result<Vec<i64>>>()?;
    ids.sort_unstable();
    Ok(ids)
}

fn row(
    audience: &Audience,
    (metric, breakdown, period): &Slot,
    members: &[i64],
) -> released_cells::ActiveModel {
    let text = members
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    released_cells::ActiveModel {
        audience: Set(audience.stored()),
        metric: Set(metric.clone()),
        breakdown: Set(breakdown.clone()),
        period: Set(period.clone()),
        size: Set(i32::try_from(members.len()).unwrap_or(i32::MAX)),
        digest: Set(digest(members)),
        members: Set(text),
        released_at: Set(Utc::now()),
        ..Default::default()
    }
}

/// Remembers the releases, once each: a cell released again adds nothing.
async fn remember<C: ConnectionTrait>(
    db: &C,
    rows: Vec<released_cells::ActiveModel>,
) -> ApiResult<()> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(200).collect();
        released_cells::Entity::insert_many(chunk)
            .on_conflict(
                OnConflict::columns([
                    released_cells::Column::Audience,
                    released_cells::Column::Metric,
                    released_cells::Column::Breakdown,
                    released_cells::Column::Period,
                    released_cells::Column::Digest,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(db)
            .await
            .context("Failed to remember the released cells")?;
    }
    Ok(())
}

/// The deployment's noise secret, created on first use. It lives with the data so every node
/// draws the same noise; losing or changing it would redraw every cell's noise, and a reader
/// holding answers from before and after could average the two.
pub async fn noise_key<C: ConnectionTrait>(db: &C) -> anyhow::Result<NoiseKey> {
    if let Some(k) = disclosure_keys::Entity::find_by_id(1)
        .one(db)
        .await
        .context("Failed to read the disclosure secret")?
    {
        return decode(&k.secret);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("No randomness for the disclosure secret: {e}"))?;
    let row = disclosure_keys::ActiveModel {
        id: Set(1),
        secret: Set(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)),
        created_at: Set(Utc::now()),
    };
    // Another node may have created it first: then its secret is the one.
    disclosure_keys::Entity::insert(row)
        .on_conflict(
            OnConflict::column(disclosure_keys::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .context("Failed to store the disclosure secret")?;
    let stored = disclosure_keys::Entity::find_by_id(1)
        .one(db)
        .await
        .context("Failed to read the disclosure secret")?
        .context("The disclosure secret was not stored")?;
    tracing::info!("generated the disclosure secret");
    decode(&stored.secret)
}

fn decode(text: &str) -> anyhow::Result<NoiseKey> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .context("disclosure_keys.secret (id 1) is not base64url")?;
    NoiseKey::new(bytes).map_err(|e| anyhow::anyhow!("disclosure_keys.secret (id 1): {e}"))
}
