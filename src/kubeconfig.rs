//! The kubeconfig `dexcred kubeconfig` prints, and its merge into an
//! existing file for `--write`.
//!
//! The merge works as kubectl's own `kubectl config set-*` does: parse the
//! file with a YAML library (saphyr), change our cluster, user and context
//! and `current-context`, and write the whole document back. Every other
//! entry and every field we do not know keep their values (the tree is a
//! generic YAML value, never a struct that would drop unknown fields);
//! comments and formatting are not kept, as kubectl does not keep them.
//!
//! A file that is not a kubeconfig, or whose change would be ambiguous, is
//! refused and left untouched: the user can merge the printed document by
//! hand.

use std::borrow::Cow;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use saphyr::{LoadableYamlNode, Mapping, Scalar, Yaml, YamlEmitter};

use crate::error::{Error, Result};

/// The exec credential API kubectl speaks with dexcred.
pub const EXEC_API_VERSION: &str = "client.authentication.k8s.io/v1";

/// kubectl may connect dexcred to the terminal for a password prompt, but
/// works without one (CI): the right mode for a password login. v1 requires
/// the field to be present.
pub const INTERACTIVE_MODE: &str = "IfAvailable";

/// A kubeconfig is a few KiB; a larger file is not one and is not read.
const MAX_KUBECONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// What `dexcred kubeconfig` writes: one cluster, one user and one context,
/// all under the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubeconfig {
    pub name: String,
    pub server: String,
    /// Base64 of the API server's CA bundle (PEM), if given.
    pub certificate_authority_data: Option<String>,
    pub exec: Exec,
}

/// The `users[].user.exec` stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub command: String,
    pub args: Vec<String>,
    pub install_hint: String,
}

/// The result of merging into an existing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub text: String,
    /// The `current-context` before the merge, if there was one.
    pub previous_context: Option<String>,
}

/// Why a file cannot be merged; the caller adds the path and the advice to
/// merge by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn refuse<T>(reason: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(reason.into()))
}

/// What `--write` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The file actually written (symbolic links resolved).
    pub path: PathBuf,
    pub created: bool,
    pub previous_context: Option<String>,
}

// ---------------------------------------------------------------------------
// Our entries as YAML values
// ---------------------------------------------------------------------------

fn string(value: &str) -> Yaml<'static> {
    Yaml::Value(Scalar::String(Cow::Owned(value.to_string())))
}

fn mapping<'a>(entries: impl IntoIterator<Item = (&'static str, Yaml<'a>)>) -> Yaml<'a> {
    let mut map = Mapping::new();
    for (key, value) in entries {
        map.insert(string(key), value);
    }
    Yaml::Mapping(map)
}

/// The three lists we put an entry into, as (list key, entry key).
const LISTS: [(&str, &str); 3] = [
    ("clusters", "cluster"),
    ("contexts", "context"),
    ("users", "user"),
];

/// Our entry of the list `list` (one of [`LISTS`]).
fn entry(list: &str, kc: &Kubeconfig) -> Yaml<'static> {
    let body = match list {
        "clusters" => {
            let mut fields = vec![("server", string(&kc.server))];
            if let Some(data) = &kc.certificate_authority_data {
                fields.push(("certificate-authority-data", string(data)));
            }
            ("cluster", mapping(fields))
        }
        "contexts" => (
            "context",
            mapping([("cluster", string(&kc.name)), ("user", string(&kc.name))]),
        ),
        _ => {
            let exec = &kc.exec;
            let args = exec.args.iter().map(|a| string(a)).collect();
            let exec = mapping([
                ("apiVersion", string(EXEC_API_VERSION)),
                ("command", string(&exec.command)),
                ("args", Yaml::Sequence(args)),
                ("installHint", string(&exec.install_hint)),
                ("interactiveMode", string(INTERACTIVE_MODE)),
                ("provideClusterInfo", Yaml::Value(Scalar::Boolean(false))),
            ]);
            ("user", mapping([("exec", exec)]))
        }
    };
    mapping([("name", string(&kc.name)), body])
}

/// The whole kubeconfig, as printed without `--write` and written to a new
/// file.
pub fn document(kc: &Kubeconfig) -> String {
    let mut doc = vec![("apiVersion", string("v1")), ("kind", string("Config"))];
    doc.extend(LISTS.map(|(list, _)| (list, Yaml::Sequence(vec![entry(list, kc)]))));
    doc.push(("current-context", string(&kc.name)));
    doc.push(("preferences", Yaml::Mapping(Mapping::new())));
    // Our own values always emit (checked by `emit` for merges).
    emit(&mapping(doc)).unwrap_or_default()
}

/// The YAML text of `doc`, refusing characters that YAML 1.1 readers
/// (kubectl's) take for line breaks or reject inside a quoted value, which
/// the emitter writes unescaped.
fn emit(doc: &Yaml) -> Result<String, Unsupported> {
    check_characters(doc)?;
    let mut out = String::new();
    YamlEmitter::new(&mut out)
        .dump(doc)
        .map_err(|e| Unsupported(format!("cannot write the YAML ({e})")))?;
    let mut text = out.strip_prefix("---\n").unwrap_or(&out).to_string();
    text.push('\n');
    Ok(text)
}

fn check_characters(node: &Yaml) -> Result<(), Unsupported> {
    let unsafe_char = |c: char| {
        matches!(
            c,
            '\u{80}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
        )
    };
    match node {
        Yaml::Value(Scalar::String(s)) if s.contains(unsafe_char) => refuse(format!(
            "the value {s:?} holds a character kubectl would misread (a Unicode line separator, BOM or C1 control)"
        )),
        Yaml::Sequence(items) => items.iter().try_for_each(check_characters),
        Yaml::Mapping(map) => map
            .iter()
            .try_for_each(|(k, v)| check_characters(k).and_then(|()| check_characters(v))),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Merging
// ---------------------------------------------------------------------------

/// Merges `kc` into the kubeconfig text `existing`: our entry replaces the
/// entry with the same name in `clusters`, `contexts` and `users`, or is
/// appended (the list is created if missing or null); `current-context`
/// becomes ours. Everything else keeps its value.
pub fn merge(existing: &str, kc: &Kubeconfig) -> Result<Merged, Unsupported> {
    let docs = Yaml::load_from_str(existing)
        .map_err(|e| Unsupported(format!("it is not valid YAML ({e})")))?;
    let mut doc = match docs.len() {
        // Only blank lines and comments: the whole document.
        0 => {
            return Ok(Merged {
                text: document(kc),
                previous_context: None,
            });
        }
        1 => docs.into_iter().next().unwrap_or(Yaml::BadValue),
        _ => return refuse("it holds several YAML documents (---)"),
    };
    if doc.is_null() {
        return Ok(Merged {
            text: document(kc),
            previous_context: None,
        });
    }
    check_plain(&doc)?;
    let Yaml::Mapping(top) = &mut doc else {
        return refuse("it is not a kubeconfig (the document is not a mapping)");
    };
    for (key, expected) in [("kind", "Config"), ("apiVersion", "v1")] {
        match top.get(&string(key)) {
            None => {}
            Some(v) if v.as_str() == Some(expected) => {}
            Some(_) => return refuse(format!("it is not a kubeconfig ({key} is not {expected})")),
        }
    }
    for (list, _) in LISTS {
        put_entry(top, list, entry(list, kc), &kc.name)?;
    }
    let previous_context = match top.get(&string("current-context")) {
        None => None,
        Some(v) if v.is_null() => None,
        Some(v) => match v.as_str() {
            Some(s) => Some(s.to_string()).filter(|s| !s.is_empty()),
            None => return refuse("current-context is not a name"),
        },
    };
    top.insert(string("current-context"), string(&kc.name));
    Ok(Merged {
        text: emit(&doc)?,
        previous_context,
    })
}

/// Refuses tags, unresolvable aliases and merge keys (`<<`): their meaning
/// depends on the reader, so rewriting them could silently change entries.
fn check_plain(node: &Yaml) -> Result<(), Unsupported> {
    match node {
        Yaml::Tagged(..) => refuse("it uses a YAML tag (!)"),
        Yaml::BadValue | Yaml::Alias(_) | Yaml::Representation(..) => {
            refuse("it holds a value that cannot be read (an unknown alias?)")
        }
        Yaml::Sequence(items) => items.iter().try_for_each(check_plain),
        Yaml::Mapping(map) => map.iter().try_for_each(|(k, v)| {
            if k.as_str() == Some("<<") {
                return refuse("it uses a YAML merge key (<<)");
            }
            check_plain(k).and_then(|()| check_plain(v))
        }),
        Yaml::Value(_) => Ok(()),
    }
}

/// Puts `ours` into the list `list` of `top`: in place of the entry named
/// `name`, or appended. Two entries with our name are ambiguous: which one
/// kubectl uses is not ours to decide.
fn put_entry<'a>(
    top: &mut Mapping<'a>,
    list: &str,
    ours: Yaml<'a>,
    name: &str,
) -> Result<(), Unsupported> {
    let key = string(list);
    let items = match top.get_mut(&key) {
        None => {
            top.insert(key, Yaml::Sequence(vec![ours]));
            return Ok(());
        }
        Some(v) if v.is_null() => {
            *v = Yaml::Sequence(vec![ours]);
            return Ok(());
        }
        Some(Yaml::Sequence(items)) => items,
        Some(_) => return refuse(format!("{list} is not a list")),
    };
    let mut found = None;
    for (i, item) in items.iter().enumerate() {
        let Yaml::Mapping(map) = item else {
            return refuse(format!("an entry of {list} is not a mapping"));
        };
        let item_name = match map.get(&string("name")) {
            None => None,
            Some(n) => Some(n.as_str().ok_or_else(|| {
                Unsupported(format!("cannot read the name of an entry of {list}"))
            })?),
        };
        if item_name == Some(name) {
            if found.is_some() {
                return refuse(format!("{list} has two entries named {name:?}"));
            }
            found = Some(i);
        }
    }
    match found {
        Some(i) => items[i] = ours,
        None => items.push(ours),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The file
// ---------------------------------------------------------------------------

/// The file `--write` changes: the first entry of `$KUBECONFIG` (as kubectl
/// writes new entries there too), else `~/.kube/config`.
pub fn target_path(kubeconfig_env: Option<OsString>, home: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(first) = kubeconfig_env
        .as_deref()
        .and_then(|v| std::env::split_paths(v).find(|p| !p.as_os_str().is_empty()))
    {
        return Ok(first);
    }
    home.map(|h| h.join(".kube").join("config")).ok_or_else(|| {
        Error::usage("cannot find your home directory (HOME is not set); set KUBECONFIG=FILE")
    })
}

/// Merges `kc` into the kubeconfig at `path` (creating it if needed) and
/// replaces the file atomically. Holds kubectl's own lock (`<path>.lock`)
/// meanwhile, so a concurrent `kubectl config` change is not lost.
pub fn write(path: &Path, kc: &Kubeconfig) -> Result<Written> {
    let target = resolve(path)?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_dir(&dir)?;
    let _lock = ConfigLock::acquire(path)?;
    let read_error =
        |e: std::io::Error| Error::local(format!("cannot read {}: {e}", target.display()));
    let existing = match crate::fs::open_nofollow(&target).map_err(read_error)? {
        Some(file) => {
            Some(crate::fs::read_regular(file, MAX_KUBECONFIG_BYTES).map_err(read_error)?)
        }
        None => None,
    };
    let (text, mode, created, previous_context) = match existing {
        Some((meta, bytes)) => {
            let existing = String::from_utf8(bytes)
                .map_err(|_| cannot_merge(&target, "the file is not UTF-8 text".to_string()))?;
            let merged = merge(&existing, kc).map_err(|u| cannot_merge(&target, u.to_string()))?;
            let mode = meta.permissions().mode() & 0o777;
            (merged.text, mode, false, merged.previous_context)
        }
        None => (document(kc), 0o600, true, None),
    };
    // The temp file is ours alone: we hold the lock.
    let file_name = target
        .file_name()
        .map_or_else(|| "config".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{file_name}.dexcred.tmp"));
    crate::fs::replace(&target, &tmp, text.as_bytes(), mode)
        .map_err(|e| Error::local(format!("cannot write {}: {e}", target.display())))?;
    Ok(Written {
        path: target,
        created,
        previous_context,
    })
}

fn cannot_merge(path: &Path, why: String) -> Error {
    Error::local(format!(
        "cannot merge into {} safely: {why}; run without --write and merge the printed kubeconfig by hand",
        path.display()
    ))
}

/// The real file behind `path`: kubeconfigs are often symbolic links (to a
/// dotfiles repository, a secrets mount), and renaming over the link would
/// replace the link instead of updating its target.
fn resolve(path: &Path) -> Result<PathBuf> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(path.to_path_buf()),
        Err(e) => Err(Error::local(format!("cannot read {}: {e}", path.display()))),
        Ok(_) => {
            let real = fs::canonicalize(path).map_err(|e| {
                Error::local(format!(
                    "cannot resolve {} ({e}); if it is a broken symbolic link, fix or remove it",
                    path.display()
                ))
            })?;
            if fs::metadata(&real).is_ok_and(|m| m.is_file()) {
                Ok(real)
            } else {
                Err(Error::local(format!(
                    "{} is not a regular file",
                    real.display()
                )))
            }
        }
    }
}

/// Creates the kubeconfig directory (0700: it holds credentials) if needed.
/// Like the cache directory, never inside another user's directory (`sudo -E`).
fn create_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    crate::fs::create_owned_dir(dir).map_err(|why| {
        Error::local(format!(
            "cannot create {}: {why}; set KUBECONFIG to a file of your own, or run without `sudo -E`",
            dir.display()
        ))
    })
}

/// kubectl's (client-go's) kubeconfig lock: `<path>.lock`, created
/// exclusively and removed when done.
struct ConfigLock {
    path: PathBuf,
}

impl ConfigLock {
    const WAIT: Duration = Duration::from_secs(5);

    fn acquire(config: &Path) -> Result<ConfigLock> {
        let mut name = config.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let deadline = Instant::now() + Self::WAIT;
        loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(_) => return Ok(ConfigLock { path }),
                Err(e) if e.kind() == ErrorKind::AlreadyExists && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    return Err(Error::local(format!(
                        "{} exists: kubectl or dexcred is changing this kubeconfig; if neither is running, delete the lock file",
                        path.display()
                    )));
                }
                Err(e) => {
                    return Err(Error::local(format!(
                        "cannot create {}: {e}",
                        path.display()
                    )));
                }
            }
        }
    }
}

impl Drop for ConfigLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kc(name: &str) -> Kubeconfig {
        Kubeconfig {
            name: name.to_string(),
            server: "https://pcd.example.com/oidc-proxy/t/r".to_string(),
            certificate_authority_data: Some("Q0E=".to_string()),
            exec: Exec {
                command: "dexcred".to_string(),
                args: vec![
                    "kubectl".into(),
                    "--pcd".into(),
                    "https://pcd.example.com".into(),
                ],
                install_hint: "install dexcred\nsee the README".to_string(),
            },
        }
    }

    /// What `kubectl config set-cluster/set-credentials/set-context` writes,
    /// plus a field dexcred does not know.
    const KUBECTL_STYLE: &str = "\
apiVersion: v1
clusters:
- cluster:
    server: https://other.example:6443
    extensions:
    - name: vendor
      extension: {anything: [1, true, \"x\"]}
  name: other
contexts:
- context:
    cluster: other
    user: bob
  name: other
current-context: other
kind: Config
preferences: {}
users:
- name: bob
  user:
    token: abc
";

    fn load(text: &str) -> Yaml<'_> {
        Yaml::load_from_str(text).unwrap().remove(0)
    }

    fn merged(existing: &str, name: &str) -> Merged {
        match merge(existing, &kc(name)) {
            Ok(m) => m,
            Err(e) => panic!("merge refused: {e}\n{existing}"),
        }
    }

    fn refused(existing: &str) -> Unsupported {
        match merge(existing, &kc("dev")) {
            Ok(m) => panic!("merge accepted:\n{existing}\n=>\n{}", m.text),
            Err(e) => e,
        }
    }

    /// The entries of `list` in `doc`, by name.
    fn entries<'a>(doc: &'a Yaml<'a>, list: &str) -> Vec<(String, &'a Yaml<'a>)> {
        doc.as_mapping_get(list)
            .and_then(Yaml::as_sequence)
            .map(|items| {
                items
                    .iter()
                    .map(|i| {
                        let name = i.as_mapping_get("name").and_then(Yaml::as_str);
                        (name.unwrap_or_default().to_string(), i)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn the_document_reads_back_as_our_values() {
        let text = document(&kc("dev"));
        let doc = load(&text);
        let ours = load(&text);
        assert_eq!(
            doc.as_mapping_get("current-context").and_then(Yaml::as_str),
            Some("dev")
        );
        let user = entries(&ours, "users")[0].1;
        let exec = user
            .as_mapping_get("user")
            .and_then(|u| u.as_mapping_get("exec"))
            .unwrap();
        assert_eq!(
            exec.as_mapping_get("installHint").and_then(Yaml::as_str),
            Some("install dexcred\nsee the README")
        );
        assert_eq!(
            exec.as_mapping_get("provideClusterInfo")
                .and_then(Yaml::as_bool),
            Some(false)
        );
        assert!(text.starts_with("apiVersion: v1\nkind: Config\n"), "{text}");
    }

    #[test]
    fn merge_keeps_other_entries_and_unknown_fields_and_appends_ours() {
        let m = merged(KUBECTL_STYLE, "dev");
        assert_eq!(m.previous_context.as_deref(), Some("other"));
        let before = load(KUBECTL_STYLE);
        let after = load(&m.text);
        let ours = load(Box::leak(document(&kc("dev")).into_boxed_str()));
        for (list, _) in LISTS {
            let (old, new) = (entries(&before, list), entries(&after, list));
            assert_eq!(new.len(), old.len() + 1, "{list}");
            assert_eq!(
                new[..old.len()],
                old[..],
                "{list}: others keep their values"
            );
            assert_eq!(new[old.len()], entries(&ours, list)[0], "{list}");
        }
        for key in ["apiVersion", "kind", "preferences"] {
            assert_eq!(
                after.as_mapping_get(key),
                before.as_mapping_get(key),
                "{key}"
            );
        }
        assert_eq!(
            after
                .as_mapping_get("current-context")
                .and_then(Yaml::as_str),
            Some("dev")
        );
    }

    #[test]
    fn merge_replaces_our_entry_in_place_and_is_idempotent() {
        let existing = KUBECTL_STYLE.replace(
            "  name: other\ncontexts:",
            "  name: other\n- cluster:\n    server: https://old.example\n  name: dev\n- cluster:\n    server: https://z\n  name: zed\ncontexts:",
        );
        let m = merged(&existing, "dev");
        let after = load(&m.text);
        let names: Vec<_> = entries(&after, "clusters")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["other", "dev", "zed"]);
        assert!(!m.text.contains("old.example"));
        assert_eq!(merged(&m.text, "dev").text, m.text);
        let two = merged(&m.text, "prod").text;
        assert_eq!(merged(&two, "prod").text, two);
    }

    #[test]
    fn null_missing_empty_json_and_crlf_files_are_merged() {
        for existing in [
            "",
            "# only a comment\n\n",
            "---\n",
            "apiVersion: v1\nclusters: null\ncontexts: []\nkind: Config\n",
            "{\"apiVersion\": \"v1\", \"kind\": \"Config\", \"clusters\": []}\n",
            "apiVersion: v1\r\nkind: Config\r\nusers: ~\r\n",
            "clusters: [{name: a, cluster: {server: \"https://a\"}}]\n",
        ] {
            let m = merged(existing, "dev");
            let after = load(&m.text);
            for (list, _) in LISTS {
                assert!(
                    entries(&after, list).iter().any(|(n, _)| n == "dev"),
                    "{existing:?}: {list}"
                );
            }
            assert_eq!(m.previous_context, None, "{existing:?}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_merge_safely() {
        let cases = [
            ("- a\n- b\n", "not a mapping"),
            ("kind: Pod\n", "kind is not Config"),
            ("apiVersion: v2\n", "apiVersion is not v1"),
            (
                "apiVersion: v1\n---\napiVersion: v1\n",
                "several YAML documents",
            ),
            ("clusters:\n- name: dev\n- name: dev\n", "two entries named"),
            ("clusters: a\n", "not a list"),
            ("clusters:\n  name: a\n", "not a list"),
            ("clusters:\n- just a string\n", "not a mapping"),
            ("clusters:\n- name: [a]\n", "cannot read the name"),
            ("clusters: []\nclusters: []\n", "not valid YAML"),
            ("clusters:\n- name: a\n\tcluster: {}\n", "not valid YAML"),
            ("current-context: [a]\n", "current-context"),
            (
                "users:\n- name: a\n  user:\n    <<: {token: x}\n",
                "merge key",
            ),
            ("clusters:\n- !vendor\n  name: a\n", "tag"),
            (
                "clusters:\n- name: a\n  cluster: *nowhere\n",
                "not valid YAML",
            ),
            (
                "users:\n- name: a\n  user: {token: \"a\\u2028b\"}\n",
                "misread",
            ),
        ];
        for (text, why) in cases {
            let e = refused(text);
            assert!(e.to_string().contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn any_string_round_trips_through_the_emitter() {
        for s in [
            "plain",
            "a\"b\\c",
            "line\nbreak\ttab",
            "yes",
            "on",
            "0755",
            "1e3",
            "~",
            "",
            " x",
            "- a",
            "a: b",
            "ünï ✓ 🦀",
        ] {
            let mut k = kc("dev");
            k.exec.args = vec![s.to_string()];
            let text = document(&k);
            let doc = load(&text);
            let user = entries(&doc, "users")[0].1;
            let args = user
                .as_mapping_get("user")
                .and_then(|u| u.as_mapping_get("exec"))
                .and_then(|e| e.as_mapping_get("args"));
            assert_eq!(
                args.and_then(|a| a.as_sequence()).map(|a| a[0].as_str()),
                Some(Some(s)),
                "{s:?}:\n{text}"
            );
        }
    }

    #[test]
    fn target_is_the_first_kubeconfig_entry_else_home() {
        let home = Some(PathBuf::from("/home/u"));
        let t = |env: Option<&str>| target_path(env.map(OsString::from), home.clone()).unwrap();
        assert_eq!(t(Some("/a:/b")), PathBuf::from("/a"));
        assert_eq!(t(Some(":/b")), PathBuf::from("/b"));
        assert_eq!(t(Some("")), PathBuf::from("/home/u/.kube/config"));
        assert_eq!(t(None), PathBuf::from("/home/u/.kube/config"));
        assert_eq!(target_path(None, None).unwrap_err().exit_code(), 2);
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir = std::env::temp_dir()
                .join(format!("dexcred-kubeconfig-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn write_creates_private_file_and_directory() {
        let tmp = TempDir::new("create");
        let path = tmp.0.join("home/.kube/config");
        let w = write(&path, &kc("dev")).unwrap();
        assert!(w.created);
        assert_eq!(fs::read_to_string(&path).unwrap(), document(&kc("dev")));
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&tmp.0.join("home/.kube")), 0o700);
        assert!(!tmp.0.join("home/.kube/config.lock").exists());
    }

    #[test]
    fn write_follows_symlinks_and_keeps_the_mode() {
        let tmp = TempDir::new("symlink");
        let real = tmp.0.join("real-config");
        fs::write(&real, KUBECTL_STYLE).unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
        let link = tmp.0.join("config");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let w = write(&link, &kc("dev")).unwrap();
        assert!(!w.created);
        assert_eq!(w.path, fs::canonicalize(&real).unwrap());
        assert_eq!(w.previous_context.as_deref(), Some("other"));
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_to_string(&real).unwrap(),
            merged(KUBECTL_STYLE, "dev").text
        );
        assert_eq!(mode(&real), 0o640);
        let leftovers: Vec<_> = fs::read_dir(&tmp.0).unwrap().collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    }

    #[test]
    fn write_refuses_without_touching_the_file() {
        let tmp = TempDir::new("refuse");
        let path = tmp.0.join("config");
        let text = "kind: Pod\nmetadata: {name: x}\n";
        fs::write(&path, text).unwrap();
        let e = write(&path, &kc("dev")).unwrap_err();
        assert_eq!(e.exit_code(), 5);
        assert!(
            e.message().contains("merge the printed kubeconfig by hand"),
            "{e}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
        assert_eq!(fs::read_dir(&tmp.0).unwrap().count(), 1);
    }

    #[test]
    fn write_waits_for_then_reports_kubectls_lock() {
        let tmp = TempDir::new("lock");
        let path = tmp.0.join("config");
        fs::write(tmp.0.join("config.lock"), "").unwrap();
        let e = write(&path, &kc("dev")).unwrap_err();
        assert!(e.message().contains("config.lock"), "{e}");
        assert!(!path.exists());
    }
}
