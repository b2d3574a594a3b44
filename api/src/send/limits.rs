//! The limits of a send request that are not settings: the spec's and the MTA's, stated once
//! for the validation (`send::validate`) and for the OpenAPI document (`send::request`).

/// Headers a client may not set: the message's structure, identity and trace are ours.
pub const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "reply-to",
    "sender",
    "message-id",
    "date",
    "mime-version",
    "dkim-signature",
    "return-path",
    "received",
    "delivered-to",
    "x-original-to",
];
pub const MAX_CUSTOM_HEADERS: usize = 50;
pub const MAX_HEADER_VALUE: usize = 998;
pub const MAX_SUBJECT: usize = 2_000;
pub const MAX_ATTACHMENTS: usize = 100;
