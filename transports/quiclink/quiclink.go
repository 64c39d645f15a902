// Package quiclink is Tern's QUIC link: frames between two nodes over QUIC
// streams, voice over QUIC datagrams, both ends authenticated by their node
// identity instead of by certificate authorities.
//
// Each node presents a self-signed Ed25519 certificate carrying its identity
// proof (see ProofOID); each side checks the other's proof with
// Config.Verify, which yields the peer's node address. TLS is 1.3 only with
// ALPN "tern/1" and Go's default key exchange, X25519MLKEM768, so every hop
// is post-quantum hybrid. A dial URL may pin the expected identity:
//
//	quic://host:port?id=<32 hex digits of the node address>
//
// Without id (first contact) any valid identity is accepted and reported in
// Link.Peer so the caller can remember it. The wire format is documented in
// frame.go.
package quiclink

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/ternmesh/tern/transports"
)

// ALPN is the TLS application protocol of Tern QUIC links.
const ALPN = "tern/1"

// Config configures a Transport.
type Config struct {
	// Key is the node's Ed25519 key; the link certificate is made from it.
	Key ed25519.PrivateKey
	// Proof is the opaque identity proof embedded in the certificate (the
	// node's signed contact card).
	Proof []byte
	// Verify checks a peer's proof against the certificate key and returns
	// the peer's node address (crypto.VerifyLinkProof in production).
	Verify func(pub ed25519.PublicKey, proof []byte) ([16]byte, error)
	// Listen is the UDP address to accept links on, e.g. "0.0.0.0:4433";
	// "" means dial only (an ephemeral port is used for dialling).
	Listen string
	// Logger receives warnings (refused identities, broken framing); nil
	// discards them.
	Logger *slog.Logger
	// IdleTimeout closes a link after this long without hearing from the
	// peer; 0 means 30 s.
	IdleTimeout time.Duration
	// KeepAlive is how often an idle link is pinged; 0 means 10 s.
	KeepAlive time.Duration
}

// Transport dials and accepts Tern QUIC links on one UDP socket. It
// implements transports.Dialer (scheme "quic") and transports.Listener.
type Transport struct {
	cfg   Config
	log   *slog.Logger
	cert  tls.Certificate
	udp   *net.UDPConn
	qt    *quic.Transport
	ln    *quic.Listener // nil when dial only
	qconf *quic.Config

	mu     sync.Mutex
	links  map[*Link]struct{}
	closed bool
}

// PinError is the error of a dial whose peer is not the identity pinned in
// the URL.
type PinError struct {
	URL       string // the URL without its query
	Got, Want [16]byte
}

func (e *PinError) Error() string {
	return fmt.Sprintf("%s: peer is %x, expected %x: the id in the link URL is wrong or someone else answers at that address", e.URL, e.Got, e.Want)
}

// New opens the UDP socket and, when cfg.Listen is set, starts accepting.
func New(cfg Config) (*Transport, error) {
	if cfg.Verify == nil {
		return nil, errors.New("quiclink: Config.Verify is nil; pass the function that checks a peer's identity proof (crypto.VerifyLinkProof)")
	}
	cert, err := makeCertificate(cfg.Key, cfg.Proof)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 10 * time.Second
	}
	laddr := &net.UDPAddr{}
	if cfg.Listen != "" {
		if laddr, err = net.ResolveUDPAddr("udp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("quiclink: listen address %q: %w (want host:port, e.g. 0.0.0.0:4433)", cfg.Listen, err)
		}
	}
	udp, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("quiclink: open UDP socket %q: %w (is the port in use?)", cfg.Listen, err)
	}
	t := &Transport{
		cfg: cfg, log: log, cert: cert, udp: udp,
		qt:    &quic.Transport{Conn: udp, StatelessResetKey: resetKey(cfg.Key)},
		links: map[*Link]struct{}{},
		qconf: quicConfig(cfg),
	}
	if cfg.Listen != "" {
		t.ln, err = t.qt.Listen(t.serverTLS(), t.qconf)
		if err != nil {
			_ = t.qt.Close()
			_ = udp.Close()
			return nil, fmt.Errorf("quiclink: listen on %s: %w", cfg.Listen, err)
		}
	}
	return t, nil
}

func quicConfig(cfg Config) *quic.Config {
	return &quic.Config{
		MaxIdleTimeout:        cfg.IdleTimeout,
		KeepAlivePeriod:       cfg.KeepAlive,
		HandshakeIdleTimeout:  10 * time.Second,
		EnableDatagrams:       true,
		MaxIncomingStreams:    -1, // Tern uses unidirectional streams only
		MaxIncomingUniStreams: 8,
	}
}

func (t *Transport) baseTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{t.cert},
		NextProtos:   []string{ALPN},
		// CurvePreferences is left nil on purpose: Go negotiates
		// X25519MLKEM768 by default.
	}
}

func (t *Transport) serverTLS() *tls.Config {
	c := t.baseTLS()
	c.ClientAuth = tls.RequireAnyClientCert
	c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		remote := "unknown"
		if hello.Conn != nil {
			remote = hello.Conn.RemoteAddr().String()
		}
		cc := t.baseTLS()
		cc.ClientAuth = tls.RequireAnyClientCert
		cc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := verifyChain(raw, t.cfg.Verify)
			if err != nil {
				t.log.Warn("quic: refused an inbound link", "remote", remote, "err", err)
			}
			return err
		}
		return cc, nil
	}
	return c
}

// Schemes implements transports.Dialer.
func (t *Transport) Schemes() []string { return []string{"quic"} }

// Dial implements transports.Dialer for quic://host:port[?id=<hex addr>].
func (t *Transport) Dial(ctx context.Context, u *url.URL) (transports.Link, error) {
	return t.DialLink(ctx, u)
}

// DialLink is Dial returning the concrete *Link.
func (t *Transport) DialLink(ctx context.Context, u *url.URL) (*Link, error) {
	if u.Scheme != "quic" {
		return nil, fmt.Errorf("quiclink cannot dial %q: scheme must be quic (quic://host:port?id=<node address>)", u.String())
	}
	bare := "quic://" + u.Host
	if u.Host == "" || u.Port() == "" {
		return nil, fmt.Errorf("%s: the link URL needs host:port, e.g. quic://192.0.2.1:4433", u.String())
	}
	var want *[16]byte
	if id := u.Query().Get("id"); id != "" {
		b, err := hex.DecodeString(id)
		if err != nil || len(b) != 16 {
			return nil, fmt.Errorf("%s: id %q is not a node address (want 32 hex digits)", bare, id)
		}
		want = (*[16]byte)(b)
	}
	raddr, err := t.resolve(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (check the host name)", bare, err)
	}

	var mu sync.Mutex
	var got [16]byte
	var pinErr *PinError
	c := t.baseTLS()
	c.ServerName = "tern"
	c.InsecureSkipVerify = true // no CAs: VerifyPeerCertificate checks the identity proof
	c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		addr, err := verifyChain(raw, t.cfg.Verify)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		got = addr
		if want != nil && addr != *want {
			pinErr = &PinError{URL: bare, Got: addr, Want: *want}
			return pinErr
		}
		return nil
	}
	conn, err := t.qt.Dial(ctx, raddr, c, t.qconf)
	mu.Lock()
	pe := pinErr
	mu.Unlock()
	if pe != nil {
		t.log.Warn("quic: refused a link, the peer is not the pinned identity",
			"url", bare, "got", fmt.Sprintf("%x", pe.Got), "want", fmt.Sprintf("%x", pe.Want))
		if conn != nil {
			_ = conn.CloseWithError(codeNone, "wrong identity")
		}
		return nil, pe
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dial %s: %w", bare, ctx.Err())
		}
		return nil, fmt.Errorf("dial %s: %w (is a Tern node listening there, with a valid identity? check host, port and that UDP passes)", bare, err)
	}
	mu.Lock()
	peerAddr := got
	mu.Unlock()
	return t.adopt(conn, transports.Peer{Addr: peerAddr, Authenticated: true, Remote: bare})
}

func (t *Transport) resolve(ctx context.Context, u *url.URL) (*net.UDPAddr, error) {
	host, port := u.Hostname(), u.Port()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("no address for %q", host)
	}
	return net.ResolveUDPAddr("udp", net.JoinHostPort(ips[0].Unmap().String(), port))
}

// adopt wraps an established connection in a Link and tracks it.
func (t *Transport) adopt(conn *quic.Conn, peer transports.Peer) (*Link, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		_ = conn.CloseWithError(codeNone, "transport closed")
		return nil, fmt.Errorf("quiclink: transport is closed: %w", transports.ErrClosed)
	}
	l := newLink(conn, peer, t.log, t.forget)
	t.links[l] = struct{}{}
	return l, nil
}

func (t *Transport) forget(l *Link) {
	t.mu.Lock()
	delete(t.links, l)
	t.mu.Unlock()
}

// Accept implements transports.Listener: the next inbound link, whose
// Peer().Addr comes from the peer's verified proof.
func (t *Transport) Accept(ctx context.Context) (transports.Link, error) {
	return t.AcceptLink(ctx)
}

// AcceptLink is Accept returning the concrete *Link.
func (t *Transport) AcceptLink(ctx context.Context) (*Link, error) {
	if t.ln == nil {
		return nil, fmt.Errorf("quiclink: this transport dials only (Config.Listen is empty); set Listen to accept links: %w", transports.ErrClosed)
	}
	for {
		conn, err := t.ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("quiclink: accept: %w: %w", transports.ErrClosed, err)
		}
		certs := conn.ConnectionState().TLS.PeerCertificates
		raw := make([][]byte, len(certs))
		for i, c := range certs {
			raw[i] = c.Raw
		}
		addr, err := verifyChain(raw, t.cfg.Verify) // checked in the handshake too; this yields the address
		if err != nil {
			_ = conn.CloseWithError(codeNone, "identity refused")
			continue
		}
		remote := "quic://" + conn.RemoteAddr().String()
		return t.adopt(conn, transports.Peer{Addr: addr, Authenticated: true, Remote: remote})
	}
}

// Addr implements transports.Listener: "quic://ip:port" of the socket.
func (t *Transport) Addr() string { return "quic://" + t.udp.LocalAddr().String() }

// Close closes every link, stops accepting and releases the socket. It is
// idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	links := make([]*Link, 0, len(t.links))
	for l := range t.links {
		links = append(links, l)
	}
	t.mu.Unlock()
	for _, l := range links {
		_ = l.Close()
	}
	if t.ln != nil {
		_ = t.ln.Close()
	}
	err := t.qt.Close()
	if e := t.udp.Close(); err == nil && !errors.Is(e, net.ErrClosed) {
		err = e
	}
	return err
}

var (
	_ transports.Dialer   = (*Transport)(nil)
	_ transports.Listener = (*Transport)(nil)
)

// resetKey derives the QUIC stateless-reset key from the node key, so that
// after a restart (a crash, a kill -9) the node can still answer packets of
// its old connections with a reset its peers accept: they notice at once
// that the old link is gone instead of waiting for the idle timeout.
func resetKey(k ed25519.PrivateKey) *quic.StatelessResetKey {
	sum, err := hkdf.Key(sha256.New, k.Seed(), nil, "tern/v1/quic-stateless-reset", 32)
	if err != nil {
		return nil
	}
	var key quic.StatelessResetKey
	copy(key[:], sum)
	return &key
}
