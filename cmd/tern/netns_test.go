package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/router"
)

// This file builds throwaway LANs out of Linux network namespaces: one
// "switch" namespace holding the bridges, and one namespace per host with
// a veth into a bridge per segment. Addresses come from 198.18.0.0/15
// (RFC 2544 benchmarking) and exist only inside these namespaces, so no
// test traffic ever reaches a real network.

var lanSeq atomic.Int32

// testLAN is a set of namespaces removed at cleanup.
type testLAN struct {
	tb      testing.TB
	prefix  string // unique per LAN: tern<pid><letter>
	sw      string // the switch namespace
	bridges int
	hosts   map[string]*lanHost
}

// lanHost is one namespace, like one laptop.
type lanHost struct {
	lan  *testLAN
	name string
	ns   string
	ips  []string // one per segment, in attach order
	ifs  int
}

// needNetns skips unless the test can create network namespaces.
func needNetns(tb testing.TB) {
	tb.Helper()
	const why = "LAN tests need root and iproute2 to create network namespaces (CI runs as root)"
	if os.Geteuid() != 0 {
		tb.Skip(why)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Skip(why)
	}
	probe := fmt.Sprintf("tern%dprobe", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		tb.Skipf("%s: ip netns add: %v %s", why, err, out)
	}
	exec.Command("ip", "netns", "del", probe).Run()
}

func ipCmd(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newLAN creates the switch namespace; bridges and hosts are added later.
func newLAN(tb testing.TB) *testLAN {
	tb.Helper()
	needNetns(tb)
	l := &testLAN{tb: tb, prefix: fmt.Sprintf("tern%d%c", os.Getpid(), 'a'+rune(lanSeq.Add(1)-1)%26), hosts: map[string]*lanHost{}}
	l.sw = l.prefix + "-sw"
	l.addNS(l.sw)
	return l
}

func (l *testLAN) addNS(ns string) {
	l.tb.Helper()
	ipCmd(l.tb, "netns", "add", ns)
	l.tb.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ipCmd(l.tb, "-n", ns, "link", "set", "lo", "up")
}

// bridge adds a segment and returns its number.
func (l *testLAN) bridge() int {
	l.tb.Helper()
	n := l.bridges
	l.bridges++
	br := fmt.Sprintf("br%d", n)
	ipCmd(l.tb, "-n", l.sw, "link", "add", br, "type", "bridge", "mcast_snooping", "0")
	ipCmd(l.tb, "-n", l.sw, "link", "set", "dev", br, "multicast", "on", "up")
	return n
}

// host adds a namespace attached to the given segments.
func (l *testLAN) host(name string, segments ...int) *lanHost {
	l.tb.Helper()
	h := &lanHost{lan: l, name: name, ns: l.prefix + "-" + name}
	l.addNS(h.ns)
	l.hosts[name] = h
	for _, seg := range segments {
		h.attach(seg)
	}
	return h
}

// attach plugs the host into a segment with a new interface ethN.
func (h *lanHost) attach(seg int) {
	l := h.lan
	l.tb.Helper()
	eth := fmt.Sprintf("eth%d", h.ifs)
	port := fmt.Sprintf("v%d%s", h.ifs, h.name)
	if len(port) > 15 {
		port = port[:15]
	}
	h.ifs++
	ip := fmt.Sprintf("198.18.%d.%d", seg, len(l.hosts)+10)
	ipCmd(l.tb, "link", "add", eth, "netns", h.ns, "type", "veth", "peer", "name", port, "netns", l.sw)
	ipCmd(l.tb, "-n", l.sw, "link", "set", "dev", port, "master", fmt.Sprintf("br%d", seg))
	ipCmd(l.tb, "-n", l.sw, "link", "set", "dev", port, "multicast", "on", "up")
	ipCmd(l.tb, "-n", h.ns, "addr", "add", ip+"/24", "dev", eth)
	ipCmd(l.tb, "-n", h.ns, "link", "set", "dev", eth, "multicast", "on", "up")
	h.ips = append(h.ips, ip)
}

// lanNode is a `tern run` inside a host namespace; its API socket is in
// its data directory, reachable from the test's namespace.
type lanNode struct {
	tb   testing.TB
	h    *lanHost
	name string
	data string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	c    *api.Client
	addr string
}

// run starts `tern run` in the host's namespace and waits for its API.
func (h *lanHost) run(extra ...string) *lanNode {
	h.lan.tb.Helper()
	dir, err := os.MkdirTemp("", "tern-lan")
	if err != nil {
		h.lan.tb.Fatal(err)
	}
	h.lan.tb.Cleanup(func() { os.RemoveAll(dir) })
	n := &lanNode{tb: h.lan.tb, h: h, name: h.name, data: filepath.Join(dir, h.name)}
	n.log = n.data + ".log"
	n.start(extra...)
	h.lan.tb.Cleanup(func() {
		n.stop()
		if n.tb.Failed() {
			n.tb.Logf("log of %s (%s):\n%s", n.name, n.addr, n.logText())
		}
	})
	return n
}

func (n *lanNode) start(extra ...string) {
	n.tb.Helper()
	logf, err := os.OpenFile(n.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		n.tb.Fatal(err)
	}
	args := append([]string{"netns", "exec", n.h.ns, ternBin, "run", "--data", n.data, "--listen", "0.0.0.0:7337", "--name", n.name}, extra...)
	n.cmd = exec.Command("ip", args...)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		n.tb.Fatal(err)
	}
	n.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); logf.Close(); close(done) }(n.cmd, n.done)
	n.c = api.NewClient(socketPath(n.data))
	var id api.ID
	deadline := time.Now().Add(20 * time.Second)
	for n.c.Do(context.Background(), "GET", "/v1/id", nil, &id) != nil {
		select {
		case <-n.done:
			n.tb.Fatalf("%s exited early:\n%s", n.name, n.logText())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			n.tb.Fatalf("%s never answered on its API:\n%s", n.name, n.logText())
		}
	}
	n.addr = id.Address
}

// stop interrupts the daemon (ip netns exec execs tern, so the pid is
// tern's) and waits for it.
func (n *lanNode) stop() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(os.Interrupt)
	select {
	case <-n.done:
	case <-time.After(15 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
		n.tb.Errorf("%s did not shut down within 15 s of Ctrl-C", n.name)
	}
	n.cmd = nil
}

func (n *lanNode) alive() bool {
	select {
	case <-n.done:
		return false
	default:
		return n.c.Do(context.Background(), "GET", "/v1/id", nil, &api.ID{}) == nil
	}
}

func (n *lanNode) logText() string {
	b, _ := os.ReadFile(n.log)
	return string(b)
}

func (n *lanNode) do(method, path string, in, out any) {
	n.tb.Helper()
	if err := n.c.Do(context.Background(), method, path, in, out); err != nil {
		n.tb.Fatalf("%s: %s %s: %v", n.name, method, path, err)
	}
}

func (n *lanNode) peers() []router.PeerInfo {
	var ps []router.PeerInfo
	n.c.Do(context.Background(), "GET", "/v1/peers", nil, &ps)
	return ps
}

// linkedTo reports whether a link to the node with address addr is up.
func (n *lanNode) linkedTo(addr string) bool {
	for _, p := range n.peers() {
		if p.Neighbour == addr && p.State == "up" {
			return true
		}
	}
	return false
}

// liveRoute reports whether the node has a live route to addr.
func (n *lanNode) liveRoute(addr string) bool {
	var st api.Status
	n.c.Do(context.Background(), "GET", "/v1/status", nil, &st)
	for _, r := range st.Routes {
		if fmt.Sprintf("%x", r.Dest[:]) == addr && r.Live {
			return true
		}
	}
	return false
}

// addContact fetches other's card over its API and adds it here.
func (n *lanNode) addContact(other *lanNode) {
	n.tb.Helper()
	var id api.ID
	other.do("GET", "/v1/id", nil, &id)
	n.do("POST", "/v1/contacts", api.AddContact{URI: id.URI, Name: other.name}, nil)
}

func (n *lanNode) send(to, text string) chat.Record {
	n.tb.Helper()
	var rec chat.Record
	n.do("POST", "/v1/messages", api.Send{To: to, Text: text}, &rec)
	return rec
}

func (n *lanNode) received(from, text string) bool {
	var recs []chat.Record
	n.c.Do(context.Background(), "GET", "/v1/messages?peer="+from, nil, &recs)
	return contains(incomingTexts(recs), text)
}

func (n *lanNode) record(peer, id string) (chat.Record, bool) {
	var recs []chat.Record
	n.c.Do(context.Background(), "GET", "/v1/messages?peer="+peer, nil, &recs)
	for _, r := range recs {
		if r.ID == id {
			return r, true
		}
	}
	return chat.Record{}, false
}

// within polls cond every 20 ms until it holds or limit passes, and
// returns how long it took.
func within(tb testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Since(start) > limit {
			tb.Fatalf("%s: not within %v", what, limit)
		}
		<-tick.C
	}
	return time.Since(start)
}

// multicastSender opens a UDP socket inside the host's namespace that
// sends to the mDNS group out of ifname. The socket stays in that
// namespace; the OS thread that switched into it is discarded.
func (h *lanHost) multicastSender(ifname string) (*net.UDPConn, error) {
	type res struct {
		c   *net.UDPConn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ns, err := os.Open(filepath.Join("/var/run/netns", h.ns))
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{err: fmt.Errorf("setns %s: %w", h.ns, err)}
			return
		}
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			ch <- res{err: err}
			return
		}
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(h.ips[0])})
		if err != nil {
			ch <- res{err: err}
			return
		}
		p := ipv4.NewPacketConn(c)
		if err := p.SetMulticastInterface(ifi); err != nil {
			c.Close()
			ch <- res{err: err}
			return
		}
		p.SetMulticastTTL(255)
		ch <- res{c: c}
	}()
	r := <-ch
	return r.c, r.err
}
