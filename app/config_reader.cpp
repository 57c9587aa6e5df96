#include "app/config_reader.h"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "common/units.h"

namespace sluice {

std::string_view type_name(toml::node_type type) {
    switch (type) {
        case toml::node_type::none:
            return "nothing";
        case toml::node_type::table:
            return "table";
        case toml::node_type::array:
            return "array";
        case toml::node_type::string:
            return "string";
        case toml::node_type::integer:
            return "integer";
        case toml::node_type::floating_point:
            return "float";
        case toml::node_type::boolean:
            return "boolean";
        case toml::node_type::date:
            return "date";
        case toml::node_type::time:
            return "time";
        case toml::node_type::date_time:
            return "date-time";
    }
    return "?";
}

std::vector<std::pair<const toml::key*, const toml::node*>> entries_in_file_order(
    const toml::table& table) {
    std::vector<std::pair<const toml::key*, const toml::node*>> entries;
    for (const auto& [key, node] : table) {
        entries.emplace_back(&key, &node);
    }
    // Users expect sources and sinks (and their messages) in the order they wrote them.
    std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
        const auto& pa = a.first->source().begin;
        const auto& pb = b.first->source().begin;
        return pa.line != pb.line ? pa.line < pb.line : pa.column < pb.column;
    });
    return entries;
}

const toml::source_region& table_region(const toml::key& key, const toml::table& table) {
    return table.source().begin.line != 0 ? table.source() : key.source();
}

void config_reader::problem(const toml::source_region& where, std::string key,
                            std::string message) {
    problems_.push_back(config_problem{file_, static_cast<int64_t>(where.begin.line),
                                       static_cast<int64_t>(where.begin.column), std::move(key),
                                       std::move(message)});
}

void config_reader::problem(std::string key, std::string message) {
    problems_.push_back(config_problem{file_, 0, 0, std::move(key), std::move(message)});
}

void config_reader::read_fields(const toml::table& table, const std::string& path,
                                const std::vector<field_spec>& specs) {
    auto& offered = offered_keys_[path];
    for (const auto& s : specs) {
        offered.emplace(s.name);
    }
    for (const auto& [key, node] : entries_in_file_order(table)) {
        const std::string name(key->str());
        const std::string child = path.empty() ? name : path + "." + name;
        auto spec = std::find_if(specs.begin(), specs.end(),
                                 [&](const field_spec& s) { return s.name == name; });
        if (spec == specs.end()) {
            std::string known;
            for (const auto& s : specs) {
                known += known.empty() ? "" : ", ";
                known += s.name;
            }
            problem(key->source(), child,
                    fmt::format("unknown key '{}' (expected one of: {})", key->str(), known));
            continue;
        }
        if (spec->read) {
            spec->read(config_field{*key, *node, child});
        }
    }
}

void config_reader::wrong_type(const config_field& f, std::string_view expected) {
    problem(f.value.source(), f.path,
            fmt::format("expected {}, got {}", expected, type_name(f.value.type())));
}

void config_reader::unknown_value(const config_field& f, std::string_view value,
                                  std::string_view expected) {
    problem(f.value.source(), f.path,
            fmt::format("unknown value '{}' (expected one of: {})", value, expected));
}

bool config_reader::string(const config_field& f, std::string& out) {
    const auto* s = f.value.as_string();
    if (s == nullptr) {
        wrong_type(f, "a string");
        return false;
    }
    out = s->get();
    return true;
}

bool config_reader::non_empty_string(const config_field& f, std::string& out) {
    std::string text;
    if (!string(f, text)) {
        return false;
    }
    if (text.empty()) {
        problem(f.value.source(), f.path, "must not be empty");
        return false;
    }
    out = std::move(text);
    return true;
}

bool config_reader::boolean(const config_field& f, bool& out) {
    const auto* b = f.value.as_boolean();
    if (b == nullptr) {
        wrong_type(f, "a boolean");
        return false;
    }
    out = b->get();
    return true;
}

bool config_reader::positive_integer(const config_field& f, uint64_t& out) {
    const auto* i = f.value.as_integer();
    if (i == nullptr) {
        wrong_type(f, "an integer");
        return false;
    }
    if (i->get() <= 0) {
        problem(f.value.source(), f.path, fmt::format("must be greater than 0, got {}", i->get()));
        return false;
    }
    out = static_cast<uint64_t>(i->get());
    return true;
}

bool config_reader::non_negative_integer(const config_field& f, uint64_t& out) {
    const auto* i = f.value.as_integer();
    if (i == nullptr) {
        wrong_type(f, "an integer");
        return false;
    }
    if (i->get() < 0) {
        problem(f.value.source(), f.path, fmt::format("must be 0 or more, got {}", i->get()));
        return false;
    }
    out = static_cast<uint64_t>(i->get());
    return true;
}

bool config_reader::non_negative_integer(const config_field& f, int& out) {
    uint64_t value = 0;
    if (!non_negative_integer(f, value)) {
        return false;
    }
    if (value > static_cast<uint64_t>(std::numeric_limits<int>::max())) {
        problem(f.value.source(), f.path,
                fmt::format("must be at most {}, got {}", std::numeric_limits<int>::max(), value));
        return false;
    }
    out = static_cast<int>(value);
    return true;
}

bool config_reader::number(const config_field& f, double& out) {
    if (const auto* d = f.value.as_floating_point()) {
        out = d->get();
        return true;
    }
    if (const auto* i = f.value.as_integer()) {
        out = static_cast<double>(i->get());
        return true;
    }
    wrong_type(f, "a number");
    return false;
}

bool config_reader::size(const config_field& f, uint64_t& out) {
    uint64_t bytes = 0;
    if (const auto* i = f.value.as_integer()) {
        if (i->get() <= 0) {
            problem(f.value.source(), f.path,
                    fmt::format("must be greater than 0, got {}", i->get()));
            return false;
        }
        bytes = static_cast<uint64_t>(i->get());
    } else if (const auto* s = f.value.as_string()) {
        const auto parsed = parse_size(s->get());
        if (!parsed) {
            problem(f.value.source(), f.path,
                    fmt::format("invalid size '{}' (expected e.g. \"64MiB\", \"4KiB\" or a "
                                "number of bytes)",
                                s->get()));
            return false;
        }
        if (*parsed == 0) {
            problem(f.value.source(), f.path, "must be greater than 0");
            return false;
        }
        bytes = *parsed;
    } else {
        wrong_type(f, "a size (\"64MiB\" or a number of bytes)");
        return false;
    }
    out = bytes;
    return true;
}

bool config_reader::duration(const config_field& f, std::chrono::nanoseconds& out, bool positive) {
    const auto* s = f.value.as_string();
    if (s == nullptr) {
        // A bare number would leave its unit to guesswork.
        wrong_type(f, "a duration string such as \"1s\"");
        return false;
    }
    const auto parsed = parse_duration(s->get());
    if (!parsed) {
        problem(f.value.source(), f.path,
                fmt::format("invalid duration '{}' (expected e.g. \"200ms\", \"1s\", \"5m\")",
                            s->get()));
        return false;
    }
    if (positive && parsed->count() <= 0) {
        problem(f.value.source(), f.path, "must be greater than 0");
        return false;
    }
    out = *parsed;
    return true;
}

const toml::table* config_reader::table(const config_field& f) {
    const auto* t = f.value.as_table();
    if (t == nullptr) {
        wrong_type(f, "a table");
    }
    return t;
}

}  // namespace sluice
