//! Which trace each move belongs to: the `MoveVolume` call that recorded a move leaves its
//! span's trace context here, and the driver's span of that move (on this member, the
//! leader) becomes its child, so a move shows in the trace of the request that asked for
//! it. Kept in memory only: a move recorded through another member, or resumed by a new
//! leader, starts a trace of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Trace-context headers (`traceparent`, `tracestate`), as (name, value).
type Headers = Vec<(&'static str, String)>;

/// Trace-context headers by migration id.
#[derive(Clone, Debug, Default)]
pub struct MoveTraces(Arc<Mutex<HashMap<u64, Headers>>>);

impl MoveTraces {
    /// Remembers the current span's context as the parent of move `id`'s span.
    pub fn remember(&self, id: u64) {
        let headers = foundation::trace::headers_of(&tracing::Span::current());
        if !headers.is_empty() {
            self.lock().insert(id, headers);
        }
    }

    /// Makes `span` the child of the context remembered for move `id`, once.
    pub fn adopt(&self, id: u64, span: &tracing::Span) {
        if let Some(headers) = self.lock().remove(&id) {
            foundation::trace::set_parent(span, |name| {
                headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Headers>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
