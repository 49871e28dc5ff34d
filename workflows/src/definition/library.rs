//! The built-in procedure library (workflows/procedures/), embedded in the binary, and a
//! lookup of definitions by procedure and jurisdiction.

use super::{check_set, Definition, DefinitionError};

macro_rules! built_in {
    ($($file:literal),* $(,)?) => {
        /// Every file of workflows/procedures/, by name. A test checks this list against the folder.
        pub const BUILT_IN: &[(&str, &str)] = &[$(($file, include_str!(concat!("../../procedures/", $file)))),*];
    };
}

built_in!(
    "access_suspension.wuzhong.toml",
    "annual_evaluation.jinzhou.toml",
    "annual_evaluation.taian.toml",
    "annual_work_report.taian.toml",
    "authority_correction.wuzhong.toml",
    "authorized_operation.jinzhou.toml",
    "authorized_operation.taian.toml",
    "backflow.wuzhong.toml",
    "catalogue_update.wuzhong.toml",
    "complaint.tianjin.toml",
    "conditional_open.tianjin.toml",
    "conditional_open.wuzhong.toml",
    "correction_order.tianjin.toml",
    "correction_order.wuzhong.toml",
    "data_correction.wuzhong.toml",
    "half_yearly_summary.taian.toml",
    "incident_report.jinzhou.toml",
    "incident_report.taian.toml",
    "incident_report.tianjin.toml",
    "incident_report.wuzhong.toml",
    "misuse_measures.jinzhou.toml",
    "open_data_objection.tianjin.toml",
    "quality_feedback.jinzhou.toml",
    "rectification.jinzhou.toml",
    "rectification.taian.toml",
    "rectification_order.tianjin.toml",
    "registration.taian.toml",
    "risk_suspension.wuzhong.toml",
    "scenario_demand.jinzhou.toml",
    "scenario_demand.taian.toml",
    "sharing.wuzhong.toml",
    "verification_request.wuzhong.toml",
    "withdrawal.wuzhong.toml",
);

/// A set of validated definitions that refer to each other consistently.
#[derive(Clone, Debug, Default)]
pub struct Library {
    definitions: Vec<Definition>,
}

impl Library {
    /// Loads and checks a set of definition files (name, text) together.
    pub fn load<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Library, Vec<DefinitionError>> {
        let mut definitions = Vec::new();
        let mut errors = Vec::new();
        for (file, text) in files {
            match Definition::load(text, file) {
                Ok(definition) => definitions.push(definition),
                Err(mut found) => errors.append(&mut found),
            }
        }
        errors.extend(check_set(&definitions.iter().collect::<Vec<_>>()));
        if errors.is_empty() {
            Ok(Library { definitions })
        } else {
            Err(errors)
        }
    }

    /// The embedded library. Its validity is guaranteed by the test suite.
    pub fn built_in() -> Library {
        Library::load(BUILT_IN.iter().copied()).unwrap_or_else(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("the built-in procedure library is invalid:\n{}", lines.join("\n"))
        })
    }

    pub fn get(&self, procedure: &str, jurisdiction: &str) -> Option<&Definition> {
        self.definitions.iter().find(|d| d.id() == procedure && d.jurisdiction() == jurisdiction)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Definition> {
        self.definitions.iter()
    }
}
