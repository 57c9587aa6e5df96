// Reading [sinks.NAME] tables: the common inputs and batch keys, then the type's own.
#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "app/config_parser.h"

namespace sluice {

namespace {

// The queue tracks which sinks still hold a batch in one 64-bit mask.
constexpr size_t max_sinks = 64;

std::optional<sink_type> parse_sink_type(std::string_view s) {
    if (s == "file") {
        return sink_type::file;
    }
    if (s == "sqlite") {
        return sink_type::sqlite;
    }
    if (s == "zmq") {
        return sink_type::zmq;
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
    const auto type_name = read_type(f, table, sink_types);
    if (!type_name) {
        return;
    }
    const auto type = parse_sink_type(*type_name);
    if (!type) {
        const auto& where = table.find("type")->second.source();
        reader_.problem(
            where, f.path + ".type",
            fmt::format("unknown sink type '{}' (expected one of: {})", *type_name, sink_types));
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
    switch (*type) {
        case sink_type::file:
            add_file_specs(specs, sink.file);
            break;
        case sink_type::sqlite:
            add_sqlite_specs(specs, sink.sqlite);
            break;
        case sink_type::zmq:
            add_zmq_specs(specs, sink.zmq);
            break;
    }
    reader_.read_fields(table, f.path, specs);
    config_.sinks.push_back(std::move(sink));
}

void config_parser::add_file_specs(std::vector<field_spec>& specs, file_sink_config& file) {
    specs.push_back(
        {"path", [&](const config_field& v) { reader_.non_empty_string(v, file.path); }});
    specs.push_back({"format", [&](const config_field& v) {
                         reader_.choice(v, file.format, parse_file_format, "text, json");
                     }});
    specs.push_back({"fsync", [&](const config_field& v) { reader_.boolean(v, file.fsync); }});
}

void config_parser::add_sqlite_specs(std::vector<field_spec>& specs, sqlite_sink_config& sqlite) {
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

void config_parser::add_zmq_specs(std::vector<field_spec>& specs, zmq_sink_config& zmq) {
    specs.push_back(
        {"endpoints", [&](const config_field& v) {
             const toml::array* array = v.value.as_array();
             if (array == nullptr) {
                 reader_.problem(v.value.source(), v.path,
                                 fmt::format("expected an array of endpoints, got {}",
                                             type_name(v.value.type())));
                 return;
             }
             if (array->empty()) {
                 reader_.problem(v.value.source(), v.path, "must name at least one endpoint");
                 return;
             }
             std::vector<std::string> endpoints;
             bool ok = true;
             for (const toml::node& element : *array) {
                 // Each element is read as a field of its own, for its position.
                 const config_field e{v.key, element, v.path};
                 std::string endpoint;
                 if (!read_endpoint(e, endpoint)) {
                     ok = false;
                     continue;
                 }
                 if (std::find(endpoints.begin(), endpoints.end(), endpoint) != endpoints.end()) {
                     reader_.problem(element.source(), v.path,
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
                         reader_.choice(v, zmq.socket, parse_zmq_sink_socket, "push, pub");
                     }});
    specs.push_back({"format", [&](const config_field& v) {
                         reader_.choice(v, zmq.format, parse_zmq_sink_format, "text, json");
                     }});
    specs.push_back({"framing", [&](const config_field& v) {
                         reader_.choice(v, zmq.framing, parse_zmq_framing, "message, newline");
                     }});
    specs.push_back(
        {"sndhwm", [&](const config_field& v) { reader_.non_negative_integer(v, zmq.sndhwm); }});
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

}  // namespace sluice
