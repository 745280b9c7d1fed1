/* Options of one subcommand, taken out of argv before the common parser
 * (redis_ipc_cli.c) sees the rest: each subcommand keeps its own. */
#include <string.h>

#include "cli.h"

/* Removes argv[i] and, with has_value, argv[i + 1]. */
static void drop(int *argc, char **argv, int i, int n)
{
    memmove(&argv[i], &argv[i + n], (size_t)(*argc - i - n + 1) * sizeof(*argv)); /* the NULL too */
    *argc -= n;
}

int cli_take_option(int *argc, char **argv, const char *name, int has_value, const char **value)
{
    size_t len = strlen(name);
    int found = 0;
    for (int i = 1; i < *argc;) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--")) break; /* a command's own arguments follow */
        if (strncmp(arg, name, len) != 0 || (arg[len] != '\0' && !(has_value && arg[len] == '='))) { i++; continue; }
        if (!has_value) { found = 1; drop(argc, argv, i, 1); continue; }
        if (arg[len] == '=') { *value = arg + len + 1; drop(argc, argv, i, 1); found = 1; continue; }
        if (i + 1 >= *argc) return -1; /* the value is missing */
        *value = argv[i + 1];
        drop(argc, argv, i, 2);
        found = 1;
    }
    return found;
}
