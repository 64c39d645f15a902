package main

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/lora/modememu"
	"github.com/ternmesh/tern/lora/radiosim"
)

// qemuARM returns the user-mode ARM emulator, installing Debian's
// qemu-user-static when it is missing and the test runs as root. It is
// called directly, so binfmt_misc need not be set up.
func qemuARM(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("qemu-arm-static"); err == nil {
		return p
	}
	if os.Geteuid() != 0 {
		t.Skip("qemu-arm-static is missing and the test is not root: install it with `apt-get install qemu-user-static` (or `make deps` as root)")
	}
	out, err := exec.Command("apt-get", "install", "-y", "-qq", "qemu-user-static").CombinedOutput()
	if err != nil {
		// The package lists may be missing on a fresh image.
		if o, e := exec.Command("apt-get", "update", "-qq").CombinedOutput(); e != nil {
			t.Skipf("qemu-arm-static is missing and apt-get update failed: %v\n%s", e, o)
		}
		out, err = exec.Command("apt-get", "install", "-y", "-qq", "qemu-user-static").CombinedOutput()
	}
	if err != nil {
		t.Skipf("qemu-arm-static is missing and cannot be installed (apt-get install qemu-user-static: %v)\n%s", err, out)
	}
	p, err := exec.LookPath("qemu-arm-static")
	if err != nil {
		t.Skipf("qemu-user-static installed but qemu-arm-static not found on PATH: %v", err)
	}
	return p
}

// buildARMv6 cross-builds tern for a Pi Zero/1 (linux/arm, GOARM=6, no cgo).
func buildARMv6(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tern-armv6")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm", "GOARM=6", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building tern for linux/arm GOARM=6: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_ARM || f.Class != elf.ELFCLASS32 {
		t.Fatalf("%s is %v %v, want a 32-bit ARM executable", bin, f.Class, f.Machine)
	}
	return bin
}

// startEmulatedDaemon runs `tern run` from an ARM binary under qemu-arm,
// as startDaemon runs the native one; the native CLI talks to its API.
func startEmulatedDaemon(t *testing.T, qemu, bin, name string, extra ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, name: name, data: filepath.Join(t.TempDir(), name)}
	d.log = d.data + ".log"
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{bin, "run", "--data", d.data, "--name", name, "--mdns", "off", "--web", "off"}, extra...)
	d.cmd = exec.Command(qemu, args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func() { d.cmd.Wait(); logf.Close(); close(d.done) }()
	t.Cleanup(d.stop)
	d.c = api.NewClient(socketPath(d.data))
	var id api.ID
	waitFor(t, name+" (ARM, under qemu) answers on its API", func() bool {
		select {
		case <-d.done:
			t.Fatalf("%s exited early:\n%s", name, d.logText())
		default:
		}
		return d.c.Do(context.Background(), "GET", "/v1/id", nil, &id) == nil
	})
	d.addr = id.Address
	return d
}

// TestARMv6DaemonOverRNode: the linux/arm GOARM=6 build (what a Pi Zero
// runs) works as a daemon whose only link is an RNode modem, opposite a
// native daemon on another RNode on the same simulated channel: a message
// crosses both ways, session set-up included.
func TestARMv6DaemonOverRNode(t *testing.T) {
	began := time.Now()
	qemu := qemuARM(t)
	bin := buildARMv6(t)
	t.Logf("ARM build ready in %v", time.Since(began))

	air := modememu.NewAir(radiosim.Config{Seed: 6}, 20)
	t.Cleanup(air.Close)
	ea, err := modememu.NewRNode(air, modememu.RNodeConfig{Name: "arm"})
	if err != nil {
		t.Fatal(err)
	}
	eb, err := modememu.NewRNode(air, modememu.RNodeConfig{Name: "amd64", X: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ea.Unplug)
	t.Cleanup(eb.Unplug)
	const q = "?freq=869.525&bw=250&sf=7&cr=5&txp=14"

	start := time.Now()
	pi := startEmulatedDaemon(t, qemu, bin, "pi", "--listen", "off", "--link", "rnode://"+ea.Path()+q)
	t.Logf("ARM daemon up under qemu in %v", time.Since(start))
	pc := startDaemon(t, "laptop", "--listen", "off", "--link", "rnode://"+eb.Path()+q)
	defer func() {
		if t.Failed() {
			t.Logf("pi (ARM) log:\n%s\nlaptop log:\n%s", pi.logText(), pc.logText())
		}
	}()
	pi.addContact(pc)
	pc.addContact(pi)

	start = time.Now()
	waitFor(t, "the ARM daemon hears the native one over the radio", func() bool { return pi.hasRoute(pc) })
	pi.do("POST", "/v1/messages", api.Send{To: "laptop", Text: "hello from the armv6 relay"}, nil)
	waitFor(t, "the native daemon receives the ARM daemon's message", func() bool {
		return contains(incomingTexts(pc.history("pi")), "hello from the armv6 relay")
	})
	t.Logf("ARM -> amd64 (with the X-Wing session set-up): %v", time.Since(start))
	start = time.Now()
	pc.do("POST", "/v1/messages", api.Send{To: "pi", Text: "heard you, armv6"}, nil)
	waitFor(t, "the ARM daemon receives the answer", func() bool {
		return contains(incomingTexts(pi.history("laptop")), "heard you, armv6")
	})
	t.Logf("amd64 -> ARM: %v; whole test %v", time.Since(start), time.Since(began))
}
