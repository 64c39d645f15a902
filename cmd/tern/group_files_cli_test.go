package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ternmesh/tern/files"
)

// TestGroupFileCLI: three daemons over QUIC on loopback. `tern file send
// Trip <path>` sends to both other members of the group with one
// progress bar and waits until both have it; `tern files` on bob names the
// group; `tern file get` saves identical bytes. After `tern group rm Trip
// carol` the next file goes to bob alone, and carol is offered nothing.
func TestGroupFileCLI(t *testing.T) {
	a, b, c := startDaemon(t, "alice"), startDaemon(t, "bob"), startDaemon(t, "carol")
	a.addContact(b)
	a.addContact(c)
	a.addPeer(b)
	a.addPeer(c)
	waitFor(t, "alice is linked to bob and carol", func() bool { return a.hasRoute(b) && a.hasRoute(c) })
	a.mustCLI("group", "create", "Trip", "bob", "carol")
	for _, d := range []*daemon{b, c} {
		waitFor(t, d.name+" is in the group", func() bool {
			out, _ := d.cli("groups")
			return strings.Contains(out, "Trip")
		})
	}
	dir := t.TempDir()
	data := make([]byte, 1<<20+5)
	rand.Read(data)
	src := filepath.Join(dir, "map tiles.bin")
	os.WriteFile(src, data, 0o600)

	out := a.mustCLI("file", "send", "Trip", src)
	t.Logf("tern file send Trip printed:\n%s", out)
	for _, want := range []string{"sending map tiles.bin (1.0 MB, 22 chunks) to the group Trip: 2 members (bob, carol)", "delivered to 2 of 2", "100%",
		"delivered: all 2 members of Trip have map tiles.bin"} {
		if !strings.Contains(out, want) {
			t.Errorf("tern file send Trip printed %q, want %q in it", out, want)
		}
	}
	for _, d := range []*daemon{b, c} {
		ts := d.transfers()
		if len(ts) != 1 || ts[0].State != files.StateDone || ts[0].GroupName != "Trip" {
			t.Fatalf("%s's transfers: %+v", d.name, ts)
		}
	}
	if list := b.mustCLI("files"); !strings.Contains(list, "alice in Trip") {
		t.Errorf("bob's tern files does not name the group:\n%s", list)
	}
	if list := a.mustCLI("files"); !strings.Contains(list, "bob in Trip") || !strings.Contains(list, "carol in Trip") {
		t.Errorf("alice's tern files:\n%s", list)
	}
	dest := filepath.Join(dir, "saved.bin")
	b.mustCLI("file", "get", b.transfers()[0].ID[:8], dest)
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Fatal("bob's saved copy differs from the file sent")
	}

	a.mustCLI("group", "rm", "Trip", "carol")
	waitFor(t, "carol sees she was removed", func() bool {
		out, _ := c.cli("groups")
		return strings.Contains(out, "you were removed")
	})
	os.WriteFile(src, []byte("after carol left"), 0o600)
	out = a.mustCLI("file", "send", "Trip", src)
	if !strings.Contains(out, "to the group Trip: 1 member (bob)") || !strings.Contains(out, "delivered: the only other member of Trip has map tiles.bin") {
		t.Errorf("tern file send after the removal printed:\n%s", out)
	}
	if ts := c.transfers(); len(ts) != 1 {
		t.Errorf("carol, removed, has %d transfers, want only the first: %+v", len(ts), ts)
	}
	if out, err := c.cli("file", "send", "Trip", src); err == nil || !strings.Contains(out, "removed you") {
		t.Errorf("removed carol sends to the group: %v %s", err, out)
	}
}
