//! The suite every Store backend must pass.
use std::future::Future;

use super::Store;

pub async fn run_all<S, F, Fut>(_make: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
}
