//! The integration tests, one binary: each module is one behaviour area and
//! starts its own servers (the bridge, the Slack stand-in, Redis) on free
//! loopback ports. One binary links once, which keeps a clean build small.

#[macro_use]
mod common;

mod browser;
mod cli;
mod cluster;
mod deploy_files;
mod deprovisioning;
mod device_flow;
mod directory;
mod dpop;
mod hostile_input;
mod instances;
mod jwt_access_tokens;
mod keys;
mod limits;
mod logout;
mod native_and_spa;
mod observability;
mod pages;
mod pairwise;
mod par;
mod private_key_jwt;
mod redis_tls;
mod refresh;
mod refusals;
mod rp_library;
mod sessions;
mod sign_in;
mod slack_faults;
mod store_conformance;
mod store_outage;
