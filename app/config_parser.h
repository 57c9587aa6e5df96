// config_parser: turns a parsed TOML tree into a config, knowing sluice's schema. Internal to
// the config code: config.cpp reads the top level and the keys every source or sink shares,
// and each type's row (app/kinds.h) its own keys, with the helpers public below.
// One parser per parse; not thread-safe.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "app/config.h"
#include "app/config_reader.h"

namespace sluice {

// Names appear in metric labels, file paths ({source}) and log lines, so keep them plain.
bool valid_component_name(std::string_view name);

// A file named in the config (TLS files, credentials): a relative path is taken relative to
// the config file's directory. False, with the problem reported, for an empty or non-string.
bool read_config_relative_path(config_reader& r, const config_field& f, std::string& out);

// Sections refer to each other (a sink's inputs name sources written anywhere in the file),
// so sources and sinks are read after the top level.
class config_parser {
public:
    explicit config_parser(config_reader& reader) : reader_(reader) {}

    config parse(const toml::table& root);

    // For the types' readers (app/kinds.h).
    config_reader& reader() { return reader_; }
    // A host:port string, checked by parse_tcp_endpoint (udp addresses use the same form).
    bool read_address(const config_field& f, std::string& out);
    // A ZeroMQ endpoint: tcp://, ipc:// or inproc:// and something after the scheme.
    bool read_endpoint(const config_field& f, std::string& out);
    // Finds `type` in a source or sink table and reads it as a string.
    std::optional<std::string> read_type(const config_field& f, const toml::table& table,
                                         std::string_view expected);
    // Reports a second listener on one address; port 0 (any free port) never collides.
    // `protocol` is "tcp" or "udp": a tcp and a udp socket may share a port.
    void claim_address(std::string_view protocol, const std::string& address,
                       const toml::source_region& where, const std::string& owner);
    // The same for a ZeroMQ endpoint that is bound.
    void claim_endpoint(const std::string& endpoint, const toml::source_region& where,
                        const std::string& owner);
private:
    // Something that listens: where it was set, to point at the second user of one.
    // `key` identifies what can be bound only once: "tcp 127.0.0.1:5170", "udp [::1]:514",
    // "zmq ipc:///tmp/x"; a zmq tcp:// bind claims the plain tcp key, as a tcp source would.
    struct listener {
        std::string key;
        std::string owner;  // dotted key
    };

    // config.cpp
    void read_api(const config_field& f);
    void read_io_threads(const config_field& f);
    void read_queue(const config_field& f);
    void claim(std::string key, std::string_view shown, const toml::source_region& where,
               const std::string& owner);
    void read_sources(const toml::key& key, const toml::table& sources);
    void read_source(const config_field& f, const toml::table& table);
    void read_sinks(const toml::key& key, const toml::table& sinks);
    void read_sink(const config_field& f, const toml::table& table);
    void read_batch(const config_field& f, batch_config& batch);
    void read_inputs(const config_field& f, std::vector<std::string>& inputs);

    config_reader& reader_;
    config config_;
    std::set<std::string, std::less<>> declared_sources_;
    std::vector<listener> listeners_;
};

}  // namespace sluice
