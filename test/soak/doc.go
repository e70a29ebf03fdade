// Package soak is vipcast's soak test (hardening issue 11): vipcastd in the
// netns lab of test/lab under mixed client traffic (short HTTP requests,
// keep-alive connections, long transfers, UDP echo; IPv4 and IPv6 VIPs)
// while an operator changes its reals every 100 ms through the API and
// the CLI, changes weights, and reals' servers fail and recover. Afterwards
// vipcastd must hold no more goroutines, open files or BPF map entries than
// before (within the bounds stated in the test), must not have panicked,
// and every client error must belong to a class the churn explains.
//
// The scenario itself is in soak_test.go behind the build tag `soak`, so
// `go test ./...` (and with it `make test`) does not even compile it: it
// runs for SOAK_DURATION (10 minutes by default) and loads the 2-core test
// machine enough to disturb the timing checks of test/e2e if both ran
// together, and a shortened version would not be cheap either (the lab
// alone takes seconds to build). Being left out of the build, it can
// neither run nor pass silently there; `make soak` runs it
// (`SOAK_DURATION=1m make soak` for a short run), and `make lint` vets it
// with the tag. The accounting in this file's package (account.go) is
// plain logic and has unit tests that `make test` runs.
package soak
