//! The embedded engine behind the [`Engine`] facade: each request becomes a transition of
//! the store's write path, or a call to one of the engine's workers' parts.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde_json::Value;
use statflow_workflows::calendar::Calendar;
use statflow_workflows::definition::Definition;
use statflow_workflows::engine::{Actor, Command, Event};
use statflow_workflows::schedules::ScheduleSpec;

use super::{Embedded, Host};
use crate::engine::{
    ActRequest, ClockMove, Definitions, Engine, EngineError, Imported, MigrationReport, MigrationRequest, Repair,
    RepairRequest, RunReport, StartRequest, WorkerHealth,
};
use crate::principal::Principal;
use crate::store::effects::EffectKind;
use crate::store::records::{InstanceRecord, TaskRecord};
use crate::store::to_millis;
use crate::store::transition::{Applied, CallerDenial, Decide, Declined, Origin, Standing, Work};

#[async_trait::async_trait]
impl Engine for Embedded {
    fn now(&self) -> DateTime<FixedOffset> {
        self.clock.now()
    }

    fn has_virtual_clock(&self) -> bool {
        self.clock.is_virtual()
    }

    fn calendar(&self) -> (Arc<Calendar>, i64) {
        self.calendar.read().expect("not poisoned").clone()
    }

    fn definitions(&self) -> &Definitions {
        &self.definitions
    }

    fn health(&self) -> Vec<WorkerHealth> {
        self.workers.health()
    }

    fn kind(&self) -> &'static str {
        if self.host().is_some() {
            "temporal"
        } else {
            "embedded"
        }
    }

    fn work_lease(&self) -> Option<crate::engine::WorkLease> {
        let (settings, epoch) = self.shared_work.lease()?;
        Some(crate::engine::WorkLease {
            node: settings.node.clone(),
            held: self.shared_work.here(),
            epoch,
            seconds: settings.ttl.as_secs(),
        })
    }

    async fn start(&self, request: StartRequest) -> Result<Standing, EngineError> {
        timed("start", self.start_as_asked(request)).await
    }

    async fn act(&self, request: ActRequest) -> Result<Standing, EngineError> {
        timed("act", self.act_as_asked(request)).await
    }

    async fn repair(&self, request: RepairRequest) -> Result<Standing, EngineError> {
        timed("repair", self.repair_as_asked(request)).await
    }

    async fn migrate(&self, request: MigrationRequest) -> Result<MigrationReport, EngineError> {
        self.migrate_as_asked(request).await
    }

    async fn claim(&self, task: &str, caller: &Principal) -> Result<bool, EngineError> {
        Ok(self.store.claim_task(task, &caller.name).await?)
    }

    async fn signal(&self, instance: i64, name: &str, data: Value) -> Result<InstanceRecord, EngineError> {
        self.apply(instance, &Event::Signal { name: name.to_owned(), data }).await?;
        Ok(self.store.instance(instance).await?)
    }

    async fn advance_clock(&self, to: DateTime<FixedOffset>) -> Result<ClockMove, EngineError> {
        if !self.clock.is_virtual() {
            return Err(EngineError::Forbidden("the clock is the system's; start with --virtual-clock".into()));
        }
        // One move at a time: two interleaved moves would fire timers out of order.
        let _moving = self.clock_moves.lock().await;
        let moved = self.advance_to(to).await?;
        // Other nodes on the database read the same clock (within a second).
        self.store.advance_shared_virtual_clock(to_millis(self.clock.now())).await?;
        // Retries waiting for the (virtual) time just passed are due now.
        self.outbox_changed.notify_one();
        self.deliveries_changed.notify_one();
        Ok(moved)
    }

    async fn import_calendar(
        &self,
        origin: &str,
        content: &str,
        correction: Option<&str>,
    ) -> Result<Imported, EngineError> {
        self.import_notices(origin, content, correction).await
    }

    async fn load_definition(&self, file: &str, source: &str) -> Result<Arc<Definition>, EngineError> {
        let definition = self.definitions.validate(file, source).map_err(EngineError::InvalidDefinition)?;
        Ok(self.definitions.make_current(&self.store, definition, source, to_millis(self.clock.now())).await?)
    }

    async fn put_schedule(&self, id: &str, spec: &ScheduleSpec) -> Result<(), EngineError> {
        self.store_schedule(id, spec, false).await
    }

    async fn delete_schedule(&self, id: &str) -> Result<(), EngineError> {
        let schedule =
            self.store.schedule(id).await?.ok_or_else(|| EngineError::invalid("id", format!("no schedule `{id}`")))?;
        if schedule.built_in {
            return Err(EngineError::Forbidden(format!(
                "`{id}` comes with the procedure library; disable it (\"enabled\": false) instead"
            )));
        }
        self.store.delete_schedule(id).await?;
        self.schedules_changed.notify_one();
        Ok(())
    }

    async fn run_schedule_now(&self, id: &str) -> Result<RunReport, EngineError> {
        let schedule =
            self.store.schedule(id).await?.ok_or_else(|| EngineError::invalid("id", format!("no schedule `{id}`")))?;
        self.run_fire_time(&schedule, to_millis(self.clock.now())).await
    }

    async fn retry_deliveries(&self, id: Option<i64>, kind: Option<EffectKind>) -> Result<u64, EngineError> {
        let kinds: Vec<EffectKind> =
            EffectKind::DELIVERED.into_iter().filter(|k| kind.is_none_or(|kind| kind == *k)).collect();
        let requeued = self.store.requeue_failed(id, &kinds, to_millis(self.clock.now())).await?;
        self.deliveries_changed.notify_one();
        if let Some(host) = self.host() {
            // An instance's messages are its workflow's to send.
            let mut instances: Vec<i64> = requeued.iter().filter_map(|(_, instance)| *instance).collect();
            instances.sort_unstable();
            instances.dedup();
            for instance in instances {
                host.requeued(instance, self.clock.now()).await?;
            }
        }
        Ok(requeued.len() as u64)
    }
}

impl Embedded {
    /// An action on an instance a host runs: the caller is checked on the instance and its
    /// claimed tasks as the store shows them, the host applies the event, and the answer is
    /// read back from the store the host recorded it in.
    async fn act_hosted(&self, host: &Arc<dyn Host>, id: i64, decide: &Decide) -> Result<Applied, EngineError> {
        let record = self.store.instance(id).await?;
        if let Some(reason) = &record.flagged {
            return Err(EngineError::Flagged { id, reason: reason.clone() });
        }
        let definition = self.definitions.require_version(&record.definition_version)?;
        let state = record.state()?;
        let claimed: Vec<TaskRecord> =
            self.store.open_tasks_of(id).await?.into_iter().filter(|t| t.assignee.is_some()).collect();
        let event =
            decide(&record, &definition, &state, &claimed).map_err(|d| EngineError::from(Declined::Caller(d)))?;
        let commands = host.apply(id, &event, self.clock.now()).await?;
        let closed_tasks = claimed
            .into_iter()
            .filter(|t| commands.iter().any(|c| matches!(c, Command::CloseTask { id } if *id == t.task_id)))
            .collect();
        let standing = Standing {
            instance: self.store.instance(id).await?,
            open_tasks: self.store.open_tasks_of(id).await?,
            effects: self.store.effects_of(id).await?,
        };
        // Stored (and counted) by the host's record of it.
        let applied = Applied { instance_id: id, commands, standing: Some(standing), closed_tasks, event: None };
        self.wake(&applied);
        Ok(applied)
    }
}

/// Runs `work`, a start, action or repair, and records how long it took and how it ended.
async fn timed<T>(
    operation: &'static str,
    work: impl std::future::Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineError> {
    let began = std::time::Instant::now();
    let done = work.await;
    crate::metrics::action(operation, began.elapsed(), done.is_ok());
    done
}

/// Who holds the task offering `action`, when it is someone other than `caller`. `claimed`
/// are the instance's open tasks someone holds; a step opens at most one task, so when none
/// of them offers the action, the task that does is free.
fn claim_held_by_other(claimed: &[TaskRecord], action: &str, caller: &Principal) -> Option<String> {
    let offering: Vec<&TaskRecord> = claimed.iter().filter(|t| t.offers(action)).collect();
    let mine = offering.iter().any(|t| t.assignee.as_deref() == Some(caller.name.as_str()));
    offering.iter().find_map(|t| t.assignee.clone()).filter(|_| !mine)
}

/// The start and the action as the facade carries them out (timed around by it).
impl Embedded {
    async fn start_as_asked(&self, request: StartRequest) -> Result<Standing, EngineError> {
        let definition = self.definitions.require(&request.procedure, &request.jurisdiction)?;
        let caller = &request.caller;
        let actor = Actor {
            id: caller.name.clone(),
            roles: vec![],
            organizations: caller.organizations.clone(),
            administrator: caller.is_admin(),
            request: caller.request.clone(),
        };
        let token = caller.unconfirmed_token.clone();
        let applied = self.start_presented(&definition, request.input, actor, Origin::Direct, token).await?;
        Ok(applied.standing.expect("a start answers with its instance"))
    }

    async fn act_as_asked(&self, request: ActRequest) -> Result<Standing, EngineError> {
        let ActRequest { instance, action, data, caller } = request;
        let (decider, audited_action) = (caller.clone(), action.clone());
        let decide: Decide =
            Box::new(move |record: &InstanceRecord, definition: &Definition, state: &_, tasks: &[TaskRecord]| {
                if !decider.may_see(&record.organizations) {
                    return Err(CallerDenial::Unseen(record.id));
                }
                if !decider.acts_on_instances() {
                    return Err(CallerDenial::Forbidden(format!("a {} does not act on instances", decider.role)));
                }
                // A task claimed by someone is completed by its assignee only; an administrator
                // may still complete it, and that is recorded (below).
                if let Some(holder) = claim_held_by_other(tasks, &action, &decider).filter(|_| !decider.is_admin()) {
                    return Err(CallerDenial::Claimed(format!(
                    "the task offering `{action}` is claimed by {holder}; only they (or an administrator) complete it"
                )));
                }
                let actor = decider.actor(definition, state);
                Ok(Event::Action { actor, action: action.clone(), data: data.clone() })
            });
        let applied = self.decided(instance, decide, caller.unconfirmed_token.clone()).await?;
        // The claim an administrator overrode: the task the action closed, as it stood.
        let overridden = applied.closed_tasks.iter().find_map(|t| {
            t.assignee.clone().filter(|holder| *holder != caller.name && caller.is_admin() && t.offers(&audited_action))
        });
        if let Some(assignee) = overridden {
            let detail = serde_json::json!({"action": audited_action, "claimed_by": assignee});
            self.store.audit(&caller.name, "task.complete_claimed_by_other", &instance.to_string(), detail).await?;
        }
        Ok(applied.standing.expect("an action answers with its instance"))
    }

    async fn repair_as_asked(&self, request: RepairRequest) -> Result<Standing, EngineError> {
        let RepairRequest { instance, repair, reason, caller } = request;
        let (decider, event_reason, event_repair) = (caller.clone(), reason.clone(), repair.clone());
        let decide: Decide = Box::new(move |record: &InstanceRecord, definition: &Definition, state: &_, _: &[_]| {
            if !decider.may_see(&record.organizations) {
                return Err(CallerDenial::Unseen(record.id));
            }
            if !decider.is_admin() {
                return Err(CallerDenial::Forbidden(
                    "only an administrator cancels, terminates or moves an instance".into(),
                ));
            }
            let actor = decider.actor(definition, state);
            let reason = event_reason.clone();
            Ok(match &event_repair {
                Repair::End(how) => Event::Ended { actor, how: *how, reason },
                Repair::MoveTo(step) => Event::Moved { actor, step: step.clone(), reason },
            })
        });
        let applied =
            self.decided(instance, decide, caller.unconfirmed_token.clone()).await.map_err(|error| match error {
                // The interpreter names the request's own fields (`step`, `reason`), not an
                // action's data.
                EngineError::Refused(refusal) if refusal.field.is_some() => {
                    EngineError::invalid(refusal.field.as_deref().unwrap_or_default(), refusal.message)
                }
                other => other,
            })?;
        let mut detail = serde_json::json!({"reason": reason});
        if let Repair::MoveTo(step) = &repair {
            detail["step"] = step.clone().into();
        }
        self.store.audit(&caller.name, repair.audit_action(), &format!("instance/{instance}"), detail).await?;
        Ok(applied.standing.expect("a repair answers with its instance"))
    }

    /// Applies the event `decide` makes of the instance as stored: in the store's write
    /// path, or through the host whose workflows hold the instances. `token`: the hash of a
    /// bearer token the caller presented that is yet to be confirmed; the write path confirms
    /// it in its transaction, and before a host applies anything it is read.
    pub(super) async fn decided(
        &self,
        instance: i64,
        decide: Decide,
        token: Option<String>,
    ) -> Result<Applied, EngineError> {
        match self.host() {
            Some(host) => {
                if let Some(token) = token {
                    self.store.principal_by_token(&token).await?.ok_or(EngineError::TokenGone)?;
                }
                self.act_hosted(host, instance, &decide).await
            }
            None => {
                let work = Work::Act { id: instance, decide, definitions: self.definitions.resolver() };
                self.transition_at(work, self.clock.now(), token).await
            }
        }
    }
}
