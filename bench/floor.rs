//! The floor for the cache-hit benchmark: the least a credential plugin can
//! do — start, read a small file, print it. std only, built by bench/run
//! with `rustc -O` in the same run as dexcred.

use std::io::Write;

fn main() {
    let path = std::env::args_os().nth(1).expect("usage: floor FILE");
    let bytes = std::fs::read(path).expect("read the file");
    std::io::stdout().write_all(&bytes).expect("write stdout");
}
