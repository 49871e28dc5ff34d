//! The effects the outbox holds, as one typed vocabulary: what a transition (or a schedule
//! job) asks to be carried out after commit. A row stores the kind and the payload as JSON;
//! [`Effect::decode`] reads them back strictly, so a malformed row is an error naming what
//! is wrong instead of a field read as empty.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use statflow_activities::templates::DigestContext;
use statflow_workflows::engine::Activity;

use super::ledger::Anchor;
use super::records::stored_text;

stored_text!(
    /// The outbox's `kind` column: which worker takes the effect and how its payload reads.
    EffectKind {
        Notify => "notify",
        Escalate => "escalate",
        IssueCertificate => "issue_certificate",
        SetStatus => "set_status",
        ChangeAccess => "change_access",
        WriteReport => "write_report",
        StartChild => "start_child",
        SignalInstance => "signal_instance",
        ChildCompleted => "child_completed",
        Webhook => "webhook",
        Digest => "digest",
        Anchor => "anchor",
        TaskNotice => "task_notice",
    }
);

impl EffectKind {
    /// The kinds the delivery worker sends (mail and webhooks); the outbox worker carries out
    /// the rest itself.
    pub const DELIVERED: [EffectKind; 6] = [
        EffectKind::Notify,
        EffectKind::Escalate,
        EffectKind::Webhook,
        EffectKind::Digest,
        EffectKind::Anchor,
        EffectKind::TaskNotice,
    ];

    /// The kinds carried out inside statflow (records, children, signals).
    pub const INTERNAL: [EffectKind; 7] = [
        EffectKind::IssueCertificate,
        EffectKind::SetStatus,
        EffectKind::ChangeAccess,
        EffectKind::WriteReport,
        EffectKind::StartChild,
        EffectKind::SignalInstance,
        EffectKind::ChildCompleted,
    ];

    /// Whether it is an instance's own effect (all but digests and anchors, which belong to
    /// no instance): the Temporal engine's workflows carry these out as activities.
    pub fn of_an_instance(self) -> bool {
        !matches!(self, EffectKind::Digest | EffectKind::Anchor)
    }

    /// Whether the delivery worker sends it (a message) rather than the outbox worker.
    pub fn is_delivered(self) -> bool {
        EffectKind::DELIVERED.contains(&self)
    }

    /// Whether the instance waits for its outcome (`ActivityCompleted`/`ActivityFailed`): so
    /// for the interpreter's activities; not for a notice's webhook copy, a task's notice (the
    /// engine's own), nor children, signals and reports to parents (quiet once done).
    pub fn reports(self) -> bool {
        matches!(
            self,
            EffectKind::Notify
                | EffectKind::Escalate
                | EffectKind::IssueCertificate
                | EffectKind::SetStatus
                | EffectKind::ChangeAccess
                | EffectKind::WriteReport
        )
    }

    /// The kind of an interpreter activity.
    pub fn of_activity(activity: &Activity) -> EffectKind {
        match activity {
            Activity::Notify { .. } => EffectKind::Notify,
            Activity::Escalate { .. } => EffectKind::Escalate,
            Activity::IssueCertificate { .. } => EffectKind::IssueCertificate,
            Activity::SetStatus { .. } => EffectKind::SetStatus,
            Activity::ChangeAccess { .. } => EffectKind::ChangeAccess,
            Activity::WriteReport { .. } => EffectKind::WriteReport,
        }
    }
}

/// A child procedure a step starts (at least once: the parent's key makes it unique).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildStart {
    pub key: String,
    pub procedure: String,
    pub jurisdiction: String,
    #[serde(default)]
    pub input: Value,
}

/// A signal to another instance (an evaluation suspending an authorization).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceSignal {
    /// The target instance's id.
    pub target: String,
    pub signal: String,
    #[serde(default)]
    pub data: Value,
}

/// A finished child's outcome, reported to its parent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildOutcome {
    pub parent: i64,
    pub key: String,
    pub outcome: String,
}

/// A staff member's daily digest, as it stood at the fire time (links relative to the
/// daemon's base URL).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DigestMail {
    pub to: String,
    pub digest: DigestContext,
}

/// A ledger anchor mailed to its recipients (the regulator).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnchorMail {
    pub to: Vec<String>,
    pub anchor: Anchor,
}

/// One effect to carry out after commit.
#[derive(Clone, Debug)]
pub enum Effect {
    /// An activity of the interpreter: a notice, an escalation, or a record to make.
    Activity(Activity),
    StartChild(ChildStart),
    SignalInstance(InstanceSignal),
    ChildCompleted(ChildOutcome),
    /// An event for the agency's or regulator's own system, posted as it is.
    Webhook(Value),
    Digest(DigestMail),
    Anchor(AnchorMail),
    /// The notice of a task just opened, to whoever holds its role in its organization: the
    /// engine's own (no definition names it), so its outcome is not reported to the instance.
    TaskOpened(Activity),
}

impl Effect {
    pub fn kind(&self) -> EffectKind {
        match self {
            Effect::Activity(activity) => EffectKind::of_activity(activity),
            Effect::StartChild(_) => EffectKind::StartChild,
            Effect::SignalInstance(_) => EffectKind::SignalInstance,
            Effect::ChildCompleted(_) => EffectKind::ChildCompleted,
            Effect::Webhook(_) => EffectKind::Webhook,
            Effect::Digest(_) => EffectKind::Digest,
            Effect::Anchor(_) => EffectKind::Anchor,
            Effect::TaskOpened(_) => EffectKind::TaskNotice,
        }
    }

    /// The payload column's text.
    pub fn payload(&self) -> String {
        let value = match self {
            Effect::Activity(activity) => serde_json::to_value(activity),
            Effect::StartChild(start) => serde_json::to_value(start),
            Effect::SignalInstance(signal) => serde_json::to_value(signal),
            Effect::ChildCompleted(outcome) => serde_json::to_value(outcome),
            Effect::Webhook(event) => Ok(event.clone()),
            Effect::Digest(digest) => serde_json::to_value(digest),
            Effect::Anchor(anchor) => serde_json::to_value(anchor),
            Effect::TaskOpened(notice) => serde_json::to_value(notice),
        };
        value.expect("effects serialize").to_string()
    }

    /// Reads a stored payload of `kind`.
    pub fn decode(kind: EffectKind, payload: &str) -> Result<Effect, serde_json::Error> {
        Ok(match kind {
            EffectKind::Notify
            | EffectKind::Escalate
            | EffectKind::IssueCertificate
            | EffectKind::SetStatus
            | EffectKind::ChangeAccess
            | EffectKind::WriteReport => {
                let activity: Activity = serde_json::from_str(payload)?;
                if EffectKind::of_activity(&activity) != kind {
                    return Err(serde::de::Error::custom(format!(
                        "the payload is a {} activity, not {kind}",
                        EffectKind::of_activity(&activity)
                    )));
                }
                Effect::Activity(activity)
            }
            EffectKind::StartChild => Effect::StartChild(serde_json::from_str(payload)?),
            EffectKind::SignalInstance => Effect::SignalInstance(serde_json::from_str(payload)?),
            EffectKind::ChildCompleted => Effect::ChildCompleted(serde_json::from_str(payload)?),
            EffectKind::Webhook => Effect::Webhook(serde_json::from_str(payload)?),
            EffectKind::Digest => Effect::Digest(serde_json::from_str(payload)?),
            EffectKind::Anchor => Effect::Anchor(serde_json::from_str(payload)?),
            EffectKind::TaskNotice => Effect::TaskOpened(serde_json::from_str(payload)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_effect_reads_back_as_written_and_a_malformed_one_says_why() {
        let effects = [
            Effect::Activity(Activity::IssueCertificate { kind: "registration".into(), basis: None }),
            Effect::StartChild(ChildStart {
                key: "e3.0".into(),
                procedure: "rectification".into(),
                jurisdiction: "taian".into(),
                input: serde_json::json!({"a": 1}),
            }),
            Effect::SignalInstance(InstanceSignal { target: "7".into(), signal: "suspend".into(), data: Value::Null }),
            Effect::ChildCompleted(ChildOutcome { parent: 3, key: "e2.0".into(), outcome: "passed".into() }),
            Effect::Webhook(serde_json::json!({"event": "escalation"})),
            Effect::TaskOpened(Activity::Notify {
                to: vec![],
                template: "task_opened".into(),
                step: "acceptance".into(),
                deadline: None,
                basis: None,
                reason: Some("登记主体撤回申请".into()),
            }),
        ];
        for effect in effects {
            let back = Effect::decode(effect.kind(), &effect.payload()).unwrap();
            assert_eq!((back.kind(), back.payload()), (effect.kind(), effect.payload()));
        }
        let error = Effect::decode(EffectKind::SignalInstance, r#"{"signal": "suspend"}"#).unwrap_err();
        assert!(error.to_string().contains("target"), "{error}");
        let certificate = Effect::Activity(Activity::IssueCertificate { kind: "x".into(), basis: None }).payload();
        assert!(Effect::decode(EffectKind::Notify, &certificate).is_err(), "a kind and payload that disagree");
    }
}
