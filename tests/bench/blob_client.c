/* blob_client: times large-BLOB round trips through one port, driven line by line by bench.py.
 *
 *   blob_client PORT MIB
 *
 * Connects to 127.0.0.1:PORT as root to database sbtest (Connector/C, TCP, no TLS, no
 * compression), makes a MIB MiB pseudo-random blob, prepares "INSERT INTO blobs (b) VALUES (?)"
 * and then answers one command per stdin line with one stdout line, so the driver can read the
 * proxy's CPU and memory right around each step:
 *   insert      -> "ok SECONDS ID"     COM_STMT_EXECUTE carrying the blob: one logical packet of
 *                                      MIB MiB from the client (continuation frames)
 *   select ID   -> "ok SECONDS match"  SELECT b FROM blobs WHERE id = ID: one MIB MiB row from
 *                                      the server; "mismatch" if the bytes differ from the blob
 *   delete ID   -> "ok SECONDS"
 *   quit
 * Errors: "error MESSAGE" (then the driver gives up on this client).
 * The insert is a prepared statement because MariaDB's lexer takes ~1.2 s for a 64 MiB quoted
 * literal, which would hide the transport entirely; the binary protocol copies the value as is. */
#include <mysql.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void reply_error(const char *what, const char *msg) {
  printf("error %s: %s\n", what, msg);
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s PORT MIB\n", argv[0]);
    return 2;
  }
  const unsigned port = (unsigned)atoi(argv[1]);
  const size_t size = (size_t)atoi(argv[2]) << 20;
  unsigned char *blob = malloc(size);
  if (!blob) {
    reply_error("malloc", "out of memory");
    return 1;
  }
  uint64_t x = 0x9E3779B97F4A7C15ull; /* xorshift64: incompressible enough, reproducible */
  for (size_t i = 0; i < size; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    memcpy(blob + i, &x, size - i < 8 ? size - i : 8);
  }

  MYSQL *db = mysql_init(NULL);
  unsigned long max_packet = 1ul << 30;
  unsigned int protocol = MYSQL_PROTOCOL_TCP, timeout = 20;
  my_bool no = 0;
  mysql_options(db, MYSQL_OPT_PROTOCOL, &protocol);
  mysql_options(db, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  mysql_options(db, MYSQL_OPT_MAX_ALLOWED_PACKET, &max_packet);
  mysql_options(db, MYSQL_OPT_SSL_ENFORCE, &no);
  mysql_optionsv(db, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &no);
  if (!mysql_real_connect(db, "127.0.0.1", "root", "", "sbtest", port, NULL, 0)) {
    reply_error("connect", mysql_error(db));
    return 1;
  }
  MYSQL_STMT *ins = mysql_stmt_init(db);
  const char *ins_sql = "INSERT INTO blobs (b) VALUES (?)";
  if (!ins || mysql_stmt_prepare(ins, ins_sql, strlen(ins_sql))) {
    reply_error("prepare", mysql_error(db));
    return 1;
  }
  MYSQL_BIND bind;
  unsigned long blob_len = (unsigned long)size;
  memset(&bind, 0, sizeof bind);
  bind.buffer_type = MYSQL_TYPE_LONG_BLOB;
  bind.buffer = blob;
  bind.buffer_length = blob_len;
  bind.length = &blob_len;
  if (mysql_stmt_bind_param(ins, &bind)) {
    reply_error("bind", mysql_stmt_error(ins));
    return 1;
  }
  printf("ready\n");
  fflush(stdout);

  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    unsigned long long id = 0;
    char sql[128];
    if (strncmp(line, "insert", 6) == 0) {
      const double t0 = now();
      if (mysql_stmt_execute(ins)) {
        reply_error("insert", mysql_stmt_error(ins));
        continue;
      }
      printf("ok %.6f %llu\n", now() - t0, (unsigned long long)mysql_stmt_insert_id(ins));
    } else if (sscanf(line, "select %llu", &id) == 1) {
      snprintf(sql, sizeof sql, "SELECT b FROM blobs WHERE id = %llu", id);
      const double t0 = now();
      if (mysql_real_query(db, sql, strlen(sql))) {
        reply_error("select", mysql_error(db));
        continue;
      }
      MYSQL_RES *res = mysql_use_result(db);
      MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
      unsigned long *lengths = row ? mysql_fetch_lengths(res) : NULL;
      const double c0 = now(); /* the comparison is the client's work: kept out of the timing */
      const int match = row && lengths && lengths[0] == size && memcmp(row[0], blob, size) == 0;
      const double compare = now() - c0;
      if (res) {
        while (mysql_fetch_row(res)) {
        }
        mysql_free_result(res);
      }
      const double t1 = now();
      if (!row && mysql_errno(db)) {
        reply_error("select", mysql_error(db));
        continue;
      }
      printf("ok %.6f %s\n", t1 - t0 - compare, match ? "match" : "mismatch");
    } else if (sscanf(line, "delete %llu", &id) == 1) {
      snprintf(sql, sizeof sql, "DELETE FROM blobs WHERE id = %llu", id);
      const double t0 = now();
      if (mysql_real_query(db, sql, strlen(sql))) {
        reply_error("delete", mysql_error(db));
        continue;
      }
      printf("ok %.6f\n", now() - t0);
    } else if (strncmp(line, "quit", 4) == 0) {
      break;
    } else {
      reply_error("command", "unknown");
    }
    fflush(stdout);
  }
  mysql_stmt_close(ins);
  mysql_close(db);
  free(blob);
  return 0;
}
