/* A driver for the test suite: starts `parley serve` with parley_server_start (the command after "--";
 * PARLEY_START_TIMEOUT_MS, default 120000; PARLEY_STOP_TIMEOUT_MS, 30000), then
 *   talk:    one line to brenna through the C client, then parley_server_stop;  prints READY, DONE, EXIT
 *   crash:   prints READY, then aborts, as a crashing game would (the server must end by itself)
 *   ready:   prints READY, then stops it: EXIT
 *   blocked: as ready, started with SIGINT and SIGTERM blocked in this thread (POSIX), as a game's loading
 *            thread may have them
 *   async:   parley_server_launch, then parley_server_ready(0) once a 10 ms "frame" until ready: FRAMES, READY,
 *            then stop: EXIT
 *   cancel:  parley_server_launch, then at once parley_server_stop (the player left the loading screen): EXIT
 * and prints START_FAILED <error> if the server does not come up. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../parley.h"
#include "../server_process.h"

#ifdef _WIN32
#include <windows.h>
static void frame_pause(void) { Sleep(10); }
#else
#include <signal.h>
#include <time.h>
static void frame_pause(void) {
    struct timespec frame = {0, 10 * 1000000L};
    nanosleep(&frame, NULL);
}
#endif

int main(int argc, char **argv) {
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "usage: parley_spawn talk|crash -- COMMAND...\n");
        return 2;
    }
    char endpoint[128], error[512];
    int timeout = getenv("PARLEY_START_TIMEOUT_MS") ? atoi(getenv("PARLEY_START_TIMEOUT_MS")) : 120000;
    int stop_timeout = getenv("PARLEY_STOP_TIMEOUT_MS") ? atoi(getenv("PARLEY_STOP_TIMEOUT_MS")) : 30000;
#ifndef _WIN32
    if (strcmp(argv[1], "blocked") == 0) {
        sigset_t stop;
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        sigprocmask(SIG_BLOCK, &stop, NULL);
    }
#endif
    if (strcmp(argv[1], "async") == 0 || strcmp(argv[1], "cancel") == 0) {
        parley_server *s = parley_server_launch((const char *const *)argv + 3, error, sizeof error);
        if (!s) {
            printf("START_FAILED %s\n", error);
            return 3;
        }
        int frames = 0, ready = 0;
        while (strcmp(argv[1], "async") == 0 && (ready = parley_server_ready(s, 0, endpoint, sizeof endpoint, error,
                                                                             sizeof error)) == 0) {
            frames++;
            frame_pause();
        }
        if (ready < 0) printf("START_FAILED %s\n", error);
        if (ready > 0) printf("FRAMES %d\nREADY %s\n", frames, endpoint);
        printf("EXIT %d\n", parley_server_stop(s, stop_timeout));
        return 0;
    }
    parley_server *server = parley_server_start((const char *const *)argv + 3, timeout, endpoint, sizeof endpoint,
                                                error, sizeof error);
    if (!server) {
        printf("START_FAILED %s\n", error);
        return 3;
    }
    printf("READY %s\n", endpoint);
    fflush(stdout);
    if (strcmp(argv[1], "crash") == 0) abort();
    if (strcmp(argv[1], "ready") == 0 || strcmp(argv[1], "blocked") == 0) {
        printf("EXIT %d\n", parley_server_stop(server, stop_timeout));
        return 0;
    }
    parley_client *c = parley_connect(endpoint, NULL, 20000);
    parley_reply_args a = {.npc = "brenna", .text = "How much for a sword?"};
    char id[PARLEY_ID_MAX];
    parley_event ev;
    if (!c || parley_reply_start(c, &a, id, sizeof id) != PARLEY_OK) {
        printf("SEND_FAILED %s\n", c ? parley_last_error(c) : "no client");
        return 1;
    }
    do {
        if (parley_wait(c, id, 30000, &ev) != PARLEY_OK) {
            printf("FAILED %s\n", parley_last_error(c));
            return 1;
        }
    } while (ev.type != PARLEY_EVENT_DONE && ev.type != PARLEY_EVENT_ERROR);
    printf("%s\n", ev.type == PARLEY_EVENT_DONE ? "DONE" : "ERROR");
    printf("RUNNING %d\n", parley_server_running(server));
    parley_close(c);
    printf("EXIT %d\n", parley_server_stop(server, stop_timeout));
    return 0;
}
