package transports

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/url"
	"sync"
)

// MemNetworkConfig configures a MemNetwork.
type MemNetworkConfig struct {
	// Self is the node address this network's Dialer reports to the
	// listeners it connects to. Use WithSelf for the other nodes of a test.
	Self [16]byte
	// Options shape every link the network makes; their AddrA, AddrB,
	// RemoteA and RemoteB are overwritten by Dial.
	Options MemOptions
}

// MemNetwork is an in-memory switchboard for tests: listeners register under
// a name, and Dial("mem://name") connects to them with an in-memory link.
// It implements Dialer for the scheme "mem". There is no global registry:
// every test makes its own network and hands it (or WithSelf views of it) to
// the nodes under test.
type MemNetwork struct {
	cfg MemNetworkConfig
	reg *memRegistry
}

type memRegistry struct {
	mu        sync.Mutex
	listeners map[string]*MemListener
}

// NewMemNetwork returns an empty network.
func NewMemNetwork(cfg MemNetworkConfig) *MemNetwork {
	return &MemNetwork{cfg: cfg, reg: &memRegistry{listeners: map[string]*MemListener{}}}
}

// WithSelf returns a view of the same network whose Dialer announces addr as
// its own node address.
func (n *MemNetwork) WithSelf(addr [16]byte) *MemNetwork {
	cfg := n.cfg
	cfg.Self = addr
	return &MemNetwork{cfg: cfg, reg: n.reg}
}

// Listen registers a listener under name; links accepted from it report
// the dialer's address, and dialers see addr as the listener's Peer().Addr.
// The name must be free: a second Listen with the same name fails until
// the first listener is closed.
func (n *MemNetwork) Listen(name string, addr [16]byte) (*MemListener, error) {
	n.reg.mu.Lock()
	defer n.reg.mu.Unlock()
	if _, ok := n.reg.listeners[name]; ok {
		return nil, fmt.Errorf("mem network: name %q is already listening; close the old listener or pick another name", name)
	}
	l := &MemListener{name: name, addr: addr, reg: n.reg,
		backlog: make(chan Link, 16), closed: make(chan struct{})}
	n.reg.listeners[name] = l
	return l, nil
}

// Schemes implements Dialer.
func (n *MemNetwork) Schemes() []string { return []string{"mem"} }

// Dial implements Dialer: u is mem://name. It blocks while the listener's
// backlog is full, until ctx is done.
func (n *MemNetwork) Dial(ctx context.Context, u *url.URL) (Link, error) {
	if u.Scheme != "mem" {
		return nil, fmt.Errorf("mem network cannot dial %q: scheme must be mem (use mem://name)", u.String())
	}
	name := u.Host
	if name == "" {
		name = u.Opaque
	}
	n.reg.mu.Lock()
	l := n.reg.listeners[name]
	n.reg.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("dial %s: nobody listens under %q on this mem network; call MemNetwork.Listen first", u.String(), name)
	}
	opts := n.cfg.Options
	opts.AddrA, opts.AddrB = n.cfg.Self, l.addr
	opts.RemoteA, opts.RemoteB = "mem:"+hex.EncodeToString(n.cfg.Self[:]), "mem://"+name
	a, b := newMemPair(opts)
	select {
	case l.backlog <- b:
		return a, nil
	case <-l.closed:
		_ = a.Close()
		return nil, fmt.Errorf("dial %s: listener closed: %w", u.String(), ErrClosed)
	case <-ctx.Done():
		_ = a.Close()
		return nil, fmt.Errorf("dial %s: %w", u.String(), ctx.Err())
	}
}

// MemListener yields the links dialled to its name. It implements Listener.
type MemListener struct {
	name    string
	addr    [16]byte
	reg     *memRegistry
	backlog chan Link
	closed  chan struct{}
	once    sync.Once
}

// Accept implements Listener.
func (l *MemListener) Accept(ctx context.Context) (Link, error) {
	select {
	case <-l.closed:
		return nil, fmt.Errorf("mem listener %q: %w", l.name, ErrClosed)
	default:
	}
	select {
	case lk := <-l.backlog:
		return lk, nil
	case <-l.closed:
		return nil, fmt.Errorf("mem listener %q: %w", l.name, ErrClosed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Addr implements Listener: "mem://name".
func (l *MemListener) Addr() string { return "mem://" + l.name }

// Close implements Listener; it frees the name and closes links still
// waiting in the backlog. It is idempotent.
func (l *MemListener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.reg.mu.Lock()
		if l.reg.listeners[l.name] == l {
			delete(l.reg.listeners, l.name)
		}
		l.reg.mu.Unlock()
		for {
			select {
			case lk := <-l.backlog:
				_ = lk.Close()
			default:
				return
			}
		}
	})
	return nil
}

var (
	_ Dialer   = (*MemNetwork)(nil)
	_ Listener = (*MemListener)(nil)
)
