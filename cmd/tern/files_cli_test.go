package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ternmesh/tern/files"
)

func (d *daemon) transfers() []files.Transfer {
	var ts []files.Transfer
	d.do("GET", "/v1/files", nil, &ts)
	return ts
}

// TestFileSendCLI: `tern file send` waits with a progress bar until the
// file is delivered; `tern files` lists it on both sides; `tern file get`
// saves it with identical bytes and refuses to overwrite. A send with no
// path yet waits, and Ctrl-C leaves it to the daemon, which delivers it
// once a link exists.
func TestFileSendCLI(t *testing.T) {
	a, b := startDaemon(t, "alice"), startDaemon(t, "bob")
	a.addContact(b)
	b.addContact(a)
	dir := t.TempDir()
	data := make([]byte, 2<<20+7)
	rand.Read(data)
	src := filepath.Join(dir, "field notes.bin")
	os.WriteFile(src, data, 0o600)

	// No link: the transfer waits; Ctrl-C ends the CLI, not the transfer.
	cmd := exec.Command(ternBin, "file", "send", "bob", src, "--data", a.data)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the transfer is queued", func() bool { return len(a.transfers()) == 1 })
	waitFor(t, "the CLI shows it", func() bool { return strings.Contains(out.String(), "queued") })
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tern file send after Ctrl-C: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "goes on in the daemon") {
		t.Errorf("after Ctrl-C the CLI printed %q, want it to say the daemon carries on", out.String())
	}
	a.addPeer(b)
	waitFor(t, "the first file arrives", func() bool {
		ts := b.transfers()
		return len(ts) == 1 && ts[0].State == files.StateDone
	})

	// With a link: the CLI waits until delivered, drawing progress.
	got, err := a.cli("file", "send", "bob", src)
	if err != nil {
		t.Fatalf("tern file send: %v\n%s", err, got)
	}
	t.Logf("tern file send printed:\n%s", got)
	for _, want := range []string{"sending field notes.bin (2.1 MB, 43 chunks) to bob", "100%", "delivered: bob has field notes.bin"} {
		if !strings.Contains(got, want) {
			t.Errorf("tern file send printed %q, want %q in it", got, want)
		}
	}
	list, err := b.cli("files")
	if err != nil || !strings.Contains(list, "in") || !strings.Contains(list, "alice") || !strings.Contains(list, "done") || !strings.Contains(list, "tern file get") {
		t.Errorf("bob's tern files: %v\n%s", err, list)
	}
	ts := b.transfers()
	second := ts[len(ts)-1]
	dest := filepath.Join(dir, "saved.bin")
	if got, err := b.cli("file", "get", second.ID[:8], dest); err != nil || !strings.Contains(got, "SHA-256 checked") {
		t.Fatalf("tern file get: %v\n%s", err, got)
	}
	if saved, _ := os.ReadFile(dest); !bytes.Equal(saved, data) {
		t.Fatal("the saved file differs from the one sent")
	}
	if got, err := b.cli("file", "get", second.ID[:8], dest); err == nil || !strings.Contains(got, "exists already") {
		t.Errorf("getting onto an existing file: %v %s", err, got)
	}
	// The received copies are named apart in bob's files directory.
	for _, name := range []string{"field notes.bin", "field notes (2).bin"} {
		if b, err := os.ReadFile(filepath.Join(b.data, "files", name)); err != nil || !bytes.Equal(b, data) {
			t.Errorf("DATA/files/%s: %v", name, err)
		}
	}
	if got, err := a.cli("file", "send", "bob", filepath.Join(dir, "missing.txt")); err == nil || !strings.Contains(got, "cannot read") {
		t.Errorf("sending a missing file: %v %s", err, got)
	}
	if got, err := a.cli("file", "send", "nobody", src); err == nil || !strings.Contains(got, "no contact") {
		t.Errorf("sending to a stranger: %v %s", err, got)
	}
	if got, err := b.cli("file", "get", "ffffffff"); err == nil || !strings.Contains(got, "tern files") {
		t.Errorf("getting an unknown transfer: %v %s", err, got)
	}
}
