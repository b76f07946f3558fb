/*
 * sentinel: a master found through Redis Sentinel.
 *
 *   sentinel [redis+sentinel://host:port,host:port/master_name]
 *
 * Connects through the sentinels (default redis+sentinel://127.0.0.1:26379/mymaster), prints
 * the master they name (the TOPOLOGY event) and writes to it, reads from a replica with
 * read_from REPLICA_PREFERRED, and shows the statuses a Sentinel setup can fail with: a master
 * name no sentinel knows (BRISK_ERR_SENTINEL) and a config without a master name
 * (BRISK_ERR_INVALID_ARGUMENT). A failover needs nothing from the program: the client follows
 * the sentinels' announcements and resolves the master again when it is lost or demoted.
 */
#include <brisk.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what, brisk_status status) {
  fprintf(stderr, "%s failed: %s: %s\n", what, brisk_status_name(status),
          brisk_last_error_message());
  return 1;
}

/* Runs on the thread that resolved the master; must not block. */
static void on_event(void *userdata, const brisk_event *event) {
  (void)userdata;
  if (brisk_event_kind_of(event) == BRISK_EVENT_TOPOLOGY)
    printf("  the sentinels name %s as the master (ROLE checked)\n",
           brisk_event_server_address(event));
}

/* A client for `url`, with `read_from`; NULL (after printing why) on failure. */
static brisk_client *sentinel_client(const char *url, brisk_read_from read_from) {
  brisk_config *cfg = brisk_config_new();
  brisk_status st = brisk_config_set_url(cfg, url);
  if (st == BRISK_OK) st = brisk_config_set_read_from(cfg, read_from);
  if (st == BRISK_OK) st = brisk_config_set_event_callback(cfg, on_event, NULL);
  brisk_client *client = NULL;
  if (st == BRISK_OK) st = brisk_client_new(cfg, &client);
  brisk_config_free(cfg);
  if (st != BRISK_OK) {
    fail("configuring the client", st);
    return NULL;
  }
  return client;
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "redis+sentinel://127.0.0.1:26379/mymaster";
  printf("brisk %s, sentinels: %s\n", brisk_version(), url);

  brisk_client *client = sentinel_client(url, BRISK_READ_PRIMARY);
  if (client == NULL) return 1;
  const char *set[] = {"SET", "brisk:sentinel", "through the sentinels"};
  brisk_status st = brisk_command(client, 3, set, NULL, NULL); /* resolves the master first */
  if (st != BRISK_OK) {
    brisk_client_free(client);
    return fail("SET", st);
  }
  printf("SET on the master: OK (%llu resolution(s))\n",
         (unsigned long long)brisk_client_stat(client, BRISK_STAT_TOPOLOGY_REFRESHES));

  /* Reads may go to a replica the sentinels list; writes still go to the master. Replication
   * is asynchronous: wait until the replica has the value. */
  brisk_client *reader = sentinel_client(url, BRISK_READ_REPLICA_PREFERRED);
  if (reader == NULL) {
    brisk_client_free(client);
    return 1;
  }
  const char *wait[] = {"WAIT", "1", "1000"};
  brisk_command(client, 3, wait, NULL, NULL);
  const char *get[] = {"GET", "brisk:sentinel"};
  brisk_reply *reply = NULL;
  if ((st = brisk_command(reader, 2, get, NULL, &reply)) != BRISK_OK) {
    brisk_client_free(reader);
    brisk_client_free(client);
    return fail("GET", st);
  }
  const char *got = brisk_reply_string(reply, NULL);
  printf("GET from a replica -> %s\n",
         got != NULL && strcmp(got, "through the sentinels") == 0 ? "the value written"
                                                                   : "MISMATCH");
  brisk_reply_free(reply);
  brisk_client_free(reader);

  /* A master name no sentinel monitors: BRISK_ERR_SENTINEL, at the first command. */
  char unknown[512];
  const char *slash = strrchr(url, '/');
  int base = slash != NULL ? (int)(slash - url) : (int)strlen(url);
  snprintf(unknown, sizeof unknown, "%.*s/no-such-master", base, url);
  brisk_client *lost = sentinel_client(unknown, BRISK_READ_PRIMARY);
  if (lost != NULL) {
    st = brisk_ping(lost);
    printf("unknown master name -> %s: %s\n", brisk_status_name(st), brisk_last_error_message());
    if (st != BRISK_ERR_SENTINEL) printf("MISMATCH: expected BRISK_ERR_SENTINEL\n");
    brisk_client_free(lost);
  }

  /* Sentinel mode needs the master's name: refused when the client is made. */
  brisk_config *cfg = brisk_config_new();
  brisk_config_set_mode(cfg, BRISK_MODE_SENTINEL);
  brisk_config_add_node(cfg, "127.0.0.1", 26379);
  brisk_client *none = NULL;
  st = brisk_client_new(cfg, &none);
  brisk_config_free(cfg);
  printf("no master name -> %s: %s\n", brisk_status_name(st), brisk_last_error_message());
  if (st != BRISK_ERR_INVALID_ARGUMENT) printf("MISMATCH: expected BRISK_ERR_INVALID_ARGUMENT\n");

  const char *del[] = {"DEL", "brisk:sentinel"};
  brisk_command(client, 2, del, NULL, NULL);
  brisk_client_free(client);
  printf("ok\n");
  return 0;
}
