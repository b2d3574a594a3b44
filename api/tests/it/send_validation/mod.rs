//! `POST /mail/send` refuses bad input with a stable code and stores and queues nothing;
//! idempotency keys; who may see a message's status; `GET /mail/sent` scoping.

mod accepted;
mod refusals;
mod scoping;

use serde_json::{Value, json};

fn good() -> Value {
    json!({
        "from": "sender@send.test",
        "to": ["rcpt@example.net"],
        "subject": "Hello",
        "body": {"text": "hi", "html": "<p>hi</p>"},
    })
}

fn with(mut base: Value, path: &[&str], value: Value) -> Value {
    let mut cur = &mut base;
    for p in &path[..path.len() - 1] {
        cur = &mut cur[*p];
    }
    cur[path[path.len() - 1]] = value;
    base
}
