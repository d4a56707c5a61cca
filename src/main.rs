//! The `dexcred` binary (also installed as `git-credential-dexcred` and
//! `kubectl-dexcred`). Everything happens in the library; see `lib.rs`.

fn main() {
    std::process::exit(dexcred::main_with_args(std::env::args_os().collect()));
}
