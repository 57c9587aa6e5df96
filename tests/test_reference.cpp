// docs/REFERENCE.md against the code it describes: every key the config reader offers is a row
// under its table's marker, every metric family /metrics exports is a row of the metrics table
// (with its kind and labels), each the other way round too; the /status example has the shape
// the API writes and the SQLite schema is the one the sink creates. How the markers read is in
// the reference itself, under "Conventions of this document".
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <simdjson.h>
#include <toml++/toml.h>

#include "app/config.h"
#include "app/config_parser.h"
#include "app/kinds.h"
#include "app/config_reader.h"
#include "app/http_api.h"
#include "app/pipeline.h"
#include "sinks/sqlite_sql.h"
#include "temp_dir.h"

namespace {

using key_sets = std::map<std::string, std::set<std::string>>;

std::string read_reference() {
    std::ifstream in(SLUICE_SOURCE_DIR "/docs/REFERENCE.md");
    REQUIRE(in.good());
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::vector<std::string> split(std::string_view text, std::string_view separator) {
    std::vector<std::string> parts;
    for (;;) {
        const size_t at = text.find(separator);
        parts.emplace_back(text.substr(0, at));
        if (at == std::string_view::npos) {
            return parts;
        }
        text.remove_prefix(at + separator.size());
    }
}

std::string trim(std::string_view s) {
    while (!s.empty() && s.front() == ' ') {
        s.remove_prefix(1);
    }
    while (!s.empty() && s.back() == ' ') {
        s.remove_suffix(1);
    }
    return std::string(s);
}

// The cells of a markdown table row "| a | b |" (a `|` inside backticks is not expected).
std::vector<std::string> cells(std::string_view row) {
    row.remove_prefix(1);
    if (!row.empty() && row.back() == '|') {
        row.remove_suffix(1);
    }
    std::vector<std::string> out;
    for (const auto& c : split(row, "|")) {
        out.push_back(trim(c));
    }
    return out;
}

// The names written in backticks in a cell: "`a`, `b`" -> {a, b}.
std::vector<std::string> backticked(std::string_view cell) {
    std::vector<std::string> names;
    for (size_t open = cell.find('`'); open != std::string_view::npos;
         open = cell.find('`', open)) {
        const size_t close = cell.find('`', open + 1);
        if (close == std::string_view::npos) {
            break;
        }
        names.emplace_back(cell.substr(open + 1, close - open - 1));
        open = close + 1;
    }
    return names;
}

// The text of a marker line "<!-- NAME: VALUE -->", or nullopt.
std::optional<std::string> marker(std::string_view line, std::string_view name) {
    const std::string open = fmt::format("<!-- {}:", name);
    if (!line.starts_with(open) || !line.ends_with("-->")) {
        return std::nullopt;
    }
    return trim(line.substr(open.size(), line.size() - open.size() - 3));
}

struct metric_row {
    std::string kind;
    std::set<std::string> labels;
};

// What the reference documents, read from its marked tables. A marker applies to the table
// rows after it up to the next heading; a row documents the one name in backticks in its first
// cell.
struct reference_tables {
    key_sets config_keys;  // by table id: "top", "api", "sources.tcp", "sinks.file.batch"
    std::map<std::string, metric_row> metrics;
    std::string status_json;  // the ```json block after <!-- status-json -->
};

reference_tables parse_reference(const std::string& text) {
    reference_tables doc;
    enum class mode { none, keys, metrics, status } in = mode::none;
    std::vector<std::string> tables;
    bool in_code = false;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("```")) {
            in_code = !in_code;
            if (!in_code && in == mode::status) {
                in = mode::none;
            }
            continue;
        }
        if (in_code) {
            if (in == mode::status) {
                doc.status_json += line + "\n";
            }
            continue;
        }
        if (line.starts_with("#")) {
            in = mode::none;
        } else if (const auto ids = marker(line, "config-keys")) {
            in = mode::keys;
            tables = split(*ids, " ");
            for (const auto& t : tables) {
                doc.config_keys[t];  // a section with no rows is still a section
            }
        } else if (marker(line, "metrics")) {
            in = mode::metrics;
        } else if (marker(line, "status-json")) {
            in = mode::status;
        } else if (line.starts_with("| `") && (in == mode::keys || in == mode::metrics)) {
            const auto row = cells(line);
            const auto names = backticked(row[0]);
            INFO(line);
            REQUIRE(names.size() == 1);  // one key, one metric family per row
            if (in == mode::keys) {
                for (const auto& t : tables) {
                    CHECK(doc.config_keys[t].insert(names[0]).second);
                }
            } else {
                REQUIRE(row.size() >= 3);
                const auto labels = backticked(row[2]);
                CHECK(doc.metrics
                          .emplace(names[0], metric_row{row[1], {labels.begin(), labels.end()}})
                          .second);
            }
        }
    }
    return doc;
}

// The reader's path of a table ("" for the top level) as the reference names it.
std::string table_id(const std::string& path) { return path.empty() ? "top" : path; }

toml::table* table_at(toml::table& root, const std::string& path) {
    toml::table* t = &root;
    if (path.empty()) {
        return t;
    }
    for (const auto& part : split(path, ".")) {
        toml::node* child = t->get(part);
        if (child == nullptr || !child->is_table()) {
            return nullptr;
        }
        t = child->as_table();
    }
    return t;
}

// Every key the config reader offers, by table. A config with one source and one sink of each
// type (each named after its type) shows every type's table; then every offered key that is not
// in the document yet is set to an empty table, so the keys of nested tables (batch = {...})
// are offered too, until a pass offers nothing new. The values are mostly wrong, which the
// reader reports and gets past: only what it offered matters here.
key_sets keys_the_reader_offers() {
    toml::table root;
    toml::table sources;
    for (const auto* kind : sluice::source_kinds()) {
        sources.insert(kind->name, toml::table{{"type", kind->name}});
    }
    toml::table sinks;
    for (const auto* kind : sluice::sink_kinds()) {
        sinks.insert(kind->name, toml::table{{"type", kind->name}});
    }
    root.insert("sources", std::move(sources));
    root.insert("sinks", std::move(sinks));
    for (int pass = 0;; ++pass) {
        REQUIRE(pass < 10);
        sluice::config_reader reader{"reference.toml"};
        sluice::config_parser(reader).parse(root);
        for (const auto& p : reader.problems()) {
            // Every type the parser lists must be one it reads.
            if (p.message.find("type '") != std::string::npos) {
                FAIL_CHECK(p.to_string());
            }
        }
        bool grew = false;
        for (const auto& [path, keys] : reader.offered_keys()) {
            toml::table* table = table_at(root, path);
            REQUIRE(table != nullptr);
            for (const auto& key : keys) {
                if (key != "type" && !table->contains(key)) {
                    table->insert(key, toml::table{});
                    grew = true;
                }
            }
        }
        if (!grew) {
            key_sets by_id;
            for (const auto& [path, keys] : reader.offered_keys()) {
                by_id[table_id(path)] = keys;
            }
            return by_id;
        }
    }
}

// A valid config with one source and one sink of every type, nothing bound or connected over
// the network: ports 0 and inproc endpoints (the pipeline binds only when it runs anyway).
std::string every_type_config(const std::filesystem::path& data_dir) {
    std::string text =
        fmt::format("data_dir = \"{}\"\n[api]\naddress = \"127.0.0.1:0\"\n", data_dir.string());
    for (const auto* kind : sluice::source_kinds()) {
        const std::string_view type = kind->name;
        text += fmt::format("[sources.{0}]\ntype = \"{0}\"\n", type);
        if (type == "tcp" || type == "udp") {
            text += "address = \"127.0.0.1:0\"\n";
        } else if (type == "zmq") {
            text += "endpoint = \"inproc://sluice-reference-in\"\n";
        } else if (type == "file") {
            text += fmt::format("include = [\"{}/none/*.log\"]\n", data_dir.string());
        }
    }
    for (const auto* k : sluice::sink_kinds()) {
        const std::string_view type = k->name;
        text += fmt::format("[sinks.{0}]\ntype = \"{0}\"\n", type);
        if (type == "zmq") {
            text += "endpoints = [\"inproc://sluice-reference-out\"]\n";
        }
    }
    return text;
}

// The families of a Prometheus text exposition: kind from # TYPE, label names from the samples
// (a histogram's `le` and its _bucket/_sum/_count suffixes belong to the histogram).
std::map<std::string, metric_row> exported_families(const std::string& text) {
    std::map<std::string, metric_row> families;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("# TYPE ")) {
            const auto parts = split(line.substr(7), " ");
            REQUIRE(parts.size() == 2);
            families[parts[0]].kind = parts[1];
            continue;
        }
        if (line.empty() || line.starts_with("#")) {
            continue;
        }
        const size_t name_end = line.find_first_of("{ ");
        std::string name = line.substr(0, name_end);
        if (!families.contains(name)) {
            for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
                if (name.ends_with(suffix)) {
                    name.resize(name.size() - suffix.size());
                    break;
                }
            }
        }
        INFO(line);
        REQUIRE(families.contains(name));  // a sample after its family's # TYPE
        if (line[name_end] == '{') {
            const size_t close = line.find('}', name_end);
            for (const auto& pair : split(line.substr(name_end + 1, close - name_end - 1), ",")) {
                const std::string label = pair.substr(0, pair.find('='));
                if (!(label == "le" && families[name].kind == "histogram")) {
                    families[name].labels.insert(label);
                }
            }
        }
    }
    return families;
}

// The shape of a JSON value as a set of "path:type" lines; an array's elements share "[]".
void shape_of(simdjson::dom::element e, const std::string& path, std::set<std::string>& out) {
    switch (e.type()) {
        case simdjson::dom::element_type::OBJECT: {
            out.insert(path + ":object");
            simdjson::dom::object object;
            REQUIRE(e.get_object().get(object) == simdjson::SUCCESS);
            for (const simdjson::dom::key_value_pair field : object) {
                shape_of(field.value, path + "." + std::string(field.key), out);
            }
            break;
        }
        case simdjson::dom::element_type::ARRAY: {
            out.insert(path + ":array");
            simdjson::dom::array array;
            REQUIRE(e.get_array().get(array) == simdjson::SUCCESS);
            for (const simdjson::dom::element element : array) {
                shape_of(element, path + "[]", out);
            }
            break;
        }
        case simdjson::dom::element_type::INT64:
        case simdjson::dom::element_type::UINT64:
        case simdjson::dom::element_type::DOUBLE:
            out.insert(path + ":number");
            break;
        case simdjson::dom::element_type::STRING:
            out.insert(path + ":string");
            break;
        case simdjson::dom::element_type::BOOL:
            out.insert(path + ":boolean");
            break;
        case simdjson::dom::element_type::NULL_VALUE:
            out.insert(path + ":null");
            break;
    }
}

std::set<std::string> json_shape(const std::string& json) {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    INFO(json);
    REQUIRE(parser.parse(json).get(root) == simdjson::SUCCESS);
    std::set<std::string> shape;
    shape_of(root, "", shape);
    return shape;
}

std::string missing_from(const std::set<std::string>& from, const std::set<std::string>& what) {
    std::string names;
    for (const auto& n : what) {
        if (!from.contains(n)) {
            names += names.empty() ? "" : ", ";
            names += n;
        }
    }
    return names;
}

}  // namespace

TEST_CASE("every config key the reader accepts is in the reference, and only those",
          "[reference]") {
    const key_sets offered = keys_the_reader_offers();
    const reference_tables doc = parse_reference(read_reference());
    // Not a fixed list: whatever the parser walks. These few only show the walk went deep.
    REQUIRE(offered.contains("top"));
    REQUIRE(offered.contains("sinks.file.batch"));
    REQUIRE(offered.at("sources.tcp").contains("address"));

    for (const auto& [table, keys] : offered) {
        if (!doc.config_keys.contains(table)) {
            FAIL_CHECK("config table " << table << " is not in docs/REFERENCE.md: it needs a "
                                       << "<!-- config-keys: " << table << " --> marker over a "
                                       << "table with a row per key: " << missing_from({}, keys));
            continue;
        }
        const std::string undocumented = missing_from(doc.config_keys.at(table), keys);
        INFO("the config reader accepts these keys in " << table << ", which the table under "
                                                        << "<!-- config-keys: " << table
                                                        << " --> does not list: " << undocumented);
        CHECK(undocumented.empty());
    }
    for (const auto& [table, keys] : doc.config_keys) {
        if (!offered.contains(table)) {
            FAIL_CHECK("docs/REFERENCE.md documents config table " << table
                                                                   << ", which the reader has not");
            continue;
        }
        const std::string stale = missing_from(offered.at(table), keys);
        INFO("docs/REFERENCE.md lists these keys under <!-- config-keys: "
             << table << " -->, which the config reader does not accept there: " << stale);
        CHECK(stale.empty());
    }
}

TEST_CASE("every metric family /metrics exports is in the reference, and only those",
          "[reference]") {
    sluice::test::temp_dir dir("sluice-reference");
    sluice::pipeline p(sluice::parse_config(every_type_config(dir.path()), "reference.toml"));
    const auto exported = exported_families(sluice::render_prometheus(p));
    const reference_tables doc = parse_reference(read_reference());
    REQUIRE(exported.size() > 10);

    for (const auto& [name, family] : exported) {
        std::string labels;
        for (const auto& l : family.labels) {
            labels += fmt::format("{}`{}`", labels.empty() ? "" : ", ", l);
        }
        INFO("/metrics exports " << name << "; the metrics table of docs/REFERENCE.md needs the "
                                 << "row | `" << name << "` | " << family.kind << " | " << labels
                                 << " | meaning |");
        if (!doc.metrics.contains(name)) {
            FAIL_CHECK("no row for " << name);
            continue;
        }
        CHECK(doc.metrics.at(name).kind == family.kind);
        CHECK(doc.metrics.at(name).labels == family.labels);
    }
    for (const auto& [name, row] : doc.metrics) {
        INFO("the metrics table of docs/REFERENCE.md has " << name
                                                           << ", which /metrics does not export");
        CHECK(exported.contains(name));
    }
}

TEST_CASE("the reference's /status example has the shape the API writes", "[reference]") {
    sluice::test::temp_dir dir("sluice-reference");
    sluice::pipeline p(sluice::parse_config(every_type_config(dir.path()), "reference.toml"));
    const reference_tables doc = parse_reference(read_reference());
    REQUIRE_FALSE(doc.status_json.empty());
    const auto written = json_shape(sluice::render_status_json(p));
    const auto documented = json_shape(doc.status_json);
    const std::string undocumented = missing_from(documented, written);
    INFO("written by /status but not in the reference's example: " << undocumented);
    CHECK(undocumented.empty());
    const std::string stale = missing_from(written, documented);
    INFO("in the reference's example but not written by /status: " << stale);
    CHECK(stale.empty());
}

TEST_CASE("the reference shows the SQLite table the sink creates", "[reference]") {
    std::string sql(sluice::sqlite_sql::create_table);
    const std::string placeholder = "{table}";
    sql.replace(sql.find(placeholder), placeholder.size(), "logs");
    const std::string doc = read_reference();
    INFO("docs/REFERENCE.md should show, verbatim:\n" << sql);
    CHECK(doc.find(sql) != std::string::npos);
}
