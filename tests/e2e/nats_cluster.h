// nats_cluster: a real NATS JetStream cluster for e2e tests, N (default 3) `nats-server`
// processes on 127.0.0.1.
//
// Start: each node gets three free ports (client, cluster route, HTTP monitoring), its own
// store dir DIR/nK-store and a config file DIR/nK.conf naming the server ("nK"), the cluster
// and routes to every other node; it runs as `nats-server -c DIR/nK.conf -js -sd STORE`,
// started with e2e::spawn_process, so it dies with the test process however that ends.
// Await: the constructor (and restart_node) returns once every running node's GET /healthz
// answers 200 {"status":"ok"} (JetStream up and, on a node that hosts streams, caught up) and,
// for more than one node, /jsz names a meta leader; until then a JetStream request can fail
// with "no responders" or "JetStream not ready", which a test would misread as a bug.
// Stop: the destructor sends SIGTERM to every node at once, SIGKILLs those still up after
// 10 s, and reaps them all by PID; if the test failed it prints the tail of each node's logs
// (one file per start: DIR/nK.log, DIR/nK.restart1.log, ...) and keeps DIR, else removes DIR.
//
// Free ports are "free a moment ago" (e2e::free_port), so a race with another process is
// possible but rare; a node that exits while being awaited fails the test with its log.
// Everything here is for the test's main thread (spawn_process and Catch require it).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace e2e {

// A durable consumer of a stream, as one node's /jsz?consumers=true reports it.
struct nats_consumer_report {
    std::string name;
    std::string leader;  // its cluster leader, as this node knows it
    uint64_t num_pending = 0;      // messages not yet delivered
    uint64_t num_ack_pending = 0;  // delivered, not acknowledged yet
    uint64_t num_redelivered = 0;
    uint64_t delivered_stream_seq = 0;
    uint64_t ack_floor_stream_seq = 0;
    int64_t max_ack_pending = 0;
    int64_t ack_wait_ns = 0;
};

// A stream as one node's replica reports it in /jsz?accounts=true&streams=true&consumers=true&
// config=true: its state, its config and its consumers.
struct nats_stream_report {
    std::string leader;
    uint64_t messages = 0;
    uint64_t bytes = 0;
    uint64_t first_seq = 0;
    uint64_t last_seq = 0;
    uint64_t consumer_count = 0;
    // config
    std::vector<std::string> subjects;
    std::string retention;  // "limits", "interest", "workqueue"
    std::string discard;    // "old", "new"
    std::string storage;    // "file", "memory"
    int64_t max_bytes = -1;
    int64_t max_msgs = -1;
    int64_t replicas = 0;
    int64_t duplicate_window_ns = 0;
    std::vector<nats_consumer_report> consumers;

    const nats_consumer_report* consumer(const std::string& name) const {
        for (const auto& c : consumers) {
            if (c.name == name) {
                return &c;
            }
        }
        return nullptr;
    }
    // One line for failure messages.
    std::string describe() const;
};

class nats_cluster {
public:
    explicit nats_cluster(size_t nodes = 3);
    ~nats_cluster();
    nats_cluster(const nats_cluster&) = delete;
    nats_cluster& operator=(const nats_cluster&) = delete;

    size_t size() const { return nodes_.size(); }
    const std::string& dir() const { return dir_; }

    // "nats://127.0.0.1:P0,nats://127.0.0.1:P1,..." (every node, running or not).
    std::string client_urls() const;
    // The same URLs one by one, for natsOptions_SetServers.
    std::vector<std::string> client_url_list() const;
    uint16_t client_port(size_t i) const { return nodes_.at(i).client_port; }
    uint16_t monitor_port(size_t i) const { return nodes_.at(i).monitor_port; }
    // The node's server_name, as /jsz and stream cluster info report leaders.
    std::string server_name(size_t i) const { return "n" + std::to_string(i); }
    // -1 while the node is stopped.
    pid_t pid(size_t i) const { return nodes_.at(i).pid; }
    bool running(size_t i);

    // SIGKILL (no clean shutdown, as a crash or OOM kill), reaped before returning.
    void kill_node(size_t i);
    // Starts a stopped node again on the same ports and store dir, then wait_healthy().
    void restart_node(size_t i);
    // Waits until every running node is healthy (see the top of this file); FAILs with each
    // node's state after `timeout`, or at once if a node that should run has exited.
    void wait_healthy(std::chrono::milliseconds timeout = default_deadline);

    // Index of the node leading `stream`, as the running nodes that host it report it in
    // /jsz; nullopt while there is none, or while they disagree (during an election a node
    // may still name a dead leader).
    std::optional<size_t> stream_leader(const std::string& stream);
    // Polls stream_leader until it names a node other than `not_node` (SIZE_MAX: any).
    size_t wait_stream_leader(const std::string& stream, size_t not_node = SIZE_MAX,
                              std::chrono::milliseconds timeout = default_deadline);
    // Messages in `stream` as node i's replica holds them; nullopt if it has no replica or
    // does not answer.
    std::optional<uint64_t> stream_messages(size_t i, const std::string& stream) const;
    // The whole report of `stream` from node i's replica; nullopt as for stream_messages.
    std::optional<nats_stream_report> stream_report(size_t i, const std::string& stream) const;
    // The report of the node that leads `stream` now, read from that node (its state and its
    // consumers' are the current ones); nullopt while there is no agreed, running leader.
    std::optional<nats_stream_report> leader_stream_report(const std::string& stream);
    // The reports of every running node that hosts `stream`, one line each, for failures.
    std::string describe_stream(const std::string& stream);

    // GET a monitoring path of node i; nullopt when it does not answer 200.
    std::optional<std::string> http_get(size_t i, const std::string& path) const;
    // Every log of node i, oldest start first.
    std::string log(size_t i) const;

private:
    struct node {
        uint16_t client_port = 0;
        uint16_t cluster_port = 0;
        uint16_t monitor_port = 0;
        std::string config_path;
        std::string store_dir;
        std::vector<std::string> log_paths;  // one per start
        pid_t pid = -1;
        int exit_code = -1;  // of the last run, 128 + signal when killed
    };

    void write_config(size_t i);
    void start_node(size_t i);
    void reap(size_t i, bool block);
    void stop_all() noexcept;
    void print_logs() const;
    std::string describe();

    std::string dir_;
    std::vector<node> nodes_;
};

}  // namespace e2e
