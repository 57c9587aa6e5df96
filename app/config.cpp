#include "app/config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "app/config_parser.h"
#include "app/config_reader.h"
#include "app/kinds.h"
#include "ingest/tcp_source.h"
#include "queue/overflow_policy.h"

namespace sluice {

bool valid_component_name(std::string_view name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
}

config config_parser::parse(const toml::table& root) {
    const toml::key* sources_key = nullptr;
    const toml::table* sources = nullptr;
    const toml::key* sinks_key = nullptr;
    const toml::table* sinks = nullptr;
    bool has_sources = false;
    bool has_sinks = false;
    const toml::source_region* api_region = nullptr;

    reader_.read_fields(
        root, "",
        {
            {"data_dir",
             [&](const config_field& f) {
                 std::string dir;
                 if (reader_.non_empty_string(f, dir)) {
                     config_.data_dir = dir;
                 }
             }},
            {"shutdown_timeout",
             [&](const config_field& f) { reader_.duration(f, config_.shutdown_timeout); }},
            {"io_threads", [&](const config_field& f) { read_io_threads(f); }},
            {"api",
             [&](const config_field& f) {
                 api_region = &f.value.source();
                 read_api(f);
             }},
            {"queue", [&](const config_field& f) { read_queue(f); }},
            {"sources",
             [&](const config_field& f) {
                 has_sources = true;
                 sources_key = &f.key;
                 sources = reader_.table(f);
             }},
            {"sinks",
             [&](const config_field& f) {
                 has_sinks = true;
                 sinks_key = &f.key;
                 sinks = reader_.table(f);
             }},
        });

    if (sources != nullptr) {
        read_sources(*sources_key, *sources);
    } else if (!has_sources) {
        reader_.problem("sources", "at least one source is required ([sources.NAME])");
    }
    if (sinks != nullptr) {
        read_sinks(*sinks_key, *sinks);
    } else if (!has_sinks) {
        reader_.problem("sinks", "at least one sink is required ([sinks.NAME])");
    }
    // The API is claimed last so that a clash is reported once, on the API's address.
    claim_address("tcp", config_.api.address, api_region != nullptr ? *api_region : root.source(),
                  "api.address");
    return std::move(config_);
}

void config_parser::read_io_threads(const config_field& f) {
    // More loops than this would only add threads: connections are what spreads over them.
    constexpr uint64_t most = 1024;
    if (f.value.is_string()) {
        if (f.value.value_or(std::string_view{}) != "auto") {
            reader_.problem(f.value.source(), f.path,
                            "expected \"auto\" or a number of threads from 1 to 1024");
        }
        config_.io_threads = 0;
        return;
    }
    uint64_t n = 0;
    if (!reader_.positive_integer(f, n)) {
        return;
    }
    if (n > most) {
        reader_.problem(f.value.source(), f.path,
                        "expected \"auto\" or a number of threads from 1 to 1024");
        return;
    }
    config_.io_threads = n;
}

void config_parser::read_api(const config_field& f) {
    const toml::table* table = reader_.table(f);
    if (table == nullptr) {
        return;
    }
    reader_.read_fields(
        *table, f.path,
        {
            {"address", [&](const config_field& a) { read_address(a, config_.api.address); }},
        });
}

void config_parser::read_queue(const config_field& f) {
    const toml::table* table = reader_.table(f);
    if (table == nullptr) {
        return;
    }
    queue_config& q = config_.queue;
    reader_.read_fields(
        *table, f.path,
        {
            {"max_bytes", [&](const config_field& v) { reader_.size(v, q.max_bytes); }},
            {"max_events",
             [&](const config_field& v) { reader_.positive_integer(v, q.max_events); }},
            {"when_full",
             [&](const config_field& v) {
                 reader_.choice(v, q.when_full, parse_overflow_policy,
                                "block, drop_newest, drop_oldest");
             }},
            {"low_watermark",
             [&](const config_field& v) {
                 double fill = 0;
                 if (!reader_.number(v, fill)) {
                     return;
                 }
                 if (!(fill > 0 && fill < 1)) {
                     reader_.problem(
                         v.value.source(), v.path,
                         fmt::format("must be between 0 and 1 (exclusive), got {}", fill));
                     return;
                 }
                 q.low_watermark = fill;
             }},
        });
}

bool config_parser::read_address(const config_field& f, std::string& out) {
    std::string address;
    if (!reader_.string(f, address)) {
        return false;
    }
    try {
        parse_tcp_endpoint(address);
    } catch (const error& e) {
        reader_.problem(f.value.source(), f.path, e.what());
        return false;
    }
    out = std::move(address);
    return true;
}

namespace {

constexpr std::string_view endpoint_schemes[] = {"tcp://", "ipc://", "inproc://"};

}  // namespace

bool config_parser::read_endpoint(const config_field& f, std::string& out) {
    std::string endpoint;
    if (!reader_.string(f, endpoint)) {
        return false;
    }
    const auto scheme =
        std::find_if(std::begin(endpoint_schemes), std::end(endpoint_schemes),
                     [&](std::string_view s) { return std::string_view(endpoint).starts_with(s); });
    if (scheme == std::end(endpoint_schemes)) {
        reader_.problem(f.value.source(), f.path,
                        fmt::format("invalid endpoint '{}' (expected tcp://host:port, ipc://path "
                                    "or inproc://name)",
                                    endpoint));
        return false;
    }
    const std::string_view rest = std::string_view(endpoint).substr(scheme->size());
    if (rest.empty()) {
        reader_.problem(f.value.source(), f.path,
                        fmt::format("endpoint '{}' names nothing after '{}'", endpoint, *scheme));
        return false;
    }
    if (*scheme == "tcp://") {
        const auto colon = rest.rfind(':');
        if (colon == std::string_view::npos || colon == 0 || colon + 1 == rest.size()) {
            reader_.problem(f.value.source(), f.path,
                            fmt::format("endpoint '{}' has no host or port (expected "
                                        "tcp://host:port)",
                                        endpoint));
            return false;
        }
    }
    out = std::move(endpoint);
    return true;
}

std::optional<std::string> config_parser::read_type(const config_field& f, const toml::table& table,
                                                    std::string_view expected) {
    const auto it = table.find("type");
    if (it == table.end()) {
        reader_.problem(table_region(f.key, table), f.path + ".type",
                        fmt::format("missing key 'type' (expected one of: {})", expected));
        return std::nullopt;
    }
    std::string type;
    if (!reader_.string(config_field{it->first, it->second, f.path + ".type"}, type)) {
        return std::nullopt;
    }
    return type;
}

namespace {

// "tcp 127.0.0.1:5170": one key per socket that can be bound once.
std::string listener_key(std::string_view protocol, const asio::ip::tcp::endpoint& endpoint) {
    return fmt::format("{} {}:{}", protocol, endpoint.address().to_string(), endpoint.port());
}

}  // namespace

void config_parser::claim_address(std::string_view protocol, const std::string& address,
                                  const toml::source_region& where, const std::string& owner) {
    asio::ip::tcp::endpoint endpoint;
    try {
        endpoint = parse_tcp_endpoint(address);
    } catch (const error&) {
        return;  // already reported where it was read
    }
    if (endpoint.port() == 0) {
        return;
    }
    claim(listener_key(protocol, endpoint), fmt::format("address '{}'", address), where, owner);
}

void config_parser::claim_endpoint(const std::string& endpoint, const toml::source_region& where,
                                   const std::string& owner) {
    const std::string shown = fmt::format("endpoint '{}'", endpoint);
    constexpr std::string_view tcp_scheme = "tcp://";
    if (!endpoint.starts_with(tcp_scheme)) {
        claim("zmq " + endpoint, shown, where, owner);  // ipc:// and inproc://: the name
        return;
    }
    // A ZeroMQ tcp bind takes the port as a tcp source would, so they clash with each other.
    const std::string host_port = endpoint.substr(tcp_scheme.size());
    const std::string port = host_port.substr(host_port.rfind(':') + 1);
    if (port == "0" || port.starts_with('*') || port.starts_with('!') || port.starts_with('[')) {
        return;  // ZeroMQ picks a free port
    }
    try {
        claim(listener_key("tcp", parse_tcp_endpoint(host_port)), shown, where, owner);
    } catch (const error&) {
        claim("zmq " + endpoint, shown, where, owner);  // an interface name: compare as written
    }
}

void config_parser::claim(std::string key, std::string_view shown, const toml::source_region& where,
                          const std::string& owner) {
    for (const auto& l : listeners_) {
        if (l.key == key) {
            reader_.problem(where, owner, fmt::format("{} is already used by {}", shown, l.owner));
            return;
        }
    }
    listeners_.push_back({std::move(key), owner});
}

namespace {

std::string join_problems(const std::vector<config_problem>& problems) {
    std::string text;
    for (const auto& p : problems) {
        if (!text.empty()) {
            text += '\n';
        }
        text += p.to_string();
    }
    return text;
}

}  // namespace

std::string config_problem::to_string() const {
    // Drop the parts that are unknown rather than print "0:0" or an empty key.
    std::string text = file;
    if (line > 0) {
        text += fmt::format(":{}:{}", line, column);
    }
    text += ": ";
    if (!key.empty()) {
        text += key;
        text += ": ";
    }
    text += message;
    return text;
}

config_error::config_error(std::vector<config_problem> problems)
    : error(join_problems(problems)), problems_(std::move(problems)) {}

config parse_config(std::string_view text, std::string_view file_name) {
    config_reader reader{std::string(file_name)};
    toml::table root;
    try {
        root = toml::parse(text, file_name);
    } catch (const toml::parse_error& e) {
        reader.problem(e.source(), "", std::string(e.description()));
        throw config_error(reader.take_problems());
    }
    config result = config_parser(reader).parse(root);
    if (!reader.problems().empty()) {
        throw config_error(reader.take_problems());
    }
    return result;
}

config load_config(const std::filesystem::path& file) {
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(file.c_str(), "rb"), &std::fclose);
    if (!f) {
        throw_errno("cannot read config " + file.string(), errno);
    }
    std::string text;
    char buffer[64 * 1024];
    size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, f.get())) > 0) {
        text.append(buffer, n);
    }
    // A directory opens fine and fails on the first read (EISDIR).
    if (std::ferror(f.get())) {
        throw_errno("cannot read config " + file.string(), errno);
    }
    return parse_config(text, file.string());
}

config default_config() {
    config c;  // data_dir, shutdown_timeout, api and queue defaults are the defaults already
    c.sources.push_back(make_source_config("tcp", "tcp"));  // newline text on 127.0.0.1:5170
    c.sources.push_back(make_source_config("zmq", "zmq"));  // PULL bound at tcp://127.0.0.1:5171
    c.sinks.push_back(make_sink_config("file", "file"));    // ./sluice-data/logs/sluice.log
    c.sinks.push_back(make_sink_config("sqlite", "sqlite"));  // ./sluice-data/logs.db
    return c;
}

}  // namespace sluice
