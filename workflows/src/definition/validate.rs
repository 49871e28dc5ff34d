//! The validator: everything a definition must satisfy before an instance may run on it.
//! Messages are written for the administrator who maintains the file, and say what to do.

use std::collections::{BTreeSet, VecDeque};

use super::model::*;
use super::{regulations, Definition, DefinitionError};

struct Checker<'a> {
    definition: &'a Definition,
    errors: Vec<DefinitionError>,
    /// Every field an instance can hold: start input plus the data of every action.
    fields: BTreeSet<String>,
}

pub(super) fn check(definition: &Definition) -> Vec<DefinitionError> {
    let procedure = &definition.procedure;
    let mut fields: BTreeSet<String> = procedure.input.keys().map(|k| k.get_ref().clone()).collect();
    for step in procedure.steps.values() {
        for action in step.actions.values() {
            fields.extend(action.fields.keys().map(|k| k.get_ref().clone()));
        }
    }
    let mut checker = Checker { definition, errors: Vec::new(), fields };
    checker.procedure();
    checker.errors.sort_by_key(|e| e.line);
    checker.errors
}

impl<'a> Checker<'a> {
    fn fail(&mut self, at: &Name, message: String) {
        self.errors.push(self.definition.error(at.span(), message));
    }

    /// Every source says whether it binds: a kept text through `regulations/index.toml`,
    /// any other in the definition.
    fn sources(&mut self) {
        for (key, source) in &self.definition.procedure.sources {
            let kept = source.file.as_deref().is_some_and(|f| regulations::standing(f).is_some());
            let declared = source.status.is_some() || source.in_force_from.is_some() || source.in_force_until.is_some();
            match (&source.status, kept) {
                (_, true) if declared => self.fail(
                    key,
                    format!(
                        "source `{}` is a kept text: its standing comes from workflows/regulations/index.toml; do not declare it here",
                        key.get_ref()
                    ),
                ),
                (_, true) => {}
                (None, false) => self.fail(
                    key,
                    format!(
                        "source `{}` does not say whether it binds: add `status = \"in_force\"` (with `in_force_from` and, if it lapses, `in_force_until`), `\"draft\"` or `\"expired\"`",
                        key.get_ref()
                    ),
                ),
                (Some(status), false) if !regulations::STATUSES.contains(&status.get_ref().as_str()) => self.fail(
                    status,
                    format!("`status` must be {}, not `{}`", regulations::STATUSES.join(", "), status.get_ref()),
                ),
                (Some(_), false) => {}
            }
        }
    }

    fn procedure(&mut self) {
        self.sources();
        let p = &self.definition.procedure;
        if !p.steps.contains_key(p.initial.get_ref().as_str()) {
            self.fail(&p.initial, format!("the initial step `{}` is not defined under [steps]", p.initial.get_ref()));
        }
        for (name, role) in &p.roles {
            if let Some(org) = &role.organization {
                if !p.input.contains_key(org.get_ref().as_str()) {
                    self.fail(
                        org,
                        format!(
                            "role `{}` takes its organization from input field `{}`, which [input] does not declare",
                            name.get_ref(),
                            org.get_ref()
                        ),
                    );
                }
            }
        }
        for (name, field) in &p.input {
            self.field(name, field);
        }
        for (name, plan) in &p.escalations {
            if plan.levels.is_empty() {
                self.fail(name, format!("escalation plan `{}` has no levels", name.get_ref()));
            }
            for level in &plan.levels {
                self.length(name, &level.after, "the escalation level's `after`");
                for to in &level.to {
                    self.recipient(to);
                }
            }
            if let Some(repeat) = &plan.repeat_every {
                self.length(name, repeat, "`repeat_every`");
            }
        }
        self.effects(&p.on_cancel, &p.id);
        for (name, step) in &p.steps {
            self.step(name, step);
        }
        self.reachability();
    }

    fn field(&mut self, name: &Name, field: &Field) {
        let spec = field.spec();
        let kind = spec.kind.as_str();
        if !FIELD_TYPES.contains(&kind) {
            self.fail(
                name,
                format!("field `{}` has unknown type `{kind}`; use one of {}", name.get_ref(), FIELD_TYPES.join(", ")),
            );
        }
        if kind == "enum" && spec.values.is_empty() {
            self.fail(name, format!("enum field `{}` lists no `values`", name.get_ref()));
        }
    }

    fn step_ref(&mut self, at: &Name, what: &str) {
        if self.definition.step(at.get_ref()).is_none() {
            self.fail(at, format!("{what} goes to step `{}`, which is not defined under [steps]", at.get_ref()));
        }
    }

    fn role_ref(&mut self, at: &Name) {
        if !self.definition.procedure.roles.contains_key(at.get_ref().as_str()) {
            let known: Vec<&str> = self.definition.procedure.roles.keys().map(|k| k.get_ref().as_str()).collect();
            self.fail(
                at,
                format!("unknown role `{}`; the roles of this procedure are {}", at.get_ref(), known.join(", ")),
            );
        }
    }

    fn recipient(&mut self, at: &Name) {
        if !BUILTIN_RECIPIENTS.contains(&at.get_ref().as_str()) {
            self.role_ref(at);
        }
    }

    fn field_ref(&mut self, at: &Name) {
        self.field_ref_at(at, at.get_ref());
    }

    /// Checks a `$field` reference written at (or inside) `at`.
    fn field_ref_at(&mut self, at: &Name, reference: &str) {
        match reference.strip_prefix('$') {
            Some(field) if self.fields.contains(field) => {}
            Some(field) => {
                self.fail(at, format!("`${field}` refers to a field that neither [input] nor any action declares"))
            }
            None => self.fail(at, format!("`{reference}` must refer to a field, written `$name`")),
        }
    }

    fn basis(&mut self, at: &Name) {
        let text = at.get_ref();
        let Some((key, article)) = text.split_once(' ') else {
            self.fail(at, format!("legal basis `{text}` must be a source key and an article, e.g. \"taian 第九条\""));
            return;
        };
        if !self.definition.procedure.sources.contains_key(key) {
            self.fail(at, format!("legal basis `{text}` cites source `{key}`, which [sources] does not declare"));
        } else if article.trim().is_empty() {
            self.fail(at, format!("legal basis `{text}` names no article"));
        } else if let Some(Err(problem)) = self.cited_article(text) {
            self.fail(at, format!("legal basis `{text}`: {problem}"));
        }
    }

    /// A length must use exactly one unit; an amount taken from data must name a field.
    fn length(&mut self, at: &Name, length: &Length, what: &str) {
        let parts = length.parts();
        if parts.len() != 1 {
            self.fail(
                at,
                format!(
                    "{what} must give exactly one of working_days, days, months, years or hours (found {})",
                    parts.len()
                ),
            );
        }
        for (_, amount) in parts {
            if let Amount::Field(field) = amount {
                self.field_ref_at(at, field);
            }
        }
    }

    fn effects(&mut self, effects: &[Effect], owner: &Name) {
        for effect in effects {
            let kinds = [
                effect.notify.is_some(),
                effect.escalate.is_some(),
                effect.issue_certificate.is_some(),
                effect.set_status.is_some(),
                effect.access.is_some(),
                effect.report.is_some(),
                effect.signal.is_some(),
            ];
            let count = kinds.iter().filter(|k| **k).count();
            if count != 1 {
                self.fail(
                    owner,
                    format!(
                        "an effect of `{}` must be exactly one of notify, escalate, issue_certificate, set_status, access, report, signal (found {count})",
                        owner.get_ref()
                    ),
                );
            }
            if let Some(to) = effect.notify.as_ref().or(effect.escalate.as_ref()) {
                self.recipient(to);
            }
            if let Some(change) = &effect.access {
                if !ACCESS_CHANGES.contains(&change.get_ref().as_str()) {
                    self.fail(
                        change,
                        format!("access change `{}` must be suspend, restore or terminate", change.get_ref()),
                    );
                }
                match &effect.subject {
                    Some(subject) => self.field_ref(subject),
                    None => {
                        self.fail(change, "an access change needs `subject = \"$field\"` naming whose access".into())
                    }
                }
            }
            if let Some(signal) = &effect.signal {
                match &effect.target {
                    Some(target) => self.field_ref(target),
                    None => self.fail(signal, "a signal needs `target = \"$field\"` naming the instance".into()),
                }
            }
            if let Some(basis) = &effect.basis {
                self.basis(basis);
            }
        }
    }

    fn step(&mut self, name: &Name, step: &Step) {
        let step_name = name.get_ref();
        if let Some(basis) = &step.basis {
            self.basis(basis);
        }
        if let Some(outcome) = &step.outcome {
            let waits = step.task.is_some()
                || step.deadline.is_some()
                || !step.actions.is_empty()
                || step.child.is_some()
                || !step.signals.is_empty()
                || step.all_of.is_some()
                || !step.timers.is_empty();
            if waits {
                self.fail(
                    outcome,
                    format!("final step `{step_name}` ends the procedure; it cannot also have a task, deadline, actions, child, signals or timers"),
                );
            }
            self.effects(&step.on_enter, name);
            return;
        }
        match (&step.deadline, &step.no_deadline) {
            (None, None) => self.fail(
                name,
                format!("step `{step_name}` waits but has no time limit: add [steps.{step_name}.deadline] with its legal basis, or `no_deadline = \"why there is none\"`"),
            ),
            (Some(_), Some(_)) => self.fail(name, format!("step `{step_name}` has both a deadline and `no_deadline`; keep one")),
            _ => {}
        }
        if let Some(task) = &step.task {
            self.role_ref(&task.role);
        }
        if let Some(deadline) = &step.deadline {
            self.deadline(name, deadline, step);
        }
        let leaves = !step.actions.is_empty()
            || step.child.is_some()
            || !step.signals.is_empty()
            || step.deadline.as_ref().is_some_and(|d| d.on_expiry.is_some());
        if !leaves {
            self.fail(name, format!("step `{step_name}` can never be left: give it an action, a child, a signal or a deadline `on_expiry`"));
        }
        for (action_name, action) in &step.actions {
            self.action(name, step, action_name, action);
        }
        if let Some(all_of) = &step.all_of {
            self.step_ref(&all_of.goto, &format!("`all_of` of step `{step_name}`"));
            for joined in &all_of.actions {
                match step.actions.get(joined.get_ref().as_str()) {
                    None => self.fail(
                        joined,
                        format!(
                            "`all_of` of step `{step_name}` names action `{}`, which the step does not define",
                            joined.get_ref()
                        ),
                    ),
                    Some(action) if action.goto.is_some() => self.fail(
                        joined,
                        format!(
                            "action `{}` is part of `all_of`, so it must not have its own `goto`",
                            joined.get_ref()
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
        if let Some(child) = &step.child {
            for value in child.input.values() {
                if value.get_ref().starts_with('$') {
                    self.field_ref(value);
                }
            }
            for next in child.on_outcome.values() {
                self.step_ref(next, &format!("the child outcome of step `{step_name}`"));
            }
        }
        for next in step.signals.values() {
            self.step_ref(next, &format!("a signal of step `{step_name}`"));
        }
        self.effects(&step.on_enter, name);
        for timer in &step.timers {
            match (&timer.before_deadline, &timer.every) {
                (Some(length), None) => {
                    self.length(&timer.name, length, "`before_deadline`");
                    if step.deadline.is_none() {
                        self.fail(
                            &timer.name,
                            format!(
                                "timer `{}` counts back from a deadline, but step `{step_name}` has none",
                                timer.name.get_ref()
                            ),
                        );
                    }
                }
                (None, Some(length)) => self.length(&timer.name, length, "`every`"),
                _ => self.fail(
                    &timer.name,
                    format!("timer `{}` needs exactly one of `before_deadline` or `every`", timer.name.get_ref()),
                ),
            }
            if let Some(length) = timer.before_deadline.as_ref().or(timer.every.as_ref()) {
                let what = format!("timer `{}`", timer.name.get_ref());
                self.limit(&timer.name, &what, &timer.limit, &timer.policy, length);
                if timer.limit.as_ref().is_some_and(|l| l.get_ref() == "statutory") {
                    self.stated(&timer.name, &what, length, &timer.basis);
                }
            }
            if let Some(basis) = &timer.basis {
                self.basis(basis);
            }
            self.effects(&timer.effects, &timer.name);
        }
    }

    /// The article a basis cites, when its source's text is at hand (see `regulations`).
    fn cited_article(&self, basis: &str) -> Option<Result<&'static regulations::Article, String>> {
        let (key, article) = basis.split_once(' ')?;
        let file = self.definition.procedure.sources.get(key)?.file.as_deref()?;
        Some(regulations::find(regulations::articles_of(file)?, article.trim()))
    }

    /// A statutory limit's number must stand in the article it cites.
    fn stated(&mut self, at: &Name, what: &str, length: &Length, basis: &Option<Name>) {
        let Some(basis) = basis else { return };
        let Some(Ok(article)) = self.cited_article(basis.get_ref()) else { return };
        for (unit, amount) in length.parts() {
            let (Amount::Fixed(n), name) = (amount, unit_name(unit)) else { continue };
            if !regulations::states(&article.body, name, *n) {
                self.fail(
                    at,
                    format!(
                        "{what} is statutory, but {} does not state {n} {}: make it `limit = \"policy\"` with the agency's rule, or cite the article that states it",
                        self.definition.basis_text(basis.get_ref()),
                        name.replace('_', " ")
                    ),
                );
            }
        }
    }

    /// A limit says what its number is: `statutory` (a fixed number its article states),
    /// `policy` (a fixed number of the agency's, with its reference) or `case` (a `$field`
    /// set in each case).
    fn limit(&mut self, at: &Name, what: &str, limit: &Option<Name>, policy: &Option<String>, length: &Length) {
        let fixed = length.parts().iter().all(|(_, amount)| matches!(amount, Amount::Fixed(_)));
        let Some(kind) = limit else {
            self.fail(
                at,
                format!(
                    "{what} does not say what its number is: add `limit = \"statutory\"` (the cited article states it), \
                     `limit = \"policy\"` with `policy = \"<the agency's rule>\"` (本单位规定), or `limit = \"case\"` (a `$field` set in each case)"
                ),
            );
            return;
        };
        let problem = match kind.get_ref().as_str() {
            "statutory" if !fixed => Some("a statutory limit is a number the article states; a `$field` amount is `case`"),
            "policy" if !fixed => Some("a policy limit is a fixed number of the agency's; a `$field` amount is `case`"),
            "policy" if policy.as_deref().is_none_or(|p| p.trim().is_empty()) => {
                Some("a policy limit names the agency's rule it comes from: add `policy = \"…\"`")
            }
            "case" if fixed => Some("a `case` limit takes its number from the case (`\"$field\"`); a fixed number is `statutory` or `policy`"),
            "statutory" | "case" if policy.is_some() => Some("only a `policy` limit takes `policy`"),
            "statutory" | "policy" | "case" => None,
            _ => {
                self.fail(kind, format!("`limit` must be {}, not `{}`", LIMIT_KINDS.join(", "), kind.get_ref()));
                return;
            }
        };
        if let Some(problem) = problem {
            self.fail(kind, format!("{what}: {problem}"));
        }
    }

    fn deadline(&mut self, name: &Name, deadline: &DeadlineSpec, step: &Step) {
        let step_name = name.get_ref();
        let what = format!("the deadline of step `{step_name}`");
        self.length(name, &deadline.length(), &what);
        self.limit(name, &what, &deadline.limit, &deadline.policy, &deadline.length());
        if deadline.limit.as_ref().is_some_and(|l| l.get_ref() == "statutory") {
            self.stated(name, &what, &deadline.length(), &deadline.basis);
        }
        let policy = deadline.limit.as_ref().is_some_and(|l| l.get_ref() == "policy");
        match &deadline.basis {
            Some(basis) => self.basis(basis),
            // An agency's own limit may rest on no article ("立即", "及时" give no number).
            None if policy => {}
            None => self.fail(
                name,
                format!("the deadline of step `{step_name}` has no legal basis: add `basis = \"<source> <article>\"` naming the article that sets the limit"),
            ),
        }
        if let Some(from) = &deadline.from {
            if from.get_ref().starts_with('$') {
                self.field_ref(from);
            } else if !DEADLINE_STARTS.contains(&from.get_ref().as_str()) {
                self.fail(
                    from,
                    format!(
                        "deadline `from` must be `entered`, `started` or a date `$field`, not `{}`",
                        from.get_ref()
                    ),
                );
            }
        }
        if let Some(until) = &deadline.until {
            if until.get_ref().starts_with('$') {
                self.field_ref(until);
            } else {
                self.fail(until, format!("deadline `until` must be a date `$field`, not `{}`", until.get_ref()));
            }
        }
        if let Some(plan) = &deadline.escalation {
            if !self.definition.procedure.escalations.contains_key(plan.get_ref().as_str()) {
                self.fail(
                    plan,
                    format!("unknown escalation plan `{}`; declare it under [escalations]", plan.get_ref()),
                );
            }
        }
        if let Some(next) = &deadline.on_expiry {
            self.step_ref(next, &format!("the deadline of step `{step_name}`"));
        }
        if !deadline.remind_working_days_before.is_empty() && deadline.working_days.is_none() && deadline.days.is_none()
        {
            self.fail(name, format!("step `{step_name}`: reminders in working days need a limit counted in days"));
        }
        if step.task.is_none()
            && (!deadline.remind_working_days_before.is_empty() || !deadline.remind_hours_before.is_empty())
        {
            self.fail(name, format!("step `{step_name}` has reminders but no task whose assignee would receive them"));
        }
    }

    fn action(&mut self, step_name: &Name, step: &Step, name: &Name, action: &Action) {
        self.role_ref(&action.role);
        for (field_name, field) in &action.fields {
            self.field(field_name, field);
        }
        if let Some(next) = &action.goto {
            self.step_ref(next, &format!("action `{}`", name.get_ref()));
        }
        if let Some(clock) = &action.clock {
            if !CLOCK_ACTIONS.contains(&clock.get_ref().as_str()) {
                self.fail(clock, format!("`clock` must be `pause` or `resume`, not `{}`", clock.get_ref()));
            } else if step.deadline.is_none() {
                self.fail(
                    clock,
                    format!(
                        "action `{}` stops or restarts a clock, but step `{}` has no deadline",
                        name.get_ref(),
                        step_name.get_ref()
                    ),
                );
            } else if action.goto.is_some() {
                self.fail(
                    clock,
                    format!(
                        "action `{}` moves to another step, so it cannot also stop or restart this step's clock",
                        name.get_ref()
                    ),
                );
            }
        }
        if let Some(term) = &action.term {
            self.field_ref(&term.from);
            if let Some(until) = &term.until {
                self.field_ref(until);
            }
            match &term.length {
                Some(length) => self.length(name, length, &format!("the term of action `{}`", name.get_ref())),
                None if term.until.is_none() => self.fail(
                    name,
                    format!("the term of action `{}` needs `until` (an agreed last day) or a `length`", name.get_ref()),
                ),
                None => {}
            }
            if !action.fields.contains_key(term.reason.get_ref().as_str()) {
                self.fail(
                    &term.reason,
                    format!(
                        "the term's reason field `{}` is not a field of action `{}`",
                        term.reason.get_ref(),
                        name.get_ref()
                    ),
                );
            }
            if let Some(basis) = &term.basis {
                self.basis(basis);
            }
        }
        if let Some(extend) = &action.extend {
            let what = format!("the extension of action `{}`", name.get_ref());
            self.length(name, &extend.length(), &what);
            self.limit(name, &what, &extend.limit, &extend.policy, &extend.length());
            if extend.limit.as_ref().is_some_and(|l| l.get_ref() == "statutory") {
                self.stated(name, &what, &extend.length(), &extend.basis);
            }
            match &extend.basis {
                Some(basis) => self.basis(basis),
                None => self.fail(name, format!("the extension of action `{}` has no legal basis", name.get_ref())),
            }
            if step.deadline.is_none() {
                self.fail(
                    name,
                    format!(
                        "action `{}` extends a limit, but step `{}` has no deadline",
                        name.get_ref(),
                        step_name.get_ref()
                    ),
                );
            }
        }
        self.effects(&action.effects, name);
    }

    /// Every step must be reachable from the initial step.
    fn reachability(&mut self) {
        let p = &self.definition.procedure;
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut queue: VecDeque<&str> = VecDeque::from([p.initial.get_ref().as_str()]);
        while let Some(name) = queue.pop_front() {
            let Some(step) = p.steps.get(name) else {
                continue;
            };
            if !seen.insert(name) {
                continue;
            }
            queue.extend(successors(step));
        }
        for name in p.steps.keys() {
            if !seen.contains(name.get_ref().as_str()) {
                self.fail(
                    name,
                    format!(
                        "step `{}` cannot be reached from the initial step `{}`",
                        name.get_ref(),
                        p.initial.get_ref()
                    ),
                );
            }
        }
    }
}

/// The steps a step can lead to, by any kind of transition.
pub(super) fn successors(step: &Step) -> Vec<&str> {
    let mut next: Vec<&str> =
        step.actions.values().filter_map(|a| a.goto.as_ref()).map(|n| n.get_ref().as_str()).collect();
    next.extend(step.deadline.as_ref().and_then(|d| d.on_expiry.as_ref()).map(|n| n.get_ref().as_str()));
    next.extend(step.all_of.as_ref().map(|a| a.goto.get_ref().as_str()));
    next.extend(step.child.iter().flat_map(|c| c.on_outcome.values()).map(|n| n.get_ref().as_str()));
    next.extend(step.signals.values().map(|n| n.get_ref().as_str()));
    next
}

pub(super) fn check_set(definitions: &[&Definition]) -> Vec<DefinitionError> {
    let mut errors = Vec::new();
    let mut seen: BTreeSet<(&str, &str)> = BTreeSet::new();
    for d in definitions {
        if !seen.insert((d.id(), d.jurisdiction())) {
            errors.push(d.error(
                d.procedure.id.span(),
                format!("procedure `{}` for jurisdiction `{}` is defined more than once", d.id(), d.jurisdiction()),
            ));
        }
    }
    for d in definitions {
        for (step_name, step) in &d.procedure.steps {
            let Some(child) = &step.child else { continue };
            let wanted = child.procedure.get_ref();
            let Some(found) = definitions.iter().find(|c| c.id() == wanted && c.jurisdiction() == d.jurisdiction())
            else {
                errors.push(d.error(
                    child.procedure.span(),
                    format!(
                        "step `{}` starts child procedure `{wanted}`, which is not defined for jurisdiction `{}`",
                        step_name.get_ref(),
                        d.jurisdiction()
                    ),
                ));
                continue;
            };
            let outcomes: BTreeSet<&str> = found
                .procedure
                .steps
                .values()
                .filter_map(|s| s.outcome.as_ref())
                .map(|o| o.get_ref().as_str())
                .collect();
            for outcome in &outcomes {
                if !child.on_outcome.contains_key(*outcome) {
                    errors.push(d.error(
                        step_name.span(),
                        format!("child `{wanted}` can end with `{outcome}`, but step `{}` does not say where that leads (on_outcome)", step_name.get_ref()),
                    ));
                }
            }
            for handled in child.on_outcome.keys() {
                if !outcomes.contains(handled.get_ref().as_str()) {
                    errors.push(d.error(
                        handled.span(),
                        format!("child `{wanted}` never ends with outcome `{}`", handled.get_ref()),
                    ));
                }
            }
        }
    }
    errors
}

/// A unit as the definition language spells it.
fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::WorkingDays => "working_days",
        Unit::Days => "days",
        Unit::Months => "months",
        Unit::Years => "years",
        Unit::Hours => "hours",
    }
}
