//! The command line as an operator meets it: the real binary run in a scratch
//! directory, its exit status, what it prints and the files it writes.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::bridge::{Bridge, Setup, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_slack-oidc-bridge");
const DEV_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/dev.toml");
const EXAMPLE_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/bridge.example.toml");

/// The binary, run in `dir`, with none of the caller's `BRIDGE_` variables.
fn bridge_command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("BRIDGE_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    bridge_command(dir, args, env)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A valid config whose keys live in `dir/keys` (absolute) and whose every
/// address is on loopback (upstream at a port nobody listens on).
fn valid_config(dir: &Path, port: u16) -> String {
    format!(
        r#"
issuer = "http://127.0.0.1:{port}"
listen = "127.0.0.1:{port}"
[store]
backend = "memory"
timeout_ms = 1000
[keys]
dir = "{keys}"
[upstream]
issuer = "http://127.0.0.1:9"
client_id = "1111111111.2222222222"
client_secret = "upstream-secret"
[[clients]]
client_id = "app"
client_secret = "0123456789abcdef0123456789abcdef-app"
redirect_uris = ["http://127.0.0.1:9/cb"]
"#,
        keys = dir.join("keys").display(),
    )
}

fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `check-config` on `text` and returns the output.
fn check_config(dir: &Path, text: &str, env: &[(&str, &str)]) -> Output {
    let path = write_config(dir, "bridge.toml", text);
    run(
        dir,
        &["check-config", "--config", path.to_str().unwrap()],
        env,
    )
}

/// Refused, and the message starts with the key path (`error: {key}: …`).
fn assert_refused_naming(output: &Output, key: &str) {
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success(),
        "expected a refusal naming {key}; stdout: {}",
        text(&output.stdout)
    );
    assert!(
        stderr.contains(&format!("error: {key}:")),
        "stderr should name `{key}`: {stderr}"
    );
}

fn keyset_path(dir: &Path) -> PathBuf {
    dir.join("keys").join("keyset.json")
}

/// `keys list --json`, parsed: (kid, state) in file order.
/// What the server does on its first start: create the key set.
fn first_start(dir: &Path) {
    if !keyset_path(dir).exists() {
        slack_oidc_bridge::keys::KeyFile::load_or_create(
            &dir.join("keys"),
            &[slack_oidc_bridge::keys::Algorithm::Rs256],
        )
        .expect("the key set is created");
    }
}

fn list_keys(dir: &Path, config: &Path) -> Vec<(String, String)> {
    first_start(dir);
    let out = run(
        dir,
        &[
            "keys",
            "list",
            "--json",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("keys list --json is not JSON ({e}): {}", text(&out.stdout)));
    rows.as_array()
        .expect("a JSON array")
        .iter()
        .map(|r| {
            assert_eq!(r["alg"], "RS256", "{r}");
            assert!(r["created_at"].as_i64().is_some(), "{r}");
            (
                r["kid"].as_str().expect("a kid").to_string(),
                r["state"].as_str().expect("a state").to_string(),
            )
        })
        .collect()
}

fn kid_in(keys: &[(String, String)], state: &str) -> Vec<String> {
    keys.iter()
        .filter(|(_, s)| s == state)
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_accepts_the_shipped_configs_without_creating_keys() {
    for config in [DEV_CONFIG, EXAMPLE_CONFIG] {
        let dir = tempfile::tempdir().unwrap();
        let out = run(dir.path(), &["check-config", "--config", config], &[]);
        assert!(
            out.status.success(),
            "{config}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(text(&out.stdout).contains("OK"), "{}", text(&out.stdout));
        assert!(
            !dir.path().join("keys").exists(),
            "check-config must not create a key set"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_refuses_a_bad_value_and_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let valid = valid_config(dir.path(), port);
    let ok = check_config(dir.path(), &valid, &[]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));

    let cases = [
        (
            valid.replace("timeout_ms = 1000", "timeout_ms = \"soon\""),
            "store.timeout_ms",
        ),
        (
            valid.replace("[keys]\n", "[keys]\ndirr = \"x\"\n"),
            "keys.dirr",
        ),
        (
            valid.replace("0123456789abcdef0123456789abcdef-app", "too-short-secret"),
            "clients[0].client_secret",
        ),
        (
            valid.replacen(
                &format!("{port}\"\nlisten"),
                &format!("{port}/\"\nlisten"),
                1,
            ),
            "issuer",
        ),
        (
            valid.replace(
                "issuer = \"http://127.0.0.1:9\"",
                "issuer = \"http://slack.test\"",
            ),
            "upstream.issuer",
        ),
        (
            valid.replace(
                "redirect_uris = [\"http://127.0.0.1:9/cb\"]",
                "redirect_uris = []",
            ),
            "clients[0].redirect_uris",
        ),
    ];
    for (bad, key) in cases {
        assert_ne!(bad, valid, "the case for {key} changes the file");
        let out = check_config(dir.path(), &bad, &[]);
        assert_refused_naming(&out, key);
        assert_eq!(out.status.code(), Some(2), "exit status for {key}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_environment_override_can_break_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let valid = valid_config(dir.path(), free_port());
    let out = check_config(dir.path(), &valid, &[("BRIDGE_STORE__TIMEOUT_MS", "soon")]);
    assert_refused_naming(&out, "store.timeout_ms");
    let out = check_config(dir.path(), &valid, &[("BRIDGE_STORE__TIMEOUT_MS", "0")]);
    assert_refused_naming(&out, "store.timeout_ms");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_environment_override_can_complete_an_invalid_file() {
    let dir = tempfile::tempdir().unwrap();
    let without_secret = valid_config(dir.path(), free_port()).replace(
        "client_secret = \"upstream-secret\"",
        "client_secret = \"\"",
    );
    let out = check_config(dir.path(), &without_secret, &[]);
    assert_refused_naming(&out, "upstream.client_secret");
    let out = check_config(
        dir.path(),
        &without_secret,
        &[("BRIDGE_UPSTREAM__CLIENT_SECRET", "x")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A client's secret, by array index.
    let short = valid_config(dir.path(), free_port())
        .replace("0123456789abcdef0123456789abcdef-app", "short");
    assert_refused_naming(
        &check_config(dir.path(), &short, &[]),
        "clients[0].client_secret",
    );
    let out = check_config(
        dir.path(),
        &short,
        &[(
            "BRIDGE_CLIENTS__0__CLIENT_SECRET",
            "a-long-enough-secret-from-the-environment",
        )],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Slack client ids look like `1234567890.1234567890123`; given through the
/// environment (as the example config suggests for secrets) they must stay
/// text. Today the override parser reads them as a TOML float and the file is
/// refused with "invalid type: floating point, expected a string".
#[tokio::test(flavor = "multi_thread")]
async fn a_slack_client_id_from_the_environment_stays_text() {
    let dir = tempfile::tempdir().unwrap();
    let valid = valid_config(dir.path(), free_port());
    for (name, value) in [
        ("BRIDGE_UPSTREAM__CLIENT_ID", "1234567890.1234567890123"),
        ("BRIDGE_UPSTREAM__CLIENT_SECRET", "1234567890"),
    ] {
        let out = check_config(dir.path(), &valid, &[(name, value)]);
        assert!(
            out.status.success(),
            "{name}={value}: {}",
            text(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_refuses_a_damaged_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "bridge.toml",
        &valid_config(dir.path(), free_port()),
    );
    list_keys(dir.path(), &config);
    let path = keyset_path(dir.path());
    let full = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &full[..full.len() / 2]).unwrap();
    let out = run(
        dir.path(),
        &["check-config", "--config", config.to_str().unwrap()],
        &[],
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        stderr.contains("keyset.json"),
        "the message names the file: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_list_shows_the_first_start_key_set_active_and_next_in_a_private_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "bridge.toml",
        &valid_config(dir.path(), free_port()),
    );
    assert!(!keyset_path(dir.path()).exists());
    let before = run(
        dir.path(),
        &["keys", "list", "--config", config.to_str().unwrap()],
        &[],
    );
    assert!(
        !before.status.success(),
        "nothing to list before the first start"
    );
    assert!(
        text(&before.stderr).contains("first start"),
        "{}",
        text(&before.stderr)
    );

    first_start(dir.path());
    let out = run(
        dir.path(),
        &["keys", "list", "--config", config.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let rows: Vec<&str> = stdout
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(stdout.starts_with("KID"), "a header line: {stdout}");
    assert_eq!(rows.len(), 2, "two keys: {stdout}");
    let states: Vec<&str> = rows
        .iter()
        .map(|r| r.split_whitespace().nth(2).unwrap_or(""))
        .collect();
    assert_eq!(states, ["active", "next"], "{stdout}");
    assert!(rows.iter().all(|r| r.contains("RS256")), "{stdout}");

    let path = keyset_path(dir.path());
    assert!(path.exists(), "the key set is created in keys.dir");
    #[cfg(unix)]
    assert_eq!(
        mode(&path),
        0o600,
        "keyset.json is readable by its owner only"
    );

    // A second listing reuses the set (same kids as the table showed).
    let keys = list_keys(dir.path(), &config);
    assert_eq!(keys.len(), 2);
    for ((kid, state), row) in keys.iter().zip(&rows) {
        assert!(row.starts_with(kid.as_str()), "{row} vs {kid}");
        assert!(row.contains(state.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_promotes_next_and_retires_active() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "bridge.toml",
        &valid_config(dir.path(), free_port()),
    );
    let before = list_keys(dir.path(), &config);
    let active = kid_in(&before, "active");
    let next = kid_in(&before, "next");
    assert_eq!((active.len(), next.len()), (1, 1), "{before:?}");

    // The next key was published a moment ago: a plain rotation waits for
    // caches (the keys module covers that refusal); --now accepts the risk.
    let out = run(
        dir.path(),
        &[
            "keys",
            "rotate",
            "--now",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&next[0]),
        "rotate names the key that now signs: {}",
        text(&out.stdout)
    );

    let after = list_keys(dir.path(), &config);
    assert_eq!(after.len(), 3, "{after:?}");
    assert_eq!(kid_in(&after, "active"), next, "the former next key signs");
    assert_eq!(
        kid_in(&after, "retired"),
        active,
        "the former active key is retired"
    );
    let fresh = kid_in(&after, "next");
    assert_eq!(fresh.len(), 1, "a fresh next key is published: {after:?}");
    assert!(!before.iter().any(|(k, _)| *k == fresh[0]));
    #[cfg(unix)]
    assert_eq!(
        mode(&keyset_path(dir.path())),
        0o600,
        "still private after the rewrite"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // keyset.lock is the writers' lock file, kept on purpose.
        .filter(|n| n != "keyset.json" && n != "keyset.lock")
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_exits_quickly_naming_a_truncated_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), "bridge.toml", &valid_config(dir.path(), port));
    list_keys(dir.path(), &config);
    let path = keyset_path(dir.path());
    let full = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &full[..full.len() / 3]).unwrap();

    let log = dir.path().join("serve.log");
    let mut child = bridge_command(
        dir.path(),
        &["serve", "--config", config.to_str().unwrap()],
        &[],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .expect("the binary runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve kept running with a truncated key file; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("keyset.json"),
        "the message names the file: {stderr}"
    );
    assert!(
        !stderr.contains("ready"),
        "it must not claim to be ready: {stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        full[..full.len() / 3],
        "a damaged key set is left for the operator, not replaced"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_logs_ready_and_answers_healthz() {
    let bridge = Bridge::start(Setup::default()).await;
    let r = reqwest::get(bridge.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    let log = bridge.log();
    let ready = log
        .lines()
        .find(|l| l.contains("ready"))
        .unwrap_or_else(|| panic!("no ready line in the log:\n{log}"));
    assert!(
        ready.contains(&bridge.base),
        "the ready line names the issuer: {ready}"
    );
    assert!(
        bridge.dir.path().join("keys").join("keyset.json").exists(),
        "serve creates the key set on first start"
    );
}
