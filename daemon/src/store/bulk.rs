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
    if rows.is_empty() {
        return Ok(());
    }
    if db.get_database_backend() != DbBackend::Sqlite {
        let mut insert = E::insert_many(rows);
        if let Some(on_conflict) = on_conflict(conflict) {
            insert = insert.on_conflict(on_conflict);
        }
        return insert.exec_without_returning(db).await.map(|_| ());
    }
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut script = Script::default();
        script.insert::<E>(chunk, &conflict)?;
        script.run(db).await?;
    }
    Ok(())
}

/// The most rows one SQLite statement carries (a tenth of SQLite's 32,766 parameters at
/// 12 columns a row).
pub(super) const ROWS_PER_STATEMENT: usize = 256;

/// Statements sent to SQLite as one text, run one after the other in a single trip to the
/// connection's thread: each trip is two thread switches, about what a short statement costs.
/// Each part's rows are padded to a power of two (at most [`ROWS_PER_STATEMENT`]) and a part
/// without rows is left out, so the few texts a steady load makes stay prepared. (Padding
/// every part to the largest one's size would make fewer texts, but binding and skipping
/// the empty rows then cost more than the trips saved.)
#[derive(Default)]
pub(super) struct Script {
    sql: String,
    values: Vec<Value>,
}

impl Script {
    /// `INSERT INTO t (a, b) SELECT column2, column3 FROM (VALUES (?, ?, ?), …) WHERE
    /// column1 IS NOT NULL …`: each row a marker, then the columns the rows set, in order. A
    /// column the first row leaves unset (the outbox's id) is left to the database.
    pub(super) fn insert<E: EntityTrait>(
        &mut self,
        rows: &[E::ActiveModel],
        conflict: &Conflict<E::Column>,
    ) -> Result<(), DbErr> {
        let Some(first) = rows.first() else { return Ok(()) };
        let table = E::default().table_name();
        let columns: Vec<E::Column> = E::Column::iter().filter(|c| !first.is_not_set(*c)).collect();
        let mut cells = Vec::with_capacity(rows.len());
        for row in rows {
            let mut cell = Vec::with_capacity(columns.len() + 1);
            cell.push(Value::Bool(Some(true)));
            for column in &columns {
                cell.push(
                    row.get(*column).into_value().ok_or_else(|| {
                        DbErr::Custom(format!("{table}: a row leaves `{}` unset", column.to_string()))
                    })?,
                );
            }
            cells.push(cell);
        }
        let names: Vec<String> = columns.iter().map(quoted).collect();
        let picked: Vec<String> = (0..columns.len()).map(|i| format!("column{}", i + 2)).collect();
        // The `WHERE` also keeps SQLite from reading `ON` as the start of a join constraint.
        self.sql.push_str(&format!(
            "INSERT INTO \"{table}\" ({}) SELECT {} FROM ",
            names.join(", "),
            picked.join(", ")
        ));
        self.values(columns.len() + 1, cells);
        self.sql.push_str(" WHERE column1 IS NOT NULL");
        match conflict {
            Conflict::Fail => {}
            Conflict::Keep(key) => self.sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", quoted(key))),
            Conflict::Update(key, updated) => {
                let sets: Vec<String> = updated.iter().map(|c| format!("{0} = excluded.{0}", quoted(c))).collect();
                self.sql.push_str(&format!(" ON CONFLICT ({}) DO UPDATE SET {}", quoted(key), sets.join(", ")));
            }
        }
        self.sql.push_str(";\n");
        Ok(())
    }

    /// `DELETE FROM t WHERE key IN (SELECT column1 FROM (VALUES (?), …))`.
    pub(super) fn delete<E: EntityTrait>(&mut self, key: E::Column, keys: Vec<Value>) {
        if keys.is_empty() {
            return;
        }
        let table = E::default().table_name();
        self.sql.push_str(&format!("DELETE FROM \"{table}\" WHERE {} IN (SELECT column1 FROM ", quoted(&key)));
        self.values(1, keys.into_iter().map(|k| vec![k]).collect());
        self.sql.push_str(");\n");
    }

    /// `UPDATE t SET a = v.column2, b = v.column3 FROM (VALUES (?, ?, ?), …) AS v WHERE
    /// t.key = v.column1`: each row the key, then `columns` in order. A padding row's key is
    /// NULL and matches nothing.
    pub(super) fn update<E: EntityTrait>(&mut self, key: E::Column, columns: &[E::Column], rows: Vec<Vec<Value>>) {
        if rows.is_empty() {
            return;
        }
        let table = E::default().table_name();
        let sets: Vec<String> =
            columns.iter().enumerate().map(|(i, c)| format!("{} = v.column{}", quoted(c), i + 2)).collect();
        self.sql.push_str(&format!("UPDATE \"{table}\" SET {} FROM ", sets.join(", ")));
        self.values(columns.len() + 1, rows);
        self.sql.push_str(&format!(" AS v WHERE \"{table}\".{} = v.column1;\n", quoted(&key)));
    }

    /// A statement of its own, with its values.
    pub(super) fn statement(&mut self, sql: &str, values: impl IntoIterator<Item = Value>) {
        self.sql.push_str(sql);
        self.sql.push_str(";\n");
        self.values.extend(values);
    }

    /// `(VALUES (?, …), …)` with a slot for each row, the rows after `rows` all NULL.
    fn values(&mut self, width: usize, rows: Vec<Vec<Value>>) {
        let slots = rows.len().max(1).next_power_of_two();
        let row = format!("({})", vec!["?"; width].join(", "));
        self.sql.push_str(&format!("(VALUES {})", vec![row.as_str(); slots].join(", ")));
        let padding = slots - rows.len();
        self.values.extend(rows.into_iter().flatten());
        self.values.extend(std::iter::repeat_n(Value::Bool(None), padding * width));
    }

    /// Runs the statements, in order, on `db` (SQLite).
    pub(super) async fn run(self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        if self.sql.is_empty() {
            return Ok(());
        }
        db.execute_raw(Statement::from_sql_and_values(DbBackend::Sqlite, self.sql, self.values)).await?;
        Ok(())
    }

    #[cfg(test)]
    fn sql(&self) -> &str {
        &self.sql
    }
}

fn quoted<C: Iden>(column: &C) -> String {
    format!("\"{}\"", column.to_string())
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
    use crate::store::entities::{outbox, tasks, timers};
    use crate::store::Store;
    use sea_orm::{ColumnTrait, IntoActiveModel, QueryFilter, QueryOrder};

    #[test]
    fn a_script_pads_each_part_to_a_power_of_two_and_names_each_column_once() {
        use crate::store::entities::instance_organizations as scopes;
        let scope =
            |o: &str| scopes::ActiveModel { instance_id: sea_orm::Set(7), organization: sea_orm::Set(o.into()) };
        let rows = vec![scope("a"), scope("b"), scope("c")];
        let mut script = Script::default();
        script.insert::<scopes::Entity>(&rows, &Conflict::Fail).unwrap();
        script.delete::<timers::Entity>(timers::Column::Id, vec![]);
        script.delete::<timers::Entity>(timers::Column::Id, vec![Value::from("k")]);
        script.update::<tasks::Entity>(
            tasks::Column::Id,
            &[tasks::Column::Status],
            vec![vec!["t".into(), "closed".into()], vec!["u".into(), "closed".into()]],
        );
        script.statement("UPDATE ledger_head SET seq = ? WHERE id = 1", [Value::from(3)]);
        assert_eq!(
            script.sql(),
            "INSERT INTO \"instance_organizations\" (\"instance_id\", \"organization\") SELECT column2, column3 \
             FROM (VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?), (?, ?, ?)) WHERE column1 IS NOT NULL;\n\
             DELETE FROM \"timers\" WHERE \"id\" IN (SELECT column1 FROM (VALUES (?)));\n\
             UPDATE \"tasks\" SET \"status\" = v.column2 FROM (VALUES (?, ?), (?, ?)) AS v \
             WHERE \"tasks\".\"id\" = v.column1;\n\
             UPDATE ledger_head SET seq = ? WHERE id = 1;\n",
            "three rows take four slots, an empty part is left out"
        );
        assert_eq!(script.values.len(), 4 * 3 + 1 + 2 * 2 + 1);
        assert_eq!(
            script.values[9..12],
            [Value::Bool(None), Value::Bool(None), Value::Bool(None)],
            "the fourth slot pads"
        );

        let rows = &rows[..1];
        let mut keep = Script::default();
        keep.insert::<scopes::Entity>(rows, &Conflict::Keep(scopes::Column::InstanceId)).unwrap();
        assert!(keep.sql().ends_with(" ON CONFLICT (\"instance_id\") DO NOTHING;\n"), "{}", keep.sql());
        let mut update = Script::default();
        let conflict = Conflict::Update(scopes::Column::InstanceId, vec![scopes::Column::Organization]);
        update.insert::<scopes::Entity>(rows, &conflict).unwrap();
        assert!(
            update.sql().ends_with(
                " ON CONFLICT (\"instance_id\") DO UPDATE SET \"organization\" = excluded.\"organization\";\n"
            ),
            "{}",
            update.sql()
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
