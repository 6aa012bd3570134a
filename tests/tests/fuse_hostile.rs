//! FUSE end-to-end tests of LFFS against records crafted by another owner (issue 16):
//! entries with bad names, duplicate names, kinds that point outside the mount, manifest
//! bombs, sizes that lie and missing chunks. The other owner ("evil") builds and signs
//! its records with lf-record and posts them to the node's `/post`, as any participant
//! of the network can. The directory still lists its good entries, each bad file fails
//! alone and fast with the errno `lffs/SEMANTICS.md` gives, and node RSS stays bounded.
//! Needs root and /dev/fuse, as in CI.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use lf_record::{OwnerSecret, RecordBuilder, RecordHash, RecordType};
use lf_tests::{FuseNode, TestNode, stderr, stdout};
use lffs::chunk::{self, ChunkRef};
use lffs::layout::{Body, Entry, FileData, chunk_selector, name_ordinal};

/// Records of the test network hold up to this many bytes.
const MAX_VALUE: u32 = 60_000;
/// The mount's root selector name (`FuseNode::start`).
const ROOT: &[u8] = b"test.root";
/// The mount's `max_file_size` (the default).
const MAX_FILE_SIZE: u64 = 64 << 20;
/// How long a bad file may take to fail.
const FAST: Duration = Duration::from_secs(2);
/// errno of a lookup that finds nothing.
const ENOENT: i32 = 2;

/// Deterministic bytes (xorshift), so chunks differ from one another.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Another owner of the network, publishing straight to the node's HTTP API.
struct Evil {
    owner: OwnerSecret,
    url: String,
    agent: ureq::Agent,
    links: Vec<RecordHash>,
    timestamp: u64,
}

impl Evil {
    fn new(node: &TestNode) -> Evil {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let body = agent
            .get(format!("{}/links", node.url()))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).expect("/links JSON");
        let links = v["Links"]
            .as_array()
            .expect("Links")
            .iter()
            .map(|h| h.as_str().unwrap().parse::<RecordHash>().unwrap())
            .collect();
        let mut x = 0x5EED_0E71_u64;
        let owner = OwnerSecret::generate(|b| {
            for c in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *c = x as u8;
            }
        });
        Evil {
            owner,
            url: format!("{}/post", node.url()),
            agent,
            links,
            timestamp: v["ServerTime"].as_u64().expect("ServerTime"),
        }
    }

    /// Signs a record (difficulty 0: no work) and posts it; panics unless the node
    /// stores it.
    fn post(&self, selector: &[u8], ordinal: u64, mask: &[u8], value: Vec<u8>) {
        let r = RecordBuilder::new(RecordType::Datum, self.timestamp)
            .value(value)
            .masking_key(mask.to_vec())
            .links(self.links.iter().copied())
            .selector(selector, ordinal)
            .build(&self.owner.public())
            .unwrap()
            .sign_without_work(&self.owner)
            .unwrap();
        let mut resp = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/octet-stream")
            .send(r.to_bytes())
            .unwrap();
        let code = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(code, 200, "post refused: {body}");
    }

    /// An entry in the directory `dir_sel`, under the ordinal of its name.
    fn entry(&self, dir_sel: &[u8], e: &Entry) {
        self.entry_at(dir_sel, name_ordinal(&e.name), e);
    }

    /// An entry under any ordinal (masked with the directory's selector name, as a mount
    /// without `masking_key` reads it).
    fn entry_at(&self, dir_sel: &[u8], ordinal: u64, e: &Entry) {
        self.post(dir_sel, ordinal, dir_sel, e.encode());
    }

    /// A chunk record; returns its reference.
    fn chunk(&self, data: &[u8]) -> ChunkRef {
        let r = ChunkRef {
            id: chunk::chunk_id(data),
            len: data.len() as u32,
        };
        self.post(&chunk_selector(&r.id), 0, &r.id, data.to_vec());
        r
    }
}

fn entry(name: &[u8], body: Body) -> Entry {
    let mode = match body {
        Body::Dir(_) => 0o755,
        Body::Symlink(_) => 0o777,
        _ => 0o644,
    };
    Entry {
        name: name.to_vec(),
        mode,
        mtime: now_nanos(),
        body,
    }
}

fn inline(name: &[u8], data: &[u8]) -> Entry {
    entry(name, Body::File(FileData::Inline(data.to_vec())))
}

fn chunked(name: &[u8], size: u64, depth: u8, refs: Vec<ChunkRef>) -> Entry {
    entry(name, Body::File(FileData::Chunked { size, depth, refs }))
}

/// What the hostile setup published that the tests read back.
struct Hostile {
    f: FuseNode,
    /// Content of evil's chunked file (depth 1).
    chunked: Vec<u8>,
    /// Content of evil's file with two manifest levels.
    deep: Vec<u8>,
    /// The readable first chunk of the file with a missing chunk.
    first_chunk: Vec<u8>,
    /// How many entries the listings of the root and evil's directory must skip.
    bad_entries: usize,
}

/// Names in the root that `ls` must show, exactly.
const GOOD_ROOT: &[&str] = &[
    ".passwd",
    "bomb",
    "evil-chunked",
    "evil-deep",
    "evil-dir",
    "evil-good.txt",
    "evil-link",
    "huge",
    "lies-big",
    "lies-small",
    "missing-chunk",
    "ours.txt",
    "shared.txt",
];

/// A node with a mount holding two files of ours, then evil's records: good ones, bad
/// entries (to be skipped) and bad files (listed, failing when read).
fn hostile(dir: &std::path::Path) -> Hostile {
    let f = FuseNode::start(dir, MAX_VALUE);
    f.sh("echo mine > $M/ours.txt && echo ours > $M/shared.txt");
    let evil = Evil::new(&f.node);
    let mut bad = 0;

    // Good entries of evil's: readable, read-only to us.
    evil.entry(ROOT, &inline(b"evil-good.txt", b"evil but fine\n"));
    evil.entry(
        ROOT,
        &entry(b"evil-link", Body::Symlink(b"evil-good.txt".to_vec())),
    );
    let mut evil_dir = ROOT.to_vec();
    evil_dir.extend_from_slice(b"/d/0123456789abcdef0123456789abcdef");
    evil.entry(ROOT, &entry(b"evil-dir", Body::Dir(evil_dir.clone())));
    evil.entry(&evil_dir, &inline(b"inner.txt", b"inside\n"));
    let (e1, e2) = (bytes(30_000, 1), bytes(20_000, 2));
    let refs = vec![evil.chunk(&e1), evil.chunk(&e2)];
    evil.entry(ROOT, &chunked(b"evil-chunked", 50_000, 1, refs));
    let chunked_content = [e1, e2].concat();
    let parts: Vec<Vec<u8>> = (0..3).map(|i| bytes(10_000, 10 + i)).collect();
    let data_refs: Vec<ChunkRef> = parts.iter().map(|p| evil.chunk(p)).collect();
    let manifest = evil.chunk(&chunk::encode_refs(&data_refs));
    evil.entry(ROOT, &chunked(b"evil-deep", 30_000, 2, vec![manifest]));
    let deep = parts.concat();

    // Entries to skip: bad names (each under the ordinal of its name) ...
    let long = vec![b'x'; 300];
    for name in [&b"0/evil"[..], b"..", b".", b"a\0b", b"", &long, b".passwd"] {
        evil.entry(ROOT, &inline(name, b"bad name\n"));
        bad += 1;
    }
    // ... a second `shared.txt` (under another name's ordinal), a name only under a
    // wrong ordinal, a value that is no entry ...
    evil.entry_at(
        ROOT,
        name_ordinal(b"shared.txt") ^ 1,
        &inline(b"shared.txt", b"evil\n"),
    );
    evil.entry_at(
        ROOT,
        name_ordinal(b"elsewhere"),
        &inline(b"ghost.txt", b"ghost\n"),
    );
    evil.post(
        ROOT,
        name_ordinal(b"garbage"),
        ROOT,
        b"\x07not an entry".to_vec(),
    );
    bad += 3;
    // ... directories outside the mount's tree, one that is the root itself, one whose
    // selector is too long, one that contains itself ...
    let mut long_sel = ROOT.to_vec();
    long_sel.extend_from_slice(b"/d/");
    long_sel.extend(std::iter::repeat_n(b'a', 300));
    for (name, sel) in [
        (&b"dir-outside"[..], &b"other.root/d/00"[..]),
        (b"dir-sideways", b"test.root/e/00"),
        (b"dir-cycle", ROOT),
        (b"dir-long", &long_sel),
    ] {
        evil.entry(ROOT, &entry(name, Body::Dir(sel.to_vec())));
        bad += 1;
    }
    evil.entry(&evil_dir, &entry(b"loop", Body::Dir(evil_dir.clone())));
    evil.entry(&evil_dir, &inline(b"x/y", b"bad name\n"));
    bad += 2;
    // ... symbolic links with an empty, NUL-holding or over-long target ...
    for (name, target) in [
        (&b"link-empty"[..], Vec::new()),
        (b"link-nul", b"a\0b".to_vec()),
        (b"link-long", vec![b'l'; 5000]),
    ] {
        evil.entry(ROOT, &entry(name, Body::Symlink(target)));
        bad += 1;
    }
    // ... and manifests of depth 0 (does not decode), 9 (over the limit) or no refs.
    let d1 = evil.chunk(&bytes(1000, 3));
    let d2 = evil.chunk(&bytes(1000, 4));
    evil.entry(ROOT, &chunked(b"depth0", 1000, 0, vec![d1]));
    evil.entry(ROOT, &chunked(b"deep9", 1000, 9, vec![d1]));
    evil.entry(ROOT, &chunked(b"norefs", 0, 1, Vec::new()));
    bad += 3;

    // Files listed but failing when read. A manifest bomb: 4 KiB declared, a top level
    // naming one manifest chunk 1,664 times, each naming one 4 KiB chunk 1,666 times
    // (11 GiB if assembled).
    let d = evil.chunk(&bytes(4096, 5));
    let m = evil.chunk(&chunk::encode_refs(&vec![d; (MAX_VALUE as usize) / 36]));
    evil.entry(ROOT, &chunked(b"bomb", 4096, 2, vec![m; 1664]));
    // Sizes that lie: the chunks hold 2,000 bytes.
    evil.entry(ROOT, &chunked(b"lies-big", 10_000, 1, vec![d1, d2]));
    evil.entry(ROOT, &chunked(b"lies-small", 1000, 1, vec![d1, d2]));
    // Three 60,000-byte chunks, then one that nobody published.
    let first_chunk = bytes(60_000, 6);
    let mut refs = vec![
        evil.chunk(&first_chunk),
        evil.chunk(&bytes(60_000, 7)),
        evil.chunk(&bytes(60_000, 8)),
    ];
    refs.push(ChunkRef {
        id: chunk::chunk_id(b"never published"),
        len: 1000,
    });
    evil.entry(ROOT, &chunked(b"missing-chunk", 181_000, 1, refs));
    // Over max_file_size, consistent with its (absent) chunks' lengths.
    let fake: Vec<ChunkRef> = (0..1639u32)
        .map(|i| ChunkRef {
            id: chunk::chunk_id(&i.to_be_bytes()),
            len: 40_960,
        })
        .collect();
    let huge = 1639 * 40_960;
    assert!(huge > MAX_FILE_SIZE);
    evil.entry(ROOT, &chunked(b"huge", huge, 1, fake));

    Hostile {
        f,
        chunked: chunked_content,
        deep,
        first_chunk,
        bad_entries: bad,
    }
}

/// Names in a directory of the mount, as `readdir` gives them (without `.`, `..`).
fn names(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    v.sort();
    v
}

/// The sum of every `lf_lffs_bad_entries_total` sample on the node's `/metrics`.
fn bad_entries_metric(node: &TestNode) -> f64 {
    let text = ureq::get(format!("{}/metrics", node.url()))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("lf_lffs_bad_entries_total ")
                || l.starts_with("lf_lffs_bad_entries_total{")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs `script` (bounded by `timeout 20`), returns (success, stdout, stderr, time).
fn timed(f: &FuseNode, script: &str) -> (bool, String, String, Duration) {
    let t = Instant::now();
    let o = f.sh_status(&format!("timeout 20 sh -c '{script}'"));
    (o.status.success(), stdout(&o), stderr(&o), t.elapsed())
}

fn node_pid(node: &TestNode) -> String {
    let pid = std::fs::read_to_string(node.home.join("lf.pid")).expect("lf.pid");
    pid.trim().to_string()
}

/// Resident set of the node and its peak since [`reset_peak`] (VmRSS, VmHWM), KiB.
fn node_rss_kib(node: &TestNode) -> (u64, u64) {
    let pid = node_pid(node);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {k} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Starts the node's peak resident set (VmHWM) again from its current RSS.
fn reset_peak(node: &TestNode) {
    std::fs::write(format!("/proc/{}/clear_refs", node_pid(node)), "5")
        .expect("resetting VmHWM through clear_refs");
}

/// Every bad entry is skipped; the root and evil's directory list exactly their good
/// names (no error, no duplicate `shared.txt`, one `.passwd`); lookups of skipped names
/// give ENOENT; the skips are counted in `lf_lffs_bad_entries_total`.
#[test]
fn fuse_hostile_entries_are_skipped_and_the_directory_still_lists() {
    let dir = tempfile::tempdir().unwrap();
    let h = hostile(dir.path());
    let f = &h.f;
    let before = bad_entries_metric(&f.node);
    let ls = f.sh_status("ls -la $M");
    assert!(ls.status.success(), "ls -la of the root: {}", stderr(&ls));
    let want: Vec<Vec<u8>> = GOOD_ROOT.iter().map(|n| n.as_bytes().to_vec()).collect();
    let got = names(&f.mnt);
    assert_eq!(
        got.iter()
            .map(|n| String::from_utf8_lossy(n))
            .collect::<Vec<_>>(),
        GOOD_ROOT,
        "listing of the root"
    );
    assert_eq!(got, want);
    assert_eq!(
        names(&f.mnt.join("evil-dir")),
        vec![b"inner.txt".to_vec()],
        "listing of evil's directory"
    );
    // The name that also exists at a wrong ordinal is ours, once.
    assert_eq!(f.sh("cat $M/shared.txt"), "ours\n");
    // `.passwd` is the virtual table, not evil's file.
    let passwd = f.sh("cat $M/.passwd");
    assert!(!passwd.contains("bad name"), ".passwd is evil's: {passwd}");
    // Lookups of skipped names that a path can spell.
    for name in [
        "ghost.txt",
        "garbage",
        "dir-outside",
        "dir-sideways",
        "dir-cycle",
        "dir-long",
        "link-empty",
        "link-nul",
        "link-long",
        "depth0",
        "deep9",
        "norefs",
        "evil-dir/loop",
    ] {
        let e = std::fs::symlink_metadata(f.mnt.join(name))
            .expect_err(&format!("{name} must not exist"));
        assert_eq!(e.raw_os_error(), Some(ENOENT), "lookup of {name}: {e}");
    }
    // Listing again changes nothing (and still does not fail).
    assert_eq!(names(&f.mnt), want);
    // The listings above counted every skip.
    let counted = bad_entries_metric(&f.node);
    assert!(
        counted - before >= h.bad_entries as f64,
        "lf_lffs_bad_entries_total went from {before} to {counted}; {} bad entries were \
         listed at least once",
        h.bad_entries
    );
}

/// Each bad file fails alone and fast with its errno: the manifest bomb and the sizes
/// that lie with EIO, the file over `max_file_size` with EFBIG, the missing chunk with
/// EIO at the read that needs it (the chunks before it read fine). Node RSS stays
/// within 100 MiB of what it was, and every other file keeps working.
#[test]
fn fuse_hostile_files_fail_fast_and_alone() {
    let dir = tempfile::tempdir().unwrap();
    let h = hostile(dir.path());
    let f = &h.f;
    assert_eq!(f.sh("cat $M/ours.txt"), "mine\n");
    reset_peak(&f.node);
    let (rss0, _) = node_rss_kib(&f.node);

    let (ok, out, err, took) = timed(f, "cat $M/bomb");
    assert!(
        !ok && err.contains("Input/output error"),
        "cat bomb: ok={ok} {} bytes out, {err}",
        out.len()
    );
    assert!(took < FAST, "the manifest bomb took {took:?} to fail");
    let (rss1, peak1) = node_rss_kib(&f.node);
    assert!(
        peak1 < rss0 + 100 * 1024,
        "node RSS went from {rss0} KiB to {rss1} KiB (peak {peak1} KiB) opening the manifest bomb"
    );
    // The other opens of the mount were not held up: the bomb failed and nothing waits.
    let (ok, out, err, took) = timed(f, "cat $M/ours.txt $M/evil-good.txt");
    assert!(ok && out == "mine\nevil but fine\n", "{out}{err}");
    assert!(
        took < FAST,
        "reading good files after the bomb took {took:?}"
    );

    for name in ["lies-big", "lies-small"] {
        let (ok, out, err, took) = timed(f, &format!("cat $M/{name}"));
        assert!(
            !ok && err.contains("Input/output error"),
            "cat {name}: ok={ok} {} bytes out, {err}",
            out.len()
        );
        assert!(took < FAST, "{name} took {took:?} to fail");
    }

    let (ok, out, err, took) = timed(f, "cat $M/huge");
    assert!(
        !ok && err.contains("File too large"),
        "cat huge: ok={ok} {} bytes out, {err}",
        out.len()
    );
    assert!(took < FAST, "huge took {took:?} to fail");

    // The file with a missing chunk: its size, its first chunk, then EIO for the end.
    assert_eq!(f.sh("stat -c %s $M/missing-chunk"), "181000\n");
    let first = f.sh_status("timeout 20 head -c 4096 $M/missing-chunk");
    assert!(first.status.success(), "head: {}", stderr(&first));
    assert_eq!(first.stdout, h.first_chunk[..4096]);
    let (ok, out, err, took) = timed(f, "cat $M/missing-chunk > /dev/null");
    assert!(
        !ok && err.contains("Input/output error"),
        "cat missing-chunk: ok={ok} {out}{err}"
    );
    assert!(took < FAST, "missing-chunk took {took:?} to fail");

    // The bomb once more, after the others: the same answer, nothing cached wrongly.
    let (ok, _, err, _) = timed(f, "cat $M/bomb");
    assert!(!ok && err.contains("Input/output error"), "{err}");
    let (rss2, hwm) = node_rss_kib(&f.node);
    assert!(
        hwm < rss0 + 100 * 1024,
        "node RSS {rss0} KiB before the bad files, {rss2} KiB after (peak {hwm} KiB)"
    );

    // The rest of the mount works: reads, evil's chunked files, a new file of ours.
    assert_eq!(f.sh("cat $M/ours.txt"), "mine\n");
    let got = std::fs::read(f.mnt.join("evil-chunked")).unwrap();
    assert!(got == h.chunked, "evil-chunked read back wrong");
    f.sh("echo after > $M/after.txt");
    assert_eq!(f.sh("cat $M/after.txt"), "after\n");
    let ls = f.sh_status("ls $M");
    assert!(ls.status.success(), "{}", stderr(&ls));
}

/// Evil's good entries list and read like any other (an inline file, a symlink, a
/// directory and what is in it, chunked files of one and two manifest levels) and are
/// read-only to this mount: writes, unlink and rename fail with EACCES.
#[test]
fn fuse_hostile_owner_good_entries_read_fine_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let h = hostile(dir.path());
    let f = &h.f;
    assert_eq!(f.sh("cat $M/evil-good.txt"), "evil but fine\n");
    assert_eq!(f.sh("readlink $M/evil-link"), "evil-good.txt\n");
    assert_eq!(f.sh("cat $M/evil-link"), "evil but fine\n");
    assert_eq!(f.sh("cat $M/evil-dir/inner.txt"), "inside\n");
    assert_eq!(f.sh("stat -c %s $M/evil-chunked"), "50000\n");
    let got = std::fs::read(f.mnt.join("evil-chunked")).unwrap();
    assert!(got == h.chunked, "evil-chunked read back wrong");
    let got = std::fs::read(f.mnt.join("evil-deep")).unwrap();
    assert!(got == h.deep, "evil-deep read back wrong");
    // Read-only to us: write bits cleared, changes refused.
    assert_eq!(f.sh("stat -c %a $M/evil-good.txt"), "444\n");
    for script in [
        "echo x >> $M/evil-good.txt",
        "echo x > $M/evil-chunked",
        "rm $M/evil-good.txt",
        "mv $M/evil-good.txt $M/mine.txt",
        "truncate -s 0 $M/evil-deep",
        "rm $M/evil-dir/inner.txt",
    ] {
        let o = f.sh_status(script);
        assert!(
            !o.status.success() && stderr(&o).contains("Permission denied"),
            "{script}: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }
    assert_eq!(f.sh("cat $M/evil-good.txt"), "evil but fine\n");
    assert_eq!(f.sh("cat $M/evil-dir/inner.txt"), "inside\n");
    assert!(!f.mnt.join("mine.txt").exists());
    // Evil's entries and ours side by side in one listing.
    let all: BTreeSet<String> = names(&f.mnt)
        .into_iter()
        .map(|n| String::from_utf8_lossy(&n).into_owned())
        .collect();
    for n in [
        "evil-good.txt",
        "evil-dir",
        "evil-chunked",
        "evil-deep",
        "ours.txt",
    ] {
        assert!(all.contains(n), "{n} missing from {all:?}");
    }
}
