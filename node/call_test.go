package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/call"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/transports"
	"github.com/ternmesh/tern/transports/quiclink"
)

// startQUICNode starts a node that listens for QUIC links on loopback, as
// the daemon does.
func startQUICNode(tb testing.TB, name string) *Node {
	tb.Helper()
	n, err := Open(Config{DataDir: tb.TempDir(), Name: name, Logger: quiet()})
	if err != nil {
		tb.Fatal(err)
	}
	qt, err := quiclink.New(quiclink.Config{
		Key: n.Identity().SigningKey(), Proof: n.Card().Marshal(), Listen: "127.0.0.1:0", Logger: quiet(),
		Verify: func(pub ed25519.PublicKey, proof []byte) ([16]byte, error) {
			return crypto.VerifyLinkProof(pub, proof, time.Now())
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := n.Start(Links{Dialers: map[string]transports.Dialer{"quic": qt}, Listeners: []transports.Listener{qt}}, nil); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Close(); qt.Close() })
	return n
}

func liveRoute(a, b *Node) func() bool {
	return func() bool {
		for _, r := range a.Router().Routes() {
			if r.Dest == [16]byte(b.Identity().Address()) && r.Live {
				return true
			}
		}
		return false
	}
}

// linkedPair is two QUIC nodes, each the other's contact, linked.
func linkedPair(tb testing.TB) (a, b *Node) {
	tb.Helper()
	a, b = startQUICNode(tb, "alice"), startQUICNode(tb, "bob")
	a.Chat().AddContact(b.Card(), "")
	b.Chat().AddContact(a.Card(), "")
	if err := a.AddPeer(b.ListenAddrs()[0]); err != nil {
		tb.Fatal(err)
	}
	wait := func(what string, cond func() bool) {
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				tb.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait("alice has a live route to bob", liveRoute(a, b))
	wait("bob has a live route to alice", liveRoute(b, a))
	return a, b
}

func waitCall(t *testing.T, ch <-chan call.Event, what string, ok func(call.Record) bool) call.Record {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-ch:
			if ok(e.Call) {
				return e.Call
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// recvFrames reads n frames from s (it may run in its own goroutine).
func recvFrames(t *testing.T, s *call.Stream, n int) []call.Frame {
	var out []call.Frame
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case f := <-s.Frames():
			out = append(out, f)
		case <-timeout:
			t.Errorf("got %d of %d frames", len(out), n)
			return out
		}
	}
	return out
}

// TestCallBetweenTwoNodesOverQUIC: invite and answer travel as sealed
// bundles, audio frames both ways as encrypted QUIC datagrams through the
// real routers, the round trip is measured, and a hang-up ends the call on
// both sides.
func TestCallBetweenTwoNodesOverQUIC(t *testing.T) {
	a, b := linkedPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aEv, bEv := a.Calls().Subscribe(ctx), b.Calls().Subscribe(ctx)

	rec, err := a.Calls().Start("bob")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := call.ParseID(rec.ID)
	ring := waitCall(t, bEv, "bob's phone to ring", func(r call.Record) bool { return r.State == call.StateRinging })
	if ring.ID != rec.ID || ring.PeerName != "alice" || !ring.Incoming {
		t.Fatalf("bob's ringing call: %+v", ring)
	}
	if _, err := b.Calls().Accept(id); err != nil {
		t.Fatal(err)
	}
	waitCall(t, aEv, "alice to see the answer", func(r call.Record) bool { return r.State == call.StateActive })
	as, err := a.Calls().Attach(id)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := b.Calls().Attach(id)
	if err != nil {
		t.Fatal(err)
	}
	const frames = 100
	gotA, gotB := make(chan []call.Frame, 1), make(chan []call.Frame, 1)
	go func() { gotB <- recvFrames(t, bs, frames) }()
	go func() { gotA <- recvFrames(t, as, frames) }()
	for i := range uint32(frames) {
		as.Send(960*i, []byte(fmt.Sprintf("from alice %03d", i)))
		bs.Send(960*i, []byte(fmt.Sprintf("from bob %03d", i)))
		time.Sleep(2 * time.Millisecond) // a little pacing, as 20 ms frames would have
	}
	atB, atA := <-gotB, <-gotA
	if len(atB) < frames || len(atA) < frames {
		t.FailNow()
	}
	for i := range frames {
		if string(atB[i].Data) != fmt.Sprintf("from alice %03d", i) || atB[i].Timestamp != 960*uint32(i) {
			t.Fatalf("bob's frame %d: %q ts %d", i, atB[i].Data, atB[i].Timestamp)
		}
		if string(atA[i].Data) != fmt.Sprintf("from bob %03d", i) {
			t.Fatalf("alice's frame %d: %q", i, atA[i].Data)
		}
	}
	st := as.Stats()
	if st.FramesReceived != frames || st.LossPercent != 0 || st.RTTMillis <= 0 || st.RTTMillis > 100 {
		t.Errorf("alice's stats over loopback QUIC: %+v", st)
	}
	if m := a.Router().VoiceMetrics(); m.Sent != frames {
		t.Errorf("alice's router sent %d voice datagrams, want %d", m.Sent, frames)
	}
	// Audio never touched a store.
	if held, _ := b.Store().All(100); len(held) != 0 {
		t.Errorf("bob's store holds %d bundles after the call", len(held))
	}

	if _, err := a.Calls().Hangup(id); err != nil {
		t.Fatal(err)
	}
	end := waitCall(t, bEv, "bob to see the hang-up", func(r call.Record) bool { return r.State == call.StateEnded })
	if !strings.Contains(end.Reason, "alice hung up") {
		t.Errorf("bob's ended call: %+v", end)
	}
	for _, n := range []*Node{a, b} {
		h, err := n.Calls().History("", 0)
		if err != nil || len(h) != 1 || h[0].State != call.StateEnded || h[0].Answered == 0 {
			t.Errorf("%s's call history: %+v %v", n.Card().Name, h, err)
		}
	}
	if hist, _ := a.Calls().History("bob", 0); len(hist) != 1 {
		t.Errorf("alice's history with bob: %+v", hist)
	}
}

// TestCallOverRadioOnlyIsRefusedWithTheReason: two nodes that hear each
// other only by radio: the call is refused at once with the reason, no
// voice datagram goes on the air, and the callee learns of the missed call
// from the notice bundle that crosses the radio.
func TestCallOverRadioOnlyIsRefusedWithTheReason(t *testing.T) {
	air := &ether{}
	a, _ := startRadioNode(t, air, "alice", false)
	b, _ := startRadioNode(t, air, "bob", false)
	a.Chat().AddContact(b.Card(), "")
	b.Chat().AddContact(a.Card(), "")
	waitUntil(t, "alice hears bob", liveRoute(a, b))
	rec, err := a.Calls().Start("bob")
	if !errors.Is(err, call.ErrVoiceUnavailable) {
		t.Fatalf("a call over radio only: %v, want ErrVoiceUnavailable", err)
	}
	want := "Voice needs an internet or LAN path: the only path to bob now is a radio link, which cannot carry live audio."
	if !strings.Contains(err.Error(), want) || rec.State != call.StateEnded || !strings.Contains(rec.Reason, want) {
		t.Errorf("error %q, record %+v; want the reason %q", err, rec, want)
	}
	if m := a.Router().VoiceMetrics(); m.Sent != 0 {
		t.Errorf("%d voice datagrams sent toward a radio", m.Sent)
	}
	waitUntil(t, "bob records the missed call", func() bool {
		h, _ := b.Calls().History("alice", 0)
		return len(h) == 1 && h[0].State == call.StateMissed && strings.Contains(h[0].Reason, "no internet or LAN path")
	})
}

// TestCallOverAmateurRadioIsRefused: a clear-only (amateur) link is a radio
// too: the call is refused with the same reason.
func TestCallOverAmateurRadioIsRefused(t *testing.T) {
	air := &ether{}
	a, _ := startRadioNode(t, air, "alice", true)
	b, _ := startRadioNode(t, air, "bob", true)
	a.Chat().AddContact(b.Card(), "")
	waitUntil(t, "alice hears bob", liveRoute(a, b))
	if _, err := a.Calls().Start("bob"); !errors.Is(err, call.ErrVoiceUnavailable) || !strings.Contains(err.Error(), "only path to bob now is a radio link") {
		t.Fatalf("a call over amateur radio: %v", err)
	}
}

// BenchmarkCallFrameOneWay is the one-way time of a voice frame through the
// whole daemon path, browser excluded: seal, the router, QUIC datagrams
// over loopback, the peer's router, open, and the media stream. It reports
// the median and the 99th percentile.
func BenchmarkCallFrameOneWay(b *testing.B) {
	na, nb := linkedPair(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aEv := na.Calls().Subscribe(ctx)
	bEv := nb.Calls().Subscribe(ctx)
	rec, err := na.Calls().Start("bob")
	if err != nil {
		b.Fatal(err)
	}
	id, _ := call.ParseID(rec.ID)
	for e := range bEv {
		if e.Call.State == call.StateRinging {
			break
		}
	}
	if _, err := nb.Calls().Accept(id); err != nil {
		b.Fatal(err)
	}
	for e := range aEv {
		if e.Call.State == call.StateActive {
			break
		}
	}
	as, _ := na.Calls().Attach(id)
	bs, _ := nb.Calls().Attach(id)
	opus := make([]byte, 80) // 20 ms at 32 kbit/s
	lat := make([]time.Duration, 0, b.N)
	lost := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		as.Send(uint32(960*i), opus)
		select {
		case <-bs.Frames():
			lat = append(lat, time.Since(t0))
		case <-time.After(100 * time.Millisecond):
			lost++
		}
	}
	b.StopTimer()
	if len(lat) == 0 {
		b.Fatal("no frame arrived")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lost), "lost")
}
