#[macro_use]
#[path = "integration/common/mod.rs"]
mod common;
#[path = "integration/dpop.rs"]
mod dpop;
