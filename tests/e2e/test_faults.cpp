// e2e fault injection on the real binary: a full disk under the file sink, its directory
// removed, the SQLite database deleted or its filesystem read-only, a ZeroMQ peer that never
// reads, a sink that fails for ever at shutdown, and /ready while the queue blocks. Each
// test checks that sluice is still alive, exactly what was lost (nothing, or what it counted
// and logged), and which counters moved. The mounts need root (CI runs as root); without it
// those tests WARN and end.
#include <fmt/format.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "tests/e2e/fault_helpers.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/zmq_udp_helpers.h"

namespace {

using namespace std::chrono_literals;
using e2e::sample;
namespace faults = e2e::faults;

constexpr uint64_t mib = 1024 * 1024;

std::string tcp_source(uint16_t port) {
    return fmt::format(R"(
[sources.app]
type = "tcp"
address = "127.0.0.1:{}"
)",
                       port);
}

std::string queue_table(const std::string& max_bytes) {
    return fmt::format(R"(
[queue]
max_bytes = "{}"
max_events = 1000000
when_full = "block"
)",
                       max_bytes);
}

// The file's lines are exactly `expected` (as a multiset), and the file is whole lines: its
// size is theirs plus one '\n' each.
void check_file_has_exactly(const std::string& path, const std::vector<std::string>& expected) {
    const std::string content = e2e::read_file(path);
    uint64_t bytes = 0;
    for (const auto& l : expected) {
        bytes += l.size() + 1;
    }
    INFO("file " << path);
    CHECK(e2e::multiset_difference(expected, e2e::read_lines(path)) == "");
    CHECK(content.size() == bytes);
    CHECK((content.empty() || content.back() == '\n'));
}

}  // namespace

// ---- 1. disk full ------------------------------------------------------------------------

TEST_CASE(
    "fault: the file sink's disk fills (ENOSPC): events stay queued, the sender blocks, "
    "retries back off, and once space is freed every line lands once, whole",
    "[e2e][faults]") {
    // 8 MiB of tmpfs, all but 512 KiB taken by a filler file. The sender's 6 MB must not fit
    // into what the disk, the 256 KiB queue and the kernel's socket buffers (measured at 2.5 to
    // 8 MiB on loopback) hold together, or its send would never block; and it must fit once the
    // filler is gone. (A 2 MiB tmpfs is too small for both: the socket buffers alone would take
    // what does not fit.)
    FAULTS_MOUNT_TMPFS_OR_SKIP(fs, "size=8m,mode=0755");
    const uint64_t room = 512 * 1024;
    const std::string filler = fs->path() + "/filler";
    e2e::write_file(filler, std::string(fs->free_bytes() - room, 'f'));
    INFO("tmpfs " << fs->path() << ": " << fs->free_bytes() << " bytes free after the filler");
    REQUIRE(fs->free_bytes() <= room + 64 * 1024);

    const uint16_t port = e2e::free_port();
    const std::string out = fs->path() + "/out.log";
    e2e::daemon d(queue_table("256KiB") + tcp_source(port) +
                  fmt::format(R"(
[sinks.out]
type = "file"
path = "{}"
batch = {{ max_events = 1000, timeout = "50ms" }}
)",
                              out));
    const auto lines = faults::make_lines("nospc", 0, 30'000, 199);  // 200 bytes with '\n'
    const auto started = e2e::clock_type::now();
    faults::tcp_sender sender(port, lines);

    d.wait_metric("sluice_sink_errors_total{sink=\"out\"}", 1, 30s, true);
    d.wait_metric("sluice_source_paused{source=\"app\"}", 1, 30s);
    const uint64_t accepted_1 = faults::wait_sender_blocked(sender, d);
    std::this_thread::sleep_for(2s);
    const uint64_t accepted_2 = sender.accepted();
    const auto stalled = d.metrics();
    const auto status = faults::status_of_sink(d, "out");
    const auto health = faults::http_get_status(d.api_port(), "/health");
    const double stalled_for = faults::seconds_since(started);
    const std::string log = d.log();
    INFO(sender.describe() << "; accepted " << accepted_1 << " then " << accepted_2 << "\n"
                           << d.metrics_summary());
    // Stuck, and the backpressure reached the sender.
    CHECK(d.running());
    CHECK(accepted_2 - accepted_1 < 64 * 1024);
    CHECK(accepted_2 < sender.total() / 2);
    CHECK(sample(stalled, "sluice_source_paused{source=\"app\"}") == 1);
    CHECK(sample(stalled, "sluice_queue_bytes") <= 256.0 * 1024);
    CHECK(sample(stalled, "sluice_sink_lag_events{sink=\"out\"}") > 0);
    CHECK(sample(stalled, "sluice_sink_events_total{sink=\"out\"}") < lines.size());
    CHECK(sample(stalled, "sluice_sink_up{sink=\"out\"}") == 1);  // transient, not failed
    CHECK(sample(stalled, "sluice_events_dropped_total{source=\"app\",reason=\"queue_full\"}") ==
          0);
    // The disk filled in the middle of a line (200 bytes do not divide its pages): the retry
    // must write the other half, not the line again.
    const uint64_t out_at_stall = std::filesystem::file_size(out);
    INFO(out_at_stall << " bytes in the output when the disk was full");
    CHECK(out_at_stall <= room + 4096);
    CHECK(out_at_stall % 200 != 0);
    CHECK(status.state == "retrying");
    CHECK_FALSE(status.failed);
    CHECK(status.last_error.find("No space left on device") != std::string::npos);
    CHECK(health.status == 200);
    CHECK(health.body.find("sink out retrying: ") != std::string::npos);
    // Retried with backoff, and logged at most once per attempt and once a second: nothing
    // like the thousands of attempts a retry loop without backoff makes in that time.
    const double errors = sample(stalled, "sluice_sink_errors_total{sink=\"out\"}");
    const double retries = sample(stalled, "sluice_sink_retries_total{sink=\"out\"}");
    const auto logged = faults::log_lines_with(log, "cannot write");
    INFO(errors << " failed attempts, " << retries << " retries, " << logged.size()
                << " 'cannot write' log lines in " << stalled_for << " s; bound "
                << faults::max_attempts_within(stalled_for));
    CHECK(errors >= 2);
    CHECK(retries >= 1);
    CHECK(errors <= static_cast<double>(faults::max_attempts_within(stalled_for)));
    CHECK(logged.size() >= 1);
    CHECK(static_cast<double>(logged.size()) <= retries + 1);
    CHECK(static_cast<double>(logged.size()) <= stalled_for + 1);
    CHECK(log.find("No space left on device") != std::string::npos);

    // Room again: the rest of the cut line, then everything else.
    std::filesystem::remove(filler);
    e2e::wait_for(
        "the sender to finish", [&] { return sender.done(); },
        [&] { return sender.describe() + "\n" + d.metrics_summary(); }, 60s, 50ms);
    REQUIRE(sender.error() == "");
    d.wait_metric("sluice_sink_events_total{sink=\"out\"}", static_cast<double>(lines.size()));
    d.wait_metric("sluice_queue_events", 0);

    const auto m = d.metrics();
    CHECK(d.running());
    CHECK(sample(m, "sluice_source_events_total{source=\"app\"}") == lines.size());
    CHECK(sample(m, "sluice_events_dropped_total{source=\"app\",reason=\"queue_full\"}") == 0);
    CHECK(sample(m, "sluice_sink_up{sink=\"out\"}") == 1);
    CHECK(sample(m, "sluice_sink_lag_events{sink=\"out\"}") == 0);
    CHECK(sample(m, "sluice_source_paused{source=\"app\"}") == 0);
    CHECK(sample(m, "sluice_source_backpressure_seconds_total{source=\"app\"}") > 0);
    const auto after = faults::status_of_sink(d, "out");
    CHECK(after.state == "ok");
    CHECK(after.last_error == "");
    const std::string final_log = d.log();
    CHECK(faults::log_lines_with(final_log, "Sink out is writing again").size() == 1);
    CHECK(static_cast<double>(faults::log_lines_with(final_log, "cannot write").size()) <=
          sample(m, "sluice_sink_retries_total{sink=\"out\"}") + 1);
    check_file_has_exactly(out, lines);
}

// ---- 2. the file sink's directory removed ------------------------------------------------

TEST_CASE(
    "fault: the file sink's directory is removed (rm -rf): later lines land once in the "
    "re-created directory",
    "[e2e][faults]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(queue_table("64MiB") + tcp_source(port) + R"(
[sinks.archive]
type = "file"
path = "logs/app/today/out.log"
batch = { max_events = 1000, timeout = "50ms" }
)");
    const std::string root = d.data_dir() + "/logs";
    const std::string path = root + "/app/today/out.log";
    const std::string written = "sluice_sink_events_total{sink=\"archive\"}";

    const auto before = faults::make_lines("rmdir-before", 0, 2000);
    faults::send_lines(port, before);
    d.wait_metric(written, 2000);
    check_file_has_exactly(path, before);

    // rm -rf while sluice is idle (its file open): what was written goes with the directory.
    std::filesystem::remove_all(root);
    REQUIRE_FALSE(std::filesystem::exists(root));
    const auto after = faults::make_lines("rmdir-after", 0, 3000);
    faults::send_lines(port, after);
    d.wait_metric(written, 5000);
    check_file_has_exactly(path, after);

    // And again: each removal is noticed at the next write.
    std::filesystem::remove_all(root);
    const auto again = faults::make_lines("rmdir-again", 0, 1000);
    faults::send_lines(port, again);
    d.wait_metric(written, 6000);
    check_file_has_exactly(path, again);

    const auto m = d.metrics();
    CHECK(d.running());
    CHECK(sample(m, "sluice_source_events_total{source=\"app\"}") == 6000);
    CHECK(sample(m, "sluice_sink_lag_events{sink=\"archive\"}") == 0);
    // Noticed before writing, so no write failed.
    CHECK(sample(m, "sluice_sink_errors_total{sink=\"archive\"}") == 0);
    CHECK(sample(m, "sluice_sink_retries_total{sink=\"archive\"}") == 0);
    CHECK(sample(m, "sluice_sink_up{sink=\"archive\"}") == 1);
    CHECK(faults::status_of_sink(d, "archive").state == "ok");
    CHECK(faults::log_lines_with(d.log(), "was removed or replaced; opening it again").size() == 2);
}

// ---- 3. the SQLite database deleted ------------------------------------------------------

namespace {

void check_db_messages(const std::string& db_path, const std::vector<std::string>& expected) {
    e2e::sqlite_db db(db_path);
    INFO("database " << db_path);
    CHECK(e2e::multiset_difference(expected, db.messages()) == "");
}

// Deletes the database file (and its -wal and -shm with `with_wal_shm`) under a running
// SQLite sink, then sends more.
void sqlite_deleted(bool with_wal_shm) {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(queue_table("64MiB") + tcp_source(port) + R"(
[sinks.db]
type = "sqlite"
path = "db/logs.db"
batch = { max_events = 1000, timeout = "50ms" }
)");
    const std::string db_path = d.data_dir() + "/db/logs.db";
    const std::string written = "sluice_sink_events_total{sink=\"db\"}";

    const auto before = faults::make_lines("sqldel-before", 0, 2000);
    faults::send_lines(port, before);
    d.wait_metric(written, 2000);
    check_db_messages(db_path, before);
    REQUIRE(std::filesystem::exists(db_path + "-wal"));
    REQUIRE(std::filesystem::exists(db_path + "-shm"));

    std::filesystem::remove(db_path);
    if (with_wal_shm) {
        std::filesystem::remove(db_path + "-wal");
        std::filesystem::remove(db_path + "-shm");
    }
    const auto after = faults::make_lines("sqldel-after", 0, 3000);
    faults::send_lines(port, after);
    d.wait_metric(written, 5000);
    const std::string log = d.log();
    CHECK(faults::log_lines_with(log, "was deleted or replaced; opening a fresh one").size() == 1);
    CHECK(faults::log_lines_with(log, "Sink db: database " + db_path + " open again").size() == 1);
    // A fresh database: the events sent after the deletion, each once, and none of the old
    // ones (a leftover -wal must not be replayed into it).
    check_db_messages(db_path, after);

    // It goes on writing there.
    const auto more = faults::make_lines("sqldel-more", 0, 500);
    faults::send_lines(port, more);
    d.wait_metric(written, 5500);
    std::vector<std::string> all_after = after;
    all_after.insert(all_after.end(), more.begin(), more.end());
    check_db_messages(db_path, all_after);

    const auto m = d.metrics();
    CHECK(d.running());
    CHECK(sample(m, "sluice_source_events_total{source=\"app\"}") == 5500);
    CHECK(sample(m, "sluice_sink_lag_events{sink=\"db\"}") == 0);
    CHECK(sample(m, "sluice_sink_errors_total{sink=\"db\"}") == 0);
    CHECK(sample(m, "sluice_sink_up{sink=\"db\"}") == 1);
    CHECK(faults::status_of_sink(d, "db").state == "ok");
}

}  // namespace

TEST_CASE(
    "fault: the SQLite database is deleted with its -wal and -shm: later events land once "
    "in a fresh database at the path",
    "[e2e][faults]") {
    sqlite_deleted(true);
}

TEST_CASE(
    "fault: the SQLite database file is deleted, its -wal and -shm left behind: later "
    "events land once in a fresh database, the old WAL not replayed",
    "[e2e][faults]") {
    sqlite_deleted(false);
}

// ---- 4. the SQLite filesystem read-only --------------------------------------------------

TEST_CASE(
    "fault: the SQLite database's filesystem is read-only, then writable again: events "
    "stay queued and retried, then land once",
    "[e2e][faults]") {
    // `mount -o remount,ro` is refused (EBUSY) while sluice holds the database open for
    // writing: Linux never makes a filesystem read-only under an open writer, except after an
    // error (ext4 errors=remount-ro) or an emergency remount, and neither is undone by
    // remount,rw (the writer's EROFS stays until the filesystem is unmounted). So the
    // read-only filesystem arrives the way a remounted volume does: a read-only tmpfs is
    // mounted over the database's directory, sluice finds the database gone, cannot open one
    // there and retries; remount,rw lets it create a fresh one.
    FAULTS_MOUNT_TMPFS_OR_SKIP(fs, "size=64m,mode=0755");
    // Declared before the daemon, so it is unmounted after the daemon is killed.
    std::unique_ptr<faults::mount_guard> ro_fs;
    const uint16_t port = e2e::free_port();
    const std::string db_path = fs->path() + "/logs.db";
    e2e::daemon d(queue_table("64MiB") + tcp_source(port) +
                  fmt::format(R"(
[sinks.db]
type = "sqlite"
path = "{}"
batch = {{ max_events = 1000, timeout = "50ms" }}
)",
                              db_path));
    const std::string written = "sluice_sink_events_total{sink=\"db\"}";
    const auto before = faults::make_lines("ro-before", 0, 2000);
    faults::send_lines(port, before);
    d.wait_metric(written, 2000);

    const std::string refused = fs->remount(true);
    if (refused.empty()) {
        fs->remount(false);
        WARN("remount,ro was allowed while sluice held the database open; using the over-mount");
    }
    std::string why;
    ro_fs = faults::try_tmpfs("size=64m,mode=0755", why, fs->path(), MS_RDONLY);
    REQUIRE(ro_fs != nullptr);
    const auto ro_at = e2e::clock_type::now();

    const auto during = faults::make_lines("ro-during", 0, 3000);
    faults::send_lines(port, during);
    d.wait_metric("sluice_sink_errors_total{sink=\"db\"}", 2, 30s, true);
    e2e::wait_for(
        "the sink to be retrying",
        [&] { return faults::status_of_sink(d, "db").state == "retrying"; },
        [&] { return d.metrics_summary(); });
    std::this_thread::sleep_for(2s);
    const auto stalled = d.metrics();
    const auto status = faults::status_of_sink(d, "db");
    const auto health = faults::http_get_status(d.api_port(), "/health");
    const double ro_for = faults::seconds_since(ro_at);
    INFO(d.metrics_summary() << "last_error: " << status.last_error);
    CHECK(d.running());
    CHECK(sample(stalled, written) == 2000);
    CHECK(sample(stalled, "sluice_sink_lag_events{sink=\"db\"}") == 3000);
    CHECK(sample(stalled, "sluice_sink_up{sink=\"db\"}") == 1);
    CHECK(sample(stalled, "sluice_sink_retries_total{sink=\"db\"}") >= 1);
    CHECK(sample(stalled, "sluice_sink_errors_total{sink=\"db\"}") <=
          static_cast<double>(faults::max_attempts_within(ro_for)));
    CHECK(status.state == "retrying");
    CHECK(status.last_error.find("cannot open the database") != std::string::npos);
    CHECK(health.status == 200);
    CHECK(health.body.find("sink db retrying: ") != std::string::npos);
    CHECK(faults::log_lines_with(d.log(), "was deleted or replaced").size() == 1);
    CHECK_FALSE(std::filesystem::exists(db_path));

    REQUIRE(ro_fs->remount(false) == "");
    d.wait_metric(written, 5000, 30s);
    const auto m = d.metrics();
    CHECK(d.running());
    CHECK(sample(m, "sluice_sink_lag_events{sink=\"db\"}") == 0);
    CHECK(sample(m, "sluice_source_events_total{source=\"app\"}") == 5000);
    CHECK(faults::status_of_sink(d, "db").state == "ok");
    CHECK(faults::log_lines_with(d.log(), "Sink db is writing again").size() == 1);
    // The events sent while it was read-only, each once, in the database on it...
    check_db_messages(db_path, during);
    // ... and the earlier ones, each once, in the database under it.
    ro_fs.reset();
    check_db_messages(db_path, before);
}

// ---- 5. a ZeroMQ peer that never reads ---------------------------------------------------

TEST_CASE(
    "fault: a ZeroMQ PUSH peer that never reads for a minute: memory stays bounded, the "
    "sources pause, the sender blocks, and then every line arrives once",
    "[e2e][faults]") {
    zmq::context_t context;
    zmq::socket_t peer(context, zmq::socket_type::pull);
    peer.set(zmq::sockopt::linger, 0);
    peer.set(zmq::sockopt::rcvhwm, 100);
    peer.set(zmq::sockopt::rcvbuf, 64 * 1024);
    const std::string endpoint = e2e::bind_any_port(peer);

    const uint16_t port = e2e::free_port();
    constexpr uint64_t queue_bytes = 16 * mib;
    e2e::daemon d(queue_table("16MiB") + tcp_source(port) +
                  fmt::format(R"(
[sinks.fwd]
type = "zmq"
endpoints = ["{}"]
socket = "push"
batch = {{ max_events = 1000, timeout = "50ms" }}
)",
                              endpoint));
    const auto started = e2e::clock_type::now();
    d.start_rss_sampling();
    const uint64_t rss_limit = queue_bytes + 48 * mib;

    // 60 MB: far more than the queue, ZeroMQ's pipes and the socket buffers hold.
    const auto lines = faults::make_lines("zpeer", 0, 300'000, 199);
    faults::tcp_sender sender(port, lines);
    d.wait_metric("sluice_source_paused{source=\"app\"}", 1, 30s);
    const uint64_t blocked_at = faults::wait_sender_blocked(sender, d);
    const double written_at_block = d.metric("sluice_sink_events_total{sink=\"fwd\"}");

    // The stall, for about a minute from the start, sampled every second.
    double max_rss = 0;
    int samples = 0;
    int not_paused = 0;
    int ready_503 = 0;
    while (e2e::clock_type::now() - started < 57s) {
        std::this_thread::sleep_for(1s);
        const auto m = d.metrics();
        max_rss = std::max(max_rss, sample(m, "process_resident_memory_bytes"));
        ++samples;
        not_paused += sample(m, "sluice_source_paused{source=\"app\"}") != 1;
        ready_503 += faults::http_get_status(d.api_port(), "/ready").status == 503;
        CHECK(d.running());
    }
    const auto stalled = d.metrics();
    const auto status = faults::status_of_sink(d, "fwd");
    INFO(sender.describe() << "; accepted " << blocked_at << " when it blocked\n"
                           << d.metrics_summary());
    INFO("max /metrics RSS " << max_rss << ", peak sampled VmRSS " << d.peak_rss_bytes()
                             << ", limit " << rss_limit << " bytes; " << samples << " samples");
    CHECK(samples >= 40);
    CHECK(max_rss < static_cast<double>(rss_limit));
    CHECK(d.peak_rss_bytes() < rss_limit);
    CHECK(not_paused == 0);
    CHECK(ready_503 == samples);  // 503 all along: the queue is full and blocks
    CHECK(sender.accepted() - blocked_at < 256 * 1024);
    CHECK(sender.accepted() < sender.total() / 2);
    CHECK(sample(stalled, "sluice_sink_events_total{sink=\"fwd\"}") - written_at_block < 2000);
    CHECK(sample(stalled, "sluice_sink_lag_events{sink=\"fwd\"}") > 0);
    CHECK(sample(stalled, "sluice_queue_bytes") <= static_cast<double>(queue_bytes));
    // Waiting for a peer is not a failure: nothing failed, nothing was dropped.
    CHECK(sample(stalled, "sluice_sink_errors_total{sink=\"fwd\"}") == 0);
    CHECK(sample(stalled, "sluice_sink_up{sink=\"fwd\"}") == 1);
    CHECK(sample(stalled, "sluice_events_dropped_total{source=\"app\",reason=\"queue_full\"}") ==
          0);
    CHECK(status.state == "ok");
    CHECK(faults::log_lines_with(d.log(), "peers are not taking messages").size() >= 1);

    // The peer reads now.
    std::vector<std::string> got;
    got.reserve(lines.size());
    auto receive = [&](std::chrono::milliseconds wait) {
        std::vector<zmq::pollitem_t> items{{peer.handle(), 0, ZMQ_POLLIN, 0}};
        zmq::poll(items, wait);
        zmq::message_t message;
        while (peer.recv(message, zmq::recv_flags::dontwait)) {
            got.push_back(e2e::to_string(message));
        }
    };
    const auto deadline = e2e::clock_type::now() + 60s;
    while (got.size() < lines.size() && e2e::clock_type::now() < deadline) {
        receive(100ms);
    }
    for (int i = 0; i < 3; ++i) {
        receive(100ms);  // a duplicate would follow soon after
    }
    REQUIRE(sender.done());
    REQUIRE(sender.error() == "");
    CHECK(e2e::multiset_difference(lines, got) == "");
    d.wait_metric("sluice_sink_events_total{sink=\"fwd\"}", static_cast<double>(lines.size()));
    const auto m = d.metrics();
    CHECK(d.running());
    CHECK(sample(m, "sluice_source_events_total{source=\"app\"}") == lines.size());
    CHECK(sample(m, "sluice_source_paused{source=\"app\"}") == 0);
    CHECK(sample(m, "sluice_sink_lag_events{sink=\"fwd\"}") == 0);
    CHECK(d.peak_rss_bytes() < rss_limit);
    CHECK(d.vm_hwm_bytes() < rss_limit);
    CHECK(faults::http_get_status(d.api_port(), "/ready").status == 200);
}

// ---- 6. a sink failing for ever, at shutdown ---------------------------------------------

TEST_CASE(
    "fault: a sink that fails for ever (its path is a directory): failed, /ready 503, and "
    "SIGTERM exits 1 within shutdown_timeout, counting exactly what it lost",
    "[e2e][faults]") {
    const faults::scoped_temp_dir dir;
    const std::string bad_path = dir.path + "/out.log";
    std::filesystem::create_directories(bad_path);  // the file sink's "file" is a directory
    const uint16_t port = e2e::free_port();
    e2e::daemon d(queue_table("64MiB") + tcp_source(port) +
                      fmt::format(R"(
[sinks.archive]
type = "file"
path = "{}"
batch = {{ max_events = 1000, timeout = "50ms" }}

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ max_events = 1000, timeout = "50ms" }}
)",
                                  bad_path),
                  "3s");
    constexpr uint64_t n = 5000;
    const auto lines = faults::make_lines("forever", 0, n);
    faults::send_lines(port, lines);
    // The other sink goes on.
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", n);
    d.wait_metric("sluice_sink_up{sink=\"archive\"}", 0);
    std::this_thread::sleep_for(1s);

    const auto m = d.metrics();
    const auto status = faults::status_of_sink(d, "archive");
    const auto ready = faults::http_get_status(d.api_port(), "/ready");
    const auto health = faults::http_get_status(d.api_port(), "/health");
    const std::string log = d.log();
    INFO(d.metrics_summary() << "/ready: " << ready.body << "/health: " << health.body);
    CHECK(d.running());
    CHECK(status.state == "failed");
    CHECK(status.failed);
    CHECK(status.last_error.find("Is a directory") != std::string::npos);
    CHECK(sample(m, "sluice_sink_up{sink=\"archive\"}") == 0);
    CHECK(sample(m, "sluice_sink_up{sink=\"db\"}") == 1);
    CHECK(sample(m, "sluice_sink_lag_events{sink=\"archive\"}") == n);
    CHECK(sample(m, "sluice_sink_lag_events{sink=\"db\"}") == 0);
    CHECK(sample(m, "sluice_sink_events_total{sink=\"archive\"}") == 0);
    // One attempt, then the next one 30 s later: not retried at the transient rate.
    CHECK(sample(m, "sluice_sink_errors_total{sink=\"archive\"}") == 1);
    CHECK(sample(m, "sluice_sink_retries_total{sink=\"archive\"}") == 1);
    CHECK(ready.status == 503);
    CHECK(ready.body.find("sink archive failed: ") != std::string::npos);
    CHECK(health.status == 200);
    CHECK(health.body.rfind("ok\n", 0) == 0);
    CHECK(health.body.find("sink archive failed: ") != std::string::npos);
    // Said once, clearly.
    CHECK(faults::log_lines_with(log, "Sink archive failed: ").size() == 1);
    CHECK(faults::log_lines_with(log, "This will not pass by itself").size() == 1);

    const auto signalled = e2e::clock_type::now();
    d.signal(SIGTERM);
    const int code = d.wait_exit(30s);
    const double took = faults::seconds_since(signalled);
    const std::string final_log = d.log();
    INFO("exit " << code << " after " << took << " s; log:\n" << final_log);
    CHECK(code == 1);
    CHECK(took <= 3.0 + 2.0);
    CHECK(took >= 2.5);  // it did wait for the sink, up to shutdown_timeout
    // Exactly what never landed: every line, for the archive; nothing for db.
    const auto per_sink =
        faults::log_numbers(final_log, R"(sink archive \(failed\) did not write (\d+) events)");
    const auto in_all =
        faults::log_numbers(final_log, R"((\d+) events in .* could not be delivered)");
    CHECK(per_sink == std::vector<uint64_t>{n});
    CHECK(in_all == std::vector<uint64_t>{n});
    CHECK(faults::log_lines_with(final_log, "sink db (").empty());
    CHECK(faults::log_lines_with(final_log, "Shutdown complete").empty());
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    CHECK(e2e::multiset_difference(lines, db.messages()) == "");
}

// ---- 7. /ready while the queue blocks ----------------------------------------------------

TEST_CASE(
    "fault: /ready answers 503 while the queue is full and blocks its sources (a locked "
    "database), 200 again once it drained",
    "[e2e][faults]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(queue_table("1MiB") + tcp_source(port) + R"(
[sinks.db]
type = "sqlite"
path = "logs.db"
batch = { max_events = 5000, timeout = "100ms" }
)");
    const auto ready_before = faults::http_get_status(d.api_port(), "/ready");
    CHECK(ready_before.status == 200);
    CHECK(ready_before.body == "ready\n");

    auto lock = std::make_unique<e2e::sqlite_db>(d.data_dir() + "/logs.db");
    lock->exec("BEGIN EXCLUSIVE");
    const auto lines = faults::make_lines("ready", 0, 100'000, 99);  // 10 MB
    faults::tcp_sender sender(port, lines);
    d.wait_metric("sluice_source_paused{source=\"app\"}", 1, 30s);
    faults::wait_sender_blocked(sender, d);
    // An attempt fails after busy_timeout (1 s) of waiting for the lock.
    e2e::wait_for(
        "the sink to be retrying",
        [&] { return faults::status_of_sink(d, "db").state == "retrying"; },
        [&] { return d.metrics_summary(); });

    const auto ready = faults::http_get_status(d.api_port(), "/ready");
    const auto health = faults::http_get_status(d.api_port(), "/health");
    const auto status = faults::status_of_sink(d, "db");
    const auto stalled = d.metrics();
    INFO("/ready: " << ready.body << "/health: " << health.body << d.metrics_summary());
    CHECK(ready.status == 503);
    CHECK(ready.body.find("queue full: ") != std::string::npos);
    CHECK(ready.body.find("sources are paused") != std::string::npos);
    CHECK(ready.body.find("failed") == std::string::npos);  // the sink is not failed
    CHECK(health.status == 200);
    CHECK(health.body.find("sink db retrying: ") != std::string::npos);
    CHECK(status.state == "retrying");
    CHECK(sample(stalled, "sluice_sink_up{sink=\"db\"}") == 1);
    CHECK(sample(stalled, "sluice_sink_errors_total{sink=\"db\"}") >= 1);
    CHECK(sample(stalled, "sluice_sink_events_total{sink=\"db\"}") == 0);

    lock->exec("ROLLBACK");
    lock.reset();
    e2e::wait_for(
        "the sender to finish", [&] { return sender.done(); },
        [&] { return sender.describe() + "\n" + d.metrics_summary(); }, 60s, 50ms);
    REQUIRE(sender.error() == "");
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", static_cast<double>(lines.size()));
    faults::http_response ready_after;
    e2e::wait_for(
        "/ready to answer 200",
        [&] {
            ready_after = faults::http_get_status(d.api_port(), "/ready");
            return ready_after.status == 200;
        },
        [&] { return std::to_string(ready_after.status) + " " + ready_after.body; }, 10s);
    CHECK(ready_after.body == "ready\n");
    CHECK(faults::status_of_sink(d, "db").state == "ok");
    const auto m = d.metrics();
    CHECK(d.running());
    CHECK(sample(m, "sluice_source_events_total{source=\"app\"}") == lines.size());
    CHECK(sample(m, "sluice_events_dropped_total{source=\"app\",reason=\"queue_full\"}") == 0);
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    CHECK(e2e::multiset_difference(lines, db.messages()) == "");
}
