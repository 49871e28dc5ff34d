//! 公共数据登记 (Tai'an art. 9–11): main path and every exceptional path.

use serde_json::json;
use statflow_workflows::calendar::parse_holiday_cn_json;
use statflow_workflows::definition::Definition;
use statflow_workflows::engine::{Activity, Actor, Command, Ending, Event, MigratedDeadline, RefusalKind, TimerKind};

use crate::support::{t, Scenario};

fn registration(at: &str) -> Scenario {
    let mut s = Scenario::start(
        "registration",
        "taian",
        at,
        json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"}),
    );
    s.person("clerk", "registration_agency", "taian-registry").person("provider", "registrant", "taian-market");
    s
}

pub fn main_path_to_certificate() {
    // Received Friday 2026-02-13: acceptance due at the end of 02-25 (PROCEDURES.md example).
    let mut s = registration("2026-02-13T10:00:00+08:00");
    s.expect_step("acceptance");
    assert_eq!(s.due(), Some(t("2026-02-26T00:00:00+08:00")));
    let opened = s.take();
    assert!(
        matches!(&opened[0], Command::OpenTask { role, organization: Some(org), .. } if role == "registration_agency" && org == "taian-registry")
    );
    s.advance_to("2026-02-24T15:00:00+08:00");
    assert_eq!(
        s.notifications(),
        vec![(t("2026-02-24T09:00:00+08:00"), "deadline_reminder".to_owned(), "registration_agency".to_owned())]
    );
    s.act("clerk", "accept", json!({}));
    // Substantive review: 5 working days from 02-24 → 02-25, 26, 27, 28 (Saturday, an
    // adjusted working day of 春节) and 03-02.
    s.expect_step("substantive_review");
    assert_eq!(s.due(), Some(t("2026-03-03T00:00:00+08:00")));
    s.advance_to("2026-03-02T11:00:00+08:00").act("clerk", "pass", json!({"compliance_report": "合规"}));
    // Publicity: 5 working days from 03-02 → ends with 03-09.
    s.expect_step("publicity");
    assert_eq!(s.due(), Some(t("2026-03-10T00:00:00+08:00")));
    s.advance_to("2026-03-10T08:00:00+08:00").expect_step("rights_confirmation");
    let certificates: Vec<_> = s
        .activities()
        .into_iter()
        .filter(|(_, a)| matches!(a, Activity::IssueCertificate { kind, .. } if kind == "公共数据登记凭证"))
        .collect();
    assert_eq!(certificates.len(), 1);
    assert_eq!(certificates[0].0, t("2026-03-10T00:00:00+08:00"));
    s.act("clerk", "confirm_rights", json!({}));
    assert_eq!(s.outcome(), Some("registered"));
    assert_eq!(s.state.record_status.as_deref(), Some("registered"));
    assert!(s.timers.is_empty(), "a completed instance leaves no timer: {:?}", s.timers);
    assert!(matches!(s.log.last(), Some((_, Command::Complete { outcome })) if outcome == "registered"));
}

pub fn rejected_at_acceptance() {
    let mut s = registration("2026-03-02T09:00:00+08:00");
    s.act("clerk", "reject", json!({"reasons": "材料不全且无法补正"}));
    assert_eq!(s.outcome(), Some("rejected"));
    assert!(s.notifications().iter().any(|(_, template, role)| template == "rejected" && role == "registrant"));
    let closed = s.log.iter().filter(|(_, c)| matches!(c, Command::CloseTask { .. })).count();
    assert_eq!(closed, 1);
}

pub fn supplement_stops_the_clock() {
    let mut s = registration("2026-02-13T10:00:00+08:00");
    // On 02-24 two working days (02-14, 02-24) are used; one remains.
    s.advance_to("2026-02-24T16:00:00+08:00").act("clerk", "request_supplement", json!({"missing": "数据样例"}));
    assert_eq!(s.due(), None);
    assert!(s.timers.is_empty(), "no timer runs while the clock is stopped: {:?}", s.timers);
    let info = s.take().into_iter().find_map(|c| match c {
        Command::DeadlineChanged { deadline, .. } => Some(deadline),
        _ => None,
    });
    let info = info.expect("the stop is reported");
    assert!(info.paused);
    assert_eq!(info.remaining_working_days, Some(1));
    // Weeks pass without counting; materials arrive Monday 03-02 → the last day is 03-03.
    s.advance_to("2026-03-02T10:00:00+08:00").act("provider", "supplement", json!({"materials": "已补充"}));
    assert_eq!(s.due(), Some(t("2026-03-04T00:00:00+08:00")));
    assert!(s.timers.values().any(|(at, kind)| *kind == TimerKind::Deadline && *at == t("2026-03-04T00:00:00+08:00")));
    assert!(s
        .notifications()
        .iter()
        .any(|(_, template, role)| template == "supplement_received" && role == "registration_agency"));
    s.act("clerk", "accept", json!({})).expect_step("substantive_review");
}

pub fn third_party_extends_review_to_twenty_working_days() {
    let mut s = registration("2026-02-27T09:00:00+08:00");
    s.advance_to("2026-03-02T09:00:00+08:00").act("clerk", "accept", json!({}));
    assert_eq!(s.due(), Some(t("2026-03-10T00:00:00+08:00")));
    s.act("clerk", "engage_third_party", json!({"third_party": "泰安数据合规服务中心", "reason": "涉及个人信息"}));
    // 20 working days from 03-02: 03-03 … 03-30.
    assert_eq!(s.due(), Some(t("2026-03-31T00:00:00+08:00")));
    let extension = s.state.step.as_ref().unwrap().deadline.as_ref().unwrap().rule.extension.clone().unwrap();
    assert_eq!((extension.by.as_str(), extension.reason.as_str()), ("clerk", "涉及个人信息"));
    let again = s.try_act("clerk", "engage_third_party", json!({"third_party": "x", "reason": "y"})).unwrap_err();
    assert_eq!(again.kind, RefusalKind::Conflict);
    // The extended limit passes too: overdue, and the assignee is told at 24:00 on 03-30.
    s.advance_to("2026-03-31T10:00:00+08:00");
    assert_eq!(s.escalations(), vec![(t("2026-03-31T00:00:00+08:00"), 1, vec!["registration_agency".to_owned()])]);
    s.act("clerk", "fail", json!({"reasons": "存在敏感字段"}));
    assert_eq!(s.outcome(), Some("refused"));
}

pub fn objection_upheld_refuses_registration() {
    let mut s = registration("2026-03-02T09:00:00+08:00");
    s.act("clerk", "accept", json!({})).act("clerk", "pass", json!({"compliance_report": "合规"}));
    s.advance_to("2026-03-04T10:00:00+08:00");
    s.act("clerk", "record_objection", json!({"objector": "某公司", "objection": "数据权属争议"}));
    s.expect_step("objection_review");
    s.act("clerk", "uphold", json!({"reasons": "权属存在争议"}));
    assert_eq!(s.outcome(), Some("refused"));
    assert!(!s.activities().iter().any(|(_, a)| matches!(a, Activity::IssueCertificate { .. })));
}

pub fn objection_dismissed_restarts_publicity() {
    let mut s = registration("2026-03-02T09:00:00+08:00");
    s.act("clerk", "accept", json!({})).act("clerk", "pass", json!({"compliance_report": "合规"}));
    s.advance_to("2026-03-04T10:00:00+08:00").act(
        "clerk",
        "record_objection",
        json!({"objector": "某公司", "objection": "异议"}),
    );
    s.advance_to("2026-03-05T10:00:00+08:00").act("clerk", "dismiss", json!({"reasons": "异议不成立"}));
    // A fresh full period of 5 working days from 03-05.
    s.expect_step("publicity");
    assert_eq!(s.due(), Some(t("2026-03-13T00:00:00+08:00")));
    s.advance_to("2026-03-13T00:00:00+08:00").expect_step("rights_confirmation");
}

pub fn overdue_acceptance_escalates_to_supervisor_then_regulator() {
    let mut s = registration("2026-02-13T10:00:00+08:00");
    s.advance_to("2026-03-10T12:00:00+08:00");
    let reminders: Vec<_> = s.notifications().into_iter().map(|(at, template, _)| (at, template)).collect();
    assert_eq!(
        reminders,
        vec![
            (t("2026-02-24T09:00:00+08:00"), "deadline_reminder".to_owned()),
            (t("2026-02-25T09:00:00+08:00"), "deadline_reminder".to_owned()),
        ]
    );
    let deadline = s.state.step.as_ref().unwrap().deadline.as_ref().unwrap();
    assert!(deadline.overdue);
    // Overdue at 24:00 on 02-25; supervisor when 02-26 ends; regulator when 02-28 ends (3
    // working days after the last day: 02-26, 02-27 and Saturday 02-28, an adjusted working
    // day); then again after 5 more working days (03-02 … 03-06).
    assert_eq!(
        s.escalations(),
        vec![
            (t("2026-02-26T00:00:00+08:00"), 1, vec!["registration_agency".to_owned()]),
            (t("2026-02-27T00:00:00+08:00"), 2, vec!["supervisor".to_owned()]),
            (t("2026-03-01T00:00:00+08:00"), 3, vec!["regulator".to_owned()]),
            (t("2026-03-07T00:00:00+08:00"), 3, vec!["regulator".to_owned()]),
        ]
    );
    let Some((_, Activity::Escalate { basis, deadline, .. })) =
        s.activities().into_iter().find(|(_, a)| matches!(a, Activity::Escalate { .. }))
    else {
        unreachable!()
    };
    assert_eq!(basis.as_deref(), Some("《泰安市公共数据开发利用管理办法(试行)》第九条第(二)项"));
    assert_eq!(deadline.unwrap().remaining_working_days, Some(-1));
    // Acting ends the escalation: no timer of the step is left behind.
    s.act("clerk", "accept", json!({}));
    assert!(s.timers.keys().all(|id| !id.starts_with("v1.")), "{:?}", s.timers);
    // Into publicity, a waiting period that owes nobody anything: nothing escalates.
    s.act("clerk", "pass", json!({"compliance_report": "合规"}));
    s.advance_to("2026-03-20T12:00:00+08:00");
    assert_eq!(s.escalations().len(), 4);
}

pub fn refusals_change_nothing() {
    let mut s = registration("2026-03-02T09:00:00+08:00");
    s.person("outsider", "registration_agency", "jinan-registry").person("viewer", "registrant", "taian-registry");
    let before = s.state.clone();
    let cases = [
        ("outsider", "accept", json!({}), RefusalKind::WrongOrganization, None),
        ("viewer", "accept", json!({}), RefusalKind::WrongRole, None),
        ("clerk", "pass", json!({"compliance_report": "x"}), RefusalKind::NotAllowed, None),
        ("clerk", "reject", json!({}), RefusalKind::InvalidData, Some("reasons")),
        ("clerk", "reject", json!({"reasons": "x", "extra": 1}), RefusalKind::InvalidData, Some("extra")),
        ("clerk", "reject", json!({"reasons": 7}), RefusalKind::InvalidData, Some("reasons")),
        ("provider", "supplement", json!({"materials": "x"}), RefusalKind::Conflict, None),
    ];
    for (who, action, data, kind, field) in cases {
        let refusal = s.try_act(who, action, data).unwrap_err();
        assert_eq!(refusal.kind, kind, "{who} {action}: {refusal:?}");
        assert_eq!(refusal.field.as_deref(), field, "{who} {action}");
        assert_eq!(s.state, before, "{who} {action} changed the state");
    }
    let not_allowed = s.try_act("clerk", "pass", json!({"compliance_report": "x"})).unwrap_err();
    assert_eq!(not_allowed.message, "action `pass` is not allowed in step `acceptance` (登记受理); allowed: accept, reject, request_supplement, supplement");
    s.act("clerk", "reject", json!({"reasons": "x"}));
    let done = s.try_act("clerk", "accept", json!({})).unwrap_err();
    assert_eq!((done.kind, done.message.as_str()), (RefusalKind::NotRunning, "the instance has completed (rejected)"));
    let bad_input =
        Scenario::try_start("registration", "taian", "2026-03-02T09:00:00+08:00", json!({"resource_name": "x"}));
    assert_eq!(bad_input.err().and_then(|r| r.field), Some("agency_org".to_owned()));
}

pub fn provisional_deadline_is_recomputed_when_2027_is_imported() {
    let mut s = registration("2026-12-29T10:00:00+08:00");
    let deadline = s.state.step.as_ref().unwrap().deadline.clone().unwrap();
    assert!(deadline.provisional);
    assert_eq!(deadline.due, Some(t("2027-01-02T00:00:00+08:00")));
    let json = r#"{"year":2027,"papers":["test"],"days":[{"name":"元旦","date":"2027-01-01","isOffDay":true}]}"#;
    s.calendar.import(parse_holiday_cn_json(json, "2027.json").unwrap(), "2027.json").unwrap();
    s.take();
    s.apply(Event::CalendarChanged).unwrap();
    let deadline = s.state.step.as_ref().unwrap().deadline.clone().unwrap();
    assert!(!deadline.provisional);
    assert_eq!(deadline.due, Some(t("2027-01-05T00:00:00+08:00")));
    let commands = s.take();
    assert!(commands.iter().any(|c| matches!(c, Command::DeadlineChanged { deadline, .. } if !deadline.provisional)));
    assert!(commands.iter().any(|c| matches!(c, Command::ScheduleTimer { kind: TimerKind::Deadline, at, .. } if *at == t("2027-01-05T00:00:00+08:00"))));
    // A second notice of the same content changes nothing.
    s.apply(Event::CalendarChanged).unwrap();
    assert!(s.take().is_empty());
}

/// An administrator of the agency, acting in no role of its own.
fn administrator() -> Actor {
    Actor { id: "admin".into(), roles: vec![], organizations: vec![], administrator: true, request: None }
}

fn end(how: Ending, reason: &str) -> Event {
    Event::Ended { actor: administrator(), how, reason: reason.into() }
}

pub fn an_administrator_cancels_or_terminates_with_a_reason() {
    // Cancelled while the agency reviews it: the registrant and the task's holder are told
    // why, the deadline's timers stop and the task closes.
    let mut s = registration("2026-03-02T09:00:00+08:00");
    s.act("clerk", "accept", json!({}));
    s.take();
    s.apply(end(Ending::Cancelled, "登记主体撤回申请")).unwrap();
    assert_eq!(s.outcome(), Some("cancelled"));
    assert!(s.timers.is_empty(), "no timer outlives the instance: {:?}", s.timers);
    let commands = s.take();
    assert!(commands.iter().any(|c| matches!(c, Command::CloseTask { .. })), "{commands:?}");
    let told: Vec<_> = commands
        .iter()
        .filter_map(|c| match c {
            Command::RunActivity { activity: Activity::Notify { to, template, deadline, reason, .. }, .. } => {
                assert_eq!(reason.as_deref(), Some("登记主体撤回申请"));
                Some((to[0].role.clone(), to[0].organization.clone(), template.clone(), deadline.is_none()))
            }
            _ => None,
        })
        .collect();
    let cancelled = |role: &str, org: &str| (role.to_owned(), Some(org.to_owned()), "procedure_cancelled".into(), true);
    assert_eq!(told, vec![cancelled("registrant", "taian-market"), cancelled("registration_agency", "taian-registry")]);
    // Over: nothing more is taken, and nothing is done twice.
    let refused = s.try_act("clerk", "pass", json!({"compliance_report": "合规"})).unwrap_err();
    assert_eq!(refused.kind, RefusalKind::NotRunning);
    assert!(refused.message.contains("cancelled"), "{refused:?}");
    assert_eq!(s.apply(end(Ending::Terminated, "again")).unwrap_err().kind, RefusalKind::NotRunning);

    // Terminated: ended and recorded, and nobody is told.
    let mut s = registration("2026-03-02T09:00:00+08:00");
    s.take();
    s.apply(end(Ending::Terminated, "重复录入")).unwrap();
    assert_eq!(s.outcome(), Some("terminated"));
    assert!(s.timers.is_empty());
    assert!(!s.take().iter().any(|c| matches!(c, Command::RunActivity { .. })));
}

pub fn only_an_administrator_ends_or_moves_and_always_with_a_reason() {
    let mut s = registration("2026-03-02T09:00:00+08:00");
    let clerk = Actor {
        id: "clerk".into(),
        roles: vec!["registration_agency".into()],
        organizations: vec!["taian-registry".into()],
        administrator: false,
        request: None,
    };
    let by_clerk = Event::Ended { actor: clerk.clone(), how: Ending::Cancelled, reason: "不想办了".into() };
    assert_eq!(s.apply(by_clerk).unwrap_err().kind, RefusalKind::NotAdministrator);
    let moved_by_clerk = Event::Moved { actor: clerk, step: "publicity".into(), reason: "跳过审查".into() };
    assert_eq!(s.apply(moved_by_clerk).unwrap_err().kind, RefusalKind::NotAdministrator);
    let no_reason = s.apply(end(Ending::Cancelled, "  ")).unwrap_err();
    assert_eq!((no_reason.kind, no_reason.field.as_deref()), (RefusalKind::InvalidData, Some("reason")));
    let nowhere = Event::Moved { actor: administrator(), step: "approval".into(), reason: "修复".into() };
    let nowhere = s.apply(nowhere).unwrap_err();
    assert_eq!(nowhere.field.as_deref(), Some("step"));
    assert!(nowhere.message.contains("acceptance") && nowhere.message.contains("publicity"), "{nowhere:?}");
    s.expect_step("acceptance");
    assert_eq!(s.due(), Some(t("2026-03-06T00:00:00+08:00")), "nothing refused changed the deadline");
}

pub fn an_administrator_moves_a_stuck_instance_and_its_step_begins_afresh() {
    // Stuck in substantive review past its limit (the reviewer left); the administrator
    // sends it back to acceptance on 03-20: a fresh task and a fresh 3-working-day limit.
    let mut s = registration("2026-03-02T09:00:00+08:00");
    s.act("clerk", "accept", json!({}));
    s.advance_to("2026-03-20T10:00:00+08:00");
    assert!(s.state.step.as_ref().unwrap().deadline.as_ref().unwrap().overdue);
    s.take();
    let moved =
        Event::Moved {
            actor: administrator(), step: "acceptance".into(), reason: "审查人员离职,重新受理".into()
        };
    s.apply(moved).unwrap();
    s.expect_step("acceptance");
    assert_eq!(s.due(), Some(t("2026-03-26T00:00:00+08:00")), "3 working days from 03-20");
    let deadline = s.state.step.as_ref().unwrap().deadline.as_ref().unwrap();
    assert!(!deadline.overdue);
    let commands = s.take();
    assert!(commands.iter().any(|c| matches!(c, Command::CloseTask { .. })));
    assert!(commands.iter().any(|c| matches!(c, Command::OpenTask { .. })));
    // The overdue step's escalation timers are gone; the new step's reminders are set.
    assert!(s.timers.keys().all(|id| !id.contains("substantive_review")), "{:?}", s.timers);
    // And the procedure goes on from there.
    s.act("clerk", "accept", json!({})).expect_step("substantive_review");
}

/// A corrected registration: the substantive review runs 20 working days, and publicity is
/// renamed `public_notice`.
fn corrected_registration() -> &'static Definition {
    let text = include_str!("../../procedures/registration.taian.toml")
        .replace(
            "[steps.substantive_review.deadline]\nworking_days = 5",
            "[steps.substantive_review.deadline]\nworking_days = 20",
        )
        .replace("steps.publicity", "steps.public_notice")
        .replace("\"publicity\"", "\"public_notice\"");
    let definition = Definition::load(&text, "registration.taian.toml").unwrap_or_else(|e| panic!("{e:?}"));
    Box::leak(Box::new(definition))
}

fn migration(s: &Scenario, to: &Definition, steps: &[(&str, &str)], deadline: MigratedDeadline) -> Event {
    Event::Migrated {
        actor: administrator(),
        from_version: s.state.version.clone(),
        to_version: to.version.clone(),
        steps: steps.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect(),
        deadline,
        reason: "定义更正".into(),
    }
}

/// Applies `event` with `definition`, as a runtime applies a migration.
fn migrate(
    s: &mut Scenario,
    definition: &'static Definition,
    event: Event,
) -> Result<(), statflow_workflows::engine::Refusal> {
    let before = s.definition;
    s.definition = definition;
    let applied = s.apply(event);
    if applied.is_err() {
        s.definition = before;
    }
    applied
}

pub fn a_running_instance_migrates_keeping_or_recomputing_its_deadline() {
    let corrected = corrected_registration();
    // In substantive review since Monday 03-02 11:00: due after 5 working days (03-09 ends).
    let start = |s: &mut Scenario| {
        s.advance_to("2026-03-02T11:00:00+08:00").act("clerk", "accept", json!({}));
        s.advance_to("2026-03-04T10:00:00+08:00");
        s.take();
    };
    let mut kept = registration("2026-03-02T09:00:00+08:00");
    start(&mut kept);
    assert_eq!(kept.due(), Some(t("2026-03-10T00:00:00+08:00")));
    let event = migration(&kept, corrected, &[], MigratedDeadline::Keep);
    migrate(&mut kept, corrected, event).unwrap();
    assert_eq!(kept.state.version, corrected.version);
    kept.expect_step("substantive_review");
    assert_eq!(kept.due(), Some(t("2026-03-10T00:00:00+08:00")), "kept as it stood");
    assert!(!kept.take().iter().any(|c| matches!(c, Command::OpenTask { .. } | Command::CloseTask { .. })));

    // Recomputed: 20 working days from acceptance on 03-02 end with 03-30.
    let mut recounted = registration("2026-03-02T09:00:00+08:00");
    start(&mut recounted);
    let event = migration(&recounted, corrected, &[], MigratedDeadline::Recompute);
    migrate(&mut recounted, corrected, event).unwrap();
    assert_eq!(recounted.due(), Some(t("2026-03-31T00:00:00+08:00")));
    let moved = recounted.take();
    assert!(moved.iter().any(|c| matches!(c, Command::DeadlineChanged { .. })), "{moved:?}");
    assert_eq!(recounted.timers.get("v2.deadline").map(|t| t.0), Some(t("2026-03-31T00:00:00+08:00")));
    // The same task goes on, and the procedure with it, on the new version.
    recounted.act("clerk", "pass", json!({"compliance_report": "合规"})).expect_step("public_notice");
}

pub fn a_migration_maps_renamed_steps_and_refuses_what_does_not_fit() {
    let corrected = corrected_registration();
    let mut s = registration("2026-03-02T09:00:00+08:00");
    s.act("clerk", "accept", json!({})).act("clerk", "pass", json!({"compliance_report": "合规"}));
    s.expect_step("publicity");
    let due = s.due();
    s.take();
    // Unmapped, the renamed step has nowhere to go; nothing changes.
    let unmapped = migration(&s, corrected, &[], MigratedDeadline::Keep);
    let unmapped = migrate(&mut s, corrected, unmapped).unwrap_err();
    assert_eq!(unmapped.field.as_deref(), Some("steps"), "{unmapped:?}");
    assert!(unmapped.message.contains("`publicity`"), "{unmapped:?}");
    // Mapped to a final step, or by someone who is not an administrator: refused.
    let to_end = migration(&s, corrected, &[("publicity", "registered")], MigratedDeadline::Keep);
    assert_eq!(migrate(&mut s, corrected, to_end).unwrap_err().field.as_deref(), Some("steps"));
    let mut by_clerk = migration(&s, corrected, &[("publicity", "public_notice")], MigratedDeadline::Keep);
    if let Event::Migrated { actor, .. } = &mut by_clerk {
        actor.administrator = false;
    }
    assert_eq!(migrate(&mut s, corrected, by_clerk).unwrap_err().kind, RefusalKind::NotAdministrator);
    // From a version it does not run, or to the one it runs: refused.
    let mut stale = migration(&s, corrected, &[("publicity", "public_notice")], MigratedDeadline::Keep);
    if let Event::Migrated { from_version, .. } = &mut stale {
        *from_version = "0000".into();
    }
    assert_eq!(migrate(&mut s, corrected, stale).unwrap_err().field.as_deref(), Some("from_version"));
    s.expect_step("publicity");

    let mapped = migration(&s, corrected, &[("publicity", "public_notice")], MigratedDeadline::Keep);
    migrate(&mut s, corrected, mapped).unwrap();
    s.expect_step("public_notice");
    assert_eq!(s.due(), due, "the publicity period runs on");
    let again = migration(&s, corrected, &[], MigratedDeadline::Keep);
    assert_eq!(migrate(&mut s, corrected, again).unwrap_err().field.as_deref(), Some("to_version"));
    // Its expiry takes it on as the new version says.
    s.advance_to("2026-03-20T08:00:00+08:00").expect_step("rights_confirmation");
}
