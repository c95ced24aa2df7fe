//! Helpers shared by the integration tests; each test binary uses only some.
#![allow(dead_code)]

pub mod redis_server;
