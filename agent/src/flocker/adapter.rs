//! The built-in `flocker` adapter: a pre-hook on `POST /*/containers/create` that makes
//! every `/flocker/<name>` bind available here and rewrites it to the local mount.

use std::sync::Arc;

use http::StatusCode;
use proxy::adapter::{Adapter, AdapterError, HookFuture};
use proxy::protocol::ClientRequest;
use tonic::Code;
use tracing::Instrument;

use super::binds::{self, BindError};
use super::placement::Patience;
use super::volumes::{VolumeError, Volumes};
use crate::storage::{Storage, StorageError};

/// The `flocker` adapter, registered as `builtin:flocker`.
pub struct FlockerAdapter {
    volumes: Arc<Volumes>,
}

impl FlockerAdapter {
    /// An adapter that makes volumes available through `volumes`.
    pub fn new(volumes: Arc<Volumes>) -> Self {
        Self { volumes }
    }

    async fn prepare(&self, mut request: ClientRequest) -> Result<ClientRequest, AdapterError> {
        let Some(body) = request.body.as_deref() else {
            return Ok(request);
        };
        let (mut value, names) = binds::flocker_volumes(body).map_err(refusal)?;
        if names.is_empty() {
            return Ok(request);
        }
        for name in &names {
            let span = tracing::info_span!("flocker.prepare", volume.name = %name);
            self.volumes
                .ensure_here(name, Patience::Brief)
                .instrument(span)
                .await
                .map_err(volume_refusal)?;
        }
        let storage = self.volumes.storage();
        binds::rewrite(&mut value, |v| storage.mount_path(v));
        request.body = Some(value.to_string());
        Ok(request)
    }
}

impl Adapter for FlockerAdapter {
    fn pre_hook<'a>(&'a self, request: ClientRequest) -> HookFuture<'a, ClientRequest> {
        Box::pin(self.prepare(request))
    }
}

fn refusal(e: BindError) -> AdapterError {
    AdapterError::refused(StatusCode::BAD_REQUEST, e.to_string())
}

/// The one place volume errors become Docker statuses.
fn volume_refusal(e: VolumeError) -> AdapterError {
    let status = match &e {
        VolumeError::Elsewhere { .. } | VolumeError::NoOwner { .. } => StatusCode::CONFLICT,
        VolumeError::Control { code, .. } => match code {
            Code::InvalidArgument => StatusCode::BAD_REQUEST,
            Code::FailedPrecondition | Code::AlreadyExists => StatusCode::CONFLICT,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        VolumeError::Storage(StorageError::InvalidName { .. }) => StatusCode::BAD_REQUEST,
        VolumeError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    AdapterError::refused(status, e.to_string())
}
