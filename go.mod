module github.com/ternmesh/tern

go 1.26.0

require (
	github.com/cloudflare/circl v1.6.5 // indirect
	github.com/fxamacker/cbor/v2 v2.9.6 // indirect
	github.com/quic-go/quic-go v0.65.0 // indirect
	github.com/x448/float16 v0.8.4 // indirect
	go.etcd.io/bbolt v1.5.0 // indirect
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/net v0.56.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	rsc.io/qr v0.2.0 // indirect
)
