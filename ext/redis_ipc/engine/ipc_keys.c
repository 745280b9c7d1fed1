#include "ipc_keys.h"
#include "ipc_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *out = ripc_xmalloc((size_t)(n > 0 ? n : 0) + 1);
    va_start(ap, fmt);
    vsnprintf(out, (size_t)(n > 0 ? n : 0) + 1, fmt, ap);
    va_end(ap);
    return out;
}

char *ripc_key_consumers(const char *stream, const char *group, const char *instance_id)
{
    return format("%s:%s:%s:consumers", stream, group, instance_id);
}

char *ripc_key_instances(const char *stream, const char *group)
{
    return format("%s:%s:instances", stream, group);
}

char *ripc_key_wake(const char *stream, const char *group, const char *instance_id)
{
    return format("%s:%s:%s:wake", stream, group, instance_id);
}

char *ripc_key_metrics(const char *stream, const char *group, const char *instance_id)
{
    return format("%s:%s:%s:metrics", stream, group, instance_id);
}

char *ripc_key_requests(const char *stream, const char *group)
{
    return format("%s:%s:requests", stream, group);
}

char *ripc_key_replies(const char *stream, const char *group, const char *instance_id)
{
    return format("%s:%s:%s:replies", stream, group, instance_id);
}

char *ripc_key_seen(const char *stream, const char *group, const char *request_id)
{
    return format("%s:%s:seen:%s", stream, group, request_id);
}

char *ripc_name_inbox(const char *instance_id)
{
    return format("consumer_%s_1", instance_id);
}

char *ripc_name_dispatcher(const char *instance_id, int n)
{
    return format("dispatcher_%s_%d", instance_id, n);
}

int ripc_name_instance(const char *consumer, char *iid, size_t size)
{
    const char *start = NULL;
    if (strncmp(consumer, "dispatcher_", 11) == 0) start = consumer + 11;
    else if (strncmp(consumer, "consumer_", 9) == 0) start = consumer + 9;
    const char *end = start ? strrchr(start, '_') : NULL;
    if (!end || end == start || (size_t)(end - start) >= size) return 0;
    memcpy(iid, start, (size_t)(end - start));
    iid[end - start] = '\0';
    return 1;
}
