/* What the C client needs from the operating system, in one place: a monotonic clock, the process id and
 * random bytes. POSIX (Linux, macOS, the BSDs) and Windows (MSVC, MinGW, clang-cl). */
#ifndef PARLEY_PLATFORM_H
#define PARLEY_PLATFORM_H

#include <stddef.h>

/* Milliseconds on a clock that never goes back (not the time of day). */
double parley_clock_ms(void);

/* The process's id (part of the client's request-id prefix). */
unsigned long parley_process_id(void);

/* n bytes from the system's random source; 0 on success, -1 if it could not give them. */
int parley_random_bytes(unsigned char *out, size_t n);

/* One command-line argument quoted so that Windows' CommandLineToArgvW (and the C runtime) reads it back
 * as it was: backslashes are literal except before a quote. Writes to out if not NULL (no terminator);
 * returns the length. */
size_t parley_quote_windows_arg(const char *arg, char *out);

#endif
