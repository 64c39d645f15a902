package node

import (
	"path/filepath"

	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/files"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/router"
)

// startFiles opens the file application (received files in DATA/files)
// and lets it receive message.File.
func (n *Node) startFiles(app *chat.App, r *router.Router) error {
	fc := n.cfg.Files
	fc.Dir = filepath.Join(n.cfg.DataDir, "files")
	fc.Store, fc.Messenger, fc.Paths = n.store, app, r
	fc.Now, fc.Logger = n.cfg.Now, n.log
	fc.Name = func(a crypto.Address) string {
		c, _, err := app.Resolve(a.String())
		if err != nil {
			return ""
		}
		return c.Name
	}
	fs, err := files.New(fc)
	if err != nil {
		return err
	}
	app.Handle(message.File, fs)
	n.files = fs
	return nil
}

// Files is the file transfer application.
func (n *Node) Files() *files.Service { return n.files }
