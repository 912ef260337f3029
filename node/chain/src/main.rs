//! magnetd — the MAGNET validator binary (being built, issue 2).
fn main() {
    println!("magnetd {}", env!("CARGO_PKG_VERSION"));
}
