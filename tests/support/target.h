// What a test's clients connect to: sluice in front of a server, or the server in direct mode.
#pragma once

#include <memory>
#include <string>

#include "tests/support/mariadb_server.h"
#include "tests/support/mysql_conn.h"
#include "tests/support/sluice_process.h"

namespace sluice::test {

// Environment switches for the integration tests (e.g.
//   SLUICE_TEST_DIRECT=1 build/tests/integration/integration_tests -tc='cli*'):
//   SLUICE_TEST_DIRECT=1   clients connect to MariaDB directly, no sluice
//   SLUICE_BINARY=path     run this sluice instead of the build's (e.g. an ASan build)
//   SLUICE_TEST_VERBOSE=1  always print sluice's stderr tail when it stops
//   SLUICE_TEST_KEEP=1     keep every temp dir (datadirs, configs, logs)
//
// True when SLUICE_TEST_DIRECT=1: tests then connect straight to MariaDB, which
// is how the harness and the tests themselves are checked against the real
// server, and how a behaviour can be compared with and without sluice.
bool direct_mode();

// Starts sluice in front of `server` (upstream filled in when the config has
// none) unless direct_mode(); port() is where clients should connect.
class Target {
 public:
  explicit Target(const MariaDbServer& server, SluiceConfig config = {},
                  SluiceStartOptions options = {});

  bool direct() const { return sluice_ == nullptr; }
  int port() const { return direct() ? server_port_ : sluice_->port(); }
  // nullptr in direct mode.
  SluiceProcess* sluice() { return sluice_.get(); }
  // Root over TCP to port().
  ConnectOptions options() const;
  MysqlConn connect() const { return MysqlConn(options()); }
  // "sluice" or "direct", for messages.
  std::string name() const { return direct() ? "direct" : "sluice"; }

 private:
  int server_port_;
  std::unique_ptr<SluiceProcess> sluice_;
};

}  // namespace sluice::test
