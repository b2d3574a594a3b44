//! Timestamps as the spec writes them; the functions live in `shared::time`, where the worker's
//! webhook payloads use them too.

pub use shared::time::{format, option, serialize};
