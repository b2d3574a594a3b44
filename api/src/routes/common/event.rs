//! The event as every reader shows it (`GET /mail/{id}/events`, the pull feed, webhooks): the
//! struct and its `select` live in `shared::events`, where the worker's webhooks use them too.

pub use shared::events::{EVENT_COLUMNS, Event, EventSource};
