-- A message's payload (the accepted request as JSON: bodies and base64 attachments) is over
-- Postgres's 2 KB TOAST threshold for most real messages, so every accept compressed it with
-- pglz: about 5 % of Postgres's CPU at 2,900 accepts/s in the benchmark (perf), and far more for
-- multi-megabyte attachments. lz4 compresses several times faster for a similar ratio.
--
-- Applies to values written from now on; existing rows keep pglz and stay readable (each datum
-- records its own method). Needs a server built with lz4 (Debian's and the official images are).
alter table messages alter column payload set compression lz4;
