// Throwaway TLS material for tests: a CA and a server and client certificate made with `openssl`.
#pragma once

#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace sluice::test {

// A fresh CA plus a server certificate for CN/SAN 127.0.0.1 (and localhost) and a
// client certificate, all PEM files in a temp dir removed with this object.
// EC P-256 keys, because generating them is instant even on a busy machine.
class TlsCerts {
 public:
  TlsCerts();  // throws when openssl fails

  std::string ca_cert() const { return (dir_ / "ca.pem").string(); }
  std::string server_cert() const { return (dir_ / "server-cert.pem").string(); }
  std::string server_key() const { return (dir_ / "server-key.pem").string(); }
  std::string client_cert() const { return (dir_ / "client-cert.pem").string(); }
  std::string client_key() const { return (dir_ / "client-key.pem").string(); }
  // --ssl-ca/--ssl-cert/--ssl-key for mariadbd.
  std::vector<std::string> server_args() const;

 private:
  TempDir dir_{"sluice-tls"};
};

}  // namespace sluice::test
