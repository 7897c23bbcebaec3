//! `wait-for-net [--iface ethwe] [--timeout 30s] -- CMD ARGS...`
//!
//! Waits until the interface is up with an IPv4 address, then `execve`s CMD (found through
//! `PATH`), so the command keeps this process's PID, signals and exit code. Exit codes of
//! its own: 64 usage, 125 interface not ready in time, 126 CMD not executable, 127 CMD not
//! found. Built statically (docs/network.md) so it runs in any image.

use wait_for_net as wait_net;

fn main() {
    let args = match wait_net::parse_args(std::env::args_os().skip(1)) {
        Ok(args) => args,
        Err(e) => fail(wait_net::EXIT_USAGE, &e.to_string()),
    };
    if let Err(e) = wait_net::wait_for(&args.iface, args.timeout) {
        fail(wait_net::EXIT_TIMEOUT, &e.to_string());
    }
    let (code, message) = wait_net::exec(&args.command);
    fail(code, &message)
}

fn fail(code: i32, message: &str) -> ! {
    eprintln!("wait-for-net: {message}");
    std::process::exit(code)
}
