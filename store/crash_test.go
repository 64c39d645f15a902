package store

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
)

const crashEnv = "TERN_STORE_CRASH_CHILD"

// TestCrashChild is the child half of TestKillNineLosesNothingAcknowledged:
// it only runs when re-executed with crashEnv set. Several writers Put (and
// some Delete) records and print each ID only after the call returned nil,
// i.e. after it was acknowledged as durable.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("child process of TestKillNineLosesNothingAcknowledged")
	}
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	say := func(kind string, i bundle.ID) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, "%s %x\n", kind, i[:])
	}
	exp := time.Now().Add(time.Hour).UnixMilli()
	deadline := time.Now().Add(30 * time.Second) // never outlive a parent that failed to kill us
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				r := rec(w*10_000_000+i, fmt.Sprint("dest", i%5), fmt.Sprint("nbr", w), "", 200, exp)
				if err := s.Put(r)[0]; err != nil {
					fmt.Println("ERR", err)
					os.Exit(2)
				}
				say("P", r.ID)
				if i%3 == 0 {
					say("X", r.ID) // a delete is under way: either outcome is fine until "D"
					if err := s.Delete(r.ID); err != nil {
						fmt.Println("ERR", err)
						os.Exit(2)
					}
					say("D", r.ID)
				}
			}
		}()
	}
	wg.Wait()
	os.Exit(0)
}

func TestKillNineLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "tern.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	put := map[bundle.ID]bool{} // true = still stored (not acknowledged as deleted)
	deleted := map[bundle.ID]bool{}
	deleting := map[bundle.ID]bool{} // Delete called, not yet acknowledged
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "ERR") {
			t.Fatalf("child: %s", line)
		}
		kind, hx, ok := strings.Cut(line, " ")
		b, err := hex.DecodeString(hx)
		if !ok || err != nil || len(b) != 16 {
			continue // a line cut by the kill
		}
		var i bundle.ID
		copy(i[:], b)
		switch kind {
		case "P":
			put[i] = true
		case "X":
			deleting[i] = true
		case "D":
			deleted[i] = true
		}
		if !killed && len(put) >= 3000 {
			// SIGKILL mid-stream: writers are blocked in group commits right now.
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended before it was killed (%d records acknowledged): %v", len(put), err)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child wait: %v", err)
	}

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("reopening after kill -9: %v", err)
	}
	defer s.Close()
	for i := range put {
		got, err := s.Get(i)
		switch {
		case deleted[i]:
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("bundle %x was acknowledged as deleted but is back: %v", i[:], err)
			}
		case deleting[i] && errors.Is(err, ErrNotFound):
			// the kill hit after the delete committed but before it was acknowledged
		case err != nil:
			t.Fatalf("bundle %x was acknowledged but is lost after kill -9: %v", i[:], err)
		case len(got.Raw) != 200:
			t.Fatalf("bundle %x came back with %d raw bytes, want 200", i[:], len(got.Raw))
		}
		if !s.Has(i) {
			t.Fatalf("bundle %x left the seen set", i[:])
		}
	}
	st := checkCounters(t, s)
	t.Logf("acknowledged %d puts and %d deletes before SIGKILL; store holds %d bundles", len(put), len(deleted), st.Bundles)
	if floor := len(put) - len(deleting); st.Bundles < floor {
		t.Fatalf("store holds %d bundles, fewer than the %d acknowledged and never offered for deletion", st.Bundles, floor)
	}
}
