// The `mariadb` command-line client run against a port, as the tests run it.
#pragma once

#include <string>
#include <vector>

#include "tests/support/process.h"

namespace sluice::test {

// Runs `mariadb` against 127.0.0.1:port over TCP as root with `args` appended, `stdin_data` on
// its standard input (a long statement would not fit on a command line). Batch mode without
// column names keeps the output easy to compare; --no-defaults keeps the machine's my.cnf out.
ProcessResult mariadb_cli(int port, const std::vector<std::string>& args,
                          const std::string& stdin_data = {});

}  // namespace sluice::test
