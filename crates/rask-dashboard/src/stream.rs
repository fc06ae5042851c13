//! The task stream's ring buffer: the last [`STREAM_KEEP`] records, numbered as they arrive.

use std::collections::VecDeque;

use crate::snapshot::TaskRecord;

/// Records the stream keeps; older ones fall off (a page asking for them gets what is left).
pub const STREAM_KEEP: usize = 20_000;
/// The most records one `/api/tasks` answer carries.
pub const MAX_PAGE: usize = 10_000;

/// The ring buffer behind `/api/tasks`.
#[derive(Debug, Default)]
pub struct TaskStream {
    records: VecDeque<TaskRecord>,
    next_id: u64,
    /// Records the sources dropped before they reached the stream (a worker's batch over its
    /// limit), as they reported.
    dropped: u64,
}

/// One page of the stream.
#[derive(Debug, serde::Serialize)]
pub struct StreamPage {
    /// The id of the newest record kept (0 before any).
    pub last: u64,
    pub dropped: u64,
    pub records: Vec<TaskRecord>,
}

impl TaskStream {
    /// Appends `records`, numbering them; drops the oldest beyond [`STREAM_KEEP`].
    pub fn extend(&mut self, records: impl IntoIterator<Item = TaskRecord>, dropped: u64) {
        self.dropped += dropped;
        for mut r in records {
            self.next_id += 1;
            r.id = self.next_id;
            if self.records.len() == STREAM_KEEP {
                self.records.pop_front();
            }
            self.records.push_back(r);
        }
    }

    /// Records with `id > since` (all kept ones for `None`), oldest first, at most `limit`:
    /// the newest ones when there are more.
    pub fn page(&self, since: Option<u64>, limit: usize) -> StreamPage {
        let first_kept = self.records.front().map_or(self.next_id + 1, |r| r.id);
        let start = match since {
            None => 0,
            Some(s) if s < first_kept => 0,
            Some(s) => (s + 1 - first_kept) as usize,
        };
        let n = self.records.len().saturating_sub(start);
        let start = start + n.saturating_sub(limit);
        StreamPage {
            last: self.next_id,
            dropped: self.dropped,
            records: self
                .records
                .range(start.min(self.records.len())..)
                .cloned()
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::StreamKind;
    use rask_graph::Key;

    fn rec(i: u32) -> TaskRecord {
        TaskRecord {
            id: 0,
            worker: "w".into(),
            lane: 0,
            key: Key::new(rask_graph::KeyName::new("t"), [i]),
            kind: StreamKind::Compute,
            start_ms: i as f64,
            stop_ms: i as f64 + 0.5,
        }
    }

    fn ids(p: &StreamPage) -> Vec<u64> {
        p.records.iter().map(|r| r.id).collect()
    }

    #[test]
    fn pages_follow_ids_and_keep_the_newest() {
        let mut s = TaskStream::default();
        assert_eq!(s.page(None, 10).last, 0);
        assert!(s.page(Some(5), 10).records.is_empty());
        s.extend((0..5).map(rec), 0);
        assert_eq!(ids(&s.page(None, 10)), vec![1, 2, 3, 4, 5]);
        assert_eq!(ids(&s.page(Some(3), 10)), vec![4, 5]);
        assert_eq!(ids(&s.page(Some(5), 10)), Vec::<u64>::new());
        assert_eq!(ids(&s.page(Some(99), 10)), Vec::<u64>::new());
        // A limit keeps the newest.
        assert_eq!(ids(&s.page(Some(0), 2)), vec![4, 5]);
    }

    #[test]
    fn the_ring_forgets_the_oldest() {
        let mut s = TaskStream::default();
        s.extend((0..(STREAM_KEEP as u32 + 7)).map(rec), 3);
        assert_eq!(s.len(), STREAM_KEEP);
        let p = s.page(Some(2), MAX_PAGE);
        assert_eq!(p.last, STREAM_KEEP as u64 + 7);
        assert_eq!(p.dropped, 3);
        assert_eq!(p.records.len(), MAX_PAGE);
        assert_eq!(p.records.last().unwrap().id, p.last);
        // Asking from before the oldest kept gives from the oldest kept on.
        let all = s.page(Some(2), usize::MAX);
        assert_eq!(all.records[0].id, 8);
    }
}
