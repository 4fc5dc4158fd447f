/* See platform.h. The POSIX feature macro must come before any system header. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "platform.h"

#include <string.h>

/* Written for Windows, compiled everywhere (the tests check it against the rules on Linux). */
size_t parley_quote_windows_arg(const char *arg, char *out) {
    size_t n = 0;
    int plain = arg[0] != '\0' && strpbrk(arg, " \t\n\v\"") == NULL;
    if (plain) {
        size_t len = strlen(arg);
        if (out) memcpy(out, arg, len);
        return len;
    }
    if (out) out[n] = '"';
    n++;
    for (const char *p = arg;; p++) {
        size_t slashes = 0;
        while (*p == '\\') {
            slashes++;
            p++;
        }
        size_t copies = *p == '\0' ? 2 * slashes : *p == '"' ? 2 * slashes + 1 : slashes;
        for (size_t i = 0; i < copies; i++, n++)
            if (out) out[n] = '\\';
        if (*p == '\0') break;
        if (out) out[n] = *p;
        n++;
    }
    if (out) out[n] = '"';
    return n + 1;
}

#ifdef _WIN32
#ifndef _CRT_RAND_S
#define _CRT_RAND_S /* rand_s: the system's cryptographic generator (RtlGenRandom), no extra library */
#endif
#include <stdlib.h>
#include <windows.h>

double parley_clock_ms(void) {
    static LARGE_INTEGER frequency; /* fixed at boot; reading it twice from two threads is harmless */
    LARGE_INTEGER now;
    if (frequency.QuadPart == 0) QueryPerformanceFrequency(&frequency);
    QueryPerformanceCounter(&now);
    return (double)now.QuadPart * 1000.0 / (double)frequency.QuadPart;
}

unsigned long parley_process_id(void) { return (unsigned long)GetCurrentProcessId(); }

int parley_random_bytes(unsigned char *out, size_t n) {
    while (n > 0) {
        unsigned int word;
        if (rand_s(&word) != 0) return -1;
        for (int i = 0; i < 4 && n > 0; i++, n--) *out++ = (unsigned char)(word >> (8 * i));
    }
    return 0;
}

#else
#include <stdio.h>
#include <time.h>
#include <unistd.h>

double parley_clock_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

unsigned long parley_process_id(void) { return (unsigned long)getpid(); }

int parley_random_bytes(unsigned char *out, size_t n) {
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(out, 1, n, f) : 0;
    if (f) fclose(f);
    return got == n ? 0 : -1;
}
#endif
