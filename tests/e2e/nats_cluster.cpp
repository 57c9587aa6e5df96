#include "tests/e2e/nats_cluster.h"

#include <httplib.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

namespace e2e {

namespace {

// How long a node gets to shut down cleanly on SIGTERM before it is SIGKILLed.
constexpr auto stop_timeout = std::chrono::seconds(10);

// Debian installs nats-server in /usr/sbin, which a non-root PATH often lacks; spawn_process
// execs a path, not a name, so resolve it here.
std::string nats_server_binary() {
    std::vector<std::string> dirs;
    if (const char* path = std::getenv("PATH")) {
        std::stringstream ss(path);
        for (std::string d; std::getline(ss, d, ':');) {
            dirs.push_back(d);
        }
    }
    dirs.emplace_back("/usr/sbin");
    for (const auto& d : dirs) {
        const std::string candidate = d + "/nats-server";
        if (!d.empty() && ::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
    }
    FAIL("nats-server not found in PATH or /usr/sbin: run scripts/setup");
    return {};
}

std::optional<std::string> json_string(const std::string& body, const char* pointer) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    std::string_view value;
    if (parser.parse(body).get(doc) != simdjson::SUCCESS ||
        doc.at_pointer(pointer).get(value) != simdjson::SUCCESS) {
        return std::nullopt;
    }
    return std::string(value);
}

// The stream_detail entry of `stream` in a /jsz?accounts=true&streams=true body (with
// consumers=true and config=true, also its consumers and config), copied out.
std::optional<nats_stream_report> find_stream(const std::string& body, const std::string& stream) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    simdjson::dom::array accounts;
    if (parser.parse(body).get(doc) != simdjson::SUCCESS ||
        doc["account_details"].get(accounts) != simdjson::SUCCESS) {
        return std::nullopt;
    }
    auto u64 = [](simdjson::dom::element e, const char* pointer, uint64_t& out) {
        uint64_t v = 0;
        if (e.at_pointer(pointer).get(v) == simdjson::SUCCESS) {
            out = v;
        }
    };
    auto i64 = [](simdjson::dom::element e, const char* pointer, int64_t& out) {
        int64_t v = 0;
        if (e.at_pointer(pointer).get(v) == simdjson::SUCCESS) {
            out = v;
        }
    };
    auto str = [](simdjson::dom::element e, const char* pointer, std::string& out) {
        std::string_view v;
        if (e.at_pointer(pointer).get(v) == simdjson::SUCCESS) {
            out = std::string(v);
        }
    };
    for (simdjson::dom::element account : accounts) {
        simdjson::dom::array streams;
        if (account["stream_detail"].get(streams) != simdjson::SUCCESS) {
            continue;
        }
        for (simdjson::dom::element s : streams) {
            std::string_view name;
            if (s["name"].get(name) != simdjson::SUCCESS || name != stream) {
                continue;
            }
            nats_stream_report out;
            str(s, "/cluster/leader", out.leader);
            u64(s, "/state/messages", out.messages);
            u64(s, "/state/bytes", out.bytes);
            u64(s, "/state/first_seq", out.first_seq);
            u64(s, "/state/last_seq", out.last_seq);
            u64(s, "/state/consumer_count", out.consumer_count);
            str(s, "/config/retention", out.retention);
            str(s, "/config/discard", out.discard);
            str(s, "/config/storage", out.storage);
            i64(s, "/config/max_bytes", out.max_bytes);
            i64(s, "/config/max_msgs", out.max_msgs);
            i64(s, "/config/num_replicas", out.replicas);
            i64(s, "/config/duplicate_window", out.duplicate_window_ns);
            simdjson::dom::array subjects;
            if (s.at_pointer("/config/subjects").get(subjects) == simdjson::SUCCESS) {
                for (simdjson::dom::element subject : subjects) {
                    std::string_view v;
                    if (subject.get(v) == simdjson::SUCCESS) {
                        out.subjects.emplace_back(v);
                    }
                }
            }
            simdjson::dom::array consumers;
            if (s["consumer_detail"].get(consumers) == simdjson::SUCCESS) {
                for (simdjson::dom::element c : consumers) {
                    nats_consumer_report r;
                    str(c, "/name", r.name);
                    str(c, "/cluster/leader", r.leader);
                    u64(c, "/num_pending", r.num_pending);
                    u64(c, "/num_ack_pending", r.num_ack_pending);
                    u64(c, "/num_redelivered", r.num_redelivered);
                    u64(c, "/delivered/stream_seq", r.delivered_stream_seq);
                    u64(c, "/ack_floor/stream_seq", r.ack_floor_stream_seq);
                    i64(c, "/config/max_ack_pending", r.max_ack_pending);
                    i64(c, "/config/ack_wait", r.ack_wait_ns);
                    out.consumers.push_back(std::move(r));
                }
            }
            return out;
        }
    }
    return std::nullopt;
}

constexpr const char* jsz_streams = "/jsz?accounts=true&streams=true&consumers=true&config=true";

}  // namespace


nats_cluster::nats_cluster(size_t nodes) : dir_(make_temp_dir()), nodes_(nodes) {
    REQUIRE(nodes > 0);
    for (auto& n : nodes_) {
        n.client_port = free_port();
        n.cluster_port = free_port();
        n.monitor_port = free_port();
    }
    for (size_t i = 0; i < nodes_.size(); ++i) {
        write_config(i);
    }
    // A failed constructor runs no destructor: stop the nodes here.
    try {
        for (size_t i = 0; i < nodes_.size(); ++i) {
            start_node(i);
        }
        wait_healthy();
    } catch (...) {
        stop_all();
        std::cerr << "==== nats_cluster: cluster did not come up; temp dir kept: " << dir_ << "\n";
        print_logs();
        throw;
    }
}

nats_cluster::~nats_cluster() {
    stop_all();
    if (current_test_has_failed() || std::uncaught_exceptions() > 0) {
        std::cerr << "==== nats_cluster: test failed; temp dir kept: " << dir_ << "\n";
        print_logs();
    } else {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
}

void nats_cluster::write_config(size_t i) {
    node& n = nodes_[i];
    n.config_path = dir_ + "/" + server_name(i) + ".conf";
    n.store_dir = dir_ + "/" + server_name(i) + "-store";
    std::string routes;
    for (size_t j = 0; j < nodes_.size(); ++j) {
        if (j != i) {
            routes += "    nats-route://127.0.0.1:" + std::to_string(nodes_[j].cluster_port) + "\n";
        }
    }
    std::string config = "server_name: " + server_name(i) +
                         "\n"
                         "listen: 127.0.0.1:" +
                         std::to_string(n.client_port) +
                         "\n"
                         "http: 127.0.0.1:" +
                         std::to_string(n.monitor_port) +
                         "\n"
                         // The store dir comes from -sd (nats-server refuses it twice).
                         // Limits set, so the test box's free disk and RAM do not set them.
                         "jetstream {\n  max_memory_store: 256MB\n  max_file_store: 2GB\n}\n";
    if (nodes_.size() > 1) {
        config += "cluster {\n  name: sluice-e2e\n  listen: 127.0.0.1:" +
                  std::to_string(n.cluster_port) + "\n  routes: [\n" + routes + "  ]\n}\n";
    }
    write_file(n.config_path, config);
}

void nats_cluster::start_node(size_t i) {
    node& n = nodes_[i];
    REQUIRE(n.pid < 0);
    // A fresh log per start, so a restart does not truncate what the first run said.
    const size_t starts = n.log_paths.size();
    n.log_paths.push_back(dir_ + "/" + server_name(i) +
                          (starts == 0 ? std::string() : ".restart" + std::to_string(starts)) +
                          ".log");
    n.pid = spawn_process(
        {nats_server_binary(), "-c", n.config_path, "-js", "-sd", n.store_dir}, dir_,
        n.log_paths.back(), n.log_paths.back());
    n.exit_code = -1;
}

void nats_cluster::reap(size_t i, bool block) {
    node& n = nodes_[i];
    if (n.pid < 0) {
        return;
    }
    int status = 0;
    const pid_t r = ::waitpid(n.pid, &status, block ? 0 : WNOHANG);
    if (r == n.pid) {
        n.exit_code = decode_status(status);
        n.pid = -1;
    }
}

bool nats_cluster::running(size_t i) {
    reap(i, false);
    return nodes_.at(i).pid > 0;
}

void nats_cluster::kill_node(size_t i) {
    REQUIRE(running(i));
    REQUIRE(::kill(nodes_[i].pid, SIGKILL) == 0);
    reap(i, true);
}

void nats_cluster::restart_node(size_t i) {
    REQUIRE_FALSE(running(i));
    start_node(i);
    wait_healthy();
}

void nats_cluster::wait_healthy(std::chrono::milliseconds timeout) {
    wait_for(
        "every running nats-server to answer /healthz ok with a meta leader",
        [&] {
            for (size_t i = 0; i < nodes_.size(); ++i) {
                // pid -1: stopped by kill_node, on purpose. A node that exits on its own
                // will not get healthy: fail now, with its log, not after the timeout.
                if (nodes_[i].pid < 0) {
                    continue;
                }
                if (!running(i)) {
                    FAIL("nats-server " << server_name(i) << " exited with "
                                        << nodes_[i].exit_code << "; log:\n"
                                        << tail_lines(log(i), 60));
                }
            }
            for (size_t i = 0; i < nodes_.size(); ++i) {
                if (nodes_[i].pid < 0) {
                    continue;
                }
                const auto health = http_get(i, "/healthz");
                if (!health || json_string(*health, "/status") != "ok") {
                    return false;
                }
                if (nodes_.size() > 1) {
                    const auto jsz = http_get(i, "/jsz");
                    const auto leader = jsz ? json_string(*jsz, "/meta_cluster/leader")
                                            : std::nullopt;
                    if (!leader || leader->empty()) {
                        return false;
                    }
                }
            }
            return true;
        },
        [&] { return describe(); }, timeout, 50ms);
}

std::optional<size_t> nats_cluster::stream_leader(const std::string& stream) {
    std::optional<std::string> agreed;
    for (size_t i = 0; i < nodes_.size(); ++i) {
        if (!running(i)) {
            continue;
        }
        const auto jsz = http_get(i, "/jsz?accounts=true&streams=true");
        const auto detail = jsz ? find_stream(*jsz, stream) : std::nullopt;
        if (!detail) {
            continue;  // no replica here, or not answering
        }
        if (detail->leader.empty() || (agreed && *agreed != detail->leader)) {
            return std::nullopt;
        }
        agreed = detail->leader;
    }
    for (size_t i = 0; agreed && i < nodes_.size(); ++i) {
        if (server_name(i) == *agreed) {
            return running(i) ? std::optional<size_t>(i) : std::nullopt;
        }
    }
    return std::nullopt;
}

size_t nats_cluster::wait_stream_leader(const std::string& stream, size_t not_node,
                                        std::chrono::milliseconds timeout) {
    size_t leader = SIZE_MAX;
    wait_for(
        "a leader of stream " + stream,
        [&] {
            const auto l = stream_leader(stream);
            leader = l.value_or(SIZE_MAX);
            return l && *l != not_node;
        },
        [&] { return describe(); }, timeout, 50ms);
    return leader;
}

std::optional<uint64_t> nats_cluster::stream_messages(size_t i, const std::string& stream) const {
    const auto jsz = http_get(i, "/jsz?accounts=true&streams=true");
    const auto detail = jsz ? find_stream(*jsz, stream) : std::nullopt;
    if (!detail) {
        return std::nullopt;
    }
    return detail->messages;
}

std::optional<nats_stream_report> nats_cluster::stream_report(size_t i,
                                                              const std::string& stream) const {
    const auto jsz = http_get(i, jsz_streams);
    return jsz ? find_stream(*jsz, stream) : std::nullopt;
}

std::optional<nats_stream_report> nats_cluster::leader_stream_report(const std::string& stream) {
    const auto leader = stream_leader(stream);
    if (!leader) {
        return std::nullopt;
    }
    auto report = stream_report(*leader, stream);
    if (!report || report->leader != server_name(*leader)) {
        return std::nullopt;  // it lost the leadership in between
    }
    return report;
}

std::string nats_cluster::describe_stream(const std::string& stream) {
    std::string out;
    for (size_t i = 0; i < nodes_.size(); ++i) {
        out += "\n  " + server_name(i) + ": ";
        if (!running(i)) {
            out += "stopped";
            continue;
        }
        const auto report = stream_report(i, stream);
        out += report ? report->describe() : "no replica of " + stream + " (or no answer)";
    }
    return out;
}

std::string nats_stream_report::describe() const {
    std::ostringstream out;
    out << "leader '" << leader << "', " << messages << " messages, " << bytes << " bytes, seq "
        << first_seq << ".." << last_seq << ", " << retention << "/" << discard
        << " max_bytes " << max_bytes << " max_msgs " << max_msgs << " R" << replicas;
    for (const auto& c : consumers) {
        out << "; consumer " << c.name << " (leader '" << c.leader << "'): pending "
            << c.num_pending << ", ack pending " << c.num_ack_pending << ", redelivered "
            << c.num_redelivered << ", delivered seq " << c.delivered_stream_seq
            << ", ack floor " << c.ack_floor_stream_seq;
    }
    return out.str();
}

std::string nats_cluster::client_urls() const {
    std::string out;
    for (const auto& url : client_url_list()) {
        out += (out.empty() ? "" : ",") + url;
    }
    return out;
}

std::vector<std::string> nats_cluster::client_url_list() const {
    std::vector<std::string> out;
    for (const auto& n : nodes_) {
        out.push_back("nats://127.0.0.1:" + std::to_string(n.client_port));
    }
    return out;
}

std::optional<std::string> nats_cluster::http_get(size_t i, const std::string& path) const {
    httplib::Client client("127.0.0.1", nodes_.at(i).monitor_port);
    client.set_connection_timeout(1, 0);
    client.set_read_timeout(5, 0);
    auto res = client.Get(path.c_str());
    if (!res || res->status != 200) {
        return std::nullopt;
    }
    return res->body;
}

std::string nats_cluster::log(size_t i) const {
    std::string out;
    for (const auto& path : nodes_.at(i).log_paths) {
        out += "---- " + path + "\n" + read_file(path);
    }
    return out;
}

std::string nats_cluster::describe() {
    std::string out;
    for (size_t i = 0; i < nodes_.size(); ++i) {
        out += "\n" + server_name(i) + ": ";
        if (!running(i)) {
            out += "stopped (exit code " + std::to_string(nodes_[i].exit_code) + ")";
            continue;
        }
        out += "pid " + std::to_string(nodes_[i].pid) + ", /healthz ";
        httplib::Client client("127.0.0.1", nodes_[i].monitor_port);
        client.set_connection_timeout(1, 0);
        client.set_read_timeout(5, 0);
        auto res = client.Get("/healthz");
        out += res ? std::to_string(res->status) + " " + res->body : std::string("no answer");
        const auto jsz = http_get(i, "/jsz");
        out += ", meta leader '" +
               (jsz ? json_string(*jsz, "/meta_cluster/leader").value_or("?") : "?") + "'";
    }
    return out;
}

void nats_cluster::stop_all() noexcept {
    for (auto& n : nodes_) {
        if (n.pid > 0) {
            ::kill(n.pid, SIGTERM);
        }
    }
    const auto deadline = clock_type::now() + stop_timeout;
    for (size_t i = 0; i < nodes_.size(); ++i) {
        while (nodes_[i].pid > 0 && clock_type::now() < deadline) {
            reap(i, false);
            if (nodes_[i].pid > 0) {
                std::this_thread::sleep_for(10ms);
            }
        }
        if (nodes_[i].pid > 0) {
            ::kill(nodes_[i].pid, SIGKILL);
            reap(i, true);
        }
    }
}

void nats_cluster::print_logs() const {
    for (size_t i = 0; i < nodes_.size(); ++i) {
        std::cerr << "---- nats-server " << server_name(i) << " config " << nodes_[i].config_path
                  << "\n"
                  << read_file(nodes_[i].config_path) << "---- logs (last exit code "
                  << nodes_[i].exit_code << ")\n"
                  << tail_lines(log(i), 150) << "\n";
    }
    std::cerr << "==== end of nats-server logs\n";
}

}  // namespace e2e
