package crypto

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRoundTripBothWays(t *testing.T) {
	alice, bob, _ := pair(t)
	s1 := mustSeal(t, alice, bob, "hello bob")
	if s1[0] != typeInit || len(s1) != initOverhead+len("hello bob") {
		t.Fatalf("first message: type %#x, %d bytes; want an init of %d", s1[0], len(s1), initOverhead+9)
	}
	if o := mustOpen(t, bob, s1, alice, "hello bob"); !o.NewSession {
		t.Fatal("first init did not report a new session")
	}
	// Bob answers on the same session without a card, in the short form.
	r1, err := bob.box.Seal(alice.addr(), nil, []byte("hi alice"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r1) != len("hi alice")+bob.box.Overhead() || r1[0] != typeMsg {
		t.Fatalf("reply is %d bytes of type %#x, want %d bytes of type 0x02", len(r1), r1[0], len("hi alice")+msgOverhead)
	}
	if o := mustOpen(t, alice, r1, bob, "hi alice"); o.NewSession {
		t.Fatal("a reply reported a new session")
	}
	// Alice has heard back: her messages drop the init header.
	for i := range 5 {
		msg := fmt.Sprintf("message %d", i)
		s := mustSeal(t, alice, bob, msg)
		if len(s) != len(msg)+23 {
			t.Fatalf("confirmed message is %d bytes, want %d (23 bytes of overhead)", len(s), len(msg)+23)
		}
		mustOpen(t, bob, s, alice, msg)
		r := mustSeal(t, bob, alice, "ack "+msg)
		mustOpen(t, alice, r, bob, "ack "+msg)
	}
	// Empty plaintext is fine.
	mustOpen(t, bob, mustSeal(t, alice, bob, ""), alice, "")
}

func TestSealOutsideSessionNeedsCard(t *testing.T) {
	alice, bob, _ := pair(t)
	_, err := alice.box.Seal(bob.addr(), nil, []byte("x"))
	if !errors.Is(err, ErrNoSession) || !strings.Contains(err.Error(), "card") {
		t.Fatalf("seal without session or card: %v, want ErrNoSession asking for a card", err)
	}
	if _, err := alice.box.Seal(bob.addr(), alice.card, []byte("x")); err == nil {
		t.Fatal("sealed to bob with alice's card")
	}
	if _, err := alice.box.Seal(alice.addr(), alice.card, []byte("x")); err == nil {
		t.Fatal("sealed to self")
	}
}

func TestOutOfOrderWithinWindow(t *testing.T) {
	alice, bob, _ := pair(t)
	mustOpen(t, bob, mustSeal(t, alice, bob, "setup"), alice, "setup")
	mustOpen(t, alice, mustSeal(t, bob, alice, "ok"), bob, "ok")
	var sealed [][]byte
	for i := range 300 {
		sealed = append(sealed, mustSeal(t, alice, bob, fmt.Sprint(i)))
	}
	// Deliver in a scrambled order: last first, then evens, then odds backwards.
	order := []int{299}
	for i := 0; i < 299; i += 2 {
		order = append(order, i)
	}
	for i := 297; i > 0; i -= 2 {
		order = append(order, i)
	}
	for _, i := range order {
		mustOpen(t, bob, sealed[i], alice, fmt.Sprint(i))
	}
	for _, i := range []int{0, 150, 299} {
		if _, err := bob.box.Open(sealed[i]); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay of %d: %v, want ErrReplay", i, err)
		}
	}
}

func TestTooOldRejectedClearly(t *testing.T) {
	alice, bob, _ := pair(t)
	mustOpen(t, bob, mustSeal(t, alice, bob, "setup"), alice, "setup")
	mustOpen(t, alice, mustSeal(t, bob, alice, "ok"), bob, "ok")
	late := mustSeal(t, alice, bob, "late")
	var last []byte
	for range recvWindow + 1 {
		last = mustSeal(t, alice, bob, "x")
	}
	mustOpen(t, bob, last, alice, "x")
	_, err := bob.box.Open(late)
	if !errors.Is(err, ErrTooOld) || !errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), "resend") {
		t.Fatalf("message behind the window: %v, want ErrTooOld+ErrReplay asking for a resend", err)
	}
}

func TestCounterWrapsPast16Bits(t *testing.T) {
	alice, bob, _ := pair(t)
	mustOpen(t, bob, mustSeal(t, alice, bob, "setup"), alice, "setup")
	mustOpen(t, alice, mustSeal(t, bob, alice, "ok"), bob, "ok")
	// 70000 messages, Bob sees only some, in order with gaps (each within
	// MaxCounterJump): the truncated counter must be reconstructed across
	// wraps.
	for i := 1; i < 70000; i++ {
		s := mustSeal(t, alice, bob, "m")
		if i%MaxCounterJump == 0 || i > 69990 {
			mustOpen(t, bob, s, alice, "m")
		}
	}
}

func TestInitLostAndRepeated(t *testing.T) {
	alice, bob, _ := pair(t)
	lost := mustSeal(t, alice, bob, "m0")
	s1 := mustSeal(t, alice, bob, "m1")
	s2 := mustSeal(t, alice, bob, "m2")
	if s1[0] != typeInit || s2[0] != typeInit {
		t.Fatal("unconfirmed session did not repeat the init header")
	}
	if o := mustOpen(t, bob, s2, alice, "m2"); !o.NewSession {
		t.Fatal("m2 should set up the session")
	}
	// A repeated init for an existing session keeps its state.
	if o := mustOpen(t, bob, s1, alice, "m1"); o.NewSession {
		t.Fatal("repeated init reset the session")
	}
	if _, err := bob.box.Open(s2); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed init message: %v, want ErrReplay", err)
	}
	mustOpen(t, bob, lost, alice, "m0")
	// Bob's reply confirms; Alice then drops the header, and Bob still opens.
	mustOpen(t, alice, mustSeal(t, bob, alice, "r"), bob, "r")
	s3 := mustSeal(t, alice, bob, "m3")
	if s3[0] != typeMsg {
		t.Fatal("confirmed session still sends the init header")
	}
	mustOpen(t, bob, s3, alice, "m3")
}

func TestTamperedBytesRejected(t *testing.T) {
	alice, bob, _ := pair(t)
	init := mustSeal(t, alice, bob, "tamper me")
	for i := range init {
		bad := append([]byte(nil), init...)
		bad[i] ^= 0x40
		_, err := bob.box.Open(bad)
		if err == nil {
			t.Fatalf("init with byte %d flipped opened", i)
		}
		if i >= offCiphertxt && !errors.Is(err, ErrForged) {
			t.Fatalf("init with byte %d flipped: %v, want ErrForged", i, err)
		}
	}
	mustOpen(t, bob, init, alice, "tamper me")
	mustOpen(t, alice, mustSeal(t, bob, alice, "ok"), bob, "ok")
	msg := mustSeal(t, alice, bob, "tamper me too")
	for i := range msg {
		bad := append([]byte(nil), msg...)
		bad[i] ^= 0x01
		_, err := bob.box.Open(bad)
		switch {
		case err == nil:
			t.Fatalf("message with byte %d flipped opened", i)
		case i >= offMsgSID && i < offMsgCtr:
			if !errors.Is(err, ErrNoSession) {
				t.Fatalf("session id byte %d flipped: %v, want ErrNoSession", i, err)
			}
		case i >= offMsgCtr && i < msgHdrSize:
			// A changed counter points at another key: a used one (replay,
			// refused before any key is derived) or a wrong one (forged).
			if !errors.Is(err, ErrForged) && !errors.Is(err, ErrReplay) {
				t.Fatalf("counter byte %d flipped: %v, want ErrForged or ErrReplay", i, err)
			}
		case i > 0 && !errors.Is(err, ErrForged):
			t.Fatalf("message byte %d flipped: %v, want ErrForged", i, err)
		}
	}
	// The genuine message still opens after all that.
	mustOpen(t, bob, msg, alice, "tamper me too")
	if _, err := bob.box.Open(msg[:10]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: %v, want ErrMalformed", err)
	}
	if _, err := bob.box.Open(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty: %v, want ErrMalformed", err)
	}
}

func TestWrongRecipient(t *testing.T) {
	alice, bob, clk := pair(t)
	carol := newPeer(t, 0xC0, "carol", clk)
	init := mustSeal(t, alice, bob, "for bob only")
	if _, err := carol.box.Open(init); !errors.Is(err, ErrForged) {
		t.Fatalf("carol opening bob's init: %v, want ErrForged", err)
	}
	mustOpen(t, bob, init, alice, "for bob only")
	mustOpen(t, alice, mustSeal(t, bob, alice, "ok"), bob, "ok")
	if _, err := carol.box.Open(mustSeal(t, alice, bob, "still bob")); !errors.Is(err, ErrNoSession) {
		t.Fatalf("carol opening a session message: %v, want ErrNoSession", err)
	}
}

func TestSealedSenderHidesAddress(t *testing.T) {
	alice, bob, _ := pair(t)
	a := alice.addr()
	for _, s := range [][]byte{mustSeal(t, alice, bob, "x"), mustSeal(t, alice, bob, "y")} {
		if strings.Contains(string(s), string(a[:])) || strings.Contains(string(s), string(alice.id.PublicKey())) {
			t.Fatal("sealed payload shows the sender's address or key")
		}
	}
}

func TestStalePrekeyAndExpiredCard(t *testing.T) {
	alice, bob, clk := pair(t)
	init := mustSeal(t, alice, bob, "old")
	clk.add(3 * EpochLength)
	if _, err := bob.box.Open(init); !errors.Is(err, ErrStalePrekey) {
		t.Fatalf("init to a 3-week-old prekey: %v, want ErrStalePrekey", err)
	}
	carol := newPeer(t, 0xC0, "carol", &clock{t: testNow})
	clk.add(30 * 24 * time.Hour)
	_, err := alice.box.Seal(carol.addr(), carol.card, []byte("x"))
	if !errors.Is(err, ErrCardExpired) {
		t.Fatalf("seal with an expired card: %v, want ErrCardExpired", err)
	}
}

func TestSimultaneousInitsAndRekey(t *testing.T) {
	alice, bob, _ := pair(t)
	a1 := mustSeal(t, alice, bob, "a1")
	b1 := mustSeal(t, bob, alice, "b1")
	mustOpen(t, bob, a1, alice, "a1")
	mustOpen(t, alice, b1, bob, "b1")
	for i := range 3 {
		mustOpen(t, bob, mustSeal(t, alice, bob, fmt.Sprint("a", i)), alice, fmt.Sprint("a", i))
		mustOpen(t, alice, mustSeal(t, bob, alice, fmt.Sprint("b", i)), bob, fmt.Sprint("b", i))
	}
	// Alice restarts the session; both end up on the new one.
	old := mustSeal(t, alice, bob, "before rekey")
	if err := alice.box.Rekey(bob.addr(), bob.card); err != nil {
		t.Fatal(err)
	}
	n := mustSeal(t, alice, bob, "after rekey")
	if n[0] != typeInit {
		t.Fatal("rekeyed session does not start with an init")
	}
	if o := mustOpen(t, bob, n, alice, "after rekey"); !o.NewSession {
		t.Fatal("rekey init did not start a session")
	}
	mustOpen(t, bob, old, alice, "before rekey") // late message on the old session
	r := mustSeal(t, bob, alice, "reply")
	mustOpen(t, alice, r, bob, "reply")
	if s := mustSeal(t, alice, bob, "short"); s[0] != typeMsg {
		t.Fatal("the new session was not confirmed by the reply")
	}
}

func TestDroppedSessionInitReplayRefused(t *testing.T) {
	alice, bob, _ := pair(t)
	first := mustSeal(t, alice, bob, "first")
	mustOpen(t, bob, first, alice, "first")
	for i := range maxSessionsPerPeer {
		if err := alice.box.Rekey(bob.addr(), bob.card); err != nil {
			t.Fatal(err)
		}
		mustOpen(t, bob, mustSeal(t, alice, bob, fmt.Sprint(i)), alice, fmt.Sprint(i))
	}
	if _, err := bob.box.Open(first); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed init of a dropped session: %v, want ErrReplay", err)
	}
	bob.restart(t)
	if _, err := bob.box.Open(first); !errors.Is(err, ErrReplay) {
		t.Fatalf("after restart, replayed init of a dropped session: %v, want ErrReplay", err)
	}
	if err := bob.box.Forget(alice.addr()); err != nil {
		t.Fatal(err)
	}
	if bob.box.HasSession(alice.addr()) {
		t.Fatal("Forget left a session")
	}
}

func TestConcurrentUse(t *testing.T) {
	alice, bob, _ := pair(t)
	mustOpen(t, bob, mustSeal(t, alice, bob, "setup"), alice, "setup")
	mustOpen(t, alice, mustSeal(t, bob, alice, "ok"), bob, "ok")
	const workers, each = 4, 50
	out := make(chan []byte, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				s, err := alice.box.Seal(bob.addr(), nil, fmt.Appendf(nil, "%d/%d", w, i))
				if err != nil {
					t.Error(err)
					return
				}
				out <- s
			}
		})
	}
	wg.Wait()
	close(out)
	seen := map[string]bool{}
	var owg sync.WaitGroup
	var mu sync.Mutex
	for s := range out {
		owg.Go(func() {
			o, err := bob.box.Open(s)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			seen[string(o.Plaintext)] = true
			mu.Unlock()
		})
	}
	owg.Wait()
	if len(seen) != workers*each {
		t.Fatalf("opened %d distinct messages, want %d", len(seen), workers*each)
	}
}

func TestReconstructCounter(t *testing.T) {
	for _, c := range []struct{ expected, full uint64 }{
		{0, 0}, {0, 5}, {10, 3}, {65530, 65541}, {65541, 65530}, {1 << 20, 1<<20 + 32767}, {1 << 20, 1<<20 - 32767}, {100, 100 + 32767},
	} {
		if got := reconstructCounter(c.expected, uint16(c.full)); got != c.full {
			t.Errorf("reconstruct(%d, %d) = %d, want %d", c.expected, uint16(c.full), got, c.full)
		}
	}
}
