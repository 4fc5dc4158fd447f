/*
 * Start `parley serve` as the game's child process, the way docs/shipping.md describes: its standard input a
 * pipe only the game holds (with --exit-with-stdin the server ends with the game, crashes included), the
 * endpoint read from its ready line. C99; POSIX (posix_spawn) and Windows (CreateProcessW). Independent of
 * parley.h: connect with parley_connect(endpoint, ...) once started.
 *
 *   const char *argv[] = {"python/python.exe", "-m", "runtime.cli", "serve", "--model", "npc/model",
 *                         "--profiles", "npc/profiles", "--bind", "tcp://127.0.0.1:*", "--exit-with-stdin",
 *                         "--log-file", "logs/parley.log", NULL};
 *   char endpoint[128], error[512];
 *   parley_server *server = parley_server_start(argv, 120000, endpoint, sizeof endpoint, error, sizeof error);
 *   if (!server) log_error(error);                       // e.g. "parley serve: error: ..." and its exit code
 *   parley_client *c = parley_connect(endpoint, NULL, 10000);
 *   ...
 *   parley_server_stop(server, 10000);                    // at quit: replies in flight end "shutting_down"
 */
#ifndef PARLEY_SERVER_PROCESS_H
#define PARLEY_SERVER_PROCESS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct parley_server parley_server;

/* Start the command in argv (the program first, NULL-terminated; UTF-8) and wait up to timeout_ms for its
 * line "parley serve: ready on ENDPOINT with ...", whose ENDPOINT is copied into endpoint. Its standard
 * output and error share one pipe this library reads; keep --log-file in argv so the log does not fill it.
 * NULL on failure, with why in error: the server's own last line and exit code if it ended, or a timeout
 * (the child is then killed). */
parley_server *parley_server_start(const char *const *argv, int timeout_ms, char *endpoint, size_t endpoint_size,
                                   char *error, size_t error_size);

/* 1 while the server process lives, 0 once it has ended (then parley_server_stop gives its exit code). Also
 * reads what it wrote since the last call, so its output pipe never fills: call it now and then. */
int parley_server_running(parley_server *s);

/* Close the server's standard input (it stops as with SIGTERM), wait up to timeout_ms for it to exit, kill it
 * after that, and free s. Returns its exit code (0: stopped cleanly), or -1 if it had to be killed or was
 * killed by a signal. */
int parley_server_stop(parley_server *s, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
