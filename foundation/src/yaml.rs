//! YAML files as every configuration of the workspace reads them (adapters.yml, the
//! daemons' settings files): one error type that names the file, and one way to show a value
//! in a message.

use std::path::{Path, PathBuf};

pub use serde_norway::{Mapping, Value};

/// Why a YAML configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not YAML.
    #[error("{origin} is not valid YAML: {source}")]
    Syntax {
        /// The file, or "the configuration".
        origin: String,
        /// The parser's message (it carries the line and column).
        source: serde_norway::Error,
    },
    /// The YAML is well-formed but describes an invalid configuration.
    #[error("{origin} is invalid:\n  - {}", problems.join("\n  - "))]
    Invalid {
        /// The file, or "the configuration".
        origin: String,
        /// Every problem found, each naming the key at fault.
        problems: Vec<String>,
    },
}

/// Reads the file at `path` (see [`YamlError::Read`]).
pub fn read(path: &Path) -> Result<String, YamlError> {
    std::fs::read_to_string(path).map_err(|source| YamlError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Parses `text`; `origin` names it in the error. An empty text is `Value::Null`.
pub fn parse(text: &str, origin: &str) -> Result<Value, YamlError> {
    serde_norway::from_str(text).map_err(|source| YamlError::Syntax {
        origin: origin.to_owned(),
        source,
    })
}

/// A YAML value as it would appear in the file, for messages: strings in single quotes.
pub fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("'{s}'"),
        other => serde_norway::to_string(other)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_show_as_written() {
        assert_eq!(show(&Value::from("x")), "'x'");
        assert_eq!(show(&Value::from(5)), "5");
        assert_eq!(show(&parse("[a, 1]", "t").unwrap()), "- a\n- 1");
        assert!(parse("", "t").unwrap().is_null());
        let err = parse("a: [1", "f.yml").unwrap_err().to_string();
        assert!(err.starts_with("f.yml is not valid YAML: "), "{err}");
    }
}
