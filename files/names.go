package files

import (
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// CheckName reports why name cannot be a received file's name, or nil. A
// name is one path element: 1 to MaxNameLen bytes of UTF-8, no slash or
// backslash, no control character, not "." or "..", no leading or trailing
// space. Offers with any other name are refused, so no name from the
// network can point outside the files directory.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("file name is empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("file name is %d bytes long, over %d", len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("file name %q is not valid UTF-8", name)
	case name == "." || name == "..":
		return fmt.Errorf("file name %q names a directory", name)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("file name %q contains a path separator: only a plain name can be sent", name)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("file name %q starts or ends with a space", name)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("file name %q contains a control character (%U)", name, r)
		}
	}
	return nil
}

// CleanName turns what a user or a browser gave as a file's name (perhaps a
// path, perhaps from another system) into a name that passes CheckName:
// the last path element, control characters and separators replaced by
// "_", spaces trimmed, cut to MaxNameLen bytes keeping the extension. It
// fails only when nothing usable is left.
func CleanName(name string) (string, error) {
	orig := name
	name = strings.ReplaceAll(name, `\`, "/")
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	name = strings.ToValidUTF8(name, "_")
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '_'
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "" || name == "." || name == ".." {
		return "", fmt.Errorf("file name %q leaves no usable name: give the file a name", orig)
	}
	if len(name) > MaxNameLen {
		ext := filepath.Ext(name)
		if len(ext) > 32 {
			ext = ""
		}
		cut := MaxNameLen - len(ext)
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		name = strings.TrimSpace(name[:cut]) + ext
	}
	return name, CheckName(name)
}
