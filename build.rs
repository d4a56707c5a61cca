//! Records the git commit for `dexcred --version`. Builds from a source
//! archive without .git get "unknown" (or DEXCRED_GIT_COMMIT, if the
//! packager sets it).
//!
//! The result is passed to rustc as DEXCRED_BUILD_COMMIT, a different name
//! from the input: `cargo run` puts rustc-env variables into the program's
//! environment, and a cargo started from there (the demo) would otherwise
//! see DEXCRED_GIT_COMMIT "changed" and rebuild everything.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DEXCRED_GIT_COMMIT");
    // Watch HEAD and the branch it names (not all of refs/heads, which
    // other worktrees' commits touch). In a git worktree `.git` is a file,
    // so ask git where they are; watch only paths that exist (a missing one
    // would rerun this script on every build).
    if let (Some(git_dir), Some(common)) = (
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ) {
        let head = std::path::Path::new(&git_dir).join("HEAD");
        let branch = std::fs::read_to_string(&head).ok().and_then(|h| {
            h.trim()
                .strip_prefix("ref: ")
                .map(|r| std::path::Path::new(&common).join(r))
        });
        let packed = std::path::Path::new(&common).join("packed-refs");
        for path in [Some(head), branch, Some(packed)].into_iter().flatten() {
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    let commit = std::env::var("DEXCRED_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=DEXCRED_BUILD_COMMIT={commit}");
}

/// git's one-line answer, if git ran and answered.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}
