/* test_k8s.c - Kubernetes snapshots: the fixture gives exactly the expected workloads, the
 * invalid table, owners, image ids, every exposure rule, bounds and the JSON for Redis. */
#include "dm_common.h"
#include "dm_k8s.h"
#include "dm_test.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#define D1 "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define D2 "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static const char *const internal_classes[] = {"internal-nginx", "azure-internal"};
static const dm_k8s_options opts = {.internal_ingress_classes = internal_classes,
                                    .n_internal_ingress_classes = 2};

/*---- helpers ------------------------------------------------------------------------------*/

/* dm_k8s_parse in the shape the shared invalid-table runner takes (the list stays empty). */
static int parse_as_events(const char *body, size_t len, dm_event_list *out, dm_error *err)
{
    memset(out, 0, sizeof *out);
    dm_k8s_snapshot s;
    memset(&s, 0x5a, sizeof s); /* the parser must not rely on a zeroed snapshot */
    int rc = dm_k8s_parse(body, len, &opts, &s, err);
    if (rc == DM_OK)
        dm_k8s_snapshot_dispose(&s);
    else
        assert_true(s.v == NULL && s.n == 0 && s.cluster == NULL);
    return rc;
}

/* Parse @p body (NUL-terminated) with @p o on a guarded copy; expect DM_OK. */
static void parse_ok(const char *body, const dm_k8s_options *o, dm_k8s_snapshot *s)
{
    char *map;
    size_t maplen, len = strlen(body);
    char *copy = dm_test_guarded_copy(body, len, &map, &maplen);
    dm_error err = {0};
    int rc = dm_k8s_parse(copy, len, o, s, &err);
    munmap(map, maplen);
    if (rc != DM_OK)
        fail_msg("refused: [%s] %s", err.field, err.text);
}

/* The workloads of @p s in the shape of expected-workloads.json. */
static json_t *as_expected(const dm_k8s_snapshot *s)
{
    json_t *arr = json_array();
    for (size_t k = 0; k < s->n; k++) {
        const dm_k8s_workload *w = &s->v[k];
        json_t *d = json_array();
        for (size_t j = 0; j < w->nimages; j++)
            json_array_append_new(d, json_string(w->images[j]));
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:s, s:o, s:s}", "namespace", w->namespace_,
                                        "kind", w->kind, "name", w->name, "digests", d, "exposure",
                                        dm_k8s_exposure_name(w->exposure)));
    }
    return arr;
}

static void expect_same(json_t *got, json_t *want)
{
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_INDENT(2) | JSON_SORT_KEYS);
        char *w = json_dumps(want, JSON_INDENT(2) | JSON_SORT_KEYS);
        fail_msg("got\n%s\nwant\n%s", g, w);
    }
}

/* A snapshot of cluster "c1" holding @p items (JSON objects separated by commas). */
static char *snapshot(const char *items)
{
    size_t cap = strlen(items) + 128;
    char *s = dm_xmalloc(cap);
    snprintf(s, cap, "{\"cluster\":\"c1\",\"taken_at\":\"2026-12-06T10:00:00Z\",\"items\":[%s]}",
             items);
    return s;
}

/* Pod @p name in namespace shop, labels app=api and tier=web, running D1. */
#define POD(name)                                                                              \
    "{\"kind\":\"Pod\",\"metadata\":{\"namespace\":\"shop\",\"name\":\"" name "\",\"labels\":" \
    "{\"app\":\"api\",\"tier\":\"web\"}},\"status\":{\"containerStatuses\":[{\"imageID\":"     \
    "\"r.example/api@" D1 "\"}]}}"

/* The one workload of @p items; its exposure name. */
static const char *exposure_of(const char *items, char *buf, size_t cap)
{
    char *body = snapshot(items);
    dm_k8s_snapshot s;
    parse_ok(body, &opts, &s);
    free(body);
    assert_int_equal(s.n, 1);
    snprintf(buf, cap, "%s", dm_k8s_exposure_name(s.v[0].exposure));
    dm_k8s_snapshot_dispose(&s);
    return buf;
}

/*---- the fixture --------------------------------------------------------------------------*/

/* DM_FIXTURES/@p rel parses to exactly expected-workloads.json. */
static void expect_fixture_workloads(const char *rel)
{
    size_t len;
    char *body = dm_test_load_fixture(rel, &len);
    char *map;
    size_t maplen;
    char *copy = dm_test_guarded_copy(body, len, &map, &maplen);
    dm_k8s_snapshot s;
    dm_error err = {0};
    assert_int_equal(dm_k8s_parse(copy, len, &opts, &s, &err), DM_OK);
    munmap(map, maplen);
    free(body);
    assert_string_equal(s.cluster, "prod-weu");
    assert_int_equal(s.taken_at_ms, INT64_C(1796551200000)); /* 2026-12-06T10:00:00Z */
    assert_int_equal(s.pods, 9);
    assert_int_equal(s.services, 6);
    assert_int_equal(s.ingresses, 1);
    json_t *got = as_expected(&s), *want = dm_test_load_json("k8s/expected-workloads.json");
    expect_same(got, want);
    json_decref(got);
    json_decref(want);
    dm_k8s_snapshot_dispose(&s);
}

static void test_fixture_gives_expected(void **state)
{
    (void)state;
    expect_fixture_workloads("k8s/snapshot.json");
}

/* What scripts/digestmap-k8s-report posts by default (the fields digestmap reads only, made
 * with --dry-run from the fixture) gives the same workloads. */
static void test_trimmed_fixture_gives_expected(void **state)
{
    (void)state;
    expect_fixture_workloads("k8s/snapshot-trimmed.json");
}

/* A second snapshot of the same cluster without the debug pod: its workload is gone, the
 * others are unchanged. */
static void test_second_snapshot_without_workload(void **state)
{
    (void)state;
    json_t *snap = dm_test_load_json("k8s/snapshot.json");
    json_t *items = json_object_get(snap, "items");
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        json_t *meta = json_object_get(item, "metadata");
        if (strcmp(json_string_value(json_object_get(meta, "name")), "debug-shell") == 0)
            break;
    }
    assert_true(i < json_array_size(items));
    json_array_remove(items, i);
    json_object_set_new(snap, "taken_at", json_string("2026-12-06T10:05:00Z"));
    char *body = json_dumps(snap, JSON_COMPACT);
    dm_k8s_snapshot s;
    parse_ok(body, &opts, &s);
    free(body);

    json_t *want = dm_test_load_json("k8s/expected-workloads.json");
    json_array_foreach(want, i, item)
    {
        if (strcmp(json_string_value(json_object_get(item, "name")), "debug-shell") == 0)
            break;
    }
    json_array_remove(want, i);
    json_t *got = as_expected(&s);
    assert_int_equal(json_array_size(got), 6);
    expect_same(got, want);
    json_decref(got);
    json_decref(want);
    json_decref(snap);
    dm_k8s_snapshot_dispose(&s);
}

static void test_small_fixture_and_json(void **state)
{
    (void)state;
    size_t len;
    char *body = dm_test_load_fixture("k8s/small.json", &len);
    body = dm_xrealloc(body, len + 1);
    body[len] = '\0';
    dm_k8s_snapshot s;
    parse_ok(body, &opts, &s);
    free(body);
    char *j = dm_k8s_to_json(&s);
    assert_string_equal(j, "{\"cluster\":\"c1\",\"taken_at\":1796551200000,\"workloads\":["
                           "{\"cluster\":\"c1\",\"namespace\":\"shop\",\"kind\":\"StatefulSet\","
                           "\"name\":\"api\",\"exposure\":\"internet\",\"images\":[\"" D1 "\",\"" D2
                           "\"]}]}");
    free(j);
    dm_k8s_snapshot_dispose(&s);

    dm_k8s_snapshot empty = {0};
    j = dm_k8s_to_json(&empty);
    assert_string_equal(j, "{\"cluster\":\"\",\"taken_at\":0,\"workloads\":[]}");
    free(j);
}

/*---- invalid input ------------------------------------------------------------------------*/

static void test_invalid_table(void **state)
{
    (void)state;
    dm_test_run_invalid_table("k8s", parse_as_events, 60);
    dm_test_expect_short_bodies(parse_as_events,
                                "{\"cluster\":\"c1\",\"taken_at\":\"2026-12-06T10:00:00Z\","
                                "\"items\":[]}");
}

static void test_bounds(void **state)
{
    (void)state;
    char *body = snapshot(POD("a") "," POD("b") ",{\"kind\":\"ConfigMap\"}");
    dm_k8s_snapshot s;
    dm_error err = {0};
    dm_k8s_options o = {.max_items = 2};
    assert_int_equal(dm_k8s_parse(body, strlen(body), &o, &s, &err), DM_EINVAL);
    assert_int_equal(err.status, 413);
    assert_string_equal(err.field, "items");
    assert_string_equal(err.text, "must hold at most 2 items");
    assert_null(s.v);

    o.max_items = 3;
    parse_ok(body, &o, &s); /* exactly at the bound; the ConfigMap is only counted */
    assert_int_equal(s.n, 2);
    assert_int_equal(s.other_items, 1);
    dm_k8s_snapshot_dispose(&s);

    o.max_workloads = 1;
    assert_int_equal(dm_k8s_parse(body, strlen(body), &o, &s, &err), DM_EINVAL);
    assert_int_equal(err.status, 413);
    assert_string_equal(err.text, "must make at most 1 workloads");
    assert_null(s.v);
    assert_null(s.cluster);
    o.max_workloads = 2;
    parse_ok(body, &o, &s);
    dm_k8s_snapshot_dispose(&s);
    free(body);

    /* one workload running more distinct images than a workload may */
    size_t cap = (DM_K8S_MAX_IMAGES + 1) * 120 + 256;
    char *statuses = dm_xmalloc(cap);
    size_t n = 0;
    for (int k = 0; k <= DM_K8S_MAX_IMAGES; k++)
        n += (size_t)snprintf(statuses + n, cap - n, "%s{\"imageID\":\"r/x@sha256:%064x\"}",
                              k ? "," : "", k);
    char *items = dm_xmalloc(cap + 256);
    snprintf(items, cap + 256,
             "{\"kind\":\"Pod\",\"metadata\":{\"namespace\":\"ns\",\"name\":\"p\"},"
             "\"status\":{\"containerStatuses\":[%s]}}",
             statuses);
    body = snapshot(items);
    assert_int_equal(dm_k8s_parse(body, strlen(body), NULL, &s, &err), DM_EINVAL);
    assert_int_equal(err.status, 413);
    assert_string_equal(err.text, "workload ns/Pod/p runs more than 128 distinct images");
    free(body);
    free(items);
    free(statuses);
}

/*---- owners and image ids ----------------------------------------------------------------*/

/* A pod of namespace ns with @p labels, @p owner (an ownerReferences array or "null") and
 * @p statuses (containerStatuses entries). */
static char *pod_with(const char *name, const char *labels, const char *owner, const char *statuses)
{
    size_t cap = strlen(name) + strlen(labels) + strlen(owner) + strlen(statuses) + 256;
    char *s = dm_xmalloc(cap);
    snprintf(s, cap,
             "{\"kind\":\"Pod\",\"metadata\":{\"namespace\":\"ns\",\"name\":\"%s\","
             "\"labels\":%s,\"ownerReferences\":%s},\"status\":{\"containerStatuses\":[%s]}}",
             name, labels, owner, statuses);
    return s;
}

static void expect_owner(const char *labels, const char *owner, const char *kind, const char *name)
{
    char *pod = pod_with("p-1", labels, owner, "{\"imageID\":\"r/x@" D1 "\"}");
    char *body = snapshot(pod);
    dm_k8s_snapshot s;
    parse_ok(body, &opts, &s);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.v[0].kind, kind);
    assert_string_equal(s.v[0].name, name);
    dm_k8s_snapshot_dispose(&s);
    free(body);
    free(pod);
}

#define OWNER(kind, name)                                                                         \
    "[{\"kind\":\"Other\",\"name\":\"not-the-controller\"},{\"controller\":true,\"kind\":\"" kind \
    "\",\"name\":\"" name "\"}]"

static void test_owners(void **state)
{
    (void)state;
    const char *hash = "{\"pod-template-hash\":\"5f7c9d8b6c\"}";
    expect_owner(hash, OWNER("ReplicaSet", "web-5f7c9d8b6c"), "Deployment", "web");
    expect_owner(hash, OWNER("ReplicaSet", "my-web-5f7c9d8b6c"), "Deployment", "my-web");
    expect_owner("{}", OWNER("ReplicaSet", "web-5f7c9d8b6c"), "ReplicaSet", "web-5f7c9d8b6c");
    expect_owner(hash, OWNER("ReplicaSet", "web-aaaaaaaaaa"), "ReplicaSet", "web-aaaaaaaaaa");
    expect_owner(hash, OWNER("ReplicaSet", "5f7c9d8b6c"), "ReplicaSet", "5f7c9d8b6c");
    expect_owner("{}", OWNER("Job", "report-29000000"), "CronJob", "report");
    expect_owner("{}", OWNER("Job", "nightly-db-1796551200"), "CronJob", "nightly-db");
    expect_owner("{}", OWNER("Job", "migrate-2"), "Job", "migrate-2");
    expect_owner("{}", OWNER("Job", "migrate"), "Job", "migrate");
    expect_owner("{}", OWNER("Job", "-29000000"), "Job", "-29000000");
    expect_owner("{}", OWNER("StatefulSet", "db"), "StatefulSet", "db");
    expect_owner("{}", OWNER("DaemonSet", "agent"), "DaemonSet", "agent");
    expect_owner("{}", OWNER("Rollout", "canary"), "Rollout", "canary");
    expect_owner("{}", "[{\"kind\":\"ReplicaSet\",\"name\":\"web-1\",\"controller\":false}]", "Pod",
                 "p-1");
    expect_owner("null", "null", "Pod", "p-1");
}

/* The digests of one pod whose containerStatuses are @p statuses (NULL: no workload). */
static void expect_digests(const char *statuses, const char *d1, const char *d2)
{
    char *pod = pod_with("p", "{}", "[]", statuses);
    char *body = snapshot(pod);
    dm_k8s_snapshot s;
    parse_ok(body, &opts, &s);
    if (!d1) {
        assert_int_equal(s.n, 0);
    } else {
        assert_int_equal(s.n, 1);
        assert_int_equal(s.v[0].nimages, d2 ? 2 : 1);
        assert_string_equal(s.v[0].images[0], d1);
        if (d2)
            assert_string_equal(s.v[0].images[1], d2);
    }
    dm_k8s_snapshot_dispose(&s);
    free(body);
    free(pod);
}

static void test_image_ids(void **state)
{
    (void)state;
    expect_digests("{\"imageID\":\"docker-pullable://r.example/a@" D2 "\"},"
                   "{\"imageID\":\"r.example:5000/a/b@" D1 "\"}",
                   D1, D2);
    expect_digests("{\"imageID\":\"docker://" D1 "\"}", NULL, NULL);
    expect_digests("{\"imageID\":\"" D1 "\"}", NULL, NULL); /* containerd, no repo digest */
    expect_digests("{\"imageID\":\"\"}", NULL, NULL);       /* not pulled yet */
    expect_digests("{\"name\":\"x\"}", NULL, NULL);
    expect_digests("{\"imageID\":null}", NULL, NULL);
    expect_digests("{\"imageID\":\"@" D1 "\"}", NULL, NULL);
    expect_digests("{\"imageID\":\"docker://r/a@" D1 "\"}", NULL, NULL);
    expect_digests(
        "{\"imageID\":\"r/a@sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "AAAAAAAAAA\"}",
        NULL, NULL);
    expect_digests("{\"imageID\":\"r/a@" D1 "0\"}", NULL, NULL);
    /* the same digest twice (two containers) is one image; a local id beside it is skipped */
    expect_digests("{\"imageID\":\"r/a@" D1 "\"},{\"imageID\":\"r/b@" D1 "\"},"
                   "{\"imageID\":\"docker://" D2 "\"}",
                   D1, NULL);
}

/*---- exposure -----------------------------------------------------------------------------*/

#define SVC(ns, type, annotations, spec, status)                                    \
    ",{\"kind\":\"Service\",\"metadata\":{\"namespace\":\"" ns "\",\"name\":\"s\"," \
    "\"annotations\":{" annotations "}},\"spec\":{\"type\":\"" type "\"" spec "},"  \
    "\"status\":{\"loadBalancer\":{" status "}}}"
#define SEL        ",\"selector\":{\"app\":\"api\"}"
#define LB(ann)    SVC("shop", "LoadBalancer", ann, SEL, "")
#define PRIVATE_IP "\"ingress\":[{\"ip\":\"10.224.0.97\"}]"
#define PUBLIC_IP  "\"ingress\":[{\"ip\":\"20.103.41.17\"}]"
#define ING(ns, class, spec)                                   \
    ",{\"kind\":\"Ingress\",\"metadata\":{\"namespace\":\"" ns \
    "\",\"name\":\"i\"" class "},"                             \
                              "\"spec\":{" spec "}}"
#define RULE(svc)                                                                          \
    "\"rules\":[{\"host\":\"a.example\",\"http\":{\"paths\":[{\"path\":\"/\",\"backend\":" \
    "{\"service\":{\"name\":\"" svc "\",\"port\":{\"number\":80}}}}]}}]"
#define CLASS(c)        ",\"annotations\":{\"kubernetes.io/ingress.class\":\"" c "\"}"
#define CLUSTER_IP(sel) SVC("shop", "ClusterIP", "", sel, "")

static const struct {
    const char *what, *items, *want;
} exposure_cases[] = {
    {"no service", POD("a"), "cluster"},
    {"ClusterIP", POD("a") CLUSTER_IP(SEL), "cluster"},
    {"NodePort", POD("a") SVC("shop", "NodePort", "", SEL, ""), "node"},
    {"LoadBalancer pending", POD("a") LB(""), "internet"},
    {"LoadBalancer public IP", POD("a") SVC("shop", "LoadBalancer", "", SEL, PUBLIC_IP),
     "internet"},
    {"LoadBalancer host name",
     POD("a")
         SVC("shop", "LoadBalancer", "", SEL, "\"ingress\":[{\"hostname\":\"x.elb.example\"}]"),
     "internet"},
    {"LoadBalancer private IP only", POD("a") SVC("shop", "LoadBalancer", "", SEL, PRIVATE_IP),
     "node"},
    {"LoadBalancer private and public IP",
     POD("a") SVC("shop", "LoadBalancer", "", SEL,
                  "\"ingress\":[{\"ip\":\"10.1.1.1\"},{\"ip\":\"20.1.1.1\"}]"),
     "internet"},
    {"LoadBalancer IPv6 unique local",
     POD("a") SVC("shop", "LoadBalancer", "", SEL, "\"ingress\":[{\"ip\":\"fd00::1\"}]"), "node"},
    {"AKS internal",
     POD("a") LB("\"service.beta.kubernetes.io/azure-load-balancer-internal\":\"true\""), "node"},
    {"AKS internal false",
     POD("a") LB("\"service.beta.kubernetes.io/azure-load-balancer-internal\":\"false\""),
     "internet"},
    {"GKE internal", POD("a") LB("\"networking.gke.io/load-balancer-type\":\"Internal\""), "node"},
    {"GKE legacy internal", POD("a") LB("\"cloud.google.com/load-balancer-type\":\"Internal\""),
     "node"},
    {"GKE external", POD("a") LB("\"networking.gke.io/load-balancer-type\":\"External\""),
     "internet"},
    {"GKE internal class",
     POD("a") SVC("shop", "LoadBalancer", "",
                  SEL ",\"loadBalancerClass\":\"networking.gke.io/l4-regional-internal\"", ""),
     "node"},
    {"AWS in-tree internal",
     POD("a") LB("\"service.beta.kubernetes.io/aws-load-balancer-internal\":\"true\""), "node"},
    {"AWS in-tree internal CIDR",
     POD("a") LB("\"service.beta.kubernetes.io/aws-load-balancer-internal\":\"0.0.0.0/0\""),
     "node"},
    {"AWS in-tree internal false",
     POD("a") LB("\"service.beta.kubernetes.io/aws-load-balancer-internal\":\"false\""),
     "internet"},
    {"AWS scheme internal",
     POD("a") LB("\"service.beta.kubernetes.io/aws-load-balancer-scheme\":\"internal\""), "node"},
    {"AWS scheme internet-facing",
     POD("a") LB("\"service.beta.kubernetes.io/aws-load-balancer-scheme\":\"internet-facing\""),
     "internet"},
    {"AWS LB Controller default scheme",
     POD("a") LB("\"service.beta.kubernetes.io/aws-load-balancer-type\":\"external\""), "node"},
    {"AWS LB Controller nlb-ip",
     POD("a") LB("\"service.beta.kubernetes.io/aws-load-balancer-type\":\"nlb-ip\""), "node"},
    {"AWS LB Controller class",
     POD("a")
         SVC("shop", "LoadBalancer", "", SEL ",\"loadBalancerClass\":\"service.k8s.aws/nlb\"", ""),
     "node"},
    {"AWS LB Controller internet-facing",
     POD("a") LB("\"service.beta.kubernetes.io/aws-load-balancer-type\":\"external\","
                 "\"service.beta.kubernetes.io/aws-load-balancer-scheme\":\"internet-facing\""),
     "internet"},
    {"AWS in-tree NLB",
     POD("a") LB("\"service.beta.kubernetes.io/aws-load-balancer-type\":\"nlb\""), "internet"},
    {"internal LB without node ports",
     POD("a") SVC("shop", "LoadBalancer",
                  "\"service.beta.kubernetes.io/azure-load-balancer-internal\":\"true\"",
                  SEL ",\"allocateLoadBalancerNodePorts\":false,\"ports\":[{\"port\":80}]", ""),
     "cluster"},
    {"internal LB without allocation but an explicit node port",
     POD("a")
         SVC("shop", "LoadBalancer",
             "\"service.beta.kubernetes.io/azure-load-balancer-internal\":\"true\"",
             SEL ",\"allocateLoadBalancerNodePorts\":false,\"ports\":[{\"nodePort\":30001}]", ""),
     "node"},
    {"selector mismatch",
     POD("a") SVC("shop", "LoadBalancer", "", ",\"selector\":{\"app\":\"other\"}", ""), "cluster"},
    {"selector with a label the pod lacks",
     POD("a") SVC("shop", "LoadBalancer", "", ",\"selector\":{\"app\":\"api\",\"v\":\"2\"}", ""),
     "cluster"},
    {"selector subset of two labels",
     POD("a")
         SVC("shop", "LoadBalancer", "", ",\"selector\":{\"app\":\"api\",\"tier\":\"web\"}", ""),
     "internet"},
    {"no selector", POD("a") SVC("shop", "LoadBalancer", "", "", ""), "cluster"},
    {"empty selector", POD("a") SVC("shop", "LoadBalancer", "", ",\"selector\":{}", ""), "cluster"},
    {"ExternalName", POD("a") SVC("shop", "ExternalName", "", SEL, ""), "cluster"},
    {"LoadBalancer in another namespace", POD("a") SVC("other", "LoadBalancer", "", SEL, ""),
     "cluster"},
    {"NodePort in another namespace", POD("a") SVC("aaa", "NodePort", "", SEL, ""), "cluster"},
    {"Ingress without class", POD("a") CLUSTER_IP(SEL) ING("shop", "", RULE("s")), "internet"},
    {"Ingress public class",
     POD("a") CLUSTER_IP(SEL) ING("shop", "", "\"ingressClassName\":\"nginx\"," RULE("s")),
     "internet"},
    {"Ingress internal class",
     POD("a") CLUSTER_IP(SEL) ING("shop", "", "\"ingressClassName\":\"internal-nginx\"," RULE("s")),
     "cluster"},
    {"Ingress internal legacy class",
     POD("a") CLUSTER_IP(SEL) ING("shop", CLASS("azure-internal"), RULE("s")), "cluster"},
    {"Ingress public legacy class", POD("a") CLUSTER_IP(SEL) ING("shop", CLASS("nginx"), RULE("s")),
     "internet"},
    {"Ingress class name wins over the annotation",
     POD("a") CLUSTER_IP(SEL)
         ING("shop", CLASS("nginx"), "\"ingressClassName\":\"internal-nginx\"," RULE("s")),
     "cluster"},
    {"Ingress default backend",
     POD("a") CLUSTER_IP(SEL)
         ING("shop", "",
             "\"defaultBackend\":{\"service\":{\"name\":\"s\",\"port\":{\"name\":"
             "\"http\"}}}"),
     "internet"},
    {"Ingress v1beta1 backend",
     POD("a") CLUSTER_IP(SEL) ING("shop", "",
                                  "\"backend\":{\"serviceName\":\"s\","
                                  "\"servicePort\":80}"),
     "internet"},
    {"Ingress resource backend",
     POD("a") CLUSTER_IP(SEL) ING("shop", "",
                                  "\"defaultBackend\":{\"resource\":{\"kind\":"
                                  "\"StorageBucket\",\"name\":\"s\"}}"),
     "cluster"},
    {"Ingress to another service", POD("a") CLUSTER_IP(SEL) ING("shop", "", RULE("t")), "cluster"},
    {"Ingress in another namespace", POD("a") CLUSTER_IP(SEL) ING("other", "", RULE("s")),
     "cluster"},
    {"Ingress to a service that selects other pods",
     POD("a") CLUSTER_IP(",\"selector\":{\"app\":\"x\"}") ING("shop", "", RULE("s")), "cluster"},
    {"Ingress before its service", POD("a") ING("shop", "", RULE("s")) CLUSTER_IP(SEL), "internet"},
    {"NodePort and Ingress: the highest",
     POD("a") SVC("shop", "NodePort", "", SEL, "") ING("shop", "", RULE("s")), "internet"},
    {"internal LB and NodePort",
     POD("a") LB("\"networking.gke.io/load-balancer-type\":\"Internal\"")
         SVC("shop", "NodePort", "", SEL, ""),
     "node"},
    {"one exposed pod of two",
     POD("a") ","
              "{\"kind\":\"Pod\",\"metadata\":{\"namespace\":\"shop\",\"name\":\"b\","
              "\"labels\":{\"app\":\"api\",\"v\":\"2\"}},\"status\":{}}" SVC(
                  "shop", "LoadBalancer", "", ",\"selector\":{\"v\":\"2\"}", ""),
     "cluster"},
};

static void test_exposure_rules(void **state)
{
    (void)state;
    char buf[16];
    for (size_t k = 0; k < DM_ARRAY_LEN(exposure_cases); k++) {
        const char *got = exposure_of(exposure_cases[k].items, buf, sizeof buf);
        if (strcmp(got, exposure_cases[k].want) != 0)
            fail_msg("%s: got %s, want %s", exposure_cases[k].what, got, exposure_cases[k].want);
    }
}

/* Pods of one workload: the highest exposure of any of them, their digests together. */
static void test_workload_of_many_pods(void **state)
{
    (void)state;
    char *a = pod_with("web-5f7c9d8b6c-a", "{\"pod-template-hash\":\"5f7c9d8b6c\",\"app\":\"w\"}",
                       OWNER("ReplicaSet", "web-5f7c9d8b6c"), "{\"imageID\":\"r/w@" D2 "\"}");
    char *b = pod_with("web-6a7b8c9d0e-b", "{\"pod-template-hash\":\"6a7b8c9d0e\",\"app\":\"w2\"}",
                       OWNER("ReplicaSet", "web-6a7b8c9d0e"), "{\"imageID\":\"r/w@" D1 "\"}");
    size_t cap = strlen(a) + strlen(b) + 512;
    char *items = dm_xmalloc(cap);
    snprintf(items, cap,
             "%s,%s,{\"kind\":\"Service\",\"metadata\":{\"namespace\":\"ns\",\"name\":\"w\"},"
             "\"spec\":{\"type\":\"NodePort\",\"selector\":{\"app\":\"w2\"}}}",
             a, b);
    char *body = snapshot(items);
    dm_k8s_snapshot s;
    parse_ok(body, NULL, &s);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.v[0].kind, "Deployment");
    assert_string_equal(s.v[0].name, "web");
    assert_string_equal(dm_k8s_exposure_name(s.v[0].exposure), "node");
    assert_int_equal(s.v[0].nimages, 2);
    assert_string_equal(s.v[0].images[0], D1);
    assert_string_equal(s.v[0].images[1], D2);
    dm_k8s_snapshot_dispose(&s);
    free(body);
    free(items);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_gives_expected),
        cmocka_unit_test(test_trimmed_fixture_gives_expected),
        cmocka_unit_test(test_second_snapshot_without_workload),
        cmocka_unit_test(test_small_fixture_and_json),
        cmocka_unit_test(test_invalid_table),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_owners),
        cmocka_unit_test(test_image_ids),
        cmocka_unit_test(test_exposure_rules),
        cmocka_unit_test(test_workload_of_many_pods),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
