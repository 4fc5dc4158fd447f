/* Parley C client. See parley.h for the API and docs/protocol.md for the wire protocol. */
#define _POSIX_C_SOURCE 200809L
#include "parley.h"

#include <msgpack.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_IN_FLIGHT 64
#define MAX_QUEUED 1024
#define TOKEN_MAX 65 /* a session token: 16 to 64 characters and the terminator */

/* The token this client sends for one session (docs/protocol.md, "Sessions"). */
typedef struct {
    char *npc, *session;
    char token[TOKEN_MAX];
} session_token;

typedef struct {
    char id[PARLEY_ID_MAX];
    double last_activity_ms;
    int used;
} in_flight;

typedef struct queued {
    char id[PARLEY_ID_MAX];
    zmq_msg_t msg;
    struct queued *next;
} queued;

struct parley_client {
    void *ctx, *sock;
    int timeout_ms;
    unsigned long counter;
    char prefix[24];
    char error[256];
    in_flight flights[MAX_IN_FLIGHT];
    queued *head, *tail;
    size_t queued_count;
    /* the current event's storage, released at the next poll */
    msgpack_unpacked unpacked;
    int has_unpacked;
    char *strings[4];
    char timeout_text[1];
    session_token *tokens;
    size_t token_count, token_cap;
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
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
    snprintf(c->prefix, sizeof c->prefix, "c%lx-%lx", (unsigned long)getpid(), (unsigned long)(now_ms()) % 0xfffffff);
    c->ctx = zmq_ctx_new();
    c->sock = c->ctx ? zmq_socket(c->ctx, ZMQ_DEALER) : NULL;
    if (!c->sock) goto fail;
    int linger = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
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
    c->has_unpacked = 0;
    for (int i = 0; i < 4; i++) {
        free(c->strings[i]);
        c->strings[i] = NULL;
    }
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
    for (size_t i = 0; i < c->token_count; i++) {
        free(c->tokens[i].npc);
        free(c->tokens[i].session);
    }
    free(c->tokens);
    zmq_close(c->sock);
    zmq_ctx_term(c->ctx);
    free(c);
}

/* ---- packing -------------------------------------------------------------------------------- */

static void pack_str(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_header(msgpack_packer *pk, size_t entries, const char *id, const char *type) {
    msgpack_pack_map(pk, entries + 3);
    pack_str(pk, "v");
    msgpack_pack_int(pk, 1);
    pack_str(pk, "id");
    pack_str(pk, id);
    pack_str(pk, "type");
    pack_str(pk, type);
}

static in_flight *flight(parley_client *c, const char *id) {
    for (int i = 0; i < MAX_IN_FLIGHT; i++)
        if (c->flights[i].used && strcmp(c->flights[i].id, id) == 0) return &c->flights[i];
    return NULL;
}

static parley_status track(parley_client *c, const char *id) {
    for (int i = 0; i < MAX_IN_FLIGHT; i++) {
        if (!c->flights[i].used) {
            snprintf(c->flights[i].id, PARLEY_ID_MAX, "%s", id);
            c->flights[i].last_activity_ms = now_ms();
            c->flights[i].used = 1;
            return PARLEY_OK;
        }
    }
    set_error(c, "%d requests are already in flight on this client", MAX_IN_FLIGHT);
    return PARLEY_ERR_BUSY;
}

static parley_status send_buffer(parley_client *c, msgpack_sbuffer *buf, const char *id) {
    parley_status st = track(c, id);
    if (st != PARLEY_OK) {
        msgpack_sbuffer_destroy(buf);
        return st;
    }
    int rc = zmq_send(c->sock, buf->data, buf->size, ZMQ_DONTWAIT);
    msgpack_sbuffer_destroy(buf);
    if (rc < 0) {
        flight(c, id)->used = 0;
        set_error(c, "send failed: %s", zmq_strerror(zmq_errno()));
        return PARLEY_ERR_ZMQ;
    }
    return PARLEY_OK;
}

static void new_id(parley_client *c, char *out) { snprintf(out, PARLEY_ID_MAX, "%s-%lu", c->prefix, ++c->counter); }

/* ---- session tokens ------------------------------------------------------------------------- */

/* 32 random hex characters: from the system's random source, else from libzmq's key generator. */
static int random_token(char out[TOKEN_MAX]) {
    unsigned char bytes[16];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(bytes, 1, sizeof bytes, f) : 0;
    if (f) fclose(f);
    if (got != sizeof bytes) {
        char pub[41], sec[41];
        if (zmq_curve_keypair(pub, sec) != 0) return -1;
        for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (unsigned char)(sec[i] * 31 + sec[i + 16]);
    }
    for (size_t i = 0; i < sizeof bytes; i++) snprintf(out + 2 * i, 3, "%02x", bytes[i]);
    return 0;
}

static session_token *find_token(parley_client *c, const char *npc, const char *session) {
    for (size_t i = 0; i < c->token_count; i++)
        if (strcmp(c->tokens[i].npc, npc) == 0 && strcmp(c->tokens[i].session, session) == 0) return &c->tokens[i];
    return NULL;
}

static session_token *add_token(parley_client *c, const char *npc, const char *session) {
    if (c->token_count == c->token_cap) {
        size_t cap = c->token_cap ? 2 * c->token_cap : 8;
        session_token *grown = realloc(c->tokens, cap * sizeof *grown);
        if (!grown) return NULL;
        c->tokens = grown;
        c->token_cap = cap;
    }
    session_token *t = &c->tokens[c->token_count];
    t->npc = strdup(npc);
    t->session = strdup(session);
    if (!t->npc || !t->session) {
        free(t->npc);
        free(t->session);
        return NULL;
    }
    t->token[0] = '\0';
    c->token_count++;
    return t;
}

const char *parley_session_token(parley_client *c, const char *npc, const char *session) {
    if (!c || !npc || !session || !*session) return NULL;
    session_token *t = find_token(c, npc, session);
    if (!t) {
        t = add_token(c, npc, session);
        if (!t || random_token(t->token) != 0) {
            if (t) {
                c->token_count--;
                free(t->npc);
                free(t->session);
            }
            set_error(c, "could not make a session token");
            return NULL;
        }
    }
    return t->token;
}

parley_status parley_set_session_token(parley_client *c, const char *npc, const char *session, const char *token) {
    if (!c || !npc || !session || !*session || !token || strlen(token) < 16 || strlen(token) >= TOKEN_MAX) {
        if (c) set_error(c, "npc, session and a token of 16 to 64 characters are required");
        return PARLEY_ERR_ARGUMENT;
    }
    session_token *t = find_token(c, npc, session);
    if (!t && !(t = add_token(c, npc, session))) return PARLEY_ERR_MEMORY;
    snprintf(t->token, TOKEN_MAX, "%s", token);
    return PARLEY_OK;
}

parley_status parley_reply_start(parley_client *c, const parley_reply_args *a, char *id_out, size_t id_cap) {
    if (!c || !a || !a->npc || !a->text || !id_out || id_cap < PARLEY_ID_MAX) {
        if (c) set_error(c, "npc, text and an id buffer of PARLEY_ID_MAX bytes are required");
        return PARLEY_ERR_ARGUMENT;
    }
    const char *token = NULL;
    if (a->session && *a->session) {
        token = a->session_token ? a->session_token : parley_session_token(c, a->npc, a->session);
        if (!token) return PARLEY_ERR_MEMORY;
    }
    char id[PARLEY_ID_MAX];
    new_id(c, id);
    size_t entries = 2 + (a->session != NULL) + (token != NULL) + (a->speaker != NULL) + (a->state_len > 0) +
                     (a->deadline_ms > 0) + (a->no_stream != 0) + (a->token_deltas != 0);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    pack_header(&pk, entries, id, "reply");
    pack_str(&pk, "npc");
    pack_str(&pk, a->npc);
    pack_str(&pk, "text");
    pack_str(&pk, a->text);
    if (a->session) {
        pack_str(&pk, "session");
        pack_str(&pk, a->session);
    }
    if (token) {
        pack_str(&pk, "session_token");
        pack_str(&pk, token);
    }
    if (a->speaker) {
        pack_str(&pk, "speaker");
        pack_str(&pk, a->speaker);
    }
    if (a->state_len > 0) {
        pack_str(&pk, "state");
        msgpack_pack_map(&pk, a->state_len);
        for (size_t i = 0; i < a->state_len; i++) {
            pack_str(&pk, a->state[i].key ? a->state[i].key : "");
            pack_str(&pk, a->state[i].value ? a->state[i].value : "");
        }
    }
    if (a->deadline_ms > 0) {
        pack_str(&pk, "deadline_ms");
        msgpack_pack_double(&pk, a->deadline_ms);
    }
    if (a->no_stream) {
        pack_str(&pk, "stream");
        msgpack_pack_false(&pk);
    }
    if (a->token_deltas) {
        pack_str(&pk, "stream_unit");
        pack_str(&pk, "token");
    }
    parley_status st = send_buffer(c, &buf, id);
    if (st == PARLEY_OK) snprintf(id_out, id_cap, "%s", id);
    return st;
}

static parley_status simple_request(parley_client *c, const char *type, const char *npc, const char *session,
                                    const char *target, const unsigned char *blob, size_t blob_len, char *id_out) {
    const char *token = NULL;
    if (npc && session && *session && !(token = parley_session_token(c, npc, session))) return PARLEY_ERR_MEMORY;
    new_id(c, id_out);
    size_t entries = (npc != NULL) + (session != NULL) + (token != NULL) + (target != NULL) + (blob != NULL);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    pack_header(&pk, entries, id_out, type);
    if (npc) {
        pack_str(&pk, "npc");
        pack_str(&pk, npc);
    }
    if (session) {
        pack_str(&pk, "session");
        pack_str(&pk, session);
    }
    if (token) {
        pack_str(&pk, "session_token");
        pack_str(&pk, token);
    }
    if (target) {
        pack_str(&pk, "target");
        pack_str(&pk, target);
    }
    if (blob) {
        pack_str(&pk, "blob");
        msgpack_pack_bin(&pk, blob_len);
        msgpack_pack_bin_body(&pk, blob, blob_len);
    }
    return send_buffer(c, &buf, id_out);
}

parley_status parley_cancel(parley_client *c, const char *request_id) {
    if (!c || !request_id) return PARLEY_ERR_ARGUMENT;
    char id[PARLEY_ID_MAX];
    return simple_request(c, "cancel", NULL, NULL, request_id, NULL, 0, id);
}

/* ---- reading -------------------------------------------------------------------------------- */

static const msgpack_object *get(const msgpack_object *map, const char *key) {
    if (map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, key, n) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static char *dup_str(parley_client *c, int slot, const msgpack_object *o) {
    const char *p = "";
    size_t n = 0;
    if (o && o->type == MSGPACK_OBJECT_STR) {
        p = o->via.str.ptr;
        n = o->via.str.size;
    }
    char *s = malloc(n + 1);
    if (!s) return c->timeout_text; /* "" */
    memcpy(s, p, n);
    s[n] = '\0';
    c->strings[slot] = s;
    return s;
}

static double num(const msgpack_object *o) {
    if (!o) return 0;
    switch (o->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER: return (double)o->via.u64;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: return (double)o->via.i64;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64: return o->via.f64;
        case MSGPACK_OBJECT_BOOLEAN: return o->via.boolean ? 1 : 0;
        default: return 0;
    }
}

static int frame_id(const void *data, size_t size, char *id_out) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int ok = 0;
    id_out[0] = '\0';
    if (msgpack_unpack_next(&u, data, size, NULL) == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *id = get(&u.data, "id");
        if (id && id->type == MSGPACK_OBJECT_STR && id->via.str.size < PARLEY_ID_MAX) {
            memcpy(id_out, id->via.str.ptr, id->via.str.size);
            id_out[id->via.str.size] = '\0';
        }
        ok = 1;
    }
    msgpack_unpacked_destroy(&u);
    return ok;
}

/* Turn one received frame into an event. */
static parley_status decode(parley_client *c, zmq_msg_t *msg, parley_event *ev) {
    release_event(c);
    msgpack_unpacked_init(&c->unpacked);
    c->has_unpacked = 1;
    /* copy: the event's strings must outlive the zmq message */
    size_t size = zmq_msg_size(msg);
    char *copy = malloc(size ? size : 1);
    if (!copy) return PARLEY_ERR_MEMORY;
    memcpy(copy, zmq_msg_data(msg), size);
    c->strings[3] = copy;
    if (msgpack_unpack_next(&c->unpacked, copy, size, NULL) != MSGPACK_UNPACK_SUCCESS ||
        c->unpacked.data.type != MSGPACK_OBJECT_MAP) {
        set_error(c, "the server sent a frame that is not a msgpack map");
        return PARLEY_ERR_PROTOCOL;
    }
    const msgpack_object *m = &c->unpacked.data;
    const msgpack_object *type = get(m, "type");
    memset(ev, 0, sizeof *ev);
    const msgpack_object *id = get(m, "id");
    if (id && id->type == MSGPACK_OBJECT_STR && id->via.str.size < PARLEY_ID_MAX) {
        memcpy(ev->request_id, id->via.str.ptr, id->via.str.size);
        ev->request_id[id->via.str.size] = '\0';
    }
    ev->text = ev->action_name = ev->error_code = ev->error_message = c->timeout_text;
    if (!type || type->type != MSGPACK_OBJECT_STR) {
        set_error(c, "the server sent a frame without a type");
        return PARLEY_ERR_PROTOCOL;
    }
#define IS(name) (type->via.str.size == strlen(name) && memcmp(type->via.str.ptr, name, strlen(name)) == 0)
    if (IS("delta")) {
        ev->type = PARLEY_EVENT_DELTA;
        ev->text = dup_str(c, 0, get(m, "text"));
    } else if (IS("action")) {
        ev->type = PARLEY_EVENT_ACTION;
        ev->action_name = dup_str(c, 0, get(m, "name"));
        const msgpack_object *args = get(m, "args");
        if (args) {
            msgpack_sbuffer buf;
            msgpack_sbuffer_init(&buf);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
            msgpack_pack_object(&pk, *args);
            c->strings[1] = buf.data; /* released with the event */
            ev->action_args = (const unsigned char *)buf.data;
            ev->action_args_len = buf.size;
        }
    } else if (IS("done")) {
        ev->type = PARLEY_EVENT_DONE;
        ev->text = dup_str(c, 0, get(m, "text"));
        const msgpack_object *stats = get(m, "stats");
        if (stats && stats->type == MSGPACK_OBJECT_MAP) {
            ev->ttft_ms = num(get(stats, "ttft_ms"));
            ev->total_ms = num(get(stats, "total_ms"));
            ev->deadline_ms = num(get(stats, "deadline_ms"));
            ev->reasoning_tokens = (int)num(get(stats, "reasoning_tokens"));
            ev->final_tokens = (int)num(get(stats, "final_tokens"));
            ev->reasoning_cut = (int)num(get(stats, "reasoning_cut"));
            ev->fallback_used = (int)num(get(stats, "fallback_used"));
            ev->deadline_met = (int)num(get(stats, "deadline_met"));
        }
    } else if (IS("error")) {
        ev->type = PARLEY_EVENT_ERROR;
        ev->error_code = dup_str(c, 0, get(m, "code"));
        ev->error_message = dup_str(c, 1, get(m, "message"));
    } else {
        set_error(c, "the server sent an unknown frame type");
        return PARLEY_ERR_PROTOCOL;
    }
#undef IS
    in_flight *f = flight(c, ev->request_id);
    if (f) {
        f->last_activity_ms = now_ms();
        if (ev->type == PARLEY_EVENT_DONE || ev->type == PARLEY_EVENT_ERROR) f->used = 0;
    } else if (ev->type == PARLEY_EVENT_ERROR && ev->request_id[0] == '\0') {
        /* the server could not read a request's id: it concerns our oldest request in flight */
        for (int i = 0; i < MAX_IN_FLIGHT; i++) {
            if (c->flights[i].used) {
                snprintf(ev->request_id, PARLEY_ID_MAX, "%s", c->flights[i].id);
                c->flights[i].used = 0;
                break;
            }
        }
    }
    return PARLEY_OK;
}

/* A request that heard nothing for timeout_ms ends with a "timeout" error event. */
static int timed_out(parley_client *c, const char *only_id, parley_event *ev) {
    double now = now_ms();
    for (int i = 0; i < MAX_IN_FLIGHT; i++) {
        in_flight *f = &c->flights[i];
        if (!f->used || (only_id && strcmp(f->id, only_id) != 0)) continue;
        if (now - f->last_activity_ms >= c->timeout_ms) {
            release_event(c);
            memset(ev, 0, sizeof *ev);
            ev->type = PARLEY_EVENT_ERROR;
            snprintf(ev->request_id, PARLEY_ID_MAX, "%s", f->id);
            ev->text = ev->action_name = c->timeout_text;
            ev->error_code = "timeout";
            ev->error_message = "no answer from the server within the timeout";
            f->used = 0;
            set_error(c, "request %s: no answer within %d ms", f->id, c->timeout_ms);
            return 1;
        }
    }
    return 0;
}

static parley_status take_queued(parley_client *c, const char *only_id, parley_event *ev, int *found) {
    queued *prev = NULL;
    for (queued *q = c->head; q; prev = q, q = q->next) {
        if (only_id && strcmp(q->id, only_id) != 0) continue;
        if (prev) prev->next = q->next; else c->head = q->next;
        if (c->tail == q) c->tail = prev;
        c->queued_count--;
        parley_status st = decode(c, &q->msg, ev);
        zmq_msg_close(&q->msg);
        free(q);
        *found = 1;
        return st;
    }
    *found = 0;
    return PARLEY_OK;
}

static parley_status next_event(parley_client *c, const char *only_id, int timeout_ms, parley_event *ev) {
    int found;
    parley_status st = take_queued(c, only_id, ev, &found);
    if (found) return st;
    double deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        double left = deadline - now_ms();
        zmq_pollitem_t item = {c->sock, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, left > 0 ? (long)left : 0);
        if (rc < 0) {
            set_error(c, "poll failed: %s", zmq_strerror(zmq_errno()));
            return PARLEY_ERR_ZMQ;
        }
        if (rc > 0) {
            zmq_msg_t msg;
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, c->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&msg);
                continue;
            }
            char id[PARLEY_ID_MAX];
            frame_id(zmq_msg_data(&msg), zmq_msg_size(&msg), id);
            if (only_id && strcmp(id, only_id) != 0 && id[0] != '\0') {
                if (c->queued_count >= MAX_QUEUED) { /* a game that never polls: drop the oldest */
                    queued *old = c->head;
                    c->head = old->next;
                    if (!c->head) c->tail = NULL;
                    zmq_msg_close(&old->msg);
                    free(old);
                    c->queued_count--;
                }
                queued *q = malloc(sizeof *q);
                if (!q) {
                    zmq_msg_close(&msg);
                    return PARLEY_ERR_MEMORY;
                }
                snprintf(q->id, PARLEY_ID_MAX, "%s", id);
                zmq_msg_init(&q->msg);
                zmq_msg_move(&q->msg, &msg);
                q->next = NULL;
                if (c->tail) c->tail->next = q; else c->head = q;
                c->tail = q;
                c->queued_count++;
                continue;
            }
            st = decode(c, &msg, ev);
            zmq_msg_close(&msg);
            return st;
        }
        if (timed_out(c, only_id, ev)) return only_id ? PARLEY_ERR_TIMEOUT : PARLEY_OK;
        if (now_ms() >= deadline) {
            memset(ev, 0, sizeof *ev);
            ev->type = PARLEY_EVENT_NONE;
            return only_id ? PARLEY_ERR_TIMEOUT : PARLEY_OK;
        }
    }
}

parley_status parley_poll(parley_client *c, int timeout_ms, parley_event *ev) {
    if (!c || !ev) return PARLEY_ERR_ARGUMENT;
    return next_event(c, NULL, timeout_ms, ev);
}

parley_status parley_wait(parley_client *c, const char *request_id, int timeout_ms, parley_event *ev) {
    if (!c || !ev || !request_id) return PARLEY_ERR_ARGUMENT;
    parley_status st = next_event(c, request_id, timeout_ms, ev);
    if (st == PARLEY_ERR_TIMEOUT && ev->type == PARLEY_EVENT_NONE)
        set_error(c, "request %s: no event within %d ms", request_id, timeout_ms);
    return st;
}

/* Send a simple request and wait for its terminal frame. */
static parley_status call(parley_client *c, const char *type, const char *npc, const char *session,
                          const unsigned char *blob, size_t blob_len, int timeout_ms, parley_event *ev) {
    char id[PARLEY_ID_MAX];
    parley_status st = simple_request(c, type, npc, session, NULL, blob, blob_len, id);
    if (st != PARLEY_OK) return st;
    st = parley_wait(c, id, timeout_ms, ev);
    if (st != PARLEY_OK) {
        in_flight *f = flight(c, id);
        if (f) f->used = 0;
        return st;
    }
    if (ev->type == PARLEY_EVENT_ERROR) {
        set_error(c, "%s: %s", ev->error_code, ev->error_message);
        return strcmp(ev->error_code, "timeout") == 0 ? PARLEY_ERR_TIMEOUT : PARLEY_ERR_SERVER;
    }
    return PARLEY_OK;
}

parley_status parley_health(parley_client *c, int timeout_ms, char *status_out, size_t cap) {
    if (!c) return PARLEY_ERR_ARGUMENT;
    parley_event ev;
    parley_status st = call(c, "health", NULL, NULL, NULL, 0, timeout_ms, &ev);
    if (st == PARLEY_OK && status_out && cap) {
        const msgpack_object *s = get(&c->unpacked.data, "status");
        size_t n = s && s->type == MSGPACK_OBJECT_STR ? s->via.str.size : 0;
        if (n >= cap) n = cap - 1;
        if (n) memcpy(status_out, s->via.str.ptr, n);
        status_out[n] = '\0';
    }
    return st;
}

parley_status parley_reset_session(parley_client *c, const char *npc, const char *session, int timeout_ms) {
    if (!c || !npc || !session) return PARLEY_ERR_ARGUMENT;
    parley_event ev;
    return call(c, "reset_session", npc, session, NULL, 0, timeout_ms, &ev);
}

parley_status parley_export_session(parley_client *c, const char *npc, const char *session, int timeout_ms,
                                    unsigned char **blob_out, size_t *len_out) {
    if (!c || !npc || !session || !blob_out || !len_out) return PARLEY_ERR_ARGUMENT;
    parley_event ev;
    parley_status st = call(c, "export_session", npc, session, NULL, 0, timeout_ms, &ev);
    if (st != PARLEY_OK) return st;
    const msgpack_object *b = get(&c->unpacked.data, "blob");
    if (!b || b->type != MSGPACK_OBJECT_BIN) {
        set_error(c, "export_session answered without a blob");
        return PARLEY_ERR_PROTOCOL;
    }
    *blob_out = malloc(b->via.bin.size ? b->via.bin.size : 1);
    if (!*blob_out) return PARLEY_ERR_MEMORY;
    memcpy(*blob_out, b->via.bin.ptr, b->via.bin.size);
    *len_out = b->via.bin.size;
    return PARLEY_OK;
}

parley_status parley_import_session(parley_client *c, const char *npc, const char *session,
                                    const unsigned char *blob, size_t len, int timeout_ms) {
    if (!c || !npc || !session || !blob) return PARLEY_ERR_ARGUMENT;
    parley_event ev;
    return call(c, "import_session", npc, session, blob, len, timeout_ms, &ev);
}
