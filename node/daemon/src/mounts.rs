//! `mounts.yaml`: strict parsing into raw structs, validation into [`MountSpec`]s with
//! errors that name the file, the mount and the key, and the pure reload plan.
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
pub const DEFAULT_MOUNTS_YAML: &str = include_str!("../../../mounts/mounts.yaml");

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
}

/// Who signs a mount's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerSource {
    /// A PEM file (relative paths are in the node home) or inline PEM.
    Private(String),
    /// A passphrase (derives the owner and the masking key).
    Passphrase(String),
}

/// A validated mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec {
    /// Mount point (absolute).
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
}

/// What a reload does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountAction {
    /// Unmount this path.
    Unmount(PathBuf),
    /// Mount this spec.
    Mount(MountSpec),
}

/// Parses and validates `mounts.yaml` text; `file` names it in errors.
pub fn parse(text: &str, file: &Path) -> anyhow::Result<Vec<MountSpec>> {
    let f = file.display();
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let raw: Option<Vec<RawMount>> = serde_saphyr::from_str(text).map_err(|e| {
        // The YAML error names the key and the line; say which mount that line is in.
        let line = e.location().map(|l| l.line() as usize);
        match line.and_then(|l| mount_at_line(text, l)) {
            Some(i) => anyhow::anyhow!("{}: {e}", which_mount(file, i, path_of(text, i))),
            None => anyhow::anyhow!("{f}: {e}"),
        }
    })?;
    let mut out: Vec<MountSpec> = Vec::new();
    for (i, m) in raw.unwrap_or_default().into_iter().enumerate() {
        let which = which_mount(file, i, m.path.clone());
        let path = match m.path {
            Some(p) if p.starts_with('/') && p.len() > 1 => PathBuf::from(p),
            Some(p) => bail!("{which}: key `path`: {p:?} must be an absolute path other than /"),
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
        if out.iter().any(|o| o.path == path) {
            bail!("{which}: key `path`: {} is mounted twice", path.display());
        }
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
        });
    }
    Ok(out)
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
pub fn load(file: &Path) -> anyhow::Result<Vec<MountSpec>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    parse(&text, file)
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
