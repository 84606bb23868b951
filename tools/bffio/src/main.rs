//! BFFIO: fio's command line and job files, with aura as the I/O engine and a queue depth the
//! engine finds by itself. See the `bffio` library for the pieces.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(bffio::run_main(&args));
}
