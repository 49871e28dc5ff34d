//! Email delivery: SMTP through lettre when a server is configured, otherwise a local mail
//! spool directory, so the embedded default works with nothing else installed.
//!
//! Every message carries a `Message-ID` derived from its idempotency key: if the daemon dies
//! between sending and recording the send, the redelivered message is recognisably the same
//! one (and the spool simply rewrites the same file).
//!
//! The spool is durable in passes: [`Mailer::send`] keeps a message in memory, and
//! [`Mailer::flush`] writes every message sent since the last flush under a temporary name,
//! syncs them, then gives each its final name, all in one blocking call: a burst of notices
//! costs one round of flushes and one trip to a blocking thread rather than a write and a
//! trip per message, and a reader never sees half a message even after a crash. A message
//! counts as sent only once flushed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::templates::Rendered;
use crate::{key_digest, Failure};

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (usually port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a test server.
    None,
}

/// The `[smtp]` section of the configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: Option<u16>,
    #[serde(default)]
    pub security: Security,
    pub username: Option<String>,
    /// Never printed: `Debug` shows it redacted, and it leaves the wrapper only for login.
    pub password: Option<secrecy::SecretString>,
    /// Seconds to wait for the server before giving up on one attempt.
    pub timeout_seconds: Option<u64>,
    /// At most this many messages are sent at once, each over its own connection (default
    /// 4): mail servers limit the connections one client may hold, and a burst such as the
    /// morning's digests must not trip that limit.
    pub max_connections: Option<usize>,
}

/// Messages sent at once when `max_connections` is not set.
const DEFAULT_MAX_CONNECTIONS: usize = 4;

/// One message to send.
pub struct Email<'a> {
    pub key: &'a str,
    pub to: &'a [String],
    pub content: &'a Rendered,
}

pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
        domain: String,
        sending: Semaphore,
    },
    Spool {
        directory: PathBuf,
        from: Mailbox,
        domain: String,
        /// Messages sent since the last flush, by file name (without extension): a message
        /// sent twice before a flush (a retry) is one file, as last sent.
        unflushed: Mutex<BTreeMap<String, Vec<u8>>>,
    },
}

impl Mailer {
    /// An SMTP mailer sending as `from`.
    pub fn smtp(config: &SmtpConfig, from: &str) -> Result<Mailer, String> {
        let from: Mailbox = from.parse().map_err(|e| format!("from address {from:?}: {e}"))?;
        let builder = match config.security {
            Security::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host),
            Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host),
            Security::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)),
        }
        .map_err(|e| format!("smtp host {:?}: {e}", config.host))?;
        let mut builder = builder.timeout(Some(Duration::from_secs(config.timeout_seconds.unwrap_or(30))));
        if let Some(port) = config.port {
            builder = builder.port(port);
        }
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            use secrecy::ExposeSecret;
            builder = builder.credentials(Credentials::new(user.clone(), password.expose_secret().to_owned()));
        }
        let domain = from.email.domain().to_owned();
        let sending = Semaphore::new(config.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS).max(1));
        Ok(Mailer::Smtp { transport: builder.build(), from, domain, sending })
    }

    /// A mailer that writes each message to `directory` as an `.eml` file.
    pub fn spool(directory: PathBuf, from: &str) -> Result<Mailer, String> {
        let from: Mailbox = from.parse().map_err(|e| format!("from address {from:?}: {e}"))?;
        std::fs::create_dir_all(&directory).map_err(|e| format!("mail spool {}: {e}", directory.display()))?;
        let domain = from.email.domain().to_owned();
        Ok(Mailer::Spool { directory, from, domain, unflushed: Mutex::new(BTreeMap::new()) })
    }

    /// The `Message-ID` of the message with idempotency key `key`.
    pub fn message_id(&self, key: &str) -> String {
        let domain = match self {
            Mailer::Smtp { domain, .. } | Mailer::Spool { domain, .. } => domain,
        };
        format!("<{}@{domain}>", key_digest(key))
    }

    /// Sends one message; the error says whether trying again can help.
    pub async fn send(&self, email: &Email<'_>) -> Result<String, Failure> {
        let from = match self {
            Mailer::Smtp { from, .. } | Mailer::Spool { from, .. } => from.clone(),
        };
        let message_id = self.message_id(email.key);
        let mut builder = lettre::Message::builder().from(from).subject(&email.content.subject);
        for to in email.to {
            let mailbox: Mailbox = to.parse().map_err(|e| Failure::permanent(format!("address {to:?}: {e}")))?;
            builder = builder.to(mailbox);
        }
        let message = builder
            .message_id(Some(message_id.clone()))
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(email.content.text.clone()))
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(email.content.html.clone())),
            )
            .map_err(|e| Failure::permanent(format!("message: {e}")))?;
        match self {
            Mailer::Smtp { transport, sending, .. } => {
                // Held until this message is sent: it is one of the connections allowed.
                let _turn = sending.acquire().await.map_err(|_| Failure::transient("the mailer is shutting down"))?;
                match transport.send(message).await {
                    Ok(_) => Ok(message_id),
                    Err(error) if error.is_permanent() => Err(Failure::permanent(format!("smtp: {error}"))),
                    Err(error) => Err(Failure::transient(format!("smtp: {error}"))),
                }
            }
            Mailer::Spool { unflushed, .. } => {
                unflushed.lock().expect("not poisoned").insert(key_digest(email.key), message.formatted());
                Ok(message_id)
            }
        }
    }

    /// Makes every message sent since the last flush durable. SMTP needs nothing: a message
    /// the server accepted is the server's. A failure means none of them counts as sent.
    pub async fn flush(&self) -> Result<(), Failure> {
        let Mailer::Spool { directory, unflushed, .. } = self else {
            return Ok(());
        };
        let messages = std::mem::take(&mut *unflushed.lock().expect("not poisoned"));
        if messages.is_empty() {
            return Ok(());
        }
        let spool = directory.clone();
        tokio::task::spawn_blocking(move || write_durably(&spool, &messages))
            .await
            .map_err(|e| Failure::transient(format!("mail spool: {e}")))?
            .map_err(|e| Failure::transient(format!("mail spool {}: {e}", directory.display())))
    }
}

/// Writes `messages` (by file name) into the spool `directory`: each under a temporary name,
/// then all made durable, then each renamed to `{name}.eml` and the renames made durable.
fn write_durably(directory: &Path, messages: &BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    let temporary = |name: &str| directory.join(format!(".{name}.tmp"));
    for (name, message) in messages {
        std::fs::write(temporary(name), message)?;
    }
    sync_written(directory, messages.keys().map(|name| temporary(name)))?;
    for name in messages.keys() {
        std::fs::rename(temporary(name), directory.join(format!("{name}.eml")))?;
    }
    // The renames themselves.
    std::fs::File::open(directory)?.sync_all()
}

/// Makes the contents of the spool's `written` files durable. On Linux one `syncfs` of the
/// spool's file system commits them all at once: a pass of 256 messages is one journal
/// commit, where a `fdatasync` each cost a commit each.
#[cfg(target_os = "linux")]
fn sync_written(directory: &Path, _written: impl Iterator<Item = PathBuf>) -> std::io::Result<()> {
    sync_file_system(&std::fs::File::open(directory)?)
}

/// Makes the contents of the spool's `written` files durable, one after the other.
#[cfg(not(target_os = "linux"))]
fn sync_written(_directory: &Path, mut written: impl Iterator<Item = PathBuf>) -> std::io::Result<()> {
    written.try_for_each(|file| std::fs::File::open(file)?.sync_data())
}

/// `syncfs(2)`: writes back every dirty page of the file system holding `file` and waits for
/// it; since Linux 5.8 it reports a write-back error of any file there.
#[cfg(target_os = "linux")]
fn sync_file_system(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the duration of the call; syncfs reads nothing else.
    match unsafe { libc::syncfs(file.as_raw_fd()) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spooled(directory: &Path) -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> = std::fs::read_dir(directory)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .map(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        files.sort();
        files
    }

    #[tokio::test]
    async fn the_spool_writes_a_pass_at_its_flush_one_file_per_message_as_last_sent() {
        let directory = std::env::temp_dir().join(format!("statflow-spool-{}", std::process::id()));
        std::fs::remove_dir_all(&directory).ok();
        let mailer = Mailer::spool(directory.clone(), "statflow <statflow@spool.example>").unwrap();
        let content =
            |subject: &str| Rendered { subject: subject.into(), text: "正文\n".into(), html: "<p>正文</p>".into() };
        let to = ["zhang@registry.example".to_owned()];
        let first = mailer.send(&Email { key: "notice/1", to: &to, content: &content("first draft") }).await.unwrap();
        mailer.send(&Email { key: "notice/2", to: &to, content: &content("another") }).await.unwrap();
        let again = mailer.send(&Email { key: "notice/1", to: &to, content: &content("sent again") }).await.unwrap();
        assert_eq!(first, again, "a message sent again keeps its Message-ID");
        assert!(spooled(&directory).is_empty(), "nothing is written before the flush");

        mailer.flush().await.unwrap();
        let files = spooled(&directory);
        let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
        let expected = [format!("{}.eml", key_digest("notice/1")), format!("{}.eml", key_digest("notice/2"))];
        let mut expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        expected.sort();
        assert_eq!(names, expected, "one file per message, no temporary file left");
        let resent = &files.iter().find(|(name, _)| name.starts_with(&key_digest("notice/1"))).unwrap().1;
        assert!(resent.contains(&format!("Message-ID: {first}")), "{resent}");
        assert!(resent.contains("Subject: sent again") && !resent.contains("first draft"), "{resent}");
        assert!(resent.contains("Content-Type: text/html"), "{resent}");

        // A flush with nothing sent since writes nothing and succeeds.
        mailer.flush().await.unwrap();
        assert_eq!(spooled(&directory).len(), 2);
        std::fs::remove_dir_all(&directory).ok();
    }
}
