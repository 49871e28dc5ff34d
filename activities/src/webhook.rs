//! The generic webhook channel: an agency's own OA or messaging system receives each event as
//! a JSON POST signed with HMAC-SHA256 over the body, keyed by a shared secret:
//!
//! ```text
//! X-Statflow-Signature: sha256=<hex of HMAC-SHA256(secret, body)>
//! X-Statflow-Delivery: <the event's idempotency key>
//! ```
//!
//! The delivery id is stable across retries so the receiver can drop duplicates.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::Failure;

/// The `[webhook]` section of the configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Never printed: `Debug` shows it redacted, and it leaves the wrapper only to sign.
    pub secret: secrecy::SecretString,
    /// Seconds to wait for the receiver before giving up on one attempt.
    pub timeout_seconds: Option<u64>,
    /// Which messages the webhook receives besides their email; by default the escalations
    /// to a regulator.
    #[serde(default = "regulator_escalations")]
    pub events: Vec<WebhookEvent>,
}

/// A kind of message the webhook may receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    /// A notice a definition sends (a new task, a certificate issued, a rectification
    /// ordered…), including a definition's own report upwards.
    Notice,
    /// A reminder before a deadline.
    Reminder,
    /// Every escalation of overdue work (to the assignee, the supervisor or the regulator).
    Escalation,
    /// Only the escalations addressed to a regulator.
    RegulatorEscalation,
}

fn regulator_escalations() -> Vec<WebhookEvent> {
    vec![WebhookEvent::RegulatorEscalation]
}

impl WebhookConfig {
    /// Whether a message of `event` (`notice`, `reminder` or `escalation`; `to_regulator` when
    /// a regulator is among its recipients) goes to the webhook too.
    pub fn wants(&self, event: WebhookEvent, to_regulator: bool) -> bool {
        self.events.iter().any(|wanted| {
            *wanted == event
                || (*wanted == WebhookEvent::RegulatorEscalation && event == WebhookEvent::Escalation && to_regulator)
        })
    }
}

/// The signature header's value for `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// POSTs `body` to the configured URL. 2xx is success; 408, 429, 5xx and transport errors
/// are worth retrying; any other status is a permanent refusal.
pub async fn post(config: &WebhookConfig, key: &str, body: String) -> Result<u16, Failure> {
    let config = config.clone();
    let key = key.to_owned();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(config.timeout_seconds.unwrap_or(30))))
            .build()
            .into();
        let response = agent
            .post(&config.url)
            .header("Content-Type", "application/json")
            .header(
                "X-Statflow-Signature",
                signature(secrecy::ExposeSecret::expose_secret(&config.secret), body.as_bytes()),
            )
            .header("X-Statflow-Delivery", key)
            .send(body.as_bytes())
            .map_err(|e| Failure::transient(format!("webhook {}: {e}", config.url)))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(status),
            408 | 429 | 500..=599 => Err(Failure::transient(format!("webhook {} answered {status}", config.url))),
            _ => Err(Failure::permanent(format!("webhook {} refused the event with {status}", config.url))),
        }
    })
    .await
    .map_err(|e| Failure::transient(format!("webhook: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn with_events(events: &str) -> WebhookConfig {
        toml::from_str(&format!("url = \"http://oa.example/hook\"\nsecret = \"s\"\n{events}")).unwrap()
    }

    #[test]
    fn by_default_only_escalations_to_a_regulator_go_to_the_webhook() {
        let config = with_events("");
        assert!(config.wants(WebhookEvent::Escalation, true));
        assert!(!config.wants(WebhookEvent::Escalation, false));
        assert!(!config.wants(WebhookEvent::Notice, true));
        assert!(!config.wants(WebhookEvent::Reminder, false));
    }

    #[test]
    fn an_agency_chooses_the_messages_its_system_receives() {
        let config = with_events("events = [\"notice\", \"reminder\", \"escalation\"]");
        assert!(config.wants(WebhookEvent::Notice, false));
        assert!(config.wants(WebhookEvent::Reminder, false));
        assert!(config.wants(WebhookEvent::Escalation, false) && config.wants(WebhookEvent::Escalation, true));
        let error =
            toml::from_str::<WebhookConfig>("url = \"u\"\nsecret = \"s\"\nevents = [\"everything\"]").unwrap_err();
        assert!(error.to_string().contains("unknown variant `everything`"), "{error}");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let webhook: WebhookConfig = toml::from_str("url = \"u\"\nsecret = \"hook-secret-7f3a\"").unwrap();
        assert!(!format!("{webhook:?}").contains("hook-secret-7f3a"));
        let smtp: crate::email::SmtpConfig =
            toml::from_str("host = \"mail\"\nusername = \"u\"\npassword = \"smtp-password-9c1e\"").unwrap();
        assert!(!format!("{smtp:?}").contains("smtp-password-9c1e"));
    }
}
