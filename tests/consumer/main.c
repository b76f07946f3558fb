/*
 * A program outside the brisk tree, built against an installed brisk (by check_install.sh,
 * once with pkg-config and once with CMake's find_package). It checks that the library found
 * at run time is the one the header describes.
 */
#include <brisk.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  char from_macros[32];
  const char *version = brisk_version();
  snprintf(from_macros, sizeof from_macros, "%d.%d.%d", BRISK_VERSION_MAJOR, BRISK_VERSION_MINOR,
           BRISK_VERSION_PATCH);
  if (version == NULL || strcmp(version, BRISK_VERSION) != 0 ||
      strcmp(from_macros, BRISK_VERSION) != 0) {
    fprintf(stderr, "version mismatch: library %s, header %s, macros %s\n",
            version ? version : "(null)", BRISK_VERSION, from_macros);
    return 1;
  }
  /* Something beyond a static string: a config round trip through the library. */
  brisk_config *cfg = brisk_config_new();
  if (cfg == NULL || brisk_config_set_url(cfg, "redis://127.0.0.1:6379/1") != BRISK_OK) {
    fprintf(stderr, "config failed: %s\n", brisk_last_error_message());
    brisk_config_free(cfg);
    return 1;
  }
  brisk_config_free(cfg);
  printf("brisk %s ok\n", version);
  return 0;
}
