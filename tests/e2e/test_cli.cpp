// e2e: the command line: --version, --help, `validate` and `run` with good and bad configs.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "tests/e2e/harness.h"

namespace {

// A temp dir removed at the end of the test (kept when it fails, for a look).
struct temp_dir {
    temp_dir() : path(e2e::make_temp_dir()) {}
    ~temp_dir() {
        if (std::uncaught_exceptions() == 0) {
            std::error_code ec;
            std::filesystem::remove_all(path, ec);
        }
    }
    std::string file(const std::string& name, const std::string& content) const {
        const std::string p = path + "/" + name;
        e2e::write_file(p, content);
        return p;
    }
    std::string path;
};

std::string good_config(const std::string& dir) {
    return fmt::format(R"(data_dir = "{}/data"
shutdown_timeout = "30s"

[api]
address = "127.0.0.1:{}"

[queue]
max_bytes = "64MiB"
max_events = 1000000
when_full = "block"

[sources.app]
type = "tcp"
address = "127.0.0.1:{}"
framing = "newline"
codec = "text"
max_line_bytes = 65536
max_connections = 1024

[sinks.archive]
type = "file"
inputs = ["app"]
path = "logs/%Y-%m-%d/{{source}}.log"
format = "text"
batch = {{ max_events = 10000, max_bytes = "4MiB", timeout = "1s" }}
fsync = false

[sinks.db]
type = "sqlite"
path = "logs.db"
table = "logs"
batch = {{ max_events = 5000, timeout = "200ms" }}
fts = false
)",
                       dir, e2e::free_port(), e2e::free_port());
}

// Line 12 holds the typo "adress".
constexpr const char* unknown_key_config = R"(data_dir = "./data"

[api]
address = "127.0.0.1:9598"

[queue]
max_bytes = "64MiB"
when_full = "block"

[sources.app]
type = "tcp"
adress = "127.0.0.1:5170"

[sinks.db]
type = "sqlite"
path = "logs.db"
)";

bool names_line(const std::string& text, int line) {
    const std::string n = std::to_string(line);
    return text.find(":" + n + ":") != std::string::npos ||
           text.find("line " + n) != std::string::npos;
}

}  // namespace

TEST_CASE("sluice --version and --help exit 0", "[e2e]") {
    temp_dir dir;
    const auto version = e2e::run_sluice({"--version"}, dir.path);
    CHECK(version.exit_code == 0);
    CHECK(version.out.find("sluice") != std::string::npos);
    const auto help = e2e::run_sluice({"--help"}, dir.path);
    CHECK(help.exit_code == 0);
    CHECK(help.out.find("run") != std::string::npos);
    CHECK(help.out.find("validate") != std::string::npos);
}

TEST_CASE("sluice validate prints ok and exits 0 on a good config", "[e2e]") {
    temp_dir dir;
    const std::string path = dir.file("good.toml", good_config(dir.path));
    const auto r = e2e::run_sluice({"validate", "-c", path}, dir.path);
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out == "ok\n");
    // validate must not run anything: no data_dir, no database.
    CHECK_FALSE(std::filesystem::exists(dir.path + "/data/logs.db"));
}

TEST_CASE("sluice validate names the file, line and key of an unknown key and exits 2", "[e2e]") {
    temp_dir dir;
    const std::string path = dir.file("bad.toml", unknown_key_config);
    const auto r = e2e::run_sluice({"validate", "-c", path}, dir.path);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("bad.toml") != std::string::npos);
    CHECK(names_line(r.err, 12));
    CHECK(r.err.find("adress") != std::string::npos);
    CHECK(r.out.find("ok") == std::string::npos);
}

TEST_CASE("sluice validate reports every error found, not only the first", "[e2e]") {
    temp_dir dir;
    const std::string path = dir.file("two.toml", R"(data_dir = "./data"

[queue]
max_bytes = "lots"
when_full = "sometimes"

[sources.app]
type = "tcp"
address = "127.0.0.1:5170"
framng = "newline"

[sinks.db]
type = "sqlite"
path = "logs.db"
)");
    const auto r = e2e::run_sluice({"validate", "-c", path}, dir.path);
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("max_bytes") != std::string::npos);
    CHECK(names_line(r.err, 4));
    CHECK(r.err.find("when_full") != std::string::npos);
    CHECK(names_line(r.err, 5));
    CHECK(r.err.find("framng") != std::string::npos);
    CHECK(names_line(r.err, 10));
}

TEST_CASE("sluice run with a bad config, a missing file or a bad argument exits 2", "[e2e]") {
    temp_dir dir;
    const std::string bad = dir.file("bad.toml", unknown_key_config);
    {
        const auto r = e2e::run_sluice({"run", "-c", bad}, dir.path);
        INFO("stderr: " << r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("adress") != std::string::npos);
    }
    {
        const auto r = e2e::run_sluice({"run", "-c", dir.path + "/missing.toml"}, dir.path);
        INFO("stderr: " << r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("missing.toml") != std::string::npos);
    }
    {
        const auto r = e2e::run_sluice({"run", "--no-such-option"}, dir.path);
        INFO("stderr: " << r.err);
        CHECK(r.exit_code == 2);
    }
    {
        const auto r = e2e::run_sluice({"validate", "-c", dir.path + "/missing.toml"}, dir.path);
        INFO("stderr: " << r.err);
        CHECK(r.exit_code == 2);
    }
}
