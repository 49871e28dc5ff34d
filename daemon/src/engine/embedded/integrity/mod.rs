//! Tamper evidence: checking instances against their history, the ledger and the anchors,
//! flagging what fails, and taking the day's anchor.
//!
//! - [`checks`]: the four checks of one instance (chain, head, ledger, replay).
//! - [`anchors`]: the anchoring key, anchor records and the append-only anchor file.
//! - [`verify`]: verifying one instance or the whole store in bounded memory.
//!
//! A failed check flags the instance (`instances.flagged`): it refuses further actions and
//! is listed for administrators, who can read and export its history as stored.

pub mod anchors;
pub mod checks;
pub mod verify;

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{json, Value};
use statflow_activities::email::Email;
use statflow_activities::templates::Rendered;
use statflow_activities::Failure;

use super::delivery::Channels;
use super::Runtime;
use crate::store::entities::{anchors as anchor_rows, instances, outbox};
use crate::store::{from_millis, ledger, to_millis, StoreError};
use anchors::{Anchor, Anchoring};

/// The outbox kind of an anchor mailed to its recipients.
pub const ANCHOR_KIND: &str = "anchor";

static NO_ANCHORING: Anchoring = Anchoring { key: None, file: None, mail_to: Vec::new() };

impl Runtime {
    /// Where anchors go (nowhere but the database until configured).
    pub fn anchoring(&self) -> &Anchoring {
        self.anchoring.get().unwrap_or(&NO_ANCHORING)
    }

    /// Sets where anchors go; once, at start.
    pub fn configure_anchoring(&self, anchoring: Anchoring) {
        self.anchoring.set(anchoring).ok();
    }

    /// Flags an instance that failed verification (once: the first reason stays) and
    /// records it in the audit log. Returns whether it was newly flagged.
    pub async fn flag(&self, id: i64, reason: &str) -> Result<bool, StoreError> {
        let flagged = instances::Entity::update_many()
            .col_expr(instances::Column::Flagged, Some(reason.to_owned()).into())
            .filter(instances::Column::Id.eq(id))
            .filter(instances::Column::Flagged.is_null())
            .exec(&self.store.db)
            .await?
            .rows_affected
            == 1;
        if flagged {
            tracing::warn!(instance = id, %reason, "instance failed verification and is flagged");
            self.store.audit("verification", "instance.flagged", &id.to_string(), json!({"reason": reason})).await?;
        }
        Ok(flagged)
    }

    /// Takes the anchor of `fire`: the ledger's head now, stored, appended to the anchor file,
    /// and queued for mail. Taking the same fire time again (after a crash) reuses the stored
    /// anchor. Returns the run's status, result and error.
    pub async fn anchor_ledger(
        &self,
        fire: chrono::DateTime<chrono::FixedOffset>,
    ) -> Result<(&'static str, Value, Option<String>), StoreError> {
        let at = to_millis(fire);
        let anchoring = self.anchoring();
        let anchor =
            match anchor_rows::Entity::find().filter(anchor_rows::Column::At.eq(at)).one(&self.store.db).await? {
                Some(row) => Anchor {
                    at,
                    ledger_seq: row.ledger_seq,
                    ledger_hash: row.ledger_hash,
                    key_id: row.key_id,
                    signature: row.signature,
                },
                None => {
                    let (seq, hash) = ledger::head(&self.store.db).await?;
                    let anchor = Anchor::new(at, seq, hash, anchoring.key.as_ref());
                    // The file first: an anchor in the database but not in the file would be
                    // the weaker record.
                    if let Some(file) = &anchoring.file {
                        if let Err(error) = anchors::append_to_file(file, &anchor) {
                            tracing::error!(%error, "the ledger anchor could not be written");
                            return Ok(("failed", json!({"at": fire}), Some(error)));
                        }
                    }
                    anchor_rows::ActiveModel {
                        at: Set(anchor.at),
                        ledger_seq: Set(anchor.ledger_seq),
                        ledger_hash: Set(anchor.ledger_hash.clone()),
                        key_id: Set(anchor.key_id.clone()),
                        signature: Set(anchor.signature.clone()),
                        ..Default::default()
                    }
                    .insert(&self.store.db)
                    .await?;
                    anchor
                }
            };
        if !anchoring.mail_to.is_empty() {
            let payload = json!({"to": anchoring.mail_to, "anchor": anchor});
            let key = format!("{ANCHOR_KIND}/{at}");
            self.store.enqueue_effect(None, &key, ANCHOR_KIND, &payload, to_millis(self.clock.now())).await?;
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
        Ok(("done", result, None))
    }

    /// Mails an anchor to its recipients.
    pub(super) async fn send_anchor(&self, channels: &Channels, row: &outbox::Model) -> Result<Value, Failure> {
        #[derive(serde::Deserialize)]
        struct Payload {
            to: Vec<String>,
            anchor: Anchor,
        }
        let payload: Payload =
            serde_json::from_str(&row.payload).map_err(|e| Failure::permanent(format!("unreadable anchor: {e}")))?;
        let anchor = &payload.anchor;
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
        let message_id = channels.mailer.send(&Email { key: &row.key, to: &payload.to, content: &content }).await?;
        Ok(json!({"message_id": message_id, "to": payload.to}))
    }
}
