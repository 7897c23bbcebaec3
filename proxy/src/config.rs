//! adapters.yml: the original Powerstrip format plus the extended per-adapter form.
//!
//! ```yaml
//! version: 1
//! endpoints:
//!   "POST /*/containers/create":
//!     pre: [audit, policy]
//!   "POST /*/containers/*/start":
//!     post: [audit]
//! adapters:
//!   audit: http://127.0.0.1:8080/hook                    # the original form
//!   debug: builtin:debug                                  # an in-process adapter
//!   policy: { url: "http://127.0.0.1:8181/hook", timeout: 2s, on_error: ignore }
//! ```
//!
//! Loading validates everything and reports every problem at once; a configuration with any
//! problem is never used.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use foundation::yaml::{self, Mapping, Value, show};
use http::Uri;

use crate::adapter::Adapter;
use crate::adapter::builtin::Builtins;
use crate::adapter::http::{AdapterClient, HttpAdapter};
use crate::limits::DEFAULT_ADAPTER_TIMEOUT;
use crate::matcher::Pattern;
use crate::streaming::streaming_overlap;

/// Why a configuration could not be loaded: the workspace's one YAML error
/// (`foundation::yaml`), naming the file and every problem.
pub use foundation::yaml::YamlError as ConfigError;

/// What the proxy does when an adapter fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// The Docker client gets an error at once (the default).
    Fail,
    /// The chain goes on without the adapter's changes.
    Ignore,
}

/// An adapter as configured: its name, how to call it, its timeout and failure policy.
pub struct ConfiguredAdapter {
    /// The name used in `endpoints`.
    pub name: String,
    /// The adapter itself.
    pub adapter: Arc<dyn Adapter>,
    /// How long one hook call may take.
    pub timeout: Duration,
    /// What a failure does.
    pub on_error: OnError,
}

/// One endpoint pattern and its hooks.
pub struct Endpoint {
    /// The pattern requests are matched against.
    pub pattern: Pattern,
    /// Pre-hook adapters, in order.
    pub pre: Vec<Arc<ConfiguredAdapter>>,
    /// Post-hook adapters, in order.
    pub post: Vec<Arc<ConfiguredAdapter>>,
}

/// The hooks that apply to one request.
#[derive(Default, Clone)]
pub struct Hooks {
    /// Pre-hooks, in order.
    pub pre: Vec<Arc<ConfiguredAdapter>>,
    /// Post-hooks, in order.
    pub post: Vec<Arc<ConfiguredAdapter>>,
}

impl Hooks {
    /// Whether no hook applies (the request is passed through untouched).
    pub fn is_empty(&self) -> bool {
        self.pre.is_empty() && self.post.is_empty()
    }
}

/// A validated adapters.yml.
#[derive(Default)]
pub struct Config {
    /// Endpoints in file order.
    pub endpoints: Vec<Endpoint>,
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(
        path: &Path,
        builtins: &Builtins,
        client: &AdapterClient,
    ) -> Result<Self, ConfigError> {
        let text = yaml::read(path)?;
        Config::parse(&text, &path.display().to_string(), builtins, client)
    }

    /// Validates configuration text; `origin` names it in error messages.
    pub fn parse(
        text: &str,
        origin: &str,
        builtins: &Builtins,
        client: &AdapterClient,
    ) -> Result<Self, ConfigError> {
        let value = yaml::parse(text, origin)?;
        let mut problems = Vec::new();
        let config = Parser {
            builtins,
            client,
            problems: &mut problems,
        }
        .config(&value);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                problems,
            })
        }
    }

    /// The hooks for a request, concatenated over all matching endpoints in file order.
    pub fn hooks_for(&self, method: &str, path: &str) -> Hooks {
        let mut hooks = Hooks::default();
        for endpoint in self
            .endpoints
            .iter()
            .filter(|e| e.pattern.matches(method, path))
        {
            hooks.pre.extend(endpoint.pre.iter().cloned());
            hooks.post.extend(endpoint.post.iter().cloned());
        }
        hooks
    }
}

/// The configuration in force, shared by every connection and replaced on reload.
#[derive(Clone, Default)]
pub struct SharedConfig(Arc<RwLock<Arc<Config>>>);

impl SharedConfig {
    /// Shares `config`.
    pub fn new(config: Config) -> Self {
        SharedConfig(Arc::new(RwLock::new(Arc::new(config))))
    }

    /// The configuration in force now; requests keep the one they started with.
    pub fn current(&self) -> Arc<Config> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Puts `config` in force for requests that start from now on.
    pub fn replace(&self, config: Config) {
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(config);
    }
}

/// Walks the YAML, collecting every problem instead of stopping at the first.
struct Parser<'a> {
    builtins: &'a Builtins,
    client: &'a AdapterClient,
    problems: &'a mut Vec<String>,
}

impl Parser<'_> {
    fn config(&mut self, value: &Value) -> Config {
        let Some(top) = value.as_mapping() else {
            self.problems
                .push("expected a mapping with 'endpoints' and 'adapters'".into());
            return Config::default();
        };
        for key in top.keys() {
            if !matches!(key.as_str(), Some("version" | "endpoints" | "adapters")) {
                self.problems.push(format!(
                    "unknown top-level key {}: expected version, endpoints, adapters",
                    show(key)
                ));
            }
        }
        if let Some(version) = top.get("version").filter(|v| v.as_u64() != Some(1)) {
            self.problems.push(format!(
                "version {} is not supported: use 'version: 1'",
                show(version)
            ));
        }
        let adapters = match top.get("adapters").map(Value::as_mapping) {
            Some(Some(adapters)) => self.adapters(adapters),
            Some(None) => self.fail("'adapters' must be a mapping of name to URL"),
            None => self.fail("'adapters' is missing"),
        };
        let endpoints = match top.get("endpoints").map(Value::as_mapping) {
            Some(Some(endpoints)) => endpoints
                .iter()
                .filter_map(|(key, hooks)| self.endpoint(key, hooks, &adapters))
                .collect(),
            Some(None) => self.fail("'endpoints' must be a mapping of \"METHOD /path\" to hooks"),
            None => self.fail("'endpoints' is missing"),
        };
        Config { endpoints }
    }

    fn fail<T: Default>(&mut self, problem: &str) -> T {
        self.problems.push(problem.to_owned());
        T::default()
    }

    fn adapters(&mut self, adapters: &Mapping) -> Vec<Arc<ConfiguredAdapter>> {
        adapters
            .iter()
            .filter_map(|(name, spec)| {
                let Some(name) = name.as_str() else {
                    self.problems
                        .push(format!("adapter name {} must be a string", show(name)));
                    return None;
                };
                self.adapter(name, spec).map(Arc::new)
            })
            .collect()
    }

    fn adapter(&mut self, name: &str, spec: &Value) -> Option<ConfiguredAdapter> {
        let (url, timeout, on_error) = match spec {
            Value::String(url) => (url.as_str(), DEFAULT_ADAPTER_TIMEOUT, OnError::Fail),
            Value::Mapping(fields) => self.extended_adapter(name, fields)?,
            other => {
                self.problems.push(format!(
                    "adapter '{name}': expected a URL or {{url, timeout, on_error}}, got {}",
                    show(other)
                ));
                return None;
            }
        };
        let adapter = self.resolve(name, url)?;
        Some(ConfiguredAdapter {
            name: name.to_owned(),
            adapter,
            timeout,
            on_error,
        })
    }

    fn extended_adapter<'v>(
        &mut self,
        name: &str,
        fields: &'v Mapping,
    ) -> Option<(&'v str, Duration, OnError)> {
        let before = self.problems.len();
        for key in fields.keys() {
            if !matches!(key.as_str(), Some("url" | "timeout" | "on_error")) {
                self.problems.push(format!(
                    "adapter '{name}': unknown key {}: expected url, timeout, on_error",
                    show(key)
                ));
            }
        }
        let url = fields.get("url").and_then(Value::as_str);
        if url.is_none() {
            self.problems
                .push(format!("adapter '{name}': 'url' is missing"));
        }
        let timeout = match fields.get("timeout") {
            None => DEFAULT_ADAPTER_TIMEOUT,
            Some(value) => parse_timeout(value).unwrap_or_else(|problem| {
                self.problems.push(format!("adapter '{name}': {problem}"));
                DEFAULT_ADAPTER_TIMEOUT
            }),
        };
        let on_error = match fields.get("on_error").map(|v| v.as_str()) {
            None | Some(Some("fail")) => OnError::Fail,
            Some(Some("ignore")) => OnError::Ignore,
            Some(_) => {
                self.problems.push(format!(
                    "adapter '{name}': on_error must be 'fail' or 'ignore', not {}",
                    show(&fields["on_error"])
                ));
                OnError::Fail
            }
        };
        (self.problems.len() == before).then_some((url?, timeout, on_error))
    }

    fn resolve(&mut self, name: &str, url: &str) -> Option<Arc<dyn Adapter>> {
        if let Some(builtin) = url.strip_prefix("builtin:") {
            let found = self.builtins.get(builtin);
            if found.is_none() {
                self.problems.push(format!(
                    "adapter '{name}': there is no built-in adapter '{builtin}' (built-ins here: {})",
                    self.builtins.names().join(", ")
                ));
            }
            return found;
        }
        match check_http_url(url) {
            Ok(uri) => Some(Arc::new(HttpAdapter::new(uri, self.client.clone()))),
            Err(problem) => {
                self.problems.push(format!("adapter '{name}': {problem}"));
                None
            }
        }
    }

    fn endpoint(
        &mut self,
        key: &Value,
        hooks: &Value,
        adapters: &[Arc<ConfiguredAdapter>],
    ) -> Option<Endpoint> {
        let Some(key) = key.as_str() else {
            self.problems
                .push(format!("endpoint {} must be a string", show(key)));
            return None;
        };
        let pattern = Pattern::parse(key)
            .map_err(|e| self.problems.push(format!("endpoint \"{key}\": {e}")))
            .ok();
        let fields = match hooks.as_mapping() {
            Some(fields) if !fields.is_empty() => fields,
            _ => {
                self.problems.push(format!(
                    "endpoint \"{key}\": expected a mapping with 'pre' and/or 'post' lists"
                ));
                return None;
            }
        };
        for field in fields.keys() {
            if !matches!(field.as_str(), Some("pre" | "post")) {
                self.problems.push(format!(
                    "endpoint \"{key}\": unknown key {}: expected pre, post",
                    show(field)
                ));
            }
        }
        let pre = self.hook_list(key, "pre", fields.get("pre"), adapters);
        let post = self.hook_list(key, "post", fields.get("post"), adapters);
        let pattern = pattern?;
        if !post.is_empty()
            && let Some((streaming, why)) = streaming_overlap(&pattern)
        {
            self.problems.push(format!(
                "endpoint \"{key}\": post-hooks cannot run on {streaming} ({why}, so there is \
                 never a complete response to hand them); use a pre-hook or a narrower pattern"
            ));
        }
        Some(Endpoint { pattern, pre, post })
    }

    fn hook_list(
        &mut self,
        key: &str,
        which: &str,
        list: Option<&Value>,
        adapters: &[Arc<ConfiguredAdapter>],
    ) -> Vec<Arc<ConfiguredAdapter>> {
        let names = match list {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Sequence(names)) => names,
            Some(other) => {
                self.problems.push(format!(
                    "endpoint \"{key}\": '{which}' must be a list of adapter names, got {}",
                    show(other)
                ));
                return Vec::new();
            }
        };
        names
            .iter()
            .filter_map(|name| {
                let found = name
                    .as_str()
                    .and_then(|name| adapters.iter().find(|a| a.name == name));
                if found.is_none() {
                    self.problems.push(format!(
                        "endpoint \"{key}\": {which}-hook adapter {} is not defined under 'adapters'",
                        show(name)
                    ));
                }
                found.cloned()
            })
            .collect()
    }
}

/// Accepts `http://host[:port]/path`; explains anything else.
fn check_http_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") if uri.authority().is_some() => Ok(uri),
        Some("https") => Err(format!(
            "'{url}': https adapters are not supported; run the adapter on this host or a \
             private network and use http://, or use builtin:NAME"
        )),
        _ => Err(format!(
            "'{url}' must be http://host:port/path or builtin:NAME"
        )),
    }
}

/// `2s`, `500ms`, `1m`, or a bare number of seconds.
fn parse_timeout(value: &Value) -> Result<Duration, String> {
    let invalid = || format!("timeout {} must look like 500ms, 2s or 1m", show(value));
    let duration = match value {
        Value::Number(n) => n.as_f64().map(Duration::try_from_secs_f64),
        Value::String(text) => {
            let text = text.trim();
            let split = text
                .find(|c: char| c.is_ascii_alphabetic())
                .unwrap_or(text.len());
            let (number, unit) = text.split_at(split);
            let number: f64 = number.trim().parse().map_err(|_| invalid())?;
            let seconds = match unit {
                "ms" => number / 1000.0,
                "s" | "" => number,
                "m" => number * 60.0,
                _ => return Err(invalid()),
            };
            Some(Duration::try_from_secs_f64(seconds))
        }
        _ => None,
    };
    match duration {
        Some(Ok(d)) if !d.is_zero() => Ok(d),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests;
