/* libbpf for Swift: loading objects, map I/O and tc attachment. */
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
