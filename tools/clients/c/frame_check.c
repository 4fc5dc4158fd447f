/* A msgpack frame checked before msgpack-c unpacks it (frame_check.h). */
#include "frame_check.h"

static uint64_t big_endian(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* The header of the msgpack value at p (left > 0 bytes): its own size (*head), the payload bytes after it
 * (*payload) and the values it contains (*values: an array's items, a map's keys and values). 0 if invalid. */
static int msgpack_header(const unsigned char *p, size_t left, size_t *head, uint64_t *payload, uint64_t *values) {
    unsigned char b = p[0];
    int len_bytes = 0, per_item = 0; /* a length after b counting payload bytes, or items (1: array, 2: map) */
    uint64_t extra = 0;              /* an ext's type byte */
    *payload = *values = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) *payload = 0; /* fixint, nil, bool */
    else if ((b & 0xe0) == 0xa0) *payload = b & 0x1f;                                 /* fixstr */
    else if ((b & 0xf0) == 0x90) *values = b & 0x0f;                                  /* fixarray */
    else if ((b & 0xf0) == 0x80) *values = 2u * (b & 0x0f);                           /* fixmap */
    else switch (b) {
        case 0xc4: case 0xd9: len_bytes = 1; break; /* bin, str */
        case 0xc5: case 0xda: len_bytes = 2; break;
        case 0xc6: case 0xdb: len_bytes = 4; break;
        case 0xc7: len_bytes = 1, extra = 1; break; /* ext */
        case 0xc8: len_bytes = 2, extra = 1; break;
        case 0xc9: len_bytes = 4, extra = 1; break;
        case 0xcc: case 0xd0: *payload = 1; break;  /* ints and floats */
        case 0xcd: case 0xd1: *payload = 2; break;
        case 0xca: case 0xce: case 0xd2: *payload = 4; break;
        case 0xcb: case 0xcf: case 0xd3: *payload = 8; break;
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: *payload = 1 + (1u << (b - 0xd4)); break; /* fixext */
        case 0xdc: len_bytes = 2, per_item = 1; break; /* array */
        case 0xdd: len_bytes = 4, per_item = 1; break;
        case 0xde: len_bytes = 2, per_item = 2; break; /* map */
        case 0xdf: len_bytes = 4, per_item = 2; break;
        default: return 0; /* 0xc1 is never used */
    }
    if (left < 1 + (size_t)len_bytes) return 0;
    *head = 1 + (size_t)len_bytes;
    if (len_bytes) {
        uint64_t n = big_endian(p + 1, len_bytes);
        if (per_item) *values = n * per_item; else *payload = n + extra;
    }
    return 1;
}

/* Whether data holds one complete msgpack value nested at most max_depth (<= FRAME_CHECK_MAX_DEPTH) deep. msgpack-c reserves memory for
 * the count an array or map declares before reading its values, so a 5-byte frame could ask for gigabytes:
 * here every declared value must be there first. */
int parley_well_formed(const unsigned char *p, size_t size, int max_depth) {
    const unsigned char *end = p + size;
    uint64_t pending[FRAME_CHECK_MAX_DEPTH + 1]; /* values still to read at each open level */
    int depth = 0;
    pending[0] = 1;
    for (;;) {
        while (pending[depth] == 0)
            if (depth-- == 0) return 1;
        pending[depth]--;
        size_t head;
        uint64_t payload, values;
        if (p >= end || !msgpack_header(p, (size_t)(end - p), &head, &payload, &values)) return 0;
        p += head;
        uint64_t left = (uint64_t)(end - p);
        if (payload > left || values > left) return 0; /* a value takes a byte at least */
        p += payload;
        if (values) {
            if (depth == max_depth || depth == FRAME_CHECK_MAX_DEPTH) return 0;
            pending[++depth] = values;
        }
    }
}
