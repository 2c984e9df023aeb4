/* fuzz_scan.c - libFuzzer target for dm_scan_parse (Trivy and Grype reports): any bytes give
 * a well-formed, bounded report or a precise error, never a crash, a leak or an invalid
 * report; a tighter bound keeps a prefix of the same findings and the same counts. */
#include "dm_common.h"
#include "dm_scan.h"
#include "fuzz_findings.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SMALL_BOUND 2

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dm_finding_report r, small;
    dm_error err, err2;
    memset(&r, 0xa5, sizeof r); /* the parser must not read what it is given in out */
    memset(&small, 0xa5, sizeof small);
    memset(&err, 0, sizeof err);
    memset(&err2, 0, sizeof err2);
    int rc = dm_scan_parse((const char *)data, size, 0, &r, &err);
    int rc2 = dm_scan_parse((const char *)data, size, SMALL_BOUND, &small, &err2);
    if (rc != rc2)
        __builtin_trap();
    if (rc == DM_OK) {
        if (r.kind != DM_REPORT_SNAPSHOT)
            __builtin_trap();
        fuzz_check_report(&r, DM_FINDINGS_MAX_DEFAULT);
        fuzz_check_report(&small, SMALL_BOUND);
        if (memcmp(r.counts, small.counts, sizeof r.counts) != 0 ||
            strcmp(r.event_id, small.event_id) != 0 ||
            small.nfindings + small.dropped != r.nfindings + r.dropped)
            __builtin_trap();
        for (size_t i = 0; i < small.nfindings; i++) {
            if (strcmp(small.findings[i].id, r.findings[i].id) != 0 ||
                strcmp(small.findings[i].package, r.findings[i].package) != 0)
                __builtin_trap();
        }
    } else if (rc == DM_EINVAL) {
        fuzz_check_report_error(&r, &err);
        if (strcmp(err.field, err2.field) != 0 || strcmp(err.text, err2.text) != 0)
            __builtin_trap();
    } else {
        __builtin_trap();
    }
    dm_finding_report_dispose(&r);
    dm_finding_report_dispose(&small);
    return 0;
}
