/* Hold a conversation with a Parley NPC the way a game loop would: start a reply, then poll once per
 * frame without ever blocking the frame longer than a few milliseconds.
 *
 *   ./conversation tcp://127.0.0.1:5555 brenna "Good morning!" "How much for a steel sword?"
 */
#include <stdio.h>
#include <string.h>

#include "../parley.h"

#define FRAME_BUDGET_MS 4 /* the most this "game" lets Parley hold a 60 fps frame */

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s ENDPOINT NPC LINE [LINE...]\n", argv[0]);
        return 2;
    }
    parley_client *c = parley_connect(argv[1], NULL, 15000);
    if (!c) {
        fprintf(stderr, "cannot create a client for %s\n", argv[1]);
        return 1;
    }
    int failures = 0;
    for (int i = 3; i < argc; i++) {
        parley_kv state[] = {{"time", "morning"}, {"weather", "rain"}};
        parley_reply_args args = {.npc = argv[2], .text = argv[i], .session = "c-example", .state = state,
                                  .state_len = 2, .deadline_ms = 5000};
        char id[PARLEY_ID_MAX];
        if (parley_reply_start(c, &args, id, sizeof id) != PARLEY_OK) {
            fprintf(stderr, "cannot send: %s\n", parley_last_error(c));
            failures++;
            break;
        }
        printf("Player: %s\n%s: ", argv[i], argv[2]);
        fflush(stdout);
        int frames = 0, finished = 0;
        while (!finished) {
            parley_event ev;
            frames++; /* one game frame: render, simulate... then drain Parley's events */
            while (parley_poll(c, FRAME_BUDGET_MS, &ev) == PARLEY_OK && ev.type != PARLEY_EVENT_NONE) {
                if (strcmp(ev.request_id, id) != 0) continue;
                if (ev.type == PARLEY_EVENT_DELTA) {
                    fputs(ev.text, stdout);
                    fflush(stdout);
                } else if (ev.type == PARLEY_EVENT_ACTION) {
                    printf(" <action %s>", ev.action_name);
                } else if (ev.type == PARLEY_EVENT_DONE) {
                    printf("\n  [%d frames, first word %.0f ms, total %.0f ms, %s, deadline %s%s]\n", frames,
                           ev.ttft_ms, ev.total_ms, ev.finish_reason, ev.deadline_met ? "met" : "MISSED",
                           ev.fallback_used ? ", fallback" : "");
                    finished = 1;
                    break;
                } else if (ev.type == PARLEY_EVENT_ERROR) {
                    printf("\n  [error %s: %s]\n", ev.error_code, ev.error_message);
                    failures++;
                    finished = 1;
                    break;
                }
            }
        }
    }
    parley_close(c);
    return failures ? 1 : 0;
}
