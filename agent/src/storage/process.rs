//! External commands for the backends: run one and keep its stdout, stream a child's stdout
//! as a [`ByteStream`] that fails when the child fails, and feed a stream into a child.

use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::process::Command;
use tokio::sync::oneshot;

use super::{ByteStream, Result, StorageError};

/// Bytes read from an input stream per write into a receiving child.
const PIPE_CHUNK: usize = 1 << 20;
/// The capacity asked for the pipes to and from a streaming child (Linux gives 64 KiB by
/// default, the most an unprivileged process may ask is `/proc/sys/fs/pipe-max-size`, 1 MiB
/// by default). A small pipe makes `zfs send`/`zfs receive` and the agent wake each other up
/// every 64 KiB, and any pause on one side stalls the other at once.
const PIPE_BYTES: i32 = 1 << 20;

/// Grows the pipe behind `fd` to [`PIPE_BYTES`]; a refusal only costs speed, so it is logged.
fn grow_pipe(fd: impl std::os::fd::AsFd) {
    if let Err(e) = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_BYTES)) {
        tracing::debug!(error = %e, "cannot grow the pipe to a child; streaming with the default");
    }
}

/// `program args...` as one line, for error messages.
pub fn command_line<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let mut line = program.to_owned();
    for arg in args {
        line.push(' ');
        line.push_str(&arg.as_ref().to_string_lossy());
    }
    line
}

/// The error for a failed command: tied to `volume` when there is one.
fn failed(volume: Option<&str>, command: String, stderr: String) -> StorageError {
    match volume {
        Some(volume) => StorageError::Command {
            volume: volume.to_owned(),
            command,
            stderr,
        },
        None => StorageError::Unavailable { command, stderr },
    }
}

/// What a finished child said about itself: its stderr, or how it ended when that is empty.
fn describe(status: std::process::ExitStatus, stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr).trim().to_owned();
    if text.is_empty() {
        format!("exited with {status}")
    } else {
        text
    }
}

/// Runs `program args...` to the end and returns its stdout; a non-zero exit is an error
/// carrying stderr. `volume` names what the command works on (`None` for the backend itself).
pub async fn run<S: AsRef<OsStr>>(
    volume: Option<&str>,
    program: &str,
    args: &[S],
) -> Result<String> {
    let line = command_line(program, args);
    tracing::debug!(command = %line, "running");
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| failed(volume, line.clone(), e.to_string()))?;
    if !out.status.success() {
        return Err(failed(volume, line, describe(out.status, &out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts `program args...` and returns its stdout as a stream. When the output ends, the
/// stream waits for the child: a non-zero exit turns the end into an error with stderr.
pub fn spawn_stream<S: AsRef<OsStr>>(
    volume: &str,
    program: &str,
    args: &[S],
) -> Result<ByteStream> {
    let line = command_line(program, args);
    tracing::debug!(command = %line, "streaming");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(Some(volume), line.clone(), e.to_string()))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    grow_pipe(&stdout);
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = oneshot::channel();
    let what = format!("volume {volume}: `{line}` failed");
    tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text).await;
        let outcome = match child.wait().await {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("{what}: {}", describe(status, &text))),
            Err(e) => Err(format!("{what}: {e}")),
        };
        let _ = tx.send(outcome);
    });
    Ok(Box::pin(Checked::new(stdout, rx)))
}

/// A stream whose producer reports at the end whether it succeeded: a child's stdout, or
/// the pipe a task writes into. The producer's failure turns the end into an error.
pub struct Checked<R> {
    inner: R,
    /// `None` once the producer's outcome has been read.
    status: Option<oneshot::Receiver<Result<(), String>>>,
}

impl<R> Checked<R> {
    /// `inner`, ending with the error sent on `status` if the producer sends one.
    pub fn new(inner: R, status: oneshot::Receiver<Result<(), String>>) -> Self {
        Self {
            inner,
            status: Some(status),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Checked<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let Some(status) = self.status.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let outcome = ready!(Pin::new(status).poll(cx));
        self.status = None;
        Poll::Ready(match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(io::Error::other(message)),
            Err(_) => Err(io::Error::other(
                "the stream's producer ended without a result",
            )),
        })
    }
}

/// Starts `program args...` and writes `input` to its stdin. A failing input kills the
/// child (so nothing half-received is kept) and is a [`StorageError::BadStream`]; a failing
/// child is a [`StorageError::Command`] with its stderr.
pub async fn pipe_into<S, R>(volume: &str, program: &str, args: &[S], mut input: R) -> Result<()>
where
    S: AsRef<OsStr>,
    R: AsyncRead + Unpin,
{
    let line = command_line(program, args);
    tracing::debug!(command = %line, "receiving");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(Some(volume), line.clone(), e.to_string()))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    grow_pipe(&stdin);
    let mut chunk = vec![0u8; PIPE_CHUNK];
    let input_error = loop {
        match input.read(&mut chunk).await {
            Ok(0) => break None,
            Ok(n) => {
                if stdin.write_all(&chunk[..n]).await.is_err() {
                    break None; // the child stopped reading: its exit status says why
                }
            }
            Err(e) => break Some(e),
        }
    };
    drop(stdin);
    if let Some(e) = input_error {
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(StorageError::BadStream {
            volume: volume.to_owned(),
            reason: format!("the incoming stream failed: {e}"),
        });
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| failed(Some(volume), line.clone(), e.to_string()))?;
    if !out.status.success() {
        return Err(failed(
            Some(volume),
            line,
            describe(out.status, &out.stderr),
        ));
    }
    Ok(())
}
