// Reading a [sources.NAME] table with type = "file": globs, where to start, how to watch,
// rotation and flush times, and multiline (its pattern compiled here, so a bad one is a
// config error with its line, not a failure at start).
#include <string>
#include <vector>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "app/config_parser.h"
#include "ingest/tail/multiline.h"
#include "ingest/tail/tail_source.h"

namespace sluice {

namespace {

std::optional<read_from> parse_read_from(std::string_view s) {
    if (s == "beginning") {
        return read_from::beginning;
    }
    if (s == "end") {
        return read_from::end;
    }
    return std::nullopt;
}

std::optional<watch_mode> parse_watch_mode(std::string_view s) {
    if (s == "inotify") {
        return watch_mode::inotify;
    }
    if (s == "poll") {
        return watch_mode::poll;
    }
    return std::nullopt;
}

// An array of glob patterns; `required`: at least one.
bool read_patterns(config_reader& r, const config_field& f, std::vector<std::string>& out,
                   bool required) {
    const toml::array* array = f.value.as_array();
    if (array == nullptr) {
        r.problem(f.value.source(), f.path,
                  fmt::format("expected an array of glob patterns, got {}",
                              type_name(f.value.type())));
        return false;
    }
    if (required && array->empty()) {
        r.problem(f.value.source(), f.path, "must name at least one pattern");
        return false;
    }
    std::vector<std::string> patterns;
    for (const toml::node& element : *array) {
        const auto* pattern = element.as_string();
        if (pattern == nullptr || pattern->get().empty()) {
            r.problem(element.source(), f.path,
                      fmt::format("expected a glob pattern (a non-empty string), got {}",
                                  pattern == nullptr ? type_name(element.type()) : "\"\""));
            return false;
        }
        patterns.push_back(pattern->get());
    }
    out = std::move(patterns);
    return true;
}

void read_multiline(config_reader& r, const config_field& f, multiline_config& out,
                    bool& has_start) {
    const toml::table* table = r.table(f);
    if (table == nullptr) {
        return;
    }
    r.read_fields(
        *table, f.path,
        {
            {"start",
             [&](const config_field& v) {
                 std::string pattern;
                 if (!r.non_empty_string(v, pattern)) {
                     return;
                 }
                 const std::string why = multiline_pattern_error(pattern);
                 if (!why.empty()) {
                     r.problem(v.value.source(), v.path,
                               fmt::format("invalid RE2 pattern '{}': {}", pattern, why));
                     return;
                 }
                 out.start = pattern;
                 has_start = true;
             }},
            {"max_lines", [&](const config_field& v) { r.positive_integer(v, out.max_lines); }},
            {"timeout", [&](const config_field& v) { r.duration(v, out.timeout, true); }},
        });
}

}  // namespace

void read_tail_source(config_parser& p, const config_field& f, const toml::table& table,
                      std::vector<field_spec>& specs, tail_source_config& tail) {
    config_reader& r = p.reader();
    bool has_include = false;
    std::optional<config_field> multiline;
    multiline_config ml;
    bool has_start = false;
    specs.insert(
        specs.end(),
        {
            {"include",
             [&](const config_field& v) { has_include = read_patterns(r, v, tail.include, true); }},
            {"exclude", [&](const config_field& v) { read_patterns(r, v, tail.exclude, false); }},
            {"read_from",
             [&](const config_field& v) {
                 r.choice(v, tail.start_at, parse_read_from, "beginning, end");
             }},
            {"watch",
             [&](const config_field& v) {
                 r.choice(v, tail.watch, parse_watch_mode, "inotify, poll");
             }},
            // Zero would rescan without pause.
            {"poll_interval",
             [&](const config_field& v) { r.duration(v, tail.poll_interval, true); }},
            {"rotate_wait", [&](const config_field& v) { r.duration(v, tail.rotate_wait); }},
            {"line_flush", [&](const config_field& v) { r.duration(v, tail.line_flush, true); }},
            {"multiline",
             [&](const config_field& v) {
                 multiline.emplace(v);
                 read_multiline(r, v, ml, has_start);
             }},
        });
    r.read_fields(table, f.path, specs);
    if (!has_include && table.find("include") == table.end()) {
        r.problem(table_region(f.key, table), f.path + ".include",
                  "missing key 'include' (the glob patterns of the files to tail)");
    }
    if (multiline) {
        if (has_start) {
            tail.multiline = ml;
        } else if (multiline->value.is_table() &&
                   multiline->value.as_table()->find("start") == multiline->value.as_table()->end()) {
            r.problem(multiline->value.source(), multiline->path + ".start",
                      "missing key 'start' (the RE2 pattern of an event's first line)");
        }
    }
}

}  // namespace sluice
