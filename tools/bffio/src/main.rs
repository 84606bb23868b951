//! BFFIO: an fio-compatible benchmark whose engine is aura. Not built yet (see the README).

fn main() {
    eprintln!("bffio: not implemented yet; see the README for what aura offers today");
    std::process::exit(2);
}
