//! This process's CPU time and resident memory, read from `/proc` (zero where there is
//! none): the figures a worker and a local computation report for the dashboard.

/// Per-process CPU time and resident memory, read from `/proc` (zero where there is none).
#[derive(Debug, Default)]
pub struct ProcessSampler {
    last: Option<(std::time::Instant, f64)>,
}

impl ProcessSampler {
    /// CPU use since the previous call, in percent of one core.
    pub fn cpu_percent(&mut self) -> f64 {
        let now = std::time::Instant::now();
        let cpu = cpu_seconds();
        let pct = match self.last {
            Some((t, c)) => {
                let wall = now.duration_since(t).as_secs_f64();
                if wall > 0.0 {
                    (cpu - c) / wall * 100.0
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, cpu));
        pct.max(0.0)
    }
}

/// User plus system CPU seconds of this process.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces, so split after its `)`).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; 12 and 13 after the `)`.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Clock ticks: Linux's USER_HZ is 100 on every architecture rask runs on.
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident set size of this process in bytes (0 where unknown).
pub fn rss_bytes() -> u64 {
    #[cfg(target_os = "linux")]
    {
        if let Ok(s) = std::fs::read_to_string("/proc/self/statm")
            && let Some(rss) = s
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<u64>().ok())
        {
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            return rss * page.max(0) as u64;
        }
    }
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn figures_follow_what_the_process_does() {
        // 64 MiB touched: the resident set grows by about that much.
        let before = rss_bytes();
        let v = vec![1u8; 64 << 20];
        let after = rss_bytes();
        assert!(before > 0);
        assert!(after >= before + (48 << 20), "{before} -> {after}");
        std::hint::black_box(&v);
        // Busy for 300 ms of wall time: CPU seconds advance, the sampler sees most of a core.
        let mut s = ProcessSampler::default();
        s.cpu_percent();
        let c0 = cpu_seconds();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds() > c0);
        let pct = s.cpu_percent();
        assert!((20.0..=800.0).contains(&pct), "{pct}% of a core");
    }
}
