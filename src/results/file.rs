//! The plain file IO every run-directory file shares: optional reads, JSON documents
//! written atomically, and [`FileError`] naming the file (and line) that failed.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::jsonl::JsonlError;

/// Why a run-directory file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        /// 1-based; 0 for the whole file.
        line: usize,
        message: String,
    },
}

impl FileError {
    pub fn io(path: &Path, source: io::Error) -> FileError {
        FileError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub fn parse(path: &Path, line: usize, message: impl Into<String>) -> FileError {
        FileError::Parse {
            path: path.to_owned(),
            line,
            message: message.into(),
        }
    }
}

impl From<JsonlError> for FileError {
    fn from(e: JsonlError) -> FileError {
        match e {
            JsonlError::Io { path, source } => FileError::Io { path, source },
            JsonlError::Parse { path, line, source } => FileError::Parse {
                path,
                line,
                message: source.to_string(),
            },
        }
    }
}

/// Reads a file; `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FileError::io(path, source)),
    }
}

/// Reads a JSON document; `None` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, FileError> {
    match read_optional(path)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| FileError::parse(path, e.line(), e.to_string())),
    }
}

/// Writes a JSON document pretty-printed, atomically (a temporary file `<name>.tmp` beside
/// it, then a rename), so a reader never sees half of it.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), FileError> {
    let mut json = serde_json::to_vec_pretty(value).map_err(|e| FileError::io(path, e.into()))?;
    json.push(b'\n');
    write_atomic(path, &json)
}

/// Writes a file atomically: a temporary file `<name>.tmp` beside it, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes).map_err(|e| FileError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| FileError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_documents_round_trip_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), None);
        write_json_atomic(&path, &vec![1u32, 2]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), Some(vec![1, 2]));
        assert!(!dir.path().join("x.json.tmp").exists());
        fs::write(&path, "[1,\n x]").unwrap();
        assert!(matches!(
            read_json::<Vec<u32>>(&path),
            Err(FileError::Parse { line: 2, .. })
        ));
    }
}
