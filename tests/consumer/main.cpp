// The C++ consumer: the same checks as main.c, compiled as C++ (the header's extern "C" and
// its types must work there), with RAII ownership as a C++ user would write it.
#include <brisk.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

namespace {

struct config_deleter {
  void operator()(brisk_config *cfg) const noexcept { brisk_config_free(cfg); }
};
using config_ptr = std::unique_ptr<brisk_config, config_deleter>;

}  // namespace

int main() {
  const std::string header_version = BRISK_VERSION;
  const char *library_version = brisk_version();
  const std::string from_macros = std::to_string(BRISK_VERSION_MAJOR) + "." +
                                  std::to_string(BRISK_VERSION_MINOR) + "." +
                                  std::to_string(BRISK_VERSION_PATCH);
  if (library_version == nullptr || header_version != library_version ||
      from_macros != header_version) {
    std::fprintf(stderr, "version mismatch: library %s, header %s, macros %s\n",
                 library_version ? library_version : "(null)", header_version.c_str(),
                 from_macros.c_str());
    return 1;
  }
  config_ptr cfg(brisk_config_new());
  if (!cfg || brisk_config_set_url(cfg.get(), "valkey://127.0.0.1:6379/1?dial_timeout=2s") !=
                  BRISK_OK) {
    std::fprintf(stderr, "config failed: %s\n", brisk_last_error_message());
    return 1;
  }
  // A rejected URL is an error with a message, not an exception or a crash.
  if (brisk_config_set_url(cfg.get(), "redis://h?no_such_option=1") != BRISK_ERR_INVALID_ARGUMENT ||
      std::strstr(brisk_last_error_message(), "no_such_option") == nullptr) {
    std::fprintf(stderr, "a bad URL was not rejected as expected\n");
    return 1;
  }
  std::printf("brisk %s ok (C++ %ld)\n", library_version, static_cast<long>(__cplusplus));
  return 0;
}
