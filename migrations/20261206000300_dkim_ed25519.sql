-- Ed25519 DKIM signatures (RFC 8463) beside the RSA one: per domain, off by default.
--
-- Columns on `domains`, next to the RSA key's, rather than a table of keys: a domain has at most
-- one key per algorithm, the worker reads a domain's keys in one row, and the tests and tools
-- that insert domains with an RSA key keep working unchanged.
--
-- - `dkim_ed25519_enabled` is false for every existing and new domain: Ed25519 is signed only
--   after an admin or a `manage_domains` holder turns it on (PATCH /api/v1/domains/{domain}).
-- - The key pair is made the first time it is turned on and kept when it is turned off, so that
--   turning it on again needs no new DNS record.
-- - Its selector is its own (`ed<yyyymm>`): a selector names exactly one key record, and the RSA
--   record stays where it is.
-- - The private key is PKCS#8 PEM. The public key is the base64 of its 32 raw bytes, which is
--   what `p=` publishes for `k=ed25519` (RFC 8463 section 4.2), not a PEM document.
--
-- Adding columns with constant defaults rewrites no rows (PostgreSQL 11+), and both checks hold
-- for every existing row (nothing is enabled yet), so this is quick on a large table and the
-- previous release, which never reads these columns, keeps running during a rolling upgrade.
alter table domains
    add column dkim_ed25519_enabled     boolean not null default false,
    add column dkim_ed25519_selector    text,
    add column dkim_ed25519_private_key text,
    add column dkim_ed25519_public_key  text,
    add constraint domains_dkim_ed25519_complete check (
        (dkim_ed25519_selector is null) = (dkim_ed25519_private_key is null)
        and (dkim_ed25519_private_key is null) = (dkim_ed25519_public_key is null)
    ),
    -- Ed25519 is only ever a second signature: many receivers do not verify it yet, so a domain
    -- signs with it only when it has its RSA key too (that is, once approved).
    add constraint domains_dkim_ed25519_needs_keys check (
        not dkim_ed25519_enabled
        or (dkim_ed25519_private_key is not null and dkim_private_key is not null)
    );
