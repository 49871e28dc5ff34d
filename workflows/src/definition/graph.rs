//! The Mermaid state diagram of a definition (`statflow definitions graph`).

use super::model::Amount;
use super::Definition;

fn quote(text: &str) -> String {
    text.replace('"', "'").replace(':', "：")
}

/// A `stateDiagram-v2` of the definition as of `on`: each step with its title and limit
/// (the article, or 本单位规定 for the agency's own), each transition labelled with what
/// causes it, and a note when a source is not in force on `on`.
pub fn mermaid(definition: &Definition, on: chrono::NaiveDate) -> String {
    let p = &definition.procedure;
    let mut out = format!(
        "---\ntitle: {} ({}, {})\n---\nstateDiagram-v2\n",
        quote(&p.title),
        p.id.get_ref(),
        p.jurisdiction.get_ref()
    );
    out.push_str(&format!("    [*] --> {}\n", p.initial.get_ref()));
    for notice in definition.source_notices(on) {
        out.push_str(&format!("    note left of {} : {}\n", p.initial.get_ref(), quote(&notice)));
    }
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
            let basis = match &deadline.policy {
                Some(_) => "本单位规定".to_owned(),
                None => deadline.basis.as_ref().map(|b| quote(b.get_ref())).unwrap_or_default(),
            };
            label.push_str(&format!(" [{}; {}]", limit.join(""), basis));
        }
        out.push_str(&format!("    {}: {}\n", name.get_ref(), label));
    }
    for t in definition.transitions() {
        out.push_str(&format!("    {} --> {}: {}\n", t.from, t.to, quote(&t.trigger.to_string())));
    }
    for (name, step) in &p.steps {
        if step.is_final() {
            out.push_str(&format!("    {} --> [*]\n", name.get_ref()));
        }
    }
    out
}
