#[macro_use]
#[path = "integration/common/mod.rs"]
mod common;
#[path = "integration/private_key_jwt.rs"]
mod private_key_jwt;
