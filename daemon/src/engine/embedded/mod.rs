//! The embedded runtime: runs the pure interpreter durably on the store.
//!
//! - [`calendar`]: importing notices and recomputing running instances' deadlines after.
//! - [`clock`]: the system clock, or a virtual one moved through the admin API.
//! - [`timers`]: the loop that sleeps until the next due timer and fires due ones in order.
//! - [`outbox`]: the worker that carries out effects after commit and reports back.
//! - [`delivery`]: the worker that sends notices and escalations by email and webhook.
//! - [`digest`]: each staff member's daily digest of open tasks.
//! - [`integrity`]: verifying instances against history, ledger and anchors; daily anchors.
//! - [`schedules`]: cron schedules that start procedures, with catch-up and run keys.
//!
//! Nothing needed for recovery lives only in memory: after a restart, open instances,
//! timers (overdue ones fire at once, in order) and unfinished outbox rows are read back.

pub mod calendar;
pub mod clock;
pub mod delivery;
pub mod digest;
pub mod integrity;
pub mod outbox;
pub mod schedules;
pub mod timers;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};
use serde_json::Value;
use statflow_workflows::calendar::{parse_tsv, Calendar};
use statflow_workflows::definition::{Definition, Library};
use statflow_workflows::engine::{Actor, Command, Event};
use tokio::sync::Notify;

use crate::store::entities::{calendars, current_versions, definitions};
use crate::store::transition::{Applied, Origin, Resolver, Transition, Work};
use crate::store::{to_millis, Store, StoreError};
use clock::Clock;

pub struct Runtime {
    pub store: Store,
    pub clock: Clock,
    /// The calendar and the import generation it stands for.
    calendar: RwLock<(Arc<Calendar>, i64)>,
    /// Woken after a calendar import: running instances are to be recomputed.
    pub calendar_changed: Notify,
    /// Every definition version instances may run on, by version.
    versions: Arc<RwLock<HashMap<String, Arc<Definition>>>>,
    /// The version new instances of (procedure, jurisdiction) start on.
    current: RwLock<HashMap<(String, String), String>>,
    pub timers_changed: Notify,
    pub outbox_changed: Notify,
    pub deliveries_changed: Notify,
    pub schedules_changed: Notify,
    /// Held while the virtual clock is moved, so moves never interleave.
    pub clock_moves: tokio::sync::Mutex<()>,
    /// Held during a calendar import, so generations are handed out one at a time.
    calendar_imports: tokio::sync::Mutex<()>,
    /// Where the ledger's anchors go; set once at start.
    anchoring: std::sync::OnceLock<integrity::anchors::Anchoring>,
}

impl Runtime {
    /// Loads definitions (storing the built-in library's versions) and calendar years.
    pub async fn load(store: Store, clock: Clock) -> Result<Arc<Runtime>, StoreError> {
        let now = to_millis(clock.now());
        for definition in Library::built_in().iter() {
            let source = statflow_workflows::definition::BUILT_IN
                .iter()
                .find(|(file, _)| *file == definition.file)
                .map(|(_, text)| *text)
                .expect("built-in definitions come from BUILT_IN");
            let row = definitions::ActiveModel {
                version: Set(definition.version.clone()),
                procedure: Set(definition.id().to_owned()),
                jurisdiction: Set(definition.jurisdiction().to_owned()),
                file: Set(definition.file.clone()),
                source: Set(source.to_owned()),
                loaded_at: Set(now),
            };
            definitions::Entity::insert(row).on_conflict_do_nothing().exec(&store.db).await?;
        }
        let mut versions = HashMap::new();
        for row in definitions::Entity::find().all(&store.db).await? {
            let definition = Definition::load(&row.source, &row.file)
                .map_err(|errors| StoreError::Corrupt(format!("stored definition {}: {}", row.version, errors[0])))?;
            versions.insert(row.version.clone(), Arc::new(definition));
        }
        // Built-in versions are current unless an administrator chose another by loading it.
        let mut current: HashMap<(String, String), String> = Library::built_in()
            .iter()
            .map(|d| ((d.id().to_owned(), d.jurisdiction().to_owned()), d.version.clone()))
            .collect();
        for chosen in current_versions::Entity::find().all(&store.db).await? {
            if versions.contains_key(&chosen.version) {
                current.insert((chosen.procedure, chosen.jurisdiction), chosen.version);
            }
        }
        let mut calendar = Calendar::official();
        let mut generation = 0;
        for row in calendars::Entity::find().filter(calendars::Column::Year.gt(0)).all(&store.db).await? {
            generation = generation.max(row.generation);
            for notice in parse_tsv(&row.notice, &row.origin).map_err(|e| StoreError::Corrupt(e.to_string()))? {
                calendar.import(notice, &row.origin).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            }
        }
        Ok(Arc::new(Runtime {
            store,
            clock,
            calendar: RwLock::new((Arc::new(calendar), generation)),
            calendar_changed: Notify::new(),
            versions: Arc::new(RwLock::new(versions)),
            current: RwLock::new(current),
            timers_changed: Notify::new(),
            outbox_changed: Notify::new(),
            deliveries_changed: Notify::new(),
            schedules_changed: Notify::new(),
            clock_moves: tokio::sync::Mutex::new(()),
            calendar_imports: tokio::sync::Mutex::new(()),
            anchoring: std::sync::OnceLock::new(),
        }))
    }

    pub fn calendar(&self) -> Arc<Calendar> {
        self.calendar.read().expect("not poisoned").0.clone()
    }

    /// Which import the current calendar stands for (0: the embedded notices only).
    pub fn calendar_generation(&self) -> i64 {
        self.calendar.read().expect("not poisoned").1
    }

    pub fn definition(&self, version: &str) -> Option<Arc<Definition>> {
        self.versions.read().expect("not poisoned").get(version).cloned()
    }

    /// The definition new instances of a procedure start on.
    pub fn current_definition(&self, procedure: &str, jurisdiction: &str) -> Option<Arc<Definition>> {
        let version =
            self.current.read().expect("not poisoned").get(&(procedure.to_owned(), jurisdiction.to_owned()))?.clone();
        self.definition(&version)
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

    /// The loop of the worker of effects of `kinds`: runs `pass` while it finds work, then
    /// sleeps until the next retry of those kinds comes due, or until woken by new effects
    /// (or by the virtual clock moving).
    async fn work_until_stopped<F, Fut>(&self, kinds: &[&str], wake: &Notify, what: &str, mut pass: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<usize, StoreError>>,
    {
        loop {
            match pass().await {
                Ok(0) => {}
                Ok(_) => continue,
                Err(error) => tracing::error!(%error, "{what} pass failed"),
            }
            let next = self.store.next_attempt(kinds).await;
            self.sleep_until(next, wake, what).await;
        }
    }

    fn wake(&self, applied: &Applied) {
        if applied.commands.iter().any(|c| matches!(c, Command::ScheduleTimer { .. })) {
            self.timers_changed.notify_one();
        }
        if applied.commands.iter().any(|c| {
            matches!(
                c,
                Command::RunActivity { .. }
                    | Command::StartChild { .. }
                    | Command::SignalInstance { .. }
                    | Command::Complete { .. }
            )
        }) {
            self.outbox_changed.notify_one();
            self.deliveries_changed.notify_one();
        }
    }

    pub async fn start(
        &self,
        definition: &Arc<Definition>,
        input: Value,
        actor: Actor,
        origin: Origin,
    ) -> Result<Applied, StoreError> {
        let work = Work::Start { definition: definition.clone(), input, actor, origin };
        self.transition(work).await
    }

    pub async fn apply(&self, id: i64, event: &Event) -> Result<Applied, StoreError> {
        let versions = self.versions.clone();
        let definitions: Resolver = Arc::new(move |v| versions.read().expect("not poisoned").get(v).cloned());
        self.transition(Work::Apply { id, event: event.clone(), definitions }).await
    }

    async fn transition(&self, work: Work) -> Result<Applied, StoreError> {
        let (calendar, calendar_generation) = self.calendar.read().expect("not poisoned").clone();
        let transition = Transition { work, now: self.clock.now(), calendar, calendar_generation };
        let applied = self.store.transition(transition).await?;
        self.wake(&applied);
        Ok(applied)
    }
}

/// Why a definition or calendar could not be loaded; nothing was changed.
#[derive(Debug)]
pub enum LoadError {
    Invalid(Vec<statflow_workflows::definition::DefinitionError>),
    Calendar(String),
    Store(StoreError),
}

impl From<StoreError> for LoadError {
    fn from(error: StoreError) -> Self {
        LoadError::Store(error)
    }
}

impl Runtime {
    /// Validates a definition together with the current library, stores it as a new version
    /// and makes it the one new instances start on. Running instances keep their version.
    pub async fn load_definition(&self, file: &str, source: &str) -> Result<Definition, LoadError> {
        let current: Vec<Definition> = {
            let current = self.current.read().expect("not poisoned");
            let versions = self.versions.read().expect("not poisoned");
            current.values().filter_map(|v| versions.get(v).map(|d| Definition::clone(d))).collect()
        };
        let definition = Definition::load(source, file).map_err(LoadError::Invalid)?;
        let mut set: Vec<&Definition> = current
            .iter()
            .filter(|d| !(d.id() == definition.id() && d.jurisdiction() == definition.jurisdiction()))
            .collect();
        set.push(&definition);
        let errors = statflow_workflows::definition::check_set(&set);
        if !errors.is_empty() {
            return Err(LoadError::Invalid(errors));
        }
        let row = definitions::ActiveModel {
            version: Set(definition.version.clone()),
            procedure: Set(definition.id().to_owned()),
            jurisdiction: Set(definition.jurisdiction().to_owned()),
            file: Set(file.to_owned()),
            source: Set(source.to_owned()),
            loaded_at: Set(to_millis(self.clock.now())),
        };
        // The version and the choice of it are stored together, so both survive a restart.
        let txn = self.store.db.begin().await.map_err(StoreError::from)?;
        definitions::Entity::insert(row).on_conflict_do_nothing().exec(&txn).await.map_err(StoreError::from)?;
        let chosen = current_versions::ActiveModel {
            procedure: Set(definition.id().to_owned()),
            jurisdiction: Set(definition.jurisdiction().to_owned()),
            version: Set(definition.version.clone()),
            chosen_at: Set(to_millis(self.clock.now())),
        };
        current_versions::Entity::insert(chosen)
            .on_conflict(
                sea_orm::sea_query::OnConflict::columns([
                    current_versions::Column::Procedure,
                    current_versions::Column::Jurisdiction,
                ])
                .update_columns([current_versions::Column::Version, current_versions::Column::ChosenAt])
                .to_owned(),
            )
            .exec(&txn)
            .await
            .map_err(StoreError::from)?;
        txn.commit().await.map_err(StoreError::from)?;
        self.versions.write().expect("not poisoned").insert(definition.version.clone(), Arc::new(definition.clone()));
        self.current
            .write()
            .expect("not poisoned")
            .insert((definition.id().to_owned(), definition.jurisdiction().to_owned()), definition.version.clone());
        Ok(definition)
    }
}
