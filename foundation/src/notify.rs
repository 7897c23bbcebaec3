//! Readiness for systemd (`Type=notify`): one datagram to `$NOTIFY_SOCKET`, nothing when it
//! is unset (not started by systemd). The socket may be a path or, with a leading `@`, an
//! abstract name.

use std::os::unix::net::UnixDatagram;

/// Tells systemd the daemon is ready (`READY=1`).
pub fn ready() {
    send("READY=1");
}

/// Tells systemd the daemon is stopping (`STOPPING=1`).
pub fn stopping() {
    send("STOPPING=1");
}

/// Sends `state` to `$NOTIFY_SOCKET` if it is set; a failure is logged, never fatal.
fn send(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|sock| {
        let bytes = socket.as_encoded_bytes();
        match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                sock.send_to_addr(state.as_bytes(), &addr)
            }
            None => sock.send_to(state.as_bytes(), &socket),
        }
    });
    if let Err(error) = sent {
        tracing::warn!(%error, state, "cannot notify systemd ($NOTIFY_SOCKET)");
    }
}
