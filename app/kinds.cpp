// The rows of the source and sink tables: a type's name, summary, config reader (defined next
// to the other readers of its kind, or in a file of its own) and factory.
#include "app/kinds.h"

#include <array>

#include <fmt/format.h>

#include "app/config_parser.h"
#include "ingest/generator_source.h"
#include "ingest/nats_source.h"
#include "ingest/tail/tail_source.h"
#include "ingest/tcp_source.h"
#include "ingest/udp_source.h"
#include "ingest/zmq_source.h"
#include "sinks/file_sink.h"
#include "sinks/nats_sink.h"
#include "sinks/sqlite_sink.h"
#include "sinks/zmq_sink.h"

namespace sluice {

// The readers, one per type (app/config_sources.cpp, app/config_tail.cpp,
// app/config_sinks.cpp).
void read_tcp_source(config_parser&, const config_field&, const toml::table&,
                     std::vector<field_spec>&, tcp_source_config&);
void read_udp_source(config_parser&, const config_field&, const toml::table&,
                     std::vector<field_spec>&, udp_source_config&);
void read_zmq_source(config_parser&, const config_field&, const toml::table&,
                     std::vector<field_spec>&, zmq_source_config&);
void read_tail_source(config_parser&, const config_field&, const toml::table&,
                      std::vector<field_spec>&, tail_source_config&);
void read_generator_source(config_parser&, const config_field&, const toml::table&,
                           std::vector<field_spec>&, generator_source_config&);
void read_nats_source(config_parser&, const config_field&, const toml::table&,
                      std::vector<field_spec>&, nats_source_config&);
void read_nats_sink(config_parser&, const config_field&, const toml::table&,
                    std::vector<field_spec>&, nats_sink_config&);
void read_file_sink(config_parser&, const config_field&, const toml::table&,
                    std::vector<field_spec>&, file_sink_config&);
void read_sqlite_sink(config_parser&, const config_field&, const toml::table&,
                      std::vector<field_spec>&, sqlite_sink_config&);
void read_zmq_sink(config_parser&, const config_field&, const toml::table&,
                   std::vector<field_spec>&, zmq_sink_config&);

namespace {

using std::chrono::milliseconds;

const source_kind tcp_kind = source_row<tcp_source_config>(
    "tcp", "newline or octet-counted lines from TCP clients", read_tcp_source,
    [](const source_context& c, const tcp_source_config& s) -> std::unique_ptr<source> {
        return std::make_unique<tcp_source>(c.config.name, c.id, c.io, c.queue, s, c.loops);
    });

const source_kind udp_kind = source_row<udp_source_config>(
    "udp", "datagrams (syslog over UDP)", read_udp_source,
    [](const source_context& c, const udp_source_config& s) -> std::unique_ptr<source> {
        return std::make_unique<udp_source>(c.config.name, c.id, c.io, c.queue, s, c.loops);
    });

const source_kind zmq_kind = source_row<zmq_source_config>(
    "zmq", "a ZeroMQ PULL or SUB socket", read_zmq_source,
    [](const source_context& c, const zmq_source_config& s) -> std::unique_ptr<source> {
        return std::make_unique<zmq_source>(c.config.name, c.id, c.io, c.queue, c.zmq.get(), s);
    });

const source_kind file_kind = source_row<tail_source_config>(
    "file", "tailed files (globs, rotation, checkpoints)", read_tail_source,
    [](const source_context& c, const tail_source_config& s) -> std::unique_ptr<source> {
        tail_source_config with_store = s;
        with_store.checkpoints_path = (c.data_dir / "checkpoints.db").string();
        return std::make_unique<tail_source>(c.config.name, c.id, c.io, c.queue, with_store);
    });

const source_kind nats_kind = source_row<nats_source_config>(
    "nats", "a NATS JetStream durable pull consumer (aggregators)", read_nats_source,
    [](const source_context& c, const nats_source_config& s) -> std::unique_ptr<source> {
        return std::make_unique<nats_source>(c.config.name, c.id, c.io, c.queue, s);
    });

const source_kind generator_kind = source_row<generator_source_config>(
    "generator", "synthetic syslog, JSON or text lines", read_generator_source,
    [](const source_context& c, const generator_source_config& s) -> std::unique_ptr<source> {
        return std::make_unique<generator_source>(c.config.name, c.id, c.io, c.queue, s);
    });

// Batch defaults: a file takes big batches; one SQLite transaction per batch wants smaller
// ones and a shorter wait to keep queries fresh; forwarding is cheap per frame and the next
// hop wants events soon.
const sink_kind file_sink_kind = sink_row<file_sink_config>(
    "file", "text or JSON lines into files named by a template",
    {10'000, 4ull << 20, std::chrono::seconds(1), milliseconds(5)}, read_file_sink,
    [](const sink_context& c, const file_sink_config& s) -> std::unique_ptr<sink> {
        return std::make_unique<file_sink>(c.config.name, c.config.batch, s, c.data_dir,
                                           c.source_names);
    });

const sink_kind sqlite_sink_kind = sink_row<sqlite_sink_config>(
    "sqlite", "rows of a SQLite table (WAL), one transaction per batch",
    {5'000, 4ull << 20, milliseconds(200), milliseconds(50)}, read_sqlite_sink,
    [](const sink_context& c, const sqlite_sink_config& s) -> std::unique_ptr<sink> {
        return std::make_unique<sqlite_sink>(c.config.name, c.config.batch, s, c.data_dir,
                                             c.source_names);
    });

const sink_kind zmq_sink_kind = sink_row<zmq_sink_config>(
    "zmq", "forwarding over a ZeroMQ PUSH or PUB socket",
    {1'000, 4ull << 20, milliseconds(100), milliseconds(5)}, read_zmq_sink,
    [](const sink_context& c, const zmq_sink_config& s) -> std::unique_ptr<sink> {
        return std::make_unique<zmq_sink>(c.config.name, c.config.batch, s, c.zmq.get(),
                                          c.source_names);
    });

// JetStream acknowledges each publish: a write waits one round trip for the last of its
// messages, so batches are as large as the file sink's.
const sink_kind nats_sink_kind = sink_row<nats_sink_config>(
    "nats", "publishing to a NATS JetStream stream, acked before the batch counts (agents)",
    {10'000, 4ull << 20, std::chrono::seconds(1), milliseconds(5)}, read_nats_sink,
    [](const sink_context& c, const nats_sink_config& s) -> std::unique_ptr<sink> {
        return std::make_unique<nats_sink>(c.config.name, c.config.batch, s, c.source_names);
    });

const std::array<const source_kind*, 6> source_table{&tcp_kind,  &udp_kind,  &zmq_kind,
                                                     &file_kind, &nats_kind, &generator_kind};
const std::array<const sink_kind*, 4> sink_table{&file_sink_kind, &sqlite_sink_kind,
                                                 &zmq_sink_kind, &nats_sink_kind};

template <typename Table>
std::string joined_names(const Table& table) {
    std::string out;
    for (const auto* k : table) {
        out += out.empty() ? "" : ", ";
        out += k->name;
    }
    return out;
}

// The row named `name`, or nullptr.
template <typename Table>
auto find_row(const Table& table, std::string_view name) -> typename Table::value_type {
    for (const auto* k : table) {
        if (k->name == name) {
            return k;
        }
    }
    return nullptr;
}

}  // namespace

std::span<const source_kind* const> source_kinds() { return source_table; }
std::span<const sink_kind* const> sink_kinds() { return sink_table; }

const source_kind* find_source_kind(std::string_view name) {
    return find_row(source_table, name);
}

const sink_kind* find_sink_kind(std::string_view name) { return find_row(sink_table, name); }

std::string source_kind_names() { return joined_names(source_table); }
std::string sink_kind_names() { return joined_names(sink_table); }

std::string_view source_config::type() const { return kind != nullptr ? kind->name : ""; }
std::string_view sink_config::type() const { return kind != nullptr ? kind->name : ""; }

source_config make_source_config(std::string name, std::string_view type) {
    const source_kind* kind = find_source_kind(type);
    if (kind == nullptr) {
        throw error(fmt::format("unknown source type '{}'", type));
    }
    source_config c;
    c.name = std::move(name);
    c.kind = kind;
    c.settings = kind->defaults();
    return c;
}

sink_config make_sink_config(std::string name, std::string_view type) {
    const sink_kind* kind = find_sink_kind(type);
    if (kind == nullptr) {
        throw error(fmt::format("unknown sink type '{}'", type));
    }
    sink_config c;
    c.name = std::move(name);
    c.kind = kind;
    c.batch = kind->default_batch;
    c.settings = kind->defaults();
    return c;
}

}  // namespace sluice
