//! Mapping of bucket names and object keys to paths inside a drive.
//!
//! Owns: the only place a user-supplied name becomes a file-system path. Every key segment
//! is escaped so that no key can name a path outside its bucket directory (`..`, `.`, empty
//! segments) or collide with the reserved entries this store keeps next to user data (all
//! reserved names start with `%`). Must never do I/O.

use std::path::PathBuf;

/// Longest object key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest file name most Linux file systems accept.
pub const MAX_SEGMENT_BYTES: usize = 255;

/// Metadata file of the object whose key is the directory's path.
pub const OBJECT_META_FILE: &str = "%meta";
/// Metadata file of the object whose key is the directory's path followed by `/`.
pub const DIR_OBJECT_META_FILE: &str = "%dirmeta";
/// Prefix of a version's data directory (followed by its UUID).
pub const DATA_DIR_PREFIX: &str = "%data.";
/// Bucket metadata file at the root of a bucket directory.
pub const BUCKET_META_FILE: &str = "%bucket";
/// System directory at the root of every drive; not a valid bucket name.
pub const SYSTEM_DIR: &str = ".buckets.sys";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("object key is empty")]
    Empty,
    #[error("object key is longer than {MAX_KEY_BYTES} bytes")]
    TooLong,
    #[error("a segment of the object key is longer than {MAX_SEGMENT_BYTES} bytes")]
    SegmentTooLong,
    #[error("object key contains a NUL character")]
    Nul,
}

/// Encodes one key segment as a directory name.
fn encode_segment(segment: &str) -> String {
    match segment {
        "" => "%e".to_string(),
        "." => "%dot".to_string(),
        ".." => "%dotdot".to_string(),
        s if s.starts_with('%') => format!("%25{}", &s[1..]),
        s => s.to_string(),
    }
}

/// Decodes a directory name back into a key segment; `None` for reserved entries.
pub fn decode_segment(name: &str) -> Option<String> {
    match name {
        "%e" => Some(String::new()),
        "%dot" => Some(".".to_string()),
        "%dotdot" => Some("..".to_string()),
        n if n.starts_with("%25") => Some(format!("%{}", &n[3..])),
        n if n.starts_with('%') => None,
        n => Some(n.to_string()),
    }
}

/// Where an object lives relative to its bucket directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPath {
    /// Directory of the key's segments (without a trailing `/`).
    pub dir: PathBuf,
    /// `%meta` or `%dirmeta`.
    pub meta_file: &'static str,
}

impl ObjectPath {
    /// The form sent to a peer: the directory as a string, and whether it is a "dir/" object.
    pub fn to_wire(&self) -> (String, bool) {
        (self.dir.to_string_lossy().into_owned(), self.meta_file == DIR_OBJECT_META_FILE)
    }

    /// Rebuilds a path a peer sent, refusing anything `object_path` could not have made.
    pub fn from_wire(dir: &str, dir_object: bool) -> Result<ObjectPath, KeyError> {
        let dir = checked_relative(dir)?;
        Ok(ObjectPath { dir, meta_file: if dir_object { DIR_OBJECT_META_FILE } else { OBJECT_META_FILE } })
    }

    pub fn meta_path(&self) -> PathBuf {
        self.dir.join(self.meta_file)
    }
}

/// Checks a key and computes its path.
pub fn object_path(key: &str) -> Result<ObjectPath, KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong);
    }
    if key.contains('\0') {
        return Err(KeyError::Nul);
    }
    let (body, meta_file) = match key.strip_suffix('/') {
        Some(body) => (body, DIR_OBJECT_META_FILE),
        None => (key, OBJECT_META_FILE),
    };
    let mut dir = PathBuf::new();
    // The key "/" has an empty body: its directory is the one empty segment.
    for segment in body.split('/') {
        let name = encode_segment(segment);
        if name.len() > MAX_SEGMENT_BYTES {
            return Err(KeyError::SegmentTooLong);
        }
        dir.push(name);
    }
    Ok(ObjectPath { dir, meta_file })
}

/// The directory of a listing prefix's complete segments, and the partial last segment.
/// `"a/b/c"` → (`a/b`, `"c"`); `"a/"` → (`a`, `""`).
pub fn prefix_dir(prefix: &str) -> (Vec<String>, String) {
    let mut segments: Vec<String> = prefix.split('/').map(str::to_string).collect();
    let partial = segments.pop().unwrap_or_default();
    (segments, partial)
}

/// A relative directory a peer sent: only plain, encoded segments (no `..`, `.`, root,
/// empty or over-long segments), so it cannot leave the bucket directory.
pub fn checked_relative(dir: &str) -> Result<PathBuf, KeyError> {
    if dir.len() > MAX_KEY_BYTES * 3 || dir.contains('\0') {
        return Err(KeyError::TooLong);
    }
    let mut out = PathBuf::new();
    if dir.is_empty() {
        return Ok(out);
    }
    for segment in dir.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." || segment.len() > MAX_SEGMENT_BYTES {
            return Err(KeyError::SegmentTooLong);
        }
        out.push(segment);
    }
    Ok(out)
}

/// Encodes complete key segments as a relative directory path.
pub fn segments_dir(segments: &[String]) -> PathBuf {
    segments.iter().map(|s| encode_segment(s)).collect()
}

/// One entry of a key directory, in the order S3 lists keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyEntry {
    /// The object whose key is the directory's own prefix (`a/b/`), stored in it as
    /// `DIR_OBJECT_META_FILE`.
    DirObject { key: String },
    /// The object `prefix + segment` (its metadata in the child directory).
    Object { key: String, segment: String },
    /// The keys under `prefix + segment + "/"` (the child directory's entries).
    Subtree { key: String, segment: String },
}

impl KeyEntry {
    pub fn key(&self) -> &str {
        match self {
            KeyEntry::DirObject { key } | KeyEntry::Object { key, .. } | KeyEntry::Subtree { key, .. } => key,
        }
    }
}

/// The entries of one key directory in S3 key order, from its listing (`(name, is_dir)`,
/// as a drive lists it, possibly merged over drives): the directory's own object first,
/// then each child object `P+s` just before its subtree `P+s/`, children by the bytes of
/// their keys. That is the key order of the whole tree when every walk descends in it.
/// `child_prefix` is the directory's key prefix (empty at the bucket root, otherwise
/// ending in `/`); only children whose segment starts with `partial` are given (the
/// directory's own object only when `partial` is empty).
pub fn key_order(entries: &[(String, bool)], child_prefix: &str, partial: &str) -> Vec<KeyEntry> {
    let mut out = Vec::new();
    if !child_prefix.is_empty() && partial.is_empty() && entries.iter().any(|(name, _)| name == DIR_OBJECT_META_FILE) {
        out.push(KeyEntry::DirObject { key: child_prefix.to_string() });
    }
    let mut children = Vec::new();
    for (name, is_dir) in entries {
        if !is_dir {
            continue;
        }
        let Some(segment) = decode_segment(name) else { continue };
        if !segment.starts_with(partial) {
            continue;
        }
        let key = format!("{child_prefix}{segment}");
        if !key.is_empty() && !key.ends_with('/') {
            children.push(KeyEntry::Object { key: key.clone(), segment: segment.clone() });
        }
        children.push(KeyEntry::Subtree { key: format!("{key}/"), segment });
    }
    children.sort_by(|a, b| a.key().as_bytes().cmp(b.key().as_bytes()));
    out.extend(children);
    out
}

/// A key directory's children in key order, relative to the directory: what `key_order`
/// gives for it with an empty `partial`, kept compact so that a drive can cache it for the
/// pages of a listing (two small indices per child instead of four strings).
#[derive(Debug, Default)]
pub struct KeyDir {
    /// Whether the directory holds its own object (`DIR_OBJECT_META_FILE`).
    pub dir_object: bool,
    segments: Vec<Box<str>>,
    /// Indices into `segments` in key order; `SUBTREE` marks the subtree `segment/`, its
    /// absence the object `segment` (never for the empty segment, whose object would be
    /// the directory's own).
    order: Vec<u32>,
}

const SUBTREE: u32 = 1 << 31;

impl KeyDir {
    /// From a drive's listing of the directory (`(name, is_dir)`).
    pub fn new(entries: &[(String, bool)]) -> KeyDir {
        let dir_object = entries.iter().any(|(name, _)| name == DIR_OBJECT_META_FILE);
        let segments: Vec<Box<str>> = entries
            .iter()
            .filter(|(_, is_dir)| *is_dir)
            .filter_map(|(name, _)| decode_segment(name))
            .take(SUBTREE as usize)
            .map(String::into_boxed_str)
            .collect();
        let mut order = Vec::with_capacity(segments.len() * 2);
        for (index, segment) in segments.iter().enumerate() {
            if !segment.is_empty() {
                order.push(index as u32);
            }
            order.push(index as u32 | SUBTREE);
        }
        let dir = KeyDir { dir_object, segments, order: Vec::new() };
        order.sort_by(|a, b| dir.relative_key(*a).cmp(dir.relative_key(*b)));
        KeyDir { order, ..dir }
    }

    /// A directory without children.
    pub fn leaf(dir_object: bool) -> KeyDir {
        KeyDir { dir_object, ..KeyDir::default() }
    }

    /// How many children the directory has.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The bytes of an entry's key relative to the directory: `segment` or `segment/`.
    fn relative_key(&self, entry: u32) -> impl Iterator<Item = u8> + Clone + '_ {
        let segment = self.segments[(entry & !SUBTREE) as usize].as_bytes();
        segment.iter().copied().chain((entry & SUBTREE != 0).then_some(b'/'))
    }

    /// The children (not the directory's own object) whose keys, under `child_prefix`,
    /// come after `marker`, in key order, led by the subtree that holds `marker` if there
    /// is one: where a listing that resumes after `marker` goes on in this directory.
    pub fn entries_after<'a>(&'a self, child_prefix: &'a str, marker: &str) -> impl Iterator<Item = KeyEntry> + 'a {
        let start = match marker.strip_prefix(child_prefix) {
            Some(rest) => {
                let rest = rest.as_bytes();
                let after = self.order.partition_point(|e| self.relative_key(*e).le(rest.iter().copied()));
                // The subtree `segment/` that `rest` lies in sorts before `rest`.
                let holding = after.checked_sub(1).filter(|&i| {
                    let entry = self.order[i];
                    let segment = self.segments[(entry & !SUBTREE) as usize].as_bytes();
                    entry & SUBTREE != 0 && rest.starts_with(segment) && rest.get(segment.len()) == Some(&b'/')
                });
                holding.unwrap_or(after)
            }
            None if marker < child_prefix => 0,
            None => self.order.len(),
        };
        self.order[start..].iter().map(move |&e| {
            let segment = self.segments[(e & !SUBTREE) as usize].to_string();
            if e & SUBTREE != 0 {
                KeyEntry::Subtree { key: format!("{child_prefix}{segment}/"), segment }
            } else {
                KeyEntry::Object { key: format!("{child_prefix}{segment}"), segment }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_never_escape() {
        let cases = [
            ("a", "a", OBJECT_META_FILE),
            ("a/b", "a/b", OBJECT_META_FILE),
            ("a/", "a", DIR_OBJECT_META_FILE),
            ("../x", "%dotdot/x", OBJECT_META_FILE),
            ("a/../../b", "a/%dotdot/%dotdot/b", OBJECT_META_FILE),
            ("./a", "%dot/a", OBJECT_META_FILE),
            ("a//b", "a/%e/b", OBJECT_META_FILE),
            ("/abs", "%e/abs", OBJECT_META_FILE),
            ("%meta", "%25meta", OBJECT_META_FILE),
            ("/", "%e", DIR_OBJECT_META_FILE),
        ];
        for (key, dir, meta) in cases {
            let path = object_path(key).unwrap();
            assert_eq!(path.dir, PathBuf::from(dir), "key {key:?}");
            assert_eq!(path.meta_file, meta, "key {key:?}");
            for component in path.dir.components() {
                assert!(matches!(component, std::path::Component::Normal(_)), "key {key:?}");
            }
        }
    }

    #[test]
    fn segments_round_trip() {
        for segment in ["", ".", "..", "%", "%25", "%meta", "plain", "ünïcödé", "%e"] {
            assert_eq!(decode_segment(&encode_segment(segment)).as_deref(), Some(segment));
        }
        for reserved in [OBJECT_META_FILE, DIR_OBJECT_META_FILE, BUCKET_META_FILE, "%data.x"] {
            assert_eq!(decode_segment(reserved), None);
        }
    }

    #[test]
    fn bad_keys() {
        assert_eq!(object_path(""), Err(KeyError::Empty));
        assert_eq!(object_path(&"a".repeat(1025)), Err(KeyError::TooLong));
        assert_eq!(object_path(&"a".repeat(256)), Err(KeyError::SegmentTooLong));
        assert_eq!(object_path("a\0b"), Err(KeyError::Nul));
    }

    #[test]
    fn a_key_directory_lists_in_key_order() {
        let names = |keys: &[&str]| -> Vec<(String, bool)> {
            let mut entries: Vec<(String, bool)> = keys.iter().map(|k| (encode_segment(k), true)).collect();
            entries.push((DIR_OBJECT_META_FILE.to_string(), false));
            entries.push((OBJECT_META_FILE.to_string(), false));
            entries
        };
        let keys = |entries: Vec<KeyEntry>| entries.iter().map(|e| e.key().to_string()).collect::<Vec<_>>();
        // "a-b" sorts between "a" and "a/": the object "a" comes before its subtree "a/",
        // and "a-b" ('-' < '/') before both's deeper keys.
        let listed = keys(key_order(&names(&["a", "a-b", "b"]), "p/", ""));
        assert_eq!(listed, ["p/", "p/a", "p/a-b", "p/a-b/", "p/a/", "p/b", "p/b/"]);
        assert_eq!(keys(key_order(&names(&["a", "b"]), "", "")), ["a", "a/", "b", "b/"], "no object at the root");
        assert_eq!(keys(key_order(&names(&["ab", "b"]), "p/", "a")), ["p/ab", "p/ab/"], "the partial segment filters");
    }

    #[test]
    fn a_cached_key_directory_resumes_where_the_full_order_would() {
        let segments = ["a", "a-b", "a.b", "ab", "", "b", "%x", "ä", "a b", "z"];
        let entries: Vec<(String, bool)> = segments
            .iter()
            .map(|s| (encode_segment(s), true))
            .chain([(DIR_OBJECT_META_FILE.to_string(), false), (format!("{DATA_DIR_PREFIX}1"), true)])
            .collect();
        let dir = KeyDir::new(&entries);
        assert!(dir.dir_object);
        assert_eq!(dir.len(), segments.len(), "reserved entries are not children");
        for child_prefix in ["", "p/"] {
            let full: Vec<KeyEntry> = key_order(&entries, child_prefix, "")
                .into_iter()
                .filter(|e| !matches!(e, KeyEntry::DirObject { .. }))
                .collect();
            let mut markers: Vec<String> = full.iter().map(|e| e.key().to_string()).collect();
            markers.extend(full.iter().map(|e| format!("{}x/y", e.key())));
            markers.extend(["", "a/", "a/zzz", "a0", "o", "p", "p/", "p/a/b", "q", "\u{10ffff}"].map(String::from));
            for marker in &markers {
                let expected: Vec<&KeyEntry> = full
                    .iter()
                    .filter(|e| {
                        e.key() > marker.as_str()
                            || matches!(e, KeyEntry::Subtree { key, .. } if marker.starts_with(key.as_str()))
                    })
                    .collect();
                let resumed: Vec<KeyEntry> = dir.entries_after(child_prefix, marker).collect();
                assert_eq!(resumed.iter().collect::<Vec<_>>(), expected, "prefix {child_prefix:?} after {marker:?}");
            }
        }
    }
}
