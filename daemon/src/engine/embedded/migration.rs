//! Migrating running instances to another version of their definition: which instances a
//! request takes, what each would become (a dry run applies the migration in memory only),
//! and the migration itself, one transition per instance, each recorded in its history and
//! the audit log.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use statflow_workflows::definition::Definition;
use statflow_workflows::engine::{self, Event, InstanceState};

use super::Embedded;
use crate::engine::{EngineError, MigrationItem, MigrationOutcome, MigrationReport, MigrationRequest, MIGRATION_BATCH};
use crate::principal::Principal;
use crate::store::instances::RunningSelection;
use crate::store::records::InstanceRecord;
use crate::store::transition::Decide;

impl Embedded {
    pub(super) async fn migrate_as_asked(&self, request: MigrationRequest) -> Result<MigrationReport, EngineError> {
        if !request.caller.is_admin() {
            return Err(EngineError::Forbidden("only an administrator migrates instances".into()));
        }
        let target = self.migration_target(&request)?;
        let selection =
            RunningSelection { procedure: &request.procedure, jurisdiction: &request.jurisdiction, steps: None };
        let (candidates, total) = self
            .store
            .migration_candidates(
                &selection,
                &target.version,
                request.from_version.as_deref(),
                request.instances.as_deref(),
                MIGRATION_BATCH as u64,
            )
            .await?;
        let remaining = (total as usize).saturating_sub(candidates.len());
        let mut items = Vec::with_capacity(candidates.len());
        for record in candidates {
            let item = if request.dry_run {
                self.would_migrate(&record, &target, &request)?
            } else {
                self.migrate_one(&record, &target, &request).await?
            };
            items.push(item);
        }
        let refused = items.iter().filter(|i| i.outcome == MigrationOutcome::Refused).count();
        Ok(MigrationReport {
            dry_run: request.dry_run,
            to_version: target.version.clone(),
            migrated: items.len() - refused,
            refused,
            remaining,
            items,
        })
    }

    /// The version asked for (the current one by default), which must be one of the
    /// procedure's.
    fn migration_target(&self, request: &MigrationRequest) -> Result<Arc<Definition>, EngineError> {
        let current = self.definitions.require(&request.procedure, &request.jurisdiction)?;
        let Some(version) = &request.to_version else {
            return Ok(current);
        };
        self.definitions
            .get(version)
            .filter(|d| d.id() == current.id() && d.jurisdiction() == current.jurisdiction())
            .ok_or_else(|| {
                EngineError::invalid(
                    "to_version",
                    format!("{version} is not a loaded version of {}/{}", request.procedure, request.jurisdiction),
                )
            })
    }

    /// What migrating `record` would do, computed by the interpreter and stored nowhere.
    fn would_migrate(
        &self,
        record: &InstanceRecord,
        target: &Definition,
        request: &MigrationRequest,
    ) -> Result<MigrationItem, EngineError> {
        let state = record.state()?;
        let event = migration_event(&request.caller, target, &state, request);
        let (calendar, _) = self.calendar.read().expect("not poisoned").clone();
        let mut item = item_before(record, &state);
        match engine::apply(target, &state, &event, self.clock.now(), &calendar) {
            Ok(transition) => {
                (item.to_step, item.due_after) = standing(&transition.state);
                item.outcome = MigrationOutcome::WouldMigrate;
            }
            Err(refusal) => refuse(&mut item, refusal.to_string()),
        }
        Ok(item)
    }

    /// Migrates `record` as one transition; a refusal (or a race lost) is reported on its
    /// item, and the others go on.
    async fn migrate_one(
        &self,
        record: &InstanceRecord,
        target: &Arc<Definition>,
        request: &MigrationRequest,
    ) -> Result<MigrationItem, EngineError> {
        let mut item = item_before(record, &record.state()?);
        // The caller was checked once, for the whole request (`migrate_as_asked`); the
        // interpreter refuses an actor who is no administrator all the same.
        let (target_for_event, asked) = (target.clone(), request.clone());
        let decide: Decide = Box::new(move |_: &InstanceRecord, _: &Definition, state: &InstanceState, _: &[_]| {
            Ok(migration_event(&asked.caller, &target_for_event, state, &asked))
        });
        match self.decided(record.id, decide, request.caller.unconfirmed_token.clone()).await {
            Ok(applied) => {
                let migrated = applied.standing.expect("a migration answers with its instance").instance;
                (item.to_step, item.due_after) = standing(&migrated.state()?);
                item.outcome = MigrationOutcome::Migrated;
                let detail = serde_json::json!({
                    "reason": request.reason,
                    "from_version": item.from_version,
                    "to_version": target.version,
                    "step": item.step,
                    "to_step": item.to_step,
                    "deadline": request.deadline,
                });
                self.store
                    .audit(&request.caller.name, "instance.migrate", &format!("instance/{}", record.id), detail)
                    .await?;
            }
            Err(error @ (EngineError::Refused(_) | EngineError::Conflict | EngineError::Flagged { .. })) => {
                refuse(&mut item, error.to_string())
            }
            Err(other) => return Err(other),
        }
        Ok(item)
    }
}

fn migration_event(
    caller: &Principal,
    target: &Definition,
    state: &InstanceState,
    request: &MigrationRequest,
) -> Event {
    Event::Migrated {
        actor: caller.actor(target, state),
        from_version: state.version.clone(),
        to_version: target.version.clone(),
        steps: request.steps.clone(),
        deadline: request.deadline,
        reason: request.reason.clone(),
    }
}

/// The step a state stands in and when its deadline is due.
fn standing(state: &InstanceState) -> (Option<String>, Option<DateTime<FixedOffset>>) {
    let step = state.step.as_ref();
    (step.map(|s| s.name.clone()), step.and_then(|s| s.deadline.as_ref()).and_then(|d| d.due))
}

fn item_before(record: &InstanceRecord, state: &InstanceState) -> MigrationItem {
    let (step, due_before) = standing(state);
    MigrationItem {
        instance: record.id,
        from_version: record.definition_version.clone(),
        step,
        to_step: None,
        due_before,
        due_after: None,
        outcome: MigrationOutcome::Refused,
        problem: None,
    }
}

fn refuse(item: &mut MigrationItem, problem: String) {
    item.outcome = MigrationOutcome::Refused;
    item.problem = Some(problem);
}
