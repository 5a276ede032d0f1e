//! The data directory's partition layout: how many RocksDB instances a store
//! has and where each lives.
//!
//! Role: a store is split into `P` partitions, each its own RocksDB instance
//! with its own WAL, so the broker's shards sync their turns on different
//! files at the same time instead of queueing behind one WAL (issue #17). A
//! shard writes only to partition `shard % P`; every record has one owner
//! shard, so every key lives in exactly one partition.
//!
//! Layout: partition 0 is the data directory itself (a directory written
//! before partitions existed is a one-partition store, unchanged);
//! partition `k >= 1` is `DATA/part-k`. The count is recorded in
//! `DATA/PARTITIONS` (one decimal line) when the store is created and never
//! changes afterwards.
//!
//! Invariants:
//! - the count is decided once: an existing store keeps it whatever the
//!   options ask for; a directory with RocksDB's `CURRENT` and no
//!   `PARTITIONS` file has one partition;
//! - `PARTITIONS` is written (temporary file, fsync, rename, directory fsync)
//!   before any partition is created, so a crash during creation leaves
//!   either nothing or the final count; partitions are created last first
//!   (`Store::open`), so once partition 0 has `CURRENT` every other one has;
//! - an existing store whose partition directory lacks `CURRENT` is refused
//!   ([`StorageError::Layout`]) instead of being recreated empty;
//! - writers outside the shards create their records in partition 0
//!   (`Store::batch`), and change a record a shard created (a webhook outbox
//!   record, a dead letter) in the partition that holds it
//!   (`Store::ops_partition`, `Store::batch_in`), so no key ever has a copy
//!   in two partitions.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Result, StorageError};

/// Name of the file recording the partition count.
pub const PARTITIONS_FILE: &str = "PARTITIONS";
/// Largest partition count a store may have.
pub const MAX_PARTITIONS: usize = 256;

/// Directory of partition `k` of the store in `data`.
pub fn part_dir(data: &Path, k: usize) -> PathBuf {
    if k == 0 { data.to_path_buf() } else { data.join(format!("part-{k}")) }
}

fn layout_err(data: &Path, what: impl std::fmt::Display) -> StorageError {
    StorageError::Layout(format!("{}: {what}", data.display()))
}

/// The recorded count of the store in `data`: `Some(n)` from `PARTITIONS`,
/// `Some(1)` for a store written before partitions, `None` for no store.
pub fn recorded(data: &Path) -> Result<Option<usize>> {
    let file = data.join(PARTITIONS_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_PARTITIONS).contains(&n) => Ok(Some(n)),
            _ => Err(layout_err(
                data,
                format_args!(
                    "{PARTITIONS_FILE} must hold one number 1..={MAX_PARTITIONS}, not {:?}",
                    text.trim()
                ),
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(if data.join("CURRENT").is_file() { Some(1) } else { None })
        }
        Err(e) => Err(layout_err(data, format_args!("cannot read {PARTITIONS_FILE}: {e}"))),
    }
}

/// Records `n` partitions for a store in `data` (created if missing): only
/// for a new store, before any partition is opened.
pub fn record(data: &Path, n: usize) -> Result<()> {
    if !(1..=MAX_PARTITIONS).contains(&n) {
        return Err(layout_err(data, format_args!("{n} partitions: must be 1..={MAX_PARTITIONS}")));
    }
    let io = |what: &str, e: std::io::Error| layout_err(data, format_args!("{what}: {e}"));
    std::fs::create_dir_all(data).map_err(|e| io("cannot create the directory", e))?;
    let tmp = data.join(format!("{PARTITIONS_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(|e| io("cannot write PARTITIONS", e))?;
    f.write_all(format!("{n}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io("cannot write PARTITIONS", e))?;
    std::fs::rename(&tmp, data.join(PARTITIONS_FILE)).map_err(|e| io("cannot write PARTITIONS", e))?;
    std::fs::File::open(data).and_then(|d| d.sync_all()).map_err(|e| io("cannot sync the directory", e))?;
    Ok(())
}

/// The partition count of the store in `data`, creating the record for a new
/// store with `wanted` (at least 1), and checking that every partition of an
/// existing store is there.
pub(crate) fn open(data: &Path, wanted: usize) -> Result<usize> {
    match recorded(data)? {
        Some(n) => {
            if data.join("CURRENT").is_file() {
                for k in 1..n {
                    if !part_dir(data, k).join("CURRENT").is_file() {
                        return Err(layout_err(
                            data,
                            format_args!(
                                "partition {k} of {n} is missing ({}); restore a backup",
                                part_dir(data, k).display()
                            ),
                        ));
                    }
                }
            }
            Ok(n)
        }
        None => {
            let n = wanted.clamp(1, MAX_PARTITIONS);
            record(data, n)?;
            Ok(n)
        }
    }
}

/// The partition count of an existing store (read-only commands).
pub(crate) fn existing(data: &Path) -> Result<usize> {
    recorded(data)?.ok_or_else(|| layout_err(data, "not a data directory (no CURRENT file)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_records_its_count_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let data = dir.path().join("data");
        assert_eq!(recorded(&data).expect("read"), None);
        assert_eq!(open(&data, 3).expect("create"), 3);
        assert_eq!(std::fs::read_to_string(data.join(PARTITIONS_FILE)).expect("file"), "3\n");
        // Later opens keep the recorded count whatever they ask for.
        assert_eq!(open(&data, 8).expect("reopen"), 3);
        assert_eq!(part_dir(&data, 0), data);
        assert_eq!(part_dir(&data, 2), data.join("part-2"));
    }

    #[test]
    fn a_store_without_the_file_has_one_partition() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("CURRENT"), "MANIFEST-000001\n").expect("current");
        assert_eq!(open(dir.path(), 4).expect("legacy"), 1);
        assert!(!dir.path().join(PARTITIONS_FILE).exists(), "a legacy store is left as it is");
    }

    #[test]
    fn a_missing_partition_or_a_bad_file_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        record(dir.path(), 2).expect("record");
        std::fs::write(dir.path().join("CURRENT"), "MANIFEST-000001\n").expect("current");
        let e = open(dir.path(), 2).expect_err("part-1 has no CURRENT");
        assert!(e.to_string().contains("partition 1 of 2 is missing"), "{e}");
        std::fs::write(dir.path().join(PARTITIONS_FILE), "two\n").expect("write");
        assert!(matches!(open(dir.path(), 2), Err(StorageError::Layout(_))));
        std::fs::write(dir.path().join(PARTITIONS_FILE), "0\n").expect("write");
        assert!(matches!(recorded(dir.path()), Err(StorageError::Layout(_))));
    }
}
