//! Secrets a config gives inline or in a file beside it
//! (`audit.checkpoint_key` / `checkpoint_key_file`, `alerts.secret` /
//! `secret_file`): one of the two, at least so many bytes, and errors that
//! name the key but never quote the value.

use std::path::Path;

use super::ConfigError;

/// Where a secret may be given: the inline key's name and value, and the
/// file key's name and path.
pub(super) struct SecretKeys<'a> {
    pub(super) inline: (&'a str, &'a str),
    pub(super) file: (&'a str, &'a str),
}

impl SecretKeys<'_> {
    /// The secret's bytes (a file's trailing newline dropped, its path
    /// relative to `base_dir`), at least `min` of them; `None` when neither
    /// key is set. `noun` names it in errors ("key", "secret").
    pub(super) fn read(&self, base_dir: &Path, min: usize, noun: &str) -> Result<Option<Vec<u8>>, ConfigError> {
        let ((inline_key, inline), (file_key, file)) = (self.inline, self.file);
        let bytes = match (inline.is_empty(), file.is_empty()) {
            (false, false) => {
                let short = |key: &str| key.rsplit('.').next().unwrap_or(key).to_owned();
                let why = format!("give {} or {}, not both", short(inline_key), short(file_key));
                return Err(ConfigError::invalid(inline_key, why));
            }
            (false, true) => inline.as_bytes().to_vec(),
            (true, false) => {
                let path = base_dir.join(file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ConfigError::invalid(file_key, format!("{}: {e}", path.display())))?;
                text.trim_end_matches(['\r', '\n']).as_bytes().to_vec()
            }
            (true, true) => return Ok(None),
        };
        if bytes.len() < min {
            let key = if inline.is_empty() { file_key } else { inline_key };
            return Err(ConfigError::invalid(key, format!("the {noun} needs at least {min} bytes")));
        }
        Ok(Some(bytes))
    }
}
