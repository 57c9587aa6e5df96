// A real single-node nats-server with JetStream for the unit tests of the nats sink and source:
// a free 127.0.0.1 port, a temporary store directory, started by the constructor (which waits
// until JetStream answers) and stopped by PID in the destructor. The child dies with the test
// process (PR_SET_PDEATHSIG). Plus a nats.c connection for the test's own checks.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <catch2/catch.hpp>
#include <nats/nats.h>

#include <fstream>

#include "common/nats_client.h"
#include "temp_dir.h"
#include "tls_certs.h"

namespace sluice::test {

inline uint16_t free_tcp_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    ::close(fd);
    return ntohs(a.sin_port);
}

class nats_server {
public:
    // With `tls`, the server requires TLS and a client certificate signed by tls->ca.
    explicit nats_server(const tls_certs* tls = nullptr)
        : dir_("sluice-nats-unit"), port_(free_tcp_port()), tls_(tls) {
        const std::string config = (dir_.path() / "nats.conf").string();
        {
            std::ofstream out(config);
            out << "listen: 127.0.0.1:" << port_ << "\n"
                << "jetstream { store_dir: \"" << (dir_.path() / "store").string() << "\" }\n";
            if (tls != nullptr) {
                out << "tls { cert_file: \"" << tls->server << "\", key_file: \"" << tls->server_key
                    << "\", ca_file: \"" << tls->ca << "\", verify: true }\n";
            }
        }
        const std::string log = (dir_.path() / "nats.log").string();
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            ::execlp("nats-server", "nats-server", "-c", config.c_str(), "-l", log.c_str(),
                     static_cast<char*>(nullptr));
            ::_exit(127);
        }
        connect();
    }
    ~nats_server() {
        js_.reset();
        if (conn_) {
            natsConnection_Close(conn_.get());
        }
        conn_.reset();
        ::kill(pid_, SIGTERM);
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
    nats_server(const nats_server&) = delete;
    nats_server& operator=(const nats_server&) = delete;

    std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
    // What a sink or source needs to reach it (with the client certificate under TLS).
    nats_connection_config connection() const {
        nats_connection_config c;
        c.servers = {url()};
        if (tls_ != nullptr) {
            c.tls = {tls_->ca, tls_->client, tls_->client_key};
        }
        return c;
    }
    natsConnection* conn() const { return conn_.get(); }
    jsCtx* js() const { return js_.get(); }

    // Messages in `stream`; -1 if it does not exist.
    int64_t stream_messages(const std::string& stream) const {
        jsStreamInfo* raw = nullptr;
        if (js_GetStreamInfo(&raw, js_.get(), stream.c_str(), nullptr, nullptr) != NATS_OK) {
            return -1;
        }
        nats_ptr<jsStreamInfo> info(raw);
        return static_cast<int64_t>(info->State.Msgs);
    }
    // The consumer's delivered-but-unacknowledged count and its undelivered count.
    std::pair<int64_t, uint64_t> consumer_pending(const std::string& stream,
                                                  const std::string& consumer) const {
        jsConsumerInfo* raw = nullptr;
        REQUIRE(js_GetConsumerInfo(&raw, js_.get(), stream.c_str(), consumer.c_str(), nullptr,
                                   nullptr) == NATS_OK);
        nats_ptr<jsConsumerInfo> info(raw);
        return {info->NumAckPending, info->NumPending};
    }

private:
    void connect() {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        for (;;) {
            natsConnection* nc = nullptr;
            natsOptions* raw = nullptr;
            REQUIRE(natsOptions_Create(&raw) == NATS_OK);
            nats_ptr<natsOptions> o(raw);
            REQUIRE(natsOptions_SetURL(o.get(), url().c_str()) == NATS_OK);
            if (tls_ != nullptr) {
                REQUIRE(natsOptions_SetSecure(o.get(), true) == NATS_OK);
                REQUIRE(natsOptions_LoadCATrustedCertificates(o.get(), tls_->ca.c_str()) ==
                        NATS_OK);
                REQUIRE(natsOptions_LoadCertificatesChain(o.get(), tls_->client.c_str(),
                                                          tls_->client_key.c_str()) == NATS_OK);
            }
            if (natsConnection_Connect(&nc, o.get()) == NATS_OK) {
                conn_.reset(nc);
                jsCtx* js = nullptr;
                REQUIRE(natsConnection_JetStream(&js, nc, nullptr) == NATS_OK);
                js_.reset(js);
                jsAccountInfo* ai = nullptr;
                if (js_GetAccountInfo(&ai, js, nullptr, nullptr) == NATS_OK) {
                    jsAccountInfo_Destroy(ai);
                    return;
                }
                js_.reset();
                natsConnection_Close(nc);
                conn_.reset();
            } else {
                natsConnection_Destroy(nc);
            }
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                FAIL("nats-server exited (is it installed? scripts/setup installs it)");
            }
            if (std::chrono::steady_clock::now() > deadline) {
                FAIL("nats-server on port " << port_ << " did not answer in 20 s");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }

    temp_dir dir_;
    uint16_t port_;
    const tls_certs* tls_;
    pid_t pid_ = -1;
    nats_ptr<natsConnection> conn_;
    nats_ptr<jsCtx> js_;
};

}  // namespace sluice::test
