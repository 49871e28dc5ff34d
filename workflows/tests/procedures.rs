//! Scenario tests of the built-in procedure library, and the transition-coverage check that
//! every declared transition of every procedure is exercised by some scenario.

mod scenarios;
mod support;

macro_rules! scenarios {
    ($($module:ident :: $name:ident),* $(,)?) => {
        $(#[test] fn $name() { scenarios::$module::$name(); })*

        /// Runs every scenario, then lists the declared transitions none of them took.
        #[test]
        fn every_transition_of_every_procedure_is_exercised() {
            $(scenarios::$module::$name();)*
            let missing = support::untaken();
            assert!(missing.is_empty(), "transitions no scenario takes:\n{}", missing.join("\n"));
        }
    };
}

scenarios!(
    registration::main_path_to_certificate,
    registration::rejected_at_acceptance,
    registration::supplement_stops_the_clock,
    registration::third_party_extends_review_to_twenty_working_days,
    registration::objection_upheld_refuses_registration,
    registration::objection_dismissed_restarts_publicity,
    registration::overdue_acceptance_escalates_to_supervisor_then_regulator,
    registration::refusals_change_nothing,
    registration::provisional_deadline_is_recomputed_when_2027_is_imported,
);
