//! Procedure definitions: the model, loading with file:line errors, validation, the Mermaid
//! diagram, and the built-in library of statutory procedures.
//!
//! A definition is one TOML file describing one procedure for one jurisdiction (see
//! docs/definitions.md). Its version is the hash of its text, so a running instance can keep
//! the exact version it started with.

mod graph;
mod library;
pub mod model;
pub mod regulations;
pub mod traceability;
mod transitions;
mod validate;

use std::fmt;
use std::ops::Range;

use sha2::{Digest, Sha256};

pub use graph::mermaid;
pub use library::{Library, BUILT_IN};
pub use model::{Name, Procedure, Step};
pub use transitions::{Transition, Trigger};

/// A loaded and validated definition.
#[derive(Clone, Debug)]
pub struct Definition {
    pub procedure: Procedure,
    /// The file it came from, as given to [`Definition::load`].
    pub file: String,
    /// `sha256:` and the first 16 hex digits of the hash of the file's text.
    pub version: String,
    /// Byte offset where each line starts, for turning spans into line numbers.
    line_starts: Vec<usize>,
}

/// What is wrong with a definition, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefinitionError {
    pub file: String,
    /// 1-based; 0 when the problem has no single place.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

impl std::error::Error for DefinitionError {}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect()
}

fn line_at(starts: &[usize], offset: usize) -> usize {
    starts.partition_point(|&s| s <= offset)
}

/// The version of a definition text.
pub fn version_of(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl Definition {
    /// Who holds each role in an instance: `(role, organization)` for every role whose
    /// organization field `field` names (the start input, or an instance's data). This is
    /// the one rule for an instance's scope: it involves exactly these organizations, and a
    /// principal acts in the roles its organizations hold.
    pub fn role_holders<'v>(&self, field: impl Fn(&str) -> Option<&'v serde_json::Value>) -> Vec<(String, String)> {
        self.procedure
            .roles
            .iter()
            .filter_map(|(name, role)| {
                let organization = field(role.organization.as_ref()?.get_ref())?.as_str()?;
                Some((name.get_ref().clone(), organization.to_owned()))
            })
            .collect()
    }

    /// The organizations an instance involves (sorted, each once); see [`Self::role_holders`].
    pub fn organizations_involved<'v>(&self, field: impl Fn(&str) -> Option<&'v serde_json::Value>) -> Vec<String> {
        let mut organizations: Vec<String> = self.role_holders(field).into_iter().map(|(_, org)| org).collect();
        organizations.sort();
        organizations.dedup();
        organizations
    }
}

impl Definition {
    /// Parses and validates one definition. Every problem found is returned, each with its
    /// file and line.
    pub fn load(text: &str, file: &str) -> Result<Definition, Vec<DefinitionError>> {
        let starts = line_starts(text);
        let procedure: Procedure = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |span| line_at(&starts, span.start));
            // toml's message repeats the excerpt of the file; the first line is the gist.
            let message = e.message().lines().next().unwrap_or("not valid TOML").to_owned();
            vec![DefinitionError { file: file.to_owned(), line, message }]
        })?;
        let definition =
            Definition { procedure, file: file.to_owned(), version: version_of(text), line_starts: starts };
        let errors = validate::check(&definition);
        if errors.is_empty() {
            Ok(definition)
        } else {
            Err(errors)
        }
    }

    pub fn id(&self) -> &str {
        self.procedure.id.get_ref()
    }

    pub fn jurisdiction(&self) -> &str {
        self.procedure.jurisdiction.get_ref()
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.procedure.steps.get(name)
    }

    /// The steps `step` can lead to, by any kind of transition (none for an unknown step).
    pub fn successors(&self, step: &str) -> Vec<&str> {
        self.step(step).map(validate::successors).unwrap_or_default()
    }

    /// The steps in the order a reader follows them: from the initial step, breadth first
    /// along every transition; steps reached no other way come last, by name.
    pub fn steps_in_order(&self) -> Vec<&str> {
        let mut order: Vec<&str> = vec![self.procedure.initial.get_ref().as_str()];
        let mut next = 0;
        while next < order.len() {
            for successor in self.successors(order[next]) {
                if !order.contains(&successor) && self.step(successor).is_some() {
                    order.push(successor);
                }
            }
            next += 1;
        }
        for name in self.procedure.steps.keys() {
            if !order.contains(&name.get_ref().as_str()) {
                order.push(name.get_ref().as_str());
            }
        }
        order
    }

    /// The 1-based line of a span in the file.
    pub fn line(&self, span: Range<usize>) -> usize {
        line_at(&self.line_starts, span.start)
    }

    pub(crate) fn error(&self, span: Range<usize>, message: String) -> DefinitionError {
        DefinitionError { file: self.file.clone(), line: self.line(span), message }
    }

    /// A source's standing: from the kept text's index, or as the definition declares it.
    pub fn standing(&self, key: &str) -> Option<regulations::Standing> {
        let source = self.procedure.sources.get(key)?;
        if let Some(kept) = source.file.as_deref().and_then(regulations::standing) {
            return Some(kept.clone());
        }
        let date = |d: &Option<toml::value::Datetime>| {
            d.as_ref().and_then(|d| chrono::NaiveDate::parse_from_str(&d.to_string(), "%Y-%m-%d").ok())
        };
        Some(regulations::Standing {
            title: source.title.clone(),
            status: source.status.as_ref()?.get_ref().clone(),
            in_force_from: date(&source.in_force_from),
            in_force_until: date(&source.in_force_until),
            period_basis: String::new(),
        })
    }

    /// What to tell readers of an instance started on `on` about sources not in force then.
    pub fn source_notices(&self, on: chrono::NaiveDate) -> Vec<String> {
        self.procedure
            .sources
            .iter()
            .filter_map(|(key, source)| self.standing(key.get_ref())?.notice(&source.title, on))
            .collect()
    }

    /// The legal basis `"source article"` spelled out with the source's title; a policy
    /// limit's basis (see [`model::POLICY_PREFIX`]) as 本单位规定 with the agency's reference
    /// and the article creating the duty.
    pub fn basis_text(&self, basis: &str) -> String {
        if let Some(policy) = basis.strip_prefix(model::POLICY_PREFIX) {
            return match policy.split_once('|') {
                Some((reference, duty)) => format!("本单位规定({reference});义务依据{}", self.basis_text(duty)),
                None => format!("本单位规定({policy})"),
            };
        }
        match basis.split_once(' ') {
            Some((key, article)) => match self.procedure.sources.get(key) {
                Some(source) => format!("《{}》{}", source.title, article.trim()),
                None => basis.to_owned(),
            },
            None => basis.to_owned(),
        }
    }
}

/// Checks a set of definitions together: child procedures exist for the parent's
/// jurisdiction and end with outcomes the parent handles; no procedure is defined twice.
pub fn check_set(definitions: &[&Definition]) -> Vec<DefinitionError> {
    validate::check_set(definitions)
}

#[cfg(test)]
mod tests;
