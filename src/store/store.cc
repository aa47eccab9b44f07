#include "store/store.h"

#include "store/memory_store.h"
#include "store/pg_connection.h"
#include "store/postgres_store.h"
#include "store/sqlite_store.h"

namespace offload {

std::optional<std::string> PostgresConnInfo(const std::string& spec) {
  if (spec.rfind("postgres://", 0) == 0 || spec.rfind("postgresql://", 0) == 0) return spec;
  if (spec.rfind("postgres:", 0) == 0 && spec.size() > 9) return spec.substr(9);
  if (spec.rfind("postgresql:", 0) == 0 && spec.size() > 11) return spec.substr(11);
  return std::nullopt;
}

std::string RedactStoreSpec(const std::string& spec) {
  auto conninfo = PostgresConnInfo(spec);
  return conninfo ? "postgres (" + RedactConnInfo(*conninfo) + ")" : spec;
}

ErrorOr<std::unique_ptr<Store>> OpenStore(const StoreOptions& options) {
  const std::string& spec = options.spec;
  if (spec == "memory") return std::unique_ptr<Store>(std::make_unique<MemoryStore>());
  if (spec.rfind("sqlite:", 0) == 0 && spec.size() > 7) {
    auto store =
        SqliteStore::Open(SqliteOptions{spec.substr(7), options.sqlite_synchronous_full, options.sqlite_max_bytes});
    if (!store) return store.error();
    return std::unique_ptr<Store>(std::move(*store));
  }
  if (auto conninfo = PostgresConnInfo(spec)) {
    auto store = PostgresStore::Open(PostgresOptions{*conninfo, options.postgres_connections});
    if (!store) return store.error();
    return std::unique_ptr<Store>(std::move(*store));
  }
  return MakeError(ErrorCode::kInvalidArgument, "unknown store \"" + RedactStoreSpec(spec) +
                                                    "\" (expected \"memory\", \"sqlite:PATH\" or "
                                                    "\"postgres://USER@HOST:PORT/DB\")");
}

Error TenantQueuedError(const std::string& tenant, std::int64_t max_queued) {
  return MakeError(ErrorCode::kQuotaExceeded, "tenant \"" + tenant + "\" already has " + std::to_string(max_queued) +
                                                  " jobs queued, its max_queued quota; submit again once some "
                                                  "have started");
}

}  // namespace offload
