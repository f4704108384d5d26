// A libmariadb (Connector/C) connection for tests: connect, run SQL, read rows, throw on error.
#pragma once

#include <mysql.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::test {

// An error reported by libmariadb: the server's (or the client library's) code,
// SQLSTATE and message.
class MysqlError : public std::runtime_error {
 public:
  MysqlError(unsigned int code, std::string sqlstate, const std::string& message);
  unsigned int code() const { return code_; }
  const std::string& sqlstate() const { return sqlstate_; }

 private:
  unsigned int code_;
  std::string sqlstate_;
};

struct ConnectOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string unix_socket;  // when set, connect over this socket instead of TCP
  std::string user = "root";
  std::string password;
  std::string database;
  unsigned long client_flags = CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS;
  bool local_infile = false;
  bool compress = false;
  std::string ssl_ca;  // non-empty: require TLS, verifying nothing but using this CA
  // Connect, read and write timeouts. Generous: the machine running the tests is small and busy.
  unsigned int timeout_seconds = 120;
};

using Row = std::vector<std::optional<std::string>>;  // nullopt is SQL NULL

class MysqlConn {
 public:
  // Throws MysqlError when the connection or the login fails.
  explicit MysqlConn(const ConnectOptions& options);
  ~MysqlConn();
  MysqlConn(const MysqlConn&) = delete;
  MysqlConn& operator=(const MysqlConn&) = delete;

  MYSQL* get() { return mysql_; }
  // Runs `sql` (several statements allowed) and discards every result; throws MysqlError.
  void exec(std::string_view sql);
  // Runs `sql` and returns the rows of its first result set (later ones are drained).
  std::vector<Row> rows(std::string_view sql);
  // The first column of the first row, nullopt for SQL NULL; throws when there is no row.
  std::optional<std::string> value(std::string_view sql);
  // value() for results known to be non-NULL.
  std::string scalar(std::string_view sql);
  // Throws MysqlError carrying this connection's current error.
  [[noreturn]] void fail() const;

 private:
  void drain_results();

  MYSQL* mysql_ = nullptr;
};

}  // namespace sluice::test
