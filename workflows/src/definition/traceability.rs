//! The traceability matrix (`statflow definitions basis`): for each source, every article the
//! library encodes (which procedure, which element, what limit and whether it is statutory,
//! policy or set per case), and every article nothing encodes, with the reason. It is built
//! from the loaded definitions, so it cannot disagree with what runs.

use std::collections::BTreeMap;

use super::model::{Amount, Effect, Length};
use super::regulations;
use super::Definition;

/// Why articles are not encoded, by kept text then article (`regulations/uncovered.toml`).
pub fn uncovered() -> &'static BTreeMap<String, BTreeMap<String, String>> {
    static REASONS: std::sync::OnceLock<BTreeMap<String, BTreeMap<String, String>>> = std::sync::OnceLock::new();
    REASONS.get_or_init(|| {
        toml::from_str(include_str!("../../regulations/uncovered.toml")).expect("regulations/uncovered.toml is valid")
    })
}

/// What a reason code means.
fn reason_text(reason: &str) -> String {
    let text = match reason {
        "purpose" => "立法目的 — no procedure",
        "scope" => "适用范围 — no procedure",
        "definitions" => "用语含义 — no procedure",
        "principles" => "原则 — no procedure",
        "duties" => "standing responsibilities, with no step, limit or decision to track",
        "technical" => "technical or security requirements, checked by audits rather than a procedure",
        "encouraged" => "鼓励 — no obligation",
        "final" => "解释、施行、衔接 — no procedure",
        other => {
            return other
                .strip_prefix("gap: ")
                .map_or_else(|| other.to_owned(), |gap| format!("**not yet encoded**: {gap}"))
        }
    };
    text.to_owned()
}

/// One place the library encodes an article.
struct Row {
    procedure: String,
    element: String,
    obligation: String,
    limit: String,
}

/// The article part of a citation as the text heads it: `第九条` of `第九条第(二)项`, with
/// the chapter where one is named (`第四十六条(第七章)`).
fn article_key(article: &str) -> String {
    match article.find('条') {
        Some(end) => {
            let head = &article[..end + '条'.len_utf8()];
            let rest = &article[end + '条'.len_utf8()..];
            match rest.strip_prefix('(').and_then(|r| r.split_once(')')).filter(|(inside, _)| inside.ends_with('章')) {
                Some((chapter, _)) => format!("{head}({chapter})"),
                None => head.to_owned(),
            }
        }
        None => article.to_owned(),
    }
}

fn length_text(length: &Length) -> String {
    length
        .parts()
        .into_iter()
        .map(|(unit, amount)| match amount {
            Amount::Fixed(n) => unit.period(*n).to_string(),
            Amount::Field(field) => format!("{field} ({unit:?})"),
        })
        .collect::<Vec<_>>()
        .join("")
}

fn limit_text(length: &Length, limit: &Option<super::Name>, policy: &Option<String>) -> String {
    let kind = limit.as_ref().map(|l| l.get_ref().as_str()).unwrap_or("unclassified");
    match policy {
        Some(policy) => format!("{} — {kind}: {policy}", length_text(length)),
        None => format!("{} — {kind}", length_text(length)),
    }
}

fn effect_text(effect: &Effect) -> String {
    let value = |v: &Option<super::Name>| v.as_ref().map(|n| n.get_ref().clone()).unwrap_or_default();
    if let Some(to) = &effect.notify {
        format!("notify {}", to.get_ref())
    } else if let Some(to) = &effect.escalate {
        format!("escalate to {}", to.get_ref())
    } else if let Some(kind) = &effect.issue_certificate {
        format!("issue {kind}")
    } else if let Some(status) = &effect.set_status {
        format!("set status {status}")
    } else if let Some(change) = &effect.access {
        format!("{} access of {}", change.get_ref(), value(&effect.subject))
    } else if let Some(kind) = &effect.report {
        format!("write report {kind}")
    } else if let Some(signal) = &effect.signal {
        format!("signal {} to {}", signal.get_ref(), value(&effect.target))
    } else {
        "effect".into()
    }
}

/// Every (source key, article as cited, row) of a definition.
fn citations(definition: &Definition) -> Vec<(String, String, Row)> {
    let procedure = format!("{}/{}", definition.id(), definition.jurisdiction());
    let mut out = Vec::new();
    let mut cite = |basis: &Option<super::Name>, element: String, obligation: String, limit: String| {
        if let Some((key, article)) = basis.as_ref().and_then(|b| b.get_ref().split_once(' ')) {
            let row = Row { procedure: procedure.clone(), element, obligation, limit };
            out.push((key.to_owned(), article.trim().to_owned(), row));
        }
    };
    for (name, step) in &definition.procedure.steps {
        let name = name.get_ref();
        cite(&step.basis, format!("step `{name}`"), step.title.clone(), String::new());
        if let Some(deadline) = &step.deadline {
            let what = if deadline.on_expiry.is_some() { "period" } else { "time limit" };
            let limit = limit_text(&deadline.length(), &deadline.limit, &deadline.policy);
            cite(&deadline.basis, format!("step `{name}` {what}"), step.title.clone(), limit);
        }
        for (action_name, action) in &step.actions {
            if let Some(extend) = &action.extend {
                let limit = limit_text(&extend.length(), &extend.limit, &extend.policy);
                let title = if action.title.is_empty() { action_name.get_ref().clone() } else { action.title.clone() };
                cite(&extend.basis, format!("action `{}` extension", action_name.get_ref()), title, limit);
            }
            for effect in &action.effects {
                cite(&effect.basis, format!("action `{}`", action_name.get_ref()), effect_text(effect), String::new());
            }
        }
        for effect in &step.on_enter {
            cite(&effect.basis, format!("entering `{name}`"), effect_text(effect), String::new());
        }
        for timer in &step.timers {
            let length = timer.every.as_ref().or(timer.before_deadline.as_ref()).cloned().unwrap_or_default();
            let limit = limit_text(&length, &timer.limit, &timer.policy);
            cite(&timer.basis, format!("timer `{}`", timer.name.get_ref()), step.title.clone(), limit);
            for effect in &timer.effects {
                cite(&effect.basis, format!("timer `{}`", timer.name.get_ref()), effect_text(effect), String::new());
            }
        }
    }
    out
}

/// A source as the matrix groups by: the kept file when there is one, else its title.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SourceId {
    title: String,
    file: Option<String>,
}

/// The Markdown matrix of `definitions` (those of `jurisdiction`, if given), with each
/// source's standing and period (not today's notice: the matrix is the same whenever it is
/// made, so a stale copy shows).
pub fn matrix(definitions: &[&Definition], jurisdiction: Option<&str>) -> String {
    let selected: Vec<&&Definition> =
        definitions.iter().filter(|d| jurisdiction.is_none_or(|j| d.jurisdiction() == j)).collect();
    // Source → article → rows, and each source's standing line.
    let mut encoded: BTreeMap<SourceId, BTreeMap<String, Vec<(String, Row)>>> = BTreeMap::new();
    let mut standing: BTreeMap<SourceId, String> = BTreeMap::new();
    let mut policies: Vec<(String, String, String)> = Vec::new();
    for definition in &selected {
        for (key, source) in &definition.procedure.sources {
            let id = SourceId { title: source.title.clone(), file: source.file.clone() };
            let line = match definition.standing(key.get_ref()) {
                Some(s) => {
                    let period = match (s.in_force_from, s.in_force_until) {
                        (Some(from), Some(until)) => format!(", {from} – {until}"),
                        (Some(from), None) => format!(", from {from}"),
                        _ => String::new(),
                    };
                    let basis =
                        if s.period_basis.is_empty() { String::new() } else { format!(" ({})", s.period_basis) };
                    format!("{}{period}{basis}", s.status)
                }
                None => "standing not declared".into(),
            };
            standing.insert(id.clone(), line);
            encoded.entry(id).or_default();
        }
        for (key, article, row) in citations(definition) {
            let Some(source) = definition.procedure.sources.get(key.as_str()) else { continue };
            let id = SourceId { title: source.title.clone(), file: source.file.clone() };
            encoded.entry(id).or_default().entry(article_key(&article)).or_default().push((article, row));
        }
        for (name, step) in &definition.procedure.steps {
            if let Some(deadline) = step.deadline.as_ref().filter(|d| d.policy.is_some()) {
                policies.push((
                    format!("{}/{}", definition.id(), definition.jurisdiction()),
                    format!("step `{}` ({})", name.get_ref(), step.title),
                    limit_text(&deadline.length(), &deadline.limit, &deadline.policy),
                ));
            }
        }
    }
    let mut out = String::from(
        "# Legal basis of the procedure library\n\n\
         Generated by `statflow definitions basis` from the loaded definitions; do not edit by hand.\n\
         Limits are *statutory* (the number stands in the cited article; the validator checks the text),\n\
         *policy* (the deploying agency's own rule, shown as 本单位规定) or *case* (set in each case,\n\
         as the article has the authority do).\n",
    );
    for (id, articles) in &encoded {
        out.push_str(&format!("\n## 《{}》\n\n", id.title));
        out.push_str(&format!("Standing: {}", standing.get(id).map(String::as_str).unwrap_or("")));
        if let Some(file) = &id.file {
            out.push_str(&format!(" · text: `workflows/regulations/{file}`"));
        }
        out.push_str("\n\n| article | obligation | encoded in | limit |\n|---|---|---|---|\n");
        let text_order: Vec<String> =
            id.file.as_deref().and_then(regulations::articles_of).map(keys_in_order).unwrap_or_default();
        let mut keys: Vec<&String> = articles.keys().collect();
        keys.sort_by_key(|k| (text_order.iter().position(|t| t == *k).unwrap_or(usize::MAX), (*k).clone()));
        for key in keys {
            for (article, row) in &articles[key] {
                out.push_str(&format!(
                    "| {} | {} | {} · {} | {} |\n",
                    article,
                    cell(&row.obligation),
                    row.procedure,
                    row.element,
                    cell(&row.limit)
                ));
            }
        }
        if let Some(file) = &id.file {
            let reasons = uncovered().get(file);
            let missing: Vec<&String> = text_order.iter().filter(|k| !articles.contains_key(*k)).collect();
            if !missing.is_empty() {
                out.push_str("\nArticles nothing encodes:\n\n| article | why |\n|---|---|\n");
                for key in missing {
                    let reason = reasons
                        .and_then(|r| r.get(key))
                        .map_or_else(|| "(no reason recorded)".into(), |r| reason_text(r));
                    out.push_str(&format!("| {key} | {} |\n", cell(&reason)));
                }
            }
        }
    }
    if !policies.is_empty() {
        out.push_str("\n## Agency policy limits (本单位规定)\n\n| procedure | step | limit |\n|---|---|---|\n");
        for (procedure, step, limit) in policies {
            out.push_str(&format!("| {procedure} | {} | {} |\n", cell(&step), cell(&limit)));
        }
    }
    out
}

/// The article keys of a text in order, with the chapter where two share a number.
pub fn keys_in_order(articles: &[regulations::Article]) -> Vec<String> {
    articles
        .iter()
        .map(|a| {
            let shared = articles.iter().filter(|b| b.heading == a.heading).count() > 1;
            match (&a.chapter, shared) {
                (Some(chapter), true) => format!("{}({chapter})", a.heading),
                _ => a.heading.clone(),
            }
        })
        .collect()
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::Library;

    #[test]
    fn every_article_of_every_cited_text_is_encoded_or_says_why_not() {
        let library = Library::built_in();
        let definitions: Vec<&Definition> = library.iter().collect();
        let mut problems = Vec::new();
        for (file, _) in regulations::TEXTS {
            let keys = keys_in_order(regulations::articles_of(file).unwrap());
            let encoded: Vec<String> = definitions
                .iter()
                .flat_map(|d| {
                    citations(d).into_iter().filter_map(|(key, article, _)| {
                        (d.procedure.sources.get(key.as_str())?.file.as_deref() == Some(*file))
                            .then(|| article_key(&article))
                    })
                })
                .collect();
            let reasons = uncovered().get(*file).cloned().unwrap_or_default();
            for key in &keys {
                match (encoded.contains(key), reasons.get(key)) {
                    (false, None) => {
                        problems.push(format!("{file} {key}: neither encoded nor listed in uncovered.toml"))
                    }
                    (true, Some(_)) => {
                        problems.push(format!("{file} {key}: encoded, yet uncovered.toml gives a reason"))
                    }
                    _ => {}
                }
            }
            for key in reasons.keys().filter(|k| !keys.contains(k)) {
                problems.push(format!("{file} {key}: uncovered.toml names an article the text does not have"));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn the_matrix_shows_limits_with_their_kind_and_the_gaps() {
        let library = Library::built_in();
        let definitions: Vec<&Definition> = library.iter().collect();
        let taian = matrix(&definitions, Some("taian"));
        assert!(taian.contains("| 第九条第(二)项 | 登记受理 | registration/taian · step `acceptance` time limit | 3 working days — statutory |"), "{taian}");
        assert!(!taian.contains("tianjin"), "only Tai'an's procedures");
        assert!(
            taian.contains("| 第三十条 | 启动应急预案,采取应急处置措施 | incident_report/taian · step `response` |"),
            "{taian}"
        );
        let all = matrix(&definitions, None);
        assert!(all.contains("| incident_report/tianjin | step `acknowledgement`"), "{all}");
        assert_eq!(reason_text("gap: a duty"), "**not yet encoded**: a duty");
        assert!(all.contains("| 第一条 | 立法目的 — no procedure |"), "{all}");
        assert!(all.contains("Standing: expired, 2022-08-01 – 2024-07-31"), "{all}");
        assert!(all.contains("Standing: draft"), "{all}");
    }
}
