-- Repairs messages left behind their recipients by a race fixed in this release: Postfix
-- delivered and logged a message a few milliseconds before the worker's `submitted` record
-- committed; the log follower's roll-up skipped the message (still `pending` to it) and the
-- worker's record, whose snapshot predated the follower's commit, did not roll it up either. Such
-- a message stayed `submitted` for ever while its recipients were final (3.8-6.5 % of messages
-- in the end-to-end benchmarks of 2026-12).
--
-- The rule is the one shared::delivery::rollup_messages applies (docs/DELIVERY.md, "Message
-- status"). Only `submitted` messages can be affected; the scan reads them once, and the update
-- touches only the wrong rows, each in its own row lock, so the API and the worker keep running.
update messages m
   set status = n.status,
       completed_at = case when a.open = 0 then coalesce(m.completed_at, now()) end,
       updated_at = now()
  from (select r.message_id,
               count(*) as total,
               count(*) filter (where r.status = 'sent') as sent,
               count(*) filter (where r.status in ('bounced', 'failed')) as failed,
               count(*) filter (where r.status in ('pending', 'deferred')) as open
          from recipients r
          join messages s on s.id = r.message_id and s.status = 'submitted'
         group by r.message_id) a,
       lateral (select case when a.open = 0 and a.sent = a.total then 'sent'
                            when a.open = 0 and a.sent = 0 then 'bounced'
                            when a.open = 0 then 'partial'
                            when a.sent > 0 and a.failed > 0 then 'partial'
                            else 'submitted' end as status) n
 where m.id = a.message_id
   and m.status = 'submitted'
   and n.status <> 'submitted';
