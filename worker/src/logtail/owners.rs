//! Lookups a batch of log lines needs: which of our messages owns each queue id, and those
//! messages' recipients by address.

use std::collections::HashMap;

use sqlx::PgConnection;
use uuid::Uuid;

/// Which message owns each queue id of a batch, and (tracing on) the messages' traceparents.
pub(super) struct Owners {
    by_queue_id: HashMap<String, Uuid>,
    pub(super) traceparents: HashMap<Uuid, String>,
}

impl Owners {
    pub(super) fn get(&self, qid: &str) -> Option<Uuid> {
        self.by_queue_id.get(qid).copied()
    }

    pub(super) fn messages(&self) -> Vec<Uuid> {
        let mut messages: Vec<Uuid> = self.by_queue_id.values().copied().collect();
        messages.sort_unstable();
        messages.dedup();
        messages
    }
}

/// The messages that own a batch's queue ids (`$1`): through the cleanup line's Message-ID, or
/// the queue id the worker recorded. `$extra` adds columns of `m` (the traceparent).
///
/// The `limit 1` (the Message-ID is unique anyway) keeps the lateral subquery from being
/// flattened into a join, so each entry finds its message through the unique index: as a join,
/// a planner without fresh statistics hashed all of `messages` for a batch of a few lines.
macro_rules! owners_sql {
    ($extra:literal) => {
        concat!(
            "select e.queue_id, m.id",
            $extra,
            " from mta_queue_entries e
               cross join lateral (
                   select * from messages m
                    where m.rfc_message_id = e.rfc_message_id limit 1) m
              where e.queue_id = any($1)
             union
             select m.queue_id, m.id",
            $extra,
            " from messages m where m.queue_id = any($1)"
        )
    };
}

impl Owners {
    /// With tracing on, the same query also returns each message's traceparent; off, it is the
    /// query it always was.
    pub(super) async fn load(
        conn: &mut PgConnection,
        wanted: &[&str],
        tracing: bool,
    ) -> sqlx::Result<Self> {
        let mut owners = Owners {
            by_queue_id: HashMap::new(),
            traceparents: HashMap::new(),
        };
        if wanted.is_empty() {
            return Ok(owners);
        }
        if !tracing {
            owners.by_queue_id = sqlx::query_as::<_, (String, Uuid)>(owners_sql!(""))
                .bind(wanted)
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .collect();
            return Ok(owners);
        }
        let rows =
            sqlx::query_as::<_, (String, Uuid, Option<String>)>(owners_sql!(", m.traceparent"))
                .bind(wanted)
                .fetch_all(&mut *conn)
                .await?;
        for (queue_id, message, traceparent) in rows {
            if let Some(tp) = traceparent {
                owners.traceparents.insert(message, tp);
            }
            owners.by_queue_id.insert(queue_id, message);
        }
        Ok(owners)
    }
}

/// Our recipients of the messages a batch touches, by message and lowercased address.
pub(super) struct Recipients {
    by_address: HashMap<(Uuid, String), i64>,
    pub(super) by_message: HashMap<Uuid, Vec<i64>>,
}

impl Recipients {
    pub(super) async fn load(conn: &mut PgConnection, messages: &[Uuid]) -> sqlx::Result<Self> {
        let rows: Vec<(i64, Uuid, String)> = if messages.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(
                "select id, message_id, lower(email) from recipients
                  where message_id = any($1) order by id",
            )
            .bind(messages)
            .fetch_all(conn)
            .await?
        };
        let mut by_address = HashMap::new();
        let mut by_message: HashMap<Uuid, Vec<i64>> = HashMap::new();
        for (id, message, email) in rows {
            by_address.insert((message, email), id);
            by_message.entry(message).or_default().push(id);
        }
        Ok(Self {
            by_address,
            by_message,
        })
    }

    /// Lowercased address of each recipient, by id (for delivery spans only).
    pub(super) fn emails_by_id(&self) -> HashMap<i64, &str> {
        self.by_address
            .iter()
            .map(|((_, email), id)| (*id, email.as_str()))
            .collect()
    }

    pub(super) fn find(&self, message: Uuid, address: &str) -> Option<i64> {
        self.by_address
            .get(&(message, address.to_lowercase()))
            .copied()
    }
}
