"""Exit statuses of every ``refnet`` subcommand (no imports: the entry point reads them before
any numpy or numba import, so that even a Ctrl-C during those ends with one line)."""

EXIT_OK = 0            #: done
EXIT_FAILURE = 1       #: the work ran and failed (a fetch failed, training diverged)
EXIT_USAGE = 2         #: bad input: a flag, a value or a file (argparse's convention)
EXIT_INTERRUPTED = 130  #: Ctrl-C (128 + SIGINT)
#: stdout's reader went away (``refnet ... | head -1``): what a shell shows for a tool that
#: SIGPIPE killed (128 + SIGPIPE), so that ``set -o pipefail`` sees the output was cut short
EXIT_BROKEN_PIPE = 141
