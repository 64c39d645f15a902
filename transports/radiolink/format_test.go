package radiolink

import (
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
)

// exampleFrame is the worked example of FORMAT.md: a derived-ID data
// bundle with a 4-byte payload to the next hop.
func exampleFrame(t *testing.T) (frame, canon []byte) {
	src, dst := addrOf(0), addrOf(1)
	pl := []byte("ciao")
	b := bundle.Bundle{Version: 1, Kind: bundle.KindData, Flags: bundle.FlagDerivedID, Dest: dst, ID: bundle.DerivedID(dst, pl),
		Created: CreatedEpoch + 1000, Age: 1500, Lifetime: uint64(7 * 24 * time.Hour / time.Millisecond), HopLimit: 32, Payload: pl}
	raw, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	bk := newBook(src)
	bk.add(dst, true)
	body, canon, ok := compactBundle(raw, dst, bk, false)
	if !ok {
		t.Fatal("example does not compact")
	}
	return encodeSingle(ftCompact, 0, src, dst, body), canon
}

func TestFormatExample(t *testing.T) {
	fr, canon := exampleFrame(t)
	doc, err := os.ReadFile("FORMAT.md")
	if err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(fr)
	if !strings.Contains(string(doc), want) {
		t.Fatalf("FORMAT.md does not show the example frame %s", want)
	}
	f, err := decodeFrame(fr)
	if err != nil {
		t.Fatal(err)
	}
	got, err := expandBundle(f.body, addrOf(1), newBook(addrOf(1)))
	if err != nil || !bytes.Equal(got, canon) {
		t.Fatalf("example does not expand to the canonical bytes: %v", err)
	}
	b, _ := bundle.Unmarshal(got)
	if b.Age != 3_600_000 {
		t.Fatalf("age %d: want 1500 ms rounded up to one hour", b.Age)
	}
}

// TestRepairVsResendAll measures airtime of a 20 KB transfer at 10 and 30 %
// loss with selective repair and with resending every fragment.
func TestRepairVsResendAll(t *testing.T) {
	for _, loss := range []float64{0.1, 0.3} {
		var res [2]time.Duration
		for k, all := range []bool{false, true} {
			s := newSimNet(t, 11, 2, sf9, func(i int, c *Config) { c.resendAll = all })
			s.setLoss(loss)
			s.meet(t, 10*time.Minute)
			start := s.airtime()
			got := sendAndWait(t, s, s.nodes[0], s.nodes[1], bytes.Repeat([]byte{7}, 20000), 30*time.Minute)
			if len(got) != 20000 {
				t.Fatalf("20 KB not delivered (resendAll %v, loss %v)", all, loss)
			}
			res[k] = s.airtime() - start
		}
		t.Logf("20 KB at %.0f%% loss: selective %v, resend-all %v", loss*100, res[0], res[1])
		if res[0] >= res[1] {
			t.Errorf("selective repair (%v) not cheaper than resending all (%v)", res[0], res[1])
		}
	}
}
