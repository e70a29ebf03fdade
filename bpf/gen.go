// Package bpf holds vipcast's BPF programs (C sources in this directory) and
// the Go bindings bpf2go generates for them. The generated files and objects
// are committed; `make generate` rebuilds them and `make test` fails when the
// committed ones differ from a fresh build.
package bpf

//go:generate go tool bpf2go -cc clang -target bpfel -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu" -type vip_key -type vip_meta -type real_def -type flow_key -type conn -type lb_config -type counter -type lb_stats Balancer balancer.c -- -I./include
//go:generate go tool bpf2go -cc clang -target bpfel -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu" -type hc_real -type hc_config -type hc_stats Healthcheck hc_encap.c -- -I./include
//go:generate go tool bpf2go -cc clang -target bpfel -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu" Root root.c -- -I./include
//go:generate go tool bpf2go -cc clang -target bpfel -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu" -type decap_stats Decap decap.c -- -I./include
