//! [`Network`]: openraft's network over the `Raft` gRPC service. One channel per peer, made
//! lazily (openraft must not block on connecting), mutual TLS with the member's certificate.
//! openraft's requests and replies travel as serde-JSON bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use proto::raft::RaftPayload;
use proto::raft::raft_client::RaftClient;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::TypeConfig;
use crate::batch::{LOG_FORMAT_HEADER, LogFormats};

/// Largest gRPC message between members; snapshots are chunked well below it.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How long a connection attempt to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Channels to peers by address, shared by openraft's clients and the forwarding path.
#[derive(Clone)]
pub struct Peers {
    tls: ClientTlsConfig,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// The log format each peer said it writes in its replies.
    pub formats: LogFormats,
}

/// Why a peer address cannot be dialled.
#[derive(Debug, thiserror::Error)]
#[error("bad peer address {address:?}: {source}")]
pub struct BadAddress {
    /// The address.
    pub address: String,
    /// Why.
    #[source]
    pub source: tonic::transport::Error,
}

impl Peers {
    /// Peers dialled with the given TLS client config.
    pub fn new(tls: ClientTlsConfig) -> Self {
        Self {
            tls,
            channels: Arc::default(),
            formats: LogFormats::default(),
        }
    }

    /// The (lazily connected) channel to `address` (`host:port`).
    pub fn channel(&self, address: &str) -> Result<Channel, BadAddress> {
        let mut channels = self.channels.lock().expect("peer lock");
        if let Some(c) = channels.get(address) {
            return Ok(c.clone());
        }
        let bad = |source| BadAddress {
            address: address.to_owned(),
            source,
        };
        let channel = Endpoint::from_shared(format!("https://{address}"))
            .map_err(bad)?
            .tls_config(self.tls.clone())
            .map_err(bad)?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    /// A Raft-service client for `address`.
    pub fn raft_client(&self, address: &str) -> Result<RaftClient<Channel>, BadAddress> {
        Ok(RaftClient::new(self.channel(address)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

impl RaftNetworkFactory<TypeConfig> for Peers {
    type Network = Network;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Network {
        Network {
            target,
            client: self.raft_client(&node.addr).map_err(Arc::new),
            formats: self.formats.clone(),
        }
    }
}

/// The connection to one peer.
pub struct Network {
    target: u64,
    client: Result<RaftClient<Channel>, Arc<BadAddress>>,
    formats: LogFormats,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

impl Network {
    async fn call<Req, Resp, E>(
        &mut self,
        req: &Req,
        option: &RPCOption,
        rpc: Rpc,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = match &self.client {
            Ok(c) => c.clone(),
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&Msg(e.to_string())))),
        };
        let data = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(RaftPayload { data });
        request.set_timeout(option.hard_ttl());
        let mut client = client;
        let reply = match rpc {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        let reply = reply.map_err(|status| match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                RPCError::Unreachable(Unreachable::new(&status))
            }
            _ => RPCError::Network(NetworkError::new(&status)),
        })?;
        let said = reply
            .metadata()
            .get(LOG_FORMAT_HEADER)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        self.formats.learn(self.target, said);
        let result: Result<Resp, RaftError<u64, E>> =
            serde_json::from_slice(&reply.into_inner().data)
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(&rpc, &option, Rpc::Append).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(&rpc, &option, Rpc::Snapshot).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(&rpc, &option, Rpc::Vote).await
    }
}
