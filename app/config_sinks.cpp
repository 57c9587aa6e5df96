// Reading [sinks.NAME] tables: the common inputs and batch keys, then the type's own.
#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "app/config_parser.h"
#include "app/kinds.h"
#include "sinks/file_sink.h"
#include "sinks/sqlite_sink.h"
#include "sinks/zmq_sink.h"

namespace sluice {

namespace {

// The queue tracks which sinks still hold a batch in one 64-bit mask.
constexpr size_t max_sinks = 64;

std::optional<file_format> parse_file_format(std::string_view s) {
    if (s == "text") {
        return file_format::text;
    }
    if (s == "json") {
        return file_format::json;
    }
    return std::nullopt;
}

std::optional<zmq_sink_socket> parse_zmq_sink_socket(std::string_view s) {
    if (s == "push") {
        return zmq_sink_socket::push;
    }
    if (s == "pub") {
        return zmq_sink_socket::pub;
    }
    return std::nullopt;
}

std::optional<zmq_sink_format> parse_zmq_sink_format(std::string_view s) {
    if (s == "text") {
        return zmq_sink_format::text;
    }
    if (s == "json") {
        return zmq_sink_format::json;
    }
    return std::nullopt;
}

}  // namespace

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
    const std::string names = sink_kind_names();
    const auto type_name = read_type(f, table, names);
    if (!type_name) {
        return;
    }
    const sink_kind* kind = find_sink_kind(*type_name);
    if (kind == nullptr) {
        const auto& where = table.find("type")->second.source();
        reader_.problem(
            where, f.path + ".type",
            fmt::format("unknown sink type '{}' (expected one of: {})", *type_name, names));
        return;
    }
    sink_config sink;
    sink.name = std::string(f.key.str());
    sink.kind = kind;
    sink.batch = kind->default_batch;
    // The keys every sink shares, read here once; the type's reader adds its own.
    std::vector<field_spec> specs{
        {"type", {}},
        {"inputs", [&](const config_field& v) { read_inputs(v, sink.inputs); }},
        {"batch", [&](const config_field& v) { read_batch(v, sink.batch); }},
    };
    sink.settings = kind->read(*this, f, table, specs);
    config_.sinks.push_back(std::move(sink));
}

// ---- the types' readers (rows in app/kinds.cpp) -----------------------------------------

void read_file_sink(config_parser& p, const config_field& f, const toml::table& table,
                    std::vector<field_spec>& specs, file_sink_config& file) {
    config_reader& r = p.reader();
    specs.push_back({"path", [&](const config_field& v) { r.non_empty_string(v, file.path); }});
    specs.push_back({"format", [&](const config_field& v) {
                         r.choice(v, file.format, parse_file_format, "text, json");
                     }});
    specs.push_back({"fsync", [&](const config_field& v) { r.boolean(v, file.fsync); }});
    r.read_fields(table, f.path, specs);
}

void read_sqlite_sink(config_parser& p, const config_field& f, const toml::table& table,
                      std::vector<field_spec>& specs, sqlite_sink_config& sqlite) {
    config_reader& r = p.reader();
    specs.push_back({"path", [&](const config_field& v) { r.non_empty_string(v, sqlite.path); }});
    specs.push_back({"table", [&](const config_field& v) {
                         std::string name;
                         if (!r.string(v, name)) {
                             return;
                         }
                         if (!valid_table_name(name)) {
                             r.problem(v.value.source(), v.path,
                                       fmt::format("invalid table name '{}' (expected "
                                                   "[A-Za-z_][A-Za-z0-9_]*)",
                                                   name));
                             return;
                         }
                         sqlite.table = name;
                     }});
    specs.push_back({"fts", [&](const config_field& v) { r.boolean(v, sqlite.fts); }});
    specs.push_back({"busy_timeout", [&](const config_field& v) {
                         std::chrono::nanoseconds wait{};
                         if (!r.duration(v, wait)) {
                             return;
                         }
                         // sqlite3_busy_timeout takes an int of milliseconds.
                         const auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait);
                         if (ms.count() > std::numeric_limits<int>::max()) {
                             r.problem(v.value.source(), v.path, "is too long");
                             return;
                         }
                         sqlite.busy_timeout = ms;
                     }});
    r.read_fields(table, f.path, specs);
}

void read_zmq_sink(config_parser& p, const config_field& f, const toml::table& table,
                   std::vector<field_spec>& specs, zmq_sink_config& zmq) {
    config_reader& r = p.reader();
    specs.push_back({"endpoints", [&](const config_field& v) {
                         const toml::array* array = v.value.as_array();
                         if (array == nullptr) {
                             r.problem(v.value.source(), v.path,
                                       fmt::format("expected an array of endpoints, got {}",
                                                   type_name(v.value.type())));
                             return;
                         }
                         if (array->empty()) {
                             r.problem(v.value.source(), v.path, "must name at least one endpoint");
                             return;
                         }
                         std::vector<std::string> endpoints;
                         bool ok = true;
                         for (const toml::node& element : *array) {
                             // Each element is read as a field of its own, for its position.
                             const config_field e{v.key, element, v.path};
                             std::string endpoint;
                             if (!p.read_endpoint(e, endpoint)) {
                                 ok = false;
                                 continue;
                             }
                             if (std::find(endpoints.begin(), endpoints.end(), endpoint) !=
                                 endpoints.end()) {
                                 r.problem(element.source(), v.path,
                                           fmt::format("endpoint '{}' is listed twice", endpoint));
                                 ok = false;
                                 continue;
                             }
                             endpoints.push_back(std::move(endpoint));
                         }
                         if (ok) {
                             zmq.endpoints = std::move(endpoints);
                         }
                     }});
    specs.push_back({"socket", [&](const config_field& v) {
                         r.choice(v, zmq.socket, parse_zmq_sink_socket, "push, pub");
                     }});
    specs.push_back({"format", [&](const config_field& v) {
                         r.choice(v, zmq.format, parse_zmq_sink_format, "text, json");
                     }});
    specs.push_back({"framing", [&](const config_field& v) {
                         r.choice(v, zmq.framing, parse_message_framing, "message, newline");
                     }});
    specs.push_back(
        {"sndhwm", [&](const config_field& v) { r.non_negative_integer(v, zmq.sndhwm); }});
    r.read_fields(table, f.path, specs);
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
            // Zero: write as soon as the sink has read everything queued.
            {"linger", [&](const config_field& v) { reader_.duration(v, batch.linger); }},
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

}  // namespace sluice
