package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimSeedsPrintsMeans: `tern sim --seeds 1-3` runs every protocol on
// each seed and prints one row of means per protocol with the delivered
// count of every seed; a backwards range is refused with the fix.
func TestSimSeedsPrintsMeans(t *testing.T) {
	sc := filepath.Join(t.TempDir(), "small.json")
	if err := os.WriteFile(sc, []byte(`{"name": "small", "seed": 1, "nodes": 24, "duration": "40m",
		"lora_relays": 3, "gateways": 1, "lan_islands": 2, "island_size": 4, "messages": 20, "lifetime": "40m"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := cmdSim(context.Background(), []string{"--seeds", "1-3", sc}, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if !strings.Contains(text, "seeds 1-3") {
		t.Errorf("output does not name the seeds:\n%s", text)
	}
	for _, p := range []string{"| tern |", "| epidemic |", "| flooding |"} {
		row := ""
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, p) {
				row = l
			}
		}
		i, j := strings.LastIndex(row, "["), strings.LastIndex(row, "]")
		if row == "" || i < 0 || j < i || len(strings.Fields(row[i+1:j])) != 3 {
			t.Errorf("no row of means with three seeds for %s:\n%s", p, text)
		}
	}
	err := cmdSim(context.Background(), []string{"--seeds", "8-1", sc}, &out)
	if err == nil || !strings.Contains(err.Error(), "like 1-8") {
		t.Errorf("--seeds 8-1: %v, want an error showing a valid range", err)
	}
}
