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
        let parts: Vec<[&[u8]; 1]> = records.iter().map(|r| [*r]).collect();
        let frames: Vec<&[&[u8]]> = parts.iter().map(|p| &p[..]).collect();
        self.append_parts(&frames)
    }

    /// [`RecordsFile::append`] of frames given as parts to join (a tag and a value):
    /// written from where they are, with one gathering write per 1,024 pieces rather
    /// than copied into one buffer first (a big file's chunks are 64 MiB and more).
    pub fn append_parts(&mut self, frames: &[&[&[u8]]]) -> Result<Vec<u64>, StoreError> {
        let mut headers = Vec::with_capacity(frames.len());
        let mut offsets = Vec::with_capacity(frames.len());
        let mut at = self.end;
        for parts in frames {
            let len: usize = parts.iter().map(|p| p.len()).sum();
            let mut crc = crc32fast::Hasher::new();
            for p in *parts {
                crc.update(p);
            }
            let mut h = [0u8; FRAME_HEADER as usize];
            h[..4].copy_from_slice(&(len as u32).to_le_bytes());
            h[4..].copy_from_slice(&crc.finalize().to_le_bytes());
            headers.push(h);
            offsets.push(at + FRAME_HEADER);
            at += FRAME_HEADER + len as u64;
        }
        let mut slices: Vec<std::io::IoSlice<'_>> = Vec::new();
        for (h, parts) in headers.iter().zip(frames) {
            slices.push(std::io::IoSlice::new(h));
            slices.extend(parts.iter().map(|p| std::io::IoSlice::new(p)));
        }
        let mut rest = &mut slices[..];
        std::io::IoSlice::advance_slices(&mut rest, 0); // skips empty slices
        while !rest.is_empty() {
            let n = match self.file.write_vectored(rest) {
                Ok(0) => {
                    return Err(self.err()(std::io::Error::from(
                        std::io::ErrorKind::WriteZero,
                    )));
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.err()(e)),
            };
            std::io::IoSlice::advance_slices(&mut rest, n);
        }
        self.end = at;
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
