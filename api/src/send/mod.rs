//! Accepting a message: validate the request, store it in one transaction, then wake a worker
//! through the Redis stream.
//!
//! Layout: [`request`] is the wire format and its schema, [`validate`] its conversion into a
//! [`shared::outgoing::OutgoingMessage`] (with [`limits`] and [`attachments`]); [`store`] writes
//! the message, its recipients and its first event; [`idempotency`] replays or refuses repeated
//! keys and records new ones; [`enqueue`] adds the stream entry; [`accept`] is the one path from
//! a validated message to a committed one with its stream entry (group-committed without a key,
//! in a transaction of its own with one); [`domains`] caches which sending domains are active;
//! [`wait`] holds the answer until the submission when the client sends `Prefer: wait`.

pub mod accept;
pub mod attachments;
pub mod domains;
pub mod enqueue;
pub mod idempotency;
pub mod limits;
pub mod request;
pub mod store;
pub mod validate;
pub mod wait;
