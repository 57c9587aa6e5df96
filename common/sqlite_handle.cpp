#include "common/sqlite_handle.h"

#include <mutex>

#include "common/error.h"

namespace sluice {

namespace {

// Before SQLite initializes: no global memory statistics. Keeping them puts one process-wide
// mutex around every sqlite3_malloc and sqlite3_free, and the sink's writer and checkpointer
// threads then queue on it. Too late (SQLITE_MISUSE) only if someone else initialized first.
void configure_sqlite_once() {
    static std::once_flag once;
    std::call_once(once, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

}  // namespace

sqlite_db::sqlite_db(const std::string& path) {
    configure_sqlite_once();
    const int rc = sqlite3_open_v2(path.c_str(), &db_,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                       SQLITE_OPEN_NOMUTEX,
                                   nullptr);
    if (rc != SQLITE_OK) {
        std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close_v2(db_);
        db_ = nullptr;
        throw error("cannot open SQLite database " + path + ": " + message);
    }
    sqlite3_extended_result_codes(db_, 1);
}

void sqlite_db::exec(std::string_view sql, std::string_view what) {
    char* message = nullptr;
    const int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &message);
    if (rc != SQLITE_OK) {
        std::string text = message ? message : sqlite3_errstr(rc);
        sqlite3_free(message);
        throw error(std::string(what) + ": " + text);
    }
}

sqlite_stmt sqlite_db::prepare(std::string_view sql) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) {
        throw error("cannot prepare '" + std::string(sql) + "': " + sqlite3_errmsg(db_));
    }
    return sqlite_stmt(stmt);
}

}  // namespace sluice
