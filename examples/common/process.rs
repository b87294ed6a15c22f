//! A process's memory and CPU time, read from /proc as `ps` and `top` do.

/// Resident memory (`VmRSS`) in MB, NaN once the process is gone.
pub fn rss_mb(pid: u32) -> f64 {
    status_kb(pid, "VmRSS:").map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Peak resident memory (`VmHWM`) in MB.
pub fn peak_rss_mb(pid: u32) -> f64 {
    status_kb(pid, "VmHWM:").map_or(f64::NAN, |kb| kb / 1024.0)
}

fn status_kb(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let value = status.lines().find_map(|l| l.strip_prefix(field))?;
    value.trim().trim_end_matches("kB").trim().parse().ok()
}

/// User + system CPU time the process has used, in seconds
/// (`utime` + `stime` of /proc/PID/stat).
pub fn cpu_seconds(pid: u32) -> f64 {
    // utime and stime are fields 14 and 15: indices 11 and 12 from field 3.
    let fields = stat_fields(pid).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / clock_ticks_per_second(),
        _ => f64::NAN,
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the running system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// CPU time of a process and all its descendants, living or reaped, in
/// seconds: each one's own plus its reaped children's (`cutime` + `cstime`).
/// For a postmaster that is the whole server, including backends that have
/// exited since.
pub fn tree_cpu_seconds(root: u32) -> f64 {
    // One pass over /proc: pid -> (parent, ticks).
    let processes: Vec<(u32, u32, f64)> = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|pid| {
                    let f = stat_fields(pid)?;
                    // Field 4 (index 1) is the parent; 14-17 (11-14) the times.
                    let parent = f.get(1)?.parse().ok()?;
                    let ticks = [11, 12, 13, 14]
                        .iter()
                        .filter_map(|&i| f.get(i)?.parse::<f64>().ok())
                        .sum();
                    Some((pid, parent, ticks))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut tree = vec![root];
    let mut ticks = 0.0;
    while let Some(pid) = tree.pop() {
        for &(child, parent, t) in &processes {
            if child == pid {
                ticks += t;
            }
            if parent == pid {
                tree.push(child);
            }
        }
    }
    ticks / clock_ticks_per_second()
}

/// Fields 3… of /proc/PID/stat: the command name (field 2) is in
/// parentheses and may hold spaces, so they are counted from the last ')'.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(String::from).collect())
}
