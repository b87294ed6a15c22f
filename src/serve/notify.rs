//! The systemd notification protocol (`Type=notify`), which is small enough
//! to speak directly: one datagram of `KEY=value` lines to the Unix socket
//! named by `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
//! Without `$NOTIFY_SOCKET` every call is a no-op, so the daemon behaves the
//! same outside systemd.
//!
//! Why not the `sd-notify` crate: its 0.5 `notify` connects to
//! `$NOTIFY_SOCKET` as a path only, so an `@name` abstract socket (which
//! sd_notify(3) allows) would fail, and its
//! `watchdog_enabled` silently ignores a malformed `WATCHDOG_USEC` and takes
//! a malformed `WATCHDOG_PID` as "for us" — the two gaps this module closes.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; a no-op notifier when unset or unusable.
    pub fn from_env() -> Self {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Self { socket: None };
        };
        match Self::connect(&path.to_string_lossy()) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("NOTIFY_SOCKET={path:?} is unusable ({e}); not notifying systemd");
                Self { socket: None }
            }
        }
    }

    /// A notifier for the socket at `path` (`@name`: abstract namespace).
    pub fn connect(path: &str) -> std::io::Result<Self> {
        let address = match path.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes())?
            }
            None => SocketAddr::from_pathname(path)?,
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket: Some((socket, address)),
        })
    }

    /// Send one state, e.g. `READY=1`. Failures are logged, never fatal:
    /// systemd being away must not stop the exporter.
    pub fn notify(&self, state: &str) {
        let Some((socket, address)) = &self.socket else {
            return;
        };
        if let Err(e) = socket.send_to_addr(state.as_bytes(), address) {
            tracing::warn!("cannot notify systemd ({state:?}): {e}");
        }
    }

    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={status}"));
    }

    /// `RELOADING=1` with the monotonic timestamp newer systemd expects.
    pub fn reloading(&self) {
        self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    }

    pub fn stopping(&self) {
        self.notify("STOPPING=1");
    }

    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }

    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }
}

/// The shortest period between watchdog pings. systemd's own minimum
/// `WatchdogSec=` is far above it; a shorter request is a typo, and a zero
/// period would stop the ping task.
pub const MIN_WATCHDOG_PERIOD: Duration = Duration::from_millis(100);

/// Half of `$WATCHDOG_USEC` (as sd_watchdog_enabled advises), when the
/// watchdog is on and meant for this process (`$WATCHDOG_PID`). A value that
/// is not a positive number of microseconds, or asks for pings faster than
/// [`MIN_WATCHDOG_PERIOD`], is logged as a warning naming the variable, and
/// the pings go at that minimum: systemd did ask for a watchdog.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var_os("WATCHDOG_USEC")?;
    let pid = std::env::var_os("WATCHDOG_PID");
    let (period, warning) = watchdog_period(
        &usec.to_string_lossy(),
        pid.as_ref().map(|p| p.to_string_lossy()).as_deref(),
        std::process::id(),
    )?;
    if let Some(warning) = warning {
        tracing::warn!("{warning}");
    }
    Some(period)
}

/// The ping period for these variable values, and a warning when they are bad.
fn watchdog_period(
    usec: &str,
    pid: Option<&str>,
    own_pid: u32,
) -> Option<(Duration, Option<String>)> {
    if let Some(pid) = pid {
        match pid.trim().parse::<u32>() {
            Ok(pid) if pid == own_pid => {}
            Ok(_) => return None,
            Err(_) => {
                tracing::warn!(
                    "WATCHDOG_PID={pid:?} is not a process id; not pinging systemd's watchdog"
                );
                return None;
            }
        }
    }
    let minimum = MIN_WATCHDOG_PERIOD.as_millis();
    Some(match usec.trim().parse::<u64>() {
        Ok(usec) if Duration::from_micros(usec / 2) >= MIN_WATCHDOG_PERIOD => {
            (Duration::from_micros(usec / 2), None)
        }
        Ok(usec) => (
            MIN_WATCHDOG_PERIOD,
            Some(format!(
                "WATCHDOG_USEC={usec} asks for a watchdog ping every {}µs; pinging every {minimum} ms (the minimum) instead; check WatchdogSec= in the unit",
                usec / 2
            )),
        ),
        Err(_) => (
            MIN_WATCHDOG_PERIOD,
            Some(format!(
                "WATCHDOG_USEC={usec:?} is not a number of microseconds; pinging systemd's watchdog every {minimum} ms (the minimum); check WatchdogSec= in the unit"
            )),
        ),
    })
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn states_arrive_as_datagrams_on_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let notifier = Notifier::connect(path.to_str().unwrap()).unwrap();
        notifier.ready("serving");
        assert_eq!(recv(&server), "READY=1\nSTATUS=serving");
        notifier.reloading();
        assert!(recv(&server).starts_with("RELOADING=1\nMONOTONIC_USEC="));
        notifier.watchdog();
        assert_eq!(recv(&server), "WATCHDOG=1");
        notifier.stopping();
        assert_eq!(recv(&server), "STOPPING=1");
    }

    #[test]
    fn abstract_sockets_work_too() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("pgwarden-test-{}", std::process::id());
        let server =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Notifier::connect(&format!("@{name}")).unwrap().watchdog();
        assert_eq!(recv(&server), "WATCHDOG=1");
    }

    #[test]
    fn the_watchdog_period_is_half_the_timeout_and_never_below_the_minimum() {
        let period = |usec: &str, pid: Option<&str>| watchdog_period(usec, pid, 42);
        assert_eq!(
            period("400000", None),
            Some((Duration::from_millis(200), None))
        );
        assert_eq!(
            period("400000", Some("42")).unwrap().0,
            Duration::from_millis(200)
        );
        assert_eq!(
            period("400000", Some("41")),
            None,
            "meant for another process"
        );
        assert_eq!(period("400000", Some("x")), None);
        for bad in ["1", "0", "abc", "", "-5", "1.5"] {
            let (every, warning) = period(bad, None).unwrap();
            assert_eq!(every, MIN_WATCHDOG_PERIOD, "{bad}");
            let warning = warning.unwrap_or_else(|| panic!("no warning for {bad:?}"));
            assert!(warning.contains("WATCHDOG_USEC="), "{warning}");
        }
    }

    #[test]
    fn without_a_socket_nothing_happens() {
        let notifier = Notifier { socket: None };
        assert!(!notifier.enabled());
        notifier.ready("x");
    }
}
