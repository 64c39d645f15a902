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

// TestChatSurvivesSilentFastLinkOutage: the fast link stops carrying
// anything without closing (the Wi-Fi or the internet gone: the link still
// looks up until its idle timeout). The first message whose custody ack is
// overdue goes again over the slow link, and so do the next ones, long
// before any idle timeout; when the fast link answers again, traffic moves
// back. Every message arrives once, in order.
func TestChatSurvivesSilentFastLinkOutage(t *testing.T) {
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	slowA, slowB := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: b.addr, Authenticated: true,
		Bandwidth: 2000, Latency: 150 * time.Millisecond, MTU: 255 * 8})
	a.r.AddLink(slowA)
	b.r.AddLink(slowB)
	fastA, _ := connect(a, b)
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
	say("fast", 3)
	fast := fastA.(*transports.MemLink)
	fast.SetDown(true) // silent: Send succeeds, nothing arrives
	start := time.Now()
	slowBefore := slowA.(*transports.MemLink).Stats().FramesOut
	say("slow", 3)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("three messages took %v after the fast link went silent", took)
	}
	if got := slowA.(*transports.MemLink).Stats().FramesOut - slowBefore; got < 3 {
		t.Fatalf("only %d frames went over the slow link while the fast one was silent", got)
	}
	fast.SetDown(false)
	eventually(t, "A's echo probe finds the fast link working", func() bool {
		a.r.mu.Lock()
		n := a.r.nbrs[b.addr]
		a.r.mu.Unlock()
		return !n.hasSilent()
	})
	fastBefore := fast.Stats().FramesOut
	say("back", 3)
	if got := fast.Stats().FramesOut - fastBefore; got < 3 {
		t.Errorf("after the fast link answered again only %d frames used it", got)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, x := range b.got {
		if want := fmt.Sprintf("%03d", i+1); string(x.Payload[len(x.Payload)-3:]) != want {
			t.Fatalf("message %d delivered as %q: out of order or duplicated", i+1, x.Payload)
		}
	}
}

// TestSilentLinkProbedBack: once the silent fast link carries frames again,
// A's echo probes find out within a few retry intervals, with no traffic
// from B needed, and the next message takes the fast link.
func TestSilentLinkProbedBack(t *testing.T) {
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	slowA, slowB := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: b.addr, Authenticated: true,
		Bandwidth: 2000, Latency: 150 * time.Millisecond, MTU: 255 * 8})
	a.r.AddLink(slowA)
	b.r.AddLink(slowB)
	fastA, _ := connect(a, b)
	eventually(t, "A sees B", hasRoute(a, b.addr))
	fast := fastA.(*transports.MemLink)
	fast.SetDown(true)
	if err := a.r.Submit(dataBundle(t, b.addr, "during 001")); err != nil {
		t.Fatal(err)
	}
	waitArrivalN(t, b, 1)
	silent := func() bool {
		a.r.mu.Lock()
		n := a.r.nbrs[b.addr]
		a.r.mu.Unlock()
		return n.hasSilent()
	}
	if !silent() {
		t.Fatal("the fast link lost a bundle but is not marked silent")
	}
	fast.SetDown(false)
	eventually(t, "A's probe finds the fast link working again", func() bool { return !silent() })
	before := fast.Stats().FramesOut
	if err := a.r.Submit(dataBundle(t, b.addr, "after 002")); err != nil {
		t.Fatal(err)
	}
	waitArrivalN(t, b, 2)
	if fast.Stats().FramesOut == before {
		t.Error("the message after the probe did not take the fast link")
	}
}
