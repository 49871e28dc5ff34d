//! The OpenAPI document holds against the daemon: schemathesis (from PyPI) generates requests
//! from it, a bounded number per operation with a fixed seed, and fails on any 5xx, any status
//! code the document does not list for the operation, and any response that does not match
//! its documented content type or schema.

mod common;

use std::process::Command;

use common::{start, Backend, TestApp};
use serde_json::json;

/// Examples per operation: enough to reach every documented error, bounded for CI.
const EXAMPLES: &str = "25";

#[test]
fn the_openapi_document_holds_against_the_daemon() {
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    // Something to find: an instance with an open task.
    start(
        &app,
        &app.admin,
        "registration",
        "taian",
        json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"}),
    );
    let base = app.base();
    let reports = app.dir.join("schemathesis");
    let output = Command::new("schemathesis")
        .args(["run", &format!("{base}/v1/openapi.json"), "--url", &base])
        .args(["--header", &format!("Authorization: Bearer {}", app.admin)])
        .args(["--max-examples", EXAMPLES, "--seed", "20261123"])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .arg("--report-dir")
        .arg(&reports)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("schemathesis could not run ({e}); install it with `pip install schemathesis`"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found the document and the daemon disagreeing:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Selected: 36/36"), "every operation is tested:\n{stdout}");
}
