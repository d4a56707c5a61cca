//! The `git-credential-dexcred` and `kubectl-dexcred` programs of a source
//! install (`cargo install --path .`), which can only install binaries,
//! not links. Each execs the `dexcred` installed next to it under its own
//! name, which dexcred maps to `git` or `kubectl` (`cli::normalize_args`),
//! exactly as the links of the packages do.
//!
//! Why a tiny exec and not a second copy of dexcred: a full binary per name
//! would triple the install's size and its release link time (LTO), for no
//! behaviour the links do not already have; the exec costs one `execve`.
//! This file uses only std, so each program stays a few hundred KiB.

use std::os::unix::process::CommandExt;
use std::process::Command;

pub fn exec_dexcred(name: &str) -> ! {
    let dexcred = std::env::current_exe()
        .map(|exe| exe.with_file_name("dexcred"))
        .unwrap_or_else(|_| "dexcred".into());
    let e = Command::new(&dexcred)
        .arg0(name)
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!(
        "dexcred: cannot run {}: {e} ({name} runs the dexcred installed next to it; reinstall dexcred)",
        dexcred.display()
    );
    std::process::exit(5)
}
