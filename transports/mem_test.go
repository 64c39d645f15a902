package transports_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/ternmesh/tern/transports"
	"github.com/ternmesh/tern/transports/linktest"
)

func TestMemConformance(t *testing.T) {
	linktest.Run(t, linktest.Harness{
		NewPair: func(t *testing.T) (a, b transports.Link) {
			return transports.NewMemPair(transports.MemOptions{MTU: 4096})
		},
		Reliable: true, Ordered: true, MTU: 4096,
	})
}

func TestMemConformanceWithLatency(t *testing.T) {
	linktest.Run(t, linktest.Harness{
		NewPair: func(t *testing.T) (a, b transports.Link) {
			return transports.NewMemPair(transports.MemOptions{Latency: time.Millisecond, Bandwidth: 50 << 20})
		},
		Reliable: true, Ordered: true, MTU: transports.DefaultMemMTU,
	})
}

func TestMemConformanceLossy(t *testing.T) {
	linktest.Run(t, linktest.Harness{
		NewPair: func(t *testing.T) (a, b transports.Link) {
			return transports.NewMemPair(transports.MemOptions{Loss: 0.2, Seed: 7, MTU: 255})
		},
		Reliable: false, Ordered: true, MTU: 255, Timeout: 2 * time.Second,
	})
}

func TestMemLossIsSeeded(t *testing.T) {
	run := func() []int {
		a, b := transports.NewMemPair(transports.MemOptions{Loss: 0.5, Seed: 42})
		defer a.Close()
		for i := 0; i < 100; i++ {
			if err := a.Send(context.Background(), []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		a.Close() // peer close: b drains what was delivered, then ErrClosed
		var got []int
		for {
			f, err := b.Recv(context.Background())
			if err != nil {
				if !errors.Is(err, transports.ErrClosed) {
					t.Fatal(err)
				}
				return got
			}
			got = append(got, int(f[0]))
		}
	}
	x, y := run(), run()
	if len(x) == 0 || len(x) == 100 {
		t.Fatalf("50%% loss delivered %d of 100 frames", len(x))
	}
	if len(x) != len(y) {
		t.Fatalf("same seed, different losses: %d vs %d frames", len(x), len(y))
	}
	for i := range x {
		if x[i] != y[i] {
			t.Fatalf("same seed, different losses at %d", i)
		}
	}
}

func TestMemSetDown(t *testing.T) {
	a, b := transports.NewMemPair(transports.MemOptions{})
	defer a.Close()
	ctx := context.Background()
	a.(*transports.MemLink).SetDown(true)
	if err := a.Send(ctx, []byte("lost")); err != nil {
		t.Fatalf("Send during an outage = %v, want nil (the medium loses it)", err)
	}
	a.(*transports.MemLink).SetDown(false)
	if err := a.Send(ctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
	f, err := b.Recv(ctx)
	if err != nil || string(f) != "after" {
		t.Fatalf("after the outage got %q, %v; want \"after\" (the frame sent while down is lost)", f, err)
	}
}

func TestMemNetworkDialAccept(t *testing.T) {
	addrA, addrB := [16]byte{0xa}, [16]byte{0xb}
	netA := transports.NewMemNetwork(transports.MemNetworkConfig{Self: addrA})
	netB := netA.WithSelf(addrB)
	ln, err := netB.Listen("nodeB", addrB)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := netA.Listen("nodeB", addrB); err == nil {
		t.Fatal("second Listen under the same name succeeded")
	}
	var d transports.Dialer = netA
	if s := d.Schemes(); len(s) != 1 || s[0] != "mem" {
		t.Fatalf("Schemes() = %v", s)
	}
	ctx := context.Background()
	u, _ := url.Parse("mem://nodeB")
	la, err := d.Dial(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer la.Close()
	lb, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if la.Peer().Addr != addrB || lb.Peer().Addr != addrA {
		t.Fatalf("peers: dialer sees %x, listener sees %x", la.Peer().Addr, lb.Peer().Addr)
	}
	if la.Peer().Remote != "mem://nodeB" || ln.Addr() != "mem://nodeB" {
		t.Fatalf("Remote %q, Addr %q", la.Peer().Remote, ln.Addr())
	}
	if err := la.Send(ctx, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if f, err := lb.Recv(ctx); err != nil || string(f) != "hi" {
		t.Fatalf("Recv = %q, %v", f, err)
	}
	u2, _ := url.Parse("mem://nobody")
	if _, err := d.Dial(ctx, u2); err == nil {
		t.Fatal("dial to an unknown name succeeded")
	}
	ln.Close()
	if _, err := ln.Accept(ctx); !errors.Is(err, transports.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want ErrClosed", err)
	}
	if _, err := d.Dial(ctx, u); err == nil {
		t.Fatal("dial after the listener closed succeeded")
	}
}
