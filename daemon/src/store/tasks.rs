//! The task inbox: reads, claiming (the one write to a task outside a transition), and the
//! daily digest's counts of open tasks by who owes them.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

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

/// The list of a daily digest an open task is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestList {
    Overdue,
    DueSoon,
    Other,
}

impl DigestList {
    fn as_str(self) -> &'static str {
        match self {
            DigestList::Overdue => "overdue",
            DigestList::DueSoon => "due_soon",
            DigestList::Other => "other",
        }
    }

    fn decode(text: &str) -> Result<DigestList, StoreError> {
        [DigestList::Overdue, DigestList::DueSoon, DigestList::Other]
            .into_iter()
            .find(|list| list.as_str() == text)
            .ok_or_else(|| StoreError::Corrupt(format!("no digest list is called {text:?}")))
    }
}

/// The instants (milliseconds) that sort open tasks into a digest's lists: overdue when
/// flagged so or due by `now`; due soon when due by `due_soon_until`; any other, with a
/// deadline or without, in the third.
#[derive(Clone, Copy, Debug)]
pub struct DigestBounds {
    pub now: i64,
    pub due_soon_until: i64,
}

impl DigestBounds {
    /// Never NULL, so that its negation holds for every task it does not.
    fn overdue(self) -> Condition {
        Condition::any()
            .add(tasks::Column::Overdue.eq(true))
            .add(Condition::all().add(tasks::Column::DueAt.is_not_null()).add(tasks::Column::DueAt.lte(self.now)))
    }

    /// The tasks of `list`, as the grouped count sorts them.
    fn in_list(self, list: DigestList) -> Condition {
        let not_overdue = Condition::all()
            .add(tasks::Column::Overdue.eq(false))
            .add(Condition::any().add(tasks::Column::DueAt.is_null()).add(tasks::Column::DueAt.gt(self.now)));
        match list {
            DigestList::Overdue => self.overdue(),
            DigestList::DueSoon => not_overdue.add(tasks::Column::DueAt.lte(self.due_soon_until)),
            DigestList::Other => not_overdue.add(
                Condition::any().add(tasks::Column::DueAt.is_null()).add(tasks::Column::DueAt.gt(self.due_soon_until)),
            ),
        }
    }
}

/// Open tasks owed alike: of one organization, for one role, held by one person (`None`:
/// by nobody, so by whoever holds the role), in one list of a digest.
#[derive(Clone, Debug)]
pub struct OwedTasks {
    pub organization: String,
    pub role: String,
    pub assignee: Option<String>,
    pub list: DigestList,
    pub count: u64,
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

    /// The open tasks of `organizations` counted by who owes them and which list of a daily
    /// digest they are in at `bounds`: one grouped count, so a digest over a million open
    /// tasks reads their rows inside the database instead of each crossing to the daemon.
    pub async fn count_owed_tasks(
        &self,
        organizations: &[String],
        bounds: DigestBounds,
    ) -> Result<Vec<OwedTasks>, StoreError> {
        let list: Expr = Expr::case(bounds.overdue(), DigestList::Overdue.as_str())
            .case(tasks::Column::DueAt.lte(bounds.due_soon_until), DigestList::DueSoon.as_str())
            .finally(DigestList::Other.as_str())
            .into();
        // Grouped by the list's alias: PostgreSQL sees the repeated `CASE` with its own
        // parameters as another expression.
        let list_alias = "digest_list";
        // Organization, role, holder, list, count.
        type Row = (Option<String>, String, Option<String>, String, i64);
        let rows: Vec<Row> = tasks::Entity::find()
            .select_only()
            .columns([tasks::Column::Organization, tasks::Column::Role, tasks::Column::Assignee])
            .column_as(list, list_alias)
            .column_as(tasks::Column::Id.count(), "tasks")
            .filter(tasks::Column::Status.eq(TaskStatus::Open.as_str()))
            .filter(tasks::Column::Organization.is_in(organizations.iter().cloned()))
            .group_by(tasks::Column::Organization)
            .group_by(tasks::Column::Role)
            .group_by(tasks::Column::Assignee)
            .group_by(Expr::col(list_alias))
            .into_tuple()
            .all(&self.db)
            .await?;
        rows.into_iter()
            .filter_map(|(organization, role, assignee, list, count)| {
                let organization = organization?;
                Some(DigestList::decode(&list).map(|list| OwedTasks {
                    organization,
                    role,
                    assignee,
                    list,
                    count: count as u64,
                }))
            })
            .collect()
    }

    /// The first `limit` of the tasks `owed` counts, in a digest's order: those without a
    /// deadline first, then earliest due, then by instance.
    pub async fn first_owed_tasks(
        &self,
        owed: &OwedTasks,
        bounds: DigestBounds,
        limit: u64,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let holder = match &owed.assignee {
            Some(assignee) => tasks::Column::Assignee.eq(assignee.clone()),
            None => tasks::Column::Assignee.is_null(),
        };
        tasks::Entity::find()
            .filter(tasks::Column::Status.eq(TaskStatus::Open.as_str()))
            .filter(tasks::Column::Organization.eq(owed.organization.clone()))
            .filter(tasks::Column::Role.eq(owed.role.clone()))
            .filter(holder)
            .filter(bounds.in_list(owed.list))
            .order_by_asc(Expr::col(tasks::Column::DueAt).is_not_null())
            .order_by_asc(tasks::Column::DueAt)
            .order_by_asc(tasks::Column::InstanceId)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(TaskRecord::decode)
            .collect()
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
