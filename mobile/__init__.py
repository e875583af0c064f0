"""mobile: the `anyir` command line, bundles, profiling harnesses and reports."""
