/* server/serve_main.c — `qinx serve`: configuration (flags over an optional
 * JSON config file over defaults), start-up, recovery, graceful shutdown.
 *
 * Start-up order: listen first (so /healthz answers and /readyz says 503
 * while collections are being recovered), then replay every collection,
 * then ready. Shutdown (SIGTERM/SIGINT): stop accepting, let in-flight
 * requests finish (up to 10 s), stop the daemon, checkpoint every collection
 * so the next start replays nothing, flush the log.
 *
 * OpenMP wait policy: unless OMP_WAIT_POLICY is set, the server re-executes
 * itself once with OMP_WAIT_POLICY=PASSIVE (libgomp reads it only when it is
 * loaded, before main). By default idle OpenMP workers of a rebuild (FAISS's
 * k-means, the beam search) spin for a while after each parallel region; on
 * a 2-core machine shared with request threads or other jobs that spinning
 * took the cores from the threads with work: a rebuild of 50,000 points
 * (train 20,000, 16-byte RQ) took 304 s with the default and 129 s with
 * PASSIVE at load average ~10 (encoding 2.4x faster, k-means 2.4x).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "route.h"
#include "serve.h"
#include "sharded.h"
#include "srv.h"

int qxs_load_main(int argc, char **argv); /* load.c */
int qxs_salvage_main(int argc, char **argv); /* collection.c */
int qxs_verify_main(int argc, char **argv);  /* verify_cmd.c */

static void usage(FILE *f) {
    fprintf(f,
            "usage: qinx serve [--host ADDR] [--port N] [--data DIR] [--threads N] [--api-key KEY]\n"
            "                  [--max-body BYTES] [--log-level error|warn|info|debug]\n"
            "                  [--rebuild-threads N] [--memory-limit BYTES] [--checkpoint-bytes BYTES]\n"
            "                  [--max-connections N] [--max-connections-per-client N]\n"
            "                  [--header-timeout S] [--idle-timeout S] [--config FILE.json]\n"
            "                  [--sharded NAME=MANIFEST]...   (a sharded index as a read-only collection)\n"
            "       qinx serve load --url URL --collection NAME [--distance Euclid|Cosine|Dot]\n"
            "                  [--batch N] [--limit N] [--api-key KEY] FILE.fvecs|FILE.bvecs|random:N:D[:SEED]\n"
            "       qinx serve salvage-wal DATA/collections/NAME   (server stopped: keep every valid log\n"
            "                  record after a corrupt one; the original is kept as wal.log.corrupt-TIME)\n"
            "       qinx serve verify DATA | DATA/collections/NAME   (every file's checksums, raw vectors\n"
            "                  included; read-only; exit 1 naming each damaged file)\n"
            "defaults: --host 127.0.0.1 --port 6333 --data ./qinx-data --threads 4 --max-body 33554432\n"
            "          --log-level info --max-connections 1000 --max-connections-per-client 256\n"
            "          --header-timeout 10 --idle-timeout 60; the API key may also come from QINX_API_KEY\n"
            "          (an empty key is refused). See docs/http-api.md.\n");
}

static int parse_size(const char *s, size_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-') return -1;
    if (*end == 'k' || *end == 'K') v <<= 10, end++;
    else if (*end == 'm' || *end == 'M') v <<= 20, end++;
    else if (*end == 'g' || *end == 'G') v <<= 30, end++;
    if (*end) return -1;
    *out = (size_t)v;
    return 0;
}

/* An API key, once asked for, is never empty: `--api-key "$KEY"` with KEY
 * unset must not start a server with authentication off. Keys are printable
 * ASCII without spaces (header values lose surrounding spaces, so such a key
 * could never match) and fit the buffer (no silent truncation). */
static int set_api_key(qxs_config *c, const char *key, const char *from) {
    size_t n = strlen(key);
    if (n == 0) {
        fprintf(stderr, "qinx serve: %s is empty (an unset variable?): give a key, or leave it out to run "
                        "without authentication\n", from);
        return -1;
    }
    if (n >= sizeof c->api_key) {
        fprintf(stderr, "qinx serve: %s is %zu bytes; at most %zu\n", from, n, sizeof c->api_key - 1);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (key[i] <= 32 || key[i] >= 127) {
            fprintf(stderr, "qinx serve: %s has a space, control or non-ASCII character at byte %zu\n", from, i);
            return -1;
        }
    memcpy(c->api_key, key, n + 1);
    return 0;
}

/* --sharded NAME=MANIFEST (or the config's "sharded": {NAME: MANIFEST}). */
static int add_sharded(qxs_config *c, const char *name, size_t nlen, const char *path, const char *from) {
    if (!qxs_name_valid(name, nlen)) {
        fprintf(stderr, "qinx serve: %s: the collection name '%.*s' must match [A-Za-z0-9_-]{1,64}\n", from,
                (int)(nlen < 80 ? nlen : 80), name);
        return -1;
    }
    if (!*path || strlen(path) >= sizeof c->sharded[0].manifest) {
        fprintf(stderr, "qinx serve: %s: give the manifest's path after '=' (at most %zu bytes)\n", from,
                sizeof c->sharded[0].manifest - 1);
        return -1;
    }
    if (c->nsharded == QXS_MAX_SHARDED) {
        fprintf(stderr, "qinx serve: %s: at most %d sharded collections\n", from, QXS_MAX_SHARDED);
        return -1;
    }
    memcpy(c->sharded[c->nsharded].name, name, nlen);
    c->sharded[c->nsharded].name[nlen] = 0;
    snprintf(c->sharded[c->nsharded].manifest, sizeof c->sharded[0].manifest, "%s", path);
    c->nsharded++;
    return 0;
}

static int apply_config_file(qxs_config *c, const char *path) {
    json_error_t e;
    json_t *o = json_load_file(path, 0, &e);
    if (!o || !json_is_object(o)) {
        fprintf(stderr, "qinx serve: config %s: %s (line %d)\n", path, o ? "not a JSON object" : e.text, e.line);
        json_decref(o);
        return -1;
    }
    const char *k;
    json_t *v;
    int bad = 0;
    json_object_foreach(o, k, v) {
        if (!strcmp(k, "host") && json_is_string(v)) snprintf(c->host, sizeof c->host, "%s", json_string_value(v));
        else if (!strcmp(k, "port") && json_is_integer(v)) c->port = (int)json_integer_value(v);
        else if (!strcmp(k, "data") && json_is_string(v)) snprintf(c->data, sizeof c->data, "%s", json_string_value(v));
        else if (!strcmp(k, "threads") && json_is_integer(v)) c->threads = (int)json_integer_value(v);
        else if (!strcmp(k, "rebuild_threads") && json_is_integer(v)) c->rebuild_threads = (int)json_integer_value(v);
        else if (!strcmp(k, "memory_limit") && json_is_integer(v) && json_integer_value(v) >= 0)
            c->memory_limit = (size_t)json_integer_value(v);
        else if (!strcmp(k, "checkpoint_bytes") && json_is_integer(v) && json_integer_value(v) > 0)
            c->checkpoint_bytes = (size_t)json_integer_value(v);
        else if (!strcmp(k, "api_key") && json_is_string(v)) {
            if (set_api_key(c, json_string_value(v), "config key 'api_key'")) bad = 1;
        } else if (!strcmp(k, "max_connections") && json_is_integer(v))
            c->max_conns = (int)json_integer_value(v);
        else if (!strcmp(k, "max_connections_per_client") && json_is_integer(v))
            c->max_conns_per_client = (int)json_integer_value(v);
        else if (!strcmp(k, "header_timeout") && json_is_integer(v))
            c->header_timeout = (int)json_integer_value(v);
        else if (!strcmp(k, "idle_timeout") && json_is_integer(v))
            c->idle_timeout = (int)json_integer_value(v);
        else if (!strcmp(k, "max_body") && json_is_integer(v) && json_integer_value(v) > 0)
            c->max_body = (size_t)json_integer_value(v);
        else if (!strcmp(k, "sharded") && json_is_object(v)) {
            const char *nk;
            json_t *nv;
            json_object_foreach(v, nk, nv) {
                if (!json_is_string(nv)) {
                    fprintf(stderr, "qinx serve: config %s: sharded.%s must be a manifest path\n", path, nk);
                    bad = 1;
                } else if (add_sharded(c, nk, strlen(nk), json_string_value(nv), "config key 'sharded'"))
                    bad = 1;
            }
        } else if (!strcmp(k, "log_level") && json_is_string(v) && qxs_log_level_parse(json_string_value(v)) >= 0)
            c->log_level = qxs_log_level_parse(json_string_value(v));
        else {
            fprintf(stderr, "qinx serve: config %s: unknown key or wrong type: '%s'\n", path, k);
            bad = 1;
        }
    }
    json_decref(o);
    return bad ? -1 : 0;
}

static int parse_args(qxs_config *c, int argc, char **argv) {
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    c->port = QXS_DEFAULT_PORT;
    snprintf(c->data, sizeof c->data, "./qinx-data");
    c->threads = 4;
    c->max_body = QXS_DEFAULT_MAX_BODY;
    c->log_level = QXS_LOG_INFO;
    c->rebuild_threads = 0;
    c->max_conns = QXS_DEFAULT_MAX_CONNS;
    c->max_conns_per_client = QXS_DEFAULT_MAX_CONNS_PER_CLIENT;
    c->header_timeout = QXS_DEFAULT_HEADER_TIMEOUT;
    c->idle_timeout = QXS_DEFAULT_IDLE_TIMEOUT;
    const char *env = getenv("QINX_API_KEY");
    if (env && set_api_key(c, env, "QINX_API_KEY")) return -1;
    /* config file first, so flags override it */
    for (int i = 1; i < argc - 1; i++)
        if (!strcmp(argv[i], "--config") && apply_config_file(c, argv[i + 1])) return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!v) {
            fprintf(stderr, "qinx serve: %s needs a value\n", a);
            return -1;
        }
        size_t sz;
        if (!strcmp(a, "--config")) {
        } else if (!strcmp(a, "--host")) snprintf(c->host, sizeof c->host, "%s", v);
        else if (!strcmp(a, "--port")) c->port = atoi(v);
        else if (!strcmp(a, "--sharded")) {
            const char *eq = strchr(v, '=');
            if (!eq) {
                fprintf(stderr, "qinx serve: --sharded takes NAME=MANIFEST, got '%s'\n", v);
                return -1;
            }
            if (add_sharded(c, v, (size_t)(eq - v), eq + 1, "--sharded")) return -1;
        }
        else if (!strcmp(a, "--data")) snprintf(c->data, sizeof c->data, "%s", v);
        else if (!strcmp(a, "--threads")) c->threads = atoi(v);
        else if (!strcmp(a, "--rebuild-threads")) c->rebuild_threads = atoi(v);
        else if (!strcmp(a, "--checkpoint-bytes")) {
            if (parse_size(v, &c->checkpoint_bytes) || c->checkpoint_bytes == 0) {
                fprintf(stderr, "qinx serve: bad --checkpoint-bytes '%s'\n", v);
                return -1;
            }
        } else if (!strcmp(a, "--memory-limit")) {
            if (parse_size(v, &c->memory_limit)) {
                fprintf(stderr, "qinx serve: bad --memory-limit '%s' (bytes, or with a K, M or G suffix)\n", v);
                return -1;
            }
        }
        else if (!strcmp(a, "--api-key")) {
            if (set_api_key(c, v, "--api-key")) return -1;
        } else if (!strcmp(a, "--max-connections")) c->max_conns = atoi(v);
        else if (!strcmp(a, "--max-connections-per-client")) c->max_conns_per_client = atoi(v);
        else if (!strcmp(a, "--header-timeout")) c->header_timeout = atoi(v);
        else if (!strcmp(a, "--idle-timeout")) c->idle_timeout = atoi(v);
        else if (!strcmp(a, "--max-body")) {
            if (parse_size(v, &sz) || sz == 0) {
                fprintf(stderr, "qinx serve: bad --max-body '%s'\n", v);
                return -1;
            }
            c->max_body = sz;
        } else if (!strcmp(a, "--log-level")) {
            if ((c->log_level = qxs_log_level_parse(v)) < 0) {
                fprintf(stderr, "qinx serve: bad --log-level '%s'\n", v);
                return -1;
            }
        } else {
            fprintf(stderr, "qinx serve: unknown option '%s'\n", a);
            usage(stderr);
            return -1;
        }
        i++;
    }
    if (c->port < 0 || c->port > 65535 || c->threads < 1 || c->threads > 256) {
        fprintf(stderr, "qinx serve: --port must be 0..65535 and --threads 1..256\n");
        return -1;
    }
    if (c->max_conns < 1 || c->max_conns > 100000 || c->max_conns_per_client < 1 ||
        c->max_conns_per_client > c->max_conns) {
        fprintf(stderr, "qinx serve: --max-connections must be 1..100000 and --max-connections-per-client "
                        "1..--max-connections\n");
        return -1;
    }
    if (c->header_timeout < 1 || c->header_timeout > 3600 || c->idle_timeout < 1 || c->idle_timeout > 86400) {
        fprintf(stderr, "qinx serve: --header-timeout must be 1..3600 s and --idle-timeout 1..86400 s\n");
        return -1;
    }
    return 0;
}

/* Background work, every second: fold small segments (collection.c), then
 * start the rebuilds that are due by themselves (autoindex.c). */
static void *merger_main(void *arg) {
    qxs_server *s = arg;
    while (!atomic_load(&s->stopping)) {
        for (int i = 0; i < 10 && !atomic_load(&s->stopping); i++) usleep(100000);
        if (!atomic_load(&s->stopping)) qxs_merge_all(s);
        if (!atomic_load(&s->stopping)) qxs_autoindex_all(s);
    }
    return NULL;
}

int qx_serve_main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "load")) return qxs_load_main(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "salvage-wal")) return qxs_salvage_main(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "verify")) return qxs_verify_main(argc - 1, argv + 1);
    static qxs_server srv; /* static: request threads may outlive main's frame at exit */
    qxs_server *s = &srv;
    memset(s, 0, sizeof *s);
    if (parse_args(&s->cfg, argc, argv)) return 2;
    if (!getenv("OMP_WAIT_POLICY") && argc < 250) { /* see the header */
        char *av[256];
        av[0] = "qinx";
        for (int i = 0; i < argc; i++) av[i + 1] = argv[i];
        av[argc + 1] = NULL;
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        execv("/proc/self/exe", av);
        fprintf(stderr, "qinx serve: could not re-execute with OMP_WAIT_POLICY=PASSIVE (%s); going on\n", strerror(errno));
    }
    qxs_log_level_cur = s->cfg.log_level;
    if (s->cfg.checkpoint_bytes) qxs_checkpoint_bytes = s->cfg.checkpoint_bytes;
    s->t_start = qx_now();
    pthread_rwlock_init(&s->reg_rw, NULL);

    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;
    memset(&addr, 0, sizeof addr);
    if (inet_pton(AF_INET, s->cfg.host, &addr.in4.sin_addr) == 1) {
        addr.in4.sin_family = AF_INET;
        addr.in4.sin_port = htons((uint16_t)s->cfg.port);
    } else if (inet_pton(AF_INET6, s->cfg.host, &addr.in6.sin6_addr) == 1) {
        addr.in6.sin6_family = AF_INET6;
        addr.in6.sin6_port = htons((uint16_t)s->cfg.port);
    } else {
        fprintf(stderr, "qinx serve: --host must be a numeric IPv4 or IPv6 address, got '%s'\n", s->cfg.host);
        return 2;
    }

    /* Block the signals in every thread (the workers inherit the mask);
     * the main thread waits for them with sigwait. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Room for every connection plus the collections' files: raise the soft
     * open-files limit towards the hard one (a default of 1024 is below
     * --max-connections 1000 plus the logs). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t want = (rlim_t)s->cfg.max_conns + 1024;
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
            rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
            qxs_log(QXS_LOG_WARN, "open-files limit %llu is below --max-connections + 1024 = %llu",
                    (unsigned long long)rl.rlim_cur, (unsigned long long)want);
    }
    qxs_http *daemon = qxs_http_start(s, &addr.sa, addr.sa.sa_family == AF_INET6 ? sizeof addr.in6 : sizeof addr.in4);
    if (!daemon) {
        qxs_log(QXS_LOG_ERROR, "cannot listen on %s:%d (%s)", s->cfg.host, s->cfg.port, strerror(errno));
        return 1;
    }
    int port = qxs_http_port(daemon);
    qxs_log(QXS_LOG_ALWAYS,
            "qinx serve listening on http://%s:%d (threads=%d, data=%s, max_body=%zu, auth=%s, max_connections=%d, "
            "per_client=%d, header_timeout=%ds, idle_timeout=%ds)",
            s->cfg.host, port, s->cfg.threads, s->cfg.data, s->cfg.max_body, s->cfg.api_key[0] ? "api-key" : "off",
            s->cfg.max_conns, s->cfg.max_conns_per_client, s->cfg.header_timeout, s->cfg.idle_timeout);
    if (strcmp(s->cfg.host, "127.0.0.1") && strcmp(s->cfg.host, "::1") && !s->cfg.api_key[0])
        qxs_log(QXS_LOG_WARN, "listening on a non-loopback address without an API key");

    double t0 = qx_now();
    int rc = qxs_registry_load(s);
    if (rc) qxs_log(QXS_LOG_ERROR, "recovery finished with errors: %s", qx_last_error());
    if (qxs_sharded_open_all(s)) { /* see sharded.c: all of them or the server stops */
        qxs_log(QXS_LOG_ERROR, "stopping: %s", qx_last_error());
        atomic_store(&s->stopping, 1);
        qxs_http_stop(daemon);
        qxs_checkpoint_all(s);
        fflush(stderr);
        return 1;
    }
    atomic_store(&s->ready, 1);
    qxs_log(QXS_LOG_ALWAYS, "ready: %zu collections recovered, %zu sharded (read-only) in %.3f s", s->ncolls,
            s->nsharded, qx_now() - t0);

    pthread_t merger;
    int have_merger = pthread_create(&merger, NULL, merger_main, s) == 0;
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {
    }
    qxs_log(QXS_LOG_ALWAYS, "signal %d: shutting down (finishing in-flight requests)", sig);
    atomic_store(&s->stopping, 1);
    if (have_merger) pthread_join(merger, NULL);
    qxs_http_stop(daemon); /* requests in progress finish (up to 10 s) */
    qxs_checkpoint_all(s);
    qxs_sharded_free_all(s);
    qxs_log(QXS_LOG_ALWAYS, "stopped");
    fflush(stderr);
    return 0;
}
