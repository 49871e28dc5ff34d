//! The declared transitions of a definition, one per line of the state table: what causes
//! each move from one step to another (or back to the same step). The diagram draws them and
//! the transition-coverage test checks that scenarios take every one.

use super::Definition;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Trigger {
    /// An action; when it has no `goto` the instance stays (clock, extension, join member).
    Action(String),
    /// Every action of an `all_of` join has been taken.
    AllOf,
    /// A waiting period ended (`on_expiry`).
    Expiry,
    /// A duty's limit passed: the step stays, marked overdue, and escalates.
    Overdue,
    Child(String),
    Signal(String),
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Action(a) => write!(f, "{a}"),
            Trigger::AllOf => write!(f, "all approved"),
            Trigger::Expiry => write!(f, "period ends"),
            Trigger::Overdue => write!(f, "overdue"),
            Trigger::Child(outcome) => write!(f, "child {outcome}"),
            Trigger::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Transition {
    pub from: String,
    pub trigger: Trigger,
    pub to: String,
}

impl Definition {
    pub fn transitions(&self) -> Vec<Transition> {
        let mut all = Vec::new();
        for (name, step) in &self.procedure.steps {
            let from = name.get_ref().clone();
            let mut add =
                |trigger: Trigger, to: &str| all.push(Transition { from: from.clone(), trigger, to: to.to_owned() });
            for (action, spec) in &step.actions {
                add(
                    Trigger::Action(action.get_ref().clone()),
                    spec.goto.as_ref().map_or(name.get_ref(), |g| g.get_ref()),
                );
            }
            if let Some(all_of) = &step.all_of {
                add(Trigger::AllOf, all_of.goto.get_ref());
            }
            if let Some(deadline) = &step.deadline {
                match &deadline.on_expiry {
                    Some(next) => add(Trigger::Expiry, next.get_ref()),
                    None => add(Trigger::Overdue, name.get_ref()),
                }
            }
            if let Some(child) = &step.child {
                for (outcome, next) in &child.on_outcome {
                    add(Trigger::Child(outcome.get_ref().clone()), next.get_ref());
                }
            }
            for (signal, next) in &step.signals {
                add(Trigger::Signal(signal.get_ref().clone()), next.get_ref());
            }
        }
        all
    }
}
