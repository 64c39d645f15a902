package main

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/api"
)

// TestInteractiveChat drives `tern chat bob` as a person would: type a
// line, see it go queued -> delivered, and see bob's answer appear.
func TestInteractiveChat(t *testing.T) {
	a, b := startDaemon(t, "alice"), startDaemon(t, "bob")
	a.addContact(b)
	b.addContact(a)
	a.addPeer(b)
	waitFor(t, "alice and bob are linked", func() bool { return a.hasRoute(b) })

	cmd := exec.Command(ternBin, "chat", "bob", "--data", a.data)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(what string) string {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("tern chat ended before %q", what)
				}
				if strings.Contains(l, what) {
					return l
				}
			case <-timeout:
				t.Fatalf("tern chat never printed %q", what)
			}
		}
	}
	expect("chatting with bob")
	io.WriteString(stdin, "is the bridge open?\n")
	expect("[queued] is the bridge open?")
	expect("[delivered, sent via LAN] is the bridge open?")
	waitFor(t, "bob has it", func() bool { return contains(incomingTexts(b.history("alice")), "is the bridge open?") })
	b.do("POST", "/v1/messages", api.Send{To: "alice", Text: "yes, until dusk"}, nil)
	if l := expect("yes, until dusk"); !strings.Contains(l, "bob:") {
		t.Errorf("incoming line %q does not name bob", l)
	}
	stdin.Close() // Ctrl-D
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("tern chat exited with %v after Ctrl-D", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("tern chat did not exit on Ctrl-D")
	}
}

// TestIDPrintsCardAndQRCode: `tern id` shows what a person needs to share.
func TestIDPrintsCardAndQRCode(t *testing.T) {
	a := startDaemon(t, "alice")
	out, err := a.cli("id")
	if err != nil {
		t.Fatalf("tern id: %v\n%s", err, out)
	}
	for _, want := range []string{"address: " + a.addr, "tern:", "QR code", "█"} {
		if !strings.Contains(out, want) {
			t.Errorf("tern id output lacks %q", want)
		}
	}
}
