package call

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ternmesh/tern/crypto"
)

// activeCall sets up an answered call between two new parties and returns
// their streams.
func activeCall(t *testing.T, n *net) (alice, bob *party, a, b *Stream) {
	t.Helper()
	alice, bob = n.party("alice"), n.party("bob")
	rec, err := alice.app.Start("bob")
	if err != nil {
		t.Fatal(err)
	}
	n.deliver(0)
	if _, err := bob.app.Accept(mustID(t, rec)); err != nil {
		t.Fatal(err)
	}
	n.deliver(0)
	if a, err = alice.app.Attach(mustID(t, rec)); err != nil {
		t.Fatal(err)
	}
	if b, err = bob.app.Attach(mustID(t, rec)); err != nil {
		t.Fatal(err)
	}
	return alice, bob, a, b
}

// TestLossJitterAndRTTAreMeasured: with one frame in 20 lost, a 10 ms path
// each way and frames every 20 ms, the receiver shows 5 % loss, the round
// trip is 20 ms, one-way latency 10 ms, jitter 0; with latency varying by
// 0/4 ms the jitter shows it.
func TestLossJitterAndRTTAreMeasured(t *testing.T) {
	n := newNet(t)
	n.holdMs = 10 * time.Millisecond
	alice, _, a, b := activeCall(t, n)
	n.drop = func(from crypto.Address, i int) bool { return from == alice.addr && i%20 == 7 }
	for i := range uint32(400) {
		a.Send(960*i, []byte{1, 2, 3})
		b.Send(960*i, []byte{4, 5, 6})
		n.clock.Add(n.holdMs)
		n.deliverFrames()
		n.clock.Add(20*time.Millisecond - n.holdMs)
	}
	sb, sa := b.Stats(), a.Stats()
	if sb.LossPercent < 4.5 || sb.LossPercent > 5.5 || sb.FramesLost != 20 || sb.FramesReceived != 380 {
		t.Errorf("bob's stats with 1 in 20 lost: %+v", sb)
	}
	if sa.LossPercent != 0 || sa.FramesLost != 0 {
		t.Errorf("alice's stats with nothing lost toward her: %+v", sa)
	}
	if sa.RTTMillis != 20 || sa.LatencyMillis != 10 || sa.JitterMillis != 0 {
		t.Errorf("alice measures rtt %v ms, latency %v ms, jitter %v ms; want 20, 10, 0", sa.RTTMillis, sa.LatencyMillis, sa.JitterMillis)
	}
	if got := len(drainFrames(b)); got != streamQueue {
		t.Errorf("bob's stream holds %d frames, want its queue full (%d)", got, streamQueue)
	}
	if sb.DroppedLocal == 0 {
		t.Error("frames the page never read are not counted as dropped here")
	}

	// Latency alternating 10 and 14 ms, nothing lost: |D| = 4 ms on every frame.
	n.drop = nil
	for i := range uint32(400) {
		a.Send(960*(400+i), []byte{1})
		hold := 10*time.Millisecond + time.Duration(i%2)*4*time.Millisecond
		n.clock.Add(hold)
		n.deliverFrames()
		n.clock.Add(20*time.Millisecond - hold)
	}
	if j := b.Stats().JitterMillis; j < 3.9 || j > 4.1 {
		t.Errorf("jitter %v ms with latency alternating by 4 ms, want about 4", j)
	}
}

// TestFramesRefusedWhenReplayedForgedOrFromAnotherCall: a relay that
// repeats, alters or misdirects frames gets nothing played.
func TestFramesRefusedWhenReplayedForgedOrFromAnotherCall(t *testing.T) {
	n := newNet(t)
	alice, bob, a, b := activeCall(t, n)
	a.Send(0, []byte("one"))
	if got := drainFrames(b); len(got) != 1 {
		t.Fatalf("bob got %d frames", len(got))
	}
	wire := alice.payloads[0]
	bob.h([16]byte{}, append([]byte(nil), wire...)) // replayed
	forged := append([]byte(nil), wire...)
	forged[len(forged)-1] ^= 1
	bob.h([16]byte{}, forged)
	// Alice's frame turned back at her: her key, but the wrong direction.
	alice.h([16]byte{}, append([]byte(nil), wire...))
	other := append([]byte(nil), wire...)
	other[1] ^= 0xFF // another call's tag
	bob.h([16]byte{}, other)
	if got := drainFrames(b); len(got) != 0 {
		t.Fatalf("bob played %d refused frames", len(got))
	}
	if st := b.Stats(); st.Refused != 2 || st.FramesReceived != 1 {
		t.Errorf("bob's stats: %+v, want the replay and the forgery refused", st)
	}
	if st := a.Stats(); st.Refused != 1 {
		t.Errorf("alice's stats: %+v, want her own reflected frame refused", st)
	}
	if bob.app.unknownFrames.Load() != 1 {
		t.Errorf("frames for an unknown call: %d, want 1", bob.app.unknownFrames.Load())
	}
}

// TestNoncesNeverRepeat: every frame of a call has its own (key, nonce):
// the two directions use different random keys and each sender's
// sequence numbers count up from 0.
func TestNoncesNeverRepeat(t *testing.T) {
	n := newNet(t)
	alice, bob, a, b := activeCall(t, n)
	for i := range uint32(300) {
		a.Send(i, []byte{byte(i)})
		b.Send(i, []byte{byte(i)})
	}
	aKey, bKey := alice.app.cur.Load().myKey, bob.app.cur.Load().myKey
	if aKey == bKey || aKey == ([KeySize]byte{}) {
		t.Fatal("the two directions share a key")
	}
	for _, p := range []*party{alice, bob} {
		seen := map[uint32]bool{}
		for i, w := range p.payloads {
			_, seq, err := parseFrameHead(w)
			if err != nil {
				t.Fatal(err)
			}
			if seen[seq] || seq != uint32(i) {
				t.Fatalf("%s's frame %d has sequence number %d (seen before: %v)", p.name, i, seq, seen[seq])
			}
			seen[seq] = true
		}
	}
	// A new call makes new keys.
	a.c.mu.Lock()
	old := a.c.myKey
	a.c.mu.Unlock()
	alice.app.Hangup(a.Call())
	n.deliver(0)
	rec, _ := alice.app.Start("bob")
	if alice.app.cur.Load().myKey == old {
		t.Error("a second call reuses the first call's key")
	}
	_ = rec
	s := &sealer{aead: newAEAD(aKey), next: 1 << 32}
	if _, _, err := s.seal(frameTimes{}, nil); err == nil {
		t.Error("a sealer past 2^32 frames still seals")
	}
}

func TestFrameLayout(t *testing.T) {
	key := [KeySize]byte{7}
	s := &sealer{aead: newAEAD(key), dir: dirFromCallee, tag: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, next: 0x01020304}
	opus := []byte("opus frame")
	p, seq, err := s.seal(frameTimes{media: 11, sent: 22, echo: 33, delay: 44}, opus)
	if err != nil {
		t.Fatal(err)
	}
	if seq != 0x01020304 || len(p) != len(opus)+FrameOverhead || p[0] != frameVersion ||
		!bytes.Equal(p[1:9], s.tag[:]) || binary.BigEndian.Uint32(p[9:13]) != seq {
		t.Fatalf("frame %x", p)
	}
	o := &opener{aead: newAEAD(key), dir: dirFromCallee}
	tm, got, newest, err := o.open(p, seq)
	if err != nil || !newest || !bytes.Equal(got, opus) || tm != (frameTimes{11, 22, 33, 44}) {
		t.Fatalf("open: %v %v %q %+v", err, newest, got, tm)
	}
	if MaxOpus != 1087 {
		t.Errorf("MaxOpus = %d", MaxOpus)
	}
}

// TestWindowMatchesAModel: the replay window and loss figure agree with a
// plain set of the sequence numbers seen, for random arrival orders.
func TestWindowMatchesAModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		checkWindow(t, func() (uint32, bool) {
			return uint32(r.IntN(700)), r.IntN(50) != 0
		}, 400)
	}
}

// checkWindow feeds next() sequence numbers into a window and a model.
func checkWindow(t *testing.T, next func() (uint32, bool), n int) {
	t.Helper()
	var w window
	seen := map[uint32]bool{}
	highest, first, started := uint32(0), uint32(0), false
	for i := 0; i < n; i++ {
		seq, more := next()
		if !more {
			break
		}
		wantOK := !seen[seq] && (!started || seq > highest || highest-seq < replayWindow)
		err := w.check(seq)
		if (err == nil) != wantOK {
			t.Fatalf("seq %d after highest %d: check = %v, model says ok=%v", seq, highest, err, wantOK)
		}
		if err != nil {
			continue
		}
		w.mark(seq)
		seen[seq] = true
		if !started {
			started, first, highest = true, seq, seq
		} else if seq > highest {
			highest = seq
		}
		span := min(highest-first+1, replayWindow)
		missing := 0
		for s := highest - span + 1; s <= highest && s >= highest-span+1; s++ {
			if !seen[s] {
				missing++
			}
			if s == highest {
				break
			}
		}
		want := 100 * float64(missing) / float64(span)
		if got := w.lossPercent(); got < want-1e-9 || got > want+1e-9 {
			t.Fatalf("after %d frames: loss %v %%, model %v %%", i, got, want)
		}
	}
}
