//! Page rendering, pre-serialized JSON documents, and the headers every
//! response carries.

pub mod cached;
pub mod headers;
pub mod pages;

pub use pages::Pages;
