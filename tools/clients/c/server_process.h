/*
 * Start `parley serve` as the game's child process, the way docs/shipping.md describes: its standard input a
 * pipe only the game holds (with --exit-with-stdin the server ends with the game, crashes included), the
 * endpoint read from its ready line. C99; POSIX (posix_spawn) and Windows (CreateProcessW). Independent of
 * parley.h: connect with parley_connect(endpoint, ...) once started.
 *
 *   // absolute paths, built from the game's folder (GAME below); -I -X utf8: docs/shipping.md
 *   const char *argv[] = {GAME "/python/python.exe", "-I", "-X", "utf8", "-m", "runtime.cli", "serve",
 *                         "--model", GAME "/npc/model", "--profiles", GAME "/npc/profiles",
 *                         "--bind", "tcp://127.0.0.1:*", "--exit-with-stdin", "--log-file", LOGS "/parley.log", NULL};
 *   char endpoint[128], error[512];
 *   parley_server *server = parley_server_start(argv, 120000, endpoint, sizeof endpoint, error, sizeof error);
 *   if (!server) log_error(error);                       // e.g. "parley serve: error: ..." and its exit code
 *   parley_client *c = parley_connect(endpoint, NULL, 10000);
 *   ...                                                   // now and then: parley_server_running(server)
 *   parley_server_stop(server, 10000);                    // at quit: replies in flight end "shutting_down"
 *   server = NULL;                                        // stop frees it
 *
 * One thread at a time per parley_server. Timeouts are milliseconds; 0 or less means no wait. A game that
 * ignores SIGCHLD or reaps every child itself (waitpid(-1)) takes the exit codes: they then read -1.
 */
#ifndef PARLEY_SERVER_PROCESS_H
#define PARLEY_SERVER_PROCESS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct parley_server parley_server;

/* Start the command in argv (the program first, NULL-terminated; UTF-8; a program name without a folder is
 * looked up on PATH) and wait up to timeout_ms for its line "parley serve: ready on ENDPOINT with ...", whose
 * ENDPOINT is copied into endpoint (at least 64 bytes; "" on failure). argv must hold --exit-with-stdin:
 * without it the server outlives a crashed game, and the call refuses. Its standard output and error share
 * one pipe this library reads only in its calls; keep --log-file in argv so the log is kept whole. NULL on
 * failure, with why in error: the server's own last line and exit code if it ended, or a timeout (the child
 * is then killed). */
parley_server *parley_server_start(const char *const *argv, int timeout_ms, char *endpoint, size_t endpoint_size,
                                   char *error, size_t error_size);

/* The same in two steps, for a game that must not block while the model loads (a loading screen that can be
 * left): parley_server_launch starts the command (same rules) and returns at once; parley_server_ready then
 * waits up to wait_ms (0: not at all) and returns 1 once the server is ready (endpoint filled), 0 if not yet,
 * -1 if it ended first (error says why). Call parley_server_stop to end it early, or to free it after -1. */
parley_server *parley_server_launch(const char *const *argv, char *error, size_t error_size);
int parley_server_ready(parley_server *s, int wait_ms, char *endpoint, size_t endpoint_size, char *error,
                        size_t error_size);

/* 1 while the server process lives, 0 once it has ended (then parley_server_stop gives its exit code and
 * frees s). Also reads what it wrote since the last call: call it every few seconds (the server never waits
 * for a full pipe, but what it writes meanwhile is lost). */
int parley_server_running(parley_server *s);

/* Close the server's standard input (with --exit-with-stdin it stops: replies in flight end "shutting_down"),
 * wait up to timeout_ms for it to exit (after half of it, SIGTERM on POSIX systems), kill it after that, and
 * free s: do not use s again. Returns its exit code (0: stopped cleanly), or -1 if it had to be killed or was
 * killed by a signal. NULL: -1. */
int parley_server_stop(parley_server *s, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
