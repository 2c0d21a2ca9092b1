//! The process's own metrics, under the names Prometheus' client libraries give them, so
//! the dashboards and alerts written for those work unchanged. Read from `/proc` when
//! scraped; on a system without it they are left out.

use std::fmt::Write;

use super::family;

/// Clock ticks a second in `/proc`'s CPU times: `USER_HZ`, 100 on every Linux
/// architecture (the kernel converts to it whatever its internal rate).
const TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc` says of this process.
#[derive(Debug, Default)]
struct Process {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: u64,
    max_fds: Option<u64>,
    start_time_seconds: f64,
}

/// Appends the process families; nothing when `/proc` cannot be read.
pub(super) fn render(out: &mut String) {
    let Some(process) = read() else { return };
    let gauges = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            process.resident_bytes as f64,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            process.virtual_bytes as f64,
        ),
        (
            "process_open_fds",
            "Number of open file descriptors.",
            process.open_fds as f64,
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            process.start_time_seconds,
        ),
    ];
    family(
        out,
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
    );
    let _ = writeln!(out, "process_cpu_seconds_total {}", process.cpu_seconds);
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    if let Some(max) = process.max_fds {
        family(
            out,
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
        );
        let _ = writeln!(out, "process_max_fds {max}");
    }
}

fn read() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    let mut process = parse(&stat, &status, &boot, &limits)?;
    // The directory's own descriptor, open while it is read, is not the process's.
    process.open_fds = open_fds.saturating_sub(1);
    Some(process)
}

/// The figures from `/proc/self/stat`, `/proc/self/status`, `/proc/stat` and
/// `/proc/self/limits`.
fn parse(stat: &str, status: &str, boot: &str, limits: &str) -> Option<Process> {
    // After the name, which may hold spaces, come the fields from the 3rd (state) on;
    // proc(5) numbers utime 14, stime 15 and starttime 22.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    let cpu_seconds = (ticks(14)? + ticks(15)?) / TICKS_PER_SECOND;
    let booted: f64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find_map(|l| l.strip_prefix(key))?;
        line.split_whitespace().next()?.parse::<u64>().ok()
    };
    let max_fds = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok());
    Some(Process {
        cpu_seconds,
        resident_bytes: kib("VmRSS:")? * 1024,
        virtual_bytes: kib("VmSize:")? * 1024,
        open_fds: 0,
        max_fds,
        start_time_seconds: booted + ticks(22)? / TICKS_PER_SECOND,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_are_read_from_proc_s_own_formats() {
        let stat = "4242 (vonage echo) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 9 0 12345 0 0";
        let status = "Name:\tvonage-echo\nVmSize:\t  200 kB\nVmRSS:\t   52 kB\n";
        let boot = "cpu 1 2 3\nbtime 1700000000\n";
        let limits = "Limit  Soft Limit Hard Limit Units\nMax open files            20000                20000                files\n";
        let process = parse(stat, status, boot, limits).unwrap();
        assert_eq!(process.cpu_seconds, 4.0);
        assert_eq!(process.resident_bytes, 52 * 1024);
        assert_eq!(process.virtual_bytes, 200 * 1024);
        assert_eq!(process.max_fds, Some(20000));
        assert!((process.start_time_seconds - 1_700_000_123.45).abs() < 1e-3);
    }

    #[test]
    fn this_process_is_read() {
        let process = read().expect("/proc is there");
        assert!(process.resident_bytes > 0);
        assert!(process.open_fds >= 3, "{process:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(process.start_time_seconds <= now + 1.0);
        assert!(process.start_time_seconds > now - 86_400.0 * 365.0);
    }
}
