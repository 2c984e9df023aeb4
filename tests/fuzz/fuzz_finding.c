/* fuzz_finding.c - libFuzzer target for dm_ecr_parse_finding (ECR Image Scan, Inspector2
 * Scan, Inspector2 Finding): any bytes give a well-formed report, an acknowledged "ignored",
 * "not a findings event" (and then dm_ecr_parse's own answer holds), or a precise error. */
#include "dm_common.h"
#include "dm_ecr.h"
#include "fuzz_findings.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ignored_reasons[] = {"scan not complete", "finding type not handled",
                                              NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dm_finding_report r;
    dm_error err;
    memset(&r, 0xa5, sizeof r); /* the parser must not read what it is given in out */
    memset(&err, 0, sizeof err);
    int rc = dm_ecr_parse_finding((const char *)data, size, &r, &err);
    if (rc == DM_OK && r.ignored) {
        size_t i = 0;
        while (ignored_reasons[i] && strcmp(r.ignored, ignored_reasons[i]) != 0)
            i++;
        if (!ignored_reasons[i])
            __builtin_trap();
        dm_finding_report rest = r;
        rest.ignored = NULL;
        fuzz_check_zeroed(&rest); /* nothing else set */
    } else if (rc == DM_OK) {
        if (strcmp(r.scanner, r.kind == DM_REPORT_COUNTS && strcmp(r.scanner, "ecr-basic") == 0
                                  ? "ecr-basic"
                                  : "inspector") != 0)
            __builtin_trap();
        if (r.kind == DM_REPORT_SNAPSHOT || (r.kind == DM_REPORT_COUNTS && r.ndigests != 1))
            __builtin_trap();
        for (size_t i = 0; i < r.ndigests; i++) {
            const dm_finding_digest *d = &r.digests[i];
            if (d->relation != DM_REL_IMAGE || !d->registry || strlen(d->registry) < 21 ||
                strncmp(d->registry + 12, ".dkr.ecr.", 9) != 0)
                __builtin_trap();
        }
        fuzz_check_report(&r, DM_FINDINGS_MAX_DEFAULT);
    } else if (rc == DM_ECR_NOT_FINDING) {
        fuzz_check_zeroed(&r);
        /* dm_ecr_parse must then answer on its own: an event list or an error */
        dm_event_list l;
        memset(&err, 0, sizeof err);
        int rc2 = dm_ecr_parse((const char *)data, size, &l, &err);
        if (rc2 != DM_OK && rc2 != DM_EINVAL)
            __builtin_trap();
        dm_event_list_dispose(&l);
    } else if (rc == DM_EINVAL) {
        fuzz_check_report_error(&r, &err);
    } else {
        __builtin_trap();
    }
    dm_finding_report_dispose(&r);
    return 0;
}
