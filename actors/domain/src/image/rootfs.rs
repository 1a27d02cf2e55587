//! One layer read into its kept files and whiteouts, and the layers applied in order.
//!
//! A layer's tar stream is read once. Whiteouts (`.wh.NAME` deletes `NAME` from the
//! layers below, `.wh..wh..opq` empties its directory of them) are applied before the
//! layer's own files, so a layer can replace a directory's contents. Only files that
//! [`wanted`] accepts are kept; symbolic links among them are kept as links and resolved
//! when read (`etc/os-release` is usually `../usr/lib/os-release`), hard links share their
//! target's node when the target was kept (content and derived records sit behind an
//! [`Arc`], so a hard link costs a pointer, not a copy). Directory symlinks are not
//! followed.
//!
//! What is kept is charged to the image's `Budget` against `max_kept_bytes`.
//!
//! Binaries and archives are not kept whole: [`keep_file`] probes every regular file
//! (see [`super::binary`]) and keeps a small derived record in place of such a file's
//! bytes, under its path, so whiteouts and later layers treat it as any other file.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::ops::Bound;
use std::sync::Arc;

use super::binary::{self, Derived};
use super::{Cap, ImageError, Limits};

/// Tallies shared by every layer of one image.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    pub(crate) entries: u64,
    /// Bytes held in memory so far, against `max_kept_bytes`.
    pub(crate) kept: u64,
}

impl Budget {
    /// Counts one more tar entry or opened file (`entry`); past `max_entries` the image is
    /// refused.
    pub(crate) fn count_entry(&mut self, entry: &str, limits: &Limits) -> Result<(), ImageError> {
        self.entries += 1;
        if self.entries > limits.max_entries {
            return Err(ImageError::CapExceeded {
                entry: entry.to_owned(),
                cap: Cap::Entries,
                limit: limits.max_entries,
            });
        }
        Ok(())
    }

    /// Charges `bytes` kept for `entry`; past `max_kept_bytes` the image is refused.
    pub(crate) fn keep(
        &mut self,
        entry: &str,
        bytes: u64,
        limits: &Limits,
    ) -> Result<(), ImageError> {
        self.kept = self.kept.saturating_add(bytes);
        if self.kept > limits.max_kept_bytes {
            return Err(ImageError::CapExceeded {
                entry: entry.to_owned(),
                cap: Cap::KeptBytes,
                limit: limits.max_kept_bytes,
            });
        }
        Ok(())
    }
}

/// A kept file: its content, the target of a symbolic link (a path from the root), or
/// what was derived from a binary or archive in place of its content. Content and
/// records are shared: cloning a node (a hard link) copies a pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File(Arc<[u8]>),
    Symlink(String),
    Derived(Arc<Derived>),
}

impl Node {
    /// The bytes this node holds: a file's length, a link's target, a derived record's
    /// size as JSON.
    pub fn held_bytes(&self) -> u64 {
        match self {
            Node::File(bytes) => bytes.len() as u64,
            Node::Symlink(target) => target.len() as u64,
            Node::Derived(d) => serde_json::to_vec(&**d).map_or(0, |v| v.len() as u64),
        }
    }
}

/// A kept file and the index of the layer it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsEntry {
    pub node: Node,
    pub layer: usize,
}

/// What one layer changes. Cloning it shares the kept content (a layer listed twice).
#[derive(Debug, Default, Clone)]
pub(crate) struct LayerDelta {
    opaque: Vec<String>,
    whiteouts: Vec<String>,
    files: Vec<(String, LayerNode)>,
}

#[derive(Debug, Clone)]
enum LayerNode {
    Node(Node),
    Hardlink(String),
    /// A hard link at a path no analyzer reads: kept when its target is a derived record
    /// (a binary linked under a second name).
    DerivedLink(String),
}

/// The files analyzers read, as the top layer sees them, keyed by path from the root
/// (`var/lib/dpkg/status`, no leading `/`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootFs {
    files: BTreeMap<String, FsEntry>,
}

impl RootFs {
    /// Every kept path with its entry, in path order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &FsEntry)> {
        self.files.iter().map(|(p, e)| (p.as_str(), e))
    }

    /// A file's content and the layer it came from, following symbolic links (at most
    /// 16), or `None` when it is absent or a link leads out of what was kept.
    pub fn read(&self, path: &str) -> Option<(&[u8], usize)> {
        let mut path = path.to_owned();
        for _ in 0..16 {
            match &self.files.get(&path)?.node {
                Node::File(bytes) => return Some((bytes, self.files.get(&path)?.layer)),
                Node::Symlink(target) => path = target.clone(),
                Node::Derived(_) => return None,
            }
        }
        None
    }

    /// Adds a file as if a layer had it (for a root filesystem built in memory).
    pub fn insert(&mut self, path: &str, bytes: Vec<u8>, layer: usize) {
        self.files.insert(
            path.to_owned(),
            FsEntry {
                node: Node::File(bytes.into()),
                layer,
            },
        );
    }

    /// Adds a node as if a layer had it (for a root filesystem walked on disk with
    /// [`keep_file`]).
    pub fn insert_node(&mut self, path: &str, node: Node, layer: usize) {
        self.files.insert(path.to_owned(), FsEntry { node, layer });
    }

    /// Applies one layer on top of the ones applied before.
    pub(crate) fn apply(&mut self, layer: usize, delta: LayerDelta) {
        for dir in &delta.opaque {
            self.remove_under(dir, false);
        }
        for path in &delta.whiteouts {
            self.remove_under(path, true);
        }
        for (path, node) in delta.files {
            let node = match node {
                LayerNode::Node(n) => n,
                LayerNode::Hardlink(target) => match self.files.get(&target) {
                    Some(e) => e.node.clone(),
                    None => continue,
                },
                LayerNode::DerivedLink(target) => match self.files.get(&target) {
                    Some(e) if matches!(e.node, Node::Derived(_)) => e.node.clone(),
                    _ => continue,
                },
            };
            self.files.insert(path, FsEntry { node, layer });
        }
    }

    /// Removes what is under the folder `path` (and `path` itself when `itself`),
    /// touching only those keys: the paths under `a/b` are the range `[a/b/, a/b0)`
    /// (`0` follows `/`), so a layer of many whiteouts costs no pass over every file.
    fn remove_under(&mut self, path: &str, itself: bool) {
        if itself {
            self.files.remove(path);
        }
        if path.is_empty() {
            self.files.clear();
            return;
        }
        let (from, to) = (format!("{path}/"), format!("{path}0"));
        let doomed: Vec<String> = self
            .files
            .range::<str, _>((Bound::Included(from.as_str()), Bound::Excluded(to.as_str())))
            .map(|(p, _)| p.clone())
            .collect();
        for p in doomed {
            self.files.remove(&p);
        }
    }
}

/// Whether an analyzer reads the file at `path` (relative to the root).
pub fn wanted(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let n = parts.len();
    let base = parts[n - 1];
    let parent = if n >= 2 { parts[n - 2] } else { "" };
    match path {
        "var/lib/dpkg/status"
        | "lib/apk/db/installed"
        | "etc/os-release"
        | "usr/lib/os-release"
        | "var/lib/rpm/rpmdb.sqlite"
        | "usr/lib/sysimage/rpm/rpmdb.sqlite" => return true,
        _ => {}
    }
    if path.starts_with("var/lib/dpkg/status.d/") && n == 5 && !base.ends_with(".md5sums") {
        return true;
    }
    match base {
        "package-lock.json" => true,
        "package.json" => {
            (n >= 3 && parts[n - 3] == "node_modules")
                || (n >= 4 && parts[n - 4] == "node_modules" && parts[n - 3].starts_with('@'))
        }
        "METADATA" => parent.ends_with(".dist-info"),
        "poetry.lock" => true,
        // Not the lockfiles and manifests of the dependencies themselves, unpacked in
        // Cargo's and Go's download caches.
        "Cargo.lock" => !path.contains("cargo/registry/") && !path.contains("cargo/git/"),
        "go.mod" => {
            !path.starts_with("pkg/mod/")
                && !path.contains("/pkg/mod/")
                && !path.starts_with("vendor/")
                && !path.contains("/vendor/")
        }
        b => super::lockfiles::is_requirements(b),
    }
}

/// What is kept of the regular file at `path` (`size` bytes, its content read from
/// `reader`): its bytes when an analyzer reads it ([`wanted`]; over `max_file_bytes` the
/// image is refused, as a package database cut short would be misread), a derived
/// record when it is a binary or archive ([`binary::is_candidate`]; over
/// `max_file_bytes` it is recorded as unreadable and the image goes on), else nothing.
/// Only the first bytes of other files are read. One file at a time is held.
pub fn keep_file<R: Read>(
    path: &str,
    size: u64,
    mut reader: R,
    limits: &Limits,
) -> Result<Option<Node>, ImageError> {
    let cap = limits.max_file_bytes;
    if wanted(path) {
        if size > cap {
            return Err(ImageError::CapExceeded {
                entry: path.to_owned(),
                cap: Cap::FileBytes,
                limit: cap,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .take(cap.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| ImageError::read(path, e))?;
        if bytes.len() as u64 > cap {
            return Err(ImageError::CapExceeded {
                entry: path.to_owned(),
                cap: Cap::FileBytes,
                limit: cap,
            });
        }
        return Ok(Some(Node::File(bytes.into())));
    }
    let mut bytes = Vec::with_capacity(4);
    (&mut reader)
        .take(4)
        .read_to_end(&mut bytes)
        .map_err(|e| ImageError::read(path, e))?;
    if !binary::is_candidate(path, &bytes) {
        return Ok(None);
    }
    let too_large = || {
        Some(Node::Derived(Arc::new(Derived::Unreadable(format!(
            "larger than max_file_bytes ({cap}): not read"
        )))))
    };
    if size > cap {
        return Ok(too_large());
    }
    bytes.reserve(size as usize);
    reader
        .take(cap.saturating_add(1).saturating_sub(bytes.len() as u64))
        .read_to_end(&mut bytes)
        .map_err(|e| ImageError::read(path, e))?;
    if bytes.len() as u64 > cap {
        return Ok(too_large());
    }
    Ok(binary::derive(path, &bytes, cap).map(|d| Node::Derived(Arc::new(d))))
}

/// Normalizes an entry's path to `a/b/c` (no `.`, no trailing `/`), refusing absolute
/// paths, `..` and paths deeper than the cap. The root itself is `""`.
pub(crate) fn normalize(raw: &str, limits: &Limits) -> Result<String, ImageError> {
    if raw.starts_with('/') {
        return Err(ImageError::AbsolutePath {
            entry: raw.to_owned(),
        });
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(ImageError::PathTraversal {
                    entry: raw.to_owned(),
                })
            }
            p => parts.push(p),
        }
    }
    if parts.len() > limits.max_depth {
        return Err(ImageError::CapExceeded {
            entry: raw.to_owned(),
            cap: Cap::Depth,
            limit: limits.max_depth as u64,
        });
    }
    Ok(parts.join("/"))
}

/// Resolves a symbolic link's target against the link's folder; `None` when it climbs
/// above the root. An absolute target is taken from the image's root, as the container
/// would see it.
fn resolve_link(link: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = link.split('/').collect();
        p.pop();
        p
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Reads one layer's tar stream (already decompressed) into what it changes, charging
/// what it keeps to `budget`.
pub(crate) fn read_layer<R: Read>(
    reader: R,
    limits: &Limits,
    budget: &mut Budget,
) -> Result<(LayerDelta, R), ImageError> {
    let mut archive = tar::Archive::new(reader);
    let mut delta = LayerDelta::default();
    // Where each path's latest node sits in `delta.files`, for hard links to this layer.
    let mut kept: HashMap<String, usize> = HashMap::new();
    {
        let entries = archive
            .entries()
            .map_err(|e| ImageError::read("layer", e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| ImageError::read("layer", e))?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            budget.count_entry(&raw, limits)?;
            let path = normalize(&raw, limits)?;
            if path.is_empty() {
                continue;
            }
            let (dir, base) = match path.rsplit_once('/') {
                Some((d, b)) => (d, b),
                None => ("", path.as_str()),
            };
            if base == ".wh..wh..opq" {
                delta.opaque.push(dir.to_owned());
                continue;
            }
            if let Some(name) = base.strip_prefix(".wh.") {
                let gone = if dir.is_empty() {
                    name.to_owned()
                } else {
                    format!("{dir}/{name}")
                };
                delta.whiteouts.push(gone);
                continue;
            }
            let kind = entry.header().entry_type();
            use tar::EntryType as T;
            match kind {
                T::Char | T::Block | T::Fifo => return Err(ImageError::DeviceFile { entry: raw }),
                T::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    let Some(resolved) = resolve_link(&path, &target) else {
                        return Err(ImageError::LinkEscapes { entry: raw, target });
                    };
                    if wanted(&path) {
                        budget.keep(&raw, resolved.len() as u64, limits)?;
                        kept.insert(path.clone(), delta.files.len());
                        delta
                            .files
                            .push((path, LayerNode::Node(Node::Symlink(resolved))));
                    }
                }
                T::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    let resolved = match normalize(&target, limits) {
                        Ok(t) => t,
                        Err(_) => return Err(ImageError::LinkEscapes { entry: raw, target }),
                    };
                    // A hard link names an earlier entry of this layer or a lower one; it
                    // shares the node, so it is not charged again.
                    let same_layer = kept.get(&resolved).and_then(|&i| match &delta.files[i] {
                        (_, LayerNode::Node(n)) => Some(n.clone()),
                        _ => None,
                    });
                    let node = match (wanted(&path), same_layer) {
                        (true, Some(n)) => Some(LayerNode::Node(n)),
                        (true, None) => Some(LayerNode::Hardlink(resolved)),
                        (false, Some(n @ Node::Derived(_))) => Some(LayerNode::Node(n)),
                        (false, Some(_)) => None,
                        (false, None) => Some(LayerNode::DerivedLink(resolved)),
                    };
                    if let Some(node) = node {
                        if matches!(node, LayerNode::Node(_)) {
                            kept.insert(path.clone(), delta.files.len());
                        }
                        delta.files.push((path, node));
                    }
                }
                T::Regular | T::Continuous => {
                    let size = entry.size();
                    if let Some(node) = keep_file(&path, size, &mut entry, limits)? {
                        budget.keep(&raw, node.held_bytes(), limits)?;
                        kept.insert(path.clone(), delta.files.len());
                        delta.files.push((path, LayerNode::Node(node)));
                    }
                }
                _ => {}
            }
        }
    }
    Ok((delta, archive.into_inner()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One entry of a tar built in a test.
    pub(crate) enum E<'a> {
        File(&'a str, &'a [u8]),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
        Hardlink(&'a str, &'a str),
        Char(&'a str),
    }

    /// Writes a tar with the entries as given (paths are not checked, so hostile ones
    /// can be written).
    pub(crate) fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            let (path, data): (&str, &[u8]) = match e {
                E::File(p, d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    (p, d)
                }
                E::Dir(p) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    (p, b"")
                }
                E::Symlink(p, t) | E::Hardlink(p, t) => {
                    h.set_entry_type(if matches!(e, E::Symlink(..)) {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    });
                    h.set_size(0);
                    // Raw bytes: `set_link_name` refuses `..`, which the tests need.
                    let name = &mut h.as_old_mut().linkname;
                    name[..t.len()].copy_from_slice(t.as_bytes());
                    (p, b"")
                }
                E::Char(p) => {
                    h.set_entry_type(tar::EntryType::Char);
                    h.set_size(0);
                    (p, b"")
                }
            };
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn rootfs(layers: &[Vec<u8>], limits: &Limits) -> Result<RootFs, ImageError> {
        let mut fs = RootFs::default();
        let mut budget = Budget::default();
        for (i, l) in layers.iter().enumerate() {
            let (delta, _) = read_layer(&l[..], limits, &mut budget)?;
            fs.apply(i, delta);
        }
        Ok(fs)
    }

    fn paths(fs: &RootFs) -> Vec<&str> {
        fs.entries().map(|(p, _)| p).collect()
    }

    const STATUS: &str = "var/lib/dpkg/status";

    #[test]
    fn keeps_only_wanted_files() {
        let l = tar_of(&[
            E::Dir("./"),
            E::File("./var/lib/dpkg/status", b"x"),
            E::File("./usr/bin/ls", b"elf"),
            E::File("app/node_modules/@s/n/package.json", b"{}"),
            E::File("app/node_modules/n/lib/package.json", b"{}"),
            E::File("usr/lib/python3/dist-packages/a-1.dist-info/METADATA", b"m"),
        ]);
        let fs = rootfs(&[l], &Limits::default()).unwrap();
        assert_eq!(
            paths(&fs),
            [
                "app/node_modules/@s/n/package.json",
                "usr/lib/python3/dist-packages/a-1.dist-info/METADATA",
                STATUS
            ]
        );
    }

    #[test]
    fn whiteouts_delete_lower_files_and_folders() {
        let l0 = tar_of(&[
            E::File(STATUS, b"old"),
            E::File("app/node_modules/a/package.json", b"a"),
            E::File("app/node_modules/b/package.json", b"b"),
        ]);
        let l1 = tar_of(&[
            E::File("var/lib/dpkg/.wh.status", b""),
            E::File("app/node_modules/.wh.a", b""),
        ]);
        let fs = rootfs(&[l0.clone(), l1], &Limits::default()).unwrap();
        assert_eq!(paths(&fs), ["app/node_modules/b/package.json"]);
        // A later layer writes the file again.
        let l2 = tar_of(&[E::File(STATUS, b"new")]);
        let fs = rootfs(
            &[l0, tar_of(&[E::File("var/lib/dpkg/.wh.status", b"")]), l2],
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(fs.read(STATUS), Some((&b"new"[..], 2)));
    }

    #[test]
    fn a_whiteout_removes_its_folder_and_not_its_neighbours() {
        let l0 = tar_of(&[
            E::File("a/b/poetry.lock", b"1"),
            E::File("a/b/c/poetry.lock", b"2"),
            E::File("a/b-c/poetry.lock", b"3"),
            E::File("a/b0/poetry.lock", b"4"),
            E::File("a/bc/poetry.lock", b"5"),
            E::File("a/b.lock/poetry.lock", b"6"),
        ]);
        let l1 = tar_of(&[E::File("a/.wh.b", b"")]);
        let fs = rootfs(&[l0, l1], &Limits::default()).unwrap();
        assert_eq!(
            paths(&fs),
            [
                "a/b-c/poetry.lock",
                "a/b.lock/poetry.lock",
                "a/b0/poetry.lock",
                "a/bc/poetry.lock"
            ]
        );
    }

    #[test]
    fn many_whiteouts_over_many_files_stay_fast() {
        let names: Vec<String> = (0..20_000)
            .map(|i| format!("app/p{i}/poetry.lock"))
            .collect();
        let gone: Vec<String> = (0..20_000).map(|i| format!("app/.wh.p{i}")).collect();
        let l0 = tar_of(&names.iter().map(|n| E::File(n, b"x")).collect::<Vec<_>>());
        let mut l1: Vec<E<'_>> = gone.iter().map(|n| E::File(n, b"")).collect();
        l1.push(E::File("app/p0/poetry.lock", b"again"));
        let l1 = tar_of(&l1);
        let started = std::time::Instant::now();
        let fs = rootfs(&[l0, l1], &Limits::default()).unwrap();
        assert_eq!(paths(&fs), ["app/p0/poetry.lock"]);
        // A pass over every file per whiteout is 400 million comparisons.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn opaque_folder_hides_lower_files_but_not_its_own_layer() {
        let l0 = tar_of(&[
            E::File("app/node_modules/a/package.json", b"a"),
            E::File("app/node_modules/b/package.json", b"b"),
            E::File(STATUS, b"s"),
        ]);
        let l1 = tar_of(&[
            E::File("app/node_modules/c/package.json", b"c"),
            E::File("app/node_modules/.wh..wh..opq", b""),
        ]);
        let fs = rootfs(&[l0, l1], &Limits::default()).unwrap();
        assert_eq!(paths(&fs), ["app/node_modules/c/package.json", STATUS]);
        assert_eq!(
            fs.read("app/node_modules/c/package.json"),
            Some((&b"c"[..], 1))
        );
    }

    #[test]
    fn symlinks_resolve_inside_the_root_and_hardlinks_copy() {
        let l0 = tar_of(&[E::File("usr/lib/os-release", b"ID=debian\n")]);
        let l1 = tar_of(&[
            E::Symlink("etc/os-release", "../usr/lib/os-release"),
            E::File("var/lib/dpkg/status.d/a", b"Package: a\n"),
            E::Hardlink("var/lib/dpkg/status.d/b", "var/lib/dpkg/status.d/a"),
            E::Hardlink("var/lib/dpkg/status", "usr/lib/os-release"),
        ]);
        let fs = rootfs(&[l0, l1], &Limits::default()).unwrap();
        assert_eq!(fs.read("etc/os-release"), Some((&b"ID=debian\n"[..], 0)));
        assert_eq!(
            fs.read("var/lib/dpkg/status.d/b"),
            Some((&b"Package: a\n"[..], 1))
        );
        assert_eq!(fs.read(STATUS), Some((&b"ID=debian\n"[..], 1)));
        // An absolute target is the image's own root, not the host's.
        let abs = tar_of(&[E::Symlink("etc/os-release", "/usr/lib/os-release")]);
        let fs = rootfs(
            &[tar_of(&[E::File("usr/lib/os-release", b"x")]), abs],
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(fs.read("etc/os-release"), Some((&b"x"[..], 0)));
    }

    fn file_of<'a>(fs: &'a RootFs, path: &str) -> &'a Arc<[u8]> {
        match &fs.files[path].node {
            Node::File(bytes) => bytes,
            other => panic!("{path} is {other:?}"),
        }
    }

    #[test]
    fn hard_links_share_their_target_instead_of_copying_it() {
        let lock = vec![b'#'; 1 << 20];
        let names: Vec<String> = (0..10_000).map(|i| format!("d{i}/poetry.lock")).collect();
        let mut entries = vec![E::File("poetry.lock", &lock)];
        entries.extend(names.iter().map(|n| E::Hardlink(n, "poetry.lock")));
        let l0 = tar_of(&entries);
        // A later layer links to the lower layer's file.
        let l1 = tar_of(&[E::Hardlink("top/poetry.lock", "poetry.lock")]);
        let limits = Limits {
            max_kept_bytes: (1 << 20) + 4096,
            ..Limits::default()
        };
        let started = std::time::Instant::now();
        let mut fs = RootFs::default();
        let mut budget = Budget::default();
        for (i, l) in [l0, l1].iter().enumerate() {
            let (delta, _) = read_layer(&l[..], &limits, &mut budget).unwrap();
            fs.apply(i, delta);
        }
        assert_eq!(budget.kept, 1 << 20, "the content was charged once");
        assert_eq!(fs.entries().count(), 10_002);
        let original = file_of(&fs, "poetry.lock");
        for path in ["d0/poetry.lock", "d9999/poetry.lock", "top/poetry.lock"] {
            assert!(
                Arc::ptr_eq(original, file_of(&fs, path)),
                "{path} was copied"
            );
        }
        assert_eq!(fs.read("top/poetry.lock"), Some((&lock[..], 1)));
        // Each hard link is found by path, not by a scan of the layer so far.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn kept_bytes_over_all_layers_are_capped() {
        let limits = Limits {
            max_kept_bytes: 1000,
            ..Limits::default()
        };
        let l0 = tar_of(&[E::File("a/poetry.lock", &[b'#'; 600])]);
        assert!(rootfs(std::slice::from_ref(&l0), &limits).is_ok());
        // Each layer is under the cap; the image is not.
        let l1 = tar_of(&[E::File("b/poetry.lock", &[b'#'; 600])]);
        let err = rootfs(&[l0, l1], &limits).unwrap_err();
        assert_eq!(
            err,
            ImageError::CapExceeded {
                entry: "b/poetry.lock".into(),
                cap: Cap::KeptBytes,
                limit: 1000
            }
        );
        assert!(err.to_string().contains("max_kept_bytes"), "{err}");
        // Files no analyzer reads are not kept, so not charged.
        let big = tar_of(&[E::File("usr/share/doc/big", &[b'x'; 4000])]);
        assert!(rootfs(&[big], &limits).is_ok());
    }

    #[test]
    fn hostile_entries_are_refused_by_name() {
        let l = Limits::default();
        let cases: Vec<(Vec<u8>, ImageError)> = vec![
            (
                tar_of(&[E::File("a/../../etc/passwd", b"x")]),
                ImageError::PathTraversal {
                    entry: "a/../../etc/passwd".into(),
                },
            ),
            (
                tar_of(&[E::File("/etc/passwd", b"x")]),
                ImageError::AbsolutePath {
                    entry: "/etc/passwd".into(),
                },
            ),
            (
                tar_of(&[E::Symlink("etc/os-release", "../../../etc/shadow")]),
                ImageError::LinkEscapes {
                    entry: "etc/os-release".into(),
                    target: "../../../etc/shadow".into(),
                },
            ),
            (
                // Escapes even when the link itself is not kept.
                tar_of(&[E::Symlink("usr/x", "../../y")]),
                ImageError::LinkEscapes {
                    entry: "usr/x".into(),
                    target: "../../y".into(),
                },
            ),
            (
                tar_of(&[E::Hardlink("etc/os-release", "../host")]),
                ImageError::LinkEscapes {
                    entry: "etc/os-release".into(),
                    target: "../host".into(),
                },
            ),
            (
                tar_of(&[E::Hardlink("etc/os-release", "/etc/shadow")]),
                ImageError::LinkEscapes {
                    entry: "etc/os-release".into(),
                    target: "/etc/shadow".into(),
                },
            ),
            (
                tar_of(&[E::Char("dev/sda")]),
                ImageError::DeviceFile {
                    entry: "dev/sda".into(),
                },
            ),
        ];
        for (tar, want) in cases {
            assert_eq!(rootfs(&[tar], &l).unwrap_err(), want);
        }
    }

    #[test]
    fn caps_name_the_entry_and_the_cap() {
        let deep = "a/".repeat(10) + "f";
        let err = rootfs(
            &[tar_of(&[E::File(&deep, b"x")])],
            &Limits {
                max_depth: 10,
                ..Limits::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            err,
            ImageError::CapExceeded {
                entry: deep.clone(),
                cap: Cap::Depth,
                limit: 10
            }
        );
        assert!(err.to_string().contains("max_depth"), "{err}");

        let many = tar_of(&[E::File("a", b""), E::File("b", b""), E::File("c", b"")]);
        let err = rootfs(
            &[many],
            &Limits {
                max_entries: 2,
                ..Limits::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            err,
            ImageError::CapExceeded {
                entry: "c".into(),
                cap: Cap::Entries,
                limit: 2
            }
        );

        let big = tar_of(&[
            E::File(STATUS, &[b'x'; 100]),
            E::File("usr/bin/big", &[0; 1000]),
        ]);
        let err = rootfs(
            std::slice::from_ref(&big),
            &Limits {
                max_file_bytes: 99,
                ..Limits::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            err,
            ImageError::CapExceeded {
                entry: STATUS.into(),
                cap: Cap::FileBytes,
                limit: 99
            }
        );
        // Files no analyzer reads are not held, so the per-file cap does not apply to them.
        assert!(rootfs(
            &[big],
            &Limits {
                max_file_bytes: 100,
                ..Limits::default()
            }
        )
        .is_ok());
    }
}
