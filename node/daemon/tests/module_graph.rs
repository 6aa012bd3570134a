//! The daemon's modules form no import circle, and no module imports one that
//! ARCHITECTURE.md ("Modules of the daemon") forbids it to (a tidy test in the spirit of
//! rust-analyzer's: it reads the sources, not the compiled crate).
//!
//! Every `node/daemon/src/**/*.rs` is a module (`src/http/api.rs` is `http::api`;
//! `main.rs` is the crate root, which declares every module and is left out). An arrow
//! `a → b` is any path in `a`'s code (comments and string literals removed) that starts
//! with `crate::` or `super::` and names module `b`: `use` lines, grouped `use crate::{..}`
//! trees and paths in expressions alike. Arrows between a module and its own parent or
//! children are not imports (the parent declares the child) and are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn daemon_modules_form_no_circle() {
    let graph = graph_of(&src_dir());
    // Module by module, then folder by folder (`http::api` counts as `http`).
    for (what, g) in [("modules", graph.clone()), ("folders", by_folder(&graph))] {
        let circles = circles(&g);
        assert!(
            circles.is_empty(),
            "the daemon's {what} import one another in a circle (break it; ARCHITECTURE.md, \
             \"Modules of the daemon\", says which way arrows go):\n{}",
            circles
                .iter()
                .map(|c| format!("  {}", c.join(" → ")))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// The graph with every module counted as its top-level module (its folder).
fn by_folder(g: &Graph) -> Graph {
    let top = |m: &str| m.split("::").next().unwrap().to_string();
    let mut out = Graph::new();
    for (from, tos) in g {
        let f = top(from);
        let entry = out.entry(f.clone()).or_default();
        entry.extend(tos.iter().map(|t| top(t)).filter(|t| *t != f));
    }
    out
}

#[test]
fn daemon_modules_import_only_what_architecture_md_allows() {
    let graph = graph_of(&src_dir());
    let text = std::fs::read_to_string(architecture_md()).expect("read ARCHITECTURE.md");
    let rules = rules(&text);
    assert!(
        rules.len() >= 3,
        "ARCHITECTURE.md's \"Modules of the daemon\" section lists {} rules; expected its \
         \"- `x` imports none of ...\" lines",
        rules.len()
    );
    let mut wrong = BTreeSet::new();
    for rule in &rules {
        for m in rule.modules() {
            if !graph.contains_key(m) {
                wrong.insert(format!(
                    "ARCHITECTURE.md names module `{m}`, which node/daemon/src does not have \
                     (renamed? update the rule)"
                ));
            }
        }
        for (from, tos) in &graph {
            for to in tos {
                if rule.forbids(from, to) {
                    wrong.insert(format!(
                        "{from} imports {to}, which ARCHITECTURE.md (\"Modules of the daemon\") \
                         forbids"
                    ));
                }
            }
        }
    }
    let wrong: Vec<String> = wrong.into_iter().collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------------------
// The graph.

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn architecture_md() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ARCHITECTURE.md")
}

/// Every module of the crate (by path, `a::b`) and the modules it imports.
fn graph_of(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut sources = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap().with_extension("");
        let path: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if path == ["main"] || path == ["lib"] {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        sources.insert(path.join("::"), text);
    }
    let names: BTreeSet<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(m, text)| (m.clone(), imports(m, text, &names)))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The modules among `names` that module `me` (source `text`) imports.
fn imports(me: &str, text: &str, names: &BTreeSet<String>) -> BTreeSet<String> {
    let code = strip_comments_and_strings(text);
    let me_path: Vec<&str> = me.split("::").collect();
    let mut out = BTreeSet::new();
    for (base, rest) in path_starts(&code) {
        let prefix: Vec<String> = match base {
            Base::Crate => vec![],
            Base::Super(n) => {
                let keep = me_path.len().saturating_sub(n);
                me_path[..keep].iter().map(|s| s.to_string()).collect()
            }
        };
        for segments in use_tree(rest) {
            let mut full = prefix.clone();
            full.extend(segments);
            // The longest prefix of the path that is a module.
            let target = (1..=full.len())
                .rev()
                .map(|n| full[..n].join("::"))
                .find(|p| names.contains(p));
            if let Some(t) = target
                && !related(me, &t)
            {
                out.insert(t);
            }
        }
    }
    out
}

/// A module and its ancestors or descendants (or itself).
fn related(a: &str, b: &str) -> bool {
    under(a, b) || under(b, a)
}

/// Module `x` is `y` or inside it.
fn under(x: &str, y: &str) -> bool {
    x == y || x.starts_with(&format!("{y}::"))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Base {
    Crate,
    /// `super::` repeated n times.
    Super(usize),
}

/// Every `crate::...` and `super::...` path in `code`: its base and the text after it.
fn path_starts(code: &str) -> Vec<(Base, &str)> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let word_start = i == 0 || !is_ident(bytes[i - 1] as char) && bytes[i - 1] != b':';
        if word_start && code[i..].starts_with("crate::") {
            out.push((Base::Crate, &code[i + "crate::".len()..]));
            i += "crate::".len();
        } else if word_start && code[i..].starts_with("super::") {
            let mut n = 0;
            let mut j = i;
            while code[j..].starts_with("super::") {
                n += 1;
                j += "super::".len();
            }
            out.push((Base::Super(n), &code[j..]));
            i = j;
        } else {
            i += code[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The paths a use tree (or an expression path) at the start of `s` names, as segments:
/// `a::{b, c::d}` gives `[a, b]`, `[a, c, d]`; `a::b(x)` gives `[a, b]`.
fn use_tree(s: &str) -> Vec<Vec<String>> {
    let mut p = Parser { s, i: 0 };
    p.tree()
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while let Some(c) = self.s[self.i..].chars().next() {
            if c.is_whitespace() {
                self.i += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn ident(&mut self) -> Option<String> {
        self.skip_ws();
        let start = self.i;
        while let Some(c) = self.s[self.i..].chars().next() {
            if is_ident(c) {
                self.i += c.len_utf8();
            } else {
                break;
            }
        }
        (self.i > start).then(|| self.s[start..self.i].to_string())
    }

    fn eat(&mut self, t: &str) -> bool {
        self.skip_ws();
        if self.s[self.i..].starts_with(t) {
            self.i += t.len();
            true
        } else {
            false
        }
    }

    fn tree(&mut self) -> Vec<Vec<String>> {
        if self.eat("{") {
            let mut out = Vec::new();
            loop {
                if self.eat("}") {
                    break;
                }
                let before = self.i;
                out.extend(self.tree());
                if !self.eat(",") {
                    self.eat("}");
                    break;
                }
                if self.i == before {
                    break;
                }
            }
            return out;
        }
        if self.eat("*") {
            return vec![vec![]];
        }
        let Some(first) = self.ident() else {
            return vec![];
        };
        let first = if first == "self" { vec![] } else { vec![first] };
        if self.eat("::") {
            let rest = self.tree();
            if rest.is_empty() {
                return vec![first];
            }
            return rest
                .into_iter()
                .map(|r| first.iter().cloned().chain(r).collect())
                .collect();
        }
        vec![first]
    }
}

/// `text` with comments, string literals and character literals blanked out (lengths
/// kept), so that paths written in them are not imports.
fn strip_comments_and_strings(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    while i < c.len() {
        let at = |k: usize| c.get(i + k).copied().unwrap_or('\0');
        if at(0) == '/' && at(1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if at(0) == '/' && at(1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if (at(0) == 'r' || (at(0) == 'b' && at(1) == 'r'))
            && (i == 0 || !is_ident(c[i - 1]))
            && {
                let k = if at(0) == 'b' { 2 } else { 1 };
                let mut h = 0;
                while at(k + h) == '#' {
                    h += 1;
                }
                at(k + h) == '"'
            }
        {
            // Raw string: r"..", r#".."#, br#".."#.
            i += if at(0) == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while c[i] == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1;
            while i < c.len() {
                if c[i] == '"' && (0..hashes).all(|h| c.get(i + 1 + h) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if at(0) == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                }
                i += 1;
            }
            i += 1;
        } else if at(0) == '\'' && (at(1) == '\\' || at(2) == '\'') {
            // A character literal (a lifetime has no closing quote).
            i += 1;
            while i < c.len() && c[i] != '\'' {
                if c[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Every circle of the graph (one per strongly connected component of two or more
/// modules), each as a closed path `a → b → ... → a`.
fn circles(g: &Graph) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for scc in sccs(g) {
        if scc.len() < 2 {
            continue;
        }
        // A shortest circle through the component's first module, by breadth-first search.
        let start = scc.iter().next().unwrap().clone();
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.clone()]);
        let mut closing = None;
        'bfs: while let Some(m) = queue.pop_front() {
            for n in g.get(&m).into_iter().flatten() {
                if !scc.contains(n) {
                    continue;
                }
                if *n == start {
                    closing = Some(m.clone());
                    break 'bfs;
                }
                if !prev.contains_key(n) {
                    prev.insert(n.clone(), m.clone());
                    queue.push_back(n.clone());
                }
            }
        }
        let mut path = vec![start.clone()];
        let mut at = closing.expect("a component has a circle");
        while at != start {
            path.push(at.clone());
            at = prev[&at].clone();
        }
        path.push(start.clone());
        path.reverse();
        let mut line = path;
        line.push(format!(
            "(component: {})",
            scc.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
        out.push(line);
    }
    out
}

/// Strongly connected components (Tarjan's algorithm).
fn sccs(g: &Graph) -> Vec<BTreeSet<String>> {
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    impl<'a> T<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on.insert(v);
            for w in self.g.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[w].min(self.low[v]);
                    self.low.insert(v, l);
                } else if self.on.contains(w) {
                    let l = self.index[w].min(self.low[v]);
                    self.low.insert(v, l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut c = BTreeSet::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    c.insert(w.to_string());
                    if w == v {
                        break;
                    }
                }
                self.out.push(c);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

// ---------------------------------------------------------------------------------------
// ARCHITECTURE.md's rules.

/// A rule of ARCHITECTURE.md's "Modules of the daemon" section, one per list item:
/// - "`a` imports none of `b`, `c`": `a` may import neither;
/// - "`a` imports no other module": `a` imports nothing of the crate;
/// - "nothing imports `a`": no module imports `a` (the crate root may).
#[derive(Debug, PartialEq)]
enum Rule {
    NoneOf(String, Vec<String>),
    Leaf(String),
    Top(String),
}

impl Rule {
    fn modules(&self) -> Vec<&String> {
        match self {
            Rule::NoneOf(a, bs) => std::iter::once(a).chain(bs).collect(),
            Rule::Leaf(a) | Rule::Top(a) => vec![a],
        }
    }

    /// A name in a rule stands for the module and everything under it (`lffs_glue`
    /// covers `lffs_glue::store`), so a rule can speak of a folder.
    fn forbids(&self, from: &str, to: &str) -> bool {
        match self {
            Rule::NoneOf(a, bs) => under(from, a) && bs.iter().any(|b| under(to, b)),
            Rule::Leaf(a) => under(from, a) && !under(to, a),
            Rule::Top(a) => under(to, a) && !under(from, a),
        }
    }
}

fn rules(architecture_md: &str) -> Vec<Rule> {
    let mut in_section = false;
    let mut out = Vec::new();
    for line in architecture_md.lines() {
        if line.starts_with('#') {
            in_section = line.trim_start_matches('#').trim() == "Modules of the daemon";
            continue;
        }
        let Some(item) = line.trim_start().strip_prefix("- ") else {
            continue;
        };
        if !in_section {
            continue;
        }
        let ticked: Vec<String> = item
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|s| s.trim_end_matches(".rs").to_string())
            .collect();
        if item.starts_with("nothing imports `") {
            out.push(Rule::Top(ticked[0].clone()));
        } else if item.contains("` imports no other module") {
            out.push(Rule::Leaf(ticked[0].clone()));
        } else if item.contains("` imports none of") && ticked.len() >= 2 {
            out.push(Rule::NoneOf(ticked[0].clone(), ticked[1..].to_vec()));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The test's own parts.

#[test]
fn paths_are_found_in_use_trees_and_expressions_not_comments_or_strings() {
    let names: BTreeSet<String> = ["a", "b", "c", "d", "e", "f", "g", "me", "me::sub"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let text = r#"
        use crate::{a, b::{X, Y}, c::self};
        use crate::d::Z as W;
        // use crate::f;
        /* crate::f:: */
        fn x() { crate::e::call("crate::f::y"); let c = 'c'; let _: &'static str = ""; }
        mod tests { use super::*; use super::sub::T; }
        fn y() { crate::g::h(); }
    "#;
    let got = imports("me", text, &names);
    let want: BTreeSet<String> = ["a", "b", "c", "d", "e", "g"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
    // `super::` from a nested module names its parent's siblings.
    let got = imports("me::sub", "use super::super::a; use super::X;", &names);
    assert_eq!(got, BTreeSet::from(["a".to_string()]));
}

#[test]
fn a_circle_is_named() {
    let mut g = Graph::new();
    let mut arrow = |a: &str, b: &str| {
        g.entry(a.into()).or_default().insert(b.into());
        g.entry(b.into()).or_default();
    };
    arrow("node", "metrics");
    arrow("metrics", "api");
    arrow("api", "node");
    arrow("daemon", "node");
    let c = circles(&g);
    assert_eq!(c.len(), 1);
    // Folders: `http::api` → `lffs::queue` → `http::metrics` is a circle of folders.
    let mut f = Graph::new();
    f.entry("http::api".into())
        .or_default()
        .insert("lffs::queue".into());
    f.entry("lffs::queue".into())
        .or_default()
        .insert("http::metrics".into());
    f.entry("http::metrics".into()).or_default();
    assert!(circles(&f).is_empty());
    assert_eq!(&circles(&by_folder(&f))[0][..3], ["http", "lffs", "http"]);
    assert_eq!(&c[0][..4], ["api", "node", "metrics", "api"]);
    // Cut as the daemon is: the HTTP layer samples the node for metrics.
    g.get_mut("metrics").unwrap().remove("api");
    g.get_mut("node").unwrap().remove("metrics");
    g.get_mut("api").unwrap().insert("metrics".into());
    assert!(circles(&g).is_empty());
}

#[test]
fn rules_are_read_from_their_section_only() {
    let md = "\
## Elsewhere
- `node` imports none of `x`
### Modules of the daemon
Some prose.
- `node.rs` imports none of `api`, `daemon`.
- `metrics` imports no other module.
- nothing imports `daemon`.
## Next
- `a` imports no other module.
";
    assert_eq!(
        rules(md),
        [
            Rule::NoneOf("node".into(), vec!["api".into(), "daemon".into()]),
            Rule::Leaf("metrics".into()),
            Rule::Top("daemon".into()),
        ]
    );
}

#[test]
fn a_rule_on_a_folder_covers_its_modules() {
    let none_of = Rule::NoneOf("node".into(), vec!["http".into()]);
    assert!(none_of.forbids("node::write", "http::api"));
    assert!(none_of.forbids("node", "http"));
    assert!(!none_of.forbids("nodes", "http::api"));
    assert!(!none_of.forbids("http::api", "node"));
    let leaf = Rule::Leaf("common".into());
    assert!(leaf.forbids("common::certs", "node"));
    assert!(!leaf.forbids("common::certs", "common::random"));
    let top = Rule::Top("daemon".into());
    assert!(top.forbids("http::api", "daemon::sdnotify"));
    assert!(!top.forbids("daemon", "daemon::sdnotify"));
}
