// Probes shared by the timeout, upstream and EINTR tests: server sessions, metric deltas, timing.
#pragma once

#include <chrono>
#include <string>

#include "tests/support/metrics_scrape.h"
#include "tests/support/mysql_conn.h"
#include "tests/support/raw_mysql.h"

namespace sluice::test::fault {

// Client sessions the server has open, the monitoring connection excluded.
int server_sessions(MysqlConn& monitor);
// Waits until the server has `sessions` client sessions besides the monitor.
bool wait_server_sessions(MysqlConn& monitor, int sessions, std::chrono::milliseconds timeout);

// One metric sample from sluice's endpoint on `metrics_port` (0 when absent).
double scrape(int metrics_port, const std::string& name, const Labels& labels = {});

// A ReadResult in words, for messages: "ERR 1159 (08S01) seq 1: ...", "eof", "packet seq 3".
std::string describe(const ReadResult& read);

// The local port of a connected socket.
int local_port(int fd);
// The peer's port of a connected socket.
int remote_port(int fd);
// The TCP state ("ESTABLISHED", "FIN_WAIT1", "TIME_WAIT", ...) of the IPv4
// socket 127.0.0.1:local_port <-> 127.0.0.1:remote_port as /proc/net/tcp shows
// it (any process's, orphaned ones included), or "absent".
std::string tcp_state(int local_port, int remote_port);

}  // namespace sluice::test::fault
