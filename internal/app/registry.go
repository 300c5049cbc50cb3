package app

// The destination types this gateway ships: a new platform adds its line to
// both lists.

import (
	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/meta"
	"github.com/tagway/tagway/routing/model"
)

// registry lists every destination adapter tagway ships, each with the
// operator's base URLs of its platform's APIs (from the environment; the
// adapters' defaults where they are empty). Explicit, no init().
func registry(s Settings) destinations.Registry {
	return destinations.Registry{
		"meta": destinations.WithAPIURLs(meta.New, map[string]string{meta.GraphURLSetting: s.MetaGraphURL}),
	}
}

// secretFields declares, per destination type, the settings that are
// secrets (naming conventions add *_token, *_secret, *api_key, password).
func secretFields() model.SecretFields {
	return model.SecretFields{
		"meta": {"access_token"},
	}
}
