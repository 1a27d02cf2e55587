//! A read-only reader of SQLite 3 database files, just enough to list the rows of a table
//! (RPM's `rpmdb.sqlite`): the file header, table b-trees (interior and leaf pages),
//! overflow chains and records, read from the bytes in memory.
//!
//! Why not the SQLite library: opening bytes without a file needs `sqlite3_deserialize`,
//! which the rusqlite line that links with sqlx's libsqlite3-sys exposes only as `unsafe`
//! (and this workspace forbids `unsafe`); a temporary file would put image content on
//! disk. Reading the documented format ourselves also keeps a hostile file away from a C
//! parser: every offset is checked against the page, every page visited once per scan,
//! the tree depth capped, no two cells of a page at one offset, and a payload never
//! reserved beyond the file's own size, nor all of a scan's payloads together (cells
//! that overlap would otherwise copy the same bytes many times over). A malformed file
//! gives an error naming the page, never a panic.
//!
//! Not read: the write-ahead log (`-wal`, rows written since the last checkpoint), index
//! b-trees, `WITHOUT ROWID` tables, and databases whose text encoding is UTF-16.

/// The deepest table b-tree accepted; a real one of 64 MiB is 4 or 5 levels deep.
const MAX_DEPTH: usize = 32;

/// Called with each row's rowid and record payload; an error stops the scan.
pub(crate) type Visit<'v> = dyn FnMut(i64, &[u8]) -> Result<(), String> + 'v;

/// One column value of a record; text and blobs borrow from the row's payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Int(i64),
    Float(f64),
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

/// An SQLite 3 database file, checked at its header.
#[derive(Debug)]
pub(crate) struct Database<'a> {
    bytes: &'a [u8],
    page_size: usize,
    usable: usize,
    pages: u32,
}

impl<'a> Database<'a> {
    /// Checks the 100-byte header: the magic string, the page size and the encoding.
    pub(crate) fn open(bytes: &'a [u8]) -> Result<Self, String> {
        if bytes.len() < 100 || !bytes.starts_with(b"SQLite format 3\0") {
            return Err("not an SQLite 3 database (no `SQLite format 3` header)".to_owned());
        }
        let page_size = match u16::from_be_bytes([bytes[16], bytes[17]]) {
            1 => 65536,
            n => usize::from(n),
        };
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(format!("invalid SQLite page size {page_size}"));
        }
        let usable = page_size - usize::from(bytes[20]);
        if usable < 480 {
            return Err(format!("invalid SQLite usable page size {usable}"));
        }
        match be32(bytes, 56) {
            0 | 1 => {}
            e => return Err(format!("SQLite text encoding {e} (UTF-16) is not read")),
        }
        // The header's page count holds only when written by a version that kept it
        // (its change counter equals `version-valid-for`); the file's length always does.
        let in_file = u32::try_from(bytes.len() / page_size).unwrap_or(u32::MAX);
        let in_header = be32(bytes, 28);
        let pages = if in_header != 0 && be32(bytes, 24) == be32(bytes, 92) {
            in_header.min(in_file)
        } else {
            in_file
        };
        Ok(Self {
            bytes,
            page_size,
            usable,
            pages,
        })
    }

    /// The usable bytes of page `n` (1-based).
    fn page(&self, n: u32) -> Result<&'a [u8], String> {
        if n == 0 || n > self.pages {
            return Err(format!(
                "page {n} is outside the database ({} pages)",
                self.pages
            ));
        }
        let start = (n as usize - 1) * self.page_size;
        Ok(&self.bytes[start..start + self.usable])
    }

    /// The root page of the table `name` (compared without regard to ASCII case, as SQLite
    /// does), from the schema table on page 1; `None` when there is no such table.
    pub(crate) fn table_root(&self, name: &str) -> Result<Option<u32>, String> {
        let mut root = None;
        self.scan(1, &mut |_, payload| {
            let cols = record(payload)?;
            if let [Value::Text(b"table"), Value::Text(n), _, Value::Int(page), ..] = cols[..] {
                if root.is_none() && n.eq_ignore_ascii_case(name.as_bytes()) {
                    root = Some(
                        u32::try_from(page)
                            .map_err(|_| format!("table {name} has root page {page}"))?,
                    );
                }
            }
            Ok(())
        })?;
        Ok(root)
    }

    /// Calls `visit` with the rowid and record payload of every row of the table b-tree
    /// rooted at `root`, in rowid order. An error from `visit` stops the scan.
    pub(crate) fn scan(&self, root: u32, visit: &mut Visit<'_>) -> Result<(), String> {
        let mut scan = Scan {
            seen: vec![false; self.pages as usize + 1],
            copied: 0,
        };
        self.visit_page(root, 0, &mut scan, visit)
    }

    fn mark(&self, n: u32, seen: &mut [bool]) -> Result<(), String> {
        match seen.get_mut(n as usize) {
            Some(s) if !*s => {
                *s = true;
                Ok(())
            }
            Some(_) => Err(format!("page {n} is reached twice (a loop)")),
            None => Err(format!(
                "page {n} is outside the database ({} pages)",
                self.pages
            )),
        }
    }

    fn visit_page(
        &self,
        n: u32,
        depth: usize,
        scan: &mut Scan,
        visit: &mut Visit<'_>,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("table b-tree deeper than {MAX_DEPTH} at page {n}"));
        }
        self.mark(n, &mut scan.seen)?;
        let page = self.page(n)?;
        let at = if n == 1 { 100 } else { 0 };
        let bad = |what: &str| format!("page {n}: {what}");
        let kind = *page.get(at).ok_or_else(|| bad("truncated"))?;
        let header = match kind {
            0x0d => 8,
            0x05 => 12,
            k => return Err(bad(&format!("type {k:#04x} is not a table b-tree page"))),
        };
        if at + header > page.len() {
            return Err(bad("truncated header"));
        }
        let cells = usize::from(be16(page, at + 3));
        let pointers = at + header;
        if pointers + 2 * cells > page.len() {
            return Err(bad(&format!("{cells} cells do not fit")));
        }
        // Each cell has its own place: two pointers at one cell would read it twice.
        let mut offsets: Vec<u16> = (0..cells).map(|i| be16(page, pointers + 2 * i)).collect();
        offsets.sort_unstable();
        if let Some(w) = offsets.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad(&format!("two cells at offset {}", w[0])));
        }
        for i in 0..cells {
            let cell = usize::from(be16(page, pointers + 2 * i));
            let body = page
                .get(cell..)
                .filter(|b| !b.is_empty())
                .ok_or_else(|| bad(&format!("cell {i} at offset {cell} is outside the page")))?;
            if kind == 0x05 {
                if body.len() < 4 {
                    return Err(bad(&format!("cell {i} is truncated")));
                }
                self.visit_page(be32(body, 0), depth + 1, scan, visit)?;
            } else {
                let (size, a) = varint(body).ok_or_else(|| bad(&format!("cell {i}: size")))?;
                let (rowid, b) =
                    varint(&body[a..]).ok_or_else(|| bad(&format!("cell {i}: rowid")))?;
                let payload = self
                    .payload(size, &body[a + b..], scan)
                    .map_err(|e| bad(&format!("cell {i}: {e}")))?;
                visit(rowid as i64, &payload)?;
            }
        }
        if kind == 0x05 {
            self.visit_page(be32(page, at + 8), depth + 1, scan, visit)?;
        }
        Ok(())
    }

    /// A leaf cell's payload: its local part, then its overflow chain when it spills.
    fn payload(&self, size: u64, local: &[u8], scan: &mut Scan) -> Result<Vec<u8>, String> {
        if size > self.bytes.len() as u64 {
            return Err(format!("payload of {size} bytes is larger than the file"));
        }
        // Distinct cells and overflow pages hold distinct bytes of the file, so a scan's
        // payloads add up to less than the file: more means cells overlap.
        scan.copied = scan.copied.saturating_add(size);
        if scan.copied > self.bytes.len() as u64 {
            return Err(format!(
                "rows copy more than the file's {} bytes (cells overlap)",
                self.bytes.len()
            ));
        }
        let size = size as usize;
        let u = self.usable;
        let max_local = u - 35;
        let here = if size <= max_local {
            size
        } else {
            let min_local = (u - 12) * 32 / 255 - 23;
            let k = min_local + (size - min_local) % (u - 4);
            if k <= max_local {
                k
            } else {
                min_local
            }
        };
        let spills = here < size;
        let needed = here + if spills { 4 } else { 0 };
        if local.len() < needed {
            return Err("payload runs past the page".to_owned());
        }
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&local[..here]);
        if spills {
            let mut next = be32(local, here);
            while out.len() < size {
                if next == 0 {
                    return Err("overflow chain ends early".to_owned());
                }
                self.mark(next, &mut scan.seen)?;
                let page = self.page(next)?;
                let take = (size - out.len()).min(u - 4);
                out.extend_from_slice(&page[4..4 + take]);
                next = be32(page, 0);
            }
        }
        Ok(out)
    }
}

/// What one scan has used: the pages visited, and the payload bytes copied out.
struct Scan {
    seen: Vec<bool>,
    copied: u64,
}

/// The columns of a record: a header of serial types, then their values.
pub(crate) fn record(payload: &[u8]) -> Result<Vec<Value<'_>>, String> {
    let (header, mut at) = varint(payload).ok_or("record header size is truncated")?;
    let header = usize::try_from(header)
        .ok()
        .filter(|h| *h <= payload.len() && *h >= at)
        .ok_or_else(|| format!("record header of {header} bytes does not fit"))?;
    let mut body = header;
    let mut out = Vec::new();
    while at < header {
        let (ty, n) = varint(&payload[at..header]).ok_or("record serial type is truncated")?;
        at += n;
        let len = match ty {
            0 | 8 | 9 => 0,
            1..=4 => ty as usize,
            5 => 6,
            6 | 7 => 8,
            10 | 11 => return Err(format!("reserved serial type {ty}")),
            n => usize::try_from((n - 12) / 2).unwrap_or(usize::MAX),
        };
        let bytes = body
            .checked_add(len)
            .and_then(|end| payload.get(body..end))
            .ok_or_else(|| format!("column {} runs past the record", out.len()))?;
        body += len;
        out.push(match ty {
            0 => Value::Null,
            1..=6 => {
                // Big-endian two's complement of 1, 2, 3, 4, 6 or 8 bytes.
                let mut v: i64 = if bytes[0] & 0x80 != 0 { -1 } else { 0 };
                for b in bytes {
                    v = (v << 8) | i64::from(*b);
                }
                Value::Int(v)
            }
            7 => Value::Float(f64::from_bits(u64::from_be_bytes(
                bytes.try_into().map_err(|_| "float is not 8 bytes")?,
            ))),
            8 => Value::Int(0),
            9 => Value::Int(1),
            n if n % 2 == 0 => Value::Blob(bytes),
            _ => Value::Text(bytes),
        });
    }
    Ok(out)
}

/// SQLite's variable-length integer: 1 to 9 bytes, big-endian, 7 bits a byte but 8 in the
/// ninth. The value and the bytes it took, or `None` when the input ends first.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for i in 0..9 {
        let byte = *b.get(i)?;
        if i == 8 {
            return Some(((v << 8) | u64::from(byte), 9));
        }
        v = (v << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Big-endian reads at offsets the callers have checked against the slice.
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database written by the real SQLite: a `t` table with every kind of value, and
    /// blobs from empty to several pages long, so leaves, interior pages and overflow
    /// chains are all there.
    fn written_by_sqlite(page_size: u32, rows: i64) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.sqlite");
        let db = rusqlite::Connection::open(&path).expect("open");
        db.execute_batch(&format!(
            "PRAGMA page_size = {page_size}; PRAGMA journal_mode = DELETE;
             CREATE TABLE other (x TEXT);
             CREATE INDEX other_x ON other (x);
             CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, b BLOB, s TEXT, n, f);"
        ))
        .expect("schema");
        let tx = db.unchecked_transaction().expect("tx");
        for i in 1..=rows {
            tx.execute(
                "INSERT INTO t (b, s, n, f) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![blob(i), format!("row {i} ü"), int(i), i as f64 / 4.0],
            )
            .expect("insert");
        }
        tx.execute(
            "INSERT INTO t (b, s, n, f) VALUES (NULL, NULL, NULL, NULL)",
            [],
        )
        .expect("insert nulls");
        tx.commit().expect("commit");
        drop(db);
        std::fs::read(&path).expect("read back")
    }

    fn blob(i: i64) -> Vec<u8> {
        let len = (i * 7919 % 23_000) as usize;
        (0..len).map(|j| (j as i64 * 31 + i) as u8).collect()
    }

    /// Integers of each stored width, negative ones too.
    fn int(i: i64) -> i64 {
        let v = [
            0,
            1,
            127,
            -128,
            40_000,
            -8_000_000,
            1 << 40,
            i64::MIN,
            i64::MAX,
        ][i as usize % 9];
        v ^ (i & 1)
    }

    #[test]
    fn reads_every_row_sqlite_wrote_at_every_page_size() {
        for page_size in [512, 4096, 65536] {
            let bytes = written_by_sqlite(page_size, 600);
            let db = Database::open(&bytes).expect("a database");
            assert_eq!(db.page_size, page_size as usize);
            let root = db.table_root("T").expect("schema").expect("table t");
            assert_eq!(db.table_root("missing").expect("schema"), None);
            let mut seen = 0;
            db.scan(root, &mut |rowid, payload| {
                seen += 1;
                assert_eq!(rowid, seen, "rowid order");
                let cols = record(payload)?;
                if rowid == 601 {
                    assert_eq!(cols, vec![Value::Null; 5]);
                    return Ok(());
                }
                let text = format!("row {rowid} ü");
                let expected = [
                    Value::Null, // the rowid alias is stored as NULL
                    Value::Blob(&blob(rowid)),
                    Value::Text(text.as_bytes()),
                    Value::Int(int(rowid)),
                    Value::Float(rowid as f64 / 4.0),
                ];
                assert_eq!(cols.len(), 5);
                for (i, (got, want)) in cols.iter().zip(&expected).enumerate() {
                    // Not the values themselves in the message: blobs are pages long.
                    assert!(
                        got == want,
                        "row {rowid} column {i} at page size {page_size}: {}",
                        match (got, want) {
                            (Value::Blob(g), Value::Blob(w)) => format!(
                                "{} bytes, first difference at {:?}, want {} bytes",
                                g.len(),
                                g.iter().zip(w.iter()).position(|(a, b)| a != b),
                                w.len()
                            ),
                            _ => format!("{got:?}, want {want:?}"),
                        }
                    );
                }
                Ok(())
            })
            .expect("scan");
            assert_eq!(seen, 601, "page size {page_size}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_sqlite_database() {
        let e = Database::open(b"{\"not\": \"sqlite\"}").expect_err("json");
        assert_eq!(e, "not an SQLite 3 database (no `SQLite format 3` header)");
        let mut bytes = written_by_sqlite(512, 3);
        bytes[16..18].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(
            Database::open(&bytes).expect_err("bad page size"),
            "invalid SQLite page size 1000"
        );
    }

    #[test]
    fn a_page_loop_or_a_truncated_file_is_an_error_not_a_hang() {
        let bytes = written_by_sqlite(512, 300);
        let db = Database::open(&bytes).expect("db");
        let root = db.table_root("t").expect("schema").expect("t");
        // The root is an interior page: point its right-most child at itself.
        let at = (root as usize - 1) * 512;
        assert_eq!(bytes[at], 0x05, "300 rows need an interior page");
        let mut looped = bytes.clone();
        looped[at + 8..at + 12].copy_from_slice(&root.to_be_bytes());
        let db = Database::open(&looped).expect("header intact");
        let e = db.scan(root, &mut |_, _| Ok(())).expect_err("loop");
        assert!(e.contains("reached twice"), "{e}");

        let cut = &bytes[..bytes.len() / 2];
        let db = Database::open(cut).expect("header intact");
        assert!(db.scan(root, &mut |_, _| Ok(())).is_err());
    }

    /// The root leaf of `t` in a fresh 64 KiB-page database, rewritten to hold `pointers`
    /// as its cells over a content area of `pattern` repeated.
    fn with_cells(pointers: &[u16], pattern: &[u8]) -> (Vec<u8>, u32) {
        let mut bytes = written_by_sqlite(65536, 1);
        let root = Database::open(&bytes)
            .unwrap()
            .table_root("t")
            .unwrap()
            .unwrap();
        let page = &mut bytes[(root as usize - 1) * 65536..root as usize * 65536];
        assert_eq!(page[0], 0x0d, "one row: the root is a leaf");
        page[3..5].copy_from_slice(&(pointers.len() as u16).to_be_bytes());
        let content = 8 + 2 * pointers.len();
        for (i, p) in pointers.iter().enumerate() {
            page[8 + 2 * i..10 + 2 * i].copy_from_slice(&p.to_be_bytes());
        }
        for (i, b) in page[content..].iter_mut().enumerate() {
            *b = pattern[i % pattern.len()];
        }
        (bytes, root)
    }

    #[test]
    fn cells_that_share_or_overlap_their_bytes_are_refused_quickly() {
        let started = std::time::Instant::now();
        // 20,000 pointers at one cell of 20,000 bytes: 400 MB copied, were each read.
        let (bytes, root) = with_cells(&[40_008; 20_000], &[0x81, 0x9c, 0x20, 0x01]);
        let db = Database::open(&bytes).unwrap();
        let mut rows = 0;
        let e = db
            .scan(root, &mut |_, _| {
                rows += 1;
                Ok(())
            })
            .expect_err("shared cell");
        assert_eq!(e, format!("page {root}: two cells at offset 40008"));
        assert_eq!(rows, 0);

        // Cells two bytes apart, each read as `size 384, rowid 384` and 384 bytes on:
        // distinct offsets, overlapping bytes, 3.8 MB copied out of a 192 KiB file.
        let pointers: Vec<u16> = (0..10_000).map(|k| 20_008 + 2 * k).collect();
        let (bytes, root) = with_cells(&pointers, &[0x83, 0x00]);
        let db = Database::open(&bytes).unwrap();
        let e = db.scan(root, &mut |_, _| Ok(())).expect_err("overlap");
        assert_eq!(
            e,
            format!(
                "page {root}: cell {}: rows copy more than the file's {} bytes (cells overlap)",
                bytes.len() / 384,
                bytes.len()
            )
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn damaged_bytes_never_panic() {
        let bytes = written_by_sqlite(512, 120);
        // A deterministic walk over single-byte damage: every result is Ok or Err.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut errors = 0;
        for _ in 0..3000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut damaged = bytes.clone();
            let at = (state % damaged.len() as u64) as usize;
            damaged[at] = (state >> 32) as u8;
            let Ok(db) = Database::open(&damaged) else {
                errors += 1;
                continue;
            };
            let scanned = db.table_root("t").and_then(|root| {
                db.scan(root.unwrap_or(2), &mut |_, payload| {
                    record(payload).map(drop)
                })
            });
            errors += usize::from(scanned.is_err());
        }
        assert!(errors > 0, "some damage must be detected");
    }
}
