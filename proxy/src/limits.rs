//! Every limit the proxy applies, named once.

use std::time::Duration;

/// Largest request body handed to pre-hooks (larger ones get a 413); `--max-hook-body`
/// overrides it.
pub const DEFAULT_MAX_HOOK_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Largest reply read from an HTTP adapter. Bodies travel JSON-escaped, so this is a
/// multiple of the hook body limit.
pub const MAX_ADAPTER_REPLY_BYTES: usize = 64 * 1024 * 1024;

/// Largest Docker response buffered for post-hooks (post-hooks only run on small, complete
/// JSON responses; a larger one is an error rather than an unbounded buffer).
pub const MAX_POST_HOOK_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// How long an adapter may take when adapters.yml does not say.
pub const DEFAULT_ADAPTER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open requests may run on after SIGTERM before the proxy exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Most client connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 4096;
