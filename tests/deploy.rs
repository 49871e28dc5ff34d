//! The deploy folder as an operator gets it: the systemd unit is hardened and verifies, each
//! example configuration starts the daemon with its paths where the deployment creates them,
//! and the container, compose and Kubernetes files and the Prometheus alert rules pass their
//! validators.
//!
//! The checkers are `systemd-analyze` (Debian's systemd), `hadolint`, `yamllint` and
//! `kubernetes-validate` (PyPI), `docker-compose` and `promtool` (Debian), installed by
//! `.ci/deploy-tools`.
//! A checker that is missing is reported and skipped, unless `STATFLOW_TEST_DEPLOY_TOOLS` is
//! `required` (as in `.ci/run`): then its absence fails the test.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read_deploy(file: &str) -> String {
    std::fs::read_to_string(deploy_dir().join(file)).unwrap_or_else(|e| panic!("deploy/{file}: {e}"))
}

/// Whether `tool` can be run here; false (with a note) when it is missing and not required.
fn have(tool: &str) -> bool {
    let found =
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("STATFLOW_TEST_DEPLOY_TOOLS").as_deref() != Ok("required"),
            "{tool} is required here (bash .ci/deploy-tools installs it)"
        );
        eprintln!("{tool} is not installed: not checked (bash .ci/deploy-tools installs it)");
    }
    found
}

/// Runs a checker; panics with everything it said unless it succeeds.
fn check(program: &str, args: &[&str], current_dir: &Path) -> String {
    let output = Command::new(program).args(args).current_dir(current_dir).output().expect("the checker runs");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{program} {args:?} failed:\n{said}");
    said
}

/// The value of `Key=` lines of a unit file, in order.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines().filter_map(|line| line.strip_prefix(key)?.strip_prefix('=')).collect()
}

#[test]
fn the_systemd_unit_is_hardened_to_2_or_better_and_verifies() {
    if !have("systemd-analyze") {
        return;
    }
    let unit = read_deploy("systemd/statflow.service");
    // Checked as installed, but with the binary this build made (verify wants it to exist).
    let dir = common::scratch("unit");
    let exec = unit_values(&unit, "ExecStart");
    assert_eq!(exec.len(), 1, "one ExecStart");
    assert!(exec[0].starts_with("/usr/local/bin/statflow serve --config /etc/statflow/statflow.toml"), "{}", exec[0]);
    let installed = unit.replace("/usr/local/bin/statflow", env!("CARGO_BIN_EXE_statflow"));
    std::fs::write(dir.join("statflow.service"), installed).unwrap();

    let verified = check("systemd-analyze", &["verify", "./statflow.service"], &dir);
    assert!(verified.trim().is_empty(), "systemd-analyze verify complains:\n{verified}");

    let security = check("systemd-analyze", &["security", "--offline=true", "./statflow.service"], &dir);
    let overall = security
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for statflow.service: ").map(|(_, rest)| rest.to_owned()))
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{security}"));
    let score: f64 = overall.split_whitespace().next().unwrap().parse().unwrap();
    eprintln!("systemd-analyze security: {overall}");
    assert!(score <= 2.0, "exposure {score} is above 2.0:\n{security}");
}

/// Every file path a configuration names, in its settings and in its commented-out examples.
fn paths_in(config: &str) -> Vec<String> {
    fn strings(value: &toml::Value, into: &mut Vec<String>) {
        match value {
            toml::Value::String(text) => into.push(text.clone()),
            toml::Value::Table(table) => table.values().for_each(|v| strings(v, into)),
            toml::Value::Array(items) => items.iter().for_each(|v| strings(v, into)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    let document: toml::Table = toml::from_str(config).expect("the configuration is TOML");
    strings(&toml::Value::Table(document), &mut found);
    for example in config.lines().filter_map(|l| l.strip_prefix("# ")) {
        if let Ok(value) = toml::from_str::<toml::Table>(example) {
            strings(&toml::Value::Table(value), &mut found);
        }
    }
    found
        .into_iter()
        .filter_map(|s| s.strip_prefix("sqlite://").map(str::to_owned).or_else(|| s.starts_with('/').then_some(s)))
        .collect()
}

/// Starts `statflow serve --config config` (with `extra` arguments), waits until `/readyz`
/// answers ready, stops it with SIGTERM and answers with what it logged.
fn serve_until_ready(config: &Path, extra: &[&str]) -> String {
    let log_path = config.with_extension("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_statflow"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "text"])
        .args(extra)
        .arg("--config")
        .arg(config)
        .env_remove("STATFLOW_DB")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("statflow starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let Some(base) = line.trim().strip_prefix("statflow listening on ").map(str::to_owned) else {
        let _ = child.wait();
        panic!("{} did not start:\n{}", config.display(), std::fs::read_to_string(&log_path).unwrap());
    };
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = agent.get(format!("{base}/readyz")).call().is_ok_and(|r| r.status() == 200);
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "{} never became ready", config.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(agent.get(format!("{base}/healthz")).call().unwrap().status(), 200);
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "{} did not stop cleanly ({status}):\n{logged}", config.display());
    assert!(logged.contains("statflow stopped"), "no stop line:\n{logged}");
    logged
}

#[test]
fn the_systemd_configuration_lives_in_the_directories_the_unit_creates_and_starts() {
    let unit = read_deploy("systemd/statflow.service");
    let config = read_deploy("statflow.toml");
    // What systemd creates for the service, and nothing else is writable (ProtectSystem=strict).
    assert_eq!(unit_values(&unit, "ProtectSystem"), ["strict"]);
    assert_eq!(unit_values(&unit, "StateDirectory"), ["statflow"]);
    assert_eq!(unit_values(&unit, "LogsDirectory"), ["statflow"]);
    assert_eq!(unit_values(&unit, "ConfigurationDirectory"), ["statflow"]);
    let created = ["/var/lib/statflow", "/var/log/statflow", "/etc/statflow"];
    let paths = paths_in(&config);
    assert!(paths.len() >= 4, "the database, the spool, the key and the anchor file: {paths:?}");
    for path in paths {
        assert!(created.iter().any(|dir| path.starts_with(dir)), "{path} is not under {created:?}");
    }

    // Started as systemd would start it: the state directory exists, empty; the rest is the
    // daemon's to create.
    let root = common::scratch("systemd-root");
    std::fs::create_dir_all(root.join("var/lib/statflow")).unwrap();
    let rooted = config.replace("/var/lib/statflow", &root.join("var/lib/statflow").display().to_string());
    std::fs::write(root.join("statflow.toml"), rooted).unwrap();
    serve_until_ready(&root.join("statflow.toml"), &[]);
    assert!(root.join("var/lib/statflow/statflow.db").is_file(), "the database is in the state directory");
    assert!(root.join("var/lib/statflow/spool").is_dir(), "the mail spool is created in the state directory");
}

#[test]
fn the_container_compose_and_kubernetes_configurations_start_the_daemon() {
    let root = common::scratch("container-configs");
    let state = root.join("var/lib/statflow");
    std::fs::create_dir_all(&state).unwrap();
    let state = state.display().to_string();

    // The image's own configuration, its state in the volume.
    let image = read_deploy("container/statflow.toml").replace("/var/lib/statflow", &state);
    assert!(image.contains("listen = \"0.0.0.0:8080\""), "the image listens beyond its loopback");
    std::fs::write(root.join("image.toml"), image).unwrap();
    serve_until_ready(&root.join("image.toml"), &[]);
    assert!(root.join("var/lib/statflow/statflow.db").is_file());

    // Compose's and the ConfigMap's take the database from STATFLOW_DB (PostgreSQL there);
    // here a SQLite file stands in for it.
    let db = format!("sqlite://{}/other.db?mode=rwc", root.display());
    std::fs::write(root.join("compose.toml"), read_deploy("compose/statflow.toml")).unwrap();
    serve_until_ready(&root.join("compose.toml"), &["--db", &db]);

    let configmap = read_deploy("kubernetes/configmap.yaml");
    let embedded = embedded_block(&configmap, "statflow.toml: |").replace("/var/lib/statflow", &state);
    assert!(embedded.contains("[smtp]"), "the ConfigMap's file was found:\n{embedded}");
    std::fs::write(root.join("configmap.toml"), embedded).unwrap();
    serve_until_ready(&root.join("configmap.toml"), &["--db", &db]);
}

/// The text of a YAML block scalar opened by `header` (`key: |`), without its indentation.
fn embedded_block(yaml: &str, header: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != header).skip(1).peekable();
    let indent = lines.peek().map(|l| l.len() - l.trim_start().len()).expect("the block has lines");
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_container_compose_and_kubernetes_files_pass_their_validators() {
    let deploy = deploy_dir();
    if have("hadolint") {
        check("hadolint", &["container/Dockerfile"], &deploy);
    }
    if have("yamllint") {
        check("yamllint", &["--strict", "-c", ".yamllint", "."], &deploy);
    }
    if have("kubernetes-validate") {
        let manifests: Vec<String> = std::fs::read_dir(deploy.join("kubernetes"))
            .unwrap()
            .map(|e| format!("kubernetes/{}", e.unwrap().file_name().to_string_lossy()))
            .filter(|name| name.ends_with(".yaml"))
            .collect();
        assert!(manifests.len() >= 4, "Deployment, Service, ConfigMap and Secret: {manifests:?}");
        let mut args = vec!["--strict"];
        args.extend(manifests.iter().map(String::as_str));
        let said = check("kubernetes-validate", &args, &deploy);
        for kind in ["deployment/statflow", "service/statflow", "configmap/statflow", "secret/statflow"] {
            assert!(said.contains(&format!("passed for resource {kind}")), "{kind} was not validated:\n{said}");
        }
    }
    if have("docker-compose") {
        let resolved = check("docker-compose", &["-f", "compose.yaml", "config"], &deploy);
        for service in ["statflow:", "postgres:", "mailpit:"] {
            assert!(resolved.contains(service), "compose runs {service}\n{resolved}");
        }
    }
    // The probes point at endpoints the daemon has (the start test above reaches both).
    let deployment = read_deploy("kubernetes/deployment.yaml");
    assert!(deployment.contains("path: /healthz") && deployment.contains("path: /readyz"));
}

#[test]
fn the_alert_rules_load_and_fire_when_their_tests_say() {
    let deploy = deploy_dir().join("prometheus");
    if have("promtool") {
        let said = check("promtool", &["check", "rules", "alerts.yaml"], &deploy);
        assert!(said.contains("SUCCESS"), "{said}");
        // The rules' own unit tests: each alert fires on the series it is meant for, after its
        // `for`, and not before.
        check("promtool", &["test", "rules", "alerts.test.yaml"], &deploy);
    }
}
