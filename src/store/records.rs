//! Typed records over the raw [`Store`](super::Store).
