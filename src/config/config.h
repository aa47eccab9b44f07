// Server configuration: the TOML file (docs/config.md) plus command-line overrides.
// A field's default is its initializer here (or a constant in defaults.h where
// another layer states it too). How a key of the file is read, its type and its
// help are declared once per key in the settings table (settings.h, settings.cc),
// which also renders these defaults for `offload serve --help` and is checked
// against docs/config.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "auth/scope.h"
#include "config/defaults.h"
#include "util/error.h"

namespace offload {

using Millis = std::chrono::milliseconds;

// One [tasks.NAME] table.
struct TaskConfig {
  std::string name;
  // "builtin:NAME" runs an in-process handler from the TaskRegistry.
  std::string run;
  // Resource units one job holds while it runs. Default {cpu = 1}.
  std::map<std::string, std::int64_t> uses{{"cpu", 1}};
  // Queued jobs beyond this are refused with 429.
  std::int64_t max_queued = 100000;
  // A running job past this is canceled and fails with error.type "timeout".
  // Zero: no limit.
  Millis timeout{0};
  // Overrides the handler's own content type. Empty: the handler's.
  std::string content_type;
  // A failed execution is tried again up to this many times (0: never). Input the
  // task rejects ("invalid_input") and cancellations are not retried.
  std::int64_t retries = 0;
  // Delay before retry n (1-based): retry_backoff * 2^(n-1), capped at
  // retry_backoff_max, times a random factor in [0.5, 1] so that retries of many
  // jobs that failed together do not arrive together.
  Millis retry_backoff{1000};
  Millis retry_backoff_max{300'000};

  // Process tasks (docs/config.md; docs/worker-protocol.md). A task has exactly one
  // of run, command, worker and python.
  // One process per job: program and arguments, no shell. Input on stdin, result
  // on stdout.
  std::vector<std::string> command;
  // Persistent worker processes speaking newline-delimited JSON.
  std::vector<std::string> worker;
  // Persistent Python workers running offload's bundled runner, which imports
  // "module:attribute" once per process and calls it with each job's input.
  std::string python;
  // Folders put first on the workers' sys.path; relative ones are resolved against
  // the config file's folder when it is loaded.
  std::vector<std::string> python_path;
  // The Python to run. Empty: python3 on PATH. A relative path with a slash is taken
  // from the config file's folder (".venv/bin/python").
  std::string interpreter;
  // "arg": the function gets the input as one argument; "kwargs": an object input
  // is spread as keyword arguments.
  std::string call = "arg";
  // Worker processes to keep running; 0: as many as `uses` lets run at once.
  std::int64_t workers = 0;
  // Working directory of the processes. Empty: the server's. A task read from a file
  // defaults to the file's folder, and a relative path in it is resolved against
  // that folder, so that the file means the same wherever the server starts.
  std::string cwd;
  // Variables added to (or replacing in) the server's environment.
  std::map<std::string, std::string> env;
  // Between SIGTERM and SIGKILL when a process is stopped.
  Millis kill_grace{kDefaultKillGrace};
  // A worker is replaced after this many jobs; 0: never.
  std::int64_t max_jobs_per_worker = 0;
  // A worker whose RSS exceeds this many bytes after a job is replaced; 0: never.
  std::int64_t max_rss = 0;
  // Output beyond this many bytes fails the job.
  std::int64_t max_result = kDefaultMaxResult;

  // Files in (docs/api.md#files). Content types the task takes as a binary body or a
  // multipart file ("image/png", "image/*", "*/*"); empty: JSON only, the rest 415.
  std::vector<std::string> accept;
  // The largest upload (a body, or all files of a multipart request), in bytes.
  std::int64_t max_input = std::int64_t{1} << 30;
  // How a command gets a job's file: "stdin" (its bytes on stdin) or "path" (the
  // JSON input on stdin, the files' paths in OFFLOAD_INPUT_PATH and OFFLOAD_INPUT_DIR).
  std::string input_as = "stdin";
  // How a python function gets a job's file: "path" (a str) or "bytes".
  std::string python_input = "path";
};

// One token of [auth]: given inline (`tokens`) or in its `tokens_file`
// (docs/security.md).
struct TokenConfig {
  // The tenant the token speaks for: its jobs are this name's. Tokens may share a
  // name (an old and a new one while a token is rotated).
  std::string name;
  std::string sha256;  // The token's SHA-256, 64 hex digits; the token itself is never kept.
  ScopeSet scopes;
  // The tenant's share and quotas (TenantPolicy), where this token sets them; the
  // tokens of one name may not set them differently.
  std::optional<double> weight;
  std::optional<std::int64_t> max_queued;
  std::optional<std::map<std::string, std::int64_t>> max_running;
  std::optional<double> submit_rate;
  std::string where;  // "FILE:LINE: " of its table, for errors that name it.
};

// What a tenant may have (docs/security.md, "Quotas and fair share"): its weight in
// the fair share of each resource's time, and its quotas. 0 (or none) is no limit.
struct TenantPolicy {
  double weight = 1;
  std::int64_t max_queued = 0;                      // Its jobs waiting to start, cluster-wide.
  std::map<std::string, std::int64_t> max_running;  // Units of a resource its running jobs hold.
  double submit_rate = 0;                           // Submits per second (a token bucket).
};

// The [auth] table. Without one, nobody is asked who they are: there is one tenant.
struct AuthConfig {
  bool enabled = false;  // The file has an [auth] table.
  // A file of [[tokens]] tables, read at start and again on SIGHUP; relative to the
  // config file's folder. Empty: the inline tokens alone.
  std::string tokens_file;
  std::vector<TokenConfig> tokens;       // Given inline in [auth].
  std::vector<TokenConfig> file_tokens;  // Read from tokens_file at start (a reload makes its own).
  // The scope GET /metrics takes: "admin", or "read" for a scraper's token.
  std::string metrics_scope = "admin";
  // Per tenant, on each server (docs/security.md#limits): open event streams, requests
  // waiting for a job (?wait=, Prefer: wait, /run), requests a second (0: no limit).
  std::int64_t max_streams = 32;
  std::int64_t max_waits = 1024;
  double request_rate = 0;
};

struct ServerConfig {
  std::string listen = "127.0.0.1:8080";
  unsigned threads = 0;                     // 0: one I/O thread per core.
  std::int64_t max_body = kDefaultMaxBody;  // Bytes; larger request bodies get 413.
  Millis max_wait{60'000};                  // Cap on `Prefer: wait=N` and `?wait=N`.
  Millis run_timeout{300'000};              // How long POST /v1/tasks/NAME/run waits.
  Millis retention{24 * 3600 * 1000};       // Finished jobs are removed after this.
  Millis shutdown_grace{30'000};            // Running jobs may finish within this.
  // "sqlite:PATH" (durable, the default), a PostgreSQL connection string
  // ("postgres://..."), or "memory" (lost at exit).
  std::string store = "sqlite:./offload-data/offload.db";
  // SQLite's synchronous setting: true for FULL, false for NORMAL.
  bool sqlite_synchronous_full = true;
  // Caps the SQLite file; 0: no cap. Past it, submits get 503 as on a full disk.
  std::int64_t sqlite_max_bytes = 0;
  // With a PostgreSQL store: connections to it, at least 2 (a writer and readers).
  int postgres_connections = 4;
  // With a PostgreSQL store, this node's part in the cluster (docs/cluster.md): "all"
  // (takes HTTP and runs jobs), "api" (takes HTTP, runs nothing) or "worker" (runs
  // jobs; serves /healthz only).
  std::string role = "all";
  // How long a node's lease lasts without a renewal (renewed every third of it), and
  // how long past it a node is left before its running jobs are rescued.
  Millis lease_ttl{15'000};
  Millis lease_grace{5'000};
  // With a PostgreSQL store: how long, at most, a node expects a job it claims ahead
  // of a free slot to wait for one (docs/cluster.md); 0: a node claims only what
  // starts at once.
  Millis claim_ahead{5};
  // How long an Idempotency-Key is remembered.
  Millis idempotency_ttl{24 * 3600 * 1000};
  // Connections (docs/config.md). 0: derived from RLIMIT_NOFILE at start.
  std::int64_t max_connections = 0;
  Millis idle_timeout{kDefaultIdleTimeout};      // Between requests on a keep-alive connection.
  Millis header_timeout{kDefaultHeaderTimeout};  // First byte to end of header; no-progress bound on a body.
  Millis write_timeout{kDefaultWriteTimeout};    // A response write that makes no progress this long is dropped.
  // Web origins ("https://app.example:8443") whose pages may call the API (with
  // CORS headers). Empty: none but the server's own. "*": any page, which lets every
  // site a user visits submit and cancel jobs.
  std::vector<std::string> allowed_origins;
  // Largest body of a GET /v1/jobs answer, in bytes; a page over it (with its results,
  // ?include=result) is refused with 422, and the store stops reading results past it.
  std::int64_t max_list_bytes = 16 << 20;
  // Where uploads and file results live. Empty: NAME-files beside the SQLite database NAME.db,
  // offload-files (in the working directory) with PostgreSQL, or a temporary folder
  // (removed at exit) with the memory store.
  std::string files_dir;
  // Binary results larger than this are kept in a file under files_dir, not in memory
  // or in the database.
  std::int64_t max_memory_result = kDefaultMaxMemoryResult;
  // Where each answered request is logged: "" (off), "stderr", or a file appended to.
  std::string access_log;
  std::string access_log_format = "json";  // "json" (one object per line) or "common" (NCSA).
  bool log_jobs = true;                    // An info line per finished job.
  // Without [auth], a listen address other than loopback is refused unless this is
  // set: an open port would let anyone on the network run and read every job.
  bool insecure_no_auth = false;
  // PEM files: the certificate chain and its private key. Both set: the server speaks
  // TLS (1.2 and later) only, and reads them again on SIGHUP. Relative paths are taken
  // from the config file's folder.
  std::string tls_cert;
  std::string tls_key;
  // Requests a second one connection may send (a burst of a second's worth); past it,
  // 429 and the connection is closed. 0: no limit.
  double connection_rate = 0;
  AuthConfig auth;
  // Resource name -> capacity. "cpu" defaults to the number of cores.
  std::map<std::string, std::int64_t> resources;
  // Task name -> its config. Always holds the built-ins (noop, sleep, cpu,
  // mandelbrot) unless the file redefines them.
  std::map<std::string, TaskConfig> tasks;
};

// Defaults plus the built-in tasks: what `offload serve` runs without --config.
ServerConfig DefaultConfig();

// Reads `path` on top of DefaultConfig(). Errors name the file and line.
ErrorOr<ServerConfig> LoadConfigFile(const std::string& path);
// Same, from text (for tests); `source_name` stands in for the file name.
ErrorOr<ServerConfig> ParseConfig(std::string_view toml_text, const std::string& source_name);

// Checks cross-references: every task's resources exist with room for one of its
// jobs, and at most 64 resources are declared.
Status ValidateConfig(const ServerConfig& config);

// Parses "250ms", "30s", "5m", "24h" or a bare number of seconds.
bool ParseDuration(std::string_view text, Millis* out);
// Parses "512MiB", "2GiB", "100MB", "4096B" or a bare number of bytes.
bool ParseByteSize(std::string_view text, std::int64_t* out);
// Parses a rate "100/s", "600/m", "10/h" (a positive number per unit) into per second.
bool ParseRate(std::string_view text, double* per_second);
// A rate as the config writes it: "100/s", or "0" for none.
std::string FormatRate(double per_second);

}  // namespace offload
