//! DPoP (RFC 9449).

use crate::common;
