//! Serves the Engine's metrics to Prometheus: a tiny HTTP/1.1 server on `127.0.0.1:9091` (std
//! only, loopback only) answering `GET /metrics` with [`aura::prometheus::render`], while a
//! background thread keeps reading a temporary file through the engine so the numbers move.
//!
//! ```text
//! cargo run -p aura-std --example prometheus_http                 # serve for 10 s
//! cargo run -p aura-std --example prometheus_http -- --seconds 60
//! curl -s http://127.0.0.1:9091/metrics
//! cargo run -p aura-std --example prometheus_http -- --once       # fetch once, print, exit
//! ```
//!
//! Options: `--seconds N` (run time, default 10), `--port P` (default 9091; 0 = any free port),
//! `--once` (fetch its own endpoint once over loopback, print the body, exit; for scripts).
//!
//! A demo, not a production server: one connection at a time, `Connection: close`, a bounded
//! request size and read timeout. In an application, call `render` from the HTTP stack it
//! already runs.

use aura_std as aura;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use aura::{Engine, Options, RingSelect};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Largest request head accepted (request line + headers).
const MAX_REQUEST: usize = 8 * 1024;
/// How long one connection may take to send its request.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// The reader's file and read size.
const FILE_SIZE: usize = 1 << 20;
const CHUNK: usize = 16 * 1024;

struct Args {
    seconds: u64,
    port: u16,
    once: bool,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        seconds: 10,
        port: 9091,
        once: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a value")?;
                args.seconds = v.parse().map_err(|e| format!("--seconds {v}: {e}"))?;
            }
            "--port" => {
                let v = it.next().ok_or("--port needs a value")?;
                args.port = v.parse().map_err(|e| format!("--port {v}: {e}"))?;
            }
            "--once" => args.once = true,
            "-h" | "--help" => {
                println!("usage: prometheus_http [--seconds N] [--port P] [--once]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    Ok(args)
}

/// Reads a temporary file in `CHUNK`s through the engine, round and round, until `stop`.
fn reader(engine: Engine, stop: Arc<AtomicBool>) -> Result<(), BoxError> {
    let path = std::env::temp_dir().join(format!("aura-prometheus-{}.dat", std::process::id()));
    let data: Vec<u8> = (0..FILE_SIZE).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data)?;
    let file = std::fs::File::open(&path);
    // The name is not needed once open: nothing is left behind, even on a panic below.
    std::fs::remove_file(&path)?;
    let file = file?;
    let mut offset = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // A small burst, then wait for it: the gate and the histogram see real traffic.
        for _ in 0..8 {
            let buf = engine.allocate_buffer(CHUNK)?;
            engine.read_owned(file.as_raw_fd(), buf, offset, |res, _buf| {
                if let Err(e) = res {
                    eprintln!("read failed: {e}");
                }
            })?;
            offset = (offset + CHUNK as u64) % FILE_SIZE as u64;
        }
        engine.drain(5_000)?;
        thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Answers one connection: `GET /metrics` gets the metrics, anything else a short error.
fn handle(mut stream: TcpStream, engine: &Engine) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            );
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(()); // closed before a full request
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => {
            let body = aura::prometheus::render(engine);
            respond(&mut stream, "200 OK", aura::prometheus::CONTENT_TYPE, &body)
        }
        ("GET", "/") => respond(
            &mut stream,
            "200 OK",
            "text/plain; charset=utf-8",
            "aura metrics: GET /metrics\n",
        ),
        ("GET", _) => respond(&mut stream, "404 Not Found", "text/plain", "not found\n"),
        _ => respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n",
        ),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

/// Accepts connections until `deadline` or `stop`, one at a time.
fn serve(listener: TcpListener, engine: Engine, deadline: Instant, stop: Arc<AtomicBool>) {
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = handle(stream, &engine) {
                    eprintln!("{peer}: {e}");
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                eprintln!("accept: {e}");
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// One `GET /metrics` over loopback; returns the body of a 200 response.
fn fetch(addr: SocketAddr) -> Result<String, BoxError> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("response without a header end")?;
    let status = head.lines().next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("unexpected status: {status}").into());
    }
    let content_type = format!("content-type: {}", aura::prometheus::CONTENT_TYPE);
    if !head.lines().any(|l| l.eq_ignore_ascii_case(&content_type)) {
        return Err(format!("unexpected headers:\n{head}").into());
    }
    Ok(body.to_string())
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    // Two rings, taken in turn, so both show traffic.
    let engine = Engine::with_options(
        Options::new()
            .ring_count(2)
            .ring_select(RingSelect::RoundRobin),
    )?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, args.port))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let run_for = Duration::from_secs(args.seconds);
    let deadline = Instant::now() + run_for;
    // With --once the server outlives the fetch (which the time-outs bound) whatever N is.
    let server_deadline = if args.once {
        deadline + 4 * IO_TIMEOUT
    } else {
        deadline
    };
    let stop = Arc::new(AtomicBool::new(false));

    let io = {
        let (engine, stop) = (engine.clone(), stop.clone());
        thread::spawn(move || reader(engine, stop))
    };
    let server = {
        let (engine, stop) = (engine.clone(), stop.clone());
        thread::spawn(move || serve(listener, engine, server_deadline, stop))
    };

    let result = if args.once {
        // Let the reader complete a little I/O first (at most half the run time).
        let ready_by = Instant::now() + run_for / 2;
        while engine.stats().ops_completed < 64 && Instant::now() < ready_by {
            thread::sleep(Duration::from_millis(10));
        }
        fetch(addr).map(|body| print!("{body}"))
    } else {
        eprintln!(
            "serving http://{addr}/metrics for {} s (Ctrl-C to quit early)",
            args.seconds
        );
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    };

    stop.store(true, Ordering::Relaxed);
    server.join().map_err(|_| "server thread panicked")?;
    io.join().map_err(|_| "reader thread panicked")??;
    result
}
