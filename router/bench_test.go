package router

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// BenchmarkForwardDurable measures small bundles forwarded durably through
// one relay. The benchmark plays both neighbours over in-memory links: it
// sends bundles to the relay as fast as custody acks allow and acknowledges
// what the relay forwards, so only the relay's work is measured: decode,
// custody on disk (fsync, group-committed), ack, forward, release on ack.
// DESIGN.md budget: 20,000 bundles/s.
func BenchmarkForwardDurable(b *testing.B) {
	relay := benchNode(b, 'B')
	src, dst := bundle.Addr{'A'}, bundle.Addr{'C'}
	up, upRelay := transports.NewMemPair(transports.MemOptions{AddrA: src, AddrB: relay.addr})
	down, downRelay := transports.NewMemPair(transports.MemOptions{AddrA: dst, AddrB: relay.addr})
	relay.r.AddLink(upRelay)
	relay.r.AddLink(downRelay)
	ctx := context.Background()

	frames := make([][]byte, b.N)
	for i := range frames {
		id, _ := bundle.NewID(rand.Reader)
		bb := &bundle.Bundle{Version: bundle.Version, Kind: bundle.KindData, Dest: dst, ID: id,
			Lifetime: 3_600_000, HopLimit: 8, Payload: make([]byte, 100)}
		frames[i], _ = bb.Marshal()
	}
	// The sink: acknowledge every data bundle the relay forwards.
	got := make(chan int, 1)
	go func() {
		n := 0
		for n < b.N {
			f, err := down.Recv(ctx)
			if err != nil {
				return
			}
			x, err := bundle.Unmarshal(f)
			if err != nil || x.Kind != bundle.KindData {
				continue
			}
			n++
			p, _ := bundle.MarshalCustodyAck([]bundle.ID{x.ID})
			ack := bundle.Bundle{Version: bundle.Version, Kind: bundle.KindCustodyAck, Dest: relay.addr, ID: bundle.ID{1, byte(n), byte(n >> 8), byte(n >> 16)}, Lifetime: 60000, Payload: p}
			raw, _ := ack.Marshal()
			down.Send(ctx, raw)
		}
		got <- n
	}()
	// Drain the relay's custody acks to the source.
	go func() {
		for {
			if _, err := up.Recv(ctx); err != nil {
				return
			}
		}
	}()
	b.ResetTimer()
	start := time.Now()
	for _, f := range frames {
		if err := up.Send(ctx, f); err != nil {
			b.Fatal(err)
		}
	}
	<-got
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "bundles/s")
	b.ReportMetric(0, "ns/op")
	if rl := relay.r.Metrics().Total.RateLimited; rl != 0 {
		b.Fatalf("the default ingress limit held back %d bundles of a heavy but legitimate sender", rl)
	}
}

func benchNode(b *testing.B, name byte) *testNode {
	t := &testing.T{}
	n := &testNode{addr: bundle.Addr{name}, path: b.TempDir() + "/tern.db", arrive: make(chan *bundle.Bundle, 16)}
	n.start(t)
	b.Cleanup(n.stop)
	return n
}
