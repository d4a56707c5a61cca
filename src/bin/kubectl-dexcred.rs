//! `kubectl-dexcred` for source installs: runs the `dexcred` next to it (see shim.rs).

#[path = "../shim.rs"]
mod shim;

fn main() {
    shim::exec_dexcred("kubectl-dexcred")
}
