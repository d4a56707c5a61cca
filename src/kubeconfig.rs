//! Kubeconfig text: the document `dexcred kubeconfig` prints, and a textual
//! merge of its cluster, user and context into an existing file.
//!
//! There is no YAML library on purpose. We only ever *write* three small list
//! items whose values are double-quoted scalars with JSON escaping (a JSON
//! string is a valid YAML double-quoted scalar), and we *merge* by editing
//! the text: the bytes of every entry we do not own stay exactly as they
//! were, comments included — a parse-and-reserialize round trip through a
//! YAML library would reorder and reformat the whole file.
//!
//! The merge understands the block layout kubectl writes (top-level keys at
//! column 0, list items `- ` at column 0 or indented) and refuses anything
//! it cannot edit with certainty (flow lists with entries, tabs, anchors and
//! aliases in the lists, several documents, JSON). Refusing is always safe:
//! the user can merge the printed document by hand.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The exec credential API kubectl speaks with dexcred.
pub const EXEC_API_VERSION: &str = "client.authentication.k8s.io/v1";

/// kubectl may connect dexcred to the terminal for a password prompt, but
/// works without one (CI): the right mode for a password login. v1 requires
/// the field to be present.
pub const INTERACTIVE_MODE: &str = "IfAvailable";

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

/// Why a file cannot be merged textually; the caller adds the path and the
/// advice to merge by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// 1-based line number, 0 when the problem is not one line.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: {}", self.line, self.reason)
        } else {
            f.write_str(&self.reason)
        }
    }
}

fn refuse<T>(line: usize, reason: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported {
        line: line + 1,
        reason: reason.into(),
    })
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
// Rendering
// ---------------------------------------------------------------------------

/// `value` as a YAML double-quoted scalar using JSON escapes. Besides what
/// JSON requires, every character YAML parsers reject or treat as a line
/// break (C1 controls, DEL, U+2028/2029, BOM, U+FFFE/FFFF) is escaped, so
/// any string round-trips through kubectl's YAML reader.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The whole kubeconfig, as printed without `--write` and written to a new
/// file.
pub fn document(kc: &Kubeconfig) -> String {
    let mut out = String::from("apiVersion: v1\nkind: Config\n");
    for list in List::ALL {
        out.push_str(list.key());
        out.push_str(":\n");
        out.push_str(&item(list, kc, 0));
    }
    out.push_str(&current_context_line(&kc.name));
    out.push_str("preferences: {}\n");
    out
}

fn current_context_line(name: &str) -> String {
    format!("current-context: {}\n", quote(name))
}

/// The three lists we add an item to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Clusters,
    Contexts,
    Users,
}

impl List {
    const ALL: [List; 3] = [List::Clusters, List::Contexts, List::Users];

    fn key(self) -> &'static str {
        match self {
            List::Clusters => "clusters",
            List::Contexts => "contexts",
            List::Users => "users",
        }
    }
}

/// Our item of `list`, every line indented by `indent` spaces (the indentation
/// of the `-` of the list it goes into).
fn item(list: List, kc: &Kubeconfig, indent: usize) -> String {
    let name = quote(&kc.name);
    let mut lines = vec![format!("- name: {name}")];
    match list {
        List::Clusters => {
            lines.push("  cluster:".to_string());
            lines.push(format!("    server: {}", quote(&kc.server)));
            if let Some(data) = &kc.certificate_authority_data {
                lines.push(format!("    certificate-authority-data: {}", quote(data)));
            }
        }
        List::Contexts => {
            lines.push("  context:".to_string());
            lines.push(format!("    cluster: {name}"));
            lines.push(format!("    user: {name}"));
        }
        List::Users => {
            let exec = &kc.exec;
            lines.push("  user:".to_string());
            lines.push("    exec:".to_string());
            lines.push(format!("      apiVersion: {}", quote(EXEC_API_VERSION)));
            lines.push(format!("      command: {}", quote(&exec.command)));
            if exec.args.is_empty() {
                lines.push("      args: []".to_string());
            } else {
                lines.push("      args:".to_string());
                lines.extend(exec.args.iter().map(|a| format!("      - {}", quote(a))));
            }
            lines.push(format!("      installHint: {}", quote(&exec.install_hint)));
            lines.push(format!(
                "      interactiveMode: {}",
                quote(INTERACTIVE_MODE)
            ));
            lines.push("      provideClusterInfo: false".to_string());
        }
    }
    let pad = " ".repeat(indent);
    lines.iter().map(|l| format!("{pad}{l}\n")).collect()
}

// ---------------------------------------------------------------------------
// Scanning the existing text
// ---------------------------------------------------------------------------

/// One physical line: `text` without its newline, `start..end` its bytes
/// including the newline.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    text: &'a str,
    start: usize,
    end: usize,
}

impl Line<'_> {
    fn has_newline(&self) -> bool {
        self.end > self.start + self.text.len()
    }
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    let mut lines = Vec::new();
    let mut start = 0;
    for raw in text.split_inclusive('\n') {
        let end = start + raw.len();
        lines.push(Line {
            text: raw.strip_suffix('\n').unwrap_or(raw),
            start,
            end,
        });
        start = end;
    }
    lines
}

fn indent_of(s: &str) -> usize {
    s.len() - s.trim_start_matches(' ').len()
}

/// Blank lines and comment-only lines carry no structure.
fn is_content(s: &str) -> bool {
    let t = s.trim_start_matches([' ', '\t']);
    !t.is_empty() && !t.starts_with('#')
}

/// `key: rest` with a plain key (the only kind kubectl writes); `rest` is
/// what follows the colon.
fn plain_key(s: &str) -> Option<(&str, &str)> {
    let key_len = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .unwrap_or(s.len());
    let (key, rest) = s.split_at(key_len);
    let rest = rest.strip_prefix(':')?;
    (!key.is_empty() && (rest.is_empty() || rest.starts_with(' '))).then_some((key, rest))
}

/// Index of the quote closing the quoted scalar that `s` starts with.
fn closing_quote(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let open = *bytes.first()?;
    let mut i = 1;
    while i < bytes.len() {
        match (open, bytes[i]) {
            (b'"', b'\\') => i += 1,
            (b'"', b'"') => return Some(i),
            (b'\'', b'\'') if bytes.get(i + 1) == Some(&b'\'') => i += 1,
            (b'\'', b'\'') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The value of a one-line scalar (`None` when there is no value). Errors
/// for anything that is not a plain, single- or double-quoted scalar that
/// ends on this line.
fn parse_scalar(raw: &str) -> Result<Option<String>, String> {
    let s = raw.trim_start_matches(' ');
    if s.is_empty() || s.starts_with('#') {
        return Ok(None);
    }
    let (value, rest) = match s.as_bytes()[0] {
        b'"' => {
            let end = closing_quote(s).ok_or("a quoted value that continues on the next line")?;
            let value = serde_json::from_str::<String>(&s[..=end])
                .map_err(|_| "a double-quoted value with escapes other than JSON's")?;
            (value, &s[end + 1..])
        }
        b'\'' => {
            let end = closing_quote(s).ok_or("a quoted value that continues on the next line")?;
            (s[1..end].replace("''", "'"), &s[end + 1..])
        }
        b'&' | b'*' | b'!' | b'|' | b'>' | b'[' | b'{' | b'%' | b'@' | b'`' | b'?' => {
            return Err(format!(
                "a value starting with {:?} (anchor, alias, tag, block or flow value)",
                &s[..1]
            ));
        }
        _ if s.starts_with("- ") => return Err("a list where a plain value belongs".into()),
        _ => {
            let end = s.find(" #").unwrap_or(s.len());
            (s[..end].trim_end().to_string(), "")
        }
    };
    let rest = rest.trim_start_matches(' ');
    if rest.is_empty() || rest.starts_with('#') {
        Ok(Some(value))
    } else {
        Err("text after a quoted value".into())
    }
}

/// Whether an anchor (`&a`), alias (`*a`), tag (`!t`) or merge key (`<<`)
/// starts a node on this line, outside quoted scalars. Replacing or moving
/// text that takes part in those could silently change other entries.
fn has_node_property(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut node_start = true;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let next_is_space = bytes.get(i + 1).is_none_or(|n| *n == b' ');
        match c {
            b' ' => {}
            b'#' if i == 0 || bytes[i - 1] == b' ' => return false,
            b'&' | b'*' | b'!' if node_start => return true,
            b'<' if node_start && s[i..].starts_with("<<") => return true,
            b'"' | b'\'' if node_start => match closing_quote(&s[i..]) {
                Some(end) => {
                    i += end;
                    node_start = false;
                }
                None => return false,
            },
            b':' | b'-' | b'?' if next_is_space => node_start = true,
            b'[' | b'{' | b',' => node_start = true,
            _ => node_start = false,
        }
        i += 1;
    }
    false
}

/// A top-level mapping key (column 0) and the lines that belong to it.
#[derive(Debug, Clone)]
struct TopKey {
    name: String,
    line: usize,
    /// The text after the colon.
    value: String,
    /// The lines after the key line, up to the next key.
    body: std::ops::Range<usize>,
}

/// The file split into lines and top-level keys.
struct Scan<'a> {
    lines: Vec<Line<'a>>,
    keys: Vec<TopKey>,
    has_content: bool,
}

const MANAGED_KEYS: [&str; 4] = ["clusters", "contexts", "users", "current-context"];

/// Reads the top-level structure, refusing what a line-based edit cannot
/// handle with certainty.
fn scan(text: &str) -> Result<Scan<'_>, Unsupported> {
    if text.starts_with('\u{feff}') {
        return refuse(0, "the file starts with a byte order mark");
    }
    if let Some(at) = text.find('\r') {
        let line = text[..at].matches('\n').count();
        return refuse(line, "carriage return (Windows line ends)");
    }
    let lines = split_lines(text);
    let mut keys: Vec<TopKey> = Vec::new();
    let mut has_content = false;
    let mut document_started = false;
    for (i, line) in lines.iter().enumerate() {
        let s = line.text;
        if !is_content(s) {
            continue;
        }
        let lead = &s[..s.len() - s.trim_start_matches([' ', '\t']).len()];
        if lead.contains('\t') {
            return refuse(i, "a tab in the indentation");
        }
        if indent_of(s) > 0 {
            if keys.is_empty() {
                return refuse(i, "indented text before the first key");
            }
            continue;
        }
        if s == "---" || s.starts_with("--- ") {
            if document_started || has_content {
                return refuse(i, "several YAML documents (---)");
            }
            if is_content(&s[3..]) {
                return refuse(i, "content on the document start line (---)");
            }
            document_started = true;
            continue;
        }
        has_content = true;
        if s == "-" || s.starts_with("- ") {
            // An item of a block list at column 0: part of the previous key.
            if keys.is_empty() {
                return refuse(i, "the document is a list, not a kubeconfig");
            }
            continue;
        }
        if s.starts_with(['{', '[']) {
            return refuse(
                i,
                "JSON or flow-style YAML (kubectl writes block style; merge by hand)",
            );
        }
        let Some((name, rest)) = plain_key(s) else {
            return refuse(i, "unexpected top-level text (not a `key: value` line)");
        };
        check_one_line_value(i, rest)?;
        if MANAGED_KEYS.contains(&name) && keys.iter().any(|k| k.name == name) {
            return refuse(i, format!("{name:?} appears twice"));
        }
        keys.push(TopKey {
            name: name.to_string(),
            line: i,
            value: rest.to_string(),
            body: 0..0,
        });
    }
    let ends: Vec<usize> = keys
        .iter()
        .skip(1)
        .map(|k| k.line)
        .chain([lines.len()])
        .collect();
    for (key, end) in keys.iter_mut().zip(ends) {
        key.body = key.line + 1..end;
    }
    Ok(Scan {
        lines,
        keys,
        has_content,
    })
}

/// A top-level value that opens a quote or flow collection must close it on
/// the same line; otherwise its continuation lines could look like keys.
fn check_one_line_value(i: usize, rest: &str) -> Result<(), Unsupported> {
    let v = rest.trim_start_matches(' ');
    let closed = match v.as_bytes().first() {
        Some(b'"' | b'\'') => closing_quote(v).is_some(),
        Some(b'[' | b'{') => {
            let opens = v.matches(['[', '{']).count();
            let closes = v.matches([']', '}']).count();
            opens == closes
        }
        _ => true,
    };
    if closed {
        Ok(())
    } else {
        refuse(i, "a top-level value that continues on the next line")
    }
}

/// One item of a block list: lines `start..end`, trailing blank and
/// outdented comment lines excluded (they stay where they are).
#[derive(Debug, Clone)]
struct Item {
    start: usize,
    end: usize,
    name: Option<String>,
}

/// What one of the lists looks like in the file.
#[derive(Debug, Clone)]
enum ListState {
    /// No such key.
    Missing,
    /// `key: null`, `key: []`, `key: ~` or `key:` with nothing under it.
    Empty { line: usize },
    /// A block list with `-` at column `indent`.
    Block { indent: usize, items: Vec<Item> },
}

impl Scan<'_> {
    fn key(&self, name: &str) -> Option<&TopKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    fn content_lines(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = usize> + '_ {
        range.filter(|&i| is_content(self.lines[i].text))
    }

    fn list(&self, list: List) -> Result<ListState, Unsupported> {
        let Some(key) = self.key(list.key()) else {
            return Ok(ListState::Missing);
        };
        let name = list.key();
        let first = self.content_lines(key.body.clone()).next();
        let value = strip_comment(&key.value);
        match (value, first) {
            ("", None) => Ok(ListState::Empty { line: key.line }),
            ("", Some(first)) => self.block_list(name, key, first),
            (v, None) if is_null(v) || is_empty_flow(v) => Ok(ListState::Empty { line: key.line }),
            (v, _) if v.starts_with('[') && !is_empty_flow(v) => refuse(
                key.line,
                format!("{name} is a flow-style list ([...]) with entries"),
            ),
            (_, None) => refuse(key.line, format!("{name} is not a list")),
            (_, Some(first)) => refuse(first, format!("unexpected text under {name}")),
        }
    }

    fn block_list(&self, name: &str, key: &TopKey, first: usize) -> Result<ListState, Unsupported> {
        let indent = indent_of(self.lines[first].text);
        let mut starts = Vec::new();
        for i in self.content_lines(key.body.clone()) {
            let s = self.lines[i].text;
            if s.contains('\t') {
                return refuse(i, format!("a tab in {name}"));
            }
            if has_node_property(s) {
                return refuse(
                    i,
                    format!("an anchor, alias, tag or merge key (&, *, !, <<) in {name}"),
                );
            }
            let at = indent_of(s);
            let rest = &s[at..];
            if at == indent && (rest == "-" || rest.starts_with("- ")) {
                starts.push(i);
            } else if at <= indent {
                return refuse(i, format!("{name} is not a list of entries"));
            }
        }
        let mut items = Vec::with_capacity(starts.len());
        for (n, &start) in starts.iter().enumerate() {
            let limit = starts.get(n + 1).copied().unwrap_or(key.body.end);
            let end = (start..limit)
                .rev()
                .find(|&i| self.belongs_to_item(i, indent))
                .map_or(start + 1, |i| i + 1);
            let item_name = self.item_name(name, start, end, indent)?;
            items.push(Item {
                start,
                end,
                name: item_name,
            });
        }
        Ok(ListState::Block { indent, items })
    }

    /// Content lines and comments indented past the `-` belong to the
    /// item; blank lines and comments at or left of the `-` do not.
    fn belongs_to_item(&self, i: usize, indent: usize) -> bool {
        let s = self.lines[i].text;
        is_content(s) || (!s.trim().is_empty() && indent_of(s) > indent)
    }

    /// The `name:` of the mapping that is the item at lines `start..end`.
    fn item_name(
        &self,
        list: &str,
        start: usize,
        end: usize,
        indent: usize,
    ) -> Result<Option<String>, Unsupported> {
        let first = self.lines[start].text;
        let after_dash = &first[indent + 1..];
        let inline = after_dash.trim_start_matches(' ');
        let mut entries: Vec<(usize, &str)> = Vec::new();
        let map_indent = if is_content(inline) {
            entries.push((start, inline));
            indent + 1 + (after_dash.len() - inline.len())
        } else {
            match self.content_lines(start + 1..end).next() {
                Some(i) => indent_of(self.lines[i].text),
                None => return Ok(None),
            }
        };
        for i in self.content_lines(start + 1..end) {
            let s = self.lines[i].text;
            match indent_of(s) {
                at if at == map_indent => entries.push((i, &s[at..])),
                at if at > map_indent => {}
                _ => return refuse(i, format!("unexpected indentation in an entry of {list}")),
            }
        }
        let mut name = None;
        for (i, entry) in entries {
            if entry == "-" || entry.starts_with("- ") {
                // A list value written at the same indentation as its key.
                continue;
            }
            let Some((key, rest)) = plain_key(entry) else {
                return refuse(i, format!("an entry of {list} that is not a plain mapping"));
            };
            if key != "name" {
                continue;
            }
            if name.is_some() {
                return refuse(i, format!("an entry of {list} with two names"));
            }
            name = Some(
                parse_scalar(rest)
                    .map_err(|why| Unsupported {
                        line: i + 1,
                        reason: format!("cannot read the name ({why})"),
                    })?
                    .unwrap_or_default(),
            );
        }
        Ok(name)
    }
}

fn strip_comment(value: &str) -> &str {
    let v = value.trim();
    if v.starts_with('#') {
        return "";
    }
    match v.find(" #") {
        Some(at) if !v.starts_with(['"', '\'']) => v[..at].trim_end(),
        _ => v,
    }
}

fn is_null(v: &str) -> bool {
    matches!(v, "null" | "Null" | "NULL" | "~")
}

fn is_empty_flow(v: &str) -> bool {
    v.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .is_some_and(|inner| inner.trim().is_empty())
}

// ---------------------------------------------------------------------------
// Merging
// ---------------------------------------------------------------------------

/// A replacement of bytes `start..end` of the original text.
#[derive(Debug)]
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

/// Merges `kc` into the kubeconfig `existing`: our item replaces the item
/// with the same name in `clusters`, `contexts` and `users`, or is appended
/// to the list (which is created if missing, null or `[]`); `current-context`
/// becomes ours. All other bytes are kept as they are.
pub fn merge(existing: &str, kc: &Kubeconfig) -> Result<Merged, Unsupported> {
    let scan = scan(existing)?;
    if !scan.has_content {
        // Only blank lines and comments: keep them, add the document.
        let mut text = existing.to_string();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&document(kc));
        return Ok(Merged {
            text,
            previous_context: None,
        });
    }
    let mut edits = Vec::new();
    let mut appended = String::new();
    let mut expected = Vec::new();
    for list in List::ALL {
        let (count, edit) = list_edit(&scan, list, kc)?;
        expected.push(count);
        match edit {
            Some(edit) => edits.push(edit),
            None => {
                appended.push_str(list.key());
                appended.push_str(":\n");
                appended.push_str(&item(list, kc, 0));
            }
        }
    }
    let previous_context = match scan.key("current-context") {
        Some(key) => {
            edits.push(current_context_edit(&scan, key, &kc.name)?);
            parse_scalar(&key.value)
                .unwrap_or_default()
                .filter(|c| !c.is_empty())
        }
        None => {
            appended.push_str(&current_context_line(&kc.name));
            None
        }
    };
    let text = apply(existing, edits, &appended);
    verify(&text, kc, &expected)?;
    Ok(Merged {
        text,
        previous_context,
    })
}

/// The edit that puts our item into `list`, and how many items the list
/// has afterwards. `None` means the key is missing and must be appended.
fn list_edit(
    scan: &Scan,
    list: List,
    kc: &Kubeconfig,
) -> Result<(usize, Option<Edit>), Unsupported> {
    Ok(match scan.list(list)? {
        ListState::Missing => (1, None),
        ListState::Empty { line } => {
            let l = scan.lines[line];
            let text = format!("{}:\n{}", list.key(), item(list, kc, 0));
            (
                1,
                Some(Edit {
                    start: l.start,
                    end: l.end,
                    text,
                }),
            )
        }
        ListState::Block { indent, items } => {
            let ours: Vec<&Item> = items
                .iter()
                .filter(|i| i.name.as_deref() == Some(kc.name.as_str()))
                .collect();
            match ours.as_slice() {
                [] => {
                    // `items` is never empty for a block list.
                    let last = items.last().map_or(0, |i| i.end - 1);
                    let l = scan.lines[last];
                    let newline = if l.has_newline() { "" } else { "\n" };
                    let text = format!("{newline}{}", item(list, kc, indent));
                    (
                        items.len() + 1,
                        Some(Edit {
                            start: l.end,
                            end: l.end,
                            text,
                        }),
                    )
                }
                [one] => (
                    items.len(),
                    Some(Edit {
                        start: scan.lines[one.start].start,
                        end: scan.lines[one.end - 1].end,
                        text: item(list, kc, indent),
                    }),
                ),
                [_, second, ..] => {
                    return refuse(
                        second.start,
                        format!("{} has two entries named {:?}", list.key(), kc.name),
                    );
                }
            }
        }
    })
}

fn current_context_edit(scan: &Scan, key: &TopKey, name: &str) -> Result<Edit, Unsupported> {
    if let Some(i) = scan.content_lines(key.body.clone()).next() {
        return refuse(i, "current-context continues on the next line");
    }
    if let Err(why) = parse_scalar(&key.value) {
        return refuse(key.line, format!("cannot read current-context ({why})"));
    }
    let l = scan.lines[key.line];
    Ok(Edit {
        start: l.start,
        end: l.end,
        text: current_context_line(name),
    })
}

fn apply(existing: &str, mut edits: Vec<Edit>, appended: &str) -> String {
    edits.sort_by_key(|e| (e.start, e.end));
    let mut out = String::with_capacity(existing.len() + 4096);
    let mut at = 0;
    for edit in edits {
        out.push_str(&existing[at..edit.start]);
        out.push_str(&edit.text);
        at = edit.end;
    }
    out.push_str(&existing[at..]);
    if !appended.is_empty() {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(appended);
    }
    out
}

/// Re-reads the merged text: each list must hold exactly one item of ours
/// and the expected number of items, and `current-context` must be ours.
/// A failure here is a bug in the merge, caught before anything is written.
fn verify(text: &str, kc: &Kubeconfig, expected: &[usize]) -> Result<(), Unsupported> {
    let bug = |what: &str| Unsupported {
        line: 0,
        reason: format!("the merged text failed a self-check ({what}); please report this"),
    };
    let scan = scan(text).map_err(|_| bug("unreadable"))?;
    for (list, count) in List::ALL.into_iter().zip(expected) {
        let ListState::Block { items, .. } = scan.list(list).map_err(|_| bug(list.key()))? else {
            return Err(bug(list.key()));
        };
        let ours = items
            .iter()
            .filter(|i| i.name.as_deref() == Some(kc.name.as_str()))
            .count();
        if ours != 1 || items.len() != *count {
            return Err(bug(list.key()));
        }
    }
    let current = scan
        .key("current-context")
        .and_then(|k| parse_scalar(&k.value).ok().flatten());
    if current.as_deref() != Some(kc.name.as_str()) {
        return Err(bug("current-context"));
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
    let (text, mode, created, previous_context) = match read_existing(&target) {
        Ok(bytes) => {
            let mode = fs::metadata(&target)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0o600);
            let existing = String::from_utf8(bytes)
                .map_err(|_| cannot_merge(&target, "the file is not UTF-8 text".to_string()))?;
            let merged = merge(&existing, kc).map_err(|u| cannot_merge(&target, u.to_string()))?;
            (merged.text, mode, false, merged.previous_context)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => (document(kc), 0o600, true, None),
        Err(e) => {
            return Err(Error::local(format!(
                "cannot read {}: {e}",
                target.display()
            )));
        }
    };
    replace_file(&target, &dir, text.as_bytes(), mode)?;
    Ok(Written {
        path: target,
        created,
        previous_context,
    })
}

/// Largest kubeconfig merged into: real ones with embedded certificates
/// are tens of KiB; a FIFO or a runaway file must not hang or exhaust us.
const MAX_KUBECONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// The current kubeconfig, read as a bounded regular file
/// ([`crate::files::read_regular_file`]); `NotFound` when there is none.
fn read_existing(target: &Path) -> std::io::Result<Vec<u8>> {
    fs::metadata(target)?;
    crate::files::read_regular_file(target, MAX_KUBECONFIG_BYTES).map_err(std::io::Error::other)
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
    crate::files::create_owned_dir(dir).map_err(|why| {
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

/// Writes a temp file next to `target` with `mode`, fsyncs it and renames it
/// over `target`, then fsyncs the directory: readers see the old file or the
/// new one, never a mix, even after a crash.
fn replace_file(target: &Path, dir: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".to_string());
    let tmp = dir.join(format!(".{file_name}.dexcred-{}.tmp", std::process::id()));
    let fail = |e: std::io::Error| Error::local(format!("cannot write {}: {e}", target.display()));
    // A leftover from a run that died with our pid; we hold the lock.
    let _ = fs::remove_file(&tmp);
    let result = write_synced(&tmp, bytes, mode).and_then(|()| fs::rename(&tmp, target));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(fail(e));
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(fail)
}

fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    // The umask may have narrowed `mode`; the copy must match the original.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.sync_all()
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

    /// What `kubectl config set-cluster/set-credentials/set-context` writes.
    const KUBECTL_STYLE: &str = "\
apiVersion: v1
clusters:
- cluster:
    server: https://other.example:6443
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

    fn ours(list: List, indent: usize) -> String {
        item(list, &kc("dev"), indent)
    }

    #[test]
    fn appends_to_kubectl_style_lists_keeping_every_other_byte() {
        let m = merged(KUBECTL_STYLE, "dev");
        let expected = KUBECTL_STYLE
            .replace(
                "  name: other\ncontexts:\n",
                &format!("  name: other\n{}contexts:\n", ours(List::Clusters, 0)),
            )
            .replace(
                "  name: other\ncurrent-context: other\n",
                &format!(
                    "  name: other\n{}current-context: \"dev\"\n",
                    ours(List::Contexts, 0)
                ),
            )
            + &ours(List::Users, 0);
        assert_eq!(m.text, expected);
        assert_eq!(m.previous_context.as_deref(), Some("other"));
    }

    #[test]
    fn replaces_the_item_with_our_name_in_place() {
        let old =
            "- cluster:\n    server: https://old.example\n    # a comment inside\n  name: dev\n";
        let zed = "- cluster:\n    server: https://z\n  name: zed\n";
        let existing = KUBECTL_STYLE.replace(
            "  name: other\ncontexts:\n",
            &format!("  name: other\n{old}{zed}contexts:\n"),
        );
        let m = merged(&existing, "dev");
        let expected = merged(KUBECTL_STYLE, "dev").text.replace(
            &ours(List::Clusters, 0),
            &format!("{}{zed}", ours(List::Clusters, 0)),
        );
        assert_eq!(m.text, expected);
        // Merging again changes nothing: replace, never duplicate.
        assert_eq!(merged(&m.text, "dev").text, m.text);
    }

    /// A cluster entry in one of the styles found in the wild.
    fn other_cluster(name: &str, indent: usize, name_first: bool, comment: bool) -> String {
        let pad = " ".repeat(indent);
        let note = if comment {
            format!("{pad}    # about {name}\n")
        } else {
            String::new()
        };
        if name_first {
            format!(
                "{pad}- name: {name}\n{pad}  cluster:\n{note}{pad}    server: https://{name}.example\n"
            )
        } else {
            format!(
                "{pad}- cluster:\n{note}{pad}    server: https://{name}.example\n{pad}  name: {name}\n"
            )
        }
    }

    proptest::proptest! {
        /// Whatever the other entries look like, the merge changes exactly
        /// our entry (or adds it after the last one) and nothing else.
        #[test]
        fn only_our_entry_changes(
            others in proptest::collection::vec(("[a-z]{1,8}", proptest::bool::ANY, proptest::bool::ANY), 1..6),
            ours_at in proptest::option::of(0usize..6),
            indent in proptest::sample::select(vec![0usize, 2, 4]),
            between in proptest::sample::select(vec!["", "\n", "# between\n"]),
        ) {
            let others: Vec<_> = others.into_iter().filter(|(n, _, _)| n != "dev").collect();
            let mut before = Vec::new();
            let mut after = Vec::new();
            for (n, first, comment) in &others {
                before.push(other_cluster(n, indent, *first, *comment));
                after.push(other_cluster(n, indent, *first, *comment));
            }
            match ours_at {
                Some(at) => {
                    let at = at.min(before.len());
                    before.insert(at, other_cluster("dev", indent, false, true));
                    after.insert(at, ours(List::Clusters, indent));
                }
                None => {
                    let last = after.len().saturating_sub(1);
                    if let Some(item) = after.get_mut(last) {
                        item.push_str(&ours(List::Clusters, indent));
                    } else {
                        after.push(ours(List::Clusters, indent));
                    }
                }
            }
            let head = "apiVersion: v1\nclusters:\n";
            let tail = "# after the list\ncontexts: []\ncurrent-context: x\nkind: Config\nusers: null\n";
            let existing = format!("{head}{}{tail}", before.join(between));
            let expected = format!(
                "{head}{}{}",
                after.join(between),
                tail.replace("contexts: []\n", &format!("contexts:\n{}", ours(List::Contexts, 0)))
                    .replace("current-context: x\n", "current-context: \"dev\"\n")
                    .replace("users: null\n", &format!("users:\n{}", ours(List::Users, 0)))
            );
            let m = merge(&existing, &kc("dev"));
            proptest::prop_assert_eq!(m.map(|m| m.text), Ok(expected));
        }
    }

    #[test]
    fn null_empty_and_missing_lists() {
        let existing = "apiVersion: v1\nclusters: null\ncontexts: []\nkind: Config\n# end\n";
        let m = merged(existing, "dev");
        let expected = format!(
            "apiVersion: v1\nclusters:\n{}contexts:\n{}kind: Config\n# end\nusers:\n{}current-context: \"dev\"\n",
            ours(List::Clusters, 0),
            ours(List::Contexts, 0),
            ours(List::Users, 0)
        );
        assert_eq!(m.text, expected);
        assert_eq!(m.previous_context, None);
        for empty in [
            "clusters: ~\n",
            "clusters: [ ]\n",
            "clusters:\n",
            "clusters: # none\n",
        ] {
            let m = merged(&format!("apiVersion: v1\n{empty}kind: Config\n"), "dev");
            assert!(
                m.text.starts_with(&format!(
                    "apiVersion: v1\nclusters:\n{}kind: Config\n",
                    ours(List::Clusters, 0)
                )),
                "{empty:?}: {}",
                m.text
            );
        }
    }

    #[test]
    fn indented_lists_get_indented_items() {
        let existing = "\
apiVersion: v1
kind: Config
clusters:
  - name: other
    cluster:
      server: https://other.example

  # trailing comment of the list
users:
  -
    name: dev
    user:
      token: old
  - name: bob
    user:
      token: abc
contexts: []
current-context: 'it''s'
";
        let m = merged(existing, "dev");
        let expected = existing
            .replace(
                "      server: https://other.example\n",
                &format!(
                    "      server: https://other.example\n{}",
                    ours(List::Clusters, 2)
                ),
            )
            .replace(
                "  -\n    name: dev\n    user:\n      token: old\n",
                &ours(List::Users, 2),
            )
            .replace(
                "contexts: []\n",
                &format!("contexts:\n{}", ours(List::Contexts, 0)),
            )
            .replace("current-context: 'it''s'\n", "current-context: \"dev\"\n");
        assert_eq!(m.text, expected);
        assert_eq!(m.previous_context.as_deref(), Some("it's"));
    }

    #[test]
    fn names_in_any_scalar_style_are_recognised() {
        for name_line in [
            "name: dev",
            "name: \"dev\"",
            "name: 'dev'",
            "name: dev # mine",
        ] {
            let existing = format!("clusters:\n- cluster:\n    server: https://x\n  {name_line}\n");
            let m = merged(&existing, "dev");
            assert_eq!(
                m.text,
                format!(
                    "clusters:\n{}contexts:\n{}users:\n{}current-context: \"dev\"\n",
                    ours(List::Clusters, 0),
                    ours(List::Contexts, 0),
                    ours(List::Users, 0)
                ),
                "{name_line}"
            );
        }
    }

    #[test]
    fn a_file_without_final_newline_is_extended_cleanly() {
        let existing = "clusters:\n- name: a\n  cluster:\n    server: https://a";
        let m = merged(existing, "dev");
        assert!(
            m.text
                .starts_with(&format!("{existing}\n{}", ours(List::Clusters, 0)))
        );
    }

    #[test]
    fn empty_or_comment_only_files_get_the_whole_document() {
        assert_eq!(merged("", "dev").text, document(&kc("dev")));
        assert_eq!(
            merged("# my config\n\n", "dev").text,
            format!("# my config\n\n{}", document(&kc("dev")))
        );
        assert_eq!(
            merged("---\n", "dev")
                .text
                .lines()
                .filter(|l| *l == "---")
                .count(),
            1
        );
    }

    #[test]
    fn our_own_document_merges_into_itself_unchanged() {
        let doc = document(&kc("dev"));
        assert_eq!(merged(&doc, "dev").text, doc);
        let two = merged(&doc, "prod").text;
        assert_eq!(merged(&two, "prod").text, two);
        assert_eq!(
            merged(&two, "dev").text,
            two.replace("current-context: \"prod\"", "current-context: \"dev\"")
        );
    }

    #[test]
    fn refuses_what_a_text_merge_cannot_do_safely() {
        let cases = [
            (
                "clusters: [{name: a, cluster: {server: https://a}}]\n",
                "flow-style",
            ),
            ("clusters:\n- name: a\n  cluster:\n\tserver: x\n", "tab"),
            ("clusters:\n- &base\n  name: a\n", "anchor"),
            ("clusters:\n- name: a\n  cluster: *base\n", "anchor"),
            ("users:\n- name: a\n  user:\n    <<: *defaults\n", "anchor"),
            ("clusters:\n- !!map\n  name: a\n", "anchor"),
            (
                "apiVersion: v1\n---\napiVersion: v1\n",
                "several YAML documents",
            ),
            ("{\"apiVersion\": \"v1\", \"clusters\": []}\n", "JSON"),
            ("clusters:\n- name: dev\n- name: dev\n", "two entries named"),
            ("clusters: []\r\nkind: Config\r\n", "carriage return"),
            ("current-context: \"a\n  b\"\n", "continues"),
            ("current-context: |\n  a\n", "current-context"),
            ("clusters:\n- name: |\n    dev\n", "cannot read the name"),
            ("clusters:\n  name: a\n", "not a list"),
            ("clusters: a\n", "not a list"),
            ("clusters: []\nclusters: []\n", "twice"),
            ("  apiVersion: v1\n", "indented"),
            (
                "clusters:\n  - name: a\n - name: b\n",
                "not a list of entries",
            ),
            ("\u{feff}apiVersion: v1\n", "byte order mark"),
            ("foo: \"multi\nclusters: []\"\n", "continues"),
        ];
        for (text, why) in cases {
            let e = refused(text);
            assert!(e.to_string().contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn anchors_elsewhere_and_quoted_look_alikes_are_fine() {
        let existing = "\
defaults: &d {a: 1}
clusters:
- name: a
  cluster:
    server: \"https://a\"
    extensions:
    - name: \"x: *y & !z\"
      extension: {}
";
        let m = merged(existing, "dev");
        assert!(m.text.starts_with(existing), "{}", m.text);
    }

    #[test]
    fn quote_is_json_and_escapes_what_yaml_rejects() {
        for s in [
            "plain",
            "a\"b\\c",
            "line\nbreak\ttab",
            "\u{7f}\u{85}\u{2028}\u{feff}",
            "ünï ✓ 🦀",
        ] {
            let q = quote(s);
            assert_eq!(serde_json::from_str::<String>(&q).unwrap(), s);
            assert!(
                !q.contains(['\n', '\t', '\u{7f}', '\u{85}', '\u{2028}', '\u{feff}']),
                "{q}"
            );
        }
        assert_eq!(quote("a\u{2028}"), "\"a\\u2028\"");
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
        let text = "clusters: [{name: a}]\n";
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
