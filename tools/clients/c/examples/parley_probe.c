/* A driver for the test suite's edge cases: each mode runs one scenario against a live server, or against
 * the scripted (sometimes hostile) server a test plays, and prints machine-readable lines.
 *
 *   parley_probe ENDPOINT MODE
 *
 * Replies are named r0, r1... in the order started; an event for any other id prints as "other". */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../parley.h"

static char started[80][PARLEY_ID_MAX];
static int n_started;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static const char *tag(const char *id) {
    static char out[16];
    for (int i = 0; i < n_started; i++)
        if (strcmp(started[i], id) == 0) {
            snprintf(out, sizeof out, "r%d", i);
            return out;
        }
    return "other";
}

static parley_status start(parley_client *c, parley_reply_args a) {
    char id[PARLEY_ID_MAX];
    parley_status st = parley_reply_start(c, &a, id, sizeof id);
    if (st == PARLEY_OK && n_started < 80) snprintf(started[n_started++], PARLEY_ID_MAX, "%s", id);
    return st;
}

static void print_event(const parley_event *ev) {
    static const char *names[] = {"NONE", "DELTA", "ACTION", "DONE", "ERROR"};
    printf("EVENT %s %s", tag(ev->request_id), names[ev->type]);
    if (ev->type == PARLEY_EVENT_ACTION) {
        printf(" %s ", ev->action_name);
        for (size_t i = 0; i < ev->action_args_len; i++) printf("%02x", ev->action_args[i]);
    } else if (ev->type == PARLEY_EVENT_DONE) {
        printf(" ttft=%g finish=%s reasoning=%d final=%d len=%zu", ev->ttft_ms, ev->finish_reason,
               ev->reasoning_tokens, ev->final_tokens, strlen(ev->text));
    } else if (ev->type == PARLEY_EVENT_ERROR) {
        printf(" %s", ev->error_code);
    } else if (ev->type == PARLEY_EVENT_DELTA) {
        printf(" len=%zu", strlen(ev->text));
    }
    putchar('\n');
}

/* Poll and print every event until `terminals` replies ended and then quiet_ms passed, or limit_ms. */
static int drain(parley_client *c, int terminals, int quiet_ms, int limit_ms) {
    double end = now_ms() + limit_ms, quiet_end = 0;
    int ended = 0;
    while (now_ms() < end && (ended < terminals || now_ms() < quiet_end)) {
        parley_event ev;
        parley_status st = parley_poll(c, 20, &ev);
        if (st != PARLEY_OK) {
            printf("POLL_FAILED %d\n", (int)st);
            continue;
        }
        if (ev.type == PARLEY_EVENT_NONE) continue;
        print_event(&ev);
        if ((ev.type == PARLEY_EVENT_DONE || ev.type == PARLEY_EVENT_ERROR) && ++ended == terminals)
            quiet_end = now_ms() + quiet_ms;
    }
    return ended;
}

static long vm_peak_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmPeak: %ld", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

/* ---- scenarios ---- */

static char *repeat(const char *unit, int times) {
    size_t n = strlen(unit);
    char *s = malloc(n * times + 1);
    for (int i = 0; i < times; i++) memcpy(s + n * i, unit, n);
    s[n * times] = '\0';
    return s;
}

/* Arguments the server would refuse (or could not read) are refused before sending. */
static void args(parley_client *c) {
    char *a4001 = repeat("a", 4001), *emoji4000 = repeat("\xf0\x9f\x98\x80", 4000), *a65 = repeat("a", 65);
    char *a81 = repeat("a", 81), *a1001 = repeat("a", 1001), *e64 = repeat("\xc3\xa9", 64);
    parley_kv many[33], big[2] = {{"k", a1001}, {"l", a1001}}, null_key[1] = {{NULL, "v"}};
    for (int i = 0; i < 33; i++) many[i] = (parley_kv){"k", "v"};
    struct { const char *name; parley_reply_args a; } cases[] = {
        {"text_not_utf8", {.npc = "brenna", .text = "caf\xe9"}},
        {"text_surrogate", {.npc = "brenna", .text = "\xed\xa0\x80"}},
        {"text_overlong", {.npc = "brenna", .text = "\xc0\xaf"}},
        {"text_4001", {.npc = "brenna", .text = a4001}},
        {"text_4000_emoji", {.npc = "brenna", .text = emoji4000}},
        {"npc_65", {.npc = a65, .text = "hi"}},
        {"session_65", {.npc = "brenna", .text = "hi", .session = a65}},
        {"session_64_accented", {.npc = "brenna", .text = "hi", .session = e64}},
        {"speaker_81", {.npc = "brenna", .text = "hi", .speaker = a81}},
        {"token_15", {.npc = "brenna", .text = "hi", .session = "s", .session_token = "0123456789abcde"}},
        {"state_33", {.npc = "brenna", .text = "hi", .state = many, .state_len = 33}},
        {"state_2004_chars", {.npc = "brenna", .text = "hi", .state = big, .state_len = 2}},
        {"state_null", {.npc = "brenna", .text = "hi", .state = NULL, .state_len = 2}},
        {"state_null_key", {.npc = "brenna", .text = "hi", .state = null_key, .state_len = 1}},
        {"deadline_600001", {.npc = "brenna", .text = "hi", .deadline_ms = 600001}},
        {"npc_null", {.npc = NULL, .text = "hi"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        printf("%s %d\n", cases[i].name, (int)start(c, cases[i].a));
    char id[PARLEY_ID_MAX];
    printf("args_null %d\n", (int)parley_reply_start(c, NULL, id, sizeof id));
    printf("set_token_15 %d\n", (int)parley_set_session_token(c, "brenna", "s", "0123456789abcde"));
    printf("set_token_not_utf8 %d\n", (int)parley_set_session_token(c, "brenna", "s", "0123456789abcdef\xff"));
    printf("reset_empty_session %d\n", (int)parley_reset_session(c, "brenna", "", 100));
    unsigned char *blob = calloc(48 * 1024 + 1, 1);
    printf("import_blob_48k_plus_1 %d\n", (int)parley_import_session(c, "brenna", "s", blob, 48 * 1024 + 1, 100));
    free(blob);
    printf("cancel_not_utf8 %d\n", (int)parley_cancel(c, "\xff", 100, NULL));
    printf("cancel_65 %d\n", (int)parley_cancel(c, a65, 100, NULL));
    parley_event ev;
    double t0 = now_ms();
    parley_status st = parley_wait(c, "nobody", 2000, &ev);
    printf("wait_unknown %d %s\n", (int)st, now_ms() - t0 < 1000 ? "fast" : "slow");
    free(a4001), free(emoji4000), free(a65), free(a81), free(a1001), free(e64);
}

/* A reply the server cannot read while another runs: refused here, and the running one is left alone. */
static void nil_id_live(parley_client *c) {
    start(c, (parley_reply_args){.npc = "talker", .text = "Tell me everything.", .token_deltas = 1,
                                 .deadline_ms = 4000});
    parley_event ev;
    parley_status st = parley_wait(c, started[0], 30000, &ev);
    print_event(&ev);
    if (st != PARLEY_OK || ev.type != PARLEY_EVENT_DELTA) return;
    printf("START_BAD %d\n", (int)start(c, (parley_reply_args){.npc = "brenna", .text = "caf\xe9 au lait"}));
    drain(c, n_started, 300, 60000);
}

static void cancel_and_print(parley_client *c, const char *id) {
    int found = -1;
    parley_status st = parley_cancel(c, id, 5000, &found);
    printf("CANCEL %d found=%d\n", (int)st, found);
}

static void cancel_live(parley_client *c) {
    start(c, (parley_reply_args){.npc = "talker", .text = "Tell me a long story.", .token_deltas = 1});
    int cancelled = 0, ended = 0;
    double end = now_ms() + 60000;
    while (!ended && now_ms() < end) {
        parley_event ev;
        if (parley_poll(c, 20, &ev) != PARLEY_OK || ev.type == PARLEY_EVENT_NONE) continue;
        print_event(&ev);
        ended = ev.type == PARLEY_EVENT_DONE || ev.type == PARLEY_EVENT_ERROR;
        if (ev.type == PARLEY_EVENT_DELTA && !cancelled) {
            cancel_and_print(c, started[0]);
            cancelled = 1;
        }
    }
    drain(c, 0, 0, 300); /* nothing else may come */
    /* a reply that already ended: found is false */
    start(c, (parley_reply_args){.npc = "brenna", .text = "Hello.", .deadline_ms = 2000});
    drain(c, 1, 0, 60000);
    printf("CANCEL_ENDED ");
    cancel_and_print(c, started[1]);
    drain(c, 0, 0, 300);
}

/* 64 replies in flight: one can still be cancelled. */
static void busy_cancel(parley_client *c) {
    int ok = 0;
    for (int i = 0; i < 64; i++)
        ok += start(c, (parley_reply_args){.npc = "brenna", .text = "Hi.", .deadline_ms = 50}) == PARLEY_OK;
    printf("STARTED %d\n", ok);
    printf("START_65TH %d\n", (int)start(c, (parley_reply_args){.npc = "brenna", .text = "Hi."}));
    nanosleep(&(struct timespec){1, 500000000}, NULL); /* the server's rate limit: 20 requests/s, bursts of 40 */
    printf("CANCEL %d\n", (int)parley_cancel(c, started[63], 5000, NULL));
    printf("ENDED %d\n", drain(c, 64, 0, 60000));
}

/* A game that only waits on its replies cancels many of them: nothing leaks. */
static void wait_cancel_cycles(parley_client *c) {
    int cycles = 0;
    for (int i = 0; i < 80; i++) {
        char id[PARLEY_ID_MAX];
        parley_reply_args a = {.npc = "brenna", .text = "Hi.", .deadline_ms = 50};
        parley_status st = parley_reply_start(c, &a, id, sizeof id);
        if (st != PARLEY_OK) {
            printf("START_FAILED %d at %d\n", (int)st, i);
            return;
        }
        st = parley_cancel(c, id, 5000, NULL);
        if (st != PARLEY_OK && st != PARLEY_ERR_SERVER) { /* SERVER: rate_limited */
            printf("CANCEL_FAILED %d at %d\n", (int)st, i);
            return;
        }
        parley_event ev;
        do st = parley_wait(c, id, 30000, &ev);
        while (st == PARLEY_OK && ev.type != PARLEY_EVENT_DONE && ev.type != PARLEY_EVENT_ERROR);
        if (st != PARLEY_OK) {
            printf("WAIT_FAILED %d at %d\n", (int)st, i);
            return;
        }
        cycles++;
    }
    printf("CYCLES %d\n", cycles);
}

static void wait_end(parley_client *c, const char *id, const char *label) {
    parley_event ev;
    parley_status st;
    do st = parley_wait(c, id, 60000, &ev);
    while (st == PARLEY_OK && ev.type != PARLEY_EVENT_DONE && ev.type != PARLEY_EVENT_ERROR);
    printf("%s %s\n", label, st != PARLEY_OK ? "FAILED" : ev.type == PARLEY_EVENT_DONE ? "DONE" : ev.error_code);
}

/* A reply's session_token override stays the session's token. */
static void token_override(parley_client *c) {
    char session[40], token[40];
    snprintf(session, sizeof session, "probe-%ld", (long)getpid());
    snprintf(token, sizeof token, "override-token-%ld-0123456789", (long)getpid());
    start(c, (parley_reply_args){.npc = "brenna", .text = "Hello.", .session = session, .session_token = token,
                                 .deadline_ms = 2000});
    wait_end(c, started[0], "FIRST");
    start(c, (parley_reply_args){.npc = "brenna", .text = "Again.", .session = session, .deadline_ms = 2000});
    wait_end(c, started[1], "SECOND");
    printf("TOKEN_IS_OVERRIDE %d\n", strcmp(parley_session_token(c, "brenna", session), token) == 0);
    printf("RESET %d\n", (int)parley_reset_session(c, "brenna", session, 10000));
}

/* parley_session_token's strings outlive later sessions (the client's table grows). */
static void token_pointer(parley_client *c) {
    const char *first = parley_session_token(c, "brenna", "s0");
    char copy[80];
    snprintf(copy, sizeof copy, "%s", first);
    for (int i = 1; i <= 200; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        parley_session_token(c, "brenna", name);
    }
    printf("FIRST_TOKEN %s\n", strcmp(first, copy) == 0 ? "SAME" : "CHANGED");
    printf("SET %d\n", (int)parley_set_session_token(c, "brenna", "s0", "a-token-set-after-loading"));
    printf("FIRST_TOKEN_NOW %s\n", first);
}

/* The scripted server's scenarios: it reads the requests and answers as the test tells it. */
static void fake_two(parley_client *c) {
    start(c, (parley_reply_args){.npc = "a", .text = "first"});
    start(c, (parley_reply_args){.npc = "b", .text = "second"});
    drain(c, 2, 300, 5000);
}

static void fake_actions(parley_client *c) {
    start(c, (parley_reply_args){.npc = "a", .text = "quiet", .no_stream = 1});
    drain(c, 1, 0, 5000);
    start(c, (parley_reply_args){.npc = "a", .text = "streamed"});
    drain(c, 1, 300, 5000);
}

/* A queued target's cancelled error comes before the cancel's answer; a running one's after it. */
static void fake_cancel(parley_client *c) {
    start(c, (parley_reply_args){.npc = "a", .text = "queued"});
    cancel_and_print(c, started[0]);
    start(c, (parley_reply_args){.npc = "a", .text = "running"});
    parley_event ev;
    parley_wait(c, started[1], 5000, &ev);
    print_event(&ev);
    cancel_and_print(c, started[1]);
    drain(c, 2, 300, 5000);
}

/* Frames kept while waiting for another reply: past the cap, deltas go, terminal frames stay. */
static void fake_queue(parley_client *c) {
    start(c, (parley_reply_args){.npc = "a", .text = "ends first"});
    start(c, (parley_reply_args){.npc = "a", .text = "waited for"});
    start(c, (parley_reply_args){.npc = "a", .text = "talks a lot"});
    parley_event ev;
    parley_status st;
    do st = parley_wait(c, started[1], 5000, &ev);
    while (st == PARLEY_OK && ev.type != PARLEY_EVENT_DONE && ev.type != PARLEY_EVENT_ERROR);
    print_event(&ev);
    drain(c, 2, 300, 5000);
}

/* A 48 KiB blob passes; a frame over the client's limit does not. */
static void fake_big(parley_client *c) {
    unsigned char *blob = NULL;
    size_t len = 0;
    parley_status st = parley_export_session(c, "a", "s", 5000, &blob, &len);
    printf("EXPORTED %d %zu\n", (int)st, len);
    parley_free(blob);
    start(c, (parley_reply_args){.npc = "a", .text = "big"});
    drain(c, 1, 300, 8000);
}

static void fake_flood(parley_client *c) {
    start(c, (parley_reply_args){.npc = "a", .text = "flooded"});
    start(c, (parley_reply_args){.npc = "b", .text = "waited"});
    nanosleep(&(struct timespec){1, 0}, NULL); /* a busy game: the other reply's frames pile up */
    parley_event ev;
    double t0 = now_ms();
    parley_status st = parley_wait(c, started[1], 300, &ev);
    printf("WAIT %d %.0f\n", (int)st, now_ms() - t0);
}

static void fake_hostile(parley_client *c) {
    start(c, (parley_reply_args){.npc = "a", .text = "hello"});
    parley_event ev;
    parley_poll(c, 0, &ev);
    long before = vm_peak_kb();
    drain(c, 1, 300, 8000);
    printf("VMPEAK_GROWTH_KB %ld\n", vm_peak_kb() - before);
}

/* parley_wait given the id inside the event it fills (ev.request_id): it once cleared the event first, and with
 * it the id, so the wait matched nothing and timed out. */
static void wait_own_id(parley_client *c) {
    start(c, (parley_reply_args){.npc = "brenna", .text = "Hello there.", .token_deltas = 1});
    parley_event ev;
    parley_status st;
    do st = parley_poll(c, 100, &ev); while (st == PARLEY_OK && ev.type == PARLEY_EVENT_NONE);
    while (st == PARLEY_OK && ev.type != PARLEY_EVENT_DONE && ev.type != PARLEY_EVENT_ERROR)
        st = parley_wait(c, ev.request_id, 5000, &ev);
    printf("OWN_ID %d %s\n", (int)st, st == PARLEY_OK ? (ev.type == PARLEY_EVENT_DONE ? "DONE" : "ERROR") : "-");
}

/* A session operation that times out behind the session's reply (the test holds the model) must not take
 * effect later: the reset below is cancelled when its wait gives up. */
static void late_reset(parley_client *c) {
    start(c, (parley_reply_args){.npc = "talker", .text = "Hello there.", .session = "late-reset"});
    printf("RESET %d\n", (int)parley_reset_session(c, "talker", "late-reset", 300));
    parley_event ev;
    parley_status st;
    do st = parley_wait(c, started[0], 20000, &ev); while (st == PARLEY_OK && ev.type != PARLEY_EVENT_DONE &&
                                                             ev.type != PARLEY_EVENT_ERROR);
    printf("REPLY %d %d\n", (int)st, (int)ev.type);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s ENDPOINT MODE\n", argv[0]);
        return 64;
    }
    int timeout = getenv("PARLEY_TIMEOUT_MS") ? atoi(getenv("PARLEY_TIMEOUT_MS")) : 20000;
    parley_client *c = parley_connect(argv[1], NULL, timeout);
    if (!c) {
        printf("CONNECT_FAILED\n");
        return 1;
    }
    static const struct { const char *name; void (*run)(parley_client *); } modes[] = {
        {"args", args}, {"nil_id_live", nil_id_live}, {"cancel_live", cancel_live}, {"busy_cancel", busy_cancel},
        {"wait_cancel_cycles", wait_cancel_cycles}, {"token_override", token_override},
        {"token_pointer", token_pointer}, {"fake_two", fake_two}, {"fake_actions", fake_actions},
        {"fake_flood", fake_flood}, {"fake_hostile", fake_hostile}, {"fake_cancel", fake_cancel},
        {"fake_queue", fake_queue}, {"fake_big", fake_big}, {"wait_own_id", wait_own_id},
        {"late_reset", late_reset},
    };
    int rc = 64;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(argv[2], modes[i].name) == 0) {
            modes[i].run(c);
            rc = 0;
        }
    if (rc) fprintf(stderr, "unknown mode %s\n", argv[2]);
    parley_close(c);
    fflush(stdout);
    return rc;
}
