package main

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/files"
)

// BenchmarkFileOverQUIC: a 20 MB file from one daemon to another over one
// QUIC hop on loopback, timed from `POST /v1/files` to the receiver holding
// the checked file. Everything real: stores with fsync on both sides,
// sealed sessions, custody, the file application's window and acks.
func BenchmarkFileOverQUIC(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "bench.bin")
	data := make([]byte, 20<<20)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		x, y := startDaemonB(b, "sender"), startDaemonB(b, "receiver")
		x.do("POST", "/v1/contacts", api.AddContact{URI: y.card(), Name: "receiver"}, nil)
		x.addPeer(y)
		deadline := time.Now().Add(30 * time.Second)
		for !x.hasRoute(y) {
			if time.Now().After(deadline) {
				b.Fatal("the daemons did not link")
			}
			time.Sleep(10 * time.Millisecond)
		}
		start := time.Now()
		var t files.Transfer
		x.do("POST", "/v1/files", api.SendFile{To: "receiver", Path: src}, &t)
		for {
			var ts []files.Transfer
			y.do("GET", "/v1/files", nil, &ts)
			if len(ts) == 1 && ts[0].State == files.StateDone {
				break
			}
			if time.Since(start) > 5*time.Minute {
				b.Fatal("the file did not arrive within 5 minutes")
			}
			time.Sleep(5 * time.Millisecond)
		}
		el := time.Since(start)
		b.ReportMetric(float64(len(data))/1e6/el.Seconds(), "MB/s")
		b.ReportMetric(el.Seconds(), "s/20MB")
		x.stop()
		y.stop()
	}
	b.ReportMetric(0, "ns/op")
}
