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
    wuzhong::the_authority_starts_a_verification_with_its_own_limit,
    wuzhong::unshared_data_is_verified_on_request,
    wuzhong::a_risk_found_in_open_data_stops_its_opening_at_once,
    sources::instances_resting_on_a_draft_or_a_lapsed_text_say_so,
    registration::main_path_to_certificate,
    registration::rejected_at_acceptance,
    registration::supplement_stops_the_clock,
    registration::third_party_extends_review_to_twenty_working_days,
    registration::objection_upheld_refuses_registration,
    registration::objection_dismissed_restarts_publicity,
    registration::overdue_acceptance_escalates_to_supervisor_then_regulator,
    registration::refusals_change_nothing,
    registration::provisional_deadline_is_recomputed_when_2027_is_imported,
    registration::an_administrator_cancels_or_terminates_with_a_reason,
    registration::only_an_administrator_ends_or_moves_and_always_with_a_reason,
    registration::an_administrator_moves_a_stuck_instance_and_its_step_begins_afresh,
    registration::a_running_instance_migrates_keeping_or_recomputing_its_deadline,
    registration::a_migration_maps_renamed_steps_and_refuses_what_does_not_fit,
    conditional_open::tianjin_provided_used_and_ended,
    conditional_open::tianjin_breach_confirmed_by_both_stops_service,
    conditional_open::tianjin_refusals_and_overdue_decision,
    conditional_open::wuzhong_commitment_violation_and_correction,
    conditional_open::wuzhong_uncorrected_violation_is_escalated,
    conditional_open::wuzhong_refused_or_withdrawn,
    authorization::taian_selection_to_expiry_and_log_retention,
    authorization::taian_objection_upheld_and_no_candidate,
    authorization::taian_suspended_restored_then_terminated_by_evaluation_signals,
    authorization::taian_expiry_while_suspended,
    authorization::jinzhou_five_year_term_and_termination,
    authorization::taian_evaluation_compliant_or_restored_after_rectification,
    authorization::taian_evaluation_overdue_materials_then_failed_rectification_terminates,
    authorization::jinzhou_evaluation_paths,
    authorization::an_agreed_term_runs_through_its_last_day,
    authorization::taian_annual_work_report_is_tracked_until_reviewed,
    authorization::taian_failed_rectification_waits_for_the_authoritys_decision,
    authorization::rectification_completed_failed_or_out_of_time,
    demand::both_approve_in_either_order_then_data_is_provided,
    demand::either_objection_refuses,
    demand::a_demand_needs_a_registered_resource,
    wuzhong::sharing_answered_and_completed_within_five_working_days_each,
    wuzhong::backflow_answered_within_five_working_days,
    wuzhong::correction_forwarded_in_two_and_corrected_in_five_working_days,
    wuzhong::catalogue_updated_approved_and_revised,
    wuzhong::a_late_catalogue_revision_escalates,
    wuzhong::withdrawal_verified_decided_and_reviewed,
    wuzhong::access_suspension_restored_or_referred,
    supervision::incident_reports_run_in_hours_through_holidays,
    supervision::wuzhong_correction_orders_end_corrected_or_referred_by_decision,
    supervision::tianjin_open_data_correction_orders,
    supervision::jinzhou_quality_feedback_reaches_the_provider,
    supervision::jinzhou_misuse_suspends_or_ends_cooperation,
    conditional_open::open_data_objections_are_verified_in_the_agencys_time,
    supervision::jinzhou_incidents_are_reported_at_once_by_the_agencys_hour,
    supervision::taian_incident_response_is_reviewed_by_the_authority,
    supervision::wuzhong_risks_are_remedied_and_checked,
    supervision::rectification_order_completed_rejected_refused_or_referred,
    supervision::complaints_keep_the_reporter_confidential,
    supervision::half_yearly_summary_is_filed,
);
