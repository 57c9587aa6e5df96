// Test certificates, made at test time with the openssl CLI (EC P-256, valid 30 days) in a
// directory the test owns: a CA, a server certificate it signed for 127.0.0.1 and localhost
// (subjectAltName), a client certificate it signed, and a second CA with a client certificate
// of its own, which the first CA's clients must not pass for. Shared by the unit and the e2e
// tests; for the test's main thread (it REQUIREs).
#pragma once

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace sluice::test {

struct tls_certs {
    std::string ca, ca_key;                      // the CA that signs the others
    std::string server, server_key;              // CN=localhost, SAN IP:127.0.0.1, localhost
    std::string client, client_key;              // signed by `ca`, clientAuth
    std::string other_ca, other_ca_key;          // another CA
    std::string other_client, other_client_key;  // signed by `other_ca`

    explicit tls_certs(const std::filesystem::path& dir) : dir_(dir) {
        std::filesystem::create_directories(dir_);
        write_extensions();
        make_ca("ca", "sluice test CA", ca, ca_key);
        make_ca("other-ca", "another test CA", other_ca, other_ca_key);
        make_signed("server", "localhost", "server", "ca", 2, server, server_key);
        make_signed("client", "sluice test client", "client", "ca", 3, client, client_key);
        make_signed("other-client", "a stranger", "client", "other-ca", 4, other_client,
                    other_client_key);
    }

  private:
    std::string file(const std::string& name) const { return (dir_ / name).string(); }

    // The extensions each kind of certificate needs; req wants a distinguished_name section.
    void write_extensions() const {
        std::ofstream out(file("ext.cnf"));
        out << "[req]\ndistinguished_name = dn\n[dn]\n"
               "[ca]\nbasicConstraints = critical, CA:TRUE\n"
               "keyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n"
               "[server]\nbasicConstraints = CA:FALSE\n"
               "keyUsage = critical, digitalSignature, keyEncipherment\n"
               "extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1, DNS:localhost\n"
               "[client]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\n"
               "extendedKeyUsage = clientAuth\n";
        REQUIRE(out.good());
    }

    // Runs an openssl command in the directory; fails the test with its output.
    void openssl(const std::string& args) const {
        const std::string log = file("openssl.log");
        const std::string command =
            "cd '" + dir_.string() + "' && openssl " + args + " > '" + log + "' 2>&1";
        const int rc = std::system(command.c_str());
        if (rc != 0) {
            std::ifstream in(log);
            std::stringstream text;
            text << in.rdbuf();
            FAIL("openssl " << args << " failed (" << rc << "):\n" << text.str());
        }
    }

    static std::string new_key(const std::string& name) {
        return " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + name + ".key";
    }

    void make_ca(const std::string& name, const std::string& cn, std::string& cert,
                 std::string& key) const {
        openssl("req -x509 -new" + new_key(name) + " -out " + name +
                ".pem -days 30 -subj '/CN=" + cn + "' -config ext.cnf -extensions ca");
        cert = file(name + ".pem");
        key = file(name + ".key");
    }

    void make_signed(const std::string& name, const std::string& cn, const std::string& kind,
                     const std::string& by, int serial, std::string& cert, std::string& key) const {
        openssl("req -new" + new_key(name) + " -out " + name + ".csr -subj '/CN=" + cn +
                "' -config ext.cnf");
        openssl("x509 -req -in " + name + ".csr -CA " + by + ".pem -CAkey " + by +
                ".key -set_serial " + std::to_string(serial) + " -days 30 -out " + name +
                ".pem -extfile ext.cnf -extensions " + kind);
        cert = file(name + ".pem");
        key = file(name + ".key");
    }

    std::filesystem::path dir_;
};

}  // namespace sluice::test
