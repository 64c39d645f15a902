package radiolink

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
)

func FuzzDecodeFrame(f *testing.F) {
	f.Add(encodeHello(addrOf(1), true))
	f.Add(encodeFrag(0, addrOf(1), addrOf(2), true, 7, 1, 3, []byte("abc")))
	f.Add(encodeFragAck(0, addrOf(1), addrOf(2), 7, 9, []byte{0xff, 1}))
	f.Add([]byte{0x10, 1, 2, 3, 4, 0x28, 0x20, 0, 3})
	f.Add(encodeAir(0, addrOf(1), 21, true, []byte{0x0f, 0xe0}))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := decodeFrame(data)
		if err != nil {
			return
		}
		if fr.typ == ftCompact || fr.typ == ftAir && fr.flags&flAirCompact != 0 {
			_, _ = expandBundle(fr.body, addrOf(2), newBook(addrOf(2)))
		}
		e, _ := NewEngine(Config{Self: addrOf(2), MaxFrame: 255})
		e.neighbour(addrOf(1))
		e.Receive(t0, RxFrame{Data: data})
		e.Poll(t0, false)
	})
}

// FuzzReassembly feeds a stream of forged fragments (random sequence
// numbers, counts and indexes) and checks the memory caps hold.
func FuzzReassembly(f *testing.F) {
	f.Add([]byte{0, 1, 4, 0, 0, 2, 200, 5})
	f.Add([]byte{0xff, 0xff, 0xff, 0x1f, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, _ := NewEngine(Config{Self: addrOf(2), MaxFrame: 255, ReassemblyPerPeer: 4096, ReassemblyTotal: 8192})
		e.neighbour(addrOf(1))
		now := t0
		for len(data) >= 5 {
			seq := binary.BigEndian.Uint16(data)
			count := int(data[2])<<4 | int(data[3]&0xf) + 1
			idx := int(data[4]) % count
			n := int(data[3]>>4)*16 + 1
			data = data[5:]
			fr := encodeFrag(0, addrOf(1), addrOf(2), data[0:0] != nil && seq%2 == 0, seq, idx, count, make([]byte, n))
			e.Receive(now, RxFrame{Data: fr})
			now = now.Add(time.Second)
			e.Poll(now, false)
			if e.ReassemblyBytes() > 8192 {
				t.Fatalf("reassembly memory %d above the total cap", e.ReassemblyBytes())
			}
			if got := e.ra.peerBytes(bundle.Addr(addrOf(1))); got > 4096 {
				t.Fatalf("per-neighbour reassembly memory %d above its cap", got)
			}
			if e.QueuedFrames() > 256+1 {
				t.Fatalf("%d control frames queued: forged fragments amplified", e.QueuedFrames())
			}
		}
	})
}
