// A real mariadbd per test: throwaway datadir, free loopback port, gone when the object is.
#include "tests/support/mariadb_server.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "tests/support/free_port.h"

#ifndef SLUICE_TEST_WORK_DIR
#define SLUICE_TEST_WORK_DIR "/tmp"
#endif

namespace sluice::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The template's redo log size; servers use the same so start-up does not resize it.
constexpr const char* kRedoLogSize = "--innodb-log-file-size=10M";

bool running_as_root() {
  return ::geteuid() == 0;
}

std::string server_version() {
  static const std::string version = [] {
    const auto result = run_process({"mariadbd", "--version"}, std::chrono::seconds(60));
    if (!result.status.success()) {
      throw std::runtime_error("mariadbd --version failed (is mariadb-server installed?): " +
                               result.err);
    }
    return result.out;
  }();
  return version;
}

// Holds an flock on a file for the lifetime of the object, so test processes
// running in parallel create the template once.
class FileLock {
 public:
  explicit FileLock(const fs::path& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error("cannot open lock " + path.string());
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) throw std::runtime_error("flock " + path.string() + " failed");
    }
  }
  ~FileLock() { ::close(fd_); }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

void create_template(const fs::path& root, const std::string& version) {
  const fs::path staging = root.string() + ".staging";
  fs::remove_all(staging);
  fs::create_directories(staging);
  std::vector<std::string> argv = {"mariadb-install-db",
                                   "--no-defaults",
                                   "--datadir=" + (staging / "data").string(),
                                   "--auth-root-authentication-method=normal",
                                   "--skip-test-db",
                                   kRedoLogSize};
  if (running_as_root()) argv.push_back("--user=root");
  const auto result = run_process(argv, std::chrono::minutes(5));
  if (!result.status.success()) {
    throw std::runtime_error("mariadb-install-db failed (" + result.status.describe() +
                             "): " + tail_lines(result.out + result.err, 30));
  }
  write_file(staging / "version", version);
  fs::remove_all(root);
  fs::rename(staging, root);
}

}  // namespace

std::string mariadb_template_datadir() {
  static std::mutex mutex;
  const std::lock_guard guard(mutex);
  const fs::path work = SLUICE_TEST_WORK_DIR;
  fs::create_directories(work);
  const fs::path root = work / ("mariadb-template-uid" + std::to_string(::geteuid()));
  const std::string version = server_version();
  const FileLock lock(root.string() + ".lock");
  // A package upgrade changes the version line; the template is remade then.
  if (read_file(root / "version") != version) create_template(root, version);
  return (root / "data").string();
}

MariaDbServer::MariaDbServer(MariaDbOptions options) {
  const std::string template_dir = mariadb_template_datadir();
  std::string failures;
  // Another process may take the chosen port between free_port() and bind;
  // mariadbd then exits at once and a new port is tried.
  for (int attempt = 0; attempt < 3; ++attempt) {
    fs::remove_all(datadir());
    fs::copy(template_dir, datadir(), fs::copy_options::recursive);
    std::string failure;
    if (start_once(options, &failure)) break;
    failures += failure + "\n";
    if (failure.find("Bind on TCP/IP port") == std::string::npos) {
      throw std::runtime_error("mariadbd did not start: " + failure);
    }
  }
  if (!process_.running()) throw std::runtime_error("mariadbd did not start: " + failures);

  if (!options.bootstrap_sql.empty()) {
    MysqlConn root(socket_options());
    root.exec(options.bootstrap_sql);
  }
}

bool MariaDbServer::start_once(const MariaDbOptions& options, std::string* failure) {
  port_ = free_port();
  socket_path_ = (dir_ / "mysqld.sock").string();
  fs::remove(error_log());
  std::vector<std::string> argv = {"mariadbd"};
  if (options.my_cnf.empty()) {
    argv.push_back("--no-defaults");
  } else {
    write_file(dir_ / "my.cnf", options.my_cnf);
    argv.push_back("--defaults-file=" + (dir_ / "my.cnf").string());
  }
  if (running_as_root()) argv.push_back("--user=root");
  argv.insert(argv.end(), {
                              "--datadir=" + datadir().string(),
                              "--port=" + std::to_string(port_),
                              "--bind-address=127.0.0.1",
                              "--socket=" + socket_path_,
                              "--pid-file=" + (dir_ / "mysqld.pid").string(),
                              "--log-error=" + error_log().string(),
                              "--tmpdir=" + dir_.str(),
                              kRedoLogSize,
                          });
  if (options.fast_io) {
    argv.insert(argv.end(), {"--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
                             "--sync-binlog=0", "--innodb-buffer-pool-size=64M"});
  }
  argv.insert(argv.end(), options.args.begin(), options.args.end());
  write_file(dir_ / "command", shell_quote(argv) + "\n");

  SpawnOptions spawn;
  spawn.stdout_path = (dir_ / "mysqld.out").string();
  spawn.stderr_path = spawn.stdout_path;
  process_ = ChildProcess(argv, spawn);

  ConnectOptions probe = socket_options();
  probe.timeout_seconds = 5;
  const auto deadline = Clock::now() + options.start_timeout;
  while (Clock::now() < deadline) {
    if (!process_.running()) {
      *failure = process_.exit_status()->describe() + "; " + shell_quote(argv) + "\n" +
                 tail_lines(error_log_text() + read_file(dir_ / "mysqld.out"), 25);
      return false;
    }
    if (fs::exists(socket_path_)) {
      try {
        MysqlConn ready(probe);
        return true;
      } catch (const MysqlError&) {
        // Not accepting yet (or still initialising); try again shortly.
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  process_.kill();
  *failure = "not accepting connections after " + std::to_string(options.start_timeout.count()) +
             " s; " + tail_lines(error_log_text(), 25);
  throw std::runtime_error("mariadbd did not start: " + *failure);
}

MariaDbServer::~MariaDbServer() {
  stop();
}

void MariaDbServer::stop() {
  process_.kill();
}

std::string MariaDbServer::error_log_text() const {
  return read_file(error_log());
}

ConnectOptions MariaDbServer::tcp_options() const {
  ConnectOptions options;
  options.host = "127.0.0.1";
  options.port = port_;
  return options;
}

ConnectOptions MariaDbServer::socket_options() const {
  ConnectOptions options;
  options.host = "localhost";
  options.unix_socket = socket_path_;
  return options;
}

}  // namespace sluice::test
