package main

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/mdns"
	"github.com/ternmesh/tern/node"
	"github.com/ternmesh/tern/transports"
	"github.com/ternmesh/tern/transports/quiclink"
)

// startNode runs an in-process node with a QUIC listener on loopback, as
// runDaemon wires one.
func startNode(t *testing.T, log io.Writer) *node.Node {
	t.Helper()
	lg := slog.New(slog.NewTextHandler(log, nil))
	n, err := node.Open(node.Config{DataDir: t.TempDir(), Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	qt, err := quiclink.New(quiclink.Config{
		Key: n.Identity().SigningKey(), Proof: n.Card().Marshal(), Listen: "127.0.0.1:0", Logger: lg,
		Verify: func(pub ed25519.PublicKey, proof []byte) ([16]byte, error) {
			return crypto.VerifyLinkProof(pub, proof, time.Now())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(node.Links{Dialers: map[string]transports.Dialer{"quic": qt}, Listeners: []transports.Listener{qt}}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); qt.Close() })
	return n
}

func endpoint(t *testing.T, n *node.Node) netip.AddrPort {
	return netip.MustParseAddrPort(strings.TrimPrefix(n.ListenAddrs()[0], "quic://"))
}

func linked(n *node.Node, to crypto.Address) bool {
	for _, p := range n.Router().Peers() {
		if p.Neighbour == to.String() && p.State == "up" {
			return true
		}
	}
	return false
}

// TestDiscoveryLinksPinsAndForgets drives node.Discovery without mDNS (no
// root needed): a discovered peer becomes one pinned link however many
// endpoints it has, a spoofed announcement never links to the wrong
// identity, a departed peer's link closes after the grace period, and
// nothing is saved like `tern peer add` links.
func TestDiscoveryLinksPinsAndForgets(t *testing.T) {
	logA := &syncWriter{w: &strings.Builder{}}
	a, b := startNode(t, logA), startNode(t, io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := a.NewDiscovery(node.DiscoveryConfig{Grace: 200 * time.Millisecond, DialTimeout: time.Second, Tick: 20 * time.Millisecond})
	go d.Run(ctx)

	bAddr := b.Identity().Address()
	// B seen on its real endpoint and on a dead one: one neighbour.
	dead := netip.MustParseAddrPort("127.0.0.1:1")
	d.Seen(node.LANPeer{Addr: bAddr, Endpoints: []netip.AddrPort{endpoint(t, b), dead}})
	waitFor(t, "A links to the discovered B", func() bool { return linked(a, bAddr) })
	if urls := d.URLs(); len(urls) > 1 {
		t.Errorf("one peer, %d discovery links: %v", len(urls), urls)
	}

	// A spoof: a made-up identity at B's endpoint.
	ghost := crypto.Address{0x01, 0x23}
	d.Seen(node.LANPeer{Addr: ghost, Endpoints: []netip.AddrPort{endpoint(t, b)}})
	waitFor(t, "the spoof is refused and logged", func() bool {
		return strings.Contains(logA.String(), "failed the identity check") && !strings.Contains(strings.Join(d.URLs(), " "), ghost.String())
	})
	if linked(a, ghost) {
		t.Fatal("A linked to a spoofed identity")
	}
	if !linked(a, bAddr) {
		t.Error("the spoof cost A its link to B")
	}

	// B leaves: the link closes after the grace period.
	d.Gone(bAddr)
	waitFor(t, "B's discovery link closes", func() bool { return len(d.URLs()) == 0 && !linked(a, bAddr) })
	var saved int
	a.Store().Bucket("links").ForEach(func(k, v []byte) error { saved++; return nil })
	if saved != 0 {
		t.Errorf("%d discovered links were saved like `tern peer add` ones", saved)
	}
}

func TestLANModeFollowsListener(t *testing.T) {
	cases := []struct {
		want   mdns.Mode
		listen string
		mode   mdns.Mode
		port   int
	}{
		{mdns.On, "quic://0.0.0.0:7337", mdns.On, 7337},
		{mdns.On, "quic://[::]:7337", mdns.On, 7337},
		{mdns.On, "quic://127.0.0.1:7337", mdns.Off, 0},
		{mdns.On, "", mdns.Browse, 0},
		{mdns.Browse, "quic://0.0.0.0:7337", mdns.Browse, 7337},
		{mdns.Off, "quic://0.0.0.0:7337", mdns.Off, 0},
	}
	for _, c := range cases {
		if m, p, _ := lanMode(c.want, c.listen); m != c.mode || p != c.port {
			t.Errorf("lanMode(%v, %q) = %v, %d; want %v, %d", c.want, c.listen, m, p, c.mode, c.port)
		}
	}
}

func TestRunRejectsBadMDNSMode(t *testing.T) {
	err := cmdRun(context.Background(), []string{"--data", t.TempDir(), "--mdns", "loud"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--mdns") || !strings.Contains(err.Error(), "browse") {
		t.Errorf("--mdns loud: %v, want the choices explained", err)
	}
}

// syncWriter serialises writes to w and reads of it.
type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}
