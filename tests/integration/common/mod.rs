//! Helpers shared by the integration tests; each test module uses only some.
#![allow(dead_code)]

pub mod bridge;
pub mod browser;
pub mod in_process;
pub mod receiver;
pub mod redis_cluster;
pub mod redis_server;

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
