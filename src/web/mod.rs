//! Page rendering in English and French, pre-serialized JSON documents, and
//! the headers every response carries.

pub mod cached;
pub mod headers;
pub mod i18n;
pub mod pages;

pub use pages::Pages;
