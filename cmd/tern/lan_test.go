package main

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ternmesh/tern/chat"
)

// discoverLimit is how soon hosts on one LAN must find each other.
const discoverLimit = 5 * time.Second

// fullMesh reports whether every node has a link up to every other.
func fullMesh(nodes ...*lanNode) bool {
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b && !a.linkedTo(b.addr) {
				return false
			}
		}
	}
	return true
}

// TestLANThreeHostsFindEachOther is issue 6's outage scenario: three
// laptops on one Wi-Fi with no internet run `tern run` and nothing else.
// They find each other, chat, a fourth joins later and is found, and one
// that leaves gets what was written to it meanwhile when it comes back.
func TestLANThreeHostsFindEachOther(t *testing.T) {
	lan := newLAN(t)
	seg := lan.bridge()
	a := lan.host("alice", seg).run()
	b := lan.host("bob", seg).run()
	c := lan.host("carol", seg).run()
	took := within(t, discoverLimit, "three hosts discover each other", func() bool { return fullMesh(a, b, c) })
	t.Logf("three hosts linked %v after the last one started", took)

	// Chat needs cards: fetch each over its API and add them.
	for _, p := range [][2]*lanNode{{a, b}, {b, a}, {a, c}, {c, a}, {b, c}, {c, b}} {
		p[0].addContact(p[1])
	}
	a.send("carol", "the power is out on our street too")
	c.send("bob", "anyone have a spare torch?")
	within(t, 10*time.Second, "carol reads alice", func() bool { return c.received("alice", "the power is out on our street too") })
	within(t, 10*time.Second, "bob reads carol", func() bool { return b.received("carol", "anyone have a spare torch?") })

	// Carol leaves; what alice writes meanwhile waits (at bob, who holds a
	// route to her) and reaches her on return. (With four or more hosts a
	// bundle for a departed node can currently loop back to its sender and
	// be dropped as a duplicate: a router issue, reported.)
	c.stop()
	within(t, 30*time.Second, "alice and bob notice carol left", func() bool { return !a.linkedTo(c.addr) && !b.linkedTo(c.addr) })
	const later = "we moved to the school gym, bring blankets"
	sent := a.send("carol", later)
	if r, _ := a.record("carol", sent.ID); r.State == chat.StateDelivered {
		t.Fatal("a message to carol was delivered while she was away")
	}
	c.start()
	within(t, 20*time.Second, "carol, back, receives what was sent while she was away", func() bool { return c.received("alice", later) })
	within(t, 10*time.Second, "alice sees it delivered", func() bool {
		r, _ := a.record("carol", sent.ID)
		return r.State == chat.StateDelivered
	})
	// A fourth laptop joins later and is found.
	d := lan.host("dave", seg).run()
	took = within(t, discoverLimit, "the late host is discovered", func() bool { return fullMesh(a, b, c, d) })
	t.Logf("the fourth host was linked to all %v after it started", took)

	for _, n := range []*lanNode{a, b, c, d} {
		for _, p := range n.peers() {
			if p.URL != "" && !strings.Contains(p.URL, "?id=") {
				t.Errorf("%s keeps an unpinned discovered link %q", n.name, p.URL)
			}
		}
	}
	if out, err := (&daemon{data: a.data}).cli("peers"); err != nil || !strings.Contains(out, "quic://198.18.") {
		t.Errorf("`tern peers` does not show the discovered links (err %v):\n%s", err, out)
	}
}

// TestLANRelayBetweenSegments: a laptop on two networks (two bridges)
// relays between people who cannot see each other; none exchanged cards
// with the relay.
func TestLANRelayBetweenSegments(t *testing.T) {
	lan := newLAN(t)
	s0, s1 := lan.bridge(), lan.bridge()
	a := lan.host("alice", s0).run()
	r := lan.host("relay", s0, s1).run()
	c := lan.host("carol", s1).run()
	within(t, discoverLimit, "the relay links both sides", func() bool { return r.linkedTo(a.addr) && r.linkedTo(c.addr) })
	if a.linkedTo(c.addr) {
		t.Fatal("alice and carol are on separate segments yet linked directly")
	}
	a.addContact(c)
	c.addContact(a)
	sent := a.send("carol", "can you hear me through the relay?")
	within(t, 15*time.Second, "carol receives across the relay", func() bool { return c.received("alice", "can you hear me through the relay?") })
	within(t, 10*time.Second, "alice sees it delivered via the relay", func() bool {
		rec, _ := a.record("carol", sent.ID)
		return rec.State == chat.StateDelivered
	})
	if rec, _ := a.record("carol", sent.ID); rec.Via != r.addr {
		t.Errorf("the message went via %q, want the relay %s", rec.Via, r.addr)
	}
}

// hostile is one crafted mDNS response.
type hostile struct {
	name     string
	instance string
	port     uint16
	txt      []string
	ip       string
	logWant  string // the reason the daemon must log
}

func mdnsResponse(h hostile) ([]byte, error) {
	const svc = "_tern._udp.local."
	inst := h.instance + "." + svc
	host := h.instance + ".local."
	m := new(dns.Msg)
	m.Response, m.Authoritative = true, true
	hdr := func(name string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: 120}
	}
	m.Answer = []dns.RR{
		&dns.PTR{Hdr: hdr(svc, dns.TypePTR), Ptr: inst},
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV), Port: h.port, Target: host},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT), Txt: h.txt},
		&dns.A{Hdr: hdr(host, dns.TypeA), A: net.ParseIP(h.ip).To4()},
	}
	return m.Pack()
}

// TestLANHostileAnswers: malformed and spoofed mDNS answers are ignored
// with a log line; the daemon stays up, keeps its real neighbour and never
// links to an identity other than the one announced.
func TestLANHostileAnswers(t *testing.T) {
	lan := newLAN(t)
	seg := lan.bridge()
	a := lan.host("alice", seg).run()
	b := lan.host("bob", seg).run()
	x := lan.host("mallory", seg)
	within(t, discoverLimit, "alice and bob link", func() bool { return fullMesh(a, b) })

	ghost := "0123456789abcdef0123456789abcdef" // nobody's address
	card := "card=0011223344556677"
	huge := make([]string, 40)
	for i := range huge {
		huge[i] = "pad=" + strings.Repeat("x", 200)
	}
	bip := b.h.ips[0]
	cases := []hostile{
		{name: "not hex", instance: "h1", port: 7337, txt: []string{"v=1", "id=zz23456789abcdef0123456789abcdef", "port=7337", card}, ip: bip, logWant: "is not a node address"},
		{name: "missing id", instance: "h2", port: 7337, txt: []string{"v=1", "port=7337", card}, ip: bip, logWant: "lacks id="},
		{name: "port out of range", instance: "h3", port: 7337, txt: []string{"v=1", "id=" + ghost, "port=70000", card}, ip: bip, logWant: "is not a UDP port"},
		{name: "huge record", instance: "h4", port: 7337, txt: append([]string{"v=1", "id=" + ghost, "port=7337", card}, huge...), ip: bip, logWant: "strings, at most"},
		{name: "oversized strings", instance: "h8", port: 7337, txt: []string{"v=1", "id=" + ghost, "port=7337", card, "a=" + strings.Repeat("y", 250), "b=" + strings.Repeat("z", 250)}, ip: bip, logWant: "bytes, at most"},
		{name: "other version", instance: "h5", port: 7337, txt: []string{"v=9", "id=" + ghost, "port=7337", card}, ip: bip, logWant: "unsupported announcement version"},
		{name: "SRV disagrees", instance: "h6", port: 9999, txt: []string{"v=1", "id=" + ghost, "port=7337", card}, ip: bip, logWant: "disagree"},
		// Spoof: a made-up identity at bob's address. Alice dials it
		// pinned to the ghost; bob answers as bob and the pin fails.
		{name: "spoofed identity", instance: "h7", port: 7337, txt: []string{"v=1", "id=" + ghost, "port=7337", card}, ip: bip, logWant: "failed the identity check"},
	}
	conn, err := x.multicastSender("eth0")
	if err != nil {
		t.Fatalf("opening a socket in mallory's namespace: %v", err)
	}
	defer conn.Close()
	group := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}
	for range 3 {
		for _, h := range cases {
			pkt, err := mdnsResponse(h)
			if err != nil {
				t.Fatalf("%s: packing: %v", h.name, err)
			}
			if _, err := conn.WriteTo(pkt, group); err != nil {
				t.Fatalf("%s: sending: %v", h.name, err)
			}
		}
	}
	// Garbage that is not DNS at all.
	conn.WriteTo([]byte("\x00\x01not a dns message at all"), group)

	for _, h := range cases {
		within(t, 15*time.Second, "alice logs the "+h.name+" answer", func() bool { return strings.Contains(a.logText(), h.logWant) })
	}
	if !a.alive() || !b.alive() {
		t.Fatal("a daemon died on hostile mDNS answers")
	}
	if !fullMesh(a, b) {
		t.Error("alice and bob lost their link over hostile answers")
	}
	within(t, 10*time.Second, "both stop dialling the spoofed identity", func() bool {
		for _, n := range []*lanNode{a, b} {
			for _, p := range n.peers() {
				if p.Neighbour == ghost || p.Neighbour != "" && p.Neighbour != a.addr && p.Neighbour != b.addr {
					t.Fatalf("%s has a neighbour %s that nobody on the LAN is", n.name, p.Neighbour)
				}
				if strings.Contains(p.URL, ghost) {
					return false
				}
			}
		}
		return true
	})
	if strings.Contains(a.logText(), "neighbour="+ghost) {
		t.Errorf("alice's log shows a link with the spoofed identity:\n%s", a.logText())
	}
	warns := 0
	for _, line := range strings.Split(a.logText(), "\n") {
		if strings.Contains(line, "ignored an mDNS answer") {
			warns++
		}
	}
	if warns > 2*len(cases) {
		t.Errorf("%d log lines about %d hostile answers: not rate-limited", warns, len(cases))
	}
}

// BenchmarkDiscovery measures the time from `tern run` to the first
// discovered peer with a link up, on a two-host LAN; reported as the
// median over b.N starts.
func BenchmarkDiscovery(b *testing.B) {
	lan := newLAN(b)
	seg := lan.bridge()
	first := lan.host("first", seg).run()
	h := lan.host("second", seg)
	var times []time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		n := h.run()
		within(b, 30*time.Second, "discovery", func() bool { return n.linkedTo(first.addr) })
		times = append(times, time.Since(start))
		n.stop()
	}
	slices.Sort(times)
	med := times[len(times)/2]
	b.ReportMetric(float64(med.Milliseconds()), "ms-median-to-first-peer")
	b.ReportMetric(0, "ns/op")
}
