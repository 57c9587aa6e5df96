#include "sinks/sqlite_sink.h"

#include <sys/stat.h>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "sinks/sqlite_sql.h"

namespace sluice {

namespace {

std::string with_table(std::string_view sql, const std::string& table) {
    std::string out(sql);
    for (size_t at = out.find("{table}"); at != std::string::npos; at = out.find("{table}", at)) {
        out.replace(at, 7, table);
        at += table.size();
    }
    return out;
}

}  // namespace

bool valid_table_name(const std::string& name) {
    if (name.empty() || name.size() > 64 || std::isdigit(static_cast<unsigned char>(name[0]))) {
        return false;
    }
    for (char c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') {
            return false;
        }
    }
    return true;
}

sqlite_sink::sqlite_sink(std::string name, batch_config batch, sqlite_sink_config config,
                         std::filesystem::path data_dir, std::vector<std::string> source_names,
                         retry_config retry)
    : sink(std::move(name), batch, retry),
      config_(std::move(config)),
      source_names_(std::move(source_names)) {
    if (!valid_table_name(config_.table)) {
        throw error("sink " + this->name() + ": invalid table name '" + config_.table + "'");
    }
    path_ = config_.path;
    if (path_.is_relative()) {
        path_ = data_dir / path_;
    }
    open_database();
    spdlog::info("Sink {} writing to SQLite {} table {}.", this->name(), path_.string(),
                 config_.table);
}

void sqlite_sink::open_database() {
    close_database();
    std::error_code ec;
    std::filesystem::create_directories(path_.parent_path(), ec);
    db_ = sqlite_db(path_.string());
    sqlite3_busy_timeout(db_.get(), static_cast<int>(config_.busy_timeout.count()));
    const std::string what = "sink " + name() + ": " + path_.string();
    db_.exec(sqlite_sql::pragmas, what);
    db_.exec(with_table(sqlite_sql::create_table, config_.table), what);
    {
        sqlite_stmt has_file = db_.prepare(with_table(sqlite_sql::has_file_column, config_.table));
        if (sqlite3_step(has_file.get()) != SQLITE_ROW) {
            db_.exec(with_table(sqlite_sql::add_file_column, config_.table), what);
        }
    }
    if (config_.fts) {
        db_.exec(with_table(sqlite_sql::create_fts, config_.table), what);
    }
    begin_ = db_.prepare(sqlite_sql::begin);
    commit_ = db_.prepare(sqlite_sql::commit);
    rollback_ = db_.prepare(sqlite_sql::rollback);
    insert_ = db_.prepare(with_table(sqlite_sql::insert, config_.table));
    decoded_bound_ = false;
    struct stat st{};
    if (::stat(path_.c_str(), &st) != 0) {
        throw error(what + ": the database file is gone right after opening it");
    }
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    try {
        checkpointer_ = std::make_unique<wal_checkpointer>(db_.get(), path_.string());
    } catch (const error& e) {
        spdlog::warn("Sink {}: {}; SQLite will checkpoint on the sink's thread.", name(),
                     e.what());
    }
    reopen_ = false;
}

void sqlite_sink::close_database() {
    checkpointer_.reset();  // its connection and thread first: they use db_
    insert_ = {};
    begin_ = {};
    commit_ = {};
    rollback_ = {};
    db_ = {};
}

bool sqlite_sink::database_replaced() const {
    struct stat st{};
    return ::stat(path_.c_str(), &st) != 0 || st.st_dev != dev_ || st.st_ino != ino_;
}

bool sqlite_sink::ensure_open() {
    const bool replaced = db_.get() != nullptr && database_replaced();
    if (db_.get() != nullptr && !replaced && !reopen_) {
        return true;
    }
    if (replaced) {
        spdlog::warn("Sink {}: the database {} was deleted or replaced; opening a fresh one "
                     "at the path.",
                     name(), path_.string());
    }
    close_database();  // the last connection to a deleted file takes its -wal and -shm along
    if (replaced) {
        std::error_code ec;
        if (!std::filesystem::exists(path_, ec)) {
            // Left by the deleted database: a new file at the path must not replay them.
            std::filesystem::remove(path_.string() + "-wal", ec);
            std::filesystem::remove(path_.string() + "-shm", ec);
        }
    }
    try {
        open_database();
    } catch (const error& e) {
        reopen_ = true;
        log_failure(std::string("cannot open the database: ") + e.what() + "; will retry.");
        return false;
    }
    spdlog::info("Sink {}: database {} open again.", name(), path_.string());
    return true;
}

sqlite_sink::~sqlite_sink() {
    stop_thread();
    if (checkpointer_) {
        const wal_checkpoint_stats stats = checkpointer_->stats();
        // Waits mean the checkpoints (the disk) could not keep up with the inserts.
        spdlog::log(stats.writer_waits > 0 ? spdlog::level::info : spdlog::level::debug,
                    "Sink {}: {} checkpoint passes; the writer waited for one {} times, {:.3f} s "
                    "in all.",
                    name(), stats.passes, stats.writer_waits, stats.writer_wait_ns / 1e9);
    }
    close_database();
}

namespace {

void bind_text_or_null(sqlite3_stmt* stmt, int param, std::string_view v) {
    if (v.data() == nullptr) {
        sqlite3_bind_null(stmt, param);
    } else {
        sqlite3_bind_text(stmt, param, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    }
}

std::string_view empty_as_null(const std::string& s) {
    return s.empty() ? std::string_view{} : std::string_view(s);
}

void bind_int_or_null(sqlite3_stmt* stmt, int param, int64_t v, bool null) {
    if (null) {
        sqlite3_bind_null(stmt, param);
    } else {
        sqlite3_bind_int64(stmt, param, v);
    }
}

}  // namespace

void sqlite_sink::clear_decoded_columns() {
    if (!decoded_bound_) {
        return;
    }
    sqlite3_stmt* insert = insert_.get();
    for (int p : {sqlite_sql::ts, sqlite_sql::severity, sqlite_sql::facility, sqlite_sql::app,
                  sqlite_sql::procid, sqlite_sql::msgid, sqlite_sql::fields}) {
        sqlite3_bind_null(insert, p);
    }
    decoded_bound_ = false;
}

int sqlite_sink::insert_decoded(const batch& b) {
    sqlite3_stmt* insert = insert_.get();
    decoded_bound_ = true;
    int rc = SQLITE_DONE;
    for (size_t i = 0; i < b.event_count(); ++i) {
        const event_meta& m = b.meta(i);
        bind_int_or_null(insert, sqlite_sql::ts, m.ts_ns, m.ts_ns == event_meta::no_ts);
        bind_int_or_null(insert, sqlite_sql::severity, m.severity, m.severity < 0);
        bind_int_or_null(insert, sqlite_sql::facility, m.facility, m.facility < 0);
        // A nil HOSTNAME (or none decoded) falls back to the peer address.
        std::string_view host = b.view(m.host);
        if (host.data() == nullptr && !b.host.empty()) {
            host = b.host;
        }
        bind_text_or_null(insert, sqlite_sql::host, host);
        bind_text_or_null(insert, sqlite_sql::app, b.view(m.app));
        bind_text_or_null(insert, sqlite_sql::procid, b.view(m.procid));
        bind_text_or_null(insert, sqlite_sql::msgid, b.view(m.msgid));
        const std::string_view message = b.message(i);
        sqlite3_bind_text(insert, sqlite_sql::message, message.data(),
                          static_cast<int>(message.size()), SQLITE_STATIC);
        bind_text_or_null(insert, sqlite_sql::fields, b.view(m.fields));
        rc = sqlite3_step(insert);
        sqlite3_reset(insert);
        if (rc != SQLITE_DONE) {
            break;
        }
    }
    return rc;
}

write_status sqlite_sink::write_impl(std::span<const batch_ptr> batches) {
    if (!ensure_open()) {
        return write_status::retry;
    }
    if (checkpointer_) {
        checkpointer_->before_transaction();
    }
    int rc = begin_.run();
    if (rc != SQLITE_DONE) {
        log_failure("cannot begin a transaction: " + db_.last_error() + "; will retry.");
        reopen_ = sqlite_reopen_may_help(rc);
        return sqlite_transient(rc) ? write_status::retry : write_status::permanent;
    }
    sqlite3_stmt* insert = insert_.get();
    for (const auto& b : batches) {
        const std::string& source = source_label(*b, source_names_);
        sqlite3_bind_int64(insert, sqlite_sql::received_at, b->received_ns);
        sqlite3_bind_text(insert, sqlite_sql::source, source.data(),
                          static_cast<int>(source.size()), SQLITE_STATIC);
        bind_text_or_null(insert, sqlite_sql::host, empty_as_null(b->host));
        bind_text_or_null(insert, sqlite_sql::file, empty_as_null(b->file));
        if (b->has_meta()) {
            rc = insert_decoded(*b);
        } else {
            // Decoded batches bind every column per event; put those back to NULL first.
            clear_decoded_columns();
            const char* base = b->buffer().data();
            for (const auto& e : b->events()) {
                sqlite3_bind_text(insert, sqlite_sql::message, base + e.offset,
                                  static_cast<int>(e.length), SQLITE_STATIC);
                rc = sqlite3_step(insert);
                sqlite3_reset(insert);
                if (rc != SQLITE_DONE) {
                    break;
                }
            }
        }
        if (rc != SQLITE_DONE) {
            break;
        }
    }
    if (rc == SQLITE_DONE) {
        rc = commit_.run();
    }
    if (rc == SQLITE_DONE) {
        return write_status::ok;
    }
    const std::string message = db_.last_error();
    // Undo whatever part of the batch was inserted, so the retry writes it exactly once.
    if (!sqlite3_get_autocommit(db_.get())) {
        rollback_.run();
    }
    log_failure("write failed: " + message + "; will retry.");
    reopen_ = sqlite_reopen_may_help(rc);
    return sqlite_transient(rc) ? write_status::retry : write_status::permanent;
}

}  // namespace sluice
