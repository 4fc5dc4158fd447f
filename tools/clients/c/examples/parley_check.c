/* A small driver for the test suite: each mode exercises one part of the C client against a live
 * server and prints machine-readable lines (DELTA/DONE/ERROR/...). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../parley.h"

/* Replies from a random test model can hold any text, newlines included: escape control bytes and
 * backslashes as \xHH so every event stays on one line for the test to parse. */
static void print_escaped(const char *tag, const char *text) {
    fputs(tag, stdout);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\') printf("\\x%02x", *p);
        else putchar(*p);
    }
    putchar('\n');
}

static int say(parley_client *c, const char *npc, const char *text, int cancel_after_first) {
    /* cancelling after the first delta needs deltas while the reply runs: token by token */
    parley_reply_args a = {.npc = npc, .text = text, .session = "check", .token_deltas = cancel_after_first};
    char id[PARLEY_ID_MAX];
    if (parley_reply_start(c, &a, id, sizeof id) != PARLEY_OK) {
        printf("SEND_FAILED %s\n", parley_last_error(c));
        return 1;
    }
    int cancelled = 0;
    for (;;) {
        parley_event ev;
        parley_status st = parley_wait(c, id, 30000, &ev);
        if (st == PARLEY_ERR_TIMEOUT || (ev.type == PARLEY_EVENT_ERROR && strcmp(ev.error_code, "timeout") == 0)) {
            printf("ERROR timeout %s\n", parley_last_error(c));
            return 3;
        }
        if (st != PARLEY_OK) {
            printf("FAILED %d %s\n", (int)st, parley_last_error(c));
            return 1;
        }
        if (ev.type == PARLEY_EVENT_DELTA) {
            print_escaped("DELTA ", ev.text);
            if (cancel_after_first && !cancelled) {
                cancelled = 1;
                int found = 0;
                if (parley_cancel(c, id, 5000, &found) != PARLEY_OK) printf("CANCEL_FAILED %s\n", parley_last_error(c));
                else printf("CANCEL found=%d\n", found);
            }
        } else if (ev.type == PARLEY_EVENT_ACTION) {
            printf("ACTION %s\n", ev.action_name);
        } else if (ev.type == PARLEY_EVENT_DONE) {
            print_escaped("DONE ", ev.text);
            printf("STATS final=%d deadline_met=%d\n", ev.final_tokens, ev.deadline_met);
            return 0;
        } else if (ev.type == PARLEY_EVENT_ERROR) {
            printf("ERROR %s %s\n", ev.error_code, ev.error_message);
            return 2;
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s ENDPOINT MODE [ARGS]\n  modes: say NPC TEXT | cancel NPC TEXT | health | "
                        "session NPC\n", argv[0]);
        return 64;
    }
    int timeout = getenv("PARLEY_TIMEOUT_MS") ? atoi(getenv("PARLEY_TIMEOUT_MS")) : 20000;
    parley_client *c = parley_connect(argv[1], getenv("PARLEY_SERVER_KEY"), timeout);
    if (!c) {
        printf("CONNECT_FAILED\n");
        return 1;
    }
    int rc = 0;
    const char *mode = argv[2];
    /* a saved token for the NPC's "check" session, as a game gives it back after loading */
    if (getenv("PARLEY_SESSION_TOKEN") && argc >= 4 &&
        parley_set_session_token(c, argv[3], "check", getenv("PARLEY_SESSION_TOKEN")) != PARLEY_OK) {
        printf("TOKEN_FAILED %s\n", parley_last_error(c));
        parley_close(c);
        return 1;
    }
    if (strcmp(mode, "say") == 0 && argc == 5) {
        rc = say(c, argv[3], argv[4], 0);
    } else if (strcmp(mode, "cancel") == 0 && argc == 5) {
        rc = say(c, argv[3], argv[4], 1);
    } else if (strcmp(mode, "health") == 0) {
        char status[32];
        parley_status st = parley_health(c, timeout, status, sizeof status);
        if (st == PARLEY_OK) printf("HEALTH %s\n", status);
        else printf("ERROR %s %s\n", st == PARLEY_ERR_TIMEOUT ? "timeout" : "failed", parley_last_error(c));
        rc = st == PARLEY_OK ? 0 : 3;
    } else if (strcmp(mode, "session") == 0 && argc == 4) {
        rc = say(c, argv[3], "Remember me.", 0);
        if (!rc) printf("TOKEN %s\n", parley_session_token(c, argv[3], "check"));
        unsigned char *blob = NULL;
        size_t len = 0;
        if (!rc && parley_export_session(c, argv[3], "check", timeout, &blob, &len) == PARLEY_OK) {
            printf("EXPORTED %zu\n", len);
            if (parley_reset_session(c, argv[3], "check", timeout) == PARLEY_OK) printf("RESET\n");
            if (parley_import_session(c, argv[3], "check", blob, len, timeout) == PARLEY_OK) printf("IMPORTED\n");
            else printf("ERROR %s\n", parley_last_error(c));
            parley_free(blob);
        } else {
            printf("ERROR %s\n", parley_last_error(c));
            rc = rc ? rc : 1;
        }
    } else {
        fprintf(stderr, "bad arguments\n");
        rc = 64;
    }
    parley_close(c);
    return rc;
}
