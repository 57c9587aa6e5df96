// The sluice configuration: TOML (toml++) parsed into the config structs that sit next to
// each component. Every error names the file, line, key and what is wrong; unknown keys are
// errors. Pure parsing; safe from any thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "ingest/generator_source.h"
#include "ingest/tcp_source.h"
#include "ingest/udp_source.h"
#include "ingest/zmq_source.h"
#include "queue/bounded_queue.h"
#include "sinks/file_sink.h"
#include "sinks/sink.h"
#include "sinks/sqlite_sink.h"
#include "sinks/zmq_sink.h"

namespace sluice {

enum class source_type { tcp, udp, zmq, generator };
enum class sink_type { file, sqlite, zmq };

struct source_config {
    std::string name;                 // the table key: [sources.NAME]
    source_type type = source_type::tcp;
    tcp_source_config tcp;              // the struct of `type` is the one read
    udp_source_config udp;
    zmq_source_config zmq;
    generator_source_config generator;
};

struct sink_config {
    std::string name;                 // [sinks.NAME]
    sink_type type = sink_type::file;
    std::vector<std::string> inputs;  // source names; empty = every source
    batch_config batch;               // defaults depend on the type (see SPEC.md)
    file_sink_config file;
    sqlite_sink_config sqlite;
    zmq_sink_config zmq;
};

struct api_config {
    std::string address = "127.0.0.1:9598";  // GET /health, /metrics, /status
};

struct config {
    std::filesystem::path data_dir = "./sluice-data";  // checkpoints, relative sink paths
    std::chrono::nanoseconds shutdown_timeout = std::chrono::seconds(30);
    api_config api;
    queue_config queue;
    std::vector<source_config> sources;
    std::vector<sink_config> sinks;
};

// One problem found in a config file.
struct config_problem {
    std::string file;
    int64_t line = 0;     // 1-based; 0 when unknown
    int64_t column = 0;
    std::string key;      // dotted path, e.g. "sinks.db.batch.timeout"
    std::string message;  // what is wrong
    // "FILE:LINE:COLUMN: KEY: MESSAGE"
    std::string to_string() const;
};

// Thrown by load_config / parse_config with every problem found, not just the first.
class config_error : public error {
public:
    explicit config_error(std::vector<config_problem> problems);
    const std::vector<config_problem>& problems() const { return problems_; }

private:
    std::vector<config_problem> problems_;
};

// Reads and validates `file`. Throws config_error (bad content) or sluice::error (unreadable).
config load_config(const std::filesystem::path& file);
// Parses TOML text; `file_name` is used in messages only.
config parse_config(std::string_view text, std::string_view file_name);
// The built-in default of SPEC.md: tcp on 127.0.0.1:5170, a zmq PULL bound at
// tcp://127.0.0.1:5171, a file and a sqlite sink.
config default_config();

}  // namespace sluice
