//! fio's command line: `--key=value`, `--key value`, bare `--flag`s, `--name` starting a job,
//! positional job files, and the program-level options (`--output`, `--output-format`, ...).

use std::io::Write;

use crate::jobfile::{self, normalize_key, Entry, Section};
use crate::options::{self, OptionKind};

/// One output format of `--output-format` (a comma list selects several).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// fio's human-readable report.
    Normal,
    /// fio-3.x JSON.
    Json,
    /// JSON plus the clat histogram bins.
    JsonPlus,
}

/// When to print the live status line.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Eta {
    /// When stdout is a terminal (fio's default).
    Auto,
    /// Always (on stdout).
    Always,
    /// Never.
    Never,
}

/// A parsed command line.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// Sections from the command line: a leading `global` one (options before any `--name`),
    /// then one per `--name`.
    pub sections: Vec<Section>,
    /// Job files, in order.
    pub job_files: Vec<String>,
    /// Output formats (default: normal).
    pub formats: Vec<OutputFormat>,
    /// `--output=FILE`: the report goes there instead of stdout.
    pub output: Option<String>,
    /// `--help` / `-h`.
    pub help: bool,
    /// `--version`.
    pub version: bool,
    /// `--parse-only`: validate and exit.
    pub parse_only: bool,
    /// `--eta`.
    pub eta: Eta,
}

/// A command line that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// Parses `--output-format`'s comma list.
pub fn parse_formats(v: &str) -> Result<Vec<OutputFormat>, CliError> {
    let mut out = Vec::new();
    for f in v.split(',') {
        let f = match f.trim() {
            "normal" => OutputFormat::Normal,
            "json" => OutputFormat::Json,
            "json+" => OutputFormat::JsonPlus,
            other => {
                return Err(CliError(format!(
                    "invalid value for output-format: '{other}' (normal, json, json+)"
                )))
            }
        };
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Ok(out)
}

/// Parses the arguments after the program name.
pub fn parse_args(args: &[String]) -> Result<Invocation, CliError> {
    let mut inv = Invocation {
        sections: vec![Section {
            name: "global".into(),
            entries: Vec::new(),
        }],
        job_files: Vec::new(),
        formats: vec![OutputFormat::Normal],
        output: None,
        help: false,
        version: false,
        parse_only: false,
        eta: Eta::Auto,
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "-h" || arg == "--help" {
            inv.help = true;
            continue;
        }
        let Some(body) = arg.strip_prefix("--") else {
            if arg.starts_with('-') && arg.len() > 1 {
                return Err(CliError(format!("unknown argument '{arg}'")));
            }
            inv.job_files.push(arg.clone());
            continue;
        };
        let (key, mut value) = match body.split_once('=') {
            Some((k, v)) => (normalize_key(k), Some(v.to_string())),
            None => (normalize_key(body), None),
        };
        if key.is_empty() {
            return Err(CliError(format!("bad argument '{arg}'")));
        }
        let takes_value = match key.as_str() {
            "output" | "output_format" | "eta" | "name" => true,
            "version" | "parse_only" => false,
            k => !matches!(options::kind_of(k), Some(OptionKind::Flag) | None),
        };
        if value.is_none() && takes_value {
            match args.get(i) {
                Some(next) if !next.starts_with("--") => {
                    value = Some(next.clone());
                    i += 1;
                }
                _ => return Err(CliError(format!("option '--{key}' needs a value"))),
            }
        }
        match key.as_str() {
            "output" => inv.output = value,
            "output_format" => inv.formats = parse_formats(value.as_deref().unwrap_or(""))?,
            "version" => inv.version = true,
            "parse_only" => inv.parse_only = true,
            "eta" => {
                inv.eta = match value.as_deref() {
                    Some("auto") => Eta::Auto,
                    Some("always") => Eta::Always,
                    Some("never") => Eta::Never,
                    v => {
                        return Err(CliError(format!(
                            "invalid value for eta: '{}' (auto, always, never)",
                            v.unwrap_or("")
                        )))
                    }
                }
            }
            "name" => {
                let name = value.unwrap_or_default();
                if name.is_empty() || name == "global" {
                    return Err(CliError(format!("invalid value for name: '{name}'")));
                }
                inv.sections.push(Section {
                    name,
                    entries: Vec::new(),
                });
            }
            _ => {
                let section = inv.sections.last_mut().expect("global section exists");
                section.entries.push(Entry {
                    key,
                    value: value.map(|v| jobfile::expand_env(&v)),
                    origin: "command line".into(),
                });
            }
        }
    }
    Ok(inv)
}

/// The usage text.
pub fn usage() -> String {
    format!(
        "{ver}: fio-compatible benchmark, I/O through aura (self-tuning io_uring queue depth)

usage: BFFIO [options] [job.fio ...]
       BFFIO --name=job --rw=randread --bs=4k --size=1g --filename=/path --direct=1 ...

program options:
  --output=FILE            write the report to FILE
  --output-format=LIST     normal, json, json+ (comma-separated for several)
  --eta=auto|always|never  live status line (auto: when stdout is a terminal)
  --parse-only             check the options and exit
  --version, --help
job options (fio's names; before any --name they are defaults for every job):
  name rw/readwrite rwmixread rwmixwrite bs/blocksize bsrange size filesize filename
  directory nrfiles file_service_type direct buffered offset runtime time_based ramp_time
  numjobs iodepth group_reporting fsync end_fsync randseed randrepeat io_size number_ios
  thread ioengine verify verify_only do_verify invalidate unlink kb_base stonewall new_group
BFFIO only:
  --depth=auto|N           auto (default): the controller finds the depth, iodepth is a cap;
                           N: a fixed depth of N in flight per job (for comparisons)
  --target_p99=TIME        hold P99 latency under TIME (bare number = ms; us/ms/s)
  --ring_select=MODE       adaptive, cpu_local, round_robin, thread_local
  --sqpoll                 kernel-side submission polling
",
        ver = crate::VERSION
    )
}

/// Runs BFFIO with `args` (without the program name); returns the exit status.
pub fn run_main(args: &[String]) -> i32 {
    let inv = match parse_args(args) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("BFFIO: {e}");
            return 1;
        }
    };
    if inv.help {
        print!("{}", usage());
        return 0;
    }
    if inv.version {
        println!("{}", crate::VERSION);
        return 0;
    }
    if args.is_empty() {
        eprint!("{}", usage());
        return 1;
    }
    // Sections in fio's order of precedence: command-line defaults, job files, command-line jobs.
    let mut sections = vec![inv.sections[0].clone()];
    for f in &inv.job_files {
        match jobfile::parse_file(std::path::Path::new(f)) {
            Ok(s) => sections.extend(s),
            Err(e) => {
                eprintln!("BFFIO: job file {e}");
                return 1;
            }
        }
    }
    sections.extend(inv.sections[1..].iter().cloned());
    let built = match options::build_jobs(&sections) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("BFFIO: {e}");
            return 1;
        }
    };
    for w in &built.warnings {
        eprintln!("BFFIO: warning: {w}");
    }
    if built.jobs.is_empty() {
        eprintln!("BFFIO: no jobs defined (give --name=... with options, or a job file)");
        return 1;
    }
    if inv.parse_only {
        return 0;
    }
    let mut out: Box<dyn Write> = match &inv.output {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                eprintln!("BFFIO: --output={path}: {e}");
                return 1;
            }
        },
        None => Box::new(std::io::stdout()),
    };
    let status = match inv.eta {
        Eta::Never => false,
        Eta::Always => true,
        Eta::Auto => inv.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()),
    };
    let results = match crate::runner::run_jobs(&built.jobs, built.global_options.clone(), status) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("BFFIO: {e}");
            return 1;
        }
    };
    let mut text = String::new();
    for f in &inv.formats {
        match f {
            OutputFormat::Normal => text.push_str(&crate::report::render(&results)),
            OutputFormat::Json => text.push_str(&crate::json::render(&results, false)),
            OutputFormat::JsonPlus => text.push_str(&crate::json::render(&results, true)),
        }
    }
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        eprintln!("BFFIO: writing the report: {e}");
        return 1;
    }
    if results.failed() {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn forms_of_options() {
        let inv = parse_args(&args(&[
            "--bs=8k",
            "--direct",
            "--iodepth",
            "32",
            "--name=a",
            "--rw",
            "randread",
            "--time_based",
            "--name",
            "b",
            "job.fio",
            "--output-format=json,normal",
            "--output",
            "out.txt",
        ]))
        .unwrap();
        assert_eq!(inv.sections.len(), 3);
        let g = &inv.sections[0];
        assert_eq!(g.entries[0].key, "bs");
        assert_eq!(g.entries[1].key, "direct");
        assert_eq!(g.entries[1].value, None);
        assert_eq!(g.entries[2].value.as_deref(), Some("32"));
        assert_eq!(inv.sections[1].name, "a");
        assert_eq!(
            inv.sections[1].entries[0].value.as_deref(),
            Some("randread")
        );
        assert_eq!(inv.sections[1].entries[1].key, "time_based");
        assert_eq!(inv.sections[1].entries[1].value, None);
        assert_eq!(inv.sections[2].name, "b");
        assert_eq!(inv.job_files, vec!["job.fio"]);
        assert_eq!(inv.formats, vec![OutputFormat::Json, OutputFormat::Normal]);
        assert_eq!(inv.output.as_deref(), Some("out.txt"));
    }

    #[test]
    fn flags_do_not_eat_job_files() {
        let inv = parse_args(&args(&["--group_reporting", "x.fio"])).unwrap();
        assert_eq!(inv.job_files, vec!["x.fio"]);
        assert_eq!(inv.sections[0].entries[0].value, None);
    }

    #[test]
    fn errors() {
        assert!(parse_args(&args(&["--output-format=xml"])).is_err());
        assert!(parse_args(&args(&["--bs"])).is_err());
        assert!(parse_args(&args(&["-x"])).is_err());
        assert!(parse_args(&args(&["--name="])).is_err());
        assert!(parse_args(&args(&["--eta=sometimes"])).is_err());
        assert!(parse_args(&args(&["--="])).is_err());
        assert!(parse_args(&args(&[])).is_ok());
    }

    #[test]
    fn exit_status_of_bad_input_is_1() {
        assert_eq!(run_main(&args(&["--name=x", "--bs=12q", "--size=1m"])), 1);
        assert_eq!(run_main(&args(&["/nonexistent/dir/job.fio"])), 1);
        assert_eq!(run_main(&args(&[])), 1);
        assert_eq!(run_main(&args(&["--help"])), 0);
    }
}
