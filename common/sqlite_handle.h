// RAII handles for sqlite3 connections and prepared statements. A handle belongs to one
// thread at a time (SQLite's multi-thread mode); not thread-safe.
#pragma once

#include <sqlite3.h>

#include <string>
#include <string_view>
#include <utility>

namespace sluice {

class sqlite_stmt {
public:
    sqlite_stmt() = default;
    explicit sqlite_stmt(sqlite3_stmt* s) : stmt_(s) {}
    sqlite_stmt(sqlite_stmt&& o) noexcept : stmt_(std::exchange(o.stmt_, nullptr)) {}
    sqlite_stmt& operator=(sqlite_stmt&& o) noexcept {
        if (this != &o) {
            sqlite3_finalize(stmt_);
            stmt_ = std::exchange(o.stmt_, nullptr);
        }
        return *this;
    }
    ~sqlite_stmt() { sqlite3_finalize(stmt_); }
    sqlite3_stmt* get() const { return stmt_; }
    // Runs a statement that returns no rows and resets it; the SQLite result code.
    int run() {
        const int rc = sqlite3_step(stmt_);
        sqlite3_reset(stmt_);
        return rc;
    }

private:
    sqlite3_stmt* stmt_ = nullptr;
};

class sqlite_db {
public:
    sqlite_db() = default;
    // Opens or creates `path`; throws sluice::error with SQLite's message.
    explicit sqlite_db(const std::string& path);
    sqlite_db(sqlite_db&& o) noexcept : db_(std::exchange(o.db_, nullptr)) {}
    sqlite_db& operator=(sqlite_db&& o) noexcept {
        if (this != &o) {
            sqlite3_close_v2(db_);
            db_ = std::exchange(o.db_, nullptr);
        }
        return *this;
    }
    ~sqlite_db() { sqlite3_close_v2(db_); }
    sqlite3* get() const { return db_; }

    // Runs SQL with no results; throws sluice::error naming `what` on failure.
    void exec(std::string_view sql, std::string_view what);
    // Prepares one statement (kept across calls); throws sluice::error on failure.
    sqlite_stmt prepare(std::string_view sql);
    std::string last_error() const { return db_ ? sqlite3_errmsg(db_) : "no database"; }

private:
    sqlite3* db_ = nullptr;
};

// Errors after which a fresh connection may work where this one will not: the file went
// read-only or away, or I/O failed.
inline bool sqlite_reopen_may_help(int rc) {
    const int primary = rc & 0xff;
    return primary == SQLITE_IOERR || primary == SQLITE_READONLY || primary == SQLITE_CANTOPEN ||
           primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

// Result codes a writer should retry: another connection holds a lock, or I/O failed.
inline bool sqlite_transient(int rc) {
    const int primary = rc & 0xff;
    return primary == SQLITE_BUSY || primary == SQLITE_LOCKED || primary == SQLITE_IOERR ||
           primary == SQLITE_FULL || primary == SQLITE_PROTOCOL || primary == SQLITE_READONLY ||
           primary == SQLITE_CANTOPEN;
}

}  // namespace sluice
