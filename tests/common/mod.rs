//! Helpers shared by the integration tests; each test binary uses only some.
#![allow(dead_code)]

pub mod bridge;
pub mod browser;
pub mod redis_server;
