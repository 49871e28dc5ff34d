//! A scenario harness for driving library procedures through the interpreter with a
//! controllable clock: it fires due timers in order, keeps the commands emitted, records which
//! declared transitions were taken, and checks on every event that the state survives a
//! serialization round trip and that no deadline falls before its start.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, FixedOffset};
use serde_json::{json, Value};
use statflow_workflows::calendar::Calendar;
use statflow_workflows::definition::{Definition, Library, Transition, Trigger};
use statflow_workflows::engine::{self, Activity, Actor, Command, Event, InstanceState, Refusal, Status, TimerKind};

pub fn t(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("bad time {s}: {e}"))
}

pub fn library() -> &'static Library {
    static LIBRARY: OnceLock<Library> = OnceLock::new();
    LIBRARY.get_or_init(Library::built_in)
}

/// (procedure, jurisdiction, transition) taken by any scenario in this process.
pub fn taken() -> &'static Mutex<BTreeSet<(String, String, Transition)>> {
    static TAKEN: OnceLock<Mutex<BTreeSet<(String, String, Transition)>>> = OnceLock::new();
    TAKEN.get_or_init(Default::default)
}

pub struct Scenario {
    pub definition: &'static Definition,
    pub calendar: Calendar,
    pub state: InstanceState,
    pub now: DateTime<FixedOffset>,
    /// Scheduled timers by id.
    pub timers: BTreeMap<String, (DateTime<FixedOffset>, TimerKind)>,
    /// Every command emitted, in order, with the time it was emitted.
    pub log: Vec<(DateTime<FixedOffset>, Command)>,
    actors: BTreeMap<String, Actor>,
    /// Index into `log` of the first command not yet looked at by `take`.
    seen: usize,
}

impl Scenario {
    pub fn start(procedure: &str, jurisdiction: &str, at: &str, input: Value) -> Scenario {
        Self::try_start(procedure, jurisdiction, at, input).unwrap_or_else(|r| panic!("start refused: {r:?}"))
    }

    pub fn try_start(procedure: &str, jurisdiction: &str, at: &str, input: Value) -> Result<Scenario, Refusal> {
        let definition =
            library().get(procedure, jurisdiction).unwrap_or_else(|| panic!("no {procedure}/{jurisdiction}"));
        let mut scenario = Scenario {
            definition,
            calendar: Calendar::official(),
            state: InstanceState::new(definition),
            now: t(at),
            timers: BTreeMap::new(),
            log: Vec::new(),
            actors: BTreeMap::new(),
            seen: 0,
        };
        scenario.apply(Event::Started { input, actor: Actor::system() })?;
        Ok(scenario)
    }

    /// Declares a person holding `role` in `organization`.
    pub fn person(&mut self, name: &str, role: &str, organization: &str) -> &mut Self {
        let actor = Actor {
            id: name.into(),
            roles: vec![role.into()],
            organizations: vec![organization.into()],
            administrator: false,
            request: None,
        };
        self.actors.insert(name.into(), actor);
        self
    }

    pub fn apply(&mut self, event: Event) -> Result<(), Refusal> {
        let before_step = self.state.step.as_ref().map(|s| (s.name.clone(), s.visit));
        let transition = engine::apply(self.definition, &self.state, &event, self.now, &self.calendar)?;
        // Replaying the same event on the same state gives the same result.
        let again = engine::apply(self.definition, &self.state, &event, self.now, &self.calendar).unwrap();
        assert_eq!(again, transition, "apply is not deterministic");
        // Snapshots survive storage.
        let stored = serde_json::to_string(&transition.state).unwrap();
        assert_eq!(serde_json::from_str::<InstanceState>(&stored).unwrap(), transition.state);
        self.record_transition(before_step, &event, &transition.state);
        self.state = transition.state;
        for command in transition.commands {
            match &command {
                Command::ScheduleTimer { id, at, kind } => {
                    self.timers.insert(id.clone(), (*at, kind.clone()));
                }
                Command::CancelTimer { id } => {
                    self.timers.remove(id);
                }
                _ => {}
            }
            self.log.push((self.now, command));
        }
        self.check_deadline_invariant();
        Ok(())
    }

    fn check_deadline_invariant(&self) {
        if let Some(deadline) = self.state.step.as_ref().and_then(|s| s.deadline.as_ref()) {
            if let Some(due) = deadline.due {
                assert!(due >= deadline.rule.start, "deadline {due} before its start {}", deadline.rule.start);
            }
        }
    }

    fn record_transition(&self, before: Option<(String, u32)>, event: &Event, after: &InstanceState) {
        let Some((from, visit)) = before else { return };
        let to = after.step.as_ref().map(|s| s.name.clone()).unwrap_or_default();
        let moved = after.step.as_ref().map(|s| s.visit) != Some(visit);
        // A migration may rename the step it left; it is no transition of the definition.
        let Some(step) = self.definition.step(&from) else { return };
        let trigger = match event {
            Event::Action { action, .. } => {
                let joins = step.all_of.as_ref().is_some_and(|j| j.actions.iter().any(|a| a.get_ref() == action));
                let mut taken = taken().lock().unwrap();
                if joins && moved {
                    // The last member of a join is itself taken, and completes the join.
                    taken.insert(self.key(Transition {
                        from: from.clone(),
                        trigger: Trigger::Action(action.clone()),
                        to: from.clone(),
                    }));
                    taken.insert(self.key(Transition { from, trigger: Trigger::AllOf, to }));
                    return;
                }
                Trigger::Action(action.clone())
            }
            Event::TimerFired { timer } => match self.timers.get(timer) {
                Some((_, TimerKind::Deadline)) if moved => Trigger::Expiry,
                Some((_, TimerKind::Deadline)) => Trigger::Overdue,
                _ => return,
            },
            Event::ChildCompleted { outcome, .. } => Trigger::Child(outcome.clone()),
            Event::Signal { name, .. } => Trigger::Signal(name.clone()),
            _ => return,
        };
        taken().lock().unwrap().insert(self.key(Transition { from, trigger, to }));
    }

    fn key(&self, transition: Transition) -> (String, String, Transition) {
        (self.definition.id().into(), self.definition.jurisdiction().into(), transition)
    }

    pub fn try_act(&mut self, who: &str, action: &str, data: Value) -> Result<(), Refusal> {
        let actor = self.actors.get(who).unwrap_or_else(|| panic!("unknown person {who}")).clone();
        self.apply(Event::Action { actor, action: action.into(), data })
    }

    pub fn act(&mut self, who: &str, action: &str, data: Value) -> &mut Self {
        self.try_act(who, action, data).unwrap_or_else(|r| panic!("{who} {action} refused: {r:?}"));
        self
    }

    /// Moves the clock to `until`, firing every timer that falls due on the way, in order.
    pub fn advance_to(&mut self, until: &str) -> &mut Self {
        let until = t(until);
        assert!(until >= self.now, "the clock only moves forward");
        while let Some((id, at)) = self
            .timers
            .iter()
            .filter(|(_, (at, _))| *at <= until)
            .min_by_key(|(id, (at, _))| (*at, (*id).clone()))
            .map(|(id, (at, _))| (id.clone(), *at))
        {
            self.now = self.now.max(at);
            self.apply(Event::TimerFired { timer: id.clone() }).unwrap();
            self.timers.remove(&id);
        }
        self.now = until;
        self
    }

    pub fn signal(&mut self, name: &str) -> &mut Self {
        self.apply(Event::Signal { name: name.into(), data: json!({}) })
            .unwrap_or_else(|r| panic!("signal {name} refused: {r:?}"));
        self
    }

    /// Reports the child started by the current step as finished with `outcome`.
    pub fn child_completes(&mut self, outcome: &str) -> &mut Self {
        let key = self.state.step.as_ref().and_then(|s| s.child.clone()).expect("the step has a child");
        self.apply(Event::ChildCompleted { key, outcome: outcome.into() }).unwrap();
        self
    }

    pub fn step(&self) -> &str {
        self.state.step_name().unwrap_or("")
    }

    pub fn expect_step(&mut self, name: &str) -> &mut Self {
        assert_eq!(self.step(), name, "current step");
        self
    }

    pub fn outcome(&self) -> Option<&str> {
        match &self.state.status {
            Status::Completed { outcome } => Some(outcome),
            _ => None,
        }
    }

    pub fn due(&self) -> Option<DateTime<FixedOffset>> {
        self.state.step.as_ref()?.deadline.as_ref()?.due
    }

    /// Commands emitted since the last call.
    pub fn take(&mut self) -> Vec<Command> {
        let fresh = self.log[self.seen..].iter().map(|(_, c)| c.clone()).collect();
        self.seen = self.log.len();
        fresh
    }

    /// The activities emitted since the last call to `take`, with the time they were emitted.
    pub fn activities(&self) -> Vec<(DateTime<FixedOffset>, Activity)> {
        self.log
            .iter()
            .filter_map(|(at, c)| match c {
                Command::RunActivity { activity, .. } => Some((*at, activity.clone())),
                _ => None,
            })
            .collect()
    }

    /// Every escalation sent: (time, level, recipient roles).
    pub fn escalations(&self) -> Vec<(DateTime<FixedOffset>, u32, Vec<String>)> {
        self.activities()
            .into_iter()
            .filter_map(|(at, a)| match a {
                Activity::Escalate { level, to, .. } => Some((at, level, to.into_iter().map(|r| r.role).collect())),
                _ => None,
            })
            .collect()
    }

    /// The legal basis each escalation sent cited, with its time.
    pub fn escalation_bases(&self) -> Vec<(DateTime<FixedOffset>, Option<String>)> {
        self.activities()
            .into_iter()
            .filter_map(|(at, a)| match a {
                Activity::Escalate { basis, .. } => Some((at, basis)),
                _ => None,
            })
            .collect()
    }

    /// Every notification sent: (time, template, first recipient role).
    pub fn notifications(&self) -> Vec<(DateTime<FixedOffset>, String, String)> {
        self.activities()
            .into_iter()
            .filter_map(|(at, a)| match a {
                Activity::Notify { template, to, .. } => Some((at, template, to[0].role.clone())),
                _ => None,
            })
            .collect()
    }
}

/// Which declared transitions of the library no scenario took.
pub fn untaken() -> Vec<String> {
    let taken = taken().lock().unwrap();
    let mut missing = Vec::new();
    for definition in library().iter() {
        for transition in definition.transitions() {
            let key = (definition.id().to_owned(), definition.jurisdiction().to_owned(), transition.clone());
            if !taken.contains(&key) {
                missing.push(format!(
                    "{}/{}: {} --{}--> {}",
                    definition.id(),
                    definition.jurisdiction(),
                    transition.from,
                    transition.trigger,
                    transition.to
                ));
            }
        }
    }
    missing
}

impl Scenario {
    /// Every data-access change: (time, change, subject).
    pub fn access_changes(&self) -> Vec<(DateTime<FixedOffset>, String, String)> {
        self.activities()
            .into_iter()
            .filter_map(|(at, a)| match a {
                Activity::ChangeAccess { change, subject, .. } => Some((at, change, subject)),
                _ => None,
            })
            .collect()
    }

    /// Every signal sent to another instance: (target, signal).
    pub fn signals_sent(&self) -> Vec<(String, String)> {
        self.log
            .iter()
            .filter_map(|(_, c)| match c {
                Command::SignalInstance { target, signal, .. } => Some((target.clone(), signal.clone())),
                _ => None,
            })
            .collect()
    }

    /// The child procedure the current step started: (procedure, input).
    pub fn child_started(&self) -> Option<(String, Value)> {
        self.log.iter().rev().find_map(|(_, c)| match c {
            Command::StartChild { procedure, input, .. } => Some((procedure.clone(), input.clone())),
            _ => None,
        })
    }

    pub fn provisional(&self) -> bool {
        self.state.step.as_ref().and_then(|s| s.deadline.as_ref()).is_some_and(|d| d.provisional)
    }
}
