#include "cli_numbers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_integer(const char *text, size_t len, long long min, long long max, long long *out)
{
    if (len == (size_t)-1) len = strlen(text);
    /* More digits than any bound needs: refused before they could overflow. */
    if (len == 0 || len > 18) return -1;
    long long value = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') return -1;
        value = value * 10 + (text[i] - '0');
    }
    if (value < min || value > max) return -1;
    *out = value;
    return 0;
}

int cli_parse_seconds(const char *text, double max, double *out)
{
    size_t digits = 0, dots = 0, len = strlen(text);
    if (len > 32) return -1;
    for (size_t i = 0; i < len; i++) {
        if (text[i] >= '0' && text[i] <= '9') digits++;
        else if (text[i] == '.') dots++;
        else return -1;
    }
    if (digits == 0 || dots > 1) return -1;
    /* Only digits and one dot are left, which strtod reads whole. */
    double value = strtod(text, NULL);
    if (!(value > 0) || value > max) return -1;
    *out = value;
    return 0;
}

int cli_option_integer(const char *option, const char *text, long long min, long long max, long long *out)
{
    if (cli_parse_integer(text, (size_t)-1, min, max, out) == 0) return 0;
    fprintf(stderr, "redis-ipc: %s must be a whole number from %lld to %lld, got \"%s\"\n", option, min, max, text);
    return -1;
}

int cli_option_seconds(const char *option, const char *text, double max, double *out)
{
    if (cli_parse_seconds(text, max, out) == 0) return 0;
    fprintf(stderr, "redis-ipc: %s must be a number of seconds above 0 and up to %g, got \"%s\"\n", option, max, text);
    return -1;
}
