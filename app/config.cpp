#include "app/config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "app/config_reader.h"
#include "ingest/framing.h"
#include "queue/overflow_policy.h"

namespace sluice {

namespace {

// The queue tracks which sinks still hold a batch in one 64-bit mask.
constexpr size_t max_sinks = 64;

// Types SPEC.md names that later issues implement: saying so beats "unknown type".
constexpr std::string_view later_source_types[] = {"udp", "zmq", "file", "generator"};
constexpr std::string_view later_sink_types[] = {"zmq"};
constexpr std::string_view later_codecs[] = {"json", "syslog"};

bool is_one_of(std::string_view value, std::span<const std::string_view> names) {
    return std::find(names.begin(), names.end(), value) != names.end();
}

// Names appear in metric labels, file paths ({source}) and log lines, so keep them plain.
bool valid_component_name(std::string_view name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
}

batch_config default_batch(sink_type type) {
    if (type == sink_type::sqlite) {
        // One transaction per batch: smaller batches and a shorter wait keep queries fresh.
        return {5'000, 4ull << 20, std::chrono::milliseconds(200)};
    }
    return {10'000, 4ull << 20, std::chrono::seconds(1)};
}

std::optional<source_type> parse_source_type(std::string_view s) {
    if (s == "tcp") {
        return source_type::tcp;
    }
    return std::nullopt;
}

std::optional<sink_type> parse_sink_type(std::string_view s) {
    if (s == "file") {
        return sink_type::file;
    }
    if (s == "sqlite") {
        return sink_type::sqlite;
    }
    return std::nullopt;
}

std::optional<file_format> parse_file_format(std::string_view s) {
    if (s == "text") {
        return file_format::text;
    }
    if (s == "json") {
        return file_format::json;
    }
    return std::nullopt;
}

// Turns the TOML tree into a config. Sections refer to each other (a sink's inputs name
// sources written anywhere in the file), so sources and sinks are read after the top level.
class config_parser {
public:
    explicit config_parser(config_reader& reader) : reader_(reader) {}

    config parse(const toml::table& root);

private:
    // A listening address: where it was set, to point at the second user of one.
    struct listener {
        asio::ip::tcp::endpoint endpoint;
        std::string owner;  // dotted key
    };

    void read_api(const config_field& f);
    void read_queue(const config_field& f);
    void read_sources(const toml::key& key, const toml::table& sources);
    void read_source(const config_field& f, const toml::table& table);
    void read_sinks(const toml::key& key, const toml::table& sinks);
    void read_sink(const config_field& f, const toml::table& table);
    void read_batch(const config_field& f, batch_config& batch);
    void read_inputs(const config_field& f, std::vector<std::string>& inputs);
    bool read_address(const config_field& f, std::string& out);
    // Finds `type` in a source or sink table and reads it as a string.
    std::optional<std::string> read_type(const config_field& f, const toml::table& table,
                                         std::string_view expected);
    // Reports a second listener on one address; port 0 (any free port) never collides.
    void claim_address(const std::string& address, const toml::source_region& where,
                       const std::string& owner);

    config_reader& reader_;
    config config_;
    std::set<std::string, std::less<>> declared_sources_;
    std::vector<listener> listeners_;
};

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
    claim_address(config_.api.address, api_region != nullptr ? *api_region : root.source(),
                  "api.address");
    return std::move(config_);
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

void config_parser::read_sources(const toml::key& key, const toml::table& sources) {
    if (sources.empty()) {
        reader_.problem(table_region(key, sources), "sources",
                        "at least one source is required ([sources.NAME])");
        return;
    }
    const auto entries = entries_in_file_order(sources);
    // Every name counts for inputs, even one whose own table is wrong, so that a broken
    // source is reported once rather than again by every sink that reads it.
    for (const auto& [name, node] : entries) {
        declared_sources_.emplace(name->str());
    }
    for (const auto& [name, node] : entries) {
        const config_field f{*name, *node, "sources." + std::string(name->str())};
        if (!valid_component_name(name->str())) {
            reader_.problem(name->source(), f.path,
                            fmt::format("invalid source name '{}' (use letters, digits, _ and -)",
                                        name->str()));
        }
        if (const toml::table* table = reader_.table(f)) {
            read_source(f, *table);
        }
    }
}

void config_parser::read_source(const config_field& f, const toml::table& table) {
    const auto type_name = read_type(f, table, "tcp");
    if (!type_name) {
        return;
    }
    const auto type = parse_source_type(*type_name);
    if (!type) {
        // The other keys depend on the type; checking them against tcp's would only add noise.
        const auto& where = table.find("type")->second.source();
        if (is_one_of(*type_name, later_source_types)) {
            reader_.problem(where, f.path + ".type",
                            fmt::format("source type '{}' is not supported yet", *type_name));
        } else {
            reader_.problem(
                where, f.path + ".type",
                fmt::format("unknown source type '{}' (expected one of: tcp)", *type_name));
        }
        return;
    }

    source_config source;
    source.name = std::string(f.key.str());
    source.type = *type;
    tcp_source_config& tcp = source.tcp;
    const toml::source_region* address_region = nullptr;
    bool address_ok = true;
    reader_.read_fields(
        table, f.path,
        {
            {"type", {}},
            {"address",
             [&](const config_field& v) {
                 address_region = &v.value.source();
                 address_ok = read_address(v, tcp.address);
             }},
            {"framing",
             [&](const config_field& v) {
                 reader_.choice(v, tcp.framing_kind, parse_framing, "newline, octet_counting");
             }},
            {"codec",
             [&](const config_field& v) {
                 std::string codec;
                 if (!reader_.string(v, codec)) {
                     return;
                 }
                 if (is_one_of(codec, later_codecs)) {
                     reader_.problem(v.value.source(), v.path,
                                     fmt::format("codec '{}' is not supported yet", codec));
                 } else if (codec != "text") {
                     reader_.unknown_value(v, codec, "text");
                 } else {
                     tcp.codec = codec;
                 }
             }},
            {"max_line_bytes", [&](const config_field& v) { reader_.size(v, tcp.max_line_bytes); }},
            {"max_connections",
             [&](const config_field& v) { reader_.positive_integer(v, tcp.max_connections); }},
        });
    if (address_ok) {
        claim_address(tcp.address,
                      address_region != nullptr ? *address_region : table_region(f.key, table),
                      f.path + ".address");
    }
    config_.sources.push_back(std::move(source));
}

void config_parser::read_sinks(const toml::key& key, const toml::table& sinks) {
    if (sinks.empty()) {
        reader_.problem(table_region(key, sinks), "sinks",
                        "at least one sink is required ([sinks.NAME])");
        return;
    }
    if (sinks.size() > max_sinks) {
        reader_.problem(
            table_region(key, sinks), "sinks",
            fmt::format("at most {} sinks are supported, got {}", max_sinks, sinks.size()));
    }
    for (const auto& [name, node] : entries_in_file_order(sinks)) {
        const config_field f{*name, *node, "sinks." + std::string(name->str())};
        if (!valid_component_name(name->str())) {
            reader_.problem(
                name->source(), f.path,
                fmt::format("invalid sink name '{}' (use letters, digits, _ and -)", name->str()));
        }
        if (const toml::table* table = reader_.table(f)) {
            read_sink(f, *table);
        }
    }
}

void config_parser::read_sink(const config_field& f, const toml::table& table) {
    const auto type_name = read_type(f, table, "file, sqlite");
    if (!type_name) {
        return;
    }
    const auto type = parse_sink_type(*type_name);
    if (!type) {
        const auto& where = table.find("type")->second.source();
        if (is_one_of(*type_name, later_sink_types)) {
            reader_.problem(where, f.path + ".type",
                            fmt::format("sink type '{}' is not supported yet", *type_name));
        } else {
            reader_.problem(
                where, f.path + ".type",
                fmt::format("unknown sink type '{}' (expected one of: file, sqlite)", *type_name));
        }
        return;
    }

    sink_config sink;
    sink.name = std::string(f.key.str());
    sink.type = *type;
    sink.batch = default_batch(*type);
    std::vector<field_spec> specs{
        {"type", {}},
        {"inputs", [&](const config_field& v) { read_inputs(v, sink.inputs); }},
        {"batch", [&](const config_field& v) { read_batch(v, sink.batch); }},
    };
    if (*type == sink_type::file) {
        file_sink_config& file = sink.file;
        specs.push_back(
            {"path", [&](const config_field& v) { reader_.non_empty_string(v, file.path); }});
        specs.push_back({"format", [&](const config_field& v) {
                             reader_.choice(v, file.format, parse_file_format, "text, json");
                         }});
        specs.push_back({"fsync", [&](const config_field& v) { reader_.boolean(v, file.fsync); }});
    } else {
        sqlite_sink_config& sqlite = sink.sqlite;
        specs.push_back(
            {"path", [&](const config_field& v) { reader_.non_empty_string(v, sqlite.path); }});
        specs.push_back({"table", [&](const config_field& v) {
                             std::string name;
                             if (!reader_.string(v, name)) {
                                 return;
                             }
                             if (!valid_table_name(name)) {
                                 reader_.problem(v.value.source(), v.path,
                                                 fmt::format("invalid table name '{}' (expected "
                                                             "[A-Za-z_][A-Za-z0-9_]*)",
                                                             name));
                                 return;
                             }
                             sqlite.table = name;
                         }});
        specs.push_back({"fts", [&](const config_field& v) { reader_.boolean(v, sqlite.fts); }});
        specs.push_back({"busy_timeout", [&](const config_field& v) {
                             std::chrono::nanoseconds wait{};
                             if (!reader_.duration(v, wait)) {
                                 return;
                             }
                             // sqlite3_busy_timeout takes an int of milliseconds.
                             const auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait);
                             if (ms.count() > std::numeric_limits<int>::max()) {
                                 reader_.problem(v.value.source(), v.path, "is too long");
                                 return;
                             }
                             sqlite.busy_timeout = ms;
                         }});
    }
    reader_.read_fields(table, f.path, specs);
    config_.sinks.push_back(std::move(sink));
}

void config_parser::read_batch(const config_field& f, batch_config& batch) {
    const toml::table* table = reader_.table(f);
    if (table == nullptr) {
        return;
    }
    reader_.read_fields(
        *table, f.path,
        {
            {"max_events",
             [&](const config_field& v) { reader_.positive_integer(v, batch.max_events); }},
            {"max_bytes", [&](const config_field& v) { reader_.size(v, batch.max_bytes); }},
            // A zero timeout would have the sink thread spin on an empty queue.
            {"timeout", [&](const config_field& v) { reader_.duration(v, batch.timeout, true); }},
        });
}

void config_parser::read_inputs(const config_field& f, std::vector<std::string>& inputs) {
    const toml::array* array = f.value.as_array();
    if (array == nullptr) {
        reader_.problem(
            f.value.source(), f.path,
            fmt::format("expected an array of source names, got {}", type_name(f.value.type())));
        return;
    }
    if (array->empty()) {
        // An explicit [] reading as "every source" would surprise; leaving the key out says it.
        reader_.problem(f.value.source(), f.path,
                        "must name at least one source (leave it out to take every source)");
        return;
    }
    std::vector<std::string> names;
    for (const toml::node& element : *array) {
        const auto* name = element.as_string();
        if (name == nullptr) {
            reader_.problem(element.source(), f.path,
                            fmt::format("expected a source name (a string), got {}",
                                        type_name(element.type())));
            continue;
        }
        if (!declared_sources_.contains(name->get())) {
            reader_.problem(element.source(), f.path,
                            fmt::format("unknown source '{}'", name->get()));
            continue;
        }
        if (std::find(names.begin(), names.end(), name->get()) != names.end()) {
            reader_.problem(element.source(), f.path,
                            fmt::format("source '{}' is listed twice", name->get()));
            continue;
        }
        names.push_back(name->get());
    }
    inputs = std::move(names);
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

void config_parser::claim_address(const std::string& address, const toml::source_region& where,
                                  const std::string& owner) {
    asio::ip::tcp::endpoint endpoint;
    try {
        endpoint = parse_tcp_endpoint(address);
    } catch (const error&) {
        return;  // already reported where it was read
    }
    if (endpoint.port() == 0) {
        return;
    }
    for (const auto& l : listeners_) {
        if (l.endpoint == endpoint) {
            reader_.problem(where, owner,
                            fmt::format("address '{}' is already used by {}", address, l.owner));
            return;
        }
    }
    listeners_.push_back({endpoint, owner});
}

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
    config c;  // data_dir, shutdown_timeout, api and queue defaults are SPEC's already
    source_config tcp;
    tcp.name = "tcp";
    tcp.type = source_type::tcp;
    c.sources.push_back(std::move(tcp));

    sink_config file;
    file.name = "file";
    file.type = sink_type::file;
    file.batch = default_batch(sink_type::file);
    c.sinks.push_back(std::move(file));

    sink_config sqlite;
    sqlite.name = "sqlite";
    sqlite.type = sink_type::sqlite;
    sqlite.batch = default_batch(sink_type::sqlite);
    c.sinks.push_back(std::move(sqlite));
    return c;
}

}  // namespace sluice
