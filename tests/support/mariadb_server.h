// A real mariadbd per test: throwaway datadir, free loopback port, gone when the object is.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/mysql_conn.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace sluice::test {

struct MariaDbOptions {
  // Extra mariadbd arguments, appended after the harness's own (so they win),
  // e.g. "--max-allowed-packet=64M", "--ssl-cert=...".
  std::vector<std::string> args;
  // When non-empty: the contents of a my.cnf passed with --defaults-file (for
  // servers configured the way mysql-test-run does). Empty: --no-defaults.
  // Either way the datadir, port, socket and log paths come from the harness.
  std::string my_cnf;
  // SQL run as root over the Unix socket once the server accepts connections
  // (several statements allowed). Note: CREATE USER needs no FLUSH PRIVILEGES
  // here because the grant tables are loaded normally; GRANT works as usual.
  std::string bootstrap_sql;
  // Add the harness's speed settings (no fsync per commit, no doublewrite,
  // small redo log). Tests that model mysql-test-run exactly may turn them off.
  bool fast_io = true;
  // How long start-up may take on a loaded machine.
  std::chrono::seconds start_timeout{120};
};

// Starts mariadbd on 127.0.0.1 and a free port in the constructor and returns
// once it accepts connections (throws with the error log's tail otherwise).
// The datadir is a copy of a template made once per build tree by
// mariadb-install-db (--auth-root-authentication-method=normal
// --skip-test-db), so each server starts in well under a second. Root has no
// password; 127.0.0.1 resolves to localhost, so TCP logins as root work.
class MariaDbServer {
 public:
  explicit MariaDbServer(MariaDbOptions options = {});
  ~MariaDbServer();  // stop() and remove the directory
  MariaDbServer(const MariaDbServer&) = delete;
  MariaDbServer& operator=(const MariaDbServer&) = delete;

  int port() const { return port_; }
  const std::string& socket_path() const { return socket_path_; }
  pid_t pid() const { return process_.pid(); }
  // The server's directory: data/, mysqld.sock, mysqld.err, my.cnf, ...
  const std::filesystem::path& dir() const { return dir_.path(); }
  std::filesystem::path datadir() const { return dir_ / "data"; }
  std::filesystem::path error_log() const { return dir_ / "mysqld.err"; }
  std::string error_log_text() const;
  bool running() { return process_.running(); }
  // Kills the server (SIGKILL: the data is throwaway) and reaps it. Idempotent.
  void stop();

  // Root over TCP straight to this server.
  ConnectOptions tcp_options() const;
  // Root over the Unix socket: for setup and checks that must not go through sluice.
  ConnectOptions socket_options() const;
  // A connection from socket_options().
  MysqlConn connect_socket() const { return MysqlConn(socket_options()); }

 private:
  bool start_once(const MariaDbOptions& options, std::string* failure);

  TempDir dir_{"sluice-mariadb"};
  int port_ = 0;
  std::string socket_path_;
  ChildProcess process_;
};

// The template datadir every MariaDbServer copies. Made by mariadb-install-db on
// first use (under the build tree, locked so parallel test processes make it
// once) and remade when `mariadbd --version` changes.
std::string mariadb_template_datadir();

}  // namespace sluice::test
