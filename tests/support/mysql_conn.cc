// A libmariadb (Connector/C) connection for tests: connect, run SQL, read rows, throw on error.
#include "tests/support/mysql_conn.h"

#include <mutex>

namespace sluice::test {

MysqlError::MysqlError(unsigned int code, std::string sqlstate, const std::string& message)
    : std::runtime_error("ERROR " + std::to_string(code) + " (" + sqlstate + "): " + message),
      code_(code),
      sqlstate_(std::move(sqlstate)) {}

MysqlConn::MysqlConn(const ConnectOptions& options) {
  // mysql_library_init is not thread-safe; make the first call exactly once.
  static std::once_flag library_ready;
  std::call_once(library_ready, [] { mysql_library_init(0, nullptr, nullptr); });
  mysql_ = mysql_init(nullptr);
  if (mysql_ == nullptr) throw MysqlError(2008, "HY000", "mysql_init: out of memory");
  const unsigned int timeout = options.timeout_seconds;
  mysql_options(mysql_, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  mysql_options(mysql_, MYSQL_OPT_READ_TIMEOUT, &timeout);
  mysql_options(mysql_, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
  if (options.local_infile) {
    const unsigned int on = 1;
    mysql_options(mysql_, MYSQL_OPT_LOCAL_INFILE, &on);
  }
  if (options.compress) mysql_options(mysql_, MYSQL_OPT_COMPRESS, nullptr);
  if (!options.ssl_ca.empty()) {
    mysql_ssl_set(mysql_, nullptr, nullptr, options.ssl_ca.c_str(), nullptr, nullptr);
    const my_bool enforce = 1;
    mysql_options(mysql_, MYSQL_OPT_SSL_ENFORCE, &enforce);
  }
  const unsigned int protocol =
      options.unix_socket.empty() ? MYSQL_PROTOCOL_TCP : MYSQL_PROTOCOL_SOCKET;
  mysql_options(mysql_, MYSQL_OPT_PROTOCOL, &protocol);
  const char* database = options.database.empty() ? nullptr : options.database.c_str();
  const char* socket = options.unix_socket.empty() ? nullptr : options.unix_socket.c_str();
  if (mysql_real_connect(
          mysql_, options.host.c_str(), options.user.c_str(), options.password.c_str(), database,
          static_cast<unsigned int>(options.port), socket, options.client_flags) == nullptr) {
    const MysqlError error(mysql_errno(mysql_), mysql_sqlstate(mysql_), mysql_error(mysql_));
    mysql_close(mysql_);
    mysql_ = nullptr;
    throw error;
  }
}

MysqlConn::~MysqlConn() {
  if (mysql_ != nullptr) mysql_close(mysql_);
}

void MysqlConn::fail() const {
  throw MysqlError(mysql_errno(mysql_), mysql_sqlstate(mysql_), mysql_error(mysql_));
}

void MysqlConn::drain_results() {
  while (true) {
    MYSQL_RES* result = mysql_store_result(mysql_);
    if (result != nullptr) {
      mysql_free_result(result);
    } else if (mysql_field_count(mysql_) != 0) {
      fail();
    }
    const int next = mysql_next_result(mysql_);
    if (next > 0) fail();
    if (next < 0) return;
  }
}

void MysqlConn::exec(std::string_view sql) {
  if (mysql_real_query(mysql_, sql.data(), sql.size()) != 0) fail();
  drain_results();
}

std::vector<Row> MysqlConn::rows(std::string_view sql) {
  if (mysql_real_query(mysql_, sql.data(), sql.size()) != 0) fail();
  std::vector<Row> rows;
  MYSQL_RES* result = mysql_store_result(mysql_);
  if (result == nullptr) {
    if (mysql_field_count(mysql_) != 0) fail();
  } else {
    const unsigned int columns = mysql_num_fields(result);
    while (MYSQL_ROW row = mysql_fetch_row(result)) {
      const unsigned long* lengths = mysql_fetch_lengths(result);
      Row values;
      for (unsigned int i = 0; i < columns; ++i) {
        if (row[i] == nullptr) {
          values.emplace_back(std::nullopt);
        } else {
          values.emplace_back(std::string(row[i], lengths[i]));
        }
      }
      rows.push_back(std::move(values));
    }
    mysql_free_result(result);
  }
  const int next = mysql_next_result(mysql_);
  if (next > 0) fail();
  if (next == 0) drain_results();
  return rows;
}

std::optional<std::string> MysqlConn::value(std::string_view sql) {
  const auto result = rows(sql);
  if (result.empty() || result.front().empty()) {
    throw MysqlError(0, "HY000", "no rows from: " + std::string(sql));
  }
  return result.front().front();
}

std::string MysqlConn::scalar(std::string_view sql) {
  auto v = value(sql);
  if (!v) throw MysqlError(0, "HY000", "NULL from: " + std::string(sql));
  return *v;
}

}  // namespace sluice::test
