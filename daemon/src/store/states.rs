//! Instance states the writer lately computed, each with the stored text it stands for.
//!
//! Every transition starts from the instance's state, stored as JSON, and decoding it was a
//! quarter of the writer's own work under load. In most cases the writer itself encoded that
//! text (at the instance's last transition), so it keeps the states it computed and takes
//! one instead of decoding when the text read from the row is exactly the text it stands
//! for. The comparison is of the text, not of a version: whatever wrote the row (another
//! process, a restore, an edit), a state is only used for the very text it was encoded as,
//! and a batch rolled back leaves states whose text was never committed, which then match
//! nothing.

use std::collections::HashMap;
use std::sync::Arc;

use statflow_workflows::engine::InstanceState;

use super::records::decode_state;
use super::StoreError;

/// How many states are kept; when full, all are dropped and the next transitions fill it
/// again (a few megabytes at most; under load the instances in flight are a few hundred).
const CAPACITY: usize = 1024;

#[derive(Default)]
pub(super) struct ComputedStates {
    by_instance: HashMap<i64, (String, Arc<InstanceState>)>,
}

impl ComputedStates {
    /// The state `stored` (instance `id`'s row) encodes: kept, or decoded.
    pub(super) fn decode(&self, id: i64, stored: &str) -> Result<Arc<InstanceState>, StoreError> {
        match self.by_instance.get(&id) {
            Some((text, state)) if text == stored => Ok(state.clone()),
            _ => decode_state(id, stored).map(Arc::new),
        }
    }

    /// Keeps `state`, computed for instance `id` and encoded as `text`.
    pub(super) fn keep(&mut self, id: i64, text: String, state: InstanceState) {
        if self.by_instance.len() >= CAPACITY && !self.by_instance.contains_key(&id) {
            self.by_instance.clear();
        }
        self.by_instance.insert(id, (text, Arc::new(state)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(events: u64) -> (String, InstanceState) {
        let state = InstanceState {
            procedure: "registration".into(),
            jurisdiction: "taian".into(),
            version: "sha256:0".into(),
            status: statflow_workflows::engine::Status::NotStarted,
            started_at: None,
            data: Default::default(),
            step: None,
            record_status: None,
            pending_activities: Default::default(),
            activity_results: Default::default(),
            activity_failures: vec![],
            events,
            source_notices: vec![],
            visits: 0,
        };
        (serde_json::to_string(&state).unwrap(), state)
    }

    #[test]
    fn a_kept_state_serves_only_the_exact_text_it_was_encoded_as() {
        let mut states = ComputedStates::default();
        let (text, kept) = state(3);
        states.keep(7, text.clone(), kept);
        let (first, again) = (states.decode(7, &text).unwrap(), states.decode(7, &text).unwrap());
        assert!(Arc::ptr_eq(&first, &again), "kept, not decoded");

        // The row says something else (another writer, an edit, a batch rolled back): decoded.
        let (other, _) = state(4);
        assert_eq!(states.decode(7, &other).unwrap().events, 4);
        assert_eq!(states.decode(8, &text).unwrap().events, 3, "decoded for another instance");
        assert!(!Arc::ptr_eq(&states.decode(8, &text).unwrap(), &first), "another instance's state is its own");
        assert!(states.decode(7, "{not json").is_err(), "a broken row is an error, not the kept state");

        for id in 0..CAPACITY as i64 + 5 {
            let (text, kept) = state(1);
            states.keep(100 + id, text, kept);
        }
        assert!(states.by_instance.len() <= CAPACITY, "{} kept", states.by_instance.len());
    }
}
