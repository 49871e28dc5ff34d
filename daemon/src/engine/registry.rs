//! The definition versions instances run on, and the version new instances of each
//! procedure start on. Every engine shares it: versions are stored (the built-in library's
//! at start, loaded ones with the choice of them), and an instance keeps the version it
//! started with.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use statflow_workflows::definition::{check_set, Definition, DefinitionError, Library, BUILT_IN};

use super::EngineError;
use crate::store::records::DefinitionRecord;
use crate::store::transition::Resolver;
use crate::store::{Store, StoreError};

pub struct Definitions {
    /// Every version instances may run on, by version.
    versions: Arc<RwLock<HashMap<String, Arc<Definition>>>>,
    /// The version new instances of (procedure, jurisdiction) start on.
    current: RwLock<HashMap<(String, String), String>>,
}

/// Every stored version, and the version each procedure's new instances start on.
type Stored = (HashMap<String, Arc<Definition>>, HashMap<(String, String), String>);

/// `known` versions are taken as they are (a version never changes once stored).
async fn stored(store: &Store, known: &HashMap<String, Arc<Definition>>) -> Result<Stored, StoreError> {
    let mut versions = HashMap::new();
    for row in store.definitions().await? {
        if let Some(definition) = known.get(&row.version) {
            versions.insert(row.version.clone(), definition.clone());
            continue;
        }
        let definition = Definition::load(&row.source, &row.file).map_err(|errors| {
            StoreError::Corrupt(format!("stored definition {} no longer loads: {}", row.version, errors[0]))
        })?;
        versions.insert(row.version.clone(), Arc::new(definition));
    }
    // Built-in versions are current unless an administrator chose another by loading it.
    let mut current: HashMap<(String, String), String> = Library::built_in()
        .iter()
        .map(|d| ((d.id().to_owned(), d.jurisdiction().to_owned()), d.version.clone()))
        .collect();
    for (procedure, jurisdiction, version) in store.current_versions().await? {
        if versions.contains_key(&version) {
            current.insert((procedure, jurisdiction), version);
        }
    }
    Ok((versions, current))
}

fn record(definition: &Definition, source: &str) -> DefinitionRecord {
    DefinitionRecord {
        version: definition.version.clone(),
        procedure: definition.id().to_owned(),
        jurisdiction: definition.jurisdiction().to_owned(),
        file: definition.file.clone(),
        source: source.to_owned(),
    }
}

impl Definitions {
    /// Stores the built-in library's versions, then reads every stored version and the
    /// versions administrators made current.
    pub async fn load(store: &Store, now: i64) -> Result<Definitions, StoreError> {
        for definition in Library::built_in().iter() {
            let source = BUILT_IN
                .iter()
                .find(|(file, _)| *file == definition.file)
                .map(|(_, text)| *text)
                .expect("built-in definitions come from BUILT_IN");
            store.save_definition(&record(definition, source), now).await?;
        }
        let (versions, current) = stored(store, &HashMap::new()).await?;
        Ok(Definitions { versions: Arc::new(RwLock::new(versions)), current: RwLock::new(current) })
    }

    /// Reads again the stored versions and current choices (another process may have loaded
    /// a version). Returns whether anything was new.
    pub async fn refresh(&self, store: &Store) -> Result<bool, StoreError> {
        let known = self.versions.read().expect("not poisoned").clone();
        let (versions, current) = stored(store, &known).await?;
        let new_versions = versions.len() != self.versions.read().expect("not poisoned").len();
        let new_choices = current != *self.current.read().expect("not poisoned");
        if new_versions {
            *self.versions.write().expect("not poisoned") = versions;
        }
        if new_choices {
            *self.current.write().expect("not poisoned") = current;
        }
        Ok(new_versions || new_choices)
    }

    /// Every loaded version (instances may run on any of them).
    pub fn all(&self) -> Vec<Arc<Definition>> {
        self.versions.read().expect("not poisoned").values().cloned().collect()
    }

    pub fn get(&self, version: &str) -> Option<Arc<Definition>> {
        self.versions.read().expect("not poisoned").get(version).cloned()
    }

    /// The stored version an instance runs on; one not loaded is corrupt data to the caller.
    pub fn require_version(&self, version: &str) -> Result<Arc<Definition>, crate::store::StoreError> {
        self.get(version).ok_or_else(|| crate::store::StoreError::UnknownDefinition(version.to_owned()))
    }

    /// The definition new instances of a procedure start on.
    pub fn current(&self, procedure: &str, jurisdiction: &str) -> Option<Arc<Definition>> {
        let version =
            self.current.read().expect("not poisoned").get(&(procedure.to_owned(), jurisdiction.to_owned()))?.clone();
        self.get(&version)
    }

    /// The definition new instances of a procedure start on, or an error on the `procedure`
    /// field naming the procedures there are.
    pub fn require(&self, procedure: &str, jurisdiction: &str) -> Result<Arc<Definition>, EngineError> {
        self.current(procedure, jurisdiction).ok_or_else(|| {
            let known: Vec<String> = self.procedures().into_iter().map(|(p, j, _)| format!("{p}/{j}")).collect();
            EngineError::invalid(
                "procedure",
                format!("no procedure `{procedure}` for jurisdiction `{jurisdiction}`; known: {}", known.join(", ")),
            )
        })
    }

    /// Every procedure new instances can be started on: (procedure, jurisdiction, version).
    pub fn procedures(&self) -> Vec<(String, String, String)> {
        let mut all: Vec<_> = self
            .current
            .read()
            .expect("not poisoned")
            .iter()
            .map(|((p, j), v)| (p.clone(), j.clone(), v.clone()))
            .collect();
        all.sort();
        all
    }

    /// Finds versions for the write path (instances run on the version they started with).
    pub fn resolver(&self) -> Resolver {
        let versions = self.versions.clone();
        Arc::new(move |v| versions.read().expect("not poisoned").get(v).cloned())
    }

    /// Validates a definition together with the current library (their cross-references).
    pub fn validate(&self, file: &str, source: &str) -> Result<Definition, Vec<DefinitionError>> {
        let current: Vec<Arc<Definition>> = {
            let current = self.current.read().expect("not poisoned");
            current.values().filter_map(|v| self.get(v)).collect()
        };
        let definition = Definition::load(source, file)?;
        let mut set: Vec<&Definition> = current
            .iter()
            .map(|d| &**d)
            .filter(|d| !(d.id() == definition.id() && d.jurisdiction() == definition.jurisdiction()))
            .collect();
        set.push(&definition);
        let errors = check_set(&set);
        if errors.is_empty() {
            Ok(definition)
        } else {
            Err(errors)
        }
    }

    /// Stores `definition` (validated) and makes it current; running instances keep theirs.
    pub async fn make_current(
        &self,
        store: &Store,
        definition: Definition,
        source: &str,
        now: i64,
    ) -> Result<Arc<Definition>, StoreError> {
        store.save_current_definition(&record(&definition, source), now).await?;
        let definition = Arc::new(definition);
        self.versions.write().expect("not poisoned").insert(definition.version.clone(), definition.clone());
        self.current
            .write()
            .expect("not poisoned")
            .insert((definition.id().to_owned(), definition.jurisdiction().to_owned()), definition.version.clone());
        Ok(definition)
    }
}
