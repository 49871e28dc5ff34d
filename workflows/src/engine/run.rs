//! How each event moves an instance: entering and leaving steps, actions with their role,
//! data, clock and join rules, timers, children, signals and calendar changes.

use chrono::{DateTime, FixedOffset};
use serde_json::{json, Value};

use super::data;
use super::types::*;
use super::Transition;
use crate::calendar::{Calendar, Deadline, Period};
use crate::definition::model::{Amount, DeadlineSpec, Effect, Length, Step};
use crate::definition::Definition;

pub(crate) struct Run<'a> {
    pub(super) definition: &'a Definition,
    pub(super) calendar: &'a Calendar,
    pub(super) now: DateTime<FixedOffset>,
    pub(super) state: InstanceState,
    pub(super) commands: Vec<Command>,
    /// Activities started by this event so far; keys are `e<event>.<n>`.
    activities: u32,
}

impl<'a> Run<'a> {
    pub fn new(
        definition: &'a Definition,
        state: &InstanceState,
        now: DateTime<FixedOffset>,
        calendar: &'a Calendar,
    ) -> Self {
        Run { definition, calendar, now, state: state.clone(), commands: Vec::new(), activities: 0 }
    }

    pub fn apply(mut self, event: &Event) -> Result<Transition, Refusal> {
        let running = self.state.status == Status::Running;
        match event {
            Event::Started { .. } if self.state.status != Status::NotStarted => {
                return Err(Refusal::new(RefusalKind::NotRunning, "the instance has already started"));
            }
            Event::Started { .. } => {}
            Event::Action { .. }
            | Event::Signal { .. }
            | Event::Ended { .. }
            | Event::Moved { .. }
            | Event::Migrated { .. }
                if !running =>
            {
                return Err(Refusal::new(RefusalKind::NotRunning, self.not_running_message()));
            }
            // Late timers and reports for an instance that has moved on change nothing.
            _ if !running => return Ok(self.finish()),
            _ => {}
        }
        self.state.events += 1;
        match event {
            Event::Started { input, .. } => self.start(input)?,
            Event::Action { actor, action, data } => self.action(actor, action, data)?,
            Event::TimerFired { timer } => self.timer_fired(timer)?,
            Event::ActivityCompleted { key, result } => {
                self.state.pending_activities.remove(key);
                self.state.activity_results.insert(key.clone(), result.clone());
            }
            Event::ActivityFailed { key, error } => {
                self.state.pending_activities.remove(key);
                self.state.activity_failures.push(ActivityFailure {
                    key: key.clone(),
                    error: error.clone(),
                    at: self.now,
                });
            }
            Event::ChildCompleted { key, outcome } => self.child_completed(key, outcome)?,
            Event::Signal { name, data } => self.signal(name, data)?,
            Event::CalendarChanged => self.calendar_changed(),
            Event::Ended { actor, how, reason } => self.end(actor, *how, reason)?,
            Event::Moved { actor, step, reason } => self.move_to(actor, step, reason)?,
            Event::Migrated { actor, from_version, to_version, steps, deadline, reason } => {
                self.migrate(actor, reason, from_version, to_version, steps, *deadline)?
            }
        }
        Ok(self.finish())
    }

    fn finish(self) -> Transition {
        Transition { state: self.state, commands: self.commands }
    }

    fn not_running_message(&self) -> String {
        match &self.state.status {
            Status::NotStarted => "the instance has not started".into(),
            Status::Completed { outcome } => format!("the instance has completed ({outcome})"),
            Status::Running => unreachable!("only called when not running"),
        }
    }

    pub(super) fn current_step(&self) -> &'a Step {
        let name = self.state.step_name().expect("a running instance is in a step");
        self.definition.step(name).expect("validated definitions define every step they enter")
    }

    fn start(&mut self, input: &Value) -> Result<(), Refusal> {
        let input = data::check(&self.definition.procedure.input, input)?;
        self.state.data = input.into_iter().collect();
        self.state.started_at = Some(self.now);
        self.state.source_notices = self.definition.source_notices(crate::calendar::local_date(self.now));
        self.state.status = Status::Running;
        let initial = self.definition.procedure.initial.get_ref().clone();
        self.enter(&initial)
    }

    /// The organization holding `role` in this instance, from the start input.
    pub(super) fn role_organization(&self, role: &str) -> Option<String> {
        let field = self.definition.procedure.roles.get(role)?.organization.as_ref()?;
        self.state.data.get(field.get_ref().as_str())?.as_str().map(str::to_owned)
    }

    /// Resolves a recipient name of the definition for this instance.
    pub(super) fn recipient(&self, name: &str) -> Recipient {
        let task = self.state.step.as_ref().and_then(|s| s.task.as_ref());
        match name {
            "assignee" => match task {
                Some(task) => Recipient { role: task.role.clone(), organization: task.organization.clone() },
                None => Recipient { role: name.into(), organization: None },
            },
            // The supervisor and regulator of the organization that owes the work. A step with
            // no task (an outcome escalated to the regulator) reaches them through the
            // instance's organizations, tried in the order of the definition's role names.
            "supervisor" | "regulator" => {
                let organization = task.and_then(|t| t.organization.clone()).or_else(|| {
                    self.definition.procedure.roles.keys().find_map(|role| self.role_organization(role.get_ref()))
                });
                Recipient { role: name.into(), organization }
            }
            role => Recipient { role: role.into(), organization: self.role_organization(role) },
        }
    }

    pub(super) fn basis_text(&self, basis: &Option<crate::definition::Name>) -> Option<String> {
        basis.as_ref().map(|b| self.definition.basis_text(b.get_ref()))
    }

    pub(super) fn deadline_info(&self) -> Option<DeadlineInfo> {
        let deadline = self.state.step.as_ref()?.deadline.as_ref()?;
        let status = deadline.rule.status(self.calendar);
        Some(DeadlineInfo {
            due: status.due,
            last_day: status.last_day,
            remaining_working_days: deadline.rule.remaining_working_days(self.now, self.calendar),
            provisional: status.provisional,
            paused: status.paused,
            overdue: deadline.overdue,
            basis: self.definition.basis_text(&deadline.basis),
        })
    }

    fn next_key(&mut self) -> String {
        self.activities += 1;
        format!("e{}.{}", self.state.events, self.activities)
    }

    pub(super) fn run_activity(&mut self, activity: Activity) {
        let key = self.next_key();
        self.state.pending_activities.insert(key.clone());
        self.commands.push(Command::RunActivity { key, activity });
    }

    fn field_text(&self, reference: &str) -> String {
        let field = reference.trim_start_matches('$');
        match self.state.data.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    }

    pub(super) fn effects(&mut self, effects: &[Effect], step: &str) {
        self.effects_because(effects, step, None);
    }

    /// Runs `effects` on behalf of an administrator's act: the notices among them say
    /// `reason`, so whoever hears of a cancellation hears why.
    fn effects_because(&mut self, effects: &[Effect], step: &str, reason: Option<&str>) {
        for effect in effects {
            let basis = self.basis_text(&effect.basis);
            if let Some(to) = &effect.notify {
                let template = effect.template.clone().unwrap_or_else(|| step.to_owned());
                let activity = Activity::Notify {
                    to: vec![self.recipient(to.get_ref())],
                    template,
                    step: step.to_owned(),
                    deadline: self.deadline_info(),
                    basis,
                    reason: reason.map(str::to_owned),
                };
                self.run_activity(activity);
            } else if let Some(to) = &effect.escalate {
                let activity = Activity::Escalate {
                    level: 0,
                    title: effect.template.clone().unwrap_or_else(|| step.to_owned()),
                    to: vec![self.recipient(to.get_ref())],
                    step: step.to_owned(),
                    deadline: self.deadline_info(),
                    basis,
                };
                self.run_activity(activity);
            } else if let Some(kind) = &effect.issue_certificate {
                self.run_activity(Activity::IssueCertificate { kind: kind.clone(), basis });
            } else if let Some(status) = &effect.set_status {
                self.state.record_status = Some(status.clone());
                self.run_activity(Activity::SetStatus { status: status.clone(), basis });
            } else if let Some(change) = &effect.access {
                let subject = effect.subject.as_ref().map(|s| self.field_text(s.get_ref())).unwrap_or_default();
                self.run_activity(Activity::ChangeAccess { change: change.get_ref().clone(), subject, basis });
            } else if let Some(kind) = &effect.report {
                self.run_activity(Activity::WriteReport { kind: kind.clone(), basis });
            } else if let Some(signal) = &effect.signal {
                let target = effect.target.as_ref().map(|t| self.field_text(t.get_ref())).unwrap_or_default();
                let key = self.next_key();
                let data = json!({ "from_procedure": self.state.procedure, "basis": basis });
                self.commands.push(Command::SignalInstance { key, target, signal: signal.get_ref().clone(), data });
            }
        }
    }

    /// The period a length stands for in this instance (amounts may come from its data).
    pub(super) fn period(&self, length: &Length) -> Result<Period, Refusal> {
        let (unit, amount) =
            *length.parts().first().ok_or_else(|| Refusal::new(RefusalKind::Definition, "a length has no unit"))?;
        let n = match amount {
            Amount::Fixed(n) => *n,
            Amount::Field(reference) => {
                let field = reference.trim_start_matches('$');
                self.state.data.get(field).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).ok_or_else(
                    || Refusal::field(field, format!("a time limit needs field `{field}` as a whole number")),
                )?
            }
        };
        Ok(unit.period(n))
    }

    /// The date a `$field` holds, if it holds one.
    pub(super) fn optional_date(&self, reference: &str) -> Option<chrono::NaiveDate> {
        let field = reference.trim_start_matches('$');
        self.state
            .data
            .get(field)
            .and_then(Value::as_str)
            .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
    }

    /// Checks an agreed term against its usual maximum and records where it ends
    /// (`term_last_day`) and whether it goes over (`term_over_cap`): a longer term needs its
    /// reason, it is not refused.
    fn check_term(&mut self, term: &crate::definition::model::TermCap) -> Result<(), Refusal> {
        let from_field = term.from.get_ref().trim_start_matches('$');
        let from = self
            .optional_date(term.from.get_ref())
            .ok_or_else(|| Refusal::field(from_field, format!("the term needs its first day in `{from_field}`")))?;
        // The usual maximum as a length of time from the first day (Civil Code art. 201: the
        // first day not counted), without rolling past days off: a cap compares lengths.
        let cap = from
            .checked_add_months(chrono::Months::new(12 * term.cap_years))
            .ok_or_else(|| Refusal::field(from_field, "the term's first day is out of range"))?;
        let agreed = term.until.as_ref().and_then(|f| self.optional_date(f.get_ref()));
        let (last, over) = match (agreed, &term.length) {
            (Some(last), _) => {
                if last < from {
                    let until = term.until.as_ref().expect("agreed").get_ref().trim_start_matches('$').to_owned();
                    return Err(Refusal::field(&until, format!("the term ends on {last}, before it starts on {from}")));
                }
                (last, last > cap)
            }
            (None, Some(length)) => {
                let period = self.period(length)?;
                let last = Deadline::new(period, crate::calendar::start_of_day(from))
                    .status(self.calendar)
                    .last_day
                    .expect("a term in days, months or years has a last day");
                let over = match period {
                    Period::Years(n) => n > term.cap_years,
                    Period::Months(n) => n > 12 * term.cap_years,
                    _ => last > cap,
                };
                (last, over)
            }
            (None, None) => {
                let until = term.until.as_ref().map_or("until", |f| f.get_ref().trim_start_matches('$'));
                return Err(Refusal::field(until, format!("give the term's agreed last day in `{until}`")));
            }
        };
        let reason_field = term.reason.get_ref();
        let reason = self.state.data.get(reason_field.as_str()).and_then(Value::as_str).map(str::trim).unwrap_or("");
        if over && reason.is_empty() {
            let basis = self.basis_text(&term.basis).map(|b| format!(" ({b})")).unwrap_or_default();
            return Err(Refusal::field(
                reason_field,
                format!(
                    "the term {from} to {last} is longer than the usual {} years{basis}: state the reason in `{reason_field}`",
                    term.cap_years
                ),
            ));
        }
        self.state.data.insert("term_last_day".into(), Value::String(last.to_string()));
        self.state.data.insert("term_over_cap".into(), Value::Bool(over));
        Ok(())
    }

    /// The start of the day held by a date field.
    fn date_field(&self, reference: &str) -> Result<DateTime<FixedOffset>, Refusal> {
        let field = reference.trim_start_matches('$');
        self.state
            .data
            .get(field)
            .and_then(Value::as_str)
            .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .map(crate::calendar::start_of_day)
            .ok_or_else(|| {
                Refusal::field(field, format!("a time limit counts from field `{field}`, which holds no date"))
            })
    }

    /// An administrator's repair needs an administrator and a reason for the record.
    fn administered(actor: &Actor, what: &str, reason: &str) -> Result<(), Refusal> {
        if !actor.administrator {
            return Err(Refusal::new(
                RefusalKind::NotAdministrator,
                format!("only an administrator may {what} an instance; `{}` is not one", actor.id),
            ));
        }
        if reason.trim().is_empty() {
            return Err(Refusal::field("reason", format!("say why the instance is to {what}")));
        }
        Ok(())
    }

    /// Ends the instance as an administrator asked: a cancellation tells whom the
    /// definition's `on_cancel` names (while the step still stands, so `assignee` is the
    /// task's holder), then the step is left (its timers cancelled, its task closed).
    fn end(&mut self, actor: &Actor, how: Ending, reason: &str) -> Result<(), Refusal> {
        let verb = match how {
            Ending::Cancelled => "cancel",
            Ending::Terminated => "terminate",
        };
        Self::administered(actor, verb, reason)?;
        if how == Ending::Cancelled {
            // A notice of the cancellation states no deadline: none runs any more.
            if let Some(step) = self.state.step.as_mut() {
                step.deadline = None;
            }
            let step = self.state.step_name().expect("running").to_owned();
            let on_cancel = self.definition.procedure.on_cancel.clone();
            self.effects_because(&on_cancel, &step, Some(reason));
        }
        self.leave();
        self.state.status = Status::Completed { outcome: how.as_str().to_owned() };
        Ok(())
    }

    /// Moves the instance to `step` as an administrator asked; the step must be one of
    /// its definition's.
    fn move_to(&mut self, actor: &Actor, step: &str, reason: &str) -> Result<(), Refusal> {
        Self::administered(actor, "move", reason)?;
        if self.definition.step(step).is_none() {
            let steps: Vec<&str> = self.definition.procedure.steps.keys().map(|s| s.get_ref().as_str()).collect();
            return Err(Refusal::field(
                "step",
                format!("`{}` has no step `{step}`; its steps: {}", self.definition.id(), steps.join(", ")),
            ));
        }
        self.enter(step)
    }

    fn leave(&mut self) {
        if let Some(step) = self.state.step.take() {
            for id in step.timers.keys() {
                self.commands.push(Command::CancelTimer { id: id.clone() });
            }
            if let Some(task) = &step.task {
                self.commands.push(Command::CloseTask { id: task.id.clone() });
            }
        }
    }

    pub(super) fn enter(&mut self, name: &str) -> Result<(), Refusal> {
        self.leave();
        let step = self.definition.step(name).expect("validated definitions only go to defined steps");
        self.state.visits += 1;
        let visit = self.state.visits;
        self.state.step = Some(StepState {
            name: name.to_owned(),
            visit,
            entered_at: self.now,
            task: None,
            deadline: None,
            joined: Default::default(),
            child: None,
            timers: Default::default(),
        });
        if let Some(outcome) = &step.outcome {
            self.state.status = Status::Completed { outcome: outcome.get_ref().clone() };
            self.effects(&step.on_enter, name);
            self.commands.push(Command::Complete { outcome: outcome.get_ref().clone() });
            return Ok(());
        }
        if let Some(spec) = &step.deadline {
            let deadline = self.new_deadline(spec, self.now)?;
            self.state.step.as_mut().expect("just entered").deadline = Some(deadline);
        }
        if let Some(task) = &step.task {
            let role = task.role.get_ref().clone();
            let task_state = TaskState {
                id: format!("v{visit}.task"),
                organization: self.role_organization(&role),
                role,
                title: task.title.clone(),
            };
            self.commands.push(Command::OpenTask {
                id: task_state.id.clone(),
                step: name.to_owned(),
                title: task_state.title.clone(),
                role: task_state.role.clone(),
                organization: task_state.organization.clone(),
                actions: step.actions.keys().map(|a| a.get_ref().clone()).collect(),
                deadline: self.deadline_info(),
            });
            self.state.step.as_mut().expect("just entered").task = Some(task_state);
        }
        self.effects(&step.on_enter, name);
        self.sync_deadline_timers()?;
        self.schedule_recurring_timers(step, 0)?;
        if let Some(child) = &step.child {
            let key = format!("v{visit}.child");
            let input: serde_json::Map<String, Value> = child
                .input
                .iter()
                .map(|(field, value)| {
                    let value = match value.get_ref().strip_prefix('$') {
                        Some(own) => self.state.data.get(own).cloned().unwrap_or(Value::Null),
                        None => Value::String(value.get_ref().clone()),
                    };
                    (field.clone(), value)
                })
                .collect();
            self.commands.push(Command::StartChild {
                key: key.clone(),
                procedure: child.procedure.get_ref().clone(),
                jurisdiction: self.state.jurisdiction.clone(),
                input: Value::Object(input),
            });
            self.state.step.as_mut().expect("just entered").child = Some(key);
        }
        Ok(())
    }

    /// The period a step's limit runs for in this instance: the agreed last day, where the
    /// data holds one, or the length.
    fn limit_period(&self, spec: &DeadlineSpec) -> Result<Period, Refusal> {
        match spec.until.as_ref().and_then(|field| self.optional_date(field.get_ref())) {
            Some(day) => Ok(Period::Through(day)),
            None => self.period(&spec.length()),
        }
    }

    /// A step's deadline as it stands when it begins; `step_began` is when the step was
    /// entered, the default start of its count.
    fn new_deadline(&self, spec: &DeadlineSpec, step_began: DateTime<FixedOffset>) -> Result<DeadlineState, Refusal> {
        let period = self.limit_period(spec)?;
        let from = match spec.from.as_ref().map(|f| f.get_ref().as_str()) {
            Some("started") => self.state.started_at.unwrap_or(step_began),
            Some(reference) if reference.starts_with('$') => self.date_field(reference)?,
            _ => step_began,
        };
        let rule = Deadline::new(period, from);
        let status = rule.status(self.calendar);
        Ok(DeadlineState {
            rule,
            basis: deadline_basis(spec),
            due: status.due,
            last_day: status.last_day,
            provisional: status.provisional,
            overdue: false,
            escalations_sent: 0,
        })
    }

    /// Carries the instance over to `to_version` (the definition this run applies). The
    /// step keeps its visit, task and timers under its new name; the deadline is kept or
    /// recomputed, and its reminders and escalations follow the new version.
    fn migrate(
        &mut self,
        actor: &Actor,
        reason: &str,
        from_version: &str,
        to_version: &str,
        steps: &std::collections::BTreeMap<String, String>,
        deadline: MigratedDeadline,
    ) -> Result<(), Refusal> {
        Self::administered(actor, "migrate", reason)?;
        let definition = self.definition;
        if self.state.version != from_version {
            return Err(Refusal::field(
                "from_version",
                format!("the instance runs version {}, not {from_version}", self.state.version),
            ));
        }
        if definition.version != to_version
            || definition.id() != self.state.procedure
            || definition.jurisdiction() != self.state.jurisdiction
        {
            return Err(Refusal::field(
                "to_version",
                format!(
                    "version {to_version} is not a version of {}/{}",
                    self.state.procedure, self.state.jurisdiction
                ),
            ));
        }
        if from_version == to_version {
            return Err(Refusal::field("to_version", format!("the instance already runs version {to_version}")));
        }
        let from = self.state.step_name().expect("running").to_owned();
        let to = steps.get(&from).cloned().unwrap_or_else(|| from.clone());
        let Some(step) = definition.step(&to) else {
            return Err(Refusal::field(
                "steps",
                format!(
                    "step `{from}` has no step `{to}` to go to in version {to_version}: map it (\"{from}\": \"…\")"
                ),
            ));
        };
        if step.outcome.is_some() {
            return Err(Refusal::field("steps", format!("step `{from}` maps to `{to}`, which ends the procedure")));
        }
        let current = self.state.step.as_ref().expect("running");
        let old_role = current.task.as_ref().map(|t| t.role.as_str());
        let new_role = step.task.as_ref().map(|t| t.role.get_ref().as_str());
        if old_role != new_role {
            return Err(Refusal::field(
                "steps",
                format!(
                    "step `{from}`'s task is for {} and `{to}`'s in version {to_version} for {}: migrate the instance from another step",
                    old_role.unwrap_or("no role"),
                    new_role.unwrap_or("no role")
                ),
            ));
        }
        let began = current.entered_at;
        let recomputed = match (&step.deadline, current.deadline.clone()) {
            (None, _) => None,
            (Some(spec), None) => Some(self.new_deadline(spec, began)?),
            (Some(_), Some(kept)) if deadline == MigratedDeadline::Keep => Some(kept),
            // The count goes on from where it began, with its stops and extension.
            (Some(spec), Some(mut recounted)) => {
                recounted.rule.period = self.limit_period(spec)?;
                recounted.basis = deadline_basis(spec);
                Some(recounted)
            }
        };
        self.state.version = to_version.to_owned();
        let current = self.state.step.as_mut().expect("running");
        current.name = to;
        current.deadline = recomputed;
        self.deadline_moved()
    }

    fn action(&mut self, actor: &Actor, action_name: &str, data: &Value) -> Result<(), Refusal> {
        let step_name = self.state.step_name().expect("running").to_owned();
        let step = self.current_step();
        let Some(action) = step.actions.get(action_name) else {
            let allowed: Vec<&str> = step.actions.keys().map(|a| a.get_ref().as_str()).collect();
            return Err(Refusal::new(
                RefusalKind::NotAllowed,
                format!(
                    "action `{action_name}` is not allowed in step `{step_name}` ({}); allowed: {}",
                    step.title,
                    allowed.join(", ")
                ),
            ));
        };
        let role = action.role.get_ref();
        if !actor.administrator {
            if !actor.roles.iter().any(|r| r == role) {
                return Err(Refusal::new(
                    RefusalKind::WrongRole,
                    format!("action `{action_name}` is taken by role `{role}`, which `{}` does not hold", actor.id),
                ));
            }
            if let Some(org) = self.role_organization(role) {
                if !actor.organizations.contains(&org) {
                    return Err(Refusal::new(
                        RefusalKind::WrongOrganization,
                        format!(
                            "action `{action_name}` is for organization `{org}`, which `{}` does not belong to",
                            actor.id
                        ),
                    ));
                }
            }
        }
        let fields = data::check(&action.fields, data)?;
        let joins = step.all_of.as_ref().is_some_and(|j| j.actions.iter().any(|a| a.get_ref() == action_name));
        if joins && self.state.step.as_ref().is_some_and(|s| s.joined.contains(action_name)) {
            return Err(Refusal::new(
                RefusalKind::Conflict,
                format!("action `{action_name}` has already been taken in this step"),
            ));
        }
        if let Some(clock) = &action.clock {
            self.change_clock(clock.get_ref(), action_name)?;
        }
        if let Some(extend) = &action.extend {
            let period = self.period(&extend.length())?;
            let reason =
                fields.get("reason").and_then(Value::as_str).map_or_else(|| action.title.clone(), str::to_owned);
            let now = self.now;
            let deadline =
                self.deadline_mut().ok_or_else(|| Refusal::new(RefusalKind::Definition, "no deadline to extend"))?;
            if deadline.rule.extension.is_some() {
                return Err(Refusal::new(
                    RefusalKind::Conflict,
                    "the time limit of this step has already been extended",
                ));
            }
            deadline.rule.extend(period, &actor.id, &reason, now);
            self.deadline_moved()?;
        }
        self.state.data.extend(fields);
        if let Some(term) = &action.term {
            self.check_term(term)?;
        }
        self.effects(&action.effects, &step_name);
        if let Some(next) = &action.goto {
            return self.enter(next.get_ref());
        }
        if joins {
            let step_state = self.state.step.as_mut().expect("running");
            step_state.joined.insert(action_name.to_owned());
            let all_of = step.all_of.as_ref().expect("joins");
            if all_of.actions.iter().all(|a| step_state.joined.contains(a.get_ref().as_str())) {
                return self.enter(all_of.goto.get_ref());
            }
        }
        Ok(())
    }

    pub(super) fn deadline_mut(&mut self) -> Option<&mut DeadlineState> {
        self.state.step.as_mut()?.deadline.as_mut()
    }

    fn change_clock(&mut self, change: &str, action_name: &str) -> Result<(), Refusal> {
        let now = self.now;
        let deadline =
            self.deadline_mut().ok_or_else(|| Refusal::new(RefusalKind::Definition, "no deadline to pause"))?;
        let result = if change == "pause" { deadline.rule.pause(now) } else { deadline.rule.resume(now) };
        result.map_err(|e| Refusal::new(RefusalKind::Conflict, format!("action `{action_name}` refused: {e}")))?;
        self.deadline_moved()
    }

    /// Recomputes the current deadline after its rule or the calendar changed, and tells the
    /// runtime when anything visible moved.
    pub(super) fn deadline_moved(&mut self) -> Result<(), Refusal> {
        let now = self.now;
        let calendar = self.calendar;
        let Some(deadline) = self.deadline_mut() else {
            return Ok(());
        };
        let before = (deadline.due, deadline.last_day, deadline.provisional);
        let status = deadline.rule.status(calendar);
        deadline.due = status.due;
        deadline.last_day = status.last_day;
        deadline.provisional = status.provisional;
        if deadline.overdue && status.due.is_some_and(|due| due > now) {
            deadline.overdue = false;
        }
        // Stopping and restarting the clock change `due` too, so they are reported here.
        let changed = before != (deadline.due, deadline.last_day, deadline.provisional);
        if changed {
            self.deadline_changed();
        }
        self.sync_deadline_timers()
    }

    pub(super) fn deadline_changed(&mut self) {
        let step = self.state.step.as_ref().expect("running");
        if let Some(deadline) = self.deadline_info() {
            self.commands.push(Command::DeadlineChanged {
                step: step.name.clone(),
                task: step.task.as_ref().map(|t| t.id.clone()),
                deadline,
            });
        }
    }

    fn timer_fired(&mut self, id: &str) -> Result<(), Refusal> {
        let Some(timer) = self.state.step.as_mut().and_then(|s| s.timers.remove(id)) else {
            return Ok(()); // cancelled or from an earlier step
        };
        let step = self.current_step();
        let step_name = self.state.step_name().expect("running").to_owned();
        match timer.kind {
            TimerKind::Deadline => {
                if let Some(next) = step.deadline.as_ref().and_then(|d| d.on_expiry.as_ref()) {
                    return self.enter(next.get_ref());
                }
                self.deadline_mut().expect("a deadline timer has a deadline").overdue = true;
                self.deadline_changed();
                self.escalate_due()?;
                self.sync_deadline_timers()?;
            }
            TimerKind::Reminder(_) => {
                let activity = Activity::Notify {
                    to: vec![self.recipient("assignee")],
                    template: "deadline_reminder".into(),
                    step: step_name,
                    deadline: self.deadline_info(),
                    basis: self.deadline_info().map(|d| d.basis),
                    reason: None,
                };
                self.run_activity(activity);
            }
            TimerKind::Escalation(_) => {
                self.escalate_due()?;
                self.sync_deadline_timers()?;
            }
            TimerKind::StepTimer(name, repetition) => {
                let spec =
                    step.timers.iter().find(|t| t.name.get_ref() == &name).expect("scheduled from the definition");
                self.effects(&spec.effects, &step_name);
                if spec.every.is_some() {
                    self.schedule_recurring_timers(step, repetition + 1)?;
                }
            }
        }
        Ok(())
    }

    fn child_completed(&mut self, key: &str, outcome: &str) -> Result<(), Refusal> {
        let current = self.state.step.as_ref().and_then(|s| s.child.as_deref());
        if current != Some(key) {
            return Ok(()); // a child of an earlier step
        }
        let child = self.current_step().child.as_ref().expect("the step started a child");
        let next = child.on_outcome.get(outcome).ok_or_else(|| {
            Refusal::new(
                RefusalKind::NotAllowed,
                format!(
                    "child `{}` ended with `{outcome}`, which this step does not handle",
                    child.procedure.get_ref()
                ),
            )
        })?;
        self.enter(next.get_ref())
    }

    fn signal(&mut self, name: &str, data: &Value) -> Result<(), Refusal> {
        let step = self.current_step();
        let Some(next) = step.signals.get(name) else {
            return Err(Refusal::new(
                RefusalKind::NotAllowed,
                format!("signal `{name}` is not expected in step `{}`", self.state.step_name().unwrap_or_default()),
            ));
        };
        if let Value::Object(map) = data {
            self.state.data.insert(format!("signal_{name}"), Value::Object(map.clone()));
        }
        self.enter(next.get_ref())
    }

    fn calendar_changed(&mut self) {
        // A deadline that a calendar cannot compute would have failed when the step opened.
        let _ = self.deadline_moved();
    }
}

/// What an instance keeps as its deadline's basis: the article, or for a policy limit the
/// agency's reference with the article creating the duty (rendered by `basis_text`).
fn deadline_basis(spec: &crate::definition::model::DeadlineSpec) -> String {
    let article = spec.basis.as_ref().map(|b| b.get_ref().clone());
    match (&spec.policy, article) {
        (Some(policy), Some(article)) => format!("{}{policy}|{article}", crate::definition::model::POLICY_PREFIX),
        (Some(policy), None) => format!("{}{policy}", crate::definition::model::POLICY_PREFIX),
        (None, article) => article.unwrap_or_default(),
    }
}
