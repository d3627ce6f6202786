/* tools/main.c — the `qinx` command: dispatch to subcommands. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        printf("usage: qinx <build|search|info|verify|serve|bench> [options]\n");
        return argc < 2 ? 2 : 0;
    }
    fprintf(stderr, "qinx: unknown command '%s'\n", argv[1]);
    return 2;
}
