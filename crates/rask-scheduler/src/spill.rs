//! Values moved to disk to stay within a memory budget: one file per value in a directory
//! that lives as long as the computation.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use rask_error::{RaskError, Result};
use rask_graph::{SpillFns, TaskId, Value};
use rustc_hash::FxHashMap;

pub(crate) struct SpillStore {
    dir: PathBuf,
    created: bool,
    files: FxHashMap<TaskId, SpillFns>,
    pub written_bytes: u64,
}

impl SpillStore {
    /// A store under `parent` (the system's temporary directory by default); nothing is
    /// created until the first value is spilled.
    pub fn new(parent: Option<PathBuf>) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let parent = parent.unwrap_or_else(std::env::temp_dir);
        let dir = parent.join(format!(
            "rask-spill-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        SpillStore {
            dir,
            created: false,
            files: FxHashMap::default(),
            written_bytes: 0,
        }
    }

    fn path(&self, id: TaskId) -> PathBuf {
        self.dir.join(format!("{id}.bin"))
    }

    /// Writes `value`; `Ok(false)` when its type cannot be spilled.
    pub fn write(&mut self, id: TaskId, value: &Value) -> Result<bool> {
        if !value.can_spill() {
            return Ok(false);
        }
        if !self.created {
            std::fs::create_dir_all(&self.dir).map_err(|e| RaskError::io(self.dir.display(), e))?;
            self.created = true;
        }
        let path = self.path(id);
        let file = File::create(&path).map_err(|e| RaskError::io(path.display(), e))?;
        let mut w = BufWriter::new(file);
        let written = value
            .spill(&mut w)
            .map_err(|e| RaskError::io(path.display(), e))?;
        match written {
            Some(fns) => {
                w.flush().map_err(|e| RaskError::io(path.display(), e))?;
                self.files.insert(id, fns);
                self.written_bytes += value.nbytes() as u64;
                Ok(true)
            }
            None => {
                drop(w);
                let _ = std::fs::remove_file(&path);
                Ok(false)
            }
        }
    }

    /// Reads a spilled value back and deletes its file.
    pub fn read(&mut self, id: TaskId) -> Result<Option<Value>> {
        let Some(fns) = self.files.remove(&id) else {
            return Ok(None);
        };
        let path = self.path(id);
        let file = File::open(&path).map_err(|e| RaskError::io(path.display(), e))?;
        let value = fns
            .decode(&mut BufReader::new(file))
            .map_err(|e| RaskError::io(path.display(), e))?;
        let _ = std::fs::remove_file(&path);
        Ok(Some(value))
    }

    /// Forgets a spilled value nobody needs any more.
    pub fn remove(&mut self, id: TaskId) {
        if self.files.remove(&id).is_some() {
            let _ = std::fs::remove_file(self.path(id));
        }
    }
}

impl Drop for SpillStore {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
