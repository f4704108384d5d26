// Throwaway TLS material for tests: a CA and a server and client certificate made with `openssl`.
#include "tests/support/tls_certs.h"

#include <stdexcept>

#include "tests/support/process.h"

namespace sluice::test {
namespace {

void openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto result = run_process(argv, std::chrono::seconds(60));
  if (!result.status.success()) {
    throw std::runtime_error(shell_quote(argv) + " failed (" + result.status.describe() +
                             "): " + result.err);
  }
}

}  // namespace

TlsCerts::TlsCerts() {
  const std::string dir = dir_.str() + "/";
  const std::vector<std::string> ec_key = {"-newkey", "ec", "-pkeyopt",
                                           "ec_paramgen_curve:prime256v1", "-nodes"};
  auto req = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"req"};
    argv.insert(argv.end(), ec_key.begin(), ec_key.end());
    argv.insert(argv.end(), args.begin(), args.end());
    openssl(argv);
  };
  req({"-x509", "-days", "3650", "-subj", "/CN=sluice test CA", "-keyout", dir + "ca-key.pem",
       "-out", dir + "ca.pem"});
  write_file(dir_ / "server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  const struct {
    const char* name;
    const char* subject;
    const char* extensions;
  } leaves[] = {{"server", "/CN=127.0.0.1", "server.ext"},
                {"client", "/CN=sluice test client", ""}};
  for (const auto& leaf : leaves) {
    const std::string base = dir + leaf.name;
    req({"-subj", leaf.subject, "-keyout", base + "-key.pem", "-out", base + ".csr"});
    std::vector<std::string> sign = {"x509",
                                     "-req",
                                     "-days",
                                     "3650",
                                     "-in",
                                     base + ".csr",
                                     "-CA",
                                     dir + "ca.pem",
                                     "-CAkey",
                                     dir + "ca-key.pem",
                                     "-CAcreateserial",
                                     "-out",
                                     base + "-cert.pem"};
    if (*leaf.extensions != '\0') {
      sign.insert(sign.end(), {"-extfile", dir + leaf.extensions});
    }
    openssl(sign);
  }
}

std::vector<std::string> TlsCerts::server_args() const {
  return {"--ssl-ca=" + ca_cert(), "--ssl-cert=" + server_cert(), "--ssl-key=" + server_key()};
}

}  // namespace sluice::test
