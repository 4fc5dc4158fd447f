/* Parley C client. See parley.h for the API and docs/protocol.md for the wire protocol. */
#include "parley.h"
#include "frame_check.h"
#include "platform.h"

#include <errno.h>
#include <limits.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define MAX_IN_FLIGHT 64            /* replies */
#define MAX_QUEUED 1024             /* frames kept for later polls (while waiting for something else) */
#define MAX_QUEUED_BYTES (16 << 20)
#define MAX_FRAME_BYTES (256 << 10) /* ZMQ_MAXMSGSIZE: a server's largest answer is a few KiB, a blob 48 KiB */
#define RECEIVE_HWM 64              /* frames libzmq holds before the client reads them: 16 MiB at most */
#define MAX_DEPTH 32                /* msgpack-c's own nesting limit (MSGPACK_EMBED_STACK_SIZE) */
#define MAX_LATE_READS 16           /* frames read past a call's deadline before it gives up */
#define MAX_DONE_ACTIONS 16         /* actions taken from one done frame (the protocol sends at most 4) */

/* The protocol's limits (docs/protocol.md, "Limits"); lengths in characters. */
#define MAX_NAME_CHARS 64 /* id, npc, session, session_token, target */
#define MIN_TOKEN_CHARS 16
#define MAX_TEXT_CHARS 4000
#define MAX_SPEAKER_CHARS 80
#define MAX_STATE_ENTRIES 32
#define MAX_STATE_CHARS 2000
#define MAX_BLOB_BYTES (48 * 1024)
#define MAX_REQUEST_BYTES (64 * 1024)
#define MAX_DEADLINE_MS 600000.0
#define TOKEN_BYTES (4 * MAX_NAME_CHARS + 1) /* 64 characters of UTF-8 and the terminator */

/* The token this client sends for one session (docs/protocol.md, "Sessions"). Allocated once and never
 * moved, so the pointer parley_session_token returns stays valid. */
typedef struct session_token {
    struct session_token *next;
    char *npc, *session;
    char token[TOKEN_BYTES];
} session_token;

typedef struct {
    char id[PARLEY_ID_MAX];
    unsigned long seq;        /* send order: an error with a nil id concerns the latest request unheard */
    double last_activity_ms;
    int used, heard, ended;   /* ended: its terminal frame is queued */
    int no_stream;            /* its actions come inside its done frame */
} in_flight;

typedef enum { FRAME_DELTA, FRAME_ACTION, FRAME_DONE, FRAME_ERROR } frame_kind;

typedef struct queued {
    struct queued *next;
    char id[PARLEY_ID_MAX];   /* the reply it belongs to (for a nil-id error: the one it was attributed to) */
    frame_kind kind;
    int actions, next_action; /* a no_stream done: its actions come out first, one ACTION event each */
    zmq_msg_t msg;
} queued;

/* The one request other than a reply being waited for (cancel, health, session operations). */
typedef struct {
    char id[PARLEY_ID_MAX];
    unsigned long seq;
    int waiting, answered;
    zmq_msg_t answer;
} sync_call;

/* A request being packed: a failed allocation anywhere sets failed. */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int failed;
} request;

struct parley_client {
    void *ctx, *sock;
    int timeout_ms;
    unsigned long counter, sent;
    char prefix[24];
    char error[256];
    in_flight flights[MAX_IN_FLIGHT];
    sync_call sync;
    queued *head, *tail;
    size_t queued_count, queued_bytes;
    /* the current event's storage, released at the next poll/wait */
    zmq_msg_t ev_msg;
    int has_ev_msg, has_unpacked;
    msgpack_unpacked unpacked;
    char *strings[3];
    char *args;
    session_token *tokens;
};

static const char empty[1] = "";

/* strdup is POSIX, not C99 (MSVC spells it _strdup). */
static char *copy_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    return copy ? memcpy(copy, s, n) : NULL;
}

static void set_error(parley_client *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
}

const char *parley_last_error(const parley_client *c) { return c ? c->error : "no client"; }

void parley_free(void *p) { free(p); }

parley_client *parley_connect_keys(const char *endpoint, const char *server_key_z85, const char *client_public_z85,
                                   const char *client_secret_z85, int timeout_ms) {
    if (!endpoint) return NULL;
    parley_client *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    snprintf(c->prefix, sizeof c->prefix, "c%lx-%lx", parley_process_id(), (unsigned long)(parley_clock_ms()) % 0xfffffff);
    c->ctx = zmq_ctx_new();
    c->sock = c->ctx ? zmq_socket(c->ctx, ZMQ_DEALER) : NULL;
    if (!c->sock) goto fail;
    int linger = 0;
    int64_t max_frame = MAX_FRAME_BYTES; /* a larger frame drops the connection instead of our memory */
    int rcvhwm = RECEIVE_HWM; /* libzmq's default (1000 frames) would let a hostile server park a GiB here */
    int ipv6 = strncmp(endpoint, "tcp://[", 7) == 0; /* libzmq uses IPv6 addresses only when asked */
    if (zmq_setsockopt(c->sock, ZMQ_IPV6, &ipv6, sizeof ipv6) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) != 0)
        goto fail;
    if (server_key_z85) {
        char pub[41], sec[41];
        if (client_public_z85 && client_secret_z85) {
            snprintf(pub, sizeof pub, "%s", client_public_z85);
            snprintf(sec, sizeof sec, "%s", client_secret_z85);
        } else if (zmq_curve_keypair(pub, sec) != 0) {
            goto fail;
        }
        if (strlen(server_key_z85) != 40 || zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, server_key_z85, 40) != 0 ||
            zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, pub, 40) != 0 ||
            zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, sec, 40) != 0)
            goto fail;
    }
    if (zmq_connect(c->sock, endpoint) != 0) goto fail;
    return c;
fail:
    if (c->sock) zmq_close(c->sock);
    if (c->ctx) zmq_ctx_term(c->ctx);
    free(c);
    return NULL;
}

parley_client *parley_connect(const char *endpoint, const char *server_key_z85, int timeout_ms) {
    return parley_connect_keys(endpoint, server_key_z85, NULL, NULL, timeout_ms);
}

static void release_event(parley_client *c) {
    if (c->has_unpacked) msgpack_unpacked_destroy(&c->unpacked);
    if (c->has_ev_msg) zmq_msg_close(&c->ev_msg);
    c->has_unpacked = c->has_ev_msg = 0;
    for (int i = 0; i < 3; i++) {
        free(c->strings[i]);
        c->strings[i] = NULL;
    }
    free(c->args);
    c->args = NULL;
}

void parley_close(parley_client *c) {
    if (!c) return;
    release_event(c);
    while (c->head) {
        queued *q = c->head;
        c->head = q->next;
        zmq_msg_close(&q->msg);
        free(q);
    }
    while (c->tokens) {
        session_token *t = c->tokens;
        c->tokens = t->next;
        free(t->npc);
        free(t->session);
        free(t);
    }
    zmq_close(c->sock);
    zmq_ctx_term(c->ctx);
    free(c);
}

/* ---- argument checks ------------------------------------------------------------------------ */

/* Characters (code points) in a UTF-8 string, or -1 when it is not valid UTF-8: the server cannot read such a
 * frame, so it could not even say which request it refused (its error would carry a nil id). */
static long utf8_chars(const char *str) {
    const unsigned char *s = (const unsigned char *)str;
    long n = 0;
    while (*s) {
        unsigned char lead = *s++;
        int more = lead < 0x80 ? 0 : lead >= 0xc2 && lead <= 0xdf ? 1 : lead >= 0xe0 && lead <= 0xef ? 2
                 : lead >= 0xf0 && lead <= 0xf4 ? 3 : -1;
        if (more < 0) return -1;
        unsigned long cp = more ? lead & (0x3fu >> more) : lead;
        for (int i = 0; i < more; i++, s++) {
            if ((*s & 0xc0) != 0x80) return -1; /* the terminator included */
            cp = cp << 6 | (*s & 0x3fu);
        }
        int overlong = (more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000);
        if (overlong || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return -1; /* or a surrogate, or too big */
        n++;
    }
    return n;
}

/* A string field as the server checks it: valid UTF-8 of min_chars to max_chars characters. */
static int valid_str(parley_client *c, const char *field, const char *s, long min_chars, long max_chars) {
    if (!s) {
        set_error(c, "%s is required", field);
        return 0;
    }
    long n = utf8_chars(s);
    if (n < 0) {
        set_error(c, "%s is not valid UTF-8", field);
        return 0;
    }
    if (n < min_chars || n > max_chars) {
        set_error(c, "%s has %ld characters; %ld to %ld are allowed", field, n, min_chars, max_chars);
        return 0;
    }
    return 1;
}

static int valid_state(parley_client *c, const parley_kv *state, size_t len) {
    if (len > MAX_STATE_ENTRIES || (len && !state)) {
        set_error(c, "state must point to at most %d entries", MAX_STATE_ENTRIES);
        return 0;
    }
    long chars = 0;
    for (size_t i = 0; i < len; i++) {
        if (!valid_str(c, "a state key", state[i].key, 0, MAX_STATE_CHARS) ||
            !valid_str(c, "a state value", state[i].value, 0, MAX_STATE_CHARS))
            return 0;
        chars += utf8_chars(state[i].key) + utf8_chars(state[i].value);
    }
    if (chars > MAX_STATE_CHARS) {
        set_error(c, "state has %ld characters; the limit is %d", chars, MAX_STATE_CHARS);
        return 0;
    }
    return 1;
}

static int valid_reply_args(parley_client *c, const parley_reply_args *a) {
    int with_session = a->session && *a->session;
    if (!valid_str(c, "npc", a->npc, 0, MAX_NAME_CHARS) || !valid_str(c, "text", a->text, 0, MAX_TEXT_CHARS) ||
        (a->session && !valid_str(c, "session", a->session, 0, MAX_NAME_CHARS)) ||
        (with_session && a->session_token &&
         !valid_str(c, "session_token", a->session_token, MIN_TOKEN_CHARS, MAX_NAME_CHARS)) ||
        (a->speaker && !valid_str(c, "speaker", a->speaker, 0, MAX_SPEAKER_CHARS)) ||
        !valid_state(c, a->state, a->state_len))
        return 0;
    if (!(a->deadline_ms <= MAX_DEADLINE_MS)) { /* NaN too */
        set_error(c, "deadline_ms must be at most %.0f", MAX_DEADLINE_MS);
        return 0;
    }
    return 1;
}

/* npc and session of a session operation (a session operation needs a session: "" is a one-off reply's). */
static int valid_session(parley_client *c, const char *npc, const char *session) {
    return valid_str(c, "npc", npc, 0, MAX_NAME_CHARS) && valid_str(c, "session", session, 1, MAX_NAME_CHARS);
}

/* ---- session tokens ------------------------------------------------------------------------- */

/* 32 random hex characters: from the system's random source, else from libzmq's key generator. */
static int random_token(char out[TOKEN_BYTES]) {
    unsigned char bytes[16];
    if (parley_random_bytes(bytes, sizeof bytes) != 0) {
        char pub[41], sec[41];
        if (zmq_curve_keypair(pub, sec) != 0) return -1;
        for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (unsigned char)(sec[i] * 31 + sec[i + 16]);
    }
    for (size_t i = 0; i < sizeof bytes; i++) snprintf(out + 2 * i, 3, "%02x", bytes[i]);
    return 0;
}

static session_token *find_token(parley_client *c, const char *npc, const char *session) {
    for (session_token *t = c->tokens; t; t = t->next)
        if (strcmp(t->npc, npc) == 0 && strcmp(t->session, session) == 0) return t;
    return NULL;
}

/* The session's token record, made (with a random token) if it is new; NULL when out of memory. */
static session_token *token_record(parley_client *c, const char *npc, const char *session) {
    session_token *t = find_token(c, npc, session);
    if (t) return t;
    t = calloc(1, sizeof *t);
    if (!t || !(t->npc = copy_string(npc)) || !(t->session = copy_string(session)) || random_token(t->token) != 0) {
        if (t) {
            free(t->npc);
            free(t->session);
        }
        free(t);
        set_error(c, "could not make a session token");
        return NULL;
    }
    t->next = c->tokens;
    c->tokens = t;
    return t;
}

const char *parley_session_token(parley_client *c, const char *npc, const char *session) {
    if (!c || !valid_session(c, npc, session)) return NULL;
    session_token *t = token_record(c, npc, session);
    return t ? t->token : NULL;
}

parley_status parley_set_session_token(parley_client *c, const char *npc, const char *session, const char *token) {
    if (!c) return PARLEY_ERR_ARGUMENT;
    if (!valid_session(c, npc, session) || !valid_str(c, "session_token", token, MIN_TOKEN_CHARS, MAX_NAME_CHARS))
        return PARLEY_ERR_ARGUMENT;
    session_token *t = token_record(c, npc, session);
    if (!t) return PARLEY_ERR_MEMORY;
    if (t->token != token) snprintf(t->token, TOKEN_BYTES, "%s", token); /* in place: old pointers stay valid */
    return PARLEY_OK;
}

/* ---- packing and sending -------------------------------------------------------------------- */

static int write_checked(void *data, const char *buf, size_t len) {
    request *r = data;
    if (!r->failed && msgpack_sbuffer_write(&r->sb, buf, len) != 0) r->failed = 1;
    return r->failed ? -1 : 0;
}

static void pack_str(request *r, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str(&r->pk, n);
    msgpack_pack_str_body(&r->pk, s, n);
}

static void pack_entry(request *r, const char *key, const char *value) {
    pack_str(r, key);
    pack_str(r, value);
}

/* Start a request map of entries keys besides v, id and type. */
static void begin_request(request *r, size_t entries, const char *id, const char *type) {
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer_init(&r->pk, r, write_checked);
    r->failed = 0;
    msgpack_pack_map(&r->pk, entries + 3);
    pack_str(r, "v");
    msgpack_pack_int(&r->pk, 1);
    pack_entry(r, "id", id);
    pack_entry(r, "type", type);
}

static void new_id(parley_client *c, char *out) { snprintf(out, PARLEY_ID_MAX, "%s-%lu", c->prefix, ++c->counter); }

/* Send a packed request (and release it); c->sent counts the requests sent. */
static parley_status send_request(parley_client *c, request *r) {
    parley_status st = PARLEY_OK;
    if (r->failed) {
        set_error(c, "out of memory packing the request");
        st = PARLEY_ERR_MEMORY;
    } else if (r->sb.size > MAX_REQUEST_BYTES) {
        set_error(c, "the request is %zu bytes; the limit is %d", r->sb.size, MAX_REQUEST_BYTES);
        st = PARLEY_ERR_ARGUMENT;
    } else if (zmq_send(c->sock, r->sb.data, r->sb.size, ZMQ_DONTWAIT) < 0) {
        set_error(c, "send failed: %s", zmq_strerror(zmq_errno()));
        st = PARLEY_ERR_ZMQ;
    } else {
        c->sent++;
    }
    msgpack_sbuffer_destroy(&r->sb);
    return st;
}

static in_flight *flight(parley_client *c, const char *id) {
    for (int i = 0; i < MAX_IN_FLIGHT; i++)
        if (c->flights[i].used && strcmp(c->flights[i].id, id) == 0) return &c->flights[i];
    return NULL;
}

static in_flight *free_flight(parley_client *c) {
    for (int i = 0; i < MAX_IN_FLIGHT; i++)
        if (!c->flights[i].used) return &c->flights[i];
    set_error(c, "%d replies are already in flight on this client", MAX_IN_FLIGHT);
    return NULL;
}

static void pack_reply(request *r, const parley_reply_args *a, const char *id, const char *token) {
    size_t entries = 2 + (a->session != NULL) + (token != NULL) + (a->speaker != NULL) + (a->state_len > 0) +
                     (a->deadline_ms > 0) + (a->no_stream != 0) + (a->token_deltas != 0);
    begin_request(r, entries, id, "reply");
    pack_entry(r, "npc", a->npc);
    pack_entry(r, "text", a->text);
    if (a->session) pack_entry(r, "session", a->session);
    if (token) pack_entry(r, "session_token", token);
    if (a->speaker) pack_entry(r, "speaker", a->speaker);
    if (a->state_len > 0) {
        pack_str(r, "state");
        msgpack_pack_map(&r->pk, a->state_len);
        for (size_t i = 0; i < a->state_len; i++) pack_entry(r, a->state[i].key, a->state[i].value);
    }
    if (a->deadline_ms > 0) {
        pack_str(r, "deadline_ms");
        msgpack_pack_double(&r->pk, a->deadline_ms);
    }
    if (a->no_stream) {
        pack_str(r, "stream");
        msgpack_pack_false(&r->pk);
    }
    if (a->token_deltas) pack_entry(r, "stream_unit", "token");
}

parley_status parley_reply_start(parley_client *c, const parley_reply_args *a, char *id_out, size_t id_cap) {
    if (!c) return PARLEY_ERR_ARGUMENT;
    if (!a || !id_out || id_cap < PARLEY_ID_MAX) {
        set_error(c, "reply arguments and an id buffer of PARLEY_ID_MAX bytes are required");
        return PARLEY_ERR_ARGUMENT;
    }
    if (!valid_reply_args(c, a)) return PARLEY_ERR_ARGUMENT;
    in_flight *f = free_flight(c);
    if (!f) return PARLEY_ERR_BUSY;
    const char *token = NULL;
    if (a->session && *a->session) {
        session_token *t = token_record(c, a->npc, a->session);
        if (!t) return PARLEY_ERR_MEMORY;
        /* an override is the session's token from now on: the session may be made with it */
        if (a->session_token && t->token != a->session_token) snprintf(t->token, TOKEN_BYTES, "%s", a->session_token);
        token = t->token;
    }
    char id[PARLEY_ID_MAX];
    new_id(c, id);
    request r;
    pack_reply(&r, a, id, token);
    parley_status st = send_request(c, &r);
    if (st != PARLEY_OK) return st;
    memset(f, 0, sizeof *f);
    snprintf(f->id, PARLEY_ID_MAX, "%s", id);
    f->seq = c->sent;
    f->last_activity_ms = parley_clock_ms();
    f->used = 1;
    f->no_stream = a->no_stream != 0;
    snprintf(id_out, id_cap, "%s", id);
    return PARLEY_OK;
}

/* ---- reading frames ------------------------------------------------------------------------- */

/* Unpack a frame once it is known to be well formed: the map it must be, or NULL. */
static const msgpack_object *unpack_map(const zmq_msg_t *msg, msgpack_unpacked *u) {
    const unsigned char *data = zmq_msg_data((zmq_msg_t *)msg);
    size_t size = zmq_msg_size((zmq_msg_t *)msg);
    if (!parley_well_formed(data, size, MAX_DEPTH) || msgpack_unpack_next(u, (const char *)data, size, NULL) != MSGPACK_UNPACK_SUCCESS ||
        u->data.type != MSGPACK_OBJECT_MAP)
        return NULL;
    return &u->data;
}

static const msgpack_object *get(const msgpack_object *map, const char *key) {
    if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, key, n) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static int str_is(const msgpack_object *o, const char *s) {
    size_t n = strlen(s);
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n && memcmp(o->via.str.ptr, s, n) == 0;
}

static int kind_of(const msgpack_object *m, frame_kind *kind) {
    const msgpack_object *t = get(m, "type");
    if (str_is(t, "delta")) *kind = FRAME_DELTA;
    else if (str_is(t, "action")) *kind = FRAME_ACTION;
    else if (str_is(t, "done")) *kind = FRAME_DONE;
    else if (str_is(t, "error")) *kind = FRAME_ERROR;
    else return 0;
    return 1;
}

/* The request an error with a nil id concerns (the server could not read the request): the one sent last that
 * has heard nothing yet (docs/protocol.md, "Errors"); NULL if none. */
static const char *nil_id_owner(parley_client *c) {
    const char *id = NULL;
    unsigned long latest = 0;
    for (int i = 0; i < MAX_IN_FLIGHT; i++) {
        in_flight *f = &c->flights[i];
        if (f->used && !f->heard && f->seq > latest) latest = f->seq, id = f->id;
    }
    if (c->sync.waiting && !c->sync.answered && c->sync.seq > latest) id = c->sync.id;
    return id;
}

/* Drop one queued frame to make room: the oldest DELTA (a DONE repeats the whole text), else the oldest
 * ACTION; never a terminal frame, so every reply still ends. 0 if only terminal frames are left. */
static int evict_one(parley_client *c) {
    for (int kind = FRAME_DELTA; kind <= FRAME_ACTION; kind++) {
        for (queued *q = c->head, *prev = NULL; q; prev = q, q = q->next) {
            if ((int)q->kind != kind) continue;
            if (prev) prev->next = q->next; else c->head = q->next;
            if (c->tail == q) c->tail = prev;
            c->queued_count--;
            c->queued_bytes -= zmq_msg_size(&q->msg);
            zmq_msg_close(&q->msg);
            free(q);
            return 1;
        }
    }
    return 0;
}

static parley_status enqueue(parley_client *c, const char *id, frame_kind kind, int actions, zmq_msg_t *msg) {
    queued *q = calloc(1, sizeof *q);
    if (!q) {
        set_error(c, "out of memory: a frame was dropped");
        return PARLEY_ERR_MEMORY;
    }
    snprintf(q->id, PARLEY_ID_MAX, "%s", id);
    q->kind = kind;
    q->actions = actions;
    zmq_msg_init(&q->msg);
    zmq_msg_move(&q->msg, msg);
    if (c->tail) c->tail->next = q; else c->head = q;
    c->tail = q;
    c->queued_count++;
    c->queued_bytes += zmq_msg_size(&q->msg);
    while ((c->queued_count > MAX_QUEUED || c->queued_bytes > MAX_QUEUED_BYTES) && evict_one(c)) {
    }
    return PARLEY_OK;
}

/* How many actions a no_stream reply's done frame carries (streamed replies sent them as action frames). */
static int done_actions(const msgpack_object *m) {
    const msgpack_object *a = get(m, "actions");
    if (!a || a->type != MSGPACK_OBJECT_ARRAY) return 0;
    return a->via.array.size < MAX_DONE_ACTIONS ? (int)a->via.array.size : MAX_DONE_ACTIONS;
}

/* Give one readable frame to its request: queue it for its reply, or hand it to the synchronous call waiting.
 * Frames for no request in flight (a reply that timed out, a second terminal frame) are dropped. */
static parley_status route(parley_client *c, const msgpack_object *m, zmq_msg_t *msg) {
    frame_kind kind;
    if (!kind_of(m, &kind)) return PARLEY_OK; /* a frame type this client does not know */
    const msgpack_object *ido = get(m, "id");
    char id[PARLEY_ID_MAX] = "";
    if (ido && ido->type == MSGPACK_OBJECT_STR) {
        if (ido->via.str.size >= PARLEY_ID_MAX) return PARLEY_OK; /* not an id of ours */
        memcpy(id, ido->via.str.ptr, ido->via.str.size);
        id[ido->via.str.size] = '\0';
    } else {
        const char *owner = kind == FRAME_ERROR ? nil_id_owner(c) : NULL;
        if (!owner) return PARLEY_OK;
        snprintf(id, sizeof id, "%s", owner);
    }
    if (c->sync.waiting && strcmp(id, c->sync.id) == 0) {
        if (!c->sync.answered) zmq_msg_move(&c->sync.answer, msg);
        c->sync.answered = 1;
        return PARLEY_OK;
    }
    in_flight *f = flight(c, id);
    if (!f || f->ended) return PARLEY_OK;
    f->heard = 1;
    f->last_activity_ms = parley_clock_ms();
    int terminal = kind == FRAME_DONE || kind == FRAME_ERROR;
    int actions = kind == FRAME_DONE && f->no_stream ? done_actions(m) : 0;
    parley_status st = enqueue(c, id, kind, actions, msg);
    if (st == PARLEY_OK && terminal) f->ended = 1;
    return st;
}

/* Route one frame; an unreadable one is dropped (PARLEY_ERR_PROTOCOL). Consumes msg. */
static parley_status ingest(parley_client *c, zmq_msg_t *msg) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const msgpack_object *m = unpack_map(msg, &u);
    parley_status st = PARLEY_OK;
    if (m) {
        st = route(c, m, msg);
    } else {
        set_error(c, "the server sent a frame that is not a msgpack map: dropped");
        st = PARLEY_ERR_PROTOCOL;
    }
    msgpack_unpacked_destroy(&u);
    zmq_msg_close(msg);
    return st;
}

/* Read and route one frame, waiting until deadline at most. 1: a frame was read (*st says how it went),
 * 0: none came, -1: the socket failed. */
static int pump(parley_client *c, double deadline, parley_status *st) {
    *st = PARLEY_OK;
    double left = deadline - parley_clock_ms();
    zmq_pollitem_t item = {c->sock, 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll(&item, 1, left > 0 ? (long)(left + 0.999) : 0);
    if (rc < 0 && zmq_errno() != EINTR) {
        set_error(c, "poll failed: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    if (rc <= 0) return 0;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, c->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return 0;
    }
    if (!zmq_msg_more(&msg)) {
        *st = ingest(c, &msg);
        return 1;
    }
    while (zmq_msg_more(&msg)) { /* every answer is one frame: drop a multi-part message whole */
        zmq_msg_close(&msg);
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, c->sock, ZMQ_DONTWAIT) < 0) break;
    }
    zmq_msg_close(&msg);
    set_error(c, "the server sent a multi-part message: dropped");
    *st = PARLEY_ERR_PROTOCOL;
    return 1;
}

/* ---- events --------------------------------------------------------------------------------- */

static const char *dup_str(parley_client *c, int slot, const msgpack_object *o) {
    if (!o || o->type != MSGPACK_OBJECT_STR) return empty;
    char *s = malloc(o->via.str.size + 1);
    if (!s) return empty;
    memcpy(s, o->via.str.ptr, o->via.str.size);
    s[o->via.str.size] = '\0';
    free(c->strings[slot]);
    c->strings[slot] = s;
    return s;
}

static double num(const msgpack_object *o, double otherwise) {
    if (!o) return otherwise;
    switch (o->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER: return (double)o->via.u64;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: return (double)o->via.i64;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64: return o->via.f64;
        case MSGPACK_OBJECT_BOOLEAN: return o->via.boolean ? 1 : 0;
        default: return otherwise;
    }
}

/* A number as an int, clamped: casting an out-of-range double is undefined behaviour. */
static int whole(const msgpack_object *o) {
    double d = num(o, 0);
    if (!(d == d)) return 0; /* NaN */
    return d >= (double)INT_MAX ? INT_MAX : d <= (double)INT_MIN ? INT_MIN : (int)d;
}

/* name and args of an action frame, or of one entry of a done frame's actions. */
static void fill_action(parley_client *c, parley_event *ev, const msgpack_object *action) {
    ev->type = PARLEY_EVENT_ACTION;
    ev->action_name = dup_str(c, 0, get(action, "name"));
    const msgpack_object *args = get(action, "args");
    msgpack_object nil = {MSGPACK_OBJECT_NIL, {0}};
    request r; /* args re-packed on their own: any msgpack value */
    msgpack_sbuffer_init(&r.sb);
    msgpack_packer_init(&r.pk, &r, write_checked);
    r.failed = 0;
    if (msgpack_pack_object(&r.pk, args ? *args : nil) != 0 || r.failed) {
        msgpack_sbuffer_destroy(&r.sb);
        return;
    }
    c->args = r.sb.data;
    ev->action_args = (const unsigned char *)r.sb.data;
    ev->action_args_len = r.sb.size;
}

static void fill_done(parley_client *c, parley_event *ev, const msgpack_object *m) {
    ev->type = PARLEY_EVENT_DONE;
    ev->text = dup_str(c, 0, get(m, "text"));
    const msgpack_object *stats = get(m, "stats");
    ev->ttft_ms = num(get(stats, "ttft_ms"), -1); /* null: nothing was said */
    ev->total_ms = num(get(stats, "total_ms"), 0);
    ev->deadline_ms = num(get(stats, "deadline_ms"), 0);
    ev->reasoning_tokens = whole(get(stats, "reasoning_tokens"));
    ev->final_tokens = whole(get(stats, "final_tokens"));
    ev->reasoning_cut = whole(get(stats, "reasoning_cut")) != 0;
    ev->fallback_used = whole(get(stats, "fallback_used")) != 0;
    ev->deadline_met = whole(get(stats, "deadline_met")) != 0;
    ev->finish_reason = dup_str(c, 2, get(stats, "finish_reason"));
}

static void clear_event(parley_event *ev, const char *id) {
    memset(ev, 0, sizeof *ev);
    snprintf(ev->request_id, PARLEY_ID_MAX, "%s", id);
    ev->text = ev->action_name = ev->error_code = ev->error_message = ev->finish_reason = empty;
}

/* The next event out of a queued frame: a no_stream done gives its actions first. 1 if the frame is used up. */
static int decode(parley_client *c, queued *q, parley_event *ev) {
    release_event(c);
    clear_event(ev, q->id);
    zmq_msg_init(&c->ev_msg);
    zmq_msg_copy(&c->ev_msg, &q->msg); /* shared, not copied: the event's strings point into it */
    c->has_ev_msg = 1;
    msgpack_unpacked_init(&c->unpacked);
    c->has_unpacked = 1;
    const msgpack_object *m = unpack_map(&c->ev_msg, &c->unpacked); /* checked when it arrived */
    if (q->next_action < q->actions) {
        const msgpack_object *list = get(m, "actions");
        if (list && list->type == MSGPACK_OBJECT_ARRAY && (uint32_t)q->next_action < list->via.array.size) {
            fill_action(c, ev, &list->via.array.ptr[q->next_action++]);
            return 0;
        }
        q->next_action = q->actions; /* out of memory re-reading it: give the done at least */
    }
    switch (q->kind) {
        case FRAME_DELTA:
            ev->type = PARLEY_EVENT_DELTA;
            ev->text = dup_str(c, 0, get(m, "text"));
            break;
        case FRAME_ACTION: fill_action(c, ev, m); break;
        case FRAME_DONE: fill_done(c, ev, m); break;
        case FRAME_ERROR:
            ev->type = PARLEY_EVENT_ERROR;
            ev->error_code = dup_str(c, 0, get(m, "code"));
            ev->error_message = dup_str(c, 1, get(m, "message"));
            break;
    }
    return 1;
}

/* The next queued event (of only_id's reply, if given). Its reply's slot is freed with its last event. */
static int take_queued(parley_client *c, const char *only_id, parley_event *ev) {
    for (queued *q = c->head, *prev = NULL; q; prev = q, q = q->next) {
        if (only_id && strcmp(q->id, only_id) != 0) continue;
        if (!decode(c, q, ev)) return 1;
        if (prev) prev->next = q->next; else c->head = q->next;
        if (c->tail == q) c->tail = prev;
        c->queued_count--;
        c->queued_bytes -= zmq_msg_size(&q->msg);
        if (q->kind == FRAME_DONE || q->kind == FRAME_ERROR) {
            in_flight *f = flight(c, q->id);
            if (f) f->used = 0;
        }
        zmq_msg_close(&q->msg);
        free(q);
        return 1;
    }
    return 0;
}

/* A reply that heard nothing for timeout_ms ends with a "timeout" error event. Checked only once the socket
 * is drained, so a game that did not poll for a while does not time out replies whose frames are waiting. */
static double next_expiry(const parley_client *c, const char *only_id, double deadline) {
    for (int i = 0; i < MAX_IN_FLIGHT; i++) {
        const in_flight *f = &c->flights[i];
        if (!f->used || f->ended || (only_id && strcmp(f->id, only_id) != 0)) continue;
        double at = f->last_activity_ms + c->timeout_ms;
        if (at < deadline) deadline = at;
    }
    return deadline;
}

static int expire(parley_client *c, const char *only_id, parley_event *ev) {
    double now = parley_clock_ms();
    for (int i = 0; i < MAX_IN_FLIGHT; i++) {
        in_flight *f = &c->flights[i];
        if (!f->used || f->ended || (only_id && strcmp(f->id, only_id) != 0)) continue;
        if (now - f->last_activity_ms < c->timeout_ms) continue;
        release_event(c);
        clear_event(ev, f->id);
        ev->type = PARLEY_EVENT_ERROR;
        ev->error_code = "timeout";
        ev->error_message = "no answer from the server within the timeout";
        f->used = 0;
        set_error(c, "request %s: no answer within %d ms", f->id, c->timeout_ms);
        return 1;
    }
    return 0;
}

static parley_status next_event(parley_client *c, const char *only_id, int timeout_ms, parley_event *ev) {
    char id[PARLEY_ID_MAX]; /* only_id may point into *ev (ev->request_id), which is cleared next */
    if (only_id) {
        snprintf(id, sizeof id, "%s", only_id);
        only_id = id;
    }
    clear_event(ev, ""); /* what a failed call leaves */
    double deadline = parley_clock_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int late_reads = 0;
    for (;;) {
        if (take_queued(c, only_id, ev)) return PARLEY_OK;
        parley_status st;
        /* never asleep past a reply's own timeout: its "timeout" event is due then, not at the wait's end */
        int got = pump(c, next_expiry(c, only_id, deadline), &st);
        if (got < 0) return PARLEY_ERR_ZMQ;
        if (got && st != PARLEY_OK) return st;
        if (!got && expire(c, only_id, ev)) return PARLEY_OK;
        /* checked every time: frames of other replies must not keep a wait going past its timeout */
        if (parley_clock_ms() >= deadline && (!got || ++late_reads > MAX_LATE_READS)) break;
    }
    release_event(c);
    clear_event(ev, "");
    return only_id ? PARLEY_ERR_TIMEOUT : PARLEY_OK;
}

parley_status parley_poll(parley_client *c, int timeout_ms, parley_event *ev) {
    if (!c || !ev) return PARLEY_ERR_ARGUMENT;
    return next_event(c, NULL, timeout_ms, ev);
}

parley_status parley_wait(parley_client *c, const char *request_id, int timeout_ms, parley_event *ev) {
    if (!c || !ev || !request_id) return PARLEY_ERR_ARGUMENT;
    if (!flight(c, request_id)) { /* nothing will come: do not block */
        set_error(c, "no reply %s is in flight", request_id);
        return PARLEY_ERR_ARGUMENT;
    }
    parley_status st = next_event(c, request_id, timeout_ms, ev);
    if (st == PARLEY_ERR_TIMEOUT) set_error(c, "request %s: no event within %d ms", request_id, timeout_ms);
    return st;
}

/* ---- synchronous requests ------------------------------------------------------------------- */

/* The answer of a synchronous request: its done map, valid until answer_release. */
typedef struct {
    zmq_msg_t msg;
    msgpack_unpacked unpacked;
    const msgpack_object *done;
} answer;

static void answer_release(answer *a) {
    msgpack_unpacked_destroy(&a->unpacked);
    zmq_msg_close(&a->msg);
}

/* Wait for the answer to the request just sent as id (frames of replies are queued meanwhile). */
static parley_status await_answer(parley_client *c, const char *id, int timeout_ms, answer *out) {
    double deadline = parley_clock_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    snprintf(c->sync.id, PARLEY_ID_MAX, "%s", id);
    c->sync.seq = c->sent;
    c->sync.waiting = 1;
    c->sync.answered = 0;
    zmq_msg_init(&c->sync.answer);
    int late_reads = 0;
    parley_status st = PARLEY_OK;
    while (!c->sync.answered) {
        parley_status ignored; /* an unreadable or unqueueable frame is not this request's business */
        int got = pump(c, deadline, &ignored);
        if (got < 0) {
            st = PARLEY_ERR_ZMQ;
            break;
        }
        if (parley_clock_ms() >= deadline && !c->sync.answered && (!got || ++late_reads > MAX_LATE_READS)) {
            set_error(c, "%s: no answer within %d ms", id, timeout_ms);
            st = PARLEY_ERR_TIMEOUT;
            break;
        }
    }
    c->sync.waiting = 0; /* a late answer is dropped like any frame for no request */
    msgpack_unpacked_init(&out->unpacked);
    zmq_msg_init(&out->msg);
    zmq_msg_move(&out->msg, &c->sync.answer);
    zmq_msg_close(&c->sync.answer);
    if (st != PARLEY_OK) return st;
    const msgpack_object *m = unpack_map(&out->msg, &out->unpacked);
    frame_kind kind;
    if (!m || !kind_of(m, &kind)) {
        set_error(c, "%s: unreadable answer", id);
        return PARLEY_ERR_PROTOCOL;
    }
    if (kind == FRAME_ERROR) {
        const msgpack_object *code = get(m, "code"), *msg = get(m, "message");
        set_error(c, "%.*s: %.*s", code && code->type == MSGPACK_OBJECT_STR ? (int)code->via.str.size : 0,
                  code && code->type == MSGPACK_OBJECT_STR ? code->via.str.ptr : "",
                  msg && msg->type == MSGPACK_OBJECT_STR ? (int)msg->via.str.size : 0,
                  msg && msg->type == MSGPACK_OBJECT_STR ? msg->via.str.ptr : "");
        return PARLEY_ERR_SERVER;
    }
    if (kind != FRAME_DONE) {
        set_error(c, "%s: answered with a %s frame", id, kind == FRAME_DELTA ? "delta" : "action");
        return PARLEY_ERR_PROTOCOL;
    }
    out->done = m;
    return PARLEY_OK;
}

/* Send a request other than a reply (a session's token goes with npc and session) and wait for its answer. */
static parley_status call(parley_client *c, const char *type, const char *npc, const char *session,
                          const char *target, const unsigned char *blob, size_t blob_len, int timeout_ms,
                          answer *out) {
    const char *token = NULL;
    if (npc && session) {
        session_token *t = token_record(c, npc, session);
        if (!t) return PARLEY_ERR_MEMORY;
        token = t->token;
    }
    char id[PARLEY_ID_MAX];
    new_id(c, id);
    request r;
    begin_request(&r, 3 * (token != NULL) + (target != NULL) + (blob != NULL), id, type);
    if (token) {
        pack_entry(&r, "npc", npc);
        pack_entry(&r, "session", session);
        pack_entry(&r, "session_token", token);
    }
    if (target) pack_entry(&r, "target", target);
    if (blob) {
        pack_str(&r, "blob");
        msgpack_pack_bin(&r.pk, blob_len);
        msgpack_pack_bin_body(&r.pk, blob, blob_len);
    }
    parley_status st = send_request(c, &r);
    if (st != PARLEY_OK) return st;
    st = await_answer(c, id, timeout_ms, out);
    if (st != PARLEY_OK) answer_release(out);
    if (st == PARLEY_ERR_TIMEOUT && token) {
        /* the game was told it failed: a session operation still queued behind the session's replies must not
         * take effect later (one already running ends as it is); the cancel's answer is dropped on arrival */
        request cancel;
        char cancel_id[PARLEY_ID_MAX];
        new_id(c, cancel_id);
        begin_request(&cancel, 1, cancel_id, "cancel");
        pack_entry(&cancel, "target", id);
        send_request(c, &cancel);
    }
    return st;
}

parley_status parley_cancel(parley_client *c, const char *request_id, int timeout_ms, int *found) {
    if (!c) return PARLEY_ERR_ARGUMENT;
    if (!valid_str(c, "request_id", request_id, 1, MAX_NAME_CHARS)) return PARLEY_ERR_ARGUMENT;
    answer a;
    parley_status st = call(c, "cancel", NULL, NULL, request_id, NULL, 0, timeout_ms, &a);
    if (st != PARLEY_OK) return st;
    const msgpack_object *f = get(a.done, "found");
    if (found) *found = f && f->type == MSGPACK_OBJECT_BOOLEAN && f->via.boolean;
    answer_release(&a);
    return PARLEY_OK;
}

parley_status parley_health(parley_client *c, int timeout_ms, char *status_out, size_t cap) {
    if (!c) return PARLEY_ERR_ARGUMENT;
    answer a;
    parley_status st = call(c, "health", NULL, NULL, NULL, NULL, 0, timeout_ms, &a);
    if (st != PARLEY_OK) return st;
    if (status_out && cap) {
        const msgpack_object *s = get(a.done, "status");
        size_t n = s && s->type == MSGPACK_OBJECT_STR ? s->via.str.size : 0;
        if (n >= cap) n = cap - 1;
        if (n) memcpy(status_out, s->via.str.ptr, n);
        status_out[n] = '\0';
    }
    answer_release(&a);
    return PARLEY_OK;
}

parley_status parley_reset_session(parley_client *c, const char *npc, const char *session, int timeout_ms) {
    if (!c) return PARLEY_ERR_ARGUMENT;
    if (!valid_session(c, npc, session)) return PARLEY_ERR_ARGUMENT;
    answer a;
    parley_status st = call(c, "reset_session", npc, session, NULL, NULL, 0, timeout_ms, &a);
    if (st == PARLEY_OK) answer_release(&a);
    return st;
}

parley_status parley_export_session(parley_client *c, const char *npc, const char *session, int timeout_ms,
                                    unsigned char **blob_out, size_t *len_out) {
    if (!c) return PARLEY_ERR_ARGUMENT;
    if (!blob_out || !len_out) {
        set_error(c, "blob_out and len_out are required");
        return PARLEY_ERR_ARGUMENT;
    }
    *blob_out = NULL;
    *len_out = 0;
    if (!valid_session(c, npc, session)) return PARLEY_ERR_ARGUMENT;
    answer a;
    parley_status st = call(c, "export_session", npc, session, NULL, NULL, 0, timeout_ms, &a);
    if (st != PARLEY_OK) return st;
    const msgpack_object *b = get(a.done, "blob");
    if (!b || b->type != MSGPACK_OBJECT_BIN) {
        set_error(c, "export_session answered without a blob");
        st = PARLEY_ERR_PROTOCOL;
    } else if (!(*blob_out = malloc(b->via.bin.size ? b->via.bin.size : 1))) {
        st = PARLEY_ERR_MEMORY;
    } else {
        memcpy(*blob_out, b->via.bin.ptr, b->via.bin.size);
        *len_out = b->via.bin.size;
    }
    answer_release(&a);
    return st;
}

parley_status parley_import_session(parley_client *c, const char *npc, const char *session,
                                    const unsigned char *blob, size_t len, int timeout_ms) {
    if (!c) return PARLEY_ERR_ARGUMENT;
    if (!valid_session(c, npc, session)) return PARLEY_ERR_ARGUMENT;
    if (!blob || len > MAX_BLOB_BYTES) {
        set_error(c, "a blob of at most %d bytes is required", MAX_BLOB_BYTES);
        return PARLEY_ERR_ARGUMENT;
    }
    answer a;
    parley_status st = call(c, "import_session", npc, session, NULL, blob, len, timeout_ms, &a);
    if (st == PARLEY_OK) answer_release(&a);
    return st;
}
