//! The table of in-process adapters that `builtin:NAME` in adapters.yml refers to.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Adapter;
use super::debug::DebugAdapter;

/// Built-in adapters by name. The proxy ships `debug`; the agent adds `flocker` and `weave`.
#[derive(Clone)]
pub struct Builtins {
    adapters: BTreeMap<String, Arc<dyn Adapter>>,
}

impl Builtins {
    /// The adapters this crate provides: `debug`.
    pub fn standard() -> Self {
        let mut builtins = Builtins {
            adapters: BTreeMap::new(),
        };
        builtins.register("debug", Arc::new(DebugAdapter));
        builtins
    }

    /// Adds (or replaces) the adapter called `name`.
    pub fn register(&mut self, name: &str, adapter: Arc<dyn Adapter>) {
        self.adapters.insert(name.to_owned(), adapter);
    }

    /// The adapter called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Adapter>> {
        self.adapters.get(name).cloned()
    }

    /// The names of all registered adapters, for error messages.
    pub fn names(&self) -> Vec<&str> {
        self.adapters.keys().map(String::as_str).collect()
    }
}

impl Default for Builtins {
    fn default() -> Self {
        Builtins::standard()
    }
}
