// Connector/C through sluice: prepared statements, multi-results, LOCAL INFILE, big blobs, users.
#include <doctest/doctest.h>
#include <mysql.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tests/support/mariadb_server.h"
#include "tests/support/mysql_conn.h"
#include "tests/support/target.h"
#include "tests/support/temp_dir.h"

namespace sluice::test {
namespace {

// Every result of the last statement(s) on `mysql`: for each result set its
// rows, for each statement without one an empty entry. Fails the test on error.
std::vector<std::vector<Row>> all_results(MYSQL* mysql) {
  std::vector<std::vector<Row>> results;
  while (true) {
    MYSQL_RES* result = mysql_store_result(mysql);
    std::vector<Row> rows;
    if (result != nullptr) {
      const unsigned int columns = mysql_num_fields(result);
      while (MYSQL_ROW row = mysql_fetch_row(result)) {
        const unsigned long* lengths = mysql_fetch_lengths(result);
        Row values;
        for (unsigned int i = 0; i < columns; ++i) {
          values.push_back(row[i] ? std::optional<std::string>(std::string(row[i], lengths[i]))
                                  : std::nullopt);
        }
        rows.push_back(std::move(values));
      }
      mysql_free_result(result);
    } else {
      REQUIRE_MESSAGE(mysql_field_count(mysql) == 0, mysql_error(mysql));
    }
    results.push_back(std::move(rows));
    const int next = mysql_next_result(mysql);
    REQUIRE_MESSAGE(next <= 0, mysql_error(mysql));
    if (next < 0) return results;
  }
}

std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; i += 8) {
    const std::uint64_t word = rng();
    std::memcpy(data.data() + i, &word, std::min<std::size_t>(8, size - i));
  }
  return data;
}

// A prepared statement that the test owns; closed on scope exit.
class Statement {
 public:
  Statement(MYSQL* mysql, const std::string& sql) : stmt_(mysql_stmt_init(mysql)) {
    REQUIRE(stmt_ != nullptr);
    REQUIRE_MESSAGE(mysql_stmt_prepare(stmt_, sql.data(), sql.size()) == 0,
                    mysql_stmt_error(stmt_));
  }
  ~Statement() { mysql_stmt_close(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  MYSQL_STMT* get() { return stmt_; }
  void check(int rc) { REQUIRE_MESSAGE(rc == 0, mysql_stmt_error(stmt_)); }

 private:
  MYSQL_STMT* stmt_;
};

MYSQL_BIND bind_long(long long* value) {
  MYSQL_BIND bind{};
  bind.buffer_type = MYSQL_TYPE_LONGLONG;
  bind.buffer = value;
  return bind;
}

MYSQL_BIND bind_bytes(enum_field_types type, std::string* data, unsigned long* length) {
  MYSQL_BIND bind{};
  bind.buffer_type = type;
  bind.buffer = data->data();
  bind.buffer_length = data->size();
  *length = data->size();
  bind.length = length;
  return bind;
}

TEST_CASE("connector: prepared statements with parameters and binary results") {
  MariaDbServer server;
  Target target(server);
  MysqlConn conn(target.options());
  conn.exec(
      "CREATE DATABASE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, name VARCHAR(40), "
      "score DOUBLE, born DATETIME, note TEXT NULL)");

  Statement insert(conn.get(), "INSERT INTO app.t VALUES (?, ?, ?, ?, ?)");
  CHECK(mysql_stmt_param_count(insert.get()) == 5);
  for (long long id = 1; id <= 50; ++id) {
    std::string name = "name-" + std::to_string(id);
    unsigned long name_length = 0;
    double score = static_cast<double>(id) / 4;
    MYSQL_TIME born{};
    born.year = 2000 + static_cast<unsigned>(id % 20);
    born.month = 1 + static_cast<unsigned>(id % 12);
    born.day = 1 + static_cast<unsigned>(id % 28);
    born.hour = static_cast<unsigned>(id % 24);
    born.time_type = MYSQL_TIMESTAMP_DATETIME;
    my_bool note_is_null = id % 2 == 0;
    std::string note = "odd";
    unsigned long note_length = 0;
    MYSQL_BIND params[5] = {bind_long(&id), bind_bytes(MYSQL_TYPE_STRING, &name, &name_length)};
    params[2].buffer_type = MYSQL_TYPE_DOUBLE;
    params[2].buffer = &score;
    params[3].buffer_type = MYSQL_TYPE_DATETIME;
    params[3].buffer = &born;
    params[4] = bind_bytes(MYSQL_TYPE_STRING, &note, &note_length);
    params[4].is_null = &note_is_null;
    insert.check(mysql_stmt_bind_param(insert.get(), params));
    insert.check(mysql_stmt_execute(insert.get()));
    CHECK(mysql_stmt_affected_rows(insert.get()) == 1);
  }

  Statement select(conn.get(),
                   "SELECT id, name, score, born, note FROM app.t WHERE id > ? ORDER BY id");
  long long from = 40;
  MYSQL_BIND param = bind_long(&from);
  select.check(mysql_stmt_bind_param(select.get(), &param));
  select.check(mysql_stmt_execute(select.get()));

  long long id = 0;
  char name[64];
  unsigned long name_length = 0;
  double score = 0;
  MYSQL_TIME born{};
  char note[16];
  unsigned long note_length = 0;
  my_bool note_is_null = 0;
  MYSQL_BIND out[5] = {bind_long(&id)};
  out[1].buffer_type = MYSQL_TYPE_STRING;
  out[1].buffer = name;
  out[1].buffer_length = sizeof name;
  out[1].length = &name_length;
  out[2].buffer_type = MYSQL_TYPE_DOUBLE;
  out[2].buffer = &score;
  out[3].buffer_type = MYSQL_TYPE_DATETIME;
  out[3].buffer = &born;
  out[4].buffer_type = MYSQL_TYPE_STRING;
  out[4].buffer = note;
  out[4].buffer_length = sizeof note;
  out[4].length = &note_length;
  out[4].is_null = &note_is_null;
  select.check(mysql_stmt_bind_result(select.get(), out));
  select.check(mysql_stmt_store_result(select.get()));
  CHECK(mysql_stmt_num_rows(select.get()) == 10);
  long long expected = 41;
  while (mysql_stmt_fetch(select.get()) == 0) {
    CHECK(id == expected);
    CHECK(std::string(name, name_length) == "name-" + std::to_string(expected));
    CHECK(score == static_cast<double>(expected) / 4);
    CHECK(born.year == 2000 + expected % 20);
    CHECK(born.hour == expected % 24);
    CHECK(static_cast<bool>(note_is_null) == (expected % 2 == 0));
    if (!note_is_null) CHECK(std::string(note, note_length) == "odd");
    ++expected;
  }
  CHECK(expected == 51);
}

TEST_CASE("connector: multi-statements return every result set in order") {
  MariaDbServer server;
  Target target(server);
  MysqlConn conn(target.options());
  conn.exec("CREATE DATABASE app; CREATE TABLE app.t (a INT)");
  const std::string sql =
      "SELECT 1; SELECT 'a', 'b' UNION ALL SELECT 'c', 'd'; INSERT INTO app.t VALUES (1), (2);"
      "SELECT COUNT(*) FROM app.t; DO 1";
  REQUIRE_MESSAGE(mysql_real_query(conn.get(), sql.data(), sql.size()) == 0,
                  mysql_error(conn.get()));
  const auto results = all_results(conn.get());
  REQUIRE(results.size() == 5);
  CHECK(results[0] == std::vector<Row>{{"1"}});
  CHECK(results[1] == std::vector<Row>{{"a", "b"}, {"c", "d"}});
  CHECK(results[2].empty());
  CHECK(results[3] == std::vector<Row>{{"2"}});
  CHECK(results[4].empty());

  // An error in the middle ends the batch; the connection stays usable.
  const std::string failing = "SELECT 1; SELECT * FROM app.missing; SELECT 3";
  REQUIRE(mysql_real_query(conn.get(), failing.data(), failing.size()) == 0);
  MYSQL_RES* first = mysql_store_result(conn.get());
  REQUIRE(first != nullptr);
  mysql_free_result(first);
  CHECK(mysql_next_result(conn.get()) > 0);
  CHECK(mysql_errno(conn.get()) == 1146);
  CHECK(std::string(mysql_sqlstate(conn.get())) == "42S02");
  CHECK(conn.scalar("SELECT 'still here'") == "still here");
}

TEST_CASE("connector: a stored procedure returns two result sets and a final status") {
  MariaDbServer server;
  Target target(server);
  MysqlConn conn(target.options());
  conn.exec(
      "CREATE DATABASE app; USE app;"
      "CREATE PROCEDURE two_sets(IN n INT) BEGIN "
      "  SELECT n AS first; SELECT n * 2 AS second, 'x' AS third UNION ALL SELECT n * 3, 'y'; "
      "END");
  for (int round = 0; round < 3; ++round) {
    const std::string call = "CALL app.two_sets(" + std::to_string(round + 1) + ")";
    REQUIRE_MESSAGE(mysql_real_query(conn.get(), call.data(), call.size()) == 0,
                    mysql_error(conn.get()));
    const auto results = all_results(conn.get());
    // Two result sets, then the CALL's own OK.
    REQUIRE(results.size() == 3);
    const std::string n = std::to_string(round + 1);
    CHECK(results[0] == std::vector<Row>{{n}});
    CHECK(results[1] == std::vector<Row>{{std::to_string(2 * (round + 1)), "x"},
                                         {std::to_string(3 * (round + 1)), "y"}});
    CHECK(results[2].empty());
  }
}

TEST_CASE("connector: LOAD DATA LOCAL INFILE streams a file to the server") {
  MariaDbServer server;
  Target target(server);
  ConnectOptions options = target.options();
  options.local_infile = true;
  MysqlConn conn(options);
  conn.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, word VARCHAR(64))");

  TempDir dir("sluice-infile");
  std::string contents;
  constexpr int kRows = 20000;  // ~600 KB: many packets of file data
  for (int i = 0; i < kRows; ++i) {
    contents += std::to_string(i) + "\tword-" + std::to_string(i * 7919 % 100003) + "\n";
  }
  write_file(dir / "rows.tsv", contents);
  const std::string load =
      "LOAD DATA LOCAL INFILE '" + (dir / "rows.tsv").string() + "' INTO TABLE app.t";
  REQUIRE_MESSAGE(mysql_real_query(conn.get(), load.data(), load.size()) == 0,
                  mysql_error(conn.get()));
  CHECK(mysql_affected_rows(conn.get()) == kRows);
  CHECK(conn.scalar("SELECT COUNT(*) FROM app.t") == std::to_string(kRows));
  CHECK(conn.scalar("SELECT word FROM app.t WHERE id = 12345") ==
        "word-" + std::to_string(12345 * 7919 % 100003));
  // A missing file is a client-side error the server is told about; the session survives.
  const std::string missing = "LOAD DATA LOCAL INFILE '/nonexistent/file' INTO TABLE app.t";
  CHECK(mysql_real_query(conn.get(), missing.data(), missing.size()) != 0);
  CHECK(conn.scalar("SELECT COUNT(*) FROM app.t") == std::to_string(kRows));
}

TEST_CASE("connector: a 40 MiB LONGBLOB goes in and comes back bit-exact") {
  MariaDbServer server({.args = {"--max-allowed-packet=64M"}});
  Target target(server);
  MysqlConn conn(target.options());
  conn.exec("CREATE DATABASE app; CREATE TABLE app.blobs (id INT PRIMARY KEY, b LONGBLOB)");

  // Random bytes: every byte value, nothing a compressor or escaper could hide.
  const std::size_t kSize = 40u << 20;
  std::string blob = random_bytes(kSize, 2024);

  {  // In: one COM_STMT_EXECUTE of ~40 MiB, i.e. three 16 MiB continuation frames.
    Statement insert(conn.get(), "INSERT INTO app.blobs VALUES (1, ?)");
    unsigned long length = 0;
    MYSQL_BIND param = bind_bytes(MYSQL_TYPE_LONG_BLOB, &blob, &length);
    insert.check(mysql_stmt_bind_param(insert.get(), &param));
    insert.check(mysql_stmt_execute(insert.get()));
  }
  CHECK(conn.scalar("SELECT LENGTH(b) FROM app.blobs WHERE id = 1") == std::to_string(kSize));

  // Out through the text protocol: one row packet of ~40 MiB.
  const auto text_rows = conn.rows("SELECT b FROM app.blobs WHERE id = 1");
  REQUIRE(text_rows.size() == 1);
  REQUIRE(text_rows[0][0].has_value());
  CHECK(text_rows[0][0]->size() == kSize);
  CHECK_MESSAGE(*text_rows[0][0] == blob, "text-protocol blob differs");  // no 40 MiB dump

  // Out through the binary protocol, into a preallocated buffer.
  Statement select(conn.get(), "SELECT b FROM app.blobs WHERE id = 1");
  select.check(mysql_stmt_execute(select.get()));
  std::string back(kSize, '\0');
  unsigned long length = 0;
  MYSQL_BIND out = bind_bytes(MYSQL_TYPE_LONG_BLOB, &back, &length);
  select.check(mysql_stmt_bind_result(select.get(), &out));
  REQUIRE(mysql_stmt_fetch(select.get()) == 0);
  CHECK(length == kSize);
  CHECK_MESSAGE(back == blob, "binary-protocol blob differs");
}

TEST_CASE("connector: change user, ping, and many queries on one connection") {
  MariaDbServer server({.bootstrap_sql = "CREATE USER 'app'@'localhost' IDENTIFIED BY 'pa55';"
                                         "CREATE DATABASE appdb;"
                                         "GRANT ALL ON appdb.* TO 'app'@'localhost';"});
  Target target(server);
  MysqlConn conn(target.options());
  const unsigned long thread_id = mysql_thread_id(conn.get());
  CHECK(mysql_ping(conn.get()) == 0);

  REQUIRE_MESSAGE(mysql_change_user(conn.get(), "app", "pa55", "appdb") == 0,
                  mysql_error(conn.get()));
  CHECK(conn.scalar("SELECT CURRENT_USER()") == "app@localhost");
  CHECK(conn.scalar("SELECT DATABASE()") == "appdb");
  // A wrong password is refused by the server; libmariadb reports it.
  CHECK(mysql_change_user(conn.get(), "app", "wrong", "appdb") != 0);
  CHECK(mysql_errno(conn.get()) == 1045);
  // MariaDB keeps the previous login after a refused change; so must the proxied session.
  CHECK(conn.scalar("SELECT CURRENT_USER()") == "app@localhost");
  REQUIRE_MESSAGE(mysql_change_user(conn.get(), "root", "", nullptr) == 0, mysql_error(conn.get()));
  CHECK(conn.scalar("SELECT CURRENT_USER()") == "root@localhost");
  CHECK(conn.scalar("SELECT CONNECTION_ID()") == std::to_string(thread_id));

  // 2,000 queries without a reconnect: same server thread before and after.
  MysqlConn steady(target.options());
  const unsigned long steady_id = mysql_thread_id(steady.get());
  for (int i = 0; i < 2000; ++i) {
    const std::string expected = std::to_string(i * 3);
    REQUIRE(steady.scalar("SELECT " + std::to_string(i) + " * 3") == expected);
    if (i % 500 == 0) REQUIRE(mysql_ping(steady.get()) == 0);
  }
  CHECK(steady.scalar("SELECT CONNECTION_ID()") == std::to_string(steady_id));
  CHECK(thread_id != steady_id);
}

}  // namespace
}  // namespace sluice::test
