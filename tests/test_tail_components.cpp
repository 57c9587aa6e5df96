// Tests for the file source's parts that stand alone: file identity (fingerprints), the
// checkpoint store (SQLite), multiline assembly (on a real Java stack trace) and the file
// watcher (globs, excludes, inotify).
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <exception>

#include <fstream>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "common/error.h"
#include "ingest/tail/checkpoint_store.h"
#include "ingest/tail/file_identity.h"
#include "ingest/tail/file_watcher.h"
#include "ingest/tail/multiline.h"
#include "tests/temp_dir.h"

using namespace std::chrono_literals;
using sluice::batch;
using sluice::checkpoint;
using sluice::checkpoint_store;
using sluice::fingerprint;
using sluice::multiline_assembler;
using sluice::multiline_config;
using sluice::test::temp_dir;

namespace {

void write_file(const std::filesystem::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
}

struct fd_guard {
    explicit fd_guard(const std::filesystem::path& p) : fd(::open(p.c_str(), O_RDONLY)) {
        REQUIRE(fd >= 0);
    }
    ~fd_guard() { ::close(fd); }
    int fd;
};

std::vector<std::string> lines_of(const batch& b) {
    std::vector<std::string> out;
    for (size_t i = 0; i < b.event_count(); ++i) {
        out.emplace_back(b.line(i));
    }
    return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// File identity

TEST_CASE("a fingerprint covers up to the first 256 bytes", "[tail]") {
    temp_dir dir;
    const auto p = dir.path() / "a.log";
    write_file(p, "short\n");
    {
        fd_guard f(p);
        const fingerprint fp = sluice::read_fingerprint(f.fd);
        CHECK(fp.length == 6);
        CHECK(fp == sluice::fingerprint_of("short\n"));
        CHECK(sluice::starts_with(f.fd, fp));
    }
    // Grown past 256 bytes: the old (6-byte) fingerprint still matches its start.
    const std::string big = "short\n" + std::string(1000, 'x');
    write_file(p, big);
    fd_guard f(p);
    CHECK(sluice::starts_with(f.fd, sluice::fingerprint_of("short\n")));
    const fingerprint full = sluice::read_fingerprint(f.fd);
    CHECK(full.length == 256);
    CHECK(full == sluice::fingerprint_of(std::string_view(big).substr(0, 256)));
}

TEST_CASE("a rewritten or shorter file no longer starts with its fingerprint", "[tail]") {
    temp_dir dir;
    const auto p = dir.path() / "a.log";
    write_file(p, "first line\nsecond line\n");
    fingerprint fp;
    {
        fd_guard f(p);
        fp = sluice::read_fingerprint(f.fd);
    }
    write_file(p, "other line\nsecond line\n");
    {
        fd_guard f(p);
        CHECK_FALSE(sluice::starts_with(f.fd, fp));
    }
    write_file(p, "first");
    fd_guard f(p);
    CHECK_FALSE(sluice::starts_with(f.fd, fp));
    // An empty file has the empty fingerprint, which everything starts with.
    CHECK(sluice::starts_with(f.fd, fingerprint{}));
}

// ---------------------------------------------------------------------------------------------
// Checkpoint store

TEST_CASE("checkpoints are saved per source and file, and survive reopening", "[tail]") {
    temp_dir dir;
    const std::string db = (dir.path() / "checkpoints.db").string();
    checkpoint a{{1, 42, sluice::fingerprint_of("abc")}, "/var/log/a.log", 100, 1000};
    checkpoint b{{1, 43, sluice::fingerprint_of("def")}, "/var/log/b.log", 7, 2000};
    checkpoint huge{{~0ull, ~0ull - 1, {256, ~0ull}}, "/x", int64_t{1} << 40, 3000};
    {
        checkpoint_store store(db);
        store.save("app", {a, b});
        store.save("other", {huge});
        a.offset = 150;  // an update replaces the row
        store.save("app", {a});
    }
    checkpoint_store store(db);
    auto rows = store.load("app");
    REQUIRE(rows.size() == 2);
    std::sort(rows.begin(), rows.end(), [](auto& x, auto& y) { return x.id.ino < y.id.ino; });
    CHECK(rows[0].offset == 150);
    CHECK(rows[0].path == "/var/log/a.log");
    CHECK(rows[0].id.fp == a.id.fp);
    CHECK(rows[1].id.ino == 43);
    CHECK(rows[1].offset == 7);
    auto other = store.load("other");
    REQUIRE(other.size() == 1);
    CHECK(other[0].id.dev == ~0ull);  // 64-bit device and inode numbers round-trip
    CHECK(other[0].id.ino == ~0ull - 1);
    CHECK(other[0].id.fp.hash == ~0ull);
    CHECK(other[0].offset == int64_t{1} << 40);
    CHECK(store.load("nobody").empty());

    store.remove("app", 1, 42);
    CHECK(store.load("app").size() == 1);
    CHECK(store.prune(2500) == 1);  // b, saved at 2000
    CHECK(store.load("app").empty());
    CHECK(store.load("other").size() == 1);
}

TEST_CASE("a checkpoint database that cannot be opened is a clear error", "[tail]") {
    temp_dir dir;
    CHECK_THROWS_WITH(checkpoint_store((dir.path() / "missing" / "c.db").string()),
                      Catch::Contains("missing/c.db"));
}

// ---------------------------------------------------------------------------------------------
// Multiline

namespace {

// Feeds `text` line by line (each ending in "\n"), as the file source does.
void feed(multiline_assembler& m, const std::string& text, batch& out, int64_t base = 0) {
    size_t start = 0;
    for (size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', start)) {
        m.add(std::string_view(text).substr(start, nl - start), base + static_cast<int64_t>(nl) + 1,
              out);
        start = nl + 1;
    }
}

}  // namespace

TEST_CASE("multiline joins a real Java stack trace into one event", "[tail][multiline]") {
    const std::string trace =
        "2026-12-01 10:00:00,001 ERROR [main] c.e.App - request failed\n"
        "java.lang.IllegalStateException: connection closed\n"
        "\tat com.example.db.Pool.take(Pool.java:88)\n"
        "\tat com.example.App.handle(App.java:41)\n"
        "Caused by: java.io.IOException: Broken pipe\n"
        "\tat java.base/sun.nio.ch.IOUtil.write(IOUtil.java:62)\n"
        "\t... 12 more\n";
    const std::string next = "2026-12-01 10:00:01,002 INFO [main] c.e.App - recovered\n";
    multiline_assembler m(multiline_config{R"(^\d{4}-\d{2}-\d{2} )", 500, 1s}, 65536);
    batch out(0);
    feed(m, trace + next, out);
    REQUIRE(out.event_count() == 1);
    CHECK(std::string(out.line(0)) + "\n" == trace);
    // The second event is open: a checkpoint stays at its start.
    CHECK(m.has_open());
    CHECK(m.safe_offset() == static_cast<int64_t>(trace.size()));
    m.flush(out);
    REQUIRE(out.event_count() == 2);
    CHECK(std::string(out.line(1)) + "\n" == next);
    CHECK(m.safe_offset() == static_cast<int64_t>(trace.size() + next.size()));
}

TEST_CASE("multiline: a line with no event open is an event of its own", "[tail][multiline]") {
    multiline_assembler m(multiline_config{"^START", 500, 1s}, 1024);
    batch out(0);
    feed(m, "orphan 1\norphan 2\nSTART a\n  more\nSTART b\n", out);
    CHECK(lines_of(out) == std::vector<std::string>{"orphan 1", "orphan 2", "START a\n  more"});
    CHECK(m.safe_offset() == 33);  // after "  more\n"
}

TEST_CASE("multiline: max_lines and max_line_bytes close an event", "[tail][multiline]") {
    SECTION("max_lines: the next line opens a new event, whatever it matches") {
        multiline_assembler m(multiline_config{"^S", 3, 1s}, 1024);
        batch out(0);
        feed(m, "S1\na\nb\nc\nd\nS2\n", out);
        m.flush(out);
        CHECK(lines_of(out) == std::vector<std::string>{"S1\na\nb", "c\nd", "S2"});
        CHECK(m.take_truncated() == 0);
    }
    SECTION("max_line_bytes: closed before the line that would not fit, which opens anew") {
        multiline_assembler m(multiline_config{"^S", 100, 1s}, 10);
        batch out(0);
        feed(m, "S123\n4567\nabc\nS9\nS" + std::string(20, 'x') + "\n", out);
        m.flush(out);
        CHECK(lines_of(out) ==
              std::vector<std::string>{"S123\n4567", "abc", "S9", "S" + std::string(9, 'x')});
        CHECK(m.take_truncated() == 1);  // only the line too long on its own
    }
}

TEST_CASE("multiline: a bad pattern is a clear error", "[tail][multiline]") {
    CHECK_FALSE(sluice::multiline_pattern_error("(unclosed").empty());
    CHECK(sluice::multiline_pattern_error(R"(^\S)").empty());
    CHECK_THROWS_AS(multiline_assembler(multiline_config{"(unclosed", 5, 1s}, 100), sluice::error);
}

// ---------------------------------------------------------------------------------------------
// File watcher

TEST_CASE("the watcher matches include globs less the excludes, in globbed directories too",
          "[tail]") {
    temp_dir dir;
    const auto root = dir.path();
    for (const char* sub : {"a", "b", "c"}) {
        std::filesystem::create_directories(root / sub);
    }
    write_file(root / "a" / "app.log", "x\n");
    write_file(root / "b" / "app.log", "x\n");
    write_file(root / "b" / "old.log.gz", "x\n");
    write_file(root / "c" / "skip.log", "x\n");
    write_file(root / "a" / "notes.txt", "x\n");
    std::filesystem::create_directories(root / "a" / "dir.log");  // not a regular file
    asio::io_context io;
    sluice::file_watcher w(io, {(root / "*" / "*.log*").string()},
                           {"*.gz", (root / "c" / "*").string()});
    std::vector<std::string> found;
    for (const auto& f : w.scan()) {
        found.push_back(std::filesystem::path(f.path).lexically_relative(root).string());
        CHECK(f.ino != 0);
    }
    std::sort(found.begin(), found.end());
    CHECK(found == std::vector<std::string>{"a/app.log", "b/app.log"});
    CHECK(w.matches((root / "a" / "new.log").string()));
    CHECK_FALSE(w.matches((root / "a" / "new.log.gz").string()));
    CHECK_FALSE(w.matches((root / "c" / "x.log").string()));
    CHECK_FALSE(w.matches((root / "a" / "deeper" / "x.log").string()));  // * stops at '/'
}

TEST_CASE("the watcher reports files created and written, through inotify", "[tail]") {
    temp_dir dir;
    asio::io_context io;
    sluice::file_watcher w(io, {(dir.path() / "*.log").string()}, {});
    w.start_inotify();
    CHECK(w.scan().empty());  // watches the directory
    std::vector<sluice::watch_event> events;
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { events = co_await w.next_events(); },
        [](std::exception_ptr e) {
            if (e) {
                std::rethrow_exception(e);
            }
        });
    write_file(dir.path() / "new.log", "line\n");
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (events.empty() && std::chrono::steady_clock::now() < deadline) {
        io.run_for(10ms);
    }
    REQUIRE_FALSE(events.empty());
    bool created = false;
    for (const auto& e : events) {
        CHECK(e.path == (dir.path() / "new.log").string());
        created = created || (e.mask & IN_CREATE) != 0;
        CHECK_FALSE(e.overflow);
    }
    CHECK(created);
    w.stop();
}
