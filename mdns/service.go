package mdns

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grandcat/zeroconf"
)

// Config configures a Service.
type Config struct {
	// Mode: On announces Self and browses, Browse only browses, Off does
	// nothing (Run just waits for its context).
	Mode Mode
	// Self is this node's record. Self.Addr is always needed (answers
	// carrying it are our own and ignored); Self.Port and Self.CardHash
	// only when Mode is On.
	Self Record
	// OnEvent receives every change of the peer set, in order, from Run's
	// goroutine; it must return quickly.
	OnEvent func(Event)
	// Logger receives one line per peer change and rate-limited lines
	// for ignored answers; nil discards.
	Logger *slog.Logger
	// Now is the clock for expiry; nil means time.Now.
	Now func() time.Time
	// Rebrowse is how often a fresh browse is started; 0 means 10 s.
	Rebrowse time.Duration
	// Stale is how long an address stays known without a fresh answer
	// (capped by the record's TTL); 0 means 3 × Rebrowse.
	Stale time.Duration
	// IfacePoll is how often the interface set is checked; 0 means 5 s.
	IfacePoll time.Duration
	// Interfaces lists the host's interfaces; nil means net.Interfaces.
	Interfaces func() ([]net.Interface, error)
	// LogEvery is the least time between two log lines about the same
	// kind of ignored answer from the same instance; 0 means 1 min.
	LogEvery time.Duration
	// MaxPeers bounds the peers tracked at once; 0 means 256.
	MaxPeers int
}

// Service announces this node and browses for others. Create it with New
// and run it with Run.
type Service struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	tr      *tracker
	ifaces  []string
	ignored atomic.Uint64
	limit   logLimiter
}

// New checks cfg and fills in defaults.
func New(cfg Config) (*Service, error) {
	if cfg.Mode == On && (cfg.Self.Port < 1 || cfg.Self.Port > 65535) {
		return nil, fmt.Errorf("mdns: cannot announce port %d; give the QUIC listener's port, or use mode browse", cfg.Self.Port)
	}
	if cfg.Self.Addr == ([16]byte{}) {
		return nil, errors.New("mdns: Config.Self.Addr is empty; set it to this node's address")
	}
	cfg.Self.Version = Version
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rebrowse <= 0 {
		cfg.Rebrowse = 10 * time.Second
	}
	if cfg.Stale <= 0 {
		cfg.Stale = 3 * cfg.Rebrowse
	}
	if cfg.IfacePoll <= 0 {
		cfg.IfacePoll = 5 * time.Second
	}
	if cfg.Interfaces == nil {
		cfg.Interfaces = net.Interfaces
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = time.Minute
	}
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = 256
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(Event) {}
	}
	return &Service{
		cfg: cfg, log: cfg.Logger,
		tr:    newTracker(cfg.Stale, cfg.MaxPeers),
		limit: logLimiter{every: cfg.LogEvery, budget: 20, last: map[string]time.Time{}},
	}, nil
}

// Peers returns the peers known now, sorted by address.
func (s *Service) Peers() []Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tr.list()
}

// Interfaces returns the names of the interfaces mDNS runs on now.
func (s *Service) Interfaces() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ifaces)
}

// Ignored counts answers that failed validation (not our own echoes).
func (s *Service) Ignored() uint64 { return s.ignored.Load() }

// instanceName is the DNS-SD instance name of a node.
func instanceName(addr [16]byte) string { return "tern-" + hex.EncodeToString(addr[:]) }

// Run announces and browses until ctx ends, then sends goodbyes and
// returns nil. It restarts announcing and browsing when the interface set
// changes, and waits quietly while there is no usable interface.
func (s *Service) Run(ctx context.Context) error {
	if s.cfg.Mode == Off {
		<-ctx.Done()
		return nil
	}
	found := make(chan answer, 64)
	var (
		sig       string
		ifaces    []net.Interface
		server    *zeroconf.Server
		stopRound context.CancelFunc
	)
	stop := func() {
		if stopRound != nil {
			stopRound()
			stopRound = nil
		}
		if server != nil {
			server.Shutdown() // sends goodbye packets
			server = nil
		}
	}
	defer stop()
	round := func() {
		cancel, err := s.browse(ctx, ifaces, found)
		if err != nil {
			s.log.Warn("mDNS browse failed; retrying at the next round", "err", err)
		}
		if stopRound != nil {
			stopRound()
		}
		stopRound = cancel
	}
	refresh := func() {
		list, err := s.cfg.Interfaces()
		if err != nil {
			s.log.Warn("cannot list network interfaces; LAN discovery waits", "err", err)
			return
		}
		cur, newSig := usable(list)
		if newSig == sig {
			return
		}
		sig = newSig
		stop()
		ifaces = cur
		names := make([]string, len(cur))
		for i, ifc := range cur {
			names[i] = ifc.Name
		}
		s.mu.Lock()
		s.ifaces = names
		s.mu.Unlock()
		if len(cur) == 0 {
			s.log.Info("no multicast network interface is up; LAN discovery waits for one")
			return
		}
		if s.cfg.Mode == On {
			inst := instanceName(s.cfg.Self.Addr)
			srv, err := zeroconf.RegisterProxy(inst, ServiceType, "local.", s.cfg.Self.Port, inst+".local.", nil, s.cfg.Self.TXT(), cur)
			if err != nil {
				s.log.Warn("cannot announce this node on the LAN; still browsing", "interfaces", names, "err", err)
			} else {
				server = srv
			}
		}
		round()
		s.log.Info("LAN discovery running", "mode", s.cfg.Mode.String(), "interfaces", names)
	}

	refresh()
	poll := time.NewTicker(s.cfg.IfacePoll)
	defer poll.Stop()
	rebrowse := time.NewTicker(s.cfg.Rebrowse)
	defer rebrowse.Stop()
	expire := time.NewTicker(min(time.Second, s.cfg.Stale/4))
	defer expire.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
			refresh()
		case <-rebrowse.C:
			if len(ifaces) > 0 {
				round()
			}
		case <-expire.C:
			s.mu.Lock()
			evs := s.tr.expire(s.cfg.Now())
			s.mu.Unlock()
			for _, ev := range evs {
				s.emit(ev)
			}
		case a := <-found:
			s.handle(a)
		}
	}
}

// handle validates one answer and updates the peer set.
func (s *Service) handle(a answer) {
	now := s.cfg.Now()
	p, err := check(a, s.cfg.Self.Addr)
	if errors.Is(err, errSelf) {
		if s.limit.allow("self|"+a.instance, now) {
			s.log.Debug("ignored an mDNS answer", "instance", a.instance, "reason", err.Error())
		}
		return
	}
	if err == nil {
		var ev Event
		var ok bool
		s.mu.Lock()
		ev, ok, err = s.tr.observe(p, a.ttl, now)
		s.mu.Unlock()
		if ok {
			s.emit(ev)
		}
	}
	if err != nil {
		s.ignored.Add(1)
		reason := err.Error()
		if s.limit.allow(firstWords(reason)+"|"+a.instance, now) {
			s.log.Warn("ignored an mDNS answer", "instance", clip(a.instance, 80), "reason", clip(reason, 200))
		}
	}
}

func (s *Service) emit(ev Event) {
	s.log.Info("LAN peer "+ev.Kind.String(), "peer", hex.EncodeToString(ev.Peer.Addr[:]),
		"endpoints", fmt.Sprint(ev.Peer.Endpoints()))
	s.cfg.OnEvent(ev)
}

// browse starts one browse round; cancel ends it.
func (s *Service) browse(ctx context.Context, ifaces []net.Interface, found chan<- answer) (context.CancelFunc, error) {
	r, err := zeroconf.NewResolver(zeroconf.SelectIfaces(ifaces), zeroconf.SelectIPTraffic(zeroconf.IPv4AndIPv6))
	if err != nil {
		// No IPv6 on these interfaces is common: fall back to IPv4.
		if r, err = zeroconf.NewResolver(zeroconf.SelectIfaces(ifaces), zeroconf.SelectIPTraffic(zeroconf.IPv4)); err != nil {
			return nil, fmt.Errorf("joining the mDNS group: %w", err)
		}
	}
	bctx, cancel := context.WithCancel(ctx)
	entries := make(chan *zeroconf.ServiceEntry)
	go func() {
		// Drain until the library closes the channel, so its loop never
		// blocks after cancel.
		for e := range entries {
			a := answer{instance: e.Instance, srvPort: e.Port, txt: e.Text, ttl: e.TTL}
			a.ips = append(append(a.ips, e.AddrIPv4...), e.AddrIPv6...)
			select {
			case found <- a:
			case <-bctx.Done():
			}
		}
	}()
	if err := r.Browse(bctx, ServiceType, "local.", entries); err != nil {
		cancel()
		return nil, fmt.Errorf("sending the mDNS query: %w", err)
	}
	return cancel, nil
}

// usable keeps the interfaces mDNS can run on (up, multicast, not
// loopback, with an address) and returns a signature of the set that
// changes whenever an interface or one of its addresses does.
func usable(list []net.Interface) ([]net.Interface, string) {
	var out []net.Interface
	var sig strings.Builder
	for _, ifc := range list {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagMulticast == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil || len(addrs) == 0 {
			continue
		}
		as := make([]string, len(addrs))
		for i, a := range addrs {
			as[i] = a.String()
		}
		slices.Sort(as)
		fmt.Fprintf(&sig, "%d/%s/%s;", ifc.Index, ifc.Name, strings.Join(as, ","))
		out = append(out, ifc)
	}
	return out, sig.String()
}

// logLimiter allows one line per key per period, and at most budget lines
// per period in all, so a flood of hostile answers cannot flood the log.
type logLimiter struct {
	every  time.Duration
	budget int

	mu     sync.Mutex
	last   map[string]time.Time
	window time.Time
	used   int
}

func (l *logLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.window) >= l.every {
		l.window, l.used = now, 0
		for k, t := range l.last {
			if now.Sub(t) >= l.every {
				delete(l.last, k)
			}
		}
	}
	if t, ok := l.last[key]; ok && now.Sub(t) < l.every {
		return false
	}
	if l.used >= l.budget {
		return false
	}
	l.used++
	l.last[key] = now
	return true
}

// firstWords keeps the kind of an error, not its details, as a log key.
func firstWords(s string) string {
	f := strings.Fields(s)
	if len(f) > 3 {
		f = f[:3]
	}
	return strings.Join(f, " ")
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
