package router

import (
	"errors"

	"github.com/ternmesh/tern/bundle"
)

// VoicePath reports whether a voice frame to dest could leave now, without
// sending one: nil, or the error SendVoice would return, wrapping
// ErrVoiceRadioOnly (the only live path is a radio or amateur link) or
// ErrNoVoicePath (no live internet or LAN path). Calls check it before
// ringing, so the user learns at once why voice cannot go.
func (r *Router) VoicePath(dest bundle.Addr) error {
	if dest == r.cfg.Self {
		return errors.New("voice to this node itself: call someone else")
	}
	_, err := r.voicePath(dest, bundle.Addr{})
	return err
}
