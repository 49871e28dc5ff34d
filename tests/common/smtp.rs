//! A real SMTP server on loopback for tests (aiosmtpd, `tests/fixtures/smtp_sink.py`): it
//! keeps every message it accepts and refuses (550) addresses that start with `bounce@`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::scratch;

/// Waits up to 30 s for `condition`.
pub fn eventually(condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The SMTP sink, started and stopped by the test.
pub struct Sink {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Sink {
    pub fn start() -> Sink {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut sink = Sink { port, dir: scratch("smtp"), child: None };
        sink.resume();
        sink
    }

    pub fn resume(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(self.port.to_string())
            .arg(&self.dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the SMTP sink (pip install aiosmtpd)");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP sink starts (is aiosmtpd installed?)");
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Every message received so far, decoded, daily digests and task notices aside.
    pub fn messages(&self) -> Vec<Value> {
        super::read_mail(&self.dir).into_iter().filter(|m| !is_digest(m) && !is_task_notice(m)).collect()
    }

    /// The notices of tasks just opened, received so far.
    pub fn task_notices(&self) -> Vec<Value> {
        super::read_mail(&self.dir).into_iter().filter(is_task_notice).collect()
    }

    /// The daily digests received so far.
    pub fn digests(&self) -> Vec<Value> {
        super::read_mail(&self.dir).into_iter().filter(is_digest).collect()
    }

    pub fn wait_for(&self, count: usize) -> Vec<Value> {
        eventually(|| self.messages().len() >= count);
        // Anything more would be a duplicate: give it a moment to show up.
        std::thread::sleep(Duration::from_millis(1500));
        self.messages()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a message is a daily digest.
pub fn is_digest(message: &Value) -> bool {
    message["subject"].as_str().unwrap().starts_with("【每日待办】")
}

/// Whether a message tells of a task just opened.
pub fn is_task_notice(message: &Value) -> bool {
    message["subject"].as_str().unwrap().contains("您有一项新的待办任务")
}

/// A daemon's configuration delivering to `sink` (links under https://statflow.example),
/// with the directory file `directory`.
pub fn config(sink: &Sink, directory: &Path) -> String {
    format!(
        "base_url = \"https://statflow.example\"\ndirectory = \"{}\"\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\ntimeout_seconds = 5\n",
        directory.display(),
        sink.port
    )
}

/// The registry's clerk, its supervising bureau's director and the regulator's duty address.
pub fn directory(dir: &Path, clerk_email: &str) -> PathBuf {
    let path = dir.join("directory.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[organizations.taian-registry]
name = "泰安市数据登记机构"
email = "duty@registry.example"
supervisor = "taian-bureau"

[organizations.taian-bureau]
name = "泰安市大数据局"
email = "office@bureau.example"
regulator = "shandong-regulator"

[organizations.shandong-regulator]
name = "山东省数据监管办公室"
email = "duty@regulator.example"

[[contacts]]
organization = "taian-registry"
name = "张三"
email = "{clerk_email}"
roles = ["registration_agency"]

[[contacts]]
organization = "taian-bureau"
name = "李四"
email = "li@bureau.example"
roles = ["supervisor"]
"#
        ),
    )
    .unwrap();
    path
}
