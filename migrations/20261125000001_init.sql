-- The whole data model the API contract implies, designed once so later features extend it.
--
-- Conventions: lowercase snake_case, `created_at`/`updated_at` everywhere, every constraint named
-- so the API can map a violation to a client error by name. Statuses are text with a check
-- constraint (not enums) so adding a value is a one-line migration without a type rewrite.

-- Domains we host. `active = false` is "pending admin approval": mailboxes there can already log
-- in and receive mail, but nothing may be sent from the domain until it is approved.
create table domains (
    id               bigserial primary key,
    domain           text        not null,
    active           boolean     not null default false,
    creator_email    text,
    -- DKIM: the selector and an RSA key pair (PKCS#1 PEM, what lettre's signer wants). The private
    -- key never leaves the server through the API.
    dkim_selector    text,
    dkim_private_key text,
    dkim_public_key  text,
    approved_at      timestamptz,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    constraint domains_domain_key unique (domain),
    constraint domains_domain_lowercase check (domain = lower(domain)),
    constraint domains_dkim_complete check (
        (dkim_selector is null) = (dkim_private_key is null)
        and (dkim_private_key is null) = (dkim_public_key is null)
    )
);

-- Mailbox users. `password_hash` is in a scheme Dovecot verifies ({SHA512-CRYPT}$6$...).
create table mailboxes (
    id            bigserial primary key,
    domain_id     bigint      not null references domains (id) on delete cascade,
    local_part    text        not null,
    email         text        not null,
    name          text,
    password_hash text        not null,
    active        boolean     not null default true,
    quota_bytes   bigint,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    constraint mailboxes_email_key unique (email),
    constraint mailboxes_email_lowercase check (email = lower(email))
);
create index mailboxes_domain_id_idx on mailboxes (domain_id);

create table aliases (
    id          bigserial primary key,
    domain_id   bigint      not null references domains (id) on delete cascade,
    source      text        not null,
    destination text        not null,
    active      boolean     not null default true,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    constraint aliases_source_destination_key unique (source, destination)
);

-- API tokens. Only a SHA-256 of the secret is stored: the secret carries >= 128 random bits, so
-- a slow password hash would add latency to every request without adding security.
create table api_tokens (
    id           bigserial primary key,
    token_hash   bytea       not null,
    token_prefix text        not null,
    token_type   text        not null,
    mailbox_id   bigint references mailboxes (id) on delete cascade,
    name         text        not null,
    is_active    boolean     not null default true,
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    constraint api_tokens_token_hash_key unique (token_hash),
    constraint api_tokens_token_type_check check (token_type in ('admin', 'user')),
    -- A user token is always bound to exactly one mailbox; an admin token to none.
    constraint api_tokens_mailbox_binding check ((token_type = 'user') = (mailbox_id is not null))
);
create index api_tokens_mailbox_id_idx on api_tokens (mailbox_id);

-- Per-domain grants to a mailbox user (the spec's permission table).
create table permissions (
    id         bigserial primary key,
    mailbox_id bigint      not null references mailboxes (id) on delete cascade,
    domain_id  bigint      not null references domains (id) on delete cascade,
    permission text        not null,
    created_at timestamptz not null default now(),
    constraint permissions_unique_grant unique (mailbox_id, domain_id, permission),
    constraint permissions_permission_check check (permission in (
        'manage_users', 'manage_domains', 'view_mailbox', 'view_stats', 'send_mail'
    ))
);

-- Messages accepted by POST /mail/send. `payload` holds the validated request (bodies, headers,
-- attachments) from which the worker builds the MIME message; `rfc_message_id` and `created_at`
-- (the Date header) are fixed at accept time so every attempt sends byte-identical content.
create table messages (
    id              uuid        primary key,
    token_id        bigint      references api_tokens (id) on delete set null,
    from_email      text        not null,
    from_domain     text        not null,
    subject         text        not null default '',
    status          text        not null default 'pending',
    rfc_message_id  text        not null,
    payload         json        not null,
    size_bytes      integer     not null,
    queue_id        text,
    attempts        integer     not null default 0,
    -- When the message may next be tried (retry schedule) and who holds it now. A claim is a
    -- conditional update on these columns; see worker/src/claim.rs.
    next_attempt_at timestamptz not null default now(),
    claimed_by      text,
    claimed_until   timestamptz,
    -- Set when an SMTP transaction for this message began and cleared when its outcome is
    -- recorded: a message found claimed-and-started after a crash may already be at the MTA.
    send_started_at timestamptz,
    -- Last time the message was put on the stream; the reconciler re-adds a due message whose
    -- entry is older than MAILAPI_RECONCILE_AFTER_SECS (lost stream, dead worker, retry due).
    enqueued_at     timestamptz,
    last_error      text,
    created_at      timestamptz not null default now(),
    submitted_at    timestamptz,
    completed_at    timestamptz,
    updated_at      timestamptz not null default now(),
    constraint messages_rfc_message_id_key unique (rfc_message_id),
    constraint messages_status_check check (status in (
        'pending', 'submitted', 'sent', 'partial', 'bounced', 'failed'
    ))
);
create index messages_created_at_idx on messages (created_at desc, id);
create index messages_from_email_created_at_idx on messages (from_email, created_at desc, id);
create index messages_queue_id_idx on messages (queue_id) where queue_id is not null;
-- The reconciler's and the claim's working set: only unfinished messages.
create index messages_pending_idx on messages (next_attempt_at) where status = 'pending';

create table recipients (
    id            bigserial primary key,
    message_id    uuid        not null references messages (id) on delete cascade,
    email         text        not null,
    domain        text        not null,
    kind          text        not null,
    status        text        not null default 'pending',
    dsn_code      text,
    smtp_response text,
    delivered_at  timestamptz,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    -- One row per address per message: the MTA delivers an address once, and the delivery log
    -- reports it once, so (message, address) is the join key for status updates.
    constraint recipients_message_email_key unique (message_id, email),
    constraint recipients_kind_check check (kind in ('to', 'cc', 'bcc')),
    constraint recipients_status_check check (status in (
        'pending', 'deferred', 'sent', 'bounced', 'failed', 'suppressed'
    ))
);

-- Every status change with its evidence (the SMTP reply, the log line, the report's fields).
create table delivery_events (
    id            bigserial primary key,
    message_id    uuid        not null references messages (id) on delete cascade,
    recipient_id  bigint references recipients (id) on delete cascade,
    event         text        not null,
    status        text,
    dsn_code      text,
    smtp_response text,
    source        text        not null,
    evidence      text,
    occurred_at   timestamptz not null default now(),
    created_at    timestamptz not null default now(),
    constraint delivery_events_source_check check (source in ('api', 'worker', 'log', 'dsn'))
);
create index delivery_events_message_id_idx on delivery_events (message_id, id);

-- Idempotency-Key records, per token. The response is stored so a retry gets the same answer.
create table idempotency_keys (
    token_id        bigint      not null references api_tokens (id) on delete cascade,
    idempotency_key text        not null,
    request_hash    bytea       not null,
    message_id      uuid        not null references messages (id) on delete cascade,
    response_status smallint    not null,
    response_body   jsonb       not null,
    created_at      timestamptz not null default now(),
    expires_at      timestamptz not null,
    constraint idempotency_keys_pkey primary key (token_id, idempotency_key)
);
create index idempotency_keys_expires_at_idx on idempotency_keys (expires_at);

-- Addresses that hard-bounced, per sending domain: later sends to them are marked
-- `suppressed` without contacting the MTA.
create table suppressions (
    id         bigserial primary key,
    domain     text        not null,
    email      text        not null,
    reason     text        not null,
    source     text        not null default 'bounce',
    dsn_code   text,
    message_id uuid references messages (id) on delete set null,
    created_at timestamptz not null default now(),
    constraint suppressions_domain_email_key unique (domain, email),
    constraint suppressions_source_check check (source in ('bounce', 'manual'))
);

-- Mail arriving at our mailboxes (accepted by LMTP delivery, or refused by smtpd), for the
-- domain statistics' inbound figures.
create table inbound_events (
    id            bigserial primary key,
    domain        text        not null,
    recipient     text        not null,
    sender        text,
    sender_domain text,
    status        text        not null,
    queue_id      text,
    evidence      text,
    occurred_at   timestamptz not null default now(),
    constraint inbound_events_status_check check (status in ('accepted', 'rejected', 'spam'))
);
create index inbound_events_domain_occurred_idx on inbound_events (domain, occurred_at);

-- Where the delivery-log follower is in each MTA log (file identity and byte offset).
create table log_positions (
    log_name   text        primary key,
    file_id    text        not null,
    byte_offset bigint     not null,
    updated_at timestamptz not null default now()
);

-- Queue ids the MTA logged for our Message-IDs (`cleanup ... message-id=`), with whether the
-- queue file was committed (`qmgr ... from=`). Lets a worker recovering from a crash see that a
-- message already reached the MTA instead of sending it again.
create table mta_queue_entries (
    queue_id       text        primary key,
    rfc_message_id text        not null,
    committed      boolean     not null default false,
    created_at     timestamptz not null default now()
);
create index mta_queue_entries_message_id_idx on mta_queue_entries (rfc_message_id);

-- What Postfix and Dovecot read, through a read-only role. Views keep the MTA's queries stable
-- while the tables evolve. Mail is received for pending domains too: their mailboxes are live.
create view mta_domains as
    select domain from domains;

create view mta_mailboxes as
    select m.email,
           m.local_part,
           d.domain,
           m.password_hash,
           '/var/vmail/' || d.domain || '/' || m.local_part as home
      from mailboxes m
      join domains d on d.id = m.domain_id
     where m.active;

create view mta_aliases as
    select source, destination from aliases where active;

-- The deploy scripts create the read-only role `mailapi_mta` before migrating; grant only when it
-- exists so per-test databases on machines without the mail stack still migrate.
do $$
begin
    if exists (select 1 from pg_roles where rolname = 'mailapi_mta') then
        grant select on mta_domains, mta_mailboxes, mta_aliases to mailapi_mta;
    end if;
end
$$;
