package crypto

import (
	"errors"
	"fmt"
	"testing"
)

// sessionWith returns p's session with peer (the only one in these tests).
func sessionWith(t *testing.T, p *peer, with *peer) *session {
	t.Helper()
	p.box.mu.Lock()
	defer p.box.mu.Unlock()
	for _, s := range p.box.sessions {
		if s.peer == with.addr() {
			return s
		}
	}
	t.Fatalf("%s has no session with %s", p.addr().Short(), with.addr().Short())
	return nil
}

// renameSession rewrites the stored record of session old under id new, as
// if the key derivation had produced new.
func renameSession(t *testing.T, kv *memKV, old, new [sessionIDSize]byte) {
	t.Helper()
	v, err := kv.Get(sessionKey(old))
	if err != nil || v == nil {
		t.Fatalf("session %x not stored: %v", old, err)
	}
	s, err := unmarshalSession(v)
	if err != nil {
		t.Fatal(err)
	}
	s.id = new
	b, err := s.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(sessionKey(old)); err != nil {
		t.Fatal(err)
	}
	if err := kv.Put(sessionKey(new), b); err != nil {
		t.Fatal(err)
	}
}

// TestWireIDCollision forces two of Bob's sessions (with Alice and with
// Carol) to share the 4-byte wire id: every message must still open, from
// the right sender, whichever session Bob tries first.
func TestWireIDCollision(t *testing.T) {
	alice, bob, clk := pair(t)
	carol := newPeer(t, 0xC0, "carol", clk)
	for _, p := range []*peer{alice, carol} {
		mustOpen(t, bob, mustSeal(t, p, bob, "setup"), p, "setup")
		mustOpen(t, p, mustSeal(t, bob, p, "ok"), bob, "ok")
	}
	aliceID := sessionWith(t, bob, alice).id
	carolOld := sessionWith(t, bob, carol).id
	carolNew := carolOld
	copy(carolNew[:wireIDSize], aliceID[:wireIDSize])
	renameSession(t, bob.kv, carolOld, carolNew)
	renameSession(t, carol.kv, carolOld, carolNew)
	bob.restart(t)
	carol.restart(t)
	if n := len(bob.box.byWire[wireID(aliceID)]); n != 2 {
		t.Fatalf("%d sessions share the wire id, want 2", n)
	}

	var fromAlice, fromCarol [][]byte
	for i := range 6 {
		fromAlice = append(fromAlice, mustSeal(t, alice, bob, fmt.Sprint("a", i)))
		fromCarol = append(fromCarol, mustSeal(t, carol, bob, fmt.Sprint("c", i)))
	}
	if [wireIDSize]byte(fromAlice[0][offMsgSID:offMsgCtr]) != [wireIDSize]byte(fromCarol[0][offMsgSID:offMsgCtr]) {
		t.Fatal("the forced collision did not reach the wire")
	}
	// Interleaved and out of order: each sender's messages also sit at
	// counters the other session has not reached or has passed.
	for _, i := range []int{1, 0, 5, 2, 4, 3} {
		mustOpen(t, bob, fromCarol[i], carol, fmt.Sprint("c", i))
		mustOpen(t, bob, fromAlice[i], alice, fmt.Sprint("a", i))
	}
	for _, s := range [][]byte{fromAlice[2], fromCarol[4]} {
		if _, err := bob.box.Open(s); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay on colliding sessions: %v, want ErrReplay", err)
		}
	}
	forged := mustSeal(t, carol, bob, "forge me")
	forged[len(forged)-1] ^= 1
	if _, err := bob.box.Open(forged); !errors.Is(err, ErrForged) {
		t.Fatalf("forged message on colliding sessions: %v, want ErrForged", err)
	}
	// Replies still reach both, and after Bob forgets Carol, Alice's
	// session alone holds the wire id.
	mustOpen(t, alice, mustSeal(t, bob, alice, "to alice"), bob, "to alice")
	mustOpen(t, carol, mustSeal(t, bob, carol, "to carol"), bob, "to carol")
	if err := bob.box.Forget(carol.addr()); err != nil {
		t.Fatal(err)
	}
	if n := len(bob.box.byWire[wireID(aliceID)]); n != 1 {
		t.Fatalf("after Forget, %d sessions hold the wire id, want 1", n)
	}
	mustOpen(t, bob, mustSeal(t, alice, bob, "still here"), alice, "still here")
	if _, err := bob.box.Open(mustSeal(t, carol, bob, "forgotten")); !errors.Is(err, ErrForged) {
		t.Fatalf("message on a forgotten colliding session: %v, want ErrForged", err)
	}
}

// forgedAt returns a message-form payload on Alice's session with Bob that
// claims counter n, with a tag that cannot verify.
func forgedAt(s *session, n uint64) []byte {
	p := appendMsgHeader(nil, s.id, n)
	return append(p, make([]byte, 20+tagSize)...)
}

func TestCounterFarAheadRefusedCheaply(t *testing.T) {
	alice, bob, _ := pair(t)
	mustOpen(t, bob, mustSeal(t, alice, bob, "setup"), alice, "setup")
	mustOpen(t, alice, mustSeal(t, bob, alice, "ok"), bob, "ok")
	s := sessionWith(t, bob, alice)
	next := s.recv.next

	before := bob.box.openHMACs
	_, err := bob.box.Open(forgedAt(s, next+MaxCounterJump+1))
	if !errors.Is(err, ErrTooFarAhead) || !errors.Is(err, ErrForged) {
		t.Fatalf("counter %d ahead: %v, want ErrTooFarAhead and ErrForged", MaxCounterJump+1, err)
	}
	if got := bob.box.openHMACs - before; got != 0 {
		t.Fatalf("refusing a counter beyond the limit derived %d keys, want 0", got)
	}
	// At the limit a forgery costs the chain walk, nothing more.
	before = bob.box.openHMACs
	_, err = bob.box.Open(forgedAt(s, next+MaxCounterJump))
	if !errors.Is(err, ErrForged) || errors.Is(err, ErrTooFarAhead) {
		t.Fatalf("forged message at the limit: %v, want ErrForged only", err)
	}
	if got := bob.box.openHMACs - before; got > MaxCounterJump+2 {
		t.Fatalf("a forged message at the limit derived %d keys, want at most %d", got, MaxCounterJump+2)
	}
	if s.recv.next != next || len(s.skipped) != 0 {
		t.Fatal("a forged message changed the receive state")
	}
}

func TestCounterJumpWithinLimit(t *testing.T) {
	alice, bob, _ := pair(t)
	mustOpen(t, bob, mustSeal(t, alice, bob, "setup"), alice, "setup")
	mustOpen(t, alice, mustSeal(t, bob, alice, "ok"), bob, "ok")
	// Counters 1..MaxCounterJump+2: Bob expects 1.
	var sealed [][]byte
	for i := 1; i <= MaxCounterJump+2; i++ {
		sealed = append(sealed, mustSeal(t, alice, bob, fmt.Sprint(i)))
	}
	at := func(n int) []byte { return sealed[n-1] }
	// One past the limit is refused, but is not lost: it opens once the
	// window has moved.
	if _, err := bob.box.Open(at(MaxCounterJump + 2)); !errors.Is(err, ErrTooFarAhead) {
		t.Fatalf("message %d ahead: %v, want ErrTooFarAhead", MaxCounterJump+1, err)
	}
	mustOpen(t, bob, at(MaxCounterJump+1), alice, fmt.Sprint(MaxCounterJump+1)) // exactly at the limit
	mustOpen(t, bob, at(MaxCounterJump+2), alice, fmt.Sprint(MaxCounterJump+2))
	// Skipped messages within the receive window (the recvWindow-1 before
	// the newest) still open, late; older ones are gone.
	newest := MaxCounterJump + 2
	for _, n := range []int{newest - 2, newest - 9, newest - recvWindow + 1} {
		mustOpen(t, bob, at(n), alice, fmt.Sprint(n))
	}
	if _, err := bob.box.Open(at(newest - recvWindow)); !errors.Is(err, ErrTooOld) {
		t.Fatalf("message behind the window after a jump: %v, want ErrTooOld", err)
	}
	mustOpen(t, bob, mustSeal(t, alice, bob, "after"), alice, "after")
}
