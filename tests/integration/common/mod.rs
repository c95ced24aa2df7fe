//! Helpers shared by the integration tests; each test module uses only some.
#![allow(dead_code)]

pub mod bridge;
pub mod browser;
pub mod in_process;
pub mod json_server;
pub mod jws;
pub mod receiver;
pub mod redis_cluster;
pub mod redis_server;
pub mod rp;

/// The value of the series `name` whose labels include every pair given
/// (0 when there is no such series).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|l| {
            l.rsplit(' ')
                .next()
                .unwrap()
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("not a sample: {l}"))
        })
        .sum()
}

/// Runs each named scenario `async fn name(setup: Setup)` twice: on the
/// memory store (`memory::name`) and on a throwaway Redis (`redis::name`).
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name($crate::common::bridge::Setup::default()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    let server = $crate::common::redis_server::RedisServer::start();
                    let setup = $crate::common::bridge::Setup {
                        redis_url: Some(server.url.clone()),
                        ..Default::default()
                    };
                    super::$name(setup).await;
                    drop(server);
                }
            )*
        }
    };
}
