-- The W3C `traceparent` of the API request that accepted a message, when tracing is on
-- (MAILAPI_OTLP_ENDPOINT). The stream entry carries it to the worker, but the delivery-log
-- follower learns of a message only from the MTA's log, hours later for a deferred recipient:
-- it reads this column in the query that already joins a log line to its message, so the
-- delivery spans join the request's trace. The reconciler copies it into the entries it re-adds.
--
-- Nullable with no default: adding it rewrites nothing, and messages accepted with tracing off
-- (or before this migration) simply have no trace to continue. 55 bytes when set.
alter table messages add column traceparent text;
