//! A page of a folder, newest first, fetching only that page.
//!
//! Sequence numbers follow UID order, so "newest first" is the top of the sequence range: EXAMINE
//! gives EXISTS = N, and page (offset o, limit l) is the range `max(1, N-o-l+1) : N-o`. One
//! FETCH of at most `l` messages, whatever the folder's size.

use super::args::FolderName;
use super::error::ImapError;
use super::session::MailSession;
use super::summary::{MessageSummary, SUMMARY_ITEMS};

pub struct Page {
    pub total: u32,
    pub messages: Vec<MessageSummary>,
}

/// The sequence range for a page, `None` when the page is past the end.
pub fn page_range(exists: u32, offset: u32, limit: u32) -> Option<(u32, u32)> {
    if limit == 0 || offset >= exists {
        return None;
    }
    let hi = exists - offset;
    let lo = hi.saturating_sub(limit - 1).max(1);
    Some((lo, hi))
}

impl MailSession {
    pub async fn list_page(
        &mut self,
        folder: &FolderName,
        offset: u32,
        limit: u32,
    ) -> Result<Page, ImapError> {
        let total = self.examine(folder).await?;
        let Some((lo, hi)) = page_range(total, offset, limit) else {
            return Ok(Page {
                total,
                messages: Vec::new(),
            });
        };
        let fetched = self
            .fetch(false, &format!("{lo}:{hi}"), SUMMARY_ITEMS)
            .await?;
        // Only replies for the range asked for: the server may mix in unsolicited FETCHes.
        let mut messages: Vec<MessageSummary> = fetched
            .iter()
            .filter(|f| (lo..=hi).contains(&f.message))
            .filter_map(MessageSummary::from_fetch)
            .collect();
        messages.sort_unstable_by_key(|m| std::cmp::Reverse(m.uid));
        messages.dedup_by_key(|m| m.uid);
        Ok(Page { total, messages })
    }

    /// Summaries for the given UIDs, in the order given.
    pub async fn summaries(
        &mut self,
        uids: &[u32],
        items: &str,
    ) -> Result<Vec<async_imap::types::Fetch>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut fetched = self.fetch(true, &set, items).await?;
        fetched.retain(|f| f.uid.is_some_and(|u| uids.contains(&u)));
        fetched.sort_by_key(|f| {
            f.uid
                .and_then(|u| uids.iter().position(|x| *x == u))
                .unwrap_or(usize::MAX)
        });
        fetched.dedup_by_key(|f| f.uid);
        Ok(fetched)
    }
}

#[cfg(test)]
mod tests {
    use super::page_range;

    #[test]
    fn pages_count_from_the_newest() {
        assert_eq!(page_range(150, 0, 50), Some((101, 150)));
        assert_eq!(page_range(150, 100, 50), Some((1, 50)));
        assert_eq!(page_range(150, 120, 50), Some((1, 30)));
        assert_eq!(page_range(150, 150, 50), None);
        assert_eq!(page_range(0, 0, 50), None);
        assert_eq!(page_range(3, 0, 200), Some((1, 3)));
        assert_eq!(page_range(u32::MAX, 0, 1), Some((u32::MAX, u32::MAX)));
    }
}
