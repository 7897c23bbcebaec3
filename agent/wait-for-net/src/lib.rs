#![forbid(unsafe_code)]

//! The logic of `wait-for-net`: parse its arguments, wait until an interface is up with an
//! IPv4 address, then replace the process with the user's command.
//!
//! The binary is copied into every container image, so this module stays small: it reads
//! interfaces with `getifaddrs(3)` (one netlink dump inside libc, no daemon, no ioctl) every
//! [`POLL_INTERVAL`] and never starts a runtime. It does not link the netlink stack.

use std::ffi::{CString, OsString};
use std::fmt;
use std::net::Ipv4Addr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;

/// The interface waited for when `--iface` is not given.
pub const DEFAULT_IFACE: &str = "ethwe";
/// How long to wait when `--timeout` is not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the interfaces are read while waiting.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Exit code for a usage error (bad flags, no command), as sysexits' `EX_USAGE`.
pub const EXIT_USAGE: i32 = 64;
/// Exit code when the interface was not ready before the timeout (or could not be read).
pub const EXIT_TIMEOUT: i32 = 125;
/// Exit code when the command was found but could not be executed (as the shells do).
pub const EXIT_CANNOT_EXEC: i32 = 126;
/// Exit code when the command was not found (as the shells do).
pub const EXIT_NOT_FOUND: i32 = 127;

/// What `wait-for-net` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The interface to wait for.
    pub iface: String,
    /// How long to wait before giving up.
    pub timeout: Duration,
    /// The command and its arguments, `argv[0]` first.
    pub command: Vec<OsString>,
}

/// A usage error: the message says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

/// What a look at the interface found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfaceState {
    /// No interface of that name in this network namespace.
    Absent,
    /// The interface exists but is administratively down.
    Down,
    /// The interface is up but has no IPv4 address.
    NoAddress,
    /// The interface is up with this IPv4 address (the first one listed).
    Ready(Ipv4Addr),
}

impl fmt::Display for IfaceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absent => f.write_str("absent"),
            Self::Down => f.write_str("down"),
            Self::NoAddress => f.write_str("up but without an IPv4 address"),
            Self::Ready(a) => write!(f, "up with {a}"),
        }
    }
}

/// Why waiting failed.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The deadline passed; `last` is what the final look found.
    #[error("interface {iface} not ready after {waited:?}: it is {last}")]
    Timeout {
        /// The interface waited for.
        iface: String,
        /// How long was waited.
        waited: Duration,
        /// The state at the last look.
        last: IfaceState,
    },
    /// The interfaces could not be read at all.
    #[error("cannot list network interfaces while waiting for {iface}: {source}")]
    List {
        /// The interface waited for.
        iface: String,
        /// The error from `getifaddrs`.
        source: Errno,
    },
}

const USAGE: &str = "usage: wait-for-net [--iface NAME] [--timeout DURATION] -- CMD [ARGS...]";

/// Parse the arguments after the program name.
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Args, UsageError> {
    let mut iface = DEFAULT_IFACE.to_owned();
    let mut timeout = DEFAULT_TIMEOUT;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg_str = arg.to_string_lossy().into_owned();
        let (flag, inline) = match arg_str.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg_str.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, UsageError> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args
                    .next()
                    .map(|v| v.to_string_lossy().into_owned())
                    .ok_or_else(|| UsageError(format!("{name} needs a value\n{USAGE}"))),
            }
        };
        match flag.as_str() {
            "--" => {
                let command: Vec<OsString> = args.collect();
                if command.is_empty() {
                    return Err(UsageError(format!("no command after --\n{USAGE}")));
                }
                return Ok(Args {
                    iface,
                    timeout,
                    command,
                });
            }
            "--iface" => iface = value("--iface")?,
            "--timeout" => timeout = parse_duration(&value("--timeout")?)?,
            "-h" | "--help" => return Err(UsageError(USAGE.to_owned())),
            other => return Err(UsageError(format!("unknown argument {other:?}\n{USAGE}"))),
        }
        if iface.is_empty() || iface.len() > 15 {
            return Err(UsageError(format!("bad interface name {iface:?}")));
        }
    }
    Err(UsageError(format!("missing -- CMD\n{USAGE}")))
}

/// Parse `30s`, `500ms`, `2m` or a bare number of seconds (`30`, `1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, UsageError> {
    let bad = || UsageError(format!("bad duration {text:?}: use e.g. 30s, 500ms, 2m"));
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    if !value.is_finite() || value < 0.0 {
        return Err(bad());
    }
    Duration::try_from_secs_f64(value * scale).map_err(|_| bad())
}

/// Look at `iface` once.
pub fn iface_state(iface: &str) -> Result<IfaceState, WaitError> {
    let list = getifaddrs().map_err(|source| WaitError::List {
        iface: iface.to_owned(),
        source,
    })?;
    let mut state = IfaceState::Absent;
    for entry in list.filter(|e| e.interface_name == iface) {
        if !entry.flags.contains(InterfaceFlags::IFF_UP) {
            return Ok(IfaceState::Down);
        }
        let v4 = entry
            .address
            .as_ref()
            .and_then(|a| a.as_sockaddr_in())
            .map(|a| a.ip());
        match v4 {
            Some(addr) => return Ok(IfaceState::Ready(addr)),
            None => state = IfaceState::NoAddress,
        }
    }
    Ok(state)
}

/// Poll until `iface` is up with an IPv4 address, or `timeout` passes.
pub fn wait_for(iface: &str, timeout: Duration) -> Result<Ipv4Addr, WaitError> {
    let start = Instant::now();
    loop {
        let state = iface_state(iface)?;
        if let IfaceState::Ready(addr) = state {
            return Ok(addr);
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(WaitError::Timeout {
                iface: iface.to_owned(),
                waited,
                last: state,
            });
        }
        std::thread::sleep(POLL_INTERVAL.min(timeout - waited));
    }
}

/// Replace this process with `command`, searching `PATH` like a shell. Returns only on
/// failure, with the exit code to use (127 not found, 126 otherwise) and a message.
pub fn exec(command: &[OsString]) -> (i32, String) {
    let argv: Result<Vec<CString>, _> =
        command.iter().map(|a| CString::new(a.as_bytes())).collect();
    let Ok(argv) = argv else {
        return (EXIT_CANNOT_EXEC, "argument contains a NUL byte".to_owned());
    };
    let Some(program) = argv.first() else {
        return (EXIT_USAGE, "no command".to_owned());
    };
    let err = match nix::unistd::execvp(program, &argv) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    let code = if err == Errno::ENOENT {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_EXEC
    };
    (code, format!("cannot run {:?}: {err}", command[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, UsageError> {
        parse_args(list.iter().map(OsString::from))
    }

    #[test]
    fn defaults_and_flags() {
        let a = args(&["--", "sh", "-c", "true"]).unwrap();
        assert_eq!(a.iface, "ethwe");
        assert_eq!(a.timeout, DEFAULT_TIMEOUT);
        assert_eq!(a.command, vec!["sh", "-c", "true"]);
        let a = args(&["--iface", "eth1", "--timeout=500ms", "--", "x", "--iface"]).unwrap();
        assert_eq!(a.iface, "eth1");
        assert_eq!(a.timeout, Duration::from_millis(500));
        assert_eq!(a.command, vec!["x", "--iface"]);
    }

    #[test]
    fn usage_errors() {
        assert!(args(&[]).is_err());
        assert!(args(&["--"]).is_err());
        assert!(args(&["sh"]).is_err());
        assert!(args(&["--timeout"]).is_err());
        assert!(args(&["--timeout", "soon", "--", "sh"]).is_err());
        assert!(args(&["--iface", "a-very-long-interface", "--", "sh"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn loopback_is_seen_and_absent_is_reported() {
        assert_eq!(iface_state("nonexistent0").unwrap(), IfaceState::Absent);
        let err = wait_for("nonexistent0", Duration::from_millis(30)).unwrap_err();
        assert!(err.to_string().contains("nonexistent0"), "{err}");
        assert!(err.to_string().contains("absent"), "{err}");
    }
}
