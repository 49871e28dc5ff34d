//! Property tests of the interpreter over the whole procedure library: random sequences of
//! actions (right and wrong), timer firings, signals, child completions and calendar changes
//! never panic, never produce a deadline before its start, and replaying the accepted events
//! gives the same state.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use statflow_workflows::calendar::Calendar;
use statflow_workflows::definition::model::{Field, Name};
use statflow_workflows::definition::{Definition, Library};
use statflow_workflows::engine::{self, Actor, Command, Event, InstanceState, Status};

/// A value each field accepts, so that sequences get past validation often.
fn valid_data(fields: &BTreeMap<Name, Field>) -> Value {
    let mut map = Map::new();
    for (name, field) in fields {
        let spec = field.spec();
        let value = match spec.kind.as_str() {
            "integer" => json!(spec.min.unwrap_or(1).max(1).min(spec.max.unwrap_or(i64::MAX))),
            "date" => json!("2026-03-02"),
            "boolean" => json!(true),
            "enum" => json!(spec.values[0]),
            _ => json!("org"),
        };
        map.insert(name.get_ref().clone(), value);
    }
    Value::Object(map)
}

#[derive(Clone, Debug)]
enum Op {
    /// The n-th action of the whole definition (often not allowed in the current step),
    /// with valid data or none, by an administrator or by someone without any role.
    Act {
        action: usize,
        valid: bool,
        admin: bool,
    },
    FireDueTimers,
    CalendarChanged,
    Signal(usize),
    ChildCompleted(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..64, any::<bool>(), prop::bool::weighted(0.8)).prop_map(|(action, valid, admin)| Op::Act { action, valid, admin }),
        3 => Just(Op::FireDueTimers),
        1 => Just(Op::CalendarChanged),
        1 => (0usize..8).prop_map(Op::Signal),
        1 => (0usize..8).prop_map(Op::ChildCompleted),
    ]
}

struct Run<'a> {
    definition: &'a Definition,
    calendar: Calendar,
    state: InstanceState,
    now: DateTime<FixedOffset>,
    timers: BTreeMap<String, DateTime<FixedOffset>>,
    accepted: Vec<(DateTime<FixedOffset>, Event)>,
}

impl Run<'_> {
    fn apply(&mut self, event: Event) {
        if let Ok(transition) = engine::apply(self.definition, &self.state, &event, self.now, &self.calendar) {
            for command in &transition.commands {
                match command {
                    Command::ScheduleTimer { id, at, .. } => {
                        self.timers.insert(id.clone(), *at);
                    }
                    Command::CancelTimer { id } => {
                        self.timers.remove(id);
                    }
                    _ => {}
                }
            }
            if let Some(deadline) = transition.state.step.as_ref().and_then(|s| s.deadline.as_ref()) {
                if let Some(due) = deadline.due {
                    assert!(due >= deadline.rule.start, "{}: deadline {due} before its start", self.definition.file);
                }
            }
            if transition.state.status != Status::Running {
                assert!(transition.state.step.as_ref().is_none_or(|s| s.timers.is_empty()));
            }
            self.state = transition.state;
            self.accepted.push((self.now, event));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn random_event_sequences_are_safe_and_replayable(
        which in 0usize..64,
        start_hour in 0i64..(24 * 365),
        ops in prop::collection::vec((op(), 0i64..(24 * 20)), 1..40),
    ) {
        static LIBRARY: std::sync::OnceLock<Library> = std::sync::OnceLock::new();
        let definitions: Vec<&Definition> = LIBRARY.get_or_init(Library::built_in).iter().collect();
        let definition = definitions[which % definitions.len()];
        let actions: Vec<(String, &BTreeMap<Name, Field>)> = definition
            .procedure
            .steps
            .values()
            .flat_map(|s| s.actions.iter().map(|(n, a)| (n.get_ref().clone(), &a.fields)))
            .collect();
        let signals: Vec<String> =
            definition.procedure.steps.values().flat_map(|s| s.signals.keys().map(|k| k.get_ref().clone())).collect();
        let outcomes: Vec<String> = definition
            .procedure
            .steps
            .values()
            .filter_map(|s| s.child.as_ref())
            .flat_map(|c| c.on_outcome.keys().map(|k| k.get_ref().clone()))
            .chain(["no_such_outcome".to_owned()])
            .collect();

        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00+08:00").unwrap() + Duration::hours(start_hour);
        let mut run = Run {
            definition,
            calendar: Calendar::official(),
            state: InstanceState::new(definition),
            now: start,
            timers: BTreeMap::new(),
            accepted: Vec::new(),
        };
        run.apply(Event::Started { input: valid_data(&definition.procedure.input), actor: Actor::system() });
        prop_assert_eq!(&run.state.status, &Status::Running);

        for (op, advance) in ops {
            run.now += Duration::hours(advance);
            match op {
                Op::Act { action, valid, admin } if !actions.is_empty() => {
                    let (name, fields) = &actions[action % actions.len()];
                    let data = if valid { valid_data(fields) } else { json!({}) };
                    let actor = Actor { id: "someone".into(), roles: vec![], organizations: vec![], administrator: admin, request: None };
                    run.apply(Event::Action { actor, action: name.clone(), data });
                }
                Op::Act { .. } => {}
                Op::FireDueTimers => {
                    let mut due: Vec<(DateTime<FixedOffset>, String)> =
                        run.timers.iter().filter(|(_, at)| **at <= run.now).map(|(id, at)| (*at, id.clone())).collect();
                    due.sort();
                    for (_, id) in due {
                        if run.timers.remove(&id).is_some() {
                            run.apply(Event::TimerFired { timer: id });
                        }
                    }
                }
                Op::CalendarChanged => run.apply(Event::CalendarChanged),
                Op::Signal(n) if !signals.is_empty() => {
                    run.apply(Event::Signal { name: signals[n % signals.len()].clone(), data: json!({}) });
                }
                Op::Signal(_) => run.apply(Event::Signal { name: "unexpected".into(), data: json!({}) }),
                Op::ChildCompleted(n) => {
                    let key = run.state.step.as_ref().and_then(|s| s.child.clone()).unwrap_or_else(|| "v0.child".into());
                    run.apply(Event::ChildCompleted { key, outcome: outcomes[n % outcomes.len()].clone() });
                }
            }
        }

        // Replaying what was accepted rebuilds exactly the same state.
        let mut replayed = InstanceState::new(definition);
        for (at, event) in &run.accepted {
            replayed = engine::apply(definition, &replayed, event, *at, &run.calendar).expect("accepted before").state;
        }
        prop_assert_eq!(replayed, run.state);
    }
}
