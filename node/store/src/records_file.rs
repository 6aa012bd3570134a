//! `records.lf`: the append-only file that is the store's source of truth.
//!
//! Each record is framed as `u32 LE length · u32 LE CRC-32 of the bytes · bytes`. A
//! frame is complete only if its length fits in the file and its checksum matches;
//! recovery stops at the first incomplete frame and cuts the file there, so a torn
//! tail is never parsed as a record.
//!
//! The daemon's LFFS commit journal uses the same framing (it is exported as
//! [`RecordsFile`]): errors name the file it was opened on.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::StoreError;

/// Bytes of framing before each record.
pub const FRAME_HEADER: u64 = 8;

/// The open records file.
pub struct RecordsFile {
    file: File,
    end: u64,
    path: PathBuf,
}

impl RecordsFile {
    /// Opens (creating if needed) the records file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| StoreError::io(path, e))?;
        let end = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
        Ok(RecordsFile {
            file,
            end,
            path: path.to_path_buf(),
        })
    }

    fn err(&self) -> impl Fn(std::io::Error) -> StoreError + '_ {
        |e| StoreError::io(&self.path, e)
    }

    /// Offset where the next frame will start.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Appends frames (not yet durable: call [`RecordsFile::sync`]). Returns the offset
    /// of each record's bytes.
    pub fn append(&mut self, records: &[&[u8]]) -> Result<Vec<u64>, StoreError> {
        let mut buf = Vec::with_capacity(records.iter().map(|r| r.len() + 8).sum());
        let mut offsets = Vec::with_capacity(records.len());
        for r in records {
            offsets.push(self.end + buf.len() as u64 + FRAME_HEADER);
            buf.extend_from_slice(&(r.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(r).to_le_bytes());
            buf.extend_from_slice(r);
        }
        self.file.write_all(&buf).map_err(self.err())?;
        self.end += buf.len() as u64;
        Ok(offsets)
    }

    /// Makes everything appended so far durable (fdatasync).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.file.sync_data().map_err(self.err())
    }

    /// Cuts the file back to `len`, undoing appends that were never acknowledged.
    /// Afterwards `end` is the file's real length even if the cut failed, so offsets
    /// of later appends stay right.
    pub fn truncate(&mut self, len: u64) -> Result<(), StoreError> {
        let cut = self.file.set_len(len);
        self.end = self.file.metadata().map_err(self.err())?.len();
        cut.map_err(self.err())
    }

    /// Reads the record bytes at `offset` (as returned by `append`).
    pub fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, StoreError> {
        use std::os::unix::fs::FileExt;
        let mut b = vec![0u8; len];
        self.file
            .read_exact_at(&mut b, offset)
            .map_err(self.err())?;
        Ok(b)
    }

    /// Reads the complete frames from `from` to the end; cuts the file after the last
    /// complete frame. Returns (offset of bytes, bytes) per frame.
    pub fn recover_tail(&mut self, from: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut data = Vec::new();
        let mut f = &self.file;
        f.seek(SeekFrom::Start(from)).map_err(self.err())?;
        f.read_to_end(&mut data).map_err(self.err())?;
        let mut out = Vec::new();
        let mut pos = 0usize;
        while data.len() - pos >= FRAME_HEADER as usize {
            let len = u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4 bytes")) as usize;
            let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().expect("4 bytes"));
            let start = pos + FRAME_HEADER as usize;
            let Some(bytes) = data.get(start..start + len) else {
                break;
            };
            if crc32fast::hash(bytes) != crc {
                break;
            }
            out.push((from + start as u64, bytes.to_vec()));
            pos = start + len;
        }
        let good_end = from + pos as u64;
        if good_end < self.end {
            tracing::warn!(
                cut = self.end - good_end,
                at = good_end,
                file = %self.path.display(),
                "the file ends with an incomplete frame; cutting it off"
            );
            self.file.set_len(good_end).map_err(self.err())?;
            self.file.sync_all().map_err(self.err())?;
            self.end = good_end;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_read_and_cut_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("records.lf");
        let mut f = RecordsFile::open(&p).unwrap();
        let offs = f.append(&[b"one", b"three"]).unwrap();
        f.sync().unwrap();
        assert_eq!(f.read(offs[1], 5).unwrap(), b"three");
        // A torn third frame: header says 100 bytes, only 4 follow.
        {
            let mut raw = OpenOptions::new().append(true).open(&p).unwrap();
            raw.write_all(&100u32.to_le_bytes()).unwrap();
            raw.write_all(&[0, 0, 0, 0, 1, 2, 3, 4]).unwrap();
        }
        let mut f = RecordsFile::open(&p).unwrap();
        let frames = f.recover_tail(0).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].1, b"three");
        assert_eq!(std::fs::metadata(&p).unwrap().len(), f.end());
        // A frame with a wrong checksum is also cut.
        let end = f.end();
        f.append(&[b"ok"]).unwrap();
        {
            use std::os::unix::fs::FileExt;
            let raw = OpenOptions::new().write(true).open(&p).unwrap();
            raw.write_at(b"X", end + FRAME_HEADER).unwrap();
        }
        let mut f = RecordsFile::open(&p).unwrap();
        assert_eq!(f.recover_tail(0).unwrap().len(), 2);
        assert_eq!(f.end(), end);
    }
}
