//! Stored definition versions, the version chosen current per procedure, and imported
//! calendar years.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};

use super::entities::{calendars, current_versions, definitions};
use super::records::{CalendarYearRecord, DefinitionRecord};
use super::{Store, StoreError};

fn definition_row(record: &DefinitionRecord, loaded_at: i64) -> definitions::ActiveModel {
    definitions::ActiveModel {
        version: Set(record.version.clone()),
        procedure: Set(record.procedure.clone()),
        jurisdiction: Set(record.jurisdiction.clone()),
        file: Set(record.file.clone()),
        source: Set(record.source.clone()),
        loaded_at: Set(loaded_at),
    }
}

impl Store {
    /// Stores a definition version unless it is stored already (versions are content hashes).
    pub async fn save_definition(&self, record: &DefinitionRecord, loaded_at: i64) -> Result<(), StoreError> {
        definitions::Entity::insert(definition_row(record, loaded_at)).on_conflict_do_nothing().exec(&self.db).await?;
        Ok(())
    }

    /// Stores a version and makes it the one its procedure's new instances start on, in one
    /// transaction, so both survive a restart.
    pub async fn save_current_definition(&self, record: &DefinitionRecord, now: i64) -> Result<(), StoreError> {
        let txn = self.db.begin().await?;
        definitions::Entity::insert(definition_row(record, now)).on_conflict_do_nothing().exec(&txn).await?;
        let chosen = current_versions::ActiveModel {
            procedure: Set(record.procedure.clone()),
            jurisdiction: Set(record.jurisdiction.clone()),
            version: Set(record.version.clone()),
            chosen_at: Set(now),
        };
        current_versions::Entity::insert(chosen)
            .on_conflict(
                OnConflict::columns([current_versions::Column::Procedure, current_versions::Column::Jurisdiction])
                    .update_columns([current_versions::Column::Version, current_versions::Column::ChosenAt])
                    .to_owned(),
            )
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Every stored definition version.
    pub async fn definitions(&self) -> Result<Vec<DefinitionRecord>, StoreError> {
        Ok(definitions::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| DefinitionRecord {
                version: row.version,
                procedure: row.procedure,
                jurisdiction: row.jurisdiction,
                file: row.file,
                source: row.source,
            })
            .collect())
    }

    /// The versions administrators made current: (procedure, jurisdiction, version).
    pub async fn current_versions(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(current_versions::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| (row.procedure, row.jurisdiction, row.version))
            .collect())
    }

    /// Every imported calendar year.
    pub async fn calendar_years(&self) -> Result<Vec<CalendarYearRecord>, StoreError> {
        Ok(calendars::Entity::find()
            .filter(calendars::Column::Year.gt(0))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| CalendarYearRecord {
                year: row.year,
                origin: row.origin,
                notice: row.notice,
                imported_at: row.imported_at,
                correction: row.correction,
                generation: row.generation,
            })
            .collect())
    }

    /// Stores imported years, replacing earlier notices of the same years.
    pub async fn save_calendar_years(&self, years: &[CalendarYearRecord]) -> Result<(), StoreError> {
        if years.is_empty() {
            return Ok(());
        }
        let rows = years.iter().map(|year| calendars::ActiveModel {
            year: Set(year.year),
            origin: Set(year.origin.clone()),
            notice: Set(year.notice.clone()),
            imported_at: Set(year.imported_at),
            correction: Set(year.correction.clone()),
            generation: Set(year.generation),
        });
        calendars::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(calendars::Column::Year)
                    .update_columns([
                        calendars::Column::Origin,
                        calendars::Column::Notice,
                        calendars::Column::ImportedAt,
                        calendars::Column::Correction,
                        calendars::Column::Generation,
                    ])
                    .to_owned(),
            )
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
