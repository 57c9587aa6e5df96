// Reading [sources.NAME] tables: the keys every source shares, then the type's own through its
// row in app/kinds.cpp; the readers of the network and generator sources.
#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "app/config_parser.h"
#include "app/kinds.h"
#include "ingest/codecs/codec.h"
#include "ingest/framing.h"
#include "ingest/generator_source.h"
#include "ingest/tcp_source.h"
#include "ingest/udp_source.h"
#include "ingest/zmq_source.h"

namespace sluice {

namespace {

constexpr std::string_view codecs = "text, json, syslog";

std::optional<udp_framing> parse_udp_framing(std::string_view s) {
    if (s == "datagram") {
        return udp_framing::datagram;
    }
    if (s == "newline") {
        return udp_framing::newline;
    }
    return std::nullopt;
}

std::optional<zmq_source_socket> parse_zmq_source_socket(std::string_view s) {
    if (s == "pull") {
        return zmq_source_socket::pull;
    }
    if (s == "sub") {
        return zmq_source_socket::sub;
    }
    return std::nullopt;
}

// tls = { cert = "...", key = "...", ca = "...", verify_client = false }. The files are read
// when the source is made (sluice run), not here: validate opens no file but the config.
void read_tls(config_reader& r, const config_field& f, std::optional<tls_config>& out) {
    const toml::table* table = r.table(f);
    if (table == nullptr) {
        return;
    }
    tls_config tls;
    bool ok = true;
    std::set<std::string_view> present;
    const toml::source_region* verify_client = nullptr;
    auto file = [&](std::string& into) {
        return [&r, &ok, &present, into = &into](const config_field& v) {
            present.insert(v.key.str());
            ok = read_config_relative_path(r, v, *into) && ok;
        };
    };
    r.read_fields(*table, f.path,
                  {
                      {"cert", file(tls.cert)},
                      {"key", file(tls.key)},
                      {"ca", file(tls.ca)},
                      {"verify_client",
                       [&](const config_field& v) {
                           verify_client = &v.value.source();
                           ok = r.boolean(v, tls.verify_client) && ok;
                       }},
                  });
    auto require = [&](std::string_view key, std::string_view what) {
        if (!present.contains(key)) {
            r.problem(table_region(f.key, *table), fmt::format("{}.{}", f.path, key),
                      fmt::format("is required with tls ({}, a PEM file)", what));
            ok = false;
        }
    };
    require("cert", "the server's certificate");
    require("key", "its private key");
    if (tls.verify_client && !present.contains("ca")) {
        r.problem(*verify_client, f.path + ".verify_client",
                  "needs ca, the PEM file of the CAs that sign client certificates");
        ok = false;
    }
    if (ok) {
        out = std::move(tls);
    }
}

}  // namespace

// A file named in the config (TLS files, credentials): a relative path is relative to the directory of the config file (the path its
// TOML was parsed under; the working directory for a config given as text with a bare name),
// so a config and its certificates can move together.
bool read_config_relative_path(config_reader& r, const config_field& f, std::string& out) {
    std::string written;
    if (!r.non_empty_string(f, written)) {
        return false;
    }
    std::filesystem::path path(written);
    if (path.is_relative() && f.value.source().path) {
        path = std::filesystem::path(*f.value.source().path).parent_path() / path;
    }
    out = path.string();
    return true;
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
    const std::string names = source_kind_names();
    const auto type_name = read_type(f, table, names);
    if (!type_name) {
        return;
    }
    const source_kind* kind = find_source_kind(*type_name);
    if (kind == nullptr) {
        // The other keys depend on the type; checking them against another's would only add
        // noise.
        const auto& where = table.find("type")->second.source();
        reader_.problem(
            where, f.path + ".type",
            fmt::format("unknown source type '{}' (expected one of: {})", *type_name, names));
        return;
    }
    source_config source;
    source.name = std::string(f.key.str());
    source.kind = kind;
    // The keys every source shares, read here once; the type's reader adds its own.
    common_source_keys common;
    std::vector<field_spec> specs{
        {"type", {}},
        {"codec",
         [&](const config_field& v) { reader_.choice(v, common.codec, parse_codec, codecs); }},
    };
    if (kind->takes_max_line_bytes) {
        specs.push_back({"max_line_bytes",
                         [&](const config_field& v) { reader_.size(v, common.max_line_bytes); }});
    }
    source.settings = kind->read(*this, f, table, specs);
    kind->apply_common(source.settings, common);
    config_.sources.push_back(std::move(source));
}

// ---- the types' readers (rows in app/kinds.cpp) -----------------------------------------

void read_tcp_source(config_parser& p, const config_field& f, const toml::table& table,
                     std::vector<field_spec>& specs, tcp_source_config& tcp) {
    config_reader& r = p.reader();
    const toml::source_region* address_region = nullptr;
    bool address_ok = true;
    specs.insert(specs.end(),
                 {
                     {"address",
                      [&](const config_field& v) {
                          address_region = &v.value.source();
                          address_ok = p.read_address(v, tcp.address);
                      }},
                     {"framing",
                      [&](const config_field& v) {
                          r.choice(v, tcp.framing_kind, parse_framing, "newline, octet_counting");
                      }},
                     {"max_connections",
                      [&](const config_field& v) { r.positive_integer(v, tcp.max_connections); }},
                     {"idle_timeout",
                      [&](const config_field& v) { r.duration(v, tcp.idle_timeout); }},
                     {"tls", [&](const config_field& v) { read_tls(r, v, tcp.tls); }},
                 });
    r.read_fields(table, f.path, specs);
    if (address_ok) {
        p.claim_address("tcp", tcp.address,
                        address_region != nullptr ? *address_region : table_region(f.key, table),
                        f.path + ".address");
    }
}

void read_udp_source(config_parser& p, const config_field& f, const toml::table& table,
                     std::vector<field_spec>& specs, udp_source_config& udp) {
    config_reader& r = p.reader();
    const toml::source_region* address_region = nullptr;
    bool address_ok = true;
    specs.insert(specs.end(),
                 {
                     {"address",
                      [&](const config_field& v) {
                          address_region = &v.value.source();
                          address_ok = p.read_address(v, udp.address);
                      }},
                     {"framing",
                      [&](const config_field& v) {
                          r.choice(v, udp.framing, parse_udp_framing, "datagram, newline");
                      }},
                     {"receive_buffer_bytes",
                      [&](const config_field& v) { r.size(v, udp.receive_buffer_bytes); }},
                 });
    r.read_fields(table, f.path, specs);
    if (address_ok) {
        // A udp socket may share its port with a tcp one: only another udp source clashes.
        p.claim_address("udp", udp.address,
                        address_region != nullptr ? *address_region : table_region(f.key, table),
                        f.path + ".address");
    }
}

void read_zmq_source(config_parser& p, const config_field& f, const toml::table& table,
                     std::vector<field_spec>& specs, zmq_source_config& zmq) {
    config_reader& r = p.reader();
    const toml::source_region* endpoint_region = nullptr;
    bool endpoint_ok = true;
    std::optional<config_field> subscribe;  // checked against `socket`, which may come later
    specs.insert(
        specs.end(),
        {
            {"endpoint",
             [&](const config_field& v) {
                 endpoint_region = &v.value.source();
                 endpoint_ok = p.read_endpoint(v, zmq.endpoint);
             }},
            {"socket",
             [&](const config_field& v) {
                 r.choice(v, zmq.socket, parse_zmq_source_socket, "pull, sub");
             }},
            {"bind", [&](const config_field& v) { r.boolean(v, zmq.bind); }},
            {"framing",
             [&](const config_field& v) {
                 r.choice(v, zmq.framing, parse_message_framing, "message, newline");
             }},
            {"subscribe",
             [&](const config_field& v) {
                 subscribe.emplace(v);
                 const toml::array* array = v.value.as_array();
                 if (array == nullptr) {
                     r.problem(v.value.source(), v.path,
                               fmt::format("expected an array of topic prefixes, got {}",
                                           type_name(v.value.type())));
                     return;
                 }
                 if (array->empty()) {
                     // A SUB socket without a subscription receives nothing at all.
                     r.problem(v.value.source(), v.path,
                               "must list at least one prefix (\"\" takes every message)");
                     return;
                 }
                 std::vector<std::string> prefixes;
                 bool ok = true;
                 for (const toml::node& element : *array) {
                     const auto* prefix = element.as_string();
                     if (prefix == nullptr) {
                         r.problem(element.source(), v.path,
                                   fmt::format("expected a topic prefix (a string), got {}",
                                               type_name(element.type())));
                         ok = false;
                         continue;
                     }
                     prefixes.push_back(prefix->get());
                 }
                 if (ok) {
                     zmq.subscribe = std::move(prefixes);
                 }
             }},
            {"rcvhwm", [&](const config_field& v) { r.non_negative_integer(v, zmq.rcvhwm); }},
        });
    r.read_fields(table, f.path, specs);
    if (subscribe && zmq.socket != zmq_source_socket::sub) {
        r.problem(subscribe->key.source(), subscribe->path,
                  "is only allowed with socket = \"sub\"");
    }
    if (endpoint_ok && zmq.bind) {
        p.claim_endpoint(zmq.endpoint,
                         endpoint_region != nullptr ? *endpoint_region : table_region(f.key, table),
                         f.path + ".endpoint");
    }
}

void read_generator_source(config_parser& p, const config_field& f, const toml::table& table,
                           std::vector<field_spec>& specs, generator_source_config& generator) {
    config_reader& r = p.reader();
    specs.insert(
        specs.end(),
        {
            // 0: as fast as the queue takes them.
            {"rate", [&](const config_field& v) { r.non_negative_integer(v, generator.rate); }},
            // 0: forever.
            {"count", [&](const config_field& v) { r.non_negative_integer(v, generator.count); }},
            {"format",
             [&](const config_field& v) {
                 r.choice(v, generator.format, parse_generator_format, "syslog, json, text");
             }},
        });
    r.read_fields(table, f.path, specs);
}

}  // namespace sluice
