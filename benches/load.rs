//! The load benchmark: the real release binary and the Slack stand-in on
//! loopback, for the memory store and for Redis (its own `redis-server` on a
//! free port), driven by a bounded number of concurrent clients for a bounded
//! time. Prints one table and stops by itself.
//!
//! ```text
//! cargo bench --bench load -- --duration 10 [--concurrency 8] [--store memory|redis|both]
//! ```
//!
//! Measured: discovery and JWKS requests/s; complete sign-in flows/s
//! (authorize → stand-in picker POST → callback → token); refresh grants/s
//! (each client keeps its own rotating chain); p50/p99 of each; the bridge's
//! RSS when idle after start and its peak (VmHWM) after the run; and, first,
//! while nothing else runs, the RS256 signing rate of one thread with a
//! cached aws-lc-rs key, against which token issuance (refresh grants/s on
//! Redis) is reported as a ratio.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs a smoke
//! pass instead: the memory store, a fraction of a second per scenario, and
//! fails if any request failed. Speeds are never asserted.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use slack_oidc_bridge::keys::{Algorithm, SigningKey};
use slack_oidc_bridge::upstream::standin::{
    self, DEV_BOT_TOKEN, StandinApp, StandinGroup, StandinHandle, StandinOptions, StandinUser,
};

const UPSTREAM_ID: &str = "9999999999.1111111111";
const UPSTREAM_SECRET: &str = "bench-upstream-secret";
const CLIENT_ID: &str = "bench";
const CLIENT_SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef";
/// Nobody listens there: the benchmark reads Location headers only.
const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";
/// The people who sign in: this many, each about as often, so that a
/// person's sessions and families stay as few as in real traffic.
const PEOPLE: u32 = 2000;

/// The `n`th person of the benchmark's workspace.
fn person(n: u32) -> String {
    format!("U{:010}", 1_000_000_000 + n % PEOPLE)
}

/// The stand-in's users: the fixtures plus the benchmark's people (members
/// of the first fixture's workspace).
fn bench_users() -> Vec<StandinUser> {
    let mut users = StandinUser::fixtures();
    let template = users[0].clone();
    users.extend((0..PEOPLE).map(|n| StandinUser {
        user_id: person(n),
        name: format!("Person {n}"),
        email: Some(format!("person{n}@example.com")),
        ..template.clone()
    }));
    users
}

/// A person for the next sign-in, spread over all of them.
fn next_person() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    person(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}
/// Time for the bridge to start, and for one request of the benchmark.
const START_WITHIN: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq)]
enum StoreKind {
    Memory,
    Redis,
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Redis => "redis",
        }
    }
}

struct Args {
    duration: Duration,
    concurrency: usize,
    stores: Vec<StoreKind>,
    smoke: bool,
    /// Also measure node-oidc-provider serving the same code flow.
    peer: bool,
    /// Only this scenario (`--scenario sign-in`), e.g. to profile it.
    only: Option<&'static str>,
}

fn usage() -> ! {
    eprintln!(
        "usage: cargo bench --bench load -- [--duration SECS] [--concurrency N] [--store memory|redis|both] [--scenario discovery|jwks|sign-in|refresh|dpop-refresh] [--no-peer]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; `cargo test` does not.
    let smoke = !argv.iter().any(|a| a == "--bench");
    let mut args = Args {
        duration: Duration::from_secs(10),
        concurrency: 8,
        stores: vec![StoreKind::Memory, StoreKind::Redis],
        smoke,
        peer: true,
        only: None,
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--duration" => {
                let secs: f64 = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage());
                if !(0.1..=600.0).contains(&secs) {
                    usage();
                }
                args.duration = Duration::from_secs_f64(secs);
            }
            "--concurrency" => {
                args.concurrency = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| (1..=256).contains(n))
                    .unwrap_or_else(|| usage());
            }
            "--store" => {
                args.stores = match it.next().map(String::as_str) {
                    Some("memory") => vec![StoreKind::Memory],
                    Some("redis") => vec![StoreKind::Redis],
                    Some("both") => vec![StoreKind::Memory, StoreKind::Redis],
                    _ => usage(),
                }
            }
            "--no-peer" => args.peer = false,
            "--scenario" => {
                args.only = match it.next().map(String::as_str) {
                    Some("discovery") => Some("discovery"),
                    Some("jwks") => Some("jwks"),
                    Some("sign-in") => Some("sign-in flow"),
                    Some("refresh") => Some("refresh grant"),
                    Some("dpop-refresh") => Some("DPoP refresh"),
                    _ => usage(),
                }
            }
            "--bench" => {}
            // Filters and flags cargo's harness would take: ignored.
            _ if smoke => {}
            other if other.starts_with("--") => usage(),
            _ => {}
        }
    }
    if args.smoke {
        args.duration = Duration::from_millis(300);
        args.concurrency = 2;
        args.stores = vec![StoreKind::Memory];
        args.peer = false;
    }
    args
}

fn main() {
    let args = parse_args();
    // One thread measures signing while nothing else runs.
    let signing = rs256_signs_per_sec(if args.smoke {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(3)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut reports = Vec::new();
    for &store in &args.stores {
        reports.push(runtime.block_on(run_store(store, &args)));
    }
    let peer = if args.peer {
        runtime.block_on(run_peer(&args))
    } else {
        None
    };
    print_table(&args, signing, &reports);
    if let Some(peer) = &peer {
        print_peer(peer, &reports);
    }
    if args.smoke {
        let failed: u64 = reports
            .iter()
            .flat_map(|r| &r.scenarios)
            .map(|s| s.errors)
            .sum();
        let empty = reports.iter().flat_map(|r| &r.scenarios).any(|s| s.ok == 0);
        assert!(failed == 0 && !empty, "the smoke run had failures");
        println!("load benchmark smoke run: ok (run `cargo bench --bench load` to measure)");
    }
}

/// RS256 signatures per second on this thread: a cached aws-lc-rs key over
/// a signing input the size of one of our ID tokens.
fn rs256_signs_per_sec(duration: Duration) -> f64 {
    let (key, _) = SigningKey::generate(Algorithm::Rs256).expect("RSA key generation");
    let input = vec![b'a'; 620];
    // Warm up caches and the CPU clock.
    for _ in 0..20 {
        key.sign_bytes(&input).unwrap();
    }
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < duration {
        std::hint::black_box(key.sign_bytes(std::hint::black_box(&input)).unwrap());
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

struct Scenario {
    name: &'static str,
    ok: u64,
    errors: u64,
    elapsed: Duration,
    /// Microseconds of every successful operation, sorted.
    latencies: Vec<u32>,
    /// CPU time used meanwhile by the bridge, and by everything else of the
    /// benchmark (this process: clients and stand-in; redis-server).
    bridge_cpu: Duration,
    other_cpu: Duration,
    /// Calls the bridge made to its store meanwhile (round trips on Redis).
    store_calls: u64,
    /// Calls the Slack stand-in answered meanwhile, by method.
    slack_calls: Vec<(&'static str, usize)>,
    /// Operations counted for the per-operation figures: the timed ones plus
    /// the untimed sign-ins that start refresh chains.
    counted_ops: u64,
}

/// Slack's methods the bridge may call.
const SLACK_METHODS: [&str; 4] = [
    "openid.connect.token",
    "openid.connect.userInfo",
    "users.info",
    "usergroups.list",
];

impl Scenario {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// Milliseconds of CPU per successful operation.
    fn cpu_ms_per_op(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1000.0 / self.ok.max(1) as f64
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i] as f64 / 1000.0
    }
}

struct StoreReport {
    store: StoreKind,
    idle_rss_kib: u64,
    peak_rss_kib: u64,
    scenarios: Vec<Scenario>,
}

async fn run_store(store: StoreKind, args: &Args) -> StoreReport {
    let redis = (store == StoreKind::Redis).then(Redis::start);
    let bridge = BridgeProcess::start(redis.as_ref().map(|r| r.url.as_str())).await;
    // Let start-up allocations settle before reading the idle figure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss_kib = proc_status_kib(bridge.pid(), "VmRSS");
    let bench = Arc::new(Target {
        base: bridge.base.clone(),
        standin: bridge.standin.base_url.clone(),
    });
    let mut scenarios = Vec::new();
    let others: Vec<u32> = std::iter::once(std::process::id())
        .chain(redis.as_ref().map(|r| r.child.id()))
        .collect();
    let control = bridge.standin.control.clone();
    // A profiler can attach to this process (see README, Performance).
    eprintln!(
        "{} store: the bridge runs as pid {}",
        store.name(),
        bridge.pid()
    );
    let kinds = [
        Kind::Discovery,
        Kind::Jwks,
        Kind::SignIn,
        Kind::Refresh,
        Kind::DpopRefresh,
    ];
    for kind in kinds
        .into_iter()
        .filter(|k| args.only.is_none_or(|only| only == k.name()))
    {
        let (bridge_before, others_before) = (cpu_time(bridge.pid()), cpu_of(&others));
        control.reset_calls();
        let store_before = store_calls(&bench.base).await;
        let mut scenario = drive(bench.clone(), kind, args.concurrency, args.duration).await;
        scenario.bridge_cpu = cpu_time(bridge.pid()).saturating_sub(bridge_before);
        scenario.other_cpu = cpu_of(&others).saturating_sub(others_before);
        scenario.store_calls = store_calls(&bench.base).await - store_before;
        scenario.slack_calls = SLACK_METHODS
            .iter()
            .map(|m| (*m, control.calls(m)))
            .collect();
        scenarios.push(scenario);
    }
    let peak_rss_kib = proc_status_kib(bridge.pid(), "VmHWM");
    if scenarios.iter().any(|s| s.errors > 0) {
        // Keep the log for a look: the temp dir goes with the bridge.
        let kept = std::env::temp_dir().join(format!("loadbench-{}-bridge.log", store.name()));
        let _ = std::fs::copy(bridge.dir.path().join("bridge.log"), &kept);
        eprintln!(
            "{} store: some requests failed; the bridge's log: {}",
            store.name(),
            kept.display()
        );
    }
    drop(bridge);
    drop(redis);
    StoreReport {
        store,
        idle_rss_kib,
        peak_rss_kib,
        scenarios,
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Discovery,
    Jwks,
    SignIn,
    Refresh,
    /// Refresh grants each with a DPoP proof (RFC 9449): the proof's
    /// signature check and its `jti` write on top of a refresh.
    DpopRefresh,
    /// The same code flow served by node-oidc-provider.
    PeerSignIn,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Discovery => "discovery",
            Kind::Jwks => "jwks",
            Kind::SignIn => "sign-in flow",
            Kind::Refresh => "refresh grant",
            Kind::DpopRefresh => "DPoP refresh",
            Kind::PeerSignIn => "peer sign-in",
        }
    }
}

struct Target {
    base: String,
    standin: String,
}

/// `concurrency` workers run `kind` back to back until `duration` is over.
async fn drive(
    target: Arc<Target>,
    kind: Kind,
    concurrency: usize,
    duration: Duration,
) -> Scenario {
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let target = target.clone();
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap();
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut chains = 0u64;
            let mut chain: Option<String> = None;
            let key = DpopKey::generate();
            while Instant::now() < deadline {
                // A refresh chain starts with a sign-in, not timed as a refresh.
                if matches!(kind, Kind::Refresh | Kind::DpopRefresh) && chain.is_none() {
                    match start_chain(&http, &target).await {
                        Ok(token) => {
                            chains += 1;
                            chain = Some(token);
                        }
                        Err(e) => {
                            errors += 1;
                            if errors <= 3 {
                                eprintln!("{}: {e}", kind.name());
                            }
                            continue;
                        }
                    }
                }
                let t = Instant::now();
                let outcome = match kind {
                    Kind::Discovery => {
                        get_ok(&http, &target.base, "/.well-known/openid-configuration").await
                    }
                    Kind::Jwks => get_ok(&http, &target.base, "/jwks").await,
                    Kind::SignIn => sign_in(&http, &target, "openid email profile")
                        .await
                        .map(|_| ()),
                    Kind::Refresh => refresh_step(&http, &target, &mut chain, None).await,
                    Kind::DpopRefresh => refresh_step(&http, &target, &mut chain, Some(&key)).await,
                    Kind::PeerSignIn => peer_sign_in(&target.base).await,
                };
                match outcome {
                    Ok(()) => latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32),
                    Err(e) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("{}: {e}", kind.name());
                        }
                        // A broken chain starts over with a new sign-in.
                        chain = None;
                    }
                }
            }
            (latencies, errors, chains)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut chains = 0;
    for w in workers {
        let (l, e, c) = w.await.expect("a benchmark worker panicked");
        latencies.extend(l);
        errors += e;
        chains += c;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let counted_ops = latencies.len() as u64 + chains;
    Scenario {
        name: kind.name(),
        ok: latencies.len() as u64,
        errors,
        elapsed,
        latencies,
        bridge_cpu: Duration::ZERO,
        other_cpu: Duration::ZERO,
        store_calls: 0,
        slack_calls: Vec::new(),
        counted_ops,
    }
}

async fn get_ok(http: &reqwest::Client, base: &str, path: &str) -> Result<(), String> {
    let r = http
        .get(format!("{base}{path}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 200 {
        return Err(format!("GET {path}: {}", r.status()));
    }
    r.bytes().await.map_err(|e| e.to_string())?;
    Ok(())
}

fn location(r: &reqwest::Response) -> Result<url::Url, String> {
    let loc = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("no Location ({})", r.status()))?;
    // node-oidc-provider answers with paths; resolve them against the request.
    r.url().join(loc).map_err(|e| e.to_string())
}

fn query(url: &url::Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// A whole sign-in by a fresh browser: authorize, the stand-in's picker
/// POST, the callback (with the browser-binding cookie), and the code
/// redeemed at the token endpoint. Returns the token response.
async fn sign_in(
    http: &reqwest::Client,
    target: &Target,
    scope: &str,
) -> Result<serde_json::Value, String> {
    let mut authorize = url::Url::parse(&format!("{}/authorize", target.base)).unwrap();
    authorize.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("scope", scope),
        ("state", "bench-state"),
        ("nonce", "bench-nonce"),
    ]);
    let r = http
        .get(authorize)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 302 {
        return Err(format!("authorize: {}", r.status()));
    }
    let cookie: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next().map(str::to_string))
        .collect();
    let slack = location(&r)?;
    let mut form: Vec<(String, String)> = slack.query_pairs().into_owned().collect();
    form.push(("user".into(), next_person()));
    let r = http
        .post(format!(
            "{}/openid/connect/authorize/decide",
            target.standin
        ))
        .form(&form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 302 {
        return Err(format!("stand-in picker: {}", r.status()));
    }
    let callback = location(&r)?;
    let r = http
        .get(callback)
        .header("cookie", cookie.join("; "))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 302 {
        return Err(format!("callback: {}", r.status()));
    }
    let back = location(&r)?;
    let code = query(&back, "code").ok_or_else(|| format!("no code: {back}"))?;
    token(
        http,
        target,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ],
        None,
    )
    .await
}

async fn token(
    http: &reqwest::Client,
    target: &Target,
    form: &[(&str, &str)],
    dpop: Option<&DpopKey>,
) -> Result<serde_json::Value, String> {
    let url = format!("{}/token", target.base);
    let mut request = http
        .post(&url)
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(form);
    if let Some(key) = dpop {
        request = request.header("DPoP", key.proof("POST", &url));
    }
    let r = request.send().await.map_err(|e| e.to_string())?;
    let status = r.status();
    let body: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    if status != 200 || body["id_token"].as_str().is_none() {
        return Err(format!("token: {status} {body}"));
    }
    Ok(body)
}

/// The first refresh token of a chain: a sign-in asking for `offline_access`.
async fn start_chain(http: &reqwest::Client, target: &Target) -> Result<String, String> {
    let first = sign_in(http, target, "openid email offline_access").await?;
    first["refresh_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no refresh_token from the sign-in".to_string())
}

/// One refresh grant on this worker's chain; the chain moves on to the
/// rotated token (or is dropped on failure).
async fn refresh_step(
    http: &reqwest::Client,
    target: &Target,
    chain: &mut Option<String>,
    dpop: Option<&DpopKey>,
) -> Result<(), String> {
    let current = chain.take().ok_or("no refresh token")?;
    let next = token(
        http,
        target,
        &[("grant_type", "refresh_token"), ("refresh_token", &current)],
        dpop,
    )
    .await?;
    if dpop.is_some() && next["token_type"] != "DPoP" {
        return Err(format!("not DPoP-bound: {}", next["token_type"]));
    }
    *chain = Some(
        next["refresh_token"]
            .as_str()
            .ok_or("no rotated refresh_token")?
            .to_string(),
    );
    Ok(())
}

/// A worker's DPoP key (ES256, the common choice of clients).
struct DpopKey {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
    header: String,
}

impl DpopKey {
    fn generate() -> DpopKey {
        use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &aws_lc_rs::rand::SystemRandom::new())
            .expect("key generation");
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).expect("a fresh key");
        let point = pair.public_key().as_ref();
        let header = serde_json::json!({
            "typ": "dpop+jwt", "alg": "ES256",
            "jwk": {"kty": "EC", "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&point[33..65])},
        });
        DpopKey {
            pair,
            header: URL_SAFE_NO_PAD.encode(header.to_string()),
        }
    }

    fn proof(&self, htm: &str, htu: &str) -> String {
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).expect("random");
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = serde_json::json!({
            "jti": URL_SAFE_NO_PAD.encode(jti), "htm": htm, "htu": htu, "iat": iat,
        });
        let input = format!(
            "{}.{}",
            self.header,
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
            .expect("signing");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

fn print_table(args: &Args, signing: f64, reports: &[StoreReport]) {
    println!();
    println!(
        "slack-oidc-bridge load benchmark: {} s per scenario, {} concurrent clients, {} CPU(s) (available_parallelism; the load generator, the stand-in and redis-server share them)",
        args.duration.as_secs_f64(),
        args.concurrency,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "| store  | scenario      |     ok | errors |   per s | p50 ms | p99 ms | bridge CPU ms/op | rest CPU ms/op |"
    );
    println!(
        "|--------|---------------|-------:|-------:|--------:|-------:|-------:|-----------------:|---------------:|"
    );
    for r in reports {
        for s in &r.scenarios {
            println!(
                "| {:<6} | {:<13} | {:>6} | {:>6} | {:>7.0} | {:>6.2} | {:>6.2} | {:>16.3} | {:>14.3} |",
                r.store.name(),
                s.name,
                s.ok,
                s.errors,
                s.rate(),
                s.percentile_ms(0.50),
                s.percentile_ms(0.99),
                s.cpu_ms_per_op(s.bridge_cpu),
                s.cpu_ms_per_op(s.other_cpu),
            );
        }
    }
    println!("(rest: this process, i.e. the clients and the Slack stand-in, plus redis-server)");
    println!();
    println!(
        "| store  | scenario      |    store calls/op | Slack calls/op (token, userInfo, users.info, usergroups.list) |"
    );
    println!(
        "|--------|---------------|------------------:|---------------------------------------------------------------|"
    );
    for r in reports {
        for s in r.scenarios.iter().filter(|s| s.counted_ops > 0) {
            let per_op = |n: f64| n / s.counted_ops as f64;
            let calls: Vec<String> = s
                .slack_calls
                .iter()
                .map(|(_, n)| format!("{:.3}", per_op(*n as f64)))
                .collect();
            println!(
                "| {:<6} | {:<13} | {:>17} | {:<61} |",
                r.store.name(),
                s.name,
                format!("{:.2}", per_op(s.store_calls as f64)),
                calls.join(", "),
            );
        }
    }
    println!(
        "(per operation, the refresh scenario counting the sign-ins that start its chains too; Slack's answers are reused for upstream.directory_ttl_secs)"
    );
    println!();
    println!("| store  | idle RSS after start | peak RSS (VmHWM) |");
    println!("|--------|---------------------:|-----------------:|");
    for r in reports {
        println!(
            "| {:<6} | {:>16.1} MiB | {:>12.1} MiB |",
            r.store.name(),
            r.idle_rss_kib as f64 / 1024.0,
            r.peak_rss_kib as f64 / 1024.0
        );
    }
    println!();
    println!("RS256 signing, one thread, cached aws-lc-rs key: {signing:.0} signs/s");
    for r in reports {
        if let Some(s) = r.scenarios.iter().find(|s| s.name == "refresh grant") {
            println!(
                "token issuance ({} store, refresh grants/s) / one-thread RS256 rate: {:.0} / {:.0} = {:.0}% (target on Redis: >= 85%)",
                r.store.name(),
                s.rate(),
                signing,
                100.0 * s.rate() / signing
            );
        }
        if let Some(s) = r.scenarios.iter().find(|s| s.name == "DPoP refresh") {
            println!(
                "DPoP-bound token issuance ({} store, refresh grants/s with an ES256 proof) / one-thread RS256 rate: {:.0} / {:.0} = {:.0}%",
                r.store.name(),
                s.rate(),
                signing,
                100.0 * s.rate() / signing
            );
        }
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix(field)?.strip_prefix(':')?;
                rest.trim().trim_end_matches("kB").trim().parse().ok()
            })
        })
        .unwrap_or(0)
}

/// User plus system CPU time of a process so far (0 if it is gone).
fn cpu_time(pid: u32) -> Duration {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name, which is in parentheses.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the whole line.
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_sec())
}

fn cpu_of(pids: &[u32]) -> Duration {
    pids.iter().map(|&p| cpu_time(p)).sum()
}

/// `getconf CLK_TCK`; 100 on every Linux this runs on, if getconf is missing.
fn clock_ticks_per_sec() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The real `slack-oidc-bridge` binary (built by cargo with this bench's
/// profile: release under `cargo bench`) and the stand-in, in this process.
struct BridgeProcess {
    base: String,
    standin: StandinHandle,
    dir: tempfile::TempDir,
    child: Child,
}

impl BridgeProcess {
    async fn start(redis_url: Option<&str>) -> BridgeProcess {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let standin = standin::start(StandinOptions {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            apps: vec![StandinApp {
                client_id: UPSTREAM_ID.into(),
                client_secret: UPSTREAM_SECRET.into(),
                redirect_urls: vec![format!("{base}/callback")],
                distributed: true,
                rotation: false,
            }],
            users: bench_users(),
            exact_slack_mode: false,
            groups: StandinGroup::fixtures(),
            bot_token: Some(DEV_BOT_TOKEN.into()),
            events: None,
        })
        .await
        .expect("the stand-in starts");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bridge.toml");
        std::fs::write(
            &config,
            config_text(&base, port, &standin.base_url, redis_url, dir.path()),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("bridge.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_slack-oidc-bridge"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("the bridge binary runs");
        let bridge = BridgeProcess {
            base,
            standin,
            dir,
            child,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + START_WITHIN;
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", bridge.base)).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the bridge did not become ready; see {}",
                bridge.dir.path().join("bridge.log").display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bridge
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Production defaults except what a loopback benchmark needs.
fn config_text(
    base: &str,
    port: u16,
    upstream: &str,
    redis_url: Option<&str>,
    dir: &Path,
) -> String {
    let store = match redis_url {
        None => "backend = \"memory\"".to_string(),
        Some(url) => format!("backend = \"redis\"\nredis_url = \"{url}\"\nkey_prefix = \"bench:\""),
    };
    format!(
        r#"issuer = "{base}"
listen = "127.0.0.1:{port}"
[store]
{store}
[keys]
dir = "{keys}"
[upstream]
issuer = "{upstream}"
client_id = "{UPSTREAM_ID}"
client_secret = "{UPSTREAM_SECRET}"
# Slack's directory is on, as in a deployment where Slack decides.
api_url = "{upstream}/api"
bot_token = "{DEV_BOT_TOKEN}"
# Every client of the benchmark comes from 127.0.0.1: no rate limits.
[limits]
authorize_per_address = {{ per_minute = 0 }}
authorize_per_client = {{ per_minute = 0 }}
token_per_address = {{ per_minute = 0 }}
token_per_client = {{ per_minute = 0 }}
[[clients]]
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
redirect_uris = ["{REDIRECT_URI}"]
grant_types = ["authorization_code", "refresh_token"]
"#,
        keys = dir.join("keys").display(),
    )
}

/// The bridge's count of its store calls (`bridge_store_calls_total`, every
/// operation), from its metrics.
async fn store_calls(base: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("the bridge answers /metrics")
        .text()
        .await
        .expect("a metrics text");
    text.lines()
        .filter(|l| l.starts_with("bridge_store_calls_total{"))
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|v| v.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// node-oidc-provider 9 (benches/peer/server.mjs) on a free loopback port,
/// its npm packages installed by `npm ci` on first use.
struct PeerProcess {
    base: String,
    child: Child,
}

impl PeerProcess {
    fn start() -> Result<PeerProcess, String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer");
        if !dir.join("node_modules/oidc-provider").exists() {
            let installed = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .stdin(Stdio::null())
                .status()
                .map_err(|e| format!("npm: {e}"))?;
            if !installed.success() {
                return Err(format!("npm ci in {} failed", dir.display()));
            }
        }
        let port = free_port();
        let child = Command::new("node")
            .arg("server.mjs")
            .arg(port.to_string())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("node: {e}"))?;
        let peer = PeerProcess {
            base: format!("http://127.0.0.1:{port}"),
            child,
        };
        let deadline = Instant::now() + START_WITHIN;
        while std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if Instant::now() > deadline {
                return Err("node-oidc-provider did not listen".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(peer)
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// node-oidc-provider's sign-in flow, measured like the bridge's.
async fn run_peer(args: &Args) -> Option<Scenario> {
    let peer = match PeerProcess::start() {
        Ok(peer) => peer,
        Err(e) => {
            eprintln!("node-oidc-provider not measured: {e}");
            return None;
        }
    };
    let target = Arc::new(Target {
        base: peer.base.clone(),
        standin: String::new(),
    });
    // Let its JIT warm up, as the bridge's scenarios before sign-in did.
    let _ = drive(
        target.clone(),
        Kind::PeerSignIn,
        args.concurrency,
        Duration::from_secs(2),
    )
    .await;
    let before = cpu_time(peer.child.id());
    let mut scenario = drive(target, Kind::PeerSignIn, args.concurrency, args.duration).await;
    scenario.bridge_cpu = cpu_time(peer.child.id()).saturating_sub(before);
    Some(scenario)
}

/// The same code flow at node-oidc-provider by a fresh browser (its own
/// cookies): authorize, the sign-in step (signs the user in at once, where
/// the bridge goes to Slack), the redirect back with a code, the token.
async fn peer_sign_in(base: &str) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let mut next = url::Url::parse(&format!("{base}/auth")).unwrap();
    next.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid email profile"),
        ("state", "bench-state"),
        ("nonce", "bench-nonce"),
    ]);
    for _ in 0..4 {
        let r = http
            .get(next.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_redirection() {
            return Err(format!("peer {}: {}", next.path(), r.status()));
        }
        next = location(&r)?;
        if next.as_str().starts_with(REDIRECT_URI) {
            let code = query(&next, "code").ok_or_else(|| format!("no code: {next}"))?;
            let r = http
                .post(format!("{base}/token"))
                .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", REDIRECT_URI),
                ])
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let body: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
            return body["id_token"]
                .as_str()
                .map(|_| ())
                .ok_or_else(|| format!("peer token: {body}"));
        }
    }
    Err("peer: too many redirects".into())
}

fn print_peer(peer: &Scenario, reports: &[StoreReport]) {
    println!();
    println!(
        "node-oidc-provider 9 ({}; in-memory adapter), same code flow: {:.0} sign-ins/s, {} errors, {:.3} ms CPU per sign-in",
        node_version(),
        peer.rate(),
        peer.errors,
        peer.cpu_ms_per_op(peer.bridge_cpu)
    );
    for r in reports {
        if let Some(s) = r.scenarios.iter().find(|s| s.name == "sign-in flow") {
            let ours = s.cpu_ms_per_op(s.bridge_cpu);
            let theirs = peer.cpu_ms_per_op(peer.bridge_cpu);
            println!(
                "bridge CPU per sign-in ({} store) / node-oidc-provider's: {ours:.3} / {theirs:.3} = {:.2}x (target on Redis: <= 0.6x)",
                r.store.name(),
                ours / theirs
            );
        }
    }
}

fn node_version() -> String {
    Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .map(|o| format!("Node.js {}", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| "Node.js".into())
}

/// A `redis-server` of our own on a free loopback port, no persistence.
struct Redis {
    url: String,
    child: Child,
}

impl Redis {
    fn start() -> Redis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis {
            url: format!("redis://127.0.0.1:{port}"),
            child,
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
