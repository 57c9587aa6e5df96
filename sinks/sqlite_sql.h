// The SQL of the SQLite sink, in one place. `{table}` is replaced by the configured table
// name, which config validation restricts to a plain identifier.
#pragma once

#include <string_view>

namespace sluice::sqlite_sql {

// page_size: 16 KiB pages (for a new database; an existing one keeps its own) mean a quarter
// of the page headers, WAL frames and syscalls of the 4 KiB default for the same rows; it
// measured 20-30% more rows/s. cache_size: 256 KiB (16 pages), grown only as needed and kept
// for the connection's life, so it counts in the process's memory floor. A write larger than
// that spills dirty pages into the WAL before COMMIT; rows only ever append to the table's
// last leaf, so a spilled page is not written again: 8 MiB, 1 MiB and 256 KiB wrote the same
// bytes per row (within 0.1%) at the same rate (bench/sqlite_raw, 2,000,000 rows, on tmpfs
// and on disk), and the drained-backlog peak is 0.75 MiB lower than at 1 MiB.
constexpr std::string_view pragmas =
    "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
    "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-256;";

constexpr std::string_view create_table = R"(CREATE TABLE IF NOT EXISTS {table} (
  id          INTEGER PRIMARY KEY,
  received_at INTEGER NOT NULL,
  ts          INTEGER,
  source      TEXT NOT NULL,
  file        TEXT,
  host        TEXT,
  severity    INTEGER,
  facility    INTEGER,
  app         TEXT,
  procid      TEXT,
  msgid       TEXT,
  message     TEXT NOT NULL,
  fields      TEXT
);)";

constexpr std::string_view create_fts = R"(
CREATE VIRTUAL TABLE IF NOT EXISTS {table}_fts
  USING fts5(message, content='{table}', content_rowid='id');
CREATE TRIGGER IF NOT EXISTS {table}_fts_insert AFTER INSERT ON {table} BEGIN
  INSERT INTO {table}_fts(rowid, message) VALUES (new.id, new.message);
END;)";

// A table made before the `file` column existed gets it (NULL for the rows it has).
constexpr std::string_view has_file_column =
    "SELECT 1 FROM pragma_table_info('{table}') WHERE name = 'file'";
constexpr std::string_view add_file_column = "ALTER TABLE {table} ADD COLUMN file TEXT";

constexpr std::string_view insert =
    "INSERT INTO {table} (received_at, ts, source, host, severity, facility, app, procid, "
    "msgid, message, fields, file) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

// Parameter numbers of `insert`.
enum param : int {
    received_at = 1,
    ts,
    source,
    host,
    severity,
    facility,
    app,
    procid,
    msgid,
    message,
    fields,
    file,
};

constexpr std::string_view begin = "BEGIN IMMEDIATE";
constexpr std::string_view commit = "COMMIT";
constexpr std::string_view rollback = "ROLLBACK";

}  // namespace sluice::sqlite_sql
