//! Environment overrides, read through a trait so tests pass a map instead
//! of touching the process environment.

use std::collections::BTreeMap;

use super::ConfigError;

/// Prefix of every Palisade environment variable.
pub const ENV_PREFIX: &str = "PALISADE_";
/// Separator between the section and the key in an override
/// (`PALISADE_LIMITS__MAX_MESSAGE_BYTES`). Variables without it are not
/// config overrides.
pub const ENV_NESTING: &str = "__";
/// Path of the config file, when `--config` is not given.
pub const ENV_CONFIG: &str = "PALISADE_CONFIG";
/// Log filter (`info`, `palisade=debug`, …), in tracing-subscriber syntax.
pub const ENV_LOG: &str = "PALISADE_LOG";
/// Log line format, when `--log-format` is not given: `pretty` or `json`.
pub const ENV_LOG_FORMAT: &str = "PALISADE_LOG_FORMAT";

/// A source of environment variables.
pub trait Env {
    /// Every `(name, value)` pair whose name starts with [`ENV_PREFIX`].
    fn palisade_vars(&self) -> Vec<(String, String)>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn palisade_vars(&self) -> Vec<(String, String)> {
        // Non-UTF-8 variables cannot be Palisade settings; `vars_os` keeps
        // one stray variable from aborting the whole read.
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect()
    }
}

impl Env for BTreeMap<String, String> {
    fn palisade_vars(&self) -> Vec<(String, String)> {
        self.iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Applies `PALISADE_SECTION__KEY=value` overrides to a config tree.
/// `defaults` is the tree of known keys: an override naming a key that is
/// not there is an error naming the variable.
pub(super) fn apply(env: &dyn Env, tree: &mut toml::Table, defaults: &toml::Table) -> Result<(), ConfigError> {
    let mut vars = env.palisade_vars();
    vars.sort();
    for (name, raw) in vars {
        let Some(path) = name.strip_prefix(ENV_PREFIX).filter(|p| p.contains(ENV_NESTING)) else {
            continue;
        };
        let keys: Vec<String> = path.split(ENV_NESTING).map(str::to_ascii_lowercase).collect();
        let bad = |why: &str| ConfigError::Env { var: name.clone(), why: why.to_owned() };
        if keys.iter().any(String::is_empty) {
            return Err(bad("empty key segment"));
        }
        if !known(defaults, &keys) {
            return Err(bad(&format!("no config key `{}`", keys.join("."))));
        }
        let (last, parents) = keys.split_last().ok_or_else(|| bad("empty key"))?;
        let mut table = &mut *tree;
        for key in parents {
            let entry = table.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry.as_table_mut().ok_or_else(|| bad("overrides a value that is not a table"))?;
        }
        table.insert(last.clone(), parse_value(&raw));
    }
    Ok(())
}

/// Whether `keys` names a key of `defaults`.
fn known(defaults: &toml::Table, keys: &[String]) -> bool {
    let mut table = defaults;
    for (i, key) in keys.iter().enumerate() {
        match table.get(key) {
            Some(toml::Value::Table(inner)) if i + 1 < keys.len() => table = inner,
            Some(_) => return i + 1 == keys.len(),
            None => return false,
        }
    }
    false
}

/// A TOML literal (`42`, `true`, `["a","b"]`, `"x"`) when the text is one;
/// otherwise the text as a string, so `PALISADE_SERVER__LISTEN=0.0.0.0:80`
/// needs no quotes.
fn parse_value(raw: &str) -> toml::Value {
    #[derive(serde::Deserialize)]
    struct Wrapper {
        v: toml::Value,
    }
    toml::from_str::<Wrapper>(&format!("v = {raw}")).map_or_else(|_| toml::Value::String(raw.to_owned()), |w| w.v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> toml::Table {
        toml::from_str("[server]\nlisten = \"a\"\n[limits]\nmax = 1\n").unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn overrides_set_typed_values() {
        let mut tree = toml::Table::new();
        let vars = env(&[
            ("PALISADE_SERVER__LISTEN", "0.0.0.0:80"),
            ("PALISADE_LIMITS__MAX", "5"),
            ("PALISADE_CONFIG", "ignored.toml"),
            ("OTHER", "x"),
        ]);
        apply(&vars, &mut tree, &defaults()).unwrap();
        assert_eq!(tree["server"]["listen"].as_str(), Some("0.0.0.0:80"));
        assert_eq!(tree["limits"]["max"].as_integer(), Some(5));
    }

    #[test]
    fn unknown_keys_name_the_variable() {
        let mut tree = toml::Table::new();
        let err = apply(&env(&[("PALISADE_LIMITS__MAXX", "5")]), &mut tree, &defaults()).unwrap_err();
        assert!(err.to_string().contains("PALISADE_LIMITS__MAXX"), "{err}");
        let err = apply(&env(&[("PALISADE_SERVER__", "5")]), &mut tree, &defaults()).unwrap_err();
        assert!(err.to_string().contains("PALISADE_SERVER__"), "{err}");
    }
}
