// The offload-load subcommands. Each returns the process exit status: 0 when it ran
// (whatever the figures), 1 when it could not measure (bad flags, server unreachable,
// a check such as gap's overlap test failed), so scripts can tell a broken run from a
// slow one.
#pragma once

#include "load_options.h"

namespace offload::bench {

int RunSubmit(const LoadOptions& options);
int RunE2e(const LoadOptions& options);
int RunProbe(const LoadOptions& options);
int RunGap(const LoadOptions& options);
int RunMap(const LoadOptions& options);
int RunSubscribe(const LoadOptions& options);

}  // namespace offload::bench
