/* Checking a frame from the server before msgpack-c reads it: msgpack-c reserves memory for the count an array or
 * map declares before it reads a value, so a hostile 5-byte frame could make it ask for gigabytes. */
#ifndef PARLEY_FRAME_CHECK_H
#define PARLEY_FRAME_CHECK_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_CHECK_MAX_DEPTH 64

/* 1 if data holds one complete msgpack value, every declared value present, nested at most max_depth deep. */
int parley_well_formed(const unsigned char *p, size_t size, int max_depth);

#endif
