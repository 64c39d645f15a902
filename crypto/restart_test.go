package crypto

import (
	"errors"
	"fmt"
	"testing"
)

// TestCrashRestartNeverReusesNonce seals, "crashes" (drops the Box with no
// shutdown and loads a new one from the same KV), seals again, and checks no
// (key, nonce) pair repeats while the peer still opens everything.
func TestCrashRestartNeverReusesNonce(t *testing.T) {
	alice, bob, _ := pair(t)
	used := map[[44]byte]int{}
	trace := func(key [32]byte, nonce []byte) {
		var kn [44]byte
		copy(kn[:], key[:])
		copy(kn[32:], nonce)
		used[kn]++
	}
	alice.box.trace = trace
	var sealed [][]byte
	seal := func(n int) {
		for range n {
			sealed = append(sealed, mustSeal(t, alice, bob, fmt.Sprint(len(sealed))))
		}
	}
	seal(3) // unconfirmed: init form
	mustOpen(t, bob, sealed[0], alice, "0")
	mustOpen(t, alice, mustSeal(t, bob, alice, "ok"), bob, "ok")
	seal(10)
	for _, n := range []int{1, 70, 64, 0, 5, 200} { // crash mid-lease, at a lease edge, right away...
		alice.restart(t)
		alice.box.trace = trace
		seal(n)
	}
	if len(used) != len(sealed) {
		t.Fatalf("%d seals used %d distinct (key, nonce) pairs", len(sealed), len(used))
	}
	for kn, c := range used {
		if c != 1 {
			t.Fatalf("(key, nonce) %x used %d times", kn[32:], c)
		}
	}
	for i, s := range sealed[1:] {
		mustOpen(t, bob, s, alice, fmt.Sprint(i+1))
	}
	// The confirmed state survived the crashes: no init header any more.
	if s := mustSeal(t, alice, bob, "short"); s[0] != typeMsg {
		t.Fatal("confirmation was lost across restarts")
	}
	// Leases: far fewer disk writes than messages.
	writes := alice.kv.putCount()
	seal(640)
	if got := alice.kv.putCount() - writes; got > 11 {
		t.Fatalf("640 seals cost %d disk writes, want at most 11 (one per %d-counter lease)", got, leaseSize)
	}
}

// TestCrashRestartReceiver checks the receive window survives a crash:
// replays stay refused and skipped messages still open.
func TestCrashRestartReceiver(t *testing.T) {
	alice, bob, _ := pair(t)
	var sealed [][]byte
	for i := range 10 {
		sealed = append(sealed, mustSeal(t, alice, bob, fmt.Sprint(i)))
	}
	mustOpen(t, bob, sealed[4], alice, "4") // init form, sets up the session
	mustOpen(t, bob, sealed[9], alice, "9")
	mustOpen(t, bob, sealed[2], alice, "2")
	bob.restart(t)
	for _, i := range []int{4, 9, 2} {
		if _, err := bob.box.Open(sealed[i]); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay of %d after restart: %v, want ErrReplay", i, err)
		}
	}
	for _, i := range []int{0, 1, 3, 5, 6, 7, 8} {
		mustOpen(t, bob, sealed[i], alice, fmt.Sprint(i))
	}
	// Bob's reply after the restart confirms Alice's session.
	mustOpen(t, alice, mustSeal(t, bob, alice, "ok"), bob, "ok")
	alice.restart(t)
	bob.restart(t)
	mustOpen(t, bob, mustSeal(t, alice, bob, "after"), alice, "after")
	mustOpen(t, alice, mustSeal(t, bob, alice, "both"), bob, "both")
}

// TestStoreFailure checks that nothing is released that the store did not
// record: no ciphertext beyond the lease, no plaintext whose counter was not
// saved (so it is not lost either: it opens once the store works again).
func TestStoreFailure(t *testing.T) {
	alice, bob, _ := pair(t)
	alice.kv.setFail(true)
	if _, err := alice.box.Seal(bob.addr(), bob.card, []byte("x")); err == nil {
		t.Fatal("sealed a new session that could not be stored")
	}
	alice.kv.setFail(false)
	s := mustSeal(t, alice, bob, "first")
	bob.kv.setFail(true)
	if _, err := bob.box.Open(s); err == nil {
		t.Fatal("opened a message whose session could not be stored")
	}
	if bob.box.HasSession(alice.addr()) {
		t.Fatal("a session that was not stored is in use")
	}
	bob.kv.setFail(false)
	mustOpen(t, bob, s, alice, "first")
	mustOpen(t, alice, mustSeal(t, bob, alice, "ok"), bob, "ok")
	for range leaseSize - 1 { // "first" used counter 0 of the first lease
		mustSeal(t, alice, bob, "fill the lease")
	}
	alice.kv.setFail(true)
	if _, err := alice.box.Seal(bob.addr(), nil, []byte("x")); err == nil {
		t.Fatal("sealed past the lease without storing a new one")
	}
	alice.kv.setFail(false)
	m := mustSeal(t, alice, bob, "later")
	s2 := mustSeal(t, alice, bob, "next")
	bob.kv.setFail(true)
	if _, err := bob.box.Open(s2); err == nil {
		t.Fatal("opened without storing the receive window")
	}
	bob.kv.setFail(false)
	mustOpen(t, bob, s2, alice, "next")
	mustOpen(t, bob, m, alice, "later")
}
