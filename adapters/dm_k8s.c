/* dm_k8s.c - Kubernetes cluster snapshots to workloads (docs/workloads.md). */
#include "dm_k8s.h"

#include "dm_json.h"
#include "dm_time.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K8S_MAX_CLUSTER    128
#define K8S_MAX_NAMESPACE  63  /* a DNS label */
#define K8S_MAX_NAME       253 /* a DNS subdomain */
#define K8S_MAX_KIND       63
#define K8S_MAX_IMAGE_ID   4096 /* a reference: host, path and digest; far below in practice */
#define K8S_MAX_CLASS      253
/* The CronJob controller names its Jobs "<cronjob>-<scheduled minutes since the epoch>":
 * 8 digits until the 22nd century. Fewer digits is a hand-made Job such as "migrate-2". */
#define K8S_CRONJOB_DIGITS 8

/* One pod: the workload it belongs to and what it runs. Strings borrowed from the document. */
typedef struct k8s_pod {
    const char *ns, *kind, *name;
    size_t name_len; /* name is the owner's name, maybe cut (a Deployment's ReplicaSet) */
    json_t *labels;  /* NULL: none */
    char (*digests)[DM_DIGEST_BUFLEN];
    size_t nd, capd;
    dm_k8s_exposure exposure;
} k8s_pod;

/* One Service: which pods it selects and what it gives them. */
typedef struct k8s_service {
    const char *ns, *name;
    json_t *selector; /* NULL: selects no pod */
    dm_k8s_exposure level;
} k8s_service;

typedef struct k8s_ctx {
    const dm_k8s_options *opts;
    dm_error *err;
    char path[160];
    k8s_pod *pods;
    size_t npods;
    k8s_service *svcs;
    size_t nsvcs;
} k8s_ctx;

/* ------------------------------------------------------------------------------------------ */
/* Paths and checks                                                                            */
/* ------------------------------------------------------------------------------------------ */

/* The JSON path of a field of item @p i into ctx->path: "items[3].metadata.name", or
 * "items[3]" for an empty @p fmt. */
__attribute__((format(printf, 3, 4))) static const char *at(k8s_ctx *c, size_t i, const char *fmt,
                                                            ...)
{
    char rest[sizeof c->path - 32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof rest, fmt, ap);
    va_end(ap);
    snprintf(c->path, sizeof c->path, "items[%zu]%s%s", i, rest[0] ? "." : "", rest);
    return c->path;
}

static int too_many(dm_error *err, const char *field, const char *text, size_t max)
{
    dm_error_set(err, field, text, max);
    if (err)
        err->status = 413;
    return DM_EINVAL;
}

static bool dns_chars(const char *s, size_t n, bool dots)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              (dots && ch == '.')))
            return false;
    }
    return true;
}

/* A namespace (@p label) or a name: they become parts of Redis keys and records. */
static int get_dns(json_t *obj, const char *key, const char *path, bool label, const char **s,
                   size_t *n, dm_error *err)
{
    size_t max = label ? K8S_MAX_NAMESPACE : K8S_MAX_NAME;
    if (dm_json_get_string(obj, key, path, true, max, s, n, err) != DM_OK)
        return DM_EINVAL;
    if (!dns_chars(*s, *n, !label))
        return dm_error_set(err, path,
                            label ? "must be a DNS label (a-z, 0-9 and '-')"
                                  : "must be a DNS name (a-z, 0-9, '.' and '-')");
    return DM_OK;
}

/* Optional member @p key: an object whose values are all strings (labels, annotations,
 * selectors); *out NULL when absent. */
static int get_string_map(k8s_ctx *c, json_t *obj, const char *key, size_t i, const char *where,
                          json_t **out)
{
    *out = dm_json_member(obj, key);
    if (!*out)
        return DM_OK;
    if (!json_is_object(*out))
        return dm_error_set(c->err, at(c, i, "%s", where), "must be an object");
    const char *k;
    json_t *v;
    json_object_foreach(*out, k, v)
    {
        if (!json_is_string(v))
            return dm_error_set(c->err, at(c, i, "%s.%s", where, k), "must be a string");
    }
    return DM_OK;
}

/* Optional member @p key that must be an array; *out NULL when absent. */
static int get_array(k8s_ctx *c, json_t *obj, const char *key, size_t i, const char *where,
                     json_t **out)
{
    *out = dm_json_member(obj, key);
    if (*out && !json_is_array(*out))
        return dm_error_set(c->err, at(c, i, "%s", where), "must be an array");
    return DM_OK;
}

/* Optional member @p key that must be an object; *out NULL when absent. */
static int get_opt_object(k8s_ctx *c, json_t *obj, const char *key, size_t i, const char *where,
                          json_t **out)
{
    *out = dm_json_member(obj, key);
    if (*out && !json_is_object(*out))
        return dm_error_set(c->err, at(c, i, "%s", where), "must be an object");
    return DM_OK;
}

/* "metadata" with its namespace and name; the annotations when @p annotations is not NULL. */
static int get_metadata(k8s_ctx *c, json_t *item, size_t i, json_t **meta, const char **ns,
                        const char **name, json_t **annotations)
{
    const char *s;
    size_t n;
    if (dm_json_get_object(item, "metadata", at(c, i, "metadata"), meta, c->err) != DM_OK ||
        get_dns(*meta, "namespace", at(c, i, "metadata.namespace"), true, ns, &n, c->err) !=
            DM_OK ||
        get_dns(*meta, "name", at(c, i, "metadata.name"), false, name ? name : &s, &n, c->err) !=
            DM_OK)
        return DM_EINVAL;
    if (annotations)
        return get_string_map(c, *meta, "annotations", i, "metadata.annotations", annotations);
    return DM_OK;
}

/* The string value of annotation @p key, or NULL (the map's values are known strings). */
static const char *annotation(json_t *annotations, const char *key)
{
    return annotations ? json_string_value(json_object_get(annotations, key)) : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Pods                                                                                        */
/* ------------------------------------------------------------------------------------------ */

/*
 * The registry digest of an imageID: "[docker-pullable://]NAME@sha256:<64 lowercase hex>".
 * A bare "sha256:…" or "docker://sha256:…" is a local image id, "" an image not yet pulled:
 * neither names anything a registry pushed.
 */
static bool image_digest(const char *s, size_t n, char out[DM_DIGEST_BUFLEN])
{
    static const char pullable[] = "docker-pullable://";
    if (n >= sizeof pullable - 1 && memcmp(s, pullable, sizeof pullable - 1) == 0) {
        s += sizeof pullable - 1;
        n -= sizeof pullable - 1;
    }
    const char *at_sign = memchr(s, '@', n);
    if (!at_sign || at_sign == s)
        return false;
    size_t name_len = (size_t)(at_sign - s), dlen = n - name_len - 1;
    for (size_t k = 0; k + 2 < name_len; k++) {
        if (s[k] == ':' && s[k + 1] == '/' && s[k + 2] == '/')
            return false; /* another scheme, such as docker:// */
    }
    if (!dm_digest_valid(at_sign + 1, dlen))
        return false;
    memcpy(out, at_sign + 1, dlen);
    out[dlen] = '\0';
    return true;
}

static void pod_add_digest(k8s_pod *p, const char d[DM_DIGEST_BUFLEN])
{
    if (p->nd == p->capd) {
        p->capd = p->capd ? p->capd * 2 : 4;
        p->digests = dm_xrealloc(p->digests, p->capd * sizeof *p->digests);
    }
    memcpy(p->digests[p->nd++], d, DM_DIGEST_BUFLEN);
}

/* status.<key>[].imageID of one pod. */
static int pod_statuses(k8s_ctx *c, json_t *status, const char *key, size_t i, k8s_pod *p)
{
    json_t *arr;
    char where[48];
    snprintf(where, sizeof where, "status.%s", key);
    if (get_array(c, status, key, i, where, &arr) != DM_OK)
        return DM_EINVAL;
    size_t j;
    json_t *st;
    json_array_foreach(arr, j, st)
    {
        if (!json_is_object(st))
            return dm_error_set(c->err, at(c, i, "status.%s[%zu]", key, j), "must be an object");
        const char *s;
        size_t n;
        if (dm_json_get_string(st, "imageID", at(c, i, "status.%s[%zu].imageID", key, j), false,
                               K8S_MAX_IMAGE_ID, &s, &n, c->err) != DM_OK)
            return DM_EINVAL;
        char d[DM_DIGEST_BUFLEN];
        if (s && image_digest(s, n, d))
            pod_add_digest(p, d);
    }
    return DM_OK;
}

/* The ownerReferences[] entry with controller: true, or *owner NULL. */
static int pod_owner(k8s_ctx *c, json_t *meta, size_t i, json_t **owner)
{
    json_t *refs, *ref;
    size_t j;
    *owner = NULL;
    if (get_array(c, meta, "ownerReferences", i, "metadata.ownerReferences", &refs) != DM_OK)
        return DM_EINVAL;
    json_array_foreach(refs, j, ref)
    {
        if (!json_is_object(ref))
            return dm_error_set(c->err, at(c, i, "metadata.ownerReferences[%zu]", j),
                                "must be an object");
        if (json_is_true(json_object_get(ref, "controller"))) {
            *owner = ref;
            return (int)j; /* the index, for the paths below */
        }
    }
    return DM_OK;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (s[k] < '0' || s[k] > '9')
            return false;
    }
    return n > 0;
}

/* The workload of pod @p p from its controller @p owner (entry @p j); docs/workloads.md. */
static int pod_workload(k8s_ctx *c, json_t *owner, int j, size_t i, k8s_pod *p)
{
    const char *kind, *name;
    size_t klen, nlen;
    if (dm_json_get_string(owner, "kind", at(c, i, "metadata.ownerReferences[%d].kind", j), true,
                           K8S_MAX_KIND, &kind, &klen, c->err) != DM_OK)
        return DM_EINVAL;
    for (size_t k = 0; k < klen; k++) {
        char ch = kind[k];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')))
            return dm_error_set(c->err, c->path, "must be a kind (A-Z, a-z and 0-9)");
    }
    if (get_dns(owner, "name", at(c, i, "metadata.ownerReferences[%d].name", j), false, &name,
                &nlen, c->err) != DM_OK)
        return DM_EINVAL;
    p->kind = kind;
    p->name = name;
    p->name_len = nlen;
    if (strcmp(kind, "ReplicaSet") == 0) {
        /* A Deployment's ReplicaSet is "<deployment>-<pod-template-hash>". */
        const char *hash = annotation(p->labels, "pod-template-hash");
        size_t hlen = hash ? strlen(hash) : 0;
        if (hlen > 0 && nlen > hlen + 1 && name[nlen - hlen - 1] == '-' &&
            memcmp(name + nlen - hlen, hash, hlen) == 0) {
            p->kind = "Deployment";
            p->name_len = nlen - hlen - 1;
        }
    } else if (strcmp(kind, "Job") == 0) {
        const char *dash = NULL;
        for (size_t k = 0; k < nlen; k++) {
            if (name[k] == '-')
                dash = name + k;
        }
        size_t plen = dash ? (size_t)(dash - name) : 0;
        if (dash && plen > 0 && nlen - plen - 1 >= K8S_CRONJOB_DIGITS &&
            all_digits(dash + 1, nlen - plen - 1)) {
            p->kind = "CronJob";
            p->name_len = plen;
        }
    }
    return DM_OK;
}

static int parse_pod(k8s_ctx *c, json_t *item, size_t i)
{
    json_t *meta, *owner, *status;
    k8s_pod p = {0};
    if (get_metadata(c, item, i, &meta, &p.ns, &p.name, NULL) != DM_OK)
        return DM_EINVAL;
    p.kind = "Pod";
    p.name_len = strlen(p.name);
    if (get_string_map(c, meta, "labels", i, "metadata.labels", &p.labels) != DM_OK)
        return DM_EINVAL;
    int j = pod_owner(c, meta, i, &owner);
    if (j < 0 || (owner && pod_workload(c, owner, j, i, &p) != DM_OK))
        return DM_EINVAL;
    if (get_opt_object(c, item, "status", i, "status", &status) != DM_OK)
        return DM_EINVAL;
    /* Added before the statuses are read, so that a failure frees what they collected. */
    c->pods = dm_xrealloc(c->pods, (c->npods + 1) * sizeof *c->pods);
    k8s_pod *slot = &c->pods[c->npods++];
    *slot = p;
    if (status && (pod_statuses(c, status, "containerStatuses", i, slot) != DM_OK ||
                   pod_statuses(c, status, "initContainerStatuses", i, slot) != DM_OK))
        return DM_EINVAL;
    return DM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Services                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static bool ascii_ieq(const char *a, const char *b)
{
    if (!a)
        return false;
    for (; *a && *b; a++, b++) {
        char x = *a, y = *b;
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return *a == *b;
}

/* Private, shared (carrier-grade NAT), link-local or unique-local addresses. */
static bool private_ip(const char *s)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, s, a) == 1)
        return a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
               (a[0] == 100 && (a[1] & 0xc0) == 64) || (a[0] == 169 && a[1] == 254);
    if (inet_pton(AF_INET6, s, a) == 1)
        return (a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80);
    return false;
}

/* status.loadBalancer.ingress[]: true when it holds addresses and every one is private. */
static int lb_private(k8s_ctx *c, json_t *item, size_t i, bool *priv)
{
    json_t *status, *lb, *ing, *e;
    size_t j, ips = 0;
    *priv = false;
    if (get_opt_object(c, item, "status", i, "status", &status) != DM_OK ||
        (status &&
         get_opt_object(c, status, "loadBalancer", i, "status.loadBalancer", &lb) != DM_OK))
        return DM_EINVAL;
    if (!status || !lb)
        return DM_OK;
    if (get_array(c, lb, "ingress", i, "status.loadBalancer.ingress", &ing) != DM_OK)
        return DM_EINVAL;
    json_array_foreach(ing, j, e)
    {
        if (!json_is_object(e))
            return dm_error_set(c->err, at(c, i, "status.loadBalancer.ingress[%zu]", j),
                                "must be an object");
        const char *ip;
        size_t n;
        if (dm_json_get_string(e, "ip", at(c, i, "status.loadBalancer.ingress[%zu].ip", j), false,
                               64, &ip, &n, c->err) != DM_OK)
            return DM_EINVAL;
        if (!ip)
            return DM_OK; /* a host name (AWS) says nothing about the scheme */
        if (!private_ip(ip))
            return DM_OK;
        ips++;
    }
    *priv = ips > 0;
    return DM_OK;
}

/* Whether a LoadBalancer Service is internal-only; the markers are listed in
 * docs/workloads.md. */
static int lb_internal(k8s_ctx *c, json_t *item, size_t i, json_t *ann, json_t *spec,
                       bool *internal)
{
    const char *cls = NULL, *scheme;
    size_t n;
    bool priv;
    if (lb_private(c, item, i, &priv) != DM_OK)
        return DM_EINVAL;
    if (spec && dm_json_get_string(spec, "loadBalancerClass", at(c, i, "spec.loadBalancerClass"),
                                   false, K8S_MAX_CLASS, &cls, &n, c->err) != DM_OK)
        return DM_EINVAL;
    const char *aws_internal =
        annotation(ann, "service.beta.kubernetes.io/aws-load-balancer-internal");
    *internal =
        ascii_ieq(annotation(ann, "service.beta.kubernetes.io/azure-load-balancer-internal"),
                  "true") ||
        ascii_ieq(annotation(ann, "networking.gke.io/load-balancer-type"), "internal") ||
        ascii_ieq(annotation(ann, "cloud.google.com/load-balancer-type"), "internal") ||
        (cls && strcmp(cls, "networking.gke.io/l4-regional-internal") == 0) ||
        /* the in-tree AWS provider: any value but "false" (old manifests wrote a CIDR) */
        (aws_internal && aws_internal[0] != '\0' && !ascii_ieq(aws_internal, "false"));
    if (*internal)
        return DM_OK;
    scheme = annotation(ann, "service.beta.kubernetes.io/aws-load-balancer-scheme");
    if (scheme) {
        *internal = !ascii_ieq(scheme, "internet-facing");
        return DM_OK;
    }
    /* The AWS Load Balancer Controller's own Services default to an internal scheme. */
    const char *type = annotation(ann, "service.beta.kubernetes.io/aws-load-balancer-type");
    if ((cls && strcmp(cls, "service.k8s.aws/nlb") == 0) || ascii_ieq(type, "external") ||
        ascii_ieq(type, "nlb-ip")) {
        *internal = true;
        return DM_OK;
    }
    *internal = priv; /* no marker either way: the address it got says it */
    return DM_OK;
}

/* Whether an internal LoadBalancer still opens node ports: unless told not to allocate them,
 * or where a port names one explicitly. */
static int lb_node_ports(k8s_ctx *c, json_t *spec, size_t i, bool *node)
{
    json_t *alloc = spec ? dm_json_member(spec, "allocateLoadBalancerNodePorts") : NULL, *ports,
           *port;
    size_t j;
    *node = !alloc || json_is_true(alloc);
    if (*node)
        return DM_OK;
    if (get_array(c, spec, "ports", i, "spec.ports", &ports) != DM_OK)
        return DM_EINVAL;
    json_array_foreach(ports, j, port)
    {
        json_t *np = json_is_object(port) ? json_object_get(port, "nodePort") : NULL;
        if (json_is_integer(np) && json_integer_value(np) > 0)
            *node = true;
    }
    return DM_OK;
}

static int parse_service(k8s_ctx *c, json_t *item, size_t i)
{
    json_t *meta, *ann, *spec;
    k8s_service s = {0};
    const char *type = NULL;
    size_t n;
    if (get_metadata(c, item, i, &meta, &s.ns, &s.name, &ann) != DM_OK ||
        get_opt_object(c, item, "spec", i, "spec", &spec) != DM_OK)
        return DM_EINVAL;
    if (spec && (dm_json_get_string(spec, "type", at(c, i, "spec.type"), false, 64, &type, &n,
                                    c->err) != DM_OK ||
                 get_string_map(c, spec, "selector", i, "spec.selector", &s.selector) != DM_OK))
        return DM_EINVAL;
    if (s.selector && json_object_size(s.selector) == 0)
        s.selector = NULL; /* an empty selector selects nothing, as for the endpoints */
    if (type && strcmp(type, "ExternalName") == 0)
        s.selector = NULL;
    s.level = DM_K8S_CLUSTER;
    if (type && strcmp(type, "NodePort") == 0) {
        s.level = DM_K8S_NODE;
    } else if (type && strcmp(type, "LoadBalancer") == 0) {
        bool internal = false, node = false;
        json_t *alloc = spec ? dm_json_member(spec, "allocateLoadBalancerNodePorts") : NULL;
        if (alloc && !json_is_boolean(alloc))
            return dm_error_set(c->err, at(c, i, "spec.allocateLoadBalancerNodePorts"),
                                "must be a boolean");
        if (lb_internal(c, item, i, ann, spec, &internal) != DM_OK)
            return DM_EINVAL;
        if (!internal)
            s.level = DM_K8S_INTERNET;
        else if (lb_node_ports(c, spec, i, &node) != DM_OK)
            return DM_EINVAL;
        else if (node)
            s.level = DM_K8S_NODE;
    }
    c->svcs = dm_xrealloc(c->svcs, (c->nsvcs + 1) * sizeof *c->svcs);
    c->svcs[c->nsvcs++] = s;
    return DM_OK;
}

static int svc_cmp(const void *a, const void *b)
{
    const k8s_service *x = a, *y = b;
    int r = strcmp(x->ns, y->ns);
    return r ? r : strcmp(x->name, y->name);
}

/* ------------------------------------------------------------------------------------------ */
/* Ingresses                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* One backend (@p where names it): the Service it routes to becomes internet-exposed when
 * @p internet. networking.k8s.io/v1 says service.name, the older v1beta1 serviceName. */
static int ingress_backend(k8s_ctx *c, json_t *b, size_t i, const char *where, const char *ns,
                           bool internet)
{
    const char *w = where;
    if (!json_is_object(b))
        return dm_error_set(c->err, at(c, i, "%s", w), "must be an object");
    json_t *svc;
    const char *name;
    size_t n;
    char sw[128];
    snprintf(sw, sizeof sw, "%s.service", w);
    if (get_opt_object(c, b, "service", i, sw, &svc) != DM_OK)
        return DM_EINVAL;
    if (svc) {
        if (get_dns(svc, "name", at(c, i, "%s.service.name", w), false, &name, &n, c->err) != DM_OK)
            return DM_EINVAL;
    } else if (dm_json_member(b, "serviceName")) {
        if (get_dns(b, "serviceName", at(c, i, "%s.serviceName", w), false, &name, &n, c->err) !=
            DM_OK)
            return DM_EINVAL;
    } else {
        return DM_OK; /* a resource backend is not a Service */
    }
    if (!internet)
        return DM_OK;
    k8s_service key = {.ns = ns, .name = name};
    k8s_service *s = c->nsvcs ? bsearch(&key, c->svcs, c->nsvcs, sizeof *c->svcs, svc_cmp) : NULL;
    /* Services sharing a name in one namespace cannot exist; in a hand-made snapshot the first
     * found is as good as any. */
    if (s)
        s->level = DM_K8S_INTERNET;
    return DM_OK;
}

static bool internal_class(const dm_k8s_options *o, const char *cls)
{
    for (size_t k = 0; cls && o && k < o->n_internal_ingress_classes; k++) {
        if (o->internal_ingress_classes[k] && strcmp(o->internal_ingress_classes[k], cls) == 0)
            return true;
    }
    return false;
}

static int ingress_rules(k8s_ctx *c, json_t *spec, size_t i, const char *ns, bool internet)
{
    json_t *rules, *rule, *http, *paths, *path;
    size_t r, k;
    char w[96];
    if (get_array(c, spec, "rules", i, "spec.rules", &rules) != DM_OK)
        return DM_EINVAL;
    json_array_foreach(rules, r, rule)
    {
        snprintf(w, sizeof w, "spec.rules[%zu]", r);
        if (!json_is_object(rule))
            return dm_error_set(c->err, at(c, i, "%s", w), "must be an object");
        snprintf(w, sizeof w, "spec.rules[%zu].http", r);
        if (get_opt_object(c, rule, "http", i, w, &http) != DM_OK)
            return DM_EINVAL;
        snprintf(w, sizeof w, "spec.rules[%zu].http.paths", r);
        if (!http || get_array(c, http, "paths", i, w, &paths) != DM_OK)
            return http ? DM_EINVAL : DM_OK;
        json_array_foreach(paths, k, path)
        {
            snprintf(w, sizeof w, "spec.rules[%zu].http.paths[%zu]", r, k);
            if (!json_is_object(path))
                return dm_error_set(c->err, at(c, i, "%s", w), "must be an object");
            snprintf(w, sizeof w, "spec.rules[%zu].http.paths[%zu].backend", r, k);
            json_t *b = dm_json_member(path, "backend");
            if (b && ingress_backend(c, b, i, w, ns, internet) != DM_OK)
                return DM_EINVAL;
        }
    }
    return DM_OK;
}

static int parse_ingress(k8s_ctx *c, json_t *item, size_t i)
{
    json_t *meta, *ann, *spec;
    const char *ns, *cls = NULL;
    size_t n;
    if (get_metadata(c, item, i, &meta, &ns, NULL, &ann) != DM_OK ||
        get_opt_object(c, item, "spec", i, "spec", &spec) != DM_OK)
        return DM_EINVAL;
    if (spec && dm_json_get_string(spec, "ingressClassName", at(c, i, "spec.ingressClassName"),
                                   false, K8S_MAX_CLASS, &cls, &n, c->err) != DM_OK)
        return DM_EINVAL;
    if (!cls)
        cls = annotation(ann, "kubernetes.io/ingress.class"); /* before IngressClass existed */
    bool internet = !internal_class(c->opts, cls);
    if (!spec)
        return DM_OK;
    static const char *const defaults[] = {"defaultBackend", "backend"};
    for (size_t k = 0; k < DM_ARRAY_LEN(defaults); k++) {
        json_t *b = dm_json_member(spec, defaults[k]);
        char w[32];
        snprintf(w, sizeof w, "spec.%s", defaults[k]);
        if (b && ingress_backend(c, b, i, w, ns, internet) != DM_OK)
            return DM_EINVAL;
    }
    return ingress_rules(c, spec, i, ns, internet);
}

/* ------------------------------------------------------------------------------------------ */
/* Workloads                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static int name_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int r = memcmp(a, b, an < bn ? an : bn);
    return r ? r : (an > bn) - (an < bn);
}

/* Pods by (namespace, kind, name): a namespace's pods and a workload's pods are runs. */
static int pod_cmp(const void *a, const void *b)
{
    const k8s_pod *x = a, *y = b;
    int r = strcmp(x->ns, y->ns);
    if (!r)
        r = strcmp(x->kind, y->kind);
    return r ? r : name_cmp(x->name, x->name_len, y->name, y->name_len);
}

static int digest_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Every pod of the Service's namespace whose labels hold each selector pair. */
static void apply_service(k8s_ctx *c, const k8s_service *s)
{
    size_t lo = 0, hi = c->npods;
    while (lo < hi) { /* the first pod of the namespace */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(c->pods[mid].ns, s->ns) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = lo; k < c->npods && strcmp(c->pods[k].ns, s->ns) == 0; k++) {
        k8s_pod *p = &c->pods[k];
        if (p->exposure >= s->level || !p->labels)
            continue;
        bool match = true;
        const char *key;
        json_t *v;
        json_object_foreach(s->selector, key, v)
        {
            json_t *l = json_object_get(p->labels, key);
            if (!l || strcmp(json_string_value(l), json_string_value(v)) != 0) {
                match = false;
                break;
            }
        }
        if (match)
            p->exposure = s->level;
    }
}

/* The workload of the pods [from, to): all their digests once each, sorted. */
static int make_workload(k8s_ctx *c, size_t from, size_t to, dm_k8s_snapshot *out)
{
    size_t total = 0;
    dm_k8s_exposure e = DM_K8S_CLUSTER;
    for (size_t k = from; k < to; k++) {
        total += c->pods[k].nd;
        if (c->pods[k].exposure > e)
            e = c->pods[k].exposure;
    }
    if (total == 0)
        return DM_OK; /* nothing a registry knows runs here */
    char(*d)[DM_DIGEST_BUFLEN] = dm_xmalloc(total * sizeof *d);
    size_t n = 0;
    for (size_t k = from; k < to; k++) {
        if (c->pods[k].nd == 0)
            continue; /* digests is NULL, which memcpy may not be given */
        memcpy(d + n, c->pods[k].digests, c->pods[k].nd * sizeof *d);
        n += c->pods[k].nd;
    }
    qsort(d, n, sizeof *d, digest_cmp);
    size_t u = 0;
    for (size_t k = 0; k < n; k++) {
        if (u == 0 || strcmp(d[u - 1], d[k]) != 0)
            memmove(d[u++], d[k], sizeof *d);
    }
    const k8s_pod *p = &c->pods[from];
    if (u > DM_K8S_MAX_IMAGES) {
        free(d);
        dm_error_set(c->err, "items", "workload %s/%s/%.*s runs more than %d distinct images",
                     p->ns, p->kind, (int)p->name_len, p->name, DM_K8S_MAX_IMAGES);
        if (c->err)
            c->err->status = 413;
        return DM_EINVAL;
    }
    if (c->opts && c->opts->max_workloads && out->n >= c->opts->max_workloads) {
        free(d);
        return too_many(c->err, "items", "must make at most %zu workloads", c->opts->max_workloads);
    }
    out->v = dm_xrealloc(out->v, (out->n + 1) * sizeof *out->v);
    dm_k8s_workload *w = &out->v[out->n++];
    w->namespace_ = dm_xstrdup(p->ns);
    w->kind = dm_xstrdup(p->kind);
    w->name = dm_xstrndup(p->name, p->name_len);
    w->exposure = e;
    w->images = dm_xrealloc(d, u * sizeof *d);
    w->nimages = u;
    return DM_OK;
}

static int derive(k8s_ctx *c, dm_k8s_snapshot *out)
{
    if (c->npods > 1)
        qsort(c->pods, c->npods, sizeof *c->pods, pod_cmp);
    for (size_t k = 0; k < c->nsvcs; k++) {
        if (c->svcs[k].selector && c->svcs[k].level > DM_K8S_CLUSTER)
            apply_service(c, &c->svcs[k]);
    }
    size_t from = 0;
    for (size_t k = 1; k <= c->npods; k++) {
        if (k < c->npods && pod_cmp(&c->pods[from], &c->pods[k]) == 0)
            continue;
        if (make_workload(c, from, k, out) != DM_OK)
            return DM_EINVAL;
        from = k;
    }
    return DM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* API                                                                                         */
/* ------------------------------------------------------------------------------------------ */

const char *dm_k8s_exposure_name(dm_k8s_exposure e)
{
    switch (e) {
    case DM_K8S_INTERNET:
        return "internet";
    case DM_K8S_NODE:
        return "node";
    default:
        return "cluster";
    }
}

static int parse_header(json_t *root, const dm_k8s_options *opts, dm_k8s_snapshot *out,
                        json_t **items, dm_error *err)
{
    const char *s;
    size_t n;
    if (dm_json_get_string(root, "cluster", "cluster", true, K8S_MAX_CLUSTER, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    for (size_t k = 0; k < n; k++) {
        char ch = s[k];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return dm_error_set(err, "cluster",
                                "must contain only A-Z, a-z, 0-9, '.', '_', ':' "
                                "and '-'");
    }
    out->cluster = dm_xstrndup(s, n);
    if (dm_json_get_string(root, "taken_at", "taken_at", true, SIZE_MAX, &s, &n, err) != DM_OK)
        return DM_EINVAL;
    if (dm_time_parse_rfc3339(s, n, &out->taken_at_ms) != DM_OK)
        return dm_error_set(err, "taken_at", "must be an RFC 3339 timestamp");
    *items = dm_json_member(root, "items");
    if (!*items)
        return dm_error_set(err, "items", "is required");
    if (!json_is_array(*items))
        return dm_error_set(err, "items", "must be an array");
    if (opts && opts->max_items && json_array_size(*items) > opts->max_items)
        return too_many(err, "items", "must hold at most %zu items", opts->max_items);
    return DM_OK;
}

/* Pods and Services first; Ingresses once every Service can be looked up. */
static int parse_items(k8s_ctx *c, json_t *items, dm_k8s_snapshot *out)
{
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        const char *kind;
        size_t n;
        if (!json_is_object(item))
            return dm_error_set(c->err, at(c, i, "%s", ""), "must be an object");
        if (dm_json_get_string(item, "kind", at(c, i, "kind"), true, K8S_MAX_KIND, &kind, &n,
                               c->err) != DM_OK)
            return DM_EINVAL;
        int rc = DM_OK;
        if (strcmp(kind, "Pod") == 0) {
            rc = parse_pod(c, item, i);
            out->pods++;
        } else if (strcmp(kind, "Service") == 0) {
            rc = parse_service(c, item, i);
            out->services++;
        } else if (strcmp(kind, "Ingress") == 0) {
            out->ingresses++;
        } else {
            out->other_items++;
        }
        if (rc != DM_OK)
            return rc;
    }
    if (c->nsvcs > 1) /* qsort and bsearch want a non-NULL array */
        qsort(c->svcs, c->nsvcs, sizeof *c->svcs, svc_cmp);
    json_array_foreach(items, i, item)
    {
        if (strcmp(json_string_value(json_object_get(item, "kind")), "Ingress") == 0 &&
            parse_ingress(c, item, i) != DM_OK)
            return DM_EINVAL;
    }
    return derive(c, out);
}

int dm_k8s_parse(const char *body, size_t len, const dm_k8s_options *opts, dm_k8s_snapshot *out,
                 dm_error *err)
{
    json_t *root = NULL, *items = NULL;
    memset(out, 0, sizeof *out);
    if (dm_json_load_object(body, len, &root, err) != DM_OK)
        return DM_EINVAL;
    k8s_ctx c = {.opts = opts, .err = err};
    int rc = parse_header(root, opts, out, &items, err);
    if (rc == DM_OK)
        rc = parse_items(&c, items, out);
    for (size_t k = 0; k < c.npods; k++)
        free(c.pods[k].digests);
    free(c.pods);
    free(c.svcs);
    json_decref(root);
    if (rc != DM_OK)
        dm_k8s_snapshot_dispose(out);
    return rc;
}

void dm_k8s_snapshot_dispose(dm_k8s_snapshot *s)
{
    for (size_t k = 0; k < s->n; k++) {
        free(s->v[k].namespace_);
        free(s->v[k].kind);
        free(s->v[k].name);
        free(s->v[k].images);
    }
    free(s->v);
    free(s->cluster);
    memset(s, 0, sizeof *s);
}

char *dm_k8s_to_json(const dm_k8s_snapshot *s)
{
    json_t *root = json_object(), *arr = json_array();
    json_object_set_new(root, "cluster", json_string(s->cluster ? s->cluster : ""));
    json_object_set_new(root, "taken_at", json_integer(s->taken_at_ms));
    for (size_t k = 0; k < s->n; k++) {
        const dm_k8s_workload *w = &s->v[k];
        json_t *o = json_object(), *images = json_array();
        json_object_set_new(o, "cluster", json_string(s->cluster ? s->cluster : ""));
        json_object_set_new(o, "namespace", json_string(w->namespace_));
        json_object_set_new(o, "kind", json_string(w->kind));
        json_object_set_new(o, "name", json_string(w->name));
        json_object_set_new(o, "exposure", json_string(dm_k8s_exposure_name(w->exposure)));
        for (size_t d = 0; d < w->nimages; d++)
            json_array_append_new(images, json_string(w->images[d]));
        json_object_set_new(o, "images", images);
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "workloads", arr);
    char *out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!out)
        out = dm_xstrdup("{}"); /* jansson failed to allocate; unreachable with dm_xmalloc */
    return out;
}
