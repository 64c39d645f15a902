package router

import (
	"context"
	"strings"
	"testing"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// hamLink marks a link as amateur radio: encryption forbidden.
type hamLink struct{ transports.Link }

func (hamLink) ClearOnly() bool { return true }

// spyLink records every frame sent through it.
type spyLink struct {
	transports.Link
	sent chan []byte
}

func (s spyLink) Send(ctx context.Context, f []byte) error {
	s.sent <- append([]byte(nil), f...)
	return s.Link.Send(ctx, f)
}

func TestEncryptedBundlesNeverCrossAnAmateurLink(t *testing.T) {
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	la, lb := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: b.addr})
	spy := spyLink{Link: la, sent: make(chan []byte, 64)}
	a.r.AddLink(hamLink{spy})
	b.r.AddLink(hamLink{lb})
	eventually(t, "A sees B", hasRoute(a, b.addr))

	if p := a.r.PathProblem(b.addr, bundle.KindData); !strings.Contains(p, "amateur-radio") || !strings.Contains(p, "--over-air-clear") {
		t.Errorf("PathProblem = %q, want the amateur-radio reason and the way out", p)
	}
	secret := dataBundle(t, b.addr, "encrypted, must not go on air")
	if err := a.r.Submit(secret); err != nil {
		t.Fatal(err)
	}
	clear := dataBundle(t, b.addr, "signed plaintext")
	clear.Kind = bundle.KindClearSigned
	if err := a.r.Submit(clear); err != nil {
		t.Fatal(err)
	}
	waitArrival(t, b, "signed plaintext")
	// Everything A put on the amateur link: never the data bundle.
	for len(spy.sent) > 0 {
		f := <-spy.sent
		x, err := bundle.Unmarshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if x.Kind == bundle.KindData {
			t.Fatalf("an encrypted bundle went on the amateur link: %q", x.Payload)
		}
	}
	eventually(t, "A holds only the encrypted bundle, waiting", func() bool { return a.st.Stats().Bundles == 1 })

	// A normal link appears: the encrypted bundle leaves over it.
	connect(a, b)
	waitArrival(t, b, "encrypted, must not go on air")
	for len(spy.sent) > 0 {
		if x, _ := bundle.Unmarshal(<-spy.sent); x != nil && x.Kind == bundle.KindData {
			t.Fatal("the encrypted bundle went over the amateur link although another one was up")
		}
	}
}

// rttLink reports a fixed round-trip time.
type rttLink struct {
	spyLink
	rtt float64
}

func (l rttLink) Stats() transports.Stats { return transports.Stats{RTTMillis: l.rtt} }

// TestFasterLinkPreferredAndFallback: a neighbour reachable over two links
// (LAN and internet) gets traffic over the faster one; when it dies the
// other carries on and nothing is lost.
func TestFasterLinkPreferredAndFallback(t *testing.T) {
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	lanA, lanB := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: b.addr})
	wanA, wanB := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: b.addr})
	lan := rttLink{spyLink{lanA, make(chan []byte, 256)}, 0.4}
	wan := rttLink{spyLink{wanA, make(chan []byte, 256)}, 48}
	a.r.AddLink(lan)
	a.r.AddLink(wan) // newest, but slower
	b.r.AddLink(lanB)
	b.r.AddLink(wanB)
	eventually(t, "A sees B", hasRoute(a, b.addr))
	a.r.Submit(dataBundle(t, b.addr, "over the LAN"))
	waitArrival(t, b, "over the LAN")
	dataOn := func(s spyLink) int {
		n := 0
		for len(s.sent) > 0 {
			if x, _ := bundle.Unmarshal(<-s.sent); x != nil && x.Kind == bundle.KindData {
				n++
			}
		}
		return n
	}
	if l, w := dataOn(lan.spyLink), dataOn(wan.spyLink); l != 1 || w != 0 {
		t.Fatalf("data frames: LAN %d, internet %d; want the LAN", l, w)
	}
	lanA.Close() // the LAN goes away
	a.r.Submit(dataBundle(t, b.addr, "over the internet"))
	waitArrival(t, b, "over the internet")
}
