/*
 * Parley C client: talk to a Parley server from a native game engine.
 *
 * C99 (parley.c, frame_check.c and platform.c, with their headers), depends on libzmq and msgpack-c only;
 * Linux, macOS and Windows (MSVC or MinGW).
 * The protocol is specified in docs/protocol.md. Nothing here aborts: every call returns
 * a status, and parley_last_error() says what went wrong.
 *
 * Typical use from a game loop:
 *
 *   parley_client *c = parley_connect("tcp://127.0.0.1:5555", NULL, 10000);
 *   parley_reply_args a = {.npc = "brenna", .text = "Hello!", .session = session_id};  (declaration order: C++)
 *   char id[PARLEY_ID_MAX];
 *   parley_reply_start(c, &a, id, sizeof id);
 *   ...each frame: while (parley_poll(c, 0, &ev) == PARLEY_OK && ev.type != PARLEY_EVENT_NONE) { ... }
 */
#ifndef PARLEY_H
#define PARLEY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PARLEY_ID_MAX 65 /* request ids are at most 64 characters, plus the terminating NUL */

typedef struct parley_client parley_client;

typedef enum {
    PARLEY_OK = 0,
    PARLEY_ERR_ARGUMENT,  /* a NULL, oversized or non-UTF-8 argument (nothing was sent), or an id not in flight */
    PARLEY_ERR_ZMQ,       /* socket setup or send failed */
    PARLEY_ERR_TIMEOUT,   /* no answer within the timeout */
    PARLEY_ERR_SERVER,    /* the server answered with an error frame (see the event or last error) */
    PARLEY_ERR_PROTOCOL,  /* the server sent a frame this client cannot read: it was dropped */
    PARLEY_ERR_MEMORY,
    PARLEY_ERR_BUSY       /* too many replies in flight on this client (64) */
} parley_status;

typedef enum {
    PARLEY_EVENT_NONE = 0, /* nothing arrived within the poll's timeout */
    PARLEY_EVENT_DELTA,    /* text: the next piece of an NPC's reply */
    PARLEY_EVENT_ACTION,   /* action_name, action_args (msgpack bytes): the NPC did something */
    PARLEY_EVENT_DONE,     /* text + stats: the reply finished (the last event of its id) */
    PARLEY_EVENT_ERROR     /* error_code, error_message: the reply failed, the last event of its id;
                            * "timeout" when the server went silent */
} parley_event_type;

/* Events come only for replies (parley_reply_start); every reply ends with exactly one DONE or ERROR. */
typedef struct {
    parley_event_type type;
    char request_id[PARLEY_ID_MAX];
    /* Strings below are NUL-terminated (never NULL) and stay valid until the next parley_poll or parley_wait
     * on this client (other calls leave them alone). */
    const char *text;          /* DELTA: the next piece (in sentence mode one sentence, or whitespace only: a run
                                * of line breaks between sentences); DONE: the whole reply */
    const char *action_name;   /* ACTION */
    const unsigned char *action_args; /* ACTION: the arguments, one msgpack value: usually a map, but any value
                                       * the model wrote (list, number, string, nil) */
    size_t action_args_len;
    const char *error_code;    /* ERROR: a stable code from docs/protocol.md, or "timeout" */
    const char *error_message; /* ERROR: for humans */
    /* DONE: */
    const char *finish_reason; /* stats.finish_reason: "return", "end", "length", "deadline", ...; "" if absent */
    double ttft_ms;            /* -1 when the server sent null (nothing was said) */
    double total_ms, deadline_ms;
    int reasoning_tokens, final_tokens;
    int reasoning_cut, fallback_used, deadline_met;
} parley_event;

typedef struct {
    const char *key;   /* both non-NULL */
    const char *value;
} parley_kv;

/* Strings are UTF-8; lengths are in characters (code points), as docs/protocol.md counts them. A string that is
 * not valid UTF-8 or over its limit is PARLEY_ERR_ARGUMENT, and nothing is sent. */
typedef struct {
    const char *npc;      /* required, at most 64 characters */
    const char *text;     /* required: what was said, at most 4000 characters */
    const char *session;  /* optional: conversation id, at most 64 characters */
    const char *speaker;  /* optional: default "Player", at most 80 characters */
    const parley_kv *state; /* optional game state: at most 32 entries, 2000 characters of keys and values */
    size_t state_len;
    double deadline_ms;   /* <= 0: the NPC's default; at most 600000 */
    int no_stream;        /* 1: no DELTA events; the reply's actions still come as ACTION events, before its DONE */
    const char *session_token; /* optional (16 to 64 characters): this session's token from now on, for this and
                                * later requests on the session; NULL: the client's own (parley_session_token) */
    int token_deltas;     /* 1: DELTA events token by token as decoded; 0: one whole sentence each (a reply cut
                           * short then ends at a sentence's end) */
} parley_reply_args;

/* Connect (lazily: the server may start later). timeout_ms: how long a reply may go without hearing from the
 * server before it ends with an ERROR "timeout" event (the server is not told: parley_cancel stops it there).
 * server_key_z85: the server's CurveZMQ public key (40 characters from server.key) or NULL for plain loopback
 * use. Returns NULL on failure. */
parley_client *parley_connect(const char *endpoint, const char *server_key_z85, int timeout_ms);
/* The same with this client's own CurveZMQ key pair (for servers with a client allow-list). */
parley_client *parley_connect_keys(const char *endpoint, const char *server_key_z85, const char *client_public_z85,
                                   const char *client_secret_z85, int timeout_ms);
void parley_close(parley_client *c);
const char *parley_last_error(const parley_client *c);

/* Start a reply; its id is written to id_out (PARLEY_ID_MAX bytes). Events arrive through parley_poll or
 * parley_wait. */
parley_status parley_reply_start(parley_client *c, const parley_reply_args *args, char *id_out, size_t id_cap);

/* The next event of any reply, waiting at most timeout_ms (0: never block the game's frame).
 * Returns PARLEY_OK with ev->type == PARLEY_EVENT_NONE when nothing is ready. */
parley_status parley_poll(parley_client *c, int timeout_ms, parley_event *ev);

/* The next event of one reply, waiting at most timeout_ms; events of other replies are kept for later polls.
 * PARLEY_ERR_TIMEOUT if none came in time (the reply goes on); PARLEY_ERR_ARGUMENT if no reply with that id is
 * in flight (its last event was already returned). */
parley_status parley_wait(parley_client *c, const char *request_id, int timeout_ms, parley_event *ev);

/* Ask the server to cancel a reply, waiting at most timeout_ms for its answer (the server answers at once).
 * On PARLEY_OK, *found (if not NULL) says what happens to the reply, whose own events still come through
 * parley_poll/parley_wait: 1: it ends with an ERROR event, "cancelled" ("shutting_down" while the server
 * stops), possibly after a few more DELTA/ACTION events already on their way; 0: it had already ended (or the
 * id is unknown) and ends as it would, with its DONE or ERROR. The cancel's own answer is never an event.
 * PARLEY_ERR_TIMEOUT: no answer in time (the cancel may still take effect). Needs no free reply slot. */
parley_status parley_cancel(parley_client *c, const char *request_id, int timeout_ms, int *found);

/* Synchronous requests: they wait at most timeout_ms and keep replies' events for later polls.
 * npc and session: at most 64 characters, session not empty. */
parley_status parley_health(parley_client *c, int timeout_ms, char *status_out, size_t cap);
parley_status parley_reset_session(parley_client *c, const char *npc, const char *session, int timeout_ms);
/* *blob_out is malloc'ed: release it with parley_free. Keep it in the game's save file. */
parley_status parley_export_session(parley_client *c, const char *npc, const char *session, int timeout_ms,
                                    unsigned char **blob_out, size_t *len_out);
/* blob: at most 48 KiB. */
parley_status parley_import_session(parley_client *c, const char *npc, const char *session,
                                    const unsigned char *blob, size_t len, int timeout_ms);
void parley_free(void *p);

/* Sessions belong to whoever holds their token (docs/protocol.md, "Sessions"). The client makes one up
 * for each session it names and sends it with every request on that session. Keep it in the save
 * beside the exported blob, and give it back after loading (for a server that still has the session).
 * The returned pointer stays valid as long as the client; it always holds the session's current token
 * (parley_set_session_token and parley_reply_args.session_token change it in place). */
const char *parley_session_token(parley_client *c, const char *npc, const char *session);
/* token: 16 to 64 characters. */
parley_status parley_set_session_token(parley_client *c, const char *npc, const char *session, const char *token);

#ifdef __cplusplus
}
#endif
#endif /* PARLEY_H */
