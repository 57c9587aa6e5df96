// config_reader: typed reads from a parsed TOML document that record a config_problem for
// every missing, mistyped, malformed or unknown value and carry on, so one run of
// `sluice validate` reports everything. Knows TOML and units, not sluice's schema
// (config_parser.h). One reader per parse; not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "app/config.h"

namespace sluice {

// One key-value pair being read, with its dotted path for messages.
struct config_field {
    const toml::key& key;
    const toml::node& value;
    std::string path;  // "sinks.db.batch.timeout"
};

// What read_fields does with one allowed key; an empty `read` accepts the key and ignores it
// (a key the caller has already read, such as `type`).
struct field_spec {
    std::string_view name;
    std::function<void(const config_field&)> read;
};

class config_reader {
public:
    explicit config_reader(std::string file) : file_(std::move(file)) {}

    // Records a problem at `where` (line 0 when the region is unknown).
    void problem(const toml::source_region& where, std::string key, std::string message);
    // Records a problem that has no place in the file (something missing at the top level).
    void problem(std::string key, std::string message);

    // Calls the matching spec's `read` for every entry of `table`, in file order; an entry no
    // spec names is an "unknown key" problem.
    void read_fields(const toml::table& table, const std::string& path,
                     const std::vector<field_spec>& specs);

    // Each typed read stores into `out` and returns true, or records why not and returns
    // false, leaving `out` (the default) untouched.
    bool string(const config_field& f, std::string& out);
    // A string that must not be empty (paths, directories).
    bool non_empty_string(const config_field& f, std::string& out);
    bool boolean(const config_field& f, bool& out);
    // An integer greater than 0.
    bool positive_integer(const config_field& f, uint64_t& out);
    // An integer of 0 or more (0 often means "no limit").
    bool non_negative_integer(const config_field& f, uint64_t& out);
    // The same into an int (a socket option), refusing what an int cannot hold.
    bool non_negative_integer(const config_field& f, int& out);
    // An integer or float.
    bool number(const config_field& f, double& out);
    // "64MiB" or a plain integer of bytes, greater than 0.
    bool size(const config_field& f, uint64_t& out);
    // "200ms", "1s", "5m"; zero is allowed unless `positive`.
    bool duration(const config_field& f, std::chrono::nanoseconds& out, bool positive = false);
    // A table (a [section] or an inline table); nullptr after recording a problem.
    const toml::table* table(const config_field& f);

    // A string one of whose values `parse` maps to an enumerator; `expected` lists them for
    // the message ("newline, octet_counting").
    template <typename T, typename Parse>
    bool choice(const config_field& f, T& out, Parse parse, std::string_view expected) {
        std::string text;
        if (!string(f, text)) {
            return false;
        }
        std::optional<T> parsed = parse(text);
        if (!parsed) {
            unknown_value(f, text, expected);
            return false;
        }
        out = *parsed;
        return true;
    }

    void unknown_value(const config_field& f, std::string_view value, std::string_view expected);

    const std::vector<config_problem>& problems() const { return problems_; }
    std::vector<config_problem> take_problems() { return std::move(problems_); }

    // Every key read_fields was offered, whether the table set it or not, by the dotted path
    // of its table ("" for the top level, "sinks.db.batch"): the schema as far as this parse
    // walked it. tests/test_reference.cpp holds docs/REFERENCE.md to it.
    const std::map<std::string, std::set<std::string>>& offered_keys() const {
        return offered_keys_;
    }

private:
    void wrong_type(const config_field& f, std::string_view expected);

    std::string file_;
    std::vector<config_problem> problems_;
    std::map<std::string, std::set<std::string>> offered_keys_;
};

// The entries of `table` in the order they appear in the file (toml::table sorts by key).
std::vector<std::pair<const toml::key*, const toml::node*>> entries_in_file_order(
    const toml::table& table);

// "string", "integer", "float", ...: what a node holds, for messages.
std::string_view type_name(toml::node_type type);

// Where a table starts; a table only implied by a dotted header has no region of its own, so
// the key that named it stands in.
const toml::source_region& table_region(const toml::key& key, const toml::table& table);

}  // namespace sluice
