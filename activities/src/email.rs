//! Email delivery: SMTP through lettre when a server is configured, otherwise a local mail
//! spool directory, so the embedded default works with nothing else installed.
//!
//! Every message carries a `Message-ID` derived from its idempotency key: if the daemon dies
//! between sending and recording the send, the redelivered message is recognisably the same
//! one (and the spool simply rewrites the same file).
//!
//! The spool is durable in passes: [`Mailer::send`] writes a message under a temporary name,
//! and [`Mailer::flush`] syncs every message written since the last flush, then gives each
//! its final name, so a burst of notices costs one round of flushes rather than a
//! synchronous write per message, and a reader never sees half a message even after a
//! crash. A message counts as sent only once flushed.

use std::path::PathBuf;
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

/// How many spool files are flushed side by side where `syncfs` is not available.
#[cfg(not(target_os = "linux"))]
const FLUSHES_AT_ONCE: usize = 8;

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
        /// Messages written since the last flush: (temporary name, final name).
        unflushed: Mutex<Vec<(PathBuf, PathBuf)>>,
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
        Ok(Mailer::Spool { directory, from, domain, unflushed: Mutex::new(Vec::new()) })
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
            Mailer::Spool { directory, unflushed, .. } => {
                let name = key_digest(email.key);
                let temporary = directory.join(format!(".{name}.tmp"));
                let formatted = message.formatted();
                let written = temporary.clone();
                tokio::task::spawn_blocking(move || std::fs::write(&written, formatted))
                    .await
                    .map_err(|e| Failure::transient(format!("mail spool: {e}")))?
                    .map_err(|e| Failure::transient(format!("mail spool {}: {e}", directory.display())))?;
                let done = directory.join(format!("{name}.eml"));
                unflushed.lock().expect("not poisoned").push((temporary, done));
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
        let mut written = std::mem::take(&mut *unflushed.lock().expect("not poisoned"));
        // A message sent twice before a flush (a retry) is one file.
        written.sort();
        written.dedup();
        if written.is_empty() {
            return Ok(());
        }
        sync_files(directory, &written).await?;
        let directory = directory.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            for (temporary, done) in &written {
                std::fs::rename(temporary, done)?;
            }
            // The renames themselves.
            std::fs::File::open(&directory)?.sync_all()
        })
        .await
        .map_err(|e| Failure::transient(format!("mail spool: {e}")))?
        .map_err(|e| Failure::transient(format!("mail spool: {e}")))
    }
}

/// Makes the contents of the spool's `written` files durable. On Linux one `syncfs` of the
/// spool's file system commits them all at once: a pass of 256 messages is one journal
/// commit, where a `fdatasync` each cost a commit each.
#[cfg(target_os = "linux")]
async fn sync_files(directory: &std::path::Path, _written: &[(PathBuf, PathBuf)]) -> Result<(), Failure> {
    let spool = directory.to_owned();
    tokio::task::spawn_blocking(move || sync_file_system(&std::fs::File::open(spool)?))
        .await
        .map_err(|e| Failure::transient(format!("mail spool: {e}")))?
        .map_err(|e| Failure::transient(format!("mail spool {}: {e}", directory.display())))
}

/// Makes the contents of the spool's `written` files durable, flushed side by side so the
/// file system can commit them together.
#[cfg(not(target_os = "linux"))]
async fn sync_files(directory: &std::path::Path, written: &[(PathBuf, PathBuf)]) -> Result<(), Failure> {
    let chunk = written.len().div_ceil(FLUSHES_AT_ONCE);
    let mut syncs = tokio::task::JoinSet::new();
    for files in written.chunks(chunk) {
        let files: Vec<PathBuf> = files.iter().map(|(temporary, _)| temporary.clone()).collect();
        syncs.spawn_blocking(move || files.iter().try_for_each(|f| std::fs::File::open(f)?.sync_data()));
    }
    while let Some(sync) = syncs.join_next().await {
        sync.map_err(|e| Failure::transient(format!("mail spool: {e}")))?
            .map_err(|e| Failure::transient(format!("mail spool {}: {e}", directory.display())))?;
    }
    Ok(())
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
