//! The Dockerfile and the systemd unit name a config file; that file must pass
//! `check-config` once the secrets they expect come from the environment. No
//! Docker engine or systemd is needed: the files are read as text.

use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const INSTALLED_CONFIG: &str = "/etc/slack-oidc-bridge/bridge.toml";

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn check_config(env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slack-oidc-bridge"));
    cmd.args([
        "check-config",
        "--config",
        &format!("{ROOT}/deploy/bridge.toml"),
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn the_dockerfile_installs_the_deploy_config_at_the_path_it_serves() {
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.contains(&format!("COPY deploy/bridge.toml {INSTALLED_CONFIG}")),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains(&format!("\"--config\", \"{INSTALLED_CONFIG}\"")),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains("USER bridge"),
        "runs as a non-root user"
    );
    assert!(
        dockerfile
            .lines()
            .filter(|l| l.starts_with("FROM "))
            .count()
            >= 2,
        "multi-stage"
    );
}

#[test]
fn the_systemd_unit_checks_and_serves_the_installed_config() {
    let unit = read("deploy/slack-oidc-bridge.service");
    assert!(
        unit.contains(&format!("check-config --config {INSTALLED_CONFIG}")),
        "{unit}"
    );
    assert!(
        unit.contains(&format!("serve --config {INSTALLED_CONFIG}")),
        "{unit}"
    );
    assert!(
        unit.contains("ExecReload=/bin/kill -HUP $MAINPID"),
        "reload rereads the keys"
    );
}

#[test]
fn the_deploy_config_passes_check_config_with_its_secrets_from_the_environment() {
    let secrets = [
        ("BRIDGE_UPSTREAM__CLIENT_ID", "1234567890.1234567890123"),
        (
            "BRIDGE_UPSTREAM__CLIENT_SECRET",
            "0123456789abcdef0123456789abcdef",
        ),
        (
            "BRIDGE_CLIENTS__0__CLIENT_SECRET",
            "an-application-secret-of-forty-characters",
        ),
    ];
    let out = check_config(&secrets);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_deploy_config_is_refused_without_its_secrets() {
    let out = check_config(&[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("upstream.client_id") || stderr.contains("upstream.client_secret"),
        "{stderr}"
    );
}
