//! Database schema migrations of statflow (sea-orm-migration), identical on SQLite and
//! PostgreSQL.
//!
//! Conventions that keep both databases alike: instants are stored as UTC milliseconds since
//! the epoch (`BIGINT`), structured values as JSON text, identifiers as text or 64-bit
//! integers.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_initial;
mod m20261124_000002_batched_writes;
mod m20261124_000003_directory;
mod m20261125_000004_schedules;
mod m20261126_000005_effects_without_instance;
mod m20261127_000006_calendar_corrections;
mod m20261128_000007_ledger;
mod m20261129_000008_current_versions;
mod m20261201_000009_instance_organizations;
mod m20261201_000010_run_results;
mod m20261201_000011_tasks_by_instance;
mod m20261202_000012_people;
mod m20261202_000013_finished_instances;
mod m20261203_000014_token_expiry;
mod m20261203_000015_work_leases;
mod m20261207_000016_audit_by_target;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_initial::Migration),
            Box::new(m20261124_000002_batched_writes::Migration),
            Box::new(m20261124_000003_directory::Migration),
            Box::new(m20261125_000004_schedules::Migration),
            Box::new(m20261126_000005_effects_without_instance::Migration),
            Box::new(m20261127_000006_calendar_corrections::Migration),
            Box::new(m20261128_000007_ledger::Migration),
            Box::new(m20261129_000008_current_versions::Migration),
            Box::new(m20261201_000009_instance_organizations::Migration),
            Box::new(m20261201_000010_run_results::Migration),
            Box::new(m20261201_000011_tasks_by_instance::Migration),
            Box::new(m20261202_000012_people::Migration),
            Box::new(m20261202_000013_finished_instances::Migration),
            Box::new(m20261203_000014_token_expiry::Migration),
            Box::new(m20261203_000015_work_leases::Migration),
            Box::new(m20261207_000016_audit_by_target::Migration),
        ]
    }
}
