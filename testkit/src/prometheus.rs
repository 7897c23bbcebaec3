//! A real Prometheus (Debian's `prometheus`, installed by `deploy/setup-host`) scraping the
//! test's daemons every second, and its query API.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::{Proc, free_port, have, prerequisite};

/// A running Prometheus with its own storage; stopped (SIGKILL) when dropped.
pub struct Prometheus {
    _process: Proc,
    dir: tempfile::TempDir,
    web: u16,
}

impl Prometheus {
    /// Starts one scraping each `(job, port)` on loopback every second, or `None` (skip)
    /// without `prometheus`; under CI that is a failure.
    pub fn start(targets: &[(&str, u16)]) -> Option<Prometheus> {
        if !prerequisite(
            have("prometheus"),
            "this test needs prometheus (deploy/setup-host installs it)",
        ) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut config = String::from("global:\n  scrape_interval: 1s\nscrape_configs:\n");
        for (job, port) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [\"127.0.0.1:{port}\"]\n"
            ));
        }
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let web = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let process = Proc::new(
            std::process::Command::new("prometheus")
                .arg(format!("--config.file={}", file.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{web}"))
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .spawn()
                .expect("prometheus starts"),
        );
        Some(Prometheus {
            _process: process,
            dir,
            web,
        })
    }

    /// The query API's JSON answer to `query` (empty while Prometheus is not up yet).
    pub fn query(&self, query: &str) -> String {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.web)) else {
            return String::new();
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let encoded: String = query
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let _ = write!(
            stream,
            "GET /api/v1/query?query={encoded} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        );
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }

    /// The first value `query` answers, once Prometheus has one within `within` (write a
    /// condition, `series >= 1`, to wait for a value to be reached).
    pub fn value(&self, query: &str, within: Duration) -> Option<f64> {
        let mut found = None;
        crate::wait::poll_until(within, || {
            let answer = self.query(query);
            found = answer
                .split_once(r#""value":["#)
                .and_then(|(_, rest)| rest.split('"').nth(1))
                .and_then(|v| v.parse().ok());
            found.is_some()
        });
        found
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}
