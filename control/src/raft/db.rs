//! The redb file of one member: `raft.redb` in its data directory, holding the log, the vote,
//! the purge point and the last snapshot. redb's default durability (`Immediate`) fsyncs on
//! every commit, so whatever the store has reported durable survives a crash.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, TableDefinition};

/// Log entries by index, as JSON.
pub const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// `vote` and `last_purged`, as JSON.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `meta` and `data` of the current snapshot.
pub const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");

/// File name inside the data directory.
pub const FILE_NAME: &str = "raft.redb";

/// Opens (or creates) the member's database and makes sure every table exists.
pub fn open(dir: &Path) -> Result<Arc<Database>, redb::Error> {
    std::fs::create_dir_all(dir).map_err(redb::Error::Io)?;
    let db = Database::create(dir.join(FILE_NAME))?;
    let tx = db.begin_write()?;
    tx.open_table(LOG)?;
    tx.open_table(META)?;
    tx.open_table(SNAPSHOT)?;
    tx.commit()?;
    Ok(Arc::new(db))
}

/// True when the directory holds a database with a vote or a log (a member that has run).
pub fn has_state(db: &Database) -> Result<bool, redb::Error> {
    use redb::ReadableTableMetadata;
    let tx = db.begin_read()?;
    let meta = tx.open_table(META)?;
    let log = tx.open_table(LOG)?;
    Ok(!meta.is_empty()? || !log.is_empty()?)
}
