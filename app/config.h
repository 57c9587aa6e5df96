// The sluice configuration: TOML (toml++) parsed into the config structs that sit next to
// each component. Every error names the file, line, key and what is wrong; unknown keys are
// errors. Pure parsing; safe from any thread.
#pragma once

#include <any>
#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "queue/bounded_queue.h"
#include "sinks/sink.h"

namespace sluice {

struct source_kind;  // app/kinds.h
struct sink_kind;

// A component's own config struct (tcp_source_config, file_sink_config, ...), held for the
// type's row, which alone knows the struct.
struct typed_settings {
    std::any settings;

    // The settings as the type's struct; throws std::bad_any_cast for another type.
    template <typename Settings>
    const Settings& get() const {
        return std::any_cast<const Settings&>(settings);
    }
    template <typename Settings>
    Settings& get() {
        return std::any_cast<Settings&>(settings);
    }
};

struct source_config : typed_settings {
    std::string name;                   // the table key: [sources.NAME]
    const source_kind* kind = nullptr;  // its `type`: a row of app/kinds.h

    std::string_view type() const;
};

struct sink_config : typed_settings {
    std::string name;                 // [sinks.NAME]
    const sink_kind* kind = nullptr;  // its `type`
    std::vector<std::string> inputs;  // source names; empty = every source
    batch_config batch;               // defaults depend on the type (the kind's row)

    std::string_view type() const;
};

// A source or sink of the named type with its type's defaults (the built-in default, tests).
// Throws sluice::error for a type no row names.
source_config make_source_config(std::string name, std::string_view type);
sink_config make_sink_config(std::string name, std::string_view type);

struct api_config {
    std::string address = "127.0.0.1:9598";  // GET /health, /metrics, /status
};

struct config {
    std::filesystem::path data_dir = "./sluice-data";  // checkpoints, relative sink paths
    std::chrono::nanoseconds shutdown_timeout = std::chrono::seconds(30);
    uint64_t io_threads = 0;  // event loops of the network sources; 0: "auto", one per core
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
