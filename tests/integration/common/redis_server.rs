//! A throwaway `redis-server` per test: its own loopback port, no persistence,
//! killed on drop. `stop`/`restart` and `pause`/`resume` model a Redis that
//! goes away and one that freezes (SIGSTOP), for the fault tests.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const READY_WITHIN: Duration = Duration::from_secs(5);

pub struct RedisServer {
    pub port: u16,
    pub url: String,
    child: Option<Child>,
    /// Serves TLS only (rediss://) with these files.
    tls: Option<TlsFiles>,
}

/// A certificate authority of the test's own and a certificate for
/// 127.0.0.1 that it signed, as PEM files in a temporary directory.
pub struct TlsFiles {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
}

impl TlsFiles {
    pub fn generate() -> TlsFiles {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "slack-oidc-bridge test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", &ca_cert.pem());
        write("server.pem", &server_cert.pem());
        write("server.key", &server_key.serialize_pem());
        TlsFiles {
            ca_pem: ca_cert.pem(),
            dir,
        }
    }

    pub fn ca_path(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    pub fn start() -> RedisServer {
        // Another process may grab the port between our probe and Redis's
        // bind; a fresh port usually fixes that.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut server = RedisServer {
                port,
                url: format!("redis://127.0.0.1:{port}"),
                child: None,
                tls: None,
            };
            match server.launch() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server failed to start: {last_error}");
    }

    /// Starts a server that speaks TLS only, with a certificate for
    /// 127.0.0.1 from `tls`'s authority; its URL is `rediss://`.
    pub fn start_tls(tls: TlsFiles) -> RedisServer {
        let port = free_port();
        let mut server = RedisServer {
            port,
            url: format!("rediss://127.0.0.1:{port}"),
            child: None,
            tls: Some(tls),
        };
        if let Err(e) = server.launch() {
            panic!("redis-server with TLS failed to start: {e}");
        }
        server
    }

    pub fn tls(&self) -> &TlsFiles {
        self.tls.as_ref().expect("a TLS server")
    }

    /// Kills the server (its data is gone); the port stays reserved for `restart`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL also ends a paused (SIGSTOPped) process.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a new, empty server on the same port.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.launch() {
            panic!("redis-server failed to restart on port {}: {e}", self.port);
        }
    }

    /// Freezes the server: connections stay open but nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("redis-server is not running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("could not run kill");
        assert!(status.success(), "kill {signal} failed: {status}");
    }

    fn launch(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        match &self.tls {
            None => command.args(["--port", &port]),
            Some(tls) => {
                let file = |name: &str| tls.dir.path().join(name);
                command
                    .args(["--port", "0", "--tls-port", &port])
                    .arg("--tls-cert-file")
                    .arg(file("server.pem"))
                    .arg("--tls-key-file")
                    .arg(file("server.key"))
                    .arg("--tls-ca-cert-file")
                    .arg(file("ca.pem"))
                    .args(["--tls-auth-clients", "no"])
            }
        };
        let spawned = command
            .args(["--bind", "127.0.0.1", "--protected-mode", "yes"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            // Nothing should be written, but never into the source tree.
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                panic!("redis-server not found: install it (apt-get install redis-server)")
            }
            Err(e) => panic!("could not run redis-server: {e}"),
        };
        self.child = Some(child);
        self.wait_until_ready()
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let child = self.child.as_mut().expect("launched");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!(
                    "redis-server exited early ({status}) on port {}",
                    self.port
                ));
            }
            let ready = match self.tls {
                None => answers_ping(self.port),
                // A TLS port: listening is enough (PING would need a handshake).
                Some(_) => TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok(),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "redis-server did not answer PING on port {} within {READY_WITHIN:?}",
                    self.port
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn answers_ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
