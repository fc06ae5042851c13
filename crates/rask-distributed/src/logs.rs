//! Logging for the processes of a cluster: standard error as the user asked, plus a ring of
//! the recent lines that a worker sends to the dashboard's workers page.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;

use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Lines the ring keeps.
const RING_KEEP: usize = rask_dashboard::LOG_KEEP;

struct Ring {
    lines: VecDeque<String>,
    /// Number of the newest line (lines are numbered from 1).
    last: u64,
}

static RING: Mutex<Ring> = Mutex::new(Ring {
    lines: VecDeque::new(),
    last: 0,
});

fn ring() -> std::sync::MutexGuard<'static, Ring> {
    RING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Appends a line to the ring (what the logging layer does; also for tests).
pub fn push_line(line: &str) {
    let mut r = ring();
    if r.lines.len() == RING_KEEP {
        r.lines.pop_front();
    }
    r.lines.push_back(line.to_string());
    r.last += 1;
}

/// The lines newer than `*cursor` (as many as the ring still has), moving the cursor past
/// them.
pub fn take_new(cursor: &mut u64) -> Vec<String> {
    let r = ring();
    let new = (r.last - (*cursor).min(r.last)) as usize;
    let n = new.min(r.lines.len());
    *cursor = r.last;
    r.lines.iter().skip(r.lines.len() - n).cloned().collect()
}

/// A writer into the ring: each formatted event becomes one line.
#[derive(Default)]
struct RingWriter(Vec<u8>);

impl Write for RingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RingWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            push_line(line);
        }
    }
}

/// Installs the process's logging: events passing `filter` (an `EnvFilter` directive such as
/// `warn` or `rask=debug`) go to standard error, and events at `info` and above also go to
/// the ring. Does nothing if the program installed its own subscriber already.
pub fn init_logging(filter: &str) {
    use std::io::IsTerminal;
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_filter(tracing_subscriber::EnvFilter::new(filter));
    let ring = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(RingWriter::default)
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(ring)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ring is process-wide: tests that fill it must not run at the same time.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn the_ring_hands_out_each_line_once_and_forgets_the_oldest() {
        let _one_at_a_time = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let mut cursor = ring().last;
        push_line("one");
        push_line("two");
        assert_eq!(take_new(&mut cursor), vec!["one", "two"]);
        assert!(take_new(&mut cursor).is_empty());
        for i in 0..RING_KEEP + 5 {
            push_line(&format!("l{i}"));
        }
        let got = take_new(&mut cursor);
        assert_eq!(got.len(), RING_KEEP);
        assert_eq!(got.last().unwrap(), &format!("l{}", RING_KEEP + 4));
    }

    #[test]
    fn a_writer_splits_lines() {
        let _one_at_a_time = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let mut cursor = ring().last;
        {
            let mut w = RingWriter::default();
            w.write_all(b"first line\nsecond\n\n").unwrap();
        }
        let got = take_new(&mut cursor);
        assert!(
            got.ends_with(&["first line".to_string(), "second".to_string()]),
            "{got:?}"
        );
    }
}
