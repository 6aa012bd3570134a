//! `mounts.yaml`: strict parsing into raw structs, validation into [`MountSpec`]s with
//! errors that name the file, the mount and the key, mount path canonicalisation, and
//! the pure reload plan.
//!
//! The file may hold secrets (passphrases, inline keys, masking keys): errors never
//! quote its source (serde-saphyr's snippet is turned off, and any secret value that
//! still shows up in a message is replaced), and `Debug` of a spec redacts them.
//!
//! YAML is read with `serde-saphyr`: pure safe Rust, typed deserialization with
//! `deny_unknown_fields`, line/column in errors, limits against YAML bombs, and
//! maintained (`serde_yaml` is deprecated and archived; `serde_yml` has unsoundness
//! advisories).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// Default largest file of a mount (bytes).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 64 << 20;

/// The shipped default `mounts.yaml` (written into a home that has none).
pub const DEFAULT_MOUNTS_YAML: &str = include_str!("../../../../mounts/mounts.yaml");

/// One mount as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMount {
    path: Option<String>,
    root: Option<String>,
    owner_private: Option<String>,
    passphrase: Option<String>,
    masking_key: Option<String>,
    max_file_size: Option<u64>,
    allow_other: Option<bool>,
    read_only: Option<bool>,
    uid: Option<u32>,
    gid: Option<u32>,
    root_mode: Option<String>,
    allow_non_empty: Option<bool>,
    max_spill_bytes: Option<u64>,
}

/// Default bound of a mount's written, uncommitted data (spilled to `<home>/lffs-spill`).
pub const DEFAULT_MAX_SPILL_BYTES: u64 = 4 << 30;

/// Default permission bits of a mount's root directory.
pub const DEFAULT_ROOT_MODE: u32 = 0o755;

/// Keys whose values are secrets (never shown in errors or logs).
const SECRET_KEYS: [&str; 3] = ["passphrase", "owner_private", "masking_key"];

/// Who signs a mount's records.
#[derive(Clone, PartialEq, Eq)]
pub enum OwnerSource {
    /// A PEM file (relative paths are in the node home) or inline PEM.
    Private(String),
    /// A passphrase (derives the owner and the masking key).
    Passphrase(String),
}

impl std::fmt::Debug for OwnerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OwnerSource::Private(t) if t.contains("-----BEGIN") => f.write_str("Private(<inline>)"),
            OwnerSource::Private(path) => write!(f, "Private({path:?})"),
            OwnerSource::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
        }
    }
}

/// A validated mount.
#[derive(Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// Mount point: absolute and canonical (no `.`, `..`, `//` or trailing `/`; symlinked
    /// parents resolved by [`load`]).
    pub path: PathBuf,
    /// Root selector name.
    pub root: String,
    /// Owner.
    pub owner: OwnerSource,
    /// Explicit masking key.
    pub masking_key: Option<String>,
    /// Largest file.
    pub max_file_size: u64,
    /// Let other users (containers) use the mount.
    pub allow_other: bool,
    /// Refuse changes.
    pub read_only: bool,
    /// uid shown for the owner's files (default: the node's).
    pub uid: Option<u32>,
    /// gid shown (default: the node's).
    pub gid: Option<u32>,
    /// Permission bits of the root directory.
    pub root_mode: u32,
    /// Mount over a directory that holds files (hiding them while mounted).
    pub allow_non_empty: bool,
    /// Most bytes of written, uncommitted data the mount's open files may hold.
    pub max_spill_bytes: u64,
}

impl std::fmt::Debug for MountSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountSpec")
            .field("path", &self.path)
            .field("root", &self.root)
            .field("owner", &self.owner)
            .field(
                "masking_key",
                &self.masking_key.as_ref().map(|_| "<redacted>"),
            )
            .field("max_file_size", &self.max_file_size)
            .field("allow_other", &self.allow_other)
            .field("read_only", &self.read_only)
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("root_mode", &format_args!("{:#o}", self.root_mode))
            .field("allow_non_empty", &self.allow_non_empty)
            .field("max_spill_bytes", &self.max_spill_bytes)
            .finish()
    }
}

/// What a reload does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountAction {
    /// Unmount this path.
    Unmount(PathBuf),
    /// Mount this spec.
    Mount(MountSpec),
}

/// Parses and validates `mounts.yaml` text; `file` names it in errors. Paths are
/// canonicalised lexically only ([`load`] also resolves symlinks).
#[cfg(test)]
pub fn parse(text: &str, file: &Path) -> anyhow::Result<Vec<MountSpec>> {
    parse_with(text, file, Path::to_path_buf)
}

/// [`parse`], with `resolve` applied to each lexically normalised path before paths are
/// compared (two entries on one path, one mount inside another).
fn parse_with(
    text: &str,
    file: &Path,
    resolve: impl Fn(&Path) -> PathBuf,
) -> anyhow::Result<Vec<MountSpec>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let raw: Option<Vec<RawMount>> =
        serde_saphyr::from_str(text).map_err(|e| yaml_error(&e, text, file))?;
    let mut out: Vec<MountSpec> = Vec::new();
    // What each accepted mount was written as, for errors naming two mounts.
    let mut written: Vec<String> = Vec::new();
    for (i, m) in raw.unwrap_or_default().into_iter().enumerate() {
        let which = which_mount(file, i, m.path.clone());
        let (path, as_written) = match m.path {
            Some(p) => match normalize(&p) {
                Some(n) => (resolve(&n), p),
                None => bail!("{which}: key `path`: {p:?} must be an absolute path other than /"),
            },
            None => bail!("{which}: key `path` is missing"),
        };
        let root = match m.root {
            Some(r) if !r.trim().is_empty() => r,
            _ => bail!("{which}: key `root` (the root selector name) is missing or empty"),
        };
        let owner = match (m.owner_private, m.passphrase) {
            (Some(_), Some(_)) => {
                bail!("{which}: keys `owner_private` and `passphrase` exclude each other")
            }
            (Some(o), None) if !o.trim().is_empty() => OwnerSource::Private(o),
            (None, Some(p)) if !p.trim().is_empty() => OwnerSource::Passphrase(p),
            _ => bail!("{which}: an owner is required: key `owner_private` or `passphrase`"),
        };
        let max_file_size = m.max_file_size.unwrap_or(DEFAULT_MAX_FILE_SIZE);
        if max_file_size == 0 {
            bail!("{which}: key `max_file_size` must be above 0");
        }
        let max_spill_bytes = m.max_spill_bytes.unwrap_or(DEFAULT_MAX_SPILL_BYTES);
        if max_spill_bytes < max_file_size.min(1 << 20) {
            bail!(
                "{which}: key `max_spill_bytes` must be at least 1 MiB (or max_file_size, \
                 if smaller)"
            );
        }
        let root_mode = match m.root_mode {
            None => DEFAULT_ROOT_MODE,
            Some(t) => parse_mode(&t).ok_or_else(|| {
                anyhow::anyhow!(
                    "{which}: key `root_mode`: {t:?} is not permission bits in octal \
                     (000 to 777, e.g. \"0775\")"
                )
            })?,
        };
        for (j, (o, w)) in out.iter().zip(&written).enumerate() {
            let other = which_mount(file, j, Some(w.clone()));
            if o.path == path {
                bail!(
                    "{which}: key `path`: {as_written}{} is mounted twice: {other} mounts it too",
                    describe_resolved(&as_written, &path),
                );
            }
            let (outer, inner) = if path.starts_with(&o.path) {
                (&o.path, &path)
            } else if o.path.starts_with(&path) {
                (&path, &o.path)
            } else {
                continue;
            };
            bail!(
                "{which}: key `path`: a mount may not be inside another: {} is inside {} \
                 ({other})",
                inner.display(),
                outer.display(),
            );
        }
        written.push(as_written);
        out.push(MountSpec {
            path,
            root,
            owner,
            masking_key: m.masking_key,
            max_file_size,
            allow_other: m.allow_other.unwrap_or(false),
            read_only: m.read_only.unwrap_or(false),
            uid: m.uid,
            gid: m.gid,
            root_mode,
            allow_non_empty: m.allow_non_empty.unwrap_or(false),
            max_spill_bytes,
        });
    }
    Ok(out)
}

/// " (resolves to P)" when the written path differs from the canonical one.
fn describe_resolved(written: &str, path: &Path) -> String {
    if Path::new(written) == path {
        String::new()
    } else {
        format!(" (resolves to {})", path.display())
    }
}

/// A YAML error without the source excerpt serde-saphyr would quote (it may show a
/// passphrase a few lines away): the message, line and column, the mount the line is
/// in, and any secret value of the file that the message still holds replaced.
fn yaml_error(e: &serde_saphyr::Error, text: &str, file: &Path) -> anyhow::Error {
    let options = serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
    };
    let msg = redact(&e.without_snippet().render_with_options(options), text);
    let location = e.location();
    let at = match location {
        Some(l) if !msg.contains("line") => format!(" (line {}, column {})", l.line(), l.column()),
        _ => String::new(),
    };
    // Say which mount the line is in, and which key (if the line starts with one that
    // the message does not name already).
    let line = location.map(|l| l.line() as usize);
    let key = match line.and_then(|l| key_at_line(text, l)) {
        Some(k) if !msg.contains(&format!("`{k}`")) => format!("key `{k}`: "),
        _ => String::new(),
    };
    match line.and_then(|l| mount_at_line(text, l)) {
        Some(i) => anyhow::anyhow!("{}: {key}{msg}{at}", which_mount(file, i, path_of(text, i))),
        None => anyhow::anyhow!("{}: {key}{msg}{at}", file.display()),
    }
}

/// Every key a mount may have.
const KEYS: [&str; 13] = [
    "path",
    "root",
    "owner_private",
    "passphrase",
    "masking_key",
    "max_file_size",
    "allow_other",
    "read_only",
    "uid",
    "gid",
    "root_mode",
    "allow_non_empty",
    "max_spill_bytes",
];

/// The key a line (from 1) of the file sets, if it sets one of [`KEYS`].
fn key_at_line(text: &str, line: usize) -> Option<&'static str> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let l = l.trim_start().trim_start_matches("- ").trim_start();
    let (k, _) = l.split_once(':')?;
    KEYS.into_iter().find(|key| *key == k.trim())
}

/// `msg` with every value of a secret key found in `text` (read line by line, so it
/// works on text that does not parse) replaced by `<redacted>`.
fn redact(msg: &str, text: &str) -> String {
    let mut out = msg.to_string();
    for line in text.lines() {
        let l = line.trim_start().trim_start_matches("- ").trim_start();
        for key in SECRET_KEYS {
            let Some(rest) = l
                .strip_prefix(key)
                .and_then(|r| r.trim_start().strip_prefix(':'))
            else {
                continue;
            };
            let v = rest.trim();
            let unquoted = v.trim_matches(|c| c == '"' || c == '\'');
            for secret in [v, unquoted] {
                // Very short values would redact unrelated words; the snippet is off,
                // so a message holds a value only if it is the value in error.
                if secret.len() >= 4 {
                    out = out.replace(secret, "<redacted>");
                }
            }
        }
    }
    out
}

/// Octal permission bits, as chmod takes them: `755`, `0755`, `0o755` (quoted or not).
pub fn parse_mode(text: &str) -> Option<u32> {
    let t = text.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return None;
    }
    let mode = u32::from_str_radix(digits, 8).ok()?;
    (mode <= 0o777).then_some(mode)
}

/// The lexical canonical form of an absolute mount path: `.` and empty components
/// (`//`, a trailing `/`) dropped, `..` applied (never above `/`). None for a relative
/// path or one that is `/` itself.
pub fn normalize(path: &str) -> Option<PathBuf> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(PathBuf::from(format!("/{}", parts.join("/"))))
}

/// `path` (lexically normalised) with its longest existing prefix resolved through
/// symlinks. A path that is a dead FUSE mount cannot be resolved itself (ENOTCONN), so
/// its parent is.
pub fn resolve_existing(path: &Path) -> PathBuf {
    let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
    let mut at = path;
    loop {
        if let Ok(real) = std::fs::canonicalize(at) {
            let mut p = real;
            p.extend(rest.iter().rev());
            return p;
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                at = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// "FILE: mount N (PATH)" for the `index`th mount (from 0).
fn which_mount(file: &Path, index: usize, path: Option<String>) -> String {
    match path {
        Some(p) => format!("{}: mount {} ({p})", file.display(), index + 1),
        None => format!("{}: mount {}", file.display(), index + 1),
    }
}

/// Which mount (from 0) a line (from 1) of the file belongs to: the top-level list
/// items are the lines starting with `-`. None before the first item or for a file
/// written in flow style.
fn mount_at_line(text: &str, line: usize) -> Option<usize> {
    let items = text
        .lines()
        .take(line)
        .filter(|l| l.starts_with('-'))
        .count();
    items.checked_sub(1)
}

/// The `index`th mount's `path`, read loosely (for error messages only).
fn path_of(text: &str, index: usize) -> Option<String> {
    let loose: Vec<serde_json::Value> = serde_saphyr::from_str(text).ok()?;
    Some(loose.get(index)?.get("path")?.as_str()?.to_string())
}

/// Reads and parses a `mounts.yaml` file.
/// Symlinked parents of each mount path are resolved where they exist.
pub fn load(file: &Path) -> anyhow::Result<Vec<MountSpec>> {
    let text = load_text(file)?;
    parse_with(&text, file, resolve_existing)
}

/// The file's text.
pub fn load_text(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

/// Whether the text sets a secret inline: a passphrase, a masking key or an inline
/// private key (a file that does should be readable by the node's user only).
pub fn holds_secrets(text: &str) -> bool {
    text.lines().any(|line| {
        let l = line.trim_start().trim_start_matches("- ").trim_start();
        l.starts_with("passphrase:") || l.starts_with("masking_key:")
    }) || text.contains("-----BEGIN")
}

/// What to do to go from the running mounts to the configured ones: unmount what is
/// gone or changed (first), then mount what is new or changed. Unchanged mounts are
/// left alone.
pub fn plan(running: &[MountSpec], wanted: &[MountSpec]) -> Vec<MountAction> {
    let mut actions = Vec::new();
    for r in running {
        if !wanted.contains(r) {
            actions.push(MountAction::Unmount(r.path.clone()));
        }
    }
    for w in wanted {
        if !running.contains(w) {
            actions.push(MountAction::Mount(w.clone()));
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> anyhow::Result<Vec<MountSpec>> {
        parse(text, Path::new("/h/mounts.yaml"))
    }

    fn err(text: &str) -> String {
        format!("{:#}", p(text).unwrap_err())
    }

    #[test]
    fn shipped_file_is_valid() {
        let m = p(DEFAULT_MOUNTS_YAML).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].path, PathBuf::from("/mnt/lf"));
    }

    #[test]
    fn full_mount() {
        let m = p(
            "- path: /mnt/a\n  root: com.example.config\n  passphrase: \"s3cret\"\n  \
                   max_file_size: 1000\n  allow_other: true\n  read_only: true\n  uid: 5\n",
        )
        .unwrap();
        assert_eq!(
            m[0],
            MountSpec {
                path: "/mnt/a".into(),
                root: "com.example.config".into(),
                owner: OwnerSource::Passphrase("s3cret".into()),
                masking_key: None,
                max_file_size: 1000,
                allow_other: true,
                read_only: true,
                uid: Some(5),
                gid: None,
                root_mode: 0o755,
                allow_non_empty: false,
                max_spill_bytes: DEFAULT_MAX_SPILL_BYTES,
            }
        );
        assert!(p("").unwrap().is_empty());
        assert!(p("[]").unwrap().is_empty());
    }

    #[test]
    fn errors_name_file_mount_and_key() {
        let e = err("- path: /mnt/a\n  root: r\n  passphrase: x\n  colour: blue\n");
        assert!(
            e.contains("/h/mounts.yaml: mount 1 (/mnt/a)") && e.contains("colour"),
            "{e}"
        );
        let e = err(
            "# shared config\n- path: /mnt/a\n  root: r\n  passphrase: x\n\
             - path: /mnt/b\n  root: r\n  passphrase: y\n  read_olny: true\n",
        );
        assert!(
            e.contains("/h/mounts.yaml: mount 2 (/mnt/b)") && e.contains("read_olny"),
            "{e}"
        );
        let e = err("- path: relative\n  root: r\n  passphrase: x\n");
        assert!(
            e.contains("mount 1 (relative)") && e.contains("`path`"),
            "{e}"
        );
        let e = err("- path: /mnt/a\n  root: r\n");
        assert!(e.contains("mount 1 (/mnt/a)") && e.contains("owner"), "{e}");
        let e = err("- path: /mnt/a\n  passphrase: x\n");
        assert!(e.contains("`root`"), "{e}");
        let e = err("- path: /mnt/a\n  root: r\n  passphrase: x\n  owner_private: k.pem\n");
        assert!(e.contains("exclude"), "{e}");
        let e =
            err("- path: /m\n  root: r\n  passphrase: x\n- path: /m\n  root: s\n  passphrase: y\n");
        assert!(e.contains("mount 2") && e.contains("twice"), "{e}");
        let e = err("- path: [oops");
        assert!(e.contains("/h/mounts.yaml"), "{e}");
        let e = err("- path: /m\n  root: r\n  passphrase: x\n  max_file_size: -3\n");
        assert!(e.contains("/h/mounts.yaml: mount 1 (/m)"), "{e}");
    }

    #[test]
    fn paths_are_canonical_and_compared_canonically() {
        assert_eq!(normalize("/mnt/a/../b"), Some("/mnt/b".into()));
        assert_eq!(normalize("//mnt///b/./"), Some("/mnt/b".into()));
        assert_eq!(normalize("/../../mnt"), Some("/mnt".into()));
        assert_eq!(normalize("/mnt/.."), None);
        assert_eq!(normalize("/"), None);
        assert_eq!(normalize("mnt/a"), None);
        let m = p("- path: /mnt//x/../a/\n  root: r\n  passphrase: x\n").unwrap();
        assert_eq!(m[0].path, PathBuf::from("/mnt/a"));
        // Two spellings of one path.
        let e = err("- path: /mnt/b\n  root: r\n  passphrase: x\n\
                     - path: /mnt/a/../b\n  root: s\n  passphrase: y\n");
        assert!(
            e.contains("/h/mounts.yaml: mount 2 (/mnt/a/../b): key `path`")
                && e.contains("resolves to /mnt/b")
                && e.contains("mount 1 (/mnt/b)"),
            "{e}"
        );
        // One inside another, in either order; the error names both.
        for yaml in [
            "- path: /mnt/a\n  root: r\n  passphrase: x\n- path: /mnt/a/in\n  root: s\n  passphrase: y\n",
            "- path: /mnt/a/in\n  root: s\n  passphrase: y\n- path: /mnt/a/\n  root: r\n  passphrase: x\n",
        ] {
            let e = err(yaml);
            assert!(
                e.contains("mount 2 (")
                    && e.contains("key `path`")
                    && e.contains("/mnt/a/in is inside /mnt/a (/h/mounts.yaml: mount 1"),
                "{e}"
            );
        }
        // Siblings sharing a prefix are not nested.
        assert_eq!(
            p("- path: /mnt/a\n  root: r\n  passphrase: x\n- path: /mnt/ab\n  root: s\n  passphrase: y\n")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn symlinked_parents_are_resolved() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, d.path().join("link")).unwrap();
        let real = std::fs::canonicalize(&real).unwrap();
        assert_eq!(
            resolve_existing(&d.path().join("link").join("not-yet").join("m")),
            real.join("not-yet").join("m")
        );
        let file = d.path().join("mounts.yaml");
        std::fs::write(
            &file,
            format!(
                "- path: {}/real/m\n  root: r\n  passphrase: x\n- path: {}/link/m\n  root: s\n  passphrase: y\n",
                d.path().display(),
                d.path().display()
            ),
        )
        .unwrap();
        let e = format!("{:#}", load(&file).unwrap_err());
        assert!(e.contains("mount 2") && e.contains("twice"), "{e}");
    }

    #[test]
    fn root_mode_and_allow_non_empty() {
        for (text, mode) in [
            ("0775", 0o775),
            ("\"0775\"", 0o775),
            ("0o700", 0o700),
            ("'755'", 0o755),
            ("0", 0),
        ] {
            let m = p(&format!(
                "- path: /m\n  root: r\n  passphrase: x\n  root_mode: {text}\n"
            ))
            .unwrap();
            assert_eq!(m[0].root_mode, mode, "{text}");
        }
        for bad in [
            "01777", "4755", "0o1000", "rwx", "\"\"", "0x1ff", "789", "-1",
        ] {
            let e = err(&format!(
                "- path: /m\n  root: r\n  passphrase: x\n  root_mode: {bad}\n"
            ));
            assert!(
                e.contains("/h/mounts.yaml: mount 1 (/m)") && e.contains("root_mode"),
                "{bad}: {e}"
            );
        }
        let m = p("- path: /m\n  root: r\n  passphrase: x\n  allow_non_empty: true\n").unwrap();
        assert!(m[0].allow_non_empty);
        assert_eq!(m[0].root_mode, DEFAULT_ROOT_MODE);
    }

    #[test]
    fn errors_and_debug_never_show_secrets() {
        let secret = "correct horse battery staple";
        // A passphrase two lines above an invalid value: serde-saphyr would quote it.
        let e = err(&format!(
            "- path: /m\n  passphrase: \"{secret}\"\n  root: r\n  max_file_size: lots\n"
        ));
        assert!(!e.contains("horse"), "{e}");
        assert!(
            e.contains("/h/mounts.yaml: mount 1 (/m): key `max_file_size`") && e.contains("line 4"),
            "{e}"
        );
        // A syntax error next to an inline key and a masking key.
        let e = err(&format!(
            "- path: /m\n  root: r\n  masking_key: {secret}\n  owner_private: \"-----BEGIN EC\n  read_only: [\n"
        ));
        assert!(!e.contains("horse") && !e.contains("BEGIN"), "{e}");
        // The value in error is itself the secret.
        let e = err(
            "- path: /m\n  root: r\n  passphrase: x\n  uid: \"sekrit-value\"\n  masking_key: sekrit-value\n",
        );
        assert!(!e.contains("sekrit"), "{e}");
        let m = p(&format!(
            "- path: /m\n  root: r\n  passphrase: {secret}\n  masking_key: {secret}\n"
        ))
        .unwrap();
        let d = format!("{:?}", m[0]);
        assert!(!d.contains("horse") && d.contains("redacted"), "{d}");
        assert!(holds_secrets(&format!(
            "- path: /m\n  passphrase: {secret}\n"
        )));
        assert!(!holds_secrets(DEFAULT_MOUNTS_YAML));
    }

    #[test]
    fn plan_from_data() {
        let a = p("- path: /a\n  root: r\n  passphrase: x\n")
            .unwrap()
            .remove(0);
        let b = p("- path: /b\n  root: r\n  passphrase: x\n")
            .unwrap()
            .remove(0);
        let mut b2 = b.clone();
        b2.read_only = true;
        assert_eq!(
            plan(&[], std::slice::from_ref(&a)),
            vec![MountAction::Mount(a.clone())]
        );
        assert_eq!(
            plan(std::slice::from_ref(&a), std::slice::from_ref(&a)),
            vec![]
        );
        assert_eq!(
            plan(std::slice::from_ref(&a), &[]),
            vec![MountAction::Unmount("/a".into())]
        );
        assert_eq!(
            plan(&[a.clone(), b.clone()], &[a.clone(), b2.clone()]),
            vec![MountAction::Unmount("/b".into()), MountAction::Mount(b2)]
        );
    }
}
