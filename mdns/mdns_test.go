package mdns

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	addrA = [16]byte{0xaa, 1}
	addrB = [16]byte{0xbb, 2}
	self  = [16]byte{0x55, 5}
)

func goodTXT(addr [16]byte, port int) []string {
	return Record{Version: Version, Addr: addr, Port: port, CardHash: [8]byte{1, 2, 3}}.TXT()
}

func TestTXTRoundTrip(t *testing.T) {
	in := Record{Version: Version, Addr: addrA, Port: 7337, CardHash: [8]byte{9, 8, 7, 6, 5, 4, 3, 2}}
	out, err := ParseTXT(append(in.TXT(), "future=whatever", "flag"))
	if err != nil || out != in {
		t.Fatalf("ParseTXT(TXT()) = %+v, %v; want %+v (unknown keys ignored)", out, err, in)
	}
}

func TestParseTXTRejects(t *testing.T) {
	id := "id=aa010000000000000000000000000000"
	cases := []struct {
		txt  []string
		want string
	}{
		{[]string{"v=1", "port=7337", "card=0102030000000000"}, "lacks id="},
		{[]string{"v=1", "id=xyz", "port=7337", "card=0102030000000000"}, "not a node address"},
		{[]string{"v=1", "id=gg010000000000000000000000000000", "port=7337", "card=0102030000000000"}, "not a node address"},
		{[]string{"v=1", id, "port=0", "card=0102030000000000"}, "not a UDP port"},
		{[]string{"v=1", id, "port=65536", "card=0102030000000000"}, "not a UDP port"},
		{[]string{"v=1", id, "port=-1", "card=0102030000000000"}, "not a UDP port"},
		{[]string{"v=1", id, "port=7337", "card=01"}, "not a card hash"},
		{[]string{"v=2", id, "port=7337", "card=0102030000000000"}, "version"},
		{[]string{"v=1", id, id, "port=7337", "card=0102030000000000"}, "appears twice"},
		{[]string{"v=1", "id=00000000000000000000000000000000", "port=7337", "card=0102030000000000"}, "all zeros"},
		{append([]string{"v=1", id, "port=7337", "card=0102030000000000"}, make([]string, 20)...), "strings, at most"},
		{[]string{"v=1", id, "port=7337", "card=0102030000000000", "x=" + strings.Repeat("a", 400)}, "bytes, at most"},
	}
	for _, c := range cases {
		if _, err := ParseTXT(c.txt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseTXT(%q) = %v, want an error mentioning %q", c.txt, err, c.want)
		}
	}
	if _, err := ParseTXT([]string{"v=7", id, "port=1", "card=0102030000000000"}); !errors.Is(err, ErrVersion) {
		t.Errorf("another version: %v, want ErrVersion", err)
	}
}

func TestParseMode(t *testing.T) {
	for s, want := range map[string]Mode{"on": On, "browse": Browse, "OFF": Off} {
		if m, err := ParseMode(s); err != nil || m != want {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseMode("loud"); err == nil || !strings.Contains(err.Error(), "on (announce and browse)") {
		t.Errorf("ParseMode(loud) = %v, want the choices explained", err)
	}
}

func TestCheck(t *testing.T) {
	ans := func(addr [16]byte, ips ...string) answer {
		a := answer{instance: "x", srvPort: 7337, txt: goodTXT(addr, 7337), ttl: 120}
		for _, ip := range ips {
			a.ips = append(a.ips, net.ParseIP(ip))
		}
		return a
	}
	p, err := check(ans(addrA, "192.0.2.7", "192.0.2.7", "fe80::1", "127.0.0.1", "2001:db8::1"), self)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:7337"), netip.MustParseAddrPort("[2001:db8::1]:7337")}
	if got := p.Endpoints(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("endpoints %v, want %v (deduped, no link-local or loopback)", got, want)
	}
	if _, err := check(ans(self, "192.0.2.7"), self); !errors.Is(err, errSelf) {
		t.Errorf("own address: %v, want errSelf", err)
	}
	if _, err := check(ans(addrA, "fe80::1", "224.0.0.251"), self); err == nil || !strings.Contains(err.Error(), "no usable IP") {
		t.Errorf("no usable IP: %v", err)
	}
	bad := ans(addrA, "192.0.2.7")
	bad.srvPort = 1
	if _, err := check(bad, self); err == nil || !strings.Contains(err.Error(), "disagree") {
		t.Errorf("SRV/TXT port mismatch: %v", err)
	}
	many := ans(addrA)
	for i := range 40 {
		many.ips = append(many.ips, net.IPv4(192, 0, 2, byte(i)))
	}
	if _, err := check(many, self); err == nil {
		t.Error("an answer with 40 addresses was accepted")
	}
}

func peer(addr [16]byte, port int, ips ...string) Peer {
	p := Peer{Addr: addr, Port: port}
	for _, ip := range ips {
		p.IPs = append(p.IPs, netip.MustParseAddr(ip))
	}
	return p
}

// TestTrackerLifecycle: a peer appears, is seen on a second interface
// (one peer, two endpoints), loses one address and then leaves when no
// answer refreshes it.
func TestTrackerLifecycle(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := newTracker(30*time.Second, 4)
	ev, ok, err := tr.observe(peer(addrA, 7337, "192.0.2.1"), 3200, t0)
	if err != nil || !ok || ev.Kind != Appeared {
		t.Fatalf("first sight: %+v %v %v, want Appeared", ev, ok, err)
	}
	if _, ok, _ := tr.observe(peer(addrA, 7337, "192.0.2.1"), 3200, t0.Add(time.Second)); ok {
		t.Error("an identical answer produced an event")
	}
	ev, ok, _ = tr.observe(peer(addrA, 7337, "198.51.100.1"), 3200, t0.Add(20*time.Second))
	if !ok || ev.Kind != Changed || len(ev.Peer.IPs) != 2 {
		t.Fatalf("second interface: %+v, want Changed with two addresses", ev)
	}
	if evs := tr.expire(t0.Add(29 * time.Second)); len(evs) != 0 {
		t.Errorf("expired early: %+v", evs)
	}
	evs := tr.expire(t0.Add(31 * time.Second))
	if len(evs) != 1 || evs[0].Kind != Changed || len(evs[0].Peer.IPs) != 1 || evs[0].Peer.IPs[0].String() != "198.51.100.1" {
		t.Fatalf("first address stale: %+v, want Changed keeping 198.51.100.1", evs)
	}
	evs = tr.expire(t0.Add(51 * time.Second))
	if len(evs) != 1 || evs[0].Kind != Left || evs[0].Peer.Addr != addrA {
		t.Fatalf("no answers: %+v, want Left", evs)
	}
	if len(tr.list()) != 0 {
		t.Error("a peer that left is still listed")
	}
}

func TestTrackerShortTTLAndPortChange(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := newTracker(time.Minute, 4)
	tr.observe(peer(addrA, 7337, "192.0.2.1"), 5, t0)
	ev, ok, _ := tr.observe(peer(addrA, 8000, "192.0.2.9"), 120, t0.Add(time.Second))
	if !ok || ev.Kind != Changed || ev.Peer.Port != 8000 || len(ev.Peer.IPs) != 1 {
		t.Fatalf("port change: %+v, want Changed with only the new address", ev)
	}
	tr.observe(peer(addrB, 1, "192.0.2.2"), 5, t0)
	if evs := tr.expire(t0.Add(6 * time.Second)); len(evs) != 1 || evs[0].Peer.Addr != addrB || evs[0].Kind != Left {
		t.Fatalf("a 5 s TTL: %+v, want B left", evs)
	}
}

func TestTrackerBounded(t *testing.T) {
	tr := newTracker(time.Minute, 2)
	now := time.Unix(1, 0)
	tr.observe(peer(addrA, 1, "192.0.2.1"), 60, now)
	tr.observe(peer(addrB, 1, "192.0.2.2"), 60, now)
	if _, _, err := tr.observe(peer([16]byte{3}, 1, "192.0.2.3"), 60, now); err == nil {
		t.Error("a third peer was tracked beyond MaxPeers=2")
	}
}

func TestLogLimiter(t *testing.T) {
	l := logLimiter{every: time.Minute, budget: 3, last: map[string]time.Time{}}
	now := time.Unix(0, 0)
	if !l.allow("a", now) || l.allow("a", now.Add(time.Second)) {
		t.Error("the same key twice within a minute")
	}
	l.allow("b", now)
	l.allow("c", now)
	if l.allow("d", now) {
		t.Error("more lines than the budget in one period")
	}
	if !l.allow("a", now.Add(61*time.Second)) {
		t.Error("a key stayed muted after its period")
	}
}

func TestUsableInterfaces(t *testing.T) {
	list, _ := net.Interfaces()
	got, sig := usable(list)
	for _, ifc := range got {
		if ifc.Flags&net.FlagLoopback != 0 || ifc.Flags&net.FlagMulticast == 0 {
			t.Errorf("interface %s is not usable for mDNS", ifc.Name)
		}
	}
	if _, sig2 := usable(list); sig2 != sig {
		t.Error("the interface signature is not stable")
	}
	if _, empty := usable(nil); empty != "" {
		t.Error("no interfaces must give the empty signature")
	}
}

func TestNewChecks(t *testing.T) {
	if _, err := New(Config{Mode: On, Self: Record{Addr: addrA}}); err == nil || !strings.Contains(err.Error(), "port") {
		t.Errorf("announcing without a port: %v", err)
	}
	if _, err := New(Config{Mode: Browse}); err == nil {
		t.Error("no own address accepted")
	}
	if _, err := New(Config{Mode: Browse, Self: Record{Addr: addrA}}); err != nil {
		t.Errorf("browse without a port: %v", err)
	}
}

// TestHandleLogsAndCounts: a bad answer is counted and logged once, our
// own is not counted, a good one raises an event.
func TestHandleLogsAndCounts(t *testing.T) {
	var evs []Event
	var log strings.Builder
	s, err := New(Config{Mode: Browse, Self: Record{Addr: self}, OnEvent: func(e Event) { evs = append(evs, e) }, Logger: textLogger(&log)})
	if err != nil {
		t.Fatal(err)
	}
	bad := answer{instance: "evil", srvPort: 1, txt: []string{"v=1", "id=nothex"}, ips: []net.IP{net.ParseIP("192.0.2.1")}}
	s.handle(bad)
	s.handle(bad)
	s.handle(answer{instance: "me", srvPort: 7337, txt: goodTXT(self, 7337), ips: []net.IP{net.ParseIP("192.0.2.2")}, ttl: 120})
	s.handle(answer{instance: "b", srvPort: 7337, txt: goodTXT(addrB, 7337), ips: []net.IP{net.ParseIP("192.0.2.3")}, ttl: 120})
	if s.Ignored() != 2 {
		t.Errorf("Ignored() = %d, want 2", s.Ignored())
	}
	if n := strings.Count(log.String(), "ignored an mDNS answer"); n != 1 {
		t.Errorf("%d log lines for a repeated bad answer, want 1:\n%s", n, log.String())
	}
	if len(evs) != 1 || evs[0].Kind != Appeared || evs[0].Peer.Addr != addrB {
		t.Errorf("events %+v, want B appeared", evs)
	}
	if ps := s.Peers(); len(ps) != 1 || ps[0].Addr != addrB {
		t.Errorf("Peers() = %+v", ps)
	}
}
