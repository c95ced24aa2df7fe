//! The bridge's own app (`slack_oidc_bridge::app`: the routes and middleware
//! `serve` runs) called in process, for the property tests that send
//! thousands of generated requests: no sockets on the bridge's side, a real
//! Slack stand-in on a loopback port.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::Service;
use actix_web::rt::System;
use actix_web::test::{self, TestRequest};
use actix_web::web::Data;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use slack_oidc_bridge::config::Config;
use slack_oidc_bridge::health::Readiness;
use slack_oidc_bridge::keys::{self, KeyStore};

use super::bridge::{Setup, config_text, free_port, start_standin};

/// What the app answered, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The issuer the in-process app believes it has (nothing listens there).
pub fn issuer(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Runs `cases` generated requests through the app; `check` judges each
/// answer. A failure is shrunk by proptest and reported with its input.
pub fn run_cases<S: Strategy>(
    cases: u32,
    strategy: S,
    request: impl Fn(&S::Value, &Context) -> TestRequest,
    check: impl Fn(&S::Value, &Answer, &Context) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let system = System::new();
    let port = free_port();
    let base = issuer(port);
    let standin = system.block_on(start_standin(&base));
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&base, port, &standin.base_url, &Setup::default(), &dir);
    let config = Arc::new(Config::from_toml_with_env(&text, Vec::new()).expect("config"));
    // The store starts its sweeper task: inside the runtime.
    let app = system.block_on(async {
        let store = slack_oidc_bridge::build_store(&config).unwrap();
        let keys = Arc::new(KeyStore::open(keys::Policy::from_config(&config)).unwrap());
        let provider =
            Data::new(slack_oidc_bridge::build_provider(config.clone(), store, keys).unwrap());
        test::init_service(slack_oidc_bridge::app(
            provider,
            Data::new(Readiness::default()),
        ))
        .await
    });
    let context = Context {
        issuer: base,
        slack: standin.base_url.clone(),
    };

    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let result = runner.run(&strategy, |case| {
        let req = request(&case, &context).to_request();
        let answer = system.block_on(async {
            match app.call(req).await {
                Ok(response) => {
                    let (_, response) = response.into_parts();
                    read(response).await
                }
                // The HTTP server would turn an error into its response.
                Err(e) => read(e.error_response()).await,
            }
        });
        check(&case, &answer, &context)
    });
    drop(standin);
    if let Err(e) = result {
        panic!("{e}");
    }
}

pub struct Context {
    pub issuer: String,
    /// The stand-in's base URL (its authorize endpoint is below it).
    pub slack: String,
}

async fn read<B: MessageBody>(response: actix_web::HttpResponse<B>) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = actix_web::body::to_bytes(response.into_body())
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}
