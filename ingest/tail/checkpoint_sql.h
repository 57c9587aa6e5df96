// The SQL of the file source's checkpoint store (data_dir/checkpoints.db), in one place.
// A row is one file of one source, known by device, inode and a fingerprint of its first
// bytes; `offset` is where reading resumes: everything before it was delivered.
#pragma once

#include <string_view>

namespace sluice::checkpoint_sql {

// WAL and synchronous=NORMAL: a save is a small transaction with no fsync of its own; a
// power cut may lose the newest saves, which only means reading a little again.
constexpr std::string_view pragmas =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=1000;";

constexpr std::string_view create_table = R"(CREATE TABLE IF NOT EXISTS checkpoints (
  source      TEXT NOT NULL,
  dev         INTEGER NOT NULL,
  ino         INTEGER NOT NULL,
  fp_length   INTEGER NOT NULL,   -- bytes the fingerprint covers (up to 256)
  fp_hash     INTEGER NOT NULL,   -- 64-bit FNV-1a of those bytes
  path        TEXT NOT NULL,      -- as the glob matched it, when last seen
  offset      INTEGER NOT NULL,   -- bytes delivered; reading resumes here
  updated_at  INTEGER NOT NULL,   -- unix ns of the last save (pruning)
  PRIMARY KEY (source, dev, ino)
) WITHOUT ROWID;)";

constexpr std::string_view select_source =
    "SELECT dev, ino, fp_length, fp_hash, path, offset, updated_at FROM checkpoints "
    "WHERE source = ?1";

constexpr std::string_view upsert =
    "INSERT INTO checkpoints (source, dev, ino, fp_length, fp_hash, path, offset, updated_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
    "ON CONFLICT (source, dev, ino) DO UPDATE SET fp_length = excluded.fp_length, "
    "fp_hash = excluded.fp_hash, path = excluded.path, offset = excluded.offset, "
    "updated_at = excluded.updated_at";

constexpr std::string_view remove = "DELETE FROM checkpoints WHERE source = ?1 AND dev = ?2 AND ino = ?3";

constexpr std::string_view prune = "DELETE FROM checkpoints WHERE updated_at < ?1";

constexpr std::string_view begin = "BEGIN IMMEDIATE";
constexpr std::string_view commit = "COMMIT";
constexpr std::string_view rollback = "ROLLBACK";

}  // namespace sluice::checkpoint_sql
