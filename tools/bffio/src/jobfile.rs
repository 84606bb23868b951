//! fio job files: INI-style sections of `key=value` lines.
//!
//! The format, as fio reads it: `[name]` starts a job section (`[global]` holds defaults for the
//! sections after it), `key=value` or a bare `key` sets an option, lines starting with `;` or `#`
//! are comments, `include <file>` reads another job file in place (relative to the including
//! file), and `$VAR` / `${VAR}` in a value expand to the environment variable (plus fio's
//! built-ins `$ncpus` and `$pagesize`). Keys before any section count as global.

use std::fmt;
use std::path::{Path, PathBuf};

/// One `key[=value]` setting and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key, lower-cased, with `-` turned into `_`.
    pub key: String,
    /// The value (`None` for a bare flag).
    pub value: Option<String>,
    /// `file:line` or `command line`, for messages.
    pub origin: String,
}

/// A `[section]` with its entries, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// The section name (`global` for defaults).
    pub name: String,
    /// Its settings, in the order given.
    pub entries: Vec<Entry>,
}

impl Section {
    /// Whether this is a `[global]` section.
    pub fn is_global(&self) -> bool {
        self.name == "global"
    }
}

/// A job file that cannot be read or parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// `file:line` (or just the file).
    pub origin: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Whether `include` may read files (the fuzz entry point denies it).
#[derive(Clone, Debug)]
pub enum IncludePolicy {
    /// Read included files from the file system.
    Allow,
    /// Treat every `include` as an error.
    Deny,
}

/// How deep includes may nest (a loop is also caught by name before that).
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// Normalises an option key: trimmed, lower-case, `-` → `_`.
pub fn normalize_key(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace('-', "_")
}

/// Reads and parses the job file at `path`.
pub fn parse_file(path: &Path) -> Result<Vec<Section>, ParseError> {
    let mut out = Vec::new();
    let mut stack = Vec::new();
    read_into(path, &mut out, &mut stack, &IncludePolicy::Allow)?;
    Ok(out)
}

fn read_into(
    path: &Path,
    out: &mut Vec<Section>,
    stack: &mut Vec<PathBuf>,
    policy: &IncludePolicy,
) -> Result<(), ParseError> {
    let shown = path.display().to_string();
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if stack.contains(&canon) {
        return Err(ParseError {
            origin: shown,
            message: "include loop: the file includes itself".into(),
        });
    }
    if stack.len() >= MAX_INCLUDE_DEPTH {
        return Err(ParseError {
            origin: shown,
            message: format!("includes nested deeper than {MAX_INCLUDE_DEPTH}"),
        });
    }
    let data = std::fs::read(path).map_err(|e| ParseError {
        origin: shown.clone(),
        message: format!("cannot read: {e}"),
    })?;
    stack.push(canon);
    let r = parse_into(&data, &shown, path.parent(), out, stack, policy);
    stack.pop();
    r
}

/// Parses job-file bytes named `name` (includes resolved per `policy`, relative to the current
/// directory).
pub fn parse_bytes(
    data: &[u8],
    name: &str,
    policy: &IncludePolicy,
) -> Result<Vec<Section>, ParseError> {
    let mut out = Vec::new();
    let mut stack = Vec::new();
    parse_into(data, name, None, &mut out, &mut stack, policy)?;
    Ok(out)
}

fn parse_into(
    data: &[u8],
    name: &str,
    dir: Option<&Path>,
    out: &mut Vec<Section>,
    stack: &mut Vec<PathBuf>,
    policy: &IncludePolicy,
) -> Result<(), ParseError> {
    let text = std::str::from_utf8(data).map_err(|e| ParseError {
        origin: format!(
            "{name}:{}",
            1 + data[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
        ),
        message: "not valid UTF-8".into(),
    })?;
    for (i, raw) in text.lines().enumerate() {
        let origin = format!("{name}:{}", i + 1);
        let err = |message: String| ParseError {
            origin: origin.clone(),
            message,
        };
        if raw.contains('\0') {
            return Err(err("NUL byte in line".into()));
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                return Err(err(format!("unterminated section header '{line}'")));
            };
            let sname = rest[..end].trim();
            let tail = rest[end + 1..].trim();
            if !tail.is_empty() && !tail.starts_with(';') && !tail.starts_with('#') {
                return Err(err(format!("text after section header: '{tail}'")));
            }
            if sname.is_empty() {
                return Err(err("empty section name '[]'".into()));
            }
            out.push(Section {
                name: sname.to_string(),
                entries: Vec::new(),
            });
            continue;
        }
        if let Some(target) = line
            .strip_prefix("include")
            .filter(|r| r.is_empty() || r.starts_with(|c: char| c.is_whitespace()))
        {
            let target = target.trim();
            if target.is_empty() {
                return Err(err("include without a file name".into()));
            }
            match policy {
                IncludePolicy::Deny => {
                    return Err(err(format!(
                        "include '{target}': includes are disabled here"
                    )))
                }
                IncludePolicy::Allow => {
                    let p = Path::new(target);
                    let p = match dir {
                        Some(d) if p.is_relative() => d.join(p),
                        _ => p.to_path_buf(),
                    };
                    read_into(&p, out, stack, policy).map_err(|e| ParseError {
                        origin: e.origin,
                        message: format!("{} (included from {origin})", e.message),
                    })?;
                    continue;
                }
            }
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(expand_env(v.trim()))),
            None => (line, None),
        };
        let key = normalize_key(key);
        if key.is_empty() {
            return Err(err(format!("missing option name in '{line}'")));
        }
        if key.contains(char::is_whitespace) {
            return Err(err(format!("bad option name '{}'", key)));
        }
        if out.is_empty() {
            out.push(Section {
                name: "global".into(),
                entries: Vec::new(),
            });
        }
        let section = out.last_mut().expect("a section exists");
        section.entries.push(Entry { key, value, origin });
    }
    Ok(())
}

/// Expands `$VAR` and `${VAR}` from the environment (`$ncpus` and `$pagesize` built in). An
/// unset variable is left as written (the option's own validation then names it).
pub fn expand_env(value: &str) -> String {
    if !value.contains('$') {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[pos..pos + 1 + consumed]),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

fn lookup(name: &str) -> Option<String> {
    if let Ok(v) = std::env::var(name) {
        return Some(v);
    }
    match name {
        "ncpus" => Some(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .to_string(),
        ),
        "pagesize" => Some("4096".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<Section>, ParseError> {
        parse_bytes(s.as_bytes(), "t.fio", &IncludePolicy::Deny)
    }

    #[test]
    fn sections_comments_and_flags() {
        let s = parse(
            "; comment\n# another\n[global]\nbs=4k\ndirect = 1\n\n[job1]\nrw=randread\ntime_based\n[job2]\n",
        )
        .unwrap();
        assert_eq!(s.len(), 3);
        assert!(s[0].is_global());
        assert_eq!(s[0].entries[1].key, "direct");
        assert_eq!(s[0].entries[1].value.as_deref(), Some("1"));
        assert_eq!(s[1].name, "job1");
        assert_eq!(s[1].entries[1].value, None);
        assert_eq!(s[1].entries[1].origin, "t.fio:9");
        assert!(s[2].entries.is_empty());
    }

    #[test]
    fn keys_before_a_section_are_global() {
        let s = parse("bs=8k\n[a]\n").unwrap();
        assert!(s[0].is_global());
        assert_eq!(s[0].entries[0].key, "bs");
    }

    #[test]
    fn key_normalisation() {
        let s = parse("[a]\nTarget-P99=1ms\n").unwrap();
        assert_eq!(s[0].entries[0].key, "target_p99");
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse("[unterminated\nbs=4k\n").is_err());
        assert!(parse("[]\n").is_err());
        assert!(parse("[a] junk\n").is_err());
        assert!(parse("[a]\n=5\n").is_err());
        assert!(parse("[a]\nbs=4k\0\n").is_err());
        let e = parse_bytes(b"[a]\nbs=\xff\xfe\n", "x.fio", &IncludePolicy::Deny).unwrap_err();
        assert_eq!(e.origin, "x.fio:2");
        assert!(e.message.contains("UTF-8"));
        assert!(parse("include other.fio\n").is_err());
        assert!(parse("[a]\ninclude\n").is_err());
    }

    #[test]
    fn env_expansion() {
        std::env::set_var("BFFIO_TEST_SIZE", "64m");
        assert_eq!(expand_env("$BFFIO_TEST_SIZE"), "64m");
        assert_eq!(expand_env("${BFFIO_TEST_SIZE}x"), "64mx");
        assert_eq!(expand_env("a$BFFIO_TEST_SIZE/b"), "a64m/b");
        assert_eq!(expand_env("$BFFIO_UNSET_VAR_XYZ"), "$BFFIO_UNSET_VAR_XYZ");
        assert_eq!(expand_env("${unterminated"), "${unterminated");
        assert_eq!(expand_env("cost $"), "cost $");
        assert_eq!(expand_env("$pagesize"), "4096");
        let s = parse("[a]\nsize=${BFFIO_TEST_SIZE}\n").unwrap();
        assert_eq!(s[0].entries[0].value.as_deref(), Some("64m"));
    }

    #[test]
    fn includes_and_loops() {
        let dir = std::env::temp_dir().join(format!("bffio-inc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("common.fio"), "[global]\nbs=16k\n").unwrap();
        std::fs::write(dir.join("main.fio"), "include common.fio\n[j]\nrw=read\n").unwrap();
        std::fs::write(dir.join("loop.fio"), "[j]\ninclude loop.fio\n").unwrap();
        std::fs::write(dir.join("a.fio"), "include b.fio\n").unwrap();
        std::fs::write(dir.join("b.fio"), "include a.fio\n").unwrap();
        let s = parse_file(&dir.join("main.fio")).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].entries[0].value.as_deref(), Some("16k"));
        assert_eq!(s[1].name, "j");
        let e = parse_file(&dir.join("loop.fio")).unwrap_err();
        assert!(e.message.contains("include loop"), "{e}");
        let e = parse_file(&dir.join("a.fio")).unwrap_err();
        assert!(e.message.contains("include loop"), "{e}");
        let e = parse_file(&dir.join("missing.fio")).unwrap_err();
        assert!(e.message.contains("cannot read"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
