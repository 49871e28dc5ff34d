//! Reads of instances and their histories, and the one write outside a transition: flagging
//! an instance that failed verification.

use std::collections::{BTreeMap, HashMap};

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select};

use super::entities::{history, instances};
use super::records::{HistoryEntry, InstanceRecord, InstanceStatus};
use super::{read_page, scope, Slice, Store, StoreError, Total};

/// Which instances a list shows.
#[derive(Clone, Debug, Default)]
pub struct InstanceFilter {
    pub procedure: Option<String>,
    pub status: Option<InstanceStatus>,
    pub overdue: Option<bool>,
    /// Only instances involving this organization.
    pub organization: Option<String>,
    /// `Some(true)`: only flagged instances; `Some(false)`: only unflagged ones.
    pub flagged: Option<bool>,
    /// The caller's scope: only instances involving one of these (staff).
    pub within: Option<Vec<String>>,
    pub jurisdiction: Option<String>,
    /// Only instances started at or after this instant (UTC milliseconds)…
    pub created_from: Option<i64>,
    /// …and before this one.
    pub created_before: Option<i64>,
    /// Only instances whose stored state contains this text somewhere: a coarse prefilter;
    /// the caller checks the fields it may show.
    pub containing: Option<String>,
}

/// The columns of a [`DueRow`], as read.
type DueColumns = (i64, String, Option<String>, Option<i64>, bool);

/// A running instance that is overdue or due soon, as the overdue board first reads it.
#[derive(Clone, Debug)]
pub struct DueRow {
    pub id: i64,
    pub definition_version: String,
    pub step: Option<String>,
    pub next_due_at: Option<i64>,
    pub overdue: bool,
}

/// What an instance's start fixed: its procedure, definition version and start instant.
#[derive(Clone, Debug)]
pub struct InstanceOrigin {
    pub procedure: String,
    pub definition_version: String,
    pub created_at: i64,
}

/// Which running instances a schedule's selection takes.
#[derive(Clone, Debug)]
pub struct RunningSelection<'a> {
    pub procedure: &'a str,
    pub jurisdiction: &'a str,
    /// Only instances in one of these steps (all steps when `None`).
    pub steps: Option<&'a [String]>,
}

impl Store {
    pub async fn instance(&self, id: i64) -> Result<InstanceRecord, StoreError> {
        let row = instances::Entity::find_by_id(id).one(&self.db).await?.ok_or(StoreError::NotFound(id))?;
        let organizations = scope::of(&self.db, &[id]).await?.remove(&id).unwrap_or_default();
        InstanceRecord::decode(row, organizations)
    }

    /// The instances among `ids` that exist, by id (an inbox page's instances, in one read).
    pub async fn instances_by_id(&self, ids: &[i64]) -> Result<HashMap<i64, InstanceRecord>, StoreError> {
        let mut scopes = scope::of(&self.db, ids).await?;
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            for row in instances::Entity::find()
                .filter(instances::Column::Id.is_in(chunk.iter().copied()))
                .all(&self.db)
                .await?
            {
                let organizations = scopes.remove(&row.id).unwrap_or_default();
                found.insert(row.id, InstanceRecord::decode(row, organizations)?);
            }
        }
        Ok(found)
    }

    pub async fn history(&self, id: i64) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(history::Entity::find()
            .filter(history::Column::InstanceId.eq(id))
            .order_by_asc(history::Column::Seq)
            .all(&self.db)
            .await?
            .into_iter()
            .map(HistoryEntry::from)
            .collect())
    }

    /// One slice of the instances `filter` takes, in id order, and how many it takes in all.
    pub async fn instances(
        &self,
        filter: &InstanceFilter,
        slice: Slice,
    ) -> Result<(Vec<InstanceRecord>, Total), StoreError> {
        let select = filtered(instances::Entity::find().order_by_asc(instances::Column::Id), filter);
        let (rows, total) = read_page(select, slice, &self.db).await?;
        Ok((self.with_scopes(rows).await?, total))
    }

    /// Up to `limit` of the instances `filter` takes with ids below `before`, newest first:
    /// a search reads them a chunk at a time.
    pub async fn instances_before(
        &self,
        filter: &InstanceFilter,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Vec<InstanceRecord>, StoreError> {
        let mut select = filtered(instances::Entity::find().order_by_desc(instances::Column::Id), filter);
        if let Some(before) = before {
            select = select.filter(instances::Column::Id.lt(before));
        }
        let rows = select.limit(limit).all(&self.db).await?;
        self.with_scopes(rows).await
    }

    /// Running instances after id `after` that are overdue or due by `due_by`, in id order,
    /// at most `limit`: the overdue board reads them a chunk at a time.
    pub async fn due_instances(
        &self,
        due_by: i64,
        within: Option<&[String]>,
        organization: Option<&str>,
        after: i64,
        limit: u64,
    ) -> Result<Vec<DueRow>, StoreError> {
        let mut select =
            instances::Entity::find().filter(instances::Column::Status.eq(InstanceStatus::Running.as_str())).filter(
                Condition::any().add(instances::Column::Overdue.eq(true)).add(instances::Column::NextDueAt.lte(due_by)),
            );
        if let Some(within) = within {
            select = select.filter(scope::involves_any(within));
        }
        if let Some(organization) = organization {
            select = select.filter(scope::involves(organization));
        }
        // Only the columns that tell whether the instance is near its deadline: its state is
        // read afterwards, for those that are (`instances_by_id`).
        let rows: Vec<DueColumns> = select
            .select_only()
            .columns([
                instances::Column::Id,
                instances::Column::DefinitionVersion,
                instances::Column::Step,
                instances::Column::NextDueAt,
                instances::Column::Overdue,
            ])
            .filter(instances::Column::Id.gt(after))
            .order_by_asc(instances::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, definition_version, step, next_due_at, overdue)| DueRow {
                id,
                definition_version,
                step,
                next_due_at,
                overdue,
            })
            .collect())
    }

    /// The running instances a schedule's selection takes, in id order.
    pub async fn running(&self, selection: &RunningSelection<'_>) -> Result<Vec<InstanceRecord>, StoreError> {
        let mut select = instances::Entity::find()
            .filter(instances::Column::Procedure.eq(selection.procedure))
            .filter(instances::Column::Jurisdiction.eq(selection.jurisdiction))
            .filter(instances::Column::Status.eq(InstanceStatus::Running.as_str()));
        if let Some(steps) = selection.steps {
            select = select.filter(instances::Column::Step.is_in(steps.iter().cloned()));
        }
        let rows = select.order_by_asc(instances::Column::Id).all(&self.db).await?;
        self.with_scopes(rows).await
    }

    /// The running instances of (procedure, jurisdiction) a migration to `to_version` takes:
    /// those on any other version, or on `from_version` only, or only `ids`; the first
    /// `limit` in id order, and how many it takes in all.
    pub async fn migration_candidates(
        &self,
        selection: &RunningSelection<'_>,
        to_version: &str,
        from_version: Option<&str>,
        ids: Option<&[i64]>,
        limit: u64,
    ) -> Result<(Vec<InstanceRecord>, u64), StoreError> {
        let mut select = instances::Entity::find()
            .filter(instances::Column::Status.eq(InstanceStatus::Running.as_str()))
            .filter(instances::Column::Procedure.eq(selection.procedure))
            .filter(instances::Column::Jurisdiction.eq(selection.jurisdiction))
            .filter(instances::Column::DefinitionVersion.ne(to_version));
        if let Some(version) = from_version {
            select = select.filter(instances::Column::DefinitionVersion.eq(version));
        }
        if let Some(ids) = ids {
            select = select.filter(instances::Column::Id.is_in(ids.iter().copied()));
        }
        let total = select.clone().count(&self.db).await?;
        let rows = select.order_by_asc(instances::Column::Id).limit(limit).all(&self.db).await?;
        Ok((self.with_scopes(rows).await?, total))
    }

    async fn with_scopes(&self, rows: Vec<instances::Model>) -> Result<Vec<InstanceRecord>, StoreError> {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut scopes = scope::of(&self.db, &ids).await?;
        rows.into_iter()
            .map(|row| {
                let organizations = scopes.remove(&row.id).unwrap_or_default();
                InstanceRecord::decode(row, organizations)
            })
            .collect()
    }

    /// What the start of each of `ids` fixed, by id: what source notices and titles follow
    /// from, without reading states.
    pub async fn instance_origins(&self, ids: &[i64]) -> Result<HashMap<i64, InstanceOrigin>, StoreError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            let rows: Vec<(i64, String, String, i64)> = instances::Entity::find()
                .select_only()
                .column(instances::Column::Id)
                .column(instances::Column::Procedure)
                .column(instances::Column::DefinitionVersion)
                .column(instances::Column::CreatedAt)
                .filter(instances::Column::Id.is_in(chunk.to_vec()))
                .into_tuple()
                .all(&self.db)
                .await?;
            out.extend(rows.into_iter().map(|(id, procedure, definition_version, created_at)| {
                (id, InstanceOrigin { procedure, definition_version, created_at })
            }));
        }
        Ok(out)
    }

    /// The ids of the instances `parent`'s steps started (rectifications under an
    /// evaluation), in order, the first 100.
    pub async fn children(&self, parent: i64) -> Result<Vec<i64>, StoreError> {
        Ok(instances::Entity::find()
            .select_only()
            .column(instances::Column::Id)
            .filter(instances::Column::ParentInstanceId.eq(parent))
            .order_by_asc(instances::Column::Id)
            .limit(100)
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// The child a parent started under `key`, if it did.
    pub async fn child_of(&self, parent: i64, key: &str) -> Result<Option<i64>, StoreError> {
        Ok(instances::Entity::find()
            .select_only()
            .column(instances::Column::Id)
            .filter(instances::Column::ParentInstanceId.eq(parent))
            .filter(instances::Column::ParentKey.eq(key))
            .into_tuple::<i64>()
            .one(&self.db)
            .await?)
    }

    /// Instances started under a start key beginning with `prefix`, by key.
    pub async fn started_under(&self, prefix: &str) -> Result<BTreeMap<String, i64>, StoreError> {
        Ok(instances::Entity::find()
            .select_only()
            .column(instances::Column::StartKey)
            .column(instances::Column::Id)
            .filter(instances::Column::StartKey.starts_with(prefix))
            .into_tuple::<(String, i64)>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect())
    }

    fn stale(generation: i64) -> Select<instances::Entity> {
        instances::Entity::find()
            .filter(instances::Column::Status.eq(InstanceStatus::Running.as_str()))
            .filter(instances::Column::CalendarGeneration.lt(generation))
    }

    /// Running instances whose deadlines were computed with a calendar older than `generation`.
    pub async fn count_stale(&self, generation: i64) -> Result<u64, StoreError> {
        Ok(Self::stale(generation).count(&self.db).await?)
    }

    /// Up to `limit` ids of such instances after id `after`, in order.
    pub async fn stale_after(&self, generation: i64, after: i64, limit: u64) -> Result<Vec<i64>, StoreError> {
        Ok(Self::stale(generation)
            .filter(instances::Column::Id.gt(after))
            .select_only()
            .column(instances::Column::Id)
            .order_by_asc(instances::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// How many instances ended with `outcome`.
    pub async fn count_outcome(&self, outcome: &str) -> Result<u64, StoreError> {
        Ok(instances::Entity::find().filter(instances::Column::Outcome.eq(outcome)).count(&self.db).await?)
    }

    /// How many events are stored in all.
    pub async fn count_events(&self) -> Result<u64, StoreError> {
        Ok(history::Entity::find().count(&self.db).await?)
    }

    /// Flags an instance that failed verification (once: the first reason stays). Returns
    /// whether it was newly flagged.
    pub async fn flag(&self, id: i64, reason: &str) -> Result<bool, StoreError> {
        let flagged = instances::Entity::update_many()
            .col_expr(instances::Column::Flagged, Some(reason.to_owned()).into())
            .filter(instances::Column::Id.eq(id))
            .filter(instances::Column::Flagged.is_null())
            .exec(&self.db)
            .await?
            .rows_affected
            == 1;
        Ok(flagged)
    }
}

/// `select` narrowed by every condition of `filter`.
fn filtered(mut select: Select<instances::Entity>, filter: &InstanceFilter) -> Select<instances::Entity> {
    if let Some(procedure) = &filter.procedure {
        select = select.filter(instances::Column::Procedure.eq(procedure.clone()));
    }
    if let Some(status) = filter.status {
        select = select.filter(instances::Column::Status.eq(status.as_str()));
    }
    if let Some(overdue) = filter.overdue {
        select = select.filter(instances::Column::Overdue.eq(overdue));
    }
    if let Some(organization) = &filter.organization {
        select = select.filter(scope::involves(organization));
    }
    match filter.flagged {
        Some(true) => select = select.filter(instances::Column::Flagged.is_not_null()),
        Some(false) => select = select.filter(instances::Column::Flagged.is_null()),
        None => {}
    }
    if let Some(within) = &filter.within {
        select = select.filter(scope::involves_any(within));
    }
    if let Some(jurisdiction) = &filter.jurisdiction {
        select = select.filter(instances::Column::Jurisdiction.eq(jurisdiction.clone()));
    }
    if let Some(from) = filter.created_from {
        select = select.filter(instances::Column::CreatedAt.gte(from));
    }
    if let Some(before) = filter.created_before {
        select = select.filter(instances::Column::CreatedAt.lt(before));
    }
    if let Some(text) = &filter.containing {
        select = select.filter(Expr::col(instances::Column::State).like(super::literal_like("%", text, "%")));
    }
    select
}
