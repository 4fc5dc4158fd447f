/*
 * Parley C client: talk to a Parley server from a native game engine.
 *
 * C99, one header and one source file, depends on libzmq and msgpack-c only.
 * The protocol is specified in docs/protocol.md. Nothing here aborts: every call returns
 * a status, and parley_last_error() says what went wrong.
 *
 * Typical use from a game loop:
 *
 *   parley_client *c = parley_connect("tcp://127.0.0.1:5555", NULL, 10000);
 *   parley_reply_args a = {.npc = "brenna", .session = "player-1", .text = "Hello!"};
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
    PARLEY_ERR_ARGUMENT,  /* a NULL or oversized argument */
    PARLEY_ERR_ZMQ,       /* socket setup or send failed */
    PARLEY_ERR_TIMEOUT,   /* no answer within the timeout */
    PARLEY_ERR_SERVER,    /* the server answered with an error frame (see the event or last error) */
    PARLEY_ERR_PROTOCOL,  /* the server sent something this client cannot read */
    PARLEY_ERR_MEMORY,
    PARLEY_ERR_BUSY       /* too many requests in flight on this client (64) */
} parley_status;

typedef enum {
    PARLEY_EVENT_NONE = 0, /* nothing arrived within the poll's timeout */
    PARLEY_EVENT_DELTA,    /* text: the next piece of an NPC's reply */
    PARLEY_EVENT_ACTION,   /* action_name, action_args (msgpack bytes): the NPC did something */
    PARLEY_EVENT_DONE,     /* text + stats: the reply (or another request) finished */
    PARLEY_EVENT_ERROR     /* error_code, error_message: the request failed; "timeout" if the server went silent */
} parley_event_type;

typedef struct {
    parley_event_type type;
    char request_id[PARLEY_ID_MAX];
    /* Strings below are NUL-terminated and stay valid until the next parley_poll/parley_wait call. */
    const char *text;          /* DELTA, DONE (the whole reply; "" for non-reply requests) */
    const char *action_name;   /* ACTION */
    const unsigned char *action_args; /* ACTION: the arguments as a msgpack map */
    size_t action_args_len;
    const char *error_code;    /* ERROR: a stable code from docs/protocol.md, or "timeout" */
    const char *error_message; /* ERROR: for humans */
    /* DONE of a reply: */
    double ttft_ms, total_ms, deadline_ms;
    int reasoning_tokens, final_tokens;
    int reasoning_cut, fallback_used, deadline_met;
} parley_event;

typedef struct {
    const char *key;
    const char *value;
} parley_kv;

typedef struct {
    const char *npc;      /* required */
    const char *text;     /* required: what was said */
    const char *session;  /* optional: conversation id */
    const char *speaker;  /* optional: default "Player" */
    const parley_kv *state; /* optional game state */
    size_t state_len;
    double deadline_ms;   /* <= 0: the NPC's default */
    int no_stream;        /* 1: only the DONE event, no DELTA events */
    const char *session_token; /* optional: this session's token; NULL: the client's own (parley_session_token) */
    int token_deltas;     /* 1: DELTA events token by token as decoded; 0: one whole sentence each (a reply cut
                           * short then ends at a sentence's end) */
} parley_reply_args;

/* Connect (lazily: the server may start later). timeout_ms: how long a request may go without an
 * answer before it ends with a "timeout" error. server_key_z85: the server's CurveZMQ public key
 * (40 characters from server.key) or NULL for plain loopback use. Returns NULL on failure. */
parley_client *parley_connect(const char *endpoint, const char *server_key_z85, int timeout_ms);
/* The same with this client's own CurveZMQ key pair (for servers with a client allow-list). */
parley_client *parley_connect_keys(const char *endpoint, const char *server_key_z85, const char *client_public_z85,
                                   const char *client_secret_z85, int timeout_ms);
void parley_close(parley_client *c);
const char *parley_last_error(const parley_client *c);

/* Start a reply; its id is written to id_out. Events arrive through parley_poll or parley_wait. */
parley_status parley_reply_start(parley_client *c, const parley_reply_args *args, char *id_out, size_t id_cap);

/* The next event of any request, waiting at most timeout_ms (0: never block the game's frame).
 * Returns PARLEY_OK with ev->type == PARLEY_EVENT_NONE when nothing is ready. */
parley_status parley_poll(parley_client *c, int timeout_ms, parley_event *ev);

/* The next event of one request, waiting at most timeout_ms; events of other requests are kept for
 * later polls. PARLEY_ERR_TIMEOUT if none came. */
parley_status parley_wait(parley_client *c, const char *request_id, int timeout_ms, parley_event *ev);

/* Ask the server to cancel a reply; it then ends with an ERROR event, code "cancelled". */
parley_status parley_cancel(parley_client *c, const char *request_id);

/* Synchronous requests (they keep other requests' events for later polls). */
parley_status parley_health(parley_client *c, int timeout_ms, char *status_out, size_t cap);
parley_status parley_reset_session(parley_client *c, const char *npc, const char *session, int timeout_ms);
/* *blob_out is malloc'ed: release it with parley_free. Keep it in the game's save file. */
parley_status parley_export_session(parley_client *c, const char *npc, const char *session, int timeout_ms,
                                    unsigned char **blob_out, size_t *len_out);
parley_status parley_import_session(parley_client *c, const char *npc, const char *session,
                                    const unsigned char *blob, size_t len, int timeout_ms);
void parley_free(void *p);

/* Sessions belong to whoever holds their token (docs/protocol.md, "Sessions"). The client makes one up
 * for each session it names and sends it with every request on that session. Keep it in the save
 * beside the exported blob, and give it back after loading (for a server that still has the session).
 * The returned string lives as long as the client. */
const char *parley_session_token(parley_client *c, const char *npc, const char *session);
parley_status parley_set_session_token(parley_client *c, const char *npc, const char *session, const char *token);

#ifdef __cplusplus
}
#endif
#endif /* PARLEY_H */
