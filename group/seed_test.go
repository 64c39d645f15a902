package group

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// checkSeed compares (or with TERN_WRITE_SEEDS=1 writes) a seed file of the
// FuzzDecode corpus in Go's corpus format.
func checkSeed(t *testing.T, name string, data []byte) {
	t.Helper()
	path := filepath.Join("testdata", "fuzz", "FuzzDecode", name)
	want := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
	if os.Getenv("TERN_WRITE_SEEDS") == "1" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("seed %s: %v (run with TERN_WRITE_SEEDS=1 to write it)", path, err)
	}
	if string(got) != want {
		t.Errorf("seed %s is out of date with the encoder: run with TERN_WRITE_SEEDS=1", path)
	}
}
