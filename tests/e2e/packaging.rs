//! Packaging, built and checked the way CI and users use it: the release
//! archive from the Makefile, `packaging/install.sh` into a prefix, the .deb
//! from `packaging/deb/build.sh` unpacked into a scratch root, the krew
//! manifest parsed by real kubectl and "installed" as krew does, the
//! Homebrew formula and the RPM spec checked against the archives they
//! package.
//!
//! The binary packaged is this test run's dexcred, stripped as the release
//! profile strips it (a release build would take minutes here).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const LINUX_TARGET: &str = "x86_64-unknown-linux-gnu";
const ALL_TARGETS: [&str; 4] = [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
];
const RELEASE_URL: &str = "https://releases.example.com/dexcred/v{version}/{archive}";
const HOMEPAGE: &str = "https://dexcred.example.com";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the test binary without debug info, like a release build.
fn stripped_binary(dir: &Path) -> PathBuf {
    let out = dir.join("dexcred");
    let status = run(Command::new("strip").arg("-o").arg(&out).arg(dexcred_bin()));
    ok(&status);
    out
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("read file");
    format!("{:x}", Sha256::digest(bytes))
}

fn archive_name(target: &str) -> String {
    format!("dexcred-{VERSION}-{target}")
}

/// `make archive` for `target` into `dist`, packaging `bin`.
fn make_archive(bin: &Path, target: &str, dist: &Path) -> PathBuf {
    let out = run(Command::new("make")
        .current_dir(repo())
        .arg("--no-print-directory")
        .arg("archive")
        .arg(format!("BIN={}", bin.display()))
        .arg(format!("TARGET={target}"))
        .arg(format!("DIST={}", dist.display()))
        // Fast compression: same archive format, a fraction of the time.
        .arg("COMPRESS=gzip -1n"));
    ok(&out);
    let archive = dist.join(format!("{}.tar.gz", archive_name(target)));
    assert!(archive.is_file(), "{} missing", archive.display());
    archive
}

fn untar(archive: &Path, into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).expect("mkdir");
    ok(&run(Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(into)));
    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.gz"))
        .expect("archive name");
    into.join(name)
}

/// Paths of every file and link under `root`, relative, sorted.
fn tree(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                out.insert(rel.display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

fn docs() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/ exists")
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    assert!(names.contains(&"README.md".to_string()), "docs/README.md");
    names
}

fn output_of(cmd: &mut Command) -> String {
    ok(&run(cmd))
}

fn dexcred_says(args: &[&str]) -> String {
    output_of(Command::new(dexcred_bin()).args(args))
}

/// A command in an isolated environment whose PATH starts with `bin`
/// (instead of the test's own links).
fn with_path(env: &Env, program: impl AsRef<std::ffi::OsStr>, bin: &Path) -> Command {
    let mut cmd = Command::new(program);
    env.apply(&mut cmd);
    cmd.env(
        "PATH",
        format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
    );
    cmd
}

fn is_link_to(path: &Path, target: &str) -> bool {
    std::fs::read_link(path).is_ok_and(|t| t == Path::new(target))
}

// -------------------------------------------------------- release archive

#[test]
fn release_archive_holds_the_documented_files_and_its_checksum() {
    let env = Env::new();
    let bin = stripped_binary(env.path());
    let dist = env.path().join("dist");
    let archive = make_archive(&bin, LINUX_TARGET, &dist);
    let top = archive_name(LINUX_TARGET);

    let sums = std::fs::read_to_string(dist.join("sha256sums")).expect("sha256sums");
    assert_eq!(
        sums,
        format!("{}  {top}.tar.gz\n", sha256_hex(&archive)),
        "sha256sums lists the archive with its real checksum"
    );

    // Only regular files and directories (krew refuses anything else),
    // owned by root, everything inside one top directory.
    let listing = output_of(Command::new("tar").arg("-tvzf").arg(&archive));
    let mut files = BTreeSet::new();
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (mode, owner, path) = (fields[0], fields[1], fields[fields.len() - 1]);
        assert!(mode.starts_with('-') || mode.starts_with('d'), "{line}");
        assert_eq!(owner, "0/0", "{line}");
        let rel = path
            .strip_prefix(&format!("{top}/"))
            .unwrap_or_else(|| panic!("outside {top}/: {line}"));
        if mode.starts_with('-') {
            let executable = matches!(rel, "dexcred" | "install.sh");
            let expected = if executable {
                "-rwxr-xr-x"
            } else {
                "-rw-r--r--"
            };
            assert_eq!(mode, expected, "{line}");
            files.insert(rel.to_string());
        }
    }
    let mut expected: BTreeSet<String> = [
        "dexcred",
        "install.sh",
        "README.md",
        "completions/dexcred.bash",
        "completions/_dexcred",
        "completions/dexcred.fish",
        "man/dexcred.1",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    expected.extend(docs().into_iter().map(|d| format!("docs/{d}")));
    assert_eq!(files, expected);

    // The generated files are what this very binary generates.
    let unpacked = untar(&archive, &env.path().join("unpacked"));
    for (file, args) in [
        ("completions/dexcred.bash", &["completions", "bash"][..]),
        ("completions/_dexcred", &["completions", "zsh"]),
        ("completions/dexcred.fish", &["completions", "fish"]),
        ("man/dexcred.1", &["man"]),
    ] {
        let shipped = std::fs::read_to_string(unpacked.join(file)).expect("read");
        assert_eq!(shipped, dexcred_says(args), "{file}");
    }
    assert_eq!(
        output_of(Command::new(unpacked.join("dexcred")).arg("--version")),
        dexcred_says(&["--version"])
    );

    // Reproducible: the same inputs give the same bytes.
    let again = make_archive(&bin, LINUX_TARGET, &env.path().join("dist2"));
    assert_eq!(sha256_hex(&again), sha256_hex(&archive));

    // The krew and Homebrew generators refuse to describe platforms whose
    // archive is missing, and print nothing then.
    for script in [
        "packaging/krew/manifest.sh",
        "packaging/homebrew/formula.sh",
    ] {
        let out = run(Command::new(repo().join(script))
            .arg("--dist")
            .arg(&dist)
            .args(["--version", VERSION, "--uri-template", RELEASE_URL])
            .args(["--homepage", HOMEPAGE]));
        assert!(!out.status.success(), "{script}");
        assert!(out.stdout.is_empty(), "{script} printed a partial manifest");
        let err = stderr(&out);
        assert!(
            err.contains("is not listed in") && err.contains("sha256sums"),
            "{err}"
        );
    }
}

// ------------------------------------------------------------- install.sh

#[test]
fn install_sh_installs_into_a_prefix_and_all_three_names_work() {
    let env = Env::new();
    let bin = stripped_binary(env.path());
    let archive = make_archive(&bin, LINUX_TARGET, &env.path().join("dist"));
    let unpacked = untar(&archive, &env.path().join("unpacked"));
    let prefix = env.path().join("prefix");

    let mut install = with_path(&env, "/bin/sh", &env.path().join("nowhere"));
    install
        .arg(unpacked.join("install.sh"))
        .arg("--prefix")
        .arg(&prefix);
    let said = output_of(&mut install);
    assert!(
        said.contains(&format!("Installed dexcred into {}", prefix.display())),
        "{said}"
    );

    let mut expected: BTreeSet<String> = [
        "bin/dexcred",
        "bin/git-credential-dexcred",
        "bin/kubectl-dexcred",
        "share/bash-completion/completions/dexcred",
        "share/zsh/site-functions/_dexcred",
        "share/fish/vendor_completions.d/dexcred.fish",
        "share/man/man1/dexcred.1",
        "share/doc/dexcred/README.md",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    expected.extend(
        docs()
            .into_iter()
            .map(|d| format!("share/doc/dexcred/docs/{d}")),
    );
    assert_eq!(tree(&prefix), expected);
    assert!(is_link_to(
        &prefix.join("bin/git-credential-dexcred"),
        "dexcred"
    ));
    assert!(is_link_to(&prefix.join("bin/kubectl-dexcred"), "dexcred"));

    let bindir = prefix.join("bin");
    let version = dexcred_says(&["--version"]);
    // As dexcred.
    let out = output_of(with_path(&env, bindir.join("dexcred"), &bindir).arg("--version"));
    assert_eq!(out, version);
    // As git's credential helper, found by git on PATH.
    for git in [git_new(), git_old()] {
        let out =
            output_of(with_path(&env, git, &bindir).args(["credential-dexcred", "capability"]));
        assert_eq!(out, "version 0\ncapability authtype\n");
    }
    // As kubectl's plugin, found by kubectl on PATH.
    let out =
        output_of(with_path(&env, kubectl("dispatcher"), &bindir).args(["dexcred", "status"]));
    assert!(out.starts_with("No cache entries in "), "{out}");
    let out = output_of(with_path(&env, bindir.join("kubectl-dexcred"), &bindir).arg("--version"));
    assert_eq!(out, version);

    // Installing again over an installation works, and --destdir stages
    // under another root for packagers.
    output_of(&mut install);
    let stage = env.path().join("stage");
    output_of(
        with_path(&env, "/bin/sh", &bindir)
            .arg(unpacked.join("install.sh"))
            .args(["--prefix", "/usr", "--no-docs", "--destdir"])
            .arg(&stage),
    );
    let staged = tree(&stage.join("usr"));
    assert!(staged.contains("bin/kubectl-dexcred") && staged.contains("share/man/man1/dexcred.1"));
    assert!(
        !staged.iter().any(|p| p.starts_with("share/doc/")),
        "{staged:?}"
    );
}

// --------------------------------------------------------------------- deb

/// The files the [package.metadata.deb] assets describe, read through
/// `cargo metadata` (not through build.sh's own parser): path → mode, or
/// "-> target" for links.
fn deb_assets_from_cargo_metadata() -> Vec<(String, String)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let text = output_of(Command::new(cargo).current_dir(repo()).args([
        "metadata",
        "--no-deps",
        "--offline",
        "--format-version",
        "1",
    ]));
    let metadata: Value = serde_json::from_str(&text).expect("cargo metadata JSON");
    let package = metadata["packages"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "dexcred"))
        .expect("dexcred package");
    let assets = package["metadata"]["deb"]["assets"]
        .as_array()
        .expect("[package.metadata.deb] assets");
    let mut out = Vec::new();
    for asset in assets {
        if let Some(dest) = asset["dest"].as_str() {
            let target = asset["link_name"].as_str().expect("link_name");
            out.push((dest.to_string(), format!("-> {target}")));
            continue;
        }
        let (src, dest, mode) = (
            asset[0].as_str().expect("source"),
            asset[1].as_str().expect("dest"),
            asset[2].as_str().expect("mode"),
        );
        let sources: Vec<String> = if src == "docs/*.md" {
            docs()
        } else {
            assert!(!src.contains('*'), "unexpected glob {src}");
            vec![
                Path::new(src)
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned(),
            ]
        };
        for name in sources {
            let path = match dest.strip_suffix('/') {
                Some(dir) => format!("{dir}/{name}"),
                None => dest.to_string(),
            };
            out.push((path, mode.to_string()));
        }
    }
    out
}

#[test]
fn deb_package_built_from_cargo_metadata_installs_into_a_scratch_root() {
    let env = Env::new();
    let bin = stripped_binary(env.path());
    let out_dir = env.path().join("deb");
    let mut build = Command::new(repo().join("packaging/deb/build.sh"));
    build
        .arg("--binary")
        .arg(&bin)
        .arg("--out")
        .arg(&out_dir)
        .arg("--fast");
    let printed = output_of(&mut build);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no Debian architecture known for {other}"),
    };
    let deb = out_dir.join(format!("dexcred_{VERSION}-1_{arch}.deb"));
    assert_eq!(printed.trim(), deb.display().to_string());

    let field = |name: &str| output_of(Command::new("dpkg-deb").arg("--field").arg(&deb).arg(name));
    assert_eq!(field("Package").trim(), "dexcred");
    assert_eq!(field("Version").trim(), format!("{VERSION}-1"));
    assert_eq!(field("Architecture").trim(), arch);
    assert!(field("Depends").contains("libc6"), "{}", field("Depends"));
    assert!(field("Maintainer").contains('@'));
    assert!(field("Description").contains("kubectl"));

    // The package holds exactly the assets of Cargo.toml, with their modes
    // and links, plus the copyright file Debian requires.
    let listing = output_of(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let mut packaged: Vec<(String, String)> = Vec::new();
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (mode, owner) = (fields[0], fields[1]);
        assert_eq!(owner, "root/root", "{line}");
        let path = fields[5].trim_start_matches("./").to_string();
        match mode.chars().next() {
            Some('d') => {}
            Some('l') => packaged.push((path, format!("-> {}", fields[7]))),
            Some('-') => {
                let octal = match &mode[1..] {
                    "rwxr-xr-x" => "755",
                    "rw-r--r--" => "644",
                    other => panic!("unexpected mode {other} in {line}"),
                };
                packaged.push((path, octal.to_string()));
            }
            _ => panic!("unexpected entry {line}"),
        }
    }
    let mut expected = deb_assets_from_cargo_metadata();
    expected.push(("usr/share/doc/dexcred/copyright".into(), "644".into()));
    packaged.sort();
    expected.sort();
    assert_eq!(packaged, expected);

    // Unpack into a scratch root (the real system is never touched) and use
    // it from there.
    let root = env.path().join("root");
    output_of(Command::new("dpkg").arg("-x").arg(&deb).arg(&root));
    let control = env.path().join("control");
    output_of(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    output_of(
        Command::new("md5sum")
            .arg("--check")
            .arg("--quiet")
            .arg(control.join("md5sums"))
            .current_dir(&root),
    );
    let bindir = root.join("usr/bin");
    let version = output_of(with_path(&env, bindir.join("dexcred"), &bindir).arg("--version"));
    assert_eq!(version, dexcred_says(&["--version"]));
    assert!(version.contains("(commit "), "{version}");
    let capability =
        output_of(with_path(&env, git_new(), &bindir).args(["credential-dexcred", "capability"]));
    assert_eq!(capability, "version 0\ncapability authtype\n");
    let plugin =
        output_of(with_path(&env, kubectl("1.33"), &bindir).args(["dexcred", "--version"]));
    assert_eq!(plugin, version);
    let man = output_of(
        Command::new("gzip")
            .arg("-dc")
            .arg(root.join("usr/share/man/man1/dexcred.1.gz")),
    );
    assert_eq!(man, dexcred_says(&["man"]));
    let copyright =
        std::fs::read_to_string(root.join("usr/share/doc/dexcred/copyright")).expect("copyright");
    assert!(copyright.contains("License: Apache-2.0"), "{copyright}");
}

// ---------------------------------------------- krew manifest, Homebrew formula

/// Archives for the four krew platforms, and their sha256sums.
fn all_archives(env: &Env) -> PathBuf {
    let bin = stripped_binary(env.path());
    let dist = env.path().join("dist");
    for target in ALL_TARGETS {
        make_archive(&bin, target, &dist);
    }
    let sums = std::fs::read_to_string(dist.join("sha256sums")).expect("sha256sums");
    assert_eq!(sums.lines().count(), ALL_TARGETS.len(), "{sums}");
    dist
}

fn make_manifest(target: &str, dist: &Path) -> String {
    let out = run(Command::new("make")
        .current_dir(repo())
        .args(["--no-print-directory", "-s", target])
        .arg(format!("DIST={}", dist.display()))
        .arg(format!("RELEASE_URL={RELEASE_URL}"))
        .arg(format!("HOMEPAGE={HOMEPAGE}")));
    ok(&out);
    let file = match target {
        "krew" => "dexcred.yaml",
        _ => "dexcred.rb",
    };
    std::fs::read_to_string(dist.join(file)).expect("manifest written")
}

fn uri(target: &str) -> String {
    format!(
        "https://releases.example.com/dexcred/v{VERSION}/{}.tar.gz",
        archive_name(target)
    )
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}

#[test]
fn krew_manifest_is_valid_and_installs_from_the_archives_like_krew() {
    let env = Env::new();
    let dist = all_archives(&env);
    make_manifest("krew", &dist);
    let manifest_path = dist.join("dexcred.yaml");

    // Parsed by kubectl's own YAML decoder (the one krew uses), offline.
    let json = output_of(
        with_path(&env, kubectl("1.33"), &env.bin_dir())
            .args([
                "patch", "--local", "--type", "merge", "-p", "{}", "-o", "json", "-f",
            ])
            .arg(&manifest_path),
    );
    let plugin: Value = serde_json::from_str(&json).expect("kubectl printed JSON");

    // krew's validation rules (internal/index/validation).
    assert_eq!(
        plugin["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(plugin["kind"], "Plugin");
    assert_eq!(
        plugin["metadata"]["name"], "dexcred",
        "matches the file name"
    );
    let spec = &plugin["spec"];
    assert_eq!(spec["version"], format!("v{VERSION}"));
    assert_eq!(spec["homepage"], HOMEPAGE);
    let short = spec["shortDescription"].as_str().expect("shortDescription");
    assert!(
        !short.is_empty() && !short.contains(['\r', '\n']),
        "{short}"
    );
    assert!(
        spec["description"]
            .as_str()
            .is_some_and(|d| d.contains("kubectl dexcred login"))
    );
    let platforms = spec["platforms"].as_array().expect("platforms");
    let mut seen = BTreeSet::new();
    for platform in platforms {
        let labels = platform["selector"]["matchLabels"]
            .as_object()
            .expect("matchLabels");
        assert_eq!(labels.len(), 2, "{platform}");
        let (os, arch) = (
            labels["os"].as_str().expect("os"),
            labels["arch"].as_str().expect("arch"),
        );
        let target = match (os, arch) {
            ("linux", "amd64") => "x86_64-unknown-linux-gnu",
            ("linux", "arm64") => "aarch64-unknown-linux-gnu",
            ("darwin", "amd64") => "x86_64-apple-darwin",
            ("darwin", "arm64") => "aarch64-apple-darwin",
            other => panic!("unexpected platform {other:?}"),
        };
        assert!(seen.insert(target), "{target} twice");
        assert_eq!(platform["uri"], uri(target));
        let sha = platform["sha256"].as_str().expect("sha256");
        assert!(is_sha256(sha), "{sha}");
        let archive = dist.join(format!("{}.tar.gz", archive_name(target)));
        assert_eq!(sha, sha256_hex(&archive), "sha256 of {}", archive.display());
        assert_eq!(platform["bin"], "kubectl-dexcred");
        let files = platform["files"].as_array().expect("files");
        assert!(!files.is_empty());
        for op in files {
            assert!(op["from"].as_str().is_some_and(|f| !f.is_empty()), "{op}");
            assert!(op["to"].as_str().is_some_and(|t| !t.is_empty()), "{op}");
        }
    }
    assert_eq!(seen.len(), 4);

    // Install the linux/amd64 platform as krew does: unpack, apply `files`,
    // link `bin` into krew's bin directory, run it through kubectl.
    let linux = platforms
        .iter()
        .find(|p| {
            p["selector"]["matchLabels"]["os"] == "linux"
                && p["selector"]["matchLabels"]["arch"] == "amd64"
        })
        .expect("linux/amd64");
    let download = env.path().join("krew-download");
    untar(
        &dist.join(format!("{}.tar.gz", archive_name(LINUX_TARGET))),
        &download,
    );
    let store = env
        .path()
        .join("krew/store/dexcred")
        .join(format!("v{VERSION}"));
    std::fs::create_dir_all(&store).expect("mkdir store");
    for op in linux["files"].as_array().expect("files") {
        let from = download.join(op["from"].as_str().expect("from"));
        assert!(from.is_file(), "{} is not in the archive", from.display());
        let to = match op["to"].as_str().expect("to") {
            "." => store.join(from.file_name().expect("name")),
            to => store.join(to),
        };
        std::fs::rename(&from, &to).expect("move file");
    }
    let installed = store.join(linux["bin"].as_str().expect("bin"));
    let krew_bin = env.path().join("krew/bin");
    std::fs::create_dir_all(&krew_bin).expect("mkdir");
    std::os::unix::fs::symlink(&installed, krew_bin.join("kubectl-dexcred")).expect("link");

    let version =
        output_of(with_path(&env, kubectl("1.33"), &krew_bin).args(["dexcred", "--version"]));
    assert_eq!(version, dexcred_says(&["--version"]));
    let status =
        output_of(with_path(&env, kubectl("dispatcher"), &krew_bin).args(["dexcred", "status"]));
    assert!(status.starts_with("No cache entries in "), "{status}");
}

#[test]
fn homebrew_formula_points_at_the_archives_and_installs_their_files() {
    let env = Env::new();
    let dist = all_archives(&env);
    let formula = make_manifest("homebrew", &dist);

    assert!(formula.contains("class Dexcred < Formula"), "{formula}");
    assert!(formula.contains(&format!("version \"{VERSION}\"")));
    assert!(formula.contains(&format!("homepage \"{HOMEPAGE}\"")));
    // Each platform block names its own archive and that archive's sha256.
    let block = |os: &str, cpu: &str| -> String {
        let start = formula.find(&format!("on_{os} do")).expect("os block");
        let rest = &formula[start..];
        let inner = rest.find(&format!("on_{cpu} do")).expect("cpu block");
        rest[inner..].lines().take(3).collect::<Vec<_>>().join("\n")
    };
    for (os, cpu, target) in [
        ("macos", "arm", "aarch64-apple-darwin"),
        ("macos", "intel", "x86_64-apple-darwin"),
        ("linux", "arm", "aarch64-unknown-linux-gnu"),
        ("linux", "intel", "x86_64-unknown-linux-gnu"),
    ] {
        let text = block(os, cpu);
        let archive = dist.join(format!("{}.tar.gz", archive_name(target)));
        assert!(text.contains(&format!("url \"{}\"", uri(target))), "{text}");
        assert!(
            text.contains(&format!("sha256 \"{}\"", sha256_hex(&archive))),
            "{text}"
        );
    }

    // Everything `def install` takes from the archive is in the archive.
    let unpacked = untar(
        &dist.join(format!("{}.tar.gz", archive_name(LINUX_TARGET))),
        &env.path().join("unpacked"),
    );
    let install = &formula[formula.find("def install").expect("install")..];
    let install = &install[..install.find("\n  end").expect("end of install")];
    let mut sources = Vec::new();
    for line in install.lines().map(str::trim) {
        let Some((_, args)) = line.split_once(".install ") else {
            continue;
        };
        // `x.install "a", "b"` or `x.install "a" => "renamed"`.
        let args = args.split("=>").next().unwrap_or_default();
        for source in args.split('"').skip(1).step_by(2) {
            let path = unpacked.join(source);
            assert!(path.exists(), "{source} is not in the archive");
            if path.is_dir() {
                assert_eq!(tree(&path).len(), docs().len(), "{source}");
            }
            sources.push(source.to_string());
        }
    }
    assert_eq!(
        sources,
        [
            "dexcred",
            "completions/dexcred.bash",
            "completions/_dexcred",
            "completions/dexcred.fish",
            "man/dexcred.1",
            "README.md",
            "docs"
        ],
        "{install}"
    );
    for name in ["git-credential-dexcred", "kubectl-dexcred"] {
        assert!(
            install.contains(&format!("bin.install_symlink \"dexcred\" => \"{name}\"")),
            "{name}"
        );
    }
    // Ruby is not on this machine: at least the blocks must balance.
    let opens = formula
        .lines()
        .map(str::trim)
        .filter(|l| l.ends_with(" do") || l.starts_with("class ") || l.starts_with("def "))
        .count();
    let ends = formula.lines().filter(|l| l.trim() == "end").count();
    assert_eq!(opens, ends, "unbalanced blocks:\n{formula}");
}

// --------------------------------------------------------------------- rpm

/// Expands `%{name}` macros (and `%{?dist}` to nothing).
fn expand(text: &str, macros: &[(String, String)]) -> String {
    let mut out = text.replace("%{?dist}", "");
    for _ in 0..5 {
        for (name, value) in macros {
            out = out.replace(&format!("%{{{name}}}"), value);
        }
    }
    assert!(!out.contains("%{"), "unexpanded macro in {out}");
    out
}

#[test]
fn rpm_spec_installs_exactly_its_file_list_from_the_release_archive() {
    let spec = std::fs::read_to_string(repo().join("packaging/rpm/dexcred.spec")).expect("spec");
    let tag = |name: &str| -> String {
        spec.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name}: tag"))
    };
    assert_eq!(tag("Name"), "dexcred");
    assert_eq!(
        tag("Version"),
        VERSION,
        "keep the spec's Version equal to Cargo.toml's"
    );

    let buildroot = tempfile::tempdir().expect("tempdir");
    let mut macros: Vec<(String, String)> = vec![
        ("name".into(), "dexcred".into()),
        ("version".into(), VERSION.into()),
        ("_arch".into(), "x86_64".into()),
        ("buildroot".into(), buildroot.path().display().to_string()),
        ("_prefix".into(), "/usr".into()),
        ("_bindir".into(), "/usr/bin".into()),
        ("_datadir".into(), "/usr/share".into()),
        ("_mandir".into(), "/usr/share/man".into()),
    ];
    for line in spec.lines() {
        if let Some(rest) = line.strip_prefix("%global ") {
            let (name, value) = rest.split_once(' ').expect("%global NAME VALUE");
            macros.push((name.to_string(), value.trim().to_string()));
        }
    }
    // The source and the %setup directory are the release archive's.
    assert_eq!(
        expand(&tag("Source0"), &macros),
        format!("{}.tar.gz", archive_name(LINUX_TARGET))
    );
    let setup = spec
        .lines()
        .find_map(|l| l.strip_prefix("%setup -q -n "))
        .expect("%setup -q -n DIR");
    assert_eq!(expand(setup, &macros), archive_name(LINUX_TARGET));

    let section = |name: &str| -> Vec<String> {
        spec.lines()
            .skip_while(|l| l.trim() != name)
            .skip(1)
            .take_while(|l| !(l.starts_with('%') && !l.starts_with("%{") && !l.starts_with("%doc")))
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| expand(l, &macros))
            .collect()
    };

    // Run %install in the unpacked archive, as rpmbuild would.
    let env = Env::new();
    let bin = stripped_binary(env.path());
    let archive = make_archive(&bin, LINUX_TARGET, &env.path().join("dist"));
    let unpacked = untar(&archive, &env.path().join("BUILD"));
    for command in section("%install") {
        output_of(
            with_path(&env, "/bin/sh", &env.path().join("nowhere"))
                .arg("-c")
                .arg(&command)
                .current_dir(&unpacked),
        );
    }
    let installed: BTreeSet<String> = tree(buildroot.path())
        .into_iter()
        .map(|p| format!("/{p}"))
        .collect();

    let files = section("%files");
    let mut entries: Vec<&str> = Vec::new();
    for line in &files {
        if let Some(docs) = line.strip_prefix("%doc ") {
            for doc in docs.split_whitespace() {
                assert!(
                    unpacked.join(doc).exists(),
                    "%doc {doc} is not in the archive"
                );
            }
        } else {
            entries.push(line);
        }
    }
    let matches = |entry: &str, path: &str| match entry.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => path == entry,
    };
    for path in &installed {
        let owners = entries.iter().filter(|e| matches(e, path)).count();
        assert_eq!(
            owners, 1,
            "{path} is installed but listed {owners} times in %files"
        );
    }
    for entry in &entries {
        assert!(
            installed.iter().any(|p| matches(entry, p)),
            "%files lists {entry}, which %install does not install"
        );
    }
    assert!(
        installed.contains("/usr/bin/kubectl-dexcred"),
        "{installed:?}"
    );
}
