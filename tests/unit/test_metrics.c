/* test_metrics.c - the Prometheus text: counters by route/status and by source. */
#include "dm_common.h"
#include "dm_metrics.h"

#include <event2/buffer.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char *render(void)
{
    struct evbuffer *b = evbuffer_new();
    dm_metrics_render(b);
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    return s;
}

static void test_requests_by_route_and_status(void **state)
{
    (void)state;
    const char *routes[] = {"/healthz", "/v1/registry/acr"};
    dm_metrics_init(routes, 2);
    dm_metrics_request(1, 202);
    dm_metrics_request(1, 202);
    dm_metrics_request(1, 401);
    dm_metrics_request(0, 299); /* not a known status: "other" */
    dm_metrics_request(7, 200); /* no such route: ignored */
    char *s = render();
    assert_non_null(
        strstr(s, "digestmap_requests_total{route=\"/v1/registry/acr\",status=\"202\"} 2\n"));
    assert_non_null(
        strstr(s, "digestmap_requests_total{route=\"/v1/registry/acr\",status=\"401\"} 1\n"));
    assert_non_null(strstr(s, "digestmap_requests_total{route=\"/healthz\",status=\"other\"} 1\n"));
    assert_null(strstr(s, "status=\"200\""));
    free(s);
    dm_metrics_shutdown();
}

static void test_counters_and_sources(void **state)
{
    (void)state;
    const char *routes[] = {"other"};
    dm_metrics_init(routes, 1);
    char *before = render();
    assert_non_null(strstr(before, "# TYPE digestmap_edges_emitted_total counter\n"));
    free(before);
    dm_metrics_parked("acr", 3);
    dm_metrics_parked("jenkins", 2); /* unknown source → "other" */
    dm_metrics_add(DM_M_EDGES, 5);
    dm_metrics_inc(DM_M_TOO_LARGE);
    dm_metrics_inflight(2);
    dm_metrics_inflight(-1);
    char *s = render();
    assert_non_null(strstr(s, "digestmap_events_parked_total{source=\"acr\"} 3\n"));
    assert_non_null(strstr(s, "digestmap_events_parked_total{source=\"other\"} 2\n"));
    assert_non_null(strstr(s, "\ndigestmap_edges_emitted_total 5\n"));
    assert_non_null(strstr(s, "\ndigestmap_body_too_large_total 1\n"));
    assert_non_null(strstr(s, "\ndigestmap_inflight_requests 1\n"));
    free(s);
    dm_metrics_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_by_route_and_status),
        cmocka_unit_test(test_counters_and_sources),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
