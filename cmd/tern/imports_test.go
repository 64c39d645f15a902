package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection enforces DESIGN.md's dependency rule: bundle and
// crypto import no link, links import no router, and the layers above only
// point down. A new package gets a line here.
func TestImportDirection(t *testing.T) {
	const mod = "github.com/ternmesh/tern/"
	// allowed lists, for each package prefix, the project packages it may import.
	allowed := map[string][]string{
		"bundle":     {},
		"crypto":     {},
		"message":    {},
		"transports": {"transports", "bundle"},
		"store":      {"bundle"},
		"router":     {"router", "bundle", "store", "transports", "lora"},
		"lora":       {"lora", "bundle", "transports", "hw"},
		"hw":         {"hw"},
		"mdns":       {"mdns"},
		"web":        {},
		"chat":       {"bundle", "crypto", "message", "router", "store"},
		"group":      {"bundle", "chat", "crypto", "message", "store"},
		"call":       {"bundle", "chat", "crypto", "message", "router"},
		"files":      {"bundle", "chat", "crypto", "message", "router", "store"},
		"node":       {"bundle", "call", "chat", "crypto", "files", "group", "message", "router", "store", "transports"},
		"api":        {"bundle", "call", "chat", "crypto", "files", "group", "node", "router"},
		"cmd":        {""}, // wires everything
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, mod+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], mod)
		top := strings.SplitN(pkg, "/", 2)[0]
		ok, known := allowed[top]
		if !known {
			t.Errorf("package %s has no import rule: add one to this test", pkg)
			continue
		}
		for _, imp := range f[1:] {
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			dep := strings.TrimPrefix(imp, mod)
			good := false
			for _, a := range ok {
				if dep == a || strings.HasPrefix(dep, a+"/") || a == "" {
					good = true
				}
			}
			if !good {
				t.Errorf("%s imports %s: that breaks the dependency direction in DESIGN.md", pkg, dep)
			}
		}
	}
}
