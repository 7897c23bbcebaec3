//! The little of the Docker API the lease watcher needs, over dockerd's unix socket:
//! one JSON document (`GET /containers/...`) and a stream of JSON lines (`GET /events`).

use std::path::{Path, PathBuf};

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyperlocal::UnixConnector;
use serde_json::Value;

/// A Docker API call failed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The socket could not be reached or the connection broke.
    #[error("docker at {socket}: {path}: {reason} (is dockerd running?)")]
    Transport {
        /// The socket.
        socket: PathBuf,
        /// The request path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Docker answered with an error status.
    #[error("docker at {socket}: {path} answered {status}: {body}")]
    Status {
        /// The socket.
        socket: PathBuf,
        /// The request path.
        path: String,
        /// The status.
        status: u16,
        /// The start of its body.
        body: String,
    },
}

/// A client of one dockerd.
#[derive(Clone)]
pub struct Docker {
    socket: PathBuf,
    client: Client<UnixConnector, Empty<Bytes>>,
}

/// An open response whose body arrives in pieces.
pub struct Lines {
    body: hyper::body::Incoming,
    buffer: BytesMut,
}

impl Docker {
    /// A client of the dockerd listening on `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            client: Client::builder(TokioExecutor::new()).build(UnixConnector),
        }
    }

    /// The socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn transport(&self, path: &str, reason: impl ToString) -> DockerError {
        DockerError::Transport {
            socket: self.socket.clone(),
            path: path.to_owned(),
            reason: reason.to_string(),
        }
    }

    async fn get(&self, path: &str) -> Result<hyper::Response<hyper::body::Incoming>, DockerError> {
        let uri: hyper::Uri = hyperlocal::Uri::new(&self.socket, path).into();
        let response = self
            .client
            .get(uri)
            .await
            .map_err(|e| self.transport(path, e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| {
                String::from_utf8_lossy(&b.to_bytes())
                    .chars()
                    .take(300)
                    .collect()
            })
            .unwrap_or_default();
        Err(DockerError::Status {
            socket: self.socket.clone(),
            path: path.to_owned(),
            status,
            body,
        })
    }

    /// `GET path`, decoded as JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value, DockerError> {
        let body = self
            .get(path)
            .await?
            .into_body()
            .collect()
            .await
            .map_err(|e| self.transport(path, e))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| self.transport(path, e))
    }

    /// `GET path` as a stream of JSON lines (the events endpoint).
    pub async fn get_lines(&self, path: &str) -> Result<Lines, DockerError> {
        Ok(Lines {
            body: self.get(path).await?.into_body(),
            buffer: BytesMut::new(),
        })
    }
}

impl Lines {
    /// The next JSON document, `Ok(None)` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<Value>, String> {
        loop {
            if let Some(at) = self.buffer.iter().position(|b| *b == b'\n') {
                let line = self.buffer.split_to(at + 1);
                let line = &line[..at];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(line)
                    .map(Some)
                    .map_err(|e| e.to_string());
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buffer.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
            }
        }
    }
}
