package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/chat"
)

// ternBin is the tern binary built once for the process tests.
var ternBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tern-bin")
	if err != nil {
		panic(err)
	}
	ternBin = filepath.Join(dir, "tern")
	build := exec.Command("go", "build", "-o", ternBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building tern: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is one `tern run` process with its own data directory.
type daemon struct {
	t    *testing.T
	name string
	data string
	cmd  *exec.Cmd
	c    *api.Client
	log  string
	addr string // node address
	quic string // quic://127.0.0.1:port it listens on
	done chan struct{}
}

func startDaemon(t *testing.T, name string, extra ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, name: name, data: filepath.Join(t.TempDir(), name)}
	d.log = d.data + ".log"
	d.start(extra...)
	t.Cleanup(func() { d.stop() })
	return d
}

func (d *daemon) start(extra ...string) {
	d.t.Helper()
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	// A restarted daemon keeps its port, as a real one with a fixed
	// --listen would, so its neighbours' saved links find it again.
	listen := "127.0.0.1:0"
	if d.quic != "" {
		listen = strings.TrimPrefix(d.quic, "quic://")
	}
	// Process tests stay on this machine: no mDNS on real interfaces (the
	// LAN tests run daemons in their own network namespaces), and no web
	// UI on the shared default port unless a test asks for one.
	args := []string{"run", "--data", d.data, "--listen", listen, "--name", d.name}
	if !slices.Contains(extra, "--mdns") {
		args = append(args, "--mdns", "off")
	}
	if !slices.Contains(extra, "--web") {
		args = append(args, "--web", "off")
	}
	args = append(args, extra...)
	d.cmd = exec.Command(ternBin, args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func() { d.cmd.Wait(); logf.Close(); close(d.done) }()
	d.c = api.NewClient(socketPath(d.data))
	var id api.ID
	waitFor(d.t, d.name+" answers on its API", func() bool {
		select {
		case <-d.done:
			d.t.Fatalf("%s exited early:\n%s", d.name, d.logText())
		default:
		}
		return d.c.Do(context.Background(), "GET", "/v1/id", nil, &id) == nil
	})
	d.addr = id.Address
	if len(id.Listen) > 0 {
		d.quic = id.Listen[0]
	}
}

// stop interrupts the daemon as Ctrl-C would and waits for a clean exit.
func (d *daemon) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("%s did not shut down within 15 s of Ctrl-C", d.name)
	}
	d.cmd = nil
}

// kill ends the daemon with SIGKILL: no clean shutdown at all.
func (d *daemon) kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	d.cmd = nil
}

func (d *daemon) logText() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

func (d *daemon) do(method, path string, in, out any) {
	d.t.Helper()
	if err := d.c.Do(context.Background(), method, path, in, out); err != nil {
		d.t.Fatalf("%s: %s %s: %v", d.name, method, path, err)
	}
}

// cli runs a tern subcommand against this daemon and returns its output.
func (d *daemon) cli(args ...string) (string, error) {
	cmd := exec.Command(ternBin, append(args, "--data", d.data)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *daemon) card() string {
	var id api.ID
	d.do("GET", "/v1/id", nil, &id)
	return id.URI
}

func (d *daemon) addContact(other *daemon) {
	d.t.Helper()
	d.do("POST", "/v1/contacts", api.AddContact{URI: other.card(), Name: other.name}, nil)
}

func (d *daemon) addPeer(other *daemon) {
	d.t.Helper()
	d.do("POST", "/v1/peers", api.AddPeer{URL: other.quic}, nil)
}

func (d *daemon) status() api.Status {
	var s api.Status
	d.do("GET", "/v1/status", nil, &s)
	return s
}

func (d *daemon) history(peer string) []chat.Record {
	var recs []chat.Record
	d.do("GET", "/v1/messages?peer="+peer, nil, &recs)
	return recs
}

func (d *daemon) hasRoute(to *daemon) bool {
	for _, r := range d.status().Routes {
		if fmt.Sprintf("%x", r.Dest[:]) == to.addr && r.Live {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-tick.C
	}
}

func incomingTexts(recs []chat.Record) []string {
	var out []string
	for _, r := range recs {
		if r.Incoming {
			out = append(out, r.Text)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
