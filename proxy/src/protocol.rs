//! The Powerstrip v1 wire protocol spoken with HTTP adapters, field for field.
//!
//! Powerstrip POSTs a [`HookRequest`] to the adapter; the adapter answers with a
//! [`PreHookReply`] or a [`PostHookReply`]. Field names are PascalCase and bodies travel as
//! JSON *strings* (or `null`), exactly as the original Powerstrip sent them, so adapters
//! written for it keep working.
//!
//! Replies are untrusted input. Every field is optional in a reply: a field left out keeps
//! its current value, an explicit `null` body means "no body".

use serde::{Deserialize, Deserializer, Serialize};

/// The only protocol version there is.
pub const PROTOCOL_VERSION: u32 = 1;

/// The client's request as adapters see it (`ClientRequest` / `ModifiedClientRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClientRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// The raw request URI: path and query, still percent-encoded.
    pub request: String,
    /// The JSON body as a string, or `None` when there is none or adapters may not see it.
    pub body: Option<String>,
}

/// Docker's response as post-hook adapters see it (`ServerResponse` / `ModifiedServerResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServerResponse {
    /// The response's `Content-Type`, if it had one.
    pub content_type: Option<String>,
    /// The complete body as a string (`""` when empty), or `None` when it is not text.
    pub body: Option<String>,
    /// The HTTP status code.
    pub code: u16,
}

/// Which hook an adapter is asked to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HookType {
    /// Runs before Docker sees the request and may change it.
    #[serde(rename = "pre-hook")]
    Pre,
    /// Runs after Docker answered and may change the response.
    #[serde(rename = "post-hook")]
    Post,
}

impl HookType {
    /// The protocol's name for the hook type (`pre-hook` or `post-hook`).
    pub fn as_str(self) -> &'static str {
        match self {
            HookType::Pre => "pre-hook",
            HookType::Post => "post-hook",
        }
    }
}

/// What Powerstrip POSTs to an HTTP adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HookRequest {
    /// Always [`PROTOCOL_VERSION`].
    pub powerstrip_protocol_version: u32,
    /// `pre-hook` or `post-hook`.
    #[serde(rename = "Type")]
    pub hook_type: HookType,
    /// The client's request (for post-hooks: as the client sent it, before any pre-hook).
    pub client_request: ClientRequest,
    /// Docker's response; present on post-hooks only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub server_response: Option<ServerResponse>,
}

/// A pre-hook adapter's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PreHookReply {
    /// Must be 1 when present.
    pub powerstrip_protocol_version: Option<u32>,
    /// The request to pass on.
    pub modified_client_request: RequestChanges,
}

/// The fields of `ModifiedClientRequest`; absent fields leave the request as it was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestChanges {
    /// New method.
    pub method: Option<String>,
    /// New request URI (only the query string may differ from the original).
    pub request: Option<String>,
    /// New body: absent keeps it, `null` removes it.
    #[serde(default, deserialize_with = "present")]
    pub body: Option<Option<String>>,
}

/// A post-hook adapter's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PostHookReply {
    /// Must be 1 when present.
    pub powerstrip_protocol_version: Option<u32>,
    /// The response to pass on.
    pub modified_server_response: ResponseChanges,
}

/// The fields of `ModifiedServerResponse`; absent fields leave the response as it was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResponseChanges {
    /// New content type: absent keeps it, `null` removes the header.
    #[serde(default, deserialize_with = "present")]
    pub content_type: Option<Option<String>>,
    /// New body: absent keeps it, `null` empties it.
    #[serde(default, deserialize_with = "present")]
    pub body: Option<Option<String>>,
    /// New status code.
    pub code: Option<u16>,
}

/// Tells a field that is present (even as `null`) from one that is absent.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl ClientRequest {
    /// Applies a pre-hook's changes.
    pub fn apply(&mut self, changes: RequestChanges) {
        if let Some(method) = changes.method {
            self.method = method;
        }
        if let Some(request) = changes.request {
            self.request = request;
        }
        if let Some(body) = changes.body {
            self.body = body;
        }
    }

    /// The path part of [`ClientRequest::request`], without the query string.
    pub fn path(&self) -> &str {
        self.request.split('?').next().unwrap_or_default()
    }
}

impl ServerResponse {
    /// Applies a post-hook's changes.
    pub fn apply(&mut self, changes: ResponseChanges) {
        if let Some(content_type) = changes.content_type {
            self.content_type = content_type;
        }
        if let Some(body) = changes.body {
            self.body = body;
        }
        if let Some(code) = changes.code {
            self.code = code;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pre_hook_request_has_the_original_field_names() {
        let request = HookRequest {
            powerstrip_protocol_version: PROTOCOL_VERSION,
            hook_type: HookType::Pre,
            client_request: ClientRequest {
                method: "POST".into(),
                request: "/v1.41/containers/create?name=x".into(),
                body: Some("{\"Image\":\"busybox\"}".into()),
            },
            server_response: None,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "PowerstripProtocolVersion": 1,
                "Type": "pre-hook",
                "ClientRequest": {
                    "Method": "POST",
                    "Request": "/v1.41/containers/create?name=x",
                    "Body": "{\"Image\":\"busybox\"}"
                }
            })
        );
    }

    #[test]
    fn post_hook_request_carries_the_server_response() {
        let request = HookRequest {
            powerstrip_protocol_version: PROTOCOL_VERSION,
            hook_type: HookType::Post,
            client_request: ClientRequest {
                method: "POST".into(),
                request: "/containers/abc/start".into(),
                body: None,
            },
            server_response: Some(ServerResponse {
                content_type: None,
                body: Some(String::new()),
                code: 204,
            }),
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "PowerstripProtocolVersion": 1,
                "Type": "post-hook",
                "ClientRequest": {"Method": "POST", "Request": "/containers/abc/start", "Body": null},
                "ServerResponse": {"ContentType": null, "Body": "", "Code": 204}
            })
        );
    }

    #[test]
    fn absent_reply_fields_keep_values_and_null_clears_them() {
        let reply: PreHookReply = serde_json::from_value(json!({
            "PowerstripProtocolVersion": 1,
            "ModifiedClientRequest": {"Request": "/containers/create?name=y"}
        }))
        .unwrap();
        let mut request = ClientRequest {
            method: "POST".into(),
            request: "/containers/create".into(),
            body: Some("{}".into()),
        };
        request.apply(reply.modified_client_request);
        assert_eq!(request.method, "POST");
        assert_eq!(request.request, "/containers/create?name=y");
        assert_eq!(request.body.as_deref(), Some("{}"));

        let reply: PreHookReply =
            serde_json::from_value(json!({"ModifiedClientRequest": {"Body": null}})).unwrap();
        request.apply(reply.modified_client_request);
        assert_eq!(request.body, None);
    }

    #[test]
    fn post_reply_changes_code_content_type_and_body() {
        let reply: PostHookReply = serde_json::from_value(json!({
            "PowerstripProtocolVersion": 1,
            "ModifiedServerResponse": {"ContentType": "text/plain", "Body": "ok", "Code": 200}
        }))
        .unwrap();
        let mut response = ServerResponse {
            content_type: Some("application/json".into()),
            body: Some("{\"message\":\"no\"}".into()),
            code: 500,
        };
        response.apply(reply.modified_server_response);
        assert_eq!(
            response,
            ServerResponse {
                content_type: Some("text/plain".into()),
                body: Some("ok".into()),
                code: 200
            }
        );
    }

    #[test]
    fn a_reply_without_the_modified_object_is_rejected() {
        assert!(serde_json::from_str::<PreHookReply>("{\"PowerstripProtocolVersion\":1}").is_err());
        assert!(serde_json::from_str::<PostHookReply>("[]").is_err());
    }
}
