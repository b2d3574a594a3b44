-- Webhooks (issue 18): endpoints senders register, and the outbox of what is sent to them.
-- worker/src/webhooks/ explains the flow; docs/WEBHOOKS.md the contract.
--
-- webhook_endpoints: one row per registered URL.
-- - Scope, fixed at creation: `domain` set: the events of mail sent from that domain (admin, or
--   `manage_domains` on it); otherwise `scope_all` (made with an admin token: all mail) or the
--   creating user token's own mail (`scope_email`: sent from its mailbox, `scope_token_id`: sent
--   with it), the rule of `GET /mail/{id}/status` and of the feed.
-- - `events`: registry names (shared/src/events.rs) or `*`.
-- - Secrets are stored sealed (AES-256-GCM under MAILAPI_SECRET_KEY: `nonce || ciphertext`),
--   never in clear. After a rotation the previous secret keeps signing beside the new one until
--   `previous_secret_expires_at`.
-- - `enabled` turns false when a receiver answers 410 Gone (`disabled_reason` says so) or its
--   owner disables it.
-- - The circuit breaker: `failures_in_a_row` counts failed attempts since the last success; once
--   it reaches the threshold the endpoint is paused until `paused_until`, then probed.
create table webhook_endpoints (
    id                          bigserial primary key,
    scope_all                   boolean     not null default false,
    scope_email                 text,
    scope_token_id              bigint,
    domain                      text references domains (domain) on delete cascade,
    url                         text        not null,
    events                      text[]      not null,
    enabled                     boolean     not null default true,
    final_only                  boolean     not null default false,
    batch_size                  integer     not null default 1,
    secret_ciphertext           bytea       not null,
    previous_secret_ciphertext  bytea,
    previous_secret_expires_at  timestamptz,
    disabled_reason             text,
    failures_in_a_row           integer     not null default 0,
    paused_until                timestamptz,
    created_at                  timestamptz not null default now(),
    updated_at                  timestamptz not null default now(),
    constraint webhook_endpoints_batch_size_check check (batch_size between 1 and 100),
    constraint webhook_endpoints_events_check check (cardinality(events) between 1 and 32),
    constraint webhook_endpoints_url_check check (url ~ '^https?://' and length(url) <= 2048),
    constraint webhook_endpoints_scope_check check (
        (domain is not null)::int + scope_all::int + (scope_email is not null)::int = 1)
);
create index webhook_endpoints_domain_idx on webhook_endpoints (domain) where domain is not null;
create index webhook_endpoints_email_idx on webhook_endpoints (scope_email)
    where scope_email is not null;

-- webhook_deliveries: one row per (endpoint, event), made by the worker's fan-out in the feed's
-- order, so an endpoint registered later gets only later events; a replay puts a row back to
-- `pending`. `request_id` is the request it is sent in, once one is made.
-- - state: `pending` (to send, or being sent), `delivered`, `dead` (dead letter: the request
--   carrying it failed its last retry).
-- - Per-message order: a delivery joins a request only once no delivery of the same message to
--   the same endpoint with a smaller `seq` is still pending.
create table webhook_deliveries (
    id           bigserial primary key,
    endpoint_id  bigint      not null references webhook_endpoints (id) on delete cascade,
    event_id     bigint      not null references delivery_events (id) on delete cascade,
    message_id   uuid        not null,
    seq          integer     not null,
    event_type   text        not null,
    state        text        not null default 'pending',
    request_id   bigint,
    created_at   timestamptz not null default now(),
    finished_at  timestamptz,
    constraint webhook_deliveries_state_check check (state in ('pending', 'delivered', 'dead'))
);
create unique index webhook_deliveries_event_idx on webhook_deliveries (endpoint_id, event_id);
-- For the cascade when events go (a message deleted): found by event, not by endpoint.
create index webhook_deliveries_event_id_idx on webhook_deliveries (event_id);
create index webhook_deliveries_unsent_idx on webhook_deliveries (id)
    where state = 'pending' and request_id is null;
create index webhook_deliveries_order_idx on webhook_deliveries (endpoint_id, message_id, seq)
    where state = 'pending';
create index webhook_deliveries_request_idx on webhook_deliveries (request_id)
    where request_id is not null;
create index webhook_deliveries_dead_idx on webhook_deliveries (endpoint_id, id)
    where state = 'dead';
create index webhook_deliveries_time_idx on webhook_deliveries (endpoint_id, created_at);

-- webhook_requests: what is POSTed, fixed when first made so every retry sends the same bytes
-- under the same `webhook-id` (`evt_<event id>` for one event, `batch_<id>` for several,
-- `test_<id>` for a test event). `leased_until`: a worker is sending it; a worker killed
-- mid-request leaves the lease to expire and the request is sent again (docs/WEBHOOKS.md,
-- "Duplicates").
create table webhook_requests (
    id               bigserial primary key,
    endpoint_id      bigint      not null references webhook_endpoints (id) on delete cascade,
    webhook_id       text        not null,
    body             text        not null,
    event_count      integer     not null,
    -- When the oldest event in it happened: the delivery latency is measured from here.
    first_event_at   timestamptz,
    state            text        not null default 'pending',
    attempts         integer     not null default 0,
    next_attempt_at  timestamptz not null default now(),
    leased_until     timestamptz,
    created_at       timestamptz not null default now(),
    finished_at      timestamptz,
    constraint webhook_requests_state_check check (state in ('pending', 'delivered', 'dead'))
);
create index webhook_requests_due_idx on webhook_requests (endpoint_id, next_attempt_at, id)
    where state = 'pending';
create index webhook_requests_endpoint_idx on webhook_requests (endpoint_id, id);

-- Every attempt, as the API lists it: the answer's status and the first 1 KiB of its body, or
-- the error that stood for one (timeout, refused connection, a refused address).
create table webhook_attempts (
    id               bigserial primary key,
    request_id       bigint      not null references webhook_requests (id) on delete cascade,
    endpoint_id      bigint      not null references webhook_endpoints (id) on delete cascade,
    attempted_at     timestamptz not null default now(),
    status_code      integer,
    latency_ms       integer     not null,
    response_excerpt text,
    error            text
);
create index webhook_attempts_endpoint_idx on webhook_attempts (endpoint_id, id);
create index webhook_attempts_request_idx on webhook_attempts (request_id);

-- Where the fan-out has read the event feed to: one row, the `(xid, id)` cursor of the feed
-- (api/src/routes/feed.rs explains the order), moved in the statement that inserts the
-- deliveries of the events before it, so a crash neither skips nor repeats an event.
create table webhook_fanout (
    singleton  boolean primary key default true,
    xid        xid8    not null default '0',
    event_id   bigint  not null default 0,
    constraint webhook_fanout_singleton_check check (singleton)
);
insert into webhook_fanout default values;
