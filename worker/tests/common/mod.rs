//! What the worker's integration tests share: the environment `deploy/infra-up.sh` writes, a
//! fresh migrated database per test, and what the accept-all sink received.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

use sqlx::{Connection, PgPool};

/// A variable of /etc/mailapi/mailapi.env; a test without it fails saying how to get it.
pub fn env(var: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!("{var} is not set: run deploy/infra-up.sh and `source /etc/mailapi/mailapi.env`")
        })
}

/// A fresh migrated database beside MAILAPI_DATABASE_URL's; returns its URL and a pool.
/// `deploy/test.sh` drops old ones.
pub async fn fresh_database() -> (String, PgPool) {
    let base = env("MAILAPI_DATABASE_URL");
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap_or_else(|e| {
        panic!("cannot reach Postgres at MAILAPI_DATABASE_URL ({e}); start the stack with `deploy/infra-up.sh`")
    });
    let name = format!("mailapi_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database (the role needs CREATEDB)");
    let (prefix, db) = base.rsplit_once('/').expect("database URL has a path");
    let query = db.find('?').map_or("", |i| &db[i..]);
    let url = format!("{prefix}/{name}{query}");
    let pool = PgPool::connect(&url)
        .await
        .expect("connect to test database");
    shared::MIGRATOR.run(&pool).await.expect("migrations apply");
    (url, pool)
}

/// Message-IDs of the sink's files written since `since` whose Message-ID is in `domain`, with
/// how often each was received.
pub fn sink_counts(dir: &Path, since: SystemTime, domain: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    let needle = format!("@{domain}>");
    for entry in std::fs::read_dir(dir)
        .expect("MAILAPI_SINK_DIR readable")
        .flatten()
    {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.modified().map(|m| m < since).unwrap_or(true) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        for line in text.lines() {
            if line.to_ascii_lowercase().starts_with("message-id:") && line.contains(&needle) {
                *counts.entry(line[11..].trim().to_owned()).or_default() += 1;
                break;
            }
        }
    }
    counts
}
