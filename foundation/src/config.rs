//! The daemons' settings (`flocker-control`, `flocker-agent`) from four layers, highest
//! first: a flag, a `<PREFIX>_<FLAG>` environment variable (e.g. `FLOCKER_AGENT_HEARTBEAT`),
//! a YAML file, the flag's built-in default.
//!
//! The file maps each flag's long name in snake_case (`--tls-dir` is `tls_dir`) to the value
//! the flag would take, written as YAML: a string or number, `true`/`false` for a switch, a
//! list for a repeatable flag (`peer`, `listen_docker`) or a comma-separated one (`control`),
//! `null` for "not set". The default file may be missing; a file named by `--config` (or
//! `<PREFIX>_CONFIG`) must exist. Every unknown key and bad value of the file and the
//! environment is reported at once, naming the file or variable, the key and the problem;
//! values are checked by the flag's own parser, so a value means the same in every layer.
//! [`Report::attribute`] makes the daemon's own checks of the merged flags name the layer
//! the value came from too.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, ArgAction, Command, parser::ValueSource};

use crate::yaml::{self, Mapping, Value, YamlError, show};

/// The flags every daemon with a settings file has (`#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct FileArgs {
    /// YAML settings file: each flag's long name in snake_case (`tls_dir: ...`); flags and
    /// FLOCKER_* variables override it [default: the daemon's /etc/flocker/*.yml].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print the effective settings as YAML (a valid settings file) and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Where one daemon's settings come from besides its flags.
#[derive(Clone, Copy, Debug)]
pub struct Layers {
    /// The settings file read when `--config` is not given (missing is fine).
    pub default_file: &'static str,
    /// Environment variables are `<env_prefix>_<FLAG>` (upper case, `-` as `_`).
    pub env_prefix: &'static str,
}

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Its flag.
    Flag,
    /// This environment variable.
    Env(String),
    /// The settings file.
    File,
    /// The built-in default, or not set at all.
    Default,
}

/// The settings could not be put together.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The command line is wrong, or asks for `--help` or `--version`: clap's own report
    /// (`clap::Error::exit` prints it and exits as clap does).
    #[error(transparent)]
    Usage(#[from] clap::Error),
    /// The file cannot be read or is not YAML.
    #[error(transparent)]
    File(#[from] YamlError),
    /// Every problem of the file and the environment, and every required setting missing;
    /// one line each.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

/// The merged settings, with where each came from.
#[derive(Debug)]
pub struct Layered<P> {
    /// The settings, as if every value had been given as a flag.
    pub args: P,
    /// Where they came from.
    pub report: Report,
}

/// Where each setting came from, and what it ended up as.
#[derive(Debug)]
pub struct Report {
    /// `--print-config` was given.
    pub print_config: bool,
    file: PathBuf,
    /// Per setting key: its flag, its variable, where its value came from, its value as YAML.
    settings: Vec<Setting>,
}

#[derive(Debug)]
struct Setting {
    key: String,
    long: String,
    env: String,
    source: Source,
    value: Value,
}

/// The ids of the arguments that are not settings.
const NOT_SETTINGS: [&str; 4] = ["config", "print_config", "help", "version"];

/// The settings of `P` from `argv` (program name first), the environment (`lookup`:
/// `std::env::var_os` in the daemons) and the settings file.
pub fn load<P: clap::Parser>(
    argv: impl IntoIterator<Item = impl Into<OsString>>,
    lookup: impl Fn(&str) -> Option<OsString>,
    layers: &Layers,
) -> Result<Layered<P>, LoadError> {
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let cmd = P::command();
    // Flags only: a required setting may come from another layer.
    let given = cmd
        .clone()
        .mut_args(|a| a.required(false))
        .try_get_matches_from(&argv)?;
    let on_command_line = |id: &str| given.value_source(id) == Some(ValueSource::CommandLine);
    let env_name = |long: &str| {
        format!(
            "{}_{}",
            layers.env_prefix,
            long.to_uppercase().replace('-', "_")
        )
    };

    let config_env = env_name("config");
    let (file, explicit) = match given.get_one::<PathBuf>("config") {
        Some(path) => (path.clone(), true),
        None => match lookup(&config_env) {
            Some(path) => (PathBuf::from(path), true),
            None => (PathBuf::from(layers.default_file), false),
        },
    };
    let origin = file.display().to_string();
    let contents = match std::fs::read_to_string(&file) {
        Ok(text) => yaml::parse(&text, &origin)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Value::Null,
        Err(source) => return Err(YamlError::Read { path: file, source }.into()),
    };

    let settable: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| !NOT_SETTINGS.contains(&a.get_id().as_str()) && a.get_long().is_some())
        .collect();
    let mut problems = Vec::new();
    let mut from_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    match &contents {
        Value::Null => {}
        Value::Mapping(map) => {
            from_file = file_values(&settable, map, &origin, &mut problems);
        }
        other => problems.push(format!(
            "{origin}: expected a mapping of settings (e.g. `tls_dir: /etc/flocker/tls/node`), got {}",
            show(other)
        )),
    }

    let mut extra: Vec<OsString> = Vec::new();
    let mut settings = Vec::new();
    for arg in &settable {
        let long = arg.get_long().unwrap_or_default();
        let key = long.replace('-', "_");
        let env = env_name(long);
        let id = arg.get_id().as_str();
        let source = if on_command_line(id) {
            Source::Flag
        } else if let Some(value) = lookup(&env) {
            match check(arg, &[value.to_string_lossy().into_owned()]) {
                Ok(flags) => extra.extend(flags.into_iter().map(OsString::from)),
                Err(problem) => problems.push(format!("{env}: {problem}")),
            }
            Source::Env(env.clone())
        } else if let Some(flags) = from_file.remove(&key) {
            extra.extend(flags.into_iter().map(OsString::from));
            Source::File
        } else {
            if arg.is_required_set() && given.value_source(id).is_none() {
                problems.push(format!(
                    "{key} is not set: give --{long}, {env} or `{key}:` in {origin}"
                ));
            }
            Source::Default
        };
        settings.push(Setting {
            key,
            long: long.to_owned(),
            env,
            source,
            value: Value::Null,
        });
    }
    if !problems.is_empty() {
        return Err(LoadError::Invalid(problems));
    }

    let matches = cmd
        .clone()
        .try_get_matches_from(argv.into_iter().chain(extra))?;
    for (setting, arg) in settings.iter_mut().zip(&settable) {
        setting.value = effective(&matches, arg);
    }
    let args = P::from_arg_matches(&matches)?;
    let print_config = matches.get_flag("print_config");
    Ok(Layered {
        args,
        report: Report {
            print_config,
            file,
            settings,
        },
    })
}

/// The flags that each known key of the file stands for; its problems go to `problems`.
fn file_values(
    settable: &[&Arg],
    map: &Mapping,
    origin: &str,
    problems: &mut Vec<String>,
) -> BTreeMap<String, Vec<String>> {
    let mut found = BTreeMap::new();
    for (key, value) in map {
        let Some(key) = key.as_str() else {
            problems.push(format!("{origin}: key {} must be a string", show(key)));
            continue;
        };
        let Some(arg) = settable
            .iter()
            .find(|a| a.get_long().is_some_and(|l| l.replace('-', "_") == key))
        else {
            let known: Vec<String> = settable
                .iter()
                .filter_map(|a| a.get_long())
                .map(|l| l.replace('-', "_"))
                .collect();
            problems.push(format!(
                "{origin}: {key}: unknown key (known: {})",
                known.join(", ")
            ));
            continue;
        };
        if value.is_null() {
            continue;
        }
        let flags = strings(arg, value).and_then(|values| check(arg, &values));
        match flags {
            Ok(flags) => {
                found.insert(key.to_owned(), flags);
            }
            Err(problem) => problems.push(format!("{origin}: {key}: {problem}")),
        }
    }
    found
}

/// A file value as the strings its flag would be given.
fn strings(arg: &Arg, value: &Value) -> Result<Vec<String>, String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a value, got {}", show(other))),
    };
    match value {
        Value::Sequence(items) if takes_many(arg) => items.iter().map(scalar).collect(),
        Value::Sequence(items) => Err(format!("expected one value, got a list of {}", items.len())),
        Value::Bool(_) if is_switch(arg) => Ok(vec![scalar(value)?]),
        _ if is_switch(arg) => Err(format!("expected true or false, got {}", show(value))),
        other => Ok(vec![scalar(other)?]),
    }
}

/// The command-line flags for `values` of `arg`, checked by the flag's own parser.
fn check(arg: &Arg, values: &[String]) -> Result<Vec<String>, String> {
    let long = arg.get_long().unwrap_or_default();
    let flags: Vec<String> = if is_switch(arg) {
        match values {
            [v] if matches!(v.as_str(), "true" | "1" | "yes") => vec![format!("--{long}")],
            [v] if matches!(v.as_str(), "false" | "0" | "no" | "") => Vec::new(),
            _ => {
                return Err(format!(
                    "expected true or false, got '{}'",
                    values.join(" ")
                ));
            }
        }
    } else {
        values.iter().map(|v| format!("--{long}={v}")).collect()
    };
    let alone = Command::new("settings")
        .no_binary_name(true)
        .arg(arg.clone().required(false));
    match alone.try_get_matches_from(&flags) {
        Ok(_) => Ok(flags),
        Err(e) => Err(match e.source() {
            Some(why) => format!("invalid value '{}': {why}", values.join(" ")),
            None => e
                .render()
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_owned(),
        }),
    }
}

fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue)
}

fn takes_many(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
}

/// The value `arg` ended up with, as the file would hold it.
fn effective(matches: &clap::ArgMatches, arg: &Arg) -> Value {
    let id = arg.get_id().as_str();
    if is_switch(arg) {
        return Value::Bool(matches.get_flag(id));
    }
    let scalar = |raw: &std::ffi::OsStr| {
        let s = raw.to_string_lossy().into_owned();
        match s.parse::<u64>() {
            Ok(n) if n.to_string() == s => Value::from(n),
            _ => Value::String(s),
        }
    };
    match matches.get_raw(id) {
        None => Value::Null,
        Some(raw) if takes_many(arg) => Value::Sequence(raw.map(scalar).collect()),
        Some(mut raw) => raw.next().map(scalar).unwrap_or(Value::Null),
    }
}

impl Report {
    /// The effective settings as a settings file (what `--print-config` prints): every key,
    /// `null` for one not set.
    pub fn to_yaml(&self) -> String {
        let mut map = Mapping::new();
        for s in &self.settings {
            map.insert(Value::from(s.key.clone()), s.value.clone());
        }
        let body = serde_norway::to_string(&map).unwrap_or_default();
        format!(
            "# Effective settings (flag > environment > {} > built-in default).\n{body}",
            self.file.display()
        )
    }

    /// Where the setting `key` came from.
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.settings
            .iter()
            .find(|s| s.key == key)
            .map(|s| &s.source)
    }

    /// The daemon's problems with the merged settings, each starting `--FLAG`, reworded to
    /// name where the value came from: `FILE: KEY` or `VARIABLE` instead of `--FLAG`.
    pub fn attribute(&self, problems: Vec<String>) -> Vec<String> {
        problems
            .into_iter()
            .map(|problem| {
                let Some(rest) = problem.strip_prefix("--") else {
                    return problem;
                };
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .unwrap_or(rest.len());
                let (flag, tail) = rest.split_at(end);
                match self.settings.iter().find(|s| s.long == flag) {
                    Some(s) if s.source == Source::File => {
                        format!("{}: {}{tail}", self.file.display(), s.key)
                    }
                    Some(s) if matches!(s.source, Source::Env(_)) => format!("{}{tail}", s.env),
                    _ => problem,
                }
            })
            .collect()
    }
}

/// Exits the way a daemon does when its settings cannot be put together: clap's own exit
/// for usage, help and version; otherwise each problem on its own line, prefixed with the
/// daemon's name, and exit code [`crate::exit::CONFIG`].
pub fn exit_code(daemon: &str, error: LoadError) -> std::process::ExitCode {
    match error {
        LoadError::Usage(e) => e.exit(),
        LoadError::File(e) => eprintln!("{daemon}: {e}"),
        LoadError::Invalid(problems) => report(daemon, &problems),
    }
    std::process::ExitCode::from(crate::exit::CONFIG)
}

/// Prints each problem on its own line, prefixed with the daemon's name.
pub fn report(daemon: &str, problems: &[String]) {
    for p in problems {
        eprintln!("{daemon}: {p}");
    }
}

#[cfg(test)]
mod tests;
