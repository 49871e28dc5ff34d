//! Stored schedules and their runs: one run row per (schedule, fire time), never two.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use statflow_workflows::schedules::{CatchUp, Job, ScheduleSpec};

use super::entities::{schedule_runs, schedules};
use super::records::{RunRecord, RunStatus};
use super::{read_page, Slice, Store, StoreError, Total};

/// A stored schedule, its job and catch-up policy decoded.
#[derive(Clone, Debug)]
pub struct ScheduleRecord {
    pub id: String,
    pub title: String,
    pub cron: String,
    pub job: Job,
    pub catch_up: CatchUp,
    pub enabled: bool,
    pub built_in: bool,
    /// The earliest fire time not yet handled.
    pub next_fire_at: Option<i64>,
    pub updated_at: i64,
}

impl ScheduleRecord {
    fn decode(row: schedules::Model) -> Result<ScheduleRecord, StoreError> {
        let job = serde_json::from_str(&row.job)
            .map_err(|e| StoreError::Corrupt(format!("schedule {}: its job does not decode: {e}", row.id)))?;
        let catch_up = CatchUp::parse(&row.catch_up).ok_or_else(|| {
            StoreError::Corrupt(format!("schedule {}: `{}` is not a catch-up policy", row.id, row.catch_up))
        })?;
        Ok(ScheduleRecord {
            id: row.id,
            title: row.title,
            cron: row.cron,
            job,
            catch_up,
            enabled: row.enabled,
            built_in: row.built_in,
            next_fire_at: row.next_fire_at,
            updated_at: row.updated_at,
        })
    }
}

impl Store {
    pub async fn schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        schedules::Entity::find_by_id(id).one(&self.db).await?.map(ScheduleRecord::decode).transpose()
    }

    /// One slice of the schedules, by id.
    pub async fn schedules(&self, slice: Slice) -> Result<(Vec<ScheduleRecord>, Total), StoreError> {
        let (rows, total) =
            read_page(schedules::Entity::find().order_by_asc(schedules::Column::Id), slice, &self.db).await?;
        Ok((rows.into_iter().map(ScheduleRecord::decode).collect::<Result<_, _>>()?, total))
    }

    /// Every enabled schedule.
    pub async fn enabled_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        schedules::Entity::find()
            .filter(schedules::Column::Enabled.eq(true))
            .order_by_asc(schedules::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(ScheduleRecord::decode)
            .collect()
    }

    /// The enabled schedule whose next fire time is earliest, if it is at or before `until`
    /// (any time when `None`).
    pub async fn next_due_schedule(&self, until: Option<i64>) -> Result<Option<ScheduleRecord>, StoreError> {
        let mut select = schedules::Entity::find()
            .filter(schedules::Column::Enabled.eq(true))
            .filter(schedules::Column::NextFireAt.is_not_null());
        if let Some(until) = until {
            select = select.filter(schedules::Column::NextFireAt.lte(until));
        }
        select
            .order_by_asc(schedules::Column::NextFireAt)
            .order_by_asc(schedules::Column::Id)
            .one(&self.db)
            .await?
            .map(ScheduleRecord::decode)
            .transpose()
    }

    /// Creates or replaces a schedule; one already stored keeps its `built_in` mark.
    pub async fn put_schedule(
        &self,
        id: &str,
        spec: &ScheduleSpec,
        built_in: bool,
        next_fire_at: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        let row = schedules::ActiveModel {
            id: Set(id.to_owned()),
            title: Set(spec.title.clone()),
            cron: Set(spec.cron.clone()),
            job: Set(serde_json::to_string(&spec.job).expect("jobs serialize")),
            catch_up: Set(spec.catch_up.as_str().to_owned()),
            enabled: Set(spec.enabled),
            built_in: Set(built_in),
            next_fire_at: Set(next_fire_at),
            updated_at: Set(now),
        };
        schedules::Entity::insert(row)
            .on_conflict(
                OnConflict::column(schedules::Column::Id)
                    .update_columns([
                        schedules::Column::Title,
                        schedules::Column::Cron,
                        schedules::Column::Job,
                        schedules::Column::CatchUp,
                        schedules::Column::Enabled,
                        schedules::Column::NextFireAt,
                        schedules::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Removes a schedule (its runs stay, as the record of what it did).
    pub async fn delete_schedule(&self, id: &str) -> Result<(), StoreError> {
        schedules::Entity::delete_by_id(id).exec(&self.db).await?;
        Ok(())
    }

    pub async fn set_next_fire(&self, id: &str, at: Option<i64>) -> Result<(), StoreError> {
        schedules::ActiveModel { id: Set(id.to_owned()), next_fire_at: Set(at), ..Default::default() }
            .update(&self.db)
            .await?;
        Ok(())
    }

    /// One slice of a schedule's runs, newest first.
    pub async fn runs_of(&self, schedule: &str, slice: Slice) -> Result<(Vec<RunRecord>, Total), StoreError> {
        let select = schedule_runs::Entity::find()
            .filter(schedule_runs::Column::ScheduleId.eq(schedule))
            .order_by_desc(schedule_runs::Column::FireAt);
        let (rows, total) = read_page(select, slice, &self.db).await?;
        Ok((rows.into_iter().map(RunRecord::decode).collect::<Result<_, _>>()?, total))
    }

    /// Runs a crash left running, oldest first.
    pub async fn interrupted_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        schedule_runs::Entity::find()
            .filter(schedule_runs::Column::Status.eq(RunStatus::Running.as_str()))
            .order_by_asc(schedule_runs::Column::FireAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(RunRecord::decode)
            .collect()
    }

    /// Records a fire time's run unless it exists, and returns the stored run: a run already
    /// there (finished, or interrupted by a crash) is never overwritten.
    pub async fn claim_run(
        &self,
        schedule: &str,
        fire_at: i64,
        status: RunStatus,
        result: &serde_json::Value,
        now: i64,
    ) -> Result<RunRecord, StoreError> {
        let row = schedule_runs::ActiveModel {
            schedule_id: Set(schedule.to_owned()),
            fire_at: Set(fire_at),
            status: Set(status.as_str().to_owned()),
            result: Set(result.to_string()),
            error: Set(None),
            created_at: Set(now),
            finished_at: Set((status != RunStatus::Running).then_some(now)),
            ..Default::default()
        };
        schedule_runs::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([schedule_runs::Column::ScheduleId, schedule_runs::Column::FireAt])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        let stored = schedule_runs::Entity::find()
            .filter(schedule_runs::Column::ScheduleId.eq(schedule))
            .filter(schedule_runs::Column::FireAt.eq(fire_at))
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("the run of {schedule} at {fire_at} disappeared")))?;
        RunRecord::decode(stored)
    }

    /// Records how a run ended.
    pub async fn finish_run(
        &self,
        schedule: &str,
        fire_at: i64,
        status: RunStatus,
        result: &serde_json::Value,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        schedule_runs::Entity::update_many()
            .col_expr(schedule_runs::Column::Status, status.as_str().into())
            .col_expr(schedule_runs::Column::Result, result.to_string().into())
            .col_expr(schedule_runs::Column::Error, error.map(str::to_owned).into())
            .col_expr(schedule_runs::Column::FinishedAt, Some(now).into())
            .filter(schedule_runs::Column::ScheduleId.eq(schedule))
            .filter(schedule_runs::Column::FireAt.eq(fire_at))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
