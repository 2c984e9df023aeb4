/* digestmap - command-line client (placeholder). */
#include <stdio.h>

int main(void)
{
    fputs("digestmap: not implemented yet\n", stderr);
    return 2;
}
