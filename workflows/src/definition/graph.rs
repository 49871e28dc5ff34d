//! The Mermaid state diagram of a definition (`statflow definitions graph`).

use super::model::Amount;
use super::Definition;

fn quote(text: &str) -> String {
    text.replace('"', "'").replace(':', "：")
}

/// A `stateDiagram-v2` of the definition: each step with its title and limit, each
/// transition labelled with what causes it.
pub fn mermaid(definition: &Definition) -> String {
    let p = &definition.procedure;
    let mut out = format!(
        "---\ntitle: {} ({}, {})\n---\nstateDiagram-v2\n",
        quote(&p.title),
        p.id.get_ref(),
        p.jurisdiction.get_ref()
    );
    out.push_str(&format!("    [*] --> {}\n", p.initial.get_ref()));
    for (name, step) in &p.steps {
        let mut label = quote(&step.title);
        if let Some(deadline) = &step.deadline {
            let limit: Vec<String> = deadline
                .length()
                .parts()
                .into_iter()
                .map(|(unit, amount)| match amount {
                    Amount::Fixed(n) => unit.period(*n).to_string(),
                    Amount::Field(field) => format!("{field} {unit:?}"),
                })
                .collect();
            let basis = deadline
                .basis
                .as_ref()
                .map(|b| quote(b.get_ref()))
                .unwrap_or_default();
            label.push_str(&format!(" [{}; {}]", limit.join(""), basis));
        }
        out.push_str(&format!("    {}: {}\n", name.get_ref(), label));
    }
    for (name, step) in &p.steps {
        let from = name.get_ref();
        for (action, spec) in &step.actions {
            if let Some(next) = &spec.goto {
                out.push_str(&format!(
                    "    {from} --> {}: {}\n",
                    next.get_ref(),
                    action.get_ref()
                ));
            }
        }
        if let Some(all_of) = &step.all_of {
            let names: Vec<&str> = all_of
                .actions
                .iter()
                .map(|a| a.get_ref().as_str())
                .collect();
            out.push_str(&format!(
                "    {from} --> {}: all of {}\n",
                all_of.goto.get_ref(),
                names.join(" + ")
            ));
        }
        if let Some(next) = step.deadline.as_ref().and_then(|d| d.on_expiry.as_ref()) {
            out.push_str(&format!(
                "    {from} --> {}: deadline passes\n",
                next.get_ref()
            ));
        }
        if let Some(child) = &step.child {
            for (outcome, next) in &child.on_outcome {
                out.push_str(&format!(
                    "    {from} --> {}: {} {}\n",
                    next.get_ref(),
                    child.procedure.get_ref(),
                    outcome.get_ref()
                ));
            }
        }
        for (signal, next) in &step.signals {
            out.push_str(&format!(
                "    {from} --> {}: signal {}\n",
                next.get_ref(),
                signal.get_ref()
            ));
        }
        if step.is_final() {
            out.push_str(&format!("    {from} --> [*]\n"));
        }
    }
    out
}
