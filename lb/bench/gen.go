// Package bench measures vipcast's data plane: the XDP balancer's cost per
// packet against an XDP program that does nothing but transmit, with
// BPF_PROG_TEST_RUN in live-frames mode over a veth pair in a network
// namespace of its own, and the time from an API call to the first
// forwarded packet. Everything is in benchmarks (go test -bench); this file
// holds the generate directive for the helper programs in bench.c.
package bench

//go:generate go tool bpf2go -cc clang -target bpfel -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu" Bench bench.c
