// The `mariadb` command-line client run against a port, as the tests run it.
#include "tests/support/mariadb_cli.h"

#include <chrono>

namespace sluice::test {

ProcessResult mariadb_cli(int port, const std::vector<std::string>& args,
                          const std::string& stdin_data) {
  std::vector<std::string> argv = {"mariadb",
                                   "--no-defaults",
                                   "--protocol=TCP",
                                   "-h",
                                   "127.0.0.1",
                                   "-P",
                                   std::to_string(port),
                                   "-u",
                                   "root",
                                   "--batch",
                                   "--skip-column-names",
                                   "--connect-timeout=60"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, std::chrono::minutes(2), {.stdin_data = stdin_data});
}

}  // namespace sluice::test
