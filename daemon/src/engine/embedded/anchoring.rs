//! The daily ledger anchor, a schedule job: the ledger's head at the fire time, stored,
//! appended to the anchor file, signed when a key is configured, and mailed to the
//! configured recipients (the regulator). See `integrity::anchors`.

use serde_json::{json, Value};
use statflow_activities::email::Email;
use statflow_activities::templates::Rendered;
use statflow_activities::Failure;

use super::delivery::Channels;
use super::Embedded;
use crate::integrity::anchors;
use crate::store::effects::{AnchorMail, Effect};
use crate::store::records::{EffectRecord, RunStatus};
use crate::store::{from_millis, to_millis, StoreError};

impl Embedded {
    /// Takes the anchor of `fire`: the ledger's head now, stored, appended to the anchor file,
    /// and queued for mail. Taking the same fire time again (after a crash) reuses the stored
    /// anchor. Returns the run's status, result and error.
    pub async fn anchor_ledger(
        &self,
        fire: chrono::DateTime<chrono::FixedOffset>,
    ) -> Result<(RunStatus, Value, Option<String>), StoreError> {
        let at = to_millis(fire);
        let anchoring = self.anchoring();
        let anchor = match self.store.anchor_at(at).await? {
            Some(anchor) => anchor,
            None => {
                let (seq, hash) = self.store.ledger_head().await?;
                let anchor = anchors::take(at, seq, hash, anchoring.key.as_ref());
                // The file first: an anchor in the database but not in the file would be the
                // weaker record.
                if let Some(file) = &anchoring.file {
                    if let Err(error) = anchors::append_to_file(file, &anchor) {
                        tracing::error!(%error, "the ledger anchor could not be written");
                        return Ok((RunStatus::Failed, json!({"at": fire}), Some(error)));
                    }
                }
                self.store.insert_anchor(&anchor).await?;
                anchor
            }
        };
        if !anchoring.mail_to.is_empty() {
            let mail = Effect::Anchor(AnchorMail { to: anchoring.mail_to.clone(), anchor: anchor.clone() });
            let key = format!("anchor/{at}");
            self.store.enqueue_effect(None, &key, &mail, to_millis(self.clock.now())).await?;
            self.deliveries_changed.notify_one();
        }
        let result = json!({
            "at": fire,
            "ledger_seq": anchor.ledger_seq,
            "ledger_hash": anchor.ledger_hash,
            "signed": anchor.signature.is_some(),
            "file": anchoring.file.as_ref().map(|f| f.display().to_string()),
            "mailed_to": anchoring.mail_to,
        });
        Ok((RunStatus::Done, result, None))
    }

    /// Mails an anchor to its recipients.
    pub(super) async fn send_anchor(
        &self,
        channels: &Channels,
        row: &EffectRecord,
        mail: AnchorMail,
    ) -> Result<Value, Failure> {
        let anchor = &mail.anchor;
        let line = serde_json::to_string(anchor).expect("anchors serialize");
        let date = from_millis(anchor.at).format("%Y-%m-%d %H:%M");
        let text = format!(
            "statflow 账本锚点 / ledger anchor {date}\n\n\
             序号 seq: {}\n哈希 hash: {}\n签名 signature: {}\n\n\
             请保存本邮件。核验时 `statflow verify` 将账本与锚点比对:数据库中的记录被改写后与此锚点不符。\n\
             Keep this message: `statflow verify` compares the ledger with its anchors, and a rewritten record no longer agrees with this one.\n\n{line}\n",
            anchor.ledger_seq,
            anchor.ledger_hash,
            anchor.signature.as_deref().unwrap_or("(unsigned)"),
        );
        let html = format!("<pre>{}</pre>", text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"));
        let content = Rendered { subject: format!("statflow ledger anchor {date}"), text, html };
        let message_id = channels.mailer.send(&Email { key: &row.key, to: &mail.to, content: &content }).await?;
        Ok(json!({"message_id": message_id, "to": mail.to}))
    }
}
