// Package api holds vipcast.proto, the management API of vipcastd, and the
// Go code protoc generates from it (committed; `make generate` rebuilds it).
package api

//go:generate sh -c "protoc --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --plugin=protoc-gen-go-grpc=$(go tool -n protoc-gen-go-grpc) --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative vipcast.proto"
