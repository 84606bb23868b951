//! The C and C++ API, tested from C and C++: `libaura` built by the Makefile, `aura.h` and
//! `aura.hpp` compiled by gcc / g++ with `-Wall -Wextra -Werror`, programs linked statically and
//! dynamically and run against real temporary files.
//!
//! - `tests/c/*.c`: every exported function and bad argument (return value and errno), the
//!   header's struct layouts (`_Static_assert`), both call shapes, a 4-thread stress test.
//!   Built once as C11 (static `libaura.a`) and once as C++17 (`g++ -x c++`, shared `libaura.so`).
//! - `tests/c/*.cpp`: the C++20 binding (`aura.hpp`), shared library.
//! - `examples/c`, `examples/cpp`: every example, run with temp files, output checked; the
//!   seed's quick starts are built verbatim.
//! - the C suite once under AddressSanitizer (LeakSanitizer must report nothing) and once under
//!   valgrind (`--error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect`);
//! - `make install DESTDIR=… PREFIX=/usr`, then the seed's link line and `pkg-config`.
//!
//! The library is built once per test process with `make -C <repo> lib`, into its own build
//! directory (`target/capi-build`) and the Makefile's own cargo target dir, so neither an outer
//! `cargo test` nor someone else's `make` in `build/` gets in the way. A missing tool (gcc, g++,
//! valgrind, pkg-config) or a program exiting 77 (io_uring unavailable) is reported through
//! [`aura_tests::skip`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use aura_tests::{pattern, skip, temp_path, tempfile_with, TempPath};

/// The repository root (the workspace).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where this file's binaries go.
fn work_dir(sub: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("capi")
        .join(sub);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
    d
}

/// Whether `tool --version` runs.
fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// stdout and stderr of a finished process, for failure messages.
fn describe(o: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The built library: its directory and the header directory.
struct Lib {
    /// `<build>/lib`: libaura.a, libaura.so*, pkgconfig/.
    libdir: PathBuf,
    /// `aura-capi/include`.
    include: PathBuf,
}

/// Builds the library once (`make -C <repo> lib BUILD_DIR=target/capi-build`).
fn lib() -> &'static Lib {
    static LIB: OnceLock<Lib> = OnceLock::new();
    LIB.get_or_init(|| {
        let root = repo();
        let build = root.join("target").join("capi-build");
        let out = Command::new("make")
            .arg("-C")
            .arg(&root)
            .arg("lib")
            .arg(format!("BUILD_DIR={}", build.display()))
            // The outer cargo's target dir is locked while this test runs: the Makefile uses
            // its own (target/make).
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .expect("running make (is make installed?)");
        assert!(out.status.success(), "make lib failed\n{}", describe(&out));
        let libdir = build.join("lib");
        for f in [
            "libaura.a",
            "libaura.so",
            "libaura.so.0",
            "libaura.so.0.6.0",
        ] {
            assert!(libdir.join(f).exists(), "make lib did not produce {f}");
        }
        Lib {
            libdir,
            include: root.join("aura-capi").join("include"),
        }
    })
}

/// How a program is linked.
#[derive(Clone, Copy, Debug)]
enum Link {
    /// `libaura.a` plus what Rust's std needs.
    Static,
    /// `-laura` with an rpath to the build directory.
    Shared,
}

/// One compiler configuration.
struct Compiler {
    /// `gcc` or `g++`.
    cc: &'static str,
    /// Language and warning flags.
    flags: Vec<String>,
    link: Link,
}

impl Compiler {
    fn c11(link: Link) -> Self {
        Self::new("gcc", &["-std=c11", "-O1", "-g"], link)
    }
    fn cxx17_from_c(link: Link) -> Self {
        Self::new("g++", &["-x", "c++", "-std=c++17", "-O1", "-g"], link)
    }
    fn cxx20(link: Link) -> Self {
        Self::new("g++", &["-std=c++20", "-O1", "-g"], link)
    }
    fn new(cc: &'static str, flags: &[&str], link: Link) -> Self {
        let mut all: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        all.extend(["-Wall", "-Wextra", "-Werror"].map(String::from));
        Compiler {
            cc,
            flags: all,
            link,
        }
    }
    fn with(mut self, extra: &[&str]) -> Self {
        self.flags.extend(extra.iter().map(|s| s.to_string()));
        self
    }

    /// Compiles and links `src` into `out`; Err carries the compiler's output.
    fn build(&self, src: &Path, out: &Path) -> Result<(), String> {
        let lib = lib();
        let mut cmd = Command::new(self.cc);
        cmd.args(&self.flags)
            .arg("-I")
            .arg(&lib.include)
            .arg(src)
            // `-x c++` applies to every later input: switch back before the libraries.
            .args(["-x", "none"])
            .arg("-o")
            .arg(out);
        match self.link {
            Link::Static => {
                cmd.arg(lib.libdir.join("libaura.a"))
                    .args(["-lpthread", "-ldl", "-lm", "-lrt"]);
            }
            Link::Shared => {
                cmd.arg(format!("-L{}", lib.libdir.display()))
                    .args(["-laura", "-lpthread", "-lm"])
                    .arg(format!("-Wl,-rpath,{}", lib.libdir.display()));
            }
        }
        let o = cmd
            .output()
            .map_err(|e| format!("running {}: {e}", self.cc))?;
        if o.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} {} failed:\n{}",
                self.cc,
                src.display(),
                describe(&o)
            ))
        }
    }
}

/// Runs `cmd` (with a time limit through timeout(1)).
fn run_cmd(prefix: &[&str], bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("300").args(prefix).arg(bin).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
}

/// The files of `dir` ending in `ext`, sorted.
fn sources(dir: &str, ext: &str) -> Vec<PathBuf> {
    let d = repo().join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("reading {}: {e}", d.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    v.sort();
    v
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .and_then(|s| s.to_str())
        .expect("utf-8 file name")
        .to_string()
}

/// Whether gcc and g++ are here; if not, reports the skip.
fn compilers_present(test: &str) -> bool {
    for tool in ["gcc", "g++", "make"] {
        if !have(tool) {
            skip(test, &format!("{tool} not installed"));
            return false;
        }
    }
    true
}

/// What a run of the C suite found.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
    skipped: Vec<String>,
    passed: Vec<String>,
}

impl Report {
    /// Records program `name`'s result: exit 0 with `must_print` on stdout passes, 77 skips.
    fn record(&mut self, name: &str, o: &Output, must_print: &[&str]) {
        let stdout = String::from_utf8_lossy(&o.stdout);
        match o.status.code() {
            Some(0) => {
                let missing: Vec<&str> = must_print
                    .iter()
                    .copied()
                    .filter(|s| !stdout.contains(s))
                    .collect();
                if missing.is_empty() {
                    self.passed.push(name.to_string());
                } else {
                    self.failures.push(format!(
                        "{name}: exit 0 but its output lacks {missing:?}\n{}",
                        describe(o)
                    ));
                }
            }
            Some(77) => self.skipped.push(name.to_string()),
            _ => self
                .failures
                .push(format!("{name} failed\n{}", describe(o))),
        }
    }

    /// Panics with every failure; reports skips.
    fn finish(self, test: &str) {
        for s in &self.skipped {
            skip(test, &format!("{s} exited 77 (io_uring unavailable)"));
        }
        assert!(
            self.failures.is_empty(),
            "{} of {} programs failed:\n\n{}",
            self.failures.len(),
            self.failures.len() + self.passed.len() + self.skipped.len(),
            self.failures.join("\n\n")
        );
        assert!(
            !self.passed.is_empty() || !self.skipped.is_empty(),
            "{test}: no program ran"
        );
    }
}

/// Builds every `tests/c/*.<ext>` with `compiler` into `work_dir(sub)` and runs it, with
/// `prefix` (a tool like valgrind) and `env`. Each must print "checks passed".
fn run_suite(
    test: &str,
    ext: &str,
    compiler: &Compiler,
    sub: &str,
    prefix: &[&str],
    env: &[(&str, &str)],
) {
    let dir = work_dir(sub);
    let mut report = Report::default();
    for src in sources("tests/c", ext) {
        let name = stem(&src);
        let bin = dir.join(&name);
        if let Err(e) = compiler.build(&src, &bin) {
            report.failures.push(e);
            continue;
        }
        let o = run_cmd(prefix, &bin, &[], env);
        report.record(&name, &o, &["checks passed"]);
    }
    report.finish(test);
}

#[test]
fn c_suite_as_c11_linked_statically() {
    if !compilers_present("c_suite_as_c11_linked_statically") {
        return;
    }
    run_suite(
        "c_suite_as_c11_linked_statically",
        "c",
        &Compiler::c11(Link::Static),
        "c11-static",
        &[],
        &[],
    );
}

#[test]
fn c_suite_as_cxx17_linked_dynamically() {
    if !compilers_present("c_suite_as_cxx17_linked_dynamically") {
        return;
    }
    run_suite(
        "c_suite_as_cxx17_linked_dynamically",
        "c",
        &Compiler::cxx17_from_c(Link::Shared),
        "cxx17-shared",
        &[],
        &[],
    );
}

#[test]
fn cpp_binding_tests() {
    if !compilers_present("cpp_binding_tests") {
        return;
    }
    run_suite(
        "cpp_binding_tests",
        "cpp",
        &Compiler::cxx20(Link::Shared),
        "cxx20",
        &[],
        &[],
    );
}

/// The header alone: `_Static_assert`s of every struct (test_abi.c, compile only, as C11 and
/// C++17) and aura.hpp by itself with extra warnings.
#[test]
fn headers_compile_with_layout_asserts() {
    if !compilers_present("headers_compile_with_layout_asserts") {
        return;
    }
    let inc = repo().join("aura-capi").join("include");
    let abi = repo().join("tests").join("c").join("test_abi.c");
    let hpp_only = work_dir("headers").join("hpp_only.cpp");
    std::fs::write(&hpp_only, "#include <aura.hpp>\nint main() { return 0; }\n").unwrap();
    let cases: [(&str, Vec<&str>, &Path); 4] = [
        ("gcc", vec!["-std=c11"], &abi),
        ("g++", vec!["-x", "c++", "-std=c++17"], &abi),
        ("gcc", vec!["-std=gnu11", "-Wpedantic"], &abi),
        (
            "g++",
            vec![
                "-std=c++20",
                "-Wpedantic",
                "-Wconversion",
                "-Wsign-conversion",
            ],
            &hpp_only,
        ),
    ];
    let mut failures = Vec::new();
    for (cc, flags, src) in cases {
        let o = Command::new(cc)
            .args(&flags)
            .args(["-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-I"])
            .arg(&inc)
            .arg(src)
            .output()
            .expect("running the compiler");
        if !o.status.success() {
            failures.push(format!(
                "{cc} {flags:?} {}:\n{}",
                src.display(),
                describe(&o)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Temporary inputs for the examples.
struct ExampleFiles {
    /// 1 MiB + 123 bytes of pattern.
    big: aura_tests::TempFile,
    /// 3 small files of different sizes.
    small: Vec<aura_tests::TempFile>,
    /// An output path (removed at the end).
    out: TempPath,
    /// A scratch directory.
    dir: PathBuf,
}

impl ExampleFiles {
    fn new(tag: &str) -> Self {
        let dir = temp_path(&format!("{tag}-dir"));
        std::fs::create_dir_all(&dir).unwrap();
        ExampleFiles {
            big: tempfile_with(&format!("{tag}-big"), &pattern(11, (1 << 20) + 123)),
            small: (0..3)
                .map(|i| {
                    tempfile_with(
                        &format!("{tag}-small{i}"),
                        &pattern(i, 1000 * (i as usize + 1) + 7),
                    )
                })
                .collect(),
            out: TempPath(temp_path(&format!("{tag}-out"))),
            dir,
        }
    }
}

impl Drop for ExampleFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One example run: its arguments and what its stdout must contain.
struct Case {
    args: Vec<String>,
    must_print: Vec<String>,
    /// After the run: compare `out` with `big`.
    copy_check: bool,
}

fn s(x: &Path) -> String {
    x.display().to_string()
}

/// The runs of every example, by name (shared by the C and C++ versions).
fn example_cases(f: &ExampleFiles) -> BTreeMap<&'static str, Case> {
    let big = s(f.big.path());
    let out = s(&f.out.0);
    let big_len = (1u64 << 20) + 123;
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let mut m = BTreeMap::new();
    let case = |args: Vec<String>, must: Vec<String>| Case {
        args,
        must_print: must,
        copy_check: false,
    };
    m.insert(
        "simple_read",
        case(
            vec![s(f.small[0].path())],
            vec![format!("read 1007 bytes from {}", s(f.small[0].path()))],
        ),
    );
    let mut bulk_must: Vec<String> = f
        .small
        .iter()
        .map(|t| {
            format!(
                "{} {}",
                std::fs::metadata(t.path()).unwrap().len(),
                s(t.path())
            )
        })
        .collect();
    bulk_must.push(format!("{} {}", big_len, big));
    bulk_must.push(format!(
        "total {} bytes in 4 files",
        big_len + 1007 + 2007 + 3007
    ));
    let mut bulk_args: Vec<String> = f.small.iter().map(|t| s(t.path())).collect();
    bulk_args.push(big.clone());
    m.insert("bulk_reader", case(bulk_args, bulk_must));
    m.insert(
        "file_copy",
        Case {
            args: vec![big.clone(), out.clone()],
            must_print: vec![format!("copied {big_len} bytes")],
            copy_check: true,
        },
    );
    m.insert(
        "coroutine_copy",
        Case {
            args: vec![big.clone(), out.clone()],
            must_print: vec![format!("copied {big_len} bytes")],
            copy_check: true,
        },
    );
    m.insert(
        "vectored_io",
        case(vec![out.clone()], vec!["identical".into()]),
    );
    m.insert(
        "write_modes",
        case(
            vec![s(&f.dir)],
            vec![
                "buffered: 262144 bytes written".into(),
                "datasync: 262144 bytes written".into(),
                "direct: ".into(),
            ],
        ),
    );
    m.insert(
        "linked_write",
        case(
            vec![out.clone()],
            vec![
                "write: 4096".into(),
                "fsync: 0".into(),
                "read back: 4096".into(),
                "chain complete: data on disk and identical".into(),
            ],
        ),
    );
    m.insert(
        "registered_buffers",
        case(vec![out.clone()], vec!["identical".into(), "ENOENT".into()]),
    );
    m.insert(
        "cancel",
        case(
            vec![],
            vec![
                format!("callback result -{}", 125),
                "second cancel: ".into(),
            ],
        ),
    );
    m.insert(
        "custom_config",
        case(
            vec![big.clone()],
            vec![
                "engine: 2000 ops".into(),
                "rings: 2".into(),
                "ring 1: ".into(),
            ],
        ),
    );
    m.insert(
        "log_handler",
        case(
            vec![],
            vec![
                "application started, aura 0.6.0".into(),
                "handler got".into(),
            ],
        ),
    );
    m.insert(
        "epoll_loop",
        case(
            vec![big.clone()],
            vec![format!("read {big_len} of {big_len} bytes")],
        ),
    );
    m.insert(
        "quickstart",
        case(
            vec![],
            vec![
                format!("Read {} bytes", hostname.len()),
                format!("Content: {}", hostname.trim_end()),
            ],
        ),
    );
    m
}

/// Builds and runs every example of `dir` (`c` or `cpp`).
fn run_examples(test: &str, dir: &str, ext: &str, compiler: &dyn Fn(&Path) -> Compiler) {
    let f = ExampleFiles::new(dir);
    let cases = example_cases(&f);
    let bins = work_dir(&format!("examples-{dir}"));
    let mut report = Report::default();
    for src in sources(&format!("examples/{dir}"), ext) {
        let name = stem(&src);
        if name == "quickstart" && !Path::new("/etc/hostname").exists() {
            skip(
                test,
                "quickstart reads /etc/hostname, which this machine lacks",
            );
            continue;
        }
        let Some(case) = cases.get(name.as_str()) else {
            report.failures.push(format!(
                "{name}: an example without a test case in tests/capi.rs"
            ));
            continue;
        };
        let bin = bins.join(&name);
        if let Err(e) = compiler(&src).build(&src, &bin) {
            report.failures.push(e);
            continue;
        }
        let _ = std::fs::remove_file(&f.out.0);
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let o = run_cmd(&[], &bin, &args, &[]);
        let must: Vec<&str> = case.must_print.iter().map(String::as_str).collect();
        report.record(&name, &o, &must);
        if case.copy_check && o.status.success() {
            let a = std::fs::read(f.big.path()).unwrap();
            let b = std::fs::read(&f.out.0).unwrap_or_default();
            if a != b {
                report
                    .failures
                    .push(format!("{name}: the copy differs from its source"));
            }
        }
    }
    report.finish(test);
}

#[test]
fn c_examples() {
    if !compilers_present("c_examples") {
        return;
    }
    run_examples("c_examples", "c", "c", &|src| {
        if stem(src) == "quickstart" {
            // The seed's program, verbatim: it calls close() without <unistd.h> and ignores
            // aura_wait's result, so it only builds without -Werror (see seed_quick_start_*).
            Compiler {
                cc: "gcc",
                flags: vec![],
                link: Link::Shared,
            }
        } else {
            Compiler::c11(Link::Shared)
        }
    });
}

#[test]
fn cpp_examples() {
    if !compilers_present("cpp_examples") {
        return;
    }
    run_examples("cpp_examples", "cpp", "cpp", &|_| {
        Compiler::cxx20(Link::Static)
    });
}

/// The fenced block after `heading` in the seed README, if the seed is beside the repository.
fn seed_block(heading: &str, lang: &str) -> Option<String> {
    let readme = repo().parent()?.join("shared/seed/AuraIO-README.md");
    let text = std::fs::read_to_string(readme).ok()?;
    let rest = &text[text.find(heading)?..];
    let start = rest.find(&format!("```{lang}\n"))? + lang.len() + 4;
    let end = rest[start..].find("```")?;
    Some(rest[start..start + end].to_string())
}

/// The seed's quick starts are in examples/ verbatim.
#[test]
fn seed_quick_starts_are_verbatim() {
    let pairs = [
        ("### C Example", "c", "examples/c/quickstart.c"),
        ("### C++ Example", "cpp", "examples/cpp/quickstart.cpp"),
        (
            "**With C++20 coroutines:**",
            "cpp",
            "examples/cpp/coroutine_copy.cpp",
        ),
    ];
    for (heading, lang, file) in pairs {
        let Some(block) = seed_block(heading, lang) else {
            skip(
                "seed_quick_starts_are_verbatim",
                "shared/seed/AuraIO-README.md is not beside the repository",
            );
            return;
        };
        let ours = std::fs::read_to_string(repo().join(file)).unwrap();
        assert!(
            ours.contains(&block),
            "{file} does not contain the seed's {heading} block verbatim:\n{block}"
        );
    }
}

/// `make install DESTDIR=… PREFIX=/usr`, then the seed's link line and pkg-config, both run.
#[test]
fn make_install_then_seed_link_line_and_pkg_config() {
    let test = "make_install_then_seed_link_line_and_pkg_config";
    if !compilers_present(test) {
        return;
    }
    if !Path::new("/etc/hostname").exists() {
        skip(
            test,
            "the quick start reads /etc/hostname, which this machine lacks",
        );
        return;
    }
    let lib = lib();
    let build = lib.libdir.parent().unwrap().to_path_buf();
    let dest = temp_path("destdir");
    let _cleanup = RemoveDir(dest.clone());
    let o = Command::new("make")
        .arg("-C")
        .arg(repo())
        .arg("install")
        .arg(format!("BUILD_DIR={}", build.display()))
        .arg(format!("DESTDIR={}", dest.display()))
        .arg("PREFIX=/usr")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("running make install");
    assert!(o.status.success(), "make install failed\n{}", describe(&o));
    let usr = dest.join("usr");
    for f in [
        "include/aura.h",
        "include/aura.hpp",
        "lib/libaura.a",
        "lib/libaura.so",
        "lib/libaura.so.0",
        "lib/libaura.so.0.6.0",
        "lib/pkgconfig/libaura.pc",
    ] {
        assert!(usr.join(f).exists(), "make install did not install {f}");
    }
    let quick = repo().join("examples/c/quickstart.c");
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap();
    let libdir = usr.join("lib");
    let check_run = |bin: &Path, how: &str| {
        let o = Command::new(bin)
            .env("LD_LIBRARY_PATH", &libdir)
            .output()
            .expect("running the quick start");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success()
                && out.contains(&format!("Read {} bytes", hostname.len()))
                && out.contains(&format!("Content: {}", hostname.trim_end())),
            "quick start built with {how} misbehaved\n{}",
            describe(&o)
        );
    };

    // The seed's line: gcc myapp.c -laura -lpthread (headers and libs found in the DESTDIR).
    let bin = work_dir("install").join("myapp");
    let o = Command::new("gcc")
        .arg(&quick)
        .arg(format!("-I{}", usr.join("include").display()))
        .arg(format!("-L{}", libdir.display()))
        .args(["-laura", "-lpthread", "-o"])
        .arg(&bin)
        .output()
        .expect("gcc");
    assert!(
        o.status.success(),
        "gcc myapp.c -laura -lpthread failed\n{}",
        describe(&o)
    );
    check_run(&bin, "gcc myapp.c -laura -lpthread");
    let o = Command::new("readelf").arg("-d").arg(&bin).output();
    if let Ok(o) = o {
        let dynamic = String::from_utf8_lossy(&o.stdout);
        assert!(
            dynamic.contains("libaura.so.0") && !dynamic.contains("liburing"),
            "the quick start should need libaura.so.0 (its soname) and no liburing:\n{dynamic}"
        );
    }

    if !have("pkg-config") {
        skip(
            test,
            "pkg-config not installed: the pkg-config half did not run",
        );
        return;
    }
    let pc = Command::new("pkg-config")
        .args(["--cflags", "--libs", "libaura"])
        .env("PKG_CONFIG_PATH", libdir.join("pkgconfig"))
        .env("PKG_CONFIG_SYSROOT_DIR", &dest)
        .output()
        .expect("pkg-config");
    assert!(
        pc.status.success(),
        "pkg-config --cflags --libs libaura failed\n{}",
        describe(&pc)
    );
    let flags = String::from_utf8_lossy(&pc.stdout).to_string();
    assert!(flags.contains("-laura"), "pkg-config gave {flags:?}");
    let bin = work_dir("install").join("myapp-pc");
    let o = Command::new("gcc")
        .arg(&quick)
        .arg("-o")
        .arg(&bin)
        .args(flags.split_whitespace())
        .output()
        .expect("gcc");
    assert!(
        o.status.success(),
        "gcc with pkg-config flags {flags:?} failed\n{}",
        describe(&o)
    );
    check_run(&bin, &format!("pkg-config ({flags})"));
}

/// Removes a directory tree when dropped.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The reads per thread of test_stress under a sanitizer or valgrind (100 000 without).
const STRESS_OPS_INSTRUMENTED: &str = "20000";

/// The whole C suite under AddressSanitizer + LeakSanitizer (shared library; the Rust code is
/// not instrumented, but its heap goes through the intercepted malloc, so its leaks count).
#[test]
fn c_suite_under_address_sanitizer() {
    let test = "c_suite_under_address_sanitizer";
    if !compilers_present(test) {
        return;
    }
    let c = Compiler::c11(Link::Shared).with(&["-fsanitize=address", "-fno-omit-frame-pointer"]);
    // Probe: can this machine run an ASan binary at all (LeakSanitizer needs ptrace)?
    let probe_src = work_dir("asan").join("probe.c");
    std::fs::write(&probe_src, "#include <stdlib.h>\nint main(void) { void *volatile p = malloc(7); free(p); return 0; }\n").unwrap();
    let probe = work_dir("asan").join("probe");
    let o = Command::new("gcc")
        .args(["-fsanitize=address", "-o"])
        .arg(&probe)
        .arg(&probe_src)
        .output()
        .expect("gcc");
    if !o.status.success() {
        skip(
            test,
            "gcc cannot link -fsanitize=address here (libasan missing)",
        );
        return;
    }
    let o = Command::new(&probe).output().expect("probe");
    if !o.status.success() {
        skip(
            test,
            &format!("ASan binaries cannot run here: {}", describe(&o)),
        );
        return;
    }
    run_suite(
        test,
        "c",
        &c,
        "asan",
        &[],
        &[
            ("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1:exitcode=23"),
            ("AURA_STRESS_OPS", STRESS_OPS_INSTRUMENTED),
        ],
    );
}

/// The whole C suite under valgrind: zero errors, zero definite or indirect leaks.
#[test]
fn c_suite_under_valgrind() {
    let test = "c_suite_under_valgrind";
    if !compilers_present(test) {
        return;
    }
    if !have("valgrind") {
        eprintln!("skipped: valgrind not installed");
        skip(test, "valgrind not installed");
        return;
    }
    run_suite(
        test,
        "c",
        &Compiler::c11(Link::Shared),
        "valgrind",
        &[
            "valgrind",
            "-q",
            "--error-exitcode=1",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
        ],
        &[("AURA_STRESS_OPS", "2000")],
    );
}

/// Lists what each test program covers (a map from function to programs), so a function no
/// program calls fails this test.
#[test]
fn every_exported_function_is_called_by_a_c_test() {
    let header = std::fs::read_to_string(repo().join("aura-capi/include/aura.h")).unwrap();
    let mut exported = Vec::new();
    for line in header.lines().filter(|l| l.starts_with("AURA_API")) {
        let name = line
            .split('(')
            .next()
            .and_then(|head| head.split([' ', '*']).next_back())
            .unwrap_or_default()
            .to_string();
        exported.push(name);
    }
    exported.extend(["aura_buf", "aura_buf_fixed", "aura_buf_fixed_idx"].map(String::from));
    assert_eq!(
        exported.len(),
        55 + 3,
        "aura.h: 55 exports + 3 inline helpers, got {exported:?}"
    );
    let mut programs = String::new();
    let mut files = sources("tests/c", "c");
    files.extend(sources("tests/c", "h"));
    for src in files {
        // Only calls count, not the address table of test_abi.c.
        let text = std::fs::read_to_string(&src).unwrap();
        let calls: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('&') && !l.contains(", &aura_"))
            .collect::<Vec<_>>()
            .join("\n");
        let _ = writeln!(programs, "{calls}");
    }
    let missing: Vec<&String> = exported
        .iter()
        .filter(|f| !programs.contains(&format!("{f}(")))
        .collect();
    assert!(missing.is_empty(), "no C test calls {missing:?}");
}
