//! A batch computed on rows read before its transaction (as the SQLite writer computes one
//! while the batch before it commits) is written only if those rows still stand as read.

use std::sync::Arc;

use chrono::DateTime;
use sea_orm::{PaginatorTrait, SqliteTransactionMode, TransactionOptions, TransactionTrait};
use serde_json::json;
use statflow_workflows::calendar::Calendar;
use statflow_workflows::definition::Library;
use statflow_workflows::engine::{Actor, Event};

use super::*;

struct Fixture {
    store: Store,
    definition: Arc<Definition>,
    dir: std::path::PathBuf,
}

impl Fixture {
    async fn new(name: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("statflow-read-ahead-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("s.db").display());
        let store = Store::open(&url).await.unwrap();
        let definition = Arc::new(Library::built_in().get("registration", "taian").unwrap().clone());
        Fixture { store, definition, dir }
    }

    fn at(&self, work: Work) -> Submission {
        Submission {
            work,
            now: DateTime::parse_from_rfc3339("2026-03-02T10:00:00+08:00").unwrap(),
            calendar: Arc::new(Calendar::official()),
            calendar_generation: 0,
            task_notices: false,
        }
    }

    fn start(&self) -> Submission {
        let input = json!({
            "resource_name": "企业登记信息",
            "registration_type": "initial",
            "registrant_org": "taian-market",
            "agency_org": "taian-registry",
        });
        let work = Work::Start { definition: self.definition.clone(), input, actor: clerk(), origin: Origin::Direct };
        self.at(work)
    }

    /// The clerk accepts the registration unless another holds its task.
    fn accept(&self, id: i64) -> Submission {
        let decide: Decide = Box::new(|_, _, _, claimed| {
            if let Some(task) = claimed.iter().find(|t| t.assignee.as_deref() != Some("clerk")) {
                return Err(CallerDenial::Claimed(task.id.clone()));
            }
            Ok(Event::Action { actor: clerk(), action: "accept".into(), data: json!({}) })
        });
        let definition = self.definition.clone();
        let definitions: Resolver = Arc::new(move |_| Some(definition.clone()));
        self.at(Work::Act { id, decide, definitions })
    }

    /// A started registration and its open task.
    async fn started(&self) -> (i64, String) {
        let applied = self.store.transition(self.start()).await.unwrap().unwrap();
        let task = applied.standing.unwrap().open_tasks[0].id.clone();
        (applied.instance_id, task)
    }

    /// Stores `prepared` as the writer does: in an IMMEDIATE transaction, rolled back unless
    /// it stored.
    async fn store(&self, prepared: Prepared) -> Result<Vec<Outcome>, BatchFailure> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        let txn = self.store.db.begin_with_options(options).await.unwrap();
        let stored = prepared.store(&txn, true).await;
        match stored {
            Ok(_) => txn.commit().await.unwrap(),
            Err(_) => txn.rollback().await.unwrap(),
        }
        stored
    }

    async fn version(&self, id: i64) -> i64 {
        instances::Entity::find_by_id(id).one(&self.store.db).await.unwrap().unwrap().version_no
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn clerk() -> Actor {
    Actor {
        id: "clerk".into(),
        roles: vec!["registration_agency".into(), "registrant".into()],
        organizations: vec!["taian-registry".into(), "taian-market".into()],
        administrator: false,
        request: None,
    }
}

fn applied(outcomes: Vec<Outcome>) -> Applied {
    outcomes.into_iter().next().unwrap().unwrap().unwrap()
}

#[tokio::test]
async fn rows_unchanged_since_they_were_read_are_written() {
    let fixture = Fixture::new("unchanged").await;
    let (id, _) = fixture.started().await;
    let next = next_instance_id(&fixture.store.db).await.unwrap();
    let prepared = prepare(&fixture.store.db, &[&fixture.accept(id), &fixture.start()], Some(next)).await.unwrap();
    assert_eq!(prepared.next_id(), Some(next + 1));
    let outcomes = fixture.store(prepared).await.ok().expect("stored");
    assert_eq!(outcomes.len(), 2);
    assert_eq!(fixture.version(id).await, 2, "the action is stored");
    assert_eq!(fixture.version(next).await, 1, "the instance started with the read-ahead id is stored");
}

#[tokio::test]
async fn a_claim_made_after_the_read_turns_the_batch_back_and_wins() {
    let fixture = Fixture::new("claim").await;
    let (id, task) = fixture.started().await;
    let prepared = prepare(&fixture.store.db, &[&fixture.accept(id)], None).await.unwrap();
    // Read while nobody held the task: the clerk's acceptance was allowed.
    assert!(prepared.outcomes[0].as_ref().is_ok_and(Result::is_ok));
    assert!(fixture.store.claim_task(&task, "another").await.unwrap());
    assert!(matches!(fixture.store(prepared).await, Err(BatchFailure::Conflict)));
    assert_eq!(fixture.version(id).await, 1, "nothing was written");
    // Computed inside its transaction, the same action meets the claim.
    match fixture.store.transition(fixture.accept(id)).await.unwrap() {
        Err(Declined::Caller(CallerDenial::Claimed(claimed))) => assert_eq!(claimed, task),
        other => panic!("the claim holds: {other:?}"),
    }
}

#[tokio::test]
async fn a_claim_given_back_after_the_read_turns_the_batch_back_too() {
    let fixture = Fixture::new("release").await;
    let (id, task) = fixture.started().await;
    assert!(fixture.store.claim_task(&task, "another").await.unwrap());
    let prepared = prepare(&fixture.store.db, &[&fixture.accept(id)], None).await.unwrap();
    assert!(fixture.store.release_task(&task, Some("another")).await.unwrap());
    // The denial was read on a claim that is gone: the batch is computed again.
    assert!(matches!(fixture.store(prepared).await, Err(BatchFailure::Conflict)));
    let accepted = fixture.store.transition(fixture.accept(id)).await.unwrap().unwrap();
    assert_eq!(accepted.instance_id, id);
}

#[tokio::test]
async fn an_instance_changed_after_the_read_turns_the_batch_back() {
    let fixture = Fixture::new("changed").await;
    let (id, _) = fixture.started().await;
    let prepared = prepare(&fixture.store.db, &[&fixture.accept(id)], None).await.unwrap();
    applied(vec![fixture.store.transition(fixture.accept(id)).await]);
    assert_eq!(fixture.version(id).await, 2);
    assert!(matches!(fixture.store(prepared).await, Err(BatchFailure::Conflict)));
    assert_eq!(fixture.version(id).await, 2, "the accepted instance is not accepted again over itself");
}

#[tokio::test]
async fn an_id_taken_after_the_read_turns_the_batch_back() {
    let fixture = Fixture::new("ids").await;
    let next = next_instance_id(&fixture.store.db).await.unwrap();
    let prepared = prepare(&fixture.store.db, &[&fixture.start()], Some(next)).await.unwrap();
    // Another start took the id meanwhile (the writer's count of ids was behind).
    let (taken, _) = fixture.started().await;
    assert_eq!(taken, next);
    assert!(matches!(fixture.store(prepared).await, Err(BatchFailure::Conflict)));
    let history = history::Entity::find().filter(history::Column::InstanceId.eq(taken)).count(&fixture.store.db);
    assert_eq!(history.await.unwrap(), 1, "the instance that took the id keeps its one event");
}
