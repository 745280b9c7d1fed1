/* Strict numbers for redis-ipc's options and URLs: digits only (no sign,
 * spaces, hex, exponent, inf or nan), nothing after them, within bounds.
 * atoi and strtod take "6379junk" or "1e999"; these refuse them. */
#ifndef CLI_NUMBERS_H
#define CLI_NUMBERS_H

#include <stddef.h>

/* A whole number from min to max in the first len bytes of text (the whole
 * string when len is (size_t)-1). 0 and *out set, or -1. */
int cli_parse_integer(const char *text, size_t len, long long min, long long max, long long *out);
/* Seconds: digits with at most one '.', above 0 and at most max. */
int cli_parse_seconds(const char *text, double max, double *out);

/* The same for a command-line option: on failure prints
 * "redis-ipc: OPTION must be ..., got TEXT" to stderr and returns -1. */
int cli_option_integer(const char *option, const char *text, long long min, long long max, long long *out);
int cli_option_seconds(const char *option, const char *text, double max, double *out);

#endif
