//! Replays recorded histories (tests/histories/*.json) through the interpreter and checks
//! the commands they emit: the same history must always give the same state and commands.

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use statflow_workflows::calendar::Calendar;
use statflow_workflows::definition::Library;
use statflow_workflows::engine::{self, Activity, Command, Event, InstanceState, TimerKind};

#[derive(Deserialize)]
struct History {
    procedure: String,
    jurisdiction: String,
    events: Vec<Recorded>,
}

#[derive(Deserialize)]
struct Recorded {
    at: DateTime<FixedOffset>,
    event: Event,
}

fn replay(history: &History) -> (InstanceState, Vec<Vec<Command>>) {
    let library = Library::built_in();
    let definition = library.get(&history.procedure, &history.jurisdiction).unwrap();
    let calendar = Calendar::official();
    let mut state = InstanceState::new(definition);
    let mut emitted = Vec::new();
    for recorded in &history.events {
        let transition = engine::apply(definition, &state, &recorded.event, recorded.at, &calendar)
            .unwrap_or_else(|refusal| panic!("{:?} refused: {refusal:?}", recorded.event));
        state = transition.state;
        emitted.push(transition.commands);
    }
    (state, emitted)
}

fn t(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

#[test]
fn a_late_acceptance_history_replays_to_the_same_commands() {
    let history: History = serde_json::from_str(include_str!("histories/registration-late-acceptance.json")).unwrap();
    let (state, emitted) = replay(&history);
    assert_eq!((state.clone(), emitted.clone()), replay(&history), "replay is not deterministic");

    // Started: the acceptance task, then the deadline and both reminders.
    let scheduled: Vec<(&str, DateTime<FixedOffset>)> = emitted[0]
        .iter()
        .filter_map(|c| match c {
            Command::ScheduleTimer { id, at, .. } => Some((id.as_str(), *at)),
            _ => None,
        })
        .collect();
    assert_eq!(
        scheduled,
        vec![
            ("v1.deadline", t("2026-02-26T00:00:00+08:00")),
            ("v1.remind.0", t("2026-02-25T09:00:00+08:00")),
            ("v1.remind.1", t("2026-02-24T09:00:00+08:00")),
        ]
    );
    // The deadline passing: overdue reported, first escalation sent, next one scheduled.
    assert!(matches!(&emitted[3][0], Command::DeadlineChanged { deadline, .. } if deadline.overdue));
    assert!(
        matches!(&emitted[3][1], Command::RunActivity { key, activity: Activity::Escalate { level: 1, .. } } if key == "e4.1")
    );
    assert!(
        matches!(&emitted[3][2], Command::ScheduleTimer { id, kind: TimerKind::Escalation(1), .. } if id == "v1.escalate.1")
    );
    assert!(!state.pending_activities.contains("e4.1"), "the completed escalation is no longer pending");
    // Accepting closes the task, cancels the pending escalation and opens the review.
    assert!(emitted[6].contains(&Command::CancelTimer { id: "v1.escalate.2".into() }));
    assert!(emitted[6].contains(&Command::CloseTask { id: "v1.task".into() }));
    // A late delivery of the cancelled escalation timer changes nothing.
    assert!(emitted[7].is_empty());
    assert_eq!(state.step_name(), Some("substantive_review"));
    assert_eq!(state.data["registration_type"], "change");
}
