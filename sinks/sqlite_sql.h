// The SQL of the SQLite sink, in one place. `{table}` is replaced by the configured table
// name, which config validation restricts to a plain identifier.
#pragma once

#include <string_view>

namespace sluice::sqlite_sql {

constexpr std::string_view pragmas =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY;";

constexpr std::string_view create_table = R"(CREATE TABLE IF NOT EXISTS {table} (
  id          INTEGER PRIMARY KEY,
  received_at INTEGER NOT NULL,
  ts          INTEGER,
  source      TEXT NOT NULL,
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

constexpr std::string_view insert =
    "INSERT INTO {table} (received_at, ts, source, host, severity, facility, app, procid, "
    "msgid, message, fields) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

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
};

constexpr std::string_view begin = "BEGIN IMMEDIATE";
constexpr std::string_view commit = "COMMIT";
constexpr std::string_view rollback = "ROLLBACK";

}  // namespace sluice::sqlite_sql
