// kinds: the table of source and sink types. A row names a type and knows how to read its
// keys (config) and how to make it (pipeline); the parser, the pipeline, `sluice --help` and
// the reference test all read the table, so adding a type is its own files plus one row in
// app/kinds.cpp. Rows are built with source_row / sink_row from a reader and a factory.
// Immutable after static initialization; any thread.
#pragma once

#include <any>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <asio/io_context.hpp>
#include <toml++/toml.h>

#include "app/config.h"
#include "app/config_reader.h"
#include "common/lazy_zmq_context.h"
#include "ingest/codecs/codec.h"
#include "ingest/source.h"
#include "sinks/sink.h"

namespace sluice {

class config_parser;

// What a source factory gets besides its settings.
struct source_context {
    const source_config& config;
    source_id id;
    asio::io_context& io;                         // the home loop
    const std::vector<asio::io_context*>& loops;  // every io thread's loop, the home one first
    bounded_queue& queue;
    lazy_zmq_context& zmq;
    const std::filesystem::path& data_dir;
};

// What a sink factory gets besides its settings.
struct sink_context {
    const sink_config& config;
    lazy_zmq_context& zmq;
    const std::filesystem::path& data_dir;
    const std::vector<std::string>& source_names;
};

// The keys every source reads in one place (the parser), copied into its settings.
struct common_source_keys {
    codec_kind codec = codec_kind::text;
    uint64_t max_line_bytes = 65536;
};

struct source_kind {
    std::string_view name;
    std::string_view summary;  // one line, for --help and docs
    bool takes_max_line_bytes = true;
    // Reads the type's own keys: appends their specs to `specs` (which hold the common
    // ones), calls read_fields once, checks what depends on several keys, and returns the
    // settings. Problems go to the parser's reader.
    std::function<std::any(config_parser&, const config_field&, const toml::table&,
                           std::vector<field_spec>&)>
        read;
    std::function<void(std::any&, const common_source_keys&)> apply_common;
    std::function<std::any()> defaults;
    std::function<std::unique_ptr<source>(const source_context&)> make;
};

struct sink_kind {
    std::string_view name;
    std::string_view summary;
    batch_config default_batch;  // what a sink gets for the batch keys it leaves out
    std::function<std::any(config_parser&, const config_field&, const toml::table&,
                           std::vector<field_spec>&)>
        read;
    std::function<std::any()> defaults;
    std::function<std::unique_ptr<sink>(const sink_context&)> make;
};

// The tables, in the order messages list them.
std::span<const source_kind* const> source_kinds();
std::span<const sink_kind* const> sink_kinds();
const source_kind* find_source_kind(std::string_view name);
const sink_kind* find_sink_kind(std::string_view name);
// "tcp, udp, ..." for messages.
std::string source_kind_names();
std::string sink_kind_names();

// A row from a typed reader and factory. `Settings` is the component's config struct (next
// to the component); its `codec` and, if it has one, `max_line_bytes` come from the keys
// every source shares.
template <typename Settings>
source_kind source_row(
    std::string_view name, std::string_view summary,
    std::function<void(config_parser&, const config_field&, const toml::table&,
                       std::vector<field_spec>&, Settings&)>
        read,
    std::function<std::unique_ptr<source>(const source_context&, const Settings&)> make) {
    source_kind k;
    k.name = name;
    k.summary = summary;
    k.takes_max_line_bytes = requires(Settings s) { s.max_line_bytes; };
    k.read = [read](config_parser& p, const config_field& f, const toml::table& t,
                    std::vector<field_spec>& specs) {
        Settings s;
        read(p, f, t, specs, s);
        return std::any(std::move(s));
    };
    k.apply_common = [](std::any& settings, const common_source_keys& common) {
        auto& s = std::any_cast<Settings&>(settings);
        s.codec = common.codec;
        if constexpr (requires { s.max_line_bytes; }) {
            s.max_line_bytes = common.max_line_bytes;
        }
    };
    k.defaults = [] { return std::any(Settings{}); };
    k.make = [make](const source_context& c) {
        return make(c, std::any_cast<const Settings&>(c.config.settings));
    };
    return k;
}

template <typename Settings>
sink_kind sink_row(
    std::string_view name, std::string_view summary, batch_config default_batch,
    std::function<void(config_parser&, const config_field&, const toml::table&,
                       std::vector<field_spec>&, Settings&)>
        read,
    std::function<std::unique_ptr<sink>(const sink_context&, const Settings&)> make) {
    sink_kind k;
    k.name = name;
    k.summary = summary;
    k.default_batch = default_batch;
    k.read = [read](config_parser& p, const config_field& f, const toml::table& t,
                    std::vector<field_spec>& specs) {
        Settings s;
        read(p, f, t, specs, s);
        return std::any(std::move(s));
    };
    k.defaults = [] { return std::any(Settings{}); };
    k.make = [make](const sink_context& c) {
        return make(c, std::any_cast<const Settings&>(c.config.settings));
    };
    return k;
}

}  // namespace sluice
