package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkIdleRSS starts a real daemon, lets it settle, and reports its
// resident memory. DESIGN.md budget: under 30 MB.
func BenchmarkIdleRSS(b *testing.B) {
	t := &testing.T{}
	_ = t
	for range b.N {
		d := startDaemonB(b, "idle")
		// Settle: let start-up garbage be collected and timers fire once.
		time.Sleep(3 * time.Second)
		rss := readRSS(b, d.cmd.Process.Pid)
		b.ReportMetric(float64(rss)/(1<<20), "idle-rss-MB")
		d.stop()
	}
	b.ReportMetric(0, "ns/op")
}

func startDaemonB(b *testing.B, name string) *daemon {
	t := new(testing.T)
	d := &daemon{t: t, name: name, data: b.TempDir() + "/" + name}
	d.log = d.data + ".log"
	d.start()
	return d
}

// readRSS returns VmRSS of a process in bytes.
func readRSS(b *testing.B, pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
