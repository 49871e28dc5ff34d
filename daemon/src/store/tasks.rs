//! The task inbox: reads, and claiming (the one write to a task outside a transition).

use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};

use super::entities::tasks;
use super::records::{TaskRecord, TaskStatus};
use super::{read_page, Slice, Store, StoreError, Total};

/// Which open tasks an inbox shows.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    pub role: Option<String>,
    pub organization: Option<String>,
    pub assignee: Option<String>,
    /// Only tasks nobody holds or this person holds (an inbox: what they may take up).
    pub free_or_held_by: Option<String>,
    /// The caller's scope: only tasks of these organizations (staff).
    pub within: Option<Vec<String>>,
}

impl Store {
    pub async fn open_tasks_of(&self, id: i64) -> Result<Vec<TaskRecord>, StoreError> {
        tasks::Entity::find()
            .filter(tasks::Column::InstanceId.eq(id))
            .filter(tasks::Column::Status.eq(TaskStatus::Open.as_str()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(TaskRecord::decode)
            .collect()
    }

    pub async fn task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        tasks::Entity::find_by_id(id.to_owned()).one(&self.db).await?.map(TaskRecord::decode).transpose()
    }

    /// One slice of the open tasks `filter` takes, earliest due first.
    pub async fn open_tasks(&self, filter: &TaskFilter, slice: Slice) -> Result<(Vec<TaskRecord>, Total), StoreError> {
        let mut select = tasks::Entity::find()
            .filter(tasks::Column::Status.eq(TaskStatus::Open.as_str()))
            .order_by_asc(tasks::Column::DueAt)
            .order_by_asc(tasks::Column::Id);
        if let Some(role) = &filter.role {
            select = select.filter(tasks::Column::Role.eq(role.clone()));
        }
        if let Some(organization) = &filter.organization {
            select = select.filter(tasks::Column::Organization.eq(organization.clone()));
        }
        if let Some(assignee) = &filter.assignee {
            select = select.filter(tasks::Column::Assignee.eq(assignee.clone()));
        }
        if let Some(holder) = &filter.free_or_held_by {
            select = select.filter(
                Condition::any().add(tasks::Column::Assignee.is_null()).add(tasks::Column::Assignee.eq(holder.clone())),
            );
        }
        if let Some(within) = &filter.within {
            select = select.filter(tasks::Column::Organization.is_in(within.iter().cloned()));
        }
        let (rows, total) = read_page(select, slice, &self.db).await?;
        Ok((rows.into_iter().map(TaskRecord::decode).collect::<Result<_, _>>()?, total))
    }

    /// Shows `visit` every open task of `organizations`, one row at a time and in no particular
    /// order (the daily digest): a million open tasks are never held in memory at once.
    pub async fn visit_open_tasks_in(
        &self,
        organizations: &[String],
        mut visit: impl FnMut(TaskRecord),
    ) -> Result<(), StoreError> {
        use futures_util::StreamExt;
        let mut rows = tasks::Entity::find()
            .filter(tasks::Column::Status.eq(TaskStatus::Open.as_str()))
            .filter(tasks::Column::Organization.is_in(organizations.iter().cloned()))
            .stream(&self.db)
            .await?;
        while let Some(row) = rows.next().await {
            visit(TaskRecord::decode(row?)?);
        }
        Ok(())
    }

    /// Claims an open task for `assignee` unless someone else holds it (the condition is part
    /// of the update). Returns whether `assignee` now holds it.
    pub async fn claim_task(&self, id: &str, assignee: &str) -> Result<bool, StoreError> {
        let claimed = tasks::Entity::update_many()
            .col_expr(tasks::Column::Assignee, Some(assignee.to_owned()).into())
            .filter(tasks::Column::Id.eq(id))
            .filter(tasks::Column::Status.eq(TaskStatus::Open.as_str()))
            .filter(Condition::any().add(tasks::Column::Assignee.is_null()).add(tasks::Column::Assignee.eq(assignee)))
            .exec(&self.db)
            .await?;
        Ok(claimed.rows_affected == 1)
    }

    /// Gives an open task back: `holder` releases only a claim of their own, `None` (an
    /// administrator) any claim. Returns whether a claim was released.
    pub async fn release_task(&self, id: &str, holder: Option<&str>) -> Result<bool, StoreError> {
        let mut release = tasks::Entity::update_many()
            .col_expr(tasks::Column::Assignee, Option::<String>::None.into())
            .filter(tasks::Column::Id.eq(id))
            .filter(tasks::Column::Status.eq(TaskStatus::Open.as_str()))
            .filter(tasks::Column::Assignee.is_not_null());
        if let Some(holder) = holder {
            release = release.filter(tasks::Column::Assignee.eq(holder));
        }
        Ok(release.exec(&self.db).await?.rows_affected == 1)
    }
}
