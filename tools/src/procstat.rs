//! Samples a process from /proc: CPU time (utime + stime of all its threads, and utime
//! alone, from /proc/PID/stat) and resident memory (VmRSS from /proc/PID/status). Used for the server under
//! test (`--server-pid`) and for the load generator's own CPU use.

use anyhow::{bail, Context, Result};
use std::fs;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// user + system CPU, in seconds.
    pub cpu_secs: f64,
    /// user CPU alone, in seconds (what the program's own code costs; the rest is the kernel
    /// working for it: syscalls, and on loopback the peer's receive path too).
    pub user_secs: f64,
    /// Resident set size, in KiB.
    pub rss_kib: u64,
}

/// Reads CPU time and RSS of `pid` ("self" works too).
pub fn sample(pid: &str) -> Result<ProcSample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat (is the process running?)"))?;
    let (utime, stime) = parse_cpu_ticks(&stat)?;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let rss_kib = parse_vm_rss_kib(&status).unwrap_or(0);
    let hz = crate::sys::clock_ticks_per_sec() as f64;
    Ok(ProcSample {
        cpu_secs: (utime + stime) as f64 / hz,
        user_secs: utime as f64 / hz,
        rss_kib,
    })
}

/// The sum over several processes (CPU seconds and RSS add up).
pub fn sample_all(pids: &[u32]) -> Result<ProcSample> {
    let mut total = ProcSample {
        cpu_secs: 0.0,
        user_secs: 0.0,
        rss_kib: 0,
    };
    for pid in pids {
        let s = sample(&pid.to_string()).with_context(|| format!("server pid {pid}"))?;
        total.cpu_secs += s.cpu_secs;
        total.user_secs += s.user_secs;
        total.rss_kib += s.rss_kib;
    }
    Ok(total)
}

/// CPU seconds of this process so far (0 when /proc is unreadable).
pub fn self_cpu_secs() -> f64 {
    sample("self").map(|s| s.cpu_secs).unwrap_or(0.0)
}

/// utime and stime (fields 14 and 15) from a /proc/PID/stat line. The command name (field 2) is
/// in parentheses and may contain spaces or ')', so fields are counted after the last ')'.
pub fn parse_cpu_ticks(stat: &str) -> Result<(u64, u64)> {
    let Some(close) = stat.rfind(')') else {
        bail!("malformed /proc stat line");
    };
    // After ')' the fields start at field 3 (state).
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("no field {n} in /proc stat line"))
    };
    Ok((field(14)?, field(15)?))
}

/// The VmRSS value in KiB from /proc/PID/status text.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "4242 (my (weird) srv) S 1 4242 4242 0 -1 4194560 500 0 0 0 1234 567 0 0 20 0 3 0 100 1000000 250 18446744073709551615";
        assert_eq!(parse_cpu_ticks(line).ok(), Some((1234, 567)));
        assert!(parse_cpu_ticks("garbage").is_err());
    }

    #[test]
    fn parses_vm_rss() {
        let s = "Name:\tx\nVmPeak:\t  1000 kB\nVmRSS:\t    2048 kB\nThreads: 1\n";
        assert_eq!(parse_vm_rss_kib(s), Some(2048));
        assert_eq!(parse_vm_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn samples_self() {
        let s = sample("self").expect("/proc/self is readable");
        assert!(s.rss_kib > 0);
    }
}
