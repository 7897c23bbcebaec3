//! A real OTLP/gRPC trace receiver that is not ours: `otlp/receiver.py`, opentelemetry-proto's
//! `TraceService` on grpcio (installed by `deploy/setup-host` into [`PYTHON_PATH`]), run as
//! a process on a free loopback port; the spans it receives are read back as JSON.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{Proc, Scratch, prerequisite, wait_until};

/// Where `deploy/setup-host` installs grpcio and opentelemetry-proto (`pip --target`).
pub const PYTHON_PATH: &str = "/usr/local/lib/flocker-test/python";
/// The interpreter they are installed for.
pub const PYTHON: &str = "/usr/bin/python3";

const SCRIPT: &str = include_str!("../otlp/receiver.py");

/// A running receiver; killed when dropped.
pub struct OtlpReceiver {
    _proc: Proc,
    dir: Scratch,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl OtlpReceiver {
    /// Starts a receiver, or `None` (skip; a failure under `CI=true`) when Python or its
    /// modules are missing.
    pub fn start(test: &str) -> Option<OtlpReceiver> {
        let usable = Command::new(PYTHON)
            .args([
                "-c",
                "import grpc; from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc",
            ])
            .env("PYTHONPATH", PYTHON_PATH)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !prerequisite(
            usable,
            &format!(
                "{test} needs grpcio and opentelemetry-proto in {PYTHON_PATH} (deploy/setup-host)"
            ),
        ) {
            return None;
        }
        let dir = Scratch::new("otlp");
        std::fs::create_dir_all(dir.path()).unwrap();
        let script = dir.path().join("receiver.py");
        std::fs::write(&script, SCRIPT).unwrap();
        let port_file = dir.path().join("port");
        let log = std::fs::File::create(dir.path().join("receiver.log")).unwrap();
        let child = Command::new(PYTHON)
            .arg(&script)
            .arg(&port_file)
            .arg(dir.path().join("spans.jsonl"))
            .env("PYTHONPATH", PYTHON_PATH)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn the OTLP receiver");
        let proc = Proc::new(child);
        wait_until(
            Duration::from_secs(20),
            "the OTLP receiver to listen",
            || port_file.exists(),
        );
        let port = std::fs::read_to_string(&port_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Some(OtlpReceiver {
            _proc: proc,
            dir,
            port,
        })
    }

    /// The endpoint to export to (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(self.spans_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn spans_file(&self) -> PathBuf {
        self.dir.path().join("spans.jsonl")
    }
}
