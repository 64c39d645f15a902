package router

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
	"github.com/ternmesh/tern/transports/quiclink"
)

// quicVerify accepts test proofs: the 16-byte node address followed by an
// Ed25519 signature over it, made with the certificate key.
func quicVerify(pub ed25519.PublicKey, proof []byte) ([16]byte, error) {
	var addr [16]byte
	if len(proof) != 16+ed25519.SignatureSize || !ed25519.Verify(pub, proof[:16], proof[16:]) {
		return addr, errors.New("test proof does not match the certificate key")
	}
	copy(addr[:], proof)
	return addr, nil
}

func quicTransport(tb testing.TB, addr bundle.Addr, listen bool) *quiclink.Transport {
	tb.Helper()
	key := ed25519.NewKeyFromSeed(bytes.Repeat(addr[:1], ed25519.SeedSize))
	cfg := quiclink.Config{Key: key, Proof: append(addr[:], ed25519.Sign(key, addr[:])...), Verify: quicVerify}
	if listen {
		cfg.Listen = "127.0.0.1:0"
	}
	tr, err := quiclink.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = tr.Close() })
	return tr
}

// quicPair opens a real QUIC link on loopback between nodes a (dialling)
// and b (listening) and returns both ends.
func quicPair(tb testing.TB, a, b bundle.Addr) (*quiclink.Link, *quiclink.Link) {
	tb.Helper()
	srv, cli := quicTransport(tb, b, true), quicTransport(tb, a, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	acc := make(chan *quiclink.Link, 1)
	go func() {
		l, err := srv.AcceptLink(ctx)
		if err != nil {
			tb.Error(err)
		}
		acc <- l
	}()
	u, err := url.Parse(fmt.Sprintf("%s?id=%x", srv.Addr(), b[:]))
	if err != nil {
		tb.Fatal(err)
	}
	la, err := cli.DialLink(ctx, u)
	if err != nil {
		tb.Fatal(err)
	}
	lb := <-acc
	if lb == nil {
		tb.FailNow()
	}
	return la, lb
}

// radioLink marks a datagram-capable link as a radio: voice must not use it.
type radioLink struct{ *quiclink.Link }

func (radioLink) RadioInfo() transports.RadioInfo { return transports.RadioInfo{Radio: "test"} }

type voiceFrame struct {
	from    bundle.Addr
	payload []byte
}

func listenVoice(n *testNode) chan voiceFrame {
	got := make(chan voiceFrame, 64)
	n.r.OnVoice(func(from bundle.Addr, p []byte) { got <- voiceFrame{from, p} })
	return got
}

func waitVoice(t *testing.T, got chan voiceFrame) voiceFrame {
	t.Helper()
	select {
	case f := <-got:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("voice frame never arrived")
	}
	return voiceFrame{}
}

func TestVoiceCrossesARelayOverQUIC(t *testing.T) {
	a, b, c := newTestNode(t, 'A'), newTestNode(t, 'B'), newTestNode(t, 'C')
	ab, ba := quicPair(t, a.addr, b.addr)
	bc, cb := quicPair(t, b.addr, c.addr)
	a.r.AddLink(ab)
	b.r.AddLink(ba)
	b.r.AddLink(bc)
	c.r.AddLink(cb)
	eventually(t, "A learns a route to C through B", hasRoute(a, c.addr))
	got := listenVoice(c)

	payload := bytes.Repeat([]byte{0xC0, 0xDE}, 80) // a 160-byte frame
	if err := a.r.SendVoice(c.addr, payload); err != nil {
		t.Fatal(err)
	}
	f := waitVoice(t, got)
	if !bytes.Equal(f.payload, payload) {
		t.Fatalf("C got %x, want %x", f.payload, payload)
	}
	if f.from != b.addr {
		t.Errorf("C says the frame came from %x, want the relay B", f.from)
	}
	if m := b.r.VoiceMetrics(); m.Forwarded != 1 || len(m.Dropped) != 0 {
		t.Errorf("relay counters %+v, want one forwarded and none dropped", m)
	}
	if m := a.r.VoiceMetrics(); m.Sent != 1 {
		t.Errorf("sender counters %+v, want one sent", m)
	}
	// Nothing touched the durable store: voice is never stored.
	if s := b.r.Metrics(); s.Total.Stored != 0 {
		t.Errorf("relay stored %d bundles for a voice frame", s.Total.Stored)
	}
}

func TestVoiceRefusesARadioOnlyPath(t *testing.T) {
	a, b, c := newTestNode(t, 'A'), newTestNode(t, 'B'), newTestNode(t, 'C')
	ab, ba := quicPair(t, a.addr, b.addr)
	a.r.AddLink(radioLink{ab})
	b.r.AddLink(radioLink{ba})
	bc, cb := quicPair(t, b.addr, c.addr)
	b.r.AddLink(bc)
	c.r.AddLink(cb)
	eventually(t, "A learns a route to C through B", hasRoute(a, c.addr))
	eventually(t, "C learns a route to A through B", hasRoute(c, a.addr))

	for _, dest := range []bundle.Addr{b.addr, c.addr} {
		err := a.r.SendVoice(dest, []byte("hello"))
		if !errors.Is(err, ErrVoiceRadioOnly) {
			t.Fatalf("SendVoice over a radio-only path = %v, want ErrVoiceRadioOnly", err)
		}
		want := fmt.Sprintf("voice needs an internet or LAN path; the only path to %x is a radio link", dest[:])
		if err.Error() != want {
			t.Errorf("error reads %q, want %q", err, want)
		}
	}
	// C reaches B over QUIC, but B would have to put the frame on the radio
	// toward A: B drops it and counts why.
	if err := c.r.SendVoice(a.addr, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B drops the frame for lack of a fast path", func() bool {
		return b.r.VoiceMetrics().Dropped[VoiceDropNoFastPath] == 1
	})
	if m := b.r.VoiceMetrics(); m.Forwarded != 0 {
		t.Errorf("B forwarded %d voice frames onto a radio", m.Forwarded)
	}
}

// countingRadio is a radio-marked link that counts datagrams sent on it.
type countingRadio struct {
	radioLink
	sent *atomic.Int64
}

func (c countingRadio) SendDatagram(d []byte) error {
	c.sent.Add(1)
	return c.radioLink.SendDatagram(d)
}

func TestVoiceTakesTheInternetLinkWhenARadioLinkIsNewer(t *testing.T) {
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	fastA, fastB := quicPair(t, a.addr, b.addr)
	a.r.AddLink(fastA)
	b.r.AddLink(fastB)
	slowA, slowB := quicPair(t, a.addr, b.addr)
	var onAir atomic.Int64
	a.r.AddLink(countingRadio{radioLink{slowA}, &onAir}) // newest link, but a radio
	b.r.AddLink(radioLink{slowB})
	eventually(t, "A sees B", hasRoute(a, b.addr))
	got := listenVoice(b)
	if err := a.r.SendVoice(b.addr, []byte("over the internet")); err != nil {
		t.Fatal(err)
	}
	if f := waitVoice(t, got); string(f.payload) != "over the internet" {
		t.Fatalf("B got %q", f.payload)
	}
	if n := onAir.Load(); n != 0 {
		t.Errorf("%d voice datagrams went on the radio link", n)
	}
	// With the internet link gone, the radio is all that is left: refused.
	fastA.Close()
	eventually(t, "A notices the internet link is gone", func() bool {
		return errors.Is(a.r.SendVoice(b.addr, []byte("x")), ErrVoiceRadioOnly)
	})
	if n := onAir.Load(); n != 0 {
		t.Errorf("%d voice datagrams went on the radio link", n)
	}
}

func TestVoiceWithNoPathOrTooBig(t *testing.T) {
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	err := a.r.SendVoice(b.addr, []byte("hi"))
	if !errors.Is(err, ErrNoVoicePath) || !strings.Contains(err.Error(), "never stored") {
		t.Fatalf("SendVoice with no path = %v, want ErrNoVoicePath saying voice is not stored", err)
	}
	ab, ba := quicPair(t, a.addr, b.addr)
	a.r.AddLink(ab)
	b.r.AddLink(ba)
	eventually(t, "A sees B", hasRoute(a, b.addr))
	err = a.r.SendVoice(b.addr, make([]byte, ab.MaxDatagramSize()))
	if !errors.Is(err, transports.ErrTooBig) {
		t.Fatalf("oversized voice frame = %v, want ErrTooBig", err)
	}
	got := listenVoice(b)
	largest := make([]byte, ab.MaxDatagramSize()-VoiceHeaderSize)
	if err := a.r.SendVoice(b.addr, largest); err != nil {
		t.Fatalf("largest voice frame refused: %v", err)
	}
	if f := waitVoice(t, got); len(f.payload) != len(largest) {
		t.Fatalf("got %d bytes, want %d", len(f.payload), len(largest))
	}
}

func TestVoiceHopLimit(t *testing.T) {
	a, b, c, d := newTestNode(t, 'A'), newTestNode(t, 'B'), newTestNode(t, 'C'), newTestNode(t, 'D')
	ab, ba := quicPair(t, a.addr, b.addr)
	bc, cb := quicPair(t, b.addr, c.addr)
	cd, dc := quicPair(t, c.addr, d.addr)
	b.r.AddLink(ba)
	b.r.AddLink(bc)
	c.r.AddLink(cb)
	c.r.AddLink(cd)
	d.r.AddLink(dc)
	eventually(t, "B learns a route to D through C", hasRoute(b, d.addr))
	got := listenVoice(d)
	// A is played by the test: raw datagrams straight onto A's QUIC link.
	raw := func(hops byte, payload string) []byte {
		return append(append([]byte{0xA1}, append(d.addr[:], hops)...), payload...)
	}
	if err := ab.SendDatagram(raw(0, "out of hops")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B drops the frame that arrives with no hops left", func() bool {
		return b.r.VoiceMetrics().Dropped[VoiceDropHopLimit] == 1
	})
	if err := ab.SendDatagram(raw(1, "one hop short")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "C drops the frame B passed on with its last hop spent", func() bool {
		return c.r.VoiceMetrics().Dropped[VoiceDropHopLimit] == 1
	})
	if err := ab.SendDatagram(raw(2, "just enough")); err != nil {
		t.Fatal(err)
	}
	if f := waitVoice(t, got); string(f.payload) != "just enough" {
		t.Fatalf("D got %q, want only the frame with enough hops", f.payload)
	}
	if err := ab.SendDatagram([]byte{0x99, 1, 2}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B drops a datagram that is not voice", func() bool {
		return b.r.VoiceMetrics().Dropped[VoiceDropMalformed] == 1
	})
	if m := b.r.VoiceMetrics(); m.Forwarded != 2 {
		t.Errorf("B forwarded %d frames, want the two with a hop left", m.Forwarded)
	}
}

func FuzzParseVoice(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0xA1})
	f.Add(append(append([]byte{0xA1}, make([]byte, 16)...), 8, 'h', 'i'))
	f.Add(append(append([]byte{0xA2}, make([]byte, 16)...), 8))
	f.Fuzz(func(t *testing.T, d []byte) {
		dest, hops, payload, err := parseVoice(d)
		if err != nil {
			return
		}
		if len(d) < VoiceHeaderSize || d[0] != voiceTypeVersion {
			t.Fatalf("accepted %x", d)
		}
		// Re-encoding the fields gives back the datagram.
		again := append(append(append([]byte{voiceTypeVersion}, dest[:]...), hops), payload...)
		if !bytes.Equal(again, d) {
			t.Fatalf("parse(%x) re-encodes as %x", d, again)
		}
	})
}

func TestVoicePathSaysWhyBeforeSending(t *testing.T) {
	a, b, c := newTestNode(t, 'A'), newTestNode(t, 'B'), newTestNode(t, 'C')
	if err := a.r.VoicePath(b.addr); !errors.Is(err, ErrNoVoicePath) {
		t.Fatalf("VoicePath with no link = %v, want ErrNoVoicePath", err)
	}
	ab, ba := quicPair(t, a.addr, b.addr)
	a.r.AddLink(ab)
	b.r.AddLink(ba)
	ac, ca := quicPair(t, a.addr, c.addr)
	a.r.AddLink(radioLink{ac})
	c.r.AddLink(radioLink{ca})
	eventually(t, "A sees B and C", func() bool { return hasRoute(a, b.addr)() && hasRoute(a, c.addr)() })
	if err := a.r.VoicePath(b.addr); err != nil {
		t.Errorf("VoicePath over QUIC = %v, want nil", err)
	}
	if err := a.r.VoicePath(c.addr); !errors.Is(err, ErrVoiceRadioOnly) {
		t.Errorf("VoicePath over a radio = %v, want ErrVoiceRadioOnly", err)
	}
	if m := a.r.VoiceMetrics(); m.Sent != 0 {
		t.Errorf("VoicePath sent %d frames", m.Sent)
	}
}
