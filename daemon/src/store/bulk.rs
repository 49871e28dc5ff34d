//! Many rows in one statement whose text does not depend on how many.
//!
//! A multi-row `INSERT … VALUES (…), (…)` is a different statement for every row count:
//! SQLite parses and plans it afresh, and the connection's statement cache never hits. The
//! group commit writes a different number of rows to each table in every batch, so on SQLite
//! the rows are padded to a power of two with rows of NULLs that the statement leaves out
//! (`INSERT … SELECT … FROM (VALUES …) WHERE column1 IS NOT NULL`, the first column marking
//! a real row): nine statement texts per table for 1 to 256 rows, each prepared once per
//! connection, and every value bound as itself (no encoding to unpack). PostgreSQL takes the
//! ordinary multi-row insert.
//!
//! `IN` lists have the same problem; [`padded`] rounds them up to a power of two.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, Iden, Iterable, Statement, Value};

/// What an insert does with a row whose key is already stored.
pub(super) enum Conflict<C> {
    /// Fails the statement (and so the batch).
    Fail,
    /// Keeps the stored row: an effect is recorded once, however often it is queued.
    Keep(C),
    /// Updates the stored row's `columns` from the new one.
    Update(C, Vec<C>),
}

/// Inserts `rows` (every row sets the same columns) in one statement.
pub(super) async fn insert<E>(
    db: &impl ConnectionTrait,
    rows: Vec<E::ActiveModel>,
    conflict: Conflict<E::Column>,
) -> Result<(), DbErr>
where
    E: EntityTrait,
{
    let Some(first) = rows.first() else { return Ok(()) };
    if db.get_database_backend() != DbBackend::Sqlite {
        let mut insert = E::insert_many(rows);
        if let Some(on_conflict) = on_conflict(conflict) {
            insert = insert.on_conflict(on_conflict);
        }
        return insert.exec_without_returning(db).await.map(|_| ());
    }
    let columns: Vec<E::Column> = E::Column::iter().filter(|c| !first.is_not_set(*c)).collect();
    let table = E::default().table_name();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let slots = chunk.len().next_power_of_two();
        let mut values = Vec::with_capacity(slots * (columns.len() + 1));
        for row in chunk {
            values.push(Value::Bool(Some(true)));
            for column in &columns {
                values.push(
                    row.get(*column).into_value().ok_or_else(|| {
                        DbErr::Custom(format!("{table}: a row leaves `{}` unset", column.to_string()))
                    })?,
                );
            }
        }
        values.resize(slots * (columns.len() + 1), Value::Bool(None));
        let sql = values_insert_sql(table, &columns, &conflict, slots);
        db.execute_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)).await?;
    }
    Ok(())
}

/// The most rows one SQLite statement carries (a tenth of SQLite's 32,766 parameters at
/// 12 columns a row).
const ROWS_PER_STATEMENT: usize = 256;

/// `INSERT INTO t (a, b) SELECT column2, column3 FROM (VALUES (?, ?, ?), …) WHERE column1
/// IS NOT NULL …` with `slots` rows of values, each a marker and then `columns` in order.
fn values_insert_sql<C: Iden>(table: &str, columns: &[C], conflict: &Conflict<C>, slots: usize) -> String {
    let quoted = |column: &C| format!("\"{}\"", column.to_string());
    let names: Vec<String> = columns.iter().map(quoted).collect();
    let cells: Vec<String> = (0..columns.len()).map(|i| format!("column{}", i + 2)).collect();
    let row = format!("({})", vec!["?"; columns.len() + 1].join(", "));
    // The `WHERE` also keeps SQLite from reading `ON` as the start of a join constraint.
    let mut sql = format!(
        "INSERT INTO \"{table}\" ({}) SELECT {} FROM (VALUES {}) WHERE column1 IS NOT NULL",
        names.join(", "),
        cells.join(", "),
        vec![row.as_str(); slots].join(", ")
    );
    match conflict {
        Conflict::Fail => {}
        Conflict::Keep(key) => sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", quoted(key))),
        Conflict::Update(key, updated) => {
            let sets: Vec<String> = updated.iter().map(|c| format!("{0} = excluded.{0}", quoted(c))).collect();
            sql.push_str(&format!(" ON CONFLICT ({}) DO UPDATE SET {}", quoted(key), sets.join(", ")));
        }
    }
    sql
}

fn on_conflict<C: Iden + Copy + 'static>(conflict: Conflict<C>) -> Option<OnConflict> {
    match conflict {
        Conflict::Fail => None,
        Conflict::Keep(key) => Some(OnConflict::column(key).do_nothing().to_owned()),
        Conflict::Update(key, columns) => Some(OnConflict::column(key).update_columns(columns).to_owned()),
    }
}

/// `values` with the last one repeated up to the next power of two (a repeat changes no
/// `IN`), so lists of 1 to 256 items make nine statements, not 256.
pub(super) fn padded<T: Clone>(mut values: Vec<T>) -> Vec<T> {
    if let Some(last) = values.last().cloned() {
        values.resize(values.len().next_power_of_two(), last);
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::entities::{history, outbox, tasks};
    use crate::store::Store;
    use sea_orm::{ColumnTrait, IntoActiveModel, QueryFilter, QueryOrder};

    #[test]
    fn the_statement_text_names_each_column_once_and_the_conflict_clause() {
        let columns = [history::Column::InstanceId, history::Column::Seq];
        assert_eq!(
            values_insert_sql("history", &columns, &Conflict::Fail, 2),
            "INSERT INTO \"history\" (\"instance_id\", \"seq\") SELECT column2, column3 \
             FROM (VALUES (?, ?, ?), (?, ?, ?)) WHERE column1 IS NOT NULL"
        );
        let sql = values_insert_sql("outbox", &[outbox::Column::Key], &Conflict::Keep(outbox::Column::Key), 1);
        assert!(sql.ends_with(" ON CONFLICT (\"key\") DO NOTHING"), "{sql}");
        let update = Conflict::Update(outbox::Column::Key, vec![outbox::Column::Status, outbox::Column::Attempts]);
        let sql = values_insert_sql("outbox", &[outbox::Column::Key], &update, 1);
        assert!(
            sql.ends_with(" ON CONFLICT (\"key\") DO UPDATE SET \"status\" = excluded.\"status\", \"attempts\" = excluded.\"attempts\""),
            "{sql}"
        );
    }

    #[test]
    fn padding_rounds_up_to_a_power_of_two_with_the_last_value() {
        assert_eq!(padded(Vec::<i64>::new()), Vec::<i64>::new());
        assert_eq!(padded(vec![7]), vec![7]);
        assert_eq!(padded(vec![1, 2, 3]), vec![1, 2, 3, 3]);
        assert_eq!(padded(vec![1, 2, 3, 4, 5]).len(), 8);
    }

    fn task(id: &str, instance: i64, title: &str, organization: Option<&str>, overdue: bool) -> tasks::Model {
        tasks::Model {
            id: id.into(),
            instance_id: instance,
            task_id: "accept".into(),
            step: "formal_review".into(),
            title: title.into(),
            role: "registration_agency".into(),
            organization: organization.map(Into::into),
            actions: r#"["accept","reject"]"#.into(),
            due_at: if overdue { Some(i64::MAX) } else { None },
            overdue,
            status: "open".into(),
            assignee: None,
            created_at: i64::MIN + 1,
            closed_at: Some(-1),
        }
    }

    #[tokio::test]
    async fn rows_read_back_as_written_and_conflicts_do_what_they_say() {
        let dir = std::env::temp_dir().join(format!("statflow-bulk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("bulk.db").display());
        let store = Store::open(&url).await.unwrap();
        let awkward = "受理 \"quoted\" \\ back\nslash\t\u{1F600} ' ->> 0";
        let rows =
            vec![task("1/accept", 1, awkward, Some("taian-registry"), true), task("2/accept", 2, "", None, false)];
        let active = || rows.iter().cloned().map(IntoActiveModel::into_active_model).collect::<Vec<_>>();
        insert::<tasks::Entity>(&store.db, active(), Conflict::Fail).await.unwrap();
        let stored = tasks::Entity::find().order_by_asc(tasks::Column::Id).all(&store.db).await.unwrap();
        assert_eq!(stored, rows);

        let error = insert::<tasks::Entity>(&store.db, active(), Conflict::Fail).await.unwrap_err();
        assert!(error.to_string().contains("UNIQUE"), "{error}");

        let mut changed = rows.clone();
        changed[0].title = "changed".into();
        changed[0].status = "closed".into();
        let again = changed.iter().cloned().map(IntoActiveModel::into_active_model).collect();
        insert::<tasks::Entity>(&store.db, again, Conflict::Keep(tasks::Column::Id)).await.unwrap();
        assert_eq!(tasks::Entity::find().order_by_asc(tasks::Column::Id).all(&store.db).await.unwrap(), rows);

        let again = changed.iter().cloned().map(IntoActiveModel::into_active_model).collect();
        let update = Conflict::Update(tasks::Column::Id, vec![tasks::Column::Status]);
        insert::<tasks::Entity>(&store.db, again, update).await.unwrap();
        let stored = tasks::Entity::find().order_by_asc(tasks::Column::Id).all(&store.db).await.unwrap();
        assert_eq!((stored[0].title.as_str(), stored[0].status.as_str()), (awkward, "closed"));

        // A column left unset (the outbox's id) is left to the database.
        let effect = outbox::ActiveModel {
            id: sea_orm::ActiveValue::NotSet,
            instance_id: sea_orm::Set(None),
            key: sea_orm::Set("k".into()),
            kind: sea_orm::Set("notify".into()),
            payload: sea_orm::Set("{}".into()),
            status: sea_orm::Set("pending".into()),
            attempts: sea_orm::Set(i32::MAX),
            next_attempt_at: sea_orm::Set(0),
            last_error: sea_orm::Set(None),
            created_at: sea_orm::Set(0),
            done_at: sea_orm::Set(None),
        };
        insert::<outbox::Entity>(&store.db, vec![effect], Conflict::Keep(outbox::Column::Key)).await.unwrap();
        let stored = outbox::Entity::find().one(&store.db).await.unwrap().unwrap();
        assert_eq!((stored.id, stored.attempts, stored.instance_id), (1, i32::MAX, None));

        // More rows than one statement carries go in several, none padded twice or lost.
        let many: Vec<tasks::Model> = (0..(ROWS_PER_STATEMENT + 45))
            .map(|i| task(&format!("m{i:04}"), 100 + i as i64, "t", None, false))
            .collect();
        let active = many.iter().cloned().map(IntoActiveModel::into_active_model).collect();
        insert::<tasks::Entity>(&store.db, active, Conflict::Fail).await.unwrap();
        let stored = tasks::Entity::find()
            .filter(tasks::Column::Id.starts_with("m"))
            .order_by_asc(tasks::Column::Id)
            .all(&store.db)
            .await
            .unwrap();
        assert_eq!(stored, many);
        std::fs::remove_dir_all(&dir).ok();
    }
}
