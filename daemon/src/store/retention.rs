//! The retention sweep: removes what the record-keeping rules no longer require, and nothing
//! younger.
//!
//! - Processing records (an instance with its history, tasks, timers and effects) are kept a
//!   number of years after the procedure finished, set per jurisdiction with its basis
//!   ([`RULES`]): where a cited article sets a minimum (Tianjin-security art. 8: processing
//!   records at least 3 years) the sweep never keeps them shorter; elsewhere the period is
//!   the agency's archival policy, which the schedule may change. Audit entries and effects
//!   of no instance follow the longest period in force.
//! - An authorized operation's logs are kept at least 6 months after it ends (Tai'an
//!   art. 14(5)); the authorization instance finishes only after that period, and is then
//!   kept 3 years more like any other record, so the 6 months need no rule of their own.
//! - Effects of no instance (the staff's daily digests) are removed by the same 3 years.
//! - Each removed instance leaves a `removed` entry in the ledger with its last head, so
//!   verification tells a lawful removal from a deletion.
//! - A finished instance stays while its parent or one of its children is still kept, so a
//!   kept record never points at a removed one.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, FixedOffset, Months};
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use serde_json::{json, Value};

use super::entities::{audit, history, instance_organizations, instances, outbox, tasks, timers};
use super::{ledger, to_millis, Store, StoreError};

/// How many instances one deleting transaction removes.
const CHUNK: usize = 500;

/// The default keeping period in years, and the least any setting may give where no article
/// sets one.
pub const LEGAL_RECORDS_YEARS: u32 = statflow_workflows::schedules::DEFAULT_RECORDS_YEARS;

/// How long a jurisdiction's processing records are kept, and on what basis.
pub struct RetentionRule {
    pub jurisdiction: &'static str,
    /// The least number of years an article requires (0: no article sets one).
    pub statutory_minimum: u32,
    /// The basis, shown with every sweep.
    pub basis: &'static str,
}

/// The built-in jurisdictions' keeping rules.
pub const RULES: [RetentionRule; 4] = [
    RetentionRule {
        jurisdiction: "tianjin",
        statutory_minimum: 3,
        basis: "《天津市公共数据资源开发利用安全管理办法(试行)》第八条:加工过程记录保存期限不少于3年",
    },
    RetentionRule {
        jurisdiction: "taian",
        statutory_minimum: 0,
        basis: "本单位档案管理规定(《泰安市公共数据开发利用管理办法(试行)》未规定办理记录的保存期限;授权运营日志不少于6个月,第十四条第(五)项,由授权运营实例期满后保留)",
    },
    RetentionRule {
        jurisdiction: "jinzhou",
        statutory_minimum: 0,
        basis: "本单位档案管理规定(《锦州市公共数据资源授权运营管理办法(试行)》第十七条要求妥善保存运营日志等信息,未规定期限)",
    },
    RetentionRule {
        jurisdiction: "wuzhong",
        statutory_minimum: 0,
        basis: "本单位档案管理规定(《吴忠市公共数据管理办法(暂行)(征求意见稿)》第十六条:依法合理确定保存期限)",
    },
];

/// The rule of a jurisdiction, if it is one of the built-in ones.
pub fn rule(jurisdiction: &str) -> Option<&'static RetentionRule> {
    RULES.iter().find(|r| r.jurisdiction == jurisdiction)
}

/// Why `years` is too short for `jurisdiction`, if it is.
pub fn too_short(jurisdiction: &str, years: u32) -> Option<String> {
    let rule = rule(jurisdiction)?;
    (years < rule.statutory_minimum).then(|| {
        format!("{jurisdiction}: records must be kept at least {} years ({})", rule.statutory_minimum, rule.basis)
    })
}

/// `candidates` narrowed to whole families: a candidate stays if its parent or a child of it
/// is kept, until nothing changes. `parent_of` gives each candidate's parent, `children_of`
/// the children of candidates, and `outside_parents` the parents that are stored but are not
/// candidates.
fn whole_families(
    mut candidates: HashSet<i64>,
    parent_of: &HashMap<i64, Option<i64>>,
    children_of: &HashMap<i64, Vec<i64>>,
    outside_parents: &HashSet<i64>,
) -> HashSet<i64> {
    // A parent is kept if it is stored and not (or no longer) a candidate.
    let kept = |id: i64, candidates: &HashSet<i64>| {
        !candidates.contains(&id) && (outside_parents.contains(&id) || parent_of.contains_key(&id))
    };
    loop {
        let staying: Vec<i64> = candidates
            .iter()
            .filter(|id| {
                parent_of[id].is_some_and(|parent| kept(parent, &candidates))
                    || children_of.get(id).is_some_and(|children| children.iter().any(|c| !candidates.contains(c)))
            })
            .copied()
            .collect();
        if staying.is_empty() {
            return candidates;
        }
        for id in staying {
            candidates.remove(&id);
        }
    }
}

impl Store {
    /// Removes finished instances older than their jurisdiction's keeping period at `now`
    /// (`records_years` unless `by_jurisdiction` says otherwise, never under a statutory
    /// minimum), and audit entries and effects of no instance older than the longest period.
    /// Returns what was removed, with each jurisdiction's period and basis.
    pub async fn sweep_retention(
        &self,
        now: DateTime<FixedOffset>,
        records_years: u32,
        by_jurisdiction: &BTreeMap<String, u32>,
    ) -> Result<Value, StoreError> {
        let years_of = |jurisdiction: &str| {
            let years = by_jurisdiction.get(jurisdiction).copied().unwrap_or(records_years);
            years.max(rule(jurisdiction).map_or(0, |r| r.statutory_minimum)).max(1)
        };
        let cutoff = |years: u32| to_millis(now.checked_sub_months(Months::new(12 * years)).expect("in range"));
        // Candidates: finished before the shortest period any jurisdiction can have. Each sweep
        // removes what expired since the one before, so this is a few days' instances.
        let shortest = by_jurisdiction.values().copied().chain([records_years]).min().unwrap_or(records_years).max(1);
        let completed = super::records::InstanceStatus::Completed.as_str();
        let rows: Vec<(i64, Option<i64>, i64, String)> = instances::Entity::find()
            .select_only()
            .column(instances::Column::Id)
            .column(instances::Column::ParentInstanceId)
            .column(instances::Column::UpdatedAt)
            .column(instances::Column::Jurisdiction)
            .filter(instances::Column::Status.eq(completed))
            .filter(instances::Column::UpdatedAt.lte(cutoff(shortest)))
            .into_tuple()
            .all(&self.db)
            .await?;
        let parent_of: HashMap<i64, Option<i64>> = rows
            .iter()
            .filter(|(_, _, finished, jurisdiction)| *finished <= cutoff(years_of(jurisdiction)))
            .map(|(id, parent, ..)| (*id, *parent))
            .collect();
        let removable: HashSet<i64> = parent_of.keys().copied().collect();
        let mut jurisdictions: Vec<&str> = rows
            .iter()
            .map(|r| r.3.as_str())
            .chain(RULES.iter().map(|r| r.jurisdiction))
            .chain(by_jurisdiction.keys().map(String::as_str))
            .collect();
        jurisdictions.sort_unstable();
        jurisdictions.dedup();
        // A jurisdiction neither built in nor configured keeps `records_years`.
        let longest = jurisdictions.iter().map(|j| years_of(j)).max().unwrap_or(records_years).max(records_years);
        let records_cutoff = cutoff(longest);
        let periods: serde_json::Map<String, Value> = jurisdictions
            .iter()
            .map(|j| {
                let basis = rule(j).map_or("本单位档案管理规定", |r| r.basis);
                let since = super::from_millis(cutoff(years_of(j)));
                ((*j).to_owned(), json!({"years": years_of(j), "kept_since": since, "basis": basis}))
            })
            .collect();
        // Keep whole families: a candidate whose parent or child is kept stays, until stable.
        let mut children_of: HashMap<i64, Vec<i64>> = HashMap::new();
        let candidates: Vec<i64> = removable.iter().copied().collect();
        for chunk in candidates.chunks(CHUNK) {
            let children: Vec<(i64, Option<i64>)> = instances::Entity::find()
                .select_only()
                .column(instances::Column::Id)
                .column(instances::Column::ParentInstanceId)
                .filter(instances::Column::ParentInstanceId.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(&self.db)
                .await?;
            for (child, parent) in children {
                children_of.entry(parent.expect("selected by parent")).or_default().push(child);
            }
        }
        let outside: Vec<i64> =
            parent_of.values().flatten().filter(|parent| !removable.contains(parent)).copied().collect();
        let mut outside_parents: HashSet<i64> = HashSet::new();
        for chunk in outside.chunks(CHUNK) {
            let existing: Vec<i64> = instances::Entity::find()
                .select_only()
                .column(instances::Column::Id)
                .filter(instances::Column::Id.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(&self.db)
                .await?;
            outside_parents.extend(existing);
        }
        let removable = whole_families(removable, &parent_of, &children_of, &outside_parents);
        let mut ids: Vec<i64> = removable.into_iter().collect();
        ids.sort_unstable();
        for chunk in ids.chunks(CHUNK) {
            // IMMEDIATE on SQLite: the ledger's head is read under the write lock.
            let options = TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            };
            let txn = self.db.begin_with_options(options).await?;
            let chunk = chunk.to_vec();
            let heads: Vec<(i64, String)> = instances::Entity::find()
                .select_only()
                .column(instances::Column::Id)
                .column(instances::Column::HeadHash)
                .filter(instances::Column::Id.is_in(chunk.clone()))
                .order_by_asc(instances::Column::Id)
                .into_tuple()
                .all(&txn)
                .await?;
            history::Entity::delete_many().filter(history::Column::InstanceId.is_in(chunk.clone())).exec(&txn).await?;
            timers::Entity::delete_many().filter(timers::Column::InstanceId.is_in(chunk.clone())).exec(&txn).await?;
            tasks::Entity::delete_many().filter(tasks::Column::InstanceId.is_in(chunk.clone())).exec(&txn).await?;
            outbox::Entity::delete_many().filter(outbox::Column::InstanceId.is_in(chunk.clone())).exec(&txn).await?;
            instance_organizations::Entity::delete_many()
                .filter(instance_organizations::Column::InstanceId.is_in(chunk.clone()))
                .exec(&txn)
                .await?;
            instances::Entity::delete_many().filter(instances::Column::Id.is_in(chunk)).exec(&txn).await?;
            // The ledger keeps the removal, so verification tells it from a deletion.
            let removals: Vec<ledger::Entry> = heads
                .into_iter()
                .map(|(instance, head)| ledger::Entry {
                    kind: super::records::LedgerKind::Removed,
                    instance,
                    event_seq: 0,
                    event_hash: head,
                })
                .collect();
            ledger::append(&txn, &removals).await?;
            txn.commit().await?;
        }
        // Effects of no instance (the daily digests) follow the same rule.
        let digests_removed = outbox::Entity::delete_many()
            .filter(outbox::Column::InstanceId.is_null())
            .filter(outbox::Column::CreatedAt.lte(records_cutoff))
            .exec(&self.db)
            .await?
            .rows_affected;
        let audit_removed = audit::Entity::delete_many()
            .filter(audit::Column::At.lte(records_cutoff))
            .exec(&self.db)
            .await?
            .rows_affected;
        Ok(json!({
            "records_kept_since": super::from_millis(records_cutoff),
            "periods": periods,
            "removed_instances": ids.len(),
            "removed_audit_entries": audit_removed,
            "removed_effects_of_no_instance": digests_removed,
        }))
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use sea_orm::IntoActiveModel;

    use super::*;
    use crate::store::bulk::{self, Conflict};

    const DAY: i64 = 86_400_000;

    fn instance(id: i64, parent: Option<i64>, completed: bool, finished_days_ago: i64, now: i64) -> instances::Model {
        instances::Model {
            id,
            procedure: "registration".into(),
            jurisdiction: "taian".into(),
            definition_version: "registration/taian@1".into(),
            status: if completed { "completed" } else { "running" }.into(),
            outcome: None,
            step: None,
            state: "{}".into(),
            version_no: 1,
            next_due_at: None,
            overdue: false,
            parent_instance_id: parent,
            parent_key: parent.map(|_| "child".into()),
            created_at: 0,
            updated_at: now - finished_days_ago * DAY,
            head_hash: ledger::GENESIS.into(),
            start_key: None,
            calendar_generation: 0,
            flagged: None,
        }
    }

    #[tokio::test]
    async fn a_finished_instance_goes_with_its_whole_family_or_not_at_all() {
        let dir = std::env::temp_dir().join(format!("statflow-retention-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&format!("sqlite://{}?mode=rwc", dir.join("r.db").display())).await.unwrap();
        let now = DateTime::parse_from_rfc3339("2030-01-01T09:00:00+08:00").unwrap();
        let at = to_millis(now);
        let old = 3 * 365 + 10;
        let rows = vec![
            instance(1, None, true, old, at), // its child still runs: both stay
            instance(2, Some(1), false, 0, at),
            instance(3, None, true, old, at), // alone and old: goes
            instance(4, None, true, old, at), // old with an old child: both go
            instance(5, Some(4), true, old, at),
            instance(6, Some(7), true, old, at), // its parent finished lately: both stay
            instance(7, None, true, 30, at),
            instance(8, None, true, 30, at), // too young
        ];
        let rows = rows.into_iter().map(IntoActiveModel::into_active_model).collect();
        bulk::insert::<instances::Entity>(&store.db, rows, Conflict::Fail).await.unwrap();

        let swept = store.sweep_retention(now, 3, &BTreeMap::new()).await.unwrap();
        assert_eq!(swept["removed_instances"], 3, "{swept}");
        let left: Vec<i64> = instances::Entity::find()
            .select_only()
            .column(instances::Column::Id)
            .order_by_asc(instances::Column::Id)
            .into_tuple()
            .all(&store.db)
            .await
            .unwrap();
        assert_eq!(left, [1, 2, 6, 7, 8]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
