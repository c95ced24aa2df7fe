//! Page rendering in English and French, pre-serialized JSON documents, the
//! headers every response carries, and CORS for browser applications.

pub mod cached;
pub mod cors;
pub mod headers;
pub mod i18n;
pub mod pages;

pub use pages::Pages;
