//! The systemd notification protocol (`Type=notify`), which is small enough
//! to speak directly: one datagram of `KEY=value` lines to the Unix socket
//! named by `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
//! Without `$NOTIFY_SOCKET` every call is a no-op, so the daemon behaves the
//! same outside systemd.

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

/// Half of `$WATCHDOG_USEC` (as sd_watchdog_enabled advises), when the
/// watchdog is on and meant for this process.
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var("WATCHDOG_PID").ok()
        && pid.trim() != std::process::id().to_string()
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
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
    fn without_a_socket_nothing_happens() {
        let notifier = Notifier { socket: None };
        assert!(!notifier.enabled());
        notifier.ready("x");
    }
}
