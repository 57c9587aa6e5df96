// nats_client: one nats.c connection as the nats sink and the nats source use it: every server
// of `servers` listed, reconnects without end, optional TLS and a credentials file, and the
// connection's ups and downs logged and counted. nats.c runs its own threads (the socket
// reader, the flusher, the reply handlers); the connection and its JetStream contexts are
// thread-safe, so the owner calls them from its own thread. The callbacks only log and count.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nats/nats.h>

#include "common/metrics.h"

namespace sluice {

// What the nats sink and source share in the config.
struct nats_tls_config {
    std::string ca;    // PEM file of the CAs that sign the servers' certificates
    std::string cert;  // client certificate chain (PEM), with `key`, for servers that verify
    std::string key;
    bool enabled() const { return !ca.empty() || !cert.empty(); }
};

struct nats_connection_config {
    std::vector<std::string> servers{"nats://127.0.0.1:4222"};
    nats_tls_config tls;  // paths made absolute by the config reader
    std::string creds;    // a NATS .creds file (JWT and nkey seed), or empty
};

struct nats_connection_counters {
    std::atomic<bool> connected{false};
    counter disconnects_total{0};
    counter reconnects_total{0};
};

// nats.c objects, released by their own functions (each takes nullptr).
struct nats_deleter {
    void operator()(natsOptions* p) const { natsOptions_Destroy(p); }
    void operator()(natsConnection* p) const { natsConnection_Destroy(p); }
    void operator()(jsCtx* p) const { jsCtx_Destroy(p); }
    void operator()(natsSubscription* p) const { natsSubscription_Destroy(p); }
    void operator()(natsMsg* p) const { natsMsg_Destroy(p); }
    void operator()(jsStreamInfo* p) const { jsStreamInfo_Destroy(p); }
    void operator()(jsConsumerInfo* p) const { jsConsumerInfo_Destroy(p); }
    void operator()(jsMsgMetaData* p) const { jsMsgMetaData_Destroy(p); }
};
template <typename T>
using nats_ptr = std::unique_ptr<T, nats_deleter>;

// "timeout", with the JetStream error code and nats.c's last error text when there are any.
std::string nats_error_text(natsStatus s, jsErrCode code = static_cast<jsErrCode>(0));

class nats_client {
public:
    // `owner` names the component in logs ("sink bus"). Starts connecting at once and keeps
    // trying in the background when no server answers yet, so a daemon can start before its
    // cluster does. Throws sluice::error on settings nats.c refuses (a TLS file it cannot
    // load, a bad URL).
    nats_client(std::string owner, const nats_connection_config& config);
    ~nats_client();
    nats_client(const nats_client&) = delete;
    nats_client& operator=(const nats_client&) = delete;

    natsConnection* connection() const { return connection_.get(); }
    bool connected() const { return natsConnection_Status(connection_.get()) == NATS_CONN_STATUS_CONNECTED; }
    const nats_connection_counters& counters() const { return counters_; }
    // Appends the connection's figures (connected, disconnects_total, reconnects_total) as a
    // nats sink's (sluice_nats_sink_*) or a nats source's (sluice_nats_source_*).
    void connection_metrics(std::vector<kind_metric>& out, bool of_sink) const;
    // A JetStream context on the connection; throws sluice::error.
    nats_ptr<jsCtx> jetstream(jsOptions& options) const;
    // Flushes what was published, waiting at most `timeout_ms`; false if it could not.
    bool flush(int64_t timeout_ms) const;
    // Closes the connection and waits for nats.c's closed callback, its last one: no callback
    // runs after this returns. Idempotent.
    void close();

    const std::string& owner() const { return owner_; }

private:
    static void on_connected(natsConnection* nc, void* closure);
    static void on_disconnected(natsConnection* nc, void* closure);
    static void on_reconnected(natsConnection* nc, void* closure);
    static void on_closed(natsConnection* nc, void* closure);
    static void on_error(natsConnection* nc, natsSubscription* sub, natsStatus err,
                         void* closure);

    std::string owner_;
    nats_connection_counters counters_;
    std::mutex closed_mutex_;
    std::condition_variable closed_cv_;
    bool closed_ = false;  // the closed callback ran
    nats_ptr<natsOptions> options_;
    nats_ptr<natsConnection> connection_;
};

}  // namespace sluice
