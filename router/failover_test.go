package router

import (
	"fmt"
	"testing"
	"time"

	"github.com/ternmesh/tern/transports"
)

// TestChatSurvivesFastLinkOutage: two nodes joined by a fast link and a
// slow radio-like link (mem link at 2 kB/s, 150 ms; the real
// transports/radiolink was not used). The fast link dies mid-chat: the chat
// goes on over the slow link; the fast link returns: traffic moves back.
// The application sees every message once, in order.
func TestChatSurvivesFastLinkOutage(t *testing.T) {
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	slowA, slowB := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: b.addr, Authenticated: true,
		Bandwidth: 2000, Latency: 150 * time.Millisecond, MTU: 255 * 8})
	a.r.AddLink(slowA)
	b.r.AddLink(slowB)
	fastA, _ := connect(a, b) // the faster link: preferred
	eventually(t, "A sees B", hasRoute(a, b.addr))

	sent := 0
	say := func(phase string, n int) {
		for range n {
			sent++
			if err := a.r.Submit(dataBundle(t, b.addr, fmt.Sprintf("%s %03d", phase, sent))); err != nil {
				t.Fatal(err)
			}
			waitArrivalN(t, b, sent)
		}
	}
	say("fast", 5)
	slowBefore := slowA.(*transports.MemLink).Stats().FramesOut
	fastA.Close() // outage of the fast link
	eventually(t, "A notices the fast link is gone", func() bool {
		a.r.mu.Lock()
		n := a.r.nbrs[b.addr]
		a.r.mu.Unlock()
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.links) == 1
	})
	say("slow", 5)
	if got := slowA.(*transports.MemLink).Stats().FramesOut - slowBefore; got < 5 {
		t.Fatalf("during the outage only %d frames went over the slow link, want the 5 messages", got)
	}
	fast2A, _ := connect(a, b) // the fast link returns
	slowMid := slowA.(*transports.MemLink).Stats().FramesOut
	say("back", 5)
	if got := fast2A.(*transports.MemLink).Stats().FramesOut; got < 5 {
		t.Errorf("after the fast link returned only %d frames used it", got)
	}
	if extra := slowA.(*transports.MemLink).Stats().FramesOut - slowMid; extra >= 5 {
		t.Errorf("%d frames still went over the slow link after the fast one returned", extra)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, x := range b.got {
		if want := fmt.Sprintf("%03d", i+1); string(x.Payload[len(x.Payload)-3:]) != want {
			t.Fatalf("message %d delivered as %q: out of order or duplicated", i+1, x.Payload)
		}
	}
}

func waitArrivalN(t *testing.T, n *testNode, count int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d messages delivered", count), func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.got) >= count
	})
}
