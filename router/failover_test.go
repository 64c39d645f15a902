package router

import (
	"fmt"
	"testing"
	"time"

	"github.com/ternmesh/tern/transports"
)

// twoLinks is two nodes joined by a fast link and a slow radio-like link
// (mem link at 2 kB/s, 150 ms; the real transports/radiolink is not used
// here: cmd/tern's browser test runs the same story over emulated RNodes).
type twoLinks struct {
	t          *testing.T
	a, b       *testNode
	slow, fast *transports.MemLink // A's ends
	sent       int
}

func newTwoLinks(t *testing.T) *twoLinks {
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	slowA, slowB := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: b.addr, Authenticated: true,
		Bandwidth: 2000, Latency: 150 * time.Millisecond, MTU: 255 * 8})
	a.r.AddLink(slowA)
	b.r.AddLink(slowB)
	fastA, _ := connect(a, b) // the faster link: preferred
	eventually(t, "A sees B", hasRoute(a, b.addr))
	return &twoLinks{t: t, a: a, b: b, slow: slowA.(*transports.MemLink), fast: fastA.(*transports.MemLink)}
}

// say sends n numbered messages from A to B, each once the last arrived.
func (x *twoLinks) say(phase string, n int) {
	x.t.Helper()
	for range n {
		x.sent++
		if err := x.a.r.Submit(dataBundle(x.t, x.b.addr, fmt.Sprintf("%s %03d", phase, x.sent))); err != nil {
			x.t.Fatal(err)
		}
		waitArrivalN(x.t, x.b, x.sent)
	}
}

// inOrder checks B's application saw every message once, in order.
func (x *twoLinks) inOrder() {
	x.t.Helper()
	x.b.mu.Lock()
	defer x.b.mu.Unlock()
	for i, m := range x.b.got {
		if want := fmt.Sprintf("%03d", i+1); string(m.Payload[len(m.Payload)-3:]) != want {
			x.t.Fatalf("message %d delivered as %q: out of order or duplicated", i+1, m.Payload)
		}
	}
}

// silent reports whether A has a link to B marked silent.
func (x *twoLinks) silent() bool {
	x.a.r.mu.Lock()
	n := x.a.r.nbrs[x.b.addr]
	x.a.r.mu.Unlock()
	return n.hasSilent()
}

// TestChatSurvivesFastLinkOutage: the fast link dies mid-chat: the chat
// goes on over the slow link; the fast link returns: traffic moves back.
// The application sees every message once, in order.
func TestChatSurvivesFastLinkOutage(t *testing.T) {
	x := newTwoLinks(t)
	x.say("fast", 5)
	slowBefore := x.slow.Stats().FramesOut
	x.fast.Close() // outage of the fast link
	eventually(t, "A notices the fast link is gone", func() bool {
		x.a.r.mu.Lock()
		n := x.a.r.nbrs[x.b.addr]
		x.a.r.mu.Unlock()
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.links) == 1
	})
	x.say("slow", 5)
	if got := x.slow.Stats().FramesOut - slowBefore; got < 5 {
		t.Fatalf("during the outage only %d frames went over the slow link, want the 5 messages", got)
	}
	fast2A, _ := connect(x.a, x.b) // the fast link returns
	slowMid := x.slow.Stats().FramesOut
	x.say("back", 5)
	if got := fast2A.(*transports.MemLink).Stats().FramesOut; got < 5 {
		t.Errorf("after the fast link returned only %d frames used it", got)
	}
	if extra := x.slow.Stats().FramesOut - slowMid; extra >= 5 {
		t.Errorf("%d frames still went over the slow link after the fast one returned", extra)
	}
	x.inOrder()
}

func waitArrivalN(t *testing.T, n *testNode, count int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d messages delivered", count), func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.got) >= count
	})
}

// TestChatSurvivesSilentFastLinkOutage: the fast link stops carrying
// anything without closing (the Wi-Fi or the internet gone: the link still
// looks up until its idle timeout). The first message whose custody ack is
// overdue goes again over the slow link, and so do the next ones, long
// before any idle timeout; when the fast link answers again (A's echo
// probe finds out), traffic moves back. Every message arrives once, in
// order.
func TestChatSurvivesSilentFastLinkOutage(t *testing.T) {
	x := newTwoLinks(t)
	x.say("fast", 3)
	x.fast.SetDown(true) // silent: Send succeeds, nothing arrives
	start := time.Now()
	slowBefore := x.slow.Stats().FramesOut
	x.say("slow", 3)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("three messages took %v after the fast link went silent", took)
	}
	if got := x.slow.Stats().FramesOut - slowBefore; got < 3 {
		t.Fatalf("only %d frames went over the slow link while the fast one was silent", got)
	}
	if !x.silent() {
		t.Fatal("the fast link lost bundles but is not marked silent")
	}
	x.fast.SetDown(false)
	eventually(t, "A's echo probe finds the fast link working", func() bool { return !x.silent() })
	fastBefore := x.fast.Stats().FramesOut
	x.say("back", 3)
	if got := x.fast.Stats().FramesOut - fastBefore; got < 3 {
		t.Errorf("after the fast link answered again only %d frames used it", got)
	}
	x.inOrder()
}
