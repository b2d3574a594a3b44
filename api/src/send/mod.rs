//! Accepting a message: validate the request, store it in one transaction, then wake a worker
//! through the Redis stream.
//!
//! Layout: [`request`] is the wire format and its conversion into a validated
//! [`shared::outgoing::OutgoingMessage`]; [`store`] writes the message, its recipients, its
//! first event and the idempotency record; [`idempotency`] replays or refuses repeated keys;
//! [`enqueue`] adds the stream entry; [`accept`] group-commits concurrent requests' messages
//! and adds their entries; [`domains`] caches which sending domains are active; [`wait`] holds
//! the answer until the submission when the client sends `Prefer: wait`.

pub mod accept;
pub mod domains;
pub mod enqueue;
pub mod idempotency;
pub mod request;
pub mod store;
pub mod wait;
