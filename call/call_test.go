package call

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/router"
)

// nextEvent waits for the next call event.
func nextEvent(t *testing.T, ch <-chan Event) Record {
	t.Helper()
	select {
	case e := <-ch:
		return e.Call
	case <-time.After(5 * time.Second):
		t.Fatal("no call event")
	}
	return Record{}
}

func noEvent(t *testing.T, ch <-chan Event) {
	t.Helper()
	select {
	case e := <-ch:
		t.Fatalf("unexpected call event %+v", e.Call)
	default:
	}
}

// TestCallRingsIsAnsweredCarriesAudioAndHangsUp: the whole life of a call
// between two apps: ringing on both sides, answered, audio both ways with
// the right timestamps, hang-up ends it on both sides with history.
func TestCallRingsIsAnsweredCarriesAudioAndHangsUp(t *testing.T) {
	n := newNet(t)
	alice, bob := n.party("alice"), n.party("bob")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bobEv := bob.app.Subscribe(ctx)

	rec, err := alice.app.Start("bob")
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != StateRinging || rec.Incoming || rec.PeerName != "bob" {
		t.Fatalf("alice's new call: %+v", rec)
	}
	id := mustID(t, rec)
	aStream, err := alice.app.Attach(id)
	if err != nil {
		t.Fatal(err)
	}
	// While it rings, the caller's audio goes nowhere.
	if err := aStream.Send(0, []byte("early")); err != nil {
		t.Fatal(err)
	}
	if len(alice.payloads) != 0 {
		t.Fatalf("a ringing call sent %d frames", len(alice.payloads))
	}
	n.deliver(30 * time.Millisecond)
	ring := nextEvent(t, bobEv)
	if ring.State != StateRinging || !ring.Incoming || ring.ID != rec.ID || ring.Peer != alice.addr.String() {
		t.Fatalf("bob's ringing call: %+v", ring)
	}
	if _, err := bob.app.Start("alice"); !errors.Is(err, ErrInCall) {
		t.Errorf("a second call while one rings: %v, want ErrInCall", err)
	}
	if _, err := bob.app.Accept(id); err != nil {
		t.Fatal(err)
	}
	bStream, err := bob.app.Attach(id)
	if err != nil {
		t.Fatal(err)
	}
	n.deliver(30 * time.Millisecond)
	if r, _ := alice.app.Current(); r.State != StateActive || r.Answered == 0 {
		t.Fatalf("alice's call after the answer: %+v", r)
	}

	for i := uint32(0); i < 50; i++ {
		if err := aStream.Send(960*i, []byte(fmt.Sprintf("alice %d", i))); err != nil {
			t.Fatal(err)
		}
		if err := bStream.Send(960*i, []byte(fmt.Sprintf("bob %d", i))); err != nil {
			t.Fatal(err)
		}
		n.clock.Add(20 * time.Millisecond)
	}
	atB, atA := drainFrames(bStream), drainFrames(aStream)
	if len(atB) != 50 || len(atA) != 50 {
		t.Fatalf("bob got %d frames, alice %d; want 50 each", len(atB), len(atA))
	}
	for i, f := range atB {
		if f.Seq != uint32(i) || f.Timestamp != 960*uint32(i) || string(f.Data) != fmt.Sprintf("alice %d", i) {
			t.Fatalf("bob's frame %d: seq %d ts %d %q", i, f.Seq, f.Timestamp, f.Data)
		}
	}
	for _, p := range alice.payloads {
		if strings.Contains(string(p), "alice") {
			t.Fatalf("a frame on the wire shows its audio in the clear: %q", p)
		}
	}
	st := bStream.Stats()
	if st.FramesReceived != 50 || st.FramesLost != 0 || st.LossPercent != 0 || st.FramesSent != 50 {
		t.Errorf("bob's stats %+v", st)
	}

	if _, err := alice.app.Hangup(id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-aStream.Done():
	default:
		t.Error("alice's media stream is still open after her hang-up")
	}
	if err := aStream.Send(0, []byte("late")); !errors.Is(err, ErrEnded) {
		t.Errorf("sending after the hang-up: %v, want ErrEnded", err)
	}
	n.deliver(30 * time.Millisecond)
	a, b := alice.only(t), bob.only(t)
	if a.State != StateEnded || b.State != StateEnded || !strings.Contains(b.Reason, "alice hung up") || a.Ended == 0 {
		t.Errorf("after the hang-up: alice %+v, bob %+v", a, b)
	}
	if _, ok := bob.app.Current(); ok {
		t.Error("bob still has a call in progress")
	}
}

// TestInviteAfterALongOutageIsAMissedCall: an invite that waited in stores
// for longer than MissedAfter never rings; it is in the history as missed,
// and the caller's hang-up, arriving with it, changes nothing.
func TestInviteAfterALongOutageIsAMissedCall(t *testing.T) {
	n := newNet(t)
	alice, bob := n.party("alice"), n.party("bob")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bobEv := bob.app.Subscribe(ctx)
	rec, err := alice.app.Start("bob")
	if err != nil {
		t.Fatal(err)
	}
	outage := n.held() // the invite waits in a store
	n.clock.Add(RingTimeout + time.Second)
	alice.app.Sweep()
	if a := alice.only(t); a.State != StateEnded || a.Reason != "no answer" {
		t.Fatalf("alice after ringing out: %+v", a)
	}
	outage = append(outage, n.held()...) // her hang-up waits too
	n.clock.Add(10 * time.Minute)
	n.resend(outage)
	n.deliver(10*time.Minute + RingTimeout)
	got := nextEvent(t, bobEv)
	if got.State != StateMissed || got.ID != rec.ID || !got.Incoming {
		t.Fatalf("bob's event for the late invite: %+v, want a missed call", got)
	}
	noEvent(t, bobEv)
	b := bob.only(t)
	if b.State != StateMissed || !strings.Contains(b.Reason, "after it was placed") {
		t.Errorf("bob's history: %+v", b)
	}
	// Started is when alice placed it, not when it arrived.
	if d := time.Duration(rec.Started-b.Started) * time.Millisecond; d < -time.Second || d > time.Second {
		t.Errorf("bob's record says the call was placed %v away from when alice placed it", d)
	}
	if _, ok := bob.app.Current(); ok {
		t.Error("a late invite rings")
	}
}

// TestUnansweredCallRingsOutAndIsMissed: nobody answers within RingTimeout:
// the caller hangs up by itself, the callee's ringing becomes missed.
func TestUnansweredCallRingsOutAndIsMissed(t *testing.T) {
	n := newNet(t)
	alice, bob := n.party("alice"), n.party("bob")
	if _, err := alice.app.Start("bob"); err != nil {
		t.Fatal(err)
	}
	n.deliver(0)
	n.clock.Add(RingTimeout - time.Second)
	alice.app.Sweep()
	bob.app.Sweep()
	if r, ok := bob.app.Current(); !ok || r.State != StateRinging {
		t.Fatalf("bob stops ringing before the timeout: %+v", r)
	}
	n.clock.Add(2 * time.Second)
	alice.app.Sweep()
	n.deliver(0)
	if a, b := alice.only(t), bob.only(t); a.State != StateEnded || a.Reason != "no answer" || b.State != StateMissed {
		t.Errorf("after ringing out: alice %+v, bob %+v", a, b)
	}
	// Had the hang-up been lost, bob's own timer ends the ringing too.
	if _, err := alice.app.Start("bob"); err != nil {
		t.Fatal(err)
	}
	n.deliver(0)
	n.clock.Add(RingTimeout + time.Second)
	bob.app.Sweep()
	if r, ok := bob.app.Current(); ok {
		t.Errorf("bob still rings after the timeout: %+v", r)
	}
}

// TestCallOverRadioOnlyIsRefusedWithTheReason: when the only path is a
// radio link the call never rings; the caller is told why, and the callee
// learns of a missed call by bundle.
func TestCallOverRadioOnlyIsRefusedWithTheReason(t *testing.T) {
	n := newNet(t)
	alice, bob := n.party("alice"), n.party("bob")
	n.path[bob.addr] = fmt.Errorf("%w; the only path to %x is a radio link", router.ErrVoiceRadioOnly, bob.addr[:])
	rec, err := alice.app.Start("bob")
	if !errors.Is(err, ErrVoiceUnavailable) {
		t.Fatalf("calling over a radio-only path: %v, want ErrVoiceUnavailable", err)
	}
	want := "Voice needs an internet or LAN path: the only path to bob now is a radio link, which cannot carry live audio. bob will see a missed call."
	if !strings.Contains(err.Error(), want) || rec.Reason != want || rec.State != StateEnded {
		t.Errorf("error %q, record %+v; want the reason %q", err, rec, want)
	}
	if _, ok := alice.app.Current(); ok {
		t.Error("a refused call is in progress")
	}
	n.deliver(0)
	if b := bob.only(t); b.State != StateMissed || !strings.Contains(b.Reason, "no internet or LAN path") {
		t.Errorf("bob's record: %+v", b)
	}
	// With no path at all, the reason says so.
	n.path[bob.addr] = fmt.Errorf("voice to bob: %w", router.ErrNoVoicePath)
	if _, err := alice.app.Start("bob"); err == nil || !strings.Contains(err.Error(), "cannot be reached over the internet or a LAN") {
		t.Errorf("calling with no path: %v", err)
	}
	// A path that turns radio-only while the call rings: the answer is
	// refused with the reason and the call keeps ringing.
	delete(n.path, bob.addr)
	rec, err = alice.app.Start("bob")
	if err != nil {
		t.Fatal(err)
	}
	n.deliver(0)
	n.path[alice.addr] = fmt.Errorf("%w; radio only", router.ErrVoiceRadioOnly)
	if _, err := bob.app.Accept(mustID(t, rec)); !errors.Is(err, ErrVoiceUnavailable) || !strings.Contains(err.Error(), "radio link") {
		t.Errorf("answering over a radio-only path: %v", err)
	}
	if r, _ := bob.app.Current(); r.State != StateRinging {
		t.Errorf("bob's call after a refused answer: %+v", r)
	}
}

func TestDeclineBusyAndCrossedCalls(t *testing.T) {
	n := newNet(t)
	alice, bob, carol := n.party("alice"), n.party("bob"), n.party("carol")
	rec, err := alice.app.Start("bob")
	if err != nil {
		t.Fatal(err)
	}
	n.deliver(0)
	if _, err := bob.app.Decline(mustID(t, rec)); err != nil {
		t.Fatal(err)
	}
	n.deliver(0)
	if r, _ := alice.app.Get(mustID(t, rec)); r.State != StateEnded || r.Reason != "declined" {
		t.Errorf("alice after bob declined: %+v", r)
	}

	// Bob is in a call with carol: alice gets busy, bob sees a missed call.
	rc, err := carol.app.Start("bob")
	if err != nil {
		t.Fatal(err)
	}
	n.deliver(0)
	if _, err := bob.app.Accept(mustID(t, rc)); err != nil {
		t.Fatal(err)
	}
	n.deliver(0)
	ra, err := alice.app.Start("bob")
	if err != nil {
		t.Fatal(err)
	}
	n.deliver(0)
	if r, _ := alice.app.Get(mustID(t, ra)); r.State != StateEnded || !strings.Contains(r.Reason, "in another call") {
		t.Errorf("alice calling a busy bob: %+v", r)
	}
	if r, _ := bob.app.Get(mustID(t, ra)); r.State != StateMissed || r.Reason != "you were in another call" {
		t.Errorf("bob's record of alice's call while busy: %+v", r)
	}
	if r, _ := bob.app.Current(); r.ID != rc.ID || r.State != StateActive {
		t.Errorf("bob's call with carol was disturbed: %+v", r)
	}
	bob.app.Hangup(mustID(t, rc))
	n.deliver(0)

	// Alice and bob call each other at once: one call survives on both.
	x, err := alice.app.Start("bob")
	if err != nil {
		t.Fatal(err)
	}
	y, err := bob.app.Start("alice")
	if err != nil {
		t.Fatal(err)
	}
	n.deliver(0)
	ca, okA := alice.app.Current()
	cb, okB := bob.app.Current()
	keep := min(x.ID, y.ID)
	if !okA || !okB || ca.ID != keep || cb.ID != keep || ca.Incoming == cb.Incoming {
		t.Fatalf("crossed calls: alice %+v, bob %+v; want both on %s", ca, cb, keep)
	}
	if _, err := (map[bool]*App{true: alice.app, false: bob.app})[ca.Incoming].Accept(mustID(t, ca)); err != nil {
		t.Fatalf("answering the surviving call: %v", err)
	}
}

// TestAudioStopsTheCallEnds: an active call with no audio for MediaTimeout
// ends with the reason on both sides.
func TestAudioStopsTheCallEnds(t *testing.T) {
	n := newNet(t)
	alice, bob := n.party("alice"), n.party("bob")
	rec, _ := alice.app.Start("bob")
	n.deliver(0)
	bob.app.Accept(mustID(t, rec))
	n.deliver(0)
	n.clock.Add(MediaTimeout + time.Second)
	alice.app.Sweep()
	n.deliver(0)
	a, b := alice.only(t), bob.only(t)
	if a.State != StateEnded || !strings.Contains(a.Reason, "no audio from bob") || b.State != StateEnded || !strings.Contains(b.Reason, "connection lost") {
		t.Errorf("after silence: alice %+v, bob %+v", a, b)
	}
}

// TestRestartEndsInterruptedCalls: a call the daemon was in when it stopped
// is ended (or missed) in the history when it starts again.
func TestRestartEndsInterruptedCalls(t *testing.T) {
	n := newNet(t)
	alice, bob := n.party("alice"), n.party("bob")
	if _, err := alice.app.Start("bob"); err != nil {
		t.Fatal(err)
	}
	n.deliver(0)
	bob.start() // a second App on the same history: as after a crash
	if b := bob.only(t); b.State != StateMissed || !strings.Contains(b.Reason, "restarted") {
		t.Errorf("bob's ringing call after a restart: %+v", b)
	}
	// A copy of the invite delivered again after the restart does not ring.
	n.deliver(0)
	if _, ok := bob.app.Current(); ok {
		t.Error("a redelivered invite rings again")
	}
}

func TestMalformedOrClearSignalsAreRejected(t *testing.T) {
	n := newNet(t)
	bob := n.party("bob")
	alice := n.party("alice")
	for _, data := range [][]byte{{1}, {9, 1}, append([]byte{1, 99}, make([]byte, 16)...)} {
		err := bob.app.Receive(incoming(alice, data, false))
		var rej interface{ Reason() string }
		if !errors.As(err, &rej) || rej.Reason() != "malformed" {
			t.Errorf("signal %x: %v, want a malformed rejection", data, err)
		}
	}
	inv, _ := (&Signal{Kind: KindInvite, Call: ID{1}, Codec: Codec}).Marshal()
	if err := bob.app.Receive(incoming(alice, inv, true)); err == nil || !strings.Contains(err.Error(), "unencrypted") {
		t.Errorf("a clear invite: %v", err)
	}
	if _, ok := bob.app.Current(); ok {
		t.Error("a clear invite rings")
	}
}

func incoming(from *party, data []byte, clear bool) chat.Incoming {
	return chat.Incoming{From: from.addr, Message: &message.Message{Type: message.Call, Data: data}, Bundle: &bundle.Bundle{}, Clear: clear}
}
