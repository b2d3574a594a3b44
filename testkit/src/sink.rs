//! What the accept-all sink (port 2525, `deploy/infra-up.sh`) received: one file per message in
//! MAILAPI_SINK_DIR.

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

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
