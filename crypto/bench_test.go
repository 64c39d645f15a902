package crypto

import (
	"testing"
)

// confirmedPair returns Alice and Bob with a confirmed session both ways.
func confirmedPair(b *testing.B) (alice, bob *peer) {
	alice, bob, _ = pair(b)
	mustOpen(b, bob, mustSeal(b, alice, bob, "setup"), alice, "setup")
	mustOpen(b, alice, mustSeal(b, bob, alice, "ok"), bob, "ok")
	return alice, bob
}

var text40 = []byte("meet at the north gate at 18:30, bring w") // 40 bytes

// BenchmarkOverhead reports the bytes a Seal adds on a confirmed session
// (23: type, 4-byte wire session id, 16-bit counter, tag) and on an
// unconfirmed one (the repeated init).
func BenchmarkOverhead(b *testing.B) {
	alice, bob := confirmedPair(b)
	carol := newPeer(b, 0xC0, "carol", &clock{t: testNow})
	var short, init int
	for b.Loop() {
		s, err := alice.box.Seal(bob.addr(), nil, text40)
		if err != nil {
			b.Fatal(err)
		}
		short = len(s) - len(text40)
	}
	s, err := alice.box.Seal(carol.addr(), carol.card, text40)
	if err != nil {
		b.Fatal(err)
	}
	init = len(s) - len(text40)
	b.ReportMetric(float64(short), "overhead-bytes")
	b.ReportMetric(float64(init), "init-overhead-bytes")
}

func BenchmarkSeal(b *testing.B) {
	alice, bob := confirmedPair(b)
	b.SetBytes(int64(len(text40)))
	for b.Loop() {
		if _, err := alice.box.Seal(bob.addr(), nil, text40); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	alice, bob := confirmedPair(b)
	b.SetBytes(int64(len(text40)))
	b.StopTimer()
	sealed := make([][]byte, b.N)
	for i := range sealed {
		sealed[i] = mustSeal(b, alice, bob, string(text40))
	}
	b.StartTimer()
	for _, s := range sealed {
		if _, err := bob.box.Open(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionStart measures a first message: X-Wing encapsulation on
// one side, decapsulation and signature check on the other.
func BenchmarkSessionStart(b *testing.B) {
	alice, bob, _ := pair(b)
	for b.Loop() {
		if err := alice.box.Rekey(bob.addr(), bob.card); err != nil {
			b.Fatal(err)
		}
		s := mustSeal(b, alice, bob, string(text40))
		if _, err := bob.box.Open(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenForged measures what a forged message costs the receiver:
// "at-limit" claims a counter MaxCounterJump ahead (the worst case: the chain
// walk, then a failed tag); "beyond" one more (refused before any key).
func BenchmarkOpenForged(b *testing.B) {
	_, bob := confirmedPair(b)
	var s *session
	for _, o := range bob.box.sessions {
		s = o
	}
	for name, ahead := range map[string]uint64{"at-limit": MaxCounterJump, "beyond": MaxCounterJump + 1} {
		b.Run(name, func(b *testing.B) {
			forged := forgedAt(s, s.recv.next+ahead)
			for b.Loop() {
				if _, err := bob.box.Open(forged); err == nil {
					b.Fatal("a forged message opened")
				}
			}
		})
	}
}
