package quiclink

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/ternmesh/tern/transports"
	"github.com/ternmesh/tern/transports/linktest"
)

// testIdentity is a node identity for tests: the proof is the address plus
// an Ed25519 signature over it, made with the link key.
type testIdentity struct {
	key   ed25519.PrivateKey
	addr  [16]byte
	proof []byte
}

func newIdentity(t testing.TB, seed byte) testIdentity {
	t.Helper()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	h := sha256.Sum256(key.Public().(ed25519.PublicKey))
	var addr [16]byte
	copy(addr[:], h[:16])
	proof := append(addr[:], ed25519.Sign(key, addr[:])...)
	return testIdentity{key: key, addr: addr, proof: proof}
}

func testVerify(pub ed25519.PublicKey, proof []byte) ([16]byte, error) {
	var addr [16]byte
	if len(proof) != 16+ed25519.SignatureSize {
		return addr, fmt.Errorf("test proof has %d bytes", len(proof))
	}
	if !ed25519.Verify(pub, proof[:16], proof[16:]) {
		return addr, errors.New("test proof signature does not match the certificate key")
	}
	copy(addr[:], proof)
	return addr, nil
}

// logBuf collects log output for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newTransport(t testing.TB, id testIdentity, listen bool, mod func(*Config)) *Transport {
	t.Helper()
	cfg := Config{Key: id.key, Proof: id.proof, Verify: testVerify}
	if listen {
		cfg.Listen = "127.0.0.1:0"
	}
	if mod != nil {
		mod(&cfg)
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func pinnedURL(srv *Transport, addr [16]byte) string {
	return srv.Addr() + "?id=" + hex.EncodeToString(addr[:])
}

// connect dials srv from cli with a pin and returns both ends.
func connect(t testing.TB, cli, srv *Transport, srvAddr [16]byte) (*Link, *Link) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		l   *Link
		err error
	}
	acc := make(chan res, 1)
	go func() {
		l, err := srv.AcceptLink(ctx)
		acc <- res{l, err}
	}()
	a, err := cli.DialLink(ctx, mustURL(t, pinnedURL(srv, srvAddr)))
	if err != nil {
		t.Fatal(err)
	}
	r := <-acc
	if r.err != nil {
		t.Fatal(r.err)
	}
	return a, r.l
}

func TestConformance(t *testing.T) {
	idA, idB := newIdentity(t, 1), newIdentity(t, 2)
	srv := newTransport(t, idB, true, nil)
	cli := newTransport(t, idA, false, nil)
	linktest.Run(t, linktest.Harness{
		NewPair: func(t *testing.T) (a, b transports.Link) {
			la, lb := connect(t, cli, srv, idB.addr)
			return la, lb
		},
		Reliable: true, Ordered: true, MTU: 16 << 20,
	})
}

func TestPeersAndPostQuantumKeyExchange(t *testing.T) {
	idA, idB := newIdentity(t, 1), newIdentity(t, 2)
	srv := newTransport(t, idB, true, nil)
	cli := newTransport(t, idA, false, nil)
	a, b := connect(t, cli, srv, idB.addr)
	if p := a.Peer(); p.Addr != idB.addr || !p.Authenticated || p.Remote != srv.Addr() {
		t.Fatalf("dialer sees %+v, want addr %x authenticated at %s", p, idB.addr, srv.Addr())
	}
	if p := b.Peer(); p.Addr != idA.addr || !p.Authenticated || !strings.HasPrefix(p.Remote, "quic://127.0.0.1:") {
		t.Fatalf("listener sees %+v, want addr %x authenticated", p, idA.addr)
	}
	for _, l := range []*Link{a, b} {
		cs := l.ConnectionState()
		if cs.CurveID != tls.X25519MLKEM768 {
			t.Errorf("negotiated key exchange %v, want X25519MLKEM768", cs.CurveID)
		}
		if cs.Version != tls.VersionTLS13 || cs.NegotiatedProtocol != ALPN {
			t.Errorf("TLS version %x ALPN %q, want TLS 1.3 and %q", cs.Version, cs.NegotiatedProtocol, ALPN)
		}
	}
}

func TestFirstContactWithoutPin(t *testing.T) {
	idA, idB := newIdentity(t, 1), newIdentity(t, 2)
	srv := newTransport(t, idB, true, nil)
	cli := newTransport(t, idA, false, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		if l, err := srv.Accept(ctx); err == nil {
			t.Cleanup(func() { _ = l.Close() })
		}
	}()
	l, err := cli.Dial(ctx, mustURL(t, srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if p := l.Peer(); p.Addr != idB.addr || !p.Authenticated {
		t.Fatalf("first contact: Peer() = %+v, want the listener's address %x, authenticated", p, idB.addr)
	}
}

func TestWrongPinRefused(t *testing.T) {
	idA, idB, idC := newIdentity(t, 1), newIdentity(t, 2), newIdentity(t, 3)
	srv := newTransport(t, idB, true, nil)
	var logs logBuf
	cli := newTransport(t, idA, false, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cli.Dial(ctx, mustURL(t, pinnedURL(srv, idC.addr)))
	want := fmt.Sprintf("%s: peer is %x, expected %x: the id in the link URL is wrong or someone else answers at that address",
		srv.Addr(), idB.addr, idC.addr)
	if err == nil || err.Error() != want {
		t.Fatalf("dial with a wrong pin: %v\nwant error: %s", err, want)
	}
	var pe *PinError
	if !errors.As(err, &pe) || pe.Got != idB.addr {
		t.Fatalf("error %T is not a *PinError naming the real peer", err)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, hex.EncodeToString(idB.addr[:])) {
		t.Fatalf("wrong pin not logged as a warning with the addresses; log:\n%s", out)
	}
	// The server never yields the refused connection.
	actx, acancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer acancel()
	if l, err := srv.Accept(actx); err == nil {
		l.Close()
		t.Fatal("the listener accepted a link the dialer refused")
	}
	// A bad id is refused before any packet is sent.
	if _, err := cli.Dial(ctx, mustURL(t, srv.Addr()+"?id=xyz")); err == nil || !strings.Contains(err.Error(), "32 hex digits") {
		t.Fatalf("malformed id: %v", err)
	}
}

func TestBadProofRefusedBothWays(t *testing.T) {
	idA, idB := newIdentity(t, 1), newIdentity(t, 2)
	forged := idA
	forged.proof = append([]byte(nil), idA.proof...)
	forged.proof[20] ^= 1 // signature no longer verifies

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("dialer with a bad proof", func(t *testing.T) {
		var logs logBuf
		srv := newTransport(t, idB, true, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
		cli := newTransport(t, forged, false, nil)
		if l, err := cli.Dial(ctx, mustURL(t, pinnedURL(srv, idB.addr))); err == nil {
			// TLS 1.3 client finishes before the server checks it: the
			// server's refusal must close the link at once.
			if _, err := l.Recv(ctx); !errors.Is(err, transports.ErrClosed) {
				t.Fatalf("link with a forged client proof stays open: %v", err)
			}
		}
		actx, acancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer acancel()
		if l, err := srv.Accept(actx); err == nil {
			l.Close()
			t.Fatal("listener accepted a peer whose proof fails Verify")
		}
		if !strings.Contains(logs.String(), "refused an inbound link") {
			t.Fatalf("refusal not logged: %s", logs.String())
		}
	})
	t.Run("listener with a bad proof", func(t *testing.T) {
		srv := newTransport(t, forged, true, nil)
		cli := newTransport(t, idB, false, nil)
		_, err := cli.Dial(ctx, mustURL(t, srv.Addr()))
		if err == nil {
			t.Fatal("dialer accepted a listener whose proof fails Verify")
		}
		if !strings.Contains(err.Error(), "dial "+srv.Addr()) {
			t.Fatalf("error does not name the URL: %v", err)
		}
	})
}

func TestGarbageUDPDoesNotHurt(t *testing.T) {
	idA, idB := newIdentity(t, 1), newIdentity(t, 2)
	srv := newTransport(t, idB, true, nil)
	cli := newTransport(t, idA, false, nil)
	raw, err := net.Dial("udp", strings.TrimPrefix(srv.Addr(), "quic://"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for i := 0; i < 200; i++ {
		pkt := bytes.Repeat([]byte{byte(i), byte(i * 7), 0xc0 | byte(i)}, 1+i*3)
		if _, err := raw.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	a, b := connect(t, cli, srv, idB.addr)
	defer a.Close()
	ctx := context.Background()
	if err := a.Send(ctx, []byte("still fine")); err != nil {
		t.Fatal(err)
	}
	if f, err := b.Recv(ctx); err != nil || string(f) != "still fine" {
		t.Fatalf("after garbage: %q, %v", f, err)
	}
}

// rawConn dials srv with the right identity but speaks raw QUIC, to send
// what a well-behaved Link never would.
func rawConn(t *testing.T, id testIdentity, srv *Transport) *quic.Conn {
	t.Helper()
	cli := newTransport(t, id, false, nil)
	c := cli.baseTLS()
	c.InsecureSkipVerify = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raddr, err := net.ResolveUDPAddr("udp", strings.TrimPrefix(srv.Addr(), "quic://"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := cli.qt.Dial(ctx, raddr, c, cli.qconf)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func TestMalformedFramesCloseTheLink(t *testing.T) {
	idA, idB := newIdentity(t, 1), newIdentity(t, 2)
	cases := []struct {
		name  string
		bytes []byte
		fin   bool
		want  string
	}{
		{"length above MTU", []byte{kindSmall, 0xff, 0xff, 0xff, 0xff}, false, "above the 16777216-byte MTU"},
		{"stream ends inside a frame", []byte{kindSmall, 0, 0, 0, 10, 'a'}, true, "inside a frame"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTransport(t, idB, true, nil)
			conn := rawConn(t, idA, srv)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l, err := srv.AcceptLink(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s, err := conn.OpenUniStream()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			if tc.fin {
				_ = s.Close()
			}
			_, err = l.Recv(ctx)
			if !errors.Is(err, transports.ErrClosed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Recv = %v, want ErrClosed naming %q", err, tc.want)
			}
			<-conn.Context().Done() // the peer is told too
			var ae *quic.ApplicationError
			if !errors.As(context.Cause(conn.Context()), &ae) || !strings.Contains(ae.ErrorMessage, tc.want) {
				t.Fatalf("peer saw close %v", context.Cause(conn.Context()))
			}
		})
	}
}

func TestDeadPeerNoticed(t *testing.T) {
	idA, idB := newIdentity(t, 1), newIdentity(t, 2)
	fast := func(c *Config) { c.IdleTimeout = 600 * time.Millisecond; c.KeepAlive = 100 * time.Millisecond }
	srv := newTransport(t, idB, true, fast)
	cli := newTransport(t, idA, false, fast)
	a, b := connect(t, cli, srv, idB.addr)
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Idle for several idle timeouts: keep-alives hold the link up.
	quiet, qcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	_, err := b.Recv(quiet)
	qcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("idle link: Recv = %v, want only the deadline (keep-alive failed?)", err)
	}
	if err := a.Send(ctx, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Recv(ctx); err != nil {
		t.Fatalf("idle link no longer carries frames: %v", err)
	}
	// The client's socket vanishes without a word (power cut).
	_ = cli.qt.Close()
	if _, err := b.Recv(ctx); !errors.Is(err, transports.ErrClosed) {
		t.Fatalf("dead peer: Recv = %v, want ErrClosed after the idle timeout", err)
	}
}

func TestLargeAndSmallFramesBothArrive(t *testing.T) {
	idA, idB := newIdentity(t, 1), newIdentity(t, 2)
	srv := newTransport(t, idB, true, nil)
	cli := newTransport(t, idA, false, nil)
	a, b := connect(t, cli, srv, idB.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := bytes.Repeat([]byte{7}, 3<<20)
	errc := make(chan error, 1)
	go func() { errc <- a.Send(ctx, big) }()
	for i := 0; i < 10; i++ {
		if err := a.Send(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	small, large := 0, 0
	for small+large < 11 {
		f, err := b.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case len(f) == 1 && int(f[0]) == small:
			small++
		case bytes.Equal(f, big):
			large++
		default:
			t.Fatalf("unexpected frame of %d bytes (small frames out of order?)", len(f))
		}
	}
}

func TestSendHonoursContextOnLargeFrame(t *testing.T) {
	idA, idB := newIdentity(t, 1), newIdentity(t, 2)
	srv := newTransport(t, idB, true, nil)
	cli := newTransport(t, idA, false, nil)
	a, b := connect(t, cli, srv, idB.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	const size = 70 << 10 // above the small-frame limit: bulk stream
	frame := func(i int) []byte {
		f := bytes.Repeat([]byte{byte(i)}, size)
		f[0], f[1] = byte(i>>8), byte(i)
		return f
	}
	// Nobody reads b: once its queue and QUIC's windows are full, Send
	// stalls, and an expired ctx abandons the frame in progress.
	sent := 0
	for ; ; sent++ {
		if sent == 5000 {
			t.Fatal("Send never stalled although nobody reads")
		}
		short, scancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := a.Send(short, frame(sent))
		scancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("Send %d: %v", sent, err)
		}
	}
	after := sent + 1
	errc := make(chan error, 1)
	go func() { errc <- a.Send(ctx, frame(after)) }()
	seen := map[int]bool{}
	for len(seen) < sent+1 {
		f, err := b.Recv(ctx)
		if err != nil {
			t.Fatalf("after %d of %d frames: %v", len(seen), sent+1, err)
		}
		i := int(f[0])<<8 | int(f[1])
		if !bytes.Equal(f, frame(i)) || (i >= sent && i != after) || seen[i] {
			t.Fatalf("frame %d (%d bytes) should not be here: partial, abandoned or duplicated", i, len(f))
		}
		seen[i] = true
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestTransportClose(t *testing.T) {
	idA, idB := newIdentity(t, 1), newIdentity(t, 2)
	srv := newTransport(t, idB, true, nil)
	cli := newTransport(t, idA, false, nil)
	a, b := connect(t, cli, srv, idB.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := srv.Accept(ctx); !errors.Is(err, transports.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want ErrClosed", err)
	}
	if _, err := b.Recv(ctx); !errors.Is(err, transports.ErrClosed) {
		t.Fatalf("server-side link after transport Close: %v", err)
	}
	if _, err := a.Recv(ctx); !errors.Is(err, transports.ErrClosed) {
		t.Fatalf("peer of a closed transport: Recv = %v, want ErrClosed", err)
	}
	if _, err := cli.Accept(ctx); !errors.Is(err, transports.ErrClosed) || !strings.Contains(err.Error(), "set Listen") {
		t.Fatalf("Accept on a dial-only transport = %v", err)
	}
	if _, err := cli.Dial(ctx, mustURL(t, "http://127.0.0.1:1")); err == nil {
		t.Fatal("dialled an http URL")
	}
	if _, err := cli.Dial(ctx, mustURL(t, "quic://127.0.0.1")); err == nil || !strings.Contains(err.Error(), "host:port") {
		t.Fatalf("URL without port: %v", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	id := newIdentity(t, 1)
	for name, cfg := range map[string]Config{
		"no verify": {Key: id.key, Proof: id.proof},
		"no key":    {Proof: id.proof, Verify: testVerify},
		"no proof":  {Key: id.key, Verify: testVerify},
		"bad addr":  {Key: id.key, Proof: id.proof, Verify: testVerify, Listen: "nonsense"},
	} {
		if tr, err := New(cfg); err == nil {
			tr.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
}
