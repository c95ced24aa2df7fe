//! A throwaway three-master Redis Cluster per test: three `redis-server
//! --cluster-enabled yes` on free loopback ports in a temp dir, joined by
//! `redis-cli --cluster create`, killed on drop. Every wait is bounded.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const MASTERS: usize = 3;
const READY_WITHIN: Duration = Duration::from_secs(20);

pub struct RedisCluster {
    pub ports: Vec<u16>,
    /// `redis://127.0.0.1:PORT` of each master.
    pub urls: Vec<String>,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts three masters, creates the cluster and waits until every node
    /// reports `cluster_state:ok`.
    pub fn start() -> RedisCluster {
        let mut last_error = String::new();
        // A port probed free may be taken before redis-server binds it.
        for _ in 0..3 {
            match Self::try_start() {
                Ok(cluster) => return cluster,
                Err(e) => last_error = e,
            }
        }
        panic!("the Redis Cluster failed to start: {last_error}");
    }

    fn try_start() -> Result<RedisCluster, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ports = distinct_free_ports(MASTERS);
        let mut cluster = RedisCluster {
            urls: ports
                .iter()
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect(),
            ports: ports.clone(),
            children: Vec::new(),
            _dir: dir,
        };
        for &port in &ports {
            let p = port.to_string();
            let spawned = Command::new("redis-server")
                .args([
                    "--port",
                    &p,
                    "--bind",
                    "127.0.0.1",
                    "--protected-mode",
                    "yes",
                ])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(cluster._dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            match spawned {
                Ok(child) => cluster.children.push(child),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    panic!("redis-server not found: install it (apt-get install redis-server)")
                }
                Err(e) => panic!("could not run redis-server: {e}"),
            }
        }
        for &port in &ports {
            cluster.wait_until(READY_WITHIN, |c| c.cli(port, &["PING"]).trim() == "PONG")?;
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not run redis-cli: {e}"))?;
        if !created.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&created.stdout),
                String::from_utf8_lossy(&created.stderr)
            ));
        }
        for &port in &ports {
            cluster.wait_until(READY_WITHIN, |c| {
                c.cli(port, &["CLUSTER", "INFO"])
                    .contains("cluster_state:ok")
            })?;
        }
        Ok(cluster)
    }

    /// Runs `redis-cli -p PORT ARGS…` and returns its output ("" on failure).
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// How many keys each master holds, in the order of `ports`.
    pub fn keys_per_node(&self) -> Vec<u64> {
        self.ports
            .iter()
            .map(|&p| self.cli(p, &["DBSIZE"]).trim().parse().unwrap_or(0))
            .collect()
    }

    fn wait_until(
        &mut self,
        within: Duration,
        mut done: impl FnMut(&RedisCluster) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            for child in &mut self.children {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("a cluster node exited early ({status})"));
                }
            }
            if done(self) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("the cluster was not ready within {within:?}"));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Free ports whose cluster bus ports (port + 10000) are valid too.
fn distinct_free_ports(n: usize) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::new();
    for _ in 0..100 {
        if ports.len() == n {
            break;
        }
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind a free port");
        let bus_free =
            port < 55535 && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10000)).is_ok();
        if bus_free && !ports.contains(&port) {
            ports.push(port);
        }
    }
    assert_eq!(ports.len(), n, "could not find {n} free ports");
    ports
}
